/*
 * The lock of a state file and account (docs/state.md, "One writer"): an
 * flock on STATE.lock-HASH (HASH: the first 12 hex digits of the account's
 * SHA-256, a name that fits any filesystem), beside the state file.  Taken
 * by a watcher at start (ca_watch.c), by a one-shot run that writes the
 * state, and by `chatapp-run state forget` (core.state_lock); a dry run
 * takes none.  It dies with its holder; the file says who holds it.  A
 * lock this process already holds is shared (counted), so a watcher's
 * cycles, which open the state again in the same process, go through.
 */
#ifndef LCA_STATE_LOCK_H
#define LCA_STATE_LOCK_H

#include <stddef.h>

#include "lca.h"

typedef struct lca_state_lock lca_state_lock;

#define LCA_STATE_LOCK_HELD  1  /* another process holds it */
#define LCA_STATE_LOCK_ERROR -1 /* cannot open or lock the file */

/* Take the lock of state (a path) and account for `who` ("a run", "a
 * watcher", "state forget": written into the file).  Returns 0 and *out
 * (err empty, or a warning to show: the holder's line could not be
 * written; the lock holds anyway), or LCA_STATE_LOCK_HELD /
 * LCA_STATE_LOCK_ERROR with a message in err (naming the state, the holder's
 * pid and host, the lock file and what to do).  Never waits. */
int lca_state_lock_take(const char *state, const char *account, const char *who,
                        lca_state_lock **out, char *err, size_t errlen);

/* The lock file's path. */
const char *lca_state_lock_path(const lca_state_lock *lk);

/* Release (the last holder in this process unlocks and closes; the file
 * stays: removing it would race with a process about to lock it).  NULL is
 * fine. */
void lca_state_lock_release(lca_state_lock *lk);

/* core.state_lock(path, account [, who]) -> lock | nil, message, code
 * (ELOCKED: held by another process; EIO: cannot lock); lock:release(),
 * also __close and __gc.  Registered by lca_open_sqlite. */
int lca_state_lock_lua(lua_State *L);
void lca_state_lock_open(lua_State *L);

#endif
