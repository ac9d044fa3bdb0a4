/*
 * ca_limiter_redis: the limiter's windows and adaptive factors in Redis,
 * shared by every host of an account (docs/internals/limiter.md, "Several
 * hosts: Redis").
 *
 * The model is the host-local one (ca_limiter.c), moved into three
 * server-side scripts, each one atomic and timed by the Redis server's
 * clock (TIME), so the clocks of the hosts never matter:
 *
 *   acquire    the sliding-window log of one key: grant, or the wait in
 *              microseconds until the N-th most recent start leaves the
 *              window; the caller adds the wait to its own monotonic now
 *   throttled  multiply the key's factor by 0.7, at most once per window
 *   factor     the key's current factor (for reports)
 *
 * Keys (all of one account carry the hash tag {ACCOUNT}, so they live in
 * one slot of a cluster and a script may touch them together):
 *
 *   chatapp:limiter:{ACCOUNT}:log:OPERATION     list, newest start first
 *                                               (server microseconds, at
 *                                               most CA_LIMITER_MAX_N);
 *                                               expires W + 1 s after the
 *                                               last start
 *   chatapp:limiter:{ACCOUNT}:factor:OPERATION  hash f, th, fa, lt (factor,
 *                                               throttle level, factor time,
 *                                               last throttle); expires 60 s
 *                                               after the last throttle, when
 *                                               the factor is back at 1
 *   chatapp:limiter:{ACCOUNT}:epoch             when this server first saw
 *                                               the account (no expiry)
 *
 * The epoch guard: a server restarted empty (no persistence), flushed, or
 * new, has lost the starts of the last window.  The acquire script sets
 * the epoch to the server's now when it is absent and grants nothing
 * before epoch + W: every start that was lost happened before the epoch,
 * so none of them can share a window with a start granted after it.  The
 * cost is one window of waiting after a restart (and on the account's
 * first use of a server).
 *
 * Whatever is found in Redis is checked where it is used: a time that is
 * not a number, or one in the server's future (its clock stepped back),
 * counts as "now", the conservative side; a factor out of range is 1.
 */
#include "ca_limiter_redis.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_redis.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

/* No answer from Redis: ask again this soon (ca_redis paces the connection
 * attempts itself, 50 ms doubling to 2 s; an ask in between costs nothing). */
#define DOWN_RETRY_US 100000

/* Shared by the scripts: the constants of ca_limiter.h, the server's now,
 * a time as text without loss (Redis's Lua 5.1 prints numbers with 14
 * digits), and the factor of a key (the host-local factor_at). */
#define CONSTANT(name, value) "local " name " = " STR(value) "\n"
#define PRELUDE                                                                \
  CONSTANT("MIN", CA_LIMITER_MIN_FACTOR)                                       \
  CONSTANT("FAST", CA_LIMITER_FAST)                                            \
  CONSTANT("SLOW", CA_LIMITER_SLOW)                                            \
  CONSTANT("APPROACH", CA_LIMITER_APPROACH)                                    \
  CONSTANT("QUIET", CA_LIMITER_QUIET_US)                                       \
  CONSTANT("DEC", CA_LIMITER_DECREASE)                                         \
  CONSTANT("MAXN", CA_LIMITER_MAX_N)                                           \
  PRELUDE_TEXT

#define PRELUDE_TEXT                                                           \
  "local function now_us()\n"                                                  \
  "  local t = redis.call('TIME')\n"                                           \
  "  return tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                       \
  "end\n"                                                                      \
  "local function num(x) return string.format('%.0f', x) end\n"                \
  "local function load_factor(key, now, w)\n"                                  \
  "  local v = redis.call('HMGET', key, 'f', 'th', 'fa', 'lt')\n"              \
  "  local f, th = tonumber(v[1]) or 1, tonumber(v[2]) or 0\n"                 \
  "  local fa, lt = tonumber(v[3]) or now, tonumber(v[4]) or 0\n"              \
  "  if not (f >= MIN and f <= 1) then f = 1 end\n"                            \
  "  if not (th >= 0 and th <= 1) then th = 0 end\n"                           \
  "  if not (fa <= now and fa >= 0) then fa = now end\n"                       \
  "  if not (lt <= now + w and lt >= 0) then lt = now end\n"                   \
  "  return f, th, fa, lt\n"                                                   \
  "end\n"                                                                      \
  "local function factor_at(f, th, fa, lt, now)\n"                             \
  "  local t = fa\n"                                                           \
  "  local quiet_end = 0\n"                                                    \
  "  if lt ~= 0 then quiet_end = lt + QUIET end\n"                             \
  "  for _ = 1, 3 do\n"                                                        \
  "    if not (t < now and f < 1) then break end\n"                            \
  "    if f < th * APPROACH then\n"                                            \
  "      local reach = t + math.floor((th * APPROACH - f) / FAST * 1e6)\n"     \
  "      if reach >= now then\n"                                               \
  "        f = f + FAST * (now - t) / 1e6; t = now\n"                          \
  "      else\n"                                                               \
  "        f = th * APPROACH; t = reach\n"                                     \
  "      end\n"                                                                \
  "    elseif t < quiet_end then\n"                                            \
  "      local e = math.min(quiet_end, now)\n"                                 \
  "      f = f + SLOW * (e - t) / 1e6; t = e\n"                                \
  "    else\n"                                                                 \
  "      f = f + FAST * (now - t) / 1e6; t = now\n"                            \
  "    end\n"                                                                  \
  "  end\n"                                                                    \
  "  if f > 1 then f = 1 end\n"                                                \
  "  return f\n"                                                               \
  "end\n"

/* KEYS: log, factor, epoch.  ARGV: n, window (us).
 * Returns {granted 0|1, wait us, factor x 1e6}. */
static ca_redis_script acquire_script = {
  PRELUDE
  "local now = now_us()\n"
  "local n, w = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
  "local f0, th, fa, lt = load_factor(KEYS[2], now, w)\n"
  "local f = factor_at(f0, th, fa, lt, now)\n"
  "local fe6 = math.floor(f * 1e6 + 0.5)\n"
  "local e = tonumber(redis.call('GET', KEYS[3]))\n"
  "if not e or e > now then\n"
  "  e = now\n"
  "  redis.call('SET', KEYS[3], num(now))\n"
  "end\n"
  "if now < e + w then return {0, e + w - now, fe6} end\n"
  "local k = math.floor(n * f + 1e-9)\n"
  "if k < 1 then k = 1 end\n"
  "if k > MAXN then k = MAXN end\n"
  "local newest = redis.call('LINDEX', KEYS[1], 0)\n"
  "if newest and not (tonumber(newest) and tonumber(newest) <= now) then\n"
  "  local all = redis.call('LRANGE', KEYS[1], 0, -1)\n"
  "  redis.call('DEL', KEYS[1])\n"
  "  for i = 1, #all do\n"
  "    local t = tonumber(all[i])\n"
  "    if not (t and t <= now) then t = now end\n"
  "    redis.call('RPUSH', KEYS[1], num(t))\n"
  "  end\n"
  "end\n"
  "if redis.call('LLEN', KEYS[1]) >= k then\n"
  "  local kth = tonumber(redis.call('LINDEX', KEYS[1], k - 1))\n"
  "  if not (kth and kth <= now) then kth = now end\n"
  "  if kth + w > now then return {0, kth + w - now, fe6} end\n"
  "end\n"
  "redis.call('LPUSH', KEYS[1], num(now))\n"
  "redis.call('LTRIM', KEYS[1], 0, MAXN - 1)\n"
  "redis.call('PEXPIRE', KEYS[1], math.floor(w / 1000) + 1000)\n"
  "return {1, 0, fe6}\n",
  ""};

/* KEYS: factor.  ARGV: window (us).  Returns the factor x 1e6. */
static ca_redis_script throttled_script = {
  PRELUDE "local now = now_us()\n"
          "local w = tonumber(ARGV[1])\n"
          "local f, th, fa, lt = load_factor(KEYS[1], now, w)\n"
          "if lt == 0 or now - lt >= w then\n"
          "  th = factor_at(f, th, fa, lt, now)\n"
          "  f = th * DEC\n"
          "  if f < MIN then f = MIN end\n"
          "  redis.call('HSET', KEYS[1], 'f', string.format('%.17g', f),\n"
          "             'th', string.format('%.17g', th), 'fa', num(now),\n"
          "             'lt', num(now))\n"
          "  redis.call('PEXPIRE', KEYS[1], 60000)\n"
          "  fa, lt = now, now\n"
          "end\n"
          "return math.floor(factor_at(f, th, fa, lt, now) * 1e6 + 0.5)\n",
  ""};

/* KEYS: factor.  ARGV: window (us).  Returns the factor x 1e6. */
static ca_redis_script factor_script = {
  PRELUDE "local now = now_us()\n"
          "local f, th, fa, lt = load_factor(KEYS[1], now, tonumber(ARGV[1]))\n"
          "return math.floor(factor_at(f, th, fa, lt, now) * 1e6 + 0.5)\n",
  ""};

struct ca_limiter_redis {
  ca_redis *redis;
  int64_t window; /* us */
  char error[512];
  uint64_t outages;
  int64_t down_start; /* 0: answering */
  int64_t down_total; /* of the outages that ended */
};

chatapp_status ca_limiter_redis_new(const char *url, int64_t window_us,
                                    ca_limiter_redis **out, ca_buf *err)
{
  ca_limiter_redis *r = calloc(1, sizeof *r);
  ca_buf why = CA_BUF_INIT(2048);
  chatapp_status st;

  *out = NULL;
  if (!r)
    return CHATAPP_ENOMEM;
  r->window = window_us;
  st = ca_redis_open(url, &r->redis, &why);
  if (st) {
    ca_buf_printf(err,
                  "the shared limiter cannot be used (%s). Nothing was sent: "
                  "chatapp-run never falls back to a limit of this host "
                  "alone; %s",
                  ca_buf_str(&why),
                  st == CHATAPP_ETRANSPORT
                    ? "start the server, or correct --limiter (the `limiter` "
                      "setting)"
                    : "correct --limiter (the `limiter` setting) or the "
                      "password variables");
    ca_buf_free(&why);
    free(r);
    return st;
  }
  ca_buf_free(&why);
  *out = r;
  return CHATAPP_OK;
}

void ca_limiter_redis_free(ca_limiter_redis *r)
{
  if (!r)
    return;
  ca_redis_free(r->redis);
  free(r);
}

const char *ca_limiter_redis_error(const ca_limiter_redis *r)
{
  return r->error[0] ? r->error : NULL;
}

const char *ca_limiter_redis_where(const ca_limiter_redis *r)
{
  return ca_redis_where(r->redis);
}

void ca_limiter_redis_stats(const ca_limiter_redis *r, int64_t now,
                            ca_limiter_stats *out)
{
  memset(out, 0, sizeof *out);
  out->round_trips = ca_redis_round_trips(r->redis);
  out->outages = r->outages;
  out->down_us = r->down_total;
  if (r->down_start) {
    out->down = 1;
    if (now > r->down_start)
      out->down_us += now - r->down_start;
  }
}

/* The Redis keys of key "ACCOUNT/OPERATION": kind "log", "factor", or
 * "epoch" (per account).  0, or -1 when they do not fit. */
static int redis_key(const char *key, const char *kind, char *out, size_t size)
{
  const char *slash = strrchr(key, '/');
  int alen = slash ? (int)(slash - key) : (int)strlen(key);
  const char *op = slash ? slash + 1 : "";
  int n;

  if (strcmp(kind, "epoch") == 0)
    n = snprintf(out, size, "chatapp:limiter:{%.*s}:epoch", alen, key);
  else
    n =
      snprintf(out, size, "chatapp:limiter:{%.*s}:%s:%s", alen, key, kind, op);
  return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* The server answered (whatever it said): an outage, if any, ended. */
static void answered(ca_limiter_redis *r, int64_t now)
{
  if (r->down_start) {
    if (now > r->down_start)
      r->down_total += now - r->down_start;
    r->down_start = 0;
  }
}

static void no_answer(ca_limiter_redis *r, int64_t now, const char *why)
{
  char *retry;

  if (!r->down_start) {
    r->outages++;
    r->down_start = now > 0 ? now : 1;
  }
  snprintf(r->error, sizeof r->error, "%s", why);
  /* ca_redis's "; trying again in N ms" is for the moment it was said;
   * the callers say when they give up. */
  if ((retry = strstr(r->error, "; trying again in ")) != NULL)
    *retry = '\0';
}

/* Run script s; on success *out is its reply (checked by the caller).
 * 0, or -1 with r->error set (the server gave no usable answer). */
static int run(ca_limiter_redis *r, ca_redis_script *s, int nkeys, int argc,
               const char **argv, redisReply **out)
{
  ca_buf err = CA_BUF_INIT(1024);
  chatapp_status st;
  redisReply *x = NULL;
  int64_t now;

  *out = NULL;
  st = ca_redis_eval(r->redis, s, nkeys, argc, argv, NULL, &x, &err);
  if (st == CHATAPP_ETRANSPORT && !r->down_start) {
    /* A connection that was fine is closed (the server's idle timeout, a
     * restart, a CLIENT KILL): once more at once, on a new one, before
     * calling it an outage.  Should the lost command have run, the start
     * is counted twice: slower, never faster. */
    ca_buf_reset(&err);
    st = ca_redis_eval(r->redis, s, nkeys, argc, argv, NULL, &x, &err);
  }
  now = ca_now_us();
  if (st) {
    no_answer(r, now, ca_buf_str(&err));
    ca_buf_free(&err);
    return -1;
  }
  ca_buf_free(&err);
  answered(r, now);
  if (x->type == REDIS_REPLY_ERROR) {
    /* A server that answers with an error (out of memory, a read-only
     * replica, a cluster's MOVED) cannot limit: the calls wait, as for
     * one that does not answer. */
    char why[400];
    snprintf(why, sizeof why, "Redis at %s answered an error: %.300s",
             ca_redis_where(r->redis), x->str ? x->str : "(none)");
    freeReplyObject(x);
    no_answer(r, now, why);
    return -1;
  }
  *out = x;
  return 0;
}

static int bad_reply(ca_limiter_redis *r, redisReply *x)
{
  char why[300];

  snprintf(why, sizeof why,
           "Redis at %s gave the limiter's script an unexpected answer "
           "(type %d)",
           ca_redis_where(r->redis), x ? x->type : -1);
  freeReplyObject(x);
  no_answer(r, ca_now_us(), why);
  return -1;
}

int ca_limiter_redis_acquire(ca_limiter_redis *r, const char *key, int n,
                             int64_t now, int64_t *retry_at, double *factor)
{
  char log_key[512], factor_key[512], epoch_key[512], ns[16], ws[24];
  const char *argv[5];
  redisReply *x;
  long long granted, wait, fe6;

  if (redis_key(key, "log", log_key, sizeof log_key) ||
      redis_key(key, "factor", factor_key, sizeof factor_key) ||
      redis_key(key, "epoch", epoch_key, sizeof epoch_key)) {
    snprintf(r->error, sizeof r->error,
             "the limiter key is too long (%zu bytes)", strlen(key));
    *retry_at = now + DOWN_RETRY_US;
    return -1;
  }
  snprintf(ns, sizeof ns, "%d", n);
  snprintf(ws, sizeof ws, "%lld", (long long)r->window);
  argv[0] = log_key;
  argv[1] = factor_key;
  argv[2] = epoch_key;
  argv[3] = ns;
  argv[4] = ws;
  if (run(r, &acquire_script, 3, 5, argv, &x)) {
    *retry_at = ca_now_us() + DOWN_RETRY_US;
    return -1;
  }
  if (x->type != REDIS_REPLY_ARRAY || x->elements != 3 ||
      x->element[0]->type != REDIS_REPLY_INTEGER ||
      x->element[1]->type != REDIS_REPLY_INTEGER ||
      x->element[2]->type != REDIS_REPLY_INTEGER) {
    *retry_at = ca_now_us() + DOWN_RETRY_US;
    return bad_reply(r, x);
  }
  granted = x->element[0]->integer;
  wait = x->element[1]->integer;
  fe6 = x->element[2]->integer;
  freeReplyObject(x);
  if (factor)
    *factor = fe6 >= (long long)(CA_LIMITER_MIN_FACTOR * 1e6) && fe6 <= 1000000
                ? (double)fe6 / 1e6
                : 1.0;
  if (granted == 1)
    return 1;
  /* The wait comes from the server's clock, the retry time is on ours:
   * counted from when the answer arrived, never early.  A wait out of
   * range (a hostile server) is bounded by the window. */
  if (wait < 1)
    wait = 1;
  if (wait > r->window)
    wait = r->window;
  *retry_at = ca_now_us() + wait;
  return 0;
}

void ca_limiter_redis_throttled(ca_limiter_redis *r, const char *key,
                                int64_t now)
{
  char factor_key[512], ws[24];
  const char *argv[2];
  redisReply *x;

  (void)now;
  if (redis_key(key, "factor", factor_key, sizeof factor_key))
    return;
  snprintf(ws, sizeof ws, "%lld", (long long)r->window);
  argv[0] = factor_key;
  argv[1] = ws;
  /* Lost when Redis cannot answer: the calls wait for it anyway. */
  if (run(r, &throttled_script, 1, 2, argv, &x) == 0)
    freeReplyObject(x);
}

double ca_limiter_redis_factor(ca_limiter_redis *r, const char *key,
                               int64_t now)
{
  char factor_key[512], ws[24];
  const char *argv[2];
  redisReply *x;
  double f = 1.0;

  (void)now;
  if (redis_key(key, "factor", factor_key, sizeof factor_key))
    return f;
  snprintf(ws, sizeof ws, "%lld", (long long)r->window);
  argv[0] = factor_key;
  argv[1] = ws;
  if (run(r, &factor_script, 1, 2, argv, &x))
    return f;
  if (x->type == REDIS_REPLY_INTEGER && x->integer >= 0 &&
      x->integer <= 1000000)
    f = (double)x->integer / 1e6;
  freeReplyObject(x);
  return f;
}
