/*
 * The leader lease (runtime/core/ca_lease.c) against a real redis-server,
 * whose URL is argv[1] (tests/lua/test_lease.lua starts it and runs this):
 * the second acquirer is refused with the holder named; after an expiry
 * another wins with a higher token; a renewal after a loss fails; release
 * deletes only our own lease; the renewal thread keeps a lease alive, sees
 * a takeover, and judges a lease lost by the clock when Redis stops
 * answering.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca_lease.h"
#include "ca_limiter.h" /* ca_now_us */
#include "ca_redis.h"
#include "test.h"

static const char *url;
static ca_redis *raw; /* the test's own connection */

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* One command on the test's connection; its reply (string or integer) as
 * text in out ("(nil)" for a nil, "(error) ..." for an error). */
static void cmd(char *out, size_t size, int argc, const char **argv)
{
  ca_buf err = CA_BUF_INIT(1024);
  redisReply *x = NULL;

  out[0] = '\0';
  if (ca_redis_command(raw, argc, argv, NULL, &x, &err) != CHATAPP_OK) {
    snprintf(out, size, "(failed) %s", ca_buf_str(&err));
    ca_buf_free(&err);
    return;
  }
  ca_buf_free(&err);
  if (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS)
    snprintf(out, size, "%.*s", (int)x->len, x->str);
  else if (x->type == REDIS_REPLY_INTEGER)
    snprintf(out, size, "%lld", x->integer);
  else if (x->type == REDIS_REPLY_NIL)
    snprintf(out, size, "(nil)");
  else if (x->type == REDIS_REPLY_ERROR)
    snprintf(out, size, "(error) %.*s", (int)x->len, x->str);
  freeReplyObject(x);
}

static void get(const char *key, char *out, size_t size)
{
  const char *argv[2] = {"GET", key};
  cmd(out, size, 2, argv);
}

static ca_lease *make(const char *account, int64_t ttl_ms)
{
  ca_buf err = CA_BUF_INIT(1024);
  ca_lease *l = NULL;
  chatapp_status st = ca_lease_new(url, account, ttl_ms, &l, &err);

  if (st)
    fprintf(stderr, "ca_lease_new: %s\n", ca_buf_str(&err));
  CHECK(st == CHATAPP_OK && l != NULL);
  ca_buf_free(&err);
  return l;
}

static int acquire(ca_lease *l)
{
  ca_buf err = CA_BUF_INIT(1024);
  int won = -1;
  chatapp_status st = ca_lease_acquire(l, &won, &err);

  if (st)
    fprintf(stderr, "ca_lease_acquire: %s\n", ca_buf_str(&err));
  CHECK(st == CHATAPP_OK);
  ca_buf_free(&err);
  return won;
}

static int release(ca_lease *l)
{
  ca_buf err = CA_BUF_INIT(1024);
  int released = -1;
  chatapp_status st = ca_lease_release(l, &released, &err);

  if (st)
    fprintf(stderr, "ca_lease_release: %s\n", ca_buf_str(&err));
  CHECK(st == CHATAPP_OK);
  ca_buf_free(&err);
  return released;
}

static int renew(ca_lease *l)
{
  ca_buf err = CA_BUF_INIT(1024);
  int ours = -1;
  chatapp_status st = ca_lease_renew(l, &ours, &err);

  if (st)
    fprintf(stderr, "ca_lease_renew: %s\n", ca_buf_str(&err));
  CHECK(st == CHATAPP_OK);
  ca_buf_free(&err);
  return ours;
}

/* Acquire, refuse, release; the holder named; accounts apart. */
static void test_acquire_refuse_release(void)
{
  ca_lease *a = make("acct-a", 2000), *b = make("acct-a", 2000);
  ca_lease *o = make("acct-other", 2000);
  char v[400], why[600];
  int64_t t1;

  if (!a || !b || !o)
    goto out;
  CHECK(!ca_lease_held(a, why, sizeof why));
  CHECK(acquire(a) == 1);
  t1 = ca_lease_token(a);
  CHECK(t1 >= 1);
  CHECK(ca_lease_held(a, NULL, 0));
  get("chatapp:lease:{acct-a}", v, sizeof v);
  CHECK_STR(v, ca_lease_value(a));
  get("chatapp:fence:{acct-a}", v, sizeof v);
  {
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)t1);
    CHECK_STR(v, want);
  }
  /* "TOKEN HOST PID" */
  {
    long long tok = 0;
    char host[256];
    long pid = 0;
    CHECK(sscanf(ca_lease_value(a), "%lld %255s %ld", &tok, host, &pid) == 3);
    CHECK(tok == t1 && pid > 0);
  }
  {
    ca_buf err = CA_BUF_INIT(512);
    int won = 7;
    CHECK(ca_lease_acquire(a, &won, &err) == CHATAPP_EINVAL && won == 0);
    ca_buf_free(&err);
  }

  /* the second is refused, the holder named, the fence unmoved */
  CHECK(acquire(b) == 0);
  CHECK_STR(ca_lease_holder(b), ca_lease_me(a));
  CHECK(ca_lease_holder_ttl_ms(b) > 0 && ca_lease_holder_ttl_ms(b) <= 2000);
  CHECK(!ca_lease_held(b, why, sizeof why));
  CHECK(ca_lease_token(b) == 0);
  get("chatapp:fence:{acct-a}", v, sizeof v);
  CHECK(atoll(v) == t1);

  /* another account is another lease */
  CHECK(acquire(o) == 1);

  /* a renewal by the holder extends it */
  CHECK(renew(a) == 1);

  /* release: only ours; then the other wins with a higher token */
  CHECK(release(b) == 0); /* b holds nothing: nothing deleted */
  get("chatapp:lease:{acct-a}", v, sizeof v);
  CHECK_STR(v, ca_lease_value(a));
  CHECK(release(a) == 1);
  CHECK(!ca_lease_held(a, NULL, 0));
  get("chatapp:lease:{acct-a}", v, sizeof v);
  CHECK_STR(v, "(nil)");
  CHECK(acquire(b) == 1);
  CHECK(ca_lease_token(b) == t1 + 1);
  CHECK(release(b) == 1);
  CHECK(release(o) == 1);
out:
  ca_lease_free(a);
  ca_lease_free(b);
  ca_lease_free(o);
}

/* Not renewed: it expires; another wins with a higher token; the old one's
 * renewal fails and its release deletes nothing. */
static void test_expiry(void)
{
  ca_lease *a = make("acct-exp", 600), *b = make("acct-exp", 600);
  char v[400], why[600];
  int64_t t1, t0;

  if (!a || !b)
    goto out;
  t0 = ca_now_us();
  CHECK(acquire(a) == 1);
  t1 = ca_lease_token(a);
  CHECK(acquire(b) == 0);
  /* judged lost by the clock at ttl - margin (480 ms), before Redis
   * expires it */
  while (ca_lease_held(a, NULL, 0) && ca_now_us() - t0 < 2000000)
    sleep_ms(10);
  CHECK(!ca_lease_held(a, why, sizeof why));
  CHECK(ca_now_us() - t0 >= (600 - ca_lease_margin_ms(600)) * 1000);
  CHECK(ca_now_us() - t0 < 600 * 1000);
  CHECK(strstr(why, "no renewal reached Redis") != NULL);
  sleep_ms(200); /* past the server's expiry */
  CHECK(acquire(b) == 1);
  CHECK(ca_lease_token(b) > t1);
  CHECK(renew(a) == 0);
  CHECK(!ca_lease_held(a, why, sizeof why));
  CHECK(release(a) == 0);
  get("chatapp:lease:{acct-exp}", v, sizeof v);
  CHECK_STR(v, ca_lease_value(b));
  /* a lease lost stays lost; released, it can be taken again later */
  CHECK(acquire(a) == 0);
  CHECK_STR(ca_lease_holder(a), ca_lease_me(b));
  CHECK(release(b) == 1);
  CHECK(acquire(a) == 1);
  CHECK(ca_lease_token(a) > ca_lease_token(b));
  CHECK(release(a) == 1);
out:
  ca_lease_free(a);
  ca_lease_free(b);
}

/* The renewal thread keeps a lease alive over several ttls. */
static void test_thread_renews(void)
{
  ca_lease *a = make("acct-thr", 600), *b = make("acct-thr", 600);
  ca_buf err = CA_BUF_INIT(1024);
  uint64_t n, failed = 99;

  if (!a || !b)
    goto out;
  CHECK(acquire(a) == 1);
  CHECK(ca_lease_start(a, &err) == CHATAPP_OK);
  for (int i = 0; i < 10; i++) {
    sleep_ms(200);
    CHECK(ca_lease_held(a, NULL, 0));
    CHECK(acquire(b) == 0);
  }
  n = ca_lease_renewals(a, &failed);
  CHECK(n >= 6);
  CHECK(failed == 0);
  CHECK(release(a) == 1);
  CHECK(acquire(b) == 1);
  CHECK(release(b) == 1);
out:
  ca_buf_free(&err);
  ca_lease_free(a);
  ca_lease_free(b);
}

/* Another value in the key: the thread sees the takeover. */
static void test_thread_sees_takeover(void)
{
  ca_lease *a = make("acct-take", 900);
  ca_buf err = CA_BUF_INIT(1024);
  const char *set[3] = {"SET", "chatapp:lease:{acct-take}",
                        "99 otherhost 4242"};
  char v[400], why[600];
  int64_t t0;

  if (!a)
    goto out;
  CHECK(acquire(a) == 1);
  CHECK(ca_lease_start(a, &err) == CHATAPP_OK);
  cmd(v, sizeof v, 3, set);
  CHECK_STR(v, "OK");
  t0 = ca_now_us();
  while (ca_lease_held(a, NULL, 0) && ca_now_us() - t0 < 3000000)
    sleep_ms(10);
  CHECK(!ca_lease_held(a, why, sizeof why));
  CHECK(ca_now_us() - t0 <= 400000); /* within ttl/3 and a bit */
  CHECK(strstr(why, "otherhost pid 4242 took the lease of account "
                    "acct-take over") != NULL);
  CHECK(release(a) == 0); /* not ours: left alone */
  get("chatapp:lease:{acct-take}", v, sizeof v);
  CHECK_STR(v, "99 otherhost 4242");
out:
  ca_buf_free(&err);
  ca_lease_free(a);
}

/* Redis stops answering (CLIENT PAUSE): lost by the clock no later than
 * the lease's end, even though the renewal thread is stuck waiting. */
static void test_lost_when_unreachable(void)
{
  ca_lease *a = make("acct-pause", 1000);
  ca_buf err = CA_BUF_INIT(1024);
  const char *pause[4] = {"CLIENT", "PAUSE", "2500", "ALL"};
  char v[400], why[600];
  int64_t t0, lost_after;

  if (!a)
    goto out;
  CHECK(acquire(a) == 1);
  CHECK(ca_lease_start(a, &err) == CHATAPP_OK);
  sleep_ms(400); /* one renewal done */
  t0 = ca_now_us();
  cmd(v, sizeof v, 4, pause);
  CHECK_STR(v, "OK");
  while (ca_lease_held(a, NULL, 0) && ca_now_us() - t0 < 3000000)
    sleep_ms(10);
  lost_after = ca_now_us() - t0;
  CHECK(!ca_lease_held(a, why, sizeof why));
  CHECK(lost_after < 1000000); /* before the server's expiry */
  CHECK(strstr(why, "no renewal reached Redis") != NULL);
  fprintf(stderr, "lost %lld ms after Redis stopped answering: %s\n",
          (long long)lost_after / 1000, why);
  sleep_ms(2600);                    /* the pause ends */
  CHECK(!ca_lease_held(a, NULL, 0)); /* lost stays lost */
  (void)release(a);
out:
  ca_buf_free(&err);
  ca_lease_free(a);
}

/* Nothing listens: a clear error naming the server. */
static void test_unreachable(void)
{
  ca_buf err = CA_BUF_INIT(1024);
  ca_lease *l = NULL;
  chatapp_status st = ca_lease_new("redis://127.0.0.1:1", "acct", 0, &l, &err);

  CHECK(st == CHATAPP_ETRANSPORT);
  CHECK(l == NULL);
  CHECK(strstr(ca_buf_str(&err), "redis://127.0.0.1:1/0") != NULL);
  ca_buf_free(&err);
}

int main(int argc, char **argv)
{
  ca_buf err = CA_BUF_INIT(1024);

  if (argc < 2) {
    fprintf(stderr, "usage: test_lease redis://127.0.0.1:PORT\n");
    return 2;
  }
  url = argv[1];
  if (ca_redis_open(url, &raw, &err) != CHATAPP_OK) {
    fprintf(stderr, "%s\n", ca_buf_str(&err));
    ca_buf_free(&err);
    return 2;
  }
  ca_buf_free(&err);
  test_acquire_refuse_release();
  test_expiry();
  test_thread_renews();
  test_thread_sees_takeover();
  test_lost_when_unreachable();
  test_unreachable();
  ca_redis_free(raw);
  return test_report("test_lease");
}
