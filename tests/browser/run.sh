#!/usr/bin/env bash
# The admin console's end-to-end tests in headless Chromium (Debian's package, driven by
# playwright-core), against a real `rally serve` on a fresh SQLite file and on a fresh
# PostgreSQL database. Screenshots go to tests/browser/artifacts/<backend>/ (gitignored).
#
# Usage: tests/browser/run.sh [sqlite|postgres|both]   (default both)
# Env:   PG_ADMIN_URL   a PostgreSQL URL to create the throwaway database through
#                       (default postgres://postgres@127.0.0.1:5432/postgres)
#        RALLY_BIN      the binary to test (default target/debug/rally, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
which="${1:-both}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
bin="${RALLY_BIN:-target/debug/rally}"

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
(cd tests/browser && nice -n 19 npm ci --no-audit --no-fund --loglevel=error)
# The console's files are compiled into the binary: build, so it serves the current ones.
if [ -z "${RALLY_BIN:-}" ]; then nice -n 19 cargo build --quiet; fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Password of both test users; it passes the registration validators.
export RALLY_E2E_PASSWORD='Xq7!mVz2pL-rally'

pid=""
work=""
pgdb=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ -n "$pgdb" ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true; fi
  if [ -n "$work" ]; then rm -rf "$work"; fi
  pid="" pgdb="" work=""
}
trap cleanup EXIT

run_backend() {
  local backend="$1" database_url
  work="$(mktemp -d)"
  case "$backend" in
    sqlite) database_url="$work/rally.sqlite3" ;;
    postgres)
      pgdb="rally_browser_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
      psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $pgdb" >/dev/null
      database_url="${PG_ADMIN_URL%/*}/$pgdb"
      ;;
  esac
  local port
  port="$(free_port)"
  export DATABASE_URL="$database_url"
  RALLY_PASSWORD="$RALLY_E2E_PASSWORD" "$bin" createsuperuser --username boss --email boss@example.com >/dev/null
  # Short-lived access tokens, so the console's refresh before expiry happens during the
  # run; mail to a closed port with one attempt, so failed mail shows up in the outbox.
  RALLY_BIND="127.0.0.1:$port" JWT_SECRET=browser-tests-secret-browser-tests-secret \
    ACCESS_TOKEN_TTL=12s SMTP_URL=smtp://127.0.0.1:9 SMTP_TIMEOUT=2s MAIL_MAX_ATTEMPTS=1 \
    MAIL_POLL_INTERVAL=1s RALLY_WORKERS=2 RUST_LOG=warn,rally::mail::worker=off \
    "$bin" serve > "$work/rally.log" 2>&1 &
  pid=$!
  local base="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
  curl -sf -X POST "$base/api/users/" -H 'Content-Type: application/json' \
    -d "{\"username\": \"olive\", \"email\": \"olive@example.com\", \"password\": \"$RALLY_E2E_PASSWORD\"}" >/dev/null
  echo "--- admin console on $backend ($base)"
  local started=$SECONDS status=0
  (cd tests/browser && RALLY_URL="$base" RALLY_BACKEND="$backend" \
    RALLY_ARTIFACTS="$root/tests/browser/artifacts/$backend" \
    timeout 600 nice -n 19 node --test --test-concurrency=1 admin.test.js) || status=$?
  echo "--- $backend: $((SECONDS - started))s"
  if [ "$status" -ne 0 ]; then
    echo "rally's log:"; tail -n 50 "$work/rally.log"
  fi
  cleanup
  return "$status"
}

case "$which" in
  sqlite | postgres) run_backend "$which" ;;
  both) run_backend sqlite && run_backend postgres ;;
  *) echo "usage: $0 [sqlite|postgres|both]" >&2; exit 2 ;;
esac
