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
 *   external command        argv split without a shell, JSON on stdout
 *
 * Every HTTP request is a plain-HTTP call of the provider's ca_client: the
 * transport rules, timeouts, size caps and retry classification of every
 * other call.  Answers hold secrets: their buffers are wiped before free.
 */
#include "ca_cred_int.h"
#include "ca_cred_prov_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_api.h"
#include "ca_client_int.h"
#include "ca_config.h"
#include "ca_crypto.h"
#include "ca_json.h"
#include "ca_sign.h"

#define OIDC_TOKEN_MAX   (64 * 1024) /* bytes of an OIDC token file */
#define ANSWER_MAX       (256 * 1024)
#define PROCESS_TIMEOUT  60 /* s */
#define DEFAULT_DURATION 3600
#define MIN_DURATION     900

extern char **environ;

static void wipe_buf(ca_buf *b)
{
  if (b->ptr)
    ca_wipe(b->ptr, b->len);
}

/* ---- parsing ------------------------------------------------------------ */

int64_t ca_cred_parse_time(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  struct tm tm;
  int i;
  static const char pat20[] = "dddd-dd-ddTdd:dd:ddZ";
  static const char pat24[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  const char *pat = n == 20 ? pat20 : n == 24 ? pat24 : NULL;
  time_t t;

  if (!pat)
    return -1;
  for (i = 0; pat[i]; i++) {
    if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
      return -1;
  }
  memset(&tm, 0, sizeof tm);
  tm.tm_year = atoi(s) - 1900;
  tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
  tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
  tm.tm_hour = (s[11] - '0') * 10 + (s[12] - '0');
  tm.tm_min = (s[14] - '0') * 10 + (s[15] - '0');
  tm.tm_sec = (s[17] - '0') * 10 + (s[18] - '0');
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return -1;
  t = timegm(&tm);
  return t == (time_t)-1 ? -1 : (int64_t)t;
}

/* A string member, non-empty, without NUL bytes; NULL otherwise. */
static const char *str_member(const ca_json *o, const char *key)
{
  const ca_json *m = o ? ca_json_get(o, key) : NULL;

  if (!m || m->type != CA_JSON_STRING || !m->str_len ||
      strlen(m->str) != m->str_len)
    return NULL;
  return m->str;
}

/* A credential string is printable ASCII without blanks (it goes into
 * headers and query strings). */
static int usable(const char *v)
{
  for (; v && *v; v++)
    if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
      return 0;
  return 1;
}

chatapp_status ca_cred_parse_answer(ca_cred_kind kind, const char *text,
                                    size_t len, char **id, char **secret,
                                    char **token, int64_t *exp, char *err,
                                    size_t errlen)
{
  const char *kid = "AccessKeyId", *ksec = "AccessKeySecret",
             *ktok = "SecurityToken", *kexp = "Expiration";
  const char *vid, *vsec, *vtok, *vexp, *code;
  const ca_json *root, *o;
  ca_json_doc *doc;
  char jerr[160];
  chatapp_status st = CHATAPP_EPARSE;
  int need_token = 1;

  *id = *secret = *token = NULL;
  *exp = 0;
  if (len > ANSWER_MAX) {
    snprintf(err, errlen, "the answer is over %d bytes", ANSWER_MAX);
    return CHATAPP_ETOOBIG;
  }
  doc = ca_json_parse(text, len, 16, CA_JSON_WIPE, jerr, sizeof jerr);
  if (!doc) {
    snprintf(err, errlen, "the answer is not JSON (%s)", jerr);
    return CHATAPP_EPARSE;
  }
  root = ca_json_root(doc);
  o = root->type == CA_JSON_OBJECT ? root : NULL;
  if (!o) {
    snprintf(err, errlen, "the answer is not a JSON object");
    goto out;
  }
  switch (kind) {
  case CA_CRED_RAM_ROLE:
  case CA_CRED_OIDC:
    o = ca_json_get(o, "Credentials");
    if (!o || o->type != CA_JSON_OBJECT) {
      snprintf(err, errlen, "the answer has no \"Credentials\" object");
      goto out;
    }
    break;
  case CA_CRED_ECS:
  case CA_CRED_URI:
    code = ca_json_get_str(o, "Code");
    if ((kind == CA_CRED_ECS || code) &&
        (!code || strcmp(code, "Success") != 0)) {
      snprintf(err, errlen, "the answer's Code is not \"Success\"");
      goto out;
    }
    break;
  case CA_CRED_PROCESS:
    kid = "access_key_id";
    ksec = "access_key_secret";
    ktok = "sts_token";
    kexp = "expiration";
    code = ca_json_get_str(o, "mode");
    need_token = code && strcasecmp(code, "StsToken") == 0;
    break;
  default:
    snprintf(err, errlen, "no parser for this kind of answer");
    goto out;
  }
  vid = str_member(o, kid);
  vsec = str_member(o, ksec);
  vtok = str_member(o, ktok);
  vexp = str_member(o, kexp);
  if (!vid || !vsec || (need_token && !vtok)) {
    snprintf(err, errlen, "the answer lacks %s",
             !vid    ? kid
             : !vsec ? ksec
                     : ktok);
    goto out;
  }
  if (!usable(vid) || !usable(vsec) || (vtok && !usable(vtok))) {
    snprintf(err, errlen,
             "the answer's credentials hold blanks or non-ASCII bytes");
    goto out;
  }
  if (vexp) {
    *exp = ca_cred_parse_time(vexp);
    if (*exp <= 0) {
      snprintf(err, errlen,
               "the answer's %s is not a time like 2026-01-02T03:04:05Z", kexp);
      *exp = 0;
      goto out;
    }
  } else if (kind != CA_CRED_PROCESS) {
    snprintf(err, errlen, "the answer lacks %s", kexp);
    goto out;
  }
  *id = strdup(vid);
  *secret = strdup(vsec);
  *token = vtok ? strdup(vtok) : NULL;
  if (!*id || !*secret || (vtok && !*token)) {
    snprintf(err, errlen, "out of memory");
    st = CHATAPP_ENOMEM;
    goto out;
  }
  st = CHATAPP_OK;
out:
  if (st) {
    free(*id);
    if (*secret) {
      ca_wipe(*secret, strlen(*secret));
      free(*secret);
    }
    if (*token) {
      ca_wipe(*token, strlen(*token));
      free(*token);
    }
    *id = *secret = *token = NULL;
    *exp = 0;
  }
  ca_json_free(doc);
  return st;
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
  wipe_buf(&call->body);
  wipe_buf(&call->req_body);
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
         url = CA_BUF_INIT(1 << 20), ans = CA_BUF_INIT(ANSWER_MAX);
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
    wipe_buf(&q);
    wipe_buf(&body);
    wipe_buf(&url);
    wipe_buf(&ans);
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
  wipe_buf(&q);
  wipe_buf(&body);
  wipe_buf(&url);
  wipe_buf(&ans);
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
  ca_buf ans = CA_BUF_INIT(ANSWER_MAX), url = CA_BUF_INIT(4096);
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
  if (status == 200 && ans.len > 0 && ans.len < 4096 && usable(ans.ptr)) {
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
  wipe_buf(&ans);
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
    wipe_buf(&ans);
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
  wipe_buf(&ans);
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
  ca_buf ans = CA_BUF_INIT(ANSWER_MAX);
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
  wipe_buf(&ans);
  ca_buf_free(&ans);
  return st == CHATAPP_ENOMEM || !st ? st : CHATAPP_ECREDENTIALS;
}

/* ---- the external command ----------------------------------------------- */

void ca_cred_argv_free(char **argv)
{
  size_t i;

  for (i = 0; argv && argv[i]; i++)
    free(argv[i]);
  free(argv);
}

char **ca_cred_split_argv(const char *cmd)
{
  size_t cap = 8, n = 0, len = strlen(cmd);
  char **argv = calloc(cap, sizeof *argv);
  char *word = malloc(len + 1);
  size_t w = 0;
  int in_word = 0;
  const char *s = cmd;

  if (!argv || !word)
    goto fail;
  for (;;) {
    char c = *s;
    if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
      if (in_word) {
        if (n + 2 > cap) {
          char **na = realloc(argv, cap * 2 * sizeof *argv);
          if (!na)
            goto fail;
          argv = na;
          cap *= 2;
        }
        /* word is not NUL-terminated: copy w bytes, not a string. */
        argv[n] = malloc(w + 1);
        if (!argv[n])
          goto fail;
        memcpy(argv[n], word, w);
        argv[n][w] = '\0';
        argv[++n] = NULL;
        w = 0;
        in_word = 0;
      }
      if (c == '\0')
        break;
      s++;
      continue;
    }
    in_word = 1;
    if (c == '\'') {
      const char *e = strchr(s + 1, '\'');
      if (!e)
        goto fail;
      memcpy(word + w, s + 1, (size_t)(e - s - 1));
      w += (size_t)(e - s - 1);
      s = e + 1;
    } else if (c == '"') {
      s++;
      while (*s && *s != '"') {
        if (*s == '\\' &&
            (s[1] == '"' || s[1] == '\\' || s[1] == '$' || s[1] == '`'))
          s++;
        word[w++] = *s++;
      }
      if (*s != '"')
        goto fail;
      s++;
    } else if (c == '\\') {
      if (!s[1])
        goto fail;
      word[w++] = s[1];
      s += 2;
    } else {
      word[w++] = c;
      s++;
    }
  }
  free(word);
  if (n == 0) {
    free(argv);
    return NULL;
  }
  return argv;
fail:
  free(word);
  ca_cred_argv_free(argv);
  return NULL;
}

static chatapp_status fetch_process(ca_cred_provider *p, cred_fetched *out,
                                    char *err, size_t errlen)
{
  char **argv = ca_cred_split_argv(p->role->process);
  ca_buf ans = CA_BUF_INIT(ANSWER_MAX);
  char **env = NULL, e2[256];
  size_t ne = 0;
  int fds[2] = {-1, -1}, status = 0, over = 0;
  pid_t pid;
  struct timespec t0, t;
  chatapp_status st = CHATAPP_ECREDENTIALS;

  if (!argv) {
    snprintf(err, errlen,
             "process_command is empty or has unbalanced quotes (it is split "
             "into words without a shell)");
    return CHATAPP_ECONFIG;
  }
  while (environ && environ[ne])
    ne++;
  env = calloc(ne + 1, sizeof *env);
  if (!env || pipe(fds) != 0) {
    snprintf(err, errlen, "the external command: %s", strerror(errno));
    goto out;
  }
  /* The child does not get the secret variables (ca_cred_child_env). */
  ca_cred_child_env(environ, env, NULL, NULL);
  pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "the external command: fork: %s", strerror(errno));
    goto out;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execvpe(argv[0], argv, env);
    _exit(127);
  }
  close(fds[1]);
  fds[1] = -1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct pollfd pf = {fds[0], POLLIN, 0};
    char buf[4096];
    long left;
    ssize_t n;
    clock_gettime(CLOCK_MONOTONIC, &t);
    left = (PROCESS_TIMEOUT - (t.tv_sec - t0.tv_sec)) * 1000;
    if (left <= 0) {
      over = 1;
      break;
    }
    if (poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
      break;
    if (!(pf.revents & (POLLIN | POLLHUP)))
      continue;
    n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (ca_buf_add(&ans, buf, (size_t)n) != CHATAPP_OK) {
      over = 2;
      ca_wipe(buf, sizeof buf);
      break;
    }
    ca_wipe(buf, (size_t)n);
  }
  if (over)
    kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (over) {
    snprintf(err, errlen,
             over == 1 ? "the external command %s ran over %d s"
                       : "the external command %s wrote too much (%d)",
             argv[0], over == 1 ? PROCESS_TIMEOUT : ANSWER_MAX);
    goto out;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(err, errlen, "the external command %.200s failed (%s %d)", argv[0],
             WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    goto out;
  }
  st = ca_cred_parse_answer(CA_CRED_PROCESS, ans.ptr ? ans.ptr : "", ans.len,
                            &out->id, &out->secret, &out->token, &out->exp, e2,
                            sizeof e2);
  if (st) {
    snprintf(err, errlen, "the external command %.200s: %s", argv[0], e2);
    if (st != CHATAPP_ENOMEM)
      st = CHATAPP_ECREDENTIALS;
  }
out:
  if (fds[0] >= 0)
    close(fds[0]);
  if (fds[1] >= 0)
    close(fds[1]);
  wipe_buf(&ans);
  ca_buf_free(&ans);
  free(env);
  ca_cred_argv_free(argv);
  return st;
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
    return fetch_process(p, out, err, errlen);
  default:
    snprintf(err, errlen, "nothing to fetch");
    return CHATAPP_ECREDENTIALS;
  }
}
