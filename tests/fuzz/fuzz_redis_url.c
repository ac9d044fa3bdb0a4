/*
 * Fuzz target: the Redis URL parser (ca_redis_parse_url in
 * runtime/core/ca_redis_url.c).  The input, cut at its first NUL, is the URL.
 *
 * Properties: no crash, no undefined behaviour, no leak; a success names a
 * non-empty host of allowed characters (or an IPv6 address), a port in
 * 1..65535, a db in 0..100000 and a user of allowed characters, and the
 * URL rebuilt from them parses to the same; a failure is CHATAPP_EINVAL
 * with a message of printable ASCII that never holds the password: the
 * text after ':' in the user info (up to the last '@'), when that text is
 * not one of the messages' own words.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every message the parser has, so a "password" that is one of their own
 * words (say "Redis") is not taken for a leak. */
static char known[8192];

static void learn(const char *url)
{
  ca_redis_url u;
  ca_buf err = CA_BUF_INIT(4096);
  if (ca_redis_parse_url(url, &u, &err) != CHATAPP_OK &&
      strlen(known) + err.len + 2 < sizeof known) {
    strcat(known, ca_buf_str(&err));
    strcat(known, "\n");
  }
  ca_buf_free(&err);
}

static void setup(void)
{
  static const char *urls[] = {
    "x",          "rediss://h",     "redis://a:b@h", "redis://h?x",
    "redis://@h", "redis://h/x",    "redis://h:0",   "redis://[::1",
    "redis://[]", "redis://[::1]x", "redis://u u@h", "redis://h h",
    "redis://",   "redis://h/0@x",
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++)
    learn(urls[i]);
  learn(NULL);
}

static int allowed(const char *s, int ipv6)
{
  for (; *s; s++) {
    char c = *s;
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '.';
    if (ipv6)
      ok = ok || c == ':';
    else
      ok = ok || c == '-' || c == '_';
    if (!ok)
      return 0;
  }
  return 1;
}

static void check_ok(const ca_redis_url *u)
{
  char again[512];
  ca_redis_url v;
  ca_buf err = CA_BUF_INIT(4096);
  int ipv6 = strchr(u->host, ':') != NULL;

  if (!u->host[0] || strlen(u->host) >= sizeof u->host ||
      !allowed(u->host, ipv6) || u->port < 1 || u->port > 65535 || u->db < 0 ||
      u->db > 100000 || !allowed(u->user, 0)) {
    fprintf(stderr, "accepted a bad URL: host '%s' port %d db %d user '%s'\n",
            u->host, u->port, u->db, u->user);
    abort();
  }
  snprintf(again, sizeof again, "redis://%s%s%s%s%s:%d/%d", u->user,
           u->user[0] ? "@" : "", ipv6 ? "[" : "", u->host, ipv6 ? "]" : "",
           u->port, u->db);
  if (ca_redis_parse_url(again, &v, &err) != CHATAPP_OK ||
      strcmp(v.host, u->host) || v.port != u->port || v.db != u->db ||
      strcmp(v.user, u->user)) {
    fprintf(stderr, "%s does not parse back: %s\n", again, ca_buf_str(&err));
    abort();
  }
  ca_buf_free(&err);
}

static void check_error(const char *url, chatapp_status st, const char *msg)
{
  const char *p, *at, *colon;

  if (st != CHATAPP_EINVAL || !*msg) {
    fprintf(stderr, "status %d, message '%s'\n", (int)st, msg);
    abort();
  }
  for (p = msg; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
      fprintf(stderr, "the message holds byte 0x%02x: %s\n", (unsigned char)*p,
              msg);
      abort();
    }
  if (strncmp(url, "redis://", 8) != 0)
    return;
  at = strrchr(url + 8, '@');
  colon = at ? memchr(url + 8, ':', (size_t)(at - url - 8)) : NULL;
  if (colon && at - colon > 1) {
    size_t n = (size_t)(at - colon - 1);
    char *secret = malloc(n + 1);
    if (!secret)
      abort();
    memcpy(secret, colon + 1, n);
    secret[n] = '\0';
    if (strstr(msg, secret) && !strstr(known, secret)) {
      fprintf(stderr, "the message shows the password '%s': %s\n", secret, msg);
      abort();
    }
    free(secret);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static int ready;
  ca_redis_url u;
  ca_buf err = CA_BUF_INIT(4096);
  chatapp_status st;
  char *url;

  if (!ready) {
    setup();
    ready = 1;
  }
  if (size > 4096)
    return 0;
  url = malloc(size + 1);
  if (!url)
    abort();
  memcpy(url, data, size);
  url[size] = '\0';
  st = ca_redis_parse_url(url, &u, &err);
  if (st == CHATAPP_OK)
    check_ok(&u);
  else
    check_error(url, st, ca_buf_str(&err));
  ca_buf_free(&err);
  free(url);
  return 0;
}
