/*
 * What chatapp-run runs in a runtime's state besides policies: plain Lua
 * scripts (--lua), the embedded tools (require(module).main, such as
 * "chatapp-run state"), and a policy file read as loading reads it, for a
 * watcher (ca_runtime_read_file).  Each runs protected, as the embedding
 * API's work does (lca_runtime.c).
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lca.h"
#include "lca_runtime.h"
#include "lca_runtime_int.h"

/* ---- plain scripts (chatapp-run --lua) ---------------------------------- */

/* A script's or tool's exit status from how it ended (st) and what it
 * returned (on top): an error is printed (redacted) and is 1; an integer
 * is itself; nil or true 0, anything else 1. */
static void exit_status(lua_State *L, job *j, int st)
{
  if (st != LUA_OK) {
    const char *msg = lca_rt_errstr(L, -1);
    lca_push_redacted(L, msg, strlen(msg)); /* stderr is a sink too */
    fprintf(stderr, "chatapp-run: %s\n", lua_tostring(L, -1));
    j->rc = 1;
  } else if (lua_isinteger(L, -1)) {
    j->rc = (int)lua_tointeger(L, -1);
  } else {
    j->rc = lua_isnil(L, -1) || lua_toboolean(L, -1) ? 0 : 1;
  }
}

/* Run a script or a tool's main: fn does it under lca_rt_protect. */
static int run_tool(chatapp_runtime *rt, lua_CFunction fn, job *j,
                    const char *what)
{
  if (!rt->L) {
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    return 1;
  }
  j->rc = 1;
  if (lca_rt_protect(rt, fn, j, what) != CHATAPP_OK) {
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    return 1;
  }
  return j->rc;
}

/* Protected: the arg table, then the script under the traceback handler. */
static int do_script(lua_State *L)
{
  job *j = job_of(L);
  int i, h, st;

  lua_settop(L, 0);
  lua_createtable(L, j->argc, 1);
  lua_pushstring(L, j->path);
  lua_rawseti(L, -2, 0);
  for (i = 0; i < j->argc; i++) {
    lua_pushstring(L, j->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, lca_traceback);
  h = lua_gettop(L);
  st = luaL_loadfilex(L, j->path, "t");
  if (st == LUA_OK)
    st = lua_pcall(L, 0, 1, h);
  exit_status(L, j, st);
  return 0;
}

int ca_runtime_run_script(chatapp_runtime *rt, const char *path, int argc,
                          char **argv)
{
  job j;

  memset(&j, 0, sizeof j);
  j.path = path;
  j.argc = argc;
  j.argv = argv;
  return run_tool(rt, do_script, &j, path);
}

/* ---- embedded tools (chatapp-run state ...) ----------------------------- */

/* Protected: require(module).main(args) under the traceback handler. */
static int do_module(lua_State *L)
{
  job *j = job_of(L);
  int i, h, st;

  lua_settop(L, 0);
  lua_pushcfunction(L, lca_traceback);
  h = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushstring(L, j->name);
  st = lua_pcall(L, 1, 1, h);
  if (st == LUA_OK) {
    if (lua_type(L, -1) != LUA_TTABLE ||
        lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
      lua_pushfstring(L, "module %s has no main function", j->name);
      st = LUA_ERRRUN;
    } else {
      lua_createtable(L, j->argc, 0);
      for (i = 0; i < j->argc; i++) {
        lua_pushstring(L, j->argv[i]);
        lua_rawseti(L, -2, i + 1);
      }
      st = lua_pcall(L, 1, 1, h);
    }
  }
  exit_status(L, j, st);
  return 0;
}

int ca_runtime_run_module(chatapp_runtime *rt, const char *module, int argc,
                          char **argv)
{
  job j;

  memset(&j, 0, sizeof j);
  j.name = module;
  j.argc = argc;
  j.argv = argv;
  return run_tool(rt, do_module, &j, module);
}

/* ---- a policy file, for a watcher (runtime/cli/ca_watch.c) -------------- */

/* Protected: core.read_file(path, max, "the policy file") into j->out. */
static int do_read_file(lua_State *L)
{
  job *j = job_of(L);
  size_t len;
  const char *text;

  lua_settop(L, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "chatapp.core");
  lua_getfield(L, -1, "read_file");
  lua_pushstring(L, j->path);
  lua_pushinteger(L, (lua_Integer)j->max);
  lua_pushliteral(L, "the policy file");
  lua_call(L, 3, 2);
  text = lua_tolstring(L, -2, &len);
  if (!text) {
    j->st = lca_rt_fail(j->rt, CHATAPP_EPOLICY, "%s", lca_rt_errstr(L, -1));
    return 0;
  }
  ca_buf_reset(j->out);
  j->st = ca_buf_add(j->out, text, len);
  return 0;
}

chatapp_status ca_runtime_read_file(chatapp_runtime *rt, const char *path,
                                    size_t max, ca_buf *out)
{
  job j;

  if (!rt || !path || !out)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return lca_rt_unusable(rt);
  lca_rt_clear_error(rt);
  memset(&j, 0, sizeof j);
  j.path = path;
  j.out = out;
  j.max = max;
  return lca_rt_protect(rt, do_read_file, &j, path);
}
