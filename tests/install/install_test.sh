#!/usr/bin/env bash
# The install tests (tests/install/CMakeLists.txt runs one step per ctest
# test):
#
#   install        cmake --install of the build tree into $PREFIX
#   symbols        only chatapp_* / luaopen_chatapp* exported; the SONAME
#   host-pkgconfig build host/host.c with pkg-config, run it offline
#   host-cmake     build host/ with find_package(chatapp), run it offline
#   host-emulator  run those hosts against the installed chatapp-emulator
#   lua-module     a stock lua5.4 requires the installed module (offline)
#   lua-emulator   lua_host.lua queries the emulator from a stock lua5.4
#   luarocks       the rockspec builds against the installed library
#
# Settings come from the environment (set by CMake): BUILD_DIR SOURCE_DIR
# PREFIX WORK CC SAN_FLAGS SAN_PRELOAD HAVE_EMULATOR VERSION CURL_MIN.
#
# Sanitizer builds (SAN_FLAGS set): the hosts are compiled and linked with
# the same flags as the library, so the sanitizer runtime is in the
# executable.  A stock lua5.4 is not instrumented: it gets the runtime by
# LD_PRELOAD (SAN_PRELOAD, found at configure time); when there is none,
# the stock-Lua steps are skipped with a message, never run half-way.
#
# Exit status: 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE).
set -euo pipefail

step=${1:?step}
SKIP=77
KEY_ID=LTAIemulatorTestKey01      # chatapp-emulator's built-in throwaway
KEY_SECRET=emulator-secret-not-real

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
skip() {
  echo "SKIPPED: $*" >&2
  exit $SKIP
}
need_install() {
  [ -f "$PREFIX/include/chatapp.h" ] || fail "nothing installed in $PREFIX (run the install/install test first)"
}
# expect FILE PATTERN: FILE has a line matching the extended regex.
expect() {
  grep -Eq -- "$2" "$1" || { cat "$1" >&2; fail "$1: no line matches /$2/"; }
}

export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LUA_PATH="$PREFIX/share/lua/5.4/?.lua;$PREFIX/share/lua/5.4/?/init.lua;;"
export LUA_CPATH="$PREFIX/lib/lua/5.4/?.so;;"
# Private limiter state and credential files for everything started here.
export XDG_RUNTIME_DIR="$WORK/xdg"
export HOME="$WORK/home"
mkdir -p "$WORK" "$XDG_RUNTIME_DIR" "$HOME"
chmod 700 "$XDG_RUNTIME_DIR"
unset ALIBABA_CLOUD_ACCESS_KEY_ID ALIBABA_CLOUD_ACCESS_KEY_SECRET \
  ALIBABA_CLOUD_SECURITY_TOKEN ALIBABA_CLOUD_PROFILE ALIBABACLOUD_PROFILE \
  ALICLOUD_PROFILE ALIBABA_CLOUD_CREDENTIALS_FILE

# Pipelines into `grep -q` can fail under pipefail (SIGPIPE once grep has
# its match), so commands are captured first and their text searched.
links_liblua() { # FILE: it has a NEEDED liblua5.x (not lua-cjson)
  [[ $(readelf -d "$1") =~ NEEDED[^[]*\[liblua-?5\.?[0-9](\.so|-c\+\+) ]]
}
# FILE: it has a NEEDED lua-cjson (liblua5.4-cjson.so.0).  Nothing links
# lua-cjson: the JSON decoder is ours (runtime/lua/lca_json.c).
links_cjson() {
  [[ $(readelf -d "$1") =~ NEEDED[^[]*\[[^]]*cjson ]]
}
# A private pkg-config folder with a libcurl.pc claiming VERSION, to be put
# first on PKG_CONFIG_PATH: a libcurl older than chatapp needs.
fake_old_curl() {
  local dir="$WORK/old-curl-pc"
  mkdir -p "$dir"
  printf '%s\n' "Name: libcurl" "Description: an old libcurl (test)" \
    "Version: $1" "Libs: -lcurl" "Cflags:" >"$dir/libcurl.pc"
  echo "$dir"
}

# A stock lua5.4, with the sanitizer runtime preloaded when needed.
stock_lua() {
  if [ -n "$SAN_FLAGS" ]; then
    [ -n "$SAN_PRELOAD" ] && [ -f "$SAN_PRELOAD" ] ||
      skip "sanitizer build and no sanitizer runtime to LD_PRELOAD into the" \
           "stock lua5.4 (looked for '$SAN_PRELOAD'); the gcc pass runs this"
    LD_PRELOAD="$SAN_PRELOAD" lua5.4 "$@"
  else
    lua5.4 "$@"
  fi
}

# ---- the emulator ----------------------------------------------------------
EMU_PID=
start_emulator() {
  local pf="$WORK/emulator-$step.port" log="$WORK/emulator-$step.log" i
  [ "$HAVE_EMULATOR" = 1 ] ||
    skip "chatapp-emulator is not part of this build yet (no such target);" \
         "this test runs once it is"
  [ -x "$PREFIX/bin/chatapp-emulator" ] ||
    fail "chatapp-emulator is built but was not installed in $PREFIX/bin"
  rm -f "$pf"
  "$PREFIX/bin/chatapp-emulator" --port 0 --port-file "$pf" -q \
    >"$log" 2>&1 &
  EMU_PID=$!
  trap stop_emulator EXIT
  for i in $(seq 1 200); do # at most 10 s
    [ -s "$pf" ] && break
    kill -0 "$EMU_PID" 2>/dev/null ||
      { cat "$log" >&2; fail "the emulator exited early"; }
    sleep 0.05
  done
  [ -s "$pf" ] || fail "the emulator did not listen within 10 s"
  ENDPOINT="http://127.0.0.1:$(cat "$pf")"
  echo "emulator at $ENDPOINT"
}
stop_emulator() {
  local i
  [ -n "$EMU_PID" ] || return 0
  kill -TERM "$EMU_PID" 2>/dev/null || true
  for i in $(seq 1 100); do # at most 5 s, then SIGKILL
    kill -0 "$EMU_PID" 2>/dev/null || break
    sleep 0.05
  done
  kill -KILL "$EMU_PID" 2>/dev/null || true
  wait "$EMU_PID" 2>/dev/null || true
  EMU_PID=
}

# run_host NAME BINARY [ENDPOINT]: run a built host, check its report.
run_host() {
  local name=$1 bin=$2 out="$WORK/$1.out"
  shift 2
  echo "== $name $*"
  local rc=0
  HOST_ACCESS_KEY_ID=$KEY_ID HOST_ACCESS_KEY_SECRET=$KEY_SECRET \
    "$bin" "$@" >"$out" 2>"$WORK/$name.err" || rc=$?
  [ $rc = 0 ] || { cat "$out" "$WORK/$name.err" >&2; fail "$name exited with $rc"; }
  cat "$out"
  expect "$out" "^chatapp $VERSION "
  expect "$out" "^broken.lua: EPOLICY: .*qualty_rating"
  if [ $# -gt 0 ]; then # a dry run: numbers were fetched and matched
    expect "$out" "^A: policy quality-watch: [1-9][0-9]* seen, [1-9][0-9]* matched"
    expect "$out" "^B: policy quality-watch: [1-9][0-9]* seen, [1-9][0-9]* matched"
  else # a check: no API call; the policies run on the built-in sample
    expect "$out" "^A: policy quality-watch: [1-9][0-9]* seen"
    expect "$out" "^B: policy quality-watch: [1-9][0-9]* seen"
  fi
  ! grep -q "$KEY_SECRET" "$out" "$WORK/$name.err" || fail "$name printed the secret"
}

case $step in
install)
  rm -rf "$PREFIX" "$WORK"/host-*
  cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" ||
    { cat "$WORK/install.log" >&2; fail "cmake --install"; }
  for f in bin/chatapp-run include/chatapp.h lib/libchatapp.a \
    lib/libchatapp.so "lib/libchatapp.so.$VERSION" \
    lib/pkgconfig/chatapp.pc lib/cmake/chatapp/chatappConfig.cmake \
    lib/cmake/chatapp/chatappConfigVersion.cmake \
    lib/cmake/chatapp/chatappTargets.cmake lib/lua/5.4/chatapp/core.so \
    share/lua/5.4/chatapp/init.lua share/chatapp/types/chatapp.lua \
    share/man/man1/chatapp-run.1 share/doc/chatapp-run/embedding.md \
    share/chatapp/policies/quality-alert.lua; do
    [ -e "$PREFIX/$f" ] || fail "not installed: $f"
  done
  for f in chatapp.lua chatapp-core.lua; do
    cmp -s "$SOURCE_DIR/lua/types/$f" "$PREFIX/share/chatapp/types/$f" ||
      fail "share/chatapp/types/$f is not lua/types/$f"
  done
  while IFS= read -r f; do # every module, lua/chatapp/actions/ included
    f=${f#"$SOURCE_DIR"/lua/chatapp/}
    [ -f "$PREFIX/share/lua/5.4/chatapp/$f" ] || fail "not installed: chatapp/$f"
  done < <(find "$SOURCE_DIR/lua/chatapp" -name '*.lua')
  if [ "$HAVE_EMULATOR" = 1 ]; then
    [ -x "$PREFIX/bin/chatapp-emulator" ] || fail "not installed: bin/chatapp-emulator"
  fi
  grep -q "^prefix=$PREFIX\$" "$PREFIX/lib/pkgconfig/chatapp.pc" ||
    fail "chatapp.pc does not name the prefix $PREFIX"
  [[ $("$PREFIX/bin/chatapp-run" --version) == *"chatapp-run $VERSION"* ]] ||
    fail "the installed chatapp-run does not run"
  echo "installed into $PREFIX"
  ;;

symbols)
  need_install
  soname=$(readelf -d "$PREFIX/lib/libchatapp.so.$VERSION" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
  [ "$soname" = "libchatapp.so.${VERSION%%.*}" ] || fail "SONAME is '$soname'"
  for lib in "$PREFIX/lib/libchatapp.so.$VERSION" "$PREFIX/lib/lua/5.4/chatapp/core.so"; do
    nm -D --defined-only "$lib" | awk '{print $NF}' | sort >"$WORK/exports"
    echo "== ${lib#"$PREFIX"/}: $(wc -l <"$WORK/exports") symbols"
    cat "$WORK/exports"
    grep -q '^chatapp_runtime_new$' "$WORK/exports" || fail "chatapp_runtime_new is not exported"
    grep -q '^luaopen_chatapp_core$' "$WORK/exports" || fail "luaopen_chatapp_core is not exported"
    if grep -Ev '^(chatapp_|luaopen_chatapp)' "$WORK/exports"; then
      fail "${lib##*/} exports symbols outside chatapp_* / luaopen_chatapp* (above)"
    fi
  done
  # The Lua module must not bring a second Lua into the interpreter.
  ! links_liblua "$PREFIX/lib/lua/5.4/chatapp/core.so" || fail "core.so links liblua"
  for f in lib/libchatapp.so.$VERSION lib/lua/5.4/chatapp/core.so bin/chatapp-run; do
    ! links_cjson "$PREFIX/$f" || fail "$f links lua-cjson (nothing needs it)"
  done
  ;;

host-pkgconfig)
  need_install
  [ "$(pkg-config --modversion chatapp)" = "$VERSION" ] || fail "pkg-config --modversion"
  static=$(pkg-config --static --libs chatapp)
  echo "pkg-config --static --libs chatapp: $static"
  for l in -lchatapp -llua5.4 -lcurl -lcrypto -lsqlite3 -lhiredis -lm -lpthread; do
    [[ " $static " == *" $l "* ]] || fail "static link flags lack $l"
  done
  ! [[ $static =~ -l[^\ ]*cjson ]] || fail "static link flags name lua-cjson: $static"
  requires=$(pkg-config --print-requires-private chatapp)
  [[ $requires == *"libcurl >= $CURL_MIN"* ]] ||
    fail "chatapp.pc does not require libcurl >= $CURL_MIN: $requires"
  # An older libcurl is refused, with pkg-config's message.
  old=$(fake_old_curl 7.80.0)
  rc=0
  PKG_CONFIG_PATH="$old:$PKG_CONFIG_PATH" pkg-config --static --libs chatapp \
    >"$WORK/old-curl-pc.out" 2>&1 || rc=$?
  cat "$WORK/old-curl-pc.out"
  [ $rc != 0 ] || fail "pkg-config accepted chatapp with libcurl 7.80.0"
  expect "$WORK/old-curl-pc.out" "libcurl"
  # The public header alone, under strict warnings.
  # shellcheck disable=SC2086,SC2046
  $CC -std=c11 -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Wcast-qual \
    -Wstrict-prototypes -Werror $SAN_FLAGS "$SOURCE_DIR/tests/install/host/host.c" \
    -o "$WORK/host-pc" $(pkg-config --cflags --libs chatapp) -pthread \
    -Wl,-rpath,"$PREFIX/lib" || fail "building host.c with pkg-config"
  run_host host-pc "$WORK/host-pc"
  ;;

host-cmake)
  need_install
  rm -rf "$WORK/host-cmake"
  cmake -S "$SOURCE_DIR/tests/install/host" -B "$WORK/host-cmake" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" \
    -DCMAKE_C_FLAGS="$SAN_FLAGS" -DCMAKE_EXE_LINKER_FLAGS="$SAN_FLAGS" \
    >"$WORK/host-cmake.log" 2>&1 || { cat "$WORK/host-cmake.log" >&2; fail "configuring host/"; }
  cmake --build "$WORK/host-cmake" >>"$WORK/host-cmake.log" 2>&1 ||
    { cat "$WORK/host-cmake.log" >&2; fail "building host/"; }
  run_host host-cmake "$WORK/host-cmake/host"
  run_host host-cmake-static "$WORK/host-cmake/host_static"
  ! links_cjson "$WORK/host-cmake/host_static" || fail "host_static links lua-cjson"
  ! grep -qiE 'lua5\.4-cjson|LUA_CJSON' "$PREFIX/lib/cmake/chatapp/chatappConfig.cmake" ||
    fail "chatappConfig.cmake still names lua-cjson"
  # With pkg-config reporting a libcurl older than CURL_MIN,
  # find_package(chatapp) fails and says why.
  old=$(fake_old_curl 7.80.0)
  rm -rf "$WORK/host-cmake-old"
  rc=0
  PKG_CONFIG_PATH="$old:$PKG_CONFIG_PATH" \
    cmake -S "$SOURCE_DIR/tests/install/host" -B "$WORK/host-cmake-old" \
    -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" \
    >"$WORK/host-cmake-old.log" 2>&1 || rc=$?
  [ $rc != 0 ] || { cat "$WORK/host-cmake-old.log" >&2; fail "find_package(chatapp) accepted libcurl 7.80.0"; }
  expect "$WORK/host-cmake-old.log" "libcurl 7\.80\.0 is too old"
  expect "$WORK/host-cmake-old.log" "needs libcurl $CURL_MIN or newer"
  [[ $(ldd "$WORK/host-cmake/host") == *"$PREFIX/lib/libchatapp.so"* ]] ||
    fail "host does not use the installed libchatapp.so"
  [[ $(ldd "$WORK/host-cmake/host_static") != *libchatapp* ]] ||
    fail "host_static uses libchatapp.so"
  ;;

host-emulator)
  need_install
  for h in host-pc host-cmake/host host-cmake/host_static; do
    [ -x "$WORK/$h" ] || fail "$h was not built (install/host_pkgconfig, install/host_cmake)"
  done
  start_emulator
  run_host emu-host-pc "$WORK/host-pc" "$ENDPOINT"
  run_host emu-host-cmake "$WORK/host-cmake/host" "$ENDPOINT"
  run_host emu-host-static "$WORK/host-cmake/host_static" "$ENDPOINT"
  ;;

lua-module)
  need_install
  stock_lua "$SOURCE_DIR/tests/install/lua_module.lua" "$PREFIX" "$VERSION" \
    "$PREFIX/share/chatapp/types/chatapp.lua"
  ;;

lua-emulator)
  need_install
  start_emulator
  HOST_ACCESS_KEY_ID=$KEY_ID HOST_ACCESS_KEY_SECRET=$KEY_SECRET \
    stock_lua "$SOURCE_DIR/tests/install/lua_host.lua" "$ENDPOINT" \
    >"$WORK/lua-host.out" || { cat "$WORK/lua-host.out"; fail "lua_host.lua"; }
  cat "$WORK/lua-host.out"
  expect "$WORK/lua-host.out" "^[1-9][0-9]* numbers"
  expect "$WORK/lua-host.out" "^to watch: "
  expect "$WORK/lua-host.out" "InvalidAction.NotFound"
  ;;

luarocks)
  need_install
  command -v luarocks >/dev/null ||
    skip "luarocks is not installed (scripts/setup.sh installs it)"
  tree="$WORK/rocks"
  rm -rf "$tree" "$WORK/rock-src"
  # luarocks make builds in the current folder: use a copy of the sources.
  mkdir -p "$WORK/rock-src"
  mkdir -p "$WORK/rock-src/lua"
  cp -r "$SOURCE_DIR/lua/rock" "$WORK/rock-src/lua/"
  cp "$SOURCE_DIR/chatapp-dev-1.rockspec" "$WORK/rock-src/"
  (cd "$WORK/rock-src" &&
    luarocks --lua-version=5.4 --tree="$tree" make chatapp-dev-1.rockspec \
      CHATAPP_DIR="$PREFIX" CC="$CC" LD="$CC" \
      CFLAGS="-O2 -fPIC $SAN_FLAGS" LIBFLAG="-shared $SAN_FLAGS") \
    >"$WORK/luarocks.log" 2>&1 || { cat "$WORK/luarocks.log" >&2; fail "luarocks make"; }
  so="$tree/lib/lua/5.4/chatapp.so"
  [ -f "$so" ] || fail "the rock installed no $so"
  # Only the rock on the paths: no Lua files, no system folders.
  LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua" \
  LUA_CPATH="$tree/lib/lua/5.4/?.so" \
    stock_lua -e '
      local chatapp = require "chatapp"
      assert(chatapp.version == os.getenv("VERSION"), chatapp.version)
      assert(require "chatapp.core" == chatapp.core)
      assert(chatapp.json.encode({ 1, 2 }) == "[1,2]")
      local p = chatapp.policy { name = "rock", where = { status = "FLAGGED" } }
      local c, err = chatapp.client { endpoint = "http://127.0.0.1:9" }
      assert(c == nil and getmetatable(err) == chatapp.ApiError, tostring(err))
      print("rock loaded: chatapp " .. chatapp.version .. ", policy " .. p.name)
    ' || fail "the rock does not load"
  ! links_liblua "$so" || fail "the rock's chatapp.so links liblua"
  ! links_cjson "$so" || fail "the rock's chatapp.so links lua-cjson"
  if nm -D --defined-only "$so" | awk '{print $NF}' | grep -Ev '^(chatapp_|luaopen_chatapp)'; then
    fail "the rock's chatapp.so exports more than chatapp_* / luaopen_chatapp*"
  fi
  ;;

*)
  fail "unknown step $step"
  ;;
esac
echo "PASS: $step"
