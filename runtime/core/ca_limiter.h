/*
 * ca_limiter: "never more than N calls started in any window W", per key
 * (account x operation), shared by every call of a process and, through a
 * small memory-mapped state file, by every process on the host that uses
 * the same state directory.
 *
 * Model: a sliding-window log (docs/internals/limiter.md).  The last starts
 * of each key are kept in a ring; a call may start at `now` when the N-th
 * most recent start is at least W ago.  W is 1 s plus a margin for network
 * jitter (default 50 ms, CA_LIMITER_MARGIN_US), so the server, which counts
 * arrivals, sees at most N in any 1 s window.  A token bucket with burst N
 * would let 2N through; this never does.  The margin must cover how much the
 * arrival of a request at the server can vary; the default, 50 ms, lets one
 * process reach 95% of the quota.
 *
 * Adaptive: every key has a factor in (0, 1] applied to N.  A throttle
 * answer (someone else spends the same account quota) multiplies it by 0.7,
 * at most once per window, and remembers the factor it was throttled at.
 * The factor then climbs back quickly (0.05 per second) to that level,
 * probes slowly above it (0.01 per second) while throttles are recent, and
 * climbs quickly again once the account has been quiet for 5 s.
 *
 * Time is passed in (monotonic microseconds), so tests need no sleeping.
 * Cross-process state is guarded by flock(), which the kernel releases when
 * a holder dies; the critical section only reads and writes the ring.
 * The file is never trusted: its size is checked (fstat under the lock)
 * before the mapping is touched, and every slot is validated where it is
 * used.  A truncated file is grown back and started afresh; a file that
 * cannot be used any more makes the limiter go on in-process, and
 * ca_limiter_note says why.
 *
 * Several hosts: given a Redis URL (redis://[user@]host[:port][/db]) the
 * limiter keeps the same windows and factors in Redis instead, updated by
 * server-side scripts timed by the Redis server's clock
 * (ca_limiter_redis.c, docs/internals/limiter.md).  Such a limiter can be
 * unreachable: ca_limiter_acquire then says so (-1), and never falls back
 * to a limit of this host alone.
 */
#ifndef CA_LIMITER_H
#define CA_LIMITER_H

#include <stdint.h>

#include "ca_buf.h"

typedef struct ca_limiter ca_limiter;

/* Adapting (docs/internals/limiter.md): after a throttle answer the
 * factor regains FAST per second up to APPROACH of the level it was
 * throttled at, then SLOW per second while the last throttle is under
 * QUIET old, then FAST again. */
#define CA_LIMITER_MAX_N      128   /* largest N per window */
#define CA_LIMITER_MARGIN_US  50000 /* the default margin: 50 ms */
#define CA_LIMITER_FAST       0.05
#define CA_LIMITER_APPROACH   0.9
#define CA_LIMITER_SLOW       0.005
#define CA_LIMITER_QUIET_US   10000000
#define CA_LIMITER_DECREASE   0.7
#define CA_LIMITER_MIN_FACTOR 0.1

/*
 * A limiter with window 1 s + margin_us (0 or less: CA_LIMITER_MARGIN_US).
 * state_path NULL: in-process only; a redis:// URL: shared through that
 * Redis server (connected now: CHATAPP_ETRANSPORT, ECREDENTIALS or EINVAL
 * with a message naming the server when it cannot be used); otherwise the
 * shared state file (created 0600, parent directory must exist).  Returns
 * CHATAPP_EIO with a message in err when the file cannot be used.  Free
 * with ca_limiter_free.
 */
chatapp_status ca_limiter_new(const char *state_path, int64_t margin_us,
                              ca_limiter **out, ca_buf *err);
void ca_limiter_free(ca_limiter *l);

/*
 * Ask to start one call for key at now_us with a configured limit of n per
 * window.  Returns 1 when granted (the start is recorded); otherwise 0 and
 * *retry_at_us tells when to ask again.  *factor (may be NULL) receives
 * the adaptive factor that applied.  A Redis limiter returns -1 when its
 * server cannot answer (unreachable, or an error reply): nothing was
 * granted, *retry_at_us tells when to ask again and ca_limiter_error says
 * why.  key is "ACCOUNT/OPERATION".
 */
int ca_limiter_acquire(ca_limiter *l, const char *key, int n, int64_t now_us,
                       int64_t *retry_at_us, double *factor);

/* What went wrong with the shared file (truncated and re-created, or given
 * up for a private state), or NULL: for a warning; never a failure. */
const char *ca_limiter_note(const ca_limiter *l);

/* Report a throttle answer for key: slow down (at most once per window). */
void ca_limiter_throttled(ca_limiter *l, const char *key, int64_t now_us);

/* The current factor for key (1.0 when unknown), for reports. */
double ca_limiter_factor(ca_limiter *l, const char *key, int64_t now_us);

/* The default shared state path for an account key into b:
 * $XDG_RUNTIME_DIR/chatapp-run/limiter-<hash>.state, else
 * /tmp/chatapp-run-<uid>/limiter-<hash>.state; the folder is created 0700. */
chatapp_status ca_limiter_default_path(const char *account_key, ca_buf *b,
                                       ca_buf *err);

/* Why the last ca_limiter_acquire returned -1 (names the Redis server,
 * never a password), or NULL. */
const char *ca_limiter_error(const ca_limiter *l);

/* The Redis server of a shared limiter ("redis://host:port/db", never a
 * password), or NULL for a host-local one. */
const char *ca_limiter_where(const ca_limiter *l);

/* Counters of a Redis limiter (all 0 for a host-local one). */
typedef struct ca_limiter_stats {
  uint64_t round_trips; /* commands sent to Redis */
  uint64_t outages;     /* times Redis went from answering to not */
  int64_t down_us;      /* time without an answer, the current outage too */
  int down;             /* 1 while the last command got no answer */
} ca_limiter_stats;

void ca_limiter_stats_get(const ca_limiter *l, int64_t now_us,
                          ca_limiter_stats *out);

/* Monotonic clock in microseconds (CLOCK_MONOTONIC, same for all
 * processes of a host), plus the test offset below. */
int64_t ca_now_us(void);

/* CHATAPP_TEST_CLOCK_OFFSET_MS (tests only, docs/internals/testing.md):
 * milliseconds added to this process's clocks, ca_now_us and the wall
 * clock requests are signed with (ca_wall_s), so a test can run one
 * process as a host whose clock is skewed.  0 when unset or malformed. */
int64_t ca_clock_offset_us(void);

/* The wall clock (Unix seconds) requests are signed with, with the test
 * offset. */
int64_t ca_wall_s(void);

#endif
