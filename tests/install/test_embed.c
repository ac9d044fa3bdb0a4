/*
 * The embedding API as a C host sees it: only chatapp.h (and lua.h for the
 * luaopen part), linked against libchatapp.so.
 *
 *   - destructors and getters accept NULL; misuse is CHATAPP_EINVAL;
 *   - every configuration key the issue names can be set;
 *   - two runtimes in one process do not interfere: different endpoints
 *     (two fake CAMS servers on 127.0.0.1), signature versions, limiters
 *     and log callbacks, used interleaved and then from two threads;
 *   - a config is copied: changing it later does not change a runtime;
 *   - missing credentials are CHATAPP_ECREDENTIALS from the run;
 *   - luaopen_chatapp in a lua_State the host owns.
 *
 * The fake servers answer every request with a fixed phone-number list
 * and count requests; they check no signature (the emulator does that).
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <microhttpd.h>

#include "chatapp.h"
#include "test.h"

/* ---- fake CAMS servers -------------------------------------------------- */

typedef struct server {
  struct MHD_Daemon *d;
  const char *body;
  atomic_int hits;
  char endpoint[64];
} server;

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
  server *s = cls;
  struct MHD_Response *r;
  enum MHD_Result ret;

  (void)url;
  (void)method;
  (void)version;
  (void)upload;
  if (*state == NULL) { /* first call: headers only */
    *state = s;
    return MHD_YES;
  }
  if (*upload_size) { /* ignore the form body */
    *upload_size = 0;
    return MHD_YES;
  }
  atomic_fetch_add(&s->hits, 1);
  r = MHD_create_response_from_buffer(
    strlen(s->body), (void *)(uintptr_t)s->body, MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/json");
  ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  return ret;
}

static int server_start(server *s, const char *body)
{
  const union MHD_DaemonInfo *info;
  struct sockaddr_in sa;

  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->body = body;
  atomic_init(&s->hits, 0);
  s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                          0, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR,
                          (struct sockaddr *)&sa, MHD_OPTION_END);
  if (!s->d)
    return -1;
  info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  snprintf(s->endpoint, sizeof s->endpoint, "http://127.0.0.1:%u",
           (unsigned)info->port);
  return 0;
}

static const char body_one[] =
  "{\"Code\":\"OK\",\"RequestId\":\"ONE\",\"PhoneNumbers\":["
  "{\"PhoneNumber\":\"100\",\"Status\":\"CONNECTED\",\"QualityRating\":\"RED\"}"
  ","
  "{\"PhoneNumber\":\"101\",\"Status\":\"CONNECTED\","
  "\"QualityRating\":\"GREEN\"}]}";
static const char body_two[] =
  "{\"Code\":\"OK\",\"RequestId\":\"TWO\",\"PhoneNumbers\":["
  "{\"PhoneNumber\":\"200\",\"Status\":\"CONNECTED\",\"QualityRating\":\"RED\"}"
  ","
  "{\"PhoneNumber\":\"201\",\"Status\":\"FLAGGED\",\"QualityRating\":\"RED\"},"
  "{\"PhoneNumber\":\"202\",\"Status\":\"BANNED\",\"QualityRating\":\"RED\"}]}";

/* ---- helpers ------------------------------------------------------------ */

static const char red_policy[] =
  "local chatapp = require 'chatapp'\n"
  "return chatapp.policy { name = '%s',\n"
  "  filter = function(n) return n.quality_rating == 'RED' end }\n";

static chatapp_status load_named(chatapp_runtime *rt, const char *name)
{
  char src[256];
  int n = snprintf(src, sizeof src, red_policy, name);
  return chatapp_runtime_load_string(rt, name, src, (size_t)n);
}

typedef struct log_sink {
  atomic_int lines;
  atomic_int foreign; /* lines that named the other server's endpoint */
  const char *other;
} log_sink;

static void log_cb(void *ud, int level, const char *line)
{
  log_sink *s = ud;
  (void)level;
  atomic_fetch_add(&s->lines, 1);
  if (s->other && strstr(line, s->other))
    atomic_fetch_add(&s->foreign, 1);
}

static chatapp_config *base_config(const char *endpoint, const char *sigver)
{
  chatapp_config *cfg = chatapp_config_new();
  if (!cfg)
    exit(2);
  CHECK(chatapp_config_set(cfg, "endpoint", endpoint) == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "access_key_id", "LTAItestKeyId") ==
        CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "access_key_secret", "test-secret") ==
        CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "signature_version", sigver) == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "max_attempts", "1") == CHATAPP_OK);
  return cfg;
}

/* Policy i of rt has this name, seen and matched counts. */
static void check_report(chatapp_runtime *rt, size_t i, const char *name,
                         size_t seen, size_t matched)
{
  chatapp_policy_report r;
  CHECK(chatapp_runtime_policy_report(rt, i, &r) == CHATAPP_OK);
  CHECK_STR(r.name, name);
  CHECK(r.numbers_seen == seen);
  CHECK(r.numbers_matched == matched);
  CHECK(r.errors == 0);
}

/* ---- tests -------------------------------------------------------------- */

static void test_null_and_misuse(void)
{
  chatapp_config *cfg = chatapp_config_new();
  chatapp_policy_report r;

  chatapp_runtime_free(NULL);
  chatapp_config_free(NULL);
  chatapp_config_set_log(NULL, log_cb, NULL);
  CHECK(chatapp_runtime_errmsg(NULL) != NULL);
  CHECK(chatapp_config_errmsg(NULL) != NULL);
  CHECK(chatapp_runtime_policy_count(NULL) == 0);
  CHECK(chatapp_runtime_policy_report(NULL, 0, &r) == CHATAPP_EINVAL);
  CHECK(chatapp_runtime_new(cfg, NULL) == CHATAPP_EINVAL);
  CHECK(chatapp_runtime_load_string(NULL, "x", "", 0) == CHATAPP_EINVAL);
  CHECK(chatapp_runtime_load_file(NULL, "x") == CHATAPP_EINVAL);
  CHECK(chatapp_runtime_run(NULL, CHATAPP_RUN_DRY) == CHATAPP_EINVAL);
  CHECK(chatapp_config_set(NULL, "qps", "1") == CHATAPP_EINVAL);
  CHECK_STR(chatapp_codename(CHATAPP_EPOLICY), "EPOLICY");
  CHECK(strlen(chatapp_strerror(CHATAPP_ETIMEDOUT)) > 0);
  CHECK_STR(chatapp_version(), CHATAPP_VERSION);

  /* Every key the issue names, and refusals that say why. */
  {
    static const char *const keys[][2] = {
      {"endpoint", "http://127.0.0.1:9"},
      {"region", "ap-southeast-1"},
      {"access_key_id", "LTAIx"},
      {"access_key_secret", "s"},
      {"security_token", "t"},
      {"profile", "default"},
      {"qps", "2.5"},
      {"limiter", "process"},
      {"connect_timeout_ms", "1000"},
      {"timeout_ms", "2000"},
      {"call-timeout-ms", "3000"},
      {"signature_version", "v2"},
      {"memory_limit_mb", "16"},
      {"instruction_limit", "1000000"},
      {"verbose", "3"},
    };
    size_t i;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
      CHECK(chatapp_config_set(cfg, keys[i][0], keys[i][1]) == CHATAPP_OK);
  }
  CHECK(chatapp_config_set(cfg, "no_such_key", "1") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "no_such_key") != NULL);
  CHECK(chatapp_config_set(cfg, "qps", "fast") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "qps") != NULL);
  CHECK(chatapp_config_set(cfg, "signature_version", "v9") == CHATAPP_EINVAL);
  chatapp_config_free(cfg);
}

typedef struct runner_arg {
  chatapp_runtime *rt;
  int rounds;
  int failures;
} runner_arg;

static void *run_rounds(void *p)
{
  runner_arg *a = p;
  int i;
  for (i = 0; i < a->rounds; i++)
    if (chatapp_runtime_run(a->rt, CHATAPP_RUN_DRY) != CHATAPP_OK)
      a->failures++;
  return NULL;
}

static void test_two_runtimes(const char *tmpdir)
{
  server one, two;
  log_sink log_a, log_b;
  chatapp_config *ca, *cb;
  chatapp_runtime *a = NULL, *b = NULL, *c = NULL;
  char limiter[512];

  if (server_start(&one, body_one) || server_start(&two, body_two)) {
    fprintf(stderr, "cannot start the fake servers\n");
    CHECK(0);
    return;
  }
  atomic_init(&log_a.lines, 0);
  atomic_init(&log_a.foreign, 0);
  atomic_init(&log_b.lines, 0);
  atomic_init(&log_b.foreign, 0);
  log_a.other = two.endpoint;
  log_b.other = one.endpoint;

  /* A: server one, v3, its own limiter; B: server two, v2, a state file. */
  ca = base_config(one.endpoint, "v3");
  CHECK(chatapp_config_set(ca, "limiter", "process") == CHATAPP_OK);
  CHECK(chatapp_config_set(ca, "verbose", "2") == CHATAPP_OK);
  chatapp_config_set_log(ca, log_cb, &log_a);
  cb = base_config(two.endpoint, "v2");
  snprintf(limiter, sizeof limiter, "%s/limiter.state", tmpdir);
  CHECK(chatapp_config_set(cb, "limiter", limiter) == CHATAPP_OK);
  CHECK(chatapp_config_set(cb, "qps", "20") == CHATAPP_OK);
  CHECK(chatapp_config_set(cb, "verbose", "2") == CHATAPP_OK);
  chatapp_config_set_log(cb, log_cb, &log_b);

  CHECK(chatapp_runtime_new(ca, &a) == CHATAPP_OK);
  CHECK(chatapp_runtime_new(cb, &b) == CHATAPP_OK);
  /* A runtime copies its config: pointing ca elsewhere changes nothing
   * for a, and c (made after) goes to the closed port. */
  CHECK(chatapp_config_set(ca, "endpoint", "http://127.0.0.1:9") == CHATAPP_OK);
  CHECK(chatapp_runtime_new(ca, &c) == CHATAPP_OK);
  chatapp_config_free(ca);
  chatapp_config_free(cb);
  if (!a || !b || !c)
    goto out;

  /* Interleaved: load, fail, run, in turns. */
  CHECK(load_named(a, "a-red") == CHATAPP_OK);
  CHECK(load_named(b, "b-red") == CHATAPP_OK);
  CHECK(chatapp_runtime_load_string(b, "bad.lua", "return 42", 9) ==
        CHATAPP_EPOLICY);
  CHECK(strstr(chatapp_runtime_errmsg(b), "bad.lua") != NULL);
  CHECK_STR(chatapp_runtime_errmsg(a), "");
  CHECK(load_named(b, "b-red-2") == CHATAPP_OK);
  CHECK(chatapp_runtime_policy_count(a) == 0);

  CHECK(chatapp_runtime_run(a, CHATAPP_RUN_DRY) == CHATAPP_OK);
  CHECK(chatapp_runtime_policy_count(a) == 1);
  check_report(a, 0, "a-red", 2, 1);
  CHECK(chatapp_runtime_run(b, CHATAPP_RUN_DRY) == CHATAPP_OK);
  CHECK(chatapp_runtime_policy_count(b) == 2);
  check_report(b, 0, "b-red", 3, 3);
  check_report(b, 1, "b-red-2", 3, 3);
  check_report(a, 0, "a-red", 2, 1); /* a's report untouched by b's run */
  CHECK(atomic_load(&one.hits) == 1);
  CHECK(atomic_load(&two.hits) == 1);

  /* c: same policies as a would have, but the endpoint is closed. */
  CHECK(load_named(c, "c-red") == CHATAPP_OK);
  CHECK(chatapp_runtime_run(c, CHATAPP_RUN_DRY) != CHATAPP_OK);
  CHECK(strlen(chatapp_runtime_errmsg(c)) > 0);
  CHECK(atomic_load(&one.hits) == 1);

  /* From two threads at once, several runs each. */
  {
    runner_arg ra = {a, 4, 0}, rb = {b, 4, 0};
    pthread_t ta, tb;
    int sa = pthread_create(&ta, NULL, run_rounds, &ra);
    int sb = pthread_create(&tb, NULL, run_rounds, &rb);
    CHECK(sa == 0 && sb == 0);
    if (sa == 0)
      pthread_join(ta, NULL);
    if (sb == 0)
      pthread_join(tb, NULL);
    CHECK(ra.failures == 0);
    CHECK(rb.failures == 0);
  }
  check_report(a, 0, "a-red", 2, 1);
  check_report(b, 1, "b-red-2", 3, 3);
  CHECK(atomic_load(&one.hits) == 5);
  CHECK(atomic_load(&two.hits) == 5);

  /* Actions: planned in a dry run, readable one by one. */
  {
    static const char planner[] =
      "local chatapp = require 'chatapp'\n"
      "return chatapp.policy { name = 'planner',\n"
      "  where = { status = 'BANNED' },\n"
      "  decide = function(n, plan)\n"
      "    plan:log('banned: %s', n.phone_number)\n"
      "    plan:webhook { url = 'http://127.0.0.1:9/hook', json = { n = n } }\n"
      "  end }\n";
    chatapp_config *cd = base_config(two.endpoint, "v3");
    chatapp_runtime *d = NULL;
    chatapp_action_report act;
    CHECK(chatapp_config_set(cd, "limiter", "process") == CHATAPP_OK);
    CHECK(chatapp_runtime_new(cd, &d) == CHATAPP_OK);
    chatapp_config_free(cd);
    CHECK(chatapp_runtime_action_count(d) == 0);
    CHECK(chatapp_runtime_load_string(d, "planner.lua", planner,
                                      sizeof planner - 1) == CHATAPP_OK);
    CHECK(chatapp_runtime_run(d, CHATAPP_RUN_DRY) == CHATAPP_OK);
    CHECK(chatapp_runtime_action_count(d) == 2);
    CHECK(chatapp_runtime_action_report(d, 0, &act) == CHATAPP_OK);
    CHECK_STR(act.policy, "planner");
    CHECK_STR(act.kind, "log");
    CHECK_STR(act.phone_number, "202");
    CHECK_STR(act.target, "banned: 202");
    CHECK_STR(act.status, "done");
    CHECK(chatapp_runtime_action_report(d, 1, &act) == CHATAPP_OK);
    CHECK_STR(act.kind, "webhook");
    CHECK_STR(act.target, "POST http://127.0.0.1:9/hook");
    CHECK_STR(act.status, "planned");
    CHECK(act.id && strlen(act.id) == 32);
    CHECK(act.error == NULL);
    CHECK(chatapp_runtime_action_report(d, 2, &act) == CHATAPP_EINVAL);
    CHECK(chatapp_runtime_action_report(NULL, 0, &act) == CHATAPP_EINVAL);
    CHECK(chatapp_runtime_action_count(NULL) == 0);
    /* Applied: the webhook goes to a closed port and fails. */
    CHECK(chatapp_runtime_run(d, CHATAPP_RUN_APPLY) == CHATAPP_EACTION);
    CHECK(chatapp_runtime_action_report(d, 1, &act) == CHATAPP_OK);
    CHECK_STR(act.status, "failed");
    CHECK(act.error != NULL);
    chatapp_runtime_free(d);
  }

  /* Each log callback saw its own runtime's lines only. */
  CHECK(atomic_load(&log_a.lines) > 0);
  CHECK(atomic_load(&log_b.lines) > 0);
  CHECK(atomic_load(&log_a.foreign) == 0);
  CHECK(atomic_load(&log_b.foreign) == 0);
out:
  chatapp_runtime_free(a);
  chatapp_runtime_free(b);
  chatapp_runtime_free(c);
  unlink(limiter);
  MHD_stop_daemon(one.d);
  MHD_stop_daemon(two.d);
}

/* No explicit keys, no environment, an empty HOME: the run says so. */
static void test_no_credentials(const char *tmpdir)
{
  static const char *const vars[] = {"ALIBABA_CLOUD_ACCESS_KEY_ID",
                                     "ALIBABACLOUD_ACCESS_KEY_ID",
                                     "ALICLOUD_ACCESS_KEY_ID",
                                     "ACCESS_KEY_ID",
                                     "ALIBABA_CLOUD_PROFILE",
                                     "ALIBABACLOUD_PROFILE",
                                     "ALICLOUD_PROFILE",
                                     "ALIBABA_CLOUD_CREDENTIALS_FILE",
                                     NULL};
  chatapp_config *cfg = chatapp_config_new();
  chatapp_runtime *rt = NULL;
  int i;

  for (i = 0; vars[i]; i++)
    unsetenv(vars[i]);
  setenv("HOME", tmpdir, 1);
  CHECK(chatapp_config_set(cfg, "endpoint", "http://127.0.0.1:9") ==
        CHATAPP_OK);
  CHECK(chatapp_runtime_new(cfg, &rt) == CHATAPP_OK);
  CHECK(load_named(rt, "p") == CHATAPP_OK);
  CHECK(chatapp_runtime_run(rt, CHATAPP_RUN_CHECK) == CHATAPP_OK);
  CHECK(chatapp_runtime_run(rt, CHATAPP_RUN_DRY) == CHATAPP_ECREDENTIALS);
  CHECK(strstr(chatapp_runtime_errmsg(rt), "credentials") != NULL);
  chatapp_runtime_free(rt);
  chatapp_config_free(cfg);
}

/* A host that owns its lua_State opens the module itself. */
static void test_luaopen(void)
{
  lua_State *L = luaL_newstate();
  lua_Integer nsearchers;
  const char *chunk =
    "local chatapp = require 'chatapp'\n"
    "assert(chatapp.Status.FLAGGED == 'FLAGGED')\n"
    "assert(require 'chatapp.core' == chatapp.core)\n"
    "local p = chatapp.policy { name = 'x', where = { status = 'BANNED' } }\n"
    "local s = chatapp.json.encode { n = 1 }\n"
    "local ok = pcall(chatapp.client, { no_such_key = 1 })\n"
    "return p.name, s, ok, chatapp.version\n";

  luaL_openlibs(L);
  luaL_requiref(L, "chatapp", luaopen_chatapp, 1);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  nsearchers = (lua_Integer)lua_rawlen(L, -1);
  lua_pop(L, 2);
  /* Opening it again adds no second searcher. */
  luaL_requiref(L, "chatapp", luaopen_chatapp, 1);
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  CHECK((lua_Integer)lua_rawlen(L, -1) == nsearchers);
  lua_pop(L, 2);

  if (luaL_loadstring(L, chunk) != LUA_OK || lua_pcall(L, 0, 4, 0) != LUA_OK) {
    fprintf(stderr, "lua: %s\n", lua_tostring(L, -1));
    CHECK(0);
  } else {
    CHECK_STR(lua_tostring(L, 1), "x");
    CHECK_STR(lua_tostring(L, 2), "{\"n\":1}");
    CHECK(!lua_toboolean(L, 3));
    CHECK_STR(lua_tostring(L, 4), CHATAPP_VERSION);
  }
  lua_close(L);
}

int main(void)
{
  char tmpdir[] = "/tmp/chatapp-test-embed-XXXXXX";

  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  test_null_and_misuse();
  test_two_runtimes(tmpdir);
  test_luaopen();
  test_no_credentials(tmpdir); /* last: changes the environment */
  rmdir(tmpdir);
  return test_report("test_embed");
}
