/*
 * chatapp-emulator: the live data through the control endpoint, as a test
 * of transitions uses it: GET /_emulator/numbers (the fixture format, which
 * loads again), PATCH changing what the next QueryChatappPhoneNumbers
 * answers (Status filter included), null removing a member, unknown and
 * nested members passed through, "PhoneNumber" fixed, POST adding numbers
 * (409 on a duplicate, all or nothing), DELETE (404 after), POST
 * /_emulator/spaces, bad bodies (bad JSON, not an object, too deep, too
 * big, empty) answered 400 with a reason, reset restoring the data, and
 * PATCH / POST / DELETE racing signed queries on several threads.
 *
 * Usage: test_emu_numbers EMULATOR
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <curl/curl.h>

#include "harness.h"
#include "test.h"

#define OWN   "instance-1000000000000001"
#define ACME  "C20230115000001"
#define PHONE "8613800000001" /* CONNECTED GREEN in the sample */

/* The numbers a signed query answers (params may be NULL). */
static ca_json_doc *query(const emu_proc *p, const ca_kv *params, size_t n,
                          long *status)
{
  call_opts o;
  http_resp r;
  ca_json_doc *d = NULL;

  memset(&o, 0, sizeof o);
  o.params = params;
  o.nparams = n;
  *status = 0;
  if (emu_call(p, &o, &r) == 0 && r.curl_code == CURLE_OK) {
    *status = r.status;
    d = resp_json(&r);
  }
  http_resp_free(&r);
  return d;
}

static const ca_json *find(const ca_json_doc *d, const char *phone)
{
  const ca_json *a = d ? ca_json_get(ca_json_root(d), "PhoneNumbers") : NULL;
  const ca_json *n;

  for (n = a ? a->child : NULL; n; n = n->next) {
    const char *pn = ca_json_get_str(n, "PhoneNumber");
    if (pn && strcmp(pn, phone) == 0)
      return n;
  }
  return NULL;
}

static size_t count(const ca_json_doc *d)
{
  const ca_json *a = d ? ca_json_get(ca_json_root(d), "PhoneNumbers") : NULL;
  return a && a->type == CA_JSON_ARRAY ? a->count : (size_t)-1;
}

/* A member of phone's object in the own space's query answer, as text
 * (its raw JSON; "(absent)" or "(no number)"), in a static buffer. */
static const char *member(const emu_proc *p, const char *phone, const char *key)
{
  static char out[512];
  long st;
  ca_json_doc *d = query(p, NULL, 0, &st);
  const ca_json *n = find(d, phone), *m = n ? ca_json_get(n, key) : NULL;

  if (!n)
    snprintf(out, sizeof out, "(no number)");
  else if (!m)
    snprintf(out, sizeof out, "(absent)");
  else
    snprintf(out, sizeof out, "%.*s", (int)m->raw_len, m->raw);
  ca_json_free(d);
  return out;
}

/* A control request; the answer's status, its error text into err. */
static long control(const emu_proc *p, const char *method, const char *path,
                    const char *body, char *err, size_t errlen)
{
  http_resp r;
  long st = -1;

  if (err)
    err[0] = '\0';
  if (emu_http(p, method, path, body, &r) == 0 && r.curl_code == CURLE_OK) {
    ca_json_doc *d = resp_json(&r);
    const char *e = d ? ca_json_get_str(ca_json_root(d), "error") : NULL;
    st = r.status;
    if (!d)
      st = -2; /* every control answer is JSON */
    if (err && e)
      snprintf(err, errlen, "%s", e);
    ca_json_free(d);
  }
  http_resp_free(&r);
  return st;
}

static void test_get(const emu_proc *p)
{
  http_resp r;
  ca_json_doc *d;
  const ca_json *sp;
  char err[256];

  fprintf(stderr, "GET /_emulator/numbers: the fixture format\n");
  CHECK(emu_http(p, "GET", "/_emulator/numbers", NULL, &r) == 0);
  CHECK(r.status == 200);
  d = resp_json(&r);
  sp = d ? ca_json_get(ca_json_root(d), "spaces") : NULL;
  CHECK(sp && sp->type == CA_JSON_ARRAY && sp->count == 6);
  CHECK(sp && sp->child &&
        strcmp(ca_json_get_str(sp->child, "cust_space_id"), OWN) == 0 &&
        ca_json_get(sp->child, "default")->type == CA_JSON_TRUE &&
        ca_json_get(sp->child, "phone_numbers")->count == 7);
  ca_json_free(d);
  /* What it answers is a fixture: an emulator starts on it. */
  {
    const char *path = write_temp(NULL, "dump.json", r.body);
    const char *args[] = {"--data", path, NULL};
    emu_proc q;
    long st;
    CHECK(emu_start(&q, args) == 0);
    d = query(&q, NULL, 0, &st);
    CHECK(st == 200 && count(d) == 7 && find(d, PHONE));
    ca_json_free(d);
    CHECK(emu_stop(&q) == 0);
  }
  http_resp_free(&r);
  CHECK(emu_http(p, "GET", "/_emulator/numbers?space=" ACME, NULL, &r) == 0);
  d = resp_json(&r);
  sp = d ? ca_json_get(ca_json_root(d), "spaces") : NULL;
  CHECK(r.status == 200 && sp && sp->count == 1);
  CHECK(sp && sp->child &&
        strcmp(ca_json_get_str(sp->child, "isv_code"), "isv-acme-7f3k9q2m") ==
          0 &&
        ca_json_get(sp->child, "phone_numbers")->count == 6);
  ca_json_free(d);
  http_resp_free(&r);
  CHECK(control(p, "GET", "/_emulator/numbers?space=C404", NULL, err,
                sizeof err) == 404);
  CHECK(strstr(err, "no space \"C404\"") != NULL);
  CHECK(control(p, "PUT", "/_emulator/numbers", "{}", err, sizeof err) == 405);
}

static void test_patch(const emu_proc *p)
{
  ca_kv filter[1] = {{"Status", "FLAGGED"}};
  ca_json_doc *d;
  long st;
  size_t flagged;
  char err[256];

  fprintf(stderr, "PATCH changes what the next query answers\n");
  CHECK_STR(member(p, PHONE, "QualityRating"), "\"GREEN\"");
  d = query(p, filter, 1, &st);
  flagged = count(d);
  CHECK(st == 200 && !find(d, PHONE));
  ca_json_free(d);
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE,
                "{\"QualityRating\":\"RED\",\"Status\":\"FLAGGED\"}", err,
                sizeof err) == 200);
  CHECK_STR(member(p, PHONE, "QualityRating"), "\"RED\"");
  CHECK_STR(member(p, PHONE, "Status"), "\"FLAGGED\"");
  /* The Status filter sees the new status. */
  d = query(p, filter, 1, &st);
  CHECK(count(d) == flagged + 1 && find(d, PHONE));
  ca_json_free(d);

  fprintf(stderr, "null removes a member; unknown members pass through\n");
  CHECK_STR(member(p, PHONE, "VerifiedName"), "\"Chatapp Demo\"");
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE,
                "{\"VerifiedName\":null,\"FutureField\":{\"Nested\":[1, "
                "2.50,null,\"a b\"]},\"Absent\":null}",
                err, sizeof err) == 200);
  CHECK_STR(member(p, PHONE, "VerifiedName"), "(absent)");
  CHECK_STR(member(p, PHONE, "FutureField"),
            "{\"Nested\":[1,2.50,null,\"a b\"]}");
  CHECK_STR(member(p, PHONE, "Absent"), "(absent)");
  /* Status removed: the number is no longer FLAGGED. */
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE, "{\"Status\":null}",
                err, sizeof err) == 200);
  d = query(p, filter, 1, &st);
  CHECK(count(d) == flagged && !find(d, PHONE));
  ca_json_free(d);

  fprintf(stderr, "PhoneNumber is fixed; unknown numbers and spaces: 404\n");
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE,
                "{\"PhoneNumber\":\"8613800000999\"}", err, sizeof err) == 400);
  CHECK(strstr(err, "\"PhoneNumber\" cannot be changed") != NULL);
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE,
                "{\"PhoneNumber\":null}", err, sizeof err) == 400);
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE,
                "{\"PhoneNumber\":\"" PHONE "\",\"X\":1}", err,
                sizeof err) == 200);
  CHECK_STR(member(p, PHONE, "X"), "1");
  /* A rejected patch changes nothing, not even its other members. */
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE,
                "{\"X\":2,\"PhoneNumber\":\"1\"}", err, sizeof err) == 400);
  CHECK_STR(member(p, PHONE, "X"), "1");
  CHECK(control(p, "PATCH", "/_emulator/numbers/8613899999999", "{}", err,
                sizeof err) == 404);
  CHECK(strstr(err, "8613899999999") && strstr(err, OWN));
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE "?space=" ACME, "{}",
                err, sizeof err) == 404);
  CHECK(strstr(err, PHONE) && strstr(err, ACME));
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE "?space=C404", "{}",
                err, sizeof err) == 404);
  CHECK(strstr(err, "C404") != NULL);
  /* Another space by ?space=, another account's own space by ?account=. */
  CHECK(control(p, "PATCH", "/_emulator/numbers/6591234572?space=" ACME,
                "{\"Status\":\"CONNECTED\"}", err, sizeof err) == 200);
  CHECK(control(p, "PATCH",
                "/_emulator/numbers/14155550123?account=1000000000000002",
                "{\"QualityRating\":\"RED\"}", err, sizeof err) == 200);
  CHECK(control(p, "GET", "/_emulator/numbers/" PHONE, NULL, err, sizeof err) ==
        405);
}

static void test_add_delete(const emu_proc *p)
{
  ca_kv acme[2] = {{"CustSpaceId", ACME}, {"IsvCode", "isv-acme-7f3k9q2m"}};
  ca_json_doc *d;
  long st;
  char err[256];

  fprintf(stderr, "POST adds numbers; 409 on a duplicate, all or none\n");
  CHECK(control(p, "POST", "/_emulator/numbers",
                "{\"PhoneNumber\":\"8613800000100\",\"Status\":\"CONNECTED\","
                "\"QualityRating\":\"GREEN\",\"Novel\":[true]}",
                err, sizeof err) == 200);
  CHECK_STR(member(p, "8613800000100", "Novel"), "[true]");
  CHECK(control(p, "POST", "/_emulator/numbers",
                "{\"PhoneNumber\":\"8613800000100\"}", err, sizeof err) == 409);
  CHECK(strstr(err, "8613800000100") && strstr(err, OWN));
  CHECK(control(p, "POST", "/_emulator/numbers",
                "[{\"PhoneNumber\":\"8613800000101\"},"
                "{\"PhoneNumber\":\"8613800000001\"}]",
                err, sizeof err) == 409);
  CHECK_STR(member(p, "8613800000101", "PhoneNumber"), "(no number)");
  CHECK(control(p, "POST", "/_emulator/numbers",
                "[{\"PhoneNumber\":\"8613800000101\"},"
                "{\"PhoneNumber\":\"8613800000101\"}]",
                err, sizeof err) == 409);
  CHECK(control(p, "POST", "/_emulator/numbers?space=" ACME,
                "[{\"PhoneNumber\":\"6591230001\",\"Status\":\"PENDING\"},"
                "{\"PhoneNumber\":\"6591230002\"}]",
                err, sizeof err) == 200);
  d = query(p, acme, 2, &st);
  CHECK(count(d) == 8 && find(d, "6591230001") && find(d, "6591230002"));
  ca_json_free(d);
  CHECK(control(p, "POST", "/_emulator/numbers?space=C404",
                "{\"PhoneNumber\":\"1\"}", err, sizeof err) == 404);

  fprintf(stderr, "DELETE removes; 404 after\n");
  CHECK(control(p, "DELETE", "/_emulator/numbers/6591230001?space=" ACME, NULL,
                err, sizeof err) == 200);
  CHECK(control(p, "DELETE", "/_emulator/numbers/6591230001?space=" ACME, NULL,
                err, sizeof err) == 404);
  CHECK(strstr(err, "6591230001") && strstr(err, ACME));
  d = query(p, acme, 2, &st);
  CHECK(count(d) == 7 && !find(d, "6591230001"));
  ca_json_free(d);
  CHECK(control(p, "DELETE", "/_emulator/numbers/8613800000002", NULL, err,
                sizeof err) == 200);
  CHECK_STR(member(p, "8613800000002", "PhoneNumber"), "(no number)");
  /* Escapes in the path: "+" stays a plus. */
  CHECK(control(p, "POST", "/_emulator/numbers", "{\"PhoneNumber\":\"+1 555\"}",
                err, sizeof err) == 200);
  CHECK(control(p, "DELETE", "/_emulator/numbers/+1%20555", NULL, err,
                sizeof err) == 200);
  CHECK(control(p, "DELETE", "/_emulator/numbers/%zz", NULL, err, sizeof err) ==
        400);

  fprintf(stderr, "POST /_emulator/spaces\n");
  CHECK(control(p, "POST", "/_emulator/spaces",
                "{\"cust_space_id\":\"C20990101000009\",\"isv_code\":\"isv-t\","
                "\"label\":\"Test space\"}",
                err, sizeof err) == 200);
  CHECK(control(p, "POST", "/_emulator/numbers?space=C20990101000009",
                "{\"PhoneNumber\":\"4930000001\",\"Status\":\"CONNECTED\"}",
                err, sizeof err) == 200);
  {
    ca_kv q[2] = {{"CustSpaceId", "C20990101000009"}, {"IsvCode", "isv-t"}};
    d = query(p, q, 2, &st);
    CHECK(st == 200 && count(d) == 1 && find(d, "4930000001"));
    ca_json_free(d);
    d = query(p, q, 1, &st); /* its IsvCode is checked like the others' */
    CHECK(st == 400);
    ca_json_free(d);
  }
  CHECK(control(p, "POST", "/_emulator/spaces",
                "{\"cust_space_id\":\"C20990101000009\"}", err,
                sizeof err) == 409);
  CHECK(control(p, "POST", "/_emulator/spaces",
                "{\"cust_space_id\":\"X\",\"default\":true,"
                "\"account\":\"1000000000000001\"}",
                err, sizeof err) == 409);
  CHECK(strstr(err, OWN) != NULL);
  CHECK(control(p, "POST", "/_emulator/spaces",
                "{\"cust_space_id\":\"X\",\"colour\":\"red\"}", err,
                sizeof err) == 400);
  CHECK(strstr(err, "colour") != NULL);
  /* Not an object (an array's members have no name: this once read a NULL
   * name, found by fuzz_emulator). */
  CHECK(control(p, "POST", "/_emulator/spaces", "[\"x\",{\"a\":1}]", err,
                sizeof err) == 400);
  CHECK(strstr(err, "a space is an object") != NULL);
  CHECK(control(p, "GET", "/_emulator/health", NULL, err, sizeof err) == 200);
}

/* The same in a fixture: a clean start-up failure (exit 1, the reason on
 * stderr), not a crash. */
static void test_fixture_array_space(void)
{
  extern const char *emu_exe;
  char path[512], cmd[2048], out[1024];
  int rc;

  fprintf(stderr, "a fixture whose space is an array\n");
  snprintf(path, sizeof path, "%s",
           write_temp(NULL, "array-space.json", "{\"spaces\":[[\"x\"]]}"));
  snprintf(out, sizeof out, "%s/array-space.err", scratch_dir());
  snprintf(cmd, sizeof cmd, "'%s' --port 0 --quiet --data '%s' 2>'%s'", emu_exe,
           path, out);
  rc = system(cmd);
  CHECK(rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
  {
    FILE *f = fopen(out, "r");
    char line[512] = "";
    CHECK(f && fgets(line, sizeof line, f));
    CHECK(strstr(line, "a space is an object") && strstr(line, path));
    if (f)
      fclose(f);
  }
}

static void test_bad_bodies(const emu_proc *p)
{
  const char *noexpect[] = {"Content-Type: application/json", NULL};
  size_t big = 1024 * 1024 + 1, i;
  char *body = malloc(big + 1), err[256];
  http_resp r;

  fprintf(stderr, "bad bodies: 400 with a reason\n");
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE, "{\"a\":", err,
                sizeof err) == 400);
  CHECK(strncmp(err, "body: ", 6) == 0 && strstr(err, "line 1"));
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE, "[1]", err,
                sizeof err) == 400);
  CHECK(strstr(err, "expected a JSON object") != NULL);
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE, NULL, err,
                sizeof err) == 400);
  CHECK(strstr(err, "empty") != NULL);
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE, "{\"a\\u0000b\":1}",
                err, sizeof err) == 400);
  CHECK(control(p, "POST", "/_emulator/numbers", "[]", err, sizeof err) == 400);
  CHECK(control(p, "POST", "/_emulator/numbers", "{\"Status\":\"CONNECTED\"}",
                err, sizeof err) == 400);
  CHECK(strstr(err, "number 1") && strstr(err, "PhoneNumber"));
  CHECK(control(p, "POST", "/_emulator/numbers",
                "[{\"PhoneNumber\":\"1\"},\"x\"]", err, sizeof err) == 400);
  CHECK(strstr(err, "number 2") != NULL);
  CHECK(control(p, "POST", "/_emulator/numbers?space=%00", "{}", err,
                sizeof err) == 400);
  if (!body) {
    CHECK(0 && "out of memory");
    return;
  }
  /* Too deep: 200 nested arrays. */
  memcpy(body, "{\"X\":", 5);
  for (i = 0; i < 200; i++)
    body[5 + i] = '[';
  for (i = 0; i < 200; i++)
    body[205 + i] = ']';
  memcpy(body + 405, "}", 2);
  CHECK(control(p, "PATCH", "/_emulator/numbers/" PHONE, body, err,
                sizeof err) == 400);
  CHECK(strstr(err, "deep") != NULL);
  /* Over 1 MiB: refused whole, not read as a cut-off document. */
  memset(body, ' ', big);
  memcpy(body, "{\"X\":1}", 7);
  body[big] = '\0';
  CHECK(emu_raw(p, "PATCH", "/_emulator/numbers/" PHONE, noexpect, body, big,
                &r) == 0);
  CHECK(r.status == 400 && strstr(r.body, "larger than"));
  http_resp_free(&r);
  free(body);
  CHECK_STR(member(p, PHONE, "X"), "1"); /* as test_patch left it */
}

/* Many numbers in one body (duplicates found by sorting, not pairwise);
 * at most EMU_PATCH_MAX (1000) members in one PATCH. */
static void test_large(const emu_proc *p)
{
  const char *hdr[] = {"Content-Type: application/json", NULL};
  const size_t n = 30000;
  ca_buf b = CA_BUF_INIT(2 * 1024 * 1024);
  http_resp r;
  ca_json_doc *d;
  size_t i;
  long st;
  ca_kv q[1] = {{"CustSpaceId", "C20230307000003"}};
  int ok = 1;

  fprintf(stderr, "30,000 numbers in one POST; 1,001 members in a PATCH\n");
  ok &= ca_buf_addc(&b, '[') == CHATAPP_OK;
  for (i = 0; i < n; i++)
    ok &= ca_buf_printf(&b, "%s{\"PhoneNumber\":\"62%08zu\"}", i ? "," : "",
                        i) == CHATAPP_OK;
  ok &= ca_buf_adds(&b, ",{\"PhoneNumber\":\"6200000007\"}]") == CHATAPP_OK;
  CHECK(ok);
  /* The last one repeats the 8th: nothing is added. */
  CHECK(emu_raw(p, "POST", "/_emulator/numbers?space=C20230307000003", hdr,
                b.ptr, b.len, &r) == 0);
  CHECK(r.status == 409 && strstr(r.body, "6200000007"));
  http_resp_free(&r);
  b.len -= strlen(",{\"PhoneNumber\":\"6200000007\"}]");
  ok = ca_buf_addc(&b, ']') == CHATAPP_OK;
  CHECK(ok && emu_raw(p, "POST", "/_emulator/numbers?space=C20230307000003",
                      hdr, b.ptr, b.len, &r) == 0);
  CHECK(r.status == 200 && strstr(r.body, "\"added\":30000"));
  http_resp_free(&r);
  d = query(p, q, 1, &st);
  CHECK(st == 200 && count(d) == n + 4 && find(d, "6200029999"));
  ca_json_free(d);
  ca_buf_reset(&b);
  ok = ca_buf_addc(&b, '{') == CHATAPP_OK;
  for (i = 0; i < 1001; i++)
    ok &= ca_buf_printf(&b, "%s\"M%zu\":%zu", i ? "," : "", i, i) == CHATAPP_OK;
  ok &= ca_buf_addc(&b, '}') == CHATAPP_OK;
  CHECK(ok && emu_raw(p, "PATCH", "/_emulator/numbers/" PHONE, hdr, b.ptr,
                      b.len, &r) == 0);
  CHECK(r.status == 400 && strstr(r.body, "at most 1000"));
  http_resp_free(&r);
  ca_buf_free(&b);
}

static void test_reset(const emu_proc *p)
{
  char err[256];
  ca_kv q[1] = {{"CustSpaceId", "C20990101000009"}};
  ca_json_doc *d;
  long st;

  fprintf(stderr, "reset restores the data\n");
  CHECK(control(p, "POST", "/_emulator/reset", NULL, err, sizeof err) == 200);
  CHECK_STR(member(p, PHONE, "QualityRating"), "\"GREEN\"");
  CHECK_STR(member(p, PHONE, "Status"), "\"CONNECTED\"");
  CHECK_STR(member(p, PHONE, "VerifiedName"), "\"Chatapp Demo\"");
  CHECK_STR(member(p, PHONE, "X"), "(absent)");
  CHECK_STR(member(p, "8613800000100", "PhoneNumber"), "(no number)");
  CHECK_STR(member(p, "8613800000002", "QualityRating"), "\"YELLOW\"");
  {
    ca_kv nus[1] = {{"CustSpaceId", "C20230307000003"}};
    d = query(p, nus, 1, &st);
    CHECK(count(d) == 4); /* the 30,000 are gone */
    ca_json_free(d);
  }
  d = query(p, q, 1, &st);
  CHECK(st == 400); /* the space added is gone */
  ca_json_free(d);
  CHECK(control(p, "GET", "/_emulator/numbers?space=C20990101000009", NULL, err,
                sizeof err) == 404);
}

/* ---- concurrency: changes racing queries ------------------------------ */

#define ROUNDS 40

typedef struct job {
  const emu_proc *p;
  int kind; /* 0 PATCH, 1 POST + DELETE, 2 query */
  int id;
  int bad; /* answers that were not as expected */
  int done;
} job;

static void *run_job(void *arg)
{
  job *j = arg;
  char path[128], body[128];
  int i;

  for (i = 0; i < ROUNDS; i++) {
    if (j->kind == 0) {
      snprintf(body, sizeof body, "{\"QualityRating\":\"%s\",\"T%d\":%d}",
               i % 2 ? "RED" : "GREEN", j->id, i);
      j->bad += control(j->p, "PATCH", "/_emulator/numbers/" PHONE, body, NULL,
                        0) != 200;
    } else if (j->kind == 1) {
      snprintf(path, sizeof path, "/_emulator/numbers/86139%03d%04d", j->id, i);
      snprintf(body, sizeof body, "{\"PhoneNumber\":\"86139%03d%04d\"}", j->id,
               i);
      j->bad +=
        control(j->p, "POST", "/_emulator/numbers", body, NULL, 0) != 200;
      j->bad += control(j->p, "DELETE", path, NULL, NULL, 0) != 200;
    } else {
      long st;
      ca_json_doc *d = query(j->p, NULL, 0, &st);
      const char *q = ca_json_get_str(find(d, PHONE), "QualityRating");
      j->bad +=
        st != 200 || !q || (strcmp(q, "RED") != 0 && strcmp(q, "GREEN") != 0);
      ca_json_free(d);
    }
    j->done++;
  }
  return NULL;
}

static void test_concurrent(const emu_proc *p)
{
  job jobs[6];
  pthread_t t[6];
  int started[6] = {0}, i;
  char err[256];

  fprintf(stderr, "PATCH, POST and DELETE racing queries\n");
  for (i = 0; i < 6; i++) {
    jobs[i] = (job){p, i % 3, i, 0, 0};
    started[i] = pthread_create(&t[i], NULL, run_job, &jobs[i]) == 0;
    CHECK(started[i]);
  }
  for (i = 0; i < 6; i++) {
    if (!started[i])
      continue;
    pthread_join(t[i], NULL);
    CHECK(jobs[i].done == ROUNDS);
    CHECK(jobs[i].bad == 0);
  }
  /* Every number added was removed again; the patches all landed. */
  CHECK(control(p, "GET", "/_emulator/numbers/x", NULL, err, sizeof err) ==
        405);
  {
    long st;
    ca_json_doc *d = query(p, NULL, 0, &st);
    const ca_json *n = find(d, PHONE);
    CHECK(count(d) == 7);
    CHECK(n && ca_json_get(n, "T0") && ca_json_get(n, "T3"));
    ca_json_free(d);
  }
}

int main(int argc, char **argv)
{
  const char *args[] = {"--quota", "100000", NULL};
  emu_proc p;
  int rc;

  rc = harness_main(argc, argv, 2, "EMULATOR", args, &p);
  if (rc)
    return rc;
  test_get(&p);
  test_patch(&p);
  test_add_delete(&p);
  test_bad_bodies(&p);
  test_large(&p);
  test_reset(&p);
  test_concurrent(&p);
  CHECK(emu_stop(&p) == 0);
  test_fixture_array_space();
  curl_global_cleanup();
  return test_report("test_emu_numbers");
}
