"""What the benchmark scripts share: a free loopback port, and a release
`fnhost serve` started on one and waited for until /readyz answers.
Imported by the inline Python of scripts/bench-*.sh (run from the
repository's root)."""
import os
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(fnhost, work, *flags, port=None, log_path=None, rust_log="warn", cache_dir=None):
    """Starts `fnhost serve` with its data under `work`, its code cache in
    `cache_dir` (default `work/cache`) and its output in `log_path`
    (default `work/server.log`); answers the process and its URL once
    /readyz answers 200 (within 15 s)."""
    port = port or free_port()
    log = open(log_path or f"{work}/server.log", "a")
    process = subprocess.Popen(
        [fnhost, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", f"{work}/data",
         "--cache-dir", cache_dir or f"{work}/cache", *flags],
        stdout=log, stderr=log, env={**os.environ, "RUST_LOG": rust_log})
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                return process, url
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise SystemExit(f"fnhost did not come up; its log: {log.name}")
