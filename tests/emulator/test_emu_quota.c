/*
 * chatapp-emulator: the quota (at most N accepted calls of an operation per
 * account in any 1 s window), per-operation limits, separate accounts,
 * rejected calls not counting, lowered quota for a while, retry-after on
 * throttles, and the busiest-window statistic.
 *
 * Usage: test_emu_quota EMULATOR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "harness.h"
#include "test.h"

extern const char *emu_exe;

static const ca_kv sync_params[] = {
  {"CustSpaceId", "C20230220000002"},
};

typedef struct job {
  const emu_proc *p;
  call_opts o;
  char code[64];
  long status;
} job;

static void *run_job(void *arg)
{
  job *j = arg;
  http_resp r;

  if (emu_call(j->p, &j->o, &r) == 0 && r.curl_code == CURLE_OK)
    snprintf(j->code, sizeof j->code, "%s", resp_code(&r));
  else
    snprintf(j->code, sizeof j->code, "(curl %d)", r.curl_code);
  j->status = r.status;
  http_resp_free(&r);
  return NULL;
}

/* n calls at once (one thread each); how many answered code. */
static int burst(const emu_proc *p, const call_opts *o, int n, const char *code,
                 int *throttled)
{
  pthread_t t[64];
  job *jobs = calloc((size_t)n, sizeof *jobs);
  int i, hits = 0, started = 0;

  *throttled = 0;
  CHECK(jobs != NULL && n <= 64);
  if (!jobs || n > 64) {
    free(jobs);
    return -1;
  }
  for (i = 0; i < n; i++) {
    jobs[i].p = p;
    jobs[i].o = *o;
    if (pthread_create(&t[i], NULL, run_job, &jobs[i]) != 0)
      break;
    started++;
  }
  CHECK(started == n); /* a burst that did not start is no pass */
  for (i = 0; i < started; i++) {
    pthread_join(t[i], NULL);
    if (strcmp(jobs[i].code, code) == 0)
      hits++;
    if (strcmp(jobs[i].code, "Throttling.User") == 0) {
      (*throttled)++;
      CHECK(jobs[i].status == 400);
    }
  }
  free(jobs);
  return hits;
}

static void pause_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static long stat_num(const emu_proc *p, const char *path1, const char *path2,
                     const char *path3, const char *key)
{
  http_resp r;
  ca_json_doc *d;
  const ca_json *o;
  long v = -1;

  if (emu_http(p, "GET", "/_emulator/stats", NULL, &r) != 0)
    return -1;
  d = resp_json(&r);
  o = d ? ca_json_root(d) : NULL;
  if (path1)
    o = ca_json_get(o, path1);
  if (path2)
    o = ca_json_get(o, path2);
  if (path3)
    o = ca_json_get(o, path3);
  o = ca_json_get(o, key);
  if (o && o->type == CA_JSON_NUMBER)
    v = (long)o->num;
  ca_json_free(d);
  http_resp_free(&r);
  return v;
}

static void test_window(const emu_proc *p)
{
  call_opts o;
  int thr, ok;
  double t0;
  http_resp r;

  fprintf(stderr, "burst of 15: exactly 10 accepted\n");
  memset(&o, 0, sizeof o);
  t0 = now_ms();
  ok = burst(p, &o, 15, "OK", &thr);
  CHECK(now_ms() - t0 < 1000); /* the burst fit in one window */
  CHECK(ok == 10);
  CHECK(thr == 5);
  /* Still inside the window: throttled; after it: accepted again. */
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "Throttling.User");
  CHECK(strstr(r.body, "Request was denied due to user flow control.") != NULL);
  http_resp_free(&r);
  pause_ms(1100);
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "OK");
  http_resp_free(&r);
  CHECK(stat_num(p, "operations", QUERY, NULL, "busiest_1s") == 10);
  CHECK(stat_num(p, "accounts", "1000000000000001", QUERY, "busiest_1s") == 10);
  CHECK(stat_num(p, NULL, NULL, NULL, "throttled") == 6);

  fprintf(stderr, "rejected calls do not count\n");
  pause_ms(1100);
  o.tamper = 1;
  CHECK(burst(p, &o, 6, "SignatureDoesNotMatch", &thr) == 6);
  o.tamper = 0;
  ok = burst(p, &o, 10, "OK", &thr);
  CHECK(ok == 10);
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "Throttling.User");
  http_resp_free(&r);

  fprintf(stderr, "accounts are separate; STS keys share their account's\n");
  pause_ms(1100);
  CHECK(burst(p, &o, 10, "OK", &thr) == 10);
  o.akid = KEY2_ID;
  o.secret = KEY2_SECRET;
  CHECK(burst(p, &o, 12, "OK", &thr) == 10);
  CHECK(thr == 2);
  o.akid = STS_ID;
  o.secret = STS_SECRET;
  o.token = STS_TOKEN;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "Throttling.User");
  http_resp_free(&r);
  CHECK(stat_num(p, "accounts", "1000000000000002", QUERY, "accepted") == 10);

  fprintf(stderr, "per-operation quota\n");
  memset(&o, 0, sizeof o);
  o.action = "ChatappSyncPhoneNumber";
  o.params = sync_params;
  o.nparams = 1;
  CHECK(burst(p, &o, 6, "OK", &thr) == 3); /* --quota-op ...=3 */
  CHECK(thr == 3);
  CHECK(stat_num(p, "operations", "ChatappSyncPhoneNumber", NULL,
                 "busiest_1s") == 3);
}

static void test_lowered(const emu_proc *p)
{
  call_opts o;
  int thr;
  http_resp r;

  fprintf(stderr, "quota lowered for a while\n");
  pause_ms(1100);
  CHECK(emu_http(p, "POST", "/_emulator/quota", "{\"quota\":5,\"for_ms\":1500}",
                 &r) == 0);
  CHECK(r.status == 200);
  http_resp_free(&r);
  memset(&o, 0, sizeof o);
  CHECK(burst(p, &o, 8, "OK", &thr) == 5);
  CHECK(thr == 3);
  pause_ms(2700); /* the rule is gone and the window is clear */
  CHECK(burst(p, &o, 10, "OK", &thr) == 10);
  /* As a fault rule on one operation. */
  pause_ms(1100);
  CHECK(emu_http(p, "POST", "/_emulator/faults",
                 "{\"kind\":\"quota\",\"quota\":2,\"op\":\"" QUERY "\"}",
                 &r) == 0);
  CHECK(r.status == 200);
  http_resp_free(&r);
  CHECK(burst(p, &o, 4, "OK", &thr) == 2);
  CHECK(emu_http(p, "DELETE", "/_emulator/faults", NULL, &r) == 0);
  http_resp_free(&r);
}

static void test_retry_after(void)
{
  const char *args[] = {"--quota", "2", "--throttle-retry-after", NULL};
  emu_proc p;
  call_opts o;
  http_resp r;
  char *h;
  int i;

  fprintf(stderr, "throttled answers with retry-after\n");
  if (emu_start(&p, args) != 0) {
    CHECK(0 && "emulator did not start");
    return;
  }
  memset(&o, 0, sizeof o);
  for (i = 0; i < 2; i++) {
    CHECK(emu_call(&p, &o, &r) == 0);
    CHECK_STR(resp_code(&r), "OK");
    http_resp_free(&r);
  }
  CHECK(emu_call(&p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "Throttling.User");
  h = resp_header(&r, "x-acs-retry-after");
  CHECK(h && atol(h) >= 1 && atol(h) <= 1000);
  free(h);
  h = resp_header(&r, "Retry-After");
  CHECK(h && strcmp(h, "1") == 0);
  free(h);
  http_resp_free(&r);
  CHECK(emu_stop(&p) == 0);
}

int main(int argc, char **argv)
{
  const char *args[] = {"--quota-op", "ChatappSyncPhoneNumber=3", NULL};
  emu_proc p;
  int rc;

  rc = harness_main(argc, argv, 2, "EMULATOR", args, &p);
  if (rc)
    return rc;
  test_window(&p);
  test_lowered(&p);
  CHECK(emu_stop(&p) == 0);
  test_retry_after();
  curl_global_cleanup();
  return test_report("test_emu_quota");
}
