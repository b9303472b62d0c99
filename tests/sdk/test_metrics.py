"""/metrics read by a real Prometheus text-format parser: every family typed,
named and labelled as Prometheus conventions ask, and the operator's numbers
(cold starts, async backlog and age, retries, discards, deliveries) right."""
import json
import signal
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from huaweicloudsdkfunctiongraph.v2 import (
    AsyncInvokeFunctionRequest, CancelAsyncInvocationRequest, CancelAsyncInvocationRequestBody,
    FuncAsyncDestinationConfig, FuncDestinationConfig, InvokeFunctionRequest, UpdateFunctionAsyncInvokeConfigRequest,
    UpdateFunctionAsyncInvokeConfigRequestBody,
)

from conftest import Server, client_for, eventually
from test_async import listed, post, wait_for
from test_sdk import create, invoke

UNITS = ("_seconds", "_bytes", "_total", "_info")


def scrape(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def value(families, name, **labels):
    """The sum of the samples named `name` with `labels` (a sample of a
    histogram or counter family carries its suffix: `_count`, `_total`)."""
    samples = [s for f in families.values() for s in f.samples if s.name == name]
    assert samples, f"no sample {name}"
    return sum(s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_parse_as_prometheus_text_and_count_what_an_operator_needs(tmp_path):
    server = Server(tmp_path, config={"asynchronous": {"retry_base_ms": 50, "workers": 1}}).start()
    try:
        client = client_for(server)
        echo = create(client, name="echo", library="libecho.so", module="echo", handler="Handler")
        slow = create(client, name="slow", library="libmisbehaving.so", module="misbehaving", handler="Sleep")
        failing = create(client, name="failing", library="libmisbehaving.so", module="misbehaving", handler="Error")
        sink = FuncDestinationConfig(destination="FunctionGraph", param=json.dumps({"func_urn": echo.func_urn}))
        client.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
            function_urn=failing.func_urn, body=UpdateFunctionAsyncInvokeConfigRequestBody(
                max_async_event_age_in_seconds=3600, max_async_retry_attempts=1,
                destination_config=FuncAsyncDestinationConfig(on_failure=sink))))
        # Three calls at once: two wait for an instance to start (cold).
        import threading
        calls = [threading.Thread(target=client.invoke_function, args=(
            InvokeFunctionRequest(function_urn=slow.func_urn, body="300"),)) for _ in range(3)]
        for c in calls:
            c.start()
        for c in calls:
            c.join()
        client.async_invoke_function(AsyncInvokeFunctionRequest(function_urn=failing.func_urn, body={}))
        wait_for(lambda: [i for i in listed(client, failing.func_urn) if i.status == "FAIL"], "the failure")
        wait_for(lambda: [i for i in listed(client, echo.func_urn) if i.status == "SUCCESS"], "the delivery")
        # One worker, busy for 1.5 s: two more wait; one is cancelled.
        client.async_invoke_function(AsyncInvokeFunctionRequest(function_urn=slow.func_urn, body="1500"))
        wait_for(lambda: [i for i in listed(client, slow.func_urn) if i.status == "RUNNING"], "the slow one")
        waiting = [client.async_invoke_function(AsyncInvokeFunctionRequest(
            function_urn=slow.func_urn, body="1")).request_id for _ in range(2)]
        client.cancel_async_invocation(CancelAsyncInvocationRequest(
            function_urn=slow.func_urn, body=CancelAsyncInvocationRequestBody(request_id=waiting[0])))

        def settled():
            families = scrape(server)[0]
            return (value(families, "fnhost_async_discards_total", reason="cancelled") == 1
                    and value(families, "fnhost_async_invocations_waiting", function="slow") == 1
                    and value(families, "fnhost_async_oldest_waiting_age_seconds", function="slow") > 0)
        eventually(settled)
        families, text = scrape(server)
        # Every family is typed (no `unknown`), named by convention.
        for name, family in families.items():
            assert name.startswith("fnhost_"), name
            assert family.type in ("counter", "gauge", "histogram"), (name, family.type)
            assert family.documentation, name
            if family.type == "counter":
                assert f"\n{name}_total" in text or text.startswith(f"{name}_total"), name
            if family.type == "histogram":
                assert name.endswith("_seconds"), name
        # Cold starts: the first call of a function waited for its instance.
        assert value(families, "fnhost_cold_start_duration_seconds_count", function="slow") >= 2
        assert value(families, "fnhost_cold_start_duration_seconds_sum", function="slow") > 0
        assert value(families, "fnhost_cold_start_duration_seconds_count", function="echo") == 0, "echo never waited"
        # The backlog per function, and its age.
        assert value(families, "fnhost_async_invocations_waiting", function="slow") == 1
        age = value(families, "fnhost_async_oldest_waiting_age_seconds", function="slow")
        assert 0 < age < 10, age
        assert value(families, "fnhost_async_retries_total") == 1
        assert value(families, "fnhost_async_discards_total", reason="cancelled") == 1
        assert value(families, "fnhost_async_discards_total", reason="max_age") == 0
        assert value(families, "fnhost_async_destination_deliveries_total", kind="FunctionGraph", result="delivered") == 1
        assert value(families, "fnhost_async_accepted_total") == 5, "4 from the API, 1 from the destination"
        assert value(families, "fnhost_invocations_total", function="failing", outcome="error") == 2
        assert value(families, "fnhost_invocations_total", function="slow", outcome="success") == 3, "the async one still runs"
        assert "fnhost_runaway_invocations" in families and "fnhost_timeouts_total" in text
    finally:
        server.stop(signal.SIGKILL)


def test_a_runaway_handler_shows_as_a_lost_slot_of_its_function(tmp_path):
    from huaweicloudsdkfunctiongraph.v2 import CreateFunctionRequest, CreateFunctionRequestBody, FuncCode
    from conftest import zip_b64
    server = Server(tmp_path).start()
    try:
        client = client_for(server)
        created = client.create_function(CreateFunctionRequest(body=CreateFunctionRequestBody(
            func_name="overrun", package="default", runtime="Rust1.x", handler="misbehaving.Sleep",
            memory_size=128, timeout=1, code_type="zip",
            func_code=FuncCode(file=zip_b64("libmisbehaving.so", "misbehaving")))))
        # Answered `timeout` after 1 s; the handler sleeps 2 s more, holding its slot.
        answer = invoke(client, created.func_urn, "3000")
        assert json.loads(answer.result)["errorType"] == "timeout", answer
        families, _ = scrape(server)
        assert value(families, "fnhost_function_runaway_invocations", function="overrun", version="latest") == 1
        assert value(families, "fnhost_function_instance_slots_busy", function="overrun", version="latest") == 1
        assert value(families, "fnhost_runaway_invocations") == 1
        # When the handler returns, the slot comes back.
        wait_for(lambda: value(scrape(server)[0], "fnhost_function_runaway_invocations", function="overrun") == 0,
                 "the runaway to end", timeout=10)
        assert value(scrape(server)[0], "fnhost_function_instance_slots_busy", function="overrun") == 0
    finally:
        server.stop(signal.SIGKILL)
