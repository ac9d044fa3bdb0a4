/* ca_json: strict parsing, shallow mode, errors with positions. */
#include <string.h>

#include "ca_json.h"
#include "test.h"

static int parses(const char *s)
{
  ca_json_doc *d = ca_json_parse(s, strlen(s), 64, 0, NULL, 0);
  ca_json_free(d);
  return d != NULL;
}

int main(void)
{
  char err[128];
  ca_json_doc *d;
  const ca_json *r;
  const char *deep65, *shallow;
  char buf[512];
  int i;

  /* valid documents */
  CHECK(parses("{}"));
  CHECK(parses("[]"));
  CHECK(parses(" {\"a\": [1, -2.5e3, true, false, null, \"x\"]} "));
  CHECK(parses("\"\\u00e9\\ud83d\\ude00\""));
  /* invalid ones */
  CHECK(!parses(""));
  CHECK(!parses("{"));
  CHECK(!parses("{\"a\":1,}"));
  CHECK(!parses("[1,]"));
  CHECK(!parses("01"));
  CHECK(!parses("NaN"));
  CHECK(!parses("0x10"));
  CHECK(!parses("1e400"));        /* not finite */
  CHECK(!parses("\"\\ud800\""));  /* lone surrogate */
  CHECK(!parses("\"\xff\""));     /* invalid UTF-8 */
  CHECK(!parses("\"\xc0\xaf\"")); /* overlong */
  CHECK(!parses("\"a\nb\""));     /* control character */
  CHECK(!parses("{} {}"));
  CHECK(!parses("tru"));

  /* depth */
  memset(buf, 0, sizeof buf);
  for (i = 0; i < 65; i++)
    buf[i] = '[';
  for (i = 0; i < 65; i++)
    buf[65 + i] = ']';
  deep65 = buf;
  d = ca_json_parse(deep65, strlen(deep65), 64, 0, err, sizeof err);
  CHECK(d == NULL);
  CHECK(strstr(err, "nesting too deep") != NULL);
  d = ca_json_parse(deep65, strlen(deep65), 65, 0, err, sizeof err);
  CHECK(d != NULL);
  ca_json_free(d);

  /* the default depth is the project's one limit, CA_JSON_MAX_DEPTH */
  {
    char deep[2 * (CA_JSON_MAX_DEPTH + 1)];
    size_t k;
    for (k = 0; k <= CA_JSON_MAX_DEPTH; k++) {
      deep[k] = '[';
      deep[2 * CA_JSON_MAX_DEPTH + 1 - k] = ']';
    }
    CHECK(CA_JSON_MAX_DEPTH == 128);
    d = ca_json_parse(deep + 1, 2 * CA_JSON_MAX_DEPTH, 0, 0, err, sizeof err);
    CHECK(d != NULL); /* 128 levels */
    ca_json_free(d);
    d = ca_json_parse(deep, sizeof deep, 0, 0, err, sizeof err);
    CHECK(d == NULL); /* 129 */
  }

  /* UTF-8: what the encoder keeps and what it replaces */
  CHECK(ca_utf8_len((const unsigned char *)"\xc3\xa9", 2) == 2);
  CHECK(ca_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4) == 4);
  CHECK(ca_utf8_len((const unsigned char *)"\xc3", 1) == 0);         /* cut */
  CHECK(ca_utf8_len((const unsigned char *)"\xed\xa0\x80", 3) == 0); /* D800 */
  CHECK(ca_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4) == 0);
  CHECK(ca_utf8_len((const unsigned char *)"\xe0\x80\xaf", 3) ==
        0); /* overlong */

  /* error positions */
  d = ca_json_parse("{\n  \"a\": 1\n  \"b\": 2}", 20, 64, 0, err, sizeof err);
  CHECK(d == NULL);
  CHECK(strncmp(err, "line 3, column 3", 16) == 0);

  /* lookups, \u0000 inside strings, last duplicate wins */
  d = ca_json_parse("{\"k\":\"a\\u0000b\",\"n\":42,\"k2\":1,\"k2\":2}", 37, 64,
                    0, err, sizeof err);
  CHECK(d != NULL);
  r = ca_json_root(d);
  CHECK(r->type == CA_JSON_OBJECT && r->count == 4);
  CHECK(ca_json_get(r, "k")->str_len == 3);
  CHECK(ca_json_get(r, "n")->num == 42);
  CHECK(ca_json_get(r, "k2")->num == 2);
  CHECK(ca_json_get(r, "missing") == NULL);
  CHECK(ca_json_get_str(r, "n") == NULL);
  ca_json_free(d);

  /* shallow: nested values are checked but not built */
  shallow = "{\"Code\":\"OK\",\"PhoneNumbers\":[{\"a\":[1,2,{\"b\":3}]}]}";
  d = ca_json_parse(shallow, strlen(shallow), 64, CA_JSON_SHALLOW, err,
                    sizeof err);
  CHECK(d != NULL);
  r = ca_json_root(d);
  CHECK_STR(ca_json_get_str(r, "Code"), "OK");
  CHECK(ca_json_get(r, "PhoneNumbers")->type == CA_JSON_ARRAY);
  CHECK(ca_json_get(r, "PhoneNumbers")->child == NULL);
  CHECK(ca_json_get(r, "PhoneNumbers")->count == 1);
  ca_json_free(d);
  d = ca_json_parse("{\"Code\":\"OK\",\"x\":[1,}", 21, 64, CA_JSON_SHALLOW, err,
                    sizeof err);
  CHECK(d == NULL); /* still validated */

  ca_json_free(NULL);
  return test_report("test_json");
}
