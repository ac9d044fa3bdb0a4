#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run -> make test):
#   0. the C sources in the style of .clang-format (scripts/format.sh
#      --check: clang-format --dry-run --Werror; `make format` fixes);
#   1. gcc with -Werror, every test;
#   2. clang with AddressSanitizer + UndefinedBehaviorSanitizer, every test;
#   3. valgrind memcheck over the unit tests of the gcc build (any error or
#      definite leak fails the test);
#   4. a short libFuzzer run of every fuzz target (scripts/fuzz.sh), the
#      targets sharing FUZZ_BUDGET seconds (150).
# Each pass builds from scratch in its own folder.  Fails on the first
# failing pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

jobs=${JOBS:-2}
started=$(date +%s)

echo "== clang-format"
bash scripts/format.sh --check

pass() {
  local name=$1 dir=$2
  shift 2
  echo "== $name"
  rm -rf "$dir"
  cmake -S . -B "$dir" "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

pass "gcc, -Werror" build-ci-gcc \
  -DCMAKE_C_COMPILER=gcc -DCHATAPP_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo

# E1's kill loop gets 60 s here instead of 120 s: the CI budget (it
# counts its kills and prints them).
E1_SECONDS=60 \
ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  pass "clang, ASan + UBSan" build-ci-asan \
  -DCMAKE_C_COMPILER=clang -DCHATAPP_WERROR=ON -DCHATAPP_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=Debug

echo "== valgrind memcheck (unit tests of the gcc build)"
cmake -S . -B build-ci-gcc -DCHATAPP_VALGRIND=ON >/dev/null
ctest --test-dir build-ci-gcc -L unit --output-on-failure -j"$jobs"
cmake -S . -B build-ci-gcc -DCHATAPP_VALGRIND=OFF >/dev/null

echo "== fuzzing (libFuzzer + ASan + UBSan, at most ${FUZZ_BUDGET:-150} s in all)"
FUZZ_BUDGET=${FUZZ_BUDGET:-150} bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"

echo "== all passes green in $(( $(date +%s) - started )) s"
