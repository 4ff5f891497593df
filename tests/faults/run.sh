#!/usr/bin/env bash
# The fault suite: builds the release binary, then breaks things around it (see faults.py).
# Usage: tests/faults/run.sh [--seconds N] [--only SCENARIO ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${RALLY_FAULTS_VENV:-${TMPDIR:-/tmp}/rally-faults-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "aiosmtpd==1.4.*"
fi
cargo build --release --quiet
exec timeout 600 "$venv/bin/python" tests/faults/faults.py --binary target/release/rally "$@"
