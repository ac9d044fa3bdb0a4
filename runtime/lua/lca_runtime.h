/* Runtime internals used by the chatapp-run program and the tests;
 * implemented in lca_runtime.c.  No Lua types here. */
#ifndef LCA_RUNTIME_H
#define LCA_RUNTIME_H

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

#endif
