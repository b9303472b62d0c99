"""The HTTP front door as an attacker tries it: signatures that must cover
the body, limits that hold before authentication, timeouts, the connection
cap, exposure, numbers that must not wrap, counters, packages on disk, and
two-step updates. Every request goes to 127.0.0.1 only."""
import hashlib
import json
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkfunctiongraph.v2 import (
    CreateFunctionRequest, CreateFunctionRequestBody, FuncCode, ShowFunctionConfigRequest,
    UpdateFunctionCodeRequest, UpdateFunctionCodeRequestBody, UpdateFunctionConfigRequest,
    UpdateFunctionConfigRequestBody, InvokeFunctionRequest)

from conftest import AK, SK, PROJECT, TARGET, Server, client_for, eventually, free_port, zip_b64, zip_entries_b64

BASE = f"/v2/{PROJECT}/fgs/functions"


def signed(server, method, path, body=b"", headers=None, ak=AK, sk=SK, content_sha256=None):
    """Headers the official SDK's signer gives a request (optionally with an
    X-Sdk-Content-Sha256 it then signs)."""
    header_params = {"Content-Type": "application/json"}
    header_params.update(headers or {})
    if content_sha256 is not None:
        header_params["X-Sdk-Content-Sha256"] = content_sha256
    request = SdkRequest(method=method, schema="http", host=f"127.0.0.1:{server.port}",
                         resource_path=path, query_params=[], header_params=header_params, body=body)
    Signer(BasicCredentials(ak, sk, PROJECT)).sign(request)
    return dict(request.header_params)


def send(server, method, path, body=b"", headers=None, timeout=10):
    req = urllib.request.Request(server.url + path, data=body if body else None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def call(server, method, path, body=None):
    data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return send(server, method, path, data, signed(server, method, path, data))


def create_body(name, handler="testplugin.Handler", library="libtestplugin.so", module="testplugin", **extra):
    body = {"func_name": name, "package": "default", "runtime": "Rust1.x", "handler": handler,
            "memory_size": 128, "timeout": 3, "code_type": "zip",
            "func_code": {"file": zip_b64(library, module)}}
    body.update(extra)
    return body


def create(server, name, **kw):
    status, _, body = call(server, "POST", BASE, create_body(name, **kw))
    assert status == 200, body
    return json.loads(body)["func_urn"]


def raw(server, data=b"", timeout=5):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    if data:
        s.sendall(data)
    return s


def read_all(s):
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except (ConnectionResetError, socket.timeout):
        return out


def untaken(server):
    """What the kernel holds for the server that it has not taken yet (from
    /proc/net/tcp): connections waiting in its listening socket's accept
    queue, and bytes received on its connections but not read."""
    port = f":{server.port:04X}"
    held = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            # 0A: listening (the queue is the accept queue), 01: established.
            if fields[1].endswith(port) and fields[3] in ("0A", "01"):
                held += int(fields[4].split(":")[1], 16)
    return held


def open_connections(server):
    """The server's fnhost_connections_open (this request's own connection
    included), or None when the request is refused (at the cap)."""
    try:
        status, _, metrics = call(server, "GET", "/metrics")
    except OSError:
        return None
    if status != 200:
        return None
    return int(metrics.decode().split("\nfnhost_connections_open ")[1].split()[0])


def build(tag: bytes, library="libtestplugin.so", name="testplugin"):
    """A package of another digest with the same library (an extra file)."""
    return zip_entries_b64({f"{name}.so": (TARGET / library).read_bytes(), "build.txt": tag})


def packages(server):
    code = server.tmp / "data" / "code"
    return sorted(p.name for p in code.iterdir())


@pytest.fixture
def fast(tmp_path):
    """A server with access keys and short timeouts."""
    s = Server(tmp_path, config={"limits": {"header_timeout": 1, "body_timeout": 1, "idle_timeout": 3}}).start()
    yield s
    s.stop(signal.SIGKILL)


# 1. Signatures bind the request.

def test_a_captured_request_cannot_be_replayed_with_another_body(server):
    urn = create(server, "victim")
    path = f"{BASE}/{urn}/invocations"
    good = b'{"key": "NAME"}'
    evil = b'{"key": "EVIL"}'
    headers = signed(server, "POST", path, good)
    assert send(server, "POST", path, good, headers)[0] == 200
    # The content hash the attacker adds is not signed: not believed.
    forged = dict(headers, **{"X-Sdk-Content-Sha256": hashlib.sha256(good).hexdigest()})
    status, _, body = send(server, "POST", path, evil, forged)
    assert status == 401, body
    # A signed content hash must be the hash of the body received.
    headers = signed(server, "POST", path, good, content_sha256=hashlib.sha256(good).hexdigest())
    assert send(server, "POST", path, good, headers)[0] == 200
    assert send(server, "POST", path, evil, headers)[0] == 401
    # The same for code: a captured update replayed with other code.
    code_path = f"{BASE}/{urn}/code"
    update = json.dumps({"code_type": "zip", "func_code": {"file": zip_b64("libecho.so", "testplugin")}}).encode()
    other = json.dumps({"code_type": "zip", "func_code": {"file": zip_b64("libmisbehaving.so", "testplugin")}}).encode()
    headers = signed(server, "PUT", code_path, update, content_sha256=hashlib.sha256(update).hexdigest())
    assert send(server, "PUT", code_path, other, headers)[0] == 401
    assert json.loads(call(server, "GET", f"{BASE}/{urn}/config")[2])["code_size"] > 0


def test_unsigned_payload_is_refused_unless_configured(tmp_path):
    for allowed in (False, True):
        (tmp_path / str(allowed)).mkdir()
        server = Server(tmp_path / str(allowed), config={"allow_unsigned_payload": allowed}).start()
        try:
            urn = create(server, "blob", module="echo", library="libecho.so", handler="echo.Handler")
            path = f"{BASE}/{urn}/invocations"
            # The SDK itself marks non-JSON bodies UNSIGNED-PAYLOAD.
            headers = signed(server, "POST", path, b"\x00raw", {"Content-Type": "application/octet-stream"})
            assert headers["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
            status, _, body = send(server, "POST", path, b"\x00raw", headers)
            assert status == (200 if allowed else 401), body
        finally:
            server.stop(signal.SIGKILL)


def test_every_refused_signature_gets_the_same_answer_and_the_log_says_why(server):
    path = BASE
    answers = []
    stale = {"X-Sdk-Date": "20200101T000000Z"}
    for headers in (signed(server, "GET", path, ak="nobody"), signed(server, "GET", path, sk="wrong"),
                    signed(server, "GET", path, headers=stale), {}):
        status, _, body = send(server, "GET", path, b"", headers)
        answers.append((status, body))
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == 401
    assert json.loads(answers[0][1]) == {"error_code": "APIGW.0301",
                                         "error_msg": "Incorrect IAM authentication information"}
    log = (server.tmp / "server.log").read_text()
    for why in ("unknown access key", "signature does not match", "outside the 15-minute window",
                "missing Authorization header"):
        assert why in log, why


@pytest.mark.parametrize("keys", [[{"access_key": "ak", "secret_key": ""}],
                                  [{"access_key": "", "secret_key": "sk"}]])
def test_keys_with_an_empty_access_key_or_secret_are_refused_at_start(tmp_path, keys):
    config = tmp_path / "fnhost.json"
    config.write_text(json.dumps({"listen": "0.0.0.0:%d" % free_port(), "access_keys": keys}))
    r = subprocess.run([str(TARGET / "fnhost"), "serve", "--config", str(config), "--data-dir",
                        str(tmp_path / "data")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "empty" in r.stderr and "access key" in r.stderr, r.stderr


# 2. Limits before work.

def test_nothing_of_an_unauthenticated_body_is_read(server):
    s = raw(server, b"PUT /v2/proj1/fgs/functions/x/code HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 94371840\r\n\r\n" + b"x" * 1024)
    started = time.time()
    answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:100]
    assert time.time() - started < 2


def test_body_limits_are_per_route_and_announced_sizes_are_refused_before_reading(server):
    # A management call is small; the code limit is for code routes only.
    big = json.dumps({"description": "x" * (2 * 1024 * 1024)}).encode()
    urn = create(server, "limited")
    status, _, body = call(server, "PUT", f"{BASE}/{urn}/config", big)
    assert status == 413 and json.loads(body)["error_code"] == "FSS.0413"
    # An announced size over the limit is answered at once, authenticated or not.
    headers = signed(server, "POST", f"{BASE}/{urn}/invocations", b"{}")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "content-length")
    s = raw(server, (f"POST {BASE}/{urn}/invocations HTTP/1.1\r\n{head}Content-Length: 50000000\r\n\r\n").encode())
    assert read_all(s).startswith(b"HTTP/1.1 413")
    # A body over the limit that is sent anyway is read to its end and refused.
    status, _, _ = call(server, "POST", f"{BASE}/{urn}/invocations", b"x" * (6 * 1024 * 1024 + 1))
    assert status == 413


def test_slow_headers_slow_bodies_and_idle_connections_are_closed(fast):
    # Headers that never finish.
    s = raw(fast, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.time()
    assert read_all(s) == b""
    assert 0.5 < time.time() - started < 4
    # A connection that sends nothing at all.
    s = raw(fast)
    started = time.time()
    assert read_all(s) == b""
    assert time.time() - started < 4
    # A body that never finishes: 408.
    s = raw(fast, b"POST /apig/none HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
    answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    # Kept alive past the header timeout, closed after the idle timeout.
    s = raw(fast, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    # Fixed wait: idle past the 1 s header timeout (within the 3 s idle one).
    time.sleep(1.8)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 200"), "a kept-alive connection outlives the header timeout"
    started = time.time()
    assert read_all(s) == b""
    assert 2 < time.time() - started < 6


def test_a_client_that_does_not_read_its_answer_is_disconnected(tmp_path):
    # Kept-alive connections may idle for 30 s: only the unread answer ends this one.
    fast = Server(tmp_path, config={"limits": {"header_timeout": 1, "body_timeout": 1, "idle_timeout": 30}}).start()
    urn = create(fast, "reader", module="echo", library="libecho.so", handler="echo.Handler")
    path = f"{BASE}/{urn}/invocations"
    body = b"x" * 6_000_000  # more than the loopback socket buffers hold
    headers = signed(fast, "POST", path, body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", fast.port))
    s.sendall(f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    # 1: the /metrics request's own connection.
    assert eventually(lambda: open_connections(fast) == 1, timeout=8, interval=0.5), \
        "a stalled reader kept its connection past the body timeout"
    s.close()
    fast.stop(signal.SIGKILL)


def test_at_the_connection_cap_health_and_management_still_answer(tmp_path):
    server = Server(tmp_path, config={"limits": {"max_connections": 20, "priority_connections": 4,
                                                 "header_timeout": 30, "idle_timeout": 30}}).start()
    try:
        urn = create(server, "capped")
        idle = [raw(server) for _ in range(20)]
        assert eventually(lambda: untaken(server) == 0), "the server did not accept the idle connections"
        # Beyond the cap: health checks and management calls answer, traffic gets 503.
        assert send(server, "GET", "/healthz")[0] == 200
        assert call(server, "GET", BASE)[0] == 200
        status, headers, _ = call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")
        assert status == 503
        # Priority connections that sent nothing yet give way to newer ones.
        more = [raw(server) for _ in range(4)]
        assert eventually(lambda: untaken(server) == 0), "the server did not accept the priority connections"
        assert send(server, "GET", "/readyz")[0] == 200
        # When every priority connection is sending a request: a quick 503
        # without reading.
        for s in more:
            s.close()
        more = [raw(server, b"GET /healthz HTTP/1.1\r\n") for _ in range(4)]
        assert eventually(lambda: untaken(server) == 0), "the server did not read the requests begun"
        started = time.time()
        assert read_all(raw(server)).startswith(b"HTTP/1.1 503")
        assert time.time() - started < 2
        for s in idle + more:
            s.close()
        assert eventually(lambda: open_connections(server) == 1), "the closed connections were not given back"
        assert call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
    finally:
        server.stop(signal.SIGKILL)


def test_descriptors_are_kept_in_reserve_under_a_flood(tmp_path):
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))
    server = Server(tmp_path)
    server.preexec = low_limit
    server.start()
    try:
        urn = create(server, "flooded")
        flood = []
        for _ in range(500):
            try:
                flood.append(raw(server, timeout=2))
            except OSError:
                break
        assert eventually(lambda: untaken(server) == 0), "the server did not take the flood in"
        assert send(server, "GET", "/healthz")[0] == 200
        assert send(server, "GET", "/readyz")[0] == 200
        status, _, _ = call(server, "PUT", f"{BASE}/{urn}/config", {"description": "still managed"})
        assert status == 200
        for s in flood:
            s.close()
        assert eventually(lambda: open_connections(server) == 1), "the flood's connections were not given back"
        assert call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
    finally:
        server.stop(signal.SIGKILL)


# 3. Nothing exposed by accident.

def test_apig_paths_cannot_shadow_the_server_and_only_triggers_expose_functions(server):
    urn = create(server, "hidden", handler="testplugin.ApigTest")
    for path in ["/v2", "/v2/proj1/fgs/functions", "/healthz", "/readyz", "/metrics", "/apig/x", "/"]:
        status, _, body = call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}",
                               {"trigger_type_code": "APIG", "event_data": {"path": path}})
        assert status == 400, (path, body)
    # An API path no route matches is the API's 404, never a function.
    assert send(server, "GET", "/v2/unrouted")[0] == 401
    assert call(server, "GET", "/v2/unrouted")[0] == 404
    assert send(server, "GET", "/apig/hidden/x")[0] == 404
    status, _, _ = call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}",
                        {"trigger_type_code": "APIG", "event_data": {"path": "/public"}})
    assert status == 201
    assert send(server, "GET", "/public/x")[0] == 200


def test_a_functions_hop_by_hop_and_framing_headers_are_dropped(server):
    urn = create(server, "hops", handler="misbehaving.HopHeaders", library="libmisbehaving.so", module="misbehaving")
    call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}",
         {"trigger_type_code": "APIG", "event_data": {"path": "/hops"}})
    s = raw(server, b"GET /hops HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = s.recv(65536).decode()
    head, body = answer.split("\r\n\r\n", 1)
    fields = {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]}
    assert "transfer-encoding" not in fields and "upgrade" not in fields and "x-hop" not in fields
    assert fields["content-length"] == "5" and body == "short"
    assert fields["x-kept"] == "yes"
    s.sendall(b"GET /hops HTTP/1.1\r\nHost: x\r\n\r\n")
    assert s.recv(65536).startswith(b"HTTP/1.1 200"), "the connection is still in step"


def test_metrics_can_require_a_signature(tmp_path):
    server = Server(tmp_path, config={"metrics_auth": True}).start()
    try:
        assert send(server, "GET", "/metrics")[0] == 401
        status, _, body = call(server, "GET", "/metrics")
        assert status == 200 and b"fnhost_invocations_in_flight" in body
        assert send(server, "GET", "/healthz")[0] == 200
    finally:
        server.stop(signal.SIGKILL)


def test_no_answer_shows_a_server_path(server):
    urn = create(server, "pathless")
    answers = [
        call(server, "POST", BASE, create_body("bad", handler="nosuch.Handler")),
        call(server, "PUT", f"{BASE}/{urn}/code",
             {"code_type": "zip", "func_code": {"file": zip_b64("libecho.so", "echo")}}),
        call(server, "GET", f"{BASE}/{urn}/config"),
        call(server, "POST", BASE, create_body("bad2", handler="testplugin.NoSuchHandler")),
    ]
    for status, _, body in answers:
        text = body.decode()
        for secret in (str(server.tmp), "/tmp/", "/code/", "/libs/", "/data/"):
            assert secret not in text, text
    assert "looked for nosuch.so" in answers[0][2].decode()


# 4. Input is checked, not wrapped.

def test_numbers_from_requests_are_checked_not_wrapped(server):
    urn = create(server, "numbers")
    call(server, "POST", f"{BASE}/{urn}/versions", {"version": "v1"})
    call(server, "POST", f"{BASE}/{urn}/versions", {"version": "v2"})
    bad = [
        ("POST", f"{BASE}/{urn}/aliases", {"name": "a", "version": "v1",
                                           "additional_version_weights": {"v2": 4294967295}}),
        ("POST", f"{BASE}/{urn}/aliases", {"name": "a", "version": "v1",
                                           "additional_version_weights": {"v2": 101}}),
        ("POST", f"/v2/{PROJECT}/fgs/triggers/{urn}", {"trigger_type_code": "TIMER", "event_data": {
            "name": "t", "schedule_type": "Rate", "schedule": "213503982334602d"}}),
        ("POST", f"/v2/{PROJECT}/fgs/triggers/{urn}", {"trigger_type_code": "TIMER", "event_data": {
            "name": "t", "schedule_type": "Rate", "schedule": "400d"}}),
        ("PUT", f"{BASE}/{urn}/config-max-instance", {"max_instance_num": 4294967295}),
        ("PUT", f"{BASE}/{urn}/config-max-instance", {"max_instance_num": 1001}),
        ("PUT", f"{BASE}/{urn}/reservedinstances", {"count": 4294967295}),
        ("PUT", f"{BASE}/{urn}/config", {"timeout": 4294967295}),
        ("PUT", f"{BASE}/{urn}/config", {"timeout": 901}),
        ("PUT", f"{BASE}/{urn}/config", {"memory_size": 100}),
        ("PUT", f"{BASE}/{urn}/config", {"initializer_timeout": 4294967295}),
    ]
    for method, path, body in bad:
        status, _, answer = call(server, method, path, body)
        assert status == 400, (body, answer)
        assert set(json.loads(answer)) == {"error_code", "error_msg"}
    # The reserved count fits within the maximum, and nothing was left spinning.
    assert call(server, "PUT", f"{BASE}/{urn}/config-max-instance", {"max_instance_num": 3})[0] == 200
    assert call(server, "PUT", f"{BASE}/{urn}/reservedinstances", {"count": 4})[0] == 400
    assert call(server, "PUT", f"{BASE}/{urn}/reservedinstances", {"count": 2})[0] == 200
    started = time.time()
    assert call(server, "GET", f"{BASE}/{urn}/config")[0] == 200
    assert call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
    assert time.time() - started < 2
    config = json.loads(call(server, "GET", f"{BASE}/{urn}/config")[2])
    assert config["timeout"] == 3 and config["memory_size"] == 128


# 5. Counters that hold.

def test_a_caller_that_disconnects_is_counted_and_the_gauge_returns(open_server):
    from test_http import create as plain_create
    urn = plain_create(open_server, "slow", module="misbehaving", handler="Sleep", library="libmisbehaving.so")
    s = raw(open_server, (f"POST {BASE}/{urn}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          "Content-Length: 3\r\n\r\n800").encode())

    def scrape():
        return send(open_server, "GET", "/metrics")[2].decode()
    assert eventually(lambda: "fnhost_invocations_in_flight 1\n" in scrape()), "the call did not start"
    s.close()

    def counted():
        metrics = scrape()
        return "fnhost_invocations_in_flight 0" in metrics and 'outcome="cancelled"} 1' in metrics
    eventually(counted)
    metrics = scrape()
    assert "fnhost_invocations_in_flight 0" in metrics, metrics
    assert 'fnhost_invocations_total{function="slow",version="latest",outcome="cancelled"} 1' in metrics


# 6. Packages are managed.

def test_refused_replaced_and_deleted_packages_leave_nothing_on_disk(server):
    urn = create(server, "tidy")
    first = packages(server)
    assert len(first) == 1
    refused = [
        zip_entries_b64({"testplugin.so": b"\x7fELF truncated"}),
        zip_entries_b64({"../evil.so": b"x"}),
        "bm90IGEgemlw",
    ]
    for code in refused:
        status, _, _ = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {"file": code}})
        assert status == 400
    status, _, _ = call(server, "POST", BASE, create_body("refused", handler="missing.Handler"))
    assert status == 400
    assert packages(server) == first, "refused uploads left something behind"
    # Replaced code is deleted; a version keeps its own.
    call(server, "POST", f"{BASE}/{urn}/versions", {"version": "v1"})
    status, _, _ = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {
        "file": build(b"Z")}})
    assert status == 200
    assert len(packages(server)) == 2
    status, _, _ = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {
        "file": build(b"Y")}})
    assert len(packages(server)) == 2, "the replaced package (no version uses it) is gone"
    assert call(server, "DELETE", f"{BASE}/{urn}")[0] == 204
    assert packages(server) == []
    # Cached library copies nobody uses are gone too.
    create(server, "again")
    cache = server.tmp / "cache"
    copies = [p for p in cache.iterdir() if p.suffix == ".so"]
    assert len(copies) == 1, copies


def test_concurrent_uploads_of_the_same_bytes_both_succeed_and_leftovers_are_removed_at_start(server):
    import threading
    urn = create(server, "racer")
    code = {"code_type": "zip", "func_code": {"file": build(b"R")}}
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(server, "PUT", f"{BASE}/{urn}/code", code)[0]))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200, 200, 200]
    server.stop(signal.SIGKILL)
    code_dir = server.tmp / "data" / "code"
    (code_dir / ".tmp-interrupted").mkdir()
    (code_dir / ("ab" * 32)).mkdir()  # a package torn by a crash
    server.start()
    assert packages(server) == [json.loads(call(server, "GET", f"{BASE}/{urn}/config")[2])["digest"]]
    assert call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_reported_as_such(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(data)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        server = Server(tmp_path).start()
        urn = create(server, "full", module="echo", library="libecho.so", handler="echo.Handler")
        with open(data / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        other = zip_entries_b64({"echo.so": (TARGET / "libecho.so").read_bytes(), "extra.txt": b"F"})
        status, _, body = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {
            "file": other}})
        assert status == 507, body
        assert "disk is full" in json.loads(body)["error_msg"]
        assert call(server, "POST", f"{BASE}/{urn}/invocations", b"{}")[0] == 200
        server.stop(signal.SIGKILL)
    finally:
        subprocess.run(["umount", "-l", str(data)])


# 7. Two-step updates work.

def sdk_status(client, urn):
    response = client.show_function_config(ShowFunctionConfigRequest(function_urn=urn))
    raw_config = json.loads(response.raw_content)
    return response, raw_config["last_update_status"], raw_config["last_update_status_reason"]


def sdk_invoke(client, urn):
    return client.invoke_function(InvokeFunctionRequest(
        function_urn=urn, x_cff_request_version="v1", body={"key": "NAME"})).result


@pytest.mark.parametrize("order", ["code first", "config first"])
def test_a_function_moves_to_another_library_in_two_steps(server, order):
    client = client_for(server)
    created = client.create_function(CreateFunctionRequest(body=CreateFunctionRequestBody(
        func_name="mover", package="default", runtime="Rust1.x", handler="echo.Handler",
        memory_size=128, timeout=3, code_type="zip", func_code=FuncCode(file=zip_b64("libecho.so", "echo")))))
    urn = created.func_urn
    echoed = {"key": "NAME"}
    assert json.loads(sdk_invoke(client, urn)) == echoed
    orders = zip_b64("libtestplugin.so", "orders")

    def update_code():
        client.update_function_code(UpdateFunctionCodeRequest(function_urn=urn, body=UpdateFunctionCodeRequestBody(
            code_type="zip", func_code=FuncCode(file=orders))))

    def update_config():
        client.update_function_config(UpdateFunctionConfigRequest(function_urn=urn, body=UpdateFunctionConfigRequestBody(
            func_name="mover", runtime="Rust1.x", handler="orders.Handler", memory_size=128, timeout=3)))

    first, second = (update_code, update_config) if order == "code first" else (update_config, update_code)
    first()
    response, status, reason = sdk_status(client, urn)
    assert status == "Failed", reason
    missing = "`echo`" if order == "code first" else "`orders`"
    assert missing in reason and "/" not in reason, reason
    # Persisted as asked, while the previous generation serves.
    assert response.handler == ("echo.Handler" if order == "code first" else "orders.Handler")
    assert json.loads(sdk_invoke(client, urn)) == echoed, "the previous code keeps serving"
    # Survives a restart in the same state.
    server.stop(signal.SIGKILL)
    server.start()
    client = client_for(server)
    assert sdk_status(client, urn)[1] == "Failed"
    assert json.loads(sdk_invoke(client, urn)) == echoed
    second()
    response, status, reason = sdk_status(client, urn)
    assert status == "Successful" and reason == ""
    assert response.handler == "orders.Handler"
    answer = json.loads(sdk_invoke(client, urn))
    assert answer != echoed and "request_id" in answer, answer


def test_a_change_that_cannot_load_is_reported_and_serves_nothing_new(server, tmp_path):
    client = client_for(server)
    urn = create(server, "steady")
    before = json.loads(sdk_invoke(client, urn))
    # A complete shared object that is no fnhost plugin: stored, but it does not load.
    source = tmp_path / "plain.c"
    source.write_text("int plain(void) { return 7; }\n")
    plain = tmp_path / "plain.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(plain), str(source)], check=True)
    code = zip_entries_b64({"testplugin.so": plain.read_bytes()})
    status, _, body = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {"file": code}})
    assert status == 200, body
    assert json.loads(body)["last_update_status"] == "Failed"
    _, status, reason = sdk_status(client, urn)
    assert status == "Failed" and "not an fnhost plugin" in reason and "/" not in reason, reason
    after = json.loads(sdk_invoke(client, urn))
    assert after["user_data"] == before["user_data"] and "request_id" in after
