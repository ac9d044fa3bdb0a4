# chatapp-run: the two commands a fresh machine needs.
#
#   make demo   build, then run an example policy against the built-in
#               emulator and its sample data (no account needed)
#   make test   the whole test suite, as CI runs it: the clang-format
#               check, gcc -Werror, then clang with AddressSanitizer +
#               UBSan, then valgrind
#   make format the C sources formatted in place (.clang-format)
#   make soak   a watcher for 10 minutes (SOAK_SECONDS) against the
#               emulator with random faults, reloads and changing numbers;
#               fails unless memory, descriptors and the state file stay
#               flat and every action is accounted for (docs/benchmarks.md)
#
# Both install missing Debian packages first (scripts/setup.sh).

BUILD ?= build
JOBS ?= 2
POLICY ?= scripts/policies/quality-alert.lua

.PHONY: all setup build demo test test-fast format format-check bench soak fuzz clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) >/dev/null

demo: build
	./$(BUILD)/chatapp-run --emulator $(POLICY)

test: setup
	@bash scripts/test-all.sh

# One gcc pass only, for quick local runs.
test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

# The C sources in place in the style of .clang-format (clang-format 14);
# format-check changes nothing and fails on drift, as CI does.
format: setup
	@bash scripts/format.sh

format-check: setup
	@bash scripts/format.sh --check

bench: build
	@bash scripts/bench.sh $(BUILD)

# The soak (issue 19, B13): SOAK_SECONDS (default 600) of a faulted watcher;
# figures on stdout, for docs/benchmarks.md.  CI runs 60 s (reliability/B13).
soak: build
	SOAK_SECONDS=$(or $(SOAK_SECONDS),600) ./$(BUILD)/chatapp-run --lua tests/bench/soak.lua \
	  ./$(BUILD)/chatapp-run ./$(BUILD)/chatapp-emulator

# Every fuzz target for FUZZ_SECONDS (default 60) each.
fuzz: setup
	@bash scripts/fuzz.sh $(or $(FUZZ_SECONDS),60)

clean:
	rm -rf $(BUILD) build-ci-* build-fuzz
