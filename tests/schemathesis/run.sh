#!/usr/bin/env bash
# Fuzzes the API through its own OpenAPI document with schemathesis: no 5xx, no response
# that breaks the document, statuses and content types as documented, stateful sequences.
# Usage: tests/schemathesis/run.sh [SECONDS]   (default 90; needs target/debug/rally)
#
# Two data checks are left out on purpose, both for Django REST Framework compatibility:
# positive_data_acceptance (the password policy and unique usernames reject data the
# schema cannot describe) and negative_data_rejection (DRF accepts a number where text is
# due, an empty filter parameter means "no filter", an empty PATCH body means "no change").
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-90}"
venv="${RALLY_CI_VENV:-${TMPDIR:-/tmp}/rally-ci-venv}"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.*"
fi
[ -x target/debug/rally ] || cargo build --quiet
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATABASE_URL="$work/rally.sqlite3" RALLY_BIND="127.0.0.1:$port" ACCESS_TOKEN_TTL=1h \
  JWT_SECRET=schemathesis-secret-schemathesis-secret-0 SMTP_URL=smtp://127.0.0.1:9 RUST_LOG=warn \
  LOGIN_FAILURES_PER_USERNAME=100000/1m LOGIN_FAILURES_PER_ADDRESS=100000/1m \
  target/debug/rally serve > "$work/rally.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
# A staff user, so the staff-only operations (users, outbox) are fuzzed past their 403.
DATABASE_URL="$work/rally.sqlite3" RALLY_PASSWORD='Xq7!mVz2pL-rally' \
  target/debug/rally createsuperuser --username schemathesis --email st@example.com >/dev/null
token="$(curl -sf -X POST "$base/api/token/" -H 'Content-Type: application/json' \
  -d '{"username": "schemathesis", "password": "Xq7!mVz2pL-rally"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access"])')"
# One worker: with two, hypothesis's lambda introspection (ast.parse in threads) hit
# CPython 3.11's "AST constructor recursion depth mismatch" on this document's schemas.
"$venv/bin/schemathesis" run "$base/api/schema/" \
  -H "Authorization: Bearer $token" \
  --checks all --exclude-checks positive_data_acceptance,negative_data_rejection \
  --max-time "$seconds" --workers 1 --seed 20261121
kill -0 $pid  # the server survived all of it
