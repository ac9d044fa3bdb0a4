/*
 * PhoneNumber: one sender number as policies see it.
 *
 * Layout (docs/internals/typed-results.md): a full userdata holding one
 * 32-bit index per field into a string pool shared by every number of the
 * same answer, plus one user value, the pool table.  Repeated strings
 * (status values, queue names, callback URLs) are stored once per answer,
 * so a typed list holds a fraction of the memory of the decoded tables.
 *
 *   n.status            the API's string, kept as is (open enums)
 *   n.messaging_limit   derived: 1000 for TIER_1K, math.huge for unlimited
 *   n.quality_level     derived: GREEN 3 > YELLOW 2 > RED 1, else nil
 *   n.unknown_field     raises, naming the valid fields
 *   n.x = 1             raises: numbers are read-only
 *   n:raw()             every field the API sent, unknown ones included
 *
 * The metatable is locked (__metatable), so __index only ever sees our own
 * userdata and can use lua_touserdata.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lca.h"

enum {
  F_PHONE_NUMBER,
  F_VERIFIED_NAME,
  F_STATUS,
  F_QUALITY_RATING,
  F_MESSAGING_LIMIT_TIER,
  F_CODE_VERIFICATION_STATUS,
  F_NAME_STATUS,
  F_NEW_NAME_STATUS,
  F_UP_CALLBACK_URL,
  F_STATUS_CALLBACK_URL,
  F_UP_QUEUE,
  F_STATUS_QUEUE,
  F_IS_OFFICIAL,
  N_API, /* fields above come from the API; below, from the space */
  F_CUST_SPACE_ID = N_API,
  F_ISV_CODE,
  F_SPACE_LABEL,
  N_STORED, /* fields above are stored; below, derived */
  F_MESSAGING_LIMIT = N_STORED,
  F_QUALITY_LEVEL,
  N_FIELDS
};

static const struct {
  const char *name; /* as policies spell it */
  const char *api;  /* as the API spells it, or NULL */
} fields[N_FIELDS] = {
  {"phone_number", "PhoneNumber"},
  {"verified_name", "VerifiedName"},
  {"status", "Status"},
  {"quality_rating", "QualityRating"},
  {"messaging_limit_tier", "MessagingLimitTier"},
  {"code_verification_status", "CodeVerificationStatus"},
  {"name_status", "NameStatus"},
  {"new_name_status", "NewNameStatus"},
  {"up_callback_url", "UpCallbackUrl"},
  {"status_callback_url", "StatusCallbackUrl"},
  {"up_queue", "UpQueue"},
  {"status_queue", "StatusQueue"},
  {"is_official", "IsOfficial"},
  {"cust_space_id", NULL},
  {"isv_code", NULL},
  {"space_label", NULL},
  {"messaging_limit", NULL},
  {"quality_level", NULL},
};

typedef struct phone {
  uint32_t v[N_STORED]; /* pool index of each field; 0: absent */
  uint32_t extra;       /* pool index of a table of unknown fields; 0 */
} phone;

/* Registry keys. */
#define NAMES_KEY "chatapp.phone.names" /* name -> field id or method */
#define API_KEY   "chatapp.phone.api"   /* API name -> field id */

/* ---- enums -------------------------------------------------------------- */

/* Known values (open sets: other values are kept as they come). */
static const char *const status_values[] = {
  "CONNECTED",    "FLAGGED", "RESTRICTED", "BANNED",
  "RATE_LIMITED", "PENDING", "MIGRATED",   "DISCONNECTED",
  "UNVERIFIED",   "DELETED", "UNKNOWN",    NULL};
static const char *const quality_values[] = {"GREEN", "YELLOW", "RED",
                                             "UNKNOWN", NULL};
static const char *const tier_values[] = {
  "TIER_50",   "TIER_250",       "TIER_1K", "TIER_10K",
  "TIER_100K", "TIER_UNLIMITED", NULL};
static const char *const verification_values[] = {
  "VERIFIED", "REVOKED", "MORE_INFORMATION_REQUESTED", "REJECTED", NULL};
static const char *const name_values[] = {"Approval", "Pending_Review",
                                          "Rejected", NULL};

/* The enum tables exported as chatapp.core.enums: name -> {values, field,
 * closed}.  Only QualityRating is a closed set in the documentation. */
static const struct {
  const char *name;
  const char *const *values;
  int field;
  int closed;
} enums[] = {
  {"Status", status_values, F_STATUS, 0},
  {"QualityRating", quality_values, F_QUALITY_RATING, 1},
  {"MessagingLimitTier", tier_values, F_MESSAGING_LIMIT_TIER, 0},
  {"CodeVerificationStatus", verification_values, F_CODE_VERIFICATION_STATUS,
   0},
  {"NameStatus", name_values, F_NAME_STATUS, 0},
  {"NewNameStatus", name_values, F_NEW_NAME_STATUS, 0},
  {NULL, NULL, 0, 0},
};

/* TIER_50 -> 50, TIER_1K -> 1000, TIER_UNLIMITED -> huge; else -1. */
static double tier_limit(const char *t)
{
  char *end;
  double n;

  if (strncmp(t, "TIER_", 5) != 0)
    return -1;
  if (strcmp(t + 5, "UNLIMITED") == 0)
    return HUGE_VAL;
  if (t[5] < '0' || t[5] > '9')
    return -1;
  n = strtod(t + 5, &end);
  if (*end == 'K' && end[1] == '\0')
    return n * 1e3;
  if (*end == 'M' && end[1] == '\0')
    return n * 1e6;
  return *end == '\0' ? n : -1;
}

static int quality_level(const char *q)
{
  if (strcmp(q, "GREEN") == 0)
    return 3;
  if (strcmp(q, "YELLOW") == 0)
    return 2;
  if (strcmp(q, "RED") == 0)
    return 1;
  return 0;
}

/* ---- access ------------------------------------------------------------- */

/* Push the stored string of field f of the number at idx (1), or nil. */
static int push_field(lua_State *L, const phone *p, int f)
{
  if (!p->v[f]) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_getiuservalue(L, 1, 1);
  lua_rawgeti(L, -1, p->v[f]);
  lua_remove(L, -2);
  return LUA_TSTRING;
}

/* Levenshtein distance, small strings only. */
static size_t distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), i, j;
  size_t row[64], prev, tmp;

  if (la >= 63 || lb >= 63)
    return 99;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++) {
    prev = row[0];
    row[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      if (prev + cost < best)
        best = prev + cost;
      tmp = row[j];
      row[j] = best;
      prev = tmp;
    }
  }
  return row[lb];
}

static int no_such_field(lua_State *L, const char *key)
{
  luaL_Buffer b;
  const char *best = NULL;
  size_t bestd = 4, i;

  for (i = 0; i < N_FIELDS; i++) {
    size_t d = distance(key, fields[i].name);
    if (d < bestd) {
      bestd = d;
      best = fields[i].name;
    }
  }
  luaL_where(L, 1); /* the policy line that read the field */
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "PhoneNumber has no field '");
  luaL_addstring(&b, key);
  luaL_addstring(&b, "'");
  if (best) {
    luaL_addstring(&b, " (did you mean '");
    luaL_addstring(&b, best);
    luaL_addstring(&b, "'?)");
  }
  luaL_addstring(&b, "; valid fields: ");
  for (i = 0; i < N_FIELDS; i++) {
    if (i)
      luaL_addstring(&b, ", ");
    luaL_addstring(&b, fields[i].name);
  }
  luaL_addstring(&b, "; methods: raw");
  luaL_pushresult(&b);
  lua_concat(L, 2);
  return lua_error(L);
}

/* __index: upvalue 1 is the names table (field id or method function). */
static int phone_index(lua_State *L)
{
  const phone *p = lua_touserdata(L, 1);
  lua_Integer f;

  lua_pushvalue(L, 2);
  switch (lua_rawget(L, lua_upvalueindex(1))) {
  case LUA_TNUMBER:
    f = lua_tointeger(L, -1);
    if (f < N_STORED) {
      push_field(L, p, (int)f);
    } else if (f == F_MESSAGING_LIMIT) {
      double lim = -1;
      if (push_field(L, p, F_MESSAGING_LIMIT_TIER) == LUA_TSTRING)
        lim = tier_limit(lua_tostring(L, -1));
      if (lim < 0 || (!isinf(lim) && lim >= 0x1p63)) /* out of range */
        lua_pushnil(L);
      else if (isinf(lim))
        lua_pushnumber(L, lim);
      else
        lua_pushinteger(L, (lua_Integer)lim);
    } else { /* F_QUALITY_LEVEL */
      int q = 0;
      if (push_field(L, p, F_QUALITY_RATING) == LUA_TSTRING)
        q = quality_level(lua_tostring(L, -1));
      if (q)
        lua_pushinteger(L, q);
      else
        lua_pushnil(L);
    }
    return 1;
  case LUA_TFUNCTION:
    return 1;
  default:
    if (lua_type(L, 2) != LUA_TSTRING)
      return luaL_error(L, "PhoneNumber fields are named by strings, not %s",
                        luaL_typename(L, 2));
    return no_such_field(L, lua_tostring(L, 2));
  }
}

static int phone_newindex(lua_State *L)
{
  luaL_where(L, 1);
  lua_pushfstring(L,
                  "PhoneNumber is read-only (tried to set '%s'); "
                  "plan an action instead",
                  luaL_tolstring(L, 2, NULL));
  lua_remove(L, -2);
  lua_concat(L, 2);
  return lua_error(L);
}

static int phone_tostring(lua_State *L)
{
  const phone *p = luaL_checkudata(L, 1, PHONE_MT);
  int top = lua_gettop(L);

  lua_pushliteral(L, "PhoneNumber ");
  if (push_field(L, p, F_PHONE_NUMBER) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "(no number)");
  }
  lua_pushliteral(L, " (");
  if (push_field(L, p, F_STATUS) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "-");
  }
  lua_pushliteral(L, ", ");
  if (push_field(L, p, F_QUALITY_RATING) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "-");
  }
  lua_pushliteral(L, ", ");
  if (push_field(L, p, F_MESSAGING_LIMIT_TIER) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "-");
  }
  lua_pushliteral(L, ")");
  lua_concat(L, lua_gettop(L) - top);
  return 1;
}

/* n:raw(): a fresh table of every field the API sent, by API name. */
static int phone_raw(lua_State *L)
{
  const phone *p = luaL_checkudata(L, 1, PHONE_MT);
  int i;

  lua_createtable(L, 0, N_API + 2);
  for (i = 0; i < N_API; i++)
    if (push_field(L, p, i) == LUA_TSTRING)
      lua_setfield(L, -2, fields[i].api);
    else
      lua_pop(L, 1);
  if (p->extra) {
    /* Unknown fields, deep-copied so the caller may change them. */
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, p->extra);
    lua_getfield(L, LUA_REGISTRYINDEX, "chatapp.deepcopy");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -6);
    }
    lua_pop(L, 2);
  }
  return 1;
}

/* __pairs: the fields that have a value, in declaration order. */
static int phone_next(lua_State *L)
{
  int i = 0;

  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    i = (int)lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
  }
  for (; i < N_FIELDS; i++) {
    lua_settop(L, 1);
    lua_pushstring(L, fields[i].name);
    lua_pushvalue(L, -1);
    lua_gettable(L, 1); /* through __index, derived fields included */
    if (!lua_isnil(L, -1))
      return 2;
  }
  return 0;
}

static int phone_pairs(lua_State *L)
{
  luaL_checkudata(L, 1, PHONE_MT);
  lua_getfield(L, LUA_REGISTRYINDEX, NAMES_KEY);
  lua_pushcclosure(L, phone_next, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* ---- decoding ----------------------------------------------------------- */

/*
 * Sharing strings while one list is built: an open-addressing table from
 * string to pool index, in a scratch userdata (its memory is freed by the
 * collector even if building raises).  Lua interns short strings, so equal
 * short strings have one address and are found by pointer; longer ones
 * (callback URLs) by content.  Getting this wrong could only cost memory:
 * equal strings under different keys get two pool slots.
 */
#define SHORT_STRING 40 /* LUAI_MAXSHORTLEN in Lua 5.4 */
#define SHARE_MT     "chatapp.phone.share"

typedef struct share_entry {
  const char *s; /* anchored in the pool table */
  size_t len;
  uint32_t hash, ix;
} share_entry;

typedef struct share {
  share_entry *v;
  size_t cap, n; /* cap: a power of two */
} share;

static int share_gc(lua_State *L)
{
  share *t = luaL_checkudata(L, 1, SHARE_MT);
  free(t->v);
  t->v = NULL;
  t->cap = t->n = 0;
  return 0;
}

static uint32_t share_hash(const char *s, size_t len)
{
  uint64_t h = 0x9E3779B97F4A7C15u ^ len, w;
  size_t i;

  if (len <= SHORT_STRING) { /* interned: the address is the identity */
    uintptr_t p = (uintptr_t)s;
    return (uint32_t)((p >> 4) ^ (p >> 20)) * 2654435761u;
  }
  /* Eight bytes at a time, then the tail: URLs are hashed often. */
  for (i = 0; i + 8 <= len; i += 8) {
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0x100000001B3u;
    h ^= h >> 29;
  }
  w = 0;
  memcpy(&w, s + i, len - i);
  h = (h ^ w) * 0x100000001B3u;
  return (uint32_t)(h ^ (h >> 32));
}

static share_entry *share_slot(share *t, const char *s, size_t len, uint32_t h)
{
  size_t i = h & (t->cap - 1);

  for (;; i = (i + 1) & (t->cap - 1)) {
    share_entry *e = &t->v[i];
    if (!e->s)
      return e;
    if (e->hash == h && e->len == len &&
        (e->s == s || (len > SHORT_STRING && memcmp(e->s, s, len) == 0)))
      return e;
  }
}

static int share_grow(share *t)
{
  share_entry *old = t->v, *nv;
  size_t oldcap = t->cap, cap = oldcap ? oldcap * 2 : 256, i;

  nv = calloc(cap, sizeof *nv);
  if (!nv)
    return -1;
  t->v = nv;
  t->cap = cap;
  for (i = 0; i < oldcap; i++)
    if (old[i].s)
      *share_slot(t, old[i].s, old[i].len, old[i].hash) = old[i];
  free(old);
  return 0;
}

/* Stack indices and state used while building one list. */
typedef struct builder {
  int pool;               /* array of strings and extra tables */
  int mt;                 /* PhoneNumber metatable */
  uint32_t n;             /* pool size */
  share *shared;          /* string -> pool index */
  const char *api[N_API]; /* the API names, interned: compared by address */
} builder;

/* Pool index of the string on top (popped): equal strings share a slot. */
static uint32_t intern_top(lua_State *L, builder *b)
{
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  uint32_t h = share_hash(s, len);
  share_entry *e;

  if (b->shared->n * 2 >= b->shared->cap && share_grow(b->shared))
    luaL_error(L, "out of memory");
  e = share_slot(b->shared, s, len, h);
  if (e->s) {
    lua_pop(L, 1);
    return e->ix;
  }
  e->s = s; /* anchored by the pool table below */
  e->len = len;
  e->hash = h;
  e->ix = ++b->n;
  b->shared->n++;
  lua_rawseti(L, b->pool, e->ix);
  return e->ix;
}

/*
 * The string form of the value on top for a string field: numbers written
 * without a trailing ".0", booleans as "true"/"false".  Returns 1 and
 * replaces the top, 0 for null (absent; popped), or -1 for a table or
 * other value (left in place).  Raises on a non-finite number.
 */
static int to_field_string(lua_State *L, const char *name)
{
  switch (lua_type(L, -1)) {
  case LUA_TSTRING:
    return 1;
  case LUA_TNUMBER: {
    lua_Number x = lua_tonumber(L, -1);
    lua_Integer i;
    if (lua_isinteger(L, -1))
      lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
    else if (x == floor(x) && lua_numbertointeger(x, &i))
      lua_pushfstring(L, "%I", (LUAI_UACINT)i);
    else if (isfinite(x))
      lua_pushfstring(L, "%f", (LUAI_UACNUMBER)x);
    else
      luaL_error(L, "%s is not a finite number", name);
    lua_remove(L, -2);
    return 1;
  }
  case LUA_TBOOLEAN:
    lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
    lua_remove(L, -2);
    return 1;
  case LUA_TLIGHTUSERDATA: /* cjson.null */
    lua_pop(L, 1);
    return 0;
  default:
    return -1;
  }
}

/* Pool index of the value on top (popped), not shared: for values that
 * are unique per number (the phone number), where sharing costs a lookup
 * and saves nothing. */
static uint32_t pool_top(lua_State *L, builder *b)
{
  uint32_t ix = ++b->n;
  lua_rawseti(L, b->pool, ix);
  return ix;
}

/* Build one PhoneNumber from the decoded object at idx; push it.  Known
 * fields are typed here; unknown ones are cleaned (lca_json_clean) and kept
 * for raw(). */
static void build_phone(lua_State *L, builder *b, int idx,
                        const uint32_t space[3])
{
  phone *p = lua_newuserdatauv(L, sizeof *p, 1);
  int extra = 0, top;

  memset(p, 0, sizeof *p);
  memcpy(&p->v[N_API], space, 3 * sizeof *space);
  lua_pushvalue(L, b->mt);
  lua_setmetatable(L, -2);
  lua_pushvalue(L, b->pool);
  lua_setiuservalue(L, -2, 1);
  top = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* stack: ..., phone, key, value */
    int f = -1;
    if (lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      int i;
      for (i = 0; i < N_API; i++)
        if (k == b->api[i]) {
          f = i;
          break;
        }
    }
    if (f >= 0) {
      int r = to_field_string(L, fields[f].api);
      if (r > 0)
        p->v[f] = f == F_PHONE_NUMBER ? pool_top(L, b) : intern_top(L, b);
      if (r >= 0)
        continue;
    } else if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
      lua_pop(L, 1); /* an unknown field that is null: absent */
      continue;
    }
    {
      char err[200];
      if (lca_json_clean(L, err, sizeof err))
        luaL_error(L, "field %s: %s",
                   lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?",
                   err);
    }
    /* Unknown field, or a known one with a non-scalar value: raw only. */
    if (!extra) {
      lua_newtable(L);
      lua_insert(L, top + 1); /* below key and value */
      extra = top + 1;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, extra);
  }
  if (extra) {
    lua_pushvalue(L, extra);
    p->extra = ++b->n;
    lua_rawseti(L, b->pool, p->extra);
    lua_settop(L, top);
  }
}

/* Push the numbers array of the decoded answer at idx (nil when there is
 * none), or raise when it has another shape. */
static void push_numbers_array(lua_State *L, int idx)
{
  int t = lua_getfield(L, idx, "PhoneNumbers");

  if (t == LUA_TNIL || t == LUA_TLIGHTUSERDATA) { /* absent or null */
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  if (t != LUA_TTABLE)
    luaL_error(L, "PhoneNumbers is a %s, expected an array",
               lua_typename(L, t));
  if (lua_rawlen(L, -1) > 0)
    return;
  /* XML-style wrapping: {"PhoneNumbers":{"PhoneNumber":[...]}} */
  if (lua_getfield(L, -1, "PhoneNumber") == LUA_TTABLE) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_pushnil(L);
  if (lua_next(L, -2))
    luaL_error(L, "PhoneNumbers is an object, expected an array");
}

/* lua_CFunction doing the work of lca_decode_phone_numbers under pcall:
 * 1 = decoded answer, 2 = space table or nil. */
static int build_list(lua_State *L)
{
  builder b;
  uint32_t space[3] = {0, 0, 0};
  lua_Integer i, n = 0;
  int arr;

  lua_settop(L, 2);
  if (!lua_istable(L, 1))
    return luaL_error(L, "the answer is a %s, expected an object",
                      luaL_typename(L, 1));
  if (lua_rawlen(L, 1) > 0)
    return luaL_error(L, "the answer is an array, expected an object");
  /* The pool gets about one unique string per number (the phone number)
   * plus the shared ones: sized so it does not grow while the list is
   * built. */
  {
    lua_Integer guess = 0;
    if (lua_getfield(L, 1, "PhoneNumbers") == LUA_TTABLE)
      guess = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 1);
    if (guess > 1 << 24)
      guess = 1 << 24;
    lua_createtable(L, (int)(guess + 64), 0);
    b.pool = lua_gettop(L);
  }
  b.shared = lua_newuserdatauv(L, sizeof *b.shared, 0);
  memset(b.shared, 0, sizeof *b.shared);
  luaL_setmetatable(L, SHARE_MT);
  if (share_grow(b.shared))
    return luaL_error(L, "out of memory");
  /* The API names as Lua holds them (anchored as keys of the registry's
   * API table): a key from the decoder is one of them iff same address. */
  lua_getfield(L, LUA_REGISTRYINDEX, API_KEY);
  for (i = 0; i < N_API; i++) {
    lua_pushstring(L, fields[i].api);
    b.api[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  luaL_getmetatable(L, PHONE_MT);
  b.mt = lua_gettop(L);
  b.n = 0;
  if (lua_istable(L, 2)) {
    static const char *const keys[3] = {"cust_space_id", "isv_code", "label"};
    int k;
    for (k = 0; k < 3; k++) {
      if (lua_getfield(L, 2, keys[k]) == LUA_TSTRING && lua_rawlen(L, -1))
        space[k] = intern_top(L, &b);
      else
        lua_pop(L, 1);
    }
  }
  push_numbers_array(L, 1);
  arr = lua_gettop(L);
  if (lua_istable(L, arr))
    n = (lua_Integer)lua_rawlen(L, arr);
  lua_createtable(L, (int)n, 1);
  luaL_setmetatable(L, PHONELIST_MT);
  for (i = 1; i <= n; i++) {
    int t = lua_rawgeti(L, arr, i);
    if (t != LUA_TTABLE)
      return luaL_error(L, "PhoneNumbers[%d] is a %s, expected an object",
                        (int)i, lua_typename(L, t));
    build_phone(L, &b, lua_gettop(L), space);
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
  if (lua_getfield(L, 1, "RequestId") == LUA_TSTRING)
    lua_setfield(L, -2, "request_id");
  else
    lua_pop(L, 1);
  return 1;
}

int lca_decode_phone_numbers(lua_State *L, const char *body, size_t len,
                             int space_idx)
{
  int top, running, st;

  if (space_idx)
    space_idx = lua_absindex(L, space_idx);
  /* Everything decoding and typing allocate stays reachable until the list
   * is built: a collection meanwhile would walk the answer for nothing.
   * The collector is paused for both and resumes right after. */
  running = lua_gc(L, LUA_GCISRUNNING);
  lua_gc(L, LUA_GCSTOP);
  if (!lca_json_decode_raw(L, body, len)) {
    if (running)
      lua_gc(L, LUA_GCRESTART);
    return 0; /* nil, message */
  }
  top = lua_gettop(L);
  lua_pushcfunction(L, build_list);
  lua_insert(L, top);
  if (space_idx)
    lua_pushvalue(L, space_idx);
  else
    lua_pushnil(L);
  st = lua_pcall(L, 2, 1, 0);
  if (running)
    lua_gc(L, LUA_GCRESTART);
  if (st != LUA_OK) {
    if (lua_type(L, -1) != LUA_TSTRING)
      lua_pushliteral(L, "cannot decode the phone numbers");
    lua_pushnil(L);
    lua_insert(L, -2);
    return 0;
  }
  return 1;
}

/* chatapp.core.decode_phone_numbers(json [, space]) -> list | nil, err */
static int l_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);

  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  return lca_decode_phone_numbers(L, s, len, lua_isnoneornil(L, 2) ? 0 : 2) ? 1
                                                                            : 2;
}

static int list_tostring(lua_State *L)
{
  lua_pushfstring(L, "PhoneList (%d numbers)", (int)lua_rawlen(L, 1));
  return 1;
}

/* ---- registration ------------------------------------------------------- */

void lca_open_phone(lua_State *L)
{
  int i, e;
  static const luaL_Reg methods[] = {
    {"raw", phone_raw},
    {NULL, NULL},
  };

  /* names: field name -> id, method name -> function */
  lua_createtable(L, 0, N_FIELDS + 1);
  for (i = 0; i < N_FIELDS; i++) {
    lua_pushinteger(L, i);
    lua_setfield(L, -2, fields[i].name);
  }
  luaL_setfuncs(L, methods, 0);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, NAMES_KEY);

  luaL_newmetatable(L, PHONE_MT); /* stack: module, names, mt */
  lua_pushliteral(L, "PhoneNumber");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, phone_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, phone_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, phone_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, phone_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushliteral(L, "PhoneNumber");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);

  luaL_newmetatable(L, SHARE_MT);
  lua_pushcfunction(L, share_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, PHONELIST_MT);
  lua_pushliteral(L, "PhoneList");
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, list_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);

  /* API name -> field id, for decoding */
  lua_createtable(L, 0, N_API);
  for (i = 0; i < N_API; i++) {
    lua_pushinteger(L, i);
    lua_setfield(L, -2, fields[i].api);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, API_KEY);

  /* module.fields = {name, ...}; module.enums = {Status = {...}, ...} */
  lua_createtable(L, N_FIELDS, 0);
  for (i = 0; i < N_FIELDS; i++) {
    lua_pushstring(L, fields[i].name);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "phone_fields");
  lua_newtable(L);
  for (e = 0; enums[e].name; e++) {
    lua_createtable(L, 0, 3);
    lua_newtable(L);
    for (i = 0; enums[e].values[i]; i++) {
      lua_pushstring(L, enums[e].values[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "values");
    lua_pushstring(L, fields[enums[e].field].name);
    lua_setfield(L, -2, "field");
    lua_pushboolean(L, enums[e].closed);
    lua_setfield(L, -2, "closed");
    lua_setfield(L, -2, enums[e].name);
  }
  lua_setfield(L, -2, "enums");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode_phone_numbers");
}
