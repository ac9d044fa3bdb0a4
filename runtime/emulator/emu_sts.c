/*
 * emu_sts.c: STS, so clients' RAM role and OIDC (RRSA) providers can be
 * tested end to end (the pipeline of a request: emu_cred.c; the keys it
 * issues: emu_sts_keys.c):
 *
 *   STS AssumeRole          POST / Action=AssumeRole, Version=2015-04-01,
 *                           signed (RPC HMAC-SHA1, checked by emu_verify.c
 *                           like a CAMS call: key, token, timestamp, nonce);
 *                           RoleArn, RoleSessionName, DurationSeconds,
 *                           Policy, ExternalId
 *   STS AssumeRoleWithOIDC  POST / Action=AssumeRoleWithOIDC, anonymous;
 *                           OIDCProviderArn, OIDCToken (= --oidc-token),
 *                           RoleArn, RoleSessionName, DurationSeconds
 */
#include "emu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- STS ---------------------------------------------------------------- */

/* Query and form body into out; -1 for bad encoding. */
static int request_params(const emu_request *rq, emu_kvs *out)
{
  const char *q = strchr(rq->raw_uri, '?');
  const char *ctype = emu_kvs_geti(&rq->headers, "content-type");

  if (q && emu_parse_urlencoded(q + 1, strlen(q + 1), out) != 0)
    return -1;
  if (ctype &&
      strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0 &&
      emu_parse_urlencoded(ca_buf_str(&rq->body), rq->body.len, out) != 0)
    return -1;
  return 0;
}

static int is_sts_action(const char *a)
{
  return a &&
         (strcmp(a, "AssumeRole") == 0 || strcmp(a, "AssumeRoleWithOIDC") == 0);
}

int emu_sts_is_call(const emu_request *rq)
{
  emu_kvs p = {0};
  size_t plen = strcspn(rq->raw_uri, "?");
  int r;

  if (plen != 1 || rq->raw_uri[0] != '/')
    return 0;
  if (is_sts_action(emu_kvs_geti(&rq->headers, "x-acs-action")))
    return 1;
  if (rq->body_too_big)
    return 0;
  r = request_params(rq, &p) == 0 && is_sts_action(emu_kvs_get(&p, "Action"));
  emu_kvs_free(&p);
  return r;
}

static int role_known(const char *arn)
{
  return arn && strcmp(arn, EMU_ROLE_ARN) == 0;
}

/* RoleSessionName: 2-64 of [A-Za-z0-9.@_-]. */
static int session_name_ok(const char *s)
{
  size_t n = strlen(s), i;

  if (n < 2 || n > 64)
    return 0;
  for (i = 0; i < n; i++) {
    char ch = s[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '.' || ch == '@' || ch == '_' ||
          ch == '-'))
      return 0;
  }
  return 1;
}

/* The role parameters both STS actions share. */
static void check_role_params(emu_cred_ctx *c, const emu_kvs *p)
{
  const char *arn = emu_kvs_get(p, "RoleArn");
  const char *sess = emu_kvs_get(p, "RoleSessionName");
  const char *dur = emu_kvs_get(p, "DurationSeconds");
  const char *pol = emu_kvs_get(p, "Policy");
  const char *ext = emu_kvs_get(p, "ExternalId");

  c->role = arn;
  c->session = sess;
  if (!arn || !*arn) {
    emu_cred_reject(c, 400, "MissingParameter",
                    "The input parameter \"RoleArn\" that is mandatory for "
                    "processing this request is not supplied.");
    return;
  }
  if (!role_known(arn)) {
    emu_cred_reject(
      c, 403, "NoPermission",
      "No permission perform sts:AssumeRole on this Role. Maybe the "
      "role is not exist or your account has no permission to assume "
      "this role (the emulator knows only " EMU_ROLE_ARN ").");
    return;
  }
  if (!sess || !*sess) {
    emu_cred_reject(
      c, 400, "MissingParameter",
      "The input parameter \"RoleSessionName\" that is mandatory for "
      "processing this request is not supplied.");
    return;
  }
  if (!session_name_ok(sess)) {
    emu_cred_reject(c, 400, "InvalidParameter.RoleSessionName",
                    "The parameter RoleSessionName is wrongly formed: 2 to 64 "
                    "characters of A-Z a-z 0-9 . @ _ -.");
    return;
  }
  if (dur) {
    char *end;
    long long v;
    errno = 0;
    v = strtoll(dur, &end, 10);
    if (!*dur || *end || errno || v < 900 || v > EMU_STS_MAX_LIFE) {
      emu_cred_reject(c, 400, "InvalidParameter.DurationSeconds",
                      "The Min/Max value of DurationSeconds is 15min/%dhr.",
                      EMU_STS_MAX_LIFE / 3600);
      return;
    }
    c->duration = v;
  }
  if (pol) {
    ca_json_doc *d = *pol && strlen(pol) <= 2048
                       ? ca_json_parse(pol, strlen(pol), 16, 0, NULL, 0)
                       : NULL;
    int ok = d && ca_json_root(d)->type == CA_JSON_OBJECT;
    ca_json_free(d);
    if (!ok) {
      emu_cred_reject(
        c, 400, "InvalidParameter.PolicyGrammar",
        "The parameter Policy has not passed grammar check (a JSON "
        "object of 1 to 2048 characters).");
      return;
    }
  }
  if (ext && (strlen(ext) < 2 || strlen(ext) > 1224))
    emu_cred_reject(c, 400, "InvalidParameter.ExternalId",
                    "The parameter ExternalId is wrongly formed (2 to 1224 "
                    "characters).");
}

static chatapp_status build_sts(emu *e, emu_cred_ctx *c, const char *rid,
                                emu_answer *a)
{
  emu_key *k = NULL;
  chatapp_status st;

  st = emu_sts_issue(e, EMU_ROLE_ACCOUNT, emu_sts_lifetime(e, c->duration), &k);
  if (st)
    return st;
  snprintf(c->issued, sizeof c->issued, "%s", k->access_key_id);
  a->status = 200;
  snprintf(a->code, sizeof a->code, "OK");
  ca_buf_reset(&a->body);
  st = ca_buf_printf(
    &a->body, "{\"RequestId\":\"%s\",\"AssumedRoleUser\":{\"Arn\":", rid);
  if (!st) {
    ca_buf arn = CA_BUF_INIT(1024);
    st = ca_buf_printf(&arn, "%s/%s", c->role, c->session);
    if (!st)
      st = emu_json_strz(&a->body, ca_buf_str(&arn));
    ca_buf_free(&arn);
  }
  if (!st)
    st = ca_buf_adds(&a->body, ",\"AssumedRoleId\":");
  if (!st) {
    char id[128];
    snprintf(id, sizeof id, "3%s1:%s", "0000000000000", c->session);
    st = emu_json_strz(&a->body, id);
  }
  if (!st)
    st = ca_buf_adds(&a->body, "},\"Credentials\":{");
  if (!st)
    st = emu_sts_key_members(&a->body, k);
  if (!st)
    st = ca_buf_addc(&a->body, '}');
  if (!st && c->ep == EMU_EP_OIDC) {
    char iss[21], exp[21];
    int64_t now = emu_wall_ms() / 1000;
    ca_iso8601(now - 60, iss);
    ca_iso8601(now + 3600, exp);
    st = ca_buf_printf(&a->body,
                       ",\"OIDCTokenInfo\":{\"Subject\":\"system:"
                       "serviceaccount:default:chatapp\",\"Issuer\":"
                       "\"https://oidc-ack.emulator.invalid/ack-test\","
                       "\"ClientIds\":\"sts.aliyuncs.com\","
                       "\"IssuanceTime\":\"%s\",\"ExpirationTime\":\"%s\","
                       "\"VerificationInfo\":\"Success\"}",
                       iss, exp);
  }
  if (!st)
    st = ca_buf_addc(&a->body, '}');
  return st;
}

void emu_sts_call(emu *e, emu_request *rq, emu_answer *a)
{
  emu_auth au;
  emu_kvs params = {0};
  emu_cred_ctx c;
  char rid[37];
  const char *action;
  int oidc;

  emu_request_id(rid);
  emu_auth_init(&au);
  memset(&c, 0, sizeof c);
  c.endpoint = "sts";
  c.scheme = "none";
  c.build = build_sts;
  action = emu_kvs_geti(&rq->headers, "x-acs-action");
  if (request_params(rq, &params) != 0)
    emu_cred_reject(
      &c, 400, "InvalidParameter",
      "The query string or form body is not valid percent-encoding "
      "(or holds %%00).");
  if (!is_sts_action(action))
    action = emu_kvs_get(&params, "Action");
  oidc = action && strcmp(action, "AssumeRoleWithOIDC") == 0;
  c.ep = oidc ? EMU_EP_OIDC : EMU_EP_ASSUME_ROLE;
  if (rq->body_too_big)
    emu_cred_reject(&c, 413, "InvalidParameter",
                    "The request body is larger than 1048576 bytes.");
  if (!oidc && !c.err_code) {
    /* Signed like a CAMS call, by the same code. */
    emu_verify_version(e, rq, &au, EMU_STS_VERSION);
    c.scheme = au.scheme == EMU_SCHEME_V3 ? "v3" : "legacy";
    c.caller = au.access_key_id;
    c.account = au.key ? au.key->account : NULL;
    if (au.code)
      emu_cred_reject(&c, au.status, au.code, "%s", ca_buf_str(&au.message));
    if (!c.err_code)
      check_role_params(&c, &au.params);
    if (!c.err_code && strcmp(au.key->account, EMU_ROLE_ACCOUNT) != 0)
      emu_cred_reject(
        &c, 403, "NoPermission",
        "You are not authorized to do this action: the role belongs "
        "to account " EMU_ROLE_ACCOUNT ", the caller to another.");
  } else if (oidc && !c.err_code) {
    const char *ver = emu_kvs_get(&params, "Version");
    const char *prov = emu_kvs_get(&params, "OIDCProviderArn");
    const char *tok = emu_kvs_get(&params, "OIDCToken");
    c.scheme = "anonymous";
    if (strcmp(rq->method, "POST") != 0 && strcmp(rq->method, "GET") != 0)
      emu_cred_reject(
        &c, 400, "UnsupportedHTTPMethod",
        "Specified HTTP method \"%.16s\" is not supported; use POST.",
        rq->method);
    if (!ver)
      emu_cred_reject(&c, 400, "MissingParameter",
                      "The input parameter \"Version\" that is mandatory for "
                      "processing this request is not supplied.");
    else if (strcmp(ver, EMU_STS_VERSION) != 0)
      emu_cred_reject(
        &c, 400, "InvalidVersion",
        "Specified parameter Version \"%.64s\" is not valid; STS is "
        "%s.",
        ver, EMU_STS_VERSION);
    if (!prov || !*prov)
      emu_cred_reject(
        &c, 400, "MissingParameter",
        "The input parameter \"OIDCProviderArn\" that is mandatory for "
        "processing this request is not supplied.");
    else if (strcmp(prov, EMU_OIDC_PROVIDER) != 0)
      emu_cred_reject(
        &c, 401, "AuthenticationFail.NoPermission",
        "No such OIDC Provider registered (the emulator knows only "
        "%s).",
        EMU_OIDC_PROVIDER);
    if (!tok || !*tok)
      emu_cred_reject(&c, 401, "AuthenticationFail.OIDCToken.Invalid",
                      "The OIDCToken can not empty.");
    else if (!emu_ct_equal(tok, e->sts.oidc_token))
      emu_cred_reject(
        &c, 401, "AuthenticationFail.OIDCToken.Invalid",
        "OIDC token validate failed: it is not the token the emulator "
        "was given (--oidc-token).");
    check_role_params(&c, &params);
    if (!c.err_code)
      c.account = EMU_ROLE_ACCOUNT;
  }
  emu_cred_answer(e, rq, &c, rid, a);
  emu_kvs_free(&params);
  emu_auth_free(&au);
}
