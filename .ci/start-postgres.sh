#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback and print its URL.
# Usage: .ci/start-postgres.sh DATADIR PORT
set -euo pipefail
datadir=${1:-/tmp/maildesk-pg}
port=${2:-55432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "no PostgreSQL server installed" >&2; exit 1; }
runas=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  runas=(runuser -u postgres --)
fi
if [ ! -s "$datadir/PG_VERSION" ]; then
  rm -rf "$datadir"; mkdir -p "$datadir"; chmod 700 "$datadir"
  [ "$(id -u)" = 0 ] && chown postgres "$datadir"
  "${runas[@]}" "$bindir/initdb" -D "$datadir" -U maildesk --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
if ! "${runas[@]}" "$bindir/pg_ctl" -D "$datadir" status >/dev/null 2>&1; then
  "${runas[@]}" "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $datadir -c fsync=off -c max_connections=200" start >/dev/null
fi
echo "postgresql+psycopg://maildesk@127.0.0.1:$port/postgres"
