#!/usr/bin/env bash
# The C sources in the repository's style (.clang-format), one list for
# both uses:
#
#   scripts/format.sh           format every C file in place (make format)
#   scripts/format.sh --check   change nothing; fail, naming each file and
#                               line, when a file has drifted (CI, first
#                               step of scripts/test-all.sh)
#
# The files: every .c and .h under runtime/, tests/ and lua/.  The style is
# checked with clang-format 14 (Debian 12's, scripts/setup.sh installs it);
# another major version may format some constructs differently.
set -euo pipefail
cd "$(dirname "$0")/.."

check=0
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac

if ! command -v clang-format >/dev/null; then
  echo "format: clang-format is not installed (Debian package clang-format; scripts/setup.sh installs it)" >&2
  exit 1
fi
version=$(clang-format --version)
[[ $version == *"version 14."* ]] ||
  echo "format: warning: $version; the style is checked with clang-format 14" >&2

mapfile -t files < <(find runtime tests lua -name '*.[ch]' -type f \
  -not -path 'tests/fuzz/corpus/*' | LC_ALL=C sort)
[ ${#files[@]} -gt 0 ] || { echo "format: no C files found" >&2; exit 1; }

if [ $check -eq 1 ]; then
  if ! clang-format --style=file --dry-run --Werror "${files[@]}"; then
    echo "format: the files above have drifted from .clang-format: run 'make format' and commit the result" >&2
    exit 1
  fi
  echo "format: ${#files[@]} C files in style"
else
  clang-format --style=file -i "${files[@]}"
fi
