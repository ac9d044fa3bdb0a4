/*
 * JSON for Lua values: the decoder (core.json_decode, API answers) and a
 * deterministic encoder (core.json_encode).
 *
 * Both are ours rather than lua-cjson's.  lua-cjson 2.1 decodes every
 * number as a float (integers above 2^53 lose digits), keeps its buffers
 * in malloc'd memory that the state's memory cap cannot see and that a
 * failed decode leaks, writes keys in hash order, keeps 14 significant
 * digits and has an unpatched overflow on huge strings (CVE-2022-24834).
 *
 * Decoding (RFC 8259 grammar) builds Lua values directly:
 *   - integers (no fraction, no exponent) that fit in 64 bits are Lua
 *     integers, exact; floats with an integral value become integers too;
 *     non-finite numbers (1e400) are refused; with LCA_JSON_BIG_TEXT an
 *     integer too large for 64 bits keeps its digits as a string;
 *   - object members that are null are absent; null array elements are
 *     chatapp.json.null (a light userdata NULL);
 *   - an empty array is marked as chatapp.json.array marks one, so []
 *     and {} stay apart when encoded again;
 *   - strings are bytes: \u0000 gives an embedded NUL; invalid UTF-8 and
 *     raw control characters are kept as they came (the encoder and the
 *     text report make them safe on the way out);
 *   - nesting is capped at CA_JSON_MAX_DEPTH (ca_json.h).
 * Everything is allocated by the state's allocator inside a protected
 * call, so memory counts against the cap and a failure frees it all.
 *
 * Encoding:
 *   - object keys sorted (byte order, NUL bytes included); integer keys
 *     1..n make an array;
 *   - integers exact, floats with up to 17 significant digits, non-finite
 *     refused;
 *   - strings escaped per RFC 8259 (", \, control characters as \u00XX);
 *     invalid UTF-8 bytes are replaced by U+FFFD, so the output is always
 *     valid JSON;
 *   - PhoneNumber values encode as n:raw(); chatapp.json.null as null;
 *   - a table marked with chatapp.json.array is an array even when empty;
 *     other empty tables are {};
 *   - nesting (CA_JSON_MAX_DEPTH, the decoder's) and output size (64 MiB)
 *     are capped.
 * Output is built in a userdata that grows by replacement, so it is Lua
 * memory (capped, collected after a raise).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_json.h"
#include "lca.h"

#define MAX_DEPTH  CA_JSON_MAX_DEPTH
#define MAX_OUTPUT ((size_t)64 << 20)

#define ARRAY_MT  "chatapp.json.array"
#define COUNT_KEY "chatapp.json.decodes"

/* What this state has decoded: core.json_decodes() -> count, bytes.  So a
 * test can prove an answer never reached the decoder (reliability case
 * C4: an answer over the size cap is refused before any decoding). */
typedef struct decode_count {
  lua_Integer n, bytes;
} decode_count;

#define STR_(x) #x
#define STR(x)  STR_(x)

/* ---- decoding ----------------------------------------------------------- */

typedef struct dec {
  lua_State *L;
  const char *p, *start, *end;
  int depth, flags;
} dec;

static int dec_fail(dec *d, const char *what)
{
  int line, col;

  ca_json_position(d->start, d->p, d->end, &line, &col);
  return luaL_error(d->L, "malformed JSON: line %d, column %d: %s", line, col,
                    what);
}

static void dec_ws(dec *d)
{
  while (d->p < d->end &&
         (*d->p == ' ' || *d->p == '\t' || *d->p == '\n' || *d->p == '\r'))
    d->p++;
}

/* The string at d->p (on its opening quote): pushed.  Raw control
 * characters and invalid UTF-8 are kept (see the top). */
static void dec_string(dec *d)
{
  lua_State *L = d->L;
  const char *s = ++d->p, *q = s, *err;
  luaL_Buffer b;
  size_t span, n;
  char *out;

  while (q < d->end && *q != '"' && *q != '\\')
    q++;
  if (q < d->end && *q == '"') { /* no escapes: the bytes as they are */
    lua_pushlstring(L, s, (size_t)(q - s));
    d->p = q + 1;
    return;
  }
  span = ca_json_string_span(s, d->end); /* never shorter than the result */
  out = luaL_buffinitsize(L, &b, span + 1);
  if ((err = ca_json_unescape(&d->p, d->end, 0, out, &n)))
    dec_fail(d, err);
  luaL_pushresultsize(&b, n);
}

static int is_digit(const dec *d)
{
  return d->p < d->end && *d->p >= '0' && *d->p <= '9';
}

/* The number at d->p: pushed as an integer when it is one (see top). */
static void dec_number(dec *d)
{
  lua_State *L = d->L;
  const char *s = d->p;
  int neg = 0, integral = 1, overflow = 0;
  unsigned long long u = 0, limit;
  char tmp[64];
  size_t n;
  double x;
  lua_Integer i;

  if (d->p < d->end && *d->p == '-') {
    neg = 1;
    d->p++;
  }
  limit = neg ? (unsigned long long)LUA_MAXINTEGER + 1
              : (unsigned long long)LUA_MAXINTEGER;
  if (!is_digit(d))
    dec_fail(d, d->p < d->end ? "unexpected character" : "bad number");
  if (*d->p == '0') {
    d->p++;
    if (is_digit(d))
      dec_fail(d, "leading zero in a number");
  } else {
    while (is_digit(d)) {
      unsigned digit = (unsigned)(*d->p++ - '0');
      if (u > (limit - digit) / 10)
        overflow = 1;
      else
        u = u * 10 + digit;
    }
  }
  if (d->p < d->end && *d->p == '.') {
    integral = 0;
    d->p++;
    if (!is_digit(d))
      dec_fail(d, "bad number");
    while (is_digit(d))
      d->p++;
  }
  if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
    integral = 0;
    d->p++;
    if (d->p < d->end && (*d->p == '+' || *d->p == '-'))
      d->p++;
    if (!is_digit(d))
      dec_fail(d, "bad number");
    while (is_digit(d))
      d->p++;
  }
  n = (size_t)(d->p - s);
  if (integral && !overflow) {
    if (!neg)
      lua_pushinteger(L, (lua_Integer)u);
    else if (u == limit)
      lua_pushinteger(L, LUA_MININTEGER);
    else
      lua_pushinteger(L, -(lua_Integer)u);
    return;
  }
  if (integral && (d->flags & LCA_JSON_BIG_TEXT)) {
    lua_pushlstring(L, s, n); /* every digit kept */
    return;
  }
  if (integral) { /* beyond 64 bits: a float, never a rounded integer */
    lua_pushlstring(L, s, n);
    lua_pushnumber(L, (lua_Number)strtod(lua_tostring(L, -1), NULL));
    lua_remove(L, -2);
    return;
  }
  if (n < sizeof tmp) {
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    x = strtod(tmp, NULL);
  } else {
    lua_pushlstring(L, s, n); /* NUL-terminated copy */
    x = strtod(lua_tostring(L, -1), NULL);
    lua_pop(L, 1);
  }
  if (!isfinite(x))
    dec_fail(d, "number out of range (not a finite number)");
  /* An integral value becomes an integer; -2^63 itself stays a float, as
   * the literals just below it (rounded to it) do: so decoding what was
   * encoded gives the same value. */
  if (x == floor(x) && x > (double)LUA_MININTEGER && lua_numbertointeger(x, &i))
    lua_pushinteger(L, i);
  else
    lua_pushnumber(L, (lua_Number)x);
}

static void dec_literal(dec *d, const char *word, size_t n)
{
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
    dec_fail(d, "unexpected character");
  d->p += n;
}

static void dec_value(dec *d);

static void dec_container(dec *d, int is_obj)
{
  lua_State *L = d->L;
  char close = is_obj ? '}' : ']';
  lua_Integer n = 0;

  if (++d->depth > MAX_DEPTH)
    dec_fail(d, "nesting deeper than " STR(CA_JSON_MAX_DEPTH) " levels");
  luaL_checkstack(L, 6, "JSON nesting");
  d->p++;
  lua_newtable(L);
  dec_ws(d);
  if (d->p < d->end && *d->p == close) {
    /* [] stays an array when encoded again (marked as json.array marks
     * it); {} stays an object */
    if (!is_obj)
      luaL_setmetatable(L, ARRAY_MT);
    d->p++;
    d->depth--;
    return;
  }
  for (;;) {
    dec_ws(d);
    if (is_obj) {
      if (d->p >= d->end || *d->p != '"')
        dec_fail(d, "expected a member name");
      dec_string(d);
      dec_ws(d);
      if (d->p >= d->end || *d->p != ':')
        dec_fail(d, "expected ':'");
      d->p++;
      dec_value(d);
      if (lua_islightuserdata(L, -1)) /* a null member: absent */
        lua_pop(L, 2);
      else
        lua_rawset(L, -3); /* the last duplicate wins */
    } else {
      dec_value(d);
      lua_rawseti(L, -2, ++n);
    }
    dec_ws(d);
    if (d->p < d->end && *d->p == ',') {
      d->p++;
      continue;
    }
    if (d->p < d->end && *d->p == close) {
      d->p++;
      d->depth--;
      return;
    }
    dec_fail(d, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static void dec_value(dec *d)
{
  dec_ws(d);
  if (d->p >= d->end)
    dec_fail(d, "unexpected end of input");
  switch (*d->p) {
  case '{':
  case '[':
    dec_container(d, *d->p == '{');
    return;
  case '"':
    dec_string(d);
    return;
  case 't':
    dec_literal(d, "true", 4);
    lua_pushboolean(d->L, 1);
    return;
  case 'f':
    dec_literal(d, "false", 5);
    lua_pushboolean(d->L, 0);
    return;
  case 'n':
    dec_literal(d, "null", 4);
    lua_pushlightuserdata(d->L, NULL);
    return;
  default:
    dec_number(d);
    return;
  }
}

void lca_json_push_decoded(lua_State *L, const char *text, size_t len,
                           int flags)
{
  dec d;

  d.L = L;
  d.p = d.start = text;
  d.end = text + len;
  d.depth = 0;
  d.flags = flags;
  luaL_checkstack(L, 8, "JSON decoding");
  if (lua_getfield(L, LUA_REGISTRYINDEX, COUNT_KEY) == LUA_TUSERDATA) {
    decode_count *c = lua_touserdata(L, -1);
    c->n++;
    c->bytes += (lua_Integer)len;
  }
  lua_pop(L, 1);
  dec_value(&d);
  dec_ws(&d);
  if (d.p != d.end)
    dec_fail(&d, "trailing characters after the JSON value");
}

typedef struct dec_args {
  const char *text;
  size_t len;
} dec_args;

/* 1 = the text (a dec_args as light userdata) */
static int decode_protected(lua_State *L)
{
  const dec_args *a = lua_touserdata(L, 1);
  lca_json_push_decoded(L, a->text, a->len, 0);
  return 1;
}

int lca_json_decode(lua_State *L, const char *text, size_t len)
{
  dec_args a;
  int st;

  a.text = text;
  a.len = len;
  lua_pushcfunction(L, decode_protected);
  lua_pushlightuserdata(L, &a);
  if ((st = lua_pcall(L, 1, 1, 0)) != LUA_OK) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "cannot decode the JSON");
    }
    lua_pushnil(L);
    lua_insert(L, -2);
  }
  return st;
}

/* core.json_decodes() -> decodes, bytes: every decode in this state so far
 * (core.json_decode, API answers, typed or not) */
static int l_json_decodes(lua_State *L)
{
  const decode_count *c;

  lua_getfield(L, LUA_REGISTRYINDEX, COUNT_KEY);
  c = lua_touserdata(L, -1);
  lua_pushinteger(L, c ? c->n : 0);
  lua_pushinteger(L, c ? c->bytes : 0);
  return 2;
}

/* core.json_decode(s) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  return lca_json_decode(L, s, len) == LUA_OK ? 1 : 2;
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct enc {
  lua_State *L;
  int slot; /* stack index of the output userdata */
  char *p;
  size_t n, cap;
} enc;

static void put(enc *e, const char *s, size_t len)
{
  if (len == 0)
    return;
  if (len > MAX_OUTPUT - e->n)
    luaL_error(e->L, "JSON output larger than %d MiB", (int)(MAX_OUTPUT >> 20));
  if (e->cap - e->n < len) {
    size_t cap = e->cap ? e->cap : 256;
    char *p;
    while (cap - e->n < len)
      cap *= 2;
    /* A bigger userdata replaces the old one (Lua memory: capped, and
     * collected if anything below raises). */
    p = lua_newuserdatauv(e->L, cap, 0);
    if (e->n)
      memcpy(p, e->p, e->n);
    lua_replace(e->L, e->slot);
    e->p = p;
    e->cap = cap;
  }
  memcpy(e->p + e->n, s, len);
  e->n += len;
}

static void put_string(enc *e, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  size_t i = 0, start = 0;

  put(e, "\"", 1);
  while (i < len) {
    unsigned char c = (unsigned char)s[i];
    char esc[6];
    size_t elen = 2;
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      i++;
      continue;
    }
    if (c >= 0x80) {
      size_t l = ca_utf8_len((const unsigned char *)s + i, len - i);
      if (l) {
        i += l;
        continue;
      }
      /* Not UTF-8: U+FFFD REPLACEMENT CHARACTER for this byte. */
      put(e, s + start, i - start);
      put(e, "\xEF\xBF\xBD", 3);
      start = ++i;
      continue;
    }
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
    start = ++i;
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

/* An object member: its name as written, and where its key is kept. */
typedef struct member {
  const char *s;
  size_t len;
  lua_Integer pos;
} member;

/* Push s with each byte that is not UTF-8 replaced by U+FFFD, as
 * put_string writes it. */
static void push_valid_utf8(lua_State *L, const char *s, size_t len)
{
  luaL_Buffer b;
  size_t i = 0, start = 0;

  luaL_buffinit(L, &b);
  while (i < len) {
    size_t l;
    if ((unsigned char)s[i] < 0x80) {
      i++;
      continue;
    }
    l = ca_utf8_len((const unsigned char *)s + i, len - i);
    if (l) {
      i += l;
      continue;
    }
    luaL_addlstring(&b, s + start, i - start);
    luaL_addlstring(&b, "\xEF\xBF\xBD", 3);
    start = ++i;
  }
  luaL_addlstring(&b, s + start, len - start);
  luaL_pushresult(&b);
}

static int valid_utf8(const char *s, size_t len)
{
  size_t i = 0;

  while (i < len) {
    size_t l = (unsigned char)s[i] < 0x80
                 ? 1
                 : ca_utf8_len((const unsigned char *)s + i, len - i);
    if (!l)
      return 0;
    i += l;
  }
  return 1;
}

static int cmp_members(const void *a, const void *b)
{
  const member *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->s, y->s, n);
  if (c)
    return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

static void encode_object(enc *e, int idx, int depth)
{
  lua_State *L = e->L;
  lua_Integer n = 0, i;
  member *m;
  int keys;

  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING && !lua_isinteger(L, -1))
      luaL_error(L, "JSON object keys must be strings or integers, not %s",
                 luaL_typename(L, -1));
    n++;
  }
  /* keys[i]: the key as it is in the table; keys[n + i]: its name as it
   * is written (integers in decimal, bytes that are not UTF-8 replaced),
   * which is also the order (so encoding what was decoded is stable). */
  lua_createtable(L, (int)(2 * n), 0);
  keys = lua_gettop(L);
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    i++;
    lua_pushvalue(L, -1);
    lua_rawseti(L, keys, i);
    if (lua_type(L, -1) == LUA_TSTRING) {
      size_t klen;
      const char *k = lua_tolstring(L, -1, &klen);
      if (valid_utf8(k, klen))
        lua_pushvalue(L, -1);
      else
        push_valid_utf8(L, k, klen);
    } else {
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
    }
    lua_rawseti(L, keys, n + i);
  }
  m = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *m, 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, keys, n + i + 1);
    m[i].s = lua_tolstring(L, -1, &m[i].len); /* anchored in keys */
    m[i].pos = i + 1;
    lua_pop(L, 1);
  }
  qsort(m, (size_t)n, sizeof *m, cmp_members);
  put(e, "{", 1);
  for (i = 0; i < n; i++) {
    if (i && cmp_members(&m[i - 1], &m[i]) == 0)
      luaL_error(L,
                 "JSON object has the key \"%s\" twice (an integer key and "
                 "a string one, or names that differ only in bytes that are "
                 "not UTF-8)",
                 m[i].s);
    if (i)
      put(e, ",", 1);
    put_string(e, m[i].s, m[i].len);
    put(e, ":", 1);
    lua_rawgeti(L, keys, m[i].pos);
    lua_rawget(L, idx);
    encode(e, lua_gettop(L), depth);
    lua_pop(L, 1);
  }
  put(e, "}", 1);
  lua_pop(L, 2); /* keys table and members */
}

/* depth: how many containers hold the value at idx. */
static void encode(enc *e, int idx, int depth)
{
  lua_State *L = e->L;
  char num[64];
  size_t len, i;
  const char *s;

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
      int prec;
      if (!isfinite(x))
        luaL_error(L, "cannot encode %f as JSON", x);
      if (x == floor(x) && fabs(x) < 1e15) {
        len = (size_t)snprintf(num, sizeof num, "%.0f", x);
      } else {
        /* The shortest form that reads back as the same double. */
        len = 0;
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
      encode(e, lua_gettop(L), depth); /* the table stands for the number */
      lua_pop(L, 1);
      return;
    }
    break;
  case LUA_TTABLE:
    if (depth >= MAX_DEPTH)
      luaL_error(L, "value nested deeper than %d levels for JSON", MAX_DEPTH);
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
      encode_object(e, idx, depth + 1);
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
  lua_pushnil(L); /* the output's slot */
  e.slot = lua_gettop(L);
  e.p = NULL;
  e.n = e.cap = 0;
  encode(&e, 1, 0);
  lua_pushlstring(L, e.p ? e.p : "", e.n);
  return 1;
}

static int l_json_encode(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  lua_pushcfunction(L, encode_protected);
  lua_insert(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "cannot encode the value as JSON");
    }
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

/* core.json_array(t) -> t, marked to encode as an array even if empty.
 * A table that already has a metatable (a read-only view, an object) is
 * refused: replacing it would change the table for everyone holding it. */
static int l_json_array(lua_State *L)
{
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ARRAY_MT);
    if (!lua_rawequal(L, -1, -2))
      return luaL_error(L, "json.array: the table already has a metatable; "
                           "pass a plain table (or a new one: json.array())");
    lua_settop(L, 1);
    return 1;
  }
  luaL_setmetatable(L, ARRAY_MT);
  return 1;
}

void lca_open_json(lua_State *L)
{
  decode_count *c = lua_newuserdatauv(L, sizeof *c, 0);

  c->n = c->bytes = 0;
  lua_setfield(L, LUA_REGISTRYINDEX, COUNT_KEY);
  luaL_newmetatable(L, ARRAY_MT);
  lua_pushliteral(L, ARRAY_MT);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_json_decode);
  lua_setfield(L, -2, "json_decode");
  lua_pushcfunction(L, l_json_decodes);
  lua_setfield(L, -2, "json_decodes");
  lua_pushcfunction(L, l_json_encode);
  lua_setfield(L, -2, "json_encode");
  lua_pushcfunction(L, l_json_array);
  lua_setfield(L, -2, "json_array");
  lua_pushinteger(L, MAX_DEPTH);
  lua_setfield(L, -2, "json_max_depth");
}
