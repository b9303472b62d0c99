"""`fnhost deploy` and `fnhost invoke --url` through the built binary, against
a live `fnhost serve` with access keys: a project made by `fnhost new`
(C, so that no cargo build runs here) is created with its triggers, updated,
and invoked remotely; an unsigned deploy, a server that does not answer and
a refused package are each one line and exit status 1."""
import json
import os
import subprocess

from conftest import AK, SK, TARGET, Server, free_port

FNHOST = str(TARGET / "fnhost")


def run(args, cwd, env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FNHOST_")}
    env.update(env_extra or {})
    return subprocess.run([FNHOST] + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def project(tmp_path):
    r = run(["new", "shop", "--lang", "c", "--dir", str(tmp_path / "shop")], tmp_path)
    assert r.returncode == 0, r.stderr
    proj = tmp_path / "shop"
    manifest = (proj / "fnhost.toml").read_text()
    manifest += '\n[[triggers]]\ntype = "APIG"\npath = "/shop"\nmethod = "POST"\n'
    (proj / "fnhost.toml").write_text(manifest)
    return proj


def test_deploy_creates_updates_and_invokes_remotely(tmp_path):
    proj = project(tmp_path)
    server = Server(tmp_path).start()
    keys = {"FNHOST_ACCESS_KEY": AK, "FNHOST_SECRET_KEY": SK, "FNHOST_URL": server.url,
            "FNHOST_PROJECT_ID": "proj1"}
    try:
        r = run(["deploy"], proj, keys)
        assert r.returncode == 0, r.stdout + r.stderr
        urn = r.stdout.strip().splitlines()[-1]
        assert urn == "urn:fss:local:proj1:function:default:shop:latest", r.stdout
        assert "created shop, 1 trigger(s) created" in r.stderr, r.stderr
        r = run(["invoke", "--url", server.url, "shop", "--data", "{}", "--json"], proj, keys)
        assert r.returncode == 0, r.stderr
        report = json.loads(r.stdout)
        assert json.loads(report["result"])["message"] == "hello from C", report
        assert "shop got 2 payload bytes" in report["log"], report
        # The three-part report, as for a local call.
        r = run(["invoke", "--url", server.url, "shop", "--data", "{}"], proj, keys)
        assert r.stdout.startswith("Function Return:") and "Execution Summary:" in r.stdout, r.stdout
        # A changed manifest is an update; the trigger is not created twice.
        manifest = (proj / "fnhost.toml").read_text().replace('GREETING = "hello"', 'GREETING = "howdy"')
        (proj / "fnhost.toml").write_text(manifest)
        r = run(["deploy"], proj, keys)
        assert r.returncode == 0 and r.stderr.strip().endswith("updated shop"), r.stderr
        r = run(["invoke", "--url", server.url, "shop:latest", "--data", "{}", "--json"], proj, keys)
        assert json.loads(json.loads(r.stdout)["result"])["message"] == "howdy from C", r.stdout
        # Unsigned: refused, one line, exit 1.
        r = run(["deploy", "--url", server.url, "--project", "proj1"], proj)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith("error: the server refused the signature (401)"), r.stderr
        # invoke --url answers the same refusal the same way (it exited 2).
        r = run(["invoke", "--url", server.url, "--project", "proj1", "shop", "--data", "{}"], proj)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("error: the server answered 401"), r.stderr
    finally:
        server.stop()


def test_no_answer_and_a_refused_package_are_one_line_and_exit_1(tmp_path):
    proj = project(tmp_path)
    r = run(["deploy", "--url", f"http://127.0.0.1:{free_port()}"], proj)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: no answer from http://127.0.0.1:"), r.stderr
    # Every server command: no answer is a failed request (1), not usage (2).
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (["invoke", "--url", dead, "shop", "--data", "{}"], ["logs", "shop", "--url", dead],
                 ["functions", "list", "--url", dead], ["publish", "shop", "--url", dead]):
        r = run(args, proj)
        assert r.returncode == 1, (args, r.returncode, r.stderr)
        assert r.stderr.strip().splitlines()[-1].startswith("error: no answer from"), (args, r.stderr)
    tiny = Server(tmp_path, keys=False, config={"limits": {"code_body_bytes": 1024}}).start()
    try:
        r = run(["deploy", "--url", tiny.url], proj)
        assert r.returncode == 1, r.stderr
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("error: the server refused the function (413)"), r.stderr
    finally:
        tiny.stop()
