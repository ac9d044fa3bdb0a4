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

#include "lca_phone.h"

const lca_phone_field lca_phone_fields[N_FIELDS] = {
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

/*
 * TIER_50 -> 50, TIER_1K -> 1000, TIER_2M -> 2000000, TIER_UNLIMITED ->
 * huge; anything else -1.  Strict: "TIER_", 1 to TIER_DIGITS digits (no
 * sign, no leading zero, no exponent), then nothing, K or M; so the value
 * is an exact integer far below 2^53 and never out of range.
 */
#define TIER_DIGITS 9
static double tier_limit(const char *t)
{
  const char *d;
  long long n = 0;
  size_t i;

  if (strncmp(t, "TIER_", 5) != 0)
    return -1;
  d = t + 5;
  if (strcmp(d, "UNLIMITED") == 0)
    return HUGE_VAL;
  for (i = 0; d[i] >= '0' && d[i] <= '9'; i++) {
    if (i == TIER_DIGITS || (i == 0 && d[i] == '0'))
      return -1;
    n = n * 10 + (d[i] - '0');
  }
  if (i == 0)
    return -1;
  if (d[i] == '\0')
    return (double)n;
  if (d[i + 1] != '\0')
    return -1;
  if (d[i] == 'K')
    return (double)(n * 1000);
  if (d[i] == 'M')
    return (double)(n * 1000000);
  return -1;
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
    size_t d = distance(key, lca_phone_fields[i].name);
    if (d < bestd) {
      bestd = d;
      best = lca_phone_fields[i].name;
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
    luaL_addstring(&b, lca_phone_fields[i].name);
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
      if (lim < 0) /* not a tier (at most 9 digits: always in range) */
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
      lua_setfield(L, -2, lca_phone_fields[i].api);
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
    lua_pushstring(L, lca_phone_fields[i].name);
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

/* chatapp.core.decode_phone_numbers(json [, space]) -> list |
 * nil, message, "EPARSE" | "ENOMEM" */
static int l_decode(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int st;

  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  st = lca_decode_phone_numbers(L, s, len, lua_isnoneornil(L, 2) ? 0 : 2);
  if (st == LUA_OK)
    return 1;
  lua_pushstring(L, st == LUA_ERRMEM ? "ENOMEM" : "EPARSE");
  return 3;
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
    lua_setfield(L, -2, lca_phone_fields[i].name);
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
    lua_setfield(L, -2, lca_phone_fields[i].api);
  }
  lua_setfield(L, LUA_REGISTRYINDEX, API_KEY);

  /* module.fields = {name, ...}; module.enums = {Status = {...}, ...} */
  lua_createtable(L, N_FIELDS, 0);
  for (i = 0; i < N_FIELDS; i++) {
    lua_pushstring(L, lca_phone_fields[i].name);
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
    lua_pushstring(L, lca_phone_fields[enums[e].field].name);
    lua_setfield(L, -2, "field");
    lua_pushboolean(L, enums[e].closed);
    lua_setfield(L, -2, "closed");
    lua_setfield(L, -2, enums[e].name);
  }
  lua_setfield(L, -2, "enums");
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode_phone_numbers");
}
