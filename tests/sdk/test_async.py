"""Asynchronous invocations that survive the server, retries, age discards and
destinations through the official SDK; trace context through sync, async
and APIG invocations."""
import http.server
import json
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.request

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkfunctiongraph.v2 import (
    AsyncInvokeFunctionRequest, DeleteFunctionAsyncInvokeConfigRequest, FuncAsyncDestinationConfig,
    FuncDestinationConfig, ListAsyncInvocationsRequest, ListFunctionAsyncInvokeConfigRequest,
    ShowFunctionAsyncInvokeConfigRequest, UpdateFunctionAsyncInvokeConfigRequest,
    UpdateFunctionAsyncInvokeConfigRequestBody,
)

from conftest import TARGET, Server, client_for, eventually
from test_sdk import create

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def listed(client, urn, request_id=None):
    return client.list_async_invocations(ListAsyncInvocationsRequest(
        function_urn=urn, request_id=request_id, limit="500")).invocations or []


def wait_for(predicate, what, timeout=20):
    value = eventually(predicate, timeout=timeout, interval=0.05)
    assert value, f"timed out waiting for {what}"
    return value


def db_attempts(tmp_path):
    """Attempts per request id, from the server's store (the SDK's list
    model drops fields it does not know)."""
    db = sqlite3.connect(tmp_path / "data" / "state.db")
    try:
        return dict(db.execute("SELECT request_id, attempts FROM async_invocations"))
    finally:
        db.close()


def statuses(client, urn):
    return {i.request_id: i.status for i in listed(client, urn)}


def test_kill_9_with_queued_and_running_async_work_loses_none(tmp_path):
    server = Server(tmp_path).start()
    client = client_for(server)
    created = create(client, name="slow", library="libmisbehaving.so", module="misbehaving", handler="Sleep")
    ids = [client.async_invoke_function(AsyncInvokeFunctionRequest(
        function_urn=created.func_urn, body="700")).request_id for _ in range(12)]
    # Four run, eight wait: then the server dies.
    wait_for(lambda: list(statuses(client, created.func_urn).values()).count("RUNNING") == 4, "4 running")
    server.stop(signal.SIGKILL)
    server.start()
    client = client_for(server)
    done = wait_for(lambda: (lambda s: s if all(v == "SUCCESS" for v in s.values()) else None)(
        statuses(client, created.func_urn)), "every invocation to succeed", timeout=30)
    assert sorted(done) == sorted(ids), "none vanished"
    attempts = db_attempts(tmp_path)
    rerun = [rid for rid, n in attempts.items() if n == 2]
    assert len(rerun) == 4, f"the four that were running ran again: {attempts}"
    assert all(n in (1, 2) for n in attempts.values()), attempts
    server.stop(signal.SIGKILL)


def test_a_graceful_stop_leaves_waiting_work_queued_for_the_next_start(tmp_path):
    server = Server(tmp_path, extra_args=["--shutdown-grace", "5"]).start()
    client = client_for(server)
    created = create(client, name="slow", library="libmisbehaving.so", module="misbehaving", handler="Sleep")
    ids = [client.async_invoke_function(AsyncInvokeFunctionRequest(
        function_urn=created.func_urn, body="500")).request_id for _ in range(10)]
    wait_for(lambda: "RUNNING" in statuses(client, created.func_urn).values(), "a running one")
    assert server.stop(signal.SIGTERM) == 0
    db = sqlite3.connect(tmp_path / "data" / "state.db")
    left = dict(db.execute("SELECT request_id, status FROM async_invocations"))
    db.close()
    assert sorted(left) == sorted(ids)
    assert "RUNNING" not in left.values(), "running ones finished within the grace period"
    assert "WAIT" in left.values(), f"waiting ones stay queued: {left}"
    server.start()
    client = client_for(server)
    wait_for(lambda: all(v == "SUCCESS" for v in statuses(client, created.func_urn).values()), "the rest to run")
    server.stop(signal.SIGKILL)


def test_an_event_older_than_its_maximum_age_is_discarded_with_the_reason(tmp_path):
    server = Server(tmp_path).start()
    client = client_for(server)
    created = create(client, name="slow", library="libmisbehaving.so", module="misbehaving", handler="Sleep")
    client.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
        function_urn=created.func_urn,
        body=UpdateFunctionAsyncInvokeConfigRequestBody(max_async_event_age_in_seconds=60, max_async_retry_attempts=0)))
    ids = [client.async_invoke_function(AsyncInvokeFunctionRequest(
        function_urn=created.func_urn, body="2000")).request_id for _ in range(8)]
    wait_for(lambda: list(statuses(client, created.func_urn).values()).count("RUNNING") == 4, "4 running")
    server.stop(signal.SIGKILL)
    # The server stays down for two minutes (as far as the records tell).
    db = sqlite3.connect(tmp_path / "data" / "state.db")
    db.execute("UPDATE async_invocations SET accepted_ms = accepted_ms - 120000")
    db.commit()
    db.close()
    server.start()
    client = client_for(server)
    final = wait_for(lambda: (lambda s: s if "WAIT" not in s.values() and "RUNNING" not in s.values() else None)(
        statuses(client, created.func_urn)), "every invocation to end")
    assert set(final.values()) == {"DISCARD"}, final
    assert sorted(final) == sorted(ids)
    for i in listed(client, created.func_urn):
        assert "maximum age of 60 s" in i.error_message, i.error_message
    server.stop(signal.SIGKILL)


class Hook(http.server.BaseHTTPRequestHandler):
    """An HTTP destination: keeps what is POSTed to it."""
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    Hook.received = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_retries_then_a_function_destination_then_an_http_destination(tmp_path, hook):
    server = Server(tmp_path, config={"asynchronous": {"retry_base_ms": 100}}).start()
    client = client_for(server)
    failing = create(client, name="failing", library="libmisbehaving.so", module="misbehaving", handler="Error")
    sink = create(client, name="sink", library="libecho.so", module="echo", handler="Handler")
    # failing: two retries, then its outcome goes to `sink`, whose own
    # success goes to the HTTP hook: the hook sees sink's answer, which is
    # the record of failing's failure.
    on_failure = FuncDestinationConfig(destination="FunctionGraph", param=json.dumps({"func_urn": sink.func_urn}))
    shown = client.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
        function_urn=failing.func_urn, body=UpdateFunctionAsyncInvokeConfigRequestBody(
            max_async_event_age_in_seconds=3600, max_async_retry_attempts=2,
            destination_config=FuncAsyncDestinationConfig(on_failure=on_failure))))
    assert shown.max_async_retry_attempts == 2
    on_success = FuncDestinationConfig(destination="HTTP", param=json.dumps({"url": hook + "/outcomes?from=sink"}))
    client.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
        function_urn=sink.func_urn, body=UpdateFunctionAsyncInvokeConfigRequestBody(
            max_async_event_age_in_seconds=3600, max_async_retry_attempts=0,
            destination_config=FuncAsyncDestinationConfig(on_success=on_success))))
    got = client.show_function_async_invoke_config(ShowFunctionAsyncInvokeConfigRequest(function_urn=failing.func_urn))
    assert got.destination_config.on_failure.destination == "FunctionGraph"
    configs = client.list_function_async_invoke_config(ListFunctionAsyncInvokeConfigRequest(function_urn=failing.func_urn))
    assert configs.count == 1
    request_id = client.async_invoke_function(AsyncInvokeFunctionRequest(
        function_urn=failing.func_urn, body={"order": 7})).request_id
    wait_for(lambda: Hook.received, "the HTTP destination", timeout=20)
    [(path, headers, record)] = Hook.received
    assert path == "/outcomes?from=sink"
    assert record["status"] == "SUCCESS" and record["condition"] == "Success"
    assert record["request"]["source"] == "destination"
    inner = json.loads(record["response"]["body"])
    assert inner["request_id"] == request_id
    assert inner["status"] == "FAIL" and inner["condition"] == "RetriesExhausted"
    assert inner["attempts"] == 3, "one attempt and two retries"
    assert json.loads(inner["request"]["payload"]) == {"order": 7}
    assert inner["error"]["error_code"] == 1
    assert "errorMessage" in inner["error"]["error_message"]
    assert inner["trace_id"] == record["trace_id"] != "", "the trace is carried through both hops"
    assert headers["traceparent"].split("-")[1] == record["trace_id"]
    [failed] = listed(client, failing.func_urn)
    assert failed.status == "FAIL"
    assert db_attempts(tmp_path)[request_id] == 3
    # Deleting the configuration stops the deliveries.
    client.delete_function_async_invoke_config(DeleteFunctionAsyncInvokeConfigRequest(function_urn=failing.func_urn))
    with pytest.raises(ClientRequestException) as e:
        client.show_function_async_invoke_config(ShowFunctionAsyncInvokeConfigRequest(function_urn=failing.func_urn))
    assert e.value.status_code == 404
    server.stop(signal.SIGKILL)


def test_bad_async_configurations_are_refused(client):
    created = create(client, name="target", library="libecho.so", module="echo", handler="Handler")
    for body in [
        UpdateFunctionAsyncInvokeConfigRequestBody(max_async_event_age_in_seconds=10, max_async_retry_attempts=0),
        UpdateFunctionAsyncInvokeConfigRequestBody(max_async_event_age_in_seconds=60, max_async_retry_attempts=9),
        UpdateFunctionAsyncInvokeConfigRequestBody(
            max_async_event_age_in_seconds=60, max_async_retry_attempts=0,
            destination_config=FuncAsyncDestinationConfig(on_success=FuncDestinationConfig(
                destination="HTTP", param=json.dumps({"url": "http://10.1.2.3/hook"})))),
        UpdateFunctionAsyncInvokeConfigRequestBody(
            max_async_event_age_in_seconds=60, max_async_retry_attempts=0,
            destination_config=FuncAsyncDestinationConfig(on_failure=FuncDestinationConfig(
                destination="FunctionGraph", param=json.dumps({"func_urn": "nosuchfunction"})))),
        UpdateFunctionAsyncInvokeConfigRequestBody(
            max_async_event_age_in_seconds=60, max_async_retry_attempts=0,
            destination_config=FuncAsyncDestinationConfig(on_failure=FuncDestinationConfig(
                destination="OBS", param="{}"))),
    ]:
        with pytest.raises(ClientRequestException) as e:
            client.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
                function_urn=created.func_urn, body=body))
        assert e.value.status_code in (400, 404), body


def post(url, body=b"{}", headers=None):
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as r:
        return r.status, r.headers, r.read()


def test_trace_context_reaches_the_handler_sync_async_and_through_apig(open_server, hook):
    client = client_for(open_server)
    created = create(client, name="ids", library="libecho.so", module="echo", handler="Ids")
    base = f"{open_server.url}/v2/proj1/fgs/functions/{created.func_urn}"
    # Synchronous: the caller's trace id reaches the handler and comes back.
    _, headers, body = post(base + "/invocations", headers={"traceparent": TRACEPARENT, "tracestate": "k=v"})
    assert json.loads(body)["trace_id"] == TRACE_ID
    assert headers["X-Cff-Trace-Id"] == TRACE_ID
    assert headers["traceresponse"] is None, "named spans only while they are exported"
    assert json.loads(body)["request_id"] == headers["X-Cff-Request-Id"]
    # Without one, a trace is started.
    _, headers, body = post(base + "/invocations")
    started = json.loads(body)["trace_id"]
    assert len(started) == 32 and started != TRACE_ID and headers["X-Cff-Trace-Id"] == started
    # A malformed one starts a trace too.
    _, _, body = post(base + "/invocations", headers={"traceparent": "00-zz-00-01"})
    assert len(json.loads(body)["trace_id"]) == 32
    # Asynchronous: recorded with the invocation, given to the handler under
    # the accepted request id, and to its destination with the tracestate.
    on_success = FuncDestinationConfig(destination="HTTP", param=json.dumps({"url": hook + "/done"}))
    client.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
        function_urn=created.func_urn, body=UpdateFunctionAsyncInvokeConfigRequestBody(
            max_async_event_age_in_seconds=3600, max_async_retry_attempts=0,
            destination_config=FuncAsyncDestinationConfig(on_success=on_success))))
    status, headers, body = post(base + "/invocations-async", headers={"traceparent": TRACEPARENT, "tracestate": "k=v"})
    assert status == 202 and headers["X-Cff-Trace-Id"] == TRACE_ID
    request_id = json.loads(body)["request_id"]
    wait_for(lambda: [i for i in listed(client, created.func_urn, request_id) if i.status == "SUCCESS"], "it runs")
    with urllib.request.urlopen(f"{base}/async-invocations?request_id={request_id}", timeout=10) as r:
        [done] = json.loads(r.read())["invocations"]
    assert done["trace_id"] == TRACE_ID and done["attempts"] == 1
    [(_, hook_headers, record)] = wait_for(lambda: Hook.received, "the destination")
    assert json.loads(record["response"]["body"]) == {"request_id": request_id, "trace_id": TRACE_ID}
    assert hook_headers["traceparent"].split("-")[1] == TRACE_ID and hook_headers["tracestate"] == "k=v"
    # APIG (open server: every function under /apig/{function}).
    _, headers, body = post(f"{open_server.url}/apig/ids/x", headers={"traceparent": TRACEPARENT})
    assert headers["X-Cff-Trace-Id"] == TRACE_ID
    assert json.loads(body)["trace_id"] == TRACE_ID


class Collector(http.server.BaseHTTPRequestHandler):
    """A small OTLP/HTTP receiver: keeps every span it is sent."""
    spans = []

    def do_POST(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.path == "/v1/traces", self.path
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                Collector.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_spans_with_the_callers_trace_id_reach_an_otlp_receiver(tmp_path):
    Collector.spans = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    server = Server(tmp_path, keys=False, extra_args=["--otlp-endpoint", endpoint]).start()
    try:
        client = client_for(server)
        created = create(client, name="ids", library="libecho.so", module="echo", handler="Ids")
        base = f"{server.url}/v2/proj1/fgs/functions/{created.func_urn}"
        _, headers, _ = post(base + "/invocations", headers={"traceparent": TRACEPARENT})
        server_span = headers["traceresponse"].split("-")[2]
        trace = bytes.fromhex(TRACE_ID)
        ours = wait_for(lambda: [s for s in Collector.spans if s.trace_id == trace and s.name == "fnhost.invoke"],
                        "the request's span")
        [invoke_span] = ours
        assert invoke_span.parent_span_id.hex() == "00f067aa0ba902b7", "the caller's span is its parent"
        assert invoke_span.span_id.hex() == server_span, "the span traceresponse named"
        attributes = {a.key: a.value.string_value for a in invoke_span.attributes}
        assert attributes["faas.name"] == "ids" and attributes["faas.trigger"] == "http"
        handler = wait_for(lambda: [s for s in Collector.spans if s.trace_id == trace and s.name == "fnhost.handler"],
                           "the handler's span")
        assert handler[0].parent_span_id == invoke_span.span_id
        # An asynchronous invocation: its queueing is a span of its own.
        other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        post(base + "/invocations-async", headers={"traceparent": other})
        names = wait_for(lambda: {s.name for s in Collector.spans if s.trace_id.hex() == other.split("-")[1]} >= {
            "fnhost.invoke", "fnhost.queue", "fnhost.handler"} or None, "the async spans")
        assert names
        # Calls that waited for an instance to start: an initializer span.
        slow = create(client, name="slow", library="libmisbehaving.so", module="misbehaving", handler="Sleep")
        slow_base = f"{server.url}/v2/proj1/fgs/functions/{slow.func_urn}"
        traces = [f"{i + 1:032x}" for i in range(3)]
        calls = [threading.Thread(target=post, args=(slow_base + "/invocations", b"300"),
                                  kwargs={"headers": {"traceparent": f"00-{t}-00f067aa0ba902b7-01"}}) for t in traces]
        for c in calls:
            c.start()
        for c in calls:
            c.join()
        cold = wait_for(lambda: [s for s in Collector.spans if s.name == "fnhost.initializer"
                                 and s.trace_id.hex() in traces], "an initializer span")
        parents = {s.span_id for s in Collector.spans if s.name == "fnhost.invoke" and s.trace_id == cold[0].trace_id}
        assert cold[0].parent_span_id in parents
        [invoke_of_cold] = [s for s in Collector.spans if s.span_id == cold[0].parent_span_id]
        flags = {a.key: a.value.bool_value for a in invoke_of_cold.attributes if a.key == "faas.coldstart"}
        assert flags == {"faas.coldstart": True}
    finally:
        server.stop(signal.SIGKILL)
        httpd.shutdown()


def test_head_sampling_exports_the_ratios_new_traces_and_what_callers_sampled(tmp_path):
    Collector.spans = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    server = Server(tmp_path, keys=False,
                    extra_args=["--otlp-endpoint", endpoint, "--otlp-sample-ratio", "0"]).start()
    try:
        client = client_for(server)
        created = create(client, name="ids", library="libecho.so", module="echo", handler="Ids")
        base = f"{server.url}/v2/proj1/fgs/functions/{created.func_urn}"
        # A trace the server starts is sampled at the ratio: at 0, never...
        _, started, _ = post(base + "/invocations")
        assert started["traceresponse"].endswith("-00"), started["traceresponse"]
        unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        _, refused, _ = post(base + "/invocations", headers={"traceparent": unsampled})
        assert refused["traceresponse"].endswith("-00")
        # ...while a caller's sampled traceparent is followed (parent-based).
        post(base + "/invocations", headers={"traceparent": TRACEPARENT})
        wait_for(lambda: [s for s in Collector.spans if s.trace_id.hex() == TRACE_ID], "the caller's spans")
        time.sleep(1.2)  # Two export periods: the others would have come by now.
        traces = {s.trace_id.hex() for s in Collector.spans}
        assert traces == {TRACE_ID}, traces
    finally:
        server.stop(signal.SIGKILL)
        httpd.shutdown()
    # A ratio outside 0 to 1 is refused before the server starts.
    bad = subprocess.run([str(TARGET / "fnhost"), "serve", "--otlp-sample-ratio", "1.5"], capture_output=True, text=True)
    assert bad.returncode != 0 and "ratio" in bad.stderr, bad.stderr


def test_an_invocation_of_a_deleted_function_never_runs_on_a_new_one_of_its_name(tmp_path):
    """An outside attack had an asynchronous invocation that was running
    when its function was deleted retried on a function created since under
    the same name, in another project (and the same after a crash, and for
    invocations accepted while the delete ran). One accepted before its
    function was created is not that function's: it ends FAIL (404)."""
    from test_front_door import call, create_body
    server = Server(tmp_path, config={"asynchronous": {"retry_base_ms": 100}}).start()
    try:
        base = "/v2/proj1/fgs/functions"
        status, _, answer = call(server, "POST", base, create_body(
            "gone", handler="misbehaving.Sleep", library="libmisbehaving.so", module="misbehaving", timeout=1))
        assert status == 200, answer
        status, _, answer = call(server, "PUT", f"{base}/gone/async-invoke-config",
                                 {"max_async_retry_attempts": 2, "max_async_event_age_in_seconds": 3600})
        assert status == 200, answer
        # Its first attempt sleeps past the 1 s timeout: it is running when
        # the function is deleted, and due again 100 ms after it fails.
        status, _, answer = call(server, "POST", f"{base}/gone/invocations-async", b"3000")
        assert status == 202, answer
        request_id = json.loads(answer)["request_id"]
        wait_for(lambda: db_status(tmp_path, request_id)[0] == "RUNNING", "the first attempt")
        status, _, answer = call(server, "DELETE", f"{base}/gone")
        assert status == 204, answer
        status, _, answer = call(server, "POST", "/v2/proj2/fgs/functions", create_body(
            "gone", handler="echo.Handler", library="libecho.so", module="echo"))
        assert status == 200, answer
        ended = wait_for(lambda: db_status(tmp_path, request_id)[0] in ("SUCCESS", "FAIL") and
                         db_status(tmp_path, request_id), "the invocation's end")
        assert ended[0] == "FAIL" and "deleted after this invocation was accepted" in ended[1], ended
        # The new function serves its own invocations.
        status, _, answer = call(server, "POST", "/v2/proj2/fgs/functions/gone/invocations-async", b"new")
        assert status == 202, answer
        new_id = json.loads(answer)["request_id"]
        wait_for(lambda: db_status(tmp_path, new_id)[0] == "SUCCESS", "the new function's own invocation")
    finally:
        server.stop(signal.SIGKILL)


def db_status(tmp_path, request_id):
    db = sqlite3.connect(tmp_path / "data" / "state.db")
    try:
        row = db.execute("SELECT status, error_message FROM async_invocations WHERE request_id = ?",
                         (request_id,)).fetchone()
        return row or ("", "")
    finally:
        db.close()
