"""REDIS triggers (Redis Streams consumer groups) against a real Redis, the
one scripts/redis.sh names ($FNHOST_TEST_REDIS): entries published with the
ordinary client (redis-py) reach the function in batches, each handled once
without faults; a failing entry is retried with the function's async policy,
then dead-lettered to a stream while the rest flow; a kill -9 mid-batch loses
nothing (the unacknowledged batch comes back); a disabled trigger consumes
nothing until enabled; an unreachable broker shows the trigger as ERROR."""
import base64
import json
import os
import signal
import time
import urllib.error
import urllib.request
import uuid

import pytest

from conftest import Server, eventually, free_port, zip_entries_b64
from test_native import fixture

REDIS_URL = os.environ.get("FNHOST_TEST_REDIS", "redis://127.0.0.1:6379")


@pytest.fixture
def broker():
    import redis
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.exceptions.ConnectionError:
        if os.environ.get("FNHOST_REQUIRE_REDIS"):
            raise
        pytest.skip(f"no Redis at {REDIS_URL} (scripts/redis.sh starts one)")
    streams = []
    yield r, streams
    for s in streams:
        r.delete(s)


def api(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def deploy(server, tmp_path, name, out, user_data=None):
    lib = fixture("record_batches", tmp_path)
    code = zip_entries_b64({"record_batches.so": lib.read_bytes()})
    data = {"OUT": str(out), **(user_data or {})}
    status, body = api(server.url, "POST", "/v2/local/fgs/functions", {
        "func_name": name, "package": "default", "runtime": "Custom", "handler": "record_batches.Handler",
        "memory_size": 128, "timeout": 10, "code_type": "zip", "func_code": {"file": code},
        "user_data": json.dumps(data)})
    assert status == 200, body


def add_trigger(server, name, event_data, status="ACTIVE"):
    code, body = api(server.url, "POST", f"/v2/local/fgs/triggers/{name}",
                     {"trigger_type_code": "REDIS", "trigger_status": status, "event_data": event_data})
    assert code == 201, body
    return body


def batches(out):
    """The batch events the function wrote, one per line; a last line still
    being written (no newline yet: the handler's stdio writes a long line in
    pieces) is not one yet."""
    if not out.exists():
        return []
    text = out.read_text()
    return [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]


def handled(out):
    """Record ids of every batch the function handled, in order (repeats kept)."""
    if not out.exists():
        return []
    ids = []
    for batch in batches(out):
        ids += [r["id"] for r in batch["records"]]
    return ids


def new_stream(streams):
    s = f"fnhost-test-{uuid.uuid4().hex[:12]}"
    streams += [s, s + "-dlq"]
    return s


def test_a_thousand_entries_are_each_handled_once_in_order(tmp_path, broker):
    r, streams = broker
    stream = new_stream(streams)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        t = add_trigger(server, "orders", {"url": REDIS_URL, "stream": stream, "batch_size": 50})
        assert t["trigger_status"] == "ACTIVE" and t["event_data"]["stream"] == stream, t
        # The group exists once the consumer runs; then one entry reaches
        # the handler quickly on an idle server.
        assert eventually(lambda: any(g["name"] == b"fnhost" for g in r.xinfo_groups(stream)) if r.exists(stream) else False, timeout=10)
        start = time.monotonic()
        first = r.xadd(stream, {"n": "first"}).decode()
        assert eventually(lambda: first in handled(out), timeout=10, interval=0.01)
        latency = time.monotonic() - start
        print(f"publish-to-handler latency of one entry on an idle server: {latency * 1000:.0f} ms")
        assert latency < 2.0, latency
        pipe = r.pipeline()
        for i in range(1000):
            pipe.xadd(stream, {"n": str(i), "blob": bytes([0xff, i % 256])})
        published_at = time.time()
        sent = [x.decode() for x in pipe.execute()]
        assert eventually(lambda: len(handled(out)) >= 1001, timeout=60), len(handled(out))
        time.sleep(0.5)
        ids = handled(out)
        assert len(ids) == 1001 and len(set(ids)) == 1001, (len(ids), len(set(ids)))
        assert ids == [first] + sent, "out of stream order"
        # A value that is not UTF-8 arrives in base64, named as binary.
        record = batches(out)[-1]["records"][-1]
        assert record["binary_fields"] == ["blob"] and base64.b64decode(record["fields"]["blob"]) == bytes([0xff, 999 % 256])
        # Everything acknowledged: nothing pending in the group.
        assert eventually(lambda: r.xpending(stream, "fnhost")["pending"] == 0, timeout=5)
        with urllib.request.urlopen(server.url + "/metrics") as m:
            metrics = m.read().decode()
        line = [l for l in metrics.splitlines() if l.startswith("fnhost_trigger_messages_total{") and 'result="succeeded"' in l]
        assert line and line[0].endswith(" 1001"), line
        assert "fnhost_trigger_lag{" in metrics and "fnhost_trigger_batch_seconds_count{" in metrics
        # When the last batch was acknowledged: after the entries were
        # published, and not in the future.
        stamp = [l for l in metrics.splitlines() if l.startswith("fnhost_trigger_last_batch_timestamp_seconds{")]
        assert stamp, metrics
        assert published_at <= float(stamp[0].rpartition(" ")[2]) <= time.time(), (published_at, stamp)
    finally:
        server.stop()


def test_a_failing_entry_is_retried_then_dead_lettered_while_the_rest_flow(tmp_path, broker):
    r, streams = broker
    stream = new_stream(streams)
    server = Server(tmp_path, keys=False, config={"asynchronous": {"retry_base_ms": 50}}).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        status, body = api(server.url, "PUT", "/v2/local/fgs/functions/orders/async-invoke-config",
                           {"max_async_retry_attempts": 2, "max_async_event_age_in_seconds": 3600})
        assert status == 200, body
        add_trigger(server, "orders", {"url": REDIS_URL, "stream": stream, "batch_size": 1, "start": "earliest",
                                       "dead_letter_stream": stream + "-dlq"})
        ids = [r.xadd(stream, {"n": str(i), "kind": "poison" if i == 7 else "fine"}).decode() for i in range(20)]
        assert eventually(lambda: len(handled(out)) >= 19 and r.xlen(stream + "-dlq") == 1, timeout=30), handled(out)
        assert handled(out) == ids[:7] + ids[8:]
        [(_, dead)] = r.xrange(stream + "-dlq")
        assert dead[b"source_id"].decode() == ids[7] and b"Poisoned" in dead[b"error"], dead
        assert dead[b"kind"] == b"poison"
        assert eventually(lambda: r.xpending(stream, "fnhost")["pending"] == 0, timeout=5)
        with urllib.request.urlopen(server.url + "/metrics") as m:
            metrics = m.read().decode()
        assert [l for l in metrics.splitlines() if 'result="retried"' in l and l.endswith(" 2")], metrics
        assert [l for l in metrics.splitlines() if 'result="dead_lettered"' in l and l.endswith(" 1")], metrics
    finally:
        server.stop()


def test_kill_9_mid_batch_loses_nothing(tmp_path, broker):
    r, streams = broker
    stream = new_stream(streams)
    out = tmp_path / "out.jsonl"
    server = Server(tmp_path, keys=False).start()
    try:
        deploy(server, tmp_path, "orders", out, {"SLEEP_MS": "200"})
        add_trigger(server, "orders", {"url": REDIS_URL, "stream": stream, "batch_size": 10, "start": "earliest"})
        ids = [r.xadd(stream, {"n": str(i)}).decode() for i in range(100)]
        assert eventually(lambda: len(handled(out)) >= 20, timeout=30)
    finally:
        server.stop(signal.SIGKILL)
    at_kill = len(handled(out))
    server = Server(tmp_path, keys=False).start()
    try:
        assert eventually(lambda: set(ids) <= set(handled(out)), timeout=60), len(set(handled(out)))
        seen = handled(out)
        duplicates = len(seen) - len(set(seen))
        print(f"kill -9 after {at_kill} of 100 entries: every entry handled, {duplicates} handled twice")
        # At most the batch in flight (and the one being read) comes back.
        assert duplicates <= 20, duplicates
        assert eventually(lambda: r.xpending(stream, "fnhost")["pending"] == 0, timeout=5)
    finally:
        server.stop()


def test_a_disabled_trigger_consumes_nothing_until_enabled(tmp_path, broker):
    r, streams = broker
    stream = new_stream(streams)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        t = add_trigger(server, "orders", {"url": REDIS_URL, "stream": stream, "start": "earliest"})
        path = f"/v2/local/fgs/triggers/orders/REDIS/{t['trigger_id']}"
        assert api(server.url, "PUT", path, {"trigger_status": "DISABLED"})[0] == 200
        ids = [r.xadd(stream, {"n": str(i)}).decode() for i in range(10)]
        time.sleep(1.5)  # Fixed wait: a disabled trigger must not consume in it.
        assert handled(out) == []
        assert api(server.url, "PUT", path, {"trigger_status": "ACTIVE"})[0] == 200
        assert eventually(lambda: handled(out) == ids, timeout=10), handled(out)
    finally:
        server.stop()


def test_an_unreachable_broker_shows_error_and_bad_settings_are_refused(tmp_path, broker):
    server = Server(tmp_path, keys=False).start()
    try:
        deploy(server, tmp_path, "orders", tmp_path / "out.jsonl")
        dead = f"redis://user:s3cret@127.0.0.1:{free_port()}"
        t = add_trigger(server, "orders", {"url": dead, "stream": "s"})
        path = f"/v2/local/fgs/triggers/orders/REDIS/{t['trigger_id']}"

        def shown():
            return api(server.url, "GET", path)[1]
        assert eventually(lambda: shown()["trigger_status"] == "ERROR", timeout=10), shown()
        view = shown()
        assert "cannot connect" in view["status_reason"], view
        # The password is never answered back.
        assert "s3cret" not in json.dumps(view) and view["event_data"]["url"].startswith("redis://user:***@"), view
        for bad in ({"stream": "s"}, {"url": "http://x", "stream": "s"}, {"url": REDIS_URL},
                    {"url": REDIS_URL, "stream": "s", "batch_size": 100000},
                    # Only loopback brokers unless the operator allows any
                    # host: a key holder cannot make the server connect out.
                    {"url": "redis://169.254.169.254:80", "stream": "s"},
                    {"url": "redis://127.0.0.1@10.0.0.1:6379", "stream": "s"}):
            code, body = api(server.url, "POST", "/v2/local/fgs/triggers/orders",
                             {"trigger_type_code": "REDIS", "event_data": bad})
            assert code == 400, (bad, body)
    finally:
        server.stop()


def test_the_cli_adds_and_lists_a_redis_trigger(tmp_path, broker):
    from test_deploy import run
    r, streams = broker
    stream = new_stream(streams)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        env = {"FNHOST_URL": server.url}
        added = run(["trigger", "add", "orders", "redis", "--redis-url", REDIS_URL, "--stream", stream,
                     "--batch-size", "5", "--start", "earliest", "-o", "json"], tmp_path, env)
        assert added.returncode == 0, added.stderr
        t = json.loads(added.stdout)
        assert t["trigger_type_code"] == "REDIS" and t["event_data"]["batch_size"] == 5, t
        listed = run(["trigger", "list", "orders"], tmp_path, env)
        assert "REDIS" in listed.stdout and f"stream {stream}" in listed.stdout, listed.stdout
        r.xadd(stream, {"n": "1"})
        assert eventually(lambda: len(handled(out)) == 1, timeout=10)
        for bad in (["trigger", "add", "orders", "redis", "--stream", "s"],
                    ["trigger", "add", "orders", "redis", "--redis-url", REDIS_URL, "--stream", "s", "--batch-size", "0"],
                    ["trigger", "add", "orders", "timer", "--schedule", "Rate 5m", "--stream", "s"]):
            assert run(bad, tmp_path, env).returncode == 2, bad
    finally:
        server.stop()


def test_a_manifests_redis_trigger_is_created_on_deploy(tmp_path, broker):
    from test_deploy import project, run
    r, streams = broker
    stream = new_stream(streams)
    proj = project(tmp_path)
    manifest = (proj / "fnhost.toml").read_text()
    manifest += f'\n[[triggers]]\ntype = "REDIS"\nsettings = {{ url = "{REDIS_URL}", stream = "{stream}", batch_size = 5 }}\n'
    (proj / "fnhost.toml").write_text(manifest)
    server = Server(tmp_path, keys=False).start()
    try:
        deployed = run(["deploy", "--url", server.url], proj)
        assert deployed.returncode == 0, deployed.stderr
        assert "2 trigger(s) created" in deployed.stderr, deployed.stderr
        code, listed = api(server.url, "GET", "/v2/local/fgs/triggers/shop")
        redis_triggers = [t for t in listed if t["trigger_type_code"] == "REDIS"]
        assert len(redis_triggers) == 1 and redis_triggers[0]["event_data"]["batch_size"] == 5, listed
        # Its consumer runs: the group exists on the stream.
        assert eventually(lambda: r.exists(stream) and any(g["name"] == b"fnhost" for g in r.xinfo_groups(stream)), timeout=10)
        # A second deploy creates nothing twice.
        deployed = run(["deploy", "--url", server.url], proj)
        assert deployed.returncode == 0 and "trigger(s) created" not in deployed.stderr, deployed.stderr
    finally:
        server.stop()


def test_an_operator_may_allow_brokers_on_any_host(tmp_path, broker):
    server = Server(tmp_path, keys=False, config={"event_source_hosts": "any"}).start()
    try:
        deploy(server, tmp_path, "orders", tmp_path / "out.jsonl")
        # TEST-NET-1: allowed by the policy (nothing answers there).
        t = add_trigger(server, "orders", {"url": "redis://192.0.2.1:6379", "stream": "s"})
        assert t["event_data"]["url"] == "redis://192.0.2.1:6379", t
    finally:
        server.stop()


def test_a_redis_restart_mid_stream_loses_nothing(tmp_path):
    """A Redis of the test's own (append-only file on), stopped and started
    while the trigger consumes: the consumer shows ERROR, reconnects with
    backoff, and every entry is handled."""
    import shutil
    import subprocess
    import redis
    server_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.path.exists(server_bin):
        if os.environ.get("FNHOST_REQUIRE_REDIS"):
            raise RuntimeError("redis-server is missing (scripts/redis.sh installs it)")
        pytest.skip("redis-server is missing")
    port = free_port()
    data = tmp_path / "redis"
    data.mkdir()

    def start():
        p = subprocess.Popen([server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "yes", "--appendfsync", "always", "--dir", str(data)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert eventually(lambda: _pings(port), timeout=10)
        return p
    broker = start()
    url = f"redis://127.0.0.1:{port}"
    r = redis.Redis.from_url(url)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out, {"SLEEP_MS": "20"})
        t = add_trigger(server, "orders", {"url": url, "stream": "s", "batch_size": 5, "start": "earliest"})
        path = f"/v2/local/fgs/triggers/orders/REDIS/{t['trigger_id']}"
        ids = [r.xadd("s", {"n": str(i)}).decode() for i in range(200)]
        assert eventually(lambda: len(handled(out)) >= 20, timeout=30)
        broker.terminate()
        broker.wait(timeout=10)
        assert eventually(lambda: api(server.url, "GET", path)[1]["trigger_status"] == "ERROR", timeout=15)
        broker = start()
        assert eventually(lambda: set(ids) <= set(handled(out)), timeout=90), len(set(handled(out)))
        assert eventually(lambda: api(server.url, "GET", path)[1]["trigger_status"] == "ACTIVE", timeout=10)
        seen = handled(out)
        print(f"Redis restarted mid-stream: every entry handled, {len(seen) - len(set(seen))} handled twice")
    finally:
        server.stop()
        broker.terminate()
        broker.wait(timeout=10)


def _pings(port):
    import redis
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.5).ping()
    except redis.exceptions.ConnectionError:
        return False
