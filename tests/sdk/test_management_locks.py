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
