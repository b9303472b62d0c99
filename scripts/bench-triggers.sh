#!/usr/bin/env bash
# Event-source benchmark (issue 34), on loopback, bounded (about 4 minutes):
#  1. throughput, publish-to-acknowledged: N messages already in a RabbitMQ
#     queue, a NATS JetStream stream or a Redis stream, consumed and
#     acknowledged (a) by the broker's own consume-and-ack loop in the client
#     library fnhost uses (host/server/examples/broker_floor.rs: lapin,
#     async-nats, redis; the floor) and (b) by an fnhost trigger calling an
#     echo function (from the trigger's creation to its counter reaching N),
#     at batch size 1 and 100, in interleaved rounds; the ratio fnhost/floor
#     per round, its median and spread;
#  2. publish-to-handler latency on an idle server, batch size 1: messages
#     published one at a time carry their publish time; the handler
#     (tests/fixtures/stamp_batches.c) writes the time it was called.
# Goals: at least 0.8x the floor at batch size 1, 0.9x at batch size 100.
# ROUNDS (default 5), N1 (messages at batch size 1, default 3000), N100
# (default 100000), LATENCY (messages, default 200); KINDS (default
# "rabbitmq nats redis") and BATCHES (default "1 100") pick the cases;
# BENCH_WORK (a directory) keeps the server's log there.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/build-deps.sh
cargo build --release --locked -p fnhost-cli -p echo
cargo build --release --locked -p fnhost-server --example broker_floor
python=$(./scripts/sdk-venv.sh)
RABBITMQ=$(./scripts/rabbitmq.sh)
NATS=$(./scripts/nats.sh)
REDIS=$(./scripts/redis.sh)
export RABBITMQ NATS REDIS ROUNDS=${ROUNDS:-5} N1=${N1:-3000} N100=${N100:-100000} LATENCY=${LATENCY:-200} \
    KINDS=${KINDS:-rabbitmq nats redis} BATCHES=${BATCHES:-1 100}
trap './scripts/rabbitmq.sh stop; ./scripts/nats.sh stop; ./scripts/redis.sh stop' EXIT
"$python" - <<'PY'
import asyncio, base64, io, json, os, signal, statistics, subprocess, sys, tempfile, time, urllib.request, uuid, zipfile

sys.path.insert(0, "scripts")
from bench_server import serve  # noqa: E402

ROOT = os.getcwd()
OUT = f"{ROOT}/target/release"
FLOOR = f"{OUT}/examples/broker_floor"
URLS = {"rabbitmq": os.environ["RABBITMQ"], "nats": os.environ["NATS"], "redis": os.environ["REDIS"]}
CODES = {"rabbitmq": "RABBITMQ", "nats": "NATS", "redis": "REDIS"}
ROUNDS, N1, N100, LATENCY = (int(os.environ[k]) for k in ("ROUNDS", "N1", "N100", "LATENCY"))
GOALS = {1: 0.8, 100: 0.9}
work = os.environ.get("BENCH_WORK") or tempfile.mkdtemp(prefix="fnhost-bench-triggers-")


def call(url, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, (json.loads(text) if text and text[:1] in b"[{" else text)
    except urllib.error.HTTPError as e:
        return e.code, e.read()


server, URL = serve(f"{OUT}/fnhost", work)


def package(lib, as_name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.write(lib, as_name)
    return base64.b64encode(buf.getvalue()).decode()


def deploy(name, lib, as_name, handler, user_data=None):
    status, body = call(URL, "POST", "/v2/local/fgs/functions", {
        "func_name": name, "package": "default", "runtime": "Custom", "handler": handler, "memory_size": 128,
        "timeout": 30, "code_type": "zip", "func_code": {"file": package(lib, as_name)},
        "user_data": json.dumps(user_data or {})})
    assert status == 200, body


stamp = f"{work}/stamp_batches.so"
subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-I", f"{ROOT}/plugin-api/include", "-o", stamp,
                f"{ROOT}/tests/fixtures/stamp_batches.c"], check=True)
deploy("echo", f"{OUT}/libecho.so", "echo.so", "echo.Handler")
stamps = f"{work}/stamps.log"
deploy("stamp", stamp, "stamp_batches.so", "stamp_batches.Handler", {"OUT": stamps})


def settings(kind, name, batch):
    url = URLS[kind]
    if kind == "rabbitmq":
        return {"url": url, "queue": name, "batch_size": batch}
    if kind == "nats":
        return {"url": url, "stream": name, "batch_size": batch, "start": "earliest"}
    return {"url": url, "stream": name, "batch_size": batch, "start": "earliest"}


def metric(trigger_id, prefix, label="", as_float=False):
    with urllib.request.urlopen(URL + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(prefix) and f'trigger="{trigger_id}"' in line and label in line:
                value = float(line.rpartition(" ")[2])
                return value if as_float else int(value)
    return 0


def succeeded(trigger_id):
    return metric(trigger_id, "fnhost_trigger_messages_total{", 'result="succeeded"')


def floor(kind, batch, n):
    name = f"floor{uuid.uuid4().hex[:10]}"
    subprocess.run([FLOOR, "publish", kind, URLS[kind], name, str(n)], check=True)
    out = subprocess.run([FLOOR, "consume", kind, URLS[kind], name, str(n), str(batch)], check=True,
                         capture_output=True, text=True).stdout
    cleanup(kind, name)
    return n / float(out)


def through_fnhost(kind, batch, n):
    name = f"fnh{uuid.uuid4().hex[:10]}"
    subprocess.run([FLOOR, "publish", kind, URLS[kind], name, str(n)], check=True)
    # From just before the trigger's creation to the server's own clock
    # reading of its last acknowledgement: polling at leisure neither
    # delays the end (a 20 ms poll added 10 ms on average to a 0.6 s
    # round) nor takes the server's CPU (each poll renders /metrics).
    started = time.time()
    status, t = call(URL, "POST", "/v2/local/fgs/triggers/echo",
                     {"trigger_type_code": CODES[kind], "trigger_status": "ACTIVE", "event_data": settings(kind, name, batch)})
    assert status == 201, t
    print("PROF created", time.time() - started, "at", started, flush=True)
    deadline = time.monotonic() + 120
    while succeeded(t["trigger_id"]) < n:
        assert time.monotonic() < deadline, f"{kind} batch {batch}: {succeeded(t['trigger_id'])} of {n} in 120 s"
        time.sleep(0.2)
    took = metric(t["trigger_id"], "fnhost_trigger_last_batch_timestamp_seconds{", as_float=True) - started
    batches.setdefault((kind, batch), []).append(n / max(1, metric(t["trigger_id"], "fnhost_trigger_batch_seconds_count{")))
    call(URL, "DELETE", f"/v2/local/fgs/triggers/echo/{CODES[kind]}/{t['trigger_id']}")
    cleanup(kind, name)
    return n / took


def cleanup(kind, name):
    if kind == "rabbitmq":
        import pika
        with pika.BlockingConnection(pika.URLParameters(URLS[kind])) as c:
            c.channel().queue_delete(name)
    elif kind == "redis":
        import redis
        redis.Redis.from_url(URLS[kind]).delete(name)
    else:
        import nats

        async def drop():
            nc = await nats.connect(URLS[kind])
            await nc.jetstream().delete_stream(name)
            await nc.close()
        asyncio.run(drop())


def latency(kind):
    """Publish-to-handler latencies (ms) of LATENCY messages published one
    at a time, 5 ms apart, to an idle trigger of batch size 1."""
    name = f"lat{uuid.uuid4().hex[:10]}"
    subprocess.run([FLOOR, "publish", kind, URLS[kind], name, "0"], check=True)
    if os.path.exists(stamps):
        os.remove(stamps)
    status, t = call(URL, "POST", "/v2/local/fgs/triggers/stamp",
                     {"trigger_type_code": CODES[kind], "trigger_status": "ACTIVE",
                      "event_data": {**settings(kind, name, 1), "start": "latest"} if kind != "rabbitmq" else settings(kind, name, 1)})
    assert status == 201, t
    time.sleep(2)  # The consumer connects (and, for Redis and NATS, creates its group or consumer).
    publish_one = publisher(kind, name)
    for _ in range(LATENCY):
        publish_one(str(time.time_ns()).encode())
        time.sleep(0.005)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = open(stamps).read().splitlines() if os.path.exists(stamps) else []
        if len(lines) >= LATENCY:
            break
        time.sleep(0.1)
    call(URL, "DELETE", f"/v2/local/fgs/triggers/stamp/{CODES[kind]}/{t['trigger_id']}")
    cleanup(kind, name)
    ms = []
    for line in lines:
        at, _, event = line.partition(" ")
        for r in json.loads(event)["records"]:
            sent = r["messages"][0] if kind == "rabbitmq" else (r["data"] if kind == "nats" else r["fields"]["b"])
            ms.append((int(at) - int(sent)) / 1e6)
    return ms


def publisher(kind, name):
    if kind == "rabbitmq":
        import pika
        ch = pika.BlockingConnection(pika.URLParameters(URLS[kind])).channel()
        return lambda body: ch.basic_publish("", name, body)
    if kind == "redis":
        import redis
        r = redis.Redis.from_url(URLS[kind])
        return lambda body: r.xadd(name, {"b": body})
    import nats
    loop = asyncio.new_event_loop()
    nc = loop.run_until_complete(nats.connect(URLS[kind]))
    js = nc.jetstream()
    return lambda body: loop.run_until_complete(js.publish(f"{name}.in", body))


cases = [(kind, int(batch)) for kind in os.environ["KINDS"].split() for batch in os.environ["BATCHES"].split()]
batches = {}
results = {c: {"floor": [], "fnhost": [], "ratio": []} for c in cases}
try:
    for r in range(ROUNDS):
        for kind, batch in cases:
            n = N1 if batch == 1 else N100
            runs = [("floor", floor), ("fnhost", through_fnhost)]
            if r % 2:
                runs.reverse()
            got = {label: fn(kind, batch, n) for label, fn in runs}
            res = results[(kind, batch)]
            for label in ("floor", "fnhost"):
                res[label].append(got[label])
            res["ratio"].append(got["fnhost"] / got["floor"])
            print(f"round {r + 1} {kind} batch {batch}: floor {got['floor']:.0f}/s, fnhost {got['fnhost']:.0f}/s, "
                  f"ratio {got['fnhost'] / got['floor']:.2f}", flush=True)
    lat = {kind: latency(kind) for kind in os.environ["KINDS"].split()} if LATENCY else {}
finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)

print()
print(f"Throughput, publish to acknowledged, {ROUNDS} interleaved rounds ({N1} messages at batch 1, {N100} at batch 100):")
print()
print("| broker | batch | floor msg/s (median) | fnhost msg/s (median) | ratio median | ratio spread | goal | holds in | fnhost's mean batch |")
print("|---|---|---|---|---|---|---|---|---|")
for (kind, batch), res in results.items():
    ratios = res["ratio"]
    goal = GOALS[batch]
    holds = sum(1 for x in ratios if x >= goal)
    print(f"| {kind} | {batch} | {statistics.median(res['floor']):.0f} | {statistics.median(res['fnhost']):.0f} | "
          f"{statistics.median(ratios):.2f} | {min(ratios):.2f}-{max(ratios):.2f} | {goal} | {holds} of {len(ratios)} rounds | "
          f"{statistics.median(batches[(kind, batch)]):.1f} |")
print()
print(f"Publish-to-handler latency on an idle server, batch size 1, {LATENCY} messages 5 ms apart:")
print()
print("| broker | p50 ms | p99 ms | max ms |")
print("|---|---|---|---|")
for kind, ms in lat.items():
    ms.sort()
    if not ms:
        print(f"| {kind} | - | - | - |")
        continue
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]
    print(f"| {kind} | {p(0.5):.1f} | {p(0.99):.1f} | {ms[-1]:.1f} |")
PY
