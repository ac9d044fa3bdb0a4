/* Runtime internals used by the chatapp-run program. */
#ifndef CA_RUNTIME_H
#define CA_RUNTIME_H

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

#endif
