"""Native code contained, seen from the server: a library whose constructor
crashes, exits or blocks fails its deploy and nothing else; the server
restarts with such a library in --functions-dir; process isolation maps no
library in the server."""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import pytest
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ROOT, TARGET, Server, client_for, eventually, zip_entries_b64
from test_front_door import BASE, call, create, create_body, sdk_invoke, send, signed


def fixture(name: str, out: Path) -> Path:
    """tests/fixtures/<name>.c compiled against fnhost.h."""
    lib = out / f"{name}.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror",
                    "-I", str(ROOT / "plugin-api" / "include"), "-o", str(lib),
                    str(ROOT / "tests" / "fixtures" / f"{name}.c")], check=True)
    return lib


def invoke_until_served(url, data, limit=15):
    """The --functions-dir deploys run beside the server's start."""
    deadline = time.time() + limit
    while True:
        req = urllib.request.Request(url, data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code != 404 or time.time() > deadline:
                raise
            time.sleep(0.1)


def get(server, path, timeout=5):
    with urllib.request.urlopen(server.url + path, timeout=timeout) as r:
        return r.status, r.read()


def test_a_library_whose_constructor_crashes_fails_its_deploy_not_the_server(server, tmp_path):
    client = client_for(server)
    steady = create(server, "steady")
    for ctor, what in [("ctor_abort", "crashed: SIGABRT"), ("ctor_segv", "crashed: SIGSEGV"),
                       ("ctor_exit", "exited the process with status 7")]:
        lib = fixture(ctor, tmp_path)
        body = create_body(ctor.replace("_", "-"), handler="testplugin.Handler")
        body["func_code"] = {"file": zip_entries_b64({"testplugin.so": lib.read_bytes()})}
        status, _, answer = call(server, "POST", BASE, body)
        text = answer.decode()
        assert status in (200, 400), text
        assert f"the library's initialization code {what}" in text, text
        assert str(tmp_path) not in text and "/code/" not in text, text
        # The server and every other function keep serving.
        assert "request_id" in json.loads(sdk_invoke(client, steady))
    assert server.proc.poll() is None


def test_a_blocking_constructor_holds_nothing_while_its_deploy_waits(server, tmp_path):
    client = client_for(server)
    steady = create(server, "steady")
    lib = fixture("ctor_block", tmp_path)
    body = create_body("blocked", handler="testplugin.Handler")
    body["func_code"] = {"file": zip_entries_b64({"testplugin.so": lib.read_bytes()})}
    result = {}
    data = json.dumps(body).encode()
    headers = signed(server, "POST", BASE, data)
    deploy = threading.Thread(
        target=lambda: result.update(answer=send(server, "POST", BASE, data, headers, timeout=40)))
    deploy.start()
    # A second into the deploy, its constructor blocking, the deploy must
    # still be waiting, and the calls below then run during it.
    time.sleep(1)  # Fixed wait: the deploy must not end in it.
    assert deploy.is_alive(), "the pre-flight gives the constructor its 10 s"
    started = time.time()
    assert "request_id" in json.loads(sdk_invoke(client, steady))
    assert get(server, "/metrics")[0] == 200
    status, _, _ = call(server, "GET", BASE)
    assert status == 200
    assert time.time() - started < 3, "invocations, metrics and listings answer during the deploy"
    deploy.join(timeout=30)
    status, _, answer = result["answer"]
    assert "did not finish within 10 s" in answer.decode(), answer


def test_the_server_restarts_with_a_crashing_library_in_its_functions_dir(tmp_path):
    functions = tmp_path / "functions"
    functions.mkdir()
    shutil.copy(TARGET / "libecho.so", functions / "echo.so")
    for ctor in ["ctor_abort", "ctor_exit"]:
        fixture(ctor, functions)
    s = Server(tmp_path, keys=False, extra_args=["--functions-dir", str(functions)])
    try:
        s.start()
        url = f"{s.url}/v2/default/fgs/functions/echo/invocations"
        assert invoke_until_served(url, b'"still here"') == b'"still here"'
        eventually(lambda: all(line in (tmp_path / "server.log").read_text() for line in [
            "the library's initialization code crashed: SIGABRT",
            "the library's initialization code exited the process with status 7"]))
        log = (tmp_path / "server.log").read_text()
        assert "the library's initialization code crashed: SIGABRT" in log, log
        assert "the library's initialization code exited the process with status 7" in log, log
    finally:
        s.stop(signal.SIGKILL)


def test_process_isolation_maps_no_library_in_the_server(tmp_path):
    functions = tmp_path / "functions"
    functions.mkdir()
    shutil.copy(TARGET / "libecho.so", functions / "echo.so")
    s = Server(tmp_path, keys=False,
               extra_args=["--functions-dir", str(functions), "--isolation", "process"])
    try:
        s.start()
        url = f"{s.url}/v2/default/fgs/functions/echo/invocations"
        req = urllib.request.Request(url, data=b'"isolated"', method="POST")
        assert invoke_until_served(url, b'"isolated"') == b'"isolated"'
        maps = Path(f"/proc/{s.proc.pid}/maps").read_text()
        assert "echo.so" not in maps and str(tmp_path / "cache") not in maps, maps
        # Rebuilt in place, it is redeployed, still without being mapped.
        config = f"{s.url}/v2/default/fgs/functions/echo/config"

        def digest():
            with urllib.request.urlopen(config, timeout=10) as r:
                return json.loads(r.read())["digest"]
        deployed = digest()
        data = bytearray((TARGET / "libecho.so").read_bytes())
        marker = b"fnhost-build-tag:"
        if marker in data:
            at = data.index(marker) + len(marker)
            data[at] = ord("Z")
        (functions / ".echo.so.tmp").write_bytes(bytes(data))
        (functions / ".echo.so.tmp").rename(functions / "echo.so")
        if marker in data:
            assert eventually(lambda: digest() != deployed), "the rebuilt library was not redeployed"
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.read() == b'"isolated"'
        maps = Path(f"/proc/{s.proc.pid}/maps").read_text()
        assert "echo.so" not in maps and str(tmp_path / "cache") not in maps
    finally:
        s.stop(signal.SIGKILL)


def children(pid):
    """(pid, state) of every process whose parent is `pid`."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(p.name), fields[0]))
    return found


def test_as_pid_1_the_server_reaps_what_killed_handlers_leave_behind(tmp_path):
    if subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"]).returncode != 0:
        pytest.skip("unprivileged PID namespaces are not available here")
    s = Server(tmp_path, keys=False)
    # --kill-child: the server (PID 1 inside) dies with the wrapper, which
    # stop() kills.
    s.wrapper = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"]
    try:
        s.start()
        host = [pid for pid, _ in children(s.proc.pid)]
        assert len(host) == 1, host
        host = host[0]
        body = create_body("forker", handler="forks.ForkAndSpin", timeout=1)
        body["func_code"] = {"file": zip_entries_b64({"forks.so": fixture("forks", tmp_path).read_bytes()})}
        body["isolation"] = "process"
        status, _, answer = call(s, "POST", BASE, body)
        assert status == 200, answer
        for _ in range(3):
            status, _, answer = call(s, "POST", f"{BASE}/forker/invocations", b"{}")
            assert b"timed out" in answer, answer
        # Each call left a child and a grandchild, killed with their worker's
        # group and reparented to the server: it must have reaped them.
        deadline = time.time() + 5
        while time.time() < deadline:
            zombies = [pid for pid, state in children(host) if state == "Z"]
            if not zombies:
                break
            time.sleep(0.1)
        assert not zombies, f"unreaped: {zombies}"
    finally:
        s.stop(signal.SIGKILL)


def test_a_directory_function_that_cannot_deploy_is_listed_failed_with_its_reason(tmp_path):
    """A library in --functions-dir that does not load (here: one whose
    constructor exits, and a sidecar naming another function) was reported only in the
    server's log: the listing now shows it, state Failed, with the reason
    (naming files, not the server's paths), and a fixed library serves."""
    functions = tmp_path / "functions"
    functions.mkdir()
    shutil.copy(TARGET / "libecho.so", functions / "echo.so")
    fixture("ctor_exit", functions)
    os.rename(functions / "ctor_exit.so", functions / "broken.so")
    shutil.copy(TARGET / "libecho.so", functions / "named.so")
    (functions / "named.toml").write_text('name = "other"\nhandler = "named.Handler"\n')
    s = Server(tmp_path, keys=False, extra_args=["--functions-dir", str(functions)])
    try:
        s.start()
        url = f"{s.url}/v2/default/fgs/functions"

        def listing():
            with urllib.request.urlopen(url, timeout=10) as r:
                return {f["func_name"]: f for f in json.loads(r.read())["functions"]}

        assert eventually(lambda: {"echo", "broken", "named"} <= set(listing())), listing()
        listed = listing()
        assert listed["echo"]["last_update_status"] == "Successful", listed["echo"]
        for name in ("broken", "named"):
            f = listed[name]
            assert f["last_update_status"] == "Failed", f
            assert f"nothing serves {name}" in f["last_update_status_reason"], f
            assert str(functions) not in f["last_update_status_reason"], f
        assert "named.toml" in listed["named"]["last_update_status_reason"], listed["named"]
        # Calling it is a clear refusal, and the server serves on.
        req = urllib.request.Request(f"{url}/broken/invocations", data=b"{}", method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("a function that never loaded answered")
        except urllib.error.HTTPError as e:
            assert 400 <= e.code < 500, (e.code, e.read())
        assert invoke_until_served(f"{url}/echo/invocations", b'"ok"') == b'"ok"'
        # Fixed: the library loads and the record says so.
        tmp = functions / "broken.so.tmp"
        shutil.copy(TARGET / "libecho.so", tmp)
        os.rename(tmp, functions / "broken.so")
        assert eventually(lambda: listing()["broken"]["last_update_status"] == "Successful", timeout=20), listing()
        assert invoke_until_served(f"{url}/broken/invocations", b'"fixed"') == b'"fixed"'
    finally:
        s.stop(signal.SIGKILL)
