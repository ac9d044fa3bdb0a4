/*
 * The Lua state of the fuzz targets over lua/chatapp/ modules
 * (fuzz_recording.c, fuzz_spaces.c): made as lca_runtime.c makes it, with
 * the runtime's counting allocator capped at FUZZ_LUA_CAP bytes, the
 * standard libraries and the embedded chatapp modules, opened in
 * protected mode.  One state serves the whole run, like a long-lived host;
 * each input runs the target's script (a chunk taking the input) in
 * protected mode, and a script that raises is a finding: the parsers
 * return nil, message on bad data, they never raise.
 */
#ifndef FUZZ_LUA_H
#define FUZZ_LUA_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "chatapp.h"
#include "lca.h"

#define FUZZ_LUA_CAP (256u * 1024 * 1024)

static lua_State *fuzz_L;
static lca_alloc_state fuzz_alloc;

#ifdef FUZZ_LIBFUZZER
/*
 * Coverage of the Lua code for libFuzzer.  The interpreter is the system's
 * library, not instrumented, so libFuzzer would see none of the branches
 * of recording.lua or spaces.lua.  A line hook counts each pair (previous
 * line, line) executed in lua/chatapp/ modules into libFuzzer's extra
 * counters, as AFL counts edges.
 */
#include <stdint.h>

#define FUZZ_LUA_COUNTERS 8192
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t
  fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static uintptr_t fuzz_lua_prev;

static void fuzz_lua_line(lua_State *L, lua_Debug *ar)
{
  uintptr_t h;

  if (!lua_getinfo(L, "S", ar) || strncmp(ar->source, "@lua/chatapp/", 13))
    return;
  h = ((uintptr_t)ar->source * 31u + (uintptr_t)ar->currentline) *
      (uintptr_t)2654435761u;
  fuzz_lua_counters[(h ^ fuzz_lua_prev) % FUZZ_LUA_COUNTERS]++;
  fuzz_lua_prev = h >> 1;
}
#define FUZZ_LUA_HOOK(L) lua_sethook(L, fuzz_lua_line, LUA_MASKLINE, 0)
#else
#define FUZZ_LUA_HOOK(L) ((void)0)
#endif

static void fuzz_lua_close(void)
{
  if (fuzz_L)
    lua_close(fuzz_L);
  fuzz_L = NULL;
}

static int fuzz_lua_open(lua_State *L)
{
  luaL_openlibs(L);
  luaL_requiref(L, "chatapp", luaopen_chatapp, 1);
  return 0;
}

/* The state, with the target's script compiled once into the registry. */
static lua_State *fuzz_lua_state(const char *script)
{
  lua_State *L;

  if (fuzz_L)
    return fuzz_L;
  fuzz_alloc.limit = FUZZ_LUA_CAP;
  L = fuzz_L = lua_newstate(lca_alloc, &fuzz_alloc);
  if (!L)
    abort();
  atexit(fuzz_lua_close);
  lua_pushcfunction(L, fuzz_lua_open);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK ||
      luaL_loadbufferx(L, script, strlen(script), "=fuzz", "t") != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.script");
  FUZZ_LUA_HOOK(L);
  return L;
}

/* Run the script with the input (and extra, a string or NULL); abort with
 * the message when it raises. */
static void fuzz_lua_run(const char *script, const char *data, size_t size,
                         const char *extra)
{
  lua_State *L = fuzz_lua_state(script);
  int st;

  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.script");
  lua_pushlstring(L, data, size);
  if (extra)
    lua_pushstring(L, extra);
  else
    lua_pushnil(L);
  st = lua_pcall(L, 2, 0, 0);
  if (st == LUA_ERRMEM) {
    /* Running into the cap is an answer, not a defect. */
    lua_pop(L, 1);
  } else if (st != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "fuzz: raised: %s\n", msg ? msg : "(not a string)");
    abort();
  }
  lua_gc(L, LUA_GCCOLLECT);
}

#endif
