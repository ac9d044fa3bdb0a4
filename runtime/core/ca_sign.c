#include "ca_sign.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca_crypto.h"

/* Caps on what a request may carry: far above any real CAMS call. */
#define SIGN_MAX (1024 * 1024)

chatapp_status ca_pct_encode(ca_buf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789ABCDEF";
  chatapp_status st = CHATAPP_OK;
  size_t i;

  for (i = 0; i < n && !st; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      st = ca_buf_addc(b, (char)c);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      st = ca_buf_add(b, e, 3);
    }
  }
  return st;
}

void ca_iso8601(long long epoch_seconds, char out[21])
{
  time_t t = (time_t)epoch_seconds;
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int cmp_kv_key(const void *a, const void *b)
{
  const ca_kv *x = *(const ca_kv *const *)a, *y = *(const ca_kv *const *)b;
  return strcmp(x->key, y->key);
}

/* Pointers to kv[0..n) sorted by key (byte order); free() the result. */
static const ca_kv **sorted_by_key(const ca_kv *kv, size_t n)
{
  const ca_kv **v = malloc((n ? n : 1) * sizeof *v);
  size_t i;

  if (!v)
    return NULL;
  for (i = 0; i < n; i++)
    v[i] = &kv[i];
  qsort(v, n, sizeof *v, cmp_kv_key);
  return v;
}

/* name=encode(value)&... in key order; names encoded too (the SDK does not;
 * they agree for every real name: docs/internals/signing.md, V3). */
static chatapp_status canonical_query(ca_buf *b, const ca_kv *kv, size_t n)
{
  const ca_kv **v = sorted_by_key(kv, n);
  chatapp_status st = v ? CHATAPP_OK : CHATAPP_ENOMEM;
  size_t i;

  for (i = 0; i < n && !st; i++) {
    if (i)
      st = ca_buf_addc(b, '&');
    if (!st)
      st = ca_pct_encode(b, v[i]->key, strlen(v[i]->key));
    if (!st)
      st = ca_buf_addc(b, '=');
    if (!st)
      st = ca_pct_encode(b, v[i]->value, strlen(v[i]->value));
  }
  free(v);
  return st;
}

/* A signed header: lower-cased name and trimmed value, both owned. */
typedef struct sheader {
  char *name;
  char *value;
} sheader;

static int cmp_sheader(const void *a, const void *b)
{
  const sheader *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

static int is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

static int is_signed_header(const char *lname)
{
  return strcmp(lname, "host") == 0 || strcmp(lname, "content-type") == 0 ||
         strncmp(lname, "x-acs-", 6) == 0;
}

static char *lower_dup(const char *s)
{
  size_t n = strlen(s), i;
  char *r = malloc(n + 1);

  if (!r)
    return NULL;
  for (i = 0; i <= n; i++)
    r[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
  return r;
}

static char *trim_dup(const char *s)
{
  size_t n;
  char *r;

  while (*s && is_space(*s))
    s++;
  n = strlen(s);
  while (n && is_space(s[n - 1]))
    n--;
  r = malloc(n + 1);
  if (!r)
    return NULL;
  memcpy(r, s, n);
  r[n] = '\0';
  return r;
}

/*
 * CanonicalHeaders and SignedHeaders: select host, content-type and x-acs-*,
 * lower-case the names, trim the values, sort; a name given twice (in any
 * case) gets its sorted values joined with ',' as the official SDK does.
 */
static chatapp_status canonical_headers(const ca_kv *h, size_t n, ca_buf *ch,
                                        ca_buf *sh)
{
  sheader *v = calloc(n ? n : 1, sizeof *v);
  chatapp_status st = v ? CHATAPP_OK : CHATAPP_ENOMEM;
  size_t i, m = 0;

  for (i = 0; i < n && !st; i++) {
    char *name = lower_dup(h[i].key);
    if (!name) {
      st = CHATAPP_ENOMEM;
    } else if (!is_signed_header(name)) {
      free(name);
    } else {
      v[m].name = name;
      v[m].value = trim_dup(h[i].value);
      if (!v[m++].value)
        st = CHATAPP_ENOMEM;
    }
  }
  if (!st)
    qsort(v, m, sizeof *v, cmp_sheader);
  for (i = 0; i < m && !st; i++) {
    int same_as_prev = i > 0 && strcmp(v[i].name, v[i - 1].name) == 0;
    if (same_as_prev) {
      /* Replace the previous entry's "\n" with ",value\n". */
      ch->len--;
      st = ca_buf_printf(ch, ",%s\n", v[i].value);
      continue;
    }
    if (sh->len)
      st = ca_buf_addc(sh, ';');
    if (!st)
      st = ca_buf_adds(sh, v[i].name);
    if (!st)
      st = ca_buf_printf(ch, "%s:%s\n", v[i].name, v[i].value);
  }
  for (i = 0; i < m; i++) {
    free(v[i].name);
    free(v[i].value);
  }
  free(v);
  return st;
}

void ca_v3_output_init(ca_v3_output *out)
{
  memset(out, 0, sizeof *out);
  ca_buf_init(&out->canonical_query, SIGN_MAX);
  ca_buf_init(&out->canonical_headers, SIGN_MAX);
  ca_buf_init(&out->signed_headers, SIGN_MAX);
  ca_buf_init(&out->canonical_request, 3 * SIGN_MAX);
  ca_buf_init(&out->string_to_sign, 256);
  ca_buf_init(&out->authorization, SIGN_MAX);
}

void ca_v3_output_free(ca_v3_output *out)
{
  ca_buf_free(&out->canonical_query);
  ca_buf_free(&out->canonical_headers);
  ca_buf_free(&out->signed_headers);
  ca_buf_free(&out->canonical_request);
  ca_buf_free(&out->string_to_sign);
  ca_buf_free(&out->authorization);
}

chatapp_status ca_sign_v3(const ca_v3_input *in, ca_v3_output *o)
{
  ca_buf *cr = &o->canonical_request;
  chatapp_status st;

  st = ca_sha256_hex(in->body ? in->body : "", in->body_len, o->hashed_payload);
  if (!st)
    st = canonical_query(&o->canonical_query, in->query, in->nquery);
  if (!st)
    st = canonical_headers(in->headers, in->nheaders, &o->canonical_headers,
                           &o->signed_headers);
  if (!st)
    st = ca_buf_printf(cr, "%s\n%s\n%s\n%s\n%s\n%s", in->method, in->pathname,
                       ca_buf_str(&o->canonical_query),
                       ca_buf_str(&o->canonical_headers),
                       ca_buf_str(&o->signed_headers), o->hashed_payload);
  if (!st)
    st = ca_sha256_hex(cr->ptr, cr->len, o->hashed_canonical_request);
  if (!st)
    st = ca_buf_printf(&o->string_to_sign, "ACS3-HMAC-SHA256\n%s",
                       o->hashed_canonical_request);
  if (!st)
    st = ca_hmac_sha256_hex(
      in->access_key_secret, strlen(in->access_key_secret),
      o->string_to_sign.ptr, o->string_to_sign.len, o->signature);
  if (!st)
    st = ca_buf_printf(&o->authorization,
                       "ACS3-HMAC-SHA256 Credential=%s,SignedHeaders=%s,"
                       "Signature=%s",
                       in->access_key_id, ca_buf_str(&o->signed_headers),
                       o->signature);
  return st;
}

void ca_rpc_output_init(ca_rpc_output *out)
{
  memset(out, 0, sizeof *out);
  ca_buf_init(&out->canonical_query, SIGN_MAX);
  ca_buf_init(&out->string_to_sign, 3 * SIGN_MAX + 64);
  ca_buf_init(&out->signed_query, SIGN_MAX + 128);
}

void ca_rpc_output_free(ca_rpc_output *out)
{
  ca_buf_free(&out->canonical_query);
  ca_buf_free(&out->string_to_sign);
  ca_buf_free(&out->signed_query);
}

chatapp_status ca_sign_rpc(const char *method, const ca_kv *params, size_t n,
                           const char *secret, ca_rpc_output *o)
{
  ca_buf key = CA_BUF_INIT(SIGN_MAX);
  chatapp_status st;

  st = canonical_query(&o->canonical_query, params, n);
  if (!st)
    st = ca_buf_printf(&o->string_to_sign, "%s&%%2F&", method);
  if (!st)
    st = ca_pct_encode(&o->string_to_sign, o->canonical_query.ptr,
                       o->canonical_query.len);
  /* The HMAC key is the secret followed by '&'. */
  if (!st)
    st = ca_buf_printf(&key, "%s&", secret);
  if (!st)
    st = ca_hmac_sha1_b64(key.ptr, key.len, o->string_to_sign.ptr,
                          o->string_to_sign.len, o->signature);
  if (!st)
    st = ca_buf_printf(&o->signed_query,
                       "%s&Signature=", ca_buf_str(&o->canonical_query));
  if (!st)
    st = ca_pct_encode(&o->signed_query, o->signature, strlen(o->signature));
  ca_wipe(key.ptr, key.cap);
  ca_buf_free(&key);
  return st;
}
