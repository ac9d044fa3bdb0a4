/*
 * The limiter shared through Redis (ca_limiter_redis.c) against real
 * servers, started by tests/lua/with_redis.lua:
 *
 *   test_limiter_redis URL URL_WITH_PASSWORD   (TEST_REDIS_PASSWORD set)
 *
 * Grants and denials counted on the server's own clock (the start times
 * the script keeps), two limiter objects (two hosts) sharing one window
 * and one factor, the epoch guard after FLUSHALL, the keys' expiries,
 * hostile contents, the password from the environment or a file, the
 * errors at start, and a server that goes away mid-run (last: it shuts
 * the first server down).
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca_limiter.h"
#include "ca_redis.h"
#include "test.h"

#define SEC    1000000LL
#define W      (SEC + 50000LL) /* 1 s + the default margin */
#define KEY    "acct/Query"
#define LOGKEY "chatapp:limiter:{acct}:log:Query"

static const char *url, *url_pw, *password;
static ca_redis *admin;

static void sleep_until(int64_t t)
{
  int64_t now = ca_now_us();
  if (t > now) {
    struct timespec ts = {(time_t)((t - now) / SEC),
                          (long)((t - now) % SEC) * 1000};
    nanosleep(&ts, NULL);
  }
}

/* One admin command (words); its reply, which the caller frees. */
static redisReply *cmd(int argc, const char **argv)
{
  ca_buf err = CA_BUF_INIT(1024);
  redisReply *x = NULL;

  if (ca_redis_command(admin, argc, argv, NULL, &x, &err) != CHATAPP_OK)
    fprintf(stderr, "admin command %s failed: %s\n", argv[0], ca_buf_str(&err));
  ca_buf_free(&err);
  return x;
}

static long long cmd_int(int argc, const char **argv)
{
  redisReply *x = cmd(argc, argv);
  long long v = x && x->type == REDIS_REPLY_INTEGER ? x->integer : -999;
  freeReplyObject(x);
  return v;
}

static void flushall(void)
{
  const char *argv[] = {"FLUSHALL"};
  freeReplyObject(cmd(1, argv));
}

/* The server's start times of KEY (microseconds), oldest first. */
static int server_starts(int64_t *t, int max)
{
  const char *argv[] = {"LRANGE", LOGKEY, "0", "-1"};
  redisReply *x = cmd(4, argv);
  int n = 0;

  if (x && x->type == REDIS_REPLY_ARRAY)
    for (size_t i = x->elements; i-- > 0 && n < max;)
      t[n++] = strtoll(x->element[i]->str, NULL, 10);
  freeReplyObject(x);
  return n;
}

static int max_in_window(const int64_t *t, int n, int64_t w)
{
  int best = 0, lo = 0;

  for (int hi = 0; hi < n; hi++) {
    while (t[hi] - t[lo] >= w)
      lo++;
    if (hi - lo + 1 > best)
      best = hi - lo + 1;
  }
  return best;
}

static ca_limiter *open_limiter(const char *u)
{
  ca_buf err = CA_BUF_INIT(2048);
  ca_limiter *l = NULL;

  if (ca_limiter_new(u, 50000, &l, &err) != CHATAPP_OK)
    fprintf(stderr, "ca_limiter_new(%s): %s\n", u, ca_buf_str(&err));
  ca_buf_free(&err);
  return l;
}

/* Wait out whatever the limiter asks (the epoch guard, a full window). */
static void wait_clear(ca_limiter *l, int n)
{
  int64_t retry = 0;

  for (int i = 0; i < 5; i++) {
    int64_t now = ca_now_us();
    int got = ca_limiter_acquire(l, "acct/probe", n, now, &retry, NULL);
    if (got == 1)
      return;
    sleep_until(retry);
  }
}

static void test_errors_at_start(void)
{
  ca_buf err = CA_BUF_INIT(2048);
  ca_limiter *l = (ca_limiter *)1;

  /* Nothing listens on port 1. */
  CHECK(ca_limiter_new("redis://127.0.0.1:1", 50000, &l, &err) ==
        CHATAPP_ETRANSPORT);
  CHECK(l == NULL);
  CHECK(strstr(ca_buf_str(&err), "redis://127.0.0.1:1/0") != NULL);
  CHECK(strstr(ca_buf_str(&err), "shared limiter") != NULL);
  CHECK(strstr(ca_buf_str(&err), "start the server") != NULL);
  CHECK(strstr(ca_buf_str(&err), "never falls back") != NULL);
  ca_buf_reset(&err);
  CHECK(ca_limiter_new("rediss://127.0.0.1:6379", 50000, &l, &err) ==
        CHATAPP_EINVAL);
  CHECK(strstr(ca_buf_str(&err), "TLS") != NULL);
  ca_buf_reset(&err);
  /* A password in the URL is refused and never repeated. */
  CHECK(ca_limiter_new("redis://u:canary-pw-5150@127.0.0.1:6379", 50000, &l,
                       &err) == CHATAPP_EINVAL);
  CHECK(strstr(ca_buf_str(&err), "canary-pw-5150") == NULL);
  ca_buf_free(&err);
}

/* The guarantee on the server's clock, the epoch guard of a new server. */
static void test_window(void)
{
  ca_limiter *l = open_limiter(url);
  int64_t t[200], retry = 0, now, end;
  int granted = 0, denied = 0, got, n;
  double f = 0;

  CHECK(l != NULL);
  if (!l)
    return;
  flushall();
  /* A server that never saw the account grants nothing for one window. */
  now = ca_now_us();
  got = ca_limiter_acquire(l, KEY, 10, now, &retry, &f);
  end = ca_now_us();
  CHECK(got == 0);
  /* The wait (at most W) counts from the answer, which came by `end`: no
   * bound on the round trip itself (valgrind makes it slow). */
  CHECK(retry - now > W - 100000 && retry - end <= W);
  CHECK(f == 1.0);
  sleep_until(retry);
  /* Then 10 at once, the 11th waits for the window of the first. */
  for (int i = 0; i < 11; i++) {
    now = ca_now_us();
    got = ca_limiter_acquire(l, KEY, 10, now, &retry, NULL);
    granted += got == 1;
    denied += got == 0;
  }
  CHECK(granted == 10 && denied == 1);
  CHECK(retry - ca_now_us() > W - 200000 && retry - ca_now_us() <= W);
  /* As fast as allowed for 2.5 s: never more than 10 in a window of the
   * server's clock, and close to 10 per window. */
  end = ca_now_us() + 2500000;
  while ((now = ca_now_us()) < end) {
    got = ca_limiter_acquire(l, KEY, 10, now, &retry, NULL);
    CHECK(got >= 0);
    if (got == 0)
      sleep_until(retry);
  }
  n = server_starts(t, 200);
  CHECK(n >= 30 && n <= 40);
  CHECK(max_in_window(t, n, W) == 10);
  fprintf(stderr, "  %d starts in %.2f s of server time (10 per %.2f s)\n", n,
          (double)(t[n - 1] - t[0]) / 1e6, (double)W / 1e6);
  {
    ca_limiter_stats s;
    ca_limiter_stats_get(l, ca_now_us(), &s);
    CHECK(s.round_trips >= (uint64_t)n && s.outages == 0 && !s.down);
    CHECK(strncmp(ca_limiter_where(l), url, strlen(url)) == 0);
  }
  /* Keys: the log expires after an idle window, the epoch never. */
  {
    const char *pttl[] = {"PTTL", LOGKEY};
    const char *ttl[] = {"TTL", "chatapp:limiter:{acct}:epoch"};
    long long ms = cmd_int(2, pttl);
    CHECK(ms > 0 && ms <= W / 1000 + 1000);
    CHECK(cmd_int(2, ttl) == -1);
  }
  /* A connection closed by the server (idle timeout, CLIENT KILL) is
   * opened again at once: no outage. */
  {
    const char *kill[] = {"CLIENT", "KILL", "TYPE", "normal"};
    ca_limiter_stats s;
    CHECK(cmd_int(4, kill) >= 1);
    now = ca_now_us();
    CHECK(ca_limiter_acquire(l, KEY, 10, now, &retry, NULL) >= 0);
    ca_limiter_stats_get(l, ca_now_us(), &s);
    CHECK(s.outages == 0 && !s.down);
  }
  /* FLUSHALL (or an empty restart) loses the starts: nothing for one
   * window, not a fresh window at once. */
  flushall();
  now = ca_now_us();
  CHECK(ca_limiter_acquire(l, KEY, 10, now, &retry, NULL) == 0);
  CHECK(retry - now > W - 100000);
  ca_limiter_free(l);
}

/* Two hosts: one window and one factor. */
static void test_two_hosts(void)
{
  ca_limiter *a = open_limiter(url), *b = open_limiter(url);
  int64_t retry = 0, now;
  int ga = 0, gb = 0;
  double f = 0;

  CHECK(a && b);
  if (!a || !b)
    goto out;
  flushall();
  wait_clear(a, 100);
  now = ca_now_us();
  for (int i = 0; i < 6; i++)
    ga += ca_limiter_acquire(a, KEY, 10, now, &retry, NULL) == 1;
  for (int i = 0; i < 6; i++)
    gb += ca_limiter_acquire(b, KEY, 10, now, &retry, NULL) == 1;
  CHECK(ga == 6 && gb == 4);
  CHECK(ca_limiter_acquire(a, KEY, 10, now, &retry, NULL) == 0);

  /* A throttle seen by one host slows both; a second within the window
   * does not count again. */
  CHECK(ca_limiter_factor(b, "acct/Other", now) == 1.0);
  ca_limiter_throttled(a, "acct/Other", now);
  f = ca_limiter_factor(b, "acct/Other", now);
  CHECK(f > 0.69 && f < 0.71);
  ca_limiter_throttled(b, "acct/Other", now);
  f = ca_limiter_factor(a, "acct/Other", now);
  CHECK(f > 0.69 && f < 0.71);
  ga = 0;
  for (int i = 0; i < 10; i++)
    ga += ca_limiter_acquire(b, "acct/Other", 10, now, &retry, &f) == 1;
  CHECK(ga == 7); /* floor(10 x 0.7) */
  CHECK(f > 0.69 && f < 0.71);
  {
    const char *pttl[] = {"PTTL", "chatapp:limiter:{acct}:factor:Other"};
    long long ms = cmd_int(2, pttl);
    CHECK(ms > 50000 && ms <= 60000);
  }
out:
  ca_limiter_free(a);
  ca_limiter_free(b);
}

/* What is found in Redis is not trusted: garbage and times from the
 * server's future count as now (no extra grant), a wait is bounded. */
static void test_hostile(void)
{
  ca_limiter *l = open_limiter(url);
  int64_t retry = 0, now;
  int granted = 0;

  CHECK(l != NULL);
  if (!l)
    return;
  flushall();
  wait_clear(l, 100);
  {
    const char *push[] = {"RPUSH", LOGKEY, "99999999999999999",
                          "abc",   "-5",   "x",
                          "y",     "z",    "1e300"};
    const char *junk[] = {"HSET", "chatapp:limiter:{acct}:factor:Query",
                          "f",    "nan",
                          "th",   "7",
                          "fa",   "-1",
                          "lt",   "zz"};
    CHECK(cmd_int(9, push) == 7);
    CHECK(cmd_int(10, junk) == 4);
  }
  now = ca_now_us();
  for (int i = 0; i < 10; i++)
    granted += ca_limiter_acquire(l, KEY, 10, now, &retry, NULL) == 1;
  /* 7 entries, at best "now": 3 more at most (the "-5" is old). */
  CHECK(granted <= 4);
  CHECK(retry - ca_now_us() <= W);
  CHECK(ca_limiter_factor(l, KEY, now) == 1.0);
  ca_limiter_free(l);
}

static void test_password(void)
{
  ca_buf err = CA_BUF_INIT(2048);
  ca_limiter *l = NULL;
  int64_t retry = 0;
  char path[] = "/tmp/chatapp-test-pw-XXXXXX";
  int fd;

  unsetenv(CA_REDIS_PASSWORD_ENV);
  CHECK(ca_limiter_new(url_pw, 50000, &l, &err) == CHATAPP_ECREDENTIALS);
  CHECK(strstr(ca_buf_str(&err), CA_REDIS_PASSWORD_ENV) != NULL);
  ca_buf_reset(&err);
  setenv(CA_REDIS_PASSWORD_ENV, "wrong-canary-7741", 1);
  CHECK(ca_limiter_new(url_pw, 50000, &l, &err) == CHATAPP_ECREDENTIALS);
  CHECK(strstr(ca_buf_str(&err), "wrong-canary-7741") == NULL);
  CHECK(strstr(ca_buf_str(&err), "refused the password") != NULL);
  ca_buf_reset(&err);
  setenv(CA_REDIS_PASSWORD_ENV, password, 1);
  CHECK(ca_limiter_new(url_pw, 50000, &l, &err) == CHATAPP_OK);
  CHECK(l && ca_limiter_acquire(l, KEY, 10, ca_now_us(), &retry, NULL) >= 0);
  ca_limiter_free(l);
  l = NULL;
  unsetenv(CA_REDIS_PASSWORD_ENV);
  fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, password, strlen(password)) == (ssize_t)strlen(password));
    CHECK(write(fd, "\n", 1) == 1);
    close(fd);
    setenv(CA_REDIS_PASSWORD_FILE_ENV, path, 1);
    CHECK(ca_limiter_new(url_pw, 50000, &l, &err) == CHATAPP_OK);
    CHECK(l && ca_limiter_acquire(l, KEY, 10, ca_now_us(), &retry, NULL) >= 0);
    ca_limiter_free(l);
    unsetenv(CA_REDIS_PASSWORD_FILE_ENV);
    unlink(path);
  }
  ca_buf_free(&err);
}

/* Last: the server goes away.  No grant, no fall-back; the reason names
 * the server; the outage is counted. */
static void test_gone(void)
{
  ca_limiter *l = open_limiter(url);
  int64_t retry = 0, now;
  ca_limiter_stats s;

  CHECK(l != NULL);
  if (!l)
    return;
  {
    const char *argv[] = {"SHUTDOWN", "NOSAVE"};
    ca_buf err = CA_BUF_INIT(1024);
    redisReply *x = NULL;
    /* No reply: the server is gone. */
    (void)ca_redis_command(admin, 2, argv, NULL, &x, &err);
    freeReplyObject(x);
    ca_buf_free(&err);
  }
  usleep(200000);
  for (int i = 0; i < 3; i++) {
    now = ca_now_us();
    CHECK(ca_limiter_acquire(l, KEY, 10, now, &retry, NULL) == -1);
    CHECK(retry > now && retry <= ca_now_us() + 200000);
    CHECK(ca_limiter_error(l) &&
          strstr(ca_limiter_error(l), ca_limiter_where(l)) != NULL);
  }
  ca_limiter_throttled(l, KEY, now); /* lost, harmless */
  CHECK(ca_limiter_factor(l, KEY, now) == 1.0);
  usleep(100000);
  ca_limiter_stats_get(l, ca_now_us(), &s);
  CHECK(s.outages == 1 && s.down == 1 && s.down_us >= 100000);
  fprintf(stderr, "  gone: %s\n", ca_limiter_error(l));
  ca_limiter_free(l);
}

int main(int argc, char **argv)
{
  ca_buf err = CA_BUF_INIT(2048);

  if (argc < 3 || !getenv("TEST_REDIS_PASSWORD")) {
    fprintf(stderr, "usage: TEST_REDIS_PASSWORD=... test_limiter_redis URL "
                    "URL_WITH_PASSWORD (tests/lua/with_redis.lua)\n");
    return 2;
  }
  url = argv[1];
  url_pw = argv[2];
  password = getenv("TEST_REDIS_PASSWORD");
  unsetenv(CA_REDIS_PASSWORD_ENV);
  unsetenv(CA_REDIS_PASSWORD_FILE_ENV);
  if (ca_redis_open(url, &admin, &err) != CHATAPP_OK) {
    fprintf(stderr, "cannot reach the test server: %s\n", ca_buf_str(&err));
    ca_buf_free(&err);
    return 1;
  }
  ca_buf_free(&err);
  test_errors_at_start();
  test_window();
  test_two_hosts();
  test_hostile();
  test_password();
  test_gone();
  ca_redis_free(admin);
  return test_report("test_limiter_redis");
}
