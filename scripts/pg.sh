#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests, removed on exit.
#   scripts/pg.sh CMD ARGS...   start it, run CMD with LOUPE_TEST_DATABASE_URL set, stop it
#   scripts/pg.sh               start it, print the URL, keep it until Ctrl-C
# Installs Debian's postgresql with apt-get when missing (as root). Trust auth is
# safe here only because the server listens on loopback and lives in a temp dir.
set -euo pipefail

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/initdb" ] && echo "$dir"
}

if ! bin=$(pg_bin); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing postgresql with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin=$(pg_bin)
  else
    echo "please install Debian's postgresql package first" >&2; exit 1
  fi
fi

# initdb refuses to run as root: the cluster belongs to the postgres user then.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d /tmp/loupe-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

stop() {
  as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
# Durability off: the data dies with the temp dir anyway, and the tests create many databases.
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-h 127.0.0.1 -p $port -k $dir \
  -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" start >/dev/null

export LOUPE_TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $LOUPE_TEST_DATABASE_URL" >&2
if [ $# -gt 0 ]; then
  "$@"
else
  echo "$LOUPE_TEST_DATABASE_URL"
  while true; do sleep 3600 & wait $!; done  # wait, unlike sleep, lets Ctrl-C / TERM run the traps at once
fi
