"""Leases that hold (three nodes on one PostgreSQL database): a claimed
asynchronous invocation stays with its node for as long as its run lasts
(a slow initializer, the handler, a slow destination), far past one lease,
because the node renews it; only a node that dies loses its claims, which
then run elsewhere.

Once the lease was the claiming node's clock + the function's timeout + 5 s,
never renewed, while a run legitimately lasts longer (waiting for an
instance, a cold start, delivering to a destination for up to 10 s): another
node claimed a running invocation and ran it twice."""
import collections
import http.server
import json
import signal
import subprocess
import threading

import pytest
from huaweicloudsdkfunctiongraph.v2 import (
    AsyncInvokeFunctionRequest, FuncAsyncDestinationConfig, FuncDestinationConfig,
    ListAsyncInvocationsRequest, UpdateFunctionAsyncInvokeConfigRequest,
    UpdateFunctionAsyncInvokeConfigRequestBody,
)

from conftest import Server, client_for
from test_cluster import database, eventually, ready  # noqa: F401 (a fixture)
from test_sdk import create, invoke

# One second: every run below lasts longer (a 1.5 s initializer on a cold
# start, 0.8 s of handler, 1 s at the destination).
LEASE_SECONDS = 1


class SlowHook(http.server.BaseHTTPRequestHandler):
    """An HTTP destination that takes a second to answer and counts the
    outcomes it receives, by request id."""
    lock = threading.Lock()
    seen = collections.Counter()

    def do_POST(self):
        record = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with SlowHook.lock:
            SlowHook.seen[record["request_id"]] += 1
        threading.Event().wait(1.0)  # Fixed wait: a slow destination is the point
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def slow_hook():
    SlowHook.seen = collections.Counter()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHook)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/outcome"
    httpd.shutdown()


def attempts(database):
    r = subprocess.run(["psql", database, "-Atc",
                        "SELECT request_id, attempts FROM async_invocations"],
                       capture_output=True, text=True, check=True)
    return dict((line.split("|")[0], int(line.split("|")[1])) for line in r.stdout.split())


def test_runs_longer_than_the_lease_run_once_and_a_dead_nodes_claims_run_elsewhere(
        tmp_path, database, slow_hook):  # noqa: F811 (the fixture)
    nodes = []
    for i in range(3):
        d = tmp_path / f"node{i + 1}"
        d.mkdir()
        nodes.append(Server(d, config={"asynchronous": {"lease_seconds": LEASE_SECONDS, "workers": 4}},
                            extra_args=["--database-url", database,
                                        "--package-store", f"file://{tmp_path / 'bucket'}"]).start())
    try:
        for node in nodes:
            eventually(lambda: ready(node), within=15, what=f"{node.url}/readyz")
        one = client_for(nodes[0])
        created = create(one, name="slow", library="libhotswap.so", module="hotswap",
                         user_data={"INIT_SLEEP_MS": "1500"})
        one.update_function_async_invoke_config(UpdateFunctionAsyncInvokeConfigRequest(
            function_urn=created.func_urn, body=UpdateFunctionAsyncInvokeConfigRequestBody(
                max_async_event_age_in_seconds=3600, max_async_retry_attempts=0,
                destination_config=FuncAsyncDestinationConfig(on_success=FuncDestinationConfig(
                    destination="HTTP", param=json.dumps({"url": slow_hook}))))))
        clients = [client_for(n) for n in nodes]
        for c in clients:
            eventually(lambda: invoke(c, created.func_urn, "sleep:0").status == 200, within=15,
                       what="every node to serve the function")

        def submit(n):
            return [clients[i % 3].async_invoke_function(AsyncInvokeFunctionRequest(
                function_urn=created.func_urn, body="sleep:800")).request_id for i in range(n)]

        def succeeded(ids, via):
            listed = client_for(via).list_async_invocations(ListAsyncInvocationsRequest(
                function_urn=created.func_urn, limit="500")).invocations
            return {i.request_id for i in listed if i.status == "SUCCESS"} >= set(ids)

        # 200 runs of about 2 s, each past its 1 s lease: none runs twice.
        ids = submit(200)
        eventually(lambda: succeeded(ids, nodes[0]), within=180, what="200 invocations to succeed")
        counts = attempts(database)
        twice = sorted(r for r in ids if counts[r] != 1)
        assert not twice, f"{len(twice)} of 200 ran more than once: {twice[:5]}"
        delivered = [SlowHook.seen[r] for r in ids]
        assert delivered == [1] * 200, collections.Counter(delivered)

        # A node killed with claims running: they run again elsewhere one
        # lease later, at least once each; none is lost.
        more = submit(60)
        eventually(lambda: sum(SlowHook.seen[r] for r in more) >= 6, within=30,
                   what="the second batch to be running")
        nodes[1].stop(signal.SIGKILL)
        eventually(lambda: succeeded(more, nodes[2]), within=120, what="60 invocations to succeed")
        counts = attempts(database)
        assert all(SlowHook.seen[r] >= 1 for r in more)
        assert max(counts[r] for r in more) <= 2, counts
    finally:
        for node in nodes:
            node.stop(signal.SIGKILL)
