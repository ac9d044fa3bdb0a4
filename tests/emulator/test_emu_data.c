/*
 * chatapp-emulator: the data layer and the operations: the built-in sample
 * (every documented enum value and the undocumented ones), the response
 * shape, own and ISV spaces, Status filter, IsvCode check, unknown spaces,
 * UpdatePhoneWebhook changing later queries, reset, fixture directories and
 * untouched pass-through of unknown fields.
 *
 * Usage: test_emu_data EMULATOR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "harness.h"
#include "test.h"

extern const char *emu_exe;

/* Call op with params (as account key/secret); parsed body in *doc. */
static const ca_json *call(const emu_proc *p, const char *op,
                           const ca_kv *params, size_t n, const char *akid,
                           const char *secret, ca_json_doc **doc, long *st)
{
  call_opts o;
  http_resp r;

  memset(&o, 0, sizeof o);
  o.action = op;
  o.params = params;
  o.nparams = n;
  o.akid = akid;
  o.secret = secret;
  *doc = NULL;
  if (emu_call(p, &o, &r) != 0 || r.curl_code != CURLE_OK) {
    http_resp_free(&r);
    return NULL;
  }
  *doc = resp_json(&r);
  if (st)
    *st = r.status;
  http_resp_free(&r);
  return *doc ? ca_json_root(*doc) : NULL;
}

static const ca_json *number(const ca_json *root, const char *phone)
{
  const ca_json *n;

  for (n = ca_json_get(root, "PhoneNumbers")
             ? ca_json_get(root, "PhoneNumbers")->child
             : NULL;
       n; n = n->next) {
    const char *pn = ca_json_get_str(n, "PhoneNumber");
    if (pn && strcmp(pn, phone) == 0)
      return n;
  }
  return NULL;
}

static size_t count(const ca_json *root)
{
  const ca_json *a = ca_json_get(root, "PhoneNumbers");
  return a && a->type == CA_JSON_ARRAY ? a->count : (size_t)-1;
}

/* Add every value of field in root's numbers to seen (a '|'-list). */
static void collect(const ca_json *root, const char *field, char *seen,
                    size_t cap)
{
  const ca_json *n, *a = ca_json_get(root, "PhoneNumbers");
  char item[80];

  for (n = a ? a->child : NULL; n; n = n->next) {
    const char *v = ca_json_get_str(n, field);
    if (!v)
      continue;
    snprintf(item, sizeof item, "|%s|", v);
    if (!strstr(seen, item) && strlen(seen) + strlen(item) < cap)
      strcat(seen, item + 1); /* seen is "|A|B|" */
  }
}

static void test_sample(const emu_proc *p)
{
  static const char *const fields[] = {"Status",
                                       "QualityRating",
                                       "MessagingLimitTier",
                                       "CodeVerificationStatus",
                                       "NameStatus",
                                       "IsOfficial",
                                       NULL};
  static const char *const want[] = {"CONNECTED",
                                     "FLAGGED",
                                     "RESTRICTED",
                                     "BANNED",
                                     "RATE_LIMITED",
                                     "PENDING",
                                     "MIGRATED",
                                     "DISCONNECTED",
                                     "UNVERIFIED",
                                     "DELETED",
                                     "UNKNOWN",
                                     "OFFLINE",
                                     "GREEN",
                                     "YELLOW",
                                     "RED",
                                     "TIER_50",
                                     "TIER_250",
                                     "TIER_1K",
                                     "TIER_2K",
                                     "TIER_10K",
                                     "TIER_100K",
                                     "TIER_UNLIMITED",
                                     "VERIFIED",
                                     "REVOKED",
                                     "MORE_INFORMATION_REQUESTED",
                                     "REJECTED",
                                     "Approval",
                                     "Pending_Review",
                                     "Rejected",
                                     "Y",
                                     "N",
                                     NULL};
  static const char *const spaces[] = {"C20230115000001", "C20230220000002",
                                       "C20230307000003", "C20230412000004",
                                       NULL};
  char seen[2048] = "|";
  ca_json_doc *d;
  const ca_json *root, *n;
  size_t total = 0, i, f;
  long st = 0;

  fprintf(stderr, "sample data\n");
  root = call(p, QUERY, NULL, 0, NULL, NULL, &d, &st);
  CHECK(root && st == 200);
  CHECK(count(root) == 7); /* account 1's own numbers */
  /* The exact envelope, in order. */
  CHECK(root && root->child && strcmp(root->child->key, "RequestId") == 0);
  CHECK_STR(ca_json_get_str(root, "Code"), "OK");
  CHECK_STR(ca_json_get_str(root, "Message"), "SUCCESS");
  CHECK(ca_json_get(root, "AccessDeniedDetail") != NULL);
  for (f = 0; fields[f]; f++)
    collect(root, fields[f], seen, sizeof seen);
  n = number(root, "8613800000001");
  CHECK(n && ca_json_get(ca_json_get(n, "CallingConfigure"), "Calling"));
  total += count(root);
  ca_json_free(d);
  for (i = 0; spaces[i]; i++) {
    ca_kv q[2] = {{"CustSpaceId", spaces[i]}, {"IsvCode", "isv-acme-7f3k9q2m"}};
    root = call(p, QUERY, q, 2, NULL, NULL, &d, &st);
    CHECK(root && st == 200 && count(root) >= 2);
    if (!root)
      continue;
    for (f = 0; fields[f]; f++)
      collect(root, fields[f], seen, sizeof seen);
    total += count(root);
    ca_json_free(d);
  }
  root = call(p, QUERY, NULL, 0, KEY2_ID, KEY2_SECRET, &d, &st);
  CHECK(root && count(root) == 2); /* account 2's own numbers */
  CHECK(root && number(root, "14155550123"));
  total += root ? count(root) : 0;
  ca_json_free(d);
  CHECK(total >= 20 && total <= 30);
  for (i = 0; want[i]; i++) {
    char item[80];
    snprintf(item, sizeof item, "|%s|", want[i]);
    CHECK(strstr(seen, item) != NULL);
    if (!strstr(seen, item))
      fprintf(stderr, "  missing %s\n", want[i]);
  }
}

static void test_queries(const emu_proc *p)
{
  ca_kv q[3] = {{"CustSpaceId", "C20230115000001"},
                {"IsvCode", "isv-acme-7f3k9q2m"},
                {"Status", "CONNECTED"}};
  ca_json_doc *d;
  const ca_json *root;
  long st = 0;

  fprintf(stderr, "queries: Status filter, IsvCode, unknown space\n");
  root = call(p, QUERY, q, 3, NULL, NULL, &d, &st);
  CHECK(count(root) == 3);
  ca_json_free(d);
  q[2].value = "BANNED";
  root = call(p, QUERY, q, 3, NULL, NULL, &d, &st);
  CHECK(count(root) == 1 && number(root, "6591234572"));
  ca_json_free(d);
  q[2].value = "VERIFIED"; /* the docs' example: not a phone status */
  root = call(p, QUERY, q, 3, NULL, NULL, &d, &st);
  CHECK(count(root) == 0);
  ca_json_free(d);
  root = call(p, QUERY, q, 1, NULL, NULL, &d, &st); /* no IsvCode */
  CHECK_STR(ca_json_get_str(root, "Code"), "Ram.PermissionDeny");
  CHECK(st == 400);
  ca_json_free(d);
  q[1].value = "wrong";
  root = call(p, QUERY, q, 2, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "Ram.PermissionDeny");
  ca_json_free(d);
  q[0].value = "C99999999999999";
  root = call(p, QUERY, q, 1, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "Unknown.ResourceOwnerId");
  CHECK(st == 400);
  ca_json_free(d);
  /* Account 2 may not read account 1's own space. */
  q[0].value = "instance-1000000000000001";
  root = call(p, QUERY, q, 1, KEY2_ID, KEY2_SECRET, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "Unknown.ResourceOwnerId");
  ca_json_free(d);
  root = call(p, QUERY, q, 1, NULL, NULL, &d, &st);
  CHECK(count(root) == 7);
  ca_json_free(d);
  /* Sync needs CustSpaceId. */
  root = call(p, "ChatappSyncPhoneNumber", NULL, 0, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "MissingParameter");
  ca_json_free(d);
  {
    ca_kv v[2] = {{"CustSpaceId", "C20230220000002"},
                  {"PhoneNumber", "60123456792"}};
    root =
      call(p, "GetPhoneNumberVerificationStatus", v, 2, NULL, NULL, &d, &st);
    CHECK_STR(
      ca_json_get_str(ca_json_get(root, "Data"), "CodeVerificationStatus"),
      "REJECTED");
    ca_json_free(d);
  }
}

static const char *field_of(const emu_proc *p, const char *space,
                            const char *phone, const char *field)
{
  static char out[256];
  ca_kv q[1] = {{"CustSpaceId", space}};
  ca_json_doc *d;
  const ca_json *root =
    call(p, "ChatappSyncPhoneNumber", q, 1, NULL, NULL, &d, NULL);
  const char *v = ca_json_get_str(number(root, phone), field);

  snprintf(out, sizeof out, "%s", v ? v : "(absent)");
  ca_json_free(d);
  return out;
}

static void test_update(const emu_proc *p)
{
  const char *sp = "C20230220000002", *ph = "60123456790";
  const char *good = "https://hooks.example.com/cams/C20230220000002/status";
  ca_kv u[4] = {{"CustSpaceId", sp},
                {"PhoneNumber", ph},
                {"StatusCallbackUrl", good},
                {"HttpFlag", "Y"}};
  ca_json_doc *d;
  const ca_json *root;
  long st = 0;
  call_opts o;
  http_resp r;

  fprintf(stderr, "UpdatePhoneWebhook changes a later query\n");
  CHECK_STR(field_of(p, sp, ph, "StatusCallbackUrl"),
            "https://hooks.example.org/borneo/status");
  root = call(p, "UpdatePhoneWebhook", u, 4, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "OK");
  CHECK(st == 200);
  ca_json_free(d);
  CHECK_STR(field_of(p, sp, ph, "StatusCallbackUrl"), good);
  CHECK_STR(field_of(p, sp, ph, "UpCallbackUrl"),
            "https://hooks.example.com/cams/C20230220000002/inbound");
  /* HttpFlag=N clears the URLs; QueueFlag N then Y. */
  u[2] = (ca_kv){"HttpFlag", "N"};
  u[3] = (ca_kv){"QueueFlag", "N"};
  root = call(p, "UpdatePhoneWebhook", u, 4, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "OK");
  ca_json_free(d);
  CHECK_STR(field_of(p, sp, ph, "UpCallbackUrl"), "");
  CHECK_STR(field_of(p, sp, ph, "UpQueue"), "");
  u[3] = (ca_kv){"QueueFlag", "Y"};
  root = call(p, "UpdatePhoneWebhook", u, 4, NULL, NULL, &d, &st);
  ca_json_free(d);
  CHECK_STR(field_of(p, sp, ph, "StatusQueue"),
            "Alicom-Queue-1000000000000001-ChatAppStatus");
  /* The same with the parameters in a form body. */
  memset(&o, 0, sizeof o);
  o.action = "UpdatePhoneWebhook";
  u[2] = (ca_kv){"UpCallbackUrl", "https://form.example.com/in"};
  o.params = u;
  o.nparams = 3;
  o.form = 1;
  CHECK(emu_call(p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "OK");
  http_resp_free(&r);
  CHECK_STR(field_of(p, sp, ph, "UpCallbackUrl"),
            "https://form.example.com/in");
  /* Errors. */
  root = call(p, "UpdatePhoneWebhook", u, 1, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "MissingParameter");
  CHECK(strstr(ca_json_get_str(root, "Message"), "PhoneNumber") != NULL);
  ca_json_free(d);
  u[1].value = "60100000000";
  root = call(p, "UpdatePhoneWebhook", u, 2, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "InvalidParameter");
  CHECK(st == 400);
  ca_json_free(d);
  u[1].value = ph;
  u[2] = (ca_kv){"HttpFlag", "yes"};
  root = call(p, "UpdatePhoneWebhook", u, 3, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "InvalidParameter");
  ca_json_free(d);
  u[0].value = "C99999999999999";
  root = call(p, "UpdatePhoneWebhook", u, 2, NULL, NULL, &d, &st);
  CHECK_STR(ca_json_get_str(root, "Code"), "Unknown.ResourceOwnerId");
  ca_json_free(d);
  /* Reset brings the fixture back. */
  CHECK(emu_http(p, "POST", "/_emulator/reset", NULL, &r) == 0);
  http_resp_free(&r);
  CHECK_STR(field_of(p, sp, ph, "StatusCallbackUrl"),
            "https://hooks.example.org/borneo/status");
}

static void test_fixture_dir(void)
{
  char dir[512], path[600];
  const char *a =
    "{\"cust_space_id\":\"\",\"label\":\"own\",\"phone_numbers\":[\n"
    "  {\"PhoneNumber\":\"8613900000001\",\"Status\":\"CONNECTED\",\n"
    "   \"Future\": { \"Nested\" : [ 1, 2.50, 1e2, null, \"a b\" ] },\n"
    "   \"Weird \\\"key\\\"\": \"x\\u00e9y\"}]}";
  const char *b =
    "{\"spaces\":[{\"cust_space_id\":\"S2\",\"account\":\"1000000000000002\","
    "\"phone_numbers\":[{\"PhoneNumber\":\"1\"}]}]}";
  const char *args[] = {"--data", dir, NULL};
  emu_proc p;
  ca_json_doc *d;
  const ca_json *root;
  call_opts o;
  http_resp r;
  long st = 0;

  fprintf(stderr, "fixture directory, untouched pass-through\n");
  snprintf(dir, sizeof dir, "%s/fixtures", scratch_dir());
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "fixtures/a.json");
  write_temp(NULL, path, a);
  write_temp(NULL, "fixtures/b.json", b);
  write_temp(NULL, "fixtures/notes.txt", "not json");
  if (emu_start(&p, args) != 0) {
    CHECK(0 && "emulator did not start");
    return;
  }
  memset(&o, 0, sizeof o);
  CHECK(emu_call(&p, &o, &r) == 0);
  CHECK(strstr(r.body, "\"PhoneNumbers\":[{\"PhoneNumber\":\"8613900000001\","
                       "\"Status\":\"CONNECTED\",\"Future\":{\"Nested\":[1,"
                       "2.50,1e2,null,\"a b\"]},\"Weird \\\"key\\\"\":"
                       "\"x\\u00e9y\"}]") != NULL);
  http_resp_free(&r);
  {
    ca_kv q[1] = {{"CustSpaceId", "S2"}};
    root = call(&p, QUERY, q, 1, NULL, NULL, &d, &st);
    CHECK_STR(ca_json_get_str(root, "Code"), "Unknown.ResourceOwnerId");
    ca_json_free(d);
    root = call(&p, QUERY, q, 1, KEY2_ID, KEY2_SECRET, &d, &st);
    CHECK(count(root) == 1);
    ca_json_free(d);
  }
  CHECK(emu_stop(&p) == 0);
  /* A broken fixture stops the start with a message. */
  write_temp(NULL, "fixtures/c.json",
             "{\"cust_space_id\":\"S2\",\"phone_numbers\":[]}");
  CHECK(emu_start(&p, args) != 0);
}

int main(int argc, char **argv)
{
  const char *args[] = {"--quota", "100000", NULL};
  emu_proc p;
  int rc;

  rc = harness_main(argc, argv, 2, "EMULATOR", args, &p);
  if (rc)
    return rc;
  test_sample(&p);
  test_queries(&p);
  test_update(&p);
  CHECK(emu_stop(&p) == 0);
  test_fixture_dir();
  curl_global_cleanup();
  return test_report("test_emu_data");
}
