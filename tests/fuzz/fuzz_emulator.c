/*
 * Fuzz target: chatapp-emulator's request handling without a socket: the
 * query string and form body decoding, header lookup, both signature
 * schemes (emu_verify.c), the operations over the sample data (emu_ops.c),
 * the control endpoint (fault rules as JSON, quota, reset, the webhook
 * sink) and the request log, fed as emu_http.c feeds them.
 *
 * An input is up to MAX_REQUESTS requests separated by a line "---":
 *
 *   POST /?Action=QueryChatappPhoneNumbers&Timestamp=@now&Signature=@sign
 *   content-type: application/x-www-form-urlencoded
 *
 *   CustSpaceId=C1&AccessKeyId=LTAIemulatorTestKey01&...
 *
 * so the fuzzer can reach past the signature check, the harness fills in
 * what a client computes: "@now" (the current time, ISO 8601), "@nonce" (a
 * fresh nonce), the header value "@hash" (SHA-256 of the body), the
 * Authorization value "@sign" (a V3 signature over the request, with
 * "@sign:AKID" for another key) and a parameter value "@sign" (the legacy
 * signature over the parameters, with the secret of AccessKeyId).
 *
 * A request line starting "IMDS " goes to the metadata service's router
 * (emu_imds_route) instead: "IMDS PUT /latest/api/token".  STS calls
 * (Action=AssumeRole, AssumeRoleWithOIDC) and the credentials URI
 * (/_emulator/credentials) go through emu_route as on the API port; a
 * legacy "@sign" also signs with the secret of a temporary key an earlier
 * request of the input was issued (chained roles).
 *
 * Three more "methods" feed the emulator's other parsers of outside data,
 * as its command line does: "FAULT SPEC" (a --fault rule, key=value or
 * JSON), "KEYS" with a --keys file as body and "DATA" with a --data
 * fixture as body (written to a temporary file and loaded; when they load,
 * the requests after them use them).
 *
 * Properties: no crash, no leak, no undefined behaviour; every answer has
 * an HTTP status from 100 to 599, a body that is valid JSON (except the
 * malformed fault, which is meant not to be), and never the secret of a
 * key that the input did not itself carry (a token may come back: the string
 * to sign quoted by SignatureDoesNotMatch holds the SecurityToken the client
 * sent, as Alibaba's does), nor the OIDC token the emulator checks against;
 * text answers (the metadata service's) need not be JSON.  The emulator is
 * reset before each input so an input replays the same way (nonces, quota,
 * fault rules, data, sink).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_json.h"
#include "ca_sign.h"
#include "emu.h"

#define MAX_REQUESTS 8
#define SEP          "\n---\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static emu E;
static int ready, own_keys;
static unsigned long long nonce_counter;
static char tmpdir[] = "/tmp/fuzz_emulator.XXXXXX";
static char tmpfile_path[64];

static void teardown(void)
{
  unlink(tmpfile_path);
  rmdir(tmpdir);
  emu_log_close(E.log);
  emu_faults_clear(&E.faults);
  emu_data_free(&E.data);
  emu_data_free(&E.pristine);
  emu_sink_clear(&E.sink);
  emu_keys_free(&E.keys);
  emu_sts_free(&E.sts);
  emu_nonces_free(&E.nonces);
  emu_quota_free(&E.quota);
  emu_stats_reset(&E.stats, 0);
  pthread_mutex_destroy(&E.lock);
}

static void setup(void)
{
  char err[512];

  memset(&E, 0, sizeof E);
  atomic_init(&E.stopping, 0);
  if (pthread_mutex_init(&E.lock, NULL) != 0 ||
      emu_keys_builtin(&E.keys) != CHATAPP_OK ||
      emu_sts_init(&E.sts, NULL, NULL, 0, 0) != CHATAPP_OK ||
      emu_data_load(&E.pristine, NULL, err, sizeof err) != CHATAPP_OK ||
      !(E.log = emu_log_open("/dev/null")))
    abort();
  if (!mkdtemp(tmpdir))
    abort();
  snprintf(tmpfile_path, sizeof tmpfile_path, "%s/file.json", tmpdir);
  emu_quota_init(&E.quota, 5);
  emu_nonces_init(&E.nonces, 1860LL * 1000000, 64);
  E.skew_s = 900;
  E.throttle_retry_after = 1;
  E.port = 8080;
  ready = 1;
  atexit(teardown);
}

/* Back to the state right after start-up (nonces forgotten too). */
static void reset(void)
{
  emu_faults_clear(&E.faults);
  E.faults.next_id = 0;
  E.faults.rng = 0x9E3779B97F4A7C15ULL; /* fixed: inputs replay alike */
  emu_quota_reset(&E.quota);
  emu_stats_reset(&E.stats, emu_mono_us());
  emu_sts_forget(&E.sts);
  memset(E.sts.ep, 0, sizeof E.sts.ep);
  emu_sink_clear(&E.sink);
  E.sink.total = 0;
  emu_nonces_free(&E.nonces);
  emu_nonces_init(&E.nonces, 1860LL * 1000000, 64);
  emu_data_free(&E.data);
  if (emu_data_copy(&E.data, &E.pristine) != CHATAPP_OK)
    abort();
  if (own_keys) {
    emu_keys_free(&E.keys);
    if (emu_keys_builtin(&E.keys) != CHATAPP_OK)
      abort();
    own_keys = 0;
  }
}

static void write_tmp(const char *data, size_t len)
{
  FILE *f = fopen(tmpfile_path, "wb");

  if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
    abort();
}

/* "FAULT spec", "KEYS\n\nfile" and "DATA\n\nfile": 1 if s was one. */
static int config_request(const char *s, size_t n, char *err, size_t errlen)
{
  const char *body = memmem(s, n, "\n\n", 2);
  size_t blen = body ? n - (size_t)(body + 2 - s) : 0;

  body = body ? body + 2 : s + n;
  if (n >= 6 && memcmp(s, "FAULT ", 6) == 0) {
    emu_fault *f = NULL;
    err[0] = '\0';
    if (emu_fault_parse(s + 6, n - 6, emu_mono_us(), &f, err, errlen) ==
        CHATAPP_OK)
      emu_faults_add(&E.faults, f);
    else if (f || !*err)
      abort(); /* a failure leaves no rule and says why */
    return 1;
  }
  if (n >= 4 && memcmp(s, "KEYS", 4) == 0) {
    emu_keys ks;
    err[0] = '\0';
    write_tmp(body, blen);
    if (emu_keys_load(&ks, tmpfile_path, err, errlen) == CHATAPP_OK) {
      emu_keys_free(&E.keys);
      E.keys = ks;
      own_keys = 1;
    } else if (ks.v || ks.n || !*err) {
      abort();
    }
    return 1;
  }
  if (n >= 4 && memcmp(s, "DATA", 4) == 0) {
    emu_data d;
    memset(&d, 0, sizeof d);
    write_tmp(body, blen);
    err[0] = '\0';
    if (emu_data_load(&d, tmpfile_path, err, errlen) == CHATAPP_OK) {
      emu_data_free(&E.data);
      E.data = d; /* the requests after this one use it */
    } else {
      if (!*err)
        abort(); /* a failure says why */
      emu_data_free(&d);
    }
    return 1;
  }
  return 0;
}

/* s[0..n) with every "@now" and "@nonce" replaced, into out. */
static int expand(const char *s, size_t n, ca_buf *out)
{
  char now[21], nonce[32];
  size_t i = 0;

  ca_iso8601((long long)(emu_wall_ms() / 1000), now);
  while (i < n) {
    if (n - i >= 4 && memcmp(s + i, "@now", 4) == 0) {
      if (ca_buf_adds(out, now))
        return -1;
      i += 4;
    } else if (n - i >= 6 && memcmp(s + i, "@nonce", 6) == 0) {
      snprintf(nonce, sizeof nonce, "fuzz-%llu", ++nonce_counter);
      if (ca_buf_adds(out, nonce))
        return -1;
      i += 6;
    } else {
      if (ca_buf_addc(out, s[i]))
        return -1;
      i++;
    }
  }
  return 0;
}

static const char *secret_of(const char *akid)
{
  static char issued[64];
  const emu_key *k = akid ? emu_keys_find(&E.keys, akid) : NULL;
  emu_key copy;

  if (k)
    return k->secret;
  if (akid && emu_sts_find_key(&E, akid, &copy) > 0) {
    snprintf(issued, sizeof issued, "%s", copy.secret);
    emu_key_clear(&copy);
    return issued;
  }
  return "not-a-key";
}

/* Replace the first "@sign" in b (from offset from) by rep. */
static int replace_sign(ca_buf *b, size_t from, const char *rep)
{
  const char *p = b->ptr && b->len > from
                    ? memmem(b->ptr + from, b->len - from, "@sign", 5)
                    : NULL;
  ca_buf n = CA_BUF_INIT(b->max + 4096);
  size_t at;

  if (!p)
    return 0;
  at = (size_t)(p - b->ptr);
  if (ca_buf_add(&n, b->ptr, at) || ca_buf_adds(&n, rep) ||
      ca_buf_add(&n, p + 5, b->len - at - 5)) {
    ca_buf_free(&n);
    return -1;
  }
  ca_buf_free(b);
  *b = n;
  return 1;
}

/* The legacy scheme: a parameter "@sign" becomes the signature over the
 * other parameters (query, then form body), as a client computes it. */
static void sign_rpc(emu_request *rq, ca_buf *uri)
{
  emu_kvs q = {0}, form = {0}, all = {0};
  const char *qs = strchr(ca_buf_str(uri), '?');
  const char *ct = emu_kvs_geti(&rq->headers, "content-type");
  int in_body = ct && strstr(ct, "x-www-form-urlencoded") != NULL;
  ca_rpc_output out;
  ca_buf enc = CA_BUF_INIT(256);
  size_t i;

  ca_rpc_output_init(&out);
  if (qs && emu_parse_urlencoded(qs + 1, strlen(qs + 1), &q) != 0)
    goto out;
  if (in_body &&
      emu_parse_urlencoded(ca_buf_str(&rq->body), rq->body.len, &form) != 0)
    goto out;
  for (i = 0; i < q.n + form.n; i++) {
    const ca_kv *kv = i < q.n ? &q.v[i] : &form.v[i - q.n];
    if (strcmp(kv->key, "Signature") == 0)
      continue;
    if (emu_kvs_add(&all, kv->key, strlen(kv->key), kv->value,
                    strlen(kv->value)))
      goto out;
  }
  if (ca_sign_rpc(rq->method, all.v, all.n,
                  secret_of(emu_kvs_get(&all, "AccessKeyId")),
                  &out) != CHATAPP_OK ||
      ca_pct_encode(&enc, out.signature, strlen(out.signature)))
    goto out;
  if (replace_sign(uri, qs ? (size_t)(qs - uri->ptr) : uri->len,
                   ca_buf_str(&enc)) == 0 &&
      in_body)
    (void)replace_sign(&rq->body, 0, ca_buf_str(&enc));
out:
  ca_rpc_output_free(&out);
  ca_buf_free(&enc);
  emu_kvs_free(&q);
  emu_kvs_free(&form);
  emu_kvs_free(&all);
}

/* The V3 scheme: Authorization "@sign[:AKID]" becomes the real header. */
static void sign_v3(emu_request *rq, const char *uri, size_t auth_index)
{
  const char *v = rq->headers.v[auth_index].value;
  const char *akid = v[5] == ':' ? v + 6 : "LTAIemulatorTestKey01";
  emu_kvs q = {0};
  const char *qs = strchr(uri, '?');
  ca_v3_output out;
  ca_v3_input in;
  ca_kv *hv = calloc(rq->headers.n + 1, sizeof *hv);
  size_t i, nh = 0;
  char *copy;

  ca_v3_output_init(&out);
  if (!hv || (qs && emu_parse_urlencoded(qs + 1, strlen(qs + 1), &q) != 0))
    goto out;
  for (i = 0; i < rq->headers.n; i++)
    if (i != auth_index)
      hv[nh++] = rq->headers.v[i];
  memset(&in, 0, sizeof in);
  in.method = rq->method;
  in.pathname = "/";
  in.query = q.v;
  in.nquery = q.n;
  in.headers = hv;
  in.nheaders = nh;
  in.body = rq->body.ptr;
  in.body_len = rq->body.len;
  in.access_key_id = akid;
  in.access_key_secret = secret_of(akid);
  if (ca_sign_v3(&in, &out) != CHATAPP_OK)
    goto out;
  copy = strdup(ca_buf_str(&out.authorization));
  if (copy) {
    free((void *)(uintptr_t)rq->headers.v[auth_index].value);
    rq->headers.v[auth_index].value = copy;
  }
out:
  ca_v3_output_free(&out);
  emu_kvs_free(&q);
  free(hv);
}

/* The input may hold a secret the fuzzer guessed from a comparison (and
 * the sink gives back what an earlier request sent); only a secret the
 * input does not hold must never come back. */
static const uint8_t *input;
static size_t input_len;

static void check_answer(const emu_answer *a)
{
  char err[160];
  ca_json_doc *doc;
  size_t i;

  if (a->status < 100 || a->status > 599)
    abort();
  if (strstr(ca_buf_str(&a->body), E.sts.oidc_token) &&
      !memmem(input, input_len, E.sts.oidc_token, strlen(E.sts.oidc_token))) {
    fprintf(stderr, "answer holds the OIDC token: %s\n", ca_buf_str(&a->body));
    abort();
  }
  if (a->mode == EMU_SEND_HANG || strcmp(a->code, "(malformed)") == 0 ||
      strcmp(a->code, "(redirect)") == 0 ||
      (a->content_type && strncmp(a->content_type, "text/", 5) == 0))
    return;
  doc =
    ca_json_parse(ca_buf_str(&a->body), a->body.len, 128, 0, err, sizeof err);
  if (!doc) {
    fprintf(stderr, "answer %u is not JSON (%s): %.*s\n", a->status, err,
            (int)(a->body.len > 2000 ? 2000 : a->body.len),
            ca_buf_str(&a->body));
    abort();
  }
  ca_json_free(doc);
  for (i = 0; i < E.keys.n; i++) {
    const emu_key *k = &E.keys.v[i];
    if (strlen(k->secret) >= 8 && strstr(ca_buf_str(&a->body), k->secret) &&
        !memmem(input, input_len, k->secret, strlen(k->secret))) {
      fprintf(stderr, "answer holds a secret: %s\n", ca_buf_str(&a->body));
      abort();
    }
  }
}

/* One request: "METHOD URI\nheaders\n\nbody". */
static void one_request(const char *s, size_t n)
{
  ca_buf text = CA_BUF_INIT(4 * 1024 * 1024), uri = CA_BUF_INIT(1024 * 1024);
  emu_request rq;
  emu_answer a;
  char method[16], err[512];
  const char *p, *end, *eol, *sp;
  size_t i, auth = (size_t)-1, ml;
  int sign_params, imds = 0;

  memset(&rq, 0, sizeof rq);
  ca_buf_init(&rq.body, EMU_MAX_BODY);
  if (config_request(s, n, err, sizeof err)) {
    if (getenv("FUZZ_EMU_TRACE"))
      fprintf(stderr, "%.5s -> %s\n", s, *err ? err : "loaded");
    goto out;
  }
  if (expand(s, n, &text))
    goto out;
  p = ca_buf_str(&text);
  end = p + text.len;
  if (text.len >= 5 && memcmp(p, "IMDS ", 5) == 0) {
    imds = 1; /* to the metadata port */
    p += 5;
  }
  /* request line */
  eol = memchr(p, '\n', (size_t)(end - p));
  if (!eol)
    eol = end;
  sp = memchr(p, ' ', (size_t)(eol - p));
  if (!sp)
    goto out;
  ml =
    (size_t)(sp - p) < sizeof method - 1 ? (size_t)(sp - p) : sizeof method - 1;
  memcpy(method, p, ml);
  method[ml] = '\0';
  if (strlen(method) != ml || !*method)
    goto out; /* libmicrohttpd hands over no NUL in a method */
  rq.method = method;
  if (ca_buf_add(&uri, sp + 1,
                 (size_t)(eol - sp - 1) - (eol > sp + 1 && eol[-1] == '\r')))
    goto out;
  if (uri.len == 0 || memchr(uri.ptr, '\0', uri.len))
    goto out; /* a URI is a C string */
  p = eol < end ? eol + 1 : end;
  /* headers */
  while (p < end) {
    const char *colon, *v;
    size_t ll;
    eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
      eol = end;
    ll = (size_t)(eol - p);
    if (ll && p[ll - 1] == '\r')
      ll--;
    if (ll == 0) {
      p = eol < end ? eol + 1 : end;
      break;
    }
    colon = memchr(p, ':', ll);
    if (colon && colon > p && !memchr(p, '\0', ll)) {
      v = colon + 1;
      while (v < p + ll && (*v == ' ' || *v == '\t'))
        v++;
      if (emu_kvs_add(&rq.headers, p, (size_t)(colon - p), v,
                      (size_t)(p + ll - v)))
        goto out;
    }
    p = eol < end ? eol + 1 : end;
  }
  /* body */
  if (ca_buf_add(&rq.body, p, (size_t)(end - p)) != CHATAPP_OK)
    rq.body_too_big = 1;
  /* what a client computes */
  for (i = 0; i < rq.headers.n; i++) {
    ca_kv *h = &rq.headers.v[i];
    if (strcmp(h->value, "@hash") == 0) {
      char hex[65], *copy;
      if (ca_sha256_hex(rq.body.ptr ? rq.body.ptr : "", rq.body.len, hex) ||
          !(copy = strdup(hex)))
        goto out;
      free((void *)(uintptr_t)h->value);
      h->value = copy;
    }
    if (strcasecmp(h->key, "authorization") == 0 && auth == (size_t)-1 &&
        strncmp(h->value, "@sign", 5) == 0 &&
        (h->value[5] == '\0' || h->value[5] == ':'))
      auth = i;
  }
  sign_params = strstr(ca_buf_str(&uri), "=@sign") != NULL ||
                (rq.body.ptr && memmem(rq.body.ptr, rq.body.len, "=@sign", 6));
  if (sign_params)
    sign_rpc(&rq, &uri);
  if (auth != (size_t)-1)
    sign_v3(&rq, ca_buf_str(&uri), auth);
  rq.raw_uri = ca_buf_steal(&uri);
  if (!rq.raw_uri)
    goto out;
  rq.arrival_us = emu_mono_us();
  rq.arrival_wall_ms = emu_wall_ms();
  snprintf(rq.remote, sizeof rq.remote, "127.0.0.1:40000");

  emu_answer_init(&a);
  if (imds)
    emu_imds_route(&E, &rq, &a);
  else
    emu_route(&E, &rq, &a);
  if (a.track_ep >= 0)
    emu_cred_done(&E, a.track_ep);
  /* The sink's delay_ms is capped at an hour (emu_sink.c). */
  if (strncmp(rq.raw_uri, EMU_CONTROL_PATH, sizeof EMU_CONTROL_PATH - 1) == 0 &&
      (a.delay_us < 0 || a.delay_us > INT64_C(3600000000))) {
    fprintf(stderr, "control answer delayed by %lld us\n",
            (long long)a.delay_us);
    abort();
  }
  if (getenv("FUZZ_EMU_TRACE")) /* to see what a corpus file reaches */
    fprintf(stderr, "%s %.60s -> %u %s\n", method, rq.raw_uri, a.status,
            a.code);
  check_answer(&a);
  emu_answer_free(&a);
out:
  free(rq.raw_uri);
  emu_kvs_free(&rq.headers);
  ca_buf_free(&rq.body);
  ca_buf_free(&text);
  ca_buf_free(&uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *s = (const char *)data, *end = s + size;
  int n = 0;

  if (!ready)
    setup();
  reset();
  input = data;
  input_len = size;
  while (s < end && n++ < MAX_REQUESTS) {
    const char *sep = memmem(s, (size_t)(end - s), SEP, sizeof SEP - 1);
    const char *stop = sep ? sep : end;
    one_request(s, (size_t)(stop - s));
    s = sep ? sep + sizeof SEP - 1 : end;
  }
  return 0;
}
