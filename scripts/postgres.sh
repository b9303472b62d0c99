#!/usr/bin/env bash
# Prints the URL of a PostgreSQL server the tests may create databases on
# (as a superuser): the one at 127.0.0.1:5432 when it answers with trust
# authentication, otherwise a private cluster (under /tmp, one per
# checkout) that this script creates with initdb and starts on 127.0.0.1:55432-55495 (installing
# the distribution's postgresql package when initdb is missing). Tests make
# a fresh database of their own on it and drop it at the end.
#
#   scripts/postgres.sh          start what is needed, print the URL
#   scripts/postgres.sh stop     stop the private cluster, if it runs
set -euo pipefail
cd "$(dirname "$0")/.."

# Under /tmp, not target/: as root the cluster runs as another user, who
# may not be able to reach a checkout under a private directory.
tag=$(printf %s "$PWD" | sha256sum | cut -c1-12)
dir=${TMPDIR:-/tmp}/fnhost-postgres-$tag
# One port per checkout too (55432 to 55495), so two checkouts' clusters
# never answer for each other.
port=$((55432 + 0x${tag:0:2} % 64))
# Nothing below needs the checkout, and the cluster's user may not be able
# to enter it.
cd /

answers() { # URL
  python3 - "$1" <<'PY'
import socket, struct, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
try:
    s = socket.create_connection((u.hostname, u.port or 5432), timeout=2)
    s.settimeout(2)
    # A StartupMessage (protocol 3.0) for user postgres; trust answers
    # AuthenticationOk ('R', 0) at once.
    body = struct.pack("!I", 196608) + b"user\0" + (u.username or "postgres").encode() + b"\0database\0postgres\0\0"
    s.sendall(struct.pack("!I", len(body) + 4) + body)
    head = s.recv(9)
    sys.exit(0 if head[:1] == b"R" and head[5:9] == b"\0\0\0\0" else 1)
except OSError:
    sys.exit(1)
PY
}

pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}


# initdb and pg_ctl refuse to run as root: the cluster then belongs to `postgres`
# (the package's user), or to `nobody` where there is none.
run_as=()
owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  owner=$(id -un postgres 2>/dev/null || echo nobody)
  run_as=(setpriv --reuid="$owner" --regid="$(id -g "$owner")" --clear-groups --)
fi

if [ "${1:-}" = stop ]; then
  if bin=$(pg_bin) && [ -f "$dir/data/postmaster.pid" ]; then
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
  exit 0
fi

shared=postgres://postgres@127.0.0.1:5432/postgres
if [ -z "${FNHOST_PRIVATE_POSTGRES:-}" ] && answers "$shared"; then
  echo "$shared"
  exit 0
fi

private=postgres://postgres@127.0.0.1:$port/postgres
if answers "$private"; then
  echo "$private"
  exit 0
fi

if ! bin=$(pg_bin); then
  echo "postgres.sh: installing the distribution's postgresql package" >&2
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  bin=$(pg_bin)
fi

mkdir -p "$dir"
if [ ! -f "$dir/data/PG_VERSION" ]; then
  rm -rf "$dir/data"
  mkdir -p "$dir/data"
  [ "$(id -u)" = 0 ] && chown "$owner" "$dir" "$dir/data"
  "${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
fi
[ "$(id -u)" = 0 ] && chown "$owner" "$dir"
"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "$private"
