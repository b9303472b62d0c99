"""The whole lifecycle from the command line, against a live `fnhost serve`
with access keys and nothing but the built binary: deploy, publish, a
weighted alias, triggers (add, list, disable, enable, delete), the function
listing, its configuration, and `fnhost sign` for a shell client. Every
command signs like deploy, prints JSON with --output json, and exits 0 (ok),
1 (the server refused or failed the request) or 2 (usage)."""
import json
import shutil
import subprocess
import urllib.request

from conftest import AK, SK, Server
from test_deploy import project, run


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def js(r):
    return json.loads(ok(r).stdout)


def test_publish_alias_trigger_list_config_from_the_cli(tmp_path):
    proj = project(tmp_path)
    server = Server(tmp_path).start()
    env = {"FNHOST_ACCESS_KEY": AK, "FNHOST_SECRET_KEY": SK, "FNHOST_URL": server.url,
           "FNHOST_PROJECT_ID": "proj1"}
    try:
        ok(run(["deploy"], proj, env))
        # Publish: the version on stdout (text), the record with --output json.
        v1 = ok(run(["publish", "shop", "--description", "first"], proj, env)).stdout.strip()
        assert v1 == "v1", v1
        manifest = (proj / "fnhost.toml").read_text().replace('GREETING = "hello"', 'GREETING = "howdy"')
        # The host functions it may call go with the configuration.
        (proj / "fnhost.toml").write_text('host_functions = ["kv.get"]\n' + manifest)
        ok(run(["deploy"], proj, env))
        record = js(run(["publish", "shop", "--output", "json"], proj, env))
        assert record["version"] == "v2" and record["func_name"] == "shop", record

        # A weighted alias: v1 stays the alias's version, 100% of calls go to v2.
        r = ok(run(["alias", "set", "shop", "prod", "v1", "--weight", "v2=100"], proj, env))
        assert r.stdout.strip() == "shop:prod -> v1 (and v2=100%)", r.stdout
        r = run(["invoke", "--url", server.url, "shop:prod", "--data", "{}", "--json"], proj, env)
        assert json.loads(json.loads(ok(r).stdout)["result"])["message"] == "howdy from C", r.stdout
        # Set again: an update of the same alias, now all on v1.
        ok(run(["alias", "set", "shop", "prod", "v1"], proj, env))
        r = run(["invoke", "--url", server.url, "shop:prod", "--data", "{}", "--json"], proj, env)
        assert json.loads(json.loads(ok(r).stdout)["result"])["message"] == "hello from C", r.stdout
        aliases = js(run(["alias", "list", "shop", "-o", "json"], proj, env))
        assert [(a["name"], a["version"]) for a in aliases] == [("prod", "v1")], aliases
        table = ok(run(["alias", "list", "shop"], proj, env)).stdout.splitlines()
        assert table[0].split() == ["ALIAS", "VERSION", "WEIGHTS", "DESCRIPTION"], table
        assert table[1].split()[:2] == ["prod", "v1"], table

        # Triggers: the manifest's APIG one, plus one of each kind added here.
        apig = ok(run(["trigger", "add", "shop", "apig", "--path", "/orders", "--method", "post"], proj, env))
        apig_id = apig.stdout.strip()
        timer = js(run(["trigger", "add", "shop", "timer", "--schedule", "Rate 5m",
                        "--user-event", "tick", "-o", "json"], proj, env))
        assert timer["event_data"]["schedule"] == "5m" and timer["event_data"]["user_event"] == "tick", timer
        listed = js(run(["trigger", "list", "shop", "-o", "json"], proj, env))
        ids = {t["trigger_id"]: t for t in listed}
        assert apig_id in ids and ids[apig_id]["event_data"]["req_method"] == "POST", listed
        assert len(listed) == 3, listed
        r = ok(run(["trigger", "disable", "shop", apig_id], proj, env))
        assert r.stdout.strip() == f"{apig_id} DISABLED", r.stdout
        assert js(run(["trigger", "enable", "shop", apig_id, "-o", "json"], proj, env))["trigger_status"] == "ACTIVE"
        ok(run(["trigger", "delete", "shop", timer["trigger_id"]], proj, env))
        assert len(js(run(["trigger", "list", "shop", "-o", "json"], proj, env))) == 2
        table = ok(run(["trigger", "list", "shop"], proj, env)).stdout
        assert "APIG" in table and "POST /orders" in table, table

        # The listing and the configuration.
        functions = js(run(["functions", "list", "-o", "json"], proj, env))
        assert [f["func_name"] for f in functions] == ["shop"], functions
        assert "shop" in ok(run(["functions", "list"], proj, env)).stdout
        config = js(run(["config", "shop:v1", "-o", "json"], proj, env))
        assert config["version"] == "v1" and config["handler"] == "shop.Handler", config
        assert config["host_functions"] == [], config
        text = ok(run(["config", "shop"], proj, env)).stdout
        assert "handler: shop.Handler" in text and "timeout: " in text, text
        assert 'host_functions: ["kv.get"]' in text, text

        # Refusals exit 1: an unknown function, an alias of an unknown
        # version, an unsigned request, a trigger that is not there.
        for args in (["config", "nosuch"], ["publish", "nosuch"], ["alias", "set", "shop", "x", "99"],
                     ["trigger", "delete", "shop", "nosuch-id"], ["alias", "delete", "shop", "nosuch"]):
            r = run(args, proj, env)
            assert r.returncode == 1 and r.stderr.startswith("error: "), (args, r.returncode, r.stderr)
        r = run(["functions", "list", "--url", server.url, "--project", "proj1"], proj)
        assert r.returncode == 1 and "refused the signature (401)" in r.stderr, r.stderr
        # Usage errors exit 2, before any request.
        for args in (["alias", "set", "shop", "x", "1", "--weight", "2=0"],
                     ["alias", "set", "shop", "x", "1", "--weight", "2=60", "--weight", "3=60"],
                     ["trigger", "add", "shop", "apig"],
                     ["trigger", "add", "shop", "timer"],
                     ["trigger", "add", "shop", "apig", "--path", "/a", "--schedule", "Rate 1m"],
                     ["trigger", "add", "shop", "timer", "--schedule", "every now and then"],
                     ["functions", "list", "--output", "yaml"]):
            r = run(args, proj, env)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
        ok(run(["alias", "delete", "shop", "prod"], proj, env))
        assert js(run(["alias", "list", "shop", "-o", "json"], proj, env)) == []
    finally:
        server.stop()


def test_sign_reaches_a_keyed_server_from_a_shell(tmp_path):
    server = Server(tmp_path).start()
    env = {"FNHOST_ACCESS_KEY": AK, "FNHOST_SECRET_KEY": SK}
    try:
        url = f"{server.url}/v2/proj1/fgs/functions?maxitems=10"
        unsigned = urllib.request.Request(url)
        try:
            urllib.request.urlopen(unsigned, timeout=10)
            raise AssertionError("an unsigned request was served")
        except urllib.error.HTTPError as e:
            assert e.code == 401
        signed = js(run(["sign", "GET", url, "-o", "json"], tmp_path, env))
        request = urllib.request.Request(url, headers=signed["headers"])
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read())["functions"] == []
        # A body is signed as sent: the printed headers serve a POST of it.
        body = '{"func_name": "x", "package": "default", "runtime": "Rust1.x", "handler": "x.Handler", ' \
               '"memory_size": 128, "timeout": 3, "code_type": "zip", "func_code": {"file": ""}}'
        signed = js(run(["sign", "POST", f"{server.url}/v2/proj1/fgs/functions", "--data", body, "-o", "json"],
                        tmp_path, env))
        request = urllib.request.Request(f"{server.url}/v2/proj1/fgs/functions", data=body.encode(),
                                         headers=signed["headers"], method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as e:
            # Past the signature: the server judged the body (an empty package).
            assert e.code == 400, e.read()
        # A changed body is refused: the signature covers it.
        request = urllib.request.Request(f"{server.url}/v2/proj1/fgs/functions", data=body.replace("x", "y").encode(),
                                         headers=signed["headers"], method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("a changed body was served")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
        # The curl line runs as printed.
        line = ok(run(["sign", "GET", url, "--curl"], tmp_path, env)).stdout.strip()
        assert line.startswith("curl -sS -X GET -H "), line
        if shutil.which("curl"):
            out = subprocess.run(line, shell=True, capture_output=True, text=True, timeout=30)
            assert json.loads(out.stdout)["functions"] == [], out
        # Without keys there is nothing to sign with: a usage error.
        r = run(["sign", "GET", url], tmp_path)
        assert r.returncode == 2 and "nothing to sign with" in r.stderr, r.stderr
        r = run(["sign", "GET", "https://example.com/"], tmp_path, env)
        assert r.returncode == 2, r.stderr
    finally:
        server.stop()
