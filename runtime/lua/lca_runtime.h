/* Runtime internals used by the chatapp-run program and the tests;
 * implemented in lca_runtime*.c.  No Lua types here. */
#ifndef LCA_RUNTIME_H
#define LCA_RUNTIME_H

#include <stdint.h>

#include "ca_buf.h"
#include "ca_client.h"
#include "chatapp.h"

/*
 * Run a plain Lua script (not a policy: no sandbox) in the runtime's state,
 * with `require "chatapp"` available and the global arg table set as lua.c
 * does (arg[0] = path, arg[1..] = args).  Returns the exit status the
 * script asks for: 0 when it returns normally (or returns true/nil), 1
 * when it raises or returns false, or the integer it returns; the error
 * and its traceback go to stderr.
 */
int ca_runtime_run_script(chatapp_runtime *rt, const char *path, int argc,
                          char **argv);

/*
 * Run require(module).main(args) (an embedded tool such as
 * "chatapp.state.cli": a module name, never a path) with args[1..argc] =
 * argv, protected as ca_runtime_run_script.  Returns the integer main
 * returns (0 for nil or true, 1 for false), or 1 when it raises (the
 * error and its traceback go to stderr, secrets redacted).
 */
int ca_runtime_run_module(chatapp_runtime *rt, const char *module, int argc,
                          char **argv);

/*
 * chatapp_runtime_new with the Lua state's memory capped at limit bytes
 * (0: no cap), as a host short of memory would see it: for tests.
 */
chatapp_status ca_runtime_new_limited(const chatapp_config *cfg, size_t limit,
                                      chatapp_runtime **out);
/* Collect garbage, then cap the Lua state's memory at headroom bytes
 * above what it uses (0: no cap) and restart the peak count; returns the
 * bytes in use.  Tests. */
size_t ca_runtime_limit_memory(chatapp_runtime *rt, size_t headroom);
/* The most the Lua state has used since the last ca_runtime_limit_memory
 * (or since it was created). */
size_t ca_runtime_memory_peak(const chatapp_runtime *rt);

/* The status of a report's status name ("ok", "policy", ...); an unknown
 * name or NULL is CHATAPP_EINTERNAL. */
chatapp_status ca_runtime_report_status(const char *name);

/* Whether the last chatapp_runtime_run's report already logged the message
 * of its failure (chatapp-run then does not print it again). */
int ca_runtime_failure_shown(const chatapp_runtime *rt);

/* The report of a run that cannot happen (a policy file that does not
 * load): status is a report status ("load"); the message is
 * chatapp_runtime_errmsg(rt).  With --output json, its summary line. */
void ca_runtime_report_failure(chatapp_runtime *rt, const char *status);

/* ---- for a watcher: one runtime per cycle, the clients kept ----------- */

/* After each run, keep the report's Prometheus text (redacted), read with
 * ca_runtime_metrics (NULL before a run). */
void ca_runtime_keep_metrics(chatapp_runtime *rt, int on);
const char *ca_runtime_metrics(const chatapp_runtime *rt, size_t *len);

/* The API and HTTP clients (and where the credentials came from), moved
 * from one cycle's runtime to the next: connections and the process
 * limiter outlive a cycle.  take empties rt; give fills only what rt has
 * not made and empties what it gives. */
typedef struct ca_runtime_clients {
  ca_client *api, *http;
  ca_buf source;
} ca_runtime_clients;
void ca_runtime_take_clients(chatapp_runtime *rt, ca_runtime_clients *out);
void ca_runtime_give_clients(chatapp_runtime *rt, ca_runtime_clients *in);
void ca_runtime_clients_free(ca_runtime_clients *c);

/* The fence token of the leader lease a watcher holds (ca_lease.h), for
 * the runs of rt: core.lease_token() returns it, the state store passes
 * it with every write, and chatapp_runtime_run takes no lease of its own.
 * 0: none (a run with a Redis state then takes the lease itself). */
void ca_runtime_set_lease_token(chatapp_runtime *rt, int64_t token);

/* Read a policy file as loading does (a regular file of at most max
 * bytes; the message in rt's errmsg otherwise) into out. */
chatapp_status ca_runtime_read_file(chatapp_runtime *rt, const char *path,
                                    size_t max, ca_buf *out);

#endif
