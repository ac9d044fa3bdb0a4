#!/usr/bin/env bash
# The benchmarks, with one command (make bench): figures on stdout, to be
# copied into docs/benchmarks.md.  They talk only to a local emulator.
#   scripts/bench.sh [BUILD_DIR] [CALLS]
#   (BENCH_SPACES=1000,10000 BENCH_BEFORE=old/chatapp-run: memory per space)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
calls=${2:-300}
run=$build/chatapp-run
emu=$build/chatapp-emulator
[ -x "$run" ] && [ -x "$emu" ] || { echo "build first: make build" >&2; exit 2; }

echo "== machine: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== typed results (issue 6)"
"$run" --lua tests/bench/bench_decode.lua 100000
echo
echo "== client: limiter, transport, retries (issue 5)"
"$run" --lua tests/bench/bench_client.lua "$run" "$emu" "$calls"
echo
echo "== HTTP and HTTPS side by side: 1,000 calls, --quota 1000 (issue 18)"
"$run" --lua tests/bench/bench_tls.lua "$run" "$emu" 1000 3
echo
echo "== limiter: host-local file against Redis (issue 16)"
"$run" --lua tests/bench/bench_limiter_redis.lua "$run" "$emu" 1000
echo
echo "== state store: 1,000 numbers in 100 spaces (issue 13)"
"$run" --lua tests/bench/bench_state.lua "$build" 1000 100
echo
echo "== watch mode: 200 cycles over 1,000 numbers in 100 spaces (issue 14)"
"$run" --lua tests/bench/bench_watch.lua "$run" "$emu"
echo
echo "== memory per space (issue 14)"
# BENCH_SPACES: the space counts (default 1000,10000: about 5 minutes);
# BENCH_BEFORE: another build's chatapp-run, measured side by side.
"$run" --lua tests/bench/bench_spaces.lua "$run" "$emu" "${BENCH_SPACES:-1000,10000}" ${BENCH_BEFORE:+"$BENCH_BEFORE"}
