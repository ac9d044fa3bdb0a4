/*
 * The signer against every vector in tests/data/signing.json (computed by
 * the official Alibaba Cloud SDK): V3 and legacy, intermediates included.
 */
#include <stdlib.h>
#include <string.h>

#include "ca_json.h"
#include "ca_sign.h"
#include "test.h"

/* Object members as a ca_kv array (string values only; NULLs skipped). */
static ca_kv *members(const ca_json *o, size_t *n)
{
  const ca_json *m;
  ca_kv *kv = calloc(o ? o->count + 1 : 1, sizeof *kv);
  size_t i = 0;

  for (m = o ? o->child : NULL; m; m = m->next) {
    if (m->type != CA_JSON_STRING)
      continue;
    kv[i].key = m->key;
    kv[i].value = m->str;
    i++;
  }
  *n = i;
  return kv;
}

/*
 * Sign the request described by src (method, pathname, query, headers, body)
 * and compare every intermediate with exp.  Regular vectors describe the
 * request in "input"; the e2e ones in "captured_request" (the SDK's wire
 * form, with unsigned extra headers).
 */
static void check_v3(const char *id, const ca_json *src, const char *ak_id,
                     const char *secret, const ca_json *exp)
{
  ca_v3_input rq;
  ca_v3_output out;
  size_t nq, nh;
  ca_kv *q = members(ca_json_get(src, "query"), &nq);
  ca_kv *h = members(ca_json_get(src, "headers"), &nh);
  const ca_json *body = ca_json_get(src, "body");

  fprintf(stderr, "  %s\n", id);
  memset(&rq, 0, sizeof rq);
  rq.method = ca_json_get_str(src, "method");
  rq.pathname = ca_json_get_str(src, "pathname");
  rq.query = q;
  rq.nquery = nq;
  rq.headers = h;
  rq.nheaders = nh;
  rq.body = body ? body->str : "";
  rq.body_len = body ? body->str_len : 0;
  rq.access_key_id = ak_id;
  rq.access_key_secret = secret;
  ca_v3_output_init(&out);
  CHECK(ca_sign_v3(&rq, &out) == CHATAPP_OK);
  CHECK_STR(out.hashed_payload, ca_json_get_str(exp, "hashed_payload"));
  CHECK_STR(rq.pathname, ca_json_get_str(exp, "canonical_uri"));
  CHECK_STR(ca_buf_str(&out.canonical_query),
            ca_json_get_str(exp, "canonical_query_string"));
  CHECK_STR(ca_buf_str(&out.canonical_headers),
            ca_json_get_str(exp, "canonical_headers"));
  CHECK_STR(ca_buf_str(&out.signed_headers),
            ca_json_get_str(exp, "signed_headers"));
  CHECK_STR(ca_buf_str(&out.canonical_request),
            ca_json_get_str(exp, "canonical_request"));
  CHECK_STR(out.hashed_canonical_request,
            ca_json_get_str(exp, "hashed_canonical_request"));
  CHECK_STR(ca_buf_str(&out.string_to_sign),
            ca_json_get_str(exp, "string_to_sign"));
  CHECK_STR(out.signature, ca_json_get_str(exp, "signature"));
  CHECK_STR(ca_buf_str(&out.authorization),
            ca_json_get_str(exp, "authorization"));
  ca_v3_output_free(&out);
  free(q);
  free(h);
}

/* Legacy: params holds every parameter; a "Signature" one (e2e) is the
 * answer, not an input. */
static void check_rpc(const char *id, const char *method, const ca_json *params,
                      const char *secret, const ca_json *exp)
{
  ca_rpc_output out;
  size_t n, i, m = 0;
  ca_kv *p = members(params, &n);
  char key[256];

  fprintf(stderr, "  %s\n", id);
  for (i = 0; i < n; i++)
    if (strcmp(p[i].key, "Signature") != 0)
      p[m++] = p[i];
  ca_rpc_output_init(&out);
  CHECK(ca_sign_rpc(method, p, m, secret, &out) == CHATAPP_OK);
  CHECK_STR(ca_buf_str(&out.canonical_query),
            ca_json_get_str(exp, "canonicalized_query_string"));
  CHECK_STR(ca_buf_str(&out.string_to_sign),
            ca_json_get_str(exp, "string_to_sign"));
  snprintf(key, sizeof key, "%s&", secret);
  CHECK_STR(key, ca_json_get_str(exp, "hmac_key"));
  CHECK_STR(out.signature, ca_json_get_str(exp, "signature"));
  CHECK_STR(ca_buf_str(&out.signed_query),
            ca_json_get_str(exp, "signed_query_string"));
  /* The encoded signature is the tail of the signed query string. */
  CHECK(strstr(ca_buf_str(&out.signed_query),
               ca_json_get_str(exp, "signature_percent_encoded")) != NULL);
  ca_rpc_output_free(&out);
  free(p);
}

static void check_pct(void)
{
  ca_buf b = CA_BUF_INIT(1024);
  const char *in = "a b*c~d/e+f=g&h%i!'()\xe4\xb8\xad";

  CHECK(ca_pct_encode(&b, in, strlen(in)) == CHATAPP_OK);
  CHECK_STR(ca_buf_str(&b),
            "a%20b%2Ac~d%2Fe%2Bf%3Dg%26h%25i%21%27%28%29%E4%B8%AD");
  ca_buf_free(&b);
}

static void check_iso8601(void)
{
  char d[21];
  ca_iso8601(1709281800LL, d); /* 2024-03-01T08:30:00Z */
  CHECK_STR(d, "2024-03-01T08:30:00Z");
  ca_iso8601(0, d);
  CHECK_STR(d, "1970-01-01T00:00:00Z");
}

int main(int argc, char **argv)
{
  size_t len;
  char err[256];
  char *text = test_slurp(argc > 1 ? argv[1] : "signing.json", &len);
  ca_json_doc *doc = ca_json_parse(text, len, 64, 0, err, sizeof err);
  const ca_json *v;
  int nv3 = 0, nrpc = 0;

  if (!doc) {
    fprintf(stderr, "signing.json: %s\n", err);
    return 1;
  }
  for (v = ca_json_get(ca_json_root(doc), "vectors")->child; v; v = v->next) {
    const char *id = ca_json_get_str(v, "id");
    const ca_json *in = ca_json_get(v, "input");
    const ca_json *exp = ca_json_get(v, "expected");
    const ca_json *cap = ca_json_get(v, "captured_request");
    const ca_json *cfg = ca_json_get(in, "config");

    if (strcmp(ca_json_get_str(v, "algorithm"), "ACS3-HMAC-SHA256") == 0) {
      if (cap)
        check_v3(id, cap, ca_json_get_str(cfg, "accessKeyId"),
                 ca_json_get_str(cfg, "accessKeySecret"), exp);
      else
        check_v3(id, in, ca_json_get_str(in, "access_key_id"),
                 ca_json_get_str(in, "access_key_secret"), exp);
      nv3++;
    } else {
      if (cap)
        check_rpc(id, ca_json_get_str(cap, "method"), ca_json_get(cap, "query"),
                  ca_json_get_str(cfg, "accessKeySecret"), exp);
      else
        check_rpc(id, ca_json_get_str(in, "method"), ca_json_get(in, "params"),
                  ca_json_get_str(in, "access_key_secret"), exp);
      nrpc++;
    }
  }
  CHECK(nv3 >= 7);
  CHECK(nrpc >= 5);
  check_pct();
  check_iso8601();
  ca_json_free(doc);
  free(text);
  return test_report("test_sign");
}
