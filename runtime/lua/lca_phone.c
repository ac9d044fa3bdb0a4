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
 * History (core.phone_attach, by the state store): n.previous (the number
 * at the last fetch, a PhoneNumber), n.first_seen, n:changed(field),
 * n:changed(), n:since(field), n:held(field).  It lives outside the number,
 * in a table with weak keys (an ephemeron table) from the number to a
 * small userdata: numbers without history are no bigger, and a history is
 * collected with its number.  No clock is read here: the times are the
 * caller's.
 *
 * The metatable is locked (__metatable), so __index only ever sees our own
 * userdata and can use lua_touserdata.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_suggest.h"
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
  "CONNECTED", "FLAGGED",  "RESTRICTED",   "BANNED",     "RATE_LIMITED",
  "PENDING",   "MIGRATED", "DISCONNECTED", "UNVERIFIED", "DELETED",
  "UNKNOWN",   "OFFLINE",  "PAUSED",       NULL};
static const char *const quality_values[] = {"GREEN", "YELLOW", "RED",
                                             "UNKNOWN", NULL};
static const char *const tier_values[] = {
  "TIER_50",   "TIER_250",       "TIER_1K",      "TIER_2K", "TIER_10K",
  "TIER_100K", "TIER_UNLIMITED", "TIER_NOT_SET", NULL};
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

/* Names beyond the fields: the history a policy reads like fields. */
static const char *const hist_names[N_NAMES - N_FIELDS] = {"previous",
                                                           "first_seen"};

/* Methods, in the order error messages list them. */
static const char *const method_names[] = {"raw", "changed", "since", "held",
                                           NULL};

static const char *name_of(int i)
{
  return i < N_FIELDS ? lca_phone_fields[i].name : hist_names[i - N_FIELDS];
}

/* Push the stored string of field f of the number p at idx, or nil. */
static int push_field(lua_State *L, int idx, const phone *p, int f)
{
  if (!p->v[f]) {
    lua_pushnil(L);
    return LUA_TNIL;
  }
  lua_getiuservalue(L, idx, 1);
  lua_rawgeti(L, -1, p->v[f]);
  lua_remove(L, -2);
  return LUA_TSTRING;
}

/* Push the value of field f (< N_FIELDS: stored or derived) of the number p
 * at idx (absolute), or nil.  Allocates nothing. */
static void push_value(lua_State *L, int idx, const phone *p, int f)
{
  if (f < N_STORED) {
    push_field(L, idx, p, f);
  } else if (f == F_MESSAGING_LIMIT) {
    double lim = -1;
    if (push_field(L, idx, p, F_MESSAGING_LIMIT_TIER) == LUA_TSTRING)
      lim = tier_limit(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (lim < 0) /* not a tier (at most 9 digits: always in range) */
      lua_pushnil(L);
    else if (isinf(lim))
      lua_pushnumber(L, lim);
    else
      lua_pushinteger(L, (lua_Integer)lim);
  } else { /* F_QUALITY_LEVEL */
    int q = 0;
    if (push_field(L, idx, p, F_QUALITY_RATING) == LUA_TSTRING)
      q = quality_level(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (q)
      lua_pushinteger(L, q);
    else
      lua_pushnil(L);
  }
}

/* ---- history ------------------------------------------------------------ */

/*
 * What core.phone_attach stored for one number: a userdata whose one user
 * value is the previous PhoneNumber (nil for a number seen for the first
 * time), in the history table under the number.  Times are Unix seconds,
 * checked to be 0 .. MAX_TIME (2106) and kept in 32 bits: a history is
 * then 60 bytes of data (docs/internals/typed-results.md has the figure).
 */
typedef struct phone_hist {
  uint32_t first_seen, now;
  uint32_t since[N_TRACKED]; /* by F_* - F_TRACKED_FIRST */
  uint32_t known;            /* bit i: since[i] is known */
} phone_hist;

#define MAX_TIME 4294967295 /* 2106-02-07T06:28:15Z */

/* Push the history of the number at idx (absolute) from the history table
 * at tab, or nil; return it or NULL. */
static const phone_hist *push_hist(lua_State *L, int idx, int tab)
{
  lua_pushvalue(L, idx);
  if (lua_rawget(L, tab) != LUA_TUSERDATA)
    return NULL;
  return lua_touserdata(L, -1);
}

/* Push the previous number of the number at idx (absolute) from the history
 * table at tab, or nil; return it or NULL.  Leaves one value. */
static const phone *push_previous(lua_State *L, int idx, int tab)
{
  if (!push_hist(L, idx, tab))
    return NULL; /* nil pushed */
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
  return lua_touserdata(L, -1); /* NULL for nil */
}

static void add_suggestion(luaL_Buffer *b, const char *best)
{
  if (best) {
    luaL_addstring(b, " (did you mean '");
    luaL_addstring(b, best);
    luaL_addstring(b, "'?)");
  }
}

static int no_such_field(lua_State *L, const char *key)
{
  luaL_Buffer b;
  const char *best = NULL;
  size_t bestd = 4, i;

  for (i = 0; i < N_NAMES; i++)
    best = ca_suggest_nearer(key, name_of((int)i), best, &bestd);
  for (i = 0; method_names[i]; i++)
    best = ca_suggest_nearer(key, method_names[i], best, &bestd);
  luaL_where(L, 1); /* the policy line that read the field */
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "PhoneNumber has no field '");
  luaL_addstring(&b, key);
  luaL_addstring(&b, "'");
  add_suggestion(&b, best);
  luaL_addstring(&b, "; valid fields: ");
  for (i = 0; i < N_NAMES; i++) {
    if (i)
      luaL_addstring(&b, ", ");
    luaL_addstring(&b, name_of((int)i));
  }
  luaL_addstring(&b, "; methods: ");
  for (i = 0; method_names[i]; i++) {
    if (i)
      luaL_addstring(&b, ", ");
    luaL_addstring(&b, method_names[i]);
  }
  luaL_pushresult(&b);
  lua_concat(L, 2);
  return lua_error(L);
}

/* __index: upvalue 1 is the names table (field id or method function),
 * upvalue 2 the history table. */
static int phone_index(lua_State *L)
{
  const phone *p = lua_touserdata(L, 1);
  const phone_hist *h;
  lua_Integer f;

  lua_pushvalue(L, 2);
  switch (lua_rawget(L, lua_upvalueindex(1))) {
  case LUA_TNUMBER:
    f = lua_tointeger(L, -1);
    if (f < N_FIELDS)
      push_value(L, 1, p, (int)f);
    else if (f == F_PREVIOUS)
      push_previous(L, 1, lua_upvalueindex(2));
    else if ((h = push_hist(L, 1, lua_upvalueindex(2))) != NULL)
      lua_pushinteger(L, h->first_seen); /* F_FIRST_SEEN */
    else
      lua_pushnil(L);
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
  if (push_field(L, 1, p, F_PHONE_NUMBER) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "(no number)");
  }
  lua_pushliteral(L, " (");
  if (push_field(L, 1, p, F_STATUS) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "-");
  }
  lua_pushliteral(L, ", ");
  if (push_field(L, 1, p, F_QUALITY_RATING) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_pushliteral(L, "-");
  }
  lua_pushliteral(L, ", ");
  if (push_field(L, 1, p, F_MESSAGING_LIMIT_TIER) == LUA_TNIL) {
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
    if (push_field(L, 1, p, i) == LUA_TSTRING)
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

/* __pairs: the fields that have a value, in declaration order, then
 * first_seen when there is a history (previous is left out: it is another
 * number, read it by name). */
static int phone_next(lua_State *L)
{
  int i = 0;

  if (!lua_isnil(L, 2)) {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
    i = (int)lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
  }
  for (; i < N_NAMES; i++) {
    if (i == F_PREVIOUS)
      continue;
    lua_settop(L, 1);
    lua_pushstring(L, name_of(i));
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

/* ---- history methods ---------------------------------------------------- */

/* Fields the history methods accept: the tracked ones and the two derived
 * from them. */
static int is_tracked(int f)
{
  return (f >= F_TRACKED_FIRST && f < N_API) || f == F_MESSAGING_LIMIT ||
         f == F_QUALITY_LEVEL;
}

/* The tracked field whose time a derived field shares. */
static int source_of(int f)
{
  if (f == F_MESSAGING_LIMIT)
    return F_MESSAGING_LIMIT_TIER;
  if (f == F_QUALITY_LEVEL)
    return F_QUALITY_RATING;
  return f;
}

/* The field id named by argument arg of method `method`, which must be a
 * tracked field (or a derived one); raises at the policy line otherwise,
 * in the style of no_such_field.  names: index of the names table. */
static int check_tracked(lua_State *L, int arg, int names, const char *method)
{
  luaL_Buffer b;
  const char *key, *best = NULL;
  size_t bestd = 4;
  int f = -1, i;

  if (lua_type(L, arg) != LUA_TSTRING) {
    /* before pushing: arg may be past the top */
    int none = lua_isnone(L, arg);
    const char *type = luaL_typename(L, arg);
    luaL_where(L, 1);
    lua_pushfstring(L,
                    "PhoneNumber:%s(field): the field is %s%s, expected "
                    "a field name such as 'quality_rating'",
                    method, none ? "missing" : "a ", none ? "" : type);
    lua_concat(L, 2);
    return lua_error(L);
  }
  lua_pushvalue(L, arg);
  if (lua_rawget(L, names) == LUA_TNUMBER)
    f = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (is_tracked(f))
    return f;
  key = lua_tostring(L, arg);
  for (i = 0; i < N_FIELDS; i++)
    best =
      ca_suggest_nearer(key, is_tracked(i) ? name_of(i) : NULL, best, &bestd);
  luaL_where(L, 1);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "PhoneNumber:");
  luaL_addstring(&b, method);
  luaL_addstring(&b, "(field): '");
  luaL_addstring(&b, key);
  luaL_addstring(&b, f >= 0 ? "' is not a tracked field" : "' is not a field");
  add_suggestion(&b, best);
  luaL_addstring(&b, "; tracked fields: ");
  for (i = F_TRACKED_FIRST; i < N_API; i++) {
    luaL_addstring(&b, name_of(i));
    luaL_addstring(&b, ", ");
  }
  luaL_addstring(&b, "and the derived messaging_limit, quality_level");
  luaL_pushresult(&b);
  lua_concat(L, 2);
  return lua_error(L);
}

/* n:changed() with no field: true and the names of the tracked fields that
 * changed, in field order; false and {} when none did or there is no
 * previous.  The number is at 1, the previous at 2 (nil: none). */
static int changed_any(lua_State *L, const phone *p, const phone *prev)
{
  int f, n = 0;

  lua_newtable(L); /* 3 */
  if (prev)
    for (f = F_TRACKED_FIRST; f < N_API; f++) {
      push_field(L, 2, prev, f);
      push_field(L, 1, p, f);
      if (!lua_rawequal(L, -1, -2)) {
        lua_pushstring(L, name_of(f)); /* a key of the names table */
        lua_rawseti(L, 3, ++n);
      }
      lua_pop(L, 2);
    }
  lua_pushboolean(L, n > 0);
  lua_insert(L, 3);
  return 2;
}

/*
 * n:changed(field) -> changed, old, new: whether the field's value differs
 * from the previous number's (absent and present differ), the previous
 * value and the current one; false, nil, current for a number without
 * previous.  n:changed() -> see changed_any.
 * Upvalues: 1 the history table, 2 the names table.
 */
static int phone_changed(lua_State *L)
{
  const phone *p = luaL_checkudata(L, 1, PHONE_MT);
  const phone *prev;
  int f = -1;

  if (lua_gettop(L) >= 2)
    f = check_tracked(L, 2, lua_upvalueindex(2), "changed");
  lua_settop(L, 1);
  prev = push_previous(L, 1, lua_upvalueindex(1)); /* 2 */
  if (f < 0)
    return changed_any(L, p, prev);
  if (prev)
    push_value(L, 2, prev, f); /* 3: old */
  else
    lua_pushnil(L);
  push_value(L, 1, p, f); /* 4: new */
  lua_pushboolean(L, prev && !lua_rawequal(L, 3, 4));
  lua_insert(L, 3);
  return 3;
}

/* The history of the number at 1 and the tracked field named at 2, for
 * since() and held(); NULL (and nothing known) without history. */
static const phone_hist *check_time_of(lua_State *L, const char *method,
                                       int *known)
{
  const phone_hist *h;
  int f, i;

  luaL_checkudata(L, 1, PHONE_MT);
  f = check_tracked(L, 2, lua_upvalueindex(2), method);
  i = source_of(f) - F_TRACKED_FIRST;
  h = push_hist(L, 1, lua_upvalueindex(1));
  lua_pop(L, 1); /* still anchored: the number at 1 holds it */
  *known = h && (h->known >> i & 1u) ? i : -1;
  return h;
}

/* n:since(field) -> the Unix time the field took its current value, or nil
 * when unknown.  Upvalues as phone_changed. */
static int phone_since(lua_State *L)
{
  int i;
  const phone_hist *h = check_time_of(L, "since", &i);

  if (i < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, (lua_Integer)h->since[i]);
  return 1;
}

/* n:held(field) -> seconds the field has held its current value at the
 * run's time (now - since, 0 if the clock went back), or nil when unknown. */
static int phone_held(lua_State *L)
{
  int i;
  const phone_hist *h = check_time_of(L, "held", &i);

  if (i < 0)
    lua_pushnil(L);
  else
    lua_pushinteger(L, h->now > h->since[i]
                         ? (lua_Integer)h->now - (lua_Integer)h->since[i]
                         : 0);
  return 1;
}

/* The time at idx, argument arg of core.phone_attach (what names it):
 * an integer, 0 to MAX_TIME. */
static uint32_t check_unix_time(lua_State *L, int idx, int arg,
                                const char *what)
{
  lua_Integer t;

  if (!lua_isinteger(L, idx))
    return (uint32_t)luaL_argerror(
      L, arg,
      lua_pushfstring(
        L, "%s: an integer Unix time (seconds) expected, got %s%s", what,
        luaL_typename(L, idx),
        lua_type(L, idx) == LUA_TNUMBER ? " (not an integer)" : ""));
  t = lua_tointeger(L, idx);
  if (t < 0 || t > MAX_TIME)
    return (uint32_t)luaL_argerror(
      L, arg,
      lua_pushfstring(L,
                      "%s: %I is not a Unix time in "
                      "seconds (0 to %I, in 2106; milliseconds?)",
                      what, t, (lua_Integer)MAX_TIME));
  return (uint32_t)t;
}

/*
 * core.phone_attach(n, previous, first_seen, since, now): attach the
 * history of n (replacing any): previous a PhoneNumber or nil (seen for the
 * first time; it must have no history of its own, so previous.previous is
 * nil), first_seen and now integer Unix times, since a table tracked field
 * name -> the Unix time it took its current value (a field left out is
 * unknown).  Upvalues: 1 the history table, 2 the names table.
 */
static int l_attach(lua_State *L)
{
  const phone *n = luaL_checkudata(L, 1, PHONE_MT);
  const phone *prev = NULL;
  uint32_t first_seen, now;
  phone_hist *h;

  if (!lua_isnoneornil(L, 2))
    prev = luaL_checkudata(L, 2, PHONE_MT);
  first_seen = check_unix_time(L, 3, 3, "first_seen");
  luaL_checktype(L, 4, LUA_TTABLE);
  now = check_unix_time(L, 5, 5, "now");
  lua_settop(L, 5);
  if (prev == n)
    return luaL_argerror(L, 2, "a number cannot be its own previous");
  if (prev) {
    if (push_hist(L, 2, lua_upvalueindex(1)))
      return luaL_argerror(L, 2,
                           "previous has a history of its own (a previous "
                           "is a snapshot: decode it for the purpose)");
    push_field(L, 1, n, F_PHONE_NUMBER);
    push_field(L, 2, prev, F_PHONE_NUMBER);
    if (lua_isstring(L, -1) && lua_isstring(L, -2) && !lua_rawequal(L, -1, -2))
      return luaL_argerror(L, 2,
                           lua_pushfstring(L, "previous is number %s, not %s",
                                           lua_tostring(L, -1),
                                           lua_tostring(L, -2)));
    lua_settop(L, 5);
  }
  h = lua_newuserdatauv(L, sizeof *h, 1); /* 6 */
  memset(h, 0, sizeof *h);
  h->first_seen = first_seen;
  h->now = now;
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    int f = -1;
    uint32_t t;
    if (lua_type(L, -2) == LUA_TSTRING) {
      lua_pushvalue(L, -2);
      if (lua_rawget(L, lua_upvalueindex(2)) == LUA_TNUMBER)
        f = (int)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    if (f < F_TRACKED_FIRST || f >= N_API)
      return luaL_argerror(L, 4,
                           lua_pushfstring(L,
                                           "since: %s is not a tracked field "
                                           "(core.phone_tracked() lists them)",
                                           luaL_tolstring(L, -2, NULL)));
    t = check_unix_time(L, lua_gettop(L), 4, name_of(f));
    h->since[f - F_TRACKED_FIRST] = t;
    h->known |= 1u << (f - F_TRACKED_FIRST);
    lua_pop(L, 1);
  }
  if (prev) {
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 6, 1);
  }
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 6);
  lua_rawset(L, lua_upvalueindex(1));
  return 0;
}

/* core.phone_tracked() -> a new list of the tracked field names, in field
 * order: what the state store keeps times for and n:changed() compares. */
static int l_tracked(lua_State *L)
{
  int i;

  lua_createtable(L, N_TRACKED, 0);
  for (i = 0; i < N_TRACKED; i++) {
    lua_pushstring(L, name_of(F_TRACKED_FIRST + i));
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* ---- registration ------------------------------------------------------- */

void lca_open_phone(lua_State *L)
{
  int i, e;
  /* In the order of method_names (the error messages' list). */
  static const luaL_Reg methods[] = {
    {"raw", phone_raw},     {"changed", phone_changed},
    {"since", phone_since}, {"held", phone_held},
    {NULL, NULL},
  };

  /* history: number -> history, weak keys (an ephemeron table); one per
   * state, kept if the module is opened again */
  if (lua_getfield(L, LUA_REGISTRYINDEX, HIST_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, HIST_KEY);
  }

  /* names: field name -> id, method name -> function (upvalues: history,
   * names) */
  lua_createtable(L, 0, N_NAMES + 4);
  for (i = 0; i < N_NAMES; i++) {
    lua_pushinteger(L, i);
    lua_setfield(L, -2, name_of(i));
  }
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, methods, 2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, NAMES_KEY);

  /* stack: module, history, names */
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  lua_pushcclosure(L, l_attach, 2);
  lua_setfield(L, -4, "phone_attach");
  lua_pushcfunction(L, l_tracked);
  lua_setfield(L, -4, "phone_tracked");

  luaL_newmetatable(L, PHONE_MT); /* stack: module, history, names, mt */
  lua_pushliteral(L, "PhoneNumber");
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -4);
  lua_pushcclosure(L, phone_index, 2);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, phone_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, phone_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushcfunction(L, phone_pairs);
  lua_setfield(L, -2, "__pairs");
  lua_pushliteral(L, "PhoneNumber");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 3);

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
