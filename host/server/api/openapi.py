#!/usr/bin/env python3
"""Writes openapi.json beside this file: the OpenAPI 3 description of the
API `fnhost serve` answers (the server embeds and serves the JSON). Edit
this, then run it; `--check` fails when the JSON is not what this writes
(the pytest suite runs it).
"""
import json
import sys
from pathlib import Path
ERR = {"$ref": "#/components/responses/Error"}
def op(summary, op_id, ok_status="200", ok=None, body=None, params=(), tags=("functions",), extra=None, ok_desc="OK"):
    o = {"summary": summary, "operationId": op_id, "tags": list(tags), "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params]}
    if body:
        o["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    r = {ok_status: {"description": ok_desc}}
    if ok:
        r[ok_status]["content"] = {"application/json": {"schema": ok}}
    r.update({"400": ERR, "401": ERR, "404": ERR, "409": ERR, "413": ERR, "429": ERR, "503": ERR, "507": ERR})
    if extra:
        r.update(extra)
    o["responses"] = r
    return o

ref = lambda n: {"$ref": f"#/components/schemas/{n}"}
F = "/v2/{project_id}/fgs/functions"
T = "/v2/{project_id}/fgs/triggers"
inv_ok = {"description": "The function's return (any content type), or its error as {\"errorMessage\",\"errorType\"} with X-Is-Func-Err: true",
          "headers": {h: {"schema": {"type": "string"}} for h in ["X-Cff-Request-Id", "X-Cff-Trace-Id", "traceresponse", "X-Cff-Invoke-Summary", "X-Cff-Billing-Duration", "X-Cff-Function-Log", "X-Is-Func-Err", "X-Func-Err-Code", "X-Cff-Response-Version"]},
          "content": {"*/*": {"schema": {}}}}
paths = {
 F: {"post": op("Create a function with its code package", "createFunction", ok=ref("Function"), body="CreateFunction", params=["project_id"]),
     "get": op("List functions", "listFunctions", ok=ref("FunctionList"), params=["project_id", "marker", "maxitems"])},
 F + "/{urn}": {"delete": op("Delete a function", "deleteFunction", ok_status="204", params=["project_id", "urn"], ok_desc="Deleted")},
 F + "/{urn}/config": {"get": op("Show a function's configuration", "showFunctionConfig", ok=ref("Function"), params=["project_id", "urn"]),
                        "put": op("Update a function's configuration (hot swap)", "updateFunctionConfig", ok=ref("Function"), body="UpdateConfig", params=["project_id", "urn"])},
 F + "/{urn}/code": {"get": op("Show a function's code package", "showFunctionCode", ok=ref("Function"), params=["project_id", "urn"]),
                      "put": op("Update a function's code package (hot swap)", "updateFunctionCode", ok=ref("Function"), body="UpdateCode", params=["project_id", "urn"])},
 F + "/{urn}/versions": {"post": op("Publish what serves latest as a version", "createFunctionVersion", ok=ref("Function"), body="PublishVersion", params=["project_id", "urn"]),
                          "get": op("List a function's versions", "listFunctionVersions", ok=ref("VersionList"), params=["project_id", "urn"])},
 F + "/{urn}/aliases": {"post": op("Create an alias", "createVersionAlias", ok=ref("Alias"), body="CreateAlias", params=["project_id", "urn"]),
                         "get": op("List a function's aliases", "listVersionAliases", ok={"type": "array", "items": ref("Alias")}, params=["project_id", "urn"])},
 F + "/{urn}/aliases/{alias}": {"get": op("Show an alias", "showVersionAlias", ok=ref("Alias"), params=["project_id", "urn", "alias"]),
                                 "put": op("Update an alias", "updateVersionAlias", ok=ref("Alias"), body="UpdateAlias", params=["project_id", "urn", "alias"]),
                                 "delete": op("Delete an alias", "deleteVersionAlias", ok_status="204", params=["project_id", "urn", "alias"], ok_desc="Deleted")},
 F + "/{urn}/config-max-instance": {"put": op("Set the most instances", "updateFunctionMaxInstanceConfig", ok=ref("Function"), body="MaxInstances", params=["project_id", "urn"])},
 F + "/{urn}/reservedinstances": {"put": op("Set the reserved instances", "updateFunctionReservedInstancesCount", ok={"type": "object", "properties": {"count": {"type": "integer"}}}, body="Reserved", params=["project_id", "urn"])},
 F + "/{urn}/invocations": {"post": dict(op("Invoke synchronously (urn: a URN, or NAME[:QUALIFIER] as a shortcut)", "invokeFunction", params=["project_id", "urn", "log_type", "request_version", "traceparent", "tracestate"], tags=("invocation",)),
                             requestBody={"required": False, "content": {"*/*": {"schema": {}}}})},
 F + "/{urn}/invocations-async": {"post": dict(op("Invoke asynchronously (accepted into the store before the 202)", "asyncInvokeFunction", ok_status="202", ok={"type": "object", "properties": {"request_id": {"type": "string"}}}, params=["project_id", "urn", "traceparent", "tracestate"], tags=("invocation",), ok_desc="Accepted"),
                                   requestBody={"required": False, "content": {"*/*": {"schema": {}}}})},
 F + "/{urn}/async-invocations": {"get": op("List asynchronous invocations", "listFunctionAsyncInvocations", ok=ref("AsyncList"), params=["project_id", "urn"], tags=("invocation",))},
 F + "/{urn}/cancel": {"post": op("Cancel a waiting asynchronous invocation", "cancelAsyncInvocation", ok=ref("Anything"), body="Cancel", params=["project_id", "urn"], tags=("invocation",))},
 F + "/{urn}/async-invoke-config": {
     "get": op("Show the asynchronous invocation configuration", "showFunctionAsyncInvokeConfig", ok=ref("AsyncInvokeConfig"), params=["project_id", "urn"], tags=("invocation",)),
     "put": op("Set the asynchronous invocation configuration: maximum event age, retries, destinations", "updateFunctionAsyncInvokeConfig", ok=ref("AsyncInvokeConfig"), body="UpdateAsyncInvokeConfig", params=["project_id", "urn"], tags=("invocation",)),
     "delete": op("Delete the asynchronous invocation configuration", "deleteFunctionAsyncInvokeConfig", ok_status="204", params=["project_id", "urn"], tags=("invocation",), ok_desc="Deleted")},
 F + "/{urn}/async-invoke-configs": {"get": op("List the asynchronous invocation configurations of a function, its versions and aliases", "listFunctionAsyncInvokeConfig", ok=ref("Anything"), params=["project_id", "urn", "marker", "limit"], tags=("invocation",))},
 F + "/{urn}/logs": {"get": op("A function's recent invocation log lines (by request id, time range, or after a sequence number)", "readFunctionLogs", ok=ref("LogLines"), params=["project_id", "urn", "request_id", "since_ms", "until_ms", "after", "limit"], tags=("invocation",))},
 F + "/{urn}/activity": {"get": op("fnhost: a function's recent activity per version (invocations, errors, p50 and p99 latency in 10-second buckets), for the console", "showFunctionActivity", ok=ref("FunctionActivity"), params=["project_id", "urn", "minutes"], tags=("monitoring",))},
 F + "/{urn}/deployments": {"get": op("fnhost: a function's deploy timeline on this node (generations swapped in, when, deploy and drain times)", "listFunctionDeployments", ok=ref("Deployments"), params=["project_id", "urn"], tags=("monitoring",))},
 "/v2/{project_id}/fgs/activity": {"get": op("fnhost: every function's invocations, errors and latency over the last minutes, for the console's list", "listActivity", ok=ref("ActivityOverview"), params=["project_id", "minutes"], tags=("monitoring",))},
 T + "/{urn}": {"post": op("Create a trigger", "createFunctionTrigger", ok_status="201", ok=ref("Trigger"), body="CreateTrigger", params=["project_id", "urn"], tags=("triggers",), ok_desc="Created"),
                "get": op("List a function's triggers", "listFunctionTriggers", ok={"type": "array", "items": ref("Trigger")}, params=["project_id", "urn"], tags=("triggers",))},
 T + "/{urn}/{trigger_type}/{trigger_id}": {
     "get": op("Show a trigger", "showFunctionTrigger", ok=ref("Trigger"), params=["project_id", "urn", "trigger_type", "trigger_id"], tags=("triggers",)),
     "put": op("Enable or disable a trigger", "updateTrigger", ok=ref("Trigger"), body="UpdateTrigger", params=["project_id", "urn", "trigger_type", "trigger_id"], tags=("triggers",)),
     "delete": op("Delete a trigger", "deleteFunctionTrigger", ok_status="204", params=["project_id", "urn", "trigger_type", "trigger_id"], tags=("triggers",), ok_desc="Deleted")},
 "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz", "tags": ["operations"], "responses": {"200": {"description": "ok", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
 "/readyz": {"get": {"summary": "Readiness", "operationId": "readyz", "tags": ["operations"], "responses": {"200": {"description": "ready", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
 "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "tags": ["operations"], "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}}, "401": ERR}}},
 "/console": {"get": {"summary": "The web console (redirects to /console/)", "operationId": "consoleRedirect", "tags": ["console"], "responses": {"308": {"description": "to /console/"}}}},
 "/console/": {"get": {"summary": "The web console's page", "operationId": "console", "tags": ["console"], "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
 "/console/{file}": {"get": {"summary": "The console's assets, config.json (whether the API needs signatures) and event-templates.json (fnhost event's samples)", "operationId": "consoleFile", "tags": ["console"],
                             "parameters": [{"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}],
                             "responses": {"200": {"description": "the file", "content": {"*/*": {"schema": {}}}}, "404": ERR}}},
 "/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "tags": ["operations"], "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
}
apig_params = [{"$ref": "#/components/parameters/function"}]
apig_resp = {"default": {"description": "The function's APIG response (status, headers, body), or an error", "content": {"*/*": {"schema": {}}}}}
for path, extra in [("/apig/{function}", []), ("/apig/{function}/", []), ("/apig/{function}/{path}", [{"$ref": "#/components/parameters/apig_path"}])]:
    item = {}
    for m in ["get", "post", "put", "delete", "patch"]:
        item[m] = {"summary": "The APIG gateway: a request to a function as an APIG event", "operationId": f"apig_{m}_{len(extra)}_{path.count('/')}", "tags": ["gateway"], "parameters": apig_params + extra, "responses": apig_resp}
        if m in ("post", "put", "patch"):
            item[m]["requestBody"] = {"required": False, "content": {"*/*": {"schema": {}}}}
    paths[path] = item

s = lambda **kw: dict(type="string", **kw)
i = lambda **kw: dict(type="integer", **kw)
HOST_FUNCTIONS = {"type": "array", "maxItems": 32, "items": s(minLength=1, maxLength=128),
                  "description": "the host functions the function may call (kv.get, kv.put, kv.delete, invoke): none unless listed"}
schemas = {
 "Error": {"type": "object", "required": ["error_code", "error_msg"], "properties": {"error_code": s(), "error_msg": s()}},
 "Anything": {},
 "Function": {"type": "object", "description": "A function's record, as FunctionGraph's", "required": ["func_urn", "func_name"], "additionalProperties": True,
              "properties": {"func_urn": s(), "func_name": s(), "package": s(), "runtime": s(), "handler": s(), "memory_size": i(), "timeout": i(),
                             "user_data": s(), "initializer_handler": s(), "initializer_timeout": i(), "version": s(), "digest": s(), "code_size": i(),
                             "last_update_status": s(), "last_update_status_reason": s(), "isolation": s(), "sandbox": ref("Sandbox"), "host_functions": HOST_FUNCTIONS}},
 "FunctionList": {"type": "object", "required": ["functions", "count"], "properties": {"functions": {"type": "array", "items": ref("Function")}, "next_marker": i(), "count": i()}},
 "VersionList": {"type": "object", "required": ["versions", "count"], "properties": {"versions": {"type": "array", "items": ref("Function")}, "next_marker": i(), "count": i()}},
 "AsyncList": {"type": "object", "additionalProperties": True},
 "Isolation": s(enum=["auto", "inline", "in-process", "process"]),
 "Sandbox": {"type": "object", "additionalProperties": False,
             "description": "What the function's sandboxed worker processes may reach beyond the minimum (process isolation)",
             "properties": {"network": s(enum=["none", "host"], default="none"),
                            "allow_outbound": {"type": "array", "items": s(description="ADDRESS:PORT, CIDR:PORT, [IPv6]:PORT or NAME:PORT (resolved at deploy); PORT may be *")},
                            "tmp_mb": i(minimum=1, maximum=10240, default=512),
                            "env": {"type": "array", "items": s(description="a variable of the server's environment passed through")},
                            "read_only_paths": {"type": "array", "items": s(description="a host path under one the operator allowed (--sandbox-allow-path)")}}},
 "CreateFunction": {"type": "object", "required": ["func_name", "runtime", "handler", "memory_size", "timeout", "func_code"],
                    "properties": {"func_name": s(description="1 to 60 letters, digits, - and _"), "package": s(default="default"), "runtime": s(enum=["Rust1.x", "Go1.x", "Custom"]),
                                   "handler": s(description="LIBRARY.HANDLER"), "memory_size": i(enum=[128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 8192, 10240]),
                                   "timeout": i(minimum=1, maximum=900), "code_type": s(enum=["zip"]), "func_code": ref("FuncCode"),
                                   "user_data": s(description="a JSON object of strings, as a string"), "initializer_handler": s(), "initializer_timeout": i(minimum=0),
                                   "description": s(), "isolation": ref("Isolation"), "sandbox": ref("Sandbox"), "host_functions": HOST_FUNCTIONS, "concurrent_num": i(minimum=0)}},
 "FuncCode": {"type": "object", "required": ["file"], "properties": {"file": s(description="base64 of a zip with the library at its root"), "link": s()}},
 "UpdateConfig": {"type": "object", "properties": {"runtime": s(), "handler": s(), "memory_size": i(), "timeout": i(), "user_data": s(), "initializer_handler": s(), "initializer_timeout": i(), "description": s(), "isolation": ref("Isolation"), "sandbox": ref("Sandbox"), "host_functions": HOST_FUNCTIONS, "concurrent_num": i(minimum=0)}},
 "UpdateCode": {"type": "object", "required": ["func_code"], "properties": {"code_type": s(enum=["zip"]), "func_code": ref("FuncCode")}},
 "PublishVersion": {"type": "object", "properties": {"digest": s(), "version": s(), "description": s()}},
 "CreateAlias": {"type": "object", "required": ["name", "version"], "properties": {"name": s(), "version": s(), "description": s(), "additional_version_weights": {"type": "object", "additionalProperties": i(minimum=0, maximum=100)}}},
 "UpdateAlias": {"type": "object", "required": ["version"], "properties": {"version": s(), "description": s(), "additional_version_weights": {"type": "object", "additionalProperties": i(minimum=0, maximum=100)}}},
 "Alias": {"type": "object", "additionalProperties": True, "properties": {"name": s(), "version": s(), "description": s(), "alias_urn": s()}},
 "MaxInstances": {"type": "object", "required": ["max_instance_num"], "properties": {"max_instance_num": i(minimum=0)}},
 "Reserved": {"type": "object", "required": ["count"], "properties": {"count": i(minimum=0)}},
 "Cancel": {"type": "object", "properties": {"request_id": s()}, "additionalProperties": True},
 "Destination": {"type": "object", "additionalProperties": False, "required": ["destination"], "properties": {"destination": s(enum=["FunctionGraph", "HTTP"]), "param": s(description="JSON: {\"func_urn\": ...} or {\"url\": \"http://127.0.0.1:PORT/path\"}")}},
 "DestinationConfig": {"type": "object", "additionalProperties": False, "properties": {"on_success": ref("Destination"), "on_failure": ref("Destination")}},
 "UpdateAsyncInvokeConfig": {"type": "object", "properties": {"max_async_event_age_in_seconds": i(minimum=60, maximum=86400), "max_async_retry_attempts": i(minimum=0, maximum=8), "destination_config": ref("DestinationConfig"), "enable_async_status_log": {"type": "boolean"}, "log_group_id": s(), "log_stream_id": s(), "log_group_name": s(), "log_stream_name": s()}},
 "AsyncInvokeConfig": {"type": "object", "additionalProperties": True, "properties": {"func_urn": s(), "max_async_event_age_in_seconds": i(), "max_async_retry_attempts": i(), "destination_config": ref("DestinationConfig"), "enable_async_status_log": {"type": "boolean"}, "created_time": s(), "last_modified": s()}},
 "LogLines": {"type": "object", "properties": {"lines": {"type": "array", "items": {"type": "object", "properties": {"seq": i(), "time_ms": i(), "request_id": s(), "line": s()}}}, "count": i(), "next_after": i()}},
 "Stats": {"type": "object", "required": ["invocations", "errors"], "properties": {"invocations": i(), "errors": i(), "p50_ms": {"type": "number", "nullable": True}, "p99_ms": {"type": "number", "nullable": True}}},
 "ActivityOverview": {"type": "object", "required": ["minutes", "functions"], "properties": {"minutes": i(), "functions": {"type": "array", "items": {"allOf": [ref("Stats"), {"type": "object", "required": ["func_name"], "properties": {"func_name": s()}}]}}}},
 "FunctionActivity": {"type": "object", "required": ["func_name", "minutes", "bucket_seconds", "versions"], "properties": {"func_name": s(), "minutes": i(), "bucket_seconds": i(),
                      "versions": {"type": "array", "items": {"allOf": [ref("Stats"), {"type": "object", "required": ["version", "buckets"], "properties": {"version": s(), "buckets": {"type": "array", "items": {"allOf": [ref("Stats"), {"type": "object", "required": ["start_ms"], "properties": {"start_ms": i()}}]}}}}]}}}},
 "Deployments": {"type": "object", "required": ["func_name", "deployments"], "properties": {"func_name": s(), "deployments": {"type": "array", "items": {"type": "object", "properties": {
     "sequence": i(), "function": s(), "kind": s(enum=["created", "swapped"]), "generation": i(), "digest": s(), "replaced_generation": i(nullable=True), "at_ms": i(), "deploy_ms": {"type": "number"},
     "drained_ms": {"type": "number", "nullable": True, "description": "from the swap until the replaced generation's last call ended; null while it drains or when it still serves a version"},
     "replaced_still_serves": {"type": "boolean"}, "in_flight_at_swap": i(), "drain_abandoned": {"type": "boolean"}}}}}},
 "CreateTrigger": {"type": "object", "required": ["trigger_type_code"], "properties": {"trigger_type_code": s(enum=["TIMER", "APIG"]), "trigger_status": s(enum=["ACTIVE", "DISABLED"]), "event_data": {"type": "object", "additionalProperties": True}}},
 "UpdateTrigger": {"type": "object", "required": ["trigger_status"], "properties": {"trigger_status": s(enum=["ACTIVE", "DISABLED"])}},
 "Trigger": {"type": "object", "additionalProperties": True, "properties": {"trigger_id": s(), "trigger_type_code": s(), "trigger_status": s(), "event_data": {"type": "object"}}},
}
params = {
 "project_id": {"name": "project_id", "in": "path", "required": True, "schema": s()},
 "urn": {"name": "urn", "in": "path", "required": True, "description": "The function's URN, or NAME[:QUALIFIER]", "schema": s()},
 "alias": {"name": "alias", "in": "path", "required": True, "schema": s()},
 "trigger_type": {"name": "trigger_type", "in": "path", "required": True, "schema": s(enum=["TIMER", "APIG"])},
 "trigger_id": {"name": "trigger_id", "in": "path", "required": True, "schema": s()},
 "function": {"name": "function", "in": "path", "required": True, "description": "NAME[:QUALIFIER]", "schema": s()},
 "apig_path": {"name": "path", "in": "path", "required": True, "description": "the rest of the request path", "schema": s()},
 "marker": {"name": "marker", "in": "query", "required": False, "schema": s()},
 "maxitems": {"name": "maxitems", "in": "query", "required": False, "schema": s()},
 "limit": {"name": "limit", "in": "query", "required": False, "schema": s()},
 "request_id": {"name": "request_id", "in": "query", "required": False, "schema": s()},
 "since_ms": {"name": "since_ms", "in": "query", "required": False, "schema": i()},
 "until_ms": {"name": "until_ms", "in": "query", "required": False, "schema": i()},
 "minutes": {"name": "minutes", "in": "query", "required": False, "schema": i(minimum=1, maximum=15)},
 "after": {"name": "after", "in": "query", "required": False, "schema": i(minimum=0)},
 "traceparent": {"name": "traceparent", "in": "header", "required": False, "description": "W3C Trace Context; a new trace starts without (or with an invalid) one", "schema": s()},
 "tracestate": {"name": "tracestate", "in": "header", "required": False, "schema": s()},
 "log_type": {"name": "X-Cff-Log-Type", "in": "header", "required": False, "schema": s(enum=["tail", "None"])},
 "request_version": {"name": "X-Cff-Request-Version", "in": "header", "required": False, "schema": s(enum=["v0", "v1"])},
}
for p, item in paths.items():
    if p.endswith("/invocations"):
        item["post"]["responses"]["200"] = inv_ok
doc = {"openapi": "3.0.3",
       "info": {"title": "fnhost: FunctionGraph's API", "version": "0.1.0",
                "description": "The HTTP API of `fnhost serve`: FunctionGraph's management and invocation API (the paths, fields and headers the official SDKs use), the APIG gateway, and operations. Requests are signed with SDK-HMAC-SHA256 when the server has access keys; errors are {\"error_code\",\"error_msg\"}."},
       "servers": [{"url": "http://127.0.0.1:8000"}],
       "paths": paths,
       "components": {"schemas": schemas, "parameters": params,
                      "responses": {"Error": {"description": "FunctionGraph's error shape", "content": {"application/json": {"schema": ref("Error")}}}}}}
out = Path(__file__).with_name("openapi.json")
text = json.dumps(doc, indent=1) + "\n"
if sys.argv[1:] == ["--check"]:
    if out.read_text() != text:
        sys.exit(f"{out} is not what {Path(__file__).name} writes: run it")
else:
    out.write_text(text)

