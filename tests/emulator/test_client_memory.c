/*
 * The transport keeps nothing of a request after its answer: once a call
 * of a batch has ended, its signed URL and header lines are freed (the
 * next attempt builds its own), so a batch of thousands of calls does not
 * hold one of each per call until the last one ends.  The answer's body
 * stays (the caller decodes it).  A retried call (throttled first) ends
 * the same way.  docs/internals/client.md, "Memory per space".
 *
 * Usage: test_client_memory EMULATOR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ca_client.h"
#include "harness.h"
#include "test.h"

#define NCALLS 40

static void run_batch(const emu_proc *p, double qps)
{
  char endpoint[64];
  ca_client_config cfg;
  ca_client *c = NULL;
  ca_buf err = CA_BUF_INIT(4096);
  ca_call *calls[NCALLS];
  size_t i;

  snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%u", p->port);
  memset(&cfg, 0, sizeof cfg);
  cfg.endpoint = endpoint;
  cfg.access_key_id = KEY_ID;
  cfg.access_key_secret = KEY_SECRET;
  cfg.qps = qps;
  cfg.max_attempts = 5;
  cfg.call_timeout_ms = 30000;
  CHECK(ca_client_new(&cfg, &c, &err) == CHATAPP_OK);
  ca_buf_free(&err);
  if (!c)
    return;
  for (i = 0; i < NCALLS; i++) {
    calls[i] = ca_call_new_api(QUERY, NULL, 0);
    CHECK(calls[i] != NULL);
    if (!calls[i]) {
      ca_client_free(c);
      return;
    }
  }
  CHECK(ca_client_perform(c, calls, NCALLS) == CHATAPP_OK);
  for (i = 0; i < NCALLS; i++) {
    CHECK(calls[i]->status == CHATAPP_OK);
    CHECK(calls[i]->body.len > 0); /* the answer stays for the caller */
    CHECK(calls[i]->slist == NULL);
    CHECK(calls[i]->url_buf.ptr == NULL);
    CHECK(calls[i]->easy == NULL);
    ca_call_free(calls[i]);
  }
  ca_client_free(c);
}

int main(int argc, char **argv)
{
  const char *args[] = {"--quota", "20", NULL};
  emu_proc p;
  int rc;

  rc = harness_main(argc, argv, 2, "EMULATOR", args, &p);
  if (rc)
    return rc;
  run_batch(&p, 20);  /* within the quota */
  run_batch(&p, 200); /* over it: throttled answers, then retries */
  CHECK(emu_stop(&p) == 0);
  curl_global_cleanup();
  return test_report("test_client_memory");
}
