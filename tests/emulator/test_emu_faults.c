/*
 * chatapp-emulator: every fault, set through the control endpoint and by
 * flags: latency (concurrent, not serialised), coded errors (every Nth,
 * next K, probability, 200 with a non-OK Code), retry-after headers,
 * connection reset, truncated body, malformed JSON, drip, oversize, endless
 * chunked (client aborts at its cap), a body after the headers, a gzip
 * bomb, redirect, hang, operation scope, and
 * that faulted calls are logged.
 *
 * Usage: test_emu_faults EMULATOR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "harness.h"
#include "test.h"

extern const char *emu_exe;

static const ca_kv verif_params[] = {
  {"CustSpaceId", "C20230115000001"},
  {"PhoneNumber", "6591234567"},
};

static void post_fault(const emu_proc *p, const char *json)
{
  http_resp r;

  CHECK(emu_http(p, "POST", "/_emulator/faults", json, &r) == 0);
  CHECK(r.status == 200);
  if (r.status != 200)
    fprintf(stderr, "  rule %s: %s\n", json, r.body);
  http_resp_free(&r);
}

static void clear_faults(const emu_proc *p)
{
  http_resp r;

  CHECK(emu_http(p, "DELETE", "/_emulator/faults", NULL, &r) == 0);
  http_resp_free(&r);
}

/* One default call; its Code (or "(curl N)") and status. */
static const char *call_code(const emu_proc *p, long *status)
{
  static char code[64];
  call_opts o;
  http_resp r;

  memset(&o, 0, sizeof o);
  emu_call(p, &o, &r);
  if (r.curl_code != CURLE_OK)
    snprintf(code, sizeof code, "(curl %d)", r.curl_code);
  else
    snprintf(code, sizeof code, "%s", resp_code(&r));
  if (status)
    *status = r.status;
  http_resp_free(&r);
  return code;
}

typedef struct job {
  const emu_proc *p;
  double seconds;
  char code[64];
} job;

static void *run_job(void *arg)
{
  job *j = arg;
  call_opts o;
  http_resp r;

  memset(&o, 0, sizeof o);
  emu_call(j->p, &o, &r);
  j->seconds = r.seconds;
  snprintf(j->code, sizeof j->code, "%s", resp_code(&r));
  http_resp_free(&r);
  return NULL;
}

static void test_latency(const emu_proc *p)
{
  pthread_t t[30];
  job jobs[30];
  double t0, all;
  int i, ok = 0, slow = 0, started = 0;

  fprintf(stderr, "latency 300 +- 50 ms, 30 calls at once\n");
  post_fault(p, "{\"kind\":\"latency\",\"ms\":300,\"jitter_ms\":50}");
  t0 = now_ms();
  for (i = 0; i < 30; i++) {
    jobs[i].p = p;
    if (pthread_create(&t[i], NULL, run_job, &jobs[i]) != 0)
      break;
    started++;
  }
  CHECK(started == 30);
  for (i = 0; i < started; i++) {
    pthread_join(t[i], NULL);
    ok += strcmp(jobs[i].code, "OK") == 0;
    if (strcmp(jobs[i].code, "OK") != 0)
      fprintf(stderr, "  call %d answered %s after %.3f s\n", i, jobs[i].code,
              jobs[i].seconds);
    slow += jobs[i].seconds >= 0.245 && jobs[i].seconds < 2.0;
  }
  all = now_ms() - t0;
  CHECK(ok == 30);
  CHECK(slow == 30);
  CHECK(all < 2500); /* serialised would be 9 s */
  fprintf(stderr, "  30 calls in %.0f ms\n", all);
  clear_faults(p);
}

static void test_errors(const emu_proc *p)
{
  long st = 0;
  int i, hit = 0;
  http_resp r;
  call_opts o;
  char *h;

  fprintf(stderr, "coded errors\n");
  post_fault(p, "{\"kind\":\"error\",\"code\":\"ServiceUnavailable\","
                "\"every\":2}");
  for (i = 0; i < 6; i++) {
    const char *c = call_code(p, &st);
    if (i % 2 == 1) {
      CHECK_STR(c, "ServiceUnavailable");
      CHECK(st == 503);
    } else {
      CHECK_STR(c, "OK");
    }
  }
  clear_faults(p);
  post_fault(p, "{\"kind\":\"error\",\"next\":2}");
  CHECK_STR(call_code(p, &st), "InternalError");
  CHECK(st == 500);
  CHECK_STR(call_code(p, &st), "InternalError");
  CHECK_STR(call_code(p, &st), "OK");
  CHECK(emu_http(p, "GET", "/_emulator/faults", NULL, &r) == 0);
  CHECK_STR(r.body, "{\"faults\":[]}"); /* used up */
  http_resp_free(&r);
  post_fault(p, "{\"kind\":\"error\",\"code\":\"Throttling.User\",\"p\":0.5}");
  for (i = 0; i < 40; i++)
    hit += strcmp(call_code(p, &st), "Throttling.User") == 0;
  CHECK(hit >= 5 && hit <= 35);
  clear_faults(p);
  post_fault(p, "{\"kind\":\"error\",\"code\":\"Biz.Failed\",\"status\":200,"
                "\"message\":\"business failure\",\"next\":1}");
  CHECK_STR(call_code(p, &st), "Biz.Failed");
  CHECK(st == 200);
  /* Retry-after headers on a chosen answer. */
  post_fault(p, "{\"kind\":\"error\",\"code\":\"Throttling.User\",\"next\":1,"
                "\"x_acs_retry_after\":\"2000\",\"retry_after\":\"2\"}");
  memset(&o, 0, sizeof o);
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.status == 400);
  CHECK_STR(resp_code(&r), "Throttling.User");
  h = resp_header(&r, "x-acs-retry-after");
  CHECK(h && strcmp(h, "2000") == 0);
  free(h);
  h = resp_header(&r, "Retry-After");
  CHECK(h && strcmp(h, "2") == 0);
  free(h);
  http_resp_free(&r);
  /* Scoped to one operation. */
  post_fault(p, "{\"kind\":\"error\",\"op\":\"ChatappSyncPhoneNumber\"}");
  CHECK_STR(call_code(p, &st), "OK");
  o.action = "ChatappSyncPhoneNumber";
  o.params = verif_params;
  o.nparams = 1;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "InternalError");
  http_resp_free(&r);
  clear_faults(p);
  /* Bad rules are refused with a reason. */
  CHECK(emu_http(p, "POST", "/_emulator/faults",
                 "{\"kind\":\"error\",\"colour\":\"red\"}", &r) == 0);
  CHECK(r.status == 400 && strstr(r.body, "colour") != NULL);
  http_resp_free(&r);
  CHECK(emu_http(p, "POST", "/_emulator/faults", "{\"kind\":\"redirect\"}",
                 &r) == 0);
  CHECK(r.status == 400 && strstr(r.body, "location") != NULL);
  http_resp_free(&r);
}

static void test_broken_bodies(const emu_proc *p)
{
  call_opts o;
  http_resp r;
  char *h;
  double t0;

  memset(&o, 0, sizeof o);
  fprintf(stderr, "reset mid-body\n");
  post_fault(p, "{\"kind\":\"reset\",\"next\":1,\"after_bytes\":100}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_RECV_ERROR);
  CHECK(r.len <= 100);
  fprintf(stderr, "  curl %d, %zu bytes\n", r.curl_code, r.len);
  http_resp_free(&r);

  fprintf(stderr, "truncated body\n");
  post_fault(p, "{\"kind\":\"truncate\",\"next\":1,\"after_bytes\":64}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_PARTIAL_FILE);
  CHECK(r.len == 64);
  http_resp_free(&r);

  fprintf(stderr, "malformed JSON\n");
  post_fault(p, "{\"kind\":\"malformed\",\"next\":1}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_OK && r.status == 200);
  {
    ca_json_doc *d = resp_json(&r);
    CHECK(d == NULL);
    ca_json_free(d);
  }
  http_resp_free(&r);

  fprintf(stderr, "drip: the client gives up; a short answer completes\n");
  post_fault(p, "{\"kind\":\"drip\",\"next\":1,\"interval_ms\":100}");
  o.timeout_ms = 1000;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_OPERATION_TIMEDOUT);
  CHECK(r.len >= 3 && r.len <= 15);
  http_resp_free(&r);
  post_fault(p, "{\"kind\":\"drip\",\"next\":1,\"interval_ms\":2,"
                "\"op\":\"GetPhoneNumberVerificationStatus\"}");
  o.action = "GetPhoneNumberVerificationStatus";
  o.params = verif_params;
  o.nparams = 2;
  o.timeout_ms = 20000;
  t0 = now_ms();
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_OK);
  CHECK_STR(resp_code(&r), "OK");
  CHECK(now_ms() - t0 >= 2.0 * (double)r.len * 0.9);
  http_resp_free(&r);
  memset(&o, 0, sizeof o);

  fprintf(stderr, "oversize: Content-Length 100 MB, client cap 1 MB\n");
  post_fault(p, "{\"kind\":\"oversize\",\"next\":1}");
  o.max_body = 1024 * 1024;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_WRITE_ERROR);
  h = resp_header(&r, "Content-Length");
  CHECK(h && strcmp(h, "104857600") == 0);
  free(h);
  http_resp_free(&r);

  fprintf(stderr, "endless chunked body, client cap 1 MB\n");
  post_fault(p, "{\"kind\":\"chunked\",\"next\":1}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_WRITE_ERROR);
  h = resp_header(&r, "Transfer-Encoding");
  CHECK(h && strcmp(h, "chunked") == 0);
  free(h);
  CHECK(r.len > 500 * 1024);
  http_resp_free(&r);
  o.max_body = 0;

  fprintf(stderr, "oversize, the body 600 ms after the headers\n");
  post_fault(p, "{\"kind\":\"oversize\",\"next\":1,\"bytes\":5000,"
                "\"ms\":600}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_OK && r.len == 5000);
  CHECK(r.seconds >= 0.55);
  http_resp_free(&r);

  fprintf(stderr, "gzip bomb: 64 KiB inflate to 10 MB of zeros\n");
  post_fault(p, "{\"kind\":\"gzip\",\"next\":1,\"bytes\":65536}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_OK && r.len == 65536); /* not decoded */
  h = resp_header(&r, "Content-Encoding");
  CHECK(h && strcmp(h, "gzip") == 0);
  free(h);
  {
    /* gzip -dc: the stream is cut (no trailer), the zeros come out. */
    const char *gz = write_temp(p, "bomb.gz", "");
    FILE *f = gz ? fopen(gz, "wb") : NULL;
    char cmd[512];
    unsigned long zeros = 0, other = 0;
    CHECK(f && fwrite(r.body, 1, r.len, f) == r.len);
    if (f && fclose(f) == 0 && gz) {
      FILE *in;
      snprintf(cmd, sizeof cmd, "gzip -dc < '%s' 2>/dev/null", gz);
      in = popen(cmd, "r");
      CHECK(in != NULL);
      if (in) {
        int c;
        while ((c = getc(in)) != EOF)
          c == 0 ? zeros++ : other++;
        (void)pclose(in);
      }
    }
    fprintf(stderr, "  inflated to %lu zero bytes\n", zeros);
    CHECK(other == 0);
    CHECK(zeros >= (65536 - 12) / 13 * 2064 &&
          zeros <= 65536 / 13 * 2064 + 258);
  }
  http_resp_free(&r);

  fprintf(stderr, "redirect\n");
  post_fault(p, "{\"kind\":\"redirect\",\"next\":1,"
                "\"location\":\"http://127.0.0.2:9/steal\"}");
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.status == 302);
  h = resp_header(&r, "Location");
  CHECK(h && strcmp(h, "http://127.0.0.2:9/steal") == 0);
  free(h);
  http_resp_free(&r);

  fprintf(stderr, "hang until the client gives up\n");
  post_fault(p, "{\"kind\":\"hang\",\"next\":1}");
  o.timeout_ms = 800;
  t0 = now_ms();
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(r.curl_code == CURLE_OPERATION_TIMEDOUT);
  CHECK(now_ms() - t0 >= 750);
  CHECK(r.status == 0);
  http_resp_free(&r);
  o.timeout_ms = 0;
  /* And the emulator still answers. */
  CHECK_STR(call_code(p, NULL), "OK");
}

static void test_log_and_stats(const emu_proc *p)
{
  size_t n, i;
  char **l = read_log(p, &n);
  int kinds = 0;
  const char *want[] = {"\"fault\":\"reset\"",     "\"fault\":\"truncate\"",
                        "\"fault\":\"malformed\"", "\"fault\":\"drip\"",
                        "\"fault\":\"oversize\"",  "\"fault\":\"chunked\"",
                        "\"fault\":\"redirect\"",  "\"fault\":\"hang\"",
                        "\"fault\":\"error\"",     NULL};
  size_t k;
  http_resp r;

  fprintf(stderr, "faulted calls are logged and counted\n");
  for (k = 0; want[k]; k++) {
    int found = 0;
    for (i = 0; i < n; i++)
      if (strstr(l[i], want[k]) && strstr(l[i], "\"verdict\":\"fault\""))
        found = 1;
    CHECK(found);
    kinds += found;
  }
  CHECK(kinds == 9);
  free_lines(l, n);
  CHECK(emu_http(p, "GET", "/_emulator/stats", NULL, &r) == 0);
  CHECK(strstr(r.body, "\"faults_by_kind\":{") != NULL);
  CHECK(strstr(r.body, "\"hang\":1") != NULL);
  http_resp_free(&r);
  /* reset clears rules and counters */
  post_fault(p, "{\"kind\":\"error\"}");
  CHECK(emu_http(p, "POST", "/_emulator/reset", NULL, &r) == 0);
  CHECK(r.status == 200);
  http_resp_free(&r);
  CHECK_STR(call_code(p, NULL), "OK");
  CHECK(emu_http(p, "GET", "/_emulator/stats", NULL, &r) == 0);
  CHECK(strstr(r.body, "\"requests\":1,") != NULL);
  http_resp_free(&r);
}

static void test_flags(void)
{
  const char *args[] = {
    "--fault",   "kind=error,code=ServiceUnavailable,next=1",
    "--latency", "200:0",
    "--fault",   "{\"kind\":\"quota\",\"quota\":1}",
    NULL};
  emu_proc p;
  long st = 0;
  double t0;

  fprintf(stderr, "faults from flags\n");
  if (emu_start(&p, args) != 0) {
    CHECK(0 && "emulator did not start");
    return;
  }
  t0 = now_ms();
  CHECK_STR(call_code(&p, &st), "ServiceUnavailable");
  CHECK(st == 503);
  CHECK(now_ms() - t0 >= 195);
  CHECK_STR(call_code(&p, &st), "Throttling.User"); /* quota 1, counted */
  CHECK(emu_stop(&p) == 0);
  {
    const char *bad[] = {"--fault", "kind=nonsense", NULL};
    CHECK(emu_start(&p, bad) != 0);
  }
}

int main(int argc, char **argv)
{
  const char *args[] = {"--quota", "100000", NULL};
  emu_proc p;
  int rc;

  rc = harness_main(argc, argv, 2, "EMULATOR", args, &p);
  if (rc)
    return rc;
  test_latency(&p);
  test_errors(&p);
  test_broken_bodies(&p);
  test_log_and_stats(&p);
  CHECK(emu_stop(&p) == 0);
  test_flags();
  curl_global_cleanup();
  return test_report("test_emu_faults");
}
