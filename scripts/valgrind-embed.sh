#!/usr/bin/env bash
# Runs the C embedding example (host/embed/examples/embed.c), and the C
# programs of host functions (host/embed/examples/host_functions.c) and of calls
# that do not block (tests/embed/async_calls.c), under valgrind's memcheck: no invalid read or write, no use of uninitialized
# memory, and no leak ("definitely" or "indirectly lost") may come from
# fnhost. Memory that stays reachable at exit (the process-wide worker
# spawner, the output poller) is reported but allowed, and so are blocks a
# plugin library allocated itself (each cdylib's own std allocates once per
# library; libraries are never unloaded by design): a lost block whose
# allocating frame is in no known object (the plugins' cache copies show as
# `???`) is the plugin's. Worker processes are not traced.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
cargo build --workspace --locked
out=target/valgrind-embed
rm -rf "$out" && mkdir -p "$out/a" "$out/b" "$out/bad"
python3 - "$out" <<'PY'
import sys
from pathlib import Path
out = Path(sys.argv[1])
lib = Path("target/debug/libhotswap.so").read_bytes()
marker = b"fnhost-build-tag:"
at = lib.index(marker) + len(marker)
for tag, d in ((b"A", "a"), (b"B", "b")):
    (out / d / "hotswap.so").write_bytes(lib[:at] + tag + lib[at + 1:])
(out / "bad" / "bad.so").write_text("not a library\n")
PY
cc -shared -fPIC -O1 -I plugin-api/include -o "$out/cancellable.so" tests/fixtures/cancellable.c

# memcheck NAME SOURCE ARGS...: builds the C program and checks one run.
memcheck() {
    local name=$1 source=$2; shift 2
    local log="$out/memcheck-$name.log"
    cc -g -Wall -Wextra -Werror -std=c11 -pthread -I host/embed/include -o "$out/$name" \
        "$source" -L target/debug -lfnhost_embed
    LD_LIBRARY_PATH=target/debug valgrind --tool=memcheck \
        --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --num-callers=40 \
        --trace-children=no --child-silent-after-fork=yes --log-file="$log" \
        "$out/$name" "$@"
    python3 - "$log" "$name" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
name = sys.argv[2]
errors = int(re.search(r"ERROR SUMMARY: (\d+) errors", text).group(1))
records = re.split(r"\n==\d+== \n", text)
leaks = [r for r in records if re.search(r"are (definitely|indirectly) lost in loss record", r)]
fnhost, plugin = [], []
for r in leaks:
    frames = re.findall(r"(?:at|by) 0x[0-9A-F]+: (.*)", r)
    after_alloc = next((f for f in frames if not re.match(r"(malloc|calloc|realloc) \(in ", f)), "???")
    (plugin if after_alloc.startswith("???") else fnhost).append(r.strip().splitlines()[0])
other = errors - len(leaks)
print(f"memcheck {name}: {other} invalid accesses or uninitialized uses; "
      f"{len(fnhost)} leaks from fnhost; {len(plugin)} from plugin libraries (allowed)")
for line in fnhost:
    print("  fnhost leak:", line)
sys.exit(1 if other or fnhost else 0)
PY
}

memcheck embed host/embed/examples/embed.c target/debug "$out/a" "$out/b" "$out/bad"
memcheck host_functions host/embed/examples/host_functions.c target/debug
memcheck async_calls tests/embed/async_calls.c target/debug "$out"
