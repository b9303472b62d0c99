"""NATS triggers (JetStream durable pull consumers) against a real NATS
server with JetStream, the one scripts/nats.sh names ($FNHOST_TEST_NATS):
messages published with the ordinary client (nats-py) reach the function in
batches, each handled once without faults and in order; a failing message is
retried, then dead-lettered to a subject while the rest flow; a kill -9
mid-batch loses nothing (JetStream redelivers after ack_wait); a disabled
trigger consumes nothing until enabled; a missing stream shows ERROR."""
import asyncio
import json
import os
import signal
import time
import urllib.request
import uuid

import pytest

from conftest import Server, eventually
from test_triggers_redis import api, batches, deploy, handled

NATS_URL = os.environ.get("FNHOST_TEST_NATS", "nats://127.0.0.1:4222")


def run(coroutine):
    return asyncio.run(coroutine)


async def _connect():
    import nats
    return await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)


@pytest.fixture
def broker():
    import nats.errors
    try:
        run(_check())
    except (OSError, nats.errors.Error, asyncio.TimeoutError):
        if os.environ.get("FNHOST_REQUIRE_NATS"):
            raise
        pytest.skip(f"no NATS with JetStream at {NATS_URL} (scripts/nats.sh starts one)")
    names = []
    yield names
    run(_delete(names))


async def _check():
    nc = await _connect()
    await nc.jetstream().account_info()
    await nc.close()


async def _delete(names):
    nc = await _connect()
    js = nc.jetstream()
    for n in names:
        try:
            await js.delete_stream(n)
        except Exception:
            pass
    await nc.close()


def new_stream(names, dead_letters=False):
    name = f"FNHOST_{uuid.uuid4().hex[:10].upper()}"
    names.append(name)

    async def create():
        nc = await _connect()
        js = nc.jetstream()
        await js.add_stream(name=name, subjects=[f"{name.lower()}.>"])
        if dead_letters:
            names.append(name + "_DLQ")
            await js.add_stream(name=name + "_DLQ", subjects=[f"{name.lower()}-dlq"])
        await nc.close()
    run(create())
    return name, name.lower()


def publish(subject, payloads):
    async def go():
        nc = await _connect()
        js = nc.jetstream()
        seqs = [(await js.publish(f"{subject}.in", p)).seq for p in payloads]
        await nc.close()
        return [str(s) for s in seqs]
    return run(go())


def add_trigger(server, name, event_data, status="ACTIVE"):
    code, body = api(server.url, "POST", f"/v2/local/fgs/triggers/{name}",
                     {"trigger_type_code": "NATS", "trigger_status": status, "event_data": event_data})
    assert code == 201, body
    return body


def test_a_thousand_messages_are_each_handled_once_in_order(tmp_path, broker):
    stream, subject = new_stream(broker)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        add_trigger(server, "orders", {"url": NATS_URL, "stream": stream, "batch_size": 50, "start": "earliest"})
        start = time.monotonic()
        [first] = publish(subject, [b"first"])
        assert eventually(lambda: first in handled(out), timeout=10, interval=0.01)
        print(f"publish-to-handler latency of one message on an idle server: {(time.monotonic() - start) * 1000:.0f} ms")
        sent = publish(subject, [f"m{i}".encode() for i in range(999)] + [b"\xff\xfe"])
        assert eventually(lambda: len(handled(out)) >= 1001, timeout=60), len(handled(out))
        time.sleep(0.5)
        ids = handled(out)
        assert ids == [first] + sent, (len(ids), len(set(ids)))
        last = batches(out)[-1]["records"][-1]
        assert last["data_encoding"] == "base64" and last["data"] == "//4=", last
        with urllib.request.urlopen(server.url + "/metrics") as m:
            metrics = m.read().decode()
        line = [l for l in metrics.splitlines() if l.startswith("fnhost_trigger_messages_total{") and 'type="NATS"' in l and 'result="succeeded"' in l]
        assert line and line[0].endswith(" 1001"), line
    finally:
        server.stop()


def test_a_failing_message_is_retried_then_dead_lettered_while_the_rest_flow(tmp_path, broker):
    stream, subject = new_stream(broker, dead_letters=True)
    server = Server(tmp_path, keys=False, config={"asynchronous": {"retry_base_ms": 50}}).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        status, body = api(server.url, "PUT", "/v2/local/fgs/functions/orders/async-invoke-config",
                           {"max_async_retry_attempts": 1, "max_async_event_age_in_seconds": 3600})
        assert status == 200, body
        add_trigger(server, "orders", {"url": NATS_URL, "stream": stream, "batch_size": 1, "start": "earliest",
                                       "dead_letter_subject": subject + "-dlq"})
        ids = publish(subject, [b"poison" if i == 3 else f"fine {i}".encode() for i in range(10)])
        assert eventually(lambda: len(handled(out)) >= 9, timeout=30), handled(out)

        async def dead():
            nc = await _connect()
            js = nc.jetstream()
            info = await js.stream_info(stream + "_DLQ")
            msg = await js.get_msg(stream + "_DLQ", 1) if info.state.messages else None
            await nc.close()
            return msg
        assert eventually(lambda: run(dead()) is not None, timeout=10)
        msg = run(dead())
        assert msg.data == b"poison" and msg.headers["Fnhost-Source-Sequence"] == ids[3], msg
        assert "Poisoned" in msg.headers["Fnhost-Error"]
        assert handled(out) == ids[:3] + ids[4:]
    finally:
        server.stop()


def test_kill_9_mid_batch_loses_nothing(tmp_path, broker):
    stream, subject = new_stream(broker)
    out = tmp_path / "out.jsonl"
    server = Server(tmp_path, keys=False).start()
    try:
        deploy(server, tmp_path, "orders", out, {"SLEEP_MS": "200"})
        add_trigger(server, "orders", {"url": NATS_URL, "stream": stream, "batch_size": 10, "start": "earliest",
                                       "ack_wait_seconds": 2})
        ids = publish(subject, [f"m{i}".encode() for i in range(100)])
        assert eventually(lambda: len(handled(out)) >= 20, timeout=30)
    finally:
        server.stop(signal.SIGKILL)
    at_kill = len(handled(out))
    server = Server(tmp_path, keys=False).start()
    try:
        assert eventually(lambda: set(ids) <= set(handled(out)), timeout=60), len(set(handled(out)))
        seen = handled(out)
        duplicates = len(seen) - len(set(seen))
        print(f"kill -9 after {at_kill} of 100 messages: every message handled, {duplicates} handled twice")
        assert duplicates <= 20, duplicates
    finally:
        server.stop()


def test_a_disabled_trigger_consumes_nothing_and_a_missing_stream_is_an_error(tmp_path, broker):
    stream, subject = new_stream(broker)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        t = add_trigger(server, "orders", {"url": NATS_URL, "stream": stream, "start": "earliest"})
        path = f"/v2/local/fgs/triggers/orders/NATS/{t['trigger_id']}"
        assert api(server.url, "PUT", path, {"trigger_status": "DISABLED"})[0] == 200
        ids = publish(subject, [f"m{i}".encode() for i in range(10)])
        time.sleep(1.5)  # Fixed wait: a disabled trigger must not consume in it.
        assert handled(out) == []
        assert api(server.url, "PUT", path, {"trigger_status": "ACTIVE"})[0] == 200
        assert eventually(lambda: handled(out) == ids, timeout=10), handled(out)
        t = add_trigger(server, "orders", {"url": NATS_URL, "stream": "NO_SUCH_STREAM"})
        missing = f"/v2/local/fgs/triggers/orders/NATS/{t['trigger_id']}"
        assert eventually(lambda: api(server.url, "GET", missing)[1]["trigger_status"] == "ERROR", timeout=10)
        assert "NO_SUCH_STREAM" in api(server.url, "GET", missing)[1]["status_reason"]
        # A dead-letter subject the consumed stream captures would loop
        # (each failure a new message): the trigger shows ERROR instead.
        t = add_trigger(server, "orders", {"url": NATS_URL, "stream": stream,
                                           "dead_letter_subject": f"{subject}.dlq"})
        looping = f"/v2/local/fgs/triggers/orders/NATS/{t['trigger_id']}"
        assert eventually(lambda: api(server.url, "GET", looping)[1]["trigger_status"] == "ERROR", timeout=10)
        assert "captured" in api(server.url, "GET", looping)[1]["status_reason"]
        code, body = api(server.url, "POST", "/v2/local/fgs/triggers/orders",
                         {"trigger_type_code": "NATS", "event_data": {"url": NATS_URL}})
        assert code == 400 and "stream" in body["error_msg"], body
    finally:
        server.stop()


def test_a_nats_restart_mid_stream_loses_nothing(tmp_path):
    """A NATS server of the test's own (JetStream on disk), stopped and
    started while the trigger consumes: every message is handled."""
    import shutil
    import subprocess
    from conftest import free_port
    server_bin = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(server_bin):
        if os.environ.get("FNHOST_REQUIRE_NATS"):
            raise RuntimeError("nats-server is missing (scripts/nats.sh installs it)")
        pytest.skip("nats-server is missing")
    port = free_port()
    url = f"nats://127.0.0.1:{port}"

    def start():
        p = subprocess.Popen([server_bin, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def up():
            import nats
            nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0)
            await nc.jetstream().account_info()
            await nc.close()
            return True

        def ready():
            try:
                return run(up())
            except Exception:
                return False
        assert eventually(ready, timeout=15)
        return p

    async def setup_and_publish(n):
        import nats
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(name="RESTART", subjects=["restart.>"])
        seqs = [str((await js.publish("restart.in", f"m{i}".encode())).seq) for i in range(n)]
        await nc.close()
        return seqs
    broker = start()
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        ids = run(setup_and_publish(200))
        deploy(server, tmp_path, "orders", out, {"SLEEP_MS": "20"})
        t = add_trigger(server, "orders", {"url": url, "stream": "RESTART", "batch_size": 5, "start": "earliest",
                                           "ack_wait_seconds": 2})
        path = f"/v2/local/fgs/triggers/orders/NATS/{t['trigger_id']}"
        assert eventually(lambda: len(handled(out)) >= 20, timeout=30)
        broker.terminate()
        broker.wait(timeout=10)
        assert eventually(lambda: api(server.url, "GET", path)[1]["trigger_status"] == "ERROR", timeout=15)
        broker = start()
        assert eventually(lambda: set(ids) <= set(handled(out)), timeout=90), len(set(handled(out)))
        seen = handled(out)
        print(f"NATS restarted mid-stream: every message handled, {len(seen) - len(set(seen))} handled twice")
    finally:
        server.stop()
        broker.terminate()
        broker.wait(timeout=10)
