#!/usr/bin/env bash
# How fnhost's costs grow with the number of functions, on loopback,
# bounded in time (about 6 minutes with the defaults). For each size of
# SIZES (default "100 1000 10000"), a fresh server (SQLite) gets that many
# functions through the API, all of one small C library (sample-plugins/c,
# handler Echo) with distinct names and configurations (memory, timeout,
# user data), and the script reports:
#  - the server's RSS with the functions deployed, and after each was
#    invoked once (its instance made), per function;
#  - restart to ready: SIGTERM, start again on the same state, until
#    /readyz answers and a function picked at random answers;
#  - list_functions: the first page (400) and the whole listing, p50 of 20;
#  - invoking a function picked at random against invoking one function
#    only, under wrk (1 KiB body, 32 connections), in interleaved rounds:
#    p50/p99 latency and requests per second, and their ratios.
# Then DISTINCT (default 1000) distinct builds of the same library (each
# with its own bytes, so its own cache copy, pre-flight and mapping): the
# create time per build, RSS per build, restart to ready.
# And ISOLATED (default 20) process-isolated functions, each invoked once
# and idle: memory per function (their workers' RSS and the server's).
# Goals (issue 35): invocation p99 at 10,000 functions within 1.2x of one
# function; restart to ready under 2 s at 10,000 functions sharing a
# build; RSS per function documented and linear.
# ROUNDS (default 3), DURATION (seconds per wrk run, default 4).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v wrk >/dev/null || { echo "installing wrk"; apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p fnhost-cli
export SIZES=${SIZES:-100 1000 10000} DISTINCT=${DISTINCT:-1000} ISOLATED=${ISOLATED:-20}
export ROUNDS=${ROUNDS:-3} DURATION=${DURATION:-4}
exec python3 - <<'PY'
import base64, concurrent.futures, http.client, io, json, os, random, shutil, socket, statistics
import subprocess, tempfile, time, urllib.request, zipfile

ROOT = os.getcwd()
OUT = f"{ROOT}/target/release"
SIZES = [int(n) for n in os.environ["SIZES"].split()]
DISTINCT, ISOLATED = int(os.environ["DISTINCT"]), int(os.environ["ISOLATED"])
ROUNDS, DURATION = int(os.environ["ROUNDS"]), int(os.environ["DURATION"])
work = tempfile.mkdtemp()
procs = []

lib = f"{work}/hello.so"
subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-I", "plugin-api/include", "-o", lib,
                "sample-plugins/c/hello.c"], check=True)
LIB = open(lib, "rb").read()

def zip_b64(data):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.so", data)
    return base64.b64encode(buf.getvalue()).decode()

ZIP = zip_b64(LIB)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

class Server:
    def __init__(self, name):
        self.dir, self.port = f"{work}/{name}", free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.p = None

    def start(self):
        """Starts it; seconds until /readyz answers 200."""
        log = open(f"{self.dir}.log", "a")
        t = time.monotonic()
        self.p = subprocess.Popen([f"{OUT}/fnhost", "serve", "--listen", f"127.0.0.1:{self.port}",
                                   "--data-dir", f"{self.dir}/data", "--cache-dir", f"{self.dir}/cache"],
                                  stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
        procs.append(self.p)
        while time.monotonic() - t < 300:
            try:
                if urllib.request.urlopen(self.url + "/readyz", timeout=1).status == 200:
                    return time.monotonic() - t
            except OSError:
                time.sleep(0.005)
        raise SystemExit(f"{self.dir} did not come up: " + open(f"{self.dir}.log").read()[-2000:])

    def stop(self):
        self.p.terminate()
        self.p.wait(60)

    def rss_kb(self, pid=None):
        for line in open(f"/proc/{pid or self.p.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

def request(conn, method, path, body=None):
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data

def create_all(server, names, zipped=lambda i: ZIP, isolation=None):
    """Creates the functions over 4 keep-alive connections; seconds taken."""
    def create(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        for i, name in chunk:
            body = {"func_name": name, "package": "default", "runtime": "Custom", "handler": "hello.Echo",
                    "memory_size": [128, 256, 512, 768, 1024][i % 5], "timeout": 3 + i % 27, "code_type": "zip",
                    "user_data": json.dumps({"NAME": name, "N": str(i)}), "func_code": {"file": zipped(i)}}
            if isolation:
                body["isolation"] = isolation
            request(conn, "POST", "/v2/bench/fgs/functions", json.dumps(body))
        conn.close()
    items = list(enumerate(names))
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(create, [items[k::4] for k in range(4)]))
    return time.monotonic() - t

def invoke_each(server, names):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    for name in names:
        request(conn, "POST", f"/v2/bench/fgs/functions/{name}/invocations", b"{}")
    conn.close()

def p50_ms(server, path, n=20):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        request(conn, "GET", path)
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return statistics.median(times)

def list_all_ms(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    times = []
    for _ in range(5):
        t, marker = time.perf_counter(), 0
        while True:
            page = json.loads(request(conn, "GET", f"/v2/bench/fgs/functions?marker={marker}&maxitems=400"))
            if page["next_marker"] >= page["count"]:
                break
            marker = page["next_marker"]
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    return statistics.median(times)

def wrk(server, names):
    lua = f"{work}/random.lua"
    with open(lua, "w") as f:
        f.write("local names = {" + ",".join(f'"{n}"' for n in names) + "}\n")
        f.write('local body = string.rep("x", 1024)\n'
                "request = function()\n"
                '  local name = names[math.random(#names)]\n'
                '  return wrk.format("POST", "/v2/bench/fgs/functions/" .. name .. "/invocations", '
                '{["Content-Type"] = "application/octet-stream"}, body)\n'
                "end\n")
    r = subprocess.run(["wrk", "-t2", "-c32", f"-d{DURATION}s", "--latency", "-s", lua, server.url],
                       capture_output=True, text=True, check=True).stdout
    def ms(v):
        for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
            if v.endswith(unit):
                return float(v[:-len(unit)]) * f
        return float(v)
    rps = float(next(l.split()[1] for l in r.splitlines() if l.startswith("Requests/sec")))
    lat = {l.split()[0]: ms(l.split()[1]) for l in r.splitlines() if l.strip().startswith(("50%", "99%"))}
    non2xx = next((int(l.split()[-1]) for l in r.splitlines() if "Non-2xx" in l), 0)
    if non2xx:
        raise SystemExit(f"{non2xx} non-2xx answers under wrk")
    return rps, lat["50%"], lat["99%"]

def restart_to_ready(server, names):
    """Stops `server` and starts it again on the same state: seconds until
    it is ready and a function picked at random answers."""
    server.stop()
    took = server.start()
    t = time.monotonic()
    invoke_each(server, [random.choice(names)])
    took += time.monotonic() - t
    server.stop()
    return took

def spread(xs):
    return f"{min(xs):.2f}-{max(xs):.2f}"

results = {}
try:
    for n in SIZES:
        s = Server(f"n{n}")
        s.start()
        base_kb = s.rss_kb()
        names = [f"f{i}" for i in range(n)]
        created = create_all(s, names)
        deployed_kb = s.rss_kb()
        invoke_each(s, names)
        warm_kb = s.rss_kb()
        first_page = p50_ms(s, "/v2/bench/fgs/functions")
        whole = list_all_ms(s)
        rounds = []
        for r in range(ROUNDS):
            order = [("one", [names[0]]), ("random", names)]
            if r % 2:
                order.reverse()
            got = {kind: wrk(s, ns) for kind, ns in order}
            rounds.append(got)
        restart = restart_to_ready(s, names)
        p99_ratio = [g["random"][2] / g["one"][2] for g in rounds]
        p50_ratio = [g["random"][1] / g["one"][1] for g in rounds]
        rps_ratio = [g["random"][0] / g["one"][0] for g in rounds]
        med = lambda k, i: statistics.median(g[k][i] for g in rounds)
        print(f"{n} functions: created in {created:.1f} s ({created / n * 1000:.1f} ms each); RSS "
              f"{base_kb / 1024:.0f} MB empty, {deployed_kb / 1024:.0f} MB deployed "
              f"({(deployed_kb - base_kb) / n:.1f} kB a function), {warm_kb / 1024:.0f} MB after one call each "
              f"({(warm_kb - base_kb) / n:.1f} kB a function); restart to ready {restart:.2f} s; "
              f"list first page p50 {first_page:.2f} ms, all of it {whole:.1f} ms; invoke one function "
              f"p50 {med('one', 1):.3f} ms p99 {med('one', 2):.3f} ms {med('one', 0):.0f} req/s, a random one "
              f"p50 {med('random', 1):.3f} ms p99 {med('random', 2):.3f} ms {med('random', 0):.0f} req/s; "
              f"random/one p99 {statistics.median(p99_ratio):.2f}x ({spread(p99_ratio)}), p50 "
              f"{statistics.median(p50_ratio):.2f}x, req/s {statistics.median(rps_ratio):.2f}x ({spread(rps_ratio)})",
              flush=True)
        shutil.rmtree(s.dir, ignore_errors=True)

    if DISTINCT:
        s = Server("distinct")
        s.start()
        base_kb = s.rss_kb()
        names = [f"d{i}" for i in range(DISTINCT)]
        # Distinct bytes: a tag appended after the ELF's last section (the
        # loader maps what the program headers name and never reads it).
        zips = [zip_b64(LIB + b"\0fnhost-bench-build-%08d" % i) for i in range(DISTINCT)]
        created = create_all(s, names, zipped=lambda i: zips[i])
        deployed_kb = s.rss_kb()
        invoke_each(s, names)
        warm_kb = s.rss_kb()
        restart = restart_to_ready(s, names)
        print(f"{DISTINCT} distinct builds: created in {created:.1f} s ({created / DISTINCT * 1000:.1f} ms each); "
              f"RSS {(deployed_kb - base_kb) / DISTINCT:.1f} kB a build deployed, "
              f"{(warm_kb - base_kb) / DISTINCT:.1f} kB after one call each; restart to ready {restart:.2f} s",
              flush=True)
        shutil.rmtree(s.dir, ignore_errors=True)

    if ISOLATED:
        s = Server("isolated")
        s.start()
        base_kb = s.rss_kb()
        names = [f"p{i}" for i in range(ISOLATED)]
        create_all(s, names, isolation="process")
        before = s.rss_kb()
        invoke_each(s, names)
        time.sleep(1)
        children = subprocess.run(["pgrep", "-P", str(s.p.pid)], capture_output=True, text=True).stdout.split()
        workers_kb = 0
        for pid in children:
            try:
                workers_kb += s.rss_kb(int(pid))
            except OSError:
                pass
        server_kb = s.rss_kb() - before
        s.stop()
        print(f"{ISOLATED} idle process-isolated functions: {len(children)} worker processes, "
              f"{workers_kb / len(names) / 1024:.2f} MB of workers' RSS a function (shared pages counted in each), "
              f"{server_kb / len(names):.0f} kB of the server's a function", flush=True)
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
    shutil.rmtree(work, ignore_errors=True)
PY
