/*
 * Building a PhoneList from a QueryChatappPhoneNumbers answer: the body is
 * decoded (lca_json.c) and each number typed into a PhoneNumber whose
 * strings live in a pool shared by the whole list (lca_phone.c has the
 * type; docs/internals/typed-results.md the design).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lca_phone.h"

/* ---- decoding ----------------------------------------------------------- */

/*
 * Sharing strings while one list is built: an open-addressing table from
 * string to pool index, in a userdata on the stack that a bigger one
 * replaces when it grows (Lua memory: counted against the state's cap and
 * collected even if building raises).  Lua interns short strings, so equal
 * short strings have one address and are found by pointer; longer ones
 * (callback URLs) by content.  Getting this wrong could only cost memory:
 * equal strings under different keys get two pool slots.
 */
#define SHORT_STRING 40 /* LUAI_MAXSHORTLEN in Lua 5.4 */

typedef struct share_entry {
  const char *s; /* anchored in the pool table */
  size_t len;
  uint32_t hash, ix;
} share_entry;

typedef struct share {
  share_entry *v; /* the userdata at slot */
  size_t cap, n;  /* cap: a power of two */
  int slot;
} share;

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

/* Double the table (raises when memory runs out). */
static void share_grow(lua_State *L, share *t)
{
  share_entry *old = t->v, *nv;
  size_t oldcap = t->cap, cap = oldcap ? oldcap * 2 : 32, i;

  nv = lua_newuserdatauv(L, cap * sizeof *nv, 0); /* old still anchored */
  memset(nv, 0, cap * sizeof *nv);
  t->v = nv;
  t->cap = cap;
  for (i = 0; i < oldcap; i++)
    if (old[i].s)
      *share_slot(t, old[i].s, old[i].len, old[i].hash) = old[i];
  lua_replace(L, t->slot);
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

  if (b->shared->n * 2 >= b->shared->cap)
    share_grow(L, b->shared);
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
  case LUA_TNUMBER:
    if (!lca_push_number_text(L, -1))
      luaL_error(L, "%s is not a finite number", name);
    lua_remove(L, -2);
    return 1;
  case LUA_TBOOLEAN:
    lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
    lua_remove(L, -2);
    return 1;
  case LUA_TLIGHTUSERDATA: /* chatapp.json.null */
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
 * fields are typed here; unknown ones are kept for raw(). */
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
      int r = to_field_string(L, lca_phone_fields[f].api);
      if (r > 0)
        p->v[f] = f == F_PHONE_NUMBER ? pool_top(L, b) : intern_top(L, b);
      if (r >= 0)
        continue;
    } else if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
      lua_pop(L, 1); /* an unknown field that is null: absent */
      continue;
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

/* The JSON name of a decoded value's type (null is a light userdata). */
static const char *json_type(lua_State *L, int t)
{
  return t == LUA_TLIGHTUSERDATA ? "null" : lua_typename(L, t);
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
    luaL_error(L, "PhoneNumbers is a %s, expected an array", json_type(L, t));
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
  share shared;
  uint32_t space[3] = {0, 0, 0};
  lua_Integer i, n = 0;
  int arr;

  lua_settop(L, 2);
  if (!lua_istable(L, 1))
    return luaL_error(L, "the answer is a %s, expected an object",
                      json_type(L, lua_type(L, 1)));
  if (lua_rawlen(L, 1) > 0 || lua_getmetatable(L, 1)) /* [] is marked */
    return luaL_error(L, "the answer is an array, expected an object");
  /* The pool gets about one unique string per number (the phone number)
   * plus the shared ones: sized so it does not grow while the list is
   * built.  A small list gets a small pool: the list keeps it for as long
   * as it lives, and an ISV run keeps thousands of one-number lists (64
   * spare slots were 1 KB each; docs/internals/client.md, "Memory per
   * space"). */
  {
    lua_Integer guess = 0;
    if (lua_getfield(L, 1, "PhoneNumbers") == LUA_TTABLE)
      guess = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 1);
    if (guess > 1 << 24)
      guess = 1 << 24;
    lua_createtable(L, (int)(guess + (guess < 56 ? guess + 8 : 64)), 0);
    b.pool = lua_gettop(L);
  }
  memset(&shared, 0, sizeof shared);
  lua_pushnil(L);
  shared.slot = lua_gettop(L);
  b.shared = &shared;
  share_grow(L, &shared);
  /* The API names as Lua holds them (anchored as keys of the registry's
   * API table): a key from the decoder is one of them iff same address. */
  lua_getfield(L, LUA_REGISTRYINDEX, API_KEY);
  for (i = 0; i < N_API; i++) {
    lua_pushstring(L, lca_phone_fields[i].api);
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
                        (int)i, json_type(L, t));
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

/* Answers from this size up are decoded with the collector paused. */
#define PAUSE_GC_BYTES (256 * 1024)

typedef struct body_ref {
  const char *text;
  size_t len;
} body_ref;

/* Under pcall: 1 = the body (a body_ref as light userdata), 2 = space or
 * nil. */
static int decode_list(lua_State *L)
{
  const body_ref *r = lua_touserdata(L, 1);

  lca_json_push_decoded(L, r->text, r->len, LCA_JSON_BIG_TEXT);
  lua_replace(L, 1); /* 1 = decoded answer, 2 = space */
  return build_list(L);
}

int lca_decode_phone_numbers(lua_State *L, const char *body, size_t len,
                             int space_idx)
{
  body_ref r;
  int running, st;

  if (space_idx)
    space_idx = lua_absindex(L, space_idx);
  r.text = body;
  r.len = len;
  /* Nothing below allocates or raises outside the protected call. */
  lua_pushcfunction(L, decode_list);
  lua_pushlightuserdata(L, &r);
  if (space_idx)
    lua_pushvalue(L, space_idx);
  else
    lua_pushnil(L);
  /* Everything decoding and typing allocate stays reachable until the list
   * is built: a collection meanwhile would walk the answer for nothing.
   * For a large answer the collector is paused for the protected call
   * only, and resumes on every path (an error or out of memory included).
   * Not for a small one: LUA_GCRESTART sets the collector's debt to zero,
   * a step at the next allocation, and thousands of small answers (a
   * space each) made the collector run a step per answer: a run over
   * 10,000 spaces spent seconds collecting for nothing. */
  running = len >= PAUSE_GC_BYTES && lua_gc(L, LUA_GCISRUNNING);
  if (running)
    lua_gc(L, LUA_GCSTOP);
  st = lua_pcall(L, 2, 1, 0);
  if (running)
    lua_gc(L, LUA_GCRESTART);
  if (st != LUA_OK) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "cannot decode the phone numbers");
    }
    lua_pushnil(L);
    lua_insert(L, -2);
  }
  return st;
}
