/*
 * A Redis connection for the runner's own Lua code: the Redis state store
 * (lua/chatapp/state/redis.lua) and the tests.  Policies never see it:
 * they never get chatapp.core.  The connection is ca_redis (ca_redis.h):
 * the URL rules, the password from the environment, the caps on replies
 * and the reconnect backoff are all there.
 *
 *   core.redis_connect(url)    -> conn | nil, message, code
 *   conn:call(cmd, arg...)     -> reply | nil, message, code
 *   conn:eval(source, nkeys, key..., arg...)
 *                              -> reply | nil, message, code
 *                                 (EVALSHA; the script is loaded when the
 *                                 server does not know it)
 *   conn:where()               -> "redis://host:port/db" (no password)
 *   conn:round_trips()         -> commands sent so far
 *   conn:down_since()          -> when (core.monotonic()'s clock) the server
 *                                 was last reachable, while it is away;
 *                                 nil when connected
 *   conn:close()               (also __close and __gc)
 *
 * Replies: a status or a bulk string is a string, an integer an integer,
 * a nil reply false, an array a table (its nil elements false).  An error
 * reply is nil, the server's message, "EREDIS".  A connection failure is
 * nil, message, "ETRANSPORT" (or "ETIMEDOUT", "ETOOBIG", ...: the
 * chatapp_codename of the failure).  Arguments are strings or numbers.
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_redis.h"
#include "lca.h"

#define REDIS_MT "chatapp.Redis"
#define MAX_ARGS 64

typedef struct lredis {
  ca_redis *r; /* NULL: closed */
} lredis;

static ca_redis *check_open(lua_State *L)
{
  lredis *x = luaL_checkudata(L, 1, REDIS_MT);
  if (!x->r)
    luaL_error(L, "the Redis connection is closed");
  return x->r;
}

/* nil, message, code.  err is freed before anything is pushed: a push may
 * raise a memory error (the state's cap), which must not leak it. */
static int fail(lua_State *L, chatapp_status st, ca_buf *err)
{
  char msg[2048];

  snprintf(msg, sizeof msg, "%s",
           err->len ? ca_buf_str(err) : chatapp_strerror(st));
  ca_buf_free(err);
  lua_pushnil(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, chatapp_codename(st));
  return 3;
}

static int l_connect(lua_State *L)
{
  const char *url = luaL_checkstring(L, 1);
  lredis *x = lua_newuserdatauv(L, sizeof *x, 0);
  ca_buf err;
  chatapp_status st;

  x->r = NULL;
  luaL_setmetatable(L, REDIS_MT);
  ca_buf_init(&err, 2048);
  st = ca_redis_open(url, &x->r, &err);
  if (st)
    return fail(L, st, &err);
  ca_buf_free(&err);
  return 1;
}

/* Push a reply as a Lua value; depth is capped by hiredis (7 levels). */
static void push_reply(lua_State *L, const redisReply *y)
{
  switch (y->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
    lua_pushlstring(L, y->str ? y->str : "", y->str ? y->len : 0);
    break;
  case REDIS_REPLY_INTEGER:
    lua_pushinteger(L, (lua_Integer)y->integer);
    break;
  case REDIS_REPLY_ARRAY:
    luaL_checkstack(L, 4, "Redis reply too deep");
    lua_createtable(
      L, y->elements > CA_REDIS_MAX_ELEMENTS ? 0 : (int)y->elements, 0);
    for (size_t i = 0; i < y->elements && i < CA_REDIS_MAX_ELEMENTS; i++) {
      push_reply(L, y->element[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    break;
  default: /* REDIS_REPLY_NIL, or anything new */
    lua_pushboolean(L, 0);
    break;
  }
}

/* The arguments from index first on, as strings. */
static int collect(lua_State *L, int first, const char **argv, size_t *len)
{
  int top = lua_gettop(L), n = 0;

  if (top - first + 1 > MAX_ARGS)
    luaL_error(L, "at most %d arguments to a Redis command", MAX_ARGS);
  for (int i = first; i <= top; i++, n++) {
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      luaL_typeerror(L, i, "string or number");
    argv[n] = lua_tolstring(L, i, &len[n]); /* converts numbers in place */
  }
  return n;
}

static int build(lua_State *L)
{
  const redisReply *x = lua_touserdata(L, 1);

  if (x->type == REDIS_REPLY_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, x->str ? x->str : "", x->str ? x->len : 0);
    lua_pushliteral(L, "EREDIS");
    return 3;
  }
  push_reply(L, x);
  return 1;
}

/* Push the reply x (freed here) as call's results. */
static int answer(lua_State *L, redisReply *x)
{
  int rc, top = lua_gettop(L);

  /* Built under lua_pcall: a memory error (the state's cap) must not leak
   * x; it is raised again once x is freed. */
  lua_pushcfunction(L, build);
  lua_pushlightuserdata(L, x);
  rc = lua_pcall(L, 1, LUA_MULTRET, 0);
  freeReplyObject(x);
  if (rc != LUA_OK)
    return lua_error(L);
  return lua_gettop(L) - top;
}

static int l_call(lua_State *L)
{
  ca_redis *r = check_open(L);
  const char *argv[MAX_ARGS];
  size_t len[MAX_ARGS];
  redisReply *x;
  ca_buf err;
  chatapp_status st;
  int n = collect(L, 2, argv, len);

  if (n == 0)
    return luaL_error(L, "a Redis command needs a name");
  ca_buf_init(&err, 2048);
  st = ca_redis_command(r, n, argv, len, &x, &err);
  if (st)
    return fail(L, st, &err);
  ca_buf_free(&err);
  return answer(L, x);
}

static int l_eval(lua_State *L)
{
  ca_redis *r = check_open(L);
  ca_redis_script s = {luaL_checkstring(L, 2), ""};
  lua_Integer nkeys = luaL_checkinteger(L, 3);
  const char *argv[MAX_ARGS];
  size_t len[MAX_ARGS];
  redisReply *x;
  ca_buf err;
  chatapp_status st;
  int n = collect(L, 4, argv, len);

  luaL_argcheck(L, nkeys >= 0 && nkeys <= n, 3, "keys out of range");
  ca_buf_init(&err, 2048);
  st = ca_redis_eval(r, &s, (int)nkeys, n, argv, len, &x, &err);
  if (st)
    return fail(L, st, &err);
  ca_buf_free(&err);
  return answer(L, x);
}

static int l_where(lua_State *L)
{
  lua_pushstring(L, ca_redis_where(check_open(L)));
  return 1;
}

static int l_round_trips(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)ca_redis_round_trips(check_open(L)));
  return 1;
}

static int l_down_since(lua_State *L)
{
  int64_t t = ca_redis_down_since(check_open(L));

  if (t == 0)
    lua_pushnil(L);
  else
    lua_pushnumber(L, (lua_Number)t / 1e6);
  return 1;
}

static int l_close(lua_State *L)
{
  lredis *x = luaL_checkudata(L, 1, REDIS_MT);
  ca_redis_free(x->r);
  x->r = NULL;
  return 0;
}

void lca_open_redis(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"call", l_call},
    {"eval", l_eval},
    {"where", l_where},
    {"round_trips", l_round_trips},
    {"down_since", l_down_since},
    {"close", l_close},
    {NULL, NULL},
  };

  if (luaL_newmetatable(L, REDIS_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "redis_connect");
}
