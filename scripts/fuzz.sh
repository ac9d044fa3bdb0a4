#!/usr/bin/env bash
# Run every libFuzzer target for a while (make fuzz; CI runs it briefly).
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
# New inputs go to a scratch copy of the corpus; crashes are written to
# build-fuzz/crash-* and fail the script (copy a crash into
# tests/fuzz/corpus/ to keep it as a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
CC=clang cmake -S . -B build-fuzz -DCHATAPP_FUZZ=ON -DCHATAPP_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target fuzz_json_libfuzzer fuzz_phone_libfuzzer >/dev/null
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for entry in fuzz_json:json fuzz_phone:phone; do
  target=${entry%%:*}
  corpus=${entry#*:}
  scratch=build-fuzz/corpus-$corpus
  mkdir -p "$scratch"
  cp tests/fuzz/corpus/"$corpus"/* "$scratch"/
  echo "== $target: $seconds s"
  (cd build-fuzz && ./tests/fuzz/"$target"_libfuzzer -max_total_time="$seconds" \
     -timeout=2 -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
     "../$scratch" 2>&1 | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)" || true)
  if ls build-fuzz/crash-* build-fuzz/leak-* build-fuzz/timeout-* >/dev/null 2>&1; then
    echo "$target found a failing input (build-fuzz/crash-*)" >&2
    exit 1
  fi
done
