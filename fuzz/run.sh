#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each on its seed corpus; exits
# non-zero if any target crashes, fails an assertion, times out or runs out of memory.
#
#   fuzz/run.sh [SECONDS] [TARGET...]       SECONDS defaults to 20
#   FUZZ_ARGS="-jobs=2 -workers=2" fuzz/run.sh 3600     extra libFuzzer flags
#   FUZZ_TARGET_DIR=~/.cache/rally-fuzz fuzz/run.sh      build outside the clone (kept warm)
#   FUZZ_BUILD_ARGS="--dev --sanitizer none" fuzz/run.sh 20
#       a quick pass: no AddressSanitizer, unoptimised build; a cold build takes about
#       6 minutes on 2 cores instead of 16 (CI uses this; coverage guidance stays on)
#
# Stable Rust only: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its nightly flags
# (-Zsanitizer=address, sancov) to the stable compiler. See fuzz/README.md.
set -euo pipefail

cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(tokens list_query json_body)
fi
case "$seconds" in
    '' | *[!0-9]*) echo "run.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;;
esac

export RUSTC_BOOTSTRAP=1
target_dir=()
[ -n "${FUZZ_TARGET_DIR:-}" ] && target_dir=(--target-dir "$FUZZ_TARGET_DIR")
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

started=$(date +%s)
echo "== building fuzz targets: ${targets[*]}"
for t in "${targets[@]}"; do
    # shellcheck disable=SC2086 # FUZZ_BUILD_ARGS is a list of flags
    cargo fuzz build ${FUZZ_BUILD_ARGS:-} "${target_dir[@]}" "$t"
done
echo "== built in $(($(date +%s) - started))s"

failed=()
for t in "${targets[@]}"; do
    # New inputs go to corpus.local/ (ignored by git, kept between runs); the committed
    # seeds in corpus/ are only read.
    work="fuzz/corpus.local/$t"
    mkdir -p "$work"
    max_len=4096
    [ "$t" = json_body ] && max_len=8192
    log="fuzz/artifacts/$t.log"
    mkdir -p "fuzz/artifacts/$t"
    echo "== fuzzing $t for ${seconds}s"
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    if cargo fuzz run ${FUZZ_BUILD_ARGS:-} "${target_dir[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -max_len="$max_len" \
        -dict="fuzz/dict/$t.dict" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
        echo "   ok: ${execs:-?} execs, ${rate:-?} execs/s, ${cov:-cov: ?}"
    else
        echo "   FAILED: $t (log: $log)"
        grep -E -A30 '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY)' "$log" | head -n 60 || tail -n 40 "$log"
        grep -o 'Test unit written to .*' "$log" || true
        failed+=("$t")
    fi
done

echo "== fuzzing took $(($(date +%s) - started))s in all"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}; reproduce with" >&2
    echo "  RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
