/*
 * luaopen_chatapp_core: the "chatapp.core" module, plus the JSON and
 * parameter helpers every binding uses.
 *
 * JSON (core.json_decode, core.json_encode) is lca_json.c's.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/opensslv.h>

#include "ca_crypto.h"
#include "lca.h"

#include <lualib.h>

/* ---- JSON (decoding and encoding: lca_json.c) -------------------------- */

/* A deep copy of plain tables (cycles are not expected in JSON data). */
static int l_deepcopy(lua_State *L)
{
  luaL_checkstack(L, 8, NULL);
  if (!lua_istable(L, 1)) {
    lua_settop(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, 1)) { /* 1: src, 2: dst, 3: key, 4: value */
    if (lua_istable(L, 4)) {
      lua_pushcfunction(L, l_deepcopy);
      lua_insert(L, 4);
      lua_call(L, 1, 1);
    }
    lua_pushvalue(L, 3);
    lua_insert(L, 4);
    lua_rawset(L, 2);
  }
  return 1;
}

/* ---- parameters --------------------------------------------------------- */

/* Flatten the value on top under the name prefix (at stack index pfx) into
 * the table at out; pops the value.  Rules: docs/internals/signing.md. */
static void flatten(lua_State *L, int out, int depth)
{
  int v = lua_gettop(L), pfx = v - 1;

  if (depth > 32)
    luaL_error(L, "parameter %s is nested too deep", lua_tostring(L, pfx));
  luaL_checkstack(L, 8, "flattening parameters");
  switch (lua_type(L, v)) {
  case LUA_TSTRING:
    lua_pushvalue(L, pfx);
    lua_pushvalue(L, v);
    break;
  case LUA_TNUMBER: {
    lua_Integer i;
    lua_Number x = lua_tonumber(L, v);
    lua_pushvalue(L, pfx);
    if (lua_isinteger(L, v))
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, v));
    else if (x == floor(x) && lua_numbertointeger(x, &i))
      lua_pushfstring(L, "%I", (LUAI_UACINT)i);
    else if (isfinite(x))
      lua_pushfstring(L, "%f", (LUAI_UACNUMBER)x);
    else
      luaL_error(L, "parameter %s is not a finite number",
                 lua_tostring(L, pfx));
    break;
  }
  case LUA_TBOOLEAN:
    lua_pushvalue(L, pfx);
    lua_pushstring(L, lua_toboolean(L, v) ? "true" : "false");
    break;
  case LUA_TLIGHTUSERDATA: /* json.null: skipped, like the SDK's nil */
    lua_pop(L, 1);
    return;
  case LUA_TTABLE:
    lua_pushnil(L);
    while (lua_next(L, v)) { /* v, key, value */
      int kt = lua_type(L, -2);
      if (kt != LUA_TSTRING && !lua_isinteger(L, -2))
        luaL_error(L, "parameter %s has a key of type %s", lua_tostring(L, pfx),
                   luaL_typename(L, -2));
      if (lua_rawlen(L, pfx))
        lua_pushfstring(L, "%s.%s", lua_tostring(L, pfx),
                        luaL_tolstring(L, -2, NULL));
      else
        lua_pushstring(L, luaL_tolstring(L, -2, NULL));
      lua_remove(L, -2); /* the tolstring copy */
      lua_insert(L, -2); /* v, key, name, value */
      flatten(L, out, depth + 1);
      lua_pop(L, 1); /* name */
    }
    lua_pop(L, 1);
    return;
  default:
    luaL_error(L, "parameter %s is a %s, which cannot be sent",
               lua_rawlen(L, pfx) ? lua_tostring(L, pfx) : "(top)",
               luaL_typename(L, v));
  }
  if (lua_type(L, pfx) != LUA_TSTRING || lua_rawlen(L, pfx) == 0)
    luaL_error(L, "parameters must be a table of named values");
  lua_rawset(L, out);
  lua_pop(L, 1);
}

void lca_flatten_params(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_newtable(L);
  lua_pushliteral(L, "");
  lua_pushvalue(L, idx);
  flatten(L, lua_gettop(L) - 2, 0);
  lua_pop(L, 1); /* the empty prefix */
}

static int l_flatten(lua_State *L)
{
  lca_flatten_params(L, 1);
  return 1;
}

/* ---- module ------------------------------------------------------------- */

/* core.sha256_hex(s) -> 64 lower-case hex digits */
static int l_sha256(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[65];

  if (ca_sha256_hex(s, len, hex) != CHATAPP_OK)
    return luaL_error(L, "SHA-256 failed");
  lua_pushstring(L, hex);
  return 1;
}

static int l_operations(lua_State *L)
{
  const ca_operation *op;

  lua_newtable(L);
  for (op = ca_operation_table(); op->name; op++) {
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, op->is_write);
    lua_setfield(L, -2, "write");
    lua_pushinteger(L, ca_operation_qps(op->name));
    lua_setfield(L, -2, "qps");
    lua_pushboolean(L, op->qps != 0);
    lua_setfield(L, -2, "qps_documented");
    lua_setfield(L, -2, op->name);
  }
  return 1;
}

static int l_versions(lua_State *L)
{
  curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

  lua_createtable(L, 0, 4);
  lua_pushstring(L, CHATAPP_VERSION);
  lua_setfield(L, -2, "chatapp");
  lua_pushstring(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, cv->version);
  lua_setfield(L, -2, "libcurl");
  lua_pushstring(L, OPENSSL_VERSION_TEXT);
  lua_setfield(L, -2, "openssl");
  return 1;
}

int luaopen_chatapp_core(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"deepcopy", l_deepcopy},      {"sha256_hex", l_sha256},
    {"flatten_params", l_flatten}, {"operations", l_operations},
    {"versions", l_versions},      {NULL, NULL},
  };

  luaL_checkversion(L);
  if (chatapp_global_init() != CHATAPP_OK)
    return luaL_error(L, "cannot initialise libcurl");
  lua_pushcfunction(L, l_deepcopy);
  lua_setfield(L, LUA_REGISTRYINDEX, "chatapp.deepcopy");
  luaL_newlib(L, funcs);
  lua_pushlightuserdata(L, NULL); /* json.null */
  lua_setfield(L, -2, "json_null");
  lua_pushstring(L, CHATAPP_VERSION);
  lua_setfield(L, -2, "version");
  lca_open_json(L);
  lca_open_sys(L);
  lca_open_sandbox(L);
  lca_open_error(L);
  lca_open_phone(L);
  lca_open_client(L);
  return 1;
}
