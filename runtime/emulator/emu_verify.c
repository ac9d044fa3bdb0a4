/*
 * emu_verify.c: check a request's signature the way Alibaba's gateway does,
 * by recomputing it with the runtime's own signer (ca_sign.h) from what was
 * received: the query string percent-decoded, the headers named in
 * SignedHeaders (V3), the form body (legacy: its parameters are signed; V3:
 * its bytes are hashed).  The comparison is constant-time.
 *
 * Order of checks (the first failure answers):
 *   path and method, query/body encoding  InvalidApi.NotFound,
 *                                         UnsupportedHTTPMethod,
 *                                         InvalidParameter
 *   shape of the signature parts          IncompleteSignature,
 *                                         MissingParameter
 *   AccessKeyId                           InvalidAccessKeyId.NotFound/.Inactive
 *   STS token                             MissingSecurityToken,
 *                                         InvalidSecurityToken.*
 *   timestamp within the skew             InvalidTimeStamp.Format/.Expired
 *   payload hash, signed header set (V3)  SignatureDoesNotMatch,
 *                                         IncompleteSignature
 *   the signature                         SignatureDoesNotMatch (with the
 *                                         server's string to sign)
 *   nonce not seen before                 SignatureNonceUsed
 *   API version                           InvalidVersion
 */
#include "emu.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca_crypto.h"

#define V3_ALGO "ACS3-HMAC-SHA256"

void emu_auth_init(emu_auth *a)
{
  memset(a, 0, sizeof *a);
  ca_buf_init(&a->message, 64 * 1024);
  ca_buf_init(&a->signed_headers, 64 * 1024);
}

void emu_auth_free(emu_auth *a)
{
  ca_buf_free(&a->message);
  ca_buf_free(&a->signed_headers);
  free(a->access_key_id);
  free(a->nonce);
  free(a->action);
  free(a->version);
  emu_kvs_free(&a->params);
  emu_key_clear(&a->issued);
  memset(a, 0, sizeof *a);
}

__attribute__((format(printf, 4, 5))) static void
fail(emu_auth *a, unsigned status, const char *code, const char *fmt, ...)
{
  va_list ap;

  a->code = code;
  a->status = status;
  ca_buf_reset(&a->message);
  va_start(ap, fmt);
  if (ca_buf_vprintf(&a->message, fmt, ap) != CHATAPP_OK)
    ca_buf_reset(&a->message);
  va_end(ap);
}

static void missing(emu_auth *a, const char *name)
{
  fail(a, 400, "MissingParameter",
       "The input parameter \"%s\" that is mandatory for processing this "
       "request is not supplied.",
       name);
}

static char *dup_or_null(const char *s)
{
  return s ? strdup(s) : NULL;
}

/* Shared by both schemes: key, token and timestamp.  0 when all hold. */
static int check_key_token_time(emu *e, emu_auth *a, const char *token,
                                const char *timestamp, const char *ts_name)
{
  const emu_key *k = emu_keys_find(&e->keys, a->access_key_id);
  int64_t ts, now_ms = emu_wall_ms(), now = now_ms / 1000;

  if (!k) {
    /* A temporary key issued by AssumeRole, the metadata service or the
     * credentials URI (emu_sts_keys.c), copied: the table may change. */
    int r = emu_sts_find_key(e, a->access_key_id, &a->issued);
    if (r < 0) {
      fail(a, 500, "InternalError", "Out of memory.");
      return -1;
    }
    if (r > 0)
      k = &a->issued;
  }
  if (!k) {
    fail(a, 404, "InvalidAccessKeyId.NotFound",
         "Specified access key is not found.");
    return -1;
  }
  a->key = k;
  if (k->disabled) {
    fail(a, 400, "InvalidAccessKeyId.Inactive",
         "Specified access key is disabled.");
    return -1;
  }
  if (k->token && (!token || !*token)) {
    fail(a, 400, "MissingSecurityToken",
         "SecurityToken is mandatory for this action.");
    return -1;
  }
  if (token && *token && !(k->token && emu_ct_equal(k->token, token))) {
    if (emu_keys_find_token(&e->keys, token) || emu_sts_token_known(e, token))
      fail(a, 400, "InvalidSecurityToken.MismatchWithAccessKey",
           "The Security Token does not match access key Id.");
    else
      fail(a, 400, "InvalidSecurityToken.Malformed",
           "Specified SecurityToken is malformed.");
    return -1;
  }
  if (k->expires && now_ms >= k->expires * 1000) {
    if (k->token)
      fail(a, 400, "InvalidSecurityToken.Expired",
           "Specified SecurityToken is expired.");
    else
      fail(a, 400, "InvalidAccessKeyId.Inactive",
           "Specified access key is expired.");
    return -1;
  }
  if (!timestamp) {
    missing(a, ts_name);
    return -1;
  }
  if (emu_parse_iso8601(timestamp, &ts) != 0) {
    fail(a, 400, "InvalidTimeStamp.Format",
         "Specified time stamp or date value is not well formatted. "
         "Expected YYYY-MM-DDThh:mm:ssZ, got \"%s\".",
         timestamp);
    return -1;
  }
  if (ts > now + e->skew_s || ts < now - e->skew_s) {
    fail(a, 400, "InvalidTimeStamp.Expired",
         "Specified time stamp or date value is expired. The %s %s is more "
         "than %lld seconds away from the server time.",
         ts_name, timestamp, (long long)e->skew_s);
    return -1;
  }
  return 0;
}

static int nonce_fresh(emu *e, emu_auth *a)
{
  int r;

  pthread_mutex_lock(&e->lock);
  r =
    emu_nonces_check_add(&e->nonces, a->access_key_id, a->nonce, emu_mono_us());
  pthread_mutex_unlock(&e->lock);
  if (r == 1) {
    fail(a, 400, "SignatureNonceUsed",
         "Specified signature nonce was used already.");
    return -1;
  }
  if (r < 0) {
    fail(a, 500, "InternalError",
         "The request processing has failed due "
         "to some unknown error (out of memory).");
    return -1;
  }
  return 0;
}

/* The last check of both schemes: the signature sent must be the one we
 * compute (the error quotes our string to sign, as Alibaba's does), and
 * then the nonce must be new. */
static void signature_verdict(emu *e, emu_auth *a, const char *computed,
                              const char *sent, const ca_buf *string_to_sign)
{
  if (!emu_ct_equal(computed, sent)) {
    fail(a, 400, "SignatureDoesNotMatch",
         "Specified signature is not matched with our calculation. server "
         "string to sign is:%s",
         ca_buf_str(string_to_sign));
    return;
  }
  nonce_fresh(e, a);
}

static int is_signable(const char *lname)
{
  return strcmp(lname, "host") == 0 || strcmp(lname, "content-type") == 0 ||
         strncmp(lname, "x-acs-", 6) == 0;
}

/* Does the ';'-list hold name (case-insensitive)? */
static int list_has(const char *list, const char *name)
{
  size_t n = strlen(name);
  const char *p = list;

  while (*p) {
    const char *q = strchr(p, ';');
    size_t l = q ? (size_t)(q - p) : strlen(p);
    if (l == n && strncasecmp(p, name, n) == 0)
      return 1;
    p += l;
    if (*p)
      p++;
  }
  return 0;
}

/* Value of "name=" inside the Authorization parameters, copied. */
static char *auth_part(const char *s, const char *name)
{
  size_t n = strlen(name);

  while (*s) {
    const char *end;
    while (*s == ' ' || *s == ',')
      s++;
    end = strchr(s, ',');
    if (!end)
      end = s + strlen(s);
    if ((size_t)(end - s) > n && strncmp(s, name, n) == 0 && s[n] == '=') {
      const char *v = s + n + 1, *ve = end;
      char *r;
      while (ve > v && ve[-1] == ' ')
        ve--;
      r = malloc((size_t)(ve - v) + 1);
      if (r) {
        memcpy(r, v, (size_t)(ve - v));
        r[ve - v] = '\0';
      }
      return r;
    }
    s = end;
  }
  return NULL;
}

static void verify_v3(emu *e, const emu_request *rq, const emu_kvs *query,
                      const char *auth, emu_auth *a)
{
  char *cred = NULL, *sh = NULL, *sig = NULL;
  ca_kv *hv = NULL;
  ca_v3_output out;
  ca_v3_input in;
  const char *date, *hash, *token, *akhdr;
  char body_hash[65];
  size_t i, nh = 0;
  const char *p;

  ca_v3_output_init(&out);
  a->scheme = EMU_SCHEME_V3;
  if (strncmp(auth, V3_ALGO " ", sizeof V3_ALGO) != 0) {
    fail(a, 400, "IncompleteSignature",
         "The request signature does not conform to Aliyun standards. "
         "Only " V3_ALGO " is supported in the Authorization header.");
    goto out;
  }
  auth += sizeof V3_ALGO;
  cred = auth_part(auth, "Credential");
  sh = auth_part(auth, "SignedHeaders");
  sig = auth_part(auth, "Signature");
  if (!cred || !*cred || !sh || !*sh || !sig || !*sig) {
    fail(a, 400, "IncompleteSignature",
         "The request signature does not conform to Aliyun standards. The "
         "Authorization header needs Credential, SignedHeaders and "
         "Signature.");
    goto out;
  }
  a->access_key_id = strdup(cred);
  a->action = dup_or_null(emu_kvs_geti(&rq->headers, "x-acs-action"));
  a->version = dup_or_null(emu_kvs_geti(&rq->headers, "x-acs-version"));
  a->nonce = dup_or_null(emu_kvs_geti(&rq->headers, "x-acs-signature-nonce"));
  if (ca_buf_adds(&a->signed_headers, sh) != CHATAPP_OK) {
    fail(a, 400, "IncompleteSignature", "SignedHeaders is too long.");
    goto out;
  }
  date = emu_kvs_geti(&rq->headers, "x-acs-date");
  hash = emu_kvs_geti(&rq->headers, "x-acs-content-sha256");
  token = emu_kvs_geti(&rq->headers, "x-acs-security-token");
  akhdr = emu_kvs_geti(&rq->headers, "x-acs-accesskey-id");
  if (!a->action) {
    missing(a, "x-acs-action");
    goto out;
  }
  if (!a->version) {
    missing(a, "x-acs-version");
    goto out;
  }
  if (!a->nonce || !*a->nonce) {
    missing(a, "x-acs-signature-nonce");
    goto out;
  }
  if (!hash) {
    missing(a, "x-acs-content-sha256");
    goto out;
  }
  if (akhdr && strcmp(akhdr, cred) != 0) {
    fail(a, 400, "IncompleteSignature",
         "The x-acs-accesskey-id header does not match the Credential of "
         "the Authorization header.");
    goto out;
  }
  if (check_key_token_time(e, a, token, date, "x-acs-date"))
    goto out;
  if (ca_sha256_hex(rq->body.ptr ? rq->body.ptr : "", rq->body.len,
                    body_hash) != CHATAPP_OK ||
      strcmp(hash, body_hash) != 0) {
    fail(a, 400, "SignatureDoesNotMatch",
         "Specified signature is not matched with our calculation. The "
         "x-acs-content-sha256 header is not the SHA-256 of the request "
         "body (server computed %s).",
         body_hash);
    goto out;
  }
  /* Every signed name was sent and may be signed; host, content-type and
   * every x-acs-* header that was sent are signed. */
  for (p = sh; *p;) {
    const char *q = strchr(p, ';');
    size_t l = q ? (size_t)(q - p) : strlen(p);
    char name[128];
    if (l == 0 || l >= sizeof name) {
      fail(a, 400, "IncompleteSignature",
           "SignedHeaders \"%s\" is not a ';'-separated list of header "
           "names.",
           sh);
      goto out;
    }
    memcpy(name, p, l);
    name[l] = '\0';
    for (i = 0; i < l; i++)
      if (name[i] >= 'A' && name[i] <= 'Z')
        name[i] = (char)(name[i] - 'A' + 'a');
    if (!is_signable(name)) {
      fail(a, 400, "IncompleteSignature",
           "SignedHeaders names \"%s\": only host, content-type and x-acs-* "
           "headers are signed.",
           name);
      goto out;
    }
    if (!emu_kvs_geti(&rq->headers, name)) {
      fail(a, 400, "IncompleteSignature",
           "SignedHeaders names \"%s\" but the request has no such header.",
           name);
      goto out;
    }
    p += l;
    if (*p)
      p++;
  }
  hv = calloc(rq->headers.n ? rq->headers.n : 1, sizeof *hv);
  if (!hv) {
    fail(a, 500, "InternalError", "Out of memory.");
    goto out;
  }
  for (i = 0; i < rq->headers.n; i++) {
    const ca_kv *h = &rq->headers.v[i];
    int signed_ = list_has(sh, h->key);
    if (!signed_ && (strcasecmp(h->key, "host") == 0 ||
                     strcasecmp(h->key, "content-type") == 0 ||
                     strncasecmp(h->key, "x-acs-", 6) == 0)) {
      fail(a, 400, "IncompleteSignature",
           "The header \"%s\" was sent but is not in SignedHeaders; host, "
           "content-type and every x-acs-* header must be signed.",
           h->key);
      goto out;
    }
    if (signed_)
      hv[nh++] = *h;
  }
  memset(&in, 0, sizeof in);
  in.method = rq->method;
  in.pathname = "/";
  in.query = query->v;
  in.nquery = query->n;
  in.headers = hv;
  in.nheaders = nh;
  in.body = rq->body.ptr;
  in.body_len = rq->body.len;
  in.access_key_id = a->access_key_id;
  in.access_key_secret = a->key->secret;
  if (ca_sign_v3(&in, &out) != CHATAPP_OK) {
    fail(a, 400, "IncompleteSignature", "The request is too large to sign.");
    goto out;
  }
  signature_verdict(e, a, out.signature, sig, &out.string_to_sign);
out:
  ca_v3_output_free(&out);
  free(hv);
  free(cred);
  free(sh);
  if (sig) {
    ca_wipe(sig, strlen(sig));
    free(sig);
  }
}

static void verify_rpc(emu *e, const emu_request *rq, emu_auth *a,
                       const char *sig)
{
  ca_rpc_output out;
  const emu_kvs *pv = &a->params;
  const char *m, *v, *akid;

  ca_rpc_output_init(&out);
  a->scheme = EMU_SCHEME_RPC;
  akid = emu_kvs_get(pv, "AccessKeyId");
  a->access_key_id = dup_or_null(akid);
  a->action = dup_or_null(emu_kvs_get(pv, "Action"));
  a->version = dup_or_null(emu_kvs_get(pv, "Version"));
  a->nonce = dup_or_null(emu_kvs_get(pv, "SignatureNonce"));
  m = emu_kvs_get(pv, "SignatureMethod");
  v = emu_kvs_get(pv, "SignatureVersion");
  if (!akid || !*akid) {
    missing(a, "AccessKeyId");
    goto out;
  }
  if (!m) {
    missing(a, "SignatureMethod");
    goto out;
  }
  if (strcmp(m, "HMAC-SHA1") != 0) {
    fail(a, 400, "InvalidSignatureMethod",
         "Specified signature method \"%s\" is not supported; use "
         "HMAC-SHA1.",
         m);
    goto out;
  }
  if (!v) {
    missing(a, "SignatureVersion");
    goto out;
  }
  if (strcmp(v, "1.0") != 0) {
    fail(a, 400, "IncompleteSignature",
         "Specified SignatureVersion \"%s\" is not supported; use 1.0.", v);
    goto out;
  }
  if (!a->action) {
    missing(a, "Action");
    goto out;
  }
  if (!a->version) {
    missing(a, "Version");
    goto out;
  }
  if (!a->nonce || !*a->nonce) {
    missing(a, "SignatureNonce");
    goto out;
  }
  if (check_key_token_time(e, a, emu_kvs_get(pv, "SecurityToken"),
                           emu_kvs_get(pv, "Timestamp"), "Timestamp"))
    goto out;
  if (ca_sign_rpc(rq->method, pv->v, pv->n, a->key->secret, &out) !=
      CHATAPP_OK) {
    fail(a, 400, "IncompleteSignature", "The request is too large to sign.");
    goto out;
  }
  signature_verdict(e, a, out.signature, sig, &out.string_to_sign);
out:
  ca_rpc_output_free(&out);
}

void emu_verify(emu *e, const emu_request *rq, emu_auth *a)
{
  emu_verify_version(e, rq, a, EMU_API_VERSION);
}

void emu_verify_version(emu *e, const emu_request *rq, emu_auth *a,
                        const char *version)
{
  emu_kvs query = {0}, form = {0};
  const char *q = strchr(rq->raw_uri, '?');
  size_t pathlen = q ? (size_t)(q - rq->raw_uri) : strlen(rq->raw_uri);
  const char *ctype = emu_kvs_geti(&rq->headers, "content-type");
  const char *auth = emu_kvs_geti(&rq->headers, "authorization");
  const char *sig = NULL;
  char *sigcopy = NULL;
  size_t i, nsig = 0;

  if (pathlen != 1 || rq->raw_uri[0] != '/') {
    fail(a, 404, "InvalidApi.NotFound",
         "Specified api is not found, please check your url and method. "
         "CAMS is an RPC API served at \"/\".");
    goto out;
  }
  if (strcmp(rq->method, "POST") != 0 && strcmp(rq->method, "GET") != 0) {
    fail(a, 400, "UnsupportedHTTPMethod",
         "Specified HTTP method \"%s\" is not supported; use POST or GET.",
         rq->method);
    goto out;
  }
  if (q && emu_parse_urlencoded(q + 1, strlen(q + 1), &query) != 0) {
    fail(a, 400, "InvalidParameter",
         "The query string is not valid percent-encoding (or holds %%00).");
    goto out;
  }
  if (ctype &&
      strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0 &&
      emu_parse_urlencoded(ca_buf_str(&rq->body), rq->body.len, &form) != 0) {
    fail(a, 400, "InvalidParameter",
         "The form body is not valid percent-encoding (or holds %%00).");
    goto out;
  }
  /* The call's parameters: query then form body, minus Signature. */
  for (i = 0; i < query.n + form.n; i++) {
    const ca_kv *kv = i < query.n ? &query.v[i] : &form.v[i - query.n];
    if (strcmp(kv->key, "Signature") == 0) {
      sig = kv->value;
      nsig++;
      continue;
    }
    if (emu_kvs_add(&a->params, kv->key, strlen(kv->key), kv->value,
                    strlen(kv->value)) != CHATAPP_OK) {
      fail(a, 500, "InternalError", "Out of memory.");
      goto out;
    }
  }
  if (auth) {
    verify_v3(e, rq, &query, auth, a);
  } else if (nsig == 1) {
    sigcopy = strdup(sig);
    if (!sigcopy) {
      fail(a, 500, "InternalError", "Out of memory.");
      goto out;
    }
    verify_rpc(e, rq, a, sigcopy);
  } else if (nsig > 1) {
    a->scheme = EMU_SCHEME_RPC;
    fail(a, 400, "IncompleteSignature",
         "The Signature parameter is given more than once.");
  } else {
    fail(a, 400, "IncompleteSignature",
         "The request signature does not conform to Aliyun standards: no "
         "Authorization header and no Signature parameter.");
  }
  if (!a->code && strcmp(a->version, version) != 0)
    fail(a, 400, "InvalidVersion",
         "Specified parameter Version \"%s\" is not valid; %s is "
         "%s.",
         a->version, strcmp(version, EMU_API_VERSION) == 0 ? "CAMS" : "STS",
         version);
out:
  if (sigcopy) {
    ca_wipe(sigcopy, strlen(sigcopy));
    free(sigcopy);
  }
  emu_kvs_free(&query);
  emu_kvs_free(&form);
}
