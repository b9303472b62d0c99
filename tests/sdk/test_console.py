"""The console's server side: its assets (embedded, anonymous, under a strict
content security policy), what it reads before signing in, the activity and
deploy-timeline API its charts draw, and the refusal of requests that web
pages of other origins send to an unkeyed server. (The pages themselves are
tested in a real browser: tests/console.)"""
import http.client
import json
import threading
import time
import urllib.error
import urllib.request

from conftest import eventually, zip_b64

BASE = "/v2/local/fgs/functions"


def call(server, method, path, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def create_hotswap(server, name, tag=b"A"):
    status, _, body = call(server, "POST", BASE, {
        "func_name": name, "runtime": "Rust1.x", "handler": "hotswap.Handler", "memory_size": 128, "timeout": 10,
        "code_type": "zip", "func_code": {"file": zip_b64("libhotswap.so", "hotswap", patch_tag=tag)}})
    assert status == 200, body


def raw_get(server, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    r = conn.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def test_the_console_is_served_from_the_binary_under_a_strict_policy(open_server):
    status, headers, _ = raw_get(open_server, "/console")
    assert (status, headers["location"]) == (308, "/console/")
    status, headers, page = raw_get(open_server, "/console/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'<script type="module" src="main.js">' in page
    policy = headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    status, headers, script = raw_get(open_server, "/console/main.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript") and b"import" in script
    # Revalidated by its entity tag.
    status, _, body = raw_get(open_server, "/console/main.js", {"If-None-Match": headers["etag"]})
    assert (status, body) == (304, b"")
    status, _, body = raw_get(open_server, "/console/../state.db")
    assert status == 404
    status, _, body = raw_get(open_server, "/console/nothing.js")
    assert status == 404 and json.loads(body)["error_code"] == "FSS.0404"
    status, _, body = raw_get(open_server, "/console/config.json")
    assert json.loads(body) == {"signed": False, "project_id": "local"}
    status, _, body = raw_get(open_server, "/console/event-templates.json")
    kinds = [t["kind"] for t in json.loads(body)["templates"]]
    assert kinds == ["apig", "timer", "kafka", "smn", "dis", "cts", "dds", "lts", "redis", "nats", "mqtt", "rabbitmq"]


def test_on_a_keyed_server_the_assets_are_anonymous_and_the_api_is_not(server):
    status, _, body = raw_get(server, "/console/config.json")
    assert status == 200 and json.loads(body)["signed"] is True
    assert raw_get(server, "/console/")[0] == 200
    assert call(server, "GET", "/v2/local/fgs/activity")[0] == 401
    assert call(server, "GET", BASE + "/f/deployments")[0] == 401


def test_an_unkeyed_server_refuses_what_pages_of_other_origins_send(open_server):
    port = open_server.port
    body = {"func_name": "planted", "runtime": "Rust1.x", "handler": "testplugin.Handler", "memory_size": 128,
            "timeout": 3, "code_type": "zip", "func_code": {"file": zip_b64("libtestplugin.so", "testplugin")}}
    # Small bodies are answered 403 (a large one may meet a closed connection).
    for headers in [{"Origin": "http://evil.example"}, {"Host": f"rebound.example:{port}"}]:
        status, _, answer = call(open_server, "POST", BASE, {"func_name": "x"}, headers)
        assert (status, json.loads(answer)["error_code"]) == (403, "FSS.0403"), answer
    for headers in [{"Origin": "http://evil.example", "Content-Type": "text/plain"},
                    {"Origin": f"http://localhost:{port + 1}"},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Host": f"rebound.example:{port}"}]:
        try:
            status, _, answer = call(open_server, "POST", BASE, body, headers)
        except OSError:
            # Refused before the body was read, the connection may close
            # while the client still sends the rest of a large body.
            continue
        assert status == 403, (headers, answer)
        assert json.loads(answer)["error_code"] == "FSS.0403"
    assert json.loads(call(open_server, "GET", BASE)[2])["count"] == 0
    # The console's own requests (same origin) are served.
    status, _, answer = call(open_server, "POST", BASE, body, {"Origin": f"http://127.0.0.1:{port}"})
    assert status == 200, answer


def in_flight(server):
    """Invocations running now (the /metrics gauge)."""
    metrics = call(server, "GET", "/metrics")[2].decode()
    return int(metrics.split("\nfnhost_invocations_in_flight ")[1].split()[0])


def swap_under_load(server, name, sleep_ms):
    """Starts two calls sleeping `sleep_ms`, uploads build B while they run,
    and returns the function's timeline once the swap's drain is known
    (or after 5 s)."""
    slow = [threading.Thread(target=call, args=(server, "POST", f"{BASE}/{name}/invocations", f"sleep:{sleep_ms}".encode()))
            for _ in range(2)]
    for t in slow:
        t.start()
    assert eventually(lambda: in_flight(server) == 2), "the two slow calls did not start"
    status, _, body = call(server, "PUT", f"{BASE}/{name}/code",
                           {"code_type": "zip", "func_code": {"file": zip_b64("libhotswap.so", "hotswap", patch_tag=b"B")}})
    assert status == 200, body
    for t in slow:
        t.join()
    deadline = time.time() + 5
    while True:
        events = json.loads(call(server, "GET", f"{BASE}/{name}/deployments")[2])["deployments"]
        if events[-1]["drained_ms"] is not None or time.time() > deadline:
            return events
        time.sleep(0.05)


def test_activity_counts_each_version_and_the_timeline_shows_a_swap_and_its_drain(open_server):
    create_hotswap(open_server, "hs")
    for _ in range(5):
        assert call(open_server, "POST", BASE + "/hs/invocations", b"")[0] == 200
    status, _, body = call(open_server, "POST", BASE + "/hs/versions", {"version": "1"})
    assert status == 200, body
    for _ in range(3):
        assert call(open_server, "POST", BASE + "/hs:1/invocations", b"")[0] == 200
    # Two slow calls (they set the p99 below), then build B replaces build A.
    events = swap_under_load(open_server, "hs", 400)
    created, swapped = events[0], events[-1]
    assert created["kind"] == "created" and created["replaced_generation"] is None
    # Version 1 was published from build A's generation: the swap leaves it serving.
    assert swapped["kind"] == "swapped" and swapped["replaced_generation"] == created["generation"]
    assert swapped["replaced_still_serves"] is True and swapped["drained_ms"] is None

    # Without a version on the replaced build, it drains and the timeline
    # says how long. (An upload takes a while before the swap: the new
    # library is loaded once in a throwaway process first; calls of 2.5 s
    # are still running then.)
    create_hotswap(open_server, "drains")
    swapped = swap_under_load(open_server, "drains", 2500)[-1]
    assert swapped["kind"] == "swapped" and swapped["replaced_still_serves"] is False
    assert swapped["in_flight_at_swap"] == 2, swapped
    assert 100 <= swapped["drained_ms"] <= 2500, swapped

    status, _, body = call(open_server, "GET", BASE + "/hs/activity?minutes=5")
    assert status == 200, body
    activity = json.loads(body)
    assert activity["bucket_seconds"] == 10 and activity["minutes"] == 5
    by_version = {v["version"]: v for v in activity["versions"]}
    assert by_version["latest"]["invocations"] == 7 and by_version["1"]["invocations"] == 3
    assert by_version["latest"]["errors"] == 0
    assert len(by_version["latest"]["buckets"]) == 30
    assert sum(b["invocations"] for b in by_version["latest"]["buckets"]) == 7
    # The slow calls set the p99; the fast ones the median.
    assert by_version["latest"]["p99_ms"] >= 350 > by_version["latest"]["p50_ms"]

    overview = json.loads(call(open_server, "GET", "/v2/local/fgs/activity")[2])
    counts = {f["func_name"]: f["invocations"] for f in overview["functions"]}
    assert counts == {"hs": 10, "drains": 2}
    for bad in ["0", "16", "x"]:
        status, _, body = call(open_server, "GET", BASE + f"/hs/activity?minutes={bad}")
        assert status == 400, body
    assert call(open_server, "GET", BASE + "/nothing/deployments")[0] == 404
    # A deleted function's series and timeline go with it.
    assert call(open_server, "DELETE", BASE + "/drains")[0] == 204
    overview = json.loads(call(open_server, "GET", "/v2/local/fgs/activity")[2])
    assert [f["func_name"] for f in overview["functions"]] == ["hs"]
    create_hotswap(open_server, "drains")
    events = json.loads(call(open_server, "GET", BASE + "/drains/deployments")[2])["deployments"]
    assert [e["kind"] for e in events] == ["created"]
