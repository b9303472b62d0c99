"""The OpenAPI description: served at /openapi.json as shipped in the
repository (host/server/api/openapi.json; a Rust test holds it to the
router), and a bounded property-based run of schemathesis against a live
server finds no 5xx and no answer that contradicts the document."""
import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

SHIPPED = ROOT / "host" / "server" / "api" / "openapi.json"


def call_json(server, path):
    import urllib.request
    with urllib.request.urlopen(server.url + path) as r:
        return r.status, r.headers["Content-Type"], json.loads(r.read())


def test_the_shipped_description_is_what_its_generator_writes():
    r = subprocess.run([sys.executable, str(SHIPPED.with_name("openapi.py")), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_the_served_description_is_the_shipped_one(open_server):
    status, content_type, served = call_json(open_server, "/openapi.json")
    assert status == 200 and content_type == "application/json"
    assert served == json.loads(SHIPPED.read_text())
    assert served["openapi"].startswith("3.")


def test_schemathesis_finds_no_server_error_and_no_contradiction(open_server, tmp_path):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    r = subprocess.run(
        [str(schemathesis), "run", open_server.url + "/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
         "--max-examples", "10", "--seed", "1", "--generation-deterministic",
         "--phases", "examples,coverage,fuzzing", "--max-time", "60", "--workers", "1",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert " passed" in out and "failed" not in out.split("SUMMARY")[-1], out[-4000:]
    # The server is still well afterwards.
    assert call_json(open_server, "/openapi.json")[0] == 200
