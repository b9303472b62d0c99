"""The escape suite through `fnhost serve`: fixtures of tests/sandbox/
uploaded through the API with process isolation (from their handlers and
from their constructors at deploy time) cannot reach the server: not its
process, its files, its keys, its environment or its port; the isolation
floor refuses less and runs the rest at it; a function's sandbox policy
goes through the API; and a package altered on disk is never mapped as it
is, even with the sandbox off."""
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, Server, zip_entries_b64
from test_front_door import BASE, call, create

SANDBOX = ROOT / "tests" / "sandbox"


def full_sandbox():
    out = subprocess.run([str(ROOT / "target" / "debug" / "fnhost"), "sandbox", "check", "--json"],
                         capture_output=True, text=True)
    report = json.loads(out.stdout)
    return all(layer["available"] for layer in report["layers"])


pytestmark = pytest.mark.skipif(not full_sandbox(), reason="this kernel lacks a sandbox layer")


def fixture(name: str, out: Path, constructor=None) -> Path:
    """tests/sandbox/<name>.c, the attempt in its handler or constructor."""
    lib = out / f"{name}.so"
    args = ["cc", "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror",
            "-I", str(ROOT / "plugin-api" / "include"), "-I", str(SANDBOX)]
    if constructor is not None:
        args += ["-DIN_CONSTRUCTOR", f'-DATTEMPT_ARG="{constructor}"']
    subprocess.run(args + ["-o", str(lib), str(SANDBOX / f"{name}.c")], check=True)
    return lib


def deploy(server, tmp, name, fname, constructor=None, **extra):
    lib = fixture(name, tmp, constructor)
    body = {"func_name": fname, "package": "default", "runtime": "Rust1.x",
            "handler": f"{name}.Handler", "memory_size": 128, "timeout": 5, "code_type": "zip",
            "func_code": {"file": zip_entries_b64({f"{name}.so": lib.read_bytes()})}}
    body.update(extra)
    return call(server, "POST", BASE, body)


def invoke(server, fname, payload: bytes):
    status, _, answer = call(server, "POST", f"{BASE}/{fname}/invocations", payload)
    return status, answer.decode(errors="replace")


def serving(server, steady):
    assert server.proc.poll() is None, "the server is gone"
    status, answer = invoke(server, steady, b'{"key": "NAME"}')
    assert status == 200, answer
    with open(f"/proc/{server.proc.pid}/status") as f:
        assert "State:\tT" not in f.read(), "the server was stopped"


@pytest.fixture
def keyed_server(tmp_path, monkeypatch):
    # The README tells operators to pass keys in the environment.
    monkeypatch.setenv("FNHOST_SECRET_KEY", "the-servers-own-secret")
    s = Server(tmp_path).start()
    yield s
    s.stop()


def test_isolated_handlers_cannot_reach_the_server(keyed_server, tmp_path):
    s = keyed_server
    steady = "steady"
    create(s, steady)
    pid = s.proc.pid
    attempts = [
        ("kill_parent", b"", "kill(1, SIGKILL)"),
        ("kill_pid", f"{pid} 9".encode(), "No such process"),
        ("kill_pid", f"{pid} 19".encode(), "No such process"),
        ("read_file", str(s.config).encode(), "No such file or directory"),
        ("read_file", str(s.tmp / "data" / "state.db").encode(), "No such file or directory"),
        ("read_file", b"/etc/shadow", "No such file or directory"),
        ("proc_mem", str(pid).encode(), "No such file or directory"),
        ("connect", f"127.0.0.1 {s.port}".encode(), "onnect 127.0.0.1"),
        ("environment", b"", "FNHOST_WORKER_PROCESS=1"),
    ]
    for i, (name, payload, expect) in enumerate(attempts):
        fname = f"attempt-{i}"
        status, _, answer = deploy(s, tmp_path, name, fname, isolation="process")
        assert status == 200, answer
        status, answer = invoke(s, fname, payload)
        assert status == 200, answer
        assert expect in answer, (name, answer)
        assert "the-servers-own-secret" not in answer
        assert "connected" not in answer
        serving(s, steady)


def test_isolated_constructors_cannot_reach_the_server_at_deploy(keyed_server, tmp_path):
    s = keyed_server
    create(s, "steady")
    for i, (name, arg) in enumerate([("kill_parent", ""), ("kill_pid", f"{s.proc.pid} 9"),
                                     ("kill_from_proc", ""), ("read_file", str(s.config))]):
        status, _, answer = deploy(s, tmp_path, name, f"ctor-{i}", constructor=arg, isolation="process")
        assert status == 200, answer
        status, answer = invoke(s, f"ctor-{i}", b"{}")
        assert status == 200, answer
        serving(s, "steady")
    # A forbidden call in a constructor: named, and nothing else harmed.
    status, _, answer = deploy(s, tmp_path, "ptrace_parent", "ctor-ptrace", constructor="",
                               isolation="process")
    assert status == 400, answer
    assert b"forbidden system call: ptrace" in answer, answer
    serving(s, "steady")


def test_a_floor_refuses_less_isolation_and_runs_the_rest_at_it(tmp_path):
    s = Server(tmp_path, extra_args=["--min-isolation", "process"]).start()
    try:
        create(s, "steady")
        status, _, answer = deploy(s, tmp_path, "kill_parent", "asks-less", isolation="in-process")
        assert status == 400, answer
        assert b"below this server's floor `process`" in answer, answer
        # A constructor that would end the server's parent in process
        # (the pre-flight cannot tell): the function defaults lower, so it
        # runs at the floor, in a sandboxed worker.
        status, _, answer = deploy(s, tmp_path, "kill_parent", "defaults", constructor="")
        assert status == 200, answer
        status, answer = invoke(s, "defaults", b"{}")
        assert "kill(1, SIGKILL)" in answer, answer
        serving(s, "steady")
    finally:
        s.stop()


def test_the_layers_are_in_the_metrics(server):
    status, _, body = call(server, "GET", "/metrics")
    text = body.decode()
    for layer in ["pid namespace", "user namespace", "seccomp", "landlock", "cgroup memory"]:
        assert f'fnhost_sandbox_layer{{layer="{layer}"}} 1' in text, text[:2000]


def test_a_functions_sandbox_policy_goes_through_the_api(server, tmp_path):
    status, _, answer = deploy(server, tmp_path, "write_file", "tmpsize", isolation="process",
                               sandbox={"tmp_mb": 1})
    assert status == 200, answer
    assert json.loads(answer)["sandbox"]["tmp_mb"] == 1
    status, answer = invoke(server, "tmpsize", b"/tmp/big 3000000")
    assert "No space left on device" in answer or "File too large" in answer, answer
    status, _, answer = call(server, "GET", f"{BASE}/tmpsize/config")
    assert json.loads(answer)["sandbox"]["tmp_mb"] == 1, answer
    # Paths the operator did not allow, unknown keys: refused, typed.
    for sandbox in [{"read_only_paths": ["/etc"]}, {"tmp_mb": 0}, {"network": "everything"},
                    {"allow_outbound": ["127.0.0.1:5432"]}, {"tmp_mb": 10240},
                    {"env": ["AWS_SECRET_ACCESS_KEY"]},
                    {"network": "host", "allow_outbound": ["127.0.0.1:6379"]},
                    {"network": "host", "allow_outbound": ["169.254.169.254:80"]}]:
        status, _, answer = deploy(server, tmp_path, "write_file", "refused", isolation="process",
                                   sandbox=sandbox)
        assert status == 400, (sandbox, answer)


@pytest.mark.parametrize("sandbox", ["auto", "off"])
def test_a_library_altered_on_disk_is_never_mapped(tmp_path, sandbox):
    """The escalation: an isolated function overwrites another function's
    unpacked library under the data directory; the victim, in process,
    would run that code in the server after a configuration change. With
    the sandbox the file is out of reach; without it, the write lands but
    the package is verified when it is mapped again."""
    s = Server(tmp_path, extra_args=["--sandbox", sandbox]).start()
    try:
        victim = json.loads(call(s, "POST", BASE, {
            "func_name": "victim", "package": "default", "runtime": "Rust1.x",
            "handler": "testplugin.Handler", "memory_size": 128, "timeout": 3, "code_type": "zip",
            "func_code": {"file": zip_entries_b64({"testplugin.so": (ROOT / "target" / "debug" / "libtestplugin.so").read_bytes()})},
        })[2])
        library = s.tmp / "data" / "code" / victim["digest"] / "root" / "testplugin.so"
        assert library.is_file()
        status, _, answer = deploy(s, tmp_path, "write_file", "attacker", isolation="process")
        assert status == 200, answer
        status, answer = invoke(s, "attacker", f"{library} 4096".encode())
        if sandbox == "auto":
            assert answer.startswith(f"open {library}"), answer
        else:
            assert answer.startswith("wrote 4096 bytes"), answer
        status, _, answer = call(s, "PUT", f"{BASE}/victim/config", {"timeout": 4})
        assert status == 200, answer
        status, answer = invoke(s, "victim", b'{"key": "NAME"}')
        assert status == 200 and "request_id" in answer, answer
        assert library.stat().st_size == (ROOT / "target" / "debug" / "libtestplugin.so").stat().st_size
        if sandbox == "off":
            assert "was altered on disk" in (s.tmp / "server.log").read_text()
    finally:
        s.stop()
