/*
 * Internals of the runtime (chatapp_runtime) shared by its files:
 * lca_runtime.c (the state, errors, protected calls, loading, the run),
 * lca_runtime_report.c (the report of a run in C), lca_runtime_lease.c
 * (the leader lease of a run with a Redis state) and lca_runtime_tools.c
 * (scripts, tools and files run by chatapp-run).  Not installed.
 */
#ifndef LCA_RUNTIME_INT_H
#define LCA_RUNTIME_INT_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "ca_buf.h"
#include "ca_client.h"
#include "ca_lease.h"
#include "chatapp.h"
#include "lca.h"

struct chatapp_runtime {
  chatapp_config *cfg;
  lca_alloc_state alloc; /* the Lua state's allocator: counts, caps */
  lua_State *L;
  int runner;        /* registry ref of the runner object */
  ca_client *client; /* created on first use */
  ca_client *http;   /* the same, for webhooks (no credentials) */
  ca_buf cred_source;
  ca_buf errmsg;
  chatapp_policy_report *reports;
  size_t nreports;
  chatapp_action_report *actions;
  size_t nactions;
  const char *errfixed; /* static; the message when errmsg cannot be built */
  int keep_metrics;     /* ca_runtime_keep_metrics: metrics text after a run */
  int failure_shown;    /* the last run's report logged its failure message */
  ca_buf metrics;
  /* The fence token of the leader lease the run works under (Redis state):
   * given by a watcher (ca_runtime_set_lease_token), or taken by
   * chatapp_runtime_run for the run (lease, then freed).  0: none. */
  int64_t given_token, run_token;
  ca_lease *lease;
};

/* Messages longer than this are cut, with a marker saying so. */
#define ERRMSG_MAX (64 * 1024)

/* The work of one API function, run protected; in and out values. */
typedef struct job {
  chatapp_runtime *rt;
  const char *path, *name, *src;
  size_t len;
  int flags, argc;
  char **argv;
  int rc;      /* run_script: the exit status */
  ca_buf *out; /* read_file: the text */
  size_t max;
  chatapp_status st; /* set by the work */
  int raised;        /* the work raised part way */
} job;

/* The job of the protected C function running (its one argument). */
static inline job *job_of(lua_State *L)
{
  return lua_touserdata(L, 1);
}

/* ---- errors and protected calls (lca_runtime.c) ------------------------- */

/* Set rt's message (redacted, cut at ERRMSG_MAX); returns st. */
chatapp_status lca_rt_fail(chatapp_runtime *rt, chatapp_status st,
                           const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
void lca_rt_clear_error(chatapp_runtime *rt);
/* The error value at idx as text, without converting it. */
const char *lca_rt_errstr(lua_State *L, int idx);
/* A failed lua_pcall's status and message (on top) as rt's error. */
chatapp_status lca_rt_lua_failed(chatapp_runtime *rt, int st,
                                 chatapp_status other, const char *what);
/* Run fn(j) as a protected C function; j->st, or the failure. */
chatapp_status lca_rt_protect(chatapp_runtime *rt, lua_CFunction fn, job *j,
                              const char *what);
/* Call the runner's method name with nargs arguments pushed. */
int lca_rt_call_runner(chatapp_runtime *rt, const char *name, int nargs,
                       int nres);
/* The error of an API function on a runtime whose set-up failed. */
chatapp_status lca_rt_unusable(chatapp_runtime *rt);

/* ---- the report in C (lca_runtime_report.c) ----------------------------- */

/* Free the reports rt holds. */
void lca_rt_clear_reports(chatapp_runtime *rt);
/* Copy the report (the table at report) into rt's arrays. */
chatapp_status lca_rt_collect_reports(chatapp_runtime *rt, int report);

/* ---- the leader lease of a run (lca_runtime_lease.c) -------------------- */

/* core.lease_token(), a C closure over rt. */
int lca_rt_core_lease_token(lua_State *L);
/* Whether a run with these flags takes the lease itself. */
int lca_rt_run_needs_lease(const chatapp_runtime *rt, int flags);
/* Take the lease of the run's account and start renewing it. */
chatapp_status lca_rt_take_lease(chatapp_runtime *rt, const char **kind);
/* After the run: report a lost lease, release it, forget it. */
void lca_rt_drop_lease(chatapp_runtime *rt);

#endif
