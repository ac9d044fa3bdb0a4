/*
 * ca_lease.c: the leader lease (ca_lease.h says what and why).
 *
 * Threads: the owner (a watcher's main loop, or a runtime during a run)
 * uses l->r for acquire, renew and release; the renewal thread uses l->tr.
 * What both see (taken, lost, why, last_ok_us, stop, the counters) is
 * under l->mu.  The scripts' SHA-1s are computed once for the process
 * (pthread_once), so no ca_redis_script is written by two threads.
 */
#include "ca_lease.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_limiter.h" /* ca_now_us */
#include "ca_redis.h"

/* KEYS[1] the lease, KEYS[2] the fence; ARGV[1] "HOST PID", ARGV[2] the
 * ttl in ms.  The script runs atomically: nothing comes between the look
 * at the lease and the INCR and SET, so the fence moves only for a lease
 * won (set-if-absent with an expiry, as SET NX PX). */
static ca_redis_script acquire_script = {
  "local cur = redis.call('GET', KEYS[1])\n"
  "if cur then return {0, cur, redis.call('PTTL', KEYS[1])} end\n"
  "local t = redis.call('INCR', KEYS[2])\n"
  "local v = t .. ' ' .. ARGV[1]\n"
  "redis.call('SET', KEYS[1], v, 'PX', ARGV[2])\n"
  "return {1, t, v}\n",
  ""};

/* KEYS[1] the lease; ARGV[1] our value, ARGV[2] the ttl in ms. */
static ca_redis_script renew_script = {
  "local cur = redis.call('GET', KEYS[1])\n"
  "if cur == ARGV[1] then\n"
  "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
  "  return {1}\n"
  "end\n"
  "return {0, cur or ''}\n",
  ""};

/* KEYS[1] the lease; ARGV[1] our value. */
static ca_redis_script release_script = {
  "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
  "  redis.call('DEL', KEYS[1])\n"
  "  return 1\n"
  "end\n"
  "return 0\n",
  ""};

static pthread_once_t shas_once = PTHREAD_ONCE_INIT;
static int shas_ok;

static void compute_shas(void)
{
  ca_redis_script *s[] = {&acquire_script, &renew_script, &release_script};
  size_t i;

  shas_ok = 1;
  for (i = 0; i < sizeof s / sizeof *s; i++)
    if (ca_sha1_hex(s[i]->source, strlen(s[i]->source), s[i]->sha) !=
        CHATAPP_OK) {
      s[i]->sha[0] = '\0';
      shas_ok = 0;
    }
}

#define VALUE_MAX 320

struct ca_lease {
  ca_redis *r; /* the owner's connection */
  char *url, *account, *lease_key, *fence_key;
  char where[400];  /* ca_redis_where, for messages of either thread */
  int sync_ok;      /* mu and cv exist */
  char me[300];     /* "HOST pid PID" */
  char suffix[300]; /* "HOST PID": what follows the token in the value */
  char value[VALUE_MAX];
  int64_t ttl_ms, token;
  char holder[256];
  int64_t holder_ttl_ms;
  /* shared with the renewal thread, under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int taken, lost, stop, running;
  char why[768];
  char last_err[300]; /* the last renewal that did not reach the server */
  int64_t last_ok_us; /* when the last successful renewal was sent */
  uint64_t renewals, renew_failed;
  pthread_t thread;
  ca_redis *tr; /* the thread's connection */
};

int64_t ca_lease_margin_ms(int64_t ttl_ms)
{
  return ttl_ms / 5;
}

/* ---- small helpers ------------------------------------------------------ */

/* Copy at most size-1 bytes of s (n long) into dst, printable ASCII only:
 * the value comes from the server, untrusted. */
static void printable(char *dst, size_t size, const char *s, size_t n)
{
  size_t i, j = 0;

  for (i = 0; i < n && j + 1 < size; i++)
    dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  dst[j] = '\0';
}

/* "HOST pid PID" from a lease value "TOKEN HOST PID"; the value itself
 * (printable) when it is not of that form. */
static void describe_holder(char *dst, size_t size, const char *v, size_t n)
{
  char text[VALUE_MAX], host[256];
  long long token;
  long pid;
  char tail;

  printable(text, sizeof text, v, n < VALUE_MAX ? n : VALUE_MAX - 1);
  if (sscanf(text, "%lld %255s %ld%c", &token, host, &pid, &tail) == 3)
    snprintf(dst, size, "%.200s pid %ld", host, pid);
  else
    snprintf(dst, size, "a holder named '%.200s'", text);
}

static int64_t elem_int(const redisReply *x, size_t i)
{
  return x->type == REDIS_REPLY_ARRAY && i < x->elements &&
             x->element[i]->type == REDIS_REPLY_INTEGER
           ? (int64_t)x->element[i]->integer
           : -1;
}

static const redisReply *elem_str(const redisReply *x, size_t i)
{
  return x->type == REDIS_REPLY_ARRAY && i < x->elements &&
             x->element[i]->type == REDIS_REPLY_STRING
           ? x->element[i]
           : NULL;
}

/* A reply that is not what the script returns: an error from the server
 * (a wrong type at the key, a read-only replica, ...). */
static chatapp_status bad_reply(const ca_lease *l, const redisReply *x,
                                const char *what, ca_buf *err)
{
  char text[200];

  if (x->type == REDIS_REPLY_ERROR && x->str)
    printable(text, sizeof text, x->str, x->len);
  else
    snprintf(text, sizeof text, "an unexpected reply (type %d)", x->type);
  ca_buf_printf(err, "the lease %s at %s: %s (%s)", l->lease_key, l->where,
                text, what);
  return CHATAPP_EIO;
}

/* ---- life cycle --------------------------------------------------------- */

chatapp_status ca_lease_new(const char *url, const char *account,
                            int64_t ttl_ms, ca_lease **out, ca_buf *err)
{
  pthread_condattr_t ca;
  char host[256];
  ca_lease *l;
  chatapp_status st;
  size_t n;

  *out = NULL;
  if (!account || !*account) {
    ca_buf_printf(err, "the lease needs an account name");
    return CHATAPP_EINVAL;
  }
  if (pthread_once(&shas_once, compute_shas) != 0 || !shas_ok)
    return CHATAPP_ENOMEM;
  l = calloc(1, sizeof *l);
  if (!l)
    return CHATAPP_ENOMEM;
  l->ttl_ms = ttl_ms > 0 ? ttl_ms : CA_LEASE_DEFAULT_TTL_S * 1000;
  n = strlen(account) + 32;
  l->url = strdup(url ? url : "");
  l->account = strdup(account);
  l->lease_key = malloc(n);
  l->fence_key = malloc(n);
  if (!l->url || !l->account || !l->lease_key || !l->fence_key) {
    ca_lease_free(l);
    return CHATAPP_ENOMEM;
  }
  snprintf(l->lease_key, n, "chatapp:lease:{%s}", account);
  snprintf(l->fence_key, n, "chatapp:fence:{%s}", account);
  if (gethostname(host, sizeof host) != 0 || !host[0])
    snprintf(host, sizeof host, "unknown-host");
  host[sizeof host - 1] = '\0';
  for (char *p = host; *p; p++) /* one word, as the value's format wants */
    if (*p <= 0x20 || *p >= 0x7f)
      *p = '?';
  snprintf(l->me, sizeof l->me, "%.200s pid %ld", host, (long)getpid());
  snprintf(l->suffix, sizeof l->suffix, "%.200s %ld", host, (long)getpid());
  /* the renewal thread's waits run on the monotonic clock */
  if (pthread_condattr_init(&ca) != 0) {
    ca_lease_free(l);
    return CHATAPP_ENOMEM;
  }
  if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
      pthread_mutex_init(&l->mu, NULL) != 0) {
    pthread_condattr_destroy(&ca);
    ca_lease_free(l);
    return CHATAPP_ENOMEM;
  }
  if (pthread_cond_init(&l->cv, &ca) != 0) {
    pthread_condattr_destroy(&ca);
    pthread_mutex_destroy(&l->mu);
    ca_lease_free(l);
    return CHATAPP_ENOMEM;
  }
  pthread_condattr_destroy(&ca);
  l->sync_ok = 1;
  st = ca_redis_open(l->url, &l->r, err);
  if (st) {
    ca_lease_free(l);
    return st;
  }
  snprintf(l->where, sizeof l->where, "%s", ca_redis_where(l->r));
  *out = l;
  return CHATAPP_OK;
}

static void stop_thread(ca_lease *l)
{
  int running;

  pthread_mutex_lock(&l->mu);
  running = l->running;
  l->stop = 1;
  pthread_cond_broadcast(&l->cv);
  pthread_mutex_unlock(&l->mu);
  if (running)
    pthread_join(l->thread, NULL);
  pthread_mutex_lock(&l->mu);
  l->running = 0;
  l->stop = 0;
  pthread_mutex_unlock(&l->mu);
  ca_redis_free(l->tr);
  l->tr = NULL;
}

void ca_lease_free(ca_lease *l)
{
  if (!l)
    return;
  if (l->sync_ok) {
    stop_thread(l);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
  }
  ca_redis_free(l->r);
  free(l->url);
  free(l->account);
  free(l->lease_key);
  free(l->fence_key);
  free(l);
}

/* ---- acquire ------------------------------------------------------------ */

chatapp_status ca_lease_acquire(ca_lease *l, int *won, ca_buf *err)
{
  char ttl[32];
  const char *argv[4];
  redisReply *x = NULL;
  const redisReply *v;
  int64_t t0 = ca_now_us(), flag;
  chatapp_status st;

  *won = 0;
  pthread_mutex_lock(&l->mu);
  st = l->taken ? CHATAPP_EINVAL : CHATAPP_OK;
  pthread_mutex_unlock(&l->mu);
  if (st) {
    ca_buf_printf(err, "the lease %s is already held by this process",
                  l->lease_key);
    return st;
  }
  snprintf(ttl, sizeof ttl, "%lld", (long long)l->ttl_ms);
  argv[0] = l->lease_key;
  argv[1] = l->fence_key;
  argv[2] = l->suffix;
  argv[3] = ttl;
  st = ca_redis_eval(l->r, &acquire_script, 2, 4, argv, NULL, &x, err);
  if (st)
    return st;
  flag = elem_int(x, 0);
  if (flag == 1 && elem_int(x, 1) > 0 && (v = elem_str(x, 2)) != NULL &&
      v->len < sizeof l->value) {
    pthread_mutex_lock(&l->mu);
    l->token = elem_int(x, 1);
    memcpy(l->value, v->str, v->len);
    l->value[v->len] = '\0';
    l->taken = 1;
    l->lost = 0;
    l->why[0] = '\0';
    l->last_err[0] = '\0';
    l->last_ok_us = t0;
    pthread_mutex_unlock(&l->mu);
    l->holder[0] = '\0';
    l->holder_ttl_ms = 0;
    *won = 1;
  } else if (flag == 0 && (v = elem_str(x, 1)) != NULL) {
    describe_holder(l->holder, sizeof l->holder, v->str, v->len);
    l->holder_ttl_ms = elem_int(x, 2);
  } else {
    st = bad_reply(l, x, "taking it", err);
  }
  freeReplyObject(x);
  return st;
}

/* ---- renewal ------------------------------------------------------------ */

/* One renewal on connection r.  CHATAPP_OK with *ours; otherwise the
 * server could not be asked.  holder receives who holds it when not us. */
static chatapp_status renew_on(ca_lease *l, ca_redis *r, int *ours,
                               char *holder, size_t hlen, ca_buf *err)
{
  char ttl[32];
  const char *argv[3];
  redisReply *x = NULL;
  const redisReply *v;
  chatapp_status st;
  int64_t flag;

  *ours = 0;
  holder[0] = '\0';
  snprintf(ttl, sizeof ttl, "%lld", (long long)l->ttl_ms);
  argv[0] = l->lease_key;
  argv[1] = l->value;
  argv[2] = ttl;
  st = ca_redis_eval(r, &renew_script, 1, 3, argv, NULL, &x, err);
  if (st)
    return st;
  flag = elem_int(x, 0);
  if (flag == 1) {
    *ours = 1;
  } else if (flag == 0 && (v = elem_str(x, 1)) != NULL) {
    if (v->len)
      describe_holder(holder, hlen, v->str, v->len);
  } else {
    st = bad_reply(l, x, "renewing it", err);
  }
  freeReplyObject(x);
  return st;
}

static int64_t deadline_us(const ca_lease *l)
{
  return l->last_ok_us + (l->ttl_ms - ca_lease_margin_ms(l->ttl_ms)) * 1000;
}

/* Under mu: lost by the clock when no renewal succeeded in time. */
static void judge_clock(ca_lease *l, int64_t now)
{
  if (!l->taken || l->lost || now < deadline_us(l))
    return;
  l->lost = 1;
  snprintf(l->why, sizeof l->why,
           "no renewal reached Redis at %.200s for %lld ms, and the lease "
           "lasts %lld ms (this process was stopped or starved, or Redis "
           "did not answer%s%.200s)",
           l->where, (long long)((now - l->last_ok_us) / 1000),
           (long long)l->ttl_ms, l->last_err[0] ? ": " : "", l->last_err);
}

/* Under mu: what a renewal sent at t0 found. */
static void note_renewal(ca_lease *l, int64_t t0, chatapp_status st, int ours,
                         const char *holder, const ca_buf *err)
{
  l->renewals++;
  if (st) {
    l->renew_failed++;
    snprintf(l->last_err, sizeof l->last_err, "%s", ca_buf_str(err));
  } else if (ours) {
    /* The server extended it from a moment after t0. */
    if (!l->lost && t0 > l->last_ok_us)
      l->last_ok_us = t0;
    l->last_err[0] = '\0';
  } else if (!l->lost) {
    l->lost = 1;
    if (holder[0])
      snprintf(l->why, sizeof l->why,
               "%s took the lease of account %s over at %s (this process "
               "had token %lld)",
               holder, l->account, l->where, (long long)l->token);
    else
      snprintf(l->why, sizeof l->why,
               "the lease of account %s at %s expired before a renewal "
               "reached it (this process had token %lld)",
               l->account, l->where, (long long)l->token);
  }
  judge_clock(l, ca_now_us());
}

chatapp_status ca_lease_renew(ca_lease *l, int *ours, ca_buf *err)
{
  char holder[256];
  int64_t t0 = ca_now_us();
  chatapp_status st;
  int taken;

  *ours = 0;
  pthread_mutex_lock(&l->mu);
  taken = l->taken;
  pthread_mutex_unlock(&l->mu);
  if (!taken)
    return CHATAPP_OK; /* nothing held: not ours */
  st = renew_on(l, l->r, ours, holder, sizeof holder, err);
  pthread_mutex_lock(&l->mu);
  note_renewal(l, t0, st, *ours, holder, err);
  if (l->lost)
    *ours = 0;
  pthread_mutex_unlock(&l->mu);
  return st;
}

static struct timespec mono_ts(int64_t us)
{
  struct timespec ts;
  ts.tv_sec = (time_t)(us / 1000000);
  ts.tv_nsec = (long)(us % 1000000) * 1000;
  return ts;
}

/* The renewal thread: every ttl/3, sooner again after a failure, until
 * stopped or the lease is lost. */
static void *renewer(void *arg)
{
  ca_lease *l = arg;
  const int64_t every = l->ttl_ms * 1000 / 3;
  int64_t retry = l->ttl_ms * 1000 / 15, next;
  ca_buf err = CA_BUF_INIT(1024);

  if (retry < 100000)
    retry = 100000;
  pthread_mutex_lock(&l->mu);
  next = l->last_ok_us + every;
  for (;;) {
    char holder[256];
    int64_t t0;
    chatapp_status st;
    int ours;

    while (!l->stop && ca_now_us() < next) {
      struct timespec ts = mono_ts(next);
      int rc = pthread_cond_timedwait(&l->cv, &l->mu, &ts);
      if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
        break;
    }
    if (l->stop)
      break;
    judge_clock(l, ca_now_us());
    if (l->lost)
      break;
    pthread_mutex_unlock(&l->mu);
    ca_buf_reset(&err);
    t0 = ca_now_us();
    st = renew_on(l, l->tr, &ours, holder, sizeof holder, &err);
    pthread_mutex_lock(&l->mu);
    note_renewal(l, t0, st, ours, holder, &err);
    if (l->lost)
      break;
    next = t0 + (st ? retry : every);
  }
  pthread_mutex_unlock(&l->mu);
  ca_buf_free(&err);
  return NULL;
}

chatapp_status ca_lease_start(ca_lease *l, ca_buf *err)
{
  sigset_t all, old;
  chatapp_status st;
  int rc;

  pthread_mutex_lock(&l->mu);
  st = l->taken && !l->running ? CHATAPP_OK : CHATAPP_EINVAL;
  pthread_mutex_unlock(&l->mu);
  if (st) {
    ca_buf_printf(err,
                  "the lease %s: renewal needs a lease held and not "
                  "yet renewed",
                  l->lease_key);
    return st;
  }
  if (!l->tr) {
    st = ca_redis_open(l->url, &l->tr, err);
    if (st)
      return st;
  }
  /* Signals go to the other threads: the renewal thread never runs a
   * handler (the watcher's sleeps and main's grace period see them). */
  if (sigfillset(&all) != 0 || pthread_sigmask(SIG_SETMASK, &all, &old) != 0) {
    ca_buf_printf(err, "cannot block signals for the lease's renewal thread");
    return CHATAPP_EINTERNAL;
  }
  l->stop = 0;
  rc = pthread_create(&l->thread, NULL, renewer, l);
  (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    ca_buf_printf(err, "cannot start the lease's renewal thread: %s",
                  strerror(rc));
    return CHATAPP_ENOMEM;
  }
  pthread_mutex_lock(&l->mu);
  l->running = 1;
  pthread_mutex_unlock(&l->mu);
  return CHATAPP_OK;
}

int ca_lease_held(ca_lease *l, char *why, size_t whylen)
{
  int held;

  pthread_mutex_lock(&l->mu);
  judge_clock(l, ca_now_us());
  held = l->taken && !l->lost;
  if (!held && why && whylen)
    snprintf(why, whylen, "%s", l->why[0] ? l->why : "the lease is not taken");
  pthread_mutex_unlock(&l->mu);
  return held;
}

/* ---- release ------------------------------------------------------------ */

chatapp_status ca_lease_release(ca_lease *l, int *released, ca_buf *err)
{
  const char *argv[2];
  redisReply *x = NULL;
  chatapp_status st;
  int taken;

  if (released)
    *released = 0;
  stop_thread(l);
  pthread_mutex_lock(&l->mu);
  taken = l->taken;
  l->taken = 0;
  pthread_mutex_unlock(&l->mu);
  if (!taken)
    return CHATAPP_OK;
  argv[0] = l->lease_key;
  argv[1] = l->value;
  st = ca_redis_eval(l->r, &release_script, 1, 2, argv, NULL, &x, err);
  if (st)
    return st;
  if (x->type == REDIS_REPLY_INTEGER) {
    if (released)
      *released = x->integer == 1;
  } else {
    st = bad_reply(l, x, "releasing it", err);
  }
  freeReplyObject(x);
  return st;
}

/* ---- getters ------------------------------------------------------------ */

int64_t ca_lease_token(const ca_lease *l)
{
  return l->token;
}

const char *ca_lease_holder(const ca_lease *l)
{
  return l->holder;
}

int64_t ca_lease_holder_ttl_ms(const ca_lease *l)
{
  return l->holder_ttl_ms;
}

const char *ca_lease_value(const ca_lease *l)
{
  return l->value;
}

const char *ca_lease_me(const ca_lease *l)
{
  return l->me;
}

const char *ca_lease_where(const ca_lease *l)
{
  return l->where;
}

const char *ca_lease_account(const ca_lease *l)
{
  return l->account;
}

int64_t ca_lease_ttl_ms(const ca_lease *l)
{
  return l->ttl_ms;
}

uint64_t ca_lease_renewals(ca_lease *l, uint64_t *failed)
{
  uint64_t n;

  pthread_mutex_lock(&l->mu);
  n = l->renewals;
  if (failed)
    *failed = l->renew_failed;
  pthread_mutex_unlock(&l->mu);
  return n;
}
