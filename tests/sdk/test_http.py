"""The HTTP surface without the SDK: FunctionGraph's response headers, error
shapes and limits, metrics, and the server's own safety rules."""
import base64
import json
import signal
import subprocess
import urllib.error
import urllib.request

import pytest

from conftest import TARGET, eventually, free_port, zip_b64

BASE = "/v2/proj1/fgs/functions"


def call(server, method, path, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def create(server, name, module="testplugin", handler="Handler", library="libtestplugin.so"):
    status, _, body = call(server, "POST", BASE, {
        "func_name": name, "package": "default", "runtime": "Rust1.x", "handler": f"{module}.{handler}",
        "memory_size": 128, "timeout": 3, "code_type": "zip",
        "func_code": {"file": zip_b64(library, module)}, "user_data": json.dumps({"NAME": "raw"}),
    })
    assert status == 200, body
    return json.loads(body)["func_urn"]


def test_sync_invoke_answers_with_functiongraph_headers(open_server):
    urn = create(open_server, "hdr")
    status, headers, body = call(open_server, "POST", f"{BASE}/{urn}/invocations", {"key": "NAME"},
                                 {"X-Cff-Log-Type": "tail", "Content-Type": "application/json"})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    result = json.loads(body)
    assert result["user_data"] == "raw"
    assert headers["X-Cff-Request-Id"] == result["request_id"]
    summary = json.loads(headers["X-Cff-Invoke-Summary"])
    assert set(summary) == {"duration", "billingDuration", "memorySize", "memoryUsed"}
    assert summary["memorySize"] == 128
    assert headers["X-Cff-Billing-Duration"] == str(summary["billingDuration"])
    assert headers["X-Cff-Response-Version"] == "v0"
    assert headers["X-Func-Err-Code"] == "0" and headers["X-Is-Func-Err"] == "false"
    log = base64.b64decode(headers["X-Cff-Function-Log"]).decode()
    assert result["request_id"] in log and "testplugin handling" in log

    failing = create(open_server, "fails", module="misbehaving", handler="CustomError", library="libmisbehaving.so")
    status, headers, body = call(open_server, "POST", f"{BASE}/{failing}/invocations", b"{}")
    assert status == 200
    assert headers["X-Is-Func-Err"] == "true" and headers["X-Func-Err-Code"] != "0"
    assert json.loads(body) == {"errorMessage": "no such order", "errorType": "OrderNotFound"}
    assert "X-Cff-Function-Log" not in headers


def test_callers_mistakes_get_4xx_in_functiongraph_shape(open_server):
    urn = create(open_server, "limits")
    status, _, body = call(open_server, "POST", f"{BASE}/{urn}/invocations", b"x" * (6 * 1024 * 1024 + 1))
    assert status == 413
    assert json.loads(body)["error_code"] == "FSS.0413"
    status, _, body = call(open_server, "POST", BASE, b"{not json")
    assert status == 400 and set(json.loads(body)) == {"error_code", "error_msg"}
    status, _, body = call(open_server, "POST", BASE, {"func_name": "x", "runtime": "Python3.9", "handler": "x.y",
                                                     "memory_size": 128, "timeout": 3,
                                                     "func_code": {"file": zip_b64("libecho.so", "echo")}})
    assert status == 400 and "runtime" in json.loads(body)["error_msg"]
    status, _, body = call(open_server, "POST", f"{BASE}/urn:fss:local:proj1:function:default:ghost/invocations", b"{}")
    assert status == 404 and json.loads(body)["error_code"] == "FSS.1051"
    # A URN naming the function in another package names no function.
    status, _, body = call(open_server, "POST", f"{BASE}/urn:fss:local:proj1:function:other:limits/invocations", b"{}")
    assert status == 404 and json.loads(body)["error_code"] == "FSS.1051"
    assert call(open_server, "POST", f"{BASE}/urn:fss:local:proj1:function:default:limits/invocations", b"{}")[0] == 200
    status, _, body = call(open_server, "GET", "/v3/nothing")
    assert status == 404 and "error_code" in json.loads(body)
    status, _, _ = call(open_server, "POST", BASE, {"func_name": "limits", "runtime": "Rust1.x", "handler": "echo.Handler",
                                                   "memory_size": 128, "timeout": 3,
                                                   "func_code": {"file": zip_b64("libecho.so", "echo")}})
    assert status == 409


def test_metrics_health_and_readiness(open_server):
    urn = create(open_server, "counted")
    for _ in range(3):
        call(open_server, "POST", f"{BASE}/{urn}/invocations", b"{}")
    assert call(open_server, "GET", "/healthz")[0] == 200
    assert call(open_server, "GET", "/readyz")[0] == 200
    status, headers, body = call(open_server, "GET", "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'fnhost_invocations_total{function="counted",version="latest",outcome="success"} 3' in text
    assert 'fnhost_invocation_duration_seconds_count{function="counted"} 3' in text
    assert 'fnhost_generations{state="live"} 1' in text
    assert "fnhost_async_invocations_unfinished 0" in text


def test_refuses_a_public_address_without_access_keys(tmp_path):
    port = free_port()
    r = subprocess.run([str(TARGET / "fnhost"), "serve", "--listen", f"0.0.0.0:{port}",
                        "--data-dir", str(tmp_path / "data")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "without access keys" in r.stderr


@pytest.mark.parametrize("isolation", ["in-process", "inline"])
def test_functions_dir_deploys_every_library_and_redeploys_on_change(tmp_path, isolation):
    import shutil
    from conftest import Server
    fns = tmp_path / "functions"
    fns.mkdir()
    shutil.copy(TARGET / "libecho.so", fns / "echo.so")
    server = Server(tmp_path, keys=False, extra_args=["--functions-dir", str(fns), "--isolation", isolation]).start()
    try:
        assert eventually(lambda: call(server, "POST", f"{BASE}/echo/invocations", b"ping")[0] == 200,
                          timeout=10, interval=0.1), "echo was not deployed from --functions-dir"
        assert call(server, "POST", f"{BASE}/urn:fss:local:proj1:function:default:echo/invocations", b"ping")[2] == b"ping"
        listed = json.loads(call(server, "GET", BASE)[2])
        assert [(f["func_name"], f["isolation"]) for f in listed["functions"]] == [("echo", isolation)]
        # Its code is the directory: the API refuses to change it, in
        # FunctionGraph's error shape and without the server's paths.
        status, _, body = call(server, "PUT", f"{BASE}/echo/config", {"timeout": 5})
        assert status == 409, body
        error = json.loads(body)
        assert error["error_code"] == "FSS.1061" and "functions directory" in error["error_msg"]
        assert str(fns) not in body.decode()
        # A new library dropped in is deployed too.
        shutil.copy(TARGET / "libtestplugin.so", fns / "testplugin.so.partial")
        (fns / "testplugin.so.partial").rename(fns / "testplugin.so")
        assert eventually(lambda: call(server, "POST", f"{BASE}/testplugin/invocations", b"{}")[0] == 200,
                          timeout=10, interval=0.1), "testplugin was not deployed"
    finally:
        server.stop()


def test_a_sidecar_manifest_configures_a_directory_function_and_redeploys_on_change(tmp_path):
    import shutil
    from conftest import Server
    fns = tmp_path / "functions"
    fns.mkdir()
    shutil.copy(TARGET / "libtestplugin.so", fns / "testplugin.so")

    def sidecar(name_value, memory, trigger=False):
        text = (
            'name = "testplugin"\nhandler = "testplugin.Handler"\ninitializer = "Init"\n'
            f'memory_mb = {memory}\ntimeout_s = 7\n[user_data]\nNAME = "{name_value}"\n'
        )
        if trigger:
            text += '[[triggers]]\ntype = "APIG"\npath = "/tp"\nmethod = "POST"\n'

        (fns / "testplugin.toml.partial").write_text(text)
        (fns / "testplugin.toml.partial").rename(fns / "testplugin.toml")

    sidecar("from the sidecar", 256, trigger=True)
    server = Server(tmp_path, keys=False, extra_args=["--functions-dir", str(fns)]).start()
    try:
        def answer():
            status, _, body = call(server, "POST", f"{BASE}/testplugin/invocations", b"{}")
            return json.loads(body) if status == 200 else None

        a = eventually(answer, timeout=15, interval=0.1)
        assert a is not None, "testplugin was not deployed"
        assert (a["user_data"], a["memory_size_mb"], a["init_calls"]) == ("from the sidecar", 256, 1), a
        config = json.loads(call(server, "GET", f"{BASE}/testplugin/config")[2])
        assert (config["memory_size"], config["timeout"]) == (256, 7), config
        # Its trigger: listed, and the gateway routes its path to it.
        triggers_path = "/v2/proj1/fgs/triggers/" + config["func_urn"]
        listed = json.loads(call(server, "GET", triggers_path)[2])
        assert [(t["trigger_type_code"], t["event_data"]["path"]) for t in listed] == [("APIG", "/tp")], listed
        assert call(server, "POST", "/tp", b"{}")[0] == 200
        # A change to the sidecar alone redeploys the function (and drops
        # the trigger it no longer declares).
        sidecar("changed", 512)
        assert eventually(lambda: answer()["user_data"] == "changed", timeout=15, interval=0.1), answer()
        a = answer()
        assert a["memory_size_mb"] == 512, a
        assert json.loads(call(server, "GET", triggers_path)[2]) == []
        assert call(server, "POST", "/tp", b"{}")[0] == 404
        # A broken sidecar fails that deploy; what serves keeps serving.
        (fns / "testplugin.toml").write_text('name = "testplugin"\nhandler = "testplugin.Handler"\nmemory = 1\n')
        log = tmp_path / "server.log"
        assert eventually(lambda: "unknown field `memory`" in log.read_text(), timeout=15), log.read_text()
        assert answer()["user_data"] == "changed"
        # Its configuration lives in the directory: the API says so.
        status, _, body = call(server, "PUT", f"{BASE}/testplugin/config", {"timeout": 5})
        assert status == 409 and b"testplugin.toml" in body, body
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "testplugin.toml:3:1: `memory`: unknown field `memory`" in log, log


def test_by_default_the_server_logs_what_it_deploys_and_what_serves_nothing(tmp_path, monkeypatch):
    import shutil
    from conftest import Server
    monkeypatch.delenv("RUST_LOG", raising=False)
    fns = tmp_path / "functions"
    fns.mkdir()
    # A library without the handler the directory's functions get (Handler).
    shutil.copy(TARGET / "libmisbehaving.so", fns / "misbehaving.so")
    server = Server(tmp_path, keys=False, extra_args=["--functions-dir", str(fns)]).start()
    try:
        log_file = tmp_path / "server.log"
        assert eventually(lambda: "misbehaving" in log_file.read_text(), timeout=15, interval=0.1), \
            log_file.read_text()
        assert call(server, "POST", f"{BASE}/misbehaving/invocations", b"{}")[0] == 404
        urn = create(server, "logged")
        assert urn
    finally:
        server.stop()
    log = log_file.read_text()
    assert "no access keys configured" in log, log
    assert "nothing serves misbehaving" in log and "previous code keeps serving" not in log, log
    assert "created function logged: generation" in log, log


def test_a_spinning_handler_is_answered_with_timeout_and_the_server_keeps_serving(open_server):
    import time
    status, _, body = call(open_server, "POST", BASE, {
        "func_name": "spin", "runtime": "Rust1.x", "handler": "misbehaving.Spin", "memory_size": 128, "timeout": 1,
        "func_code": {"file": zip_b64("libmisbehaving.so", "misbehaving")}})
    assert status == 200, body
    start = time.time()
    status, headers, body = call(open_server, "POST", f"{BASE}/spin/invocations", b"{}")
    took = time.time() - start
    assert status == 200 and headers["X-Is-Func-Err"] == "true"
    assert json.loads(body)["errorType"] == "timeout"
    assert 0.9 < took < 3, took
    urn = create(open_server, "alive")
    assert call(open_server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
    metrics = call(open_server, "GET", "/metrics")[2].decode()
    assert 'outcome="timeout"} 1' in metrics
    assert "fnhost_runaway_invocations 1" in metrics


def test_sigterm_drains_in_flight_requests_then_exits_0(open_server):
    import signal
    import threading
    status, _, _ = call(open_server, "POST", BASE, {
        "func_name": "slow", "runtime": "Rust1.x", "handler": "misbehaving.Sleep", "memory_size": 128, "timeout": 5,
        "func_code": {"file": zip_b64("libmisbehaving.so", "misbehaving")}})
    assert status == 200
    answers = []
    t = threading.Thread(target=lambda: answers.append(call(open_server, "POST", f"{BASE}/slow/invocations", b"800")))
    t.start()
    assert eventually(lambda: metric(open_server, "fnhost_invocations_in_flight") == 1), "the call did not start"
    code = open_server.stop(signal.SIGTERM)
    t.join()
    assert code == 0
    assert answers[0][0] == 200 and answers[0][2] == b"slept", answers


def test_an_isolated_function_that_segfaults_leaves_the_server_serving(open_server):
    status, _, body = call(open_server, "POST", BASE, {
        "func_name": "crashy", "runtime": "Rust1.x", "handler": "misbehaving.Segfault", "memory_size": 128,
        "timeout": 3, "isolation": "process",
        "func_code": {"file": zip_b64("libmisbehaving.so", "misbehaving")}})
    assert status == 200, body
    assert json.loads(body)["isolation"] == "process"
    for _ in range(2):
        status, headers, body = call(open_server, "POST", f"{BASE}/crashy/invocations", b"{}")
        assert status == 200 and headers["X-Is-Func-Err"] == "true"
        error = json.loads(body)
        assert error["errorType"] == "runtime exited unexpectedly"
        assert "SIGSEGV" in error["errorMessage"]
    urn = create(open_server, "still-here")
    assert call(open_server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200


def test_an_inline_function_answers_like_a_threaded_one(open_server):
    import time
    status, _, body = call(open_server, "POST", BASE, {
        "func_name": "inl", "runtime": "Rust1.x", "handler": "testplugin.Handler", "memory_size": 128,
        "timeout": 1, "isolation": "inline", "user_data": json.dumps({"NAME": "raw"}),
        "func_code": {"file": zip_b64("libtestplugin.so", "testplugin")}})
    assert status == 200, body
    assert json.loads(body)["isolation"] == "inline"
    status, headers, body = call(open_server, "POST", f"{BASE}/inl/invocations", b'{"key": "NAME"}',
                                 {"X-Cff-Log-Type": "tail"})
    assert status == 200 and headers["X-Is-Func-Err"] == "false", body
    value = json.loads(body)
    assert value["user_data"] == "raw" and value["request_id"] == headers["X-Cff-Request-Id"]
    assert "testplugin handling" in base64.b64decode(headers["X-Cff-Function-Log"]).decode()
    assert json.loads(headers["X-Cff-Invoke-Summary"])["memorySize"] == 128
    # Over the timeout: the inline handler is answered `timeout` when it returns.
    status, _, body = call(open_server, "POST", BASE, {
        "func_name": "inl-slow", "runtime": "Rust1.x", "handler": "misbehaving.Sleep", "memory_size": 128,
        "timeout": 1, "isolation": "inline", "func_code": {"file": zip_b64("libmisbehaving.so", "misbehaving")}})
    assert status == 200, body
    start = time.time()
    status, headers, body = call(open_server, "POST", f"{BASE}/inl-slow/invocations", b"1300")
    assert status == 200 and json.loads(body)["errorType"] == "timeout", body
    assert time.time() - start >= 1.3
    assert call(open_server, "POST", f"{BASE}/inl-slow/invocations", b"10")[2] == b"slept"


def test_every_request_is_logged_with_its_status_and_request_id(tmp_path, monkeypatch):
    import re
    from conftest import Server
    monkeypatch.setenv("RUST_LOG", "warn,fnhost::http=info")
    server = Server(tmp_path, keys=False).start()
    try:
        urn = create(server, "logged")
        status, headers, _ = call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")
        assert status == 200
        assert call(server, "POST", f"{BASE}/missing/invocations", b"{}")[0] == 404
        assert call(server, "GET", BASE)[0] == 200
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    rid = headers["X-Cff-Request-Id"]
    assert re.search(rf"method=POST path={re.escape(BASE)}/{re.escape(urn)}/invocations status=200 "
                     rf"duration_ms=[0-9.]+ request_id={rid}", log), log
    assert f"method=POST path={BASE}/missing/invocations status=404" in log, log
    assert f"method=GET path={BASE} status=200" in log, log


def metric(server, name):
    """The value of an unlabelled metric, or None when it is not exported."""
    for line in call(server, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def create_nap(server):
    """Function `nap` (misbehaving.Sleep: sleeps the payload's milliseconds), 1 s timeout."""
    status, _, body = call(server, "POST", BASE, {
        "func_name": "nap", "runtime": "Rust1.x", "handler": "misbehaving.Sleep", "memory_size": 128, "timeout": 1,
        "func_code": {"file": zip_b64("libmisbehaving.so", "misbehaving")}})
    assert status == 200, body
    return f"{BASE}/nap/invocations"


def qualify_for_lane(server, path):
    """Probation: 100 short calls in a row on worker threads, then the lane."""
    runs = metric(server, "fnhost_io_lane_runs_total")
    for i in range(1000):
        assert call(server, "POST", path, b"0")[2] == b"slept"
        if i % 20 == 19 and metric(server, "fnhost_io_lane_runs_total") >= runs + 10:
            return
    raise AssertionError("never ran on the I/O-thread lane")


@pytest.fixture
def lane_server(tmp_path):
    """A server without access keys, with the I/O-thread lane (--io-lane)."""
    from conftest import Server
    s = Server(tmp_path, keys=False, extra_args=["--io-lane"]).start()
    yield s
    s.stop(signal.SIGKILL)


def test_short_handlers_run_on_the_io_threads_and_a_hang_there_is_answered_at_the_deadline(lane_server):
    open_server = lane_server
    import threading
    import time
    nap = create_nap(open_server)

    def qualify():
        qualify_for_lane(open_server, nap)

    # A call that sleeps 3 s on an I/O thread, inside its connection's task:
    # answered `timeout` at the 1 s deadline by the lane's watchdog, on a
    # kept-alive connection that served calls before, while the server
    # keeps answering other requests at once.
    import http.client
    connection = http.client.HTTPConnection("127.0.0.1", open_server.port, timeout=30)

    def post(body):
        connection.request("POST", nap, body=body)
        r = connection.getresponse()
        return r.status, r.headers, r.read()

    for attempt in range(3):
        qualify()
        for _ in range(3):
            assert post(b"0")[2] == b"slept"
        answer = {}

        def hang():
            start = time.time()
            answer["response"] = post(b"3000")
            answer["took"] = time.time() - start

        hanging = threading.Thread(target=hang)
        hanging.start()
        deadline = time.time() + 0.5
        while metric(open_server, "fnhost_io_lane_running") != 1 and time.time() < deadline:
            time.sleep(0.01)
        if metric(open_server, "fnhost_io_lane_running") == 1:
            break
        # A short call preempted past 100 us just before (a loaded machine)
        # sent the function back to probation: this one ran on a worker.
        hanging.join()
        assert eventually(lambda: metric(open_server, "fnhost_runaway_invocations") == 0, interval=0.1), \
            "the runaway call did not end"
    else:
        raise AssertionError("the hanging call never ran on the lane")
    urn = create(open_server, "alive")
    for _ in range(20):
        start = time.time()
        assert call(open_server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
        assert time.time() - start < 0.5
    hanging.join()
    status, headers, body = answer["response"]
    assert status == 200 and headers["X-Is-Func-Err"] == "true"
    assert json.loads(body)["errorType"] == "timeout"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(headers["X-Cff-Invoke-Summary"])["duration"] >= 1000
    assert headers["Connection"] == "close"
    assert 0.9 < answer["took"] < 2.5, answer["took"]
    # Answered from the watchdog's thread (the handler still sleeps in the
    # connection's task), and no longer counted in flight.
    rid = headers["X-Cff-Request-Id"]
    assert f"request {rid}: answered at its deadline" in (open_server.tmp / "server.log").read_text()
    assert metric(open_server, "fnhost_invocations_in_flight") == 0
    # The client reconnects (the answer closed the connection) and is served.
    status, _, body = post(b"0")
    assert (status, body) == (200, b"slept")
    assert metric(open_server, "fnhost_io_lane_deadline_answers_total") == 1
    assert metric(open_server, "fnhost_io_lane_strikes_total") == 1
    assert metric(open_server, "fnhost_io_lane_nudges_total") >= 1
    assert metric(open_server, "fnhost_runaway_invocations") == 1
    # Struck: its next calls run on worker threads, and still answer.
    runs = metric(open_server, "fnhost_io_lane_runs_total")
    assert call(open_server, "POST", nap, b"0")[2] == b"slept"
    assert metric(open_server, "fnhost_io_lane_runs_total") == runs


def test_by_default_and_with_no_io_lane_every_handler_runs_on_worker_threads(tmp_path):
    from conftest import Server
    for flags in ([], ["--no-io-lane"]):
        (tmp_path / str(len(flags))).mkdir()
        server = Server(tmp_path / str(len(flags)), keys=False, extra_args=flags).start()
        try:
            urn = create(server, "threaded")
            for _ in range(150):
                assert call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
            assert metric(server, "fnhost_io_lane_runs_total") is None, flags
        finally:
            server.stop()


def test_sigterm_exits_after_the_grace_period_when_a_handler_never_returns(tmp_path):
    import signal
    import time
    from conftest import Server
    server = Server(tmp_path, keys=False, extra_args=["--shutdown-grace", "2", "--io-lane"]).start()
    try:
        nap = create_nap(server)
        # A call that sleeps a minute on the I/O-thread lane: its
        # connection's task stays blocked long after the timeout answer.
        for attempt in range(3):
            qualify_for_lane(server, nap)
            lane_runs = metric(server, "fnhost_io_lane_runs_total")
            status, _, body = call(server, "POST", nap, b"60000")
            assert json.loads(body)["errorType"] == "timeout"
            if metric(server, "fnhost_io_lane_runs_total") > lane_runs:
                break
            # Sent back to probation by a preempted short call: it ran (and
            # still sleeps) on a worker thread, which does not hold the exit.
        else:
            raise AssertionError("the hanging call never ran on the lane")
        start = time.time()
        code = server.stop(signal.SIGTERM)
        took = time.time() - start
        assert code == 0
        # The 2 s grace period, then at most 1 s for the executor.
        assert 1.5 < took < 6, took
        assert "shutdown grace period over with connections still open" in (tmp_path / "server.log").read_text()
    finally:
        server.stop(signal.SIGKILL)
