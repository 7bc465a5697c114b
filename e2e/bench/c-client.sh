#!/usr/bin/env bash
# Broker benchmark with librdkafka's C load generator (rdkafka_performance) instead of the Rust
# binding, so the client is not what limits the numbers. See docs/performance.md.
#
#   bash e2e/bench/c-client.sh [--quick] [--peer-tansu /path/to/tansu] [--no-cluster] [--help]
#
# 1. Builds examples/rdkafka_performance from the librdkafka source bundled in the rdkafka-sys
#    crate that Cargo.lock pins (copied out of ~/.cargo/registry into target/bench/, never built
#    in place), without anything that needs a download (no SSL/SASL/zstd/curl, builtin lz4).
#    The binary is cached as target/bench/bin/rdkafka_performance-<librdkafka version>.
# 2. Runs e2e/bench/c_client.py with it: starts target/release/strait-broker (one node, then a
#    3-node `strait-broker dev` cluster) on free 127.0.0.1 ports, drives the matrix, prints the
#    table, and stops only the processes it started.
#
# Needs a C compiler, make and zlib headers (e2e/setup.sh installs build-essential and
# zlib1g-dev) and python3 with confluent-kafka (also e2e/setup.sh).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$REPO"

for arg in "$@"; do
    if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
        exec python3 "$REPO/e2e/bench/c_client.py" --help
    fi
done

# The rdkafka-sys version Cargo.lock pins, e.g. 4.10.0+2.12.1 (librdkafka 2.12.1).
crate_version="$(awk '
    /^\[\[package\]\]/ { name = "" }
    /^name = "rdkafka-sys"$/ { name = "rdkafka-sys" }
    name == "rdkafka-sys" && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)"
if [ -z "$crate_version" ]; then
    echo "c-client.sh: rdkafka-sys is not in Cargo.lock" >&2
    exit 1
fi
librdkafka_version="${crate_version#*+}"

src=""
for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/rdkafka-sys-"$crate_version"/librdkafka; do
    if [ -f "$d/configure" ] && [ -f "$d/examples/rdkafka_performance.c" ]; then
        src="$d"
        break
    fi
done
if [ -z "$src" ]; then
    echo "c-client.sh: no librdkafka source for rdkafka-sys $crate_version under" \
        "${CARGO_HOME:-$HOME/.cargo}/registry/src (run 'cargo fetch' once)" >&2
    exit 1
fi

bench_dir="$REPO/target/bench"
# "-paced": built with the one-line pacing change below.
perf="$bench_dir/bin/rdkafka_performance-$librdkafka_version-paced"
if [ -x "$perf" ]; then
    echo "c-client.sh: using cached $perf"
else
    for tool in cc make; do
        command -v "$tool" >/dev/null 2>&1 || {
            echo "c-client.sh: '$tool' is missing; run: bash e2e/setup.sh" >&2
            exit 1
        }
    done
    [ -f /usr/include/zlib.h ] || {
        echo "c-client.sh: zlib headers are missing; run: bash e2e/setup.sh" >&2
        exit 1
    }
    build="$bench_dir/librdkafka-$librdkafka_version"
    echo "c-client.sh: building rdkafka_performance (librdkafka $librdkafka_version) in $build"
    rm -rf "$build"
    mkdir -p "$bench_dir/bin"
    cp -a "$src" "$build"
    # -r <rate> sleeps rate_sleep µs after each produce call, so the call's own cost slows every
    # message and the offered load falls short (about half of 50 MB/s on 2 cores). Pace by an
    # absolute schedule instead (next += 1/rate; restart the schedule if over 1 s behind), the
    # way an open-loop load generator does. The copy is patched, never the registry source.
    python3 - "$build/examples/rdkafka_performance.c" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = "rd_ts_t next = rd_clock() + (rd_ts_t)rate_sleep;"
new = ("static rd_ts_t next = 0; rd_ts_t now_ = rd_clock(); "
       "if (!next || next + 1000000 < now_) next = now_; next += (rd_ts_t)rate_sleep;")
if text.count(old) != 1:
    sys.exit("c-client.sh: rdkafka_performance.c changed; the pacing patch does not apply")
open(path, "w").write(text.replace(old, new))
PY
    (
        cd "$build"
        # Everything that would need a download or an extra -dev package is off; zlib, snappy,
        # builtin lz4 and the HDR histogram stay on. (Logs must not be named configure.*: mklove
        # takes ./configure.<name> files in the current directory for modules.)
        ./configure --disable-ssl --disable-gssapi --disable-zstd --disable-curl \
            --disable-lz4-ext --disable-syslog >bench-configure.txt 2>&1 ||
            { tail -30 bench-configure.txt >&2; exit 1; }
        nice -n 10 make -j2 -C src librdkafka.a >bench-make.txt 2>&1 ||
            { tail -30 bench-make.txt >&2; exit 1; }
        nice -n 10 make -C examples rdkafka_performance >>bench-make.txt 2>&1 ||
            { tail -30 bench-make.txt >&2; exit 1; }
    )
    cp "$build/examples/rdkafka_performance" "$perf.tmp"
    mv "$perf.tmp" "$perf"
    echo "c-client.sh: built $perf"
fi

exec python3 "$REPO/e2e/bench/c_client.py" --perf "$perf" --librdkafka "$librdkafka_version" "$@"
