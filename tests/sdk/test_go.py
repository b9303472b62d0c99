"""Go handlers (FunctionGraph's Go runtime SDK, huaweicloud.com/go-runtime)
served by `fnhost serve` and driven by the official SDK, unchanged.

The Go plugins are built by scripts/go-plugins.sh into target/go-plugins
(scripts/test.sh runs it before pytest).
"""
import base64
import io
import json
import subprocess
import threading
import zipfile

from huaweicloudsdkfunctiongraph.v2 import (
    CreateFunctionRequest, CreateFunctionRequestBody, FuncCode, InvokeFunctionRequest,
    ShowFunctionConfigRequest, UpdateFunctionCodeRequest, UpdateFunctionCodeRequestBody,
)

from conftest import ROOT, TARGET, client_for

GO = ROOT / "target" / "go-plugins"


def go_zip(path, name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}.so", (GO / path).read_bytes())
    return base64.b64encode(buf.getvalue()).decode()


def create(client, name, path, module, handler="Handler"):
    body = CreateFunctionRequestBody(
        func_name=name, package="default", runtime="Go1.x", handler=f"{module}.{handler}",
        memory_size=128, timeout=5, code_type="zip", func_code=FuncCode(file=go_zip(path, module)),
        user_data=json.dumps({"GREETING": "hi"}))
    return client.create_function(CreateFunctionRequest(body=body))


def invoke(client, urn, body):
    return client.invoke_function(InvokeFunctionRequest(
        function_urn=urn, x_cff_log_type="tail", x_cff_request_version="v1", body=body))


def sample(kind):
    out = subprocess.run([str(TARGET / "fnhost"), "event", kind], check=True, capture_output=True)
    return json.loads(out.stdout)


def test_the_seed_apig_handler_answers_through_the_sdk(client):
    created = create(client, "seed", "seed/ApigTest/testplugin.so", "testplugin", "ApigTest")
    event = sample("apig")
    result = invoke(client, created.func_urn, event)
    assert result.status == 200
    response = json.loads(result.result)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == event
    line = result.log.strip().splitlines()[0]
    assert line.split(" ")[1] == result.request_id
    assert " payload:{" in line
    config = client.show_function_config(ShowFunctionConfigRequest(function_urn=created.func_urn))
    assert config.runtime == "Go1.x"


def test_go_errors_panics_and_println_reach_the_caller(client):
    urn = create(client, "cases", "misbehaving.so", "misbehaving", "Cases").func_urn
    failed = invoke(client, urn, "error")
    assert json.loads(failed.result) == {
        "errorMessage": "the order was not found", "errorType": "FunctionReturnError"}
    panicked = json.loads(invoke(client, urn, "nil-deref").result)
    assert panicked["errorType"] == "panic"
    assert "nil pointer dereference" in panicked["errorMessage"]
    printed = invoke(client, urn, "println")
    assert printed.result == "printed"
    assert "from fmt.Println" in printed.log
    context = json.loads(invoke(client, urn, "context").result)
    assert context["function"] == "cases"
    assert context["project"] == "proj1"
    assert context["user"] == "hi"


def test_a_go_function_swapped_under_load_loses_no_request(server, client):
    urn = create(client, "swap", "misbehaving.so", "misbehaving", "Cases").func_urn
    stop = threading.Event()
    failures, answers = [], set()

    def load():
        own = client_for(server)  # one SDK client per thread
        while not stop.is_set():
            try:
                answer = invoke(own, urn, "build").result
                answers.add(answer)
                if answer not in ("1", "2"):
                    failures.append(answer)
            except Exception as e:  # noqa: BLE001 - every failure counts
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for build in ["build2/misbehaving.so", "misbehaving.so"] * 3:
            client.update_function_code(UpdateFunctionCodeRequest(
                function_urn=urn, body=UpdateFunctionCodeRequestBody(
                    code_type="zip", func_code=FuncCode(file=go_zip(build, "misbehaving")))))
            expected = "2" if build.startswith("build2") else "1"
            assert invoke(client, urn, "build").result == expected
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert answers == {"1", "2"}


def test_fnhost_deploy_of_a_new_go_project_declares_go_and_serves(tmp_path, server, client):
    from test_deploy import run
    from conftest import AK, SK
    r = run(["new", "gofn", "--lang", "go", "--dir", str(tmp_path / "gofn")], tmp_path)
    assert r.returncode == 0, r.stderr
    keys = {"FNHOST_ACCESS_KEY": AK, "FNHOST_SECRET_KEY": SK, "FNHOST_URL": server.url,
            "FNHOST_PROJECT_ID": "proj1"}
    r = run(["deploy"], tmp_path / "gofn", keys)
    assert r.returncode == 0, r.stdout + r.stderr
    urn = r.stdout.strip().splitlines()[-1]
    config = client.show_function_config(ShowFunctionConfigRequest(function_urn=urn))
    assert config.runtime == "Go1.x"
    answer = json.loads(invoke(client, urn, {"name": "ada"}).result)
    assert answer["message"] == "hello, ada"
