/*
 * Role credentials (ca_cred_provider.c, ca_cred_fetch.c, ca_cred_process.c,
 * ca_cred_answer.c, the role modes of ca_cred_cli.c and ca_cred_ini.c): the
 * parsers, the chain's new sources, and each provider against a small fake
 * server on 127.0.0.1 (STS AssumeRole with its signature checked,
 * AssumeRoleWithOIDC, the metadata service, a credentials URI), the refresh
 * rules on an injected clock, one fetch for many waiting threads, failures that
 * keep valid credentials, and the redaction of every secret and token that
 * arrives.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca_client.h"
#include "ca_client_int.h"
#include "ca_cred.h"
#include "ca_cred_provider.h"
#include "ca_secrets.h"
#include "ca_sign.h"
#include "test.h"

#define SRC_ID     "LTAIsourceKey0001"
#define SRC_SECRET "source-secret-canary-0001"
#define OIDC_TOK   "oidc-token-canary-abcdef"

/* ---- the fake server ---------------------------------------------------- */

typedef struct server {
  int fd, port, stop;
  pthread_t th;
  pthread_mutex_t mu;
  /* behaviour */
  int lifetime;     /* s of the credentials issued */
  int fail;         /* answer 500 to credential requests */
  int malformed;    /* answer JSON without SecurityToken */
  int delay_ms;     /* before answering a credential request */
  int token_status; /* the IMDS token PUT's status (200) */
  int require_token;
  /* counters */
  int sts, oidc, imds_token, imds_name, imds_creds, uri, bad_sig, total;
  int serial;
  int busy;
  int fail_next;    /* AssumeRole: answer 500 this many times */
  int nonce_reused; /* AssumeRole: a nonce seen before */
  char last_nonce[64];
  int use_fake; /* Expiration from the test's clock, not the real one */
  char last_oidc[256];
  char last_ak[128];
} server;

static server srv;
static int64_t fake_time;

/* Percent-decode src[0..n) into out. */
static void pct_decode(const char *s, size_t n, char *out, size_t cap)
{
  size_t o = 0, i;

  for (i = 0; i < n && o + 1 < cap; i++) {
    if (s[i] == '%' && i + 2 < n) {
      unsigned v = 0;
      sscanf(s + i + 1, "%2x", &v);
      out[o++] = (char)v;
      i += 2;
    } else {
      out[o++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  out[o] = '\0';
}

typedef struct params {
  char k[24][64];
  char v[24][2048];
  int n;
} params;

static void parse_form(params *p, const char *s, size_t n)
{
  const char *e = s + n;

  while (s < e && p->n < 24) {
    const char *amp = memchr(s, '&', (size_t)(e - s));
    const char *end = amp ? amp : e;
    const char *eq = memchr(s, '=', (size_t)(end - s));
    if (eq) {
      pct_decode(s, (size_t)(eq - s), p->k[p->n], sizeof p->k[0]);
      pct_decode(eq + 1, (size_t)(end - eq - 1), p->v[p->n], sizeof p->v[0]);
      p->n++;
    }
    s = end + 1;
  }
}

static const char *param(const params *p, const char *k)
{
  int i;
  for (i = 0; i < p->n; i++)
    if (strcmp(p->k[i], k) == 0)
      return p->v[i];
  return NULL;
}

static void reply(int fd, int status, const char *body)
{
  char head[256];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: "
                   "close\r\nContent-Type: application/json\r\n\r\n",
                   status, strlen(body));
  if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
    return;
}

static void creds_json(char *out, size_t n, const char *fmt_prefix,
                       int sts_shape)
{
  char exp[21];
  int k;

  pthread_mutex_lock(&srv.mu);
  k = ++srv.serial;
  ca_iso8601((long long)(srv.use_fake ? fake_time : time(NULL)) + srv.lifetime,
             exp);
  pthread_mutex_unlock(&srv.mu);
  if (srv.malformed)
    snprintf(out, n,
             "{\"Code\":\"Success\",\"AccessKeyId\":\"STS.x%d\","
             "\"AccessKeySecret\":\"s\",\"Expiration\":\"%s\"}",
             k, exp);
  else if (sts_shape)
    snprintf(out, n,
             "{\"RequestId\":\"r\",\"Credentials\":{\"AccessKeyId\":"
             "\"STS.%s%d\",\"AccessKeySecret\":\"role-secret-canary-%d\","
             "\"SecurityToken\":\"role-token-canary-%d\",\"Expiration\":"
             "\"%s\"}}",
             fmt_prefix, k, k, k, exp);
  else
    snprintf(out, n,
             "{\"Code\":\"Success\",\"AccessKeyId\":\"STS.%s%d\","
             "\"AccessKeySecret\":\"role-secret-canary-%d\",\"SecurityToken\":"
             "\"role-token-canary-%d\",\"Expiration\":\"%s\",\"LastUpdated\":"
             "\"x\"}",
             fmt_prefix, k, k, k, exp);
}

static void handle(int fd)
{
  char req[65536], body[4096];
  size_t got = 0;
  char *hend = NULL, *path, *sp, *q;
  size_t clen = 0;
  char method[8];
  int tokened;
  params p;

  if (getenv("FAKE_DEBUG"))
    fprintf(stderr, "--- request\n");
  while (got < sizeof req - 1) {
    ssize_t n = read(fd, req + got, sizeof req - 1 - got);
    if (n <= 0)
      return;
    got += (size_t)n;
    req[got] = '\0';
    hend = strstr(req, "\r\n\r\n");
    if (hend) {
      char *cl = strcasestr(req, "\r\ncontent-length:");
      clen = cl && cl < hend ? (size_t)atol(cl + 17) : 0;
      if (got >= (size_t)(hend + 4 - req) + clen)
        break;
    }
  }
  if (!hend)
    return;
  if (getenv("FAKE_DEBUG"))
    fprintf(stderr, "%s\n", req);
  tokened = strcasestr(req, "\r\nx-aliyun-ecs-metadata-token:") != NULL;
  sscanf(req, "%7s", method);
  path = strchr(req, ' ') + 1;
  sp = strchr(path, ' ');
  *sp = '\0';
  pthread_mutex_lock(&srv.mu);
  srv.total++;
  pthread_mutex_unlock(&srv.mu);
  memset(&p, 0, sizeof p);
  q = strchr(path, '?');
  if (srv.delay_ms && strcmp(method, "PUT") != 0) {
    struct timespec ts = {srv.delay_ms / 1000,
                          (srv.delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (strcmp(method, "POST") == 0 && path[0] == '/' &&
      (path[1] == '?' || path[1] == '\0')) {
    const char *action;
    if (q)
      parse_form(&p, q + 1, strlen(q + 1));
    {
      int nq = p.n;
      parse_form(&p, hend + 4, clen);
      action = param(&p, "Action");
      if (srv.fail) {
        reply(fd, 500, "{\"Code\":\"InternalError\",\"Message\":\"down\"}");
        return;
      }
      if (action && strcmp(action, "AssumeRole") == 0) {
        ca_kv kv[24];
        int i, nk = 0;
        const char *sig = NULL;
        ca_rpc_output o;
        pthread_mutex_lock(&srv.mu);
        srv.sts++;
        snprintf(srv.last_ak, sizeof srv.last_ak, "%s",
                 param(&p, "AccessKeyId") ? param(&p, "AccessKeyId") : "");
        if (param(&p, "SignatureNonce") &&
            strcmp(srv.last_nonce, param(&p, "SignatureNonce")) == 0) {
          srv.nonce_reused++;
          pthread_mutex_unlock(&srv.mu);
          reply(fd, 400, "{\"Code\":\"SignatureNonceUsed\"}");
          return;
        }
        snprintf(srv.last_nonce, sizeof srv.last_nonce, "%s",
                 param(&p, "SignatureNonce") ? param(&p, "SignatureNonce")
                                             : "");
        if (srv.fail_next > 0) {
          srv.fail_next--;
          pthread_mutex_unlock(&srv.mu);
          reply(fd, 500, "{\"Code\":\"InternalError\",\"Message\":\"x\"}");
          return;
        }
        pthread_mutex_unlock(&srv.mu);
        for (i = 0; i < p.n; i++) {
          if (strcmp(p.k[i], "Signature") == 0 && i < nq) {
            sig = p.v[i];
            continue;
          }
          kv[nk++] = (ca_kv){p.k[i], p.v[i]};
        }
        ca_rpc_output_init(&o);
        /* the signature covers query and body; RoleArn is in the body */
        if (sig && ca_sign_rpc("POST", kv, (size_t)nk, SRC_SECRET, &o) != 0)
          sig = NULL;
        for (i = 0; i < nq; i++)
          if (strcmp(p.k[i], "RoleArn") == 0)
            sig = NULL;
        if (!sig || strcmp(o.signature, sig) != 0) {
          ca_rpc_output_free(&o);
          pthread_mutex_lock(&srv.mu);
          srv.bad_sig++;
          pthread_mutex_unlock(&srv.mu);
          reply(fd, 400,
                "{\"Code\":\"SignatureDoesNotMatch\",\"Message\":\"no\"}");
          return;
        }
        ca_rpc_output_free(&o);
        creds_json(body, sizeof body, "role", 1);
        reply(fd, 200, body);
        return;
      }
      if (action && strcmp(action, "AssumeRoleWithOIDC") == 0) {
        pthread_mutex_lock(&srv.mu);
        srv.oidc++;
        snprintf(srv.last_oidc, sizeof srv.last_oidc, "%s",
                 param(&p, "OIDCToken") ? param(&p, "OIDCToken") : "");
        pthread_mutex_unlock(&srv.mu);
        if (param(&p, "Signature") || param(&p, "AccessKeyId")) {
          reply(fd, 400, "{\"Code\":\"NotAnonymous\"}");
          return;
        }
        creds_json(body, sizeof body, "oidc", 1);
        reply(fd, 200, body);
        return;
      }
    }
    reply(fd, 400, "{\"Code\":\"InvalidAction\",\"Message\":\"?\"}");
    return;
  }
  if (strcmp(method, "PUT") == 0 && strcmp(path, "/latest/api/token") == 0) {
    pthread_mutex_lock(&srv.mu);
    srv.imds_token++;
    pthread_mutex_unlock(&srv.mu);
    if (srv.token_status != 200) {
      reply(fd, srv.token_status, "");
      return;
    }
    reply(fd, 200, "imds-token-canary-0123456789");
    return;
  }
  if (strncmp(path, "/latest/meta-data/ram/security-credentials/", 43) == 0) {
    if (srv.require_token && !tokened) {
      reply(fd, 401, "");
      return;
    }
    if (path[43] == '\0') {
      pthread_mutex_lock(&srv.mu);
      srv.imds_name++;
      pthread_mutex_unlock(&srv.mu);
      reply(fd, 200, "test-role\n");
      return;
    }
    pthread_mutex_lock(&srv.mu);
    srv.imds_creds++;
    pthread_mutex_unlock(&srv.mu);
    if (strcmp(path + 43, "test-role") != 0) {
      reply(fd, 404, "");
      return;
    }
    if (srv.fail) {
      reply(fd, 500, "");
      return;
    }
    creds_json(body, sizeof body, "ecs", 0);
    reply(fd, 200, body);
    return;
  }
  if (strcmp(path, "/creds") == 0) {
    pthread_mutex_lock(&srv.mu);
    srv.uri++;
    pthread_mutex_unlock(&srv.mu);
    if (srv.fail) {
      reply(fd, 503, "");
      return;
    }
    creds_json(body, sizeof body, "uri", 0);
    reply(fd, 200, body);
    return;
  }
  reply(fd, 404, "{}");
}

static void *serve(void *ud)
{
  (void)ud;
  while (!srv.stop) {
    struct pollfd pf = {srv.fd, POLLIN, 0};
    int c;
    if (poll(&pf, 1, 100) <= 0)
      continue;
    c = accept(srv.fd, NULL, NULL);
    if (c < 0)
      continue;
    pthread_mutex_lock(&srv.mu);
    srv.busy = 1;
    pthread_mutex_unlock(&srv.mu);
    handle(c);
    close(c);
    pthread_mutex_lock(&srv.mu);
    srv.busy = 0;
    pthread_mutex_unlock(&srv.mu);
  }
  return NULL;
}

static void server_start(void)
{
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  int one = 1;

  memset(&srv, 0, sizeof srv);
  pthread_mutex_init(&srv.mu, NULL);
  srv.lifetime = 3600;
  srv.token_status = 200;
  srv.fd = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(srv.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(srv.fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(srv.fd, 64) != 0 ||
      getsockname(srv.fd, (struct sockaddr *)&a, &al) != 0) {
    perror("fake server");
    exit(2);
  }
  srv.port = ntohs(a.sin_port);
  pthread_create(&srv.th, NULL, serve, NULL);
}

static void server_reset(void)
{
  pthread_mutex_lock(&srv.mu);
  srv.lifetime = 3600;
  srv.fail = srv.malformed = srv.delay_ms = srv.require_token = 0;
  srv.use_fake = 0;
  srv.token_status = 200;
  srv.sts = srv.oidc = srv.imds_token = srv.imds_name = srv.imds_creds = 0;
  srv.uri = srv.bad_sig = srv.total = 0;
  srv.fail_next = srv.nonce_reused = 0;
  pthread_mutex_unlock(&srv.mu);
}

/* Let the requests of clients that gave up drain (bounded: 8 s). */
static void server_quiet(void)
{
  struct timespec ts = {0, 500000000};
  int last = -1, i;

  for (i = 0; i < 16; i++) {
    int now, busy;
    pthread_mutex_lock(&srv.mu);
    now = srv.total;
    busy = srv.busy;
    pthread_mutex_unlock(&srv.mu);
    if (now == last && !busy)
      return;
    last = now;
    nanosleep(&ts, NULL);
  }
}

static void server_stop(void)
{
  srv.stop = 1;
  pthread_join(srv.th, NULL);
  close(srv.fd);
}

/* ---- environment and clock ---------------------------------------------- */

typedef struct env {
  const char *k[16], *v[16];
  int n;
} env;

static const char *env_get(void *ud, const char *name)
{
  env *e = ud;
  int i;
  for (i = 0; i < e->n; i++)
    if (strcmp(e->k[i], name) == 0)
      return e->v[i];
  return NULL;
}

static void env_set(env *e, const char *k, const char *v)
{
  e->k[e->n] = k;
  e->v[e->n++] = v;
}

static int64_t fake_now(void *ud)
{
  (void)ud;
  return fake_time;
}

static char tmpdir[] = "/tmp/test_cred_provider.XXXXXX";
static char url[128], md[128];

static void write_file(const char *path, const char *text, mode_t mode)
{
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    perror(path);
    exit(2);
  }
  chmod(path, mode);
}

/* ---- pure parts --------------------------------------------------------- */

static void test_parsers(void)
{
  char *id, *sec, *tok, err[256];
  int64_t exp;

  CHECK(ca_cred_parse_time("2026-01-02T03:04:05Z") == 1767323045);
  CHECK(ca_cred_parse_time("2026-01-02T03:04:05.123Z") == 1767323045);
  CHECK(ca_cred_parse_time("2026-01-02 03:04:05Z") == -1);
  CHECK(ca_cred_parse_time("2026-01-02T03:04:05+08:00") == -1);
  CHECK(ca_cred_parse_time("2026-13-02T03:04:05Z") == -1);
  CHECK(ca_cred_parse_time("") == -1);

  {
    const char *t =
      "{\"Credentials\":{\"AccessKeyId\":\"STS.a\",\"AccessKeySecret\":"
      "\"sec\",\"SecurityToken\":\"tok\",\"Expiration\":"
      "\"2026-01-02T03:04:05Z\"}}";
    CHECK(ca_cred_parse_answer(CA_CRED_RAM_ROLE, t, strlen(t), &id, &sec, &tok,
                               &exp, err, sizeof err) == CHATAPP_OK);
  }
  CHECK_STR(id, "STS.a");
  CHECK_STR(tok, "tok");
  CHECK(exp == 1767323045);
  free(id);
  free(sec);
  free(tok);
  /* malformed answers: each refused, the reason never holds a value */
  {
    static const struct {
      ca_cred_kind k;
      const char *text, *why;
    } bad[] = {
      {CA_CRED_RAM_ROLE, "not json", "not JSON"},
      {CA_CRED_RAM_ROLE, "[1]", "not a JSON object"},
      {CA_CRED_RAM_ROLE, "{\"AccessKeyId\":\"x\"}", "no \"Credentials\""},
      {CA_CRED_OIDC,
       "{\"Credentials\":{\"AccessKeyId\":\"STS.a\",\"AccessKeySecret\":"
       "\"sec-canary\",\"Expiration\":\"2026-01-02T03:04:05Z\"}}",
       "lacks SecurityToken"},
      {CA_CRED_ECS,
       "{\"Code\":\"Failed\",\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"b\","
       "\"SecurityToken\":\"c\",\"Expiration\":\"2026-01-02T03:04:05Z\"}",
       "Code is not"},
      {CA_CRED_ECS,
       "{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"b\","
       "\"SecurityToken\":\"c\",\"Expiration\":\"2026-01-02T03:04:05Z\"}",
       "Code is not"},
      {CA_CRED_URI,
       "{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"sec-canary\","
       "\"SecurityToken\":\"c\",\"Expiration\":\"tomorrow\"}",
       "not a time"},
      {CA_CRED_URI,
       "{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"sec canary\","
       "\"SecurityToken\":\"c\",\"Expiration\":\"2026-01-02T03:04:05Z\"}",
       "blanks"},
      {CA_CRED_URI,
       "{\"AccessKeyId\":\"a\",\"AccessKeySecret\":\"b\","
       "\"SecurityToken\":\"c\"}",
       "lacks Expiration"},
      {CA_CRED_PROCESS,
       "{\"mode\":\"StsToken\",\"access_key_id\":\"a\","
       "\"access_key_secret\":\"b\"}",
       "lacks sts_token"},
    };
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      CHECK(ca_cred_parse_answer(bad[i].k, bad[i].text, strlen(bad[i].text),
                                 &id, &sec, &tok, &exp, err,
                                 sizeof err) != CHATAPP_OK);
      CHECK(id == NULL && sec == NULL && tok == NULL);
      if (!strstr(err, bad[i].why))
        fprintf(stderr, "case %zu: %s\n", i, err);
      CHECK(strstr(err, bad[i].why) != NULL);
      CHECK(strstr(err, "canary") == NULL);
    }
  }
  /* a process answer in mode AK needs no token nor expiration */
  {
    const char *t = "{\"mode\":\"AK\",\"access_key_id\":\"a\","
                    "\"access_key_secret\":\"b\"}";
    CHECK(ca_cred_parse_answer(CA_CRED_PROCESS, t, strlen(t), &id, &sec, &tok,
                               &exp, err, sizeof err) == CHATAPP_OK);
  }
  CHECK(tok == NULL && exp == 0);
  free(id);
  free(sec);

  {
    char **a = ca_cred_split_argv("cmd 'a b' \"c \\\"d\\\"\" e\\ f  g");
    CHECK(a && strcmp(a[0], "cmd") == 0 && strcmp(a[1], "a b") == 0 &&
          strcmp(a[2], "c \"d\"") == 0 && strcmp(a[3], "e f") == 0 &&
          strcmp(a[4], "g") == 0 && a[5] == NULL);
    ca_cred_argv_free(a);
    CHECK(ca_cred_split_argv("cmd 'open") == NULL);
    CHECK(ca_cred_split_argv("   ") == NULL);
    a = ca_cred_split_argv("$(rm -rf /) ; x");
    CHECK(a && strcmp(a[0], "$(rm") == 0 && strcmp(a[3], ";") == 0);
    ca_cred_argv_free(a);
  }
  /* the metadata address: only the provider's calls may reach it */
  CHECK(ca_attempt_address_check(0, 1, "100.100.100.200") == 1);
  CHECK(ca_attempt_address_check(0, 0, "100.100.100.200") == 1);
  CHECK(ca_attempt_address_check(1, 1, "100.100.100.200") == 0);
  CHECK(ca_attempt_address_check(1, 1, "169.254.169.254") == 1);
  CHECK(ca_attempt_address_check(1, 1, "10.0.0.1") == 2);
  CHECK(ca_attempt_address_check(1, 1, "127.0.0.1") == 0);
  CHECK(ca_attempt_address_check(0, 0, "203.0.113.9") == 0);
}

/* ---- the chain's new sources -------------------------------------------- */

static chatapp_status resolve(env *e, const char *home, const char *profile,
                              ca_credentials *out, ca_buf *err)
{
  ca_cred_options o;

  memset(&o, 0, sizeof o);
  o.getenv = env_get;
  o.getenv_ud = e;
  o.home = home;
  o.profile = profile;
  o.roles = 1;
  return ca_cred_resolve(&o, out, err);
}

static void test_chain(void)
{
  char home[256], path[300];
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16);
  env e;

  snprintf(home, sizeof home, "%s/home", tmpdir);
  mkdir(home, 0700);
  snprintf(path, sizeof path, "%s/.aliyun", home);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/.aliyun/config.json", home);
  write_file(
    path,
    "{\"current\":\"role\",\"profiles\":["
    "{\"name\":\"base\",\"mode\":\"AK\",\"access_key_id\":\"" SRC_ID
    "\",\"access_key_secret\":\"" SRC_SECRET "\"},"
    "{\"name\":\"role\",\"mode\":\"RamRoleArn\",\"access_key_id\":\"" SRC_ID
    "\",\"access_key_secret\":\"" SRC_SECRET
    "\",\"ram_role_arn\":\"acs:ram::1:role/r\",\"ram_session_name\":\"s1\","
    "\"expired_seconds\":1800,\"sts_region\":\"cn-beijing\",\"enable_vpc\":"
    "true,\"region_id\":\"ap-southeast-1\"},"
    "{\"name\":\"chain\",\"mode\":\"ChainableRamRoleArn\",\"source_profile\":"
    "\"role\",\"ram_role_arn\":\"acs:ram::1:role/second\"},"
    "{\"name\":\"loop1\",\"mode\":\"ChainableRamRoleArn\",\"source_profile\":"
    "\"loop2\",\"ram_role_arn\":\"acs:ram::1:role/x\"},"
    "{\"name\":\"loop2\",\"mode\":\"ChainableRamRoleArn\",\"source_profile\":"
    "\"loop1\",\"ram_role_arn\":\"acs:ram::1:role/x\"},"
    "{\"name\":\"self\",\"mode\":\"ChainableRamRoleArn\",\"source_profile\":"
    "\"self\",\"ram_role_arn\":\"acs:ram::1:role/x\"},"
    "{\"name\":\"ecs\",\"mode\":\"EcsRamRole\",\"ram_role_name\":\"myrole\"},"
    "{\"name\":\"oidc\",\"mode\":\"OIDC\",\"oidc_provider_arn\":\"acs:ram::1:"
    "oidc-provider/p\",\"oidc_token_file\":\"/t\",\"ram_role_arn\":\"acs:ram::"
    "1:role/o\"},"
    "{\"name\":\"uri\",\"mode\":\"CredentialsURI\",\"credentials_uri\":"
    "\"http://127.0.0.1:1/creds\"},"
    "{\"name\":\"ext\",\"mode\":\"External\",\"process_command\":\"x y\"},"
    "{\"name\":\"norole\",\"mode\":\"RamRoleArn\",\"access_key_id\":\"a\","
    "\"access_key_secret\":\"b\"}"
    "]}",
    0600);
  memset(&e, 0, sizeof e);

  CHECK(resolve(&e, home, NULL, &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->kind == CA_CRED_RAM_ROLE);
  CHECK(c.access_key_id == NULL);
  CHECK(c.role && c.role->source &&
        strcmp(c.role->source->access_key_id, SRC_ID) == 0);
  CHECK(c.role && c.role->duration_s == 1800 && c.role->vpc &&
        strcmp(c.role->sts_region, "cn-beijing") == 0 &&
        strcmp(c.role->session_name, "s1") == 0);
  CHECK(c.source && strstr(c.source, "mode RamRoleArn"));
  CHECK_STR(c.region, "ap-southeast-1");
  ca_cred_free(&c);

  CHECK(resolve(&e, home, "chain", &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->source && c.role->source->role &&
        c.role->source->role->kind == CA_CRED_RAM_ROLE &&
        c.role->source->role->source &&
        strcmp(c.role->source->role->source->access_key_id, SRC_ID) == 0);
  ca_cred_free(&c);

  CHECK(resolve(&e, home, "loop1", &c, &err) == CHATAPP_ECREDENTIALS);
  CHECK(strstr(ca_buf_str(&err), "loops back") != NULL);
  CHECK(resolve(&e, home, "self", &c, &err) == CHATAPP_ECREDENTIALS);
  CHECK(strstr(ca_buf_str(&err), "loops back") != NULL);
  CHECK(resolve(&e, home, "norole", &c, &err) == CHATAPP_ECREDENTIALS);
  CHECK(strstr(ca_buf_str(&err), "ram_role_arn") != NULL);

  CHECK(resolve(&e, home, "ecs", &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->kind == CA_CRED_ECS &&
        strcmp(c.role->ecs_role, "myrole") == 0);
  ca_cred_free(&c);
  CHECK(resolve(&e, home, "oidc", &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->kind == CA_CRED_OIDC &&
        strcmp(c.role->oidc_token_file, "/t") == 0);
  ca_cred_free(&c);
  CHECK(resolve(&e, home, "uri", &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->kind == CA_CRED_URI);
  ca_cred_free(&c);
  CHECK(resolve(&e, home, "ext", &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->kind == CA_CRED_PROCESS);
  ca_cred_free(&c);

  /* chain order: the environment, then the OIDC variables, then files */
  env_set(&e, "ALIBABA_CLOUD_ROLE_ARN", "acs:ram::1:role/env");
  env_set(&e, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "acs:ram::1:oidc-provider/p");
  env_set(&e, "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "/tok");
  CHECK(resolve(&e, home, NULL, &c, &err) == CHATAPP_OK);
  CHECK(c.role && c.role->kind == CA_CRED_OIDC &&
        strcmp(c.role->role_arn, "acs:ram::1:role/env") == 0);
  CHECK(c.source && strstr(c.source, "OIDC role") != NULL);
  ca_cred_free(&c);
  env_set(&e, "ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIenv");
  env_set(&e, "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "envsecret");
  CHECK(resolve(&e, home, NULL, &c, &err) == CHATAPP_OK);
  CHECK(c.role == NULL && strcmp(c.access_key_id, "LTAIenv") == 0);
  ca_cred_free(&c);

  /* INI role types */
  {
    char ini[300];
    env e2;
    memset(&e2, 0, sizeof e2);
    snprintf(ini, sizeof ini, "%s/credentials", tmpdir);
    write_file(ini,
               "[default]\ntype = ram_role_arn\naccess_key_id = " SRC_ID
               "\naccess_key_secret = " SRC_SECRET
               "\nrole_arn = acs:ram::1:role/ini\nrole_session_name = ini\n"
               "[ecs]\ntype = ecs_ram_role\nrole_name = r2\n"
               "[oidc]\ntype = oidc_role_arn\nrole_arn = acs:ram::1:role/o\n"
               "oidc_provider_arn = acs:ram::1:oidc-provider/p\n"
               "oidc_token_file_path = /tok\n"
               "[bad]\ntype = ram_role_arn\naccess_key_id = a\n"
               "access_key_secret = b\n",
               0600);
    env_set(&e2, "ALIBABA_CLOUD_CREDENTIALS_FILE", ini);
    env_set(&e2, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "true");
    CHECK(resolve(&e2, home, NULL, &c, &err) == CHATAPP_OK);
    CHECK(c.role && c.role->kind == CA_CRED_RAM_ROLE &&
          strcmp(c.role->role_arn, "acs:ram::1:role/ini") == 0);
    ca_cred_free(&c);
    CHECK(resolve(&e2, home, "ecs", &c, &err) == CHATAPP_OK);
    CHECK(c.role && c.role->kind == CA_CRED_ECS &&
          strcmp(c.role->ecs_role, "r2") == 0);
    ca_cred_free(&c);
    CHECK(resolve(&e2, home, "oidc", &c, &err) == CHATAPP_OK);
    CHECK(c.role && c.role->kind == CA_CRED_OIDC);
    ca_cred_free(&c);
    CHECK(resolve(&e2, home, "bad", &c, &err) == CHATAPP_ECREDENTIALS);
    CHECK(strstr(ca_buf_str(&err), "role_arn") != NULL);
  }

  /* nothing configured: the tail (ECS unless disabled, then the URI) */
  {
    char empty[300];
    env e3;
    memset(&e3, 0, sizeof e3);
    snprintf(empty, sizeof empty, "%s/empty", tmpdir);
    mkdir(empty, 0700);
    CHECK(resolve(&e3, empty, NULL, &c, &err) == CHATAPP_OK);
    CHECK(c.role && c.role->kind == CA_CRED_TAIL && c.role->ecs_ok &&
          !c.role->uri && c.role->nothing);
    ca_cred_free(&c);
    env_set(&e3, "ALIBABA_CLOUD_ECS_METADATA_DISABLED", "true");
    CHECK(resolve(&e3, empty, NULL, &c, &err) == CHATAPP_ECREDENTIALS);
    CHECK(strstr(ca_buf_str(&err), "ALIBABA_CLOUD_ECS_METADATA_DISABLED"));
    env_set(&e3, "ALIBABA_CLOUD_CREDENTIALS_URI", "http://127.0.0.1:1/c");
    CHECK(resolve(&e3, empty, NULL, &c, &err) == CHATAPP_OK);
    CHECK(c.role && c.role->kind == CA_CRED_TAIL && !c.role->ecs_ok &&
          c.role->uri);
    ca_cred_free(&c);
  }
  /* without options.roles, a role mode is still refused as before */
  {
    ca_cred_options o;
    memset(&o, 0, sizeof o);
    o.getenv = env_get;
    o.getenv_ud = &(env){{0}, {0}, 0};
    o.home = home;
    o.profile = "ecs";
    CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_ECREDENTIALS);
    CHECK(strstr(ca_buf_str(&err), "does not support yet") != NULL);
  }
  ca_buf_free(&err);
}

/* ---- providers against the fake server ---------------------------------- */

static ca_client_config transport;

static ca_cred_provider *make(ca_credentials *c, env *e, ca_buf *err,
                              chatapp_status *st)
{
  ca_cred_net net;
  ca_cred_provider *p = NULL;

  memset(&net, 0, sizeof net);
  memset(&transport, 0, sizeof transport);
  transport.attempt_timeout_ms = 1500;
  transport.call_timeout_ms = 5000;
  transport.max_attempts = 2;
  net.transport = &transport;
  net.getenv = env_get;
  net.getenv_ud = e;
  ca_buf_reset(err);
  *st = ca_cred_provider_new(c, &net, &p, err);
  return p;
}

static ca_credentials *static_source(void)
{
  ca_credentials *s = calloc(1, sizeof *s);
  s->access_key_id = strdup(SRC_ID);
  s->access_key_secret = strdup(SRC_SECRET);
  s->source = strdup("test source");
  return s;
}

static void role_creds(ca_credentials *c, ca_cred_kind kind)
{
  memset(c, 0, sizeof *c);
  c->role = calloc(1, sizeof *c->role);
  c->role->kind = kind;
  c->source = strdup("test configuration");
}

/* No secret in a text. */
static int clean(const char *s)
{
  return !strstr(s, "canary") && !strstr(s, SRC_SECRET);
}

static void test_ram_role(void)
{
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16), d = CA_BUF_INIT(4096);
  ca_secrets red = CA_SECRETS_INIT;
  ca_cred_copy cur;
  chatapp_status st;
  ca_cred_provider *p;
  char e[512];
  env en;

  server_reset();
  memset(&en, 0, sizeof en);
  env_set(&en, "ALIBABA_CLOUD_STS_ENDPOINT", url);
  role_creds(&c, CA_CRED_RAM_ROLE);
  c.role->role_arn = strdup("acs:ram::1000000000000001:role/chatapp-test");
  c.role->source = static_source();
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK);
  if (st) {
    fprintf(stderr, "%s\n", ca_buf_str(&err));
    return;
  }
  CHECK(srv.sts == 1 && srv.bad_sig == 0);
  CHECK_STR(srv.last_ak, SRC_ID);
  memset(&cur, 0, sizeof cur);
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  CHECK(cur.id && strncmp(cur.id, "STS.role", 8) == 0);
  CHECK(cur.token && strstr(cur.token, "role-token-canary"));
  CHECK(ca_secrets_found(&red, cur.secret, strlen(cur.secret)));
  CHECK(ca_secrets_found(&red, cur.token, strlen(cur.token)));
  CHECK(ca_secrets_found(&red, SRC_SECRET, strlen(SRC_SECRET)));
  CHECK_STR(ca_cred_provider_identity(p),
            "acs:ram::1000000000000001:role/chatapp-test");
  CHECK(ca_cred_provider_describe(p, &d) == CHATAPP_OK);
  CHECK(strstr(ca_buf_str(&d), "RAM role acs:ram::1000000000000001:role/"
                               "chatapp-test by STS AssumeRole at ") != NULL);
  CHECK(strstr(ca_buf_str(&d), ", expires 20") != NULL);
  CHECK(clean(ca_buf_str(&d)));
  CHECK(srv.sts == 1); /* cached */
  ca_cred_copy_free(&cur);
  ca_cred_provider_free(p);

  /* a 500 is retried like a CAMS call's, each attempt signed anew (a
   * replayed request would reuse its nonce) */
  server_reset();
  srv.fail_next = 1; /* max_attempts is 2 */
  role_creds(&c, CA_CRED_RAM_ROLE);
  c.role->role_arn = strdup("acs:ram::1:role/x");
  c.role->source = static_source();
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK);
  CHECK(srv.sts == 2 && srv.nonce_reused == 0 && srv.bad_sig == 0);
  ca_cred_provider_free(p);

  /* a wrong source secret: the error names the provider and the cause */
  role_creds(&c, CA_CRED_RAM_ROLE);
  c.role->role_arn = strdup("acs:ram::1:role/x");
  c.role->source = static_source();
  free(c.role->source->access_key_secret);
  c.role->source->access_key_secret = strdup("wrong-secret-canary");
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS);
  CHECK(strstr(ca_buf_str(&err), "SignatureDoesNotMatch") != NULL);
  CHECK(strstr(ca_buf_str(&err), "test configuration") != NULL);
  CHECK(clean(ca_buf_str(&err)));
  CHECK(p == NULL);

  /* plain http to a host that is not loopback is refused */
  role_creds(&c, CA_CRED_RAM_ROLE);
  c.role->role_arn = strdup("acs:ram::1:role/x");
  c.role->source = static_source();
  c.role->sts_endpoint = strdup("http://sts.example.com");
  p = make(&c, &(env){{0}, {0}, 0}, &err, &st);
  CHECK(st == CHATAPP_ECONFIG && p == NULL);
  CHECK(strstr(ca_buf_str(&err), "refusing plain http") != NULL);
  ca_secrets_free(&red);
  ca_buf_free(&err);
  ca_buf_free(&d);
}

static void test_oidc(void)
{
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16);
  ca_secrets red = CA_SECRETS_INIT;
  ca_cred_copy cur;
  chatapp_status st;
  ca_cred_provider *p;
  char tok[300], e[512];
  env en;

  server_reset();
  snprintf(tok, sizeof tok, "%s/token", tmpdir);
  write_file(tok, OIDC_TOK "1", 0644);
  memset(&en, 0, sizeof en);
  env_set(&en, "ALIBABA_CLOUD_STS_ENDPOINT", url);
  role_creds(&c, CA_CRED_OIDC);
  c.role->role_arn = strdup("acs:ram::1:role/o");
  c.role->oidc_provider_arn = strdup("acs:ram::1:oidc-provider/ack-test");
  c.role->oidc_token_file = strdup(tok);
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK);
  if (st) {
    fprintf(stderr, "%s\n", ca_buf_str(&err));
    return;
  }
  ca_cred_provider_set_clock(p, fake_now, NULL);
  fake_time = time(NULL);
  CHECK(srv.oidc == 1);
  CHECK_STR(srv.last_oidc, OIDC_TOK "1");
  /* the token file is read anew at each refresh */
  write_file(tok, OIDC_TOK "2", 0644);
  memset(&cur, 0, sizeof cur);
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.oidc == 1);
  fake_time += 3600 - 900; /* the stale window */
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.oidc == 2);
  CHECK_STR(srv.last_oidc, OIDC_TOK "2");
  CHECK(ca_secrets_found(&red, OIDC_TOK "1", strlen(OIDC_TOK "1")));
  CHECK(ca_secrets_found(&red, OIDC_TOK "2", strlen(OIDC_TOK "2")));
  /* a FIFO as the token file does not hang: the refresh fails, the valid
   * credentials stay */
  unlink(tok);
  CHECK(mkfifo(tok, 0600) == 0);
  fake_time = ca_cred_provider_expiry(p) - 100;
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  unlink(tok);
  ca_cred_copy_free(&cur);
  ca_cred_provider_free(p);
  ca_secrets_free(&red);
  ca_buf_free(&err);
}

static void test_ecs(void)
{
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16), d = CA_BUF_INIT(4096);
  ca_secrets red = CA_SECRETS_INIT;
  ca_cred_copy cur;
  chatapp_status st;
  ca_cred_provider *p;
  char e[512];
  env en;

  server_reset();
  srv.require_token = 1;
  srv.lifetime = 7200;
  memset(&en, 0, sizeof en);
  env_set(&en, "CHATAPP_ECS_METADATA_URL", md);
  role_creds(&c, CA_CRED_ECS);
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK);
  if (st) {
    fprintf(stderr, "%s\n", ca_buf_str(&err));
    return;
  }
  CHECK(srv.imds_token >= 1 && srv.imds_name == 1 && srv.imds_creds == 1);
  CHECK_STR(ca_cred_provider_identity(p), "ecs-role:test-role");
  memset(&cur, 0, sizeof cur);
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  CHECK(ca_secrets_found(&red, "imds-token-canary-0123456789", 28));
  CHECK(ca_cred_provider_describe(p, &d) == CHATAPP_OK);
  CHECK(strstr(ca_buf_str(&d), "ECS instance role 'test-role'") != NULL);
  CHECK(clean(ca_buf_str(&d)));
  /* the ECS prefetch: an hour before Expiration (here: 2 h lifetime) */
  ca_cred_provider_set_clock(p, fake_now, NULL);
  fake_time = time(NULL) + 30;
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.imds_creds == 1);
  fake_time = ca_cred_provider_expiry(p) - 3600;
  CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.imds_creds == 2);
  ca_cred_copy_free(&cur);
  ca_cred_provider_free(p);

  /* IMDSv1 fallback when the token request is refused ... */
  server_reset();
  srv.token_status = 403;
  role_creds(&c, CA_CRED_ECS);
  c.role->ecs_role = strdup("test-role");
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK && srv.imds_creds == 1 && srv.imds_name == 0);
  ca_cred_provider_free(p);
  /* ... but not with ALIBABA_CLOUD_IMDSV1_DISABLED */
  role_creds(&c, CA_CRED_ECS);
  c.role->imdsv1_off = 1;
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS && p == NULL);
  CHECK(strstr(ca_buf_str(&err), "ALIBABA_CLOUD_IMDSV1_DISABLED") != NULL);
  /* a role this instance does not have */
  server_reset();
  role_creds(&c, CA_CRED_ECS);
  c.role->ecs_role = strdup("other");
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS && strstr(ca_buf_str(&err), "HTTP 404"));
  /* malformed answer */
  srv.malformed = 1;
  role_creds(&c, CA_CRED_ECS);
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS &&
        strstr(ca_buf_str(&err), "lacks SecurityToken"));
  /* the metadata override is loopback only */
  srv.malformed = 0;
  {
    env e2;
    memset(&e2, 0, sizeof e2);
    env_set(&e2, "CHATAPP_ECS_METADATA_URL", "http://203.0.113.1");
    role_creds(&c, CA_CRED_ECS);
    p = make(&c, &e2, &err, &st);
    CHECK(st == CHATAPP_ECONFIG && p == NULL);
  }
  /* unreachable (a closed port): one try, a clear message, no v1 retry */
  {
    env e2;
    memset(&e2, 0, sizeof e2);
    env_set(&e2, "CHATAPP_ECS_METADATA_URL", "http://127.0.0.1:1");
    role_creds(&c, CA_CRED_ECS);
    p = make(&c, &e2, &err, &st);
    CHECK(st == CHATAPP_ECREDENTIALS && p == NULL);
    CHECK(strstr(ca_buf_str(&err), "not on an ECS instance?") != NULL);
  }
  ca_secrets_free(&red);
  ca_buf_free(&err);
  ca_buf_free(&d);
}

typedef struct racer {
  ca_cred_provider *p;
  chatapp_status st;
  ca_cred_copy cur;
} racer;

static void *race(void *ud)
{
  racer *r = ud;
  char e[512];
  r->st = ca_cred_provider_sync(r->p, &r->cur, NULL, e, sizeof e);
  return NULL;
}

static void test_uri_refresh(void)
{
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16);
  ca_cred_copy cur;
  chatapp_status st;
  ca_cred_provider *p;
  ca_cred_stats stats;
  char e[512], u[200];
  uint64_t gen;
  int i;
  env en;

  server_reset();
  memset(&en, 0, sizeof en);
  snprintf(u, sizeof u, "%s/creds", url);
  role_creds(&c, CA_CRED_URI);
  c.role->uri = strdup(u);
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK);
  if (st) {
    fprintf(stderr, "%s\n", ca_buf_str(&err));
    return;
  }
  CHECK(srv.uri == 1);
  ca_cred_provider_set_clock(p, fake_now, NULL);
  fake_time = time(NULL);
  srv.use_fake = 1;
  memset(&cur, 0, sizeof cur);
  CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
  gen = cur.gen;
  /* not yet stale: no fetch */
  fake_time += 3600 - 901;
  CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.uri == 1 && cur.gen == gen);
  /* stale: one fetch, new credentials */
  fake_time += 2;
  CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.uri == 2 && cur.gen != gen);
  gen = cur.gen;
  /* a failed refresh keeps the valid credentials and backs off */
  srv.fail = 1;
  fake_time = ca_cred_provider_expiry(p) - 800;
  CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
  /* two attempts: a 503 is retried like any call's */
  CHECK(srv.uri == 4 && cur.gen == gen);
  CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
  CHECK(srv.uri == 4); /* the backoff: not at once again */
  /* expired: a clear error naming the provider and the cause */
  fake_time = ca_cred_provider_expiry(p) + 1;
  st = ca_cred_provider_sync(p, &cur, NULL, e, sizeof e);
  CHECK(st == CHATAPP_ECREDENTIALS);
  CHECK(strstr(e, "credentials URI http://127.0.0.1") != NULL);
  CHECK(strstr(e, "expired at") != NULL && strstr(e, "HTTP 503") != NULL);
  /* the service is back: after the backoff the next sync works */
  srv.fail = 0;
  fake_time += 3700;
  CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
  CHECK(cur.gen != gen);

  /* many threads, expired credentials, a slow service: one fetch */
  server_reset();
  srv.use_fake = 1;
  srv.delay_ms = 300;
  fake_time = ca_cred_provider_expiry(p) + 10;
  {
    racer r[8];
    pthread_t th[8];
    memset(r, 0, sizeof r);
    for (i = 0; i < 8; i++) {
      r[i].p = p;
      pthread_create(&th[i], NULL, race, &r[i]);
    }
    for (i = 0; i < 8; i++)
      pthread_join(th[i], NULL);
    for (i = 0; i < 8; i++) {
      CHECK(r[i].st == CHATAPP_OK);
      CHECK(r[i].cur.gen == r[0].cur.gen && r[i].cur.gen != 0);
    }
    for (i = 0; i < 8; i++)
      ca_cred_copy_free(&r[i].cur);
  }
  CHECK(srv.uri == 1);
  ca_cred_provider_stats(p, &stats);
  CHECK(stats.in_flight_max == 1);
  /* a stale (not expired) credential while one thread refreshes: the
   * others go on with it, they do not wait */
  server_reset();
  srv.use_fake = 1;
  srv.delay_ms = 800;
  fake_time = ca_cred_provider_expiry(p) - 100;
  {
    racer r;
    pthread_t th;
    struct timespec t0, t1, ts = {0, 100000000};
    memset(&r, 0, sizeof r);
    r.p = p;
    pthread_create(&th, NULL, race, &r);
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(ca_cred_provider_sync(p, &cur, NULL, e, sizeof e) == CHATAPP_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 <
          400);
    pthread_join(th, NULL);
    CHECK(r.st == CHATAPP_OK);
    ca_cred_copy_free(&r.cur);
  }
  CHECK(srv.uri == 1);
  ca_cred_copy_free(&cur);
  ca_cred_provider_free(p);

  /* a timeout: the attempt timeout of the transport, a clear error */
  server_reset();
  srv.delay_ms = 2500;
  role_creds(&c, CA_CRED_URI);
  c.role->uri = strdup(u);
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS && p == NULL);
  CHECK(strstr(ca_buf_str(&err), "imeout") != NULL ||
        strstr(ca_buf_str(&err), "timed out") != NULL);
  srv.delay_ms = 0;
  server_quiet();
  ca_buf_free(&err);
}

static void test_tail_and_process(void)
{
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16), d = CA_BUF_INIT(4096);
  chatapp_status st;
  ca_cred_provider *p;
  char u[200];
  env en;

  /* nothing configured, the metadata service unreachable: the URI */
  server_reset();
  memset(&en, 0, sizeof en);
  env_set(&en, "CHATAPP_ECS_METADATA_URL", "http://127.0.0.1:1");
  snprintf(u, sizeof u, "%s/creds", url);
  role_creds(&c, CA_CRED_TAIL);
  c.role->ecs_ok = 1;
  c.role->uri = strdup(u);
  c.role->nothing = strdup("no Alibaba Cloud credentials found");
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK && srv.uri == 1);
  if (st || srv.uri != 1)
    fprintf(stderr, "tail: %s (uri %d)\n", ca_buf_str(&err), srv.uri);
  if (p) {
    CHECK(ca_cred_provider_describe(p, &d) == CHATAPP_OK);
    CHECK(strstr(ca_buf_str(&d), "ALIBABA_CLOUD_CREDENTIALS_URI: credentials "
                                 "URI http://127.0.0.1") != NULL);
  }
  ca_cred_provider_free(p);
  /* the metadata service answers: it wins over the URI */
  server_reset();
  memset(&en, 0, sizeof en);
  env_set(&en, "CHATAPP_ECS_METADATA_URL", md);
  role_creds(&c, CA_CRED_TAIL);
  c.role->ecs_ok = 1;
  c.role->uri = strdup(u);
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_OK && srv.uri == 0 && srv.imds_creds == 1);
  ca_cred_provider_free(p);
  /* neither: the "nothing found" message and the metadata service's */
  memset(&en, 0, sizeof en);
  env_set(&en, "CHATAPP_ECS_METADATA_URL", "http://127.0.0.1:1");
  role_creds(&c, CA_CRED_TAIL);
  c.role->ecs_ok = 1;
  c.role->nothing = strdup("no Alibaba Cloud credentials found; looked in:");
  p = make(&c, &en, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS && p == NULL);
  CHECK(strstr(ca_buf_str(&err), "no Alibaba Cloud credentials found"));
  CHECK(strstr(ca_buf_str(&err), "the ECS instance role"));

  /* External: refused unless allowed */
  role_creds(&c, CA_CRED_PROCESS);
  c.role->process = strdup("/bin/echo {}");
  p = make(&c, &(env){{0}, {0}, 0}, &err, &st);
  CHECK(st == CHATAPP_ECREDENTIALS && p == NULL);
  CHECK(strstr(ca_buf_str(&err), "allow_credential_process") != NULL);
  {
    ca_cred_net net;
    memset(&net, 0, sizeof net);
    net.allow_process = 1;
    role_creds(&c, CA_CRED_PROCESS);
    c.role->process = strdup(
      "/bin/sh -c 'printf \"%s\" "
      "\"{\\\"mode\\\":\\\"StsToken\\\",\\\"access_key_id\\\":\\\"STS.p\\\","
      "\\\"access_key_secret\\\":\\\"proc-secret-canary\\\",\\\"sts_token\\\":"
      "\\\"proc-token-canary\\\",\\\"expiration\\\":\\\"2099-01-01T00:00:"
      "00Z\\\"}"
      "\"'");
    ca_buf_reset(&err);
    st = ca_cred_provider_new(&c, &net, &p, &err);
    CHECK(st == CHATAPP_OK);
    if (st)
      fprintf(stderr, "%s\n", ca_buf_str(&err));
    if (p) {
      ca_secrets red = CA_SECRETS_INIT;
      ca_cred_copy cur;
      char e[512];
      memset(&cur, 0, sizeof cur);
      CHECK(ca_cred_provider_sync(p, &cur, &red, e, sizeof e) == CHATAPP_OK);
      CHECK(cur.token && strcmp(cur.token, "proc-token-canary") == 0);
      CHECK(ca_secrets_found(&red, "proc-secret-canary", 18));
      ca_cred_copy_free(&cur);
      ca_secrets_free(&red);
    }
    ca_cred_provider_free(p);
    role_creds(&c, CA_CRED_PROCESS);
    c.role->process = strdup("/bin/false");
    st = ca_cred_provider_new(&c, &net, &p, &err);
    CHECK(st == CHATAPP_ECREDENTIALS && strstr(ca_buf_str(&err), "failed"));
  }
  ca_buf_free(&err);
  ca_buf_free(&d);
}

/* The client signs each attempt with the provider's current credentials:
 * after a refresh, the next attempt carries the new AccessKey id. */
static void test_client(void)
{
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(1 << 16);
  ca_client_config cc;
  ca_client *cl = NULL;
  chatapp_status st;
  ca_cred_provider *p;
  char u[200], e[512], first[64];
  env en;

  server_reset();
  memset(&en, 0, sizeof en);
  snprintf(u, sizeof u, "%s/creds", url);
  role_creds(&c, CA_CRED_URI);
  c.role->uri = strdup(u);
  p = make(&c, &en, &err, &st);
  if (!p)
    return;
  ca_cred_provider_set_clock(p, fake_now, NULL);
  fake_time = time(NULL);
  srv.use_fake = 1;
  memset(&cc, 0, sizeof cc);
  cc.endpoint = url;
  cc.provider = p;
  cc.limiter_path = NULL;
  CHECK(ca_client_new(&cc, &cl, &err) == CHATAPP_OK);
  if (!cl)
    return;
  CHECK(strncmp(ca_client_account(cl), "credentials-uri:", 16) == 0);
  snprintf(first, sizeof first, "%s", cl->ak_id);
  CHECK(strncmp(first, "STS.uri", 7) == 0);
  CHECK(
    ca_secrets_found(ca_client_secrets(cl), cl->secret, strlen(cl->secret)));
  fake_time += 3600;
  CHECK(ca_client_sync_credentials(cl, e, sizeof e) == CHATAPP_OK);
  CHECK(strcmp(first, cl->ak_id) != 0);
  CHECK(ca_secrets_found(ca_client_secrets(cl), cl->token, strlen(cl->token)));
  /* expired and the service down: the attempt is not started */
  srv.fail = 1;
  fake_time += 7200;
  {
    ca_call *call = ca_call_new_api("QueryChatappPhoneNumbers", NULL, 0);
    CHECK(ca_client_perform(cl, &call, 1) == CHATAPP_OK);
    CHECK(call->status == CHATAPP_ECREDENTIALS && call->retryable);
    CHECK(strstr(call->error, "could not be refreshed") != NULL);
    CHECK(call->attempts == 0);
    ca_call_free(call);
  }
  srv.fail = 0;
  ca_client_free(cl);
  ca_buf_free(&err);
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN); /* the fake server answers a client gone */
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 2;
  }
  server_start();
  snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
  snprintf(md, sizeof md, "http://127.0.0.1:%d", srv.port);
  test_parsers();
  test_chain();
  test_ram_role();
  test_oidc();
  test_ecs();
  test_uri_refresh();
  test_tail_and_process();
  test_client();
  server_stop();
  {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
      fprintf(stderr, "could not remove %s\n", tmpdir);
  }
  return test_report("test_cred_provider");
}
