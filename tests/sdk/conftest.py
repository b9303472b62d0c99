"""Fixtures: a real `fnhost serve` on a free loopback port, and SDK clients.

The workspace must be built first (scripts/test.sh does): the tests use
target/debug/fnhost and the sample plugins next to it.
"""
import base64
import io
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkfunctiongraph.v2 import FunctionGraphClient

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("FNHOST_TARGET_DIR", ROOT / "target" / "debug"))
AK, SK, PROJECT = "test-ak", "test-sk-0123456789", "proj1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(condition, timeout=10.0, interval=0.02):
    """Polls `condition()` until it returns a truthy value, and returns that
    value; once `timeout` seconds have passed, returns its last (falsy)
    value. Tests wait for a state with it, not for a time: the caller
    asserts on the answer (`assert eventually(...), "what did not happen"`),
    or lets the assertions that follow, on the same state, say what is
    wrong."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Server:
    """One `fnhost serve` process with its own data directory."""

    def __init__(self, tmp: Path, keys=True, extra_args=(), config=None):
        self.tmp = tmp
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "fnhost.json"
        settings = {
            "listen": f"127.0.0.1:{self.port}",
            "access_keys": [{"access_key": AK, "secret_key": SK}] if keys else [],
            # The tests' timers fire every second (FunctionGraph's minimum,
            # the server's default, is a minute).
            "min_timer_rate_seconds": 1,
        }
        settings.update(config or {})
        self.config.write_text(json.dumps(settings))
        self.proc = None
        self.preexec = None  # run in the server's process before exec
        self.wrapper = []  # a command the server runs under (e.g. unshare)

    def start(self):
        log = open(self.tmp / "server.log", "ab")
        self.proc = subprocess.Popen(
            self.wrapper + [str(TARGET / "fnhost"), "serve", "--config", str(self.config),
             "--data-dir", str(self.tmp / "data"), "--cache-dir", str(self.tmp / "cache")] + self.extra_args,
            stdout=log, stderr=log, preexec_fn=self.preexec)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fnhost serve exited: " + (self.tmp / "server.log").read_text())
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=1)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("fnhost serve did not come up")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            code = self.proc.wait(timeout=30)
            self.proc = None
            return code
        return None


@pytest.fixture
def server(tmp_path):
    s = Server(tmp_path).start()
    yield s
    s.stop(signal.SIGKILL)


@pytest.fixture
def open_server(tmp_path):
    """A server without access keys (loopback only, unauthenticated)."""
    s = Server(tmp_path, keys=False).start()
    yield s
    s.stop(signal.SIGKILL)


def client_for(server, ak=AK, sk=SK):
    return (FunctionGraphClient.new_builder()
            .with_credentials(BasicCredentials(ak, sk, PROJECT))
            .with_endpoints([server.url])
            .build())


@pytest.fixture
def client(server):
    return client_for(server)


def zip_b64(library: str, name: str, patch_tag: bytes = None) -> str:
    """A code package: target/debug/<library> stored as <name>.so at the zip's root."""
    data = (TARGET / library).read_bytes()
    if patch_tag is not None:
        marker = b"fnhost-build-tag:"
        at = data.index(marker) + len(marker)
        data = data[:at] + patch_tag + data[at + 1:]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}.so", data)
    return base64.b64encode(buf.getvalue()).decode()


def zip_entries_b64(entries: dict) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


def pytest_configure(config):
    # The official SDK warns when a time in an answer does not parse (it
    # once did for every listing, and for each waiting async invocation's
    # empty end_time): in these tests that warning is an error.
    config.addinivalue_line("filterwarnings", "error:Unable to convert string to datetime")
