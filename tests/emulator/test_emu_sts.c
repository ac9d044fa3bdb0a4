/*
 * chatapp-emulator: role credentials (issue 17).  STS AssumeRole (signed,
 * chained) and AssumeRoleWithOIDC, every error they answer, the temporary
 * keys they issue working on CAMS calls until they expire
 * (InvalidSecurityToken.Expired), the ECS metadata service with and
 * without tokens (and IMDSv2 only), the credentials URI, fault rules aimed
 * at each endpoint, the per-endpoint statistics (requests in flight at
 * once), the log lines, and that no secret, security token, OIDC token or
 * metadata token reaches the log or standard error.
 *
 * Usage: test_emu_sts EMULATOR
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ca_crypto.h"
#include "harness.h"
#include "test.h"

#define ROLE     "acs:ram::1000000000000001:role/chatapp-test"
#define PROVIDER "acs:ram::1000000000000001:oidc-provider/ack-test"
#define CANARY   "oidc-CANARY-5e1f0c7a9b"
#define FORM     "Content-Type: application/x-www-form-urlencoded"
#define TOKEN_H  "x-aliyun-ecs-metadata-token"
#define TTL_H    "x-aliyun-ecs-metadata-token-ttl-seconds"

typedef struct creds {
  char id[64], secret[64], token[512], exp[32];
} creds;

/* Every secret and token seen, to look for in the log and stderr. */
static char secrets[256][512];
static size_t nsecrets;

static void remember(const char *s)
{
  if (nsecrets < sizeof secrets / sizeof secrets[0])
    snprintf(secrets[nsecrets++], sizeof secrets[0], "%s", s);
}

static long long epoch_of(const char *iso)
{
  struct tm tm;

  memset(&tm, 0, sizeof tm);
  if (!iso || strlen(iso) != 20 ||
      sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon,
             &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (long long)timegm(&tm);
}

/* Credentials from an STS answer (under "Credentials") or a metadata /
 * credentials-URI answer (top level); 0 when all four are there. */
static int creds_of(const http_resp *r, creds *c)
{
  ca_json_doc *d = resp_json(r);
  const ca_json *root = d ? ca_json_root(d) : NULL, *o;
  const char *id, *sec, *tok, *exp;
  int rc = -1;

  memset(c, 0, sizeof *c);
  o = root ? ca_json_get(root, "Credentials") : NULL;
  if (!o)
    o = root;
  id = o ? ca_json_get_str(o, "AccessKeyId") : NULL;
  sec = o ? ca_json_get_str(o, "AccessKeySecret") : NULL;
  tok = o ? ca_json_get_str(o, "SecurityToken") : NULL;
  exp = o ? ca_json_get_str(o, "Expiration") : NULL;
  if (id && sec && tok && exp) {
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->secret, sizeof c->secret, "%s", sec);
    snprintf(c->token, sizeof c->token, "%s", tok);
    snprintf(c->exp, sizeof c->exp, "%s", exp);
    remember(sec);
    remember(tok);
    rc = 0;
  }
  ca_json_free(d);
  return rc;
}

/* AssumeRole signed with akid/secret (token when chained). */
static void assume(const emu_proc *p, const char *akid, const char *secret,
                   const char *token, const ca_kv *params, size_t n,
                   http_resp *r)
{
  call_opts o;

  memset(&o, 0, sizeof o);
  o.action = "AssumeRole";
  o.version = "2015-04-01";
  o.legacy = 1;
  o.form = 1;
  o.akid = akid;
  o.secret = secret;
  o.token = token;
  o.params = params;
  o.nparams = n;
  if (emu_call(p, &o, r) != 0)
    memset(r, 0, sizeof *r);
}

static const ca_kv role_params[] = {
  {"RoleArn", ROLE},
  {"RoleSessionName", "chatapp-test-1"},
};

/* An AssumeRole that must succeed; its credentials in *c. */
static int assume_ok(const emu_proc *p, const char *akid, const char *secret,
                     const char *token, creds *c)
{
  http_resp r;
  int rc;

  assume(p, akid, secret, token, role_params, 2, &r);
  rc = r.status == 200 ? creds_of(&r, c) : -1;
  if (rc)
    fprintf(stderr, "AssumeRole: %ld %s\n", r.status, r.body);
  http_resp_free(&r);
  return rc;
}

/* The Code of a CAMS query signed with c (V3, or legacy). */
static const char *cams(const emu_proc *p, const creds *c, int legacy,
                        long *status)
{
  static char code[128];
  call_opts o;
  http_resp r;

  memset(&o, 0, sizeof o);
  o.akid = c->id;
  o.secret = c->secret;
  o.token = c->token[0] ? c->token : NULL;
  o.legacy = legacy;
  if (emu_call(p, &o, &r) != 0 || r.curl_code != CURLE_OK)
    snprintf(code, sizeof code, "(curl %d)", r.curl_code);
  else
    snprintf(code, sizeof code, "%s", resp_code(&r));
  if (status)
    *status = r.status;
  http_resp_free(&r);
  return code;
}

/* AssumeRoleWithOIDC, anonymous: the form body built from the arguments
 * (NULL leaves a parameter out). */
static void oidc(const emu_proc *p, const char *provider, const char *token,
                 const char *role, const char *session, const char *version,
                 http_resp *r)
{
  ca_buf body = CA_BUF_INIT(1 << 16);
  char path[256], date[21];
  const char *h[] = {FORM, NULL};
  const ca_kv kv[] = {{"OIDCProviderArn", provider},
                      {"OIDCToken", token},
                      {"RoleArn", role},
                      {"RoleSessionName", session}};
  size_t i;

  for (i = 0; i < 4; i++) {
    if (!kv[i].value)
      continue;
    if (body.len)
      ca_buf_addc(&body, '&');
    ca_buf_adds(&body, kv[i].key);
    ca_buf_addc(&body, '=');
    ca_pct_encode(&body, kv[i].value, strlen(kv[i].value));
  }
  ca_iso8601((long long)time(NULL), date);
  snprintf(path, sizeof path,
           "/?Action=AssumeRoleWithOIDC&Format=JSON&Version=%s&Timestamp=%s",
           version ? version : "2015-04-01", date);
  if (http_port(p->port, "POST", path, h, ca_buf_str(&body), body.len, 0, r))
    memset(r, 0, sizeof *r);
  ca_buf_free(&body);
}

static long status_of(unsigned port, const char *method, const char *path,
                      const char *const *h, char *code, size_t codelen)
{
  http_resp r;
  long st;

  http_port(port, method, path, h, NULL, 0, 0, &r);
  st = r.status;
  if (code)
    snprintf(code, codelen, "%s", resp_code(&r));
  http_resp_free(&r);
  return st;
}

static void test_assume_role(const emu_proc *p)
{
  creds c, chained, other;
  http_resp r;
  long st = 0;
  long long now = (long long)time(NULL), exp;

  fprintf(stderr, "AssumeRole\n");
  assume(p, KEY_ID, KEY_SECRET, NULL, role_params, 2, &r);
  CHECK(r.status == 200);
  CHECK(creds_of(&r, &c) == 0);
  CHECK(strstr(r.body, "\"RequestId\"") != NULL);
  CHECK(strstr(r.body, "\"Arn\":\"" ROLE "/chatapp-test-1\"") != NULL);
  CHECK(strstr(r.body, "\"AssumedRoleId\"") != NULL);
  http_resp_free(&r);
  CHECK(strncmp(c.id, "STS.", 4) == 0 && strlen(c.id) > 20);
  CHECK(strlen(c.secret) >= 20 && strlen(c.token) >= 100);
  exp = epoch_of(c.exp);
  CHECK(exp >= now + 3600 - 5 && exp <= now + 3600 + 5); /* default 1 h */
  /* The key works on CAMS, V3 and legacy, only with its own token. */
  CHECK_STR(cams(p, &c, 0, &st), "OK");
  CHECK(st == 200);
  CHECK_STR(cams(p, &c, 1, NULL), "OK");
  other = c;
  other.token[0] = '\0';
  CHECK_STR(cams(p, &other, 0, NULL), "MissingSecurityToken");
  snprintf(other.secret, sizeof other.secret, "wrong-secret");
  snprintf(other.token, sizeof other.token, "%s", c.token);
  CHECK_STR(cams(p, &other, 0, NULL), "SignatureDoesNotMatch");
  /* Chained: the temporary key assumes the role again (SecurityToken). */
  CHECK(assume_ok(p, c.id, c.secret, c.token, &chained) == 0);
  CHECK(strcmp(chained.id, c.id) != 0);
  CHECK(strcmp(chained.secret, c.secret) != 0);
  CHECK_STR(cams(p, &chained, 0, NULL), "OK");
  /* A token of another issued key. */
  other = chained;
  snprintf(other.token, sizeof other.token, "%s", c.token);
  CHECK_STR(cams(p, &other, 0, NULL),
            "InvalidSecurityToken.MismatchWithAccessKey");
  assume(p, c.id, c.secret, NULL, role_params, 2, &r);
  CHECK_STR(resp_code(&r), "MissingSecurityToken");
  http_resp_free(&r);
  /* The built-in STS key of the role's account may assume it too. */
  CHECK(assume_ok(p, STS_ID, STS_SECRET, STS_TOKEN, &other) == 0);
  /* DurationSeconds sets the lifetime (no --sts-lifetime here). */
  {
    const ca_kv kv[] = {{"RoleArn", ROLE},
                        {"RoleSessionName", "dur"},
                        {"DurationSeconds", "1000"},
                        {"Policy", "{\"Version\":\"1\",\"Statement\":[]}"}};
    assume(p, KEY_ID, KEY_SECRET, NULL, kv, 4, &r);
    CHECK(r.status == 200);
    CHECK(creds_of(&r, &other) == 0);
    exp = epoch_of(other.exp);
    CHECK(exp >= now + 1000 - 5 && exp <= now + 1000 + 5);
    http_resp_free(&r);
  }
}

/* One AssumeRole with changed parameters: its status and Code. */
static void expect_assume(const emu_proc *p, const ca_kv *kv, size_t n,
                          long status, const char *code)
{
  http_resp r;

  assume(p, KEY_ID, KEY_SECRET, NULL, kv, n, &r);
  if (r.status != status || strcmp(resp_code(&r), code) != 0)
    fprintf(stderr, "  expected %ld %s, got %ld %s\n", status, code, r.status,
            r.body);
  CHECK(r.status == status);
  CHECK_STR(resp_code(&r), code);
  if (r.status == 400 || r.status == 403) {
    CHECK(strstr(r.body, "\"HostId\":\"sts.aliyuncs.com\"") != NULL);
    CHECK(strstr(r.body, "\"Message\"") != NULL);
  }
  http_resp_free(&r);
}

static void test_assume_role_errors(const emu_proc *p)
{
  char long_name[70];
  http_resp r;
  call_opts o;

  fprintf(stderr, "AssumeRole errors\n");
  {
    const ca_kv kv[] = {{"RoleArn", "acs:ram::1000000000000001:role/nope"},
                        {"RoleSessionName", "s1"}};
    expect_assume(p, kv, 2, 403, "NoPermission");
  }
  {
    const ca_kv kv[] = {{"RoleSessionName", "s1"}};
    expect_assume(p, kv, 1, 400, "MissingParameter");
  }
  {
    const ca_kv kv[] = {{"RoleArn", ROLE}};
    expect_assume(p, kv, 1, 400, "MissingParameter");
  }
  {
    const ca_kv kv[] = {{"RoleArn", ROLE}, {"RoleSessionName", "a"}};
    expect_assume(p, kv, 2, 400, "InvalidParameter.RoleSessionName");
  }
  {
    const ca_kv kv[] = {{"RoleArn", ROLE}, {"RoleSessionName", "bad*name"}};
    expect_assume(p, kv, 2, 400, "InvalidParameter.RoleSessionName");
  }
  memset(long_name, 'x', 65);
  long_name[65] = '\0';
  {
    const ca_kv kv[] = {{"RoleArn", ROLE}, {"RoleSessionName", long_name}};
    expect_assume(p, kv, 2, 400, "InvalidParameter.RoleSessionName");
    long_name[64] = '\0'; /* 64: the longest allowed */
    expect_assume(p, kv, 2, 200, "");
  }
  {
    const ca_kv kv[] = {{"RoleArn", ROLE},
                        {"RoleSessionName", "a.b@c_d-e"},
                        {"DurationSeconds", "899"}};
    expect_assume(p, kv, 3, 400, "InvalidParameter.DurationSeconds");
  }
  {
    const ca_kv kv[] = {{"RoleArn", ROLE},
                        {"RoleSessionName", "a.b@c_d-e"},
                        {"DurationSeconds", "12x"}};
    expect_assume(p, kv, 3, 400, "InvalidParameter.DurationSeconds");
  }
  {
    const ca_kv kv[] = {
      {"RoleArn", ROLE}, {"RoleSessionName", "s1"}, {"Policy", "not json"}};
    expect_assume(p, kv, 3, 400, "InvalidParameter.PolicyGrammar");
  }
  /* The other account's key may not assume account 1's role. */
  assume(p, KEY2_ID, KEY2_SECRET, NULL, role_params, 2, &r);
  CHECK(r.status == 403);
  CHECK_STR(resp_code(&r), "NoPermission");
  http_resp_free(&r);
  /* Signature checks, as for CAMS calls. */
  assume(p, "LTAInoSuchKey", "x", NULL, role_params, 2, &r);
  CHECK(r.status == 404);
  CHECK_STR(resp_code(&r), "InvalidAccessKeyId.NotFound");
  http_resp_free(&r);
  memset(&o, 0, sizeof o);
  o.action = "AssumeRole";
  o.version = "2015-04-01";
  o.legacy = 1;
  o.form = 1;
  o.params = role_params;
  o.nparams = 2;
  o.tamper = 1;
  emu_call(p, &o, &r);
  CHECK(r.status == 400);
  CHECK_STR(resp_code(&r), "SignatureDoesNotMatch");
  CHECK(strstr(r.body, "string to sign") != NULL);
  http_resp_free(&r);
  o.tamper = 0;
  o.nonce = "0123456789abcdef0123456789abcdef";
  emu_call(p, &o, &r);
  CHECK(r.status == 200);
  http_resp_free(&r);
  emu_call(p, &o, &r);
  CHECK_STR(resp_code(&r), "SignatureNonceUsed");
  http_resp_free(&r);
  o.nonce = NULL;
  o.ts_offset_s = -3600;
  emu_call(p, &o, &r);
  CHECK_STR(resp_code(&r), "InvalidTimeStamp.Expired");
  http_resp_free(&r);
  o.ts_offset_s = 0;
  o.version = "2020-06-06";
  emu_call(p, &o, &r);
  CHECK_STR(resp_code(&r), "InvalidVersion");
  http_resp_free(&r);
  /* named by the x-acs-action header, with a query that does not decode */
  {
    const char *h[] = {"x-acs-action: AssumeRole", NULL};
    emu_raw(p, "POST", "/?RoleArn=%zz", h, "", 0, &r);
    CHECK(r.status == 400);
    CHECK_STR(resp_code(&r), "InvalidParameter");
    http_resp_free(&r);
  }
}

static void test_oidc(const emu_proc *p)
{
  http_resp r;
  creds c;

  fprintf(stderr, "AssumeRoleWithOIDC\n");
  oidc(p, PROVIDER, CANARY, ROLE, "pod-1", NULL, &r);
  CHECK(r.status == 200);
  CHECK(creds_of(&r, &c) == 0);
  CHECK(strstr(r.body, "\"OIDCTokenInfo\"") != NULL);
  CHECK(strstr(r.body, "\"AssumedRoleUser\"") != NULL);
  CHECK(strstr(r.body, CANARY) == NULL);
  http_resp_free(&r);
  CHECK(strncmp(c.id, "STS.", 4) == 0);
  CHECK_STR(cams(p, &c, 0, NULL), "OK");
  CHECK_STR(cams(p, &c, 1, NULL), "OK");

  oidc(p, PROVIDER, "not-the-token", ROLE, "pod-1", NULL, &r);
  CHECK(r.status == 401);
  CHECK_STR(resp_code(&r), "AuthenticationFail.OIDCToken.Invalid");
  http_resp_free(&r);
  oidc(p, PROVIDER, NULL, ROLE, "pod-1", NULL, &r);
  CHECK(r.status == 401);
  CHECK_STR(resp_code(&r), "AuthenticationFail.OIDCToken.Invalid");
  http_resp_free(&r);
  oidc(p, "acs:ram::1000000000000001:oidc-provider/other", CANARY, ROLE,
       "pod-1", NULL, &r);
  CHECK(r.status == 401);
  CHECK_STR(resp_code(&r), "AuthenticationFail.NoPermission");
  http_resp_free(&r);
  oidc(p, NULL, CANARY, ROLE, "pod-1", NULL, &r);
  CHECK(r.status == 400);
  CHECK_STR(resp_code(&r), "MissingParameter");
  http_resp_free(&r);
  oidc(p, PROVIDER, CANARY, "acs:ram::1000000000000001:role/x", "pod-1", NULL,
       &r);
  CHECK(r.status == 403);
  CHECK_STR(resp_code(&r), "NoPermission");
  http_resp_free(&r);
  oidc(p, PROVIDER, CANARY, ROLE, NULL, NULL, &r);
  CHECK_STR(resp_code(&r), "MissingParameter");
  http_resp_free(&r);
  oidc(p, PROVIDER, CANARY, ROLE, "x", NULL, &r);
  CHECK_STR(resp_code(&r), "InvalidParameter.RoleSessionName");
  http_resp_free(&r);
  oidc(p, PROVIDER, CANARY, ROLE, "pod-1", "2020-06-06", &r);
  CHECK_STR(resp_code(&r), "InvalidVersion");
  http_resp_free(&r);
}

/* The metadata service without --imds-require-token. */
static void test_metadata(const emu_proc *p, unsigned mport)
{
  const char *ttl[] = {TTL_H ": 21600", NULL};
  char tokh[200], code[128];
  const char *with[] = {tokh, NULL};
  const char *bad[] = {TOKEN_H ": AQAEAnotatoken", NULL};
  http_resp r;
  creds c;

  fprintf(stderr, "metadata service\n");
  http_port(mport, "PUT", "/latest/api/token", ttl, NULL, 0, 0, &r);
  CHECK(r.status == 200);
  CHECK(r.len >= 20 && !strchr(r.body, '\n') && !strchr(r.body, ' '));
  remember(r.body);
  snprintf(tokh, sizeof tokh, TOKEN_H ": %s", r.body);
  http_resp_free(&r);
  /* with a token */
  http_port(mport, "GET", "/latest/meta-data/ram/security-credentials/", with,
            NULL, 0, 0, &r);
  CHECK(r.status == 200);
  CHECK_STR(r.body, "chatapp-ecs-role");
  http_resp_free(&r);
  http_port(mport, "GET",
            "/latest/meta-data/ram/security-credentials/chatapp-ecs-role", with,
            NULL, 0, 0, &r);
  CHECK(r.status == 200);
  CHECK(creds_of(&r, &c) == 0);
  CHECK(strstr(r.body, "\"Code\":\"Success\"") != NULL);
  CHECK(strstr(r.body, "\"LastUpdated\"") != NULL);
  http_resp_free(&r);
  CHECK_STR(cams(p, &c, 0, NULL), "OK");
  /* without one (IMDSv1 allowed by default) */
  CHECK(status_of(mport, "GET", "/latest/meta-data/ram/security-credentials/",
                  NULL, NULL, 0) == 200);
  http_port(mport, "GET",
            "/latest/meta-data/ram/security-credentials/chatapp-ecs-role", NULL,
            NULL, 0, 0, &r);
  CHECK(r.status == 200);
  CHECK(creds_of(&r, &c) == 0);
  http_resp_free(&r);
  /* a bad token is refused even though none is required */
  CHECK(status_of(mport, "GET",
                  "/latest/meta-data/ram/security-credentials/chatapp-ecs-role",
                  bad, NULL, 0) == 401);
  CHECK(status_of(mport, "GET", "/latest/meta-data/ram/security-credentials/",
                  bad, NULL, 0) == 401);
  /* the token request's rules */
  CHECK(status_of(mport, "PUT", "/latest/api/token", NULL, NULL, 0) == 400);
  {
    const char *t0[] = {TTL_H ": 0", NULL};
    const char *tbig[] = {TTL_H ": 21601", NULL};
    const char *tx[] = {TTL_H ": 60s", NULL};
    CHECK(status_of(mport, "PUT", "/latest/api/token", t0, NULL, 0) == 400);
    CHECK(status_of(mport, "PUT", "/latest/api/token", tbig, NULL, 0) == 400);
    CHECK(status_of(mport, "PUT", "/latest/api/token", tx, NULL, 0) == 400);
    CHECK(status_of(mport, "GET", "/latest/api/token", ttl, NULL, 0) == 405);
  }
  /* another role name, another path */
  CHECK(status_of(mport, "GET",
                  "/latest/meta-data/ram/security-credentials/other-role", with,
                  code, sizeof code) == 404);
  CHECK(status_of(mport, "GET", "/latest/meta-data/instance-id", NULL, NULL,
                  0) == 404);
  /* a token that expired */
  {
    const char *t1[] = {TTL_H ": 1", NULL};
    http_port(mport, "PUT", "/latest/api/token", t1, NULL, 0, 0, &r);
    CHECK(r.status == 200);
    remember(r.body);
    snprintf(tokh, sizeof tokh, TOKEN_H ": %s", r.body);
    http_resp_free(&r);
    CHECK(status_of(mport, "GET", "/latest/meta-data/ram/security-credentials/",
                    with, NULL, 0) == 200);
    usleep(1200 * 1000);
    CHECK(status_of(mport, "GET", "/latest/meta-data/ram/security-credentials/",
                    with, NULL, 0) == 401);
  }
}

/* The credentials URI on the API port. */
static void test_credentials_uri(const emu_proc *p)
{
  http_resp r;
  creds c;

  fprintf(stderr, "credentials URI\n");
  emu_http(p, "GET", "/_emulator/credentials", NULL, &r);
  CHECK(r.status == 200);
  CHECK(creds_of(&r, &c) == 0);
  CHECK(strstr(r.body, "\"Code\":\"Success\"") != NULL);
  http_resp_free(&r);
  CHECK_STR(cams(p, &c, 0, NULL), "OK");
  emu_http(p, "POST", "/_emulator/credentials", "", &r);
  CHECK(r.status == 405);
  http_resp_free(&r);
}

/* --sts-lifetime 2, --imds-require-token: keys expire, tokens needed. */
static void test_expiry(const emu_proc *q, unsigned mport)
{
  const char *ttl[] = {TTL_H ": 60", NULL};
  char tokh[200];
  const char *with[] = {tokh, NULL};
  creds c, m, u, chained;
  http_resp r;
  long st = 0;
  long long now = (long long)time(NULL), exp;
  struct timespec ts;

  fprintf(stderr, "expiry (--sts-lifetime 2), IMDSv2 only\n");
  {
    const ca_kv kv[] = {{"RoleArn", ROLE},
                        {"RoleSessionName", "short"},
                        {"DurationSeconds", "3600"}};
    assume(q, KEY_ID, KEY_SECRET, NULL, kv, 3, &r);
    CHECK(r.status == 200);
    CHECK(creds_of(&r, &c) == 0);
    http_resp_free(&r);
  }
  exp = epoch_of(c.exp);
  CHECK(exp >= now + 1 && exp <= now + 3); /* overrides DurationSeconds */
  CHECK_STR(cams(q, &c, 0, NULL), "OK");
  CHECK(assume_ok(q, c.id, c.secret, c.token, &chained) == 0);
  /* metadata: a token is required */
  CHECK(status_of(mport, "GET",
                  "/latest/meta-data/ram/security-credentials/chatapp-ecs-role",
                  NULL, NULL, 0) == 401);
  CHECK(status_of(mport, "GET", "/latest/meta-data/ram/security-credentials/",
                  NULL, NULL, 0) == 401);
  http_port(mport, "PUT", "/latest/api/token", ttl, NULL, 0, 0, &r);
  CHECK(r.status == 200);
  remember(r.body);
  snprintf(tokh, sizeof tokh, TOKEN_H ": %s", r.body);
  http_resp_free(&r);
  http_port(mport, "GET",
            "/latest/meta-data/ram/security-credentials/chatapp-ecs-role", with,
            NULL, 0, 0, &r);
  CHECK(r.status == 200);
  CHECK(creds_of(&r, &m) == 0);
  http_resp_free(&r);
  emu_http(q, "GET", "/_emulator/credentials", NULL, &r);
  CHECK(creds_of(&r, &u) == 0);
  http_resp_free(&r);
  CHECK_STR(cams(q, &m, 1, NULL), "OK");
  CHECK_STR(cams(q, &u, 0, NULL), "OK");
  /* wait past the latest Expiration, then every one of them is refused */
  exp = epoch_of(u.exp) > exp ? epoch_of(u.exp) : exp;
  if (epoch_of(m.exp) > exp)
    exp = epoch_of(m.exp);
  if (epoch_of(chained.exp) > exp)
    exp = epoch_of(chained.exp);
  for (;;) {
    clock_gettime(CLOCK_REALTIME, &ts);
    if ((long long)ts.tv_sec >= exp && ts.tv_nsec > 200000000L)
      break;
    usleep(50 * 1000);
  }
  CHECK_STR(cams(q, &c, 0, &st), "InvalidSecurityToken.Expired");
  CHECK(st == 400);
  CHECK_STR(cams(q, &c, 1, NULL), "InvalidSecurityToken.Expired");
  CHECK_STR(cams(q, &m, 0, NULL), "InvalidSecurityToken.Expired");
  CHECK_STR(cams(q, &u, 0, NULL), "InvalidSecurityToken.Expired");
  CHECK_STR(cams(q, &chained, 0, NULL), "InvalidSecurityToken.Expired");
  assume(q, c.id, c.secret, c.token, role_params, 2, &r);
  CHECK_STR(resp_code(&r), "InvalidSecurityToken.Expired");
  http_resp_free(&r);
  /* a fresh one works again */
  CHECK(assume_ok(q, KEY_ID, KEY_SECRET, NULL, &c) == 0);
  CHECK_STR(cams(q, &c, 0, NULL), "OK");
  /* until the control endpoint expires every key at once */
  emu_http(q, "POST", "/_emulator/credentials/expire", "", &r);
  CHECK(r.status == 200);
  CHECK(strstr(r.body, "\"expired\":1") != NULL);
  http_resp_free(&r);
  CHECK_STR(cams(q, &c, 0, NULL), "InvalidSecurityToken.Expired");
  emu_http(q, "GET", "/_emulator/credentials/expire", NULL, &r);
  CHECK(r.status == 405);
  http_resp_free(&r);
}

static int add_fault(const emu_proc *p, const char *json)
{
  http_resp r;
  int ok;

  emu_http(p, "POST", "/_emulator/faults", json, &r);
  ok = r.status == 200;
  if (!ok)
    fprintf(stderr, "fault %s: %ld %s\n", json, r.status, r.body);
  http_resp_free(&r);
  return ok;
}

static void test_faults(const emu_proc *p, unsigned mport)
{
  const char *ttl[] = {TTL_H ": 60", NULL};
  http_resp r;
  creds c;
  ca_json_doc *d;

  fprintf(stderr, "faults on the credential endpoints\n");
  /* malformed STS answer */
  CHECK(add_fault(p, "{\"kind\":\"malformed\",\"op\":\"AssumeRole\","
                     "\"next\":1}"));
  assume(p, KEY_ID, KEY_SECRET, NULL, role_params, 2, &r);
  CHECK(r.status == 200);
  d = resp_json(&r);
  CHECK(d == NULL);
  ca_json_free(d);
  http_resp_free(&r);
  CHECK(assume_ok(p, KEY_ID, KEY_SECRET, NULL, &c) == 0); /* next only */
  /* an error status on every metadata endpoint ("metadata" = all) */
  CHECK(add_fault(p, "{\"kind\":\"error\",\"op\":\"metadata\",\"code\":"
                     "\"InternalError\",\"next\":2}"));
  CHECK(status_of(mport, "PUT", "/latest/api/token", ttl, NULL, 0) == 500);
  CHECK(status_of(mport, "GET",
                  "/latest/meta-data/ram/security-credentials/chatapp-ecs-role",
                  NULL, NULL, 0) == 500);
  CHECK(status_of(mport, "PUT", "/latest/api/token", ttl, NULL, 0) == 200);
  /* one endpoint only */
  CHECK(add_fault(p, "{\"kind\":\"error\",\"op\":\"metadata.credentials\","
                     "\"code\":\"ServiceUnavailable\",\"next\":1}"));
  CHECK(status_of(mport, "GET", "/latest/meta-data/ram/security-credentials/",
                  NULL, NULL, 0) == 200);
  CHECK(status_of(mport, "GET",
                  "/latest/meta-data/ram/security-credentials/chatapp-ecs-role",
                  NULL, NULL, 0) == 503);
  /* latency, for timeouts */
  CHECK(add_fault(p, "{\"kind\":\"latency\",\"op\":\"credentials\","
                     "\"ms\":300,\"next\":1}"));
  emu_http(p, "GET", "/_emulator/credentials", NULL, &r);
  CHECK(r.status == 200);
  CHECK(r.seconds >= 0.29);
  http_resp_free(&r);
  /* a hang: the client times out */
  CHECK(add_fault(p, "{\"kind\":\"hang\",\"op\":\"AssumeRoleWithOIDC\","
                     "\"next\":1}"));
  {
    const char *h[] = {FORM, NULL};
    char path[200], date[21], body[512];
    ca_iso8601((long long)time(NULL), date);
    snprintf(path, sizeof path,
             "/?Action=AssumeRoleWithOIDC&Version=2015-04-01&Timestamp=%s",
             date);
    snprintf(body, sizeof body,
             "OIDCProviderArn=%s&OIDCToken=%s&RoleArn=%s&RoleSessionName=p1",
             PROVIDER, CANARY, ROLE);
    http_port(p->port, "POST", path, h, body, strlen(body), 400, &r);
    if (r.curl_code != CURLE_OPERATION_TIMEDOUT)
      fprintf(stderr, "  hang: curl %d, %ld %s\n", r.curl_code, r.status,
              r.body);
    CHECK(r.curl_code == CURLE_OPERATION_TIMEDOUT);
    http_resp_free(&r);
  }
  /* a dropped connection */
  CHECK(add_fault(p, "{\"kind\":\"reset\",\"op\":\"credentials\","
                     "\"after_bytes\":10,\"next\":1}"));
  emu_http(p, "GET", "/_emulator/credentials", NULL, &r);
  CHECK(r.curl_code != CURLE_OK);
  http_resp_free(&r);
  /* a rule without op hits CAMS calls, not the credential endpoints */
  CHECK(add_fault(p, "{\"kind\":\"error\",\"code\":\"ServiceUnavailable\"}"));
  emu_http(p, "GET", "/_emulator/credentials", NULL, &r);
  CHECK(r.status == 200);
  http_resp_free(&r);
  CHECK(assume_ok(p, KEY_ID, KEY_SECRET, NULL, &c) == 0);
  CHECK_STR(cams(p, &c, 0, NULL), "ServiceUnavailable");
  emu_http(p, "DELETE", "/_emulator/faults", NULL, &r);
  http_resp_free(&r);
  CHECK_STR(cams(p, &c, 0, NULL), "OK");
}

/* The statistics of endpoint name: member key. */
static long long stat_of(const emu_proc *p, const char *name, const char *key)
{
  http_resp r;
  ca_json_doc *d;
  const ca_json *o;
  long long v = -1;

  emu_http(p, "GET", "/_emulator/stats", NULL, &r);
  d = resp_json(&r);
  o = d ? ca_json_get(ca_json_root(d), "credentials") : NULL;
  o = o ? ca_json_get(o, name) : NULL;
  o = o ? ca_json_get(o, key) : NULL;
  if (o && o->type == CA_JSON_NUMBER)
    v = (long long)o->num;
  ca_json_free(d);
  http_resp_free(&r);
  return v;
}

static void *assume_thread(void *arg)
{
  const emu_proc *p = arg;
  creds c;

  return (void *)(intptr_t)assume_ok(p, KEY_ID, KEY_SECRET, NULL, &c);
}

static void test_stats(const emu_proc *p)
{
  http_resp r;
  pthread_t t[3];
  void *rv;
  creds c;
  int i;

  fprintf(stderr, "statistics\n");
  emu_http(p, "POST", "/_emulator/reset", "", &r);
  http_resp_free(&r);
  CHECK(stat_of(p, "AssumeRole", "requests") == 0);
  CHECK(assume_ok(p, KEY_ID, KEY_SECRET, NULL, &c) == 0);
  CHECK(assume_ok(p, KEY_ID, KEY_SECRET, NULL, &c) == 0);
  oidc(p, PROVIDER, "wrong", ROLE, "s1", NULL, &r);
  http_resp_free(&r);
  emu_http(p, "GET", "/_emulator/credentials", NULL, &r);
  http_resp_free(&r);
  CHECK(stat_of(p, "AssumeRole", "requests") == 2);
  CHECK(stat_of(p, "AssumeRole", "ok") == 2);
  CHECK(stat_of(p, "AssumeRole", "in_flight_max") == 1); /* one at a time */
  CHECK(stat_of(p, "AssumeRoleWithOIDC", "rejected") == 1);
  CHECK(stat_of(p, "credentials", "ok") == 1);
  CHECK(stat_of(p, "metadata.token", "requests") == 0);
  /* three at once, held 400 ms each: seen in flight together */
  CHECK(add_fault(p, "{\"kind\":\"latency\",\"op\":\"AssumeRole\","
                     "\"ms\":400}"));
  for (i = 0; i < 3; i++)
    pthread_create(&t[i], NULL, assume_thread, (void *)(uintptr_t)p);
  for (i = 0; i < 3; i++) {
    pthread_join(t[i], &rv);
    CHECK(rv == NULL);
  }
  CHECK(stat_of(p, "AssumeRole", "in_flight_max") == 3);
  CHECK(stat_of(p, "AssumeRole", "in_flight") == 0);
  CHECK(stat_of(p, "AssumeRole", "requests") == 5);
  emu_http(p, "DELETE", "/_emulator/faults", NULL, &r);
  http_resp_free(&r);
}

/* Log lines per request; no secret or token in the log or stderr. */
static void test_log_and_secrets(emu_proc *p, emu_proc *q)
{
  size_t n, i, j, sts = 0, meta = 0, uri = 0, undecoded = 0;
  char **lines = read_log(p, &n);
  FILE *f;
  char buf[65536];
  size_t got;

  fprintf(stderr, "log lines, secrets (%zu to look for)\n", nsecrets);
  for (i = 0; i < n; i++) {
    ca_json_doc *d = ca_json_parse(lines[i], strlen(lines[i]), 16, 0, NULL, 0);
    const ca_json *root = d ? ca_json_root(d) : NULL;
    const char *ep = root ? ca_json_get_str(root, "endpoint") : NULL;
    const char *op = root ? ca_json_get_str(root, "op") : NULL;
    CHECK(d != NULL);
    if (ep && strcmp(ep, "sts") == 0 && op && strcmp(op, "AssumeRole") == 0 &&
        strcmp(ca_json_get_str(root, "verdict"), "accepted") == 0) {
      const char *issued = ca_json_get_str(root, "issued_access_key_id");
      CHECK(ca_json_get_str(root, "access_key_id") != NULL);
      CHECK(issued && strncmp(issued, "STS.", 4) == 0);
      sts++;
    }
    if (ep && strcmp(ep, "sts") == 0 && op && strcmp(op, "AssumeRole") == 0 &&
        strcmp(ca_json_get_str(root, "scheme"), "none") == 0 &&
        strcmp(ca_json_get_str(root, "code"), "InvalidParameter") == 0)
      undecoded++; /* rejected before any signature check */
    if (ep && strcmp(ep, "metadata") == 0)
      meta++;
    if (ep && strcmp(ep, "credentials") == 0)
      uri++;
    ca_json_free(d);
  }
  CHECK(sts >= 5);
  CHECK(meta >= 10);
  CHECK(uri >= 3);
  CHECK(undecoded == 1);
  /* and the canaries */
  for (j = 0; j < 2; j++) {
    emu_proc *e = j ? q : p;
    if (j) {
      free_lines(lines, n);
      lines = read_log(e, &n);
    }
    for (i = 0; i < n; i++) {
      size_t k;
      CHECK(strstr(lines[i], CANARY) == NULL);
      for (k = 0; k < nsecrets; k++)
        if (strstr(lines[i], secrets[k])) {
          fprintf(stderr, "log holds a secret: %s\n", lines[i]);
          CHECK(0);
        }
    }
  }
  free_lines(lines, n);
  CHECK(emu_stop(p) == 0);
  CHECK(emu_stop(q) == 0);
  for (j = 0; j < 2; j++) {
    size_t k;
    f = fopen(j ? q->stderr_path : p->stderr_path, "r");
    CHECK(f != NULL);
    if (!f)
      continue;
    got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = '\0';
    fclose(f);
    CHECK(strstr(buf, "metadata service on 127.0.0.1:") != NULL);
    CHECK(strstr(buf, CANARY) == NULL);
    for (k = 0; k < nsecrets; k++)
      CHECK(strstr(buf, secrets[k]) == NULL);
  }
}

static unsigned read_port(const char *path)
{
  FILE *f = fopen(path, "r");
  unsigned port = 0;

  if (f) {
    if (fscanf(f, "%u", &port) != 1)
      port = 0;
    fclose(f);
  }
  return port;
}

int main(int argc, char **argv)
{
  emu_proc p, q;
  char mfile[300], qfile[300];
  unsigned mport, qport;
  int rc;
  const char *args[] = {"--metadata-port",
                        "0",
                        "--metadata-port-file",
                        mfile,
                        "--oidc-token",
                        CANARY,
                        NULL};
  const char *qargs[] = {"--metadata-port", "0", "--metadata-port-file", qfile,
                         "--sts-lifetime",  "2", "--imds-require-token", NULL};

  snprintf(mfile, sizeof mfile, "%s/mport-a", scratch_dir());
  snprintf(qfile, sizeof qfile, "%s/mport-b", scratch_dir());
  emu_stderr_to_file = 1; /* with the banner: no -q */
  if ((rc = harness_main(argc, argv, 2, "EMULATOR", args, &p)) != 0)
    return rc;
  if (emu_start(&q, qargs) != 0) {
    fprintf(stderr, "the second emulator did not start\n");
    emu_stop(&p);
    return 1;
  }
  mport = read_port(mfile);
  qport = read_port(qfile);
  CHECK(mport > 0 && qport > 0 && mport != p.port && qport != q.port);
  test_assume_role(&p);
  test_assume_role_errors(&p);
  test_oidc(&p);
  test_metadata(&p, mport);
  test_credentials_uri(&p);
  test_expiry(&q, qport);
  test_faults(&p, mport);
  test_stats(&p);
  test_log_and_secrets(&p, &q);
  return test_report("test_emu_sts");
}
