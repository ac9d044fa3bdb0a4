/*
 * Client: signed, throttled, retried CAMS calls from Lua.
 *
 *   chatapp.client{key = value, ...}      -> Client | nil, ApiError
 *   client:query_phone_numbers{cust_space_id=, isv_code=, status=, label=}
 *       -> PhoneList | nil, ApiError
 *   client:call(operation, params)        -> table | nil, ApiError
 *   client:batch{ {operation=, params=, space=, typed=, keep_body=}, ... }
 *       -> results, errors   (same indices; one of the two is set)
 *   A batch may also hold plain HTTP requests (webhooks):
 *     {url=, method=, headers={name=value}, body=, timeout_ms=,
 *      max_attempts=, idempotent=}  -> result {status=, body=}
 *   client:stats()                         -> table of counters
 *   client:close()
 *
 * Every call of a batch runs at once under the shared limiter.  Expected
 * failures return nil and an ApiError; misuse raises.  The C calls are
 * owned by a scratch userdata while Lua code runs, so a raise never leaks.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_config.h"
#include "lca.h"

#define CALLSET_MT "chatapp.CallSet"
#define QUERY_OP   "QueryChatappPhoneNumbers"

typedef struct LClient {
  ca_client *c; /* NULL when closed */
  int owned;
} LClient;

typedef struct callset {
  ca_call **calls;
  size_t n;
} callset;

/* ---- the Client userdata ------------------------------------------------ */

void lca_client_push(lua_State *L, ca_client *c, int owned)
{
  LClient *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = c;
  u->owned = owned;
  luaL_setmetatable(L, CLIENT_MT);
  lca_secrets_add_client(L, c); /* its secrets are redacted in every sink */
}

ca_client *lca_client_check(lua_State *L, int idx)
{
  LClient *u = luaL_checkudata(L, idx, CLIENT_MT);
  luaL_argcheck(L, u->c != NULL, idx, "the client is closed");
  return u->c;
}

/* client:account() -> the account its calls count against */
static int client_account(lua_State *L)
{
  lua_pushstring(L, ca_client_account(lca_client_check(L, 1)));
  return 1;
}

static int client_close(lua_State *L)
{
  LClient *u = luaL_checkudata(L, 1, CLIENT_MT);
  if (u->owned)
    ca_client_free(u->c);
  u->c = NULL;
  return 0;
}

static int client_tostring(lua_State *L)
{
  LClient *u = luaL_checkudata(L, 1, CLIENT_MT);
  if (u->c)
    lua_pushfstring(L, "Client (%s, signature v%d)", ca_client_endpoint(u->c),
                    ca_client_signature_version(u->c));
  else
    lua_pushliteral(L, "Client (closed)");
  return 1;
}

/* ---- call sets ---------------------------------------------------------- */

static void callset_clear(callset *cs)
{
  size_t i;

  for (i = 0; cs->calls && i < cs->n; i++)
    ca_call_free(cs->calls[i]);
  free(cs->calls);
  cs->calls = NULL;
  cs->n = 0;
}

static int callset_gc(lua_State *L)
{
  callset_clear(luaL_checkudata(L, 1, CALLSET_MT));
  return 0;
}

/*
 * Building a call: every field is read and checked first (reads can raise:
 * an __index metamethod, a bad type, out of memory); only then is C memory
 * allocated, and from there to the moment the call set owns the call no
 * Lua function that can raise is called.
 */

/* Build the ca_call for the flat parameter table on top (popped). */
static ca_call *new_api_call(lua_State *L, const char *op)
{
  size_t n = 0, i = 0;
  ca_kv *kv;
  ca_call *call;

  lua_pushnil(L);
  while (lua_next(L, -2)) {
    /* lua_tostring below must not convert (it would allocate) */
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "flattened parameters must be strings");
    n++;
    lua_pop(L, 1);
  }
  /* No Lua call may raise between this malloc and its free. */
  kv = calloc(n ? n : 1, sizeof *kv);
  if (!kv)
    return NULL;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    kv[i].key = lua_tostring(L, -2); /* flat keys and values are strings */
    kv[i].value = lua_tostring(L, -1);
    i++;
    lua_pop(L, 1);
  }
  call = ca_call_new_api(op, kv, n);
  free(kv);
  lua_pop(L, 1);
  return call;
}

/* Build the ca_call for the HTTP request table at rq. */
static ca_call *new_http_call(lua_State *L, int rq)
{
  const char *url, *method, *body = NULL;
  size_t body_len = 0, n = 0, i = 0;
  ca_kv *kv;
  ca_call *call;
  int headers, idempotent;
  lua_Integer timeout_ms, max_attempts;

  if (lua_getfield(L, rq, "url") != LUA_TSTRING)
    luaL_error(L, "request url must be a string");
  url = lua_tostring(L, -1);
  lua_getfield(L, rq, "body");
  if (lua_type(L, -1) == LUA_TSTRING)
    body = lua_tolstring(L, -1, &body_len);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "request body must be a string");
  if (lua_getfield(L, rq, "method") == LUA_TSTRING)
    method = lua_tostring(L, -1);
  else if (lua_isnil(L, -1))
    method = body ? "POST" : "GET";
  else
    method = luaL_checkstring(L, -1); /* raises: not a string */
  lua_getfield(L, rq, "timeout_ms");
  timeout_ms = lua_tointeger(L, -1);
  lua_getfield(L, rq, "max_attempts");
  max_attempts = lua_tointeger(L, -1);
  /* With an idempotency key a POST may be sent again after a network
   * failure: the receiver deduplicates. */
  lua_getfield(L, rq, "idempotent");
  idempotent = lua_toboolean(L, -1);
  lua_pop(L, 3);
  if (lua_getfield(L, rq, "headers") != LUA_TNIL)
    luaL_checktype(L, -1, LUA_TTABLE);
  headers = lua_gettop(L);
  if (lua_istable(L, headers)) {
    lua_pushnil(L);
    while (lua_next(L, headers)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "request headers must map names to strings");
      if (strpbrk(lua_tostring(L, -2), "\r\n:") ||
          strpbrk(lua_tostring(L, -1), "\r\n"))
        luaL_error(L, "request header %s has a newline or colon in it",
                   lua_tostring(L, -2));
      n++;
      lua_pop(L, 1);
    }
  }
  /* No Lua call may raise between this malloc and its free. */
  kv = calloc(n ? n : 1, sizeof *kv);
  if (!kv)
    return NULL;
  if (lua_istable(L, headers)) {
    lua_pushnil(L);
    while (lua_next(L, headers)) {
      kv[i].key = lua_tostring(L, -2);
      kv[i].value = lua_tostring(L, -1);
      i++;
      lua_pop(L, 1);
    }
  }
  call = ca_call_new_http(method, url, kv, n, body, body_len);
  free(kv);
  if (!call)
    return NULL;
  call->timeout_ms =
    timeout_ms > 0 && timeout_ms < LONG_MAX ? (long)timeout_ms : 0;
  call->max_attempts =
    max_attempts > 0 && max_attempts < INT_MAX ? (int)max_attempts : 0;
  if (idempotent)
    call->is_write = 0;
  return call; /* the caller pops the fields read */
}

/* Copy space.k into flat[name] unless the caller set it. */
static void param_from_space(lua_State *L, int flat, int space,
                             const char *name, const char *k)
{
  if (lua_getfield(L, flat, name) != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  if (lua_getfield(L, space, k) == LUA_TSTRING && lua_rawlen(L, -1) > 0)
    lua_setfield(L, flat, name);
  else
    lua_pop(L, 1);
}

/* A progress line on stderr: "label: 3/10, 12 calls, 0 throttled". */
typedef struct progress {
  ca_client *c;
  char label[96];
  int shown;
} progress;

static void show_progress(void *ud, size_t done, size_t total)
{
  progress *p = ud;
  ca_client_stats s;

  ca_client_stats_get(p->c, &s);
  fprintf(stderr, "\r\033[K%s: %zu/%zu, %llu calls, %llu throttled", p->label,
          done, total, (unsigned long long)s.attempts,
          (unsigned long long)s.throttled);
  fflush(stderr);
  p->shown = 1;
}

/* Set res[i] or errs[i] from the ended call; reqs[i] is its request. */
static void push_result(lua_State *L, const ca_call *call, int reqs,
                        lua_Integer i, int res, int errs)
{
  int typed, st, rq, top = lua_gettop(L);

  if (call->status != CHATAPP_OK) {
    lca_push_call_error(L, call);
    lua_rawseti(L, errs, i);
    return;
  }
  if (call->kind == CA_CALL_HTTP) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, call->http_status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, ca_buf_str(&call->body), call->body.len);
    lua_setfield(L, -2, "body");
    lua_rawseti(L, res, i);
    return;
  }
  lua_rawgeti(L, reqs, i);
  rq = lua_gettop(L);
  typed = strcmp(call->operation, QUERY_OP) == 0 &&
          (lua_getfield(L, rq, "typed") == LUA_TNIL || lua_toboolean(L, -1));
  lua_getfield(L, rq, "space");
  if (typed)
    st = lca_decode_phone_numbers(L, ca_buf_str(&call->body), call->body.len,
                                  lua_istable(L, -1) ? -1 : 0);
  else
    st = lca_json_decode(L, ca_buf_str(&call->body), call->body.len);
  if (st == LUA_OK) {
    /* --record keeps the answer's text beside the decoded value */
    if (lua_getfield(L, rq, "keep_body") != LUA_TNIL && lua_toboolean(L, -1) &&
        lua_istable(L, -2)) {
      lua_pushlstring(L, ca_buf_str(&call->body), call->body.len);
      lua_setfield(L, -3, "raw_body");
    }
    lua_pop(L, 1);
    lua_rawseti(L, res, i);
  } else {
    /* stack: ..., nil, message; out of memory is not a bad answer */
    lca_push_error(L, st == LUA_ERRMEM ? "ENOMEM" : "EPARSE", call->operation,
                   NULL, lua_tostring(L, -1), call->env.request_id);
    lua_rawseti(L, errs, i);
  }
  lua_settop(L, top);
}

/*
 * Run the requests of the table at reqs; push results and errors tables.
 * A request is {operation=, params=, space=, typed=} or {op, params}.
 */
static int run_requests(lua_State *L, int cl, int reqs, progress *prog)
{
  ca_client *c = lca_client_check(L, cl);
  size_t n = lua_rawlen(L, reqs), i;
  callset *cs;
  int cs_idx, res, errs;

  cs = lua_newuserdatauv(L, sizeof *cs, 0);
  cs->calls = NULL;
  cs->n = 0;
  luaL_setmetatable(L, CALLSET_MT);
  cs_idx = lua_gettop(L);
  cs->calls = calloc(n ? n : 1, sizeof *cs->calls);
  if (!cs->calls)
    return luaL_error(L, "out of memory");
  for (i = 1; i <= n; i++) {
    const char *op;
    int rq, flat;

    if (lua_rawgeti(L, reqs, (lua_Integer)i) != LUA_TTABLE)
      return luaL_error(L, "request %d is a %s, expected a table", (int)i,
                        luaL_typename(L, -1));
    rq = lua_gettop(L);
    if (lua_getfield(L, rq, "url") == LUA_TSTRING) {
      lua_pop(L, 1);
      cs->calls[i - 1] = new_http_call(L, rq);
      if (!cs->calls[i - 1])
        return luaL_error(L, "out of memory");
      cs->n = i;
      lua_settop(L, cs_idx);
      continue;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, rq, "operation") == LUA_TNIL) {
      lua_pop(L, 1);
      lua_rawgeti(L, rq, 1);
    }
    op = lua_tostring(L, -1);
    if (!op || !*op)
      return luaL_error(L, "request %d has no operation name", (int)i);
    if (lua_getfield(L, rq, "params") == LUA_TNIL) {
      lua_pop(L, 1);
      if (lua_rawgeti(L, rq, 2) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_newtable(L);
      }
    }
    lca_flatten_params(L, -1);
    flat = lua_gettop(L);
    if (lua_getfield(L, rq, "space") == LUA_TTABLE &&
        strcmp(op, QUERY_OP) == 0) {
      param_from_space(L, flat, flat + 1, "CustSpaceId", "cust_space_id");
      param_from_space(L, flat, flat + 1, "IsvCode", "isv_code");
    }
    lua_pop(L, 1);
    cs->calls[i - 1] = new_api_call(L, op); /* pops flat */
    if (!cs->calls[i - 1])
      return luaL_error(L, "out of memory");
    cs->n = i;
    lua_settop(L, cs_idx);
  }

  /* No raise can happen between these two: prog may live on the stack.
   * Each call carries how it ended: when the engine fails, the calls it
   * cut short carry that failure (status and message), so the results
   * below say it and perform's own status adds nothing here. */
  if (prog)
    ca_client_set_progress(c, show_progress, prog);
  (void)ca_client_perform(c, cs->calls, cs->n);
  ca_client_set_progress(c, NULL, NULL);
  if (prog && prog->shown) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
  /* credentials refreshed meanwhile: their secrets are redacted too */
  lca_secrets_add_client(L, c);

  lua_createtable(L, (int)n, 0);
  res = lua_gettop(L);
  lua_createtable(L, (int)n, 0);
  errs = lua_gettop(L);
  for (i = 0; i < cs->n; i++) {
    push_result(L, cs->calls[i], reqs, (lua_Integer)i + 1, res, errs);
    /* Its answer is in Lua now: the call's body and buffers go at once,
     * not when the whole batch is done (docs/internals/client.md,
     * "Memory per space"). */
    ca_call_free(cs->calls[i]);
    cs->calls[i] = NULL;
  }
  callset_clear(cs);
  return 2;
}

/* ---- methods ------------------------------------------------------------ */

/* client:batch(requests [, {progress = label}]) */
static int client_batch(lua_State *L)
{
  ca_client *c = lca_client_check(L, 1);
  progress p;
  int use = 0;

  luaL_checktype(L, 2, LUA_TTABLE);
  memset(&p, 0, sizeof p);
  p.c = c;
  if (lua_istable(L, 3) && lua_getfield(L, 3, "progress") == LUA_TSTRING) {
    snprintf(p.label, sizeof p.label, "%s", lua_tostring(L, -1));
    use = 1;
  }
  lua_settop(L, 2);
  return run_requests(L, 1, 2, use ? &p : NULL);
}

/* Run the one request on top; return value or nil, ApiError. */
static int run_one(lua_State *L)
{
  int rq = lua_gettop(L);

  lua_createtable(L, 1, 0);
  lua_pushvalue(L, rq);
  lua_rawseti(L, -2, 1);
  run_requests(L, 1, rq + 1, NULL);
  if (lua_rawgeti(L, -2, 1) != LUA_TNIL)
    return 1;
  lua_rawgeti(L, -2, 1);
  return 2;
}

static int client_call(lua_State *L)
{
  lca_client_check(L, 1);
  luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3))
    luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "operation");
  if (!lua_isnil(L, 3)) {
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "params");
  }
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "typed");
  return run_one(L);
}

/* query_phone_numbers{cust_space_id=, isv_code=, status=, label=} */
static int client_query(lua_State *L)
{
  lca_client_check(L, 1);
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_newtable(L);
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, QUERY_OP);
  lua_setfield(L, -2, "operation");
  lua_createtable(L, 0, 1);
  if (lua_getfield(L, 2, "status") != LUA_TNIL)
    lua_setfield(L, -2, "Status");
  else
    lua_pop(L, 1);
  lua_setfield(L, -2, "params");
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "space");
  return run_one(L);
}

static int client_stats(lua_State *L)
{
  ca_client *c = lca_client_check(L, 1);
  ca_client_stats s;
  const char *where = ca_client_limiter_where(c);

  ca_client_stats_get(c, &s);
  lua_createtable(L, 0, 12);
#define SET(name)                                                              \
  lua_pushinteger(L, (lua_Integer)s.name);                                     \
  lua_setfield(L, -2, #name)
  SET(calls);
  SET(attempts);
  SET(retries);
  SET(throttled);
  SET(failed);
  SET(limiter_waits);
  if (where) { /* a limiter shared through Redis */
    SET(limiter_round_trips);
    SET(limiter_outages);
    SET(limiter_down_ms);
    SET(limiter_failed);
    lua_pushstring(L, where); /* never a password (ca_redis_where) */
    lua_setfield(L, -2, "limiter");
  }
#undef SET
  lua_pushnumber(L, s.min_factor);
  lua_setfield(L, -2, "min_factor");
  return 1;
}

/* Fill a config from the options table at 1; raises on a bad key. */
static chatapp_config *config_from_table(lua_State *L)
{
  chatapp_config **box;

  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  box = lua_newuserdatauv(L, sizeof *box, 0); /* frees the config on raise */
  *box = NULL;
  luaL_setmetatable(L, "chatapp.ConfigBox");
  *box = chatapp_config_new();
  if (!*box)
    luaL_error(L, "out of memory");
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *v;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "client options are named by strings");
    v = luaL_tolstring(L, -1, NULL);
    if (chatapp_config_set(*box, lua_tostring(L, -3), v) != CHATAPP_OK)
      luaL_error(L, "%s", chatapp_config_errmsg(*box));
    lua_pop(L, 2);
  }
  return *box;
}

/* Take the config out of its box (at -1 after config_from_table...) */
static void config_release(lua_State *L, int box_idx)
{
  chatapp_config **box = lua_touserdata(L, box_idx);
  chatapp_config_free(*box);
  *box = NULL;
}

/* Push the new client, or nil and an ApiError. */
static int finish_new(lua_State *L, chatapp_status st, ca_client *c,
                      ca_buf *err)
{
  if (st) {
    char msg[2048]; /* copied out so no C memory is held if a push raises */
    snprintf(msg, sizeof msg, "%s", ca_buf_str(err));
    ca_buf_free(err);
    lua_pushnil(L);
    lca_push_error(L, chatapp_codename(st), "chatapp.client", NULL, msg, NULL);
    return 2;
  }
  ca_buf_free(err);
  ((LClient *)lua_touserdata(L, -1))->c = c;
  lca_secrets_add_client(L, c); /* its secrets are redacted in every sink */
  return 1;
}

/* core.http_client{timeout_ms=, max_in_flight=, ...}: plain HTTP only (no
 * credentials), for webhooks. */
static int l_http_client_new(lua_State *L)
{
  chatapp_config *cfg = config_from_table(L);
  int box = lua_gettop(L);
  ca_buf err = CA_BUF_INIT(4096);
  ca_client *c = NULL;
  chatapp_status st;

  lca_client_push(L, NULL, 1); /* closed until the client exists */
  st = ca_config_new_http_client(cfg, &c, &err);
  config_release(L, box);
  return finish_new(L, st, c, &err);
}

/* core.client{endpoint=, profile=, qps=, ...} -> Client | nil, ApiError:
 * the same keys as chatapp_config_set (docs/embedding.md); an unknown key
 * or bad value raises.  Credentials come from the default chain unless
 * given; none found is an ApiError with status "ECREDENTIALS". */
static int l_client_new(lua_State *L)
{
  chatapp_config *cfg = config_from_table(L);
  int box = lua_gettop(L);
  ca_buf err = CA_BUF_INIT(4096);
  ca_client *c = NULL;
  chatapp_status st;

  lca_client_push(L, NULL, 1); /* closed until the client exists */
  st = ca_config_new_client(cfg, &c, &err, NULL);
  config_release(L, box);
  return finish_new(L, st, c, &err);
}

static int configbox_gc(lua_State *L)
{
  chatapp_config **box = luaL_checkudata(L, 1, "chatapp.ConfigBox");
  chatapp_config_free(*box);
  *box = NULL;
  return 0;
}

void lca_open_client(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"query_phone_numbers", client_query},
    {"call", client_call},
    {"batch", client_batch},
    {"stats", client_stats},
    {"account", client_account},
    {"close", client_close},
    {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
    {"__index", NULL},
    {"__gc", client_close},
    {"__close", client_close},
    {"__tostring", client_tostring},
    {NULL, NULL},
  };

  luaL_newmetatable(L, CLIENT_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "Client");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);

  luaL_newmetatable(L, CALLSET_MT);
  lua_pushcfunction(L, callset_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  luaL_newmetatable(L, "chatapp.ConfigBox");
  lua_pushcfunction(L, configbox_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  lua_pushcfunction(L, l_client_new);
  lua_setfield(L, -2, "client");
  lua_pushcfunction(L, l_http_client_new);
  lua_setfield(L, -2, "http_client");
}
