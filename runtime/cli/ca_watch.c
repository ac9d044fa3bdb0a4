/*
 * ca_watch.c: watch mode.
 *
 *   start    read the policy files (kept in memory: a file edited on disk
 *            changes nothing until SIGHUP) and load them once to check;
 *            make the API client (the credentials, and so the account);
 *            take the lock of the state file and account; --listen
 *   cycle    a fresh runtime (a fresh Lua state: memory cannot creep from
 *            one cycle to the next) gets the kept clients (connections and
 *            the process limiter outlive a cycle), loads the sources, runs
 *            once with the state file, publishes its metrics, gives the
 *            clients back and is freed
 *   schedule cycles start every_s apart and never overlap; one that
 *            overruns is logged and the next starts at once; after failing
 *            cycles the wait doubles (with +-10% jitter) up to
 *            max(every, 15 min)
 *   signals  SIGINT / SIGTERM (main.c's handler sets the interrupt flag):
 *            the cycle in flight finishes its requests (main's grace
 *            period bounds it) and commits its state; then exit 0.
 *            SIGHUP: reload the files between cycles; a version that does
 *            not load is logged with file:line and the old one runs on.
 *   lease    with a Redis state (--state redis://...), watchers on several
 *            hosts share it: instead of the lock file, the leader lease
 *            (ca_lease.h).  A standby tries to take it every ttl/3 (or as
 *            soon as the holder's lease ends); the leader runs cycles
 *            with the lease's fence token, which the state store sends
 *            with every write.  A lease lost (a renewal found another
 *            holder, or none reached Redis in time, or a write was
 *            FENCED) starts no new cycle: back to standby.  SIGTERM
 *            releases it, so a standby takes over at once.
 */
#include "ca_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "ca_buf.h"
#include "ca_client.h"
#include "ca_config.h"
#include "ca_crypto.h"
#include "ca_lease.h"
#include "ca_listen.h"
#include "ca_redis.h"
#include "lca_runtime.h"
#include "lca_state_lock.h"

/* A policy file read at most this big (as loading reads it). */
#define POLICY_MAX (4u * 1024 * 1024)
/* Failing cycles back off up to max(every, BACKOFF_CAP_S). */
#define BACKOFF_CAP_S 900

static volatile sig_atomic_t hup;

static void on_hup(int sig)
{
  (void)sig;
  hup = 1;
}

int ca_watch_signals(void)
{
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_hup;
  if (sigemptyset(&sa.sa_mask) || sigaction(SIGHUP, &sa, NULL)) {
    fprintf(stderr, "chatapp-run: cannot install the SIGHUP handler: %s\n",
            strerror(errno));
    return -1;
  }
  return 0;
}

typedef struct source {
  const char *path;
  ca_buf text;
} source;

typedef struct watch {
  chatapp_config *cfg;
  const ca_watch_opts *o;
  char **files;
  int nfiles;
  source *src; /* nfiles of them */
  ca_runtime_clients clients;
  ca_listen *listen;
  lca_state_lock *lock;
  /* a Redis state: the leader lease instead of the lock */
  ca_lease *lease;
  int leading;           /* holds the lease: cycles run */
  int was_standby;       /* waited for another holder: "took over" */
  int redis_down;        /* the last try could not reach Redis (logged) */
  char standby_for[256]; /* the holder last logged */
  int64_t standby_ok;    /* when a standby last reached Redis (Unix time) */
  long healthz_max_age_s;
  /* for the log and the watcher's own metrics */
  uint64_t cycles_ok, cycles_failed, overruns, reloads_ok, reloads_failed;
  int failures; /* consecutive failing cycles */
  int backoff;  /* of these, the last failed on more than its actions */
  int64_t last_good;
  double last_duration;
  char last_error[512];
} watch;

static void say(const watch *w, int level, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void say(const watch *w, int level, const char *fmt, ...)
{
  char line[2048];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (w->cfg->log)
    w->cfg->log(w->cfg->log_ud, level, line);
  else if (level == 0)
    fprintf(stderr, "chatapp-run: %s\n", line);
}

static double mono_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleep until the monotonic time deadline, a stop, or a SIGHUP.  A signal
 * ends a nanosleep early; one that lands between the look at the flags
 * and the nanosleep does not, so no sleep is longer than SLEEP_SLICE_S
 * (else SIGTERM between cycles could wait a whole interval, past main's
 * grace period, and exit 143 instead of 0). */
#define SLEEP_SLICE_S 0.5
static void sleep_until(watch *w, double deadline)
{
  while (!ca_interrupted() && !hup &&
         !(w->leading && !ca_lease_held(w->lease, NULL, 0))) {
    double left = deadline - mono_s();
    struct timespec ts;
    if (left <= 0)
      return;
    if (left > SLEEP_SLICE_S)
      left = SLEEP_SLICE_S;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
  }
}

/* ---- policy sources ----------------------------------------------------- */

static void sources_free(source *src, int n)
{
  int i;
  if (!src)
    return;
  for (i = 0; i < n; i++)
    ca_buf_free(&src[i].text);
  free(src);
}

/*
 * Read every file and load them all in a scratch runtime: the sources, or
 * NULL with the message (file:line for a policy error) in err.
 */
static source *read_sources(watch *w, ca_buf *err)
{
  chatapp_runtime *rt = NULL;
  source *src = calloc((size_t)w->nfiles, sizeof *src);
  chatapp_status st = src ? chatapp_runtime_new(w->cfg, &rt) : CHATAPP_ENOMEM;
  int i;

  for (i = 0; st == CHATAPP_OK && i < w->nfiles; i++) {
    src[i].path = w->files[i];
    ca_buf_init(&src[i].text, POLICY_MAX + 1);
    st = ca_runtime_read_file(rt, src[i].path, POLICY_MAX, &src[i].text);
    if (st == CHATAPP_OK)
      st = chatapp_runtime_load_string(
        rt, src[i].path, ca_buf_str(&src[i].text), src[i].text.len);
  }
  if (st != CHATAPP_OK) {
    ca_buf_reset(err);
    if (ca_buf_adds(err, rt ? chatapp_runtime_errmsg(rt)
                            : chatapp_strerror(st)) != CHATAPP_OK)
      ca_buf_reset(err);
    sources_free(src, w->nfiles);
    src = NULL;
  }
  chatapp_runtime_free(rt);
  return src;
}

static void reload(watch *w)
{
  ca_buf err = CA_BUF_INIT(8192);
  source *src;

  hup = 0;
  src = read_sources(w, &err);
  if (!src) {
    w->reloads_failed++;
    say(w, 0,
        "SIGHUP: the policy files do not load, so the ones loaded before "
        "keep running: %s",
        err.len ? ca_buf_str(&err) : "out of memory");
  } else {
    sources_free(w->src, w->nfiles);
    w->src = src;
    w->reloads_ok++;
    say(w, 0, "SIGHUP: reloaded %d policy file%s", w->nfiles,
        w->nfiles == 1 ? "" : "s");
  }
  ca_buf_free(&err);
}

/* ---- the lock ----------------------------------------------------------- */

/*
 * One writer per state file and account: the lock of lca_state_lock.h
 * (STATE.lock-HASH, an flock that dies with its holder), the same one a
 * one-shot run and `state forget` take, so a watcher and a cron run of
 * one file and account exclude each other.  The cycles' runs share it.
 */
static int take_lock(watch *w, const char *account, char *err, size_t errlen)
{
  if (lca_state_lock_take(w->cfg->state, account, "a watcher", &w->lock, err,
                          errlen) != 0)
    return -1;
  if (*err) /* the holder's line could not be written */
    say(w, 0, "%s", err);
  return 0;
}

/* ---- the lease (a Redis state) ------------------------------------------ */

static void publish(watch *w, const chatapp_runtime *rt);

/* Connect to the state's Redis for the lease of account: the watcher
 * cannot start without it (exit 2). */
static int open_lease(watch *w, const char *account, char *err, size_t errlen)
{
  ca_buf e = CA_BUF_INIT(4096);
  chatapp_status st = ca_lease_new(
    w->cfg->state, account, (int64_t)w->cfg->lease_s * 1000, &w->lease, &e);

  if (st)
    snprintf(err, errlen,
             "the watcher needs the state's Redis for its leader lease: %s",
             e.len ? ca_buf_str(&e) : chatapp_strerror(st));
  ca_buf_free(&e);
  return st ? -1 : 0;
}

/* The lease is gone (why): no new cycle starts; release what may still be
 * ours (a lease judged lost by the clock may not have expired yet) and
 * stand by. */
static void step_down(watch *w, const char *why)
{
  ca_buf e = CA_BUF_INIT(2048);

  say(w, 0,
      "lost the lease of account %s (token %lld): %s; no new cycle starts "
      "here: standby",
      ca_lease_account(w->lease), (long long)ca_lease_token(w->lease), why);
  (void)ca_lease_release(w->lease, NULL, &e); /* stops the renewals */
  ca_buf_free(&e);
  w->leading = 0;
  w->was_standby = 1;
  w->standby_for[0] = '\0';
  if (w->listen)
    publish(w, NULL);
}

/*
 * Hold the lease before a cycle: 1 when held (taken now or still held),
 * 0 when a signal stopped the wait.  A standby tries every ttl/3, or as
 * soon as the holder's lease ends when that is sooner; it logs the holder
 * once (and again when another takes its place), and when it takes over.
 */
static int lead(watch *w)
{
  const double every = (double)ca_lease_ttl_ms(w->lease) / 3000.0;
  char why[1024];

  if (w->leading) {
    if (ca_lease_held(w->lease, why, sizeof why))
      return 1;
    step_down(w, why);
  }
  while (!ca_interrupted()) {
    ca_buf e = CA_BUF_INIT(4096);
    double wait = every;
    int won = 0;
    chatapp_status st = ca_lease_acquire(w->lease, &won, &e);

    if (st == CHATAPP_OK && won) {
      ca_buf_reset(&e);
      st = ca_lease_start(w->lease, &e);
      if (st == CHATAPP_OK) {
        say(w, 0,
            "%s the lease of account %s at %s (token %lld, %lld s): "
            "running cycles",
            w->was_standby ? "took over" : "took", ca_lease_account(w->lease),
            ca_lease_where(w->lease), (long long)ca_lease_token(w->lease),
            (long long)ca_lease_ttl_ms(w->lease) / 1000);
        ca_buf_free(&e);
        w->leading = 1;
        w->redis_down = 0;
        w->standby_for[0] = '\0';
        return 1;
      }
      say(w, 0, "cannot renew the lease just taken, so it is let go: %s",
          ca_buf_str(&e));
      ca_buf_reset(&e);
      (void)ca_lease_release(w->lease, NULL, &e);
    } else if (st == CHATAPP_OK) {
      int64_t left = ca_lease_holder_ttl_ms(w->lease);
      w->was_standby = 1;
      w->redis_down = 0;
      w->standby_ok = (int64_t)time(NULL);
      if (strcmp(w->standby_for, ca_lease_holder(w->lease)) != 0) {
        snprintf(w->standby_for, sizeof w->standby_for, "%s",
                 ca_lease_holder(w->lease));
        say(w, 0,
            "standby: %s holds the lease of account %s at %s; this "
            "watcher takes over when it ends",
            w->standby_for, ca_lease_account(w->lease),
            ca_lease_where(w->lease));
      }
      if (w->listen) /* healthy: it can take over */
        publish(w, NULL);
      /* a few ms past the holder's end, if that is sooner */
      if (left >= 0 && (double)(left + 20) / 1000.0 < wait)
        wait = (double)(left + 20) / 1000.0;
    } else if (!w->redis_down) {
      w->redis_down = 1;
      say(w, 0, "standby: cannot take the lease: %s; trying again every %.1f s",
          ca_buf_str(&e), every);
    }
    ca_buf_free(&e);
    sleep_until(w, mono_s() + wait);
    if (hup && !ca_interrupted())
      reload(w);
  }
  return 0;
}

/* After a cycle: 1 when the lease was lost on the way (a renewal found
 * another holder or none in time), and the watcher stood down.  A failing
 * cycle may have been refused a state write (FENCED: the store says that
 * this instance no longer holds the lease): a renewal now asks Redis
 * whether the lease is still ours, whatever the message said. */
static int lost_lease(watch *w, chatapp_status st)
{
  char why[1024];

  if (!w->lease || !w->leading)
    return 0;
  if (st != CHATAPP_OK && ca_lease_held(w->lease, NULL, 0)) {
    ca_buf e = CA_BUF_INIT(2048);
    int ours = 0;
    if (ca_lease_renew(w->lease, &ours, &e) != CHATAPP_OK)
      say(w, 1, "cannot check the lease after the failing cycle: %s",
          ca_buf_str(&e));
    ca_buf_free(&e);
  }
  if (!ca_lease_held(w->lease, why, sizeof why)) {
    step_down(w, why);
    return 1;
  }
  return 0;
}

/* ---- the state file ----------------------------------------------------- */

/* mkdir -p the folder of path, mode 0700 for what it makes. */
static int make_folder(const char *path, char *err, size_t errlen)
{
  char dir[4096];
  char *p;

  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) {
    snprintf(err, errlen, "the state path is too long");
    return -1;
  }
  p = strrchr(dir, '/');
  if (!p || p == dir)
    return 0;
  *p = '\0';
  for (p = dir + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      goto fail;
    *p = '/';
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    goto fail;
  return 0;
fail:
  snprintf(err, errlen, "cannot make the state folder %s: %s", dir,
           strerror(errno));
  return -1;
}

/* ---- metrics and health ------------------------------------------------- */

static void publish(watch *w, const chatapp_runtime *rt)
{
  ca_buf b = CA_BUF_INIT((size_t)512 * 1024 * 1024);
  size_t len = 0;
  const char *run = rt ? ca_runtime_metrics(rt, &len) : NULL;
  chatapp_status st = run ? ca_buf_add(&b, run, len) : CHATAPP_OK;

  if (!st)
    st = ca_buf_printf(
      &b,
      "# HELP chatapp_watch_cycles_total Watch cycles run, by result.\n"
      "# TYPE chatapp_watch_cycles_total counter\n"
      "chatapp_watch_cycles_total{result=\"ok\"} %" PRIu64 "\n"
      "chatapp_watch_cycles_total{result=\"failed\"} %" PRIu64 "\n"
      "# HELP chatapp_watch_consecutive_failures Failing cycles since the "
      "last good one.\n"
      "# TYPE chatapp_watch_consecutive_failures gauge\n"
      "chatapp_watch_consecutive_failures %d\n"
      "# HELP chatapp_watch_overruns_total Cycles that took longer than "
      "the interval.\n"
      "# TYPE chatapp_watch_overruns_total counter\n"
      "chatapp_watch_overruns_total %" PRIu64 "\n"
      "# HELP chatapp_watch_reloads_total SIGHUP reloads, by result.\n"
      "# TYPE chatapp_watch_reloads_total counter\n"
      "chatapp_watch_reloads_total{result=\"ok\"} %" PRIu64 "\n"
      "chatapp_watch_reloads_total{result=\"failed\"} %" PRIu64 "\n"
      "# HELP chatapp_watch_last_success_timestamp_seconds When the last "
      "good cycle ended (Unix time; 0: none yet).\n"
      "# TYPE chatapp_watch_last_success_timestamp_seconds gauge\n"
      "chatapp_watch_last_success_timestamp_seconds %" PRId64 "\n"
      "# HELP chatapp_watch_cycle_duration_seconds How long the last cycle "
      "took.\n"
      "# TYPE chatapp_watch_cycle_duration_seconds gauge\n"
      "chatapp_watch_cycle_duration_seconds %.3f\n"
      "# HELP chatapp_watch_interval_seconds The interval between cycle "
      "starts (--every).\n"
      "# TYPE chatapp_watch_interval_seconds gauge\n"
      "chatapp_watch_interval_seconds %ld\n",
      w->cycles_ok, w->cycles_failed, w->failures, w->overruns, w->reloads_ok,
      w->reloads_failed, w->last_good, w->last_duration, w->o->every_s);
  if (!st && w->lease)
    st = ca_buf_printf(&b,
                       "# HELP chatapp_watch_leader Whether this watcher "
                       "holds the leader lease of a Redis state (1) or "
                       "stands by (0).\n"
                       "# TYPE chatapp_watch_leader gauge\n"
                       "chatapp_watch_leader %d\n",
                       w->leading);
  if (st || ca_listen_publish(w->listen, ca_buf_str(&b), b.len))
    say(w, 0, "cannot publish the metrics: out of memory");
  ca_buf_free(&b);
  /* A standby that reaches Redis is as healthy as it can be. */
  ca_listen_health(
    w->listen,
    w->lease && !w->leading && w->standby_ok > w->last_good ? w->standby_ok
                                                            : w->last_good,
    w->healthz_max_age_s, w->last_error[0] ? w->last_error : NULL);
}

/* ---- a cycle ------------------------------------------------------------ */

static chatapp_status cycle(watch *w, long n)
{
  chatapp_runtime *rt = NULL;
  chatapp_status st = chatapp_runtime_new(w->cfg, &rt);
  double t0 = mono_s();
  int i;

  if (st == CHATAPP_OK) {
    ca_runtime_keep_metrics(rt, w->listen != NULL);
    ca_runtime_give_clients(rt, &w->clients);
    if (w->lease) /* every state write of the cycle carries it */
      ca_runtime_set_lease_token(rt, ca_lease_token(w->lease));
    for (i = 0; st == CHATAPP_OK && i < w->nfiles; i++)
      st = chatapp_runtime_load_string(
        rt, w->src[i].path, ca_buf_str(&w->src[i].text), w->src[i].text.len);
    if (st == CHATAPP_OK)
      st = chatapp_runtime_run(rt, w->o->flags);
  }
  w->last_duration = mono_s() - t0;
  if (st != CHATAPP_OK && ca_interrupted()) {
    /* Cut short by SIGTERM / SIGINT: not a failing cycle (what it
     * committed stands; what it did not start waits in the outbox). */
    say(w, 1, "cycle %ld: cut short by the signal (%.2f s)", n,
        w->last_duration);
  } else if (st == CHATAPP_OK) {
    if (w->failures)
      say(w, 0, "cycle %ld: ok again after %d failing cycle%s (%.2f s)", n,
          w->failures, w->failures == 1 ? "" : "s", w->last_duration);
    else
      say(w, n == 1 ? 0 : 1, "cycle %ld: ok (%.2f s)", n, w->last_duration);
    w->cycles_ok++;
    w->failures = 0;
    w->last_good = (int64_t)time(NULL);
    w->last_error[0] = '\0';
  } else {
    const char *msg = rt ? chatapp_runtime_errmsg(rt) : NULL;
    w->cycles_failed++;
    w->failures++;
    /* Failed actions wait in the outbox for the next cycle, an interval
     * later: backing off for them would delay the watching, and, with
     * actions failing at a steady share, feed itself (a later cycle
     * carries more actions).  Only the API, a policy, the configuration
     * or the credentials failing back off (found by the soak, B13). */
    w->backoff = st != CHATAPP_EACTION;
    snprintf(w->last_error, sizeof w->last_error, "%s",
             msg && *msg ? msg : chatapp_strerror(st));
    w->last_error[strcspn(w->last_error, "\n")] = '\0';
    say(w, 0, "cycle %ld failed (%s, %.2f s): %s", n, chatapp_codename(st),
        w->last_duration, w->last_error);
  }
  if (w->listen)
    publish(w, rt);
  if (rt) {
    ca_runtime_take_clients(rt, &w->clients);
    chatapp_runtime_free(rt);
  }
#ifdef __GLIBC__
  /* The cycle's Lua state is gone: give its pages back to the system.
   * Without this the resident size between cycles swings by some 15%
   * (glibc trims the heap only when its top is free, which depends on
   * where the last long-lived block landed), and a watcher's memory
   * would look like it grows.  Its result (whether anything was given
   * back) is of no use here. */
  (void)malloc_trim(0);
#endif
  /* Credentials rejected or configuration broken: make the clients anew
   * next time (the credentials may have been fixed meanwhile). */
  if (st == CHATAPP_ECREDENTIALS || st == CHATAPP_ECONFIG)
    ca_runtime_clients_free(&w->clients);
  return st;
}

/* Seconds to wait from a cycle's start to the next one's. */
static double next_delay(const watch *w)
{
  double d = (double)w->o->every_s, cap;
  int k;

  if (!w->failures || !w->backoff)
    return d;
  cap = d > BACKOFF_CAP_S ? d : BACKOFF_CAP_S;
  for (k = 1; k < w->failures && d < cap; k++)
    d *= 2;
  if (d > cap)
    d = cap;
  /* +-10%: several watchers failing together do not retry in step */
  return d * (0.9 + 0.2 * ((double)rand() / ((double)RAND_MAX + 1.0)));
}

/* ---- start and loop ----------------------------------------------------- */

static int start(watch *w, int *rc)
{
  char err[4600], path[4096];
  ca_buf e = CA_BUF_INIT(8192);
  ca_client *api = NULL;

  *rc = 2;
  if (!w->cfg->state) {
    if (ca_default_state_path(path, sizeof path)) {
      say(w, 0, "%s", path);
      return -1;
    }
    if (chatapp_config_set(w->cfg, "state", path) != CHATAPP_OK) {
      say(w, 0, "%s", chatapp_config_errmsg(w->cfg));
      return -1;
    }
  }
  if (!ca_redis_is_url(w->cfg->state) &&
      make_folder(w->cfg->state, err, sizeof err)) {
    say(w, 0, "%s", err);
    return -1;
  }
  w->src = read_sources(w, &e);
  if (!w->src) {
    say(w, 0, "%s", e.len ? ca_buf_str(&e) : "out of memory");
    ca_buf_free(&e);
    *rc = w->o->exit_load;
    return -1;
  }
  ca_buf_reset(&e);
  if (ca_config_new_client(w->cfg, &api, &e, &w->clients.source)) {
    say(w, 0, "%s", e.len ? ca_buf_str(&e) : "cannot make the API client");
    ca_buf_free(&e);
    return -1;
  }
  ca_buf_free(&e);
  w->clients.api = api;
  if (ca_redis_is_url(w->cfg->state)) {
    /* --account, else the client's: the state store's account */
    if (open_lease(w,
                   w->cfg->account ? w->cfg->account : ca_client_account(api),
                   err, sizeof err)) {
      say(w, 0, "%s", err);
      return -1;
    }
  } else if (take_lock(w, ca_client_account(api), err, sizeof err)) {
    say(w, 0, "%s", err);
    return -1;
  }
  if (w->o->listen) {
    if (ca_listen_start(w->o->listen, &w->listen, err, sizeof err)) {
      say(w, 0, "--listen %s: %s", w->o->listen, err);
      return -1;
    }
    say(w, 0, "serving /metrics and /healthz on http://%s",
        ca_listen_address(w->listen));
    if (!ca_listen_is_loopback(w->listen))
      say(w, 0,
          "--listen %s: /metrics and /healthz are open to other hosts, not "
          "only this one",
          w->o->listen);
    publish(w, NULL);
  }
  if (w->lease)
    say(w, 1,
        "watching every %ld s; state %s; leader lease of account %s, "
        "%lld s",
        w->o->every_s, w->cfg->state, ca_lease_account(w->lease),
        (long long)ca_lease_ttl_ms(w->lease) / 1000);
  else
    say(w, 1, "watching every %ld s; state %s; lock %s", w->o->every_s,
        w->cfg->state, lca_state_lock_path(w->lock));
  return 0;
}

int ca_watch(chatapp_config *cfg, char **files, int nfiles,
             const ca_watch_opts *o)
{
  watch w;
  long n, ran = 0;
  int rc;

  memset(&w, 0, sizeof w);
  w.cfg = cfg;
  w.o = o;
  w.files = files;
  w.nfiles = nfiles;
  ca_buf_init(&w.clients.source, 4096);
  w.healthz_max_age_s = o->healthz_max_age_s > 0 ? o->healthz_max_age_s
                        : 3 * o->every_s > 60    ? 3 * o->every_s
                                                 : 60;
  srand((unsigned)getpid() ^ (unsigned)time(NULL));
  if (start(&w, &rc) == 0) {
    rc = 0;
    for (n = 1; !ca_interrupted(); n++) {
      double began, took, delay;
      chatapp_status st;
      if (w.lease && !lead(&w))
        break; /* a signal during the standby */
      began = mono_s();
      st = cycle(&w, n);
      ran = n;
      took = mono_s() - began;
      if (ca_interrupted())
        break;
      if (lost_lease(&w, st))
        continue; /* standby at once */
      if (took > (double)o->every_s) {
        w.overruns++;
        say(&w, 0,
            "cycle %ld took %.1f s, longer than --every %ld s: the next "
            "starts now",
            n, took, o->every_s);
      }
      delay = next_delay(&w);
      if (w.failures > 1 && w.backoff)
        say(&w, 0, "backing off after %d failing cycles: the next in %.0f s",
            w.failures, delay);
      sleep_until(&w, began + delay);
      while (hup && !ca_interrupted()) {
        reload(&w);
        sleep_until(&w, began + delay);
      }
    }
    n = ran;
    if (w.lease && !w.leading)
      say(&w, 0, "stopped by %s while standing by, after %ld cycle%s here",
          ca_interrupted() == SIGINT ? "SIGINT" : "SIGTERM", n,
          n == 1 ? "" : "s");
    else
      say(&w, 0, "stopped by %s after %ld cycle%s; the state is committed",
          ca_interrupted() == SIGINT ? "SIGINT" : "SIGTERM", n,
          n == 1 ? "" : "s");
  }
  if (w.lease && w.leading) {
    /* a standby takes over at once */
    ca_buf e = CA_BUF_INIT(2048);
    int released = 0;
    if (ca_lease_release(w.lease, &released, &e) != CHATAPP_OK)
      say(&w, 0,
          "cannot release the lease (it ends by itself within %lld s): %s",
          (long long)ca_lease_ttl_ms(w.lease) / 1000, ca_buf_str(&e));
    else if (released)
      say(&w, 1, "released the lease of account %s", ca_lease_account(w.lease));
    ca_buf_free(&e);
  }
  ca_lease_free(w.lease);
  ca_listen_stop(w.listen);
  ca_runtime_clients_free(&w.clients);
  sources_free(w.src, nfiles);
  lca_state_lock_release(w.lock); /* the file stays: removing it would race */
  return rc;
}
