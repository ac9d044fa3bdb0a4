/*
 * ca_lease: the leader lease of an account's Redis state, so that of the
 * watchers (and one-shot runs) of several hosts sharing one state exactly
 * one works on it at a time (docs/watch.md, docs/multi-host.md).
 *
 * Keys (the hash tag {ACCOUNT} keeps an account's keys in one slot):
 *   chatapp:lease:{ACCOUNT}  "TOKEN HOST PID", with an expiry (PX ttl)
 *   chatapp:fence:{ACCOUNT}  the fencing counter
 *
 * acquire  one server-side script: when the lease key is absent, INCR the
 *          fence and SET the lease to "TOKEN HOST PID" PX ttl; the token
 *          is the value INCR returned.  Otherwise it names the holder and
 *          how long its lease has left.
 * renew    a script that PEXPIREs the lease only while its value is ours.
 * release  a script that DELs it only while its value is ours.
 *
 * The fence token goes with every state write: the state store's scripts
 * refuse ("FENCED") a write whose token is not the fence's current value,
 * so a leader that stalled (SIGSTOP, a long pause) past its lease, while
 * another took it over, cannot write when it wakes up.
 *
 * Renewal runs on a thread of its own with a connection of its own
 * (ca_redis is not thread-safe), every ttl/3.  The lease is lost when a
 * renewal finds another value (another holder, or none: it expired), or
 * when no renewal succeeded for ttl - margin by the local monotonic clock,
 * counted from the moment the last successful renewal (or the acquire) was
 * sent: the server's expiry runs from a later moment, so the local
 * judgement is never late.  Once lost, a lease stays lost.
 *
 * One ca_lease is used by one thread (besides its own renewal thread);
 * ca_lease_held may be called from any thread.
 */
#ifndef CA_LEASE_H
#define CA_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "ca_buf.h"
#include "chatapp.h"

typedef struct ca_lease ca_lease;

#define CA_LEASE_DEFAULT_TTL_S 15 /* --lease */
#define CA_LEASE_MIN_TTL_S     3
#define CA_LEASE_MAX_TTL_S     3600

/* The room kept before the lease's end: lost at last success + ttl -
 * margin (a fifth of the ttl). */
int64_t ca_lease_margin_ms(int64_t ttl_ms);

/*
 * Connect to the Redis server of url (a redis:// URL, ca_redis) for the
 * lease of account, ttl_ms long (CA_LEASE_DEFAULT_TTL_S when 0; tests may
 * use less than the minimum).  Holds nothing yet.  On failure *out is NULL
 * and err says what failed (ca_redis_open's statuses).  Free with
 * ca_lease_free.
 */
chatapp_status ca_lease_new(const char *url, const char *account,
                            int64_t ttl_ms, ca_lease **out, ca_buf *err);

/* Stop the renewal thread and free l; the lease is not released (it
 * expires), so call ca_lease_release first to hand it over at once.  NULL:
 * no-op. */
void ca_lease_free(ca_lease *l);

/*
 * Try once to take the lease.  CHATAPP_OK with *won 1: l holds it, with
 * ca_lease_token(l) (renewal is not started: ca_lease_start).  CHATAPP_OK
 * with *won 0: another holds it (ca_lease_holder, ca_lease_holder_ttl_ms).
 * Otherwise the server could not be asked (err says why; the ca_redis
 * statuses).  Taking a lease l already holds is CHATAPP_EINVAL.
 */
chatapp_status ca_lease_acquire(ca_lease *l, int *won, ca_buf *err);

/* Start the renewal thread (with its own connection) for the lease l
 * holds.  On failure l still holds the lease, unrenewed. */
chatapp_status ca_lease_start(ca_lease *l, ca_buf *err);

/*
 * 1 while l holds the lease: taken, and not lost (see above).  0 before
 * it was taken and once it is lost; then why (may be NULL) receives the
 * reason ("HOST pid N took the lease over", "no renewal reached Redis at
 * ... for N ms: ...").  Any thread.
 */
int ca_lease_held(ca_lease *l, char *why, size_t whylen);

/*
 * Renew once now on l's own connection (the caller's thread), as the
 * renewal thread does: CHATAPP_OK with *ours 1 when the lease was still
 * ours and is extended; *ours 0 when it is not (l then counts it lost).
 * Otherwise the server could not be asked.  For a check between cycles,
 * and tests.
 */
chatapp_status ca_lease_renew(ca_lease *l, int *ours, ca_buf *err);

/*
 * Stop renewing and delete the lease key if it still holds l's value, so
 * a standby takes over at once.  *released (may be NULL) is 1 when it was
 * deleted.  l holds nothing afterwards (even when the server could not be
 * asked: the lease then expires).
 */
chatapp_status ca_lease_release(ca_lease *l, int *released, ca_buf *err);

/* The token of the lease l took (0 before any); kept after a loss, for
 * messages. */
int64_t ca_lease_token(const ca_lease *l);

/* "HOST pid PID" of the holder that refused the last ca_lease_acquire
 * (printable; "" before), and how long its lease had left then. */
const char *ca_lease_holder(const ca_lease *l);
int64_t ca_lease_holder_ttl_ms(const ca_lease *l);

/* The lease key's value l writes, "TOKEN HOST PID" (after a win), and
 * "HOST pid PID" naming this process. */
const char *ca_lease_value(const ca_lease *l);
const char *ca_lease_me(const ca_lease *l);

/* "redis://host:port/db" (no password), the account, the ttl. */
const char *ca_lease_where(const ca_lease *l);
const char *ca_lease_account(const ca_lease *l);
int64_t ca_lease_ttl_ms(const ca_lease *l);

/* Renewals sent by the thread, and of them those that failed to reach
 * the server: for logs and tests. */
uint64_t ca_lease_renewals(ca_lease *l, uint64_t *failed);

#endif
