"""fnhost serve driven by the official FunctionGraph Python SDK, unchanged."""
import json
import signal

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkfunctiongraph.v2 import (
    CreateFunctionRequest, CreateFunctionRequestBody, CreateVersionAliasRequest,
    CreateVersionAliasRequestBody, CreateFunctionVersionRequest, CreateFunctionVersionRequestBody,
    DeleteFunctionRequest, FuncCode, InvokeFunctionRequest, ListFunctionsRequest,
    ListFunctionVersionsRequest, ListVersionAliasesRequest, ShowFunctionConfigRequest,
    UpdateFunctionCodeRequest, UpdateFunctionCodeRequestBody, UpdateFunctionConfigRequest,
    UpdateFunctionConfigRequestBody, AsyncInvokeFunctionRequest, ListAsyncInvocationsRequest,
)

from conftest import client_for, eventually, zip_b64, zip_entries_b64


def create(client, name="tp", library="libtestplugin.so", module="testplugin", patch_tag=None,
           user_data=None, code=None, handler="Handler"):
    body = CreateFunctionRequestBody(
        func_name=name, package="default", runtime="Rust1.x", handler=f"{module}.{handler}",
        memory_size=256, timeout=5, code_type="zip",
        func_code=FuncCode(file=code or zip_b64(library, module, patch_tag)),
        user_data=json.dumps(user_data or {"NAME": "sdk"}))
    return client.create_function(CreateFunctionRequest(body=body))


def invoke(client, urn, payload=None, version="v1"):
    return client.invoke_function(InvokeFunctionRequest(
        function_urn=urn, x_cff_log_type="tail", x_cff_request_version=version,
        body=payload if payload is not None else {"key": "NAME"}))


def test_create_invoke_and_read_back_a_function(client):
    created = create(client)
    assert created.func_name == "tp"
    assert created.runtime == "Rust1.x"
    assert created.memory_size == 256
    assert len(created.digest) == 64
    urn = created.func_urn
    assert urn == "urn:fss:local:proj1:function:default:tp:latest"

    result = invoke(client, urn)
    assert result.status == 200
    value = json.loads(result.result)
    assert value["user_data"] == "sdk"
    assert value["function_name"] == "tp"
    assert value["memory_size_mb"] == 256
    assert value["request_id"] == result.request_id
    lines = result.log.strip().splitlines()
    assert lines[0].split(" ")[1] == result.request_id
    assert lines[0].endswith("testplugin handling 15 bytes")

    listed = client.list_functions(ListFunctionsRequest())
    assert [f.func_name for f in listed.functions] == ["tp"]
    config = client.show_function_config(ShowFunctionConfigRequest(function_urn="urn:fss:local:proj1:function:default:tp"))
    assert config.handler == "testplugin.Handler"


def test_function_errors_are_results_and_unknown_functions_are_404(client):
    created = create(client, name="bad", library="libmisbehaving.so", module="misbehaving", handler="Error")
    result = invoke(client, created.func_urn, {})
    assert json.loads(result.result)["errorType"] == "FunctionReturnError"
    client.update_function_config(UpdateFunctionConfigRequest(
        function_urn=created.func_urn,
        body=UpdateFunctionConfigRequestBody(func_name="bad", runtime="Rust1.x", handler="misbehaving.Panic",
                                             memory_size=256, timeout=5)))
    result = invoke(client, created.func_urn, {})
    assert result.status == 200
    assert json.loads(result.result) == {"errorMessage": "misbehaving handler panicked on purpose", "errorType": "panic"}

    with pytest.raises(ClientRequestException) as e:
        invoke(client, "urn:fss:local:proj1:function:default:nothing:latest")
    assert e.value.status_code == 404
    assert e.value.error_code == "FSS.1051"


def test_update_code_swaps_versions_and_weighted_alias(client):
    created = create(client, name="swap", library="libhotswap.so", module="hotswap", patch_tag=b"A")
    urn = created.func_urn
    assert invoke(client, urn, "").result.startswith("build A")
    client.create_function_version(CreateFunctionVersionRequest(
        function_urn=urn, body=CreateFunctionVersionRequestBody(version="v1", description="first")))

    updated = client.update_function_code(UpdateFunctionCodeRequest(
        function_urn=urn, body=UpdateFunctionCodeRequestBody(
            code_type="zip", func_code=FuncCode(file=zip_b64("libhotswap.so", "hotswap", b"B")))))
    assert updated.digest != created.digest
    assert invoke(client, urn, "").result.startswith("build B")
    client.create_function_version(CreateFunctionVersionRequest(
        function_urn=urn, body=CreateFunctionVersionRequestBody(version="v2")))

    base = "urn:fss:local:proj1:function:default:swap"
    assert invoke(client, base + ":v1", "").result.startswith("build A")
    assert invoke(client, base + ":v2", "").result.startswith("build B")
    versions = client.list_function_versions(ListFunctionVersionsRequest(function_urn=base))
    assert [v.version for v in versions.versions] == ["latest", "v1", "v2"]

    client.create_version_alias(CreateVersionAliasRequest(
        function_urn=base, body=CreateVersionAliasRequestBody(
            name="canary", version="v1", additional_version_weights={"v2": 50})))
    answers = {invoke(client, base + ":canary", "").result[:7] for _ in range(60)}
    assert answers == {"build A", "build B"}
    aliases = client.list_version_aliases(ListVersionAliasesRequest(function_urn=base))
    assert [a.name for a in aliases.body] == ["canary"]


def test_async_invocation_runs_and_is_listed(client):
    created = create(client, name="later")
    accepted = client.async_invoke_function(AsyncInvokeFunctionRequest(function_urn=created.func_urn, body={}))
    assert accepted.request_id
    import time
    deadline = time.time() + 10
    while True:
        listed = client.list_async_invocations(ListAsyncInvocationsRequest(
            function_urn=created.func_urn, request_id=accepted.request_id))
        if listed.invocations and listed.invocations[0].status == "SUCCESS":
            break
        assert time.time() < deadline, listed
        time.sleep(0.05)


def test_bad_packages_are_refused_without_changing_anything(client):
    created = create(client, name="keep")
    bad = {
        "not a zip": "bm90IGEgemlw",
        "path traversal": zip_entries_b64({"../escape.so": b"x", "testplugin.so": b"x"}),
        "not a library": zip_entries_b64({"testplugin.so": b"this is text"}),
    }
    for what, code in bad.items():
        with pytest.raises(ClientRequestException) as e:
            client.update_function_code(UpdateFunctionCodeRequest(
                function_urn=created.func_urn,
                body=UpdateFunctionCodeRequestBody(code_type="zip", func_code=FuncCode(file=code))))
        assert e.value.status_code == 400, what
    assert json.loads(invoke(client, created.func_urn).result)["user_data"] == "sdk"


def test_wrong_credentials_are_refused(server):
    with pytest.raises(ClientRequestException) as e:
        client_for(server, sk="wrong-secret").list_functions(ListFunctionsRequest())
    assert e.value.status_code == 401
    with pytest.raises(ClientRequestException) as e:
        client_for(server, ak="unknown").list_functions(ListFunctionsRequest())
    assert e.value.status_code == 401


def test_invocations_are_refused_without_a_valid_signature(client, server):
    import urllib.error
    import urllib.request
    created = create(client, name="guarded")
    with pytest.raises(ClientRequestException) as e:
        invoke(client_for(server, sk="wrong-secret"), created.func_urn)
    assert e.value.status_code == 401
    request = urllib.request.Request(
        f"{server.url}/v2/proj1/fgs/functions/{created.func_urn}/invocations", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request)
    assert e.value.code == 401
    assert json.loads(e.value.read())["error_code"] == "APIGW.0301"
    assert json.loads(invoke(client, created.func_urn).result)["user_data"] == "sdk"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_state_survives_a_restart(server, how):
    client = client_for(server)
    created = create(client, name="durable", library="libhotswap.so", module="hotswap", patch_tag=b"A")
    client.create_function_version(CreateFunctionVersionRequest(
        function_urn=created.func_urn, body=CreateFunctionVersionRequestBody(version="v1")))
    client.update_function_code(UpdateFunctionCodeRequest(
        function_urn=created.func_urn, body=UpdateFunctionCodeRequestBody(
            code_type="zip", func_code=FuncCode(file=zip_b64("libhotswap.so", "hotswap", b"B")))))
    client.create_version_alias(CreateVersionAliasRequest(
        function_urn=created.func_urn, body=CreateVersionAliasRequestBody(name="stable", version="v1")))
    server.stop(how)
    server.start()
    client = client_for(server)
    base = "urn:fss:local:proj1:function:default:durable"
    assert invoke(client, base, "").result.startswith("build B")
    assert invoke(client, base + ":v1", "").result.startswith("build A")
    assert invoke(client, base + ":stable", "").result.startswith("build A")
    client.delete_function(DeleteFunctionRequest(function_urn=base))
    with pytest.raises(ClientRequestException):
        invoke(client, base)


def test_timer_trigger_fires_every_second_until_disabled(client):
    from huaweicloudsdkfunctiongraph.v2 import (
        CreateFunctionTriggerRequest, CreateFunctionTriggerRequestBody, TriggerEventDataRequestBody,
        UpdateTriggerRequest, UpdateTriggerRequestBody, ListFunctionTriggersRequest)
    import time
    created = create(client, name="tick", handler="TimerTest")
    trigger = client.create_function_trigger(CreateFunctionTriggerRequest(
        function_urn=created.func_urn, body=CreateFunctionTriggerRequestBody(
            trigger_type_code="TIMER", trigger_status="ACTIVE",
            event_data=TriggerEventDataRequestBody(name="every-second", schedule_type="Rate",
                                                   schedule="1s", user_event="hello"))))
    assert trigger.trigger_id

    def fired():
        listed = client.list_async_invocations(ListAsyncInvocationsRequest(function_urn=created.func_urn))
        return [i for i in listed.invocations if i.status == "SUCCESS"]

    def all_ended():
        listed = client.list_async_invocations(ListAsyncInvocationsRequest(function_urn=created.func_urn))
        return all(i.status not in ("WAIT", "RUNNING") for i in listed.invocations)

    assert eventually(lambda: len(fired()) >= 2, timeout=10, interval=0.2), "the 1 s timer did not fire twice in 10 s"
    triggers = client.list_function_triggers(ListFunctionTriggersRequest(function_urn=created.func_urn))
    assert [t.trigger_type_code for t in triggers.body] == ["TIMER"]

    client.update_trigger(UpdateTriggerRequest(
        function_urn=created.func_urn, trigger_type_code="TIMER", trigger_id=trigger.trigger_id,
        body=UpdateTriggerRequestBody(trigger_status="DISABLED")))
    assert eventually(all_ended), "a tick fired before the timer was disabled did not end"
    before = len(fired())
    time.sleep(2.5)  # Fixed wait: more than two periods in which a disabled timer must not fire.
    assert len(fired()) == before, "a disabled timer kept firing"


def test_apig_gateway_serves_plain_http_with_text_and_binary_bodies(tmp_path):
    import base64
    import urllib.error
    import urllib.request
    from conftest import Server
    # With access keys, /apig/{function} serves functions only when the
    # configuration turns it on.
    (tmp_path / "closed").mkdir()
    closed = Server(tmp_path / "closed").start()
    try:
        create(client_for(closed), name="web", handler="ApigTest")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(closed.url + "/apig/web/items/7")
        assert e.value.code == 404
    finally:
        closed.stop(signal.SIGKILL)
    (tmp_path / "open").mkdir()
    server = Server(tmp_path / "open", config={"apig_any_function": True}).start()
    client = client_for(server)
    create(client, name="web", handler="ApigTest")
    req = urllib.request.Request(server.url + "/apig/web/items/7?verbose=1", data=b"hello", method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req) as r:
        assert r.status == 200
        assert r.headers["content-type"] == "application/json"
        event = json.loads(r.read())
    assert event["httpMethod"] == "POST"
    assert event["path"] == "/items/7"
    assert event["body"] == "hello" and event["isBase64Encoded"] is False
    assert event["queryStringParameters"] == {"verbose": "1"}
    assert event["requestContext"]["sourceIp"] == "127.0.0.1"

    blob = bytes(range(256))
    req = urllib.request.Request(server.url + "/apig/web/upload", data=blob, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req) as r:
        event = json.loads(r.read())
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == blob

    with urllib.request.urlopen(server.url + "/apig/web") as r:
        assert json.loads(r.read())["httpMethod"] == "GET"
    server.stop(signal.SIGKILL)


def test_behind_apig_a_plain_handlers_result_keeps_its_content_type(tmp_path):
    """A handler that answers JSON (not an APIG response) behind APIG is
    served as application/json, a text one as text (both were
    application/octet-stream)."""
    import urllib.request
    from conftest import Server
    server = Server(tmp_path, config={"apig_any_function": True}).start()
    try:
        client = client_for(server)
        create(client, name="plain", handler="Handler")
        create(client, name="text", library="libecho.so", module="echo", handler="Ids")
        with urllib.request.urlopen(urllib.request.Request(server.url + "/apig/plain", data=b"{}")) as r:
            assert r.headers["content-type"] == "application/json", r.headers
            json.loads(r.read())
        with urllib.request.urlopen(server.url + "/apig/text") as r:
            assert r.headers["content-type"].startswith("text/plain"), r.headers
    finally:
        server.stop(signal.SIGKILL)


def test_an_apig_trigger_serves_its_own_path(server, client):
    import urllib.error
    import urllib.request
    from huaweicloudsdkfunctiongraph.v2 import (
        CreateFunctionTriggerRequest, CreateFunctionTriggerRequestBody, DeleteFunctionTriggerRequest,
        TriggerEventDataRequestBody, UpdateTriggerRequest, UpdateTriggerRequestBody)
    created = create(client, name="shop", handler="ApigTest")
    trigger = client.create_function_trigger(CreateFunctionTriggerRequest(
        function_urn=created.func_urn, body=CreateFunctionTriggerRequestBody(
            trigger_type_code="APIG", trigger_status="ACTIVE",
            event_data=TriggerEventDataRequestBody(path="/shop/orders", req_method="ANY", protocol="HTTP"))))
    req = urllib.request.Request(server.url + "/shop/orders/42?expand=1", data=b"{}", method="POST")
    with urllib.request.urlopen(req) as r:
        event = json.loads(r.read())
    assert event["path"] == "/shop/orders/42"
    assert event["queryStringParameters"] == {"expand": "1"}
    with urllib.request.urlopen(server.url + "/shop/orders") as r:
        assert json.loads(r.read())["httpMethod"] == "GET"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + "/shop/other")
    assert e.value.code == 404

    def status(path="/shop/orders"):
        try:
            with urllib.request.urlopen(server.url + path) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def set_status(value):
        client.update_trigger(UpdateTriggerRequest(
            function_urn=created.func_urn, trigger_type_code="APIG", trigger_id=trigger.trigger_id,
            body=UpdateTriggerRequestBody(trigger_status=value)))

    # Disabling and enabling take effect at once; the routes survive a restart.
    set_status("DISABLED")
    assert status() == 404
    set_status("ACTIVE")
    assert status() == 200
    server.stop()
    server.start()
    client = client_for(server)
    assert status() == 200
    client.delete_function_trigger(DeleteFunctionTriggerRequest(
        function_urn=created.func_urn, trigger_type_code="APIG", trigger_id=trigger.trigger_id))
    assert status() == 404
    # Deleting the function takes its routes with it.
    client.create_function_trigger(CreateFunctionTriggerRequest(
        function_urn=created.func_urn, body=CreateFunctionTriggerRequestBody(
            trigger_type_code="APIG", trigger_status="ACTIVE",
            event_data=TriggerEventDataRequestBody(path="/shop/orders", req_method="ANY", protocol="HTTP"))))
    assert status() == 200
    client.delete_function(DeleteFunctionRequest(function_urn=created.func_urn))
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(server.url + "/shop/orders")
    assert json.loads(e.value.read())["error_code"] == "FSS.0404", "no route is left"


def test_a_waiting_async_invocation_can_be_cancelled(client):
    import time
    from huaweicloudsdkfunctiongraph.v2 import CancelAsyncInvocationRequest, CancelAsyncInvocationRequestBody
    created = create(client, name="slowpoke", library="libmisbehaving.so", module="misbehaving", handler="Sleep")
    # Four queue workers: the fifth invocation waits.
    ids = [client.async_invoke_function(AsyncInvokeFunctionRequest(function_urn=created.func_urn, body="1500")).request_id
           for _ in range(5)]

    def status(rid):
        listed = client.list_async_invocations(ListAsyncInvocationsRequest(function_urn=created.func_urn, request_id=rid))
        return listed.invocations[0].status

    assert eventually(lambda: status(ids[0]) == "RUNNING", timeout=5, interval=0.05)
    assert status(ids[4]) == "WAIT"
    client.cancel_async_invocation(CancelAsyncInvocationRequest(
        function_urn=created.func_urn, body=CancelAsyncInvocationRequestBody(request_id=ids[4])))
    assert status(ids[4]) == "DISCARD"
    with pytest.raises(ClientRequestException) as e:
        client.cancel_async_invocation(CancelAsyncInvocationRequest(
            function_urn=created.func_urn, body=CancelAsyncInvocationRequestBody(request_id=ids[0])))
    assert e.value.status_code == 409
    assert eventually(lambda: all(status(rid) == "SUCCESS" for rid in ids[:4])), "the four running ones did not end"
    # Fixed wait: a worker is free now; it must not take the cancelled one.
    time.sleep(0.5)
    assert status(ids[4]) == "DISCARD", "a cancelled invocation never runs"
    assert status(ids[0]) == "SUCCESS"


def test_kill_9_in_the_middle_of_an_update_leaves_old_or_new_code_never_a_torn_package(server):
    import base64
    import io
    import os
    import threading
    import time
    import zipfile
    from conftest import TARGET
    client = client_for(server)
    created = create(client, name="atomic", library="libhotswap.so", module="hotswap", patch_tag=b"A")
    base = "urn:fss:local:proj1:function:default:atomic"
    lib = bytearray((TARGET / "libhotswap.so").read_bytes())
    at = lib.index(b"fnhost-build-tag:") + len(b"fnhost-build-tag:")
    seen = []
    # Kill at several points of the update; the last waits for it to finish.
    for attempt, delay in enumerate([0.05, 0.3, 0.8, 1.2, 1.6, 2.0, 3.0, None]):
        # A large package (the library plus 40 MB of incompressible data)
        # takes long enough to upload, store and extract to be interrupted.
        lib[at] = ord("B")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
            z.writestr("hotswap.so", bytes(lib))
            z.writestr("data/blob.bin", os.urandom(40 * 1024 * 1024))
        code = base64.b64encode(buf.getvalue()).decode()

        def update():
            try:
                client.update_function_code(UpdateFunctionCodeRequest(
                    function_urn=created.func_urn,
                    body=UpdateFunctionCodeRequestBody(code_type="zip", func_code=FuncCode(file=code))))
            except Exception:
                pass  # the server was killed under it

        t = threading.Thread(target=update)
        t.start()
        if delay is None:
            t.join()
        else:
            time.sleep(delay)  # Fixed wait: the kill lands at several points of the update.
        server.stop(signal.SIGKILL)
        t.join()
        server.start()
        client = client_for(server)
        answer = invoke(client, base, "").result
        seen.append(answer[:7])
        assert answer.startswith("build A") or answer.startswith("build B"), (attempt, answer)
        code_dir = server.tmp / "data" / "code"
        leftovers = [p.name for p in code_dir.iterdir() if p.name.startswith(".tmp-")]
        assert leftovers == [], leftovers
        for package in code_dir.iterdir():
            assert package.is_dir(), f"stray file {package.name}"
            assert (package / "root" / "hotswap.so").is_file(), f"torn package {package.name}"
            assert (package / "package.zip").is_file(), f"package {package.name} without its zip"
        if answer.startswith("build B"):
            break
    # Killed early the update never happened; given time it did: both are whole.
    assert seen[0] == "build A" and seen[-1] == "build B", seen


def test_a_cron_timer_fires_with_the_timer_event_and_stops_when_deleted(client):
    from huaweicloudsdkfunctiongraph.v2 import (
        CreateFunctionTriggerRequest, CreateFunctionTriggerRequestBody, TriggerEventDataRequestBody,
        DeleteFunctionTriggerRequest)
    import time
    created = create(client, name="cronned", handler="TimerTest")
    trigger = client.create_function_trigger(CreateFunctionTriggerRequest(
        function_urn=created.func_urn, body=CreateFunctionTriggerRequestBody(
            trigger_type_code="TIMER", trigger_status="ACTIVE",
            event_data=TriggerEventDataRequestBody(name="each-second", schedule_type="Cron",
                                                   schedule="* * * * * ?", user_event="from cron"))))

    def succeeded():
        listed = client.list_async_invocations(ListAsyncInvocationsRequest(function_urn=created.func_urn))
        return [i for i in listed.invocations if i.status == "SUCCESS"]

    def all_ended():
        listed = client.list_async_invocations(ListAsyncInvocationsRequest(function_urn=created.func_urn))
        return all(i.status not in ("WAIT", "RUNNING") for i in listed.invocations)

    assert eventually(succeeded, timeout=10, interval=0.2), "the cron timer did not fire"
    client.delete_function_trigger(DeleteFunctionTriggerRequest(
        function_urn=created.func_urn, trigger_type_code="TIMER", trigger_id=trigger.trigger_id))
    assert eventually(all_ended), "a tick fired before the timer was deleted did not end"
    before = len(succeeded())
    time.sleep(2.2)  # Fixed wait: more than two seconds in which a deleted timer must not fire.
    assert len(succeeded()) == before, "a deleted timer kept firing"


def test_answer_times_parse_in_the_official_sdk_without_warnings(client):
    """Times were answered as `2026-12-06T13:03:30+00:00`; the SDK appends
    `Z` to what it parses and warned (TypeConversionWarning) on every
    listing. They are UTC with `Z` now."""
    import warnings
    from huaweicloudsdkfunctiongraph.v2 import ListFunctionsRequest, ShowFunctionConfigRequest
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        created = create(client, name="timed")
        client.list_functions(ListFunctionsRequest())
        shown = client.show_function_config(ShowFunctionConfigRequest(function_urn=created.func_urn))
    datetime_warnings = [str(w.message) for w in caught if "datetime" in str(w.message)]
    assert not datetime_warnings, datetime_warnings
    assert str(shown.last_modified).endswith(("Z", "+00:00")) or hasattr(shown.last_modified, "tzinfo")
