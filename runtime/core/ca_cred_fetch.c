/*
 * ca_cred_fetch: the protocols of the role providers (ca_cred_provider.h;
 * facts: docs/credentials.md and the reference credentials-roles.md):
 *
 *   STS AssumeRole          POST https://STS/?common params, form body,
 *                           RPC v1 HMAC-SHA1 over query + body
 *   STS AssumeRoleWithOIDC  the same, anonymous (no key, no signature)
 *   metadata service        PUT /latest/api/token, then
 *                           GET /latest/meta-data/ram/security-credentials/
 *   credentials URI         GET URI
 *
 * The external command is in ca_cred_process.c, the answers' parser in
 * ca_cred_answer.c.  Every HTTP request is a plain-HTTP call of the
 * provider's ca_client: the transport rules, timeouts, size caps and retry
 * classification of every other call.  Answers hold secrets: their buffers
 * are wiped before free.
 */
#include "ca_cred_int.h"
#include "ca_cred_prov_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca_api.h"
#include "ca_client_int.h"
#include "ca_config.h"
#include "ca_crypto.h"
#include "ca_json.h"
#include "ca_sign.h"

#define OIDC_TOKEN_MAX   (64 * 1024) /* bytes of an OIDC token file */
#define DEFAULT_DURATION 3600
#define MIN_DURATION     900

void cred_wipe_buf(ca_buf *b)
{
  if (b->ptr)
    ca_wipe(b->ptr, b->len);
}

/* ---- HTTP --------------------------------------------------------------- */

/*
 * One plain-HTTP call of the provider's client.  CHATAPP_OK with the
 * status and the body (the caller wipes it) when an answer came, whatever
 * its status; the transport's failure otherwise, its message in err.
 */
static chatapp_status http_do(ca_cred_provider *p, const char *what,
                              const char *method, const char *url,
                              const ca_kv *h, size_t nh, const char *body,
                              int metadata, int attempts, long *status,
                              ca_buf *out, char *err, size_t errlen)
{
  ca_call *call =
    ca_call_new_http(method, url, h, nh, body, body ? strlen(body) : 0);
  chatapp_status st;

  *status = 0;
  if (!call) {
    snprintf(err, errlen, "%s: out of memory", what);
    return CHATAPP_ENOMEM;
  }
  call->timeout_ms = p->timeout_ms;
  call->max_attempts = attempts;
  call->allow_metadata = metadata;
  st = ca_client_perform(p->http, &call, 1);
  if (!st && call->http_status == 0)
    st = call->status ? call->status : CHATAPP_ETRANSPORT;
  if (st) {
    snprintf(err, errlen, "%s: %s", what,
             call->error[0] ? call->error : chatapp_strerror(st));
  } else {
    *status = call->http_status;
    st = ca_buf_add(out, call->body.ptr ? call->body.ptr : "", call->body.len);
    if (st)
      snprintf(err, errlen, "%s: the answer is over %zu bytes", what, out->max);
  }
  cred_wipe_buf(&call->body);
  cred_wipe_buf(&call->req_body);
  ca_call_free(call);
  return st;
}

/* The Code and Message of an error answer, for the message (they hold no
 * secret: STS writes them). */
static void api_error(const char *what, long status, const ca_buf *b, char *err,
                      size_t errlen)
{
  ca_json_doc *doc =
    b->len ? ca_json_parse(b->ptr, b->len, 8, CA_JSON_WIPE, NULL, 0) : NULL;
  const ca_json *root = doc ? ca_json_root(doc) : NULL;
  const char *code = root ? ca_json_get_str(root, "Code") : NULL;
  const char *msg = root ? ca_json_get_str(root, "Message") : NULL;
  char sc[128], sm[256];
  const char *hint = "";

  if (code && strncmp(code, "InvalidAccessKeyId", 18) == 0)
    hint = "; check the source AccessKey";
  else if (code && strcmp(code, "SignatureDoesNotMatch") == 0)
    hint = "; check the source AccessKey secret";
  else if (code && strcmp(code, "NoPermission") == 0)
    hint = "; the role's trust policy must allow this caller";
  if (code)
    snprintf(err, errlen, "%s: HTTP %ld %s: %s%s", what, status,
             cred_shown(sc, sizeof sc, code),
             msg ? cred_shown(sm, sizeof sm, msg) : "(no Message)", hint);
  else
    snprintf(err, errlen, "%s: HTTP %ld", what, status);
  ca_json_free(doc);
}

/* The Code of an answer ("" when none). */
static void answer_code(const ca_buf *b, char *out, size_t n)
{
  ca_json_doc *doc =
    b->len ? ca_json_parse(b->ptr, b->len, 8, CA_JSON_WIPE, NULL, 0) : NULL;
  const char *code = doc ? ca_json_get_str(ca_json_root(doc), "Code") : NULL;

  snprintf(out, n, "%s", code ? code : "");
  ca_json_free(doc);
}

/* Add "name=value" (percent-encoded) with a separator. */
static chatapp_status add_param(ca_buf *b, const char *k, const char *v)
{
  chatapp_status st = CHATAPP_OK;

  if (b->len)
    st = ca_buf_addc(b, '&');
  if (!st)
    st = ca_pct_encode(b, k, strlen(k));
  if (!st)
    st = ca_buf_addc(b, '=');
  if (!st)
    st = ca_pct_encode(b, v, strlen(v));
  return st;
}

/* The session name: the setting, else chatapp-run-<ms epoch>. */
static const char *session_name(const ca_cred_role *r, char *buf, size_t n)
{
  struct timespec ts;

  if (r->session_name)
    return r->session_name;
  clock_gettime(CLOCK_REALTIME, &ts);
  snprintf(buf, n, "chatapp-run-%lld",
           (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return buf;
}

/* Read the OIDC token file: it is re-read at each refresh (ACK renews it);
 * it may be a symbolic link (projected volumes are), must be a regular
 * file (O_NONBLOCK: a FIFO does not hang the open) of at most
 * OIDC_TOKEN_MAX bytes. */
static chatapp_status read_token_file(const char *path, char **out, char *err,
                                      size_t errlen)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat sf;
  char sp[256];
  size_t got = 0;
  char *buf;

  *out = NULL;
  cred_shown(sp, sizeof sp, path);
  if (fd < 0) {
    snprintf(err, errlen, "cannot open the OIDC token file %s: %s", sp,
             strerror(errno));
    return CHATAPP_ECREDENTIALS;
  }
  if (fstat(fd, &sf) != 0 || !S_ISREG(sf.st_mode)) {
    snprintf(err, errlen, "the OIDC token file %s is not a regular file", sp);
    close(fd);
    return CHATAPP_ECREDENTIALS;
  }
  if (sf.st_size <= 0 || sf.st_size > OIDC_TOKEN_MAX) {
    snprintf(err, errlen,
             "the OIDC token file %s is %s (%lld bytes; at most %d)", sp,
             sf.st_size <= 0 ? "empty" : "too large", (long long)sf.st_size,
             OIDC_TOKEN_MAX);
    close(fd);
    return CHATAPP_ECREDENTIALS;
  }
  buf = malloc((size_t)sf.st_size + 1);
  if (!buf) {
    close(fd);
    return CHATAPP_ENOMEM;
  }
  while (got < (size_t)sf.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)sf.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  buf[got] = '\0';
  if (got == 0 || strlen(buf) != got) {
    snprintf(err, errlen, "the OIDC token file %s is empty or holds NUL bytes",
             sp);
    ca_wipe(buf, got);
    free(buf);
    return CHATAPP_ECREDENTIALS;
  }
  *out = buf;
  return CHATAPP_OK;
}

/* STS AssumeRole (signed) or AssumeRoleWithOIDC (anonymous). */
static chatapp_status fetch_sts(ca_cred_provider *p, cred_fetched *out,
                                char *err, size_t errlen)
{
  const ca_cred_role *r = p->role;
  int oidc = p->kind == CA_CRED_OIDC;
  const char *action = oidc ? "AssumeRoleWithOIDC" : "AssumeRole";
  ca_buf q = CA_BUF_INIT(1 << 20), body = CA_BUF_INIT(1 << 20),
         url = CA_BUF_INIT(1 << 20), ans = CA_BUF_INIT(CRED_ANSWER_MAX);
  ca_kv params[20], hdr[2];
  size_t np = 0, nq, nh = 0, i;
  char date[21], nonce[33], dur[24], sess[64], what[160];
  char *oidc_token = NULL;
  const char *provider_hdr = "static_ak";
  int attempt, max_attempts = p->http && p->http->max_attempts > 0
                                ? p->http->max_attempts
                                : 3;
  long status = 0;
  chatapp_status st;
  long d = r->duration_s ? r->duration_s : DEFAULT_DURATION;

  snprintf(what, sizeof what, "STS %s at %s", action, p->sts_url);
  if (d < MIN_DURATION) {
    snprintf(err, errlen,
             "%s: the session duration %ld s is under the %d s STS accepts",
             what, d, MIN_DURATION);
    return CHATAPP_ECONFIG;
  }
  if (!oidc) {
    char e2[CRED_ERR_MAX];
    st = ca_cred_provider_sync(p->source, &p->src_cur, NULL, e2, sizeof e2);
    pthread_mutex_lock(&p->source->mu);
    pthread_mutex_lock(&p->mu);
    (void)ca_secrets_merge(&p->secrets, &p->source->secrets);
    if (p->http)
      (void)ca_secrets_merge(&p->http->secrets, &p->secrets);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->source->mu);
    if (st) {
      snprintf(err, errlen, "the source credentials of AssumeRole: %s", e2);
      return st;
    }
    if (p->source->kind != CA_CRED_STATIC)
      provider_hdr = "ram_role_arn";
    else if (p->src_cur.token)
      provider_hdr = "static_sts";
  } else {
    st = read_token_file(r->oidc_token_file, &oidc_token, err, errlen);
    if (st)
      return st;
    cred_note_secret(p, oidc_token);
  }
  /* Each attempt is signed anew (date, nonce): a retry of a signed
   * request would be refused as SignatureNonceUsed.  What is retried is
   * what a CAMS call retries (ca_classify_answer, transport failures). */
  for (attempt = 1;; attempt++) {
    char code[128];
    cred_wipe_buf(&q);
    cred_wipe_buf(&body);
    cred_wipe_buf(&url);
    cred_wipe_buf(&ans);
    ca_buf_reset(&q);
    ca_buf_reset(&body);
    ca_buf_reset(&url);
    ca_buf_reset(&ans);
    np = 0;
    ca_iso8601((long long)time(NULL), date);
    st = ca_nonce(nonce);
    if (st) {
      snprintf(err, errlen, "%s: no random nonce", what);
      goto out;
    }
    snprintf(dur, sizeof dur, "%ld", d);
    params[np++] = (ca_kv){"Version", "2015-04-01"};
    params[np++] = (ca_kv){"Action", action};
    params[np++] = (ca_kv){"Format", "JSON"};
    params[np++] = (ca_kv){"Timestamp", date};
    if (!oidc) {
      params[np++] = (ca_kv){"SignatureMethod", "HMAC-SHA1"};
      params[np++] = (ca_kv){"SignatureVersion", "1.0"};
      params[np++] = (ca_kv){"SignatureNonce", nonce};
      params[np++] = (ca_kv){"AccessKeyId", p->src_cur.id};
      if (p->src_cur.token)
        params[np++] = (ca_kv){"SecurityToken", p->src_cur.token};
    }
    nq = np;
    params[np++] = (ca_kv){"RoleArn", r->role_arn};
    if (oidc) {
      params[np++] = (ca_kv){"OIDCProviderArn", r->oidc_provider_arn};
      params[np++] = (ca_kv){"OIDCToken", oidc_token};
    }
    if (r->policy)
      params[np++] = (ca_kv){"Policy", r->policy};
    if (!oidc && r->external_id)
      params[np++] = (ca_kv){"ExternalId", r->external_id};
    params[np++] =
      (ca_kv){"RoleSessionName", session_name(r, sess, sizeof sess)};
    params[np++] = (ca_kv){"DurationSeconds", dur};
    for (i = 0; i < nq && !st; i++)
      st = add_param(&q, params[i].key, params[i].value);
    for (i = nq; i < np && !st; i++)
      st = add_param(&body, params[i].key, params[i].value);
    if (!st && !oidc) {
      ca_rpc_output sig;
      ca_rpc_output_init(&sig);
      st = ca_sign_rpc("POST", params, np, p->src_cur.secret, &sig);
      if (!st)
        st = add_param(&q, "Signature", sig.signature);
      ca_rpc_output_free(&sig);
    }
    if (!st)
      st = ca_buf_printf(&url, "%s/?%s", p->sts_url, ca_buf_str(&q));
    if (st) {
      snprintf(err, errlen, "%s: the request could not be built (%s)", what,
               chatapp_strerror(st));
      goto out;
    }
    nh = 0;
    hdr[nh++] = (ca_kv){"Content-Type", "application/x-www-form-urlencoded"};
    if (!oidc)
      hdr[nh++] = (ca_kv){"x-acs-credentials-provider", provider_hdr};
    st = http_do(p, what, "POST", ca_buf_str(&url), hdr, nh, ca_buf_str(&body),
                 0, 1, &status, &ans, err, errlen);
    if (st == CHATAPP_ENOMEM || st == CHATAPP_ECONFIG || st == CHATAPP_ETOOBIG)
      goto out;
    if (!st && status == 200)
      break;
    if (!st) {
      api_error(what, status, &ans, err, errlen);
      answer_code(&ans, code, sizeof code);
      if (ca_classify_answer(status, code[0] ? code : NULL) ==
          CA_ANSWER_FINAL) {
        st = CHATAPP_ECREDENTIALS;
        goto out;
      }
    }
    if (attempt >= max_attempts || ca_interrupted()) {
      st = CHATAPP_ECREDENTIALS;
      goto out;
    }
    {
      /* 100 ms, 200 ms, ... (at most 2 s) plus up to as much jitter */
      long ms = 100L << (attempt - 1 < 5 ? attempt - 1 : 5);
      uint32_t rnd = 0;
      struct timespec ts;
      if (ms > 2000)
        ms = 2000;
      ca_random(&rnd, sizeof rnd);
      ms += (long)(rnd % (uint32_t)ms);
      ts.tv_sec = ms / 1000;
      ts.tv_nsec = (ms % 1000) * 1000000L;
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    }
  }
  {
    char e2[256];
    st = ca_cred_parse_answer(p->kind, ans.ptr, ans.len, &out->id, &out->secret,
                              &out->token, &out->exp, e2, sizeof e2);
    if (st)
      snprintf(err, errlen, "%s: %s", what, e2);
  }
out:
  cred_wipe_buf(&q);
  cred_wipe_buf(&body);
  cred_wipe_buf(&url);
  cred_wipe_buf(&ans);
  ca_buf_free(&q);
  ca_buf_free(&body);
  ca_buf_free(&url);
  ca_buf_free(&ans);
  if (oidc_token) {
    ca_wipe(oidc_token, strlen(oidc_token));
    free(oidc_token);
  }
  return st == CHATAPP_ETRANSPORT || st == CHATAPP_ETIMEDOUT ||
             st == CHATAPP_EPARSE || st == CHATAPP_ETOOBIG
           ? CHATAPP_ECREDENTIALS
           : st;
}

/* ---- the ECS metadata service ------------------------------------------- */

static chatapp_status fetch_ecs(ca_cred_provider *p, cred_fetched *out,
                                char *err, size_t errlen)
{
  const ca_cred_role *r = p->role;
  ca_buf ans = CA_BUF_INIT(CRED_ANSWER_MAX), url = CA_BUF_INIT(4096);
  char *token = NULL, *name = NULL, what[160];
  ca_kv h[1];
  long status = 0;
  chatapp_status st;
  char e2[CRED_ERR_MAX];

  /* 1. the IMDSv2 token */
  ca_buf_printf(&url, "%s/latest/api/token", p->md_url);
  h[0] = (ca_kv){"x-aliyun-ecs-metadata-token-ttl-seconds", "21600"};
  snprintf(what, sizeof what, "the metadata service %s", p->md_url);
  st = http_do(p, what, "PUT", ca_buf_str(&url), h, 1, "", 1, 0, &status, &ans,
               e2, sizeof e2);
  if (st) {
    /* No answer at all: the service is not there (off ECS); IMDSv1 lives
     * at the same address, so there is nothing else to try. */
    snprintf(err, errlen, "%s (not on an ECS instance?)", e2);
    st = CHATAPP_ECREDENTIALS;
    goto out;
  }
  if (status == 200 && ans.len > 0 && ans.len < 4096 && cred_usable(ans.ptr)) {
    token = strndup(ans.ptr, ans.len);
    if (!token) {
      st = CHATAPP_ENOMEM;
      goto out;
    }
    cred_note_secret(p, token);
  } else if (r->imdsv1_off) {
    snprintf(err, errlen,
             "%s: the IMDSv2 token request answered HTTP %ld, and "
             "ALIBABA_CLOUD_IMDSV1_DISABLED=true forbids going on without a "
             "token",
             what, status);
    st = CHATAPP_ECREDENTIALS;
    goto out;
  }
  cred_wipe_buf(&ans);
  ca_buf_reset(&ans);
  if (token)
    h[0] = (ca_kv){"x-aliyun-ecs-metadata-token", token};

  /* 2. the role name, unless configured */
  if (!r->ecs_role) {
    size_t a, b;
    ca_buf_reset(&url);
    ca_buf_printf(&url, "%s/latest/meta-data/ram/security-credentials/",
                  p->md_url);
    st = http_do(p, what, "GET", ca_buf_str(&url), h, token ? 1 : 0, NULL, 1, 0,
                 &status, &ans, err, errlen);
    if (!st && status != 200) {
      snprintf(err, errlen,
               "%s: asking the role name answered HTTP %ld (has the instance "
               "a RAM role?)",
               what, status);
      st = CHATAPP_ECREDENTIALS;
    }
    if (st)
      goto out;
    for (a = 0; a < ans.len && (ans.ptr[a] == ' ' || ans.ptr[a] == '\n' ||
                                ans.ptr[a] == '\r' || ans.ptr[a] == '\t');
         a++)
      ;
    for (b = ans.len;
         b > a && (ans.ptr[b - 1] == ' ' || ans.ptr[b - 1] == '\n' ||
                   ans.ptr[b - 1] == '\r' || ans.ptr[b - 1] == '\t');
         b--)
      ;
    if (b == a || b - a > 128 || memchr(ans.ptr + a, '/', b - a) ||
        memchr(ans.ptr + a, '\n', b - a) || memchr(ans.ptr + a, '\0', b - a)) {
      snprintf(err, errlen,
               "%s: the role name it gave is not usable (empty, too long, "
               "or several lines)",
               what);
      st = CHATAPP_ECREDENTIALS;
      goto out;
    }
    name = strndup(ans.ptr + a, b - a);
    if (!name) {
      st = CHATAPP_ENOMEM;
      goto out;
    }
    free(p->ecs_found);
    p->ecs_found = strdup(name);
    ca_buf_reset(&ans);
  }

  /* 3. the credentials */
  ca_buf_reset(&url);
  ca_buf_printf(&url, "%s/latest/meta-data/ram/security-credentials/",
                p->md_url);
  ca_pct_encode(&url, r->ecs_role ? r->ecs_role : name,
                strlen(r->ecs_role ? r->ecs_role : name));
  st = http_do(p, what, "GET", ca_buf_str(&url), h, token ? 1 : 0, NULL, 1, 0,
               &status, &ans, err, errlen);
  if ((st || status != 200) && token && !r->imdsv1_off) {
    /* the tokened request failed: once more without the token */
    cred_wipe_buf(&ans);
    ca_buf_reset(&ans);
    st = http_do(p, what, "GET", ca_buf_str(&url), NULL, 0, NULL, 1, 0, &status,
                 &ans, err, errlen);
  }
  if (st) {
    st = CHATAPP_ECREDENTIALS;
    goto out;
  }
  if (status != 200) {
    snprintf(err, errlen, "%s: the role's credentials answered HTTP %ld%s",
             what, status,
             status == 404 ? " (no such role on this instance)" : "");
    st = CHATAPP_ECREDENTIALS;
    goto out;
  }
  {
    char e3[256];
    st =
      ca_cred_parse_answer(CA_CRED_ECS, ans.ptr, ans.len, &out->id,
                           &out->secret, &out->token, &out->exp, e3, sizeof e3);
    if (st) {
      snprintf(err, errlen, "%s: %s", what, e3);
      if (st != CHATAPP_ENOMEM)
        st = CHATAPP_ECREDENTIALS;
    }
  }
out:
  cred_wipe_buf(&ans);
  ca_buf_free(&ans);
  ca_buf_free(&url);
  if (token) {
    ca_wipe(token, strlen(token));
    free(token);
  }
  free(name);
  return st;
}

/* ---- the credentials URI ------------------------------------------------ */

static chatapp_status fetch_uri(ca_cred_provider *p, cred_fetched *out,
                                char *err, size_t errlen)
{
  ca_buf ans = CA_BUF_INIT(CRED_ANSWER_MAX);
  char what[512], e2[256];
  long status = 0;
  chatapp_status st;
  size_t n = strcspn(p->role->uri, "?#");

  snprintf(what, sizeof what, "the credentials URI %.*s%s",
           (int)(n > 300 ? 300 : n), p->role->uri,
           p->role->uri[n] ? "?..." : "");
  st = http_do(p, what, "GET", p->role->uri, NULL, 0, NULL, 0, 0, &status, &ans,
               err, errlen);
  if (!st && status != 200) {
    snprintf(err, errlen, "%s: HTTP %ld", what, status);
    st = CHATAPP_ECREDENTIALS;
  }
  if (!st) {
    st =
      ca_cred_parse_answer(CA_CRED_URI, ans.ptr, ans.len, &out->id,
                           &out->secret, &out->token, &out->exp, e2, sizeof e2);
    if (st)
      snprintf(err, errlen, "%s: %s", what, e2);
  }
  cred_wipe_buf(&ans);
  ca_buf_free(&ans);
  return st == CHATAPP_ENOMEM || !st ? st : CHATAPP_ECREDENTIALS;
}

chatapp_status cred_fetch(ca_cred_provider *p, cred_fetched *out, char *err,
                          size_t errlen)
{
  switch (p->kind) {
  case CA_CRED_RAM_ROLE:
  case CA_CRED_OIDC:
    return fetch_sts(p, out, err, errlen);
  case CA_CRED_ECS:
    return fetch_ecs(p, out, err, errlen);
  case CA_CRED_URI:
    return fetch_uri(p, out, err, errlen);
  case CA_CRED_PROCESS:
    return cred_fetch_process(p, out, err, errlen);
  default:
    snprintf(err, errlen, "nothing to fetch");
    return CHATAPP_ECREDENTIALS;
  }
}
