/*
 * ApiError: the failure of one API call or HTTP request, as data.
 *
 * A plain table with a metatable, so it can be raised with error(), caught
 * with pcall and printed: fields status ("EAPI", "ETIMEDOUT", ...),
 * operation, code, message, request_id, http_status, attempts, retryable,
 * throttled, host_id, recommend, hint, and context (set by the runner:
 * policy, space, number).
 */
#include <stdio.h>
#include <string.h>

#include "lca.h"

static void set_str(lua_State *L, const char *k, const char *v)
{
  if (v && *v) {
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
  }
}

static void set_mt(lua_State *L)
{
  luaL_setmetatable(L, APIERROR_MT);
}

void lca_push_error(lua_State *L, const char *status, const char *operation,
                    const char *code, const char *message,
                    const char *request_id)
{
  lua_createtable(L, 0, 8);
  set_str(L, "status", status);
  set_str(L, "operation", operation);
  set_str(L, "code", code);
  set_str(L, "message", message);
  set_str(L, "request_id", request_id);
  set_str(L, "hint", ca_error_hint(code));
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "retryable");
  set_mt(L);
}

void lca_push_call_error(lua_State *L, const ca_call *call)
{
  const char *what = call->kind == CA_CALL_API ? call->operation : call->url;

  lca_push_error(L, chatapp_codename(call->status), what, call->env.code,
                 call->env.code && call->env.message ? call->env.message
                                                     : call->error,
                 call->env.request_id);
  set_str(L, "host_id", call->env.host_id);
  set_str(L, "recommend", call->env.recommend);
  set_str(L, "access_denied_detail", call->env.access_denied_detail);
  if (call->http_status) {
    lua_pushinteger(L, call->http_status);
    lua_setfield(L, -2, "http_status");
  }
  lua_pushinteger(L, call->attempts);
  lua_setfield(L, -2, "attempts");
  lua_pushinteger(L, call->throttled);
  lua_setfield(L, -2, "throttled");
  lua_pushboolean(L, call->retryable);
  lua_setfield(L, -2, "retryable");
  if (call->status == CHATAPP_EUNKNOWN) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "outcome_unknown");
  }
}

/* The field k of the table at 1 as a string (left on the stack), or NULL. */
static const char *field(lua_State *L, const char *k)
{
  int t = lua_getfield(L, 1, k);
  return t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, -1) : NULL;
}

/* "UpdatePhoneWebhook failed: Throttling.User: ... (HTTP 400, RequestId X,
 * 3 attempts); hint" */
static int err_tostring(lua_State *L)
{
  char out[4096]; /* on the stack: nothing to free if a push raises */
  size_t n = 0;
  const char *op, *code, *msg, *http, *rid, *att, *hint;
  const char *sep = " (";
  int unknown;

#define APPEND(...)                                                            \
  do {                                                                         \
    if (n < sizeof out) {                                                      \
      int w_ = snprintf(out + n, sizeof out - n, __VA_ARGS__);                 \
      n = w_ < 0 ? n : n + (size_t)w_;                                         \
    }                                                                          \
  } while (0)

  luaL_checktype(L, 1, LUA_TTABLE);
  op = field(L, "operation");
  code = field(L, "code");
  msg = field(L, "message");
  http = field(L, "http_status");
  rid = field(L, "request_id");
  att = field(L, "attempts");
  hint = field(L, "hint");
  lua_getfield(L, 1, "outcome_unknown");
  unknown = lua_toboolean(L, -1);

  APPEND("%s failed: %s%s%s", op ? op : "call", code ? code : "",
         code ? ": " : "", msg ? msg : "unknown error");
  if (http) {
    APPEND("%sHTTP %s", sep, http);
    sep = ", ";
  }
  if (rid) {
    APPEND("%sRequestId %s", sep, rid);
    sep = ", ";
  }
  if (att) {
    APPEND("%s%s attempt%s", sep, att, strcmp(att, "1") == 0 ? "" : "s");
    sep = ", ";
  }
  if (unknown) {
    APPEND("%soutcome unknown: the change may have been made", sep);
    sep = ", ";
  }
  if (sep[0] == ',')
    APPEND(")");
  if (hint)
    APPEND("; %s", hint);
#undef APPEND
  lua_pushlstring(L, out, n < sizeof out ? n : sizeof out - 1);
  return 1;
}

void lca_open_error(lua_State *L)
{
  luaL_newmetatable(L, APIERROR_MT); /* stack: module, mt */
  lua_pushstring(L, "ApiError");
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, err_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "ApiError"); /* module.ApiError = mt */
  lua_pop(L, 1);
}
