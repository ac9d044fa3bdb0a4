/*
 * The report of a run for the embedding API: the runner's report (a Lua
 * table) copied into chatapp_policy_report and chatapp_action_report
 * structs owned by the runtime, secrets redacted; the status of a report's
 * status name; and the report of a run that cannot happen
 * (ca_runtime_report_failure).  The state and the run: lca_runtime.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lca.h"
#include "lca_runtime.h"
#include "lca_runtime_int.h"

/* ---- the report in C ---------------------------------------------------- */

static void free_str(const char *s)
{
  free((char *)(uintptr_t)s);
}

void lca_rt_clear_reports(chatapp_runtime *rt)
{
  size_t i;

  for (i = 0; i < rt->nreports; i++)
    free_str(rt->reports[i].name);
  free(rt->reports);
  rt->reports = NULL;
  rt->nreports = 0;
  for (i = 0; i < rt->nactions; i++) {
    chatapp_action_report *a = &rt->actions[i];
    free_str(a->policy);
    free_str(a->kind);
    free_str(a->id);
    free_str(a->phone_number);
    free_str(a->space);
    free_str(a->target);
    free_str(a->status);
    free_str(a->error);
  }
  free(rt->actions);
  rt->actions = NULL;
  rt->nactions = 0;
}

/* A copy of string field k of the table at t into *out (NULL when the
 * field is not a string).  CHATAPP_ENOMEM when the copy fails. */
static chatapp_status field_dup(lua_State *L, int t, const char *k,
                                const char **out)
{
  chatapp_status st = CHATAPP_OK;

  *out = NULL;
  if (lua_getfield(L, t, k) == LUA_TSTRING &&
      !(*out = lca_redacted_dup(L, -1))) /* no known secret reaches the host */
    st = CHATAPP_ENOMEM;
  lua_pop(L, 1);
  return st;
}

static size_t field_size(lua_State *L, int t, const char *k)
{
  lua_Integer v;
  lua_getfield(L, t, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v > 0 ? (size_t)v : 0;
}

/* Copy report.policies and report.action_list (the table at report) into
 * C structs.  The arrays are owned by rt as soon as they exist, so a raise
 * part way leaks nothing. */
chatapp_status lca_rt_collect_reports(chatapp_runtime *rt, int report)
{
  lua_State *L = rt->L;
  size_t n, i;

  lca_rt_clear_reports(rt);
  lua_getfield(L, report, "policies");
  n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  rt->reports = calloc(n ? n : 1, sizeof *rt->reports);
  if (!rt->reports)
    return CHATAPP_ENOMEM;
  rt->nreports = n;
  for (i = 0; i < n; i++) {
    chatapp_policy_report *r = &rt->reports[i];
    int t;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      return CHATAPP_EINTERNAL;
    t = lua_gettop(L);
    if (field_dup(L, t, "name", &r->name) != CHATAPP_OK)
      return CHATAPP_ENOMEM;
    if (!r->name && !(r->name = strdup("?")))
      return CHATAPP_ENOMEM;
    r->numbers_seen = field_size(L, t, "seen");
    r->numbers_matched = field_size(L, t, "matched");
    r->actions_planned = field_size(L, t, "planned");
    r->actions_done = field_size(L, t, "done");
    r->actions_failed = field_size(L, t, "failed");
    r->actions_skipped = field_size(L, t, "skipped");
    r->errors = field_size(L, t, "errors");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);

  /* report.action_list: plain records made by the report for hosts */
  lua_getfield(L, report, "action_list");
  n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  rt->actions = calloc(n ? n : 1, sizeof *rt->actions);
  if (!rt->actions)
    return CHATAPP_ENOMEM;
  rt->nactions = n;
  for (i = 0; i < n; i++) {
    chatapp_action_report *a = &rt->actions[i];
    int t;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      return CHATAPP_EINTERNAL;
    t = lua_gettop(L);
    if (field_dup(L, t, "policy", &a->policy) ||
        field_dup(L, t, "kind", &a->kind) || field_dup(L, t, "id", &a->id) ||
        field_dup(L, t, "phone_number", &a->phone_number) ||
        field_dup(L, t, "space", &a->space) ||
        field_dup(L, t, "target", &a->target) ||
        field_dup(L, t, "status", &a->status) ||
        field_dup(L, t, "error", &a->error))
      return CHATAPP_ENOMEM;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return CHATAPP_OK;
}

chatapp_status ca_runtime_report_status(const char *name)
{
  /* "output": a file of the run could not be written once it had started;
   * "load": a policy file did not load (report.lua) */
  static const char *const names[] = {"ok",     "config", "credentials",
                                      "policy", "api",    "action",
                                      "output", "load",   NULL};
  static const chatapp_status codes[] = {
    CHATAPP_OK,   CHATAPP_ECONFIG, CHATAPP_ECREDENTIALS, CHATAPP_EPOLICY,
    CHATAPP_EAPI, CHATAPP_EACTION, CHATAPP_EIO,          CHATAPP_EPOLICY};
  size_t i;

  for (i = 0; name && names[i]; i++)
    if (strcmp(name, names[i]) == 0)
      return codes[i];
  return CHATAPP_EINTERNAL;
}

int ca_runtime_failure_shown(const chatapp_runtime *rt)
{
  return rt && rt->failure_shown;
}

/* Protected: runner:report_failure(status, message), the report of a run
 * that cannot happen (its JSON summary). */
static int do_report_failure(lua_State *L)
{
  job *j = job_of(L);
  chatapp_runtime *rt = j->rt;
  int st;

  lua_settop(L, 0);
  lua_pushstring(L, j->name);
  lua_pushstring(L, j->src);
  st = lca_rt_call_runner(rt, "report_failure", 2, 0);
  if (st != LUA_OK)
    j->st =
      lca_rt_lua_failed(rt, st, CHATAPP_EINTERNAL, "the report of the failure");
  return 0;
}

void ca_runtime_report_failure(chatapp_runtime *rt, const char *status)
{
  ca_buf msg = CA_BUF_INIT(ERRMSG_MAX + 64);
  job j;

  if (!rt || !rt->L)
    return;
  /* the message stays the one of the failure */
  if (ca_buf_add(&msg, chatapp_runtime_errmsg(rt),
                 strlen(chatapp_runtime_errmsg(rt))) != CHATAPP_OK) {
    ca_buf_free(&msg);
    return;
  }
  memset(&j, 0, sizeof j);
  j.name = status;
  j.src = ca_buf_str(&msg);
  if (lca_rt_protect(rt, do_report_failure, &j, "the report of the failure") !=
      CHATAPP_OK)
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
  ca_buf_free(&msg);
}

size_t chatapp_runtime_policy_count(const chatapp_runtime *rt)
{
  return rt ? rt->nreports : 0;
}

chatapp_status chatapp_runtime_policy_report(const chatapp_runtime *rt,
                                             size_t i,
                                             chatapp_policy_report *out)
{
  if (!rt || !out || i >= rt->nreports)
    return CHATAPP_EINVAL;
  *out = rt->reports[i];
  return CHATAPP_OK;
}

size_t chatapp_runtime_action_count(const chatapp_runtime *rt)
{
  return rt ? rt->nactions : 0;
}

chatapp_status chatapp_runtime_action_report(const chatapp_runtime *rt,
                                             size_t i,
                                             chatapp_action_report *out)
{
  if (!rt || !out || i >= rt->nactions)
    return CHATAPP_EINVAL;
  *out = rt->actions[i];
  return CHATAPP_OK;
}
