"""Logs after the fact: a function's recent lines through the API and
`fnhost logs`, and the server's own log as JSON lines."""
import json
import signal
import subprocess
import time
import urllib.request

from conftest import TARGET, Server, client_for
from test_async import post, wait_for
from test_sdk import create


def test_a_functions_lines_are_read_by_request_id_time_and_followed(tmp_path):
    server = Server(tmp_path, keys=False).start()
    try:
        client = client_for(server)
        created = create(client, name="chatty", library="libecho.so", module="echo", handler="Logged")
        base = f"{server.url}/v2/proj1/fgs/functions/{created.func_urn}"
        ids = []
        for i in range(3):
            _, headers, _ = post(base + "/invocations", body=b"x" * (i + 1))
            ids.append(headers["X-Cff-Request-Id"])
        with urllib.request.urlopen(f"{base}/logs?request_id={ids[1]}", timeout=10) as r:
            answer = json.loads(r.read())
        [line] = answer["lines"]
        assert line["request_id"] == ids[1] and f"{ids[1]} sdk" in line["line"] and "2 bytes" in line["line"]
        with urllib.request.urlopen(f"{base}/logs?since_ms={int(time.time() * 1000) + 60000}", timeout=10) as r:
            assert json.loads(r.read())["lines"] == [], "nothing from the future"
        # The CLI prints the same lines.
        out = subprocess.run([str(TARGET / "fnhost"), "logs", "chatty", "--url", server.url, "--project", "proj1"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert [l.split(" ")[1] for l in out.stdout.splitlines()] == ids
        # --follow prints new lines as they come.
        follow = subprocess.Popen([str(TARGET / "fnhost"), "logs", "chatty", "--follow", "--url", server.url,
                                   "--project", "proj1"], stdout=subprocess.PIPE, text=True)
        try:
            for _ in ids:
                follow.stdout.readline()
            _, headers, _ = post(base + "/invocations", body=b"later")
            later = follow.stdout.readline()
            assert headers["X-Cff-Request-Id"] in later and "5 bytes" in later
        finally:
            follow.kill()
            follow.wait()
        out = subprocess.run([str(TARGET / "fnhost"), "logs", "nosuch", "--url", server.url, "--project", "proj1"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 1 and "Not found" in out.stderr
    finally:
        server.stop(signal.SIGKILL)


def test_the_server_log_is_json_lines_with_request_and_trace_ids(tmp_path, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "info")
    server = Server(tmp_path, keys=False, extra_args=["--log-format", "json"]).start()
    try:
        client = client_for(server)
        created = create(client, name="ids", library="libecho.so", module="echo", handler="Ids")
        base = f"{server.url}/v2/proj1/fgs/functions/{created.func_urn}"
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        _, headers, _ = post(base + "/invocations", headers={"traceparent": traceparent})
        request_id = headers["X-Cff-Request-Id"]

        def lines():
            return [json.loads(l) for l in (tmp_path / "server.log").read_text().splitlines() if l.startswith("{")]

        mine = wait_for(lambda: (lambda m: m if {l["target"] for l in m} >= {"fnhost::http", "fnhost::function"} else None)(
            [l for l in lines() if l.get("request_id") == request_id]), "the request's lines")
        assert all(l["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" for l in mine), mine
        [http] = [l for l in mine if l["target"] == "fnhost::http"]
        assert "status=200" in http["message"]
        [handler] = [l for l in mine if l["target"] == "fnhost::function"]
        assert "ids of a 2-byte payload" in handler["message"]
        every = lines()
        assert len(every) > 3
        assert all({"time", "level", "target", "message", "request_id", "trace_id"} <= l.keys() for l in every)
    finally:
        server.stop(signal.SIGKILL)
