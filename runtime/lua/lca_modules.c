/*
 * The chatapp modules inside the binary: "chatapp.core" (C) and the Lua
 * sources of lua/chatapp/ (embedded at build time, ca_embed.h), found by a
 * package searcher, so chatapp-run and libchatapp need no installed files.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ca_embed.h"
#include "lca.h"

/* package.searchers entry: "chatapp.x" -> lua/chatapp/x.lua or
 * lua/chatapp/x/init.lua, from inside the binary. */
static int embedded_searcher(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  const ca_embedded *f;
  char path[256], chunk[280];
  size_t i, n = strlen(name);

  if (n + 16 > sizeof path)
    return 0;
  for (i = 0; i <= n; i++)
    path[i] = name[i] == '.' ? '/' : name[i];
  strcat(path, ".lua");
  f = ca_embedded_find(ca_lua_sources, path);
  if (!f) {
    path[n] = '\0';
    strcat(path, "/init.lua");
    f = ca_embedded_find(ca_lua_sources, path);
  }
  if (!f) {
    lua_pushfstring(L, "no embedded module '%s'", path);
    return 1;
  }
  snprintf(chunk, sizeof chunk, "@lua/%s", f->name);
  if (luaL_loadbufferx(L, f->data, f->len, chunk, "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, chunk + 1);
  return 2;
}

/* require "chatapp.sample_data": the text of the built-in sample fixture
 * (runtime/emulator/data/sample.json), the numbers --check runs on. */
static int open_sample_data(lua_State *L)
{
  const ca_embedded *f = ca_embedded_find(ca_sample_data, "sample.json");

  if (!f)
    return luaL_error(L, "the built-in sample data is missing");
  lua_pushlstring(L, f->data, f->len);
  return 1;
}

/* Make require find chatapp.core and the embedded modules first.  Once
 * per state: a second luaopen_chatapp does not add a second searcher. */
void lca_install_modules(lua_State *L)
{
  if (lua_getfield(L, LUA_REGISTRYINDEX, "chatapp.searcher") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "chatapp.searcher");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_chatapp_core);
  lua_setfield(L, -2, "chatapp.core");
  lua_pushcfunction(L, open_sample_data);
  lua_setfield(L, -2, "chatapp.sample_data");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  /* insert at position 2, after the preload searcher */
  {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1), i;
    for (i = n; i >= 2; i--) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, 2);
  }
  lua_pop(L, 2);
}

int luaopen_chatapp(lua_State *L)
{
  lca_install_modules(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "chatapp");
  lua_call(L, 1, 1);
  return 1;
}
