"""RABBITMQ triggers (AMQP queue consumers) against a real RabbitMQ, the one
scripts/rabbitmq.sh names ($FNHOST_TEST_RABBITMQ): messages published with
the ordinary client (pika) reach the function in batches in FunctionGraph's
DMS event shape, each handled once without faults and in queue order; a
failing message is retried, then published to a dead-letter exchange while
the rest flow; a kill -9 mid-batch loses nothing (RabbitMQ requeues what was
unacknowledged); a broker restart mid-stream loses nothing (a private node
the test owns); a disabled trigger consumes nothing until enabled; an
exchange and routing key get a queue of the trigger's own; a missing queue
shows ERROR without echoing the password."""
import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import Server, eventually
from test_triggers_redis import api, batches, deploy

AMQP_URL = os.environ.get("FNHOST_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2f")
ROOT = Path(__file__).resolve().parents[2]


def connect(url=AMQP_URL):
    import pika
    return pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=3"))


@pytest.fixture
def broker():
    import pika.exceptions
    try:
        connect().close()
    except pika.exceptions.AMQPError:
        if os.environ.get("FNHOST_REQUIRE_RABBITMQ"):
            raise
        pytest.skip(f"no RabbitMQ at {AMQP_URL} (scripts/rabbitmq.sh starts one)")
    made = {"queues": [], "exchanges": []}
    yield made
    with connect() as c:
        ch = c.channel()
        for q in made["queues"]:
            ch.queue_delete(q)
        for e in made["exchanges"]:
            ch.exchange_delete(e)


def new_queue(made, url=AMQP_URL):
    q = f"fnhost-test-{uuid.uuid4().hex[:12]}"
    made["queues"].append(q)
    with connect(url) as c:
        c.channel().queue_declare(q, durable=True)
    return q


def publish(queue, bodies, url=AMQP_URL, exchange="", routing_key=None):
    """Publishes persistent messages with ids m0, m1, ... (or the given ones)
    and waits for the broker's confirms; answers their ids."""
    import pika
    ids = []
    with connect(url) as c:
        ch = c.channel()
        ch.confirm_delivery()
        for i, body in enumerate(bodies):
            mid = f"{queue}-{i}-{uuid.uuid4().hex[:6]}"
            ch.basic_publish(exchange, routing_key or queue, body,
                             pika.BasicProperties(message_id=mid, delivery_mode=2, headers={"n": i}))
            ids.append(mid)
    return ids


def depth(queue, url=AMQP_URL):
    with connect(url) as c:
        return c.channel().queue_declare(queue, passive=True).method.message_count


def handled(out):
    """Message ids of every batch the function handled, in order (repeats kept)."""
    if not out.exists():
        return []
    ids = []
    for batch in batches(out):
        ids += [r["message_id"] for r in batch["records"]]
    return ids


def add_trigger(server, name, event_data, status="ACTIVE"):
    code, body = api(server.url, "POST", f"/v2/local/fgs/triggers/{name}",
                     {"trigger_type_code": "RABBITMQ", "trigger_status": status, "event_data": event_data})
    assert code == 201, body
    return body


def test_a_thousand_messages_are_each_handled_once_in_order(tmp_path, broker):
    queue = new_queue(broker)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        add_trigger(server, "orders", {"url": AMQP_URL, "queue": queue, "batch_size": 50})
        assert eventually(lambda: server_consumes(queue), timeout=10)
        start = time.monotonic()
        [first] = publish(queue, [b"first"])
        assert eventually(lambda: first in handled(out), timeout=10, interval=0.01)
        latency = time.monotonic() - start
        print(f"publish-to-handler latency of one message on an idle server: {latency * 1000:.0f} ms")
        assert latency < 2.0, latency
        sent = publish(queue, [f"m{i}".encode() for i in range(999)] + [b"\xff\xfe"])
        assert eventually(lambda: len(handled(out)) >= 1001, timeout=60), len(handled(out))
        time.sleep(0.5)
        ids = handled(out)
        assert len(ids) == 1001 and len(set(ids)) == 1001, (len(ids), len(set(ids)))
        assert ids == [first] + sent, "out of queue order"
        batch = batches(out)[-1]
        # FunctionGraph's DMS shape: trigger_type, records[].messages[], topic_id.
        assert batch["trigger_type"] == "RABBITMQ" and isinstance(batch["event_time"], int), batch
        last = batch["records"][-1]
        assert last["topic_id"] == queue and last["data_encoding"] == "base64", last
        assert base64.b64decode(last["messages"][0]) == b"\xff\xfe" and last["headers"]["n"] == 999
        assert eventually(lambda: depth(queue) == 0, timeout=5)
        with urllib.request.urlopen(server.url + "/metrics") as m:
            metrics = m.read().decode()
        line = [l for l in metrics.splitlines() if l.startswith("fnhost_trigger_messages_total{")
                and 'type="RABBITMQ"' in l and 'result="succeeded"' in l]
        assert line and line[0].endswith(" 1001"), line
    finally:
        server.stop()


def server_consumes(queue, url=AMQP_URL):
    with connect(url) as c:
        return c.channel().queue_declare(queue, passive=True).method.consumer_count > 0


def test_a_failing_message_is_retried_then_dead_lettered_while_the_rest_flow(tmp_path, broker):
    queue = new_queue(broker)
    dlx, dlq = queue + "-dlx", new_queue(broker)
    broker["exchanges"].append(dlx)
    with connect() as c:
        ch = c.channel()
        ch.exchange_declare(dlx, "fanout")
        ch.queue_bind(dlq, dlx)
    server = Server(tmp_path, keys=False, config={"asynchronous": {"retry_base_ms": 50}}).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        status, body = api(server.url, "PUT", "/v2/local/fgs/functions/orders/async-invoke-config",
                           {"max_async_retry_attempts": 2, "max_async_event_age_in_seconds": 3600})
        assert status == 200, body
        add_trigger(server, "orders", {"url": AMQP_URL, "queue": queue, "batch_size": 1, "dead_letter_exchange": dlx})
        ids = publish(queue, [b"poison" if i == 7 else f"fine {i}".encode() for i in range(20)])
        assert eventually(lambda: len(handled(out)) >= 19 and depth(dlq) == 1, timeout=30), handled(out)
        assert handled(out) == ids[:7] + ids[8:]
        with connect() as c:
            method, props, body = c.channel().basic_get(dlq, auto_ack=True)
        assert body == b"poison" and props.message_id == ids[7], props
        assert "Poisoned" in props.headers["x-fnhost-error"] and props.headers["x-fnhost-source-queue"] == queue
        assert eventually(lambda: depth(queue) == 0, timeout=5)
        with urllib.request.urlopen(server.url + "/metrics") as m:
            metrics = m.read().decode()
        assert [l for l in metrics.splitlines() if 'type="RABBITMQ"' in l and 'result="retried"' in l and l.endswith(" 2")], metrics
        assert [l for l in metrics.splitlines() if 'type="RABBITMQ"' in l and 'result="dead_lettered"' in l and l.endswith(" 1")], metrics
    finally:
        server.stop()


def test_kill_9_mid_batch_loses_nothing(tmp_path, broker):
    queue = new_queue(broker)
    out = tmp_path / "out.jsonl"
    server = Server(tmp_path, keys=False).start()
    try:
        deploy(server, tmp_path, "orders", out, {"SLEEP_MS": "200"})
        add_trigger(server, "orders", {"url": AMQP_URL, "queue": queue, "batch_size": 10})
        ids = publish(queue, [f"m{i}".encode() for i in range(100)])
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
        # At most the batch in flight comes back.
        assert duplicates <= 10, duplicates
        assert eventually(lambda: depth(queue) == 0, timeout=5)
    finally:
        server.stop()


def test_a_disabled_trigger_consumes_nothing_and_an_exchange_gets_a_queue_of_its_own(tmp_path, broker):
    queue = new_queue(broker)
    exchange = queue + "-x"
    broker["exchanges"].append(exchange)
    with connect() as c:
        c.channel().exchange_declare(exchange, "topic")
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        t = add_trigger(server, "orders", {"url": AMQP_URL, "queue": queue})
        path = f"/v2/local/fgs/triggers/orders/RABBITMQ/{t['trigger_id']}"
        assert api(server.url, "PUT", path, {"trigger_status": "DISABLED"})[0] == 200
        ids = publish(queue, [f"m{i}".encode() for i in range(10)])
        time.sleep(1.5)  # Fixed wait: a disabled trigger must not consume in it.
        assert handled(out) == [] and depth(queue) == 10
        assert api(server.url, "PUT", path, {"trigger_status": "ACTIVE"})[0] == 200
        assert eventually(lambda: handled(out) == ids, timeout=10), handled(out)
        assert api(server.url, "DELETE", path)[0] == 204

        # FunctionGraph's exchange_name with a routing key: the trigger's own
        # durable queue, bound to the exchange.
        t = add_trigger(server, "orders", {"url": AMQP_URL, "exchange_name": exchange, "routing_key": "orders.*"})
        own = f"fnhost.{t['trigger_id']}"
        broker["queues"].append(own)
        assert eventually(lambda: server_consumes_quietly(own), timeout=10)
        routed = publish(exchange, [b"paid"], exchange=exchange, routing_key="orders.paid")
        publish(exchange, [b"elsewhere"], exchange=exchange, routing_key="invoices.new")
        assert eventually(lambda: handled(out) == ids + routed, timeout=10), handled(out)
    finally:
        server.stop()


def server_consumes_quietly(queue):
    import pika.exceptions
    try:
        return server_consumes(queue)
    except pika.exceptions.ChannelClosedByBroker:
        return False


def test_a_missing_queue_shows_error_without_the_password_and_bad_settings_are_refused(tmp_path, broker):
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        t = add_trigger(server, "orders", {"url": AMQP_URL, "queue": "fnhost-no-such-queue"})
        path = f"/v2/local/fgs/triggers/orders/RABBITMQ/{t['trigger_id']}"
        assert eventually(lambda: api(server.url, "GET", path)[1]["trigger_status"] == "ERROR", timeout=10)
        shown = api(server.url, "GET", path)[1]
        assert "fnhost-no-such-queue" in shown["status_reason"], shown
        assert ":guest@" not in json.dumps(shown), shown
        for bad, why in [({"url": AMQP_URL}, "queue"), ({"queue": "q"}, "url"),
                         ({"url": "http://x", "queue": "q"}, "amqp://"),
                         ({"url": AMQP_URL, "queue": "q", "batch_size": 0}, "batch_size")]:
            code, body = api(server.url, "POST", "/v2/local/fgs/triggers/orders",
                             {"trigger_type_code": "RABBITMQ", "event_data": bad})
            assert code == 400 and why in body["error_msg"], (bad, body)
    finally:
        server.stop()


@pytest.fixture
def private_broker():
    """A RabbitMQ node of the test's own (scripts/rabbitmq.sh private), which
    it may stop and start."""
    try:
        url = subprocess.run([str(ROOT / "scripts/rabbitmq.sh"), "private"], check=True,
                             capture_output=True, text=True, timeout=240).stdout.strip()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        if os.environ.get("FNHOST_REQUIRE_RABBITMQ"):
            raise
        pytest.skip(f"no private RabbitMQ node: {e}")
    tag = url.rsplit(":", 1)[1].split("/")[0]
    yield url, tag
    subprocess.run([str(ROOT / "scripts/rabbitmq.sh"), "stop"], timeout=60)


def rabbitmqctl(*args):
    subprocess.run([str(ROOT / "scripts/rabbitmq.sh"), "ctl", *args], check=True, timeout=60,
                   capture_output=True)


def test_a_broker_restart_mid_stream_loses_nothing(tmp_path, private_broker):
    url, _ = private_broker
    made = {"queues": [], "exchanges": []}
    queue = new_queue(made, url)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out, {"SLEEP_MS": "50"})
        t = add_trigger(server, "orders", {"url": url, "queue": queue, "batch_size": 5})
        path = f"/v2/local/fgs/triggers/orders/RABBITMQ/{t['trigger_id']}"
        ids = publish(queue, [f"m{i}".encode() for i in range(200)], url=url)
        assert eventually(lambda: len(handled(out)) >= 20, timeout=30)
        rabbitmqctl("stop_app")
        assert eventually(lambda: api(server.url, "GET", path)[1]["trigger_status"] == "ERROR", timeout=15)
        rabbitmqctl("start_app")
        assert eventually(lambda: set(ids) <= set(handled(out)), timeout=90), len(set(handled(out)))
        assert api(server.url, "GET", path)[1]["trigger_status"] == "ACTIVE"
        seen = handled(out)
        print(f"broker restarted mid-stream: every message handled, {len(seen) - len(set(seen))} handled twice")
    finally:
        server.stop()


def test_the_cli_adds_and_lists_a_rabbitmq_trigger(tmp_path, broker):
    from test_deploy import run
    queue = new_queue(broker)
    server = Server(tmp_path, keys=False).start()
    out = tmp_path / "out.jsonl"
    try:
        deploy(server, tmp_path, "orders", out)
        env = {"FNHOST_URL": server.url}
        added = run(["trigger", "add", "orders", "rabbitmq", "--set", f"url={AMQP_URL}", "--set", f"queue={queue}",
                     "--set", "batch_size=5", "-o", "json"], tmp_path, env)
        assert added.returncode == 0, added.stderr
        t = json.loads(added.stdout)
        assert t["trigger_type_code"] == "RABBITMQ" and t["event_data"]["batch_size"] == 5, t
        listed = run(["trigger", "list", "orders"], tmp_path, env)
        assert "RABBITMQ" in listed.stdout and f"queue {queue}" in listed.stdout and "guest:***@" in listed.stdout, listed.stdout
        ids = publish(queue, [b"one"])
        assert eventually(lambda: handled(out) == ids, timeout=10)
        for bad in (["trigger", "add", "orders", "rabbitmq"],
                    ["trigger", "add", "orders", "apig", "--path", "/x", "--set", "queue=q"],
                    ["trigger", "add", "orders", "rabbitmq", "--set", "=x"]):
            assert run(bad, tmp_path, env).returncode == 2, bad
        # The server's check, answered as the server gave it.
        refused = run(["trigger", "add", "orders", "rabbitmq", "--set", f"url={AMQP_URL}"], tmp_path, env)
        assert refused.returncode == 1 and "queue" in refused.stderr, refused.stderr
    finally:
        server.stop()


def publish_nested(queue, depth, body):
    """Publishes one message whose header table nests `depth` tables deep
    (pika encodes it by recursion: a deeper Python stack, in a thread)."""
    import sys
    import threading
    import pika
    nested = "leaf"
    for _ in range(depth):
        nested = {"a": nested}
    failed = []

    def send():
        try:
            with connect() as c:
                ch = c.channel()
                ch.confirm_delivery()
                ch.basic_publish("", queue, body, pika.BasicProperties(message_id=body.decode(), headers={"n": nested}))
        except Exception as e:  # noqa: BLE001 - reported below
            failed.append(e)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, depth * 4 + 1000))
    old = threading.stack_size(256 << 20)
    try:
        t = threading.Thread(target=send)
        t.start()
        t.join()
    finally:
        threading.stack_size(old)
        sys.setrecursionlimit(limit)
    assert not failed, failed


def test_a_deeply_nested_header_does_not_crash_the_server(tmp_path, broker):
    """An attack found by an outsider: a header table nested 300 deep
    overflowed the stack of lapin's I/O thread, which parses it by
    recursion, and aborted the server (again at every restart, the message
    unacknowledged). A header too large for the frame the trigger asks for
    (NEST_DEPTH, default 18,000: 126 KB) is refused by the client and
    comes back; one that lapin parses whole (3,000 deep) must fit the
    server's thread stacks."""
    queue = new_queue(broker)
    out = tmp_path / "out.jsonl"
    server = Server(tmp_path, keys=False).start()
    try:
        deploy(server, tmp_path, "orders", out)
        [first] = publish(queue, [b"before"])
        publish_nested(queue, 500, b"nested-500")
        publish_nested(queue, int(os.environ.get("NEST_DEPTH", "18000")), b"nested-deep")
        [last] = publish(queue, [b"after"])
        t = add_trigger(server, "orders", {"url": AMQP_URL, "queue": queue, "batch_size": 1})
        assert eventually(lambda: "nested-500" in handled(out), timeout=20), handled(out)
        time.sleep(3)
        assert server.proc.poll() is None, "the server died"
        with urllib.request.urlopen(server.url + "/healthz", timeout=5) as r:
            assert r.status == 200
        status = api(server.url, "GET", f"/v2/local/fgs/triggers/orders/RABBITMQ/{t['trigger_id']}")[1]
        print("after a header nested deeper:", handled(out), status.get("trigger_status"), status.get("status_reason"))
        assert handled(out)[:2] == [first, "nested-500"], handled(out)
    finally:
        server.stop()
