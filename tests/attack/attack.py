"""The attack suite (scripts/attack.sh): starts `fnhost serve` servers on
127.0.0.1 and runs the hostile cases of the front door and of native code
(constructors that crash or block, output floods, forged markers, forking
handlers, huge error messages, worker pile-ups) against them, each bounded
in count and time, then prints a table: what was tried, whether it held,
degraded or failed, server crashes, and what was lost.

Every request goes to 127.0.0.1; every loop has a bound.
"""
import base64
import hashlib
import io
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "sdk"))

from conftest import AK, PROJECT, SK, TARGET, Server, eventually, zip_b64, zip_entries_b64  # noqa: E402
from test_front_door import (BASE, build, call, create, create_body, open_connections, raw, read_all,  # noqa: E402
                             send, signed, untaken)

RESULTS = []
CRASHES = []


def rss_mb(server):
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(server):
    fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def metric_value(server, sample):
    """The value of `sample` (its name and labels, as /metrics writes
    them), or None when /metrics has no such line."""
    for line in call(server, "GET", "/metrics")[2].decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return None


def healthy(server, timeout=3):
    try:
        return send(server, "GET", "/healthz", timeout=timeout)[0] == 200
    except OSError:
        return False


def attack(name, tried):
    """Registers an attack: the function returns (verdict, note)."""
    def wrap(fn):
        def run(server):
            started = time.time()
            try:
                verdict, note = fn(server)
            except Exception as e:  # an attack that breaks the harness counts as failed
                verdict, note = "failed", f"{type(e).__name__}: {e}"
                traceback.print_exc()
            if server.proc.poll() is not None:
                CRASHES.append(name)
                verdict, note = "failed", f"server exited with {server.proc.returncode}; " + note
                server.proc = None
                server.start()
            RESULTS.append((name, tried, verdict, note, time.time() - started))
            print(f"{verdict:9} {name}: {note}", flush=True)
        run.attack_name = name
        run.__wrapped_name__ = fn.__name__
        ATTACKS.append(run)
        return run
    return wrap


ATTACKS = []


@attack("replayed request, other body, unsigned X-Sdk-Content-Sha256", "2 requests")
def forged_hash(server):
    urn = create(server, "victim")
    path = f"{BASE}/{urn}/code"
    good = json.dumps({"code_type": "zip", "func_code": {"file": build(b"good")}}).encode()
    evil = json.dumps({"code_type": "zip", "func_code": {"file": build(b"evil")}}).encode()
    headers = signed(server, "PUT", path, good)
    headers["X-Sdk-Content-Sha256"] = hashlib.sha256(good).hexdigest()
    status = send(server, "PUT", path, evil, headers)[0]
    return ("held" if status == 401 else "failed"), f"answered {status}"


@attack("replayed request, other body, signed X-Sdk-Content-Sha256", "2 requests")
def replay_signed_hash(server):
    urn = create(server, "victim2")
    path = f"{BASE}/{urn}/invocations"
    good, evil = b'{"key": "NAME"}', b'{"key": "EVIL"}'
    headers = signed(server, "POST", path, good, content_sha256=hashlib.sha256(good).hexdigest())
    first = send(server, "POST", path, good, headers)[0]
    replay = send(server, "POST", path, evil, headers)[0]
    ok = first == 200 and replay == 401
    return ("held" if ok else "failed"), f"original {first}, replay {replay}"


@attack("UNSIGNED-PAYLOAD body", "1 request")
def unsigned_payload(server):
    urn = create(server, "victim3")
    path = f"{BASE}/{urn}/invocations"
    headers = signed(server, "POST", path, b"\x00x", {"Content-Type": "application/octet-stream"})
    status = send(server, "POST", path, b"\x00x", headers)[0]
    return ("held" if status == 401 else "failed"), f"answered {status}"


@attack("probing keys: unknown key, bad signature, stale date tell nothing apart", "3 requests")
def probe_keys(server):
    probes = (signed(server, "GET", BASE, ak="nobody"), signed(server, "GET", BASE, sk="bad"),
              signed(server, "GET", BASE, headers={"X-Sdk-Date": "20200101T000000Z"}))
    answers = set()
    for headers in probes:
        status, _, body = send(server, "GET", BASE, b"", headers)
        answers.add((status, body))
    ok = len(answers) == 1 and next(iter(answers))[0] == 401
    return ("held" if ok else "failed"), f"{len(answers)} distinct answer(s)"


@attack("pre-auth flood: 12 connections announcing 90 MB, sending 8 MB each", "12 connections, 96 MB")
def preauth_flood(server):
    before = rss_mb(server)
    head = (b"PUT /v2/proj1/fgs/functions/x/code HTTP/1.1\r\nHost: x\r\nContent-Length: 94371840\r\n\r\n")
    chunk = b"x" * (1 << 20)
    peak, refused = before, 0

    def flood():
        nonlocal refused
        try:
            s = raw(server, head, timeout=5)
            for _ in range(8):
                s.sendall(chunk)
            if read_all(s).startswith(b"HTTP/1.1 401"):
                refused += 1
        except OSError:
            refused += 1  # answered and closed before the body was sent
    threads = [threading.Thread(target=flood) for _ in range(12)]
    for t in threads:
        t.start()
    for _ in range(20):
        peak = max(peak, rss_mb(server))
        time.sleep(0.05)  # Fixed wait: the RSS is sampled for a second of the flood.
    for t in threads:
        t.join(timeout=15)
    grown = peak - before
    ok = grown < 64 and refused == 12 and healthy(server)
    return ("held" if ok else "failed"), f"RSS +{grown:.0f} MB (peak {peak:.0f} MB), {refused}/12 refused"


@attack("oversized management body (authenticated)", "1 request of 2 MB")
def oversized_manage(server):
    urn = create(server, "sized")
    status = call(server, "PUT", f"{BASE}/{urn}/config", {"description": "x" * (2 << 20)})[0]
    return ("held" if status == 413 else "failed"), f"answered {status}"


@attack("slowloris: 300 connections sending a header byte a second", "300 connections, 6 s")
def slowloris(server):
    conns = []
    for _ in range(300):
        try:
            conns.append(raw(server, b"G", timeout=2))
        except OSError:
            break
    closed_at = None
    served = True
    started = time.time()
    for i in range(6):
        time.sleep(1)  # Fixed wait: the attack's pace, a header byte a second.
        alive = 0
        for s in conns:
            try:
                s.sendall(b"E")
                alive += 1
            except OSError:
                pass
        served = served and healthy(server)
        if alive == 0 and closed_at is None:
            closed_at = time.time() - started
    for s in conns:
        s.close()
    ok = served and closed_at is not None
    note = f"all closed after {closed_at:.1f} s" if closed_at else "connections still open after 6 s"
    return ("held" if ok else "failed"), note + ("; /healthz answered throughout" if served else "; /healthz failed")


@attack("idle connections: 2,000 opened, none sending", "2,000 connections")
def idle_connections(server):
    conns = []
    for _ in range(2000):
        try:
            conns.append(raw(server, timeout=2))
        except OSError:
            break
    eventually(lambda: untaken(server) == 0)  # every connection accepted (or refused)
    ok_health = healthy(server)
    ok_manage = call(server, "GET", BASE)[0] == 200

    def still_open():
        still = 0
        for s in conns[:200]:
            s.setblocking(False)
            try:
                if s.recv(1, socket.MSG_PEEK) != b"":
                    still += 1
            except BlockingIOError:
                still += 1
            except OSError:
                pass
        return still
    eventually(lambda: still_open() == 0, timeout=server_limits(server)["header_timeout"] + 1.5, interval=0.25)
    still = still_open()
    for s in conns:
        s.close()
    ok = ok_health and ok_manage and still == 0
    return ("held" if ok else "degraded" if ok_health else "failed"), \
        f"{len(conns)} opened; /healthz {'ok' if ok_health else 'failed'}, management {'ok' if ok_manage else 'failed'}; {still}/200 sampled still open after the header timeout"


def server_limits(server):
    return json.loads(server.config.read_text()).get("limits", {"header_timeout": 10})


@attack("descriptor exhaustion: 1,100 idle connections against a 1,024-descriptor limit", "1,100 connections")
def descriptors(_):
    tmp = Path(tempfile.mkdtemp(prefix="fnhost-attack-fd-"))
    low = Server(tmp, config={"limits": {"header_timeout": 30}})
    low.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))
    low.start()
    try:
        urn = create(low, "fd")
        conns = []
        for _ in range(1100):
            try:
                conns.append(raw(low, timeout=2))
            except OSError:
                break
        eventually(lambda: untaken(low) == 0)  # every connection accepted (or refused)
        results = {
            "/healthz": healthy(low),
            "/readyz": send(low, "GET", "/readyz")[0] == 200,
            "management": call(low, "GET", BASE)[0] == 200,
        }
        invoke = call(low, "POST", f"{BASE}/{urn}/invocations", b"{}")[0]
        for s in conns:
            s.close()
        eventually(lambda: open_connections(low) == 1)  # all given back: only the /metrics request's own
        after = call(low, "POST", f"{BASE}/{urn}/invocations", b"{}")[0]
        crashed = low.proc.poll() is not None
        ok = all(results.values()) and after == 200 and not crashed
        note = ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in results.items())
        return ("held" if ok else "failed"), f"{note}; invocation at the cap {invoke} (503 expected), after {after}"
    finally:
        low.stop(signal.SIGKILL)


@attack("exposure: /apig/{function} without a trigger, APIG paths over /v2 and /healthz", "8 requests")
def exposure(server):
    urn = create(server, "private", handler="testplugin.ApigTest")
    anon = send(server, "GET", "/apig/private/x")[0]
    shadows = [call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}",
                    {"trigger_type_code": "APIG", "event_data": {"path": p}})[0]
               for p in ("/v2", "/v2/proj1/fgs", "/healthz", "/metrics", "/readyz", "/apig")]
    unrouted = call(server, "GET", "/v2/unrouted")[0]
    ok = anon == 404 and all(s == 400 for s in shadows) and unrouted == 404
    return ("held" if ok else "failed"), f"/apig {anon}, shadowing triggers {sorted(set(shadows))}, unrouted /v2 {unrouted}"


@attack("a function's hop-by-hop and framing headers", "1 request")
def hop_headers(server):
    urn = create(server, "hops", handler="misbehaving.HopHeaders", library="libmisbehaving.so", module="misbehaving")
    call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}", {"trigger_type_code": "APIG", "event_data": {"path": "/hops"}})
    s = raw(server, b"GET /hops HTTP/1.1\r\nHost: x\r\n\r\n")
    head = s.recv(65536).split(b"\r\n\r\n")[0].lower()
    leaked = [h for h in (b"transfer-encoding", b"upgrade", b"x-hop", b"content-length: 100000") if h in head]
    return ("held" if not leaked else "failed"), f"leaked: {leaked or 'none'}"


@attack("server paths in error answers", "3 requests")
def paths(server):
    urn = create(server, "pathless")
    bodies = [call(server, "POST", BASE, create_body("x1", handler="nosuch.Handler"))[2],
              call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {"file": zip_b64("libecho.so", "echo")}})[2],
              call(server, "POST", BASE, create_body("x2", handler="testplugin.Missing"))[2]]
    leaked = [b for b in bodies if str(server.tmp).encode() in b or b"/code/" in b or b"/libs/" in b]
    return ("held" if not leaked else "failed"), f"{len(leaked)} of {len(bodies)} answers show a path"


@attack("wrapping numbers: weights, rates, instance counts, timeouts", "9 requests")
def wrapping(server):
    urn = create(server, "numbers")
    call(server, "POST", f"{BASE}/{urn}/versions", {"version": "v1"})
    call(server, "POST", f"{BASE}/{urn}/versions", {"version": "v2"})
    cases = [
        ("POST", f"{BASE}/{urn}/aliases", {"name": "a", "version": "v1", "additional_version_weights": {"v2": 4294967295}}),
        ("POST", f"/v2/{PROJECT}/fgs/triggers/{urn}", {"trigger_type_code": "TIMER", "event_data": {
            "name": "t", "schedule_type": "Rate", "schedule": "213503982334602d"}}),
        ("PUT", f"{BASE}/{urn}/config-max-instance", {"max_instance_num": 4294967295}),
        ("PUT", f"{BASE}/{urn}/reservedinstances", {"count": 4294967295}),
        ("PUT", f"{BASE}/{urn}/config", {"timeout": 4294967295}),
        ("PUT", f"{BASE}/{urn}/config", {"initializer_timeout": 4294967295}),
        ("PUT", f"{BASE}/{urn}/config", {"memory_size": 4294967295}),
    ]
    statuses = [call(server, m, p, b)[0] for m, p, b in cases]
    before = cpu_seconds(server)
    time.sleep(1)  # Fixed wait: the server's CPU time is measured over one second.
    busy = cpu_seconds(server) - before
    started = time.time()
    followup = call(server, "GET", f"{BASE}/{urn}/config")[0]
    ok = all(s == 400 for s in statuses) and busy < 0.3 and followup == 200 and time.time() - started < 1
    return ("held" if ok else "failed"), f"answers {sorted(set(statuses))}; server CPU {busy * 100:.0f} % in the next second"


@attack("create and update alike: 40 MB user_data, timeout 0, package names `../../x`, `a/b`, `default\\0`", "8 requests")
def field_limits(server):
    before = rss_mb(server)
    huge = json.dumps({"K": "v" * (40 << 20)})
    statuses = [call(server, "POST", BASE, create_body("lim-fat", user_data=huge))[0]]
    statuses += [call(server, "POST", BASE, create_body(f"lim-p{i}", package=p))[0]
                 for i, p in enumerate(["../../x", "a/b", "default\0", "x" * 65])]
    statuses.append(call(server, "POST", BASE, create_body("lim-zero", timeout=0))[0])
    statuses.append(call(server, "POST", BASE, create_body("lim-slow", timeout=901))[0])
    statuses.append(call(server, "POST", BASE, create_body("lim-blurb", description="d" * 513))[0])
    listing = call(server, "GET", BASE)[2]
    names = {f["func_name"] for f in json.loads(listing)["functions"]}
    stored = names & {"lim-fat", "lim-p0", "lim-p1", "lim-p2", "lim-p3", "lim-zero", "lim-slow", "lim-blurb"}
    grew = rss_mb(server) - before
    ok = all(s == 400 for s in statuses) and not stored and len(listing) < (1 << 20)
    return ("held" if ok else "failed"), \
        f"answers {statuses}; stored {sorted(stored) or 'none'}; list {len(listing) >> 10} KB; server grew {grew:.0f} MB"


@attack("a Cron with a seconds field under the minimum rate (`* * * * * * *`)", "3 requests")
def cron_rate(server):
    urn = create(server, "ticker")
    statuses = []
    for schedule in ["* * * * * * *", "*/30 * * * * *", "0,1 * * * * *"]:
        statuses.append(call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}", {
            "trigger_type_code": "TIMER", "trigger_status": "ACTIVE",
            "event_data": {"name": f"t{len(statuses)}", "schedule_type": "Cron", "schedule": schedule}})[0])
    ok = all(s == 400 for s in statuses)
    return ("held" if ok else "failed"), f"answers {statuses}"


@attack("zip entries with a 60,000-character name, 2,000 folder levels, a file and a folder of one name", "3 uploads")
def zip_names(server):
    urn = create(server, "named")
    statuses = []
    for entries in [{"a" * 60_000: b"x"}, {"d/" * 2_000 + "f": b"x"}, {"x": b"1", "x/y": b"2"}]:
        code = zip_entries_b64({"testplugin.so": (TARGET / "libtestplugin.so").read_bytes(), **entries})
        status, _, body = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {"file": code}})
        statuses.append(status)
    ok = all(s == 400 for s in statuses)
    return ("held" if ok else "failed"), f"answers {statuses}"


@attack("HTTP/1.1 requests without Host, and with two", "2 requests")
def no_host(server):
    answers = []
    for head in (b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n",
                 b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n"):
        s = raw(server, head)
        answers.append(read_all(s).split(b"\r\n", 1)[0].decode(errors="replace"))
        s.close()
    ok = all(" 400 " in a for a in answers)
    return ("held" if ok else "failed"), f"answered {answers}"


@attack("a log message that forges another invocation's line", "1 invocation")
def forged_log_line(server):
    urn = create(server, "log-forger", handler="misbehaving.LogPayload", library="libmisbehaving.so", module="misbehaving")
    path = f"{BASE}/{urn}/invocations"
    forged = b"ok\n2026-01-01T00:00:00.000Z 00000000-0000-0000-0000-000000000000 forged\r\nmore"
    headers = signed(server, "POST", path, forged, {"X-Cff-Log-Type": "tail"})
    status, answer, _ = send(server, "POST", path, forged, headers)
    log = base64.b64decode(answer.get("X-Cff-Function-Log", "")).decode(errors="replace")
    lines = [line for line in log.splitlines() if "forged" in line]
    request_id = answer.get("X-Cff-Request-Id", "?")
    ok = status == 200 and len(lines) == 1 and request_id in lines[0] and "\r" not in log
    return ("held" if ok else "failed"), f"{len(lines)} line(s) hold the message; each starts with the request's own id: {ok}"


@attack("the command line: numbers that break parsers, a function's escape sequences on a terminal", "34 commands")
def cli_inputs(server):
    import pty
    panicked = []
    for flag in ["--timeout", "--init-timeout", "--memory"]:
        for value in ["18446744073709551616", "1e30", "-1", "nan", "inf", "9" * 400]:
            r = subprocess.run([str(TARGET / "fnhost"), "invoke", "echo.Handler", "--code-dir", str(TARGET),
                                "--data", "1", flag, value], capture_output=True, timeout=60)
            if r.returncode == 101 or b"panicked" in r.stderr:
                panicked.append(f"{flag} {value[:20]}")
    for flag in ["--shutdown-grace", "--async-records-max-age"]:
        for value in ["18446744073709551616", "-1", "9" * 400]:
            r = subprocess.run([str(TARGET / "fnhost"), "serve", "--data-dir", "/dev/null/x", flag, value],
                               capture_output=True, timeout=60)
            if r.returncode == 101 or b"panicked" in r.stderr:
                panicked.append(f"serve {flag} {value[:20]}")
    # A function's answer with terminal control sequences, printed by
    # `fnhost invoke --url` on a terminal (a pty).
    urn = create(server, "escapes", module="echo", library="libecho.so", handler="echo.Handler")
    hostile = "\x1b]0;owned\x07\x1b[2J\rFAKE PROMPT $ "
    env = dict(os.environ, FNHOST_ACCESS_KEY=AK, FNHOST_SECRET_KEY=SK)
    event = server.tmp / "escapes.bin"
    event.write_bytes(hostile.encode())
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(str(TARGET / "fnhost"), [str(TARGET / "fnhost"), "invoke", "escapes", "--url", server.url,
                                          "--project", PROJECT, "--event", str(event)], env)
    shown = b""
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.waitpid(pid, 0)
    raw_control = [c for c in (b"\x1b", b"\x07") if c in shown]
    ok = not panicked and not raw_control and b"\\x1b" in shown
    return ("held" if ok else "failed"), \
        f"panics: {panicked or 'none'}; raw control bytes on the terminal: {raw_control or 'none'}" \
        + ("" if ok else f"; shown: {shown[:300]!r}")


@attack("a function's answer that acts on the console's origin: Clear-Site-Data, a 101 status, cookies for /", "4 requests")
def apig_answers(server):
    deploy_fixture(server, "reflector", "reflect")
    urn = f"urn:fss:local:{PROJECT}:function:default:reflector"
    status = call(server, "POST", f"/v2/{PROJECT}/fgs/triggers/{urn}", {
        "trigger_type_code": "APIG", "trigger_status": "ACTIVE",
        "event_data": {"path": "/reflect", "req_method": "ANY", "auth": "NONE"}})[0]
    assert status in (200, 201), status

    def answer(response):
        return send(server, "POST", "/reflect", json.dumps(response, separators=(",", ":")).encode(),
                    {"Content-Type": "application/json"})

    st, headers, _ = answer({"statusCode": 200, "headers": {
        "Clear-Site-Data": "cache", "Content-Type": "text/html", "Set-Cookie": "c=1; Path=/"}, "body": "x"})
    leaked = [h for h in ("Clear-Site-Data", "Set-Cookie") if headers.get(h)]
    sandboxed = "sandbox" in (headers.get("Content-Security-Policy") or "")
    switched = answer({"statusCode": 101, "headers": {}, "body": "hello"})[0]
    # A handler no library could have, set by an update: refused as on create.
    create(server, "entries")
    bad_entry = call(server, "PUT", f"{BASE}/entries/config", {"handler": "atk\u0000.Raw"})[0]
    ok = st == 200 and not leaked and sandboxed and switched == 502 and bad_entry == 400
    return ("held" if ok else "failed"), \
        f"passed on: {leaked or 'none'}; sandboxed: {sandboxed}; a 101 answered {switched}; a NUL handler on update {bad_entry}"


@attack("disconnecting during a synchronous invocation", "5 connections")
def disconnects(server):
    urn = create(server, "slow", handler="misbehaving.Sleep", library="libmisbehaving.so", module="misbehaving")
    path = f"{BASE}/{urn}/invocations"
    in_flight = "fnhost_invocations_in_flight"
    cancelled_total = 'fnhost_invocations_total{function="slow",version="latest",outcome="cancelled"}'
    for i in range(5):
        headers = signed(server, "POST", path, b"500")
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s = raw(server, f"POST {path} HTTP/1.1\r\n{head}Content-Length: 3\r\n\r\n500".encode())
        # It runs (and the ones before were counted) when its caller goes away.
        eventually(lambda: metric_value(server, in_flight) == 1 and (metric_value(server, cancelled_total) or 0) == i,
                   timeout=5)
        s.close()
    eventually(lambda: metric_value(server, in_flight) == 0 and metric_value(server, cancelled_total) == 5)
    metrics = call(server, "GET", "/metrics")[2].decode()
    gauge = "fnhost_invocations_in_flight 0" in metrics
    cancelled = f'fnhost_invocations_total{{function="slow",version="latest",outcome="cancelled"}} 5' in metrics
    return ("held" if gauge and cancelled else "failed"), \
        f"gauge back to 0: {gauge}; 5 counted as cancelled: {cancelled}"


@attack("zip bomb (1 GB of zeros in a small zip)", "1 upload")
def zip_bomb(server):
    urn = create(server, "bombed")
    before = sorted(p.name for p in (server.tmp / "data" / "code").iterdir())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("testplugin.so", (TARGET / "libtestplugin.so").read_bytes())
        with z.open("bomb.bin", "w", force_zip64=True) as f:
            zero = b"\0" * (1 << 20)
            for _ in range(1024):
                f.write(zero)
    code = base64.b64encode(buf.getvalue()).decode()
    status = call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {"file": code}})[0]
    after = sorted(p.name for p in (server.tmp / "data" / "code").iterdir())
    ok = status == 400 and before == after
    return ("held" if ok else "failed"), f"{len(buf.getvalue()) >> 10} KB zip answered {status}; disk {'unchanged' if before == after else 'CHANGED'}"


def referenced(server):
    """Every package digest the API says is in use: each function's code,
    what serves while its last change failed, and its versions' code."""
    digests = set()
    for f in json.loads(call(server, "GET", BASE)[2])["functions"]:
        urn = f["func_urn"].rsplit(":", 1)[0]
        config = json.loads(call(server, "GET", f"{BASE}/{urn}/config")[2])
        digests.add(config["digest"])
        if config.get("serving"):
            digests.add(config["serving"]["digest"])
        for v in json.loads(call(server, "GET", f"{BASE}/{urn}/versions")[2])["versions"]:
            digests.add(v["digest"])
    return digests


@attack("package pile-up: 30 code updates, then deleting the function", "31 requests")
def pile_up(server):
    urn = create(server, "churn")
    code_dir = server.tmp / "data" / "code"
    for i in range(30):
        call(server, "PUT", f"{BASE}/{urn}/code", {"code_type": "zip", "func_code": {"file": build(str(i).encode())}})
    on_disk = {p.name for p in code_dir.iterdir()}
    in_use = referenced(server)
    call(server, "DELETE", f"{BASE}/{urn}")
    after, in_use_after = {p.name for p in code_dir.iterdir()}, referenced(server)
    ok = on_disk == in_use and after == in_use_after
    return ("held" if ok else "failed"), \
        f"{len(on_disk)} packages on disk, {len(in_use)} in use after 30 updates; {len(after)} and {len(in_use_after)} after the delete"


@attack("kill -9 in the middle of uploads", "6 crashes")
def upload_crash(server):
    urn = create(server, "atomic", handler="hotswap.Handler",
                 func_code={"file": zip_b64("libhotswap.so", "hotswap", b"A")})
    lib = bytearray((TARGET / "libhotswap.so").read_bytes())
    at = lib.index(b"fnhost-build-tag:") + len(b"fnhost-build-tag:")
    lib[at] = ord("B")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("hotswap.so", bytes(lib))
        z.writestr("blob.bin", os.urandom(30 << 20))
    body = json.dumps({"code_type": "zip", "func_code": {"file": base64.b64encode(buf.getvalue()).decode()}}).encode()
    path = f"{BASE}/{urn}/code"
    answers, torn = [], 0
    for delay in (0.05, 0.2, 0.5, 0.8, 1.2, 2.0):
        t = threading.Thread(target=lambda: _quiet(lambda: send(server, "PUT", path, body, signed(server, "PUT", path, body), timeout=30)))
        t.start()
        time.sleep(delay)  # Fixed wait: the kill lands at several points of the upload.
        server.stop(signal.SIGKILL)
        t.join()
        server.start()
        result = call(server, "POST", f"{BASE}/{urn}/invocations", b"")[2].decode()
        answers.append(result[:7])
        code_dir = server.tmp / "data" / "code"
        for p in code_dir.iterdir():
            if p.name.startswith(".tmp-") or not (p / "package.zip").is_file() or not (p / "root").is_dir():
                torn += 1
    # Given time, the same upload completes.
    send(server, "PUT", path, body, signed(server, "PUT", path, body), timeout=60)
    finished = call(server, "POST", f"{BASE}/{urn}/invocations", b"")[2].decode()[:7]
    ok = torn == 0 and all(a in ("build A", "build B") for a in answers) and finished == "build B"
    return ("held" if ok else "failed"), \
        f"served after each restart: {answers}; torn or leftover packages: {torn}; uninterrupted: {finished}"


# ---- asynchronous invocations ------------------------------------------------

def call_query(server, method, path, query):
    """A signed request with a query string (`query`: a list of pairs, repeats allowed)."""
    import urllib.parse
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer
    from conftest import AK, SK
    request = SdkRequest(method=method, schema="http", host=f"127.0.0.1:{server.port}",
                         resource_path=path, query_params=list(query),
                         header_params={"Content-Type": "application/json"}, body=b"")
    Signer(BasicCredentials(AK, SK, PROJECT)).sign(request)
    return send(server, method, path + "?" + urllib.parse.urlencode(query), b"", dict(request.header_params))


def async_rows(server):
    """request id -> (status, attempts, function), from the server's store."""
    import sqlite3
    db = sqlite3.connect(server.tmp / "data" / "state.db", timeout=10)
    try:
        return {r[0]: r[1:] for r in db.execute("SELECT request_id, status, attempts, function FROM async_invocations")}
    finally:
        db.close()


@attack("async flood past the queue's capacity (200), then kill -9", "400 requests, 1 crash")
def async_flood(server):
    urn = create(server, "flooded", handler="misbehaving.Sleep", library="libmisbehaving.so", module="misbehaving")
    path = f"{BASE}/{urn}/invocations-async"
    answers, accepted, lock = [], [], threading.Lock()

    def one(_):
        status, _, body = call(server, "POST", path, b"40")
        with lock:
            answers.append(status)
            if status == 202:
                accepted.append(json.loads(body)["request_id"])
    rss_before = rss_mb(server)
    threads = [threading.Thread(target=lambda: [one(i) for i in range(50)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rss_after = rss_mb(server)
    server.stop(signal.SIGKILL)
    server.start()

    def all_succeeded():
        rows = async_rows(server)
        return all(rows.get(i, ("?",))[0] == "SUCCESS" for i in accepted)
    eventually(all_succeeded, timeout=90, interval=0.5)
    rows = async_rows(server)
    lost = [i for i in accepted if i not in rows]
    unfinished = [i for i in accepted if rows.get(i, ("?",))[0] != "SUCCESS"]
    refused = sorted(set(a for a in answers if a != 202))
    ok = not lost and not unfinished and refused in ([], [429]) and len(accepted) <= 200 + 20
    return ("held" if ok else "failed"), \
        f"{len(accepted)} accepted, refused {answers.count(429)} with {refused}; RSS {rss_before:.0f} -> {rss_after:.0f} MB; " \
        f"after kill -9: {len(lost)} lost, {len(unfinished)} not run"


@attack("a destination loop: a failing function whose on_failure is itself", "1 invocation")
def destination_loop(server):
    urn = create(server, "looped", handler="misbehaving.Error", library="libmisbehaving.so", module="misbehaving")
    config = {"max_async_event_age_in_seconds": 3600, "max_async_retry_attempts": 0,
              "destination_config": {"on_failure": {"destination": "FunctionGraph", "param": json.dumps({"func_urn": urn})}}}
    status = call(server, "PUT", f"{BASE}/{urn}/async-invoke-config", config)[0]
    call(server, "POST", f"{BASE}/{urn}/invocations-async", b"{}")
    deadline = time.time() + 20
    counts = []
    while time.time() < deadline:
        n = sum(1 for s in async_rows(server).values() if s[2] == "looped")
        counts.append(n)
        if len(counts) > 8 and counts[-1] == counts[-8] and all(s[0] != "WAIT" and s[0] != "RUNNING" for s in async_rows(server).values() if s[2] == "looped"):
            break
        time.sleep(0.25)
    final = counts[-1] if counts else 0
    ok = status == 200 and final == 9 and healthy(server)
    return ("held" if ok else "failed"), f"config {status}; the chain ran {final} invocations (1 + 8 hops) and stopped"


@attack("async configuration and queries from an attacker: SSRF URLs, repeated and huge parameters", "9 requests")
def async_inputs(server):
    urn = create(server, "probed")
    statuses = []
    for url in ["http://10.0.0.1/x", "http://169.254.169.254/latest/meta-data", "https://127.0.0.1/x",
                "http://user@127.0.0.1/x", "file:///etc/passwd"]:
        config = {"max_async_event_age_in_seconds": 60, "max_async_retry_attempts": 0,
                  "destination_config": {"on_success": {"destination": "HTTP", "param": json.dumps({"url": url})}}}
        statuses.append(call(server, "PUT", f"{BASE}/{urn}/async-invoke-config", config)[0])
    queries = [[("after", "1"), ("after", "x")], [("limit", "99999999999999999999")],
               [("since_ms", "-1"), ("until_ms", "null")], [("request_id", "x" * 4000)]]
    answers = []
    for q in queries:
        status, headers, body = call_query(server, "GET", f"{BASE}/{urn}/logs", q)
        shaped = status < 500 and (status == 200 or "error_code" in json.loads(body or b"{}"))
        answers.append((status, shaped))
    ok = set(statuses) == {400} and all(shaped for _, shaped in answers) and healthy(server)
    return ("held" if ok else "failed"), \
        f"destinations answered {sorted(set(statuses))}; hostile log queries answered {[a for a, _ in answers]}, all in FunctionGraph's shape: {all(s for _, s in answers)}"


# ---- native code: constructors, output, forks, workers ----------------------

FIXTURES = Path(tempfile.mkdtemp(prefix="fnhost-attack-fixtures-"))


def fixture_zip(name, as_name):
    from test_native import fixture
    lib = fixture(name, FIXTURES)
    return zip_entries_b64({f"{as_name}.so": lib.read_bytes()})


def deploy_fixture(server, func, fixture_name, isolation=None, timeout=3):
    body = create_body(func, handler=f"{fixture_name}.Handler", timeout=timeout)
    body["func_code"] = {"file": fixture_zip(fixture_name, fixture_name)}
    if isolation:
        body["isolation"] = isolation
    return call(server, "POST", BASE, body)


def invoke_v1(server, func, data=b"{}", timeout=30):
    path = f"{BASE}/urn:fss:local:{PROJECT}:function:default:{func}:latest/invocations"
    headers = signed(server, "POST", path, data, headers={"X-CFF-Request-Version": "v1", "X-Cff-Log-Type": "tail"})
    status, _, body = send(server, "POST", path, data, headers, timeout=timeout)
    return status, body


@attack("library constructors that abort, segfault and exit, deployed through the API", "3 deploys")
def constructors(server):
    notes = []
    for name in ("ctor_abort", "ctor_segv", "ctor_exit"):
        status, _, body = deploy_fixture(server, name.replace("_", "-"), name)
        said = "initialization code" in body.decode()
        notes.append(f"{name}: {status}{' named' if said else ' UNNAMED'}")
        if not said:
            return "failed", "; ".join(notes)
    return ("held" if healthy(server) else "failed"), "; ".join(notes) + "; server serving"


@attack("a constructor that blocks forever, deployed while others are served", "1 deploy, 3 probes")
def constructor_blocks(server):
    name = "ctor_block"
    body = create_body("ctor-block", handler=f"{name}.Handler")
    body["func_code"] = {"file": fixture_zip(name, name)}
    data = json.dumps(body).encode()
    headers = signed(server, "POST", BASE, data)
    done = {}
    t = threading.Thread(target=lambda: done.update(r=send(server, "POST", BASE, data, headers, timeout=40)))
    t.start()
    # The deploy must be well under way, its constructor blocking, when the
    # probes run; nothing shows that state.
    time.sleep(1)  # Fixed wait: into the deploy, which must not end.
    started = time.time()
    probes = [send(server, "GET", "/metrics", timeout=5)[0], call(server, "GET", BASE)[0], healthy(server)]
    took = time.time() - started
    t.join(45)
    answered = done.get("r", (0, None, b""))
    ok = probes[:2] == [200, 200] and probes[2] and took < 3 and b"did not finish" in answered[2]
    return ("held" if ok else "failed"), f"metrics, listing, health answered in {took:.2f} s during the deploy; deploy answered {answered[0]}"


@attack("process isolation: 5 calls printing 4 MiB each without a newline", "5 calls")
def output_flood(server):
    status, _, body = deploy_fixture(server, "flood", "no_newline", isolation="process", timeout=10)
    if status != 200:
        return "failed", f"deploy answered {status}: {body[:200]}"
    before = rss_mb(server)
    worst = 0.0
    for _ in range(5):
        started = time.time()
        status, _ = invoke_v1(server, "flood", b'"x"')
        worst = max(worst, time.time() - started)
    grown = rss_mb(server) - before
    ok = status == 200 and grown < 64
    return ("held" if ok else "failed"), f"server RSS grew {grown:.0f} MB over 20 MiB printed; slowest call {worst:.2f} s"


@attack("process isolation: a forged end-of-output marker and stdio left buffered", "3 calls")
def forged_marker(server):
    deploy_fixture(server, "forger", "forged_marker", isolation="process")
    worst, own = 0.0, True
    for call_id in ("one", "two", "three"):
        started = time.time()
        status, body = invoke_v1(server, "forger", json.dumps(call_id).encode())
        worst = max(worst, time.time() - started)
        log = json.loads(body).get("log", "") if status == 200 else ""
        own = own and f'call "{call_id}" ends' in log
    ok = own and worst < 1.0
    return ("held" if ok else "failed"), f"each call's own output in its own log: {own}; slowest call {worst * 1000:.0f} ms" \
        + ("" if ok else f"; last log: {log!r}")


@attack("process isolation: a handler that forks, then spins past its deadline", "1 call")
def fork_escape(server):
    body = create_body("forker", handler="forks.ForkAndSpin", timeout=2)
    body["func_code"] = {"file": fixture_zip("forks", "forks")}
    body["isolation"] = "process"
    call(server, "POST", BASE, body)
    answered = {}
    caller = threading.Thread(target=lambda: answered.update(r=invoke_v1(server, "forker")))
    caller.start()
    # While it spins: its sandbox's processes (keeper, init, worker, child,
    # grandchild share a process group; the pids the handler logs are its
    # namespace's).

    def family_now():
        groups = {}
        for pid in sandboxed_processes():
            try:
                pgid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
            except (OSError, IndexError, ValueError):
                continue
            groups.setdefault(pgid, set()).add(pid)
        return set().union(*[g for g in groups.values() if len(g) >= 5])
    family = eventually(family_now, timeout=5)
    caller.join(30)
    # Within a second of the answer, none is left running.
    eventually(lambda: not family & sandboxed_processes(), timeout=1)
    left = family & sandboxed_processes()
    status, answer = answered.get("r", (0, b""))
    ok = status == 200 and b"timed out" in answer and len(family) >= 5 and not left
    return ("held" if ok else "failed"), (f"answered {status}; the sandbox's {len(family)} processes during the call, "
                                          f"still running after the deadline: {sorted(left)}")


def sandboxed_processes(workers=True):
    """Pids of the processes running as the sandbox's host uid (65534);
    without `workers`, leaving out fnhost's own (keepers, inits, workers).
    Zombies are not running: a sandbox's init, orphaned when its keeper is
    killed, waits a moment for the system's init (or fnhost as PID 1) to
    collect it."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                status = (d / "status").read_text().splitlines()
                uid = next(l for l in status if l.startswith("Uid:")).split()[1]
                zombie = any(l.startswith("State:") and "Z" in l.split()[1] for l in status)
            except (OSError, StopIteration, IndexError):
                continue
            if zombie:
                continue
            if uid == "65534" and (workers or (d / "comm").read_text().strip() != "fnhost"):
                out.add(int(d.name))
    return out


def sandbox_zip(name, constructor=None):
    from test_sandbox import fixture as sandbox_fixture
    out = FIXTURES / (name + ("-ctor" if constructor is not None else ""))
    out.mkdir(exist_ok=True)
    lib = sandbox_fixture(name, out, constructor)
    return zip_entries_b64({f"{name}.so": lib.read_bytes()})


def deploy_attempt(server, func, name, constructor=None, **extra):
    body = create_body(func, handler=f"{name}.Handler", timeout=5)
    body["func_code"] = {"file": sandbox_zip(name, constructor)}
    body["isolation"] = "process"
    body.update(extra)
    return call(server, "POST", BASE, body)


def attempt(server, func, name, payload, constructor=None):
    status, _, answer = deploy_attempt(server, func, name, constructor)
    if status != 200:
        return status, answer.decode(errors="replace")
    status, body = invoke_v1(server, func, payload)
    text = body.decode(errors="replace")
    try:
        answer = json.loads(text)
        result = answer.get("result", text)
        return status, result if isinstance(result, str) else json.dumps(result)
    except (ValueError, AttributeError):
        return status, text


@attack("sandbox: an isolated handler signals the server (SIGKILL, SIGSTOP), its parent and every pid it sees", "4 calls")
def sandbox_signals(server):
    pid = server.proc.pid
    results = [attempt(server, "sig-kill", "kill_pid", f"{pid} 9".encode()),
               attempt(server, "sig-stop", "kill_pid", f"{pid} 19".encode()),
               attempt(server, "sig-parent", "kill_parent", b""),
               attempt(server, "sig-all", "kill_from_proc", b"")]
    stopped = "State:\tT" in Path(f"/proc/{pid}/status").read_text()
    ok = healthy(server) and not stopped and all(s == 200 for s, _ in results) and \
        "No such process" in results[0][1] and "No such process" in results[1][1]
    return ("held" if ok else "failed"), f"server serving: {healthy(server)}, stopped: {stopped}; " + \
        "; ".join(a[:60] for _, a in results[:3])


@attack("sandbox: an isolated handler reads the server's config and keys, its state, /etc/shadow, its environment", "5 calls")
def sandbox_reads(server):
    reads = [attempt(server, f"read-{i}", "read_file", str(p).encode())
             for i, p in enumerate([server.config, server.tmp / "data" / "state.db", "/etc/shadow"])]
    env = attempt(server, "env", "environment", b"")
    refused = all("No such file or directory" in a for _, a in reads)
    clean = "FNHOST_WORKER_PROCESS=1" in env[1] and "the-attack-servers-secret" not in env[1] \
        and "PATH=" not in env[1]
    ok = refused and clean and healthy(server)
    return ("held" if ok else "failed"), f"3 reads refused: {refused}; environment only the worker marker: {clean}"


@attack("sandbox: an isolated handler connects to the server's port and to PostgreSQL on loopback", "2 calls")
def sandbox_network(server):
    results = [attempt(server, "net-self", "connect", f"127.0.0.1 {server.port}".encode()),
               attempt(server, "net-pg", "connect", b"127.0.0.1 5432")]
    ok = all(s == 200 and "connected" not in a for s, a in results) and healthy(server)
    return ("held" if ok else "failed"), "; ".join(a.strip('"')[:70] for _, a in results)


@attack("sandbox: constructors of isolated libraries signal the server and read its config at deploy", "3 deploys")
def sandbox_constructors(server):
    pid = server.proc.pid
    results = [attempt(server, "ctor-kill", "kill_pid", b"{}", constructor=f"{pid} 9"),
               attempt(server, "ctor-parent", "kill_parent", b"{}", constructor=""),
               attempt(server, "ctor-read", "read_file", b"{}", constructor=str(server.config))]
    ok = all(s == 200 for s, _ in results) and healthy(server) and "No such file" in results[2][1]
    return ("held" if ok else "failed"), "; ".join(a.strip('"')[:60] for _, a in results)


@attack("sandbox: forbidden system calls (ptrace, process_vm_writev, mount, unshare, setns, bpf, keyctl, io_uring, raw and netlink sockets)", "10 calls")
def sandbox_forbidden(server):
    named = []
    for name in ("ptrace_parent", "process_vm_writev", "mount", "unshare", "setns", "bpf", "keyctl",
                 "io_uring_setup", "raw_socket", "netlink_socket"):
        status, answer = attempt(server, name.replace("_", "-"), name, b"{}")
        if "SandboxViolation" in answer and "forbidden system call" in answer:
            named.append(name)
    ok = len(named) == 10 and healthy(server)
    return ("held" if ok else "failed"), f"{len(named)} of 10 ended as SandboxViolation, named"


@attack("sandbox: a fork bomb, a 10 GB shared-memory balloon, a setsid daemon", "3 calls")
def sandbox_resources(server):
    bomb = attempt(server, "bomb", "fork_bomb", b"{}")
    balloon = attempt(server, "balloon", "mmap_balloon", b'"shared"')
    before = sandboxed_processes(workers=False)
    daemon = attempt(server, "daemon", "setsid_escape", b'"escapee"')
    started = eventually(lambda: sandboxed_processes(workers=False) - before, timeout=5)
    call(server, "DELETE", f"{BASE}/daemon")
    # Within a second of the delete, none is left running.
    eventually(lambda: not sandboxed_processes(workers=False) - before, timeout=1)
    left = sandboxed_processes(workers=False) - before
    ok = ("SandboxViolation" in bomb[1] and "memory limit" in balloon[1] and daemon[0] == 200
          and started and not left and healthy(server))
    return ("held" if ok else "failed"), (f"fork bomb: {'SandboxViolation' in bomb[1]}; balloon: "
                                          f"{'memory limit' in balloon[1]}; daemon started {sorted(started)}, "
                                          f"left after the delete: {sorted(left)}")


@attack("a 64 MiB error message from an in-process C handler", "1 call")
def big_error(server):
    body = create_body("big-error", handler="big_error.Handler", memory_size=256)
    body["func_code"] = {"file": fixture_zip("big_error", "big_error")}
    call(server, "POST", BASE, body)
    status, answer = invoke_v1(server, "big-error")
    ok = len(answer) < 256 * 1024 and b"truncated" in answer
    return ("held" if ok else "failed"), f"answered {status} with {len(answer) >> 10} KB"


@attack("60 concurrent calls to 3 process-isolated functions, cap 16 workers", "60 calls")
def worker_pile_up(server):
    for i in range(3):
        body = create_body(f"sleeper{i}", handler="misbehaving.Sleep", library="libmisbehaving.so",
                           module="misbehaving", timeout=5)
        body["isolation"] = "process"
        call(server, "POST", BASE, body)
    answers, lock = [], threading.Lock()

    def one(i):
        try:
            status, _ = invoke_v1(server, f"sleeper{i % 3}", b"300", timeout=30)
        except OSError:
            status = 0
        with lock:
            answers.append(status)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, workers_of(server))
        time.sleep(0.05)  # Fixed wait: the peak is sampled while the calls run.
    for t in threads:
        t.join()
    threads_now = int(next(l.split()[1] for l in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines()
                           if l.startswith("Threads:")))
    ok = peak <= 16 and set(answers) <= {200, 429}
    return ("held" if ok else "failed"), \
        f"answers {sorted(set(answers))} ({answers.count(200)} served, {answers.count(429)} refused); peak workers {peak}; server threads after: {threads_now}"


@attack("a web page of another origin drives an unkeyed server: cross-site POSTs, DNS rebinding", "10 requests")
def cross_origin(_):
    tmp = Path(tempfile.mkdtemp(prefix="fnhost-attack-origin-"))
    open_server = Server(tmp, keys=False).start()
    try:
        port = open_server.port
        body = json.dumps(create_body("planted")).encode()
        tries = {
            "cross-site create (text/plain, no-cors)": ("POST", BASE, {"Origin": "https://evil.example", "Content-Type": "text/plain"}),
            "create from another local port": ("POST", BASE, {"Origin": f"http://localhost:{port + 1}"}),
            "create from a sandboxed frame": ("POST", BASE, {"Origin": "null"}),
            "create, Sec-Fetch-Site cross-site": ("POST", BASE, {"Sec-Fetch-Site": "cross-site"}),
            "create under a rebound name": ("POST", BASE, {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}),
            "list under a rebound name": ("GET", BASE, {"Host": f"evil.example:{port}"}),
            "invoke cross-site": ("POST", f"{BASE}/planted/invocations", {"Origin": "https://evil.example"}),
            "metrics under a rebound name": ("GET", "/metrics", {"Host": f"evil.example:{port}"}),
        }
        answers = {}
        for name, (method, path, headers) in tries.items():
            try:
                answers[name] = send(open_server, method, path, body if method == "POST" else b"", headers)[0]
            except OSError:
                # Refused before the body was read: the server may close
                # while a large body is still being sent.
                answers[name] = "closed unread"
        functions = json.loads(send(open_server, "GET", BASE)[2])["functions"]
        own = send(open_server, "POST", BASE, body, {"Origin": f"http://127.0.0.1:{port}"})[0]
        refused = all(status in (403, "closed unread") for status in answers.values())
        ok = refused and not functions and own == 200
        wrong = {k: v for k, v in answers.items() if v not in (403, "closed unread")}
        closed = sum(1 for v in answers.values() if v == "closed unread")
        return ("held" if ok else "failed"), \
            f"{len(answers)} foreign requests refused (403, or closed unread: {closed}){'' if refused else f' except {wrong}'}; functions planted: {len(functions)}; the console's own origin: {own}"
    finally:
        open_server.stop(signal.SIGKILL)


@attack("the console's files: traversal, encoded dots, methods, secrets and paths in what it serves", "9 requests")
def console_files(server):
    tricks = ["/console/../state.db", "/console/%2e%2e/state.db", "/console/..%2fstate.db",
              "/console/%2e%2e%2fCargo.toml", "/console/main.js%00.html", "/console/" + "a" * 4000]
    statuses = []
    for path in tricks:
        s = raw(server, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        answer = read_all(s)
        s.close()
        statuses.append(int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0)
    post = send(server, "POST", "/console/main.js", b"x" * 1024)[0]
    status, headers, config = send(server, "GET", "/console/config.json")
    page = send(server, "GET", "/console/")
    leaked = [w for w in (str(TARGET), "/tmp", "/root", "/home", "test-sk") if w.encode() in config + page[2]]
    policy = page[1].get("Content-Security-Policy", "")
    ok = all(code in (400, 404) for code in statuses) and post in (404, 405) and not leaked \
        and "script-src 'self'" in policy and json.loads(config) == {"signed": True, "project_id": "local"}
    return ("held" if ok else "failed"), \
        f"traversal and odd paths {statuses}; POST {post}; paths or secrets in the page or config.json: {leaked or 'none'}; CSP {'set' if policy else 'MISSING'}"


# ---- event sources: hostile messages and settings --------------------------

def trigger_path(urn):
    return f"/v2/{PROJECT}/fgs/triggers/{urn}"


def trigger_count(server, trigger_id, result):
    """fnhost_trigger_messages_total of one trigger and result (0 before any)."""
    for line in call(server, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith("fnhost_trigger_messages_total{") and f'trigger="{trigger_id}"' in line \
                and f'result="{result}"' in line:
            return float(line.rpartition(" ")[2])
    return 0.0


def add_source(server, urn, code, data):
    status, _, body = call(server, "POST", trigger_path(urn),
                           {"trigger_type_code": code, "trigger_status": "ACTIVE", "event_data": data})
    return status, json.loads(body or b"{}")


@attack("event-source settings from an attacker: brokers on other hosts (SSRF), huge and control-character fields", "12 requests")
def source_settings(server):
    urn = create(server, "sourced")
    bad = [("REDIS", {"url": "redis://10.0.0.1:6379", "stream": "s"}),
           ("NATS", {"url": "nats://169.254.169.254:4222", "stream": "S"}),
           ("MQTT", {"url": "mqtt://localhost.evil.example", "topic": "t"}),
           ("RABBITMQ", {"url": "amqp://g:g@127.0.0.1@evil.example:5672/%2f", "queue": "q"}),
           ("OPENSOURCEKAFKA", {"connect_address": "127.0.0.1:9092,10.1.2.3:9092", "topic_ids": ["t"]}),
           ("OPENSOURCEKAFKA", {"connect_address": "127.0.0.1:9092", "topic_ids": ["t"] * 100000}),
           ("OPENSOURCEKAFKA", {"connect_address": "127.0.0.1:9092", "topic_ids": ["t"], "batch_size": 2 ** 64}),
           ("RABBITMQ", {"url": "amqp://127.0.0.1/" + "x" * 100000, "queue": "q"}),
           ("RABBITMQ", {"url": "amqp://127.0.0.1", "queue": "q\r\nx"}),
           ("REDIS", {"url": "redis://127.0.0.1", "stream": "s", "batch_size": -1}),
           ("NATS", {"url": "nats://127.0.0.1", "stream": "a.>"}),
           ("MQTT", {"url": "mqtt://127.0.0.1", "topic": "t", "qos": 0})]
    answers = [add_source(server, urn, code, data)[0] for code, data in bad]
    listed = json.loads(call(server, "GET", trigger_path(urn))[2] or b"[]")
    ok = set(answers) == {400} and listed == [] and healthy(server)
    return ("held" if ok else "failed"), f"answered {sorted(set(answers))}; {len(listed)} trigger(s) created"


@attack("a burst of a million Redis stream entries against the consumer's bounded reads", "1,000,000 entries, 60 s")
def redis_burst(server):
    import redis
    url = os.environ.get("FNHOST_TEST_REDIS")
    if not url:
        return "skipped", "no Redis (scripts/redis.sh)"
    r = redis.Redis.from_url(url)
    stream = f"fnhost-attack-{os.getpid()}"
    r.delete(stream)
    try:
        urn = create(server, "bursted", handler="echo.Handler", library="libecho.so", module="echo")
        status, t = add_source(server, urn, "REDIS", {"url": url, "stream": stream, "batch_size": 100,
                                                     "start": "earliest"})
        rss_before = rss_mb(server)
        started = time.time()
        for chunk in range(100):
            pipe = r.pipeline(transaction=False)
            for i in range(10000):
                pipe.xadd(stream, {"n": str(chunk * 10000 + i)})
            pipe.execute()
        written = time.time() - started
        peak, consumed = rss_before, 0.0
        deadline = time.time() + 60
        while time.time() < deadline and consumed < 1_000_000:
            peak = max(peak, rss_mb(server))
            consumed = trigger_count(server, t.get("trigger_id"), "succeeded")
            time.sleep(0.5)
        took = time.time() - started
        ok = status == 201 and healthy(server) and peak - rss_before < 200 and consumed > 0
        return ("held" if ok else "failed"), \
            f"written in {written:.0f} s; {consumed:.0f} handled in {took:.0f} s; RSS {rss_before:.0f} -> peak {peak:.0f} MB"
    finally:
        r.delete(stream)


@attack("hostile broker messages: a 7 MB RabbitMQ message, bodies and headers that are not UTF-8, a Kafka key and header that are not UTF-8", "5 messages")
def hostile_messages(server):
    import pika
    amqp = os.environ.get("FNHOST_TEST_RABBITMQ")
    if not amqp:
        return "skipped", "no RabbitMQ (scripts/rabbitmq.sh)"
    queue, dlq = f"fnhost-attack-{os.getpid()}", f"fnhost-attack-{os.getpid()}-dlq"
    dlx = queue + "-dlx"
    conn = pika.BlockingConnection(pika.URLParameters(amqp))
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    ch.queue_declare(dlq, durable=True)
    ch.exchange_declare(dlx, "fanout")
    ch.queue_bind(dlq, dlx)
    notes = []
    try:
        urn = create(server, "hostile", handler="echo.Handler", library="libecho.so", module="echo")
        status, t = add_source(server, urn, "RABBITMQ", {"url": amqp, "queue": queue, "batch_size": 10,
                                                        "dead_letter_exchange": dlx})
        ch.confirm_delivery()
        ch.basic_publish("", queue, b"x" * (7 * 1024 * 1024))
        ch.basic_publish("", queue, b"\xff\xfe\x00binary")
        ch.basic_publish("", queue, b"{}", pika.BasicProperties(headers={"h": b"\xff\xfe"}))
        tid = t.get("trigger_id")
        eventually(lambda: trigger_count(server, tid, "succeeded") >= 2 and trigger_count(server, tid, "dead_lettered") >= 1,
                   timeout=30)
        handled_ok = trigger_count(server, tid, "succeeded") == 2 and trigger_count(server, tid, "dead_lettered") == 1
        dead = ch.basic_get(dlq, auto_ack=True)
        too_large = dead[0] is not None and len(dead[2]) == 7 * 1024 * 1024 \
            and "FunctionRequestTooLarge" in str(dead[1].headers.get("x-fnhost-error"))
        notes.append(f"RabbitMQ: 2 handled, the 7 MB one dead-lettered as too large: {handled_ok and too_large}")
        kafka_ok = True
        brokers = os.environ.get("FNHOST_TEST_KAFKA")
        if brokers:
            from confluent_kafka import Producer
            from confluent_kafka.admin import AdminClient, NewTopic
            topic = f"fnhost-attack-{os.getpid()}"
            admin = AdminClient({"bootstrap.servers": brokers})
            for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
                f.result(10)
            try:
                kstatus, kt = add_source(server, urn, "OPENSOURCEKAFKA", {"connect_address": brokers, "topic_ids": [topic],
                                                                          "start": "earliest"})
                p = Producer({"bootstrap.servers": brokers})
                p.produce(topic, value=b"\xc3\x28", key=b"\xff", headers=[("h", b"\xfe")])
                p.flush(10)
                kid = kt.get("trigger_id")
                kafka_ok = kstatus == 201 and eventually(lambda: trigger_count(server, kid, "succeeded") == 1, timeout=40)
                notes.append(f"Kafka: the record with a key, header and value that are not UTF-8 handled: {kafka_ok}")
            finally:
                admin.delete_topics([topic])
        ok = status == 201 and handled_ok and too_large and kafka_ok and healthy(server)
        return ("held" if ok else "failed"), "; ".join(notes)
    finally:
        for q in (queue, dlq):
            ch.queue_delete(q)
        ch.exchange_delete(dlx)
        conn.close()


def workers_of(server):
    n = 0
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == server.proc.pid:
                n += 1
    return n


def _quiet(fn):
    try:
        fn()
    except Exception:
        pass


def main():
    deadline = time.time() + float(os.environ.get("ATTACK_SECONDS", "600"))
    tmp = Path(tempfile.mkdtemp(prefix="fnhost-attack-"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    # The README tells operators to pass keys in the environment.
    os.environ["FNHOST_SECRET_KEY"] = "the-attack-servers-secret"
    # The server's default minimum timer rate (a minute), not the tests' 1 s.
    server = Server(tmp, config={"limits": {"header_timeout": 3, "idle_timeout": 10},
                                 "min_timer_rate_seconds": 60,
                                 "asynchronous": {"queue_capacity": 200, "workers": 1}},
                    extra_args=["--max-worker-processes", "16"]).start()
    acknowledged = set()
    try:
        # ATTACK_ONLY=word,word runs the cases whose function name holds one.
        only = [w for w in os.environ.get("ATTACK_ONLY", "").split(",") if w]
        for run in ATTACKS:
            if only and not any(w in run.__wrapped_name__ for w in only):
                continue
            if time.time() > deadline:
                RESULTS.append((run.attack_name, "-", "skipped", "the suite's time ran out", 0))
                continue
            run(server)
            acknowledged = {f["func_name"] for f in json.loads(call(server, "GET", BASE)[2])["functions"]}
        # What was acknowledged survives a final kill -9.
        server.stop(signal.SIGKILL)
        server.start()
        after = {f["func_name"] for f in json.loads(call(server, "GET", BASE)[2])["functions"]}
        lost = sorted(acknowledged - after)
    finally:
        server.stop(signal.SIGKILL)
    held = sum(1 for r in RESULTS if r[2] == "held")
    degraded = sum(1 for r in RESULTS if r[2] == "degraded")
    failed = sum(1 for r in RESULTS if r[2] == "failed")
    print()
    print("| attack | load | result | what happened |")
    print("|---|---|---|---|")
    for name, tried, verdict, note, _ in RESULTS:
        print(f"| {name} | {tried} | {verdict} | {note} |")
    print()
    print(f"attacks tried: {len(RESULTS)}, held: {held}, degraded: {degraded}, failed: {failed}, "
          f"server crashes: {len(CRASHES)}, acknowledged functions lost after a final kill -9: {len(lost)} {lost or ''}")
    return 0 if failed == 0 and not CRASHES and not lost else 1


if __name__ == "__main__":
    sys.exit(main())
