/*
 * emu_api.c: one signed API call, from request to answer and log line.
 *
 *   1. verify the signature, key, token, timestamp, nonce (emu_verify.c)
 *   2. the operation must exist                      InvalidAction.NotFound
 *   3. quota: at most N accepted per 1 s window      Throttling.User
 *      (N lowered while a quota fault rule lasts)
 *   4. a fault rule may replace the answer; reset, truncate and drip faults
 *      (and oversize, chunked) still run the operation, since they lose an
 *      answer the server produced; error, malformed, redirect and hang
 *      faults do not run it
 *   5. the operation (emu_ops.c)
 *
 * Latency rules delay every API answer, including rejections.  A call that
 * passed step 3 counts against the quota whatever happens next (a real
 * gateway counts it before the backend fails); rejected and throttled calls
 * do not count.
 */
#include "emu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void emu_answer_init(emu_answer *a)
{
  memset(a, 0, sizeof *a);
  ca_buf_init(&a->body, EMU_MAX_ANSWER);
  a->status = 200;
  a->mode = EMU_SEND_NORMAL;
  a->track_ep = -1;
}

void emu_answer_free(emu_answer *a)
{
  ca_buf_free(&a->body);
  emu_kvs_free(&a->headers);
}

void emu_answer_error(emu_answer *a, unsigned status, const char *code,
                      const char *message, const char *rid)
{
  emu_answer_error_for(a, status, code, message, rid, EMU_HOST_ID, "cams");
}

void emu_answer_error_for(emu_answer *a, unsigned status, const char *code,
                          const char *message, const char *rid,
                          const char *host_id, const char *product)
{
  chatapp_status st;

  a->status = status;
  snprintf(a->code, sizeof a->code, "%s", code);
  ca_buf_reset(&a->body);
  st = ca_buf_printf(&a->body,
                     "{\"RequestId\":\"%s\",\"HostId\":\"%s\","
                     "\"Code\":",
                     rid, host_id);
  if (!st)
    st = emu_json_strz(&a->body, code);
  if (!st)
    st = ca_buf_adds(&a->body, ",\"Message\":");
  if (!st)
    st = emu_json_strz(&a->body, message);
  if (!st)
    st = ca_buf_adds(&a->body, ",\"Recommend\":\"https://api.alibabacloud."
                               "com/troubleshoot?q=");
  if (!st)
    st = ca_pct_encode(&a->body, code, strlen(code));
  if (!st)
    st = ca_buf_printf(&a->body, "&product=%s&requestId=%s\"}", product, rid);
  if (st) {
    ca_buf_reset(&a->body);
    (void)ca_buf_adds(&a->body, "{\"Code\":\"InternalError\"}");
  }
}

static void add_header(emu_answer *a, const char *k, const char *v)
{
  (void)emu_kvs_add(&a->headers, k, strlen(k), v, strlen(v));
}

int emu_fault_answer(const emu_fault *f, const char *rid,
                     const char *malformed_body, emu_answer *a)
{
  switch (f->kind) {
  case EMU_FAULT_ERROR:
    emu_answer_error(a, f->status, f->code, f->message, rid);
    break;
  case EMU_FAULT_MALFORMED:
    a->status = f->status;
    snprintf(a->code, sizeof a->code, "(malformed)");
    ca_buf_reset(&a->body);
    if (f->body)
      (void)ca_buf_adds(&a->body, f->body);
    else if (malformed_body)
      (void)ca_buf_adds(&a->body, malformed_body);
    else
      (void)ca_buf_printf(&a->body,
                          "{\"RequestId\":\"%s\",\"Code\":\"OK\",\"Message\":"
                          "\"SUCCESS\",\"PhoneNumbers\":[{\"PhoneNumber\":"
                          "\"8613800000001\",\"Status\":CONNECTED,,}",
                          rid);
    break;
  case EMU_FAULT_REDIRECT:
    a->status = f->status;
    snprintf(a->code, sizeof a->code, "(redirect)");
    ca_buf_reset(&a->body);
    add_header(a, "Location", f->location);
    break;
  case EMU_FAULT_HANG:
    a->mode = EMU_SEND_HANG;
    a->hang_ms = f->ms;
    snprintf(a->code, sizeof a->code, "(hang)");
    break;
  default:
    return 0;
  }
  if (f->retry_after)
    add_header(a, "Retry-After", f->retry_after);
  if (f->x_acs_retry_after)
    add_header(a, "x-acs-retry-after", f->x_acs_retry_after);
  return 1;
}

void emu_fault_send_mode(const emu_fault *f, emu_answer *a)
{
  a->after_bytes = f->after_bytes;
  a->interval_ms = f->interval_ms;
  a->bytes = f->bytes;
  a->body_delay_ms = f->ms;
  a->mode = f->kind == EMU_FAULT_RESET      ? EMU_SEND_RESET
            : f->kind == EMU_FAULT_TRUNCATE ? EMU_SEND_TRUNCATE
            : f->kind == EMU_FAULT_DRIP     ? EMU_SEND_DRIP
            : f->kind == EMU_FAULT_OVERSIZE ? EMU_SEND_OVERSIZE
            : f->kind == EMU_FAULT_GZIP     ? EMU_SEND_GZIP
                                            : EMU_SEND_CHUNKED;
  if (f->kind == EMU_FAULT_GZIP)
    add_header(a, "Content-Encoding", "gzip");
  if (f->retry_after)
    add_header(a, "Retry-After", f->retry_after);
  if (f->x_acs_retry_after)
    add_header(a, "x-acs-retry-after", f->x_acs_retry_after);
}

/* Replace the answer of an accepted call as rule f says. */
static void apply_fault(emu *e, const emu_fault *f, const char *op,
                        const emu_auth *au, const char *rid, emu_answer *a)
{
  if (emu_fault_answer(f, rid, NULL, a))
    return;
  /* The server did the work; the answer gets lost on the way. */
  emu_ops_run(e, op, &au->params, au->key->account, rid, a);
  emu_fault_send_mode(f, a);
}

chatapp_status emu_log_head(ca_buf *b, const emu_request *rq)
{
  char when[32];
  chatapp_status st;

  emu_iso8601_ms(rq->arrival_wall_ms, when);
  st = ca_buf_printf(b, "{\"t_us\":%lld,\"time\":\"%s\",\"remote\":",
                     (long long)rq->arrival_us, when);
  if (!st)
    st = emu_json_strz(b, rq->remote);
  if (!st)
    st = ca_buf_printf(
      b, ",\"conn\":%llu,\"method\":", (unsigned long long)rq->conn_id);
  if (!st)
    st = emu_json_strz(b, rq->method);
  return st;
}

chatapp_status emu_log_tail(ca_buf *b, const emu_answer *a, const char *rid,
                            const char *verdict, const emu_fault *f,
                            int64_t delay_us)
{
  chatapp_status st;

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

static const char *scheme_name(emu_scheme s)
{
  return s == EMU_SCHEME_V3 ? "v3" : s == EMU_SCHEME_RPC ? "legacy" : "none";
}

/* The log line: no signature, secret or token (SecurityToken, OIDCToken
 * and AccessKeySecret redacted). */
static chatapp_status log_line(ca_buf *b, const emu_request *rq,
                               const emu_auth *au, const emu_answer *a,
                               const char *rid, const char *verdict,
                               const emu_fault *f, int64_t delay_us)
{
  chatapp_status st;
  size_t i;
  const char *p;

  st = emu_log_head(b, rq);
  if (!st)
    st =
      ca_buf_printf(b, ",\"scheme\":\"%s\",\"op\":", scheme_name(au->scheme));
  if (!st)
    st = emu_json_strz(b, au->action);
  if (!st)
    st = ca_buf_adds(b, ",\"params\":{");
  for (i = 0; i < au->params.n && !st; i++) {
    const ca_kv *kv = &au->params.v[i];
    int secret = strcmp(kv->key, "SecurityToken") == 0 ||
                 strcmp(kv->key, "OIDCToken") == 0 ||
                 strcmp(kv->key, "AccessKeySecret") == 0;
    if (i)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = emu_json_strz(b, kv->key);
    if (!st)
      st = ca_buf_addc(b, ':');
    if (!st)
      st = emu_json_strz(b, secret ? "[REDACTED]" : kv->value);
  }
  if (!st)
    st = ca_buf_adds(b, "},\"signed_headers\":[");
  for (p = ca_buf_str(&au->signed_headers); *p && !st;) {
    const char *q = strchr(p, ';');
    size_t l = q ? (size_t)(q - p) : strlen(p);
    if (p != au->signed_headers.ptr)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = emu_json_str(b, p, l);
    p += l;
    if (*p)
      p++;
  }
  if (!st)
    st = ca_buf_adds(b, "],\"nonce\":");
  if (!st)
    st = emu_json_strz(b, au->nonce);
  if (!st)
    st = ca_buf_adds(b, ",\"access_key_id\":");
  if (!st)
    st = emu_json_strz(b, au->access_key_id);
  if (!st)
    st = ca_buf_adds(b, ",\"account\":");
  if (!st)
    st = emu_json_strz(b, au->key ? au->key->account : NULL);
  if (!st)
    st = emu_log_tail(b, a, rid, verdict, f, delay_us);
  return st;
}

void emu_api_call(emu *e, emu_request *rq, emu_answer *a)
{
  emu_auth au;
  char rid[37];
  const char *verdict = "accepted";
  const emu_fault *fired = NULL;
  emu_fault fcopy;
  ca_buf line = CA_BUF_INIT(1024 * 1024);
  int64_t now, delay;
  const char *op;

  emu_request_id(rid);
  emu_auth_init(&au);
  memset(&fcopy, 0, sizeof fcopy);
  if (rq->body_too_big) {
    au.code = "InvalidParameter";
    au.status = 413;
    (void)ca_buf_printf(&au.message,
                        "The request body is larger than %d "
                        "bytes.",
                        EMU_MAX_BODY);
  } else {
    emu_verify(e, rq, &au);
  }
  op = au.action;
  now = emu_mono_us();
  pthread_mutex_lock(&e->lock);
  e->stats.requests++;
  delay = emu_faults_latency(&e->faults, op, now);
  if (au.code) {
    verdict = "rejected";
    emu_answer_error(a, au.status, au.code, ca_buf_str(&au.message), rid);
  } else if (!emu_ops_known(op)) {
    verdict = "rejected";
    if (emu_ops_documented(op)) {
      char msg[256];
      snprintf(msg, sizeof msg,
               "Specified api is not found: %s is a CAMS operation that "
               "chatapp-emulator does not implement.",
               op);
      emu_answer_error(a, 404, "InvalidAction.NotFound", msg, rid);
    } else {
      emu_answer_error(a, 404, "InvalidAction.NotFound",
                       "Specified api is not found, please check your url "
                       "and method.",
                       rid);
    }
  } else {
    unsigned limit = emu_quota_limit(&e->quota, op), lowered;
    int64_t retry_ms = 0;
    int r;

    if (emu_faults_quota(&e->faults, op, now, &lowered) && lowered < limit)
      limit = lowered;
    r = emu_quota_admit(&e->quota, au.key->account, op, rq->arrival_us, now,
                        limit, &retry_ms);
    if (r == 0) {
      verdict = "throttled";
      emu_answer_error(a, 400, "Throttling.User",
                       "Request was denied due to user flow control.", rid);
      if (e->throttle_retry_after) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)retry_ms);
        add_header(a, "x-acs-retry-after", v);
        snprintf(v, sizeof v, "%lld", (long long)((retry_ms + 999) / 1000));
        add_header(a, "Retry-After", v);
      }
    } else if (r < 0) {
      verdict = "rejected";
      emu_answer_error(a, 500, "InternalError", "Out of memory.", rid);
    } else {
      emu_fault *f = emu_faults_pick(&e->faults, op, now);
      if (f) {
        verdict = "fault";
        apply_fault(e, f, op, &au, rid, a);
        fcopy.id = f->id;
        fcopy.kind = f->kind;
        fired = &fcopy;
      } else {
        emu_ops_run(e, op, &au.params, au.key->account, rid, a);
      }
    }
  }
  add_header(a, "x-acs-request-id", rid);
  a->delay_us = delay;
  /* Statistics. */
  if (strcmp(verdict, "rejected") == 0) {
    e->stats.rejected++;
    emu_counts_add(&e->stats.rejected_by_code, a->code);
  } else if (strcmp(verdict, "throttled") == 0) {
    e->stats.throttled++;
  } else {
    e->stats.accepted++;
    if (fired) {
      e->stats.faulted++;
      emu_counts_add(&e->stats.faults_by_kind,
                     emu_fault_kind_name(fired->kind));
    } else if (strcmp(a->code, "OK") == 0) {
      e->stats.ok++;
    }
  }
  emu_counts_add(&e->stats.answers_by_code, a->code);
  emu_faults_expire(&e->faults, now);
  pthread_mutex_unlock(&e->lock);
  if (e->log &&
      log_line(&line, rq, &au, a, rid, verdict, fired, delay) == CHATAPP_OK)
    emu_log_line(e->log, line.ptr, line.len);
  ca_buf_free(&line);
  emu_auth_free(&au);
}

/*
 * The request log file: each line is written with one fwrite and flushed
 * at once, under its own lock, so a test can read the file while the
 * emulator runs and never sees half a line.
 */
struct emu_log {
  FILE *f;
  int owned; /* close on free (not stdout) */
  pthread_mutex_t lock;
};

emu_log *emu_log_open(const char *path)
{
  emu_log *l = calloc(1, sizeof *l);

  if (!l)
    return NULL;
  if (strcmp(path, "-") == 0) {
    l->f = stdout;
  } else {
    l->f = fopen(path, "ae");
    l->owned = 1;
  }
  if (!l->f || setvbuf(l->f, NULL, _IOLBF, 0) != 0 ||
      pthread_mutex_init(&l->lock, NULL) != 0) {
    int saved = errno;
    if (l->f && l->owned)
      fclose(l->f);
    free(l);
    errno = saved;
    return NULL;
  }
  return l;
}

void emu_log_close(emu_log *l)
{
  if (!l)
    return;
  fflush(l->f);
  if (l->owned)
    fclose(l->f);
  pthread_mutex_destroy(&l->lock);
  free(l);
}

void emu_log_line(emu_log *l, const char *json, size_t len)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->lock);
  if (fwrite(json, 1, len, l->f) == len)
    (void)fputc('\n', l->f);
  (void)fflush(l->f);
  pthread_mutex_unlock(&l->lock);
}
