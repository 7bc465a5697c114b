#!/usr/bin/env bash
# The project's full check: install test tools, then format, lint, build, Rust tests (unit and
# end-to-end against real broker processes) and the Python admin tests. Prints a timing per step
# and exits non-zero if any step failed (all steps run, so one report shows every failure).
set -uo pipefail

cd "$(dirname "$0")/.."

failed=()
timings=()

step() {
    local name="$1"
    shift
    echo
    echo "==> ${name}: $*"
    local start=$SECONDS
    "$@"
    local rc=$?
    local took=$((SECONDS - start))
    timings+=("$(printf '%-8s %4ds  %s' "$([ $rc -eq 0 ] && echo ok || echo FAILED)" "$took" "$name")")
    if [ $rc -ne 0 ]; then
        echo "==> ${name} FAILED (exit ${rc}) after ${took}s"
        failed+=("$name")
    else
        echo "==> ${name} ok in ${took}s"
    fi
    return $rc
}

step setup bash e2e/setup.sh || { echo "setup failed: cannot run the tests"; exit 1; }
step fmt cargo fmt --all --check
step clippy cargo clippy --release --workspace --all-targets -- -D warnings
# The binaries and every test target in one build: with the tests' dev-dependencies in the
# same build, Cargo unifies features once, so `cargo test` below reuses all of it instead of
# compiling the workspace (and tokio's dependants) a second time with other features.
if step build cargo build --release --workspace --bins --tests; then
    export STRAIT_BROKER_BIN="$PWD/target/release/strait-broker"
    step cargo-test cargo test --release --workspace --no-fail-fast
    step pytest python3 -m pytest -q e2e/python
else
    failed+=("cargo-test (not run)" "pytest (not run)")
fi
step charts bash charts/test.sh

echo
echo "==> timings"
printf '%s\n' "${timings[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "==> FAILED: ${failed[*]}"
    exit 1
fi
echo "==> all steps passed"
