/* Declarations of bridge.c's functions, for the cgo preambles. */
#ifndef FNHOST_GO_BRIDGE_H
#define FNHOST_GO_BRIDGE_H
#include <stdint.h>
#include <stddef.h>
#include "fnhost.h"

void fnhost_go_publish(const uint8_t *plugin, size_t plugin_len, const uint8_t *name,
                       size_t name_len, int registered);
fnhost_host_str fnhost_go_field(fnhost_context *c, uint32_t field);
int64_t fnhost_go_remaining_ms(fnhost_context *c);
uint32_t fnhost_go_running_s(fnhost_context *c);
uint32_t fnhost_go_memory_mb(fnhost_context *c);
uint32_t fnhost_go_cpu(fnhost_context *c);
int32_t fnhost_go_user_data(fnhost_context *c, const uint8_t *key, size_t len, fnhost_host_str *value);
void fnhost_go_log(fnhost_context *c, uint32_t level, const uint8_t *msg, size_t len);
void fnhost_go_output(fnhost_context *c, uint32_t kind, const uint8_t *body, size_t len);
void fnhost_go_error(fnhost_context *c, const uint8_t *type, size_t type_len, const uint8_t *msg, size_t msg_len);
void fnhost_go_memory(fnhost_context *c, uint64_t peak);
int32_t fnhost_go_call_host(fnhost_context *c, const uint8_t *name, size_t name_len, const uint8_t *input,
                            size_t input_len, fnhost_host_str *output, fnhost_host_str *error_type);
void fnhost_go_run_entry(fnhost_thread_entry entry, void *arg);
#endif
