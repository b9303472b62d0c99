"""Changes to different functions run side by side. One management lock was
held while a package was fetched, the pre-flight ran, the initializer ran
(up to the function's timeout) and the store was written: one slow
initializer stalled every other function's create, update and delete.
Now each function has its own lock."""
import json
import threading
import time

from test_front_door import BASE, call, create_body


def test_a_slow_initializer_delays_no_other_function(server):
    slow_body = create_body("slow", handler="hotswap.Handler", library="libhotswap.so", module="hotswap",
                            initializer_handler="hotswap.Init", initializer_timeout=30, timeout=30,
                            user_data=json.dumps({"INIT_SLEEP_MS": "5000"}))
    answered = {}

    def create_slow():
        answered["slow"] = call(server, "POST", BASE, slow_body)[0]

    started = time.time()
    slow = threading.Thread(target=create_slow)
    slow.start()
    # Fixed wait: the slow create must be inside its initializer, which
    # nothing outside the server shows.
    time.sleep(0.5)
    took = {}
    for what, (method, path, body) in {
        "create": ("POST", BASE, create_body("quick")),
        "update": ("PUT", f"{BASE}/quick/config", {"memory_size": 256}),
        "invoke": ("POST", f"{BASE}/quick/invocations", {"key": "NAME"}),
        "delete": ("DELETE", f"{BASE}/quick", None),
    }.items():
        t = time.time()
        status, _, answer = call(server, method, path, body)
        took[what] = time.time() - t
        assert status in (200, 204), (what, status, answer)
    assert slow.is_alive(), "the slow create ended first: the test tested nothing"
    # Each took far less than what is left of the 5 s initializer (a debug
    # build's create of a cached library takes tens of milliseconds).
    assert all(t < 2.0 for t in took.values()), took
    slow.join(timeout=30)
    assert answered["slow"] == 200
    assert time.time() - started >= 5.0
    # The same function's changes still wait for each other: an update of
    # `slow` during a second slow change lands after it, in order.
    bodies = [{"description": "first", "user_data": json.dumps({"INIT_SLEEP_MS": "1500"})},
              {"description": "second"}]
    threads = [threading.Thread(target=call, args=(server, "PUT", f"{BASE}/slow/config", b)) for b in bodies]
    threads[0].start()
    time.sleep(0.3)  # Fixed wait: the first update must be inside its initializer
    threads[1].start()
    for t in threads:
        t.join(timeout=30)
    config = json.loads(call(server, "GET", f"{BASE}/slow/config")[2])
    assert config["description"] == "second", config
    assert json.loads(config["user_data"]) == {"INIT_SLEEP_MS": "1500"}, config


def test_concurrent_creates_of_distinct_packages_keep_every_package(server, tmp_path):
    """A create stored its package, and only then held it from the garbage
    collection that other changes run when they end: in between, a
    concurrent create's collection could delete it (a 500, "package vanished
    after storing", or a record whose package was gone at the next start).
    Found by scripts/bench-scale.sh creating distinct builds side by side."""
    import base64
    import io
    import subprocess
    import zipfile
    from pathlib import Path
    # A small library (the C sample), so that the creates overlap.
    root = Path(__file__).resolve().parents[2]
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-I", str(root / "plugin-api/include"),
                    "-o", str(tmp_path / "hello.so"), str(root / "sample-plugins/c/hello.c")], check=True)
    lib = (tmp_path / "hello.so").read_bytes()

    def body(i):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("hello.so", lib)
            z.writestr("tag.txt", f"package {i}")
        return create_body(f"c{i}", handler="hello.Handler", runtime="Custom",
                           func_code={"file": base64.b64encode(buf.getvalue()).decode()})

    bodies = [body(i) for i in range(48)]
    answers = {}

    def create_some(k):
        for i in range(k, len(bodies), 4):
            status, _, answer = call(server, "POST", BASE, bodies[i])
            answers[i] = (status, answer[:200])

    # Four at once: the most uploads the server takes side by side.
    threads = [threading.Thread(target=create_some, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    failed = {i: a for i, a in answers.items() if a[0] != 200}
    assert len(answers) == len(bodies) and not failed, failed
    # Every package is still there: each function is restored at the next
    # start, and answers.
    server.stop()
    server.start()
    for i in range(len(bodies)):
        status, _, answer = call(server, "POST", f"{BASE}/c{i}/invocations", {"key": "NAME"})
        assert status == 200, (i, status, answer)
