#!/usr/bin/env bash
# scripts/fuzz.sh — run Klaxon's cargo-fuzz targets (fuzz/fuzz_targets/) for a bounded time.
#
#   scripts/fuzz.sh                  every target, ${FUZZ_SECONDS:-60} s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh redactor generic
#                                    only these targets, 10 minutes each
#
# One target by hand (from the repository root; the flags are the script's):
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --debug-assertions redactor \
#       fuzz/target/corpus/redactor fuzz/corpus/redactor -- -max_total_time=60
# and to replay a crash it found:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --debug-assertions redactor fuzz/artifacts/redactor/crash-…
#
# Targets: alertmanager grafana generic (alert intake parsers), durations, start_times
# (maintenance window times), redactor (log redaction).
#
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take the nightly-only flags cargo fuzz
# passes (-Zsanitizer=address and friends); no nightly toolchain is needed.
# --debug-assertions turns on overflow checks, so an arithmetic overflow is a crash.
#
# The fuzz crate is its own workspace (the main one excludes "fuzz") and builds into
# fuzz/target, never the workspace's target/. New inputs the fuzzer finds go to the
# scratch corpus fuzz/target/corpus/<target>; the committed seeds in fuzz/corpus/<target>
# are read, not written. To fold findings worth keeping into the committed corpus:
#   RUSTC_BOOTSTRAP=1 cargo fuzz cmin redactor fuzz/corpus/redactor  (after copying them in)
# Crashes are written to fuzz/artifacts/<target>/ (git-ignored).
#
# Environment knobs:
#   FUZZ_SECONDS=N   time per target (default 60).
#   FUZZ_ARGS="…"    extra libFuzzer flags, e.g. FUZZ_ARGS="-jobs=2 -workers=2".
#
# Exit status: 0 when no target found anything, 1 when any target crashed, timed out or
# failed to build (the others still run; a summary is printed at the end).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
export RUSTC_BOOTSTRAP=1
secs="${FUZZ_SECONDS:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || exit 2
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

failed=()
for t in "${targets[@]}"; do
    echo "=== fuzz.sh: $t for ${secs}s" >&2
    mkdir -p "fuzz/target/corpus/$t" "fuzz/corpus/$t"
    # shellcheck disable=SC2086  # FUZZ_ARGS is split on purpose
    if ! cargo fuzz run --debug-assertions "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -print_funcs=0 \
        ${FUZZ_ARGS:-}; then
        failed+=("$t")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} targets ran ${secs}s without a crash" >&2
