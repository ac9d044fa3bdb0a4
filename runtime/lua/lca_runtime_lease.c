/*
 * The leader lease of a run with a Redis state (ca_lease.h): a run that
 * may write the state takes the lease of its account before it starts and
 * releases it after, unless a watcher gave it the token of the lease it
 * holds (ca_runtime_set_lease_token); core.lease_token() gives the token
 * to the state store, which passes it with every write.  The run itself:
 * lca_runtime.c.
 */
#include <stdarg.h>
#include <stdio.h>

#include <lua.h>

#include "ca_config.h"
#include "ca_lease.h"
#include "ca_redis.h"
#include "lca.h"
#include "lca_runtime.h"
#include "lca_runtime_int.h"

/* ---- the leader lease of a Redis state ---------------------------------- */

/* core.lease_token() -> integer | nil: the fence token of the leader
 * lease the current run works under (a Redis state), which the state
 * store passes to every write; nil without one. */
int lca_rt_core_lease_token(lua_State *L)
{
  chatapp_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
  int64_t t = rt->given_token ? rt->given_token : rt->run_token;

  if (t > 0)
    lua_pushinteger(L, (lua_Integer)t);
  else
    lua_pushnil(L);
  return 1;
}

static void rt_log(const chatapp_runtime *rt, int level, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void rt_log(const chatapp_runtime *rt, int level, const char *fmt, ...)
{
  char line[2048];
  va_list ap;

  if (!rt->cfg->log || level > rt->cfg->verbose)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  rt->cfg->log(rt->cfg->log_ud, level, line);
}

void ca_runtime_set_lease_token(chatapp_runtime *rt, int64_t token)
{
  if (rt)
    rt->given_token = token > 0 ? token : 0;
}

/* Whether a run takes the lease itself: a Redis state, a run that may
 * write it (not --check, not a dry run or a replay without --apply), and
 * no lease given by a watcher. */
int lca_rt_run_needs_lease(const chatapp_runtime *rt, int flags)
{
  const chatapp_config *c = rt->cfg;

  if (!c->state || !ca_redis_is_url(c->state) || rt->given_token)
    return 0;
  if (flags & (CHATAPP_RUN_CHECK | CHATAPP_RUN_DRY))
    return 0;
  return !c->replay || c->apply;
}

/* The account the state is kept under, as Runner:account() says:
 * --account, else "default" for a replay, else the client's (made now, as
 * host.client() would, and kept for the run).  NULL when the client
 * cannot be made: then rt's message, *st and the report status *kind. */
static const char *run_account(chatapp_runtime *rt, chatapp_status *st,
                               const char **kind)
{
  ca_buf err = CA_BUF_INIT(4096);

  if (rt->cfg->account)
    return rt->cfg->account;
  if (rt->cfg->replay)
    return "default";
  if (!rt->client) {
    ca_buf_reset(&rt->cred_source);
    *st = ca_config_new_client(rt->cfg, &rt->client, &err, &rt->cred_source);
    if (*st) {
      *st =
        *st == CHATAPP_ECREDENTIALS ? CHATAPP_ECREDENTIALS : CHATAPP_ECONFIG;
      *kind = *st == CHATAPP_ECREDENTIALS ? "credentials" : "config";
      lca_rt_fail(rt, *st, "%s", ca_buf_str(&err));
      ca_buf_free(&err);
      return NULL;
    }
  }
  ca_buf_free(&err);
  return ca_client_account(rt->client);
}

/* Take the lease of the run's account and start renewing it; a lease
 * another holds is a configuration error naming the holder.  On failure
 * rt's message, the status and the report status *kind. */
chatapp_status lca_rt_take_lease(chatapp_runtime *rt, const char **kind)
{
  ca_buf err = CA_BUF_INIT(4096);
  chatapp_status st = CHATAPP_OK;
  const char *account = run_account(rt, &st, kind);
  int won = 0;

  if (!account)
    return st;
  *kind = "config";
  st = ca_lease_new(rt->cfg->state, account, (int64_t)rt->cfg->lease_s * 1000,
                    &rt->lease, &err);
  if (st) {
    st = lca_rt_fail(rt, CHATAPP_ECONFIG,
                     "cannot take the leader lease of account %s for the state "
                     "%s: %s",
                     account, rt->cfg->state, ca_buf_str(&err));
    goto out;
  }
  st = ca_lease_acquire(rt->lease, &won, &err);
  if (st) {
    st = lca_rt_fail(rt, CHATAPP_ECONFIG,
                     "cannot take the leader lease of account %s at %s: %s",
                     account, ca_lease_where(rt->lease), ca_buf_str(&err));
    goto out;
  }
  if (!won) {
    st = lca_rt_fail(
      rt, CHATAPP_ECONFIG,
      "%s holds the lease of account %s at %s; a watcher runs there "
      "(or another run of this state); run this there, or stop it "
      "(docs/watch.md)",
      ca_lease_holder(rt->lease), account, ca_lease_where(rt->lease));
    goto out;
  }
  st = ca_lease_start(rt->lease, &err);
  if (st) {
    (void)ca_lease_release(rt->lease, NULL, &err);
    st =
      lca_rt_fail(rt, CHATAPP_ECONFIG,
                  "the leader lease of account %s at %s cannot be renewed: %s",
                  account, ca_lease_where(rt->lease), ca_buf_str(&err));
    goto out;
  }
  rt->run_token = ca_lease_token(rt->lease);
  rt_log(rt, 1,
         "took the leader lease of account %s at %s (token %lld, %lld s)",
         account, ca_lease_where(rt->lease), (long long)rt->run_token,
         (long long)ca_lease_ttl_ms(rt->lease) / 1000);
out:
  if (st) {
    ca_lease_free(rt->lease);
    rt->lease = NULL;
  }
  ca_buf_free(&err);
  return st;
}

/* After the run: say whether the lease was lost on the way, release it
 * (a standby takes over at once) and forget it. */
void lca_rt_drop_lease(chatapp_runtime *rt)
{
  ca_buf err = CA_BUF_INIT(4096);
  char why[1024];
  int released = 0, ours = 0;

  /* one renewal asks Redis whether it is still ours (the thread may not
   * have renewed during a short run) */
  if (ca_lease_held(rt->lease, NULL, 0) &&
      ca_lease_renew(rt->lease, &ours, &err) != CHATAPP_OK)
    ca_buf_reset(&err); /* unknown: the release below says more */
  if (!ca_lease_held(rt->lease, why, sizeof why))
    rt_log(rt, 0,
           "the leader lease was lost during the run: %s; state writes after "
           "that were refused (FENCED)",
           why);
  else if (ca_lease_release(rt->lease, &released, &err) != CHATAPP_OK)
    rt_log(rt, 0,
           "cannot release the leader lease (it ends by itself within %lld "
           "s): %s",
           (long long)ca_lease_ttl_ms(rt->lease) / 1000, ca_buf_str(&err));
  ca_lease_free(rt->lease);
  rt->lease = NULL;
  rt->run_token = 0;
  ca_buf_free(&err);
}
