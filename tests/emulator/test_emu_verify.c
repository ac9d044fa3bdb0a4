/*
 * chatapp-emulator: every signature rule, good and bad, for V3 and legacy,
 * including the official SDK's wire forms from tests/data/signing.json.
 *
 * Usage: test_emu_verify EMULATOR SIGNING_JSON
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "ca_crypto.h"
#include "harness.h"
#include "test.h"

extern const char *emu_exe;

static const ca_kv own_params[] = {{"Status", "CONNECTED"}};

/* A call with default options plus the changes in o. */
static const char *code_of(const emu_proc *p, const call_opts *o, long *st)
{
  static char code[128];
  http_resp r;

  if (emu_call(p, o, &r) != 0 || r.curl_code != CURLE_OK) {
    snprintf(code, sizeof code, "(curl %d)", r.curl_code);
  } else {
    snprintf(code, sizeof code, "%s", resp_code(&r));
  }
  if (st)
    *st = r.status;
  http_resp_free(&r);
  return code;
}

static void test_good_calls(const emu_proc *p)
{
  call_opts o;
  long st = 0;

  fprintf(stderr, "good calls\n");
  memset(&o, 0, sizeof o);
  CHECK_STR(code_of(p, &o, &st), "OK");
  CHECK(st == 200);
  o.params = own_params;
  o.nparams = 1;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* V3, query params */
  o.form = 1;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* V3, form body */
  o.form = 0;
  o.legacy = 1;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* legacy, query */
  o.form = 1;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* legacy, form body (signed) */
  o.form = 0;
  o.method = "GET";
  CHECK_STR(code_of(p, &o, &st), "OK"); /* legacy GET */
  o.legacy = 0;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* V3 GET */
  memset(&o, 0, sizeof o);
  o.akid = STS_ID;
  o.secret = STS_SECRET;
  o.token = STS_TOKEN;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* STS V3 */
  o.legacy = 1;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* STS legacy */
  memset(&o, 0, sizeof o);
  o.ts_offset_s = -14 * 60;
  CHECK_STR(code_of(p, &o, &st), "OK"); /* inside the 15 min skew */
  o.ts_offset_s = 14 * 60;
  CHECK_STR(code_of(p, &o, &st), "OK");
  /* Signed for another Host than 127.0.0.1:PORT and sent with it. */
  memset(&o, 0, sizeof o);
  o.sign_host = "cams.ap-southeast-1.aliyuncs.com";
  CHECK_STR(code_of(p, &o, &st), "OK");
}

static void test_bad_calls(const emu_proc *p)
{
  call_opts o;
  long st = 0;
  http_resp r;
  int legacy;

  fprintf(stderr, "bad calls\n");
  for (legacy = 0; legacy < 2; legacy++) {
    memset(&o, 0, sizeof o);
    o.legacy = legacy;
    o.tamper = 1;
    CHECK_STR(code_of(p, &o, &st), "SignatureDoesNotMatch");
    CHECK(st == 400);
    o.tamper = 0;
    o.secret = "wrong-secret";
    CHECK_STR(code_of(p, &o, &st), "SignatureDoesNotMatch");
    o.secret = NULL;
    o.akid = "LTAInoSuchKey";
    CHECK_STR(code_of(p, &o, &st), "InvalidAccessKeyId.NotFound");
    CHECK(st == 404);
    o.akid = NULL;
    o.ts_offset_s = -16 * 60;
    CHECK_STR(code_of(p, &o, &st), "InvalidTimeStamp.Expired");
    CHECK(st == 400);
    o.ts_offset_s = 16 * 60;
    CHECK_STR(code_of(p, &o, &st), "InvalidTimeStamp.Expired");
    o.ts_offset_s = 0;
    /* STS: missing token, another key's token (mismatch), garbage. */
    o.akid = STS_ID;
    o.secret = STS_SECRET;
    CHECK_STR(code_of(p, &o, &st), "MissingSecurityToken");
    o.token = "not-a-token";
    CHECK_STR(code_of(p, &o, &st), "InvalidSecurityToken.Malformed");
    o.akid = KEY_ID;
    o.secret = KEY_SECRET;
    o.token = STS_TOKEN;
    CHECK_STR(code_of(p, &o, &st),
              "InvalidSecurityToken.MismatchWithAccessKey");
    o.token = NULL;
    /* Nonce reuse. */
    o.nonce = legacy ? "fixed-nonce-legacy-0001" : "fixed-nonce-v3-0001";
    CHECK_STR(code_of(p, &o, &st), "OK");
    CHECK_STR(code_of(p, &o, &st), "SignatureNonceUsed");
    CHECK(st == 400);
    o.nonce = NULL;
    o.version = "2017-05-25";
    CHECK_STR(code_of(p, &o, &st), "InvalidVersion");
    o.version = NULL;
    o.action = "NoSuchOperation";
    CHECK_STR(code_of(p, &o, &st), "InvalidAction.NotFound");
    CHECK(st == 404);
    o.action = "ChatappPhoneNumberDeregister"; /* documented, not emulated */
    CHECK_STR(code_of(p, &o, &st), "InvalidAction.NotFound");
    o.action = NULL;
  }
  /* The server's string to sign is in the message, as Alibaba does. */
  memset(&o, 0, sizeof o);
  o.tamper = 1;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(strstr(r.body, "server string to sign is:ACS3-HMAC-SHA256\\n") != NULL);
  http_resp_free(&r);
  o.legacy = 1;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK(strstr(r.body, "server string to sign is:POST&%2F&AccessKeyId") !=
        NULL);
  http_resp_free(&r);
  /* V3 specifics: an x-acs-* header that is not signed; a Host that is not
   * what was signed (signed cams..., sent 127.0.0.1:PORT). */
  memset(&o, 0, sizeof o);
  o.unsigned_acs_header = 1;
  CHECK_STR(code_of(p, &o, &st), "IncompleteSignature");
  memset(&o, 0, sizeof o);
  {
    /* Same signature, Host rewritten by sending it to a different name. */
    const char *hdrs[] = {"Host: 127.0.0.1", NULL};
    char date[21], nonce[33], hash[65], line[4][200];
    ca_kv hv[6];
    ca_v3_input in;
    ca_v3_output out;
    const char *sent[8];
    char auth[600];

    ca_iso8601((long long)time(NULL), date);
    ca_nonce(nonce);
    ca_sha256_hex("", 0, hash);
    snprintf(line[0], sizeof line[0], "127.0.0.1:%u", p->port);
    hv[0] = (ca_kv){"host", line[0]};
    hv[1] = (ca_kv){"x-acs-action", QUERY};
    hv[2] = (ca_kv){"x-acs-version", "2020-06-06"};
    hv[3] = (ca_kv){"x-acs-date", date};
    hv[4] = (ca_kv){"x-acs-signature-nonce", nonce};
    hv[5] = (ca_kv){"x-acs-content-sha256", hash};
    memset(&in, 0, sizeof in);
    in.method = "POST";
    in.pathname = "/";
    in.headers = hv;
    in.nheaders = 6;
    in.access_key_id = KEY_ID;
    in.access_key_secret = KEY_SECRET;
    ca_v3_output_init(&out);
    CHECK(ca_sign_v3(&in, &out) == CHATAPP_OK);
    snprintf(auth, sizeof auth, "Authorization: %s",
             ca_buf_str(&out.authorization));
    snprintf(line[1], sizeof line[1], "x-acs-date: %s", date);
    snprintf(line[2], sizeof line[2], "x-acs-signature-nonce: %s", nonce);
    snprintf(line[3], sizeof line[3], "x-acs-content-sha256: %s", hash);
    sent[0] = hdrs[0];
    sent[1] = "x-acs-action: " QUERY;
    sent[2] = "x-acs-version: 2020-06-06";
    sent[3] = line[1];
    sent[4] = line[2];
    sent[5] = line[3];
    sent[6] = auth;
    sent[7] = NULL;
    CHECK(emu_raw(p, "POST", "/", sent, "", 0, &r) == 0);
    CHECK_STR(resp_code(&r), "SignatureDoesNotMatch");
    http_resp_free(&r);
    /* The payload hash must match the body. */
    {
      char hostline[256];
      snprintf(hostline, sizeof hostline, "Host: %s", line[0]);
      sent[0] = hostline;
      CHECK(emu_raw(p, "POST", "/", sent, "x=1", 3, &r) == 0);
      CHECK_STR(resp_code(&r), "SignatureDoesNotMatch");
      CHECK(strstr(r.body, "x-acs-content-sha256") != NULL);
      http_resp_free(&r);
      /* Missing Authorization parts. */
      sent[6] = "Authorization: ACS3-HMAC-SHA256 Credential=" KEY_ID;
      CHECK(emu_raw(p, "POST", "/", sent, "", 0, &r) == 0);
      CHECK_STR(resp_code(&r), "IncompleteSignature");
      http_resp_free(&r);
      sent[6] = "Authorization: ACS3-HMAC-SM3 Credential=x,SignedHeaders=host,"
                "Signature=00";
      CHECK(emu_raw(p, "POST", "/", sent, "", 0, &r) == 0);
      CHECK_STR(resp_code(&r), "IncompleteSignature");
      http_resp_free(&r);
      /* Missing x-acs-date. */
      sent[3] = "x-acs-extra-ignored-by-curl:";
      sent[6] = auth;
      CHECK(emu_raw(p, "POST", "/", sent, "", 0, &r) == 0);
      CHECK_STR(resp_code(&r), "MissingParameter");
      http_resp_free(&r);
    }
    ca_v3_output_free(&out);
  }
  /* Neither Authorization nor Signature. */
  CHECK(emu_raw(p, "POST", "/?Action=" QUERY, NULL, "", 0, &r) == 0);
  CHECK_STR(resp_code(&r), "IncompleteSignature");
  CHECK(r.status == 400);
  http_resp_free(&r);
  /* Malformed percent-encoding. */
  CHECK(emu_raw(p, "POST", "/?Action=%G1", NULL, "", 0, &r) == 0);
  CHECK_STR(resp_code(&r), "InvalidParameter");
  http_resp_free(&r);
  /* Another path. */
  CHECK(emu_raw(p, "POST", "/v1/numbers", NULL, "", 0, &r) == 0);
  CHECK(r.status == 404);
  http_resp_free(&r);
}

/* Object members as ca_kv (string values only). */
static size_t members(const ca_json *o, ca_kv *kv, size_t max)
{
  const ca_json *m;
  size_t n = 0;

  for (m = o ? o->child : NULL; m && n < max; m = m->next)
    if (m->type == CA_JSON_STRING)
      kv[n++] = (ca_kv){m->key, m->str};
  return n;
}

/*
 * The SDK's captured wire form, byte for byte: query string exactly as the
 * SDK put it on the URL, the same headers (accept, x-acs-credentials-
 * provider, user-agent), the host it signed.  First replayed unchanged (the
 * emulator is started with a skew large enough for its 2024 date), then
 * re-signed with the current date and a fresh nonce under the normal skew.
 */
static void test_e2e(const char *vectors)
{
  size_t len, i, nh;
  char *text = test_slurp(vectors, &len);
  ca_json_doc *doc = ca_json_parse(text, len, 64, 0, NULL, 0);
  const ca_json *v;
  const char *keys =
    "{\"keys\":[{\"access_key_id\":\"LTAI5tExampleKeyId01\","
    "\"access_key_secret\":\"ExampleSecret0123456789abcdefAB\","
    "\"account\":\"1000000000000009\"}]}";
  const char *fixture =
    "{\"spaces\":[{\"cust_space_id\":\"C20230115000001\",\"isv_code\":"
    "\"isv code*~\",\"phone_numbers\":[{\"PhoneNumber\":\"6591234567\","
    "\"Status\":\"VERIFIED\",\"Extra\":{\"a\":[1,2.50,null]}}]}]}";
  char kpath[512], fpath[512];
  int pass;

  fprintf(stderr, "e2e wire forms\n");
  CHECK(doc != NULL);
  snprintf(kpath, sizeof kpath, "%s", write_temp(NULL, "e2e-keys.json", keys));
  snprintf(fpath, sizeof fpath, "%s",
           write_temp(NULL, "e2e-data.json", fixture));
  for (pass = 0; pass < 2; pass++) {
    const char *args[] = {"--keys", kpath,    "--data",
                          fpath,    "--skew", pass == 0 ? "315360000" : "900",
                          NULL};
    emu_proc p;
    if (emu_start(&p, args) != 0) {
      CHECK(0 && "emulator did not start");
      continue;
    }
    for (v = ca_json_get(ca_json_root(doc), "vectors")->child; v; v = v->next) {
      const char *id = ca_json_get_str(v, "id");
      const ca_json *cap = ca_json_get(v, "captured_request");
      const char *wire = ca_json_get_str(cap, "wire_query_string");
      const char *alg = ca_json_get_str(v, "algorithm");
      ca_kv h[16], q[16];
      char lines[16][400], path[2048], date[21], nonce[33];
      const char *sent[20];
      http_resp r;

      if (!id || strncmp(id, "e2e-", 4) != 0)
        continue;
      fprintf(stderr, "  %s (%s)\n", id,
              pass == 0 ? "as captured" : "re-signed");
      nh = members(ca_json_get(cap, "headers"), h, 16);
      ca_iso8601((long long)time(NULL), date);
      ca_nonce(nonce);
      if (strcmp(alg, "ACS3-HMAC-SHA256") == 0) {
        size_t nq = members(ca_json_get(cap, "query"), q, 16);
        ca_v3_input in;
        ca_v3_output out;
        ca_v3_output_init(&out);
        if (pass == 1) {
          /* As captured, under the normal skew: its 2024 date is stale. */
          for (i = 0; i < nh; i++) {
            snprintf(lines[i], sizeof lines[i], "%s: %s", h[i].key, h[i].value);
            sent[i] = lines[i];
          }
          sent[nh] = NULL;
          snprintf(path, sizeof path, "/?%s", wire);
          CHECK(emu_raw(&p, "POST", path, sent, "", 0, &r) == 0);
          CHECK_STR(resp_code(&r), "InvalidTimeStamp.Expired");
          http_resp_free(&r);
        }
        for (i = 0; pass == 1 && i < nh; i++) {
          if (strcmp(h[i].key, "x-acs-date") == 0)
            h[i].value = date;
          if (strcmp(h[i].key, "x-acs-signature-nonce") == 0)
            h[i].value = nonce;
        }
        if (pass == 1) {
          ca_kv sh[16];
          size_t ns = 0;
          for (i = 0; i < nh; i++)
            if (strcmp(h[i].key, "Authorization") != 0)
              sh[ns++] = h[i];
          memset(&in, 0, sizeof in);
          in.method = "POST";
          in.pathname = "/";
          in.query = q;
          in.nquery = nq;
          in.headers = sh;
          in.nheaders = ns;
          in.access_key_id = "LTAI5tExampleKeyId01";
          in.access_key_secret = "ExampleSecret0123456789abcdefAB";
          CHECK(ca_sign_v3(&in, &out) == CHATAPP_OK);
          for (i = 0; i < nh; i++)
            if (strcmp(h[i].key, "Authorization") == 0)
              h[i].value = ca_buf_str(&out.authorization);
        }
        for (i = 0; i < nh; i++) {
          snprintf(lines[i], sizeof lines[i], "%s: %s", h[i].key, h[i].value);
          sent[i] = lines[i];
        }
        sent[nh] = "user-agent: AlibabaCloud (linux; x64) Node.js/v20.0.0 "
                   "Core/1.0.1 TeaDSL/1";
        sent[nh + 1] = NULL;
        snprintf(path, sizeof path, "/?%s", wire);
        CHECK(emu_raw(&p, "POST", path, sent, "", 0, &r) == 0);
        ca_v3_output_free(&out);
      } else {
        /* Legacy: re-sign the captured parameters with a new Timestamp and
         * nonce; the wire keeps the SDK's order and its unescaped *~. */
        const char *secret = "ExampleSecret0123456789abcdefAB";
        size_t nq = members(ca_json_get(cap, "query"), q, 16), k = 0;
        ca_kv sp[16];
        ca_rpc_output out;
        ca_buf w = CA_BUF_INIT(8192);
        ca_rpc_output_init(&out);
        for (i = 0; i < nq; i++) {
          if (strcmp(q[i].key, "Signature") == 0)
            continue;
          sp[k] = q[i];
          if (pass == 1 && strcmp(q[i].key, "Timestamp") == 0)
            sp[k].value = date;
          if (pass == 1 && strcmp(q[i].key, "SignatureNonce") == 0)
            sp[k].value = nonce;
          k++;
        }
        CHECK(ca_sign_rpc("POST", sp, k, secret, &out) == CHATAPP_OK);
        if (pass == 0) {
          CHECK_STR(out.signature, "H3zPRtvZNGGwonVIeMEAop4eyRU=");
          snprintf(path, sizeof path, "/?%s", wire);
        } else {
          /* SDK order, querystring.stringify style (*~ unescaped). */
          for (i = 0; i < k; i++) {
            const char *s;
            if (i)
              ca_buf_addc(&w, '&');
            ca_buf_adds(&w, sp[i].key);
            ca_buf_addc(&w, '=');
            for (s = sp[i].value; *s; s++) {
              if (*s == '*' || *s == '~')
                ca_buf_addc(&w, *s);
              else
                ca_pct_encode(&w, s, 1);
            }
          }
          ca_buf_adds(&w, "&Signature=");
          ca_pct_encode(&w, out.signature, strlen(out.signature));
          snprintf(path, sizeof path, "/?%s", ca_buf_str(&w));
        }
        for (i = 0; i < nh; i++) {
          snprintf(lines[i], sizeof lines[i], "%s: %s", h[i].key, h[i].value);
          sent[i] = lines[i];
        }
        sent[nh] = NULL;
        CHECK(emu_raw(&p, "POST", path, sent, "", 0, &r) == 0);
        ca_rpc_output_free(&out);
        ca_buf_free(&w);
      }
      CHECK_STR(resp_code(&r), "OK");
      if (strcmp(resp_code(&r), "OK") != 0)
        fprintf(stderr, "    %s\n", r.body);
      /* Status=VERIFIED filters to the fixture's one number, passed
       * through untouched (nested object, 2.50 and null kept as sent). */
      CHECK(strstr(r.body,
                   "{\"PhoneNumber\":\"6591234567\",\"Status\":"
                   "\"VERIFIED\",\"Extra\":{\"a\":[1,2.50,null]}}") != NULL);
      http_resp_free(&r);
    }
    {
      /* Every call was logged (pass 1 adds the stale V3 capture). */
      size_t n;
      char **l = read_log(&p, &n);
      CHECK(n == (pass == 0 ? 2u : 3u));
      free_lines(l, n);
    }
    CHECK(emu_stop(&p) == 0);
  }
  ca_json_free(doc);
  free(text);
}

int main(int argc, char **argv)
{
  emu_proc p;
  const char *args[] = {"--quota", "100000", NULL};
  int rc;

  rc = harness_main(argc, argv, 3, "EMULATOR SIGNING_JSON", args, &p);
  if (rc)
    return rc;
  test_good_calls(&p);
  test_bad_calls(&p);
  CHECK(emu_stop(&p) == 0);
  test_e2e(argv[2]);
  curl_global_cleanup();
  return test_report("test_emu_verify");
}
