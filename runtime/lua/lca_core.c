/*
 * luaopen_chatapp_core: the "chatapp.core" module, plus the JSON and
 * parameter helpers every binding uses.
 *
 * JSON (core.json_decode, core.json_encode) is lca_json.c's.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_config.h"
#include "ca_cred.h"
#include "ca_crypto.h"
#include "ca_secrets.h"
#include "ca_suggest.h"
#include "lca.h"

#include <lualib.h>

/* ---- JSON (decoding and encoding: lca_json.c) -------------------------- */

/* A deep copy of plain tables (cycles are not expected in JSON data); an
 * empty array the decoder marked (json.array) stays marked, so [] stays
 * [] when encoded. */
static int l_deepcopy(lua_State *L)
{
  luaL_checkstack(L, 8, NULL);
  if (!lua_istable(L, 1)) {
    lua_settop(L, 1);
    return 1;
  }
  lua_settop(L, 1);
  lua_newtable(L);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, "chatapp.json.array");
    if (lua_rawequal(L, -1, -2)) {
      lua_pop(L, 1);
      lua_setmetatable(L, 2);
    } else {
      lua_pop(L, 2);
    }
  }
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

/* ---- helpers every binding uses ---------------------------------------- */

int lca_push_number_text(lua_State *L, int idx)
{
  lua_Number x = lua_tonumber(L, idx);
  lua_Integer i;

  if (lua_isinteger(L, idx))
    lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
  else if (x == floor(x) && lua_numbertointeger(x, &i))
    lua_pushfstring(L, "%I", (LUAI_UACINT)i);
  else if (isfinite(x))
    lua_pushfstring(L, "%f", (LUAI_UACNUMBER)x);
  else
    return 0;
  return 1;
}

int lca_traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);

  if (msg)
    luaL_traceback(L, L, msg, 1);
  else if (!luaL_callmeta(L, 1, "__tostring"))
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
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
  case LUA_TNUMBER:
    lua_pushvalue(L, pfx);
    if (!lca_push_number_text(L, v))
      luaL_error(L, "parameter %s is not a finite number",
                 lua_tostring(L, pfx));
    break;
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

/* ---- known secrets and redaction --------------------------------------- */

/*
 * One ca_secrets per state, in a registry userdata (wiped by __gc), keyed
 * by address so finding it never allocates (lca_redact runs after errors).
 * Every sink goes through it: the report writer (core.redacting), files
 * (core.write_file_atomic), exec output, log lines and messages returned
 * to embedders (lca_runtime.c).
 */
static const char secrets_key = 0;
#define SECRETS_MT "chatapp.Secrets"

static int secrets_gc(lua_State *L)
{
  ca_secrets_free(luaL_checkudata(L, 1, SECRETS_MT));
  return 0;
}

static ca_secrets *secrets_get(lua_State *L)
{
  ca_secrets *s;

  lua_rawgetp(L, LUA_REGISTRYINDEX, &secrets_key);
  s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

/* Create the state's set once, seeded from the environment. */
static void secrets_open(lua_State *L)
{
  ca_secrets *s;

  if (secrets_get(L))
    return;
  s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  if (luaL_newmetatable(L, SECRETS_MT)) {
    lua_pushcfunction(L, secrets_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "private");
    lua_setfield(L, -2, "__metatable");
  }
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &secrets_key);
  if (ca_secrets_add_env(s, NULL, NULL) != CHATAPP_OK)
    luaL_error(L, "out of memory while noting the secrets to redact");
}

void lca_secrets_add_client(lua_State *L, const ca_client *c)
{
  ca_secrets *s = secrets_get(L);

  if (c && s && ca_secrets_merge(s, ca_client_secrets(c)) != CHATAPP_OK)
    luaL_error(L, "out of memory while noting the secrets to redact");
}

void lca_redact(lua_State *L, ca_buf *b)
{
  ca_secrets_redact_buf(L ? secrets_get(L) : NULL, b);
}

char *lca_redacted_dup(lua_State *L, int idx)
{
  ca_secrets *s = secrets_get(L);
  size_t len, n;
  const char *text;
  char *p;

  if (lua_type(L, idx) != LUA_TSTRING)
    return NULL;
  text = lua_tolstring(L, idx, &len);
  n = ca_secrets_redact_into(s, text, len, NULL);
  p = malloc(n + 1);
  if (p) {
    ca_secrets_redact_into(s, text, len, p);
    p[n] = '\0';
  }
  return p;
}

/* Push text with the known secrets replaced (Lua memory only: a raise
 * leaves nothing behind). */
void lca_push_redacted(lua_State *L, const char *text, size_t len)
{
  ca_secrets *s = secrets_get(L);
  luaL_Buffer b;
  size_t n;

  if (!ca_secrets_found(s, text, len)) {
    lua_pushlstring(L, text, len);
    return;
  }
  n = ca_secrets_redact_into(s, text, len, NULL);
  ca_secrets_redact_into(s, text, len, luaL_buffinitsize(L, &b, n));
  luaL_pushresultsize(&b, n);
}

int lca_secret_found(lua_State *L, const char *text, size_t len)
{
  return ca_secrets_found(secrets_get(L), text, len);
}

/* core.redact(s) -> s with every known secret replaced by <redacted> */
static int l_redact(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  lca_push_redacted(L, s, len);
  return 1;
}

/* core.secret_env_names() -> {"ALIBABA_CLOUD_ACCESS_KEY_SECRET", ...}: the
 * variables that hold a secret (ca_cred_secret_env_name). */
static int l_secret_env_names(lua_State *L)
{
  const char *name;
  size_t i;

  lua_newtable(L);
  for (i = 0; (name = ca_cred_secret_env_name(i)); i++) {
    lua_pushstring(L, name);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* writer:write(...): the arguments concatenated, redacted, then written
 * with file:write (upvalue 1 is the file); returns what file:write does. */
static int writer_write(lua_State *L)
{
  int n = lua_gettop(L), i, base;
  size_t len;
  const char *s;

  for (i = 2; i <= n; i++)
    luaL_checklstring(L, i, NULL);
  lua_concat(L, n > 1 ? n - 1 : 0); /* "" when there is nothing to write */
  s = lua_tolstring(L, -1, &len);
  base = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_getfield(L, -1, "write");
  lua_insert(L, -2); /* write, file */
  lca_push_redacted(L, s, len);
  lua_call(L, 2, LUA_MULTRET);
  if (lua_gettop(L) > base && lua_rawequal(L, base + 1, lua_upvalueindex(1))) {
    lua_pushvalue(L, 1); /* file:write returned the file: return the writer */
    lua_replace(L, base + 1);
  }
  return lua_gettop(L) - base;
}

/* writer:flush() -> what file:flush returns */
static int writer_flush(lua_State *L)
{
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_getfield(L, -1, "flush");
  lua_insert(L, -2);
  lua_call(L, 1, LUA_MULTRET);
  return lua_gettop(L);
}

/* core.redacting(file) -> writer with write and flush: what the report
 * prints goes through it, so no sink shows a known secret. */
static int l_redacting(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, writer_write, 1);
  lua_setfield(L, -2, "write");
  lua_pushvalue(L, 1);
  lua_pushcclosure(L, writer_flush, 1);
  lua_setfield(L, -2, "flush");
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "file");
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
  lua_createtable(L, 0, 4);
  lua_pushstring(L, CHATAPP_VERSION);
  lua_setfield(L, -2, "chatapp");
  lua_pushstring(L, LUA_RELEASE);
  lua_setfield(L, -2, "lua");
  lua_pushstring(L, ca_curl_version());
  lua_setfield(L, -2, "libcurl");
  lua_pushstring(L, ca_crypto_version());
  lua_setfield(L, -2, "openssl");
  return 1;
}

/* core.loopback_host(host): the transport's rule (ca_loopback_host). */
/* core.parse_duration(s) -> seconds | nil: "90", "90s", "15m", "24h", "7d"
 * (ca_parse_duration: the one parser, also of the duration options). */
static int l_parse_duration(lua_State *L)
{
  long secs = ca_parse_duration(luaL_checkstring(L, 1));
  if (secs <= 0)
    return 0;
  lua_pushinteger(L, secs);
  return 1;
}

/* core.edit_distance(a, b) -> n (ca_edit_distance: one implementation) */
static int l_edit_distance(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)ca_edit_distance(luaL_checkstring(L, 1),
                                                   luaL_checkstring(L, 2)));
  return 1;
}

/* core.default_state_path() -> path | nil, message (ca_default_state_path) */
static int l_default_state_path(lua_State *L)
{
  char path[4096];
  if (ca_default_state_path(path, sizeof path)) {
    lua_pushnil(L);
    lua_pushstring(L, path);
    return 2;
  }
  lua_pushstring(L, path);
  return 1;
}

static int l_loopback_host(lua_State *L)
{
  size_t len;
  const char *host = luaL_checklstring(L, 1, &len);

  lua_pushboolean(L, ca_loopback_host(host, len));
  return 1;
}

int luaopen_chatapp_core(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"deepcopy", l_deepcopy},
    {"sha256_hex", l_sha256},
    {"flatten_params", l_flatten},
    {"operations", l_operations},
    {"versions", l_versions},
    {"loopback_host", l_loopback_host},
    {"redact", l_redact},
    {"secret_env_names", l_secret_env_names},
    {"redacting", l_redacting},
    {"parse_duration", l_parse_duration},
    {"default_state_path", l_default_state_path},
    {"edit_distance", l_edit_distance},
    {NULL, NULL},
  };

  luaL_checkversion(L);
  if (chatapp_global_init() != CHATAPP_OK)
    return luaL_error(L, "cannot initialise libcurl");
  secrets_open(L);
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
  lca_open_sqlite(L);
  lca_open_redis(L);
  return 1;
}
