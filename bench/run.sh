#!/usr/bin/env bash
# rally vs the Django peer, side by side on this machine: bash bench/run.sh [options]
#
# Builds the release binary, installs what is missing (wrk from apt, a virtualenv with
# matplotlib, the Django peer's virtualenv from its requirements.txt), starts MailDev
# and makes sure PostgreSQL answers, then runs bench/bench.py, which starts and seeds
# each server, drives it with wrk on loopback and prints the table. Options go to
# bench.py (`bash bench/run.sh --help`); see bench/README.md.
#
# Environment: BENCH_PG_URL (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
# DJANGO_PEER_DIR (default ../shared/peers/django), DJANGO_VENV, BENCH_VENV,
# MAILDEV_SMTP / MAILDEV_WEB (1025 / 1080), BENCH_DURATION, BENCH_CONNECTIONS.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"

cache="${TMPDIR:-/tmp}/rally-bench"
export DJANGO_PEER_DIR="${DJANGO_PEER_DIR:-$(cd "$root/../shared/peers/django" 2>/dev/null && pwd || true)}"
export DJANGO_VENV="${DJANGO_VENV:-$cache/django-venv}"
bench_venv="${BENCH_VENV:-$cache/venv}"
export BENCH_PG_URL="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export MAILDEV_SMTP="${MAILDEV_SMTP:-1025}"
export MAILDEV_WEB="${MAILDEV_WEB:-1080}"
maildev_sh="${MAILDEV_SH:-$root/../shared/tools/maildev.sh}"

say() { printf '== %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --help needs none of the set-up.
for arg in "$@"; do
  case "$arg" in -h|--help) exec python3 "$here/bench.py" --help ;; esac
done

if [ -z "$DJANGO_PEER_DIR" ] || [ ! -x "$DJANGO_PEER_DIR/run.sh" ]; then
  echo "the Django peer is not at ../shared/peers/django: set DJANGO_PEER_DIR" >&2
  exit 1
fi

say "wrk"
if ! command -v wrk >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

say "cargo build --release"
cargo build --release
export RALLY_BIN="$root/target/release/rally"

say "virtualenvs (matplotlib; the Django peer's requirements)"
mkdir -p "$cache"
if ! "$bench_venv/bin/python" -c 'import matplotlib' >/dev/null 2>&1; then
  python3 -m venv "$bench_venv"
  "$bench_venv/bin/pip" install -q "matplotlib>=3.8,<4"
fi
if [ ! -x "$DJANGO_VENV/bin/gunicorn" ]; then
  python3 -m venv "$DJANGO_VENV"
  "$DJANGO_VENV/bin/pip" install -q -r "$DJANGO_PEER_DIR/requirements.txt"
fi

say "PostgreSQL"
if ! command -v pg_isready >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi
if ! pg_isready -q -d "$BENCH_PG_URL"; then
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -d "$BENCH_PG_URL" && break; sleep 1; done
fi
pg_isready -d "$BENCH_PG_URL" >&2

say "MailDev (SMTP $MAILDEV_SMTP, REST $MAILDEV_WEB)"
maildev_pid=""
cleanup() {
  if [ -n "$maildev_pid" ]; then kill "$maildev_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
if curl -fsS "http://127.0.0.1:$MAILDEV_WEB/email" -o /dev/null 2>/dev/null; then
  echo "using the MailDev already on 127.0.0.1:$MAILDEV_WEB" >&2
else
  maildev_pid="$(MAILDEV_LOG="$cache/maildev.log" "$maildev_sh")"
fi

say "benchmark"
"$bench_venv/bin/python" "$here/bench.py" "$@"
