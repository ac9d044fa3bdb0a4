#!/usr/bin/env bash
# Installs what chatapp-run needs to build and test, from Debian's packages.
# Idempotent; prints nothing when everything is already present.
set -euo pipefail

# lua-cjson is not linked (chatapp has its own JSON decoder, runtime/lua/
# lca_json.c): only the benchmark needs it, for `require "cjson"` as the
# side-by-side baseline of tests/bench/bench_decode.lua (make bench).  The
# module is in lua-cjson; lua-cjson-dev (headers, -llua5.4-cjson) is not
# needed.  sqlite3 (the shell) is for the tests and for users who look
# inside a state file; the library is libsqlite3-dev's.
packages=(
  build-essential cmake pkg-config
  liblua5.4-dev lua5.4 lua-cjson luarocks
  libcurl4-openssl-dev libssl-dev libmicrohttpd-dev
  libsqlite3-dev sqlite3
  libhiredis-dev redis-server  # Redis: the shared limiter and state; tests start their own server
  clang clang-format libclang-rt-14-dev llvm valgrind openssl
  curl  # the curl command: tests ask the HTTPS emulator and proxies directly
  time  # /usr/bin/time: the memory benchmark's peak RSS (make bench)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
