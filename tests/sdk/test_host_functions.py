"""The host functions `fnhost serve` offers its functions (`kv.get`,
`kv.put`, `kv.delete`, `invoke`), over raw HTTP: each reaches only the
host functions its configuration lists, in process and from a sandboxed
worker alike; key-value spaces are each function's own, bounded, kept
across a restart and deleted with the function; `invoke` reaches the
caller's own project only, carries the callee's error type, and its
nesting is bounded.

The plugin is tests/fixtures/host_calls.c: its `Call` handler takes
"NAME\\nINPUT", calls host function NAME with INPUT and answers
"ok <output>" or "error <type> <message>"."""
import json
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import PROJECT, ROOT, Server, zip_b64, zip_entries_b64
from test_front_door import BASE, call, create_body

KV = ["kv.get", "kv.put", "kv.delete"]


@pytest.fixture(scope="module")
def host_calls(tmp_path_factory):
    out = tmp_path_factory.mktemp("host_calls") / "host_calls.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror",
                    "-I", str(ROOT / "plugin-api" / "include"), "-o", str(out),
                    str(ROOT / "tests" / "fixtures" / "host_calls.c")], check=True)
    return zip_entries_b64({"host_calls.so": out.read_bytes()})


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path).start()
    yield s
    s.stop(signal.SIGKILL)


def deploy(server, code, name, project=PROJECT, **extra):
    body = {"func_name": name, "package": "default", "runtime": "Rust1.x",
            "handler": "host_calls.Call", "memory_size": 128, "timeout": 5, "code_type": "zip",
            "func_code": {"file": code}}
    body.update(extra)
    status, _, answer = call(server, "POST", f"/v2/{project}/fgs/functions", body)
    assert status == 200, answer
    return json.loads(answer)


def host_call(server, fname, name: str, data: bytes = b"") -> str:
    status, _, answer = call(server, "POST", f"{BASE}/{fname}/invocations",
                             name.encode() + b"\n" + data)
    assert status == 200, answer
    return answer.decode(errors="replace")


@pytest.mark.parametrize("isolation", ["in-process", "process"])
def test_kv_spaces_are_each_functions_own_and_survive_a_restart(server, host_calls, isolation):
    a = deploy(server, host_calls, "kva", isolation=isolation, host_functions=KV)
    assert a["host_functions"] == KV
    deploy(server, host_calls, "kvb", isolation=isolation, host_functions=KV)
    assert host_call(server, "kva", "kv.put", b"greeting\nfrom a") == "ok "
    assert host_call(server, "kvb", "kv.get", b"greeting").startswith("error KvKeyNotFound ")
    assert host_call(server, "kvb", "kv.put", b"greeting\nfrom b") == "ok "
    assert host_call(server, "kva", "kv.get", b"greeting") == "ok from a"
    assert host_call(server, "kvb", "kv.get", b"greeting") == "ok from b"
    # Values are bytes: a newline in one is the value's.
    assert host_call(server, "kva", "kv.put", b"lines\none\ntwo") == "ok "
    assert host_call(server, "kva", "kv.get", b"lines") == "ok one\ntwo"
    # Bounds, each a typed error: the key, the value, the form.
    for name, data in [("kv.get", b""), ("kv.get", b"k" * 257), ("kv.put", b"no newline"),
                       ("kv.put", b"k\t\nv"), ("kv.put", b"big\n" + b"v" * (1024 * 1024 + 1))]:
        assert host_call(server, "kva", name, data).startswith("error KvInvalidInput "), name
    assert host_call(server, "kva", "kv.delete", b"lines") == "ok true"
    assert host_call(server, "kva", "kv.delete", b"lines") == "ok false"
    # Kept across a restart.
    server.stop()
    server.start()
    assert host_call(server, "kva", "kv.get", b"greeting") == "ok from a"
    # Deleted with the function: a new function of the same name starts empty.
    status, _, answer = call(server, "DELETE", f"{BASE}/kva")
    assert status in (200, 204), answer
    deploy(server, host_calls, "kva", isolation=isolation, host_functions=KV)
    assert host_call(server, "kva", "kv.get", b"greeting").startswith("error KvKeyNotFound ")
    assert host_call(server, "kvb", "kv.get", b"greeting") == "ok from b"


@pytest.mark.parametrize("isolation", ["in-process", "process"])
def test_a_call_of_a_deleted_function_never_reaches_a_new_one_of_its_name(server, host_calls, isolation):
    """An outside attack found kv spaces keyed by the function's name: a
    call of a deleted function still running read and wrote the space of a
    function created after it under the same name, in any project, and
    what it wrote stayed behind, owned and counted by nobody."""
    import threading
    import time
    body = dict(isolation=isolation, host_functions=KV, handler="host_calls.SleepCall")
    deploy(server, host_calls, "zomb", **body)
    answers = {}

    def late(label, payload):
        status, _, answer = call(server, "POST", f"{BASE}/zomb/invocations", payload)
        answers[label] = (status, answer.decode(errors="replace"))
    late("put", b"0\nkv.put\nmine\nold")
    assert answers["put"] == (200, "ok "), answers
    # Two calls of the first `zomb` that act after it is deleted and a new
    # `zomb` (in another project) exists: one reads what the new one
    # wrote, one writes.
    readers = [threading.Thread(target=late, args=("read", b"3000\nkv.get\nsecret")),
               threading.Thread(target=late, args=("write", b"3000\nkv.put\nplanted\nby the old one"))]
    for t in readers:
        t.start()
    time.sleep(0.4)
    status, _, answer = call(server, "DELETE", f"{BASE}/zomb")
    assert status in (200, 204), answer
    deploy(server, host_calls, "zomb", project="proj2", **body)
    status, _, answer = call(server, "POST", "/v2/proj2/fgs/functions/zomb/invocations",
                             b"0\nkv.put\nsecret\nhunter2")
    assert (status, answer) == (200, b"ok "), answer
    for t in readers:
        t.join()
    assert answers["read"][0] == 200 and answers["read"][1].startswith("error KvKeyNotFound "), answers
    assert answers["write"][0] == 200 and answers["write"][1].startswith("error KvSpaceClosed "), answers
    for key, expected in [(b"mine", "error KvKeyNotFound "), (b"planted", "error KvKeyNotFound "),
                          (b"secret", "ok hunter2")]:
        status, _, answer = call(server, "POST", "/v2/proj2/fgs/functions/zomb/invocations",
                                 b"0\nkv.get\n" + key)
        assert answer.decode().startswith(expected), (key, answer)


def test_a_create_that_fails_leaves_no_keys_behind(server, host_calls):
    """An outside attack created functions whose initializer wrote 16 MiB
    and then failed: each create answered 400 and left its keys behind,
    owned by no function and counted by no bound."""
    import sqlite3
    body = {"func_name": "initfail", "package": "default", "runtime": "Rust1.x",
            "handler": "host_calls.Call", "initializer_handler": "host_calls.InitFail",
            "memory_size": 128, "timeout": 5, "code_type": "zip", "func_code": {"file": host_calls},
            "host_functions": KV}
    for _ in range(3):
        status, _, answer = call(server, "POST", BASE, body)
        assert status == 400, answer
    db = sqlite3.connect(f"file:{server.tmp / 'data' / 'state.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT count(*) FROM function_kv").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM kv_spaces").fetchone()[0] == 0
    finally:
        db.close()


def test_a_function_reaches_only_the_host_functions_it_lists(server, host_calls):
    deploy(server, host_calls, "none")
    deploy(server, host_calls, "reader", host_functions=["kv.get"])
    deploy(server, host_calls, "isolated_reader", isolation="process", host_functions=["kv.get"])
    # Not listed reads as not there, in process and from a worker.
    for fname in ["none", "reader", "isolated_reader"]:
        assert host_call(server, fname, "kv.put", b"k\nv").startswith("error HostFunctionNotFound "), fname
        assert host_call(server, fname, "invoke", b"none").startswith("error HostFunctionNotFound "), fname
    assert host_call(server, "none", "kv.get", b"k").startswith("error HostFunctionNotFound ")
    assert host_call(server, "reader", "kv.get", b"k").startswith("error KvKeyNotFound ")
    # A name the server does not offer is refused when it is configured.
    status, _, answer = call(server, "POST", BASE,
                             {**create_body("bad"), "host_functions": ["cache.get"]})
    assert status == 400, answer
    assert b"cache.get" in answer and b"kv.get" in answer
    status, _, answer = call(server, "POST", BASE,
                             {**create_body("bad"), "host_functions": [f"kv.get{i}" for i in range(33)]})
    assert status == 400, answer
    # Repetitions are one name.
    status, _, answer = call(server, "POST", BASE,
                             {**create_body("twice"), "host_functions": ["kv.get", "kv.put", "kv.get"]})
    assert status == 200 and json.loads(answer)["host_functions"] == ["kv.get", "kv.put"], answer
    # The list changes with the configuration.
    status, _, answer = call(server, "PUT", f"{BASE}/reader/config",
                             {"host_functions": ["kv.get", "kv.put"]})
    assert status == 200, answer
    assert json.loads(answer)["host_functions"] == ["kv.get", "kv.put"]
    assert host_call(server, "reader", "kv.put", b"k\nv") == "ok "
    assert host_call(server, "reader", "kv.get", b"k") == "ok v"
    status, _, answer = call(server, "PUT", f"{BASE}/reader/config", {"host_functions": []})
    assert status == 200, answer
    assert host_call(server, "reader", "kv.get", b"k").startswith("error HostFunctionNotFound ")


def test_invoke_reaches_the_callers_project_only(server, host_calls):
    deploy(server, host_calls, "caller", host_functions=["invoke"])
    deploy(server, host_calls, "isolated_caller", isolation="process", host_functions=["invoke"])
    status, _, answer = call(server, "POST", BASE, create_body(
        "echo", handler="echo.Handler", library="libecho.so", module="echo"))
    assert status == 200, answer
    urn = json.loads(answer)["func_urn"]
    status, _, answer = call(server, "POST", BASE, create_body(
        "orders", handler="misbehaving.CustomError", library="libmisbehaving.so", module="misbehaving"))
    assert status == 200, answer
    deploy(server, host_calls, "foreign", project="proj2")
    for fname in ["caller", "isolated_caller"]:
        assert host_call(server, fname, "invoke", b"echo\nhello") == "ok hello", fname
        assert host_call(server, fname, "invoke", urn.encode() + b"\nby urn") == "ok by urn", fname
        assert host_call(server, fname, "invoke", b"echo:latest\n") == "ok ", fname
        # The callee's failure keeps its type.
        assert host_call(server, fname, "invoke", b"orders\n{}") == "error OrderNotFound no such order"
        # Another project: refused by URN, not there by name.
        other = urn.replace(f":{PROJECT}:", ":proj2:").replace(":echo:", ":foreign:")
        assert host_call(server, fname, "invoke", other.encode()).startswith("error InvokeForbidden ")
        assert host_call(server, fname, "invoke", b"foreign\nx").startswith("error FunctionNotFound ")
        assert host_call(server, fname, "invoke", b"missing\nx").startswith("error FunctionNotFound ")
        assert host_call(server, fname, "invoke", b"echo:v9\nx").startswith("error FunctionNotFound ")
        assert host_call(server, fname, "invoke", b"a:b:c\nx").startswith("error InvokeInvalidTarget ")
    # A function that invokes itself: the nesting stops at 8 host calls,
    # answered at the innermost, and every level answers (no deadlock).
    chain = b"caller\ninvoke\n" * 12 + b"echo\ndone"
    answer = host_call(server, "caller", "invoke", chain)
    assert answer.startswith("ok " * 8 + "error HostCallDepthExceeded "), answer
    # The callee's invocations are counted as any other.
    status, _, metrics = call(server, "GET", "/metrics")
    assert status == 200
    assert 'fnhost_invocations_total{function="echo"' in metrics.decode(), metrics[:2000]


def test_a_directory_function_reaches_what_its_sidecar_lists(tmp_path, host_calls):
    """A library dropped into --functions-dir reaches no host function
    unless its sidecar `NAME.toml` lists it (`plain.so` has none)."""
    import base64
    import io
    import time
    import urllib.error
    import urllib.request
    import zipfile
    functions = tmp_path / "functions"
    functions.mkdir()
    library = zipfile.ZipFile(io.BytesIO(base64.b64decode(host_calls))).read("host_calls.so")
    (functions / "plain.so").write_bytes(library)
    (functions / "unlisted.so").write_bytes(library)
    (functions / "unlisted.toml").write_text('handler = "unlisted.Call"\n')
    (functions / "listed.so").write_bytes(library)
    (functions / "listed.toml").write_text(
        'handler = "listed.Call"\nhost_functions = ["kv.get", "kv.put"]\n')
    s = Server(tmp_path, keys=False, extra_args=["--functions-dir", str(functions)])
    s.start()
    try:
        def invoke(fname, data):
            deadline = time.time() + 15
            while True:
                req = urllib.request.Request(f"{s.url}/v2/default/fgs/functions/{fname}/invocations",
                                             data=data, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        return r.read().decode()
                except urllib.error.HTTPError as e:
                    if e.code != 404 or time.time() > deadline:
                        raise
                    time.sleep(0.1)
        assert invoke("unlisted", b"kv.get\nk").startswith("error HostFunctionNotFound ")
        assert invoke("plain", b"kv.get\nk").startswith("error HostFunctionNotFound ")
        assert invoke("listed", b"kv.put\nk\nv") == "ok "
        assert invoke("listed", b"kv.get\nk") == "ok v"
        assert invoke("listed", b"kv.delete\nk").startswith("error HostFunctionNotFound ")
        # The directory is its source: the API neither deletes it (nor its
        # keys) nor replaces its code (an outside attack deleted both).
        base = "/v2/default/fgs/functions/listed"
        status, _, answer = call(s, "DELETE", base)
        assert status == 409, answer
        status, _, answer = call(s, "PUT", f"{base}/code",
                                 {"code_type": "zip", "func_code": {"file": host_calls}})
        assert status == 409, answer
        assert invoke("listed", b"kv.get\nk") == "ok v"
        # Its space is its own: with the library gone, a function created
        # through the API under its name (in another project) starts empty
        # (an outside attack read a directory function's keys that way).
        s.stop()
        (functions / "listed.so").unlink()
        (functions / "listed.toml").unlink()
        s.start()
        deploy(s, host_calls, "listed", project="other", handler="host_calls.Call",
               host_functions=["kv.get"])
        status, _, answer = call(s, "POST", "/v2/other/fgs/functions/listed/invocations", b"kv.get\nk")
        assert status == 200 and answer.startswith(b"error KvKeyNotFound "), answer
    finally:
        s.stop(signal.SIGKILL)
