/*
 * emu_cred.c: the pipeline every credential endpoint's request goes
 * through (emu_cred_answer: a rejection, a fault rule's answer or the
 * endpoint's own; counted per endpoint and logged), and two of the
 * endpoints (emu_sts.c has STS):
 *
 *   credentials URI         GET /_emulator/credentials
 *   metadata service        its own loopback port (--metadata-port):
 *                           PUT /latest/api/token, GET
 *                           /latest/meta-data/ram/security-credentials/
 *                           [ROLE] (emu_imds_route)
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

void emu_cred_done(emu *e, int ep)
{
  if (ep < 0 || ep >= EMU_EP_N)
    return;
  pthread_mutex_lock(&e->lock);
  if (e->sts.ep[ep].in_flight)
    e->sts.ep[ep].in_flight--;
  pthread_mutex_unlock(&e->lock);
}

/* ---- the pipeline shared by every credential endpoint ---------------- */

void emu_cred_reject(emu_cred_ctx *c, unsigned status, const char *code,
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
                               const emu_cred_ctx *c, const emu_answer *a,
                               const char *rid, const char *verdict,
                               const emu_fault *f, int64_t delay_us)
{
  chatapp_status st;

  st = emu_log_head(b, rq);
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
    st = emu_log_tail(b, a, rid, verdict, f, delay_us);
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

void emu_cred_answer(emu *e, emu_request *rq, emu_cred_ctx *c, const char *rid,
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

/* ---- the credentials URI and the metadata service's credentials ------- */

static chatapp_status build_cred_json(emu *e, emu_cred_ctx *c, const char *rid,
                                      emu_answer *a)
{
  emu_key *k = NULL;
  chatapp_status st;
  char now[21];

  (void)rid;
  st = emu_sts_issue(e, EMU_ROLE_ACCOUNT, emu_sts_lifetime(e, 0), &k);
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
    st = emu_sts_key_members(&a->body, k);
  if (!st)
    st = ca_buf_printf(&a->body,
                       ",\"LastUpdated\":\"%s\",\"Code\":\"Success\"}", now);
  return st;
}

void emu_cred_uri(emu *e, emu_request *rq, emu_answer *a)
{
  emu_cred_ctx c;
  char rid[37];

  emu_request_id(rid);
  memset(&c, 0, sizeof c);
  c.ep = EMU_EP_CRED_URI;
  c.endpoint = "credentials";
  c.scheme = "none";
  c.build = build_cred_json;
  if (strcmp(rq->method, "GET") != 0)
    emu_cred_reject(&c, 405, "UnsupportedHTTPMethod",
                    "The credentials URI answers GET only.");
  emu_cred_answer(e, rq, &c, rid, a);
}

/* ---- the metadata service (served by emu_http.c's emu_imds_start) -- */

static chatapp_status build_text(emu *e, emu_cred_ctx *c, const char *rid,
                                 emu_answer *a)
{
  (void)e;
  (void)rid;
  text_answer(a, 200, "OK", c->build_text);
  return a->body.len ? CHATAPP_OK : CHATAPP_ENOMEM;
}

typedef struct token_build {
  emu_cred_ctx c;
  long ttl;
  char tok[64];
} token_build;

static chatapp_status build_token(emu *e, emu_cred_ctx *c, const char *rid,
                                  emu_answer *a)
{
  token_build *t = (token_build *)(void *)c;
  chatapp_status st = emu_sts_new_token(&e->sts, t->ttl, t->tok);

  (void)rid;
  if (st)
    return st;
  text_answer(a, 200, "OK", t->tok);
  ca_wipe(t->tok, sizeof t->tok);
  return a->body.len ? CHATAPP_OK : CHATAPP_ENOMEM;
}

#define IMDS_CREDS "/latest/meta-data/ram/security-credentials/"

void emu_imds_route(emu *e, emu_request *rq, emu_answer *a)
{
  token_build t; /* c first: build_token finds the rest */
  emu_cred_ctx *c = &t.c;
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
      emu_cred_reject(c, 405, "MethodNotAllowed",
                      "405 Method Not Allowed: the token is had with PUT.");
    else if (!ttl)
      emu_cred_reject(c, 400, "MissingParameter",
                      "400 Bad Request: the header "
                      "x-aliyun-ecs-metadata-token-ttl-seconds is required.");
    else if (!*ttl || *end || errno || v < 1 || v > 21600)
      emu_cred_reject(
        c, 400, "InvalidParameter",
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
    c->imds_token = tok ? emu_sts_token_state(e, tok) : "none";
    if (strcmp(rq->method, "GET") != 0)
      emu_cred_reject(c, 405, "MethodNotAllowed", "405 Method Not Allowed.");
    else if (tok && strcmp(c->imds_token, "valid") != 0)
      emu_cred_reject(c, 401, "Unauthorized",
                      "401 Unauthorized: the metadata token is %s.",
                      c->imds_token);
    else if (!tok && e->sts.imds_require_token)
      emu_cred_reject(
        c, 401, "Unauthorized",
        "401 Unauthorized: this instance requires a metadata token "
        "(IMDSv2 only): PUT /latest/api/token first.");
    else if (*name && strcmp(name, e->sts.ecs_role) != 0)
      emu_cred_reject(c, 404, "NotFound",
                      "404 Not Found: the instance has no role by that name.");
  } else {
    /* Not an endpoint the emulator serves: not counted. */
    text_answer(a, 404, "NotFound", "404 Not Found");
    (void)emu_kvs_add(&a->headers, "x-acs-request-id", 16, rid, strlen(rid));
    return;
  }
  emu_cred_answer(e, rq, c, rid, a);
}
