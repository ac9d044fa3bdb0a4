/*
 * Fuzz target: request signing's canonical strings (runtime/core/ca_sign.c):
 * percent-encoding, the V3 canonical query and request, and the legacy
 * (RPC) canonicalized query string.
 *
 * The input is up to 32 parameters, one a line, "key=value" (split at the
 * first '='; a line without one is a key with an empty value; a NUL ends a
 * line's text).  Each is signed both ways, as the client signs a call.
 *
 * Properties: no crash, no undefined behaviour, no leak; signing succeeds;
 * each canonical query is "k=v" pairs joined by '&', sorted by key
 * (its bytes), every byte an unreserved character or a %XX escape with
 * upper-case hex, and the pairs decode back to exactly the parameters
 * given (the same multiset); the whole input percent-encodes and decodes
 * back to itself; the signatures have their lengths; and no output holds
 * the secret (unless the input does, as a parameter).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXP   32
#define SECRET "fuzz-secret-Zq9xV7"

static int unreserved(unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1; /* lower case is not allowed either */
}

/* Decode s[0..n) into out (at least n + 1 bytes); -1 when not canonical. */
static int pct_decode(const char *s, size_t n, char *out, size_t *outn)
{
  size_t i, o = 0;

  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      int hi, lo;
      if (i + 2 >= n)
        return -1;
      hi = hexval(s[i + 1]);
      lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0)
        return -1;
      c = (unsigned char)(hi * 16 + lo);
      if (unreserved(c)) /* an unreserved byte is never escaped */
        return -1;
      out[o++] = (char)c;
      i += 2;
    } else if (unreserved(c)) {
      out[o++] = (char)c;
    } else {
      return -1;
    }
  }
  out[o] = '\0';
  *outn = o;
  return 0;
}

static int cmp_kv(const void *a, const void *b)
{
  const ca_kv *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  return c ? c : strcmp(x->value, y->value);
}

/* The canonical query q holds exactly the n parameters p. */
static void check_query(const char *what, const char *q, size_t qlen,
                        const ca_kv *p, size_t n)
{
  ca_kv got[MAXP], want[MAXP];
  char *copy = malloc(qlen + 1), *keys = malloc(qlen + 1),
       *vals = malloc(qlen + 1);
  size_t k = 0, i, start = 0, ko = 0, vo = 0;

  if (!copy || !keys || !vals)
    abort();
  memcpy(copy, q, qlen);
  copy[qlen] = '\0';
  if (n == 0 && qlen != 0) {
    fprintf(stderr, "%s: a query for no parameters: %s\n", what, q);
    abort();
  }
  for (i = 0; n > 0 && i <= qlen; i++) {
    if (i == qlen || copy[i] == '&') {
      char *pair = copy + start, *eq;
      size_t plen = i - start, kn, vn;
      copy[i] = '\0';
      eq = memchr(pair, '=', plen);
      if (!eq || k >= MAXP ||
          pct_decode(pair, (size_t)(eq - pair), keys + ko, &kn) ||
          pct_decode(eq + 1, plen - (size_t)(eq - pair) - 1, vals + vo, &vn)) {
        fprintf(stderr, "%s: not a canonical pair: %s\n", what, pair);
        abort();
      }
      /* sorted by key (the key's bytes, as Alibaba's SDKs sort) */
      if (k > 0 && strcmp(got[k - 1].key, keys + ko) > 0) {
        fprintf(stderr, "%s: not sorted: %s after %s\n", what, keys + ko,
                got[k - 1].key);
        abort();
      }
      got[k].key = keys + ko;
      got[k].value = vals + vo;
      ko += kn + 1;
      vo += vn + 1;
      k++;
      start = i + 1;
    }
  }
  if (k != n) {
    fprintf(stderr, "%s: %zu pairs for %zu parameters\n", what, k, n);
    abort();
  }
  memcpy(want, p, n * sizeof *p);
  qsort(got, n, sizeof *got, cmp_kv);
  qsort(want, n, sizeof *want, cmp_kv);
  for (i = 0; i < n; i++)
    if (strcmp(got[i].key, want[i].key) ||
        strcmp(got[i].value, want[i].value)) {
      fprintf(stderr, "%s: pair %zu decodes to %s=%s, not %s=%s\n", what, i,
              got[i].key, got[i].value, want[i].key, want[i].value);
      abort();
    }
  free(copy);
  free(keys);
  free(vals);
}

/* Set when the input itself holds the secret (as a parameter, it is in
 * the canonical strings as given). */
static int input_has_secret;

static void no_secret(const char *what, const ca_buf *b)
{
  if (!input_has_secret && b->len && strstr(ca_buf_str(b), SECRET)) {
    fprintf(stderr, "%s holds the secret\n", what);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *text = malloc(size + 1), *line;
  ca_kv p[MAXP];
  size_t n = 0, dn;
  ca_buf enc = CA_BUF_INIT(8 * 65536 + 64);
  static const ca_kv headers[] = {
    {"host", "cams.ap-southeast-1.aliyuncs.com"},
    {"x-acs-action", "QueryChatappPhoneNumbers"},
    {"x-acs-version", "2020-06-06"},
    {"x-acs-date", "2025-01-01T00:00:00Z"},
    {"x-acs-signature-nonce", "0123456789abcdef"},
    {"x-acs-content-sha256", CA_EMPTY_SHA256},
  };
  ca_v3_input in;
  ca_v3_output v3;
  ca_rpc_output rpc;
  char *dec;

  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  input_has_secret = memmem(data, size, SECRET, strlen(SECRET)) != NULL;

  /* percent-encoding round trip of the whole input */
  if (ca_pct_encode(&enc, (const char *)data, size) != CHATAPP_OK)
    abort();
  dec = malloc(enc.len + 1);
  if (!dec || pct_decode(ca_buf_str(&enc), enc.len, dec, &dn) || dn != size ||
      memcmp(dec, data, size) != 0) {
    fprintf(stderr, "percent-encoding does not decode back\n");
    abort();
  }
  free(dec);
  ca_buf_free(&enc);

  /* the parameters */
  line = text;
  while (n < MAXP && line && line < text + size) {
    char *nl = memchr(line, '\n', (size_t)(text + size - line)), *eq;
    if (nl)
      *nl = '\0';
    eq = strchr(line, '=');
    if (eq) {
      *eq = '\0';
      p[n].key = line;
      p[n].value = eq + 1;
    } else {
      p[n].key = line;
      p[n].value = "";
    }
    n++;
    line = nl ? nl + 1 : NULL;
  }

  memset(&in, 0, sizeof in);
  in.method = "POST";
  in.pathname = "/";
  in.query = p;
  in.nquery = n;
  in.headers = headers;
  in.nheaders = sizeof headers / sizeof headers[0];
  in.body = "";
  in.body_len = 0;
  in.access_key_id = "LTAIfuzzKey";
  in.access_key_secret = SECRET;
  ca_v3_output_init(&v3);
  if (ca_sign_v3(&in, &v3) != CHATAPP_OK) {
    fprintf(stderr, "V3 signing failed\n");
    abort();
  }
  check_query("V3 canonical query", ca_buf_str(&v3.canonical_query),
              v3.canonical_query.len, p, n);
  if (strlen(v3.signature) != 64)
    abort();
  no_secret("V3 canonical request", &v3.canonical_request);
  no_secret("V3 string to sign", &v3.string_to_sign);
  no_secret("V3 Authorization", &v3.authorization);
  ca_v3_output_free(&v3);

  ca_rpc_output_init(&rpc);
  if (ca_sign_rpc("POST", p, n, SECRET, &rpc) != CHATAPP_OK) {
    fprintf(stderr, "RPC signing failed\n");
    abort();
  }
  check_query("RPC canonicalized query", ca_buf_str(&rpc.canonical_query),
              rpc.canonical_query.len, p, n);
  if (strlen(rpc.signature) != 28)
    abort();
  no_secret("RPC string to sign", &rpc.string_to_sign);
  no_secret("RPC signed query", &rpc.signed_query);
  ca_rpc_output_free(&rpc);
  free(text);
  return 0;
}
