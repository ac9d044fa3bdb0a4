/*
 * ca_watch: watch mode (`chatapp-run --every DURATION`): cycle after cycle
 * until a signal stops it.  docs/watch.md says what users see.
 */
#ifndef CA_WATCH_H
#define CA_WATCH_H

#include "chatapp.h"

typedef struct ca_watch_opts {
  long every_s;           /* the interval between cycle starts */
  const char *listen;     /* --listen ADDR:PORT, or NULL */
  long healthz_max_age_s; /* 0: three intervals (at least 60 s) */
  int flags;              /* CHATAPP_RUN_DRY */
  int exit_load;          /* the exit status when the policies do not load */
} ca_watch_opts;

/* Install the SIGHUP handler (a reload between cycles); -1 with a message
 * on stderr when it cannot be. */
int ca_watch_signals(void);

/*
 * Run the policy files every o->every_s seconds with cfg (its state file,
 * or the default one, created with its folder; its log function).  Takes
 * the watcher lock of the state file and account; with a Redis state
 * (redis://...) the leader lease of the account instead, standing by while
 * another process holds it (cfg->lease_s, docs/watch.md).  Never returns
 * before a SIGINT / SIGTERM (then 0, once the cycle in flight ended; the
 * lease released) unless it cannot start: the policies do not load
 * (o->exit_load), or the lock, the state's Redis, the credentials, the
 * state folder or --listen fail (2).
 */
int ca_watch(chatapp_config *cfg, char **files, int nfiles,
             const ca_watch_opts *o);

#endif
