/*
 * emu_sts.c: role credentials, so clients' RAM role, OIDC (RRSA), ECS
 * instance role and credentials-URI providers can be tested end to end.
 *
 *   STS AssumeRole          POST / Action=AssumeRole, Version=2015-04-01,
 *                           signed (RPC HMAC-SHA1, checked by emu_verify.c
 *                           like a CAMS call: key, token, timestamp, nonce);
 *                           RoleArn, RoleSessionName, DurationSeconds,
 *                           Policy, ExternalId
 *   STS AssumeRoleWithOIDC  POST / Action=AssumeRoleWithOIDC, anonymous;
 *                           OIDCProviderArn, OIDCToken (= --oidc-token),
 *                           RoleArn, RoleSessionName, DurationSeconds
 *   credentials URI         GET /_emulator/credentials
 *   metadata service        its own loopback port (--metadata-port):
 *                           PUT /latest/api/token, GET
 *                           /latest/meta-data/ram/security-credentials/
 *                           [ROLE] (emu_imds_route)
 *
 * Each success issues a fresh temporary key: AccessKeyId "STS." + 28
 * characters, a secret, a SecurityToken, for the account of the built-in
 * role (1000000000000001), valid for --sts-lifetime seconds (else
 * DurationSeconds, else 3600).  CAMS calls accept it (emu_verify.c asks
 * emu_sts_find_key) until it expires, then answer
 * InvalidSecurityToken.Expired.  The table holds at most EMU_ISSUED_MAX
 * keys: a key expired more than EMU_EXPIRED_KEEP_S ago is dropped, and when
 * the table is full the key expiring first goes.
 *
 * Every request is counted per endpoint (emu_sts.ep: requests, ok,
 * rejected, faulted, in flight at once) and logged with its endpoint,
 * operation, the caller's and the issued AccessKeyId, never a secret, a
 * security token, an OIDC token or a metadata token.  Fault rules reach
 * these endpoints only when they name them (op=AssumeRole, ...).
 */
#include "emu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca_crypto.h"

static const char *const ep_names[EMU_EP_N] = {
  "AssumeRole",    "AssumeRoleWithOIDC",   "metadata.token",
  "metadata.role", "metadata.credentials", "credentials",
};

const char *emu_cred_ep_name(emu_cred_ep ep)
{
  return (unsigned)ep < EMU_EP_N ? ep_names[ep] : "?";
}

int emu_op_is_credential(const char *op)
{
  return op && (strcmp(op, "AssumeRole") == 0 ||
                strcmp(op, "AssumeRoleWithOIDC") == 0 ||
                strcmp(op, "credentials") == 0 || strcmp(op, "metadata") == 0 ||
                strncmp(op, "metadata.", 9) == 0);
}

chatapp_status emu_sts_init(emu_sts *s, const char *oidc_token,
                            const char *ecs_role, unsigned lifetime_s,
                            int imds_require_token)
{
  memset(s, 0, sizeof *s);
  s->issued = calloc(EMU_ISSUED_MAX, sizeof *s->issued);
  s->tokens = calloc(EMU_IMDS_TOKENS_MAX, sizeof *s->tokens);
  s->oidc_token = strdup(oidc_token ? oidc_token : EMU_OIDC_TOKEN);
  s->ecs_role = strdup(ecs_role ? ecs_role : EMU_ECS_ROLE);
  s->lifetime_s = lifetime_s;
  s->imds_require_token = imds_require_token;
  if (!s->issued || !s->tokens || !s->oidc_token || !s->ecs_role) {
    emu_sts_free(s);
    return CHATAPP_ENOMEM;
  }
  return CHATAPP_OK;
}

void emu_sts_forget(emu_sts *s)
{
  size_t i;

  for (i = 0; i < s->nissued; i++)
    emu_key_clear(&s->issued[i]);
  s->nissued = 0;
  if (s->tokens)
    ca_wipe(s->tokens, EMU_IMDS_TOKENS_MAX * sizeof *s->tokens);
  s->ntokens = 0;
}

void emu_sts_free(emu_sts *s)
{
  emu_sts_forget(s);
  free(s->issued);
  free(s->tokens);
  if (s->oidc_token) {
    ca_wipe(s->oidc_token, strlen(s->oidc_token));
    free(s->oidc_token);
  }
  free(s->ecs_role);
  memset(s, 0, sizeof *s);
}

int emu_sts_find_key(emu *e, const char *akid, emu_key *copy)
{
  size_t i;
  int r = 0;

  memset(copy, 0, sizeof *copy);
  if (!akid || strncmp(akid, "STS.", 4) != 0)
    return 0;
  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sts.nissued; i++) {
    if (strcmp(e->sts.issued[i].access_key_id, akid) == 0) {
      r = emu_key_copy(copy, &e->sts.issued[i]) == CHATAPP_OK ? 1 : -1;
      break;
    }
  }
  pthread_mutex_unlock(&e->lock);
  return r;
}

int emu_sts_token_known(emu *e, const char *token)
{
  size_t i;
  int r = 0;

  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sts.nissued && !r; i++)
    if (emu_ct_equal(e->sts.issued[i].token, token))
      r = 1;
  pthread_mutex_unlock(&e->lock);
  return r;
}

size_t emu_sts_expire_all(emu_sts *s)
{
  int64_t now_ms = emu_wall_ms(), now_s = now_ms / 1000;
  size_t i, n = 0;

  for (i = 0; i < s->nissued; i++) {
    if (now_ms < s->issued[i].expires * 1000) {
      s->issued[i].expires = now_s;
      n++;
    }
  }
  return n;
}

void emu_sts_stats_reset(emu_sts *s)
{
  size_t i;

  for (i = 0; i < EMU_EP_N; i++) {
    unsigned in = s->ep[i].in_flight;
    memset(&s->ep[i], 0, sizeof s->ep[i]);
    s->ep[i].in_flight = in;
    s->ep[i].in_flight_max = in;
  }
  s->issued_total = 0;
  s->evicted = 0;
}

chatapp_status emu_sts_stats_json(const emu_sts *s, ca_buf *b)
{
  chatapp_status st = ca_buf_adds(b, "{");
  int64_t now_ms = emu_wall_ms();
  size_t i, live = 0;

  for (i = 0; i < EMU_EP_N && !st; i++) {
    const emu_ep_stats *p = &s->ep[i];
    st = ca_buf_printf(
      b,
      "%s\"%s\":{\"requests\":%llu,\"ok\":%llu,"
      "\"rejected\":%llu,\"faulted\":%llu,"
      "\"in_flight\":%u,\"in_flight_max\":%u}",
      i ? "," : "", ep_names[i], (unsigned long long)p->requests,
      (unsigned long long)p->ok, (unsigned long long)p->rejected,
      (unsigned long long)p->faulted, p->in_flight, p->in_flight_max);
  }
  for (i = 0; i < s->nissued; i++)
    if (now_ms < s->issued[i].expires * 1000)
      live++;
  if (!st)
    st =
      ca_buf_printf(b,
                    "},\"temporary_keys\":{\"issued\":%llu,\"kept\":%zu,"
                    "\"valid\":%zu,\"evicted\":%llu,\"lifetime_s\":%u},"
                    "\"metadata_tokens\":%zu",
                    (unsigned long long)s->issued_total, s->nissued, live,
                    (unsigned long long)s->evicted, s->lifetime_s, s->ntokens);
  return st;
}

void emu_cred_done(emu *e, int ep)
{
  if (ep < 0 || ep >= EMU_EP_N)
    return;
  pthread_mutex_lock(&e->lock);
  if (e->sts.ep[ep].in_flight)
    e->sts.ep[ep].in_flight--;
  pthread_mutex_unlock(&e->lock);
}

/* n random characters of alphabet into out (NUL-terminated). */
static chatapp_status random_text(char *out, size_t n, const char *alphabet)
{
  unsigned char r[256];
  size_t i, k = strlen(alphabet);

  if (n > sizeof r || ca_random(r, n) != CHATAPP_OK)
    return CHATAPP_EIO;
  for (i = 0; i < n; i++)
    out[i] = alphabet[r[i] % k];
  out[n] = '\0';
  ca_wipe(r, sizeof r);
  return CHATAPP_OK;
}

static const char alnum[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* Issue a temporary key for account (emu.lock held); *out points into the
 * table until the lock is dropped. */
static chatapp_status issue(emu *e, const char *account, int64_t lifetime_s,
                            emu_key **out)
{
  emu_sts *s = &e->sts;
  int64_t now_s = emu_wall_ms() / 1000;
  char id[40], secret[40], token[200];
  emu_key *k;
  chatapp_status st;
  size_t i;

  /* Drop keys expired long ago; when still full, the one expiring first. */
  for (i = 0; i < s->nissued;) {
    if (s->issued[i].expires + EMU_EXPIRED_KEEP_S <= now_s) {
      emu_key_clear(&s->issued[i]);
      s->issued[i] = s->issued[--s->nissued];
      memset(&s->issued[s->nissued], 0, sizeof s->issued[0]);
      s->evicted++;
    } else {
      i++;
    }
  }
  if (s->nissued == EMU_ISSUED_MAX) {
    size_t first = 0;
    for (i = 1; i < s->nissued; i++)
      if (s->issued[i].expires < s->issued[first].expires)
        first = i;
    emu_key_clear(&s->issued[first]);
    s->issued[first] = s->issued[--s->nissued];
    memset(&s->issued[s->nissued], 0, sizeof s->issued[0]);
    s->evicted++;
  }
  memcpy(id, "STS.", 4);
  memcpy(token, "CAIS", 4);
  st = random_text(id + 4, 28, alnum);
  if (!st)
    st = random_text(secret, 30, alnum);
  if (!st)
    st = random_text(token + 4, 180, alnum);
  if (!st) {
    emu_key src;
    memset(&src, 0, sizeof src);
    src.access_key_id = id;
    src.secret = secret;
    src.token = token;
    src.account = (char *)(uintptr_t)account;
    src.expires = now_s + lifetime_s;
    k = &s->issued[s->nissued];
    st = emu_key_copy(k, &src);
    if (!st) {
      s->nissued++;
      s->issued_total++;
      *out = k;
    }
  }
  ca_wipe(secret, sizeof secret);
  ca_wipe(token, sizeof token);
  return st;
}

/* The lifetime of a key issued now: --sts-lifetime, else requested. */
static int64_t lifetime_of(const emu *e, long long requested)
{
  if (e->sts.lifetime_s)
    return e->sts.lifetime_s;
  return requested > 0 ? requested : 3600;
}

/* ,"AccessKeyId":...,"AccessKeySecret":...,"SecurityToken":...,
 * "Expiration":... of k (without braces). */
static chatapp_status key_members(ca_buf *b, const emu_key *k)
{
  char exp[21];
  chatapp_status st;

  ca_iso8601(k->expires, exp);
  st = ca_buf_adds(b, "\"AccessKeyId\":");
  if (!st)
    st = emu_json_strz(b, k->access_key_id);
  if (!st)
    st = ca_buf_adds(b, ",\"AccessKeySecret\":");
  if (!st)
    st = emu_json_strz(b, k->secret);
  if (!st)
    st = ca_buf_adds(b, ",\"SecurityToken\":");
  if (!st)
    st = emu_json_strz(b, k->token);
  if (!st)
    st = ca_buf_printf(b, ",\"Expiration\":\"%s\"", exp);
  return st;
}

/* ---- the pipeline shared by every credential endpoint ---------------- */

typedef struct cred_ctx {
  emu_cred_ep ep;
  const char *endpoint; /* "sts", "metadata", "credentials" (log) */
  const char *scheme;   /* "legacy", "v3", "anonymous", "none" */
  /* a rejection decided before the lock, or NULL */
  unsigned err_status;
  const char *err_code;
  char err_msg[512];
  int text; /* errors as text/plain (metadata) */
  /* for the log */
  const char *caller;  /* AccessKeyId of the caller, or NULL */
  const char *account; /* its account */
  const char *role, *session;
  const char *imds_token; /* "valid", "invalid", "expired", "none" */
  long long duration;     /* requested DurationSeconds, or 0 */
  char issued[64];        /* AccessKeyId issued, or "" */
  /* success: build the answer (emu.lock held) */
  chatapp_status (*build)(emu *e, struct cred_ctx *c, const char *rid,
                          emu_answer *a);
  const char *build_text; /* metadata: the token or role name to send */
} cred_ctx;

static void reject(cred_ctx *c, unsigned status, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void reject(cred_ctx *c, unsigned status, const char *code,
                   const char *fmt, ...)
{
  va_list ap;

  if (c->err_code)
    return; /* the first failure answers */
  c->err_status = status;
  c->err_code = code;
  va_start(ap, fmt);
  vsnprintf(c->err_msg, sizeof c->err_msg, fmt, ap);
  va_end(ap);
}

static const char *malformed_body(emu_cred_ep ep)
{
  switch (ep) {
  case EMU_EP_IMDS_TOKEN:
  case EMU_EP_IMDS_ROLE:
    return "<html><body><h1>502 Bad Gateway</h1>\n";
  case EMU_EP_ASSUME_ROLE:
  case EMU_EP_OIDC:
    return "{\"RequestId\":\"00000000-0000-0000-0000-000000000000\","
           "\"Credentials\":{\"AccessKeyId\":\"STS.malformed\","
           "\"AccessKeySecret\":\"x\",\"SecurityToken\":";
  default:
    return "{\"AccessKeyId\":\"STS.malformed\",\"AccessKeySecret\":\"x\","
           "\"SecurityToken\":\"y\",\"Expiration\":2030-01-01T00:00:00Z,,";
  }
}

static chatapp_status log_line(ca_buf *b, const emu_request *rq,
                               const cred_ctx *c, const emu_answer *a,
                               const char *rid, const char *verdict,
                               const emu_fault *f, int64_t delay_us)
{
  char when[32];
  chatapp_status st;

  emu_iso8601_ms(rq->arrival_wall_ms, when);
  st = ca_buf_printf(b, "{\"t_us\":%lld,\"time\":\"%s\",\"remote\":",
                     (long long)rq->arrival_us, when);
  if (!st)
    st = emu_json_strz(b, rq->remote);
  if (!st)
    st = ca_buf_adds(b, ",\"method\":");
  if (!st)
    st = emu_json_strz(b, rq->method);
  if (!st)
    st =
      ca_buf_printf(b, ",\"endpoint\":\"%s\",\"scheme\":\"%s\",\"op\":\"%s\"",
                    c->endpoint, c->scheme, ep_names[c->ep]);
  if (!st)
    st = ca_buf_adds(b, ",\"access_key_id\":");
  if (!st)
    st = emu_json_strz(b, c->caller);
  if (!st)
    st = ca_buf_adds(b, ",\"account\":");
  if (!st)
    st = emu_json_strz(b, c->account);
  if (!st && c->role) {
    st = ca_buf_adds(b, ",\"role\":");
    if (!st)
      st = emu_json_strz(b, c->role);
  }
  if (!st && c->session) {
    st = ca_buf_adds(b, ",\"session\":");
    if (!st)
      st = emu_json_strz(b, c->session);
  }
  if (!st && c->duration)
    st = ca_buf_printf(b, ",\"duration_seconds\":%lld", c->duration);
  if (!st && c->imds_token)
    st = ca_buf_printf(b, ",\"metadata_token\":\"%s\"", c->imds_token);
  if (!st)
    st = ca_buf_adds(b, ",\"issued_access_key_id\":");
  if (!st)
    st = emu_json_strz(b, c->issued[0] ? c->issued : NULL);
  if (!st)
    st = ca_buf_printf(b, ",\"verdict\":\"%s\",\"fault\":", verdict);
  if (!st)
    st = emu_json_strz(b, f ? emu_fault_kind_name(f->kind) : NULL);
  if (!st && f)
    st = ca_buf_printf(b, ",\"fault_id\":%u", f->id);
  if (!st)
    st = ca_buf_adds(b, ",\"code\":");
  if (!st)
    st = emu_json_strz(b, a->code);
  if (!st)
    st = ca_buf_printf(b,
                       ",\"status\":%u,\"request_id\":\"%s\","
                       "\"delay_ms\":%lld}",
                       a->status, rid, (long long)(delay_us / 1000));
  return st;
}

static void text_answer(emu_answer *a, unsigned status, const char *code,
                        const char *text)
{
  a->status = status;
  a->content_type = "text/plain;charset=utf-8";
  snprintf(a->code, sizeof a->code, "%s", code);
  ca_buf_reset(&a->body);
  if (ca_buf_adds(&a->body, text)) /* no newline: a token is used as is */
    ca_buf_reset(&a->body);
}

/* Answer a request of endpoint c->ep: the rejection in c, or a fault
 * rule's answer, or c->build's; count and log it. */
static void cred_answer(emu *e, emu_request *rq, cred_ctx *c, const char *rid,
                        emu_answer *a)
{
  const char *op = ep_names[c->ep];
  const char *verdict = "accepted";
  emu_ep_stats *p = &e->sts.ep[c->ep];
  emu_fault fcopy, *fired = NULL;
  ca_buf line = CA_BUF_INIT(64 * 1024);
  int64_t now = emu_mono_us(), delay;

  memset(&fcopy, 0, sizeof fcopy);
  pthread_mutex_lock(&e->lock);
  p->requests++;
  p->in_flight++;
  if (p->in_flight > p->in_flight_max)
    p->in_flight_max = p->in_flight;
  a->track_ep = (int)c->ep;
  delay = emu_faults_latency(&e->faults, op, now);
  if (c->err_code) {
    verdict = "rejected";
    p->rejected++;
    if (c->text)
      text_answer(a, c->err_status, c->err_code, c->err_msg);
    else if (c->ep == EMU_EP_ASSUME_ROLE || c->ep == EMU_EP_OIDC)
      emu_answer_error_for(a, c->err_status, c->err_code, c->err_msg, rid,
                           EMU_STS_HOST_ID, "Sts");
    else
      emu_answer_error(a, c->err_status, c->err_code, c->err_msg, rid);
  } else {
    emu_fault *f = emu_faults_pick(&e->faults, op, now);
    if (f) {
      fcopy.id = f->id;
      fcopy.kind = f->kind;
      fired = &fcopy;
      verdict = "fault";
      p->faulted++;
    }
    if (!f || !emu_fault_answer(f, rid, malformed_body(c->ep), a)) {
      if (c->build(e, c, rid, a) != CHATAPP_OK) {
        verdict = "rejected";
        emu_answer_error(a, 500, "InternalError",
                         "The request processing has failed due to some "
                         "unknown error (out of memory).",
                         rid);
      } else if (f) {
        emu_fault_send_mode(f, a);
      } else {
        p->ok++;
      }
    }
  }
  emu_faults_expire(&e->faults, now);
  pthread_mutex_unlock(&e->lock);
  (void)emu_kvs_add(&a->headers, "x-acs-request-id", 16, rid, strlen(rid));
  a->delay_us = delay;
  if (e->log &&
      log_line(&line, rq, c, a, rid, verdict, fired, delay) == CHATAPP_OK)
    emu_log_line(e->log, line.ptr, line.len);
  ca_buf_free(&line);
}

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
static void check_role_params(cred_ctx *c, const emu_kvs *p)
{
  const char *arn = emu_kvs_get(p, "RoleArn");
  const char *sess = emu_kvs_get(p, "RoleSessionName");
  const char *dur = emu_kvs_get(p, "DurationSeconds");
  const char *pol = emu_kvs_get(p, "Policy");
  const char *ext = emu_kvs_get(p, "ExternalId");

  c->role = arn;
  c->session = sess;
  if (!arn || !*arn) {
    reject(c, 400, "MissingParameter",
           "The input parameter \"RoleArn\" that is mandatory for "
           "processing this request is not supplied.");
    return;
  }
  if (!role_known(arn)) {
    reject(c, 403, "NoPermission",
           "No permission perform sts:AssumeRole on this Role. Maybe the "
           "role is not exist or your account has no permission to assume "
           "this role (the emulator knows only " EMU_ROLE_ARN ").");
    return;
  }
  if (!sess || !*sess) {
    reject(c, 400, "MissingParameter",
           "The input parameter \"RoleSessionName\" that is mandatory for "
           "processing this request is not supplied.");
    return;
  }
  if (!session_name_ok(sess)) {
    reject(c, 400, "InvalidParameter.RoleSessionName",
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
      reject(c, 400, "InvalidParameter.DurationSeconds",
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
      reject(c, 400, "InvalidParameter.PolicyGrammar",
             "The parameter Policy has not passed grammar check (a JSON "
             "object of 1 to 2048 characters).");
      return;
    }
  }
  if (ext && (strlen(ext) < 2 || strlen(ext) > 1224))
    reject(c, 400, "InvalidParameter.ExternalId",
           "The parameter ExternalId is wrongly formed (2 to 1224 "
           "characters).");
}

static chatapp_status build_sts(emu *e, cred_ctx *c, const char *rid,
                                emu_answer *a)
{
  emu_key *k = NULL;
  chatapp_status st;

  st = issue(e, EMU_ROLE_ACCOUNT, lifetime_of(e, c->duration), &k);
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
    st = key_members(&a->body, k);
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
  cred_ctx c;
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
    reject(&c, 400, "InvalidParameter",
           "The query string or form body is not valid percent-encoding "
           "(or holds %%00).");
  if (!is_sts_action(action))
    action = emu_kvs_get(&params, "Action");
  oidc = action && strcmp(action, "AssumeRoleWithOIDC") == 0;
  c.ep = oidc ? EMU_EP_OIDC : EMU_EP_ASSUME_ROLE;
  if (rq->body_too_big)
    reject(&c, 413, "InvalidParameter",
           "The request body is larger than 1048576 bytes.");
  if (!oidc && !c.err_code) {
    /* Signed like a CAMS call, by the same code. */
    emu_verify_version(e, rq, &au, EMU_STS_VERSION);
    c.scheme = au.scheme == EMU_SCHEME_V3 ? "v3" : "legacy";
    c.caller = au.access_key_id;
    c.account = au.key ? au.key->account : NULL;
    if (au.code)
      reject(&c, au.status, au.code, "%s", ca_buf_str(&au.message));
    if (!c.err_code)
      check_role_params(&c, &au.params);
    if (!c.err_code && strcmp(au.key->account, EMU_ROLE_ACCOUNT) != 0)
      reject(&c, 403, "NoPermission",
             "You are not authorized to do this action: the role belongs "
             "to account " EMU_ROLE_ACCOUNT ", the caller to another.");
  } else if (oidc && !c.err_code) {
    const char *ver = emu_kvs_get(&params, "Version");
    const char *prov = emu_kvs_get(&params, "OIDCProviderArn");
    const char *tok = emu_kvs_get(&params, "OIDCToken");
    c.scheme = "anonymous";
    if (strcmp(rq->method, "POST") != 0 && strcmp(rq->method, "GET") != 0)
      reject(&c, 400, "UnsupportedHTTPMethod",
             "Specified HTTP method \"%.16s\" is not supported; use POST.",
             rq->method);
    if (!ver)
      reject(&c, 400, "MissingParameter",
             "The input parameter \"Version\" that is mandatory for "
             "processing this request is not supplied.");
    else if (strcmp(ver, EMU_STS_VERSION) != 0)
      reject(&c, 400, "InvalidVersion",
             "Specified parameter Version \"%.64s\" is not valid; STS is "
             "%s.",
             ver, EMU_STS_VERSION);
    if (!prov || !*prov)
      reject(&c, 400, "MissingParameter",
             "The input parameter \"OIDCProviderArn\" that is mandatory for "
             "processing this request is not supplied.");
    else if (strcmp(prov, EMU_OIDC_PROVIDER) != 0)
      reject(&c, 401, "AuthenticationFail.NoPermission",
             "No such OIDC Provider registered (the emulator knows only "
             "%s).",
             EMU_OIDC_PROVIDER);
    if (!tok || !*tok)
      reject(&c, 401, "AuthenticationFail.OIDCToken.Invalid",
             "The OIDCToken can not empty.");
    else if (!emu_ct_equal(tok, e->sts.oidc_token))
      reject(&c, 401, "AuthenticationFail.OIDCToken.Invalid",
             "OIDC token validate failed: it is not the token the emulator "
             "was given (--oidc-token).");
    check_role_params(&c, &params);
    if (!c.err_code)
      c.account = EMU_ROLE_ACCOUNT;
  }
  cred_answer(e, rq, &c, rid, a);
  emu_kvs_free(&params);
  emu_auth_free(&au);
}

/* ---- the credentials URI and the metadata service's credentials ------- */

static chatapp_status build_cred_json(emu *e, cred_ctx *c, const char *rid,
                                      emu_answer *a)
{
  emu_key *k = NULL;
  chatapp_status st;
  char now[21];

  (void)rid;
  st = issue(e, EMU_ROLE_ACCOUNT, lifetime_of(e, 0), &k);
  if (st)
    return st;
  snprintf(c->issued, sizeof c->issued, "%s", k->access_key_id);
  c->account = EMU_ROLE_ACCOUNT;
  ca_iso8601(emu_wall_ms() / 1000, now);
  a->status = 200;
  snprintf(a->code, sizeof a->code, "Success");
  ca_buf_reset(&a->body);
  st = ca_buf_addc(&a->body, '{');
  if (!st)
    st = key_members(&a->body, k);
  if (!st)
    st = ca_buf_printf(&a->body,
                       ",\"LastUpdated\":\"%s\",\"Code\":\"Success\"}", now);
  return st;
}

void emu_cred_uri(emu *e, emu_request *rq, emu_answer *a)
{
  cred_ctx c;
  char rid[37];

  emu_request_id(rid);
  memset(&c, 0, sizeof c);
  c.ep = EMU_EP_CRED_URI;
  c.endpoint = "credentials";
  c.scheme = "none";
  c.build = build_cred_json;
  if (strcmp(rq->method, "GET") != 0)
    reject(&c, 405, "UnsupportedHTTPMethod",
           "The credentials URI answers GET only.");
  cred_answer(e, rq, &c, rid, a);
}

/* ---- the metadata service (called by emu_imds.c) ---------------------- */

static chatapp_status build_text(emu *e, cred_ctx *c, const char *rid,
                                 emu_answer *a)
{
  (void)e;
  (void)rid;
  text_answer(a, 200, "OK", c->build_text);
  return a->body.len ? CHATAPP_OK : CHATAPP_ENOMEM;
}

/* A fresh metadata token valid ttl_s seconds (emu.lock held). */
static chatapp_status new_token(emu_sts *s, long ttl_s, char out[64])
{
  int64_t now = emu_wall_ms();
  size_t i;
  chatapp_status st;

  for (i = 0; i < s->ntokens;) {
    if (s->tokens[i].expires_ms <= now) {
      s->tokens[i] = s->tokens[--s->ntokens];
      ca_wipe(&s->tokens[s->ntokens], sizeof s->tokens[0]);
    } else {
      i++;
    }
  }
  if (s->ntokens == EMU_IMDS_TOKENS_MAX) {
    size_t first = 0;
    for (i = 1; i < s->ntokens; i++)
      if (s->tokens[i].expires_ms < s->tokens[first].expires_ms)
        first = i;
    s->tokens[first] = s->tokens[--s->ntokens];
    ca_wipe(&s->tokens[s->ntokens], sizeof s->tokens[0]);
  }
  memcpy(out, "AQAEA", 5);
  st = random_text(out + 5, 51, alnum);
  if (st)
    return st;
  memcpy(s->tokens[s->ntokens].tok, out, 57);
  s->tokens[s->ntokens].expires_ms = now + (int64_t)ttl_s * 1000;
  s->ntokens++;
  return CHATAPP_OK;
}

typedef struct token_build {
  cred_ctx c;
  long ttl;
  char tok[64];
} token_build;

static chatapp_status build_token(emu *e, cred_ctx *c, const char *rid,
                                  emu_answer *a)
{
  token_build *t = (token_build *)(void *)c;
  chatapp_status st = new_token(&e->sts, t->ttl, t->tok);

  (void)rid;
  if (st)
    return st;
  text_answer(a, 200, "OK", t->tok);
  ca_wipe(t->tok, sizeof t->tok);
  return a->body.len ? CHATAPP_OK : CHATAPP_ENOMEM;
}

/* "valid", "invalid", "expired" for a token sent (takes emu.lock). */
static const char *token_state(emu *e, const char *tok)
{
  int64_t now = emu_wall_ms();
  const char *r = "invalid";
  size_t i;

  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sts.ntokens; i++) {
    if (emu_ct_equal(e->sts.tokens[i].tok, tok)) {
      r = e->sts.tokens[i].expires_ms > now ? "valid" : "expired";
      break;
    }
  }
  pthread_mutex_unlock(&e->lock);
  return r;
}

#define IMDS_CREDS "/latest/meta-data/ram/security-credentials/"

void emu_imds_route(emu *e, emu_request *rq, emu_answer *a)
{
  token_build t; /* c first: build_token finds the rest */
  cred_ctx *c = &t.c;
  char rid[37], path[512];
  size_t plen = strcspn(rq->raw_uri, "?");
  const char *tok = emu_kvs_geti(&rq->headers, "x-aliyun-ecs-metadata-token");

  emu_request_id(rid);
  memset(&t, 0, sizeof t);
  c->endpoint = "metadata";
  c->scheme = "none";
  c->text = 1;
  if (plen >= sizeof path)
    plen = sizeof path - 1;
  memcpy(path, rq->raw_uri, plen);
  path[plen] = '\0';
  if (strcmp(path, "/latest/api/token") == 0) {
    const char *ttl =
      emu_kvs_geti(&rq->headers, "x-aliyun-ecs-metadata-token-ttl-seconds");
    char *end = NULL;
    long v = 0;
    c->ep = EMU_EP_IMDS_TOKEN;
    c->build = build_token;
    if (ttl) {
      errno = 0;
      v = strtol(ttl, &end, 10);
    }
    if (strcmp(rq->method, "PUT") != 0)
      reject(c, 405, "MethodNotAllowed",
             "405 Method Not Allowed: the token is had with PUT.");
    else if (!ttl)
      reject(c, 400, "MissingParameter",
             "400 Bad Request: the header "
             "x-aliyun-ecs-metadata-token-ttl-seconds is required.");
    else if (!*ttl || *end || errno || v < 1 || v > 21600)
      reject(c, 400, "InvalidParameter",
             "400 Bad Request: x-aliyun-ecs-metadata-token-ttl-seconds must "
             "be 1 to 21600.");
    t.ttl = v;
  } else if (strncmp(path, IMDS_CREDS, sizeof IMDS_CREDS - 1) == 0 ||
             strcmp(path, "/latest/meta-data/ram/security-credentials") == 0) {
    const char *name = path + strlen(path);
    if (strncmp(path, IMDS_CREDS, sizeof IMDS_CREDS - 1) == 0)
      name = path + sizeof IMDS_CREDS - 1;
    if (*name) {
      c->ep = EMU_EP_IMDS_CREDS;
      c->build = build_cred_json;
      c->role = name;
    } else {
      c->ep = EMU_EP_IMDS_ROLE;
      c->build = build_text;
      c->build_text = e->sts.ecs_role;
    }
    c->imds_token = tok ? token_state(e, tok) : "none";
    if (strcmp(rq->method, "GET") != 0)
      reject(c, 405, "MethodNotAllowed", "405 Method Not Allowed.");
    else if (tok && strcmp(c->imds_token, "valid") != 0)
      reject(c, 401, "Unauthorized",
             "401 Unauthorized: the metadata token is %s.", c->imds_token);
    else if (!tok && e->sts.imds_require_token)
      reject(c, 401, "Unauthorized",
             "401 Unauthorized: this instance requires a metadata token "
             "(IMDSv2 only): PUT /latest/api/token first.");
    else if (*name && strcmp(name, e->sts.ecs_role) != 0)
      reject(c, 404, "NotFound",
             "404 Not Found: the instance has no role by that name.");
  } else {
    /* Not an endpoint the emulator serves: not counted. */
    text_answer(a, 404, "NotFound", "404 Not Found");
    (void)emu_kvs_add(&a->headers, "x-acs-request-id", 16, rid, strlen(rid));
    return;
  }
  cred_answer(e, rq, c, rid, a);
}
