/*
 * The API layers below the policies:
 *   - answer classification, the envelope reader and the operation table;
 *   - the client's libcurl discipline: the minimum libcurl version, an
 *     option libcurl refuses fails the call with a message naming it;
 *   - the Client binding: a request that raises while it is read leaks
 *     nothing (C memory measured over many raising requests);
 *   - the embedding API short of memory: with the Lua state capped at
 *     every size up to what set-up and a run need, each call returns a
 *     status and a message, the host survives and nothing leaks (ASan and
 *     valgrind builds check the last); report statuses it does not know
 *     are CHATAPP_EINTERNAL; messages over 64 KiB are cut with a marker.
 */
#include <malloc.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ca_api.h"
#include "ca_client_int.h"
#include "lca_runtime.h"
#include "test.h"

/* ---- libcurl discipline ------------------------------------------------- */

static void test_curl_version(void)
{
  ca_buf err = CA_BUF_INIT(4096);

  CHECK(ca_curl_check_version(0x075700, "7.87.0", &err) == CHATAPP_OK);
  CHECK(ca_curl_check_version(0x075801, "7.88.1", &err) == CHATAPP_OK);
  CHECK(err.len == 0);
  /* 7.80 has CURLOPT_PREREQFUNCTION but not CURLOPT_PROTOCOLS_STR */
  CHECK(ca_curl_check_version(0x075000, "7.80.0", &err) == CHATAPP_ECONFIG);
  CHECK(strstr(ca_buf_str(&err), "libcurl 7.80.0 is too old") != NULL);
  CHECK(strstr(ca_buf_str(&err), "7.87.0 or newer") != NULL);
  ca_buf_free(&err);
}

static ca_client *http_client(void)
{
  ca_client_config cfg;
  ca_buf err = CA_BUF_INIT(4096);
  ca_client *c = NULL;

  memset(&cfg, 0, sizeof cfg);
  cfg.http_only = 1;
  cfg.max_attempts = 1;
  CHECK(ca_client_new(&cfg, &c, &err) == CHATAPP_OK);
  if (err.len)
    fprintf(stderr, "ca_client_new: %s\n", ca_buf_str(&err));
  ca_buf_free(&err);
  return c;
}

/* libcurl refuses a string option over 8,000,000 bytes: the call fails
 * and says which option, instead of going out without it. */
static void test_setopt_refused(void)
{
  static const char prefix[] = "http://127.0.0.1:9/";
  size_t n = 8 * 1000 * 1000 + 64;
  char *url = malloc(n + 1);
  ca_client *c = http_client();
  ca_call *call;

  CHECK(url != NULL);
  if (!url || !c) {
    free(url);
    ca_client_free(c);
    return;
  }
  memcpy(url, prefix, sizeof prefix - 1);
  memset(url + sizeof prefix - 1, 'a', n - (sizeof prefix - 1));
  url[n] = '\0';
  call = ca_call_new_http("GET", url, NULL, 0, NULL, 0);
  CHECK(call != NULL);
  if (call) {
    CHECK(ca_client_perform(c, &call, 1) == CHATAPP_OK);
    CHECK(call->status == CHATAPP_ECONFIG);
    CHECK(call->attempts == 0); /* nothing was sent */
    CHECK(strstr(call->error, "libcurl refused CURLOPT_URL") != NULL);
    if (!strstr(call->error, "CURLOPT_URL"))
      fprintf(stderr, "  error: %s\n", call->error);
    ca_call_free(call);
  }
  free(url);
  ca_client_free(c);
}

/* The multi engine fails: perform says so, and every call it cut short
 * ends with the failure (a write in flight: outcome unknown). */
static int perform_calls;

static CURLMcode failing_perform(CURLM *multi, int *running)
{
  (void)multi;
  *running = 0;
  perform_calls++;
  return CURLM_OUT_OF_MEMORY;
}

static void test_engine_failure(void)
{
  ca_client *c = http_client();
  ca_call *calls[2];

  if (!c)
    return;
  c->multi_perform = failing_perform;
  calls[0] = ca_call_new_http("GET", "http://127.0.0.1:9/a", NULL, 0, NULL, 0);
  calls[1] = ca_call_new_http("POST", "http://127.0.0.1:9/b", NULL, 0, "x", 1);
  CHECK(calls[0] && calls[1]);
  if (calls[0] && calls[1]) {
    CHECK(ca_client_perform(c, calls, 2) == CHATAPP_ENOMEM);
    CHECK(perform_calls == 1);
    CHECK(calls[0]->status == CHATAPP_ENOMEM);
    CHECK(calls[0]->retryable);
    CHECK(calls[1]->status == CHATAPP_EUNKNOWN); /* a write in flight */
    CHECK(!calls[1]->retryable);
    CHECK(strstr(calls[0]->error, "curl_multi_perform") != NULL);
    CHECK(strstr(calls[1]->error, "transfer engine failed") != NULL);
    CHECK(calls[0]->easy == NULL && calls[1]->easy == NULL);
  }
  ca_call_free(calls[0]);
  ca_call_free(calls[1]);
  ca_client_free(c);
}

/* Redaction that cannot finish (out of memory, or the marks make the text
 * longer than its buffer may be) withholds the text: never half-redacted,
 * never silently empty. */
static void test_redaction_fails_closed(void)
{
  ca_client_config cfg;
  ca_buf err = CA_BUF_INIT(4096), b = CA_BUF_INIT(64);
  ca_client *c = NULL;
  int i;

  memset(&cfg, 0, sizeof cfg);
  cfg.endpoint = "http://127.0.0.1:9";
  cfg.access_key_id = "LTAItest";
  cfg.access_key_secret = "s3cr";
  CHECK(ca_client_new(&cfg, &c, &err) == CHATAPP_OK);
  ca_buf_free(&err);
  if (!c)
    return;
  CHECK(ca_buf_adds(&b, "key s3cr here") == CHATAPP_OK);
  ca_client_redact(c, &b);
  CHECK_STR(ca_buf_str(&b), "key <redacted> here");
  ca_buf_reset(&b);
  for (i = 0; i < 15; i++) /* 60 bytes; redacted it would be 150 */
    CHECK(ca_buf_adds(&b, "s3cr") == CHATAPP_OK);
  ca_client_redact(c, &b);
  CHECK(strstr(ca_buf_str(&b), "s3cr") == NULL);
  CHECK(strstr(ca_buf_str(&b), "withheld") != NULL);
  ca_buf_free(&b);
  ca_client_free(c);
}

/* ---- the Client binding: no leak when a request raises ------------------ */

static const char raising_requests[] =
  "local core, n = ...\n"
  "local c = assert(core.http_client{})\n"
  "local mt = {__index = function(_, k)\n"
  "  if k == 'timeout_ms' then error('boom: ' .. k) end\n"
  "end}\n"
  "local raised = 0\n"
  "for _ = 1, n do\n"
  "  local rq = setmetatable({url = 'http://127.0.0.1:9/'}, mt)\n"
  "  local ok, err = pcall(c.batch, c, {rq})\n"
  "  if not ok and tostring(err):find('boom', 1, true) then\n"
  "    raised = raised + 1\n"
  "  end\n"
  "end\n"
  "c:close()\n"
  "collectgarbage(); collectgarbage()\n"
  "return raised\n";

static long run_raising(lua_State *L, int n)
{
  long raised = -1;

  if (luaL_loadstring(L, raising_requests) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
    return -1;
  }
  luaL_requiref(L, "chatapp.core", luaopen_chatapp_core, 0);
  lua_pushinteger(L, n);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK)
    fprintf(stderr, "raising requests: %s\n", lua_tostring(L, -1));
  else
    raised = (long)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return raised;
}

static void test_raising_requests_leak_nothing(void)
{
  lua_State *L = luaL_newstate();
  struct mallinfo2 before, after;
  const int n = 2000;

  CHECK(L != NULL);
  if (!L)
    return;
  luaL_openlibs(L);
  CHECK(run_raising(L, 50) == 50); /* warm-up: caches, interned strings */
  before = mallinfo2();
  CHECK(run_raising(L, n) == n);
  after = mallinfo2();
  /* A leaked call is over 1 KB: n of them would be megabytes.  (Under ASan
   * or valgrind mallinfo2 may read 0; their leak checkers cover it.) */
  CHECK(after.uordblks < before.uordblks + 256 * 1024);
  if (after.uordblks >= before.uordblks + 256 * 1024)
    fprintf(stderr, "  C heap grew by %zu bytes over %d raising requests\n",
            after.uordblks - before.uordblks, n);
  lua_close(L);
}

/* ---- the embedding API short of memory ---------------------------------- */

#define STEPS 40

static const char small_policy[] =
  "local chatapp = require 'chatapp'\n"
  "return chatapp.policy { name = 'red',\n"
  "  filter = function(n) return n.quality_rating == 'RED' end }\n";

/* A failure must say something. */
static int failed_with_message(chatapp_runtime *rt, chatapp_status st)
{
  const char *m = chatapp_runtime_errmsg(rt);
  if (st != CHATAPP_OK && (!m || !*m)) {
    fprintf(stderr, "  status %s with an empty message\n",
            chatapp_codename(st));
    return 0;
  }
  return 1;
}

static void test_setup_short_of_memory(void)
{
  chatapp_runtime *rt = NULL;
  size_t need, limit;
  int k, failures = 0, enomem = 0;

  CHECK(ca_runtime_new_limited(NULL, 0, &rt) == CHATAPP_OK);
  need = rt ? ca_runtime_memory_peak(rt) : 0;
  chatapp_runtime_free(rt);
  CHECK(need > 0);
  for (k = 0; k <= STEPS; k++) {
    chatapp_status st;
    limit = need * (size_t)k / STEPS + 1;
    rt = NULL;
    st = ca_runtime_new_limited(NULL, limit, &rt);
    CHECK(rt != NULL);
    CHECK(failed_with_message(rt, st));
    if (st != CHATAPP_OK) {
      failures++;
      enomem += st == CHATAPP_ENOMEM;
      /* a runtime whose set-up failed refuses work with a message */
      CHECK(chatapp_runtime_load_string(rt, "p.lua", small_policy,
                                        sizeof small_policy - 1) ==
            CHATAPP_EINVAL);
      CHECK(strstr(chatapp_runtime_errmsg(rt), "could not be set up"));
      CHECK(chatapp_runtime_run(rt, CHATAPP_RUN_CHECK) == CHATAPP_EINVAL);
    }
    chatapp_runtime_free(rt);
  }
  CHECK(failures > STEPS / 2); /* most limits are below what set-up needs */
  CHECK(enomem == failures);
  /* with room to spare it works */
  rt = NULL;
  CHECK(ca_runtime_new_limited(NULL, need * 2, &rt) == CHATAPP_OK);
  chatapp_runtime_free(rt);
}

static void test_run_short_of_memory(void)
{
  chatapp_runtime *rt = NULL;
  size_t need, before;
  int k, failures = 0, successes = 0;

  CHECK(chatapp_runtime_new(NULL, &rt) == CHATAPP_OK);
  if (!rt)
    return;
  CHECK(chatapp_runtime_load_string(rt, "red.lua", small_policy,
                                    sizeof small_policy - 1) == CHATAPP_OK);
  before = ca_runtime_limit_memory(rt, 0);
  CHECK(chatapp_runtime_run(rt, CHATAPP_RUN_CHECK) == CHATAPP_OK);
  CHECK(chatapp_runtime_policy_count(rt) == 1);
  need = ca_runtime_memory_peak(rt) - before;
  CHECK(need > 0);
  need = 2 * need + 4096; /* collections move the real need a little */
  for (k = 0; k <= STEPS; k++) {
    chatapp_status st;
    ca_runtime_limit_memory(rt, need * (size_t)k / STEPS + 1);
    st = chatapp_runtime_run(rt, CHATAPP_RUN_CHECK);
    CHECK(failed_with_message(rt, st));
    if (getenv("TEST_VERBOSE"))
      fprintf(stderr, "  run with %zu bytes: %s %s\n",
              need * (size_t)k / STEPS + 1, chatapp_codename(st),
              chatapp_runtime_errmsg(rt));
    if (st != CHATAPP_OK) {
      failures++;
      CHECK(st == CHATAPP_ENOMEM || st == CHATAPP_EPOLICY);
    } else {
      successes++;
      CHECK(chatapp_runtime_policy_count(rt) == 1);
    }
    /* loading short of memory too */
    st = chatapp_runtime_load_string(rt, "again.lua", small_policy,
                                     sizeof small_policy - 1);
    CHECK(failed_with_message(rt, st));
  }
  CHECK(failures > 0);
  CHECK(successes > 0);
  /* the runtime is still usable once memory is back */
  ca_runtime_limit_memory(rt, 0);
  CHECK(chatapp_runtime_run(rt, CHATAPP_RUN_CHECK) == CHATAPP_OK);
  CHECK(chatapp_runtime_policy_count(rt) >= 1);
  chatapp_runtime_free(rt);
}

static void test_report_statuses(void)
{
  CHECK(ca_runtime_report_status("ok") == CHATAPP_OK);
  CHECK(ca_runtime_report_status("config") == CHATAPP_ECONFIG);
  CHECK(ca_runtime_report_status("credentials") == CHATAPP_ECREDENTIALS);
  CHECK(ca_runtime_report_status("policy") == CHATAPP_EPOLICY);
  CHECK(ca_runtime_report_status("api") == CHATAPP_EAPI);
  CHECK(ca_runtime_report_status("action") == CHATAPP_EACTION);
  /* a status this library does not know is never success */
  CHECK(ca_runtime_report_status("interrupted") == CHATAPP_EINTERNAL);
  CHECK(ca_runtime_report_status("") == CHATAPP_EINTERNAL);
  CHECK(ca_runtime_report_status(NULL) == CHATAPP_EINTERNAL);
  CHECK_STR(chatapp_codename(CHATAPP_EINTERNAL), "EINTERNAL");
  CHECK(strstr(chatapp_strerror(CHATAPP_EINTERNAL), "internal") != NULL);
}

/* A policy whose error message is n bytes of 'x'. */
static chatapp_status load_raising(chatapp_runtime *rt, size_t n)
{
  char src[128];
  int len = snprintf(src, sizeof src, "error(string.rep('x', %zu), 0)\n", n);
  return chatapp_runtime_load_string(rt, "long.lua", src, (size_t)len);
}

static void test_long_messages(void)
{
  chatapp_runtime *rt = NULL;
  const char *m;
  size_t len;

  CHECK(chatapp_runtime_new(NULL, &rt) == CHATAPP_OK);
  if (!rt)
    return;
  CHECK(load_raising(rt, 1000) == CHATAPP_EPOLICY);
  m = chatapp_runtime_errmsg(rt);
  CHECK(strstr(m, "xxxxxxxxxx") != NULL);
  CHECK(strstr(m, "truncated") == NULL);

  CHECK(load_raising(rt, 100000) == CHATAPP_EPOLICY);
  m = chatapp_runtime_errmsg(rt);
  len = strlen(m);
  CHECK(len > 60000 && len < 64 * 1024);
  CHECK(strstr(m, "xxxxxxxxxx") != NULL);
  CHECK(strstr(m, "[... message truncated:") != NULL);
  if (len < 60000)
    fprintf(stderr, "  long message: %zu bytes: %.200s\n", len, m);

  CHECK(load_raising(rt, 3 * 1024 * 1024) == CHATAPP_EPOLICY);
  m = chatapp_runtime_errmsg(rt);
  CHECK(strlen(m) > 60000 && strlen(m) < 64 * 1024);
  CHECK(strstr(m, "[... message truncated:") != NULL);

  /* a success clears the message */
  CHECK(chatapp_runtime_load_string(rt, "red.lua", small_policy,
                                    sizeof small_policy - 1) == CHATAPP_OK);
  CHECK_STR(chatapp_runtime_errmsg(rt), "");
  chatapp_runtime_free(rt);
}

/* The output format is checked against report.formats, the one table of
 * formats, when the runtime starts: an unknown one fails there, naming
 * them all. */
static void test_unknown_output_format(void)
{
  chatapp_config *cfg = chatapp_config_new();
  chatapp_runtime *rt = NULL;

  CHECK(cfg != NULL);
  if (!cfg)
    return;
  CHECK(chatapp_config_set(cfg, "output", "xml") == CHATAPP_OK);
  CHECK(chatapp_runtime_new(cfg, &rt) == CHATAPP_ECONFIG);
  CHECK(rt && strstr(chatapp_runtime_errmsg(rt),
                     "unknown output format \"xml\": use one of json, none, "
                     "text") != NULL);
  chatapp_runtime_free(rt);
  rt = NULL;
  CHECK(chatapp_config_set(cfg, "output", "json") == CHATAPP_OK);
  CHECK(chatapp_runtime_new(cfg, &rt) == CHATAPP_OK);
  chatapp_runtime_free(rt);
  chatapp_config_free(cfg);
}

int main(void)
{
  ca_envelope env;
  char err[128];
  const char *body =
    "{\"RequestId\":\"R1\",\"HostId\":\"cams.ap-southeast-1.aliyuncs.com\","
    "\"Code\":\"Throttling.User\",\"Message\":\"Request was denied due to "
    "user flow control.\",\"Recommend\":\"https://x\",\"PhoneNumbers\":"
    "[{\"a\":1}]}";

  /* classification: Code first, then HTTP status */
  CHECK(ca_classify_answer(200, "OK") == CA_ANSWER_OK);
  CHECK(ca_classify_answer(500, "OK") == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(400, "Throttling.User") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(400, "Throttling.Api") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(400, "Throttling") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(400, "System.LimitControl") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(200, "Throttling.User") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(503, "ServiceUnavailable") == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(500, "InternalError") == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(400, "SignatureNonceUsed") == CA_ANSWER_NONCE);
  CHECK(ca_classify_answer(400, "SignatureDoesNotMatch") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(404, "InvalidAccessKeyId.NotFound") ==
        CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(400, "InvalidParameter") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(403, "Forbidden.RAM") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(200, "Ram.PermissionDeny") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(502, NULL) == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(429, NULL) == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(404, NULL) == CA_ANSWER_FINAL);

  /* the envelope */
  CHECK(ca_envelope_parse(body, strlen(body), &env, err, sizeof err) ==
        CHATAPP_OK);
  CHECK_STR(env.code, "Throttling.User");
  CHECK_STR(env.request_id, "R1");
  CHECK_STR(env.recommend, "https://x");
  CHECK(env.access_denied_detail == NULL);
  ca_envelope_free(&env);
  CHECK(ca_envelope_parse("[1]", 3, &env, err, sizeof err) == CHATAPP_EPARSE);
  CHECK(ca_envelope_parse("{\"Code\":", 8, &env, err, sizeof err) ==
        CHATAPP_EPARSE);
  CHECK(strstr(err, "line 1") != NULL);
  CHECK(ca_envelope_parse("{\"code\":\"OK\"}", 13, &env, err, sizeof err) ==
        CHATAPP_OK);
  CHECK_STR(env.code, "OK");
  ca_envelope_free(&env);

  /* operations */
  CHECK(ca_operation_qps("QueryChatappPhoneNumbers") == 10);
  CHECK(ca_operation_qps("GetWhatsappHealthStatus") == 5);
  CHECK(ca_operation_qps("GetChatappPhoneNumberMetric") == 50);
  CHECK(ca_operation_qps("NoSuchOperation") == CA_QPS_UNSTATED);
  CHECK(ca_operation_qps("GetWhatsappUserName") == CA_QPS_UNSTATED);
  CHECK(!ca_operation_is_write("QueryChatappPhoneNumbers"));
  CHECK(ca_operation_is_write("UpdatePhoneWebhook"));
  CHECK(ca_operation_is_write("NoSuchOperation"));
  CHECK(ca_error_hint("SignatureDoesNotMatch") != NULL);
  CHECK(ca_error_hint("InvalidTimeStamp.Expired") != NULL);
  CHECK(ca_error_hint("Whatever") == NULL);

  CHECK(chatapp_global_init() == CHATAPP_OK);
  test_curl_version();
  test_setopt_refused();
  test_engine_failure();
  test_redaction_fails_closed();
  test_raising_requests_leak_nothing();
  test_setup_short_of_memory();
  test_run_short_of_memory();
  test_report_statuses();
  test_unknown_output_format();
  test_long_messages();
  return test_report("test_api");
}
