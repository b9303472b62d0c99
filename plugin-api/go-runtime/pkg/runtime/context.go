package runtime

/*
#include "bridge.h"
*/
import "C"

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"unsafe"

	"huaweicloud.com/go-runtime/go-api/context"
	"huaweicloud.com/go-runtime/pkg/runtime/common"
)

var _ context.RuntimeContext = (*runtimeContext)(nil)

// runtimeContext is context.RuntimeContext over the host's vtable. The host
// pointer is valid only until the handler returns: every method holds the
// read lock and checks that the call is still running, and end() takes the
// write lock, so a goroutine that outlives the call reads zero values
// instead of freed host memory.
type runtimeContext struct {
	mu    sync.RWMutex
	c     *C.fnhost_context
	ended bool
}

func (x *runtimeContext) end() {
	x.mu.Lock()
	x.ended = true
	x.c = nil
	x.mu.Unlock()
}

// with runs f with the live host context, unless the call has returned.
func (x *runtimeContext) with(f func(c *C.fnhost_context)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ended {
		f(x.c)
	}
}

func (x *runtimeContext) field(id C.uint32_t) (s string) {
	x.with(func(c *C.fnhost_context) {
		v := C.fnhost_go_field(c, id)
		s = hostString(v.ptr, v.len)
	})
	return s
}

func (x *runtimeContext) GetRequestID() string    { return x.field(C.FNHOST_FIELD_REQUEST_ID) }
func (x *runtimeContext) GetAccessKey() string    { return x.field(C.FNHOST_FIELD_ACCESS_KEY) }
func (x *runtimeContext) GetSecretKey() string    { return x.field(C.FNHOST_FIELD_SECRET_KEY) }
func (x *runtimeContext) GetFunctionName() string { return x.field(C.FNHOST_FIELD_FUNCTION_NAME) }
func (x *runtimeContext) GetVersion() string      { return x.field(C.FNHOST_FIELD_VERSION) }
func (x *runtimeContext) GetAlias() string        { return x.field(C.FNHOST_FIELD_ALIAS) }
func (x *runtimeContext) GetPackage() string      { return x.field(C.FNHOST_FIELD_PACKAGE) }
func (x *runtimeContext) GetProjectID() string    { return x.field(C.FNHOST_FIELD_PROJECT_ID) }
func (x *runtimeContext) GetToken() string        { return x.field(C.FNHOST_FIELD_TOKEN) }
func (x *runtimeContext) GetTraceID() string      { return x.field(C.FNHOST_FIELD_TRACE_ID) }
func (x *runtimeContext) IsCancelled() bool       { return x.field(C.FNHOST_FIELD_CANCELLED) == "1" }
func (x *runtimeContext) GetSecurityToken() string {
	return x.field(C.FNHOST_FIELD_SECURITY_TOKEN)
}
func (x *runtimeContext) GetSecurityAccessKey() string {
	return x.field(C.FNHOST_FIELD_SECURITY_ACCESS_KEY)
}
func (x *runtimeContext) GetSecuritySecretKey() string {
	return x.field(C.FNHOST_FIELD_SECURITY_SECRET_KEY)
}

func (x *runtimeContext) GetRemainingTimeInMilliSeconds() (ms int) {
	x.with(func(c *C.fnhost_context) { ms = int(C.fnhost_go_remaining_ms(c)) })
	return ms
}
func (x *runtimeContext) GetRunningTimeInSeconds() (s int) {
	x.with(func(c *C.fnhost_context) { s = int(C.fnhost_go_running_s(c)) })
	return s
}
func (x *runtimeContext) GetMemorySize() (mb int) {
	x.with(func(c *C.fnhost_context) { mb = int(C.fnhost_go_memory_mb(c)) })
	return mb
}
func (x *runtimeContext) GetCPUNumber() (m int) {
	x.with(func(c *C.fnhost_context) { m = int(C.fnhost_go_cpu(c)) })
	return m
}

func (x *runtimeContext) GetUserData(key string) (value string) {
	k := []byte(key)
	x.with(func(c *C.fnhost_context) {
		var v C.fnhost_host_str
		if C.fnhost_go_user_data(c, bytesPtr(k), C.size_t(len(k)), &v) == 1 {
			value = hostString(v.ptr, v.len)
		}
	})
	return value
}

func (x *runtimeContext) GetLogger() common.RuntimeLogger { return logger{x} }

// CallHost calls the host function name (context.HostCaller). The answer is
// copied into Go memory before the call returns.
func (x *runtimeContext) CallHost(name string, input []byte) (output []byte, err error) {
	n := []byte(name)
	err = &context.HostCallError{Type: "HostFunctionUnavailable", Message: "the invocation has returned"}
	x.with(func(c *C.fnhost_context) {
		var out, kind C.fnhost_host_str
		status := C.fnhost_go_call_host(c, bytesPtr(n), C.size_t(len(n)), bytesPtr(input), C.size_t(len(input)), &out, &kind)
		switch status {
		case C.FNHOST_STATUS_OK:
			output, err = []byte(hostString(out.ptr, out.len)), nil
		case -1:
			err = &context.HostCallError{Type: "HostFunctionsUnsupported", Message: "this host is older than ABI 1.5 and has no host functions"}
		default:
			t := hostString(kind.ptr, kind.len)
			if t == "" {
				t = "HostFunctionError"
			}
			err = &context.HostCallError{Type: t, Message: hostString(out.ptr, out.len)}
		}
	})
	return output, err
}

type logger struct{ x *runtimeContext }

// Logf appends one line to the invocation's log; the host prefixes the time
// and the request id.
func (l logger) Logf(format string, args ...interface{}) {
	l.x.log(C.FNHOST_LEVEL_INFO, fmt.Sprintf(format, args...))
}

func (x *runtimeContext) log(level C.uint32_t, line string) {
	b := []byte(line)
	x.with(func(c *C.fnhost_context) { C.fnhost_go_log(c, level, bytesPtr(b), C.size_t(len(b))) })
}

func (x *runtimeContext) output(kind C.uint32_t, body []byte) {
	x.with(func(c *C.fnhost_context) { C.fnhost_go_output(c, kind, bytesPtr(body), C.size_t(len(body))) })
}

func (x *runtimeContext) fail(kind, message string) {
	t, m := []byte(kind), []byte(message)
	x.with(func(c *C.fnhost_context) {
		C.fnhost_go_error(c, bytesPtr(t), C.size_t(len(t)), bytesPtr(m), C.size_t(len(m)))
	})
}

// The Go heap in use after the call (its spans: objects and the free room
// in spans being allocated from, Go's HeapInuse), as memoryUsed: Go's
// allocator is not the plugin's to count per call, and a library has one
// heap. Read through runtime/metrics, which does not stop the world.
var heapSample = []metrics.Sample{
	{Name: "/memory/classes/heap/objects:bytes"},
	{Name: "/memory/classes/heap/unused:bytes"},
}
var heapMu sync.Mutex

func (x *runtimeContext) reportMemory() {
	heapMu.Lock()
	metrics.Read(heapSample)
	var used uint64
	for _, sample := range heapSample {
		if sample.Value.Kind() == metrics.KindUint64 {
			used += sample.Value.Uint64()
		}
	}
	heapMu.Unlock()
	x.with(func(c *C.fnhost_context) { C.fnhost_go_memory(c, C.uint64_t(used)) })
}

// At most this many stack frames of a panic reach the log.
const maxPanicFrames = 32

// logPanic writes the panic and the stack of the handler's goroutine from
// where it panicked (function names and file names only: no arguments, no
// absolute paths) into the invocation's log.
func (x *runtimeContext) logPanic(r interface{}) {
	x.log(C.FNHOST_LEVEL_ERROR, fmt.Sprintf("panic: %v", r))
	lines := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
	// Skip the goroutine header and the frames of the recovery itself, up to
	// and including the runtime's panic().
	start := 1
	for i := 1; i+1 < len(lines); i += 2 {
		if strings.HasPrefix(lines[i], "panic(") {
			start = i + 2
			break
		}
	}
	frames := 0
	for i := start; i+1 < len(lines) && frames < maxPanicFrames; i += 2 {
		fn := strings.TrimSpace(lines[i])
		if strings.HasSuffix(fn, ")") {
			if j := strings.LastIndexByte(fn, '('); j > 0 {
				fn = fn[:j]
			}
		}
		if strings.HasPrefix(fn, "huaweicloud.com/go-runtime/pkg/runtime.") {
			break // the bridge that called the handler
		}
		at := strings.TrimSpace(lines[i+1])
		if j := strings.LastIndexByte(at, '/'); j >= 0 {
			at = at[j+1:]
		}
		if k := strings.Index(at, " +0x"); k >= 0 {
			at = at[:k]
		}
		x.log(C.FNHOST_LEVEL_ERROR, "    "+fn+" ("+at+")")
		frames++
	}
}

func hostString(p *C.uint8_t, n C.size_t) string {
	if n == 0 || p == nil {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
}

func copyIn(p *C.uint8_t, n C.size_t) []byte {
	out := make([]byte, int(n))
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)))
	}
	return out
}

func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

func funcPC(h Handler) uintptr { return reflect.ValueOf(h).Pointer() }
