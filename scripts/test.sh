#!/usr/bin/env bash
# The whole suite on SQLite and, at the same time, on PostgreSQL (one pass per core; each pass keeps its
# files under its own var/ folder). Under CI=true PostgreSQL (and Redis) must be reachable; elsewhere an
# unreachable server is reported as a skipped run with the reason. The PostgreSQL pass's output is printed
# after the SQLite pass's, so the two never interleave.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PG_URL=${CSPDESK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
VAR=${CSPDESK_VAR_DIR:-$PWD/var}
status=0
pg_pid=""

if "$BIN/python" scripts/reachable.py postgres "$PG_URL"; then
  rm -rf "$VAR/test-postgres" && mkdir -p "$VAR/test-postgres"
  # tests marked `once` never touch the configured database: the SQLite pass runs them
  DATABASE_URL="$PG_URL" CSPDESK_REQUIRE_POSTGRES=1 CSPDESK_VAR_DIR="$VAR/test-postgres" \
    "$BIN/pytest" -p no:cacheprovider --durations=15 -m "not once" "$@" >"$VAR/test-postgres.log" 2>&1 &
  pg_pid=$!
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL at $PG_URL is unreachable, and CI requires the PostgreSQL run." >&2
  status=1
else
  echo "SKIPPED: the PostgreSQL run: no server reachable at $PG_URL (set CSPDESK_TEST_POSTGRES_URL)."
fi

echo "== cspdesk tests on SQLite =="
rm -rf "$VAR/test-sqlite" && mkdir -p "$VAR/test-sqlite"
env -u DATABASE_URL CSPDESK_VAR_DIR="$VAR/test-sqlite" "$BIN/pytest" --durations=15 "$@" || status=$?

if [ -n "$pg_pid" ]; then
  wait "$pg_pid" || status=$?
  echo "== cspdesk tests on PostgreSQL ($PG_URL) =="
  cat "$VAR/test-postgres.log"
fi
exit $status
