/*
 * A deterministic JSON encoder for Lua values (core.json_encode).
 *
 * lua-cjson 2.1's encoder writes keys in hash order, escapes '/', keeps 14
 * significant digits (12345678901234567 -> 1.2345678901235e+16) and has an
 * unpatched overflow on huge strings (CVE-2022-24834).  Webhook bodies,
 * idempotency keys and the JSON Lines report need the same bytes for the
 * same data, so encoding is ours:
 *
 *   - object keys sorted (byte order); integer keys 1..n make an array;
 *   - integers exact, floats with 17 significant digits, non-finite refused;
 *   - strings escaped per RFC 8259 (", \, control characters), UTF-8 as is;
 *   - PhoneNumber values encode as n:raw(); chatapp.json.null as null;
 *   - a table marked with chatapp.json.array (metatable) is an array even
 *     when empty; other empty tables are {};
 *   - nesting (100) and output size (64 MiB) are capped.
 *
 * Output is built in a scratch userdata that frees its memory when
 * collected, so a raise (bad value, out of memory) leaks nothing.  (A
 * luaL_Buffer cannot be used: it needs its box on top of the stack while
 * the encoder pushes values.)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lca.h"

#define MAX_DEPTH  100
#define MAX_OUTPUT ((size_t)64 << 20)

#define ARRAY_MT   "chatapp.json.array"
#define SCRATCH_MT "chatapp.json.scratch"

typedef struct scratch {
  char *p;
  size_t n, cap;
} scratch;

typedef struct enc {
  lua_State *L;
  scratch *out;
} enc;

static void scratch_gc_now(scratch *s);

static int scratch_gc(lua_State *L)
{
  scratch_gc_now(luaL_checkudata(L, 1, SCRATCH_MT));
  return 0;
}

static void scratch_gc_now(scratch *s)
{
  free(s->p);
  s->p = NULL;
  s->n = s->cap = 0;
}

static void put(enc *e, const char *s, size_t len)
{
  scratch *o = e->out;

  if (len > MAX_OUTPUT - o->n)
    luaL_error(e->L, "JSON output larger than %d MiB", (int)(MAX_OUTPUT >> 20));
  if (o->cap - o->n < len) {
    size_t cap = o->cap ? o->cap : 256;
    char *p;
    while (cap - o->n < len)
      cap *= 2;
    p = realloc(o->p, cap);
    if (!p)
      luaL_error(e->L, "out of memory encoding JSON");
    o->p = p;
    o->cap = cap;
  }
  memcpy(o->p + o->n, s, len);
  o->n += len;
}

static void put_string(enc *e, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  size_t i, start = 0;

  put(e, "\"", 1);
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[6];
    size_t elen = 2;
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    put(e, s + start, i - start);
    esc[0] = '\\';
    switch (c) {
    case '"':
      esc[1] = '"';
      break;
    case '\\':
      esc[1] = '\\';
      break;
    case '\n':
      esc[1] = 'n';
      break;
    case '\r':
      esc[1] = 'r';
      break;
    case '\t':
      esc[1] = 't';
      break;
    case '\b':
      esc[1] = 'b';
      break;
    case '\f':
      esc[1] = 'f';
      break;
    default:
      esc[1] = 'u';
      esc[2] = '0';
      esc[3] = '0';
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      elen = 6;
    }
    put(e, esc, elen);
    start = i + 1;
  }
  put(e, s + start, len - start);
  put(e, "\"", 1);
}

static void encode(enc *e, int idx, int depth);

/* Is the table at idx an array: keys exactly 1..n (n > 0), or marked? */
static int is_array(lua_State *L, int idx, size_t *len)
{
  size_t n = lua_rawlen(L, idx), count = 0;

  int t = luaL_getmetafield(L, idx, "__name"); /* pushes nothing if nil */

  if (t != LUA_TNIL) {
    int marked = t == LUA_TSTRING && strcmp(lua_tostring(L, -1), ARRAY_MT) == 0;
    lua_pop(L, 1);
    if (marked) {
      *len = n;
      return 1;
    }
  }
  if (n == 0)
    return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (!lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return 0;
    }
  }
  *len = n;
  return count == n;
}

static int cmp_keys(const void *a, const void *b)
{
  const char *const *x = a, *const *y = b;
  return strcmp(*x, *y);
}

static void encode_object(enc *e, int idx, int depth)
{
  lua_State *L = e->L;
  size_t n = 0, i;
  const char **keys;
  int keys_idx;

  /* Collect the keys into a userdata array so no malloc is held. */
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      if (!lua_isinteger(L, -1))
        luaL_error(L, "JSON object keys must be strings or integers, not %s",
                   luaL_typename(L, -1));
    }
    n++;
  }
  /* Keys as strings in a table (integer keys converted), then sorted. */
  lua_createtable(L, (int)n, 0);
  keys_idx = lua_gettop(L);
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys_idx, (lua_Integer)++i);
  }
  keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, keys_idx, (lua_Integer)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
      lua_rawseti(L, keys_idx, (lua_Integer)i + 1);
      lua_pop(L, 1);
      lua_rawgeti(L, keys_idx, (lua_Integer)i + 1);
    }
    keys[i] = lua_tostring(L, -1); /* anchored in keys_idx */
    lua_pop(L, 1);
  }
  qsort(keys, n, sizeof *keys, cmp_keys);
  put(e, "{", 1);
  for (i = 0; i < n; i++) {
    if (i)
      put(e, ",", 1);
    put_string(e, keys[i], strlen(keys[i]));
    put(e, ":", 1);
    lua_pushstring(L, keys[i]);
    if (lua_rawget(L, idx) == LUA_TNIL) {
      /* an integer key written as a string */
      lua_pop(L, 1);
      lua_pushinteger(L, (lua_Integer)strtoll(keys[i], NULL, 10));
      lua_rawget(L, idx);
    }
    encode(e, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  put(e, "}", 1);
  lua_pop(L, 2); /* keys table and userdata */
}

static void encode(enc *e, int idx, int depth)
{
  lua_State *L = e->L;
  char num[64];
  size_t len, i;
  const char *s;

  if (depth > MAX_DEPTH)
    luaL_error(L, "value nested deeper than %d levels for JSON", MAX_DEPTH);
  luaL_checkstack(L, 8, "JSON encoding");
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    put(e, "null", 4);
    return;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx))
      put(e, "true", 4);
    else
      put(e, "false", 5);
    return;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      len = (size_t)snprintf(num, sizeof num, LUA_INTEGER_FMT,
                             (LUAI_UACINT)lua_tointeger(L, idx));
    } else {
      double x = (double)lua_tonumber(L, idx);
      if (!isfinite(x))
        luaL_error(L, "cannot encode %f as JSON", x);
      int prec;
      if (x == floor(x) && fabs(x) < 1e15) {
        len = (size_t)snprintf(num, sizeof num, "%.0f", x);
      } else {
        /* The shortest form that reads back as the same double. */
        for (prec = 15; prec <= 17; prec++) {
          len = (size_t)snprintf(num, sizeof num, "%.*g", prec, x);
          if (strtod(num, NULL) == x)
            break;
        }
      }
    }
    put(e, num, len);
    return;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    put_string(e, s, len);
    return;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { /* chatapp.json.null */
      put(e, "null", 4);
      return;
    }
    break;
  case LUA_TUSERDATA:
    if (luaL_testudata(L, idx, PHONE_MT)) {
      luaL_getmetafield(L, idx, "__index");
      lua_pushvalue(L, idx);
      lua_pushliteral(L, "raw");
      lua_call(L, 2, 1); /* the raw method */
      lua_pushvalue(L, idx);
      lua_call(L, 1, 1);
      encode(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      return;
    }
    break;
  case LUA_TTABLE:
    if (is_array(L, idx, &len)) {
      put(e, "[", 1);
      for (i = 1; i <= len; i++) {
        if (i > 1)
          put(e, ",", 1);
        lua_rawgeti(L, idx, (lua_Integer)i);
        encode(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
      }
      put(e, "]", 1);
    } else {
      encode_object(e, idx, depth);
    }
    return;
  default:
    break;
  }
  luaL_error(L, "cannot encode a %s as JSON", luaL_typename(L, idx));
}

/* core.json_encode(v) -> string | nil, message */
static int encode_protected(lua_State *L)
{
  enc e;

  e.L = L;
  e.out = lua_newuserdatauv(L, sizeof *e.out, 0);
  memset(e.out, 0, sizeof *e.out);
  luaL_setmetatable(L, SCRATCH_MT);
  encode(&e, 1, 0);
  lua_pushlstring(L, e.out->p ? e.out->p : "", e.out->n);
  scratch_gc_now(e.out);
  return 1;
}

static int l_json_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lua_pushcfunction(L, encode_protected);
  lua_insert(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

/* core.json_array(t) -> t, marked to encode as an array even if empty */
static int l_json_array(lua_State *L)
{
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, ARRAY_MT);
  return 1;
}

void lca_open_json(lua_State *L)
{
  luaL_newmetatable(L, SCRATCH_MT);
  lua_pushcfunction(L, scratch_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, ARRAY_MT);
  lua_pushliteral(L, ARRAY_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_json_encode);
  lua_setfield(L, -2, "json_encode");
  lua_pushcfunction(L, l_json_array);
  lua_setfield(L, -2, "json_array");
}
