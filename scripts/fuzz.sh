#!/usr/bin/env bash
# Run the libFuzzer targets for a while (make fuzz; CI runs them briefly).
# Every run holds the targets to reliability case C1: zero crashes, leaks
# or UB, no input slower than 1 s, RSS under 1 GB (see the run below).
#   scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
#   FUZZ_BUDGET=150 scripts/fuzz.sh 20   at most 150 s of fuzzing in all
#   scripts/fuzz.sh 1800 fuzz_emulator   one target for half an hour
# Targets and the parser each covers: docs/internals/fuzzing.md.
# With FUZZ_BUDGET (seconds), each of the N targets runs
# min(SECONDS_PER_TARGET, FUZZ_BUDGET / N) seconds (at least 5), so adding
# a target never makes CI's fuzzing pass longer than the budget.
# A dictionary tests/fuzz/CORPUS.dict is passed when there is one.
# New inputs go to a scratch copy of the corpus; crashes, leaks and
# timeouts are written to build-fuzz/crash-* (leak-*, timeout-*) and fail
# the script: fix the bug, then copy the input into tests/fuzz/corpus/ with
# a name that says what it was, so ctest replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
# target:corpus for every target, from the one list (tests/fuzz/CMakeLists.txt)
mapfile -t all < <(sed -n '/^set(FUZZ_TARGETS/,/)/p' tests/fuzz/CMakeLists.txt |
  grep -o 'fuzz_[a-z_]*:[a-z_]*')
[ ${#all[@]} -gt 0 ] || { echo "scripts/fuzz.sh: no FUZZ_TARGETS in tests/fuzz/CMakeLists.txt" >&2; exit 2; }
entries=()
if [ $# -gt 0 ]; then
  for want in "$@"; do
    found=
    for entry in "${all[@]}"; do
      [ "${entry%%:*}" = "$want" ] && entries+=("$entry") && found=1
    done
    if [ -z "$found" ]; then
      echo "scripts/fuzz.sh: no fuzz target $want (known: ${all[*]%%:*})" >&2
      exit 2
    fi
  done
else
  entries=("${all[@]}")
fi
if [ -n "${FUZZ_BUDGET:-}" ]; then
  share=$(( FUZZ_BUDGET / ${#entries[@]} ))
  [ "$share" -lt 5 ] && share=5
  [ "$share" -lt "$seconds" ] && seconds=$share
fi
binaries=()
for entry in "${entries[@]}"; do binaries+=("${entry%%:*}_libfuzzer"); done
CC=clang cmake -S . -B build-fuzz -DCHATAPP_FUZZ=ON -DCHATAPP_WERROR=ON \
  -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-fuzz -j"${JOBS:-2}" --target "${binaries[@]}" >/dev/null
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for entry in "${entries[@]}"; do
  target=${entry%%:*}
  corpus=${entry#*:}
  scratch=build-fuzz/corpus-$corpus
  mkdir -p "$scratch"
  cp tests/fuzz/corpus/"$corpus"/* "$scratch"/
  dict=()
  [ -f tests/fuzz/"$corpus".dict ] && dict=(-dict="../tests/fuzz/$corpus.dict")
  echo "== $target: $seconds s"
  log=build-fuzz/$target.log
  status=0
  # Reliability case C1 (docs/reliability.md): no crash, leak or UB
  # (ASan + UBSan, halting; libFuzzer's leak check after each input that
  # allocated), no input slower than 1 s (-timeout=1), RSS under 1 GB
  # (-rss_limit_mb=1024, and -malloc_limit_mb for a single allocation).
  (cd build-fuzz && ./tests/fuzz/"$target"_libfuzzer -max_total_time="$seconds" \
     -timeout=1 -rss_limit_mb=1024 -malloc_limit_mb=1024 -detect_leaks=1 \
     -max_len=65536 -print_final_stats=1 \
     "${dict[@]}" "../$scratch") >"$log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|.*ALARM: working on the last Unit for|.*out-of-memory)" "$log" || true
  if [ "$status" -ne 0 ] || ls build-fuzz/crash-* build-fuzz/leak-* build-fuzz/timeout-* build-fuzz/oom-* >/dev/null 2>&1; then
    echo "$target failed (exit $status): see $log and build-fuzz/crash-*, leak-*, timeout-*, oom-*" >&2
    exit 1
  fi
done
