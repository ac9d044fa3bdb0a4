/*
 * Fuzz target: a Redis server's reply, read the way ca_redis reads one
 * (ca_redis_parse_reply: hiredis's parser with chatapp-run's caps and
 * budget, fed 16 KiB at a time as from a socket).
 *
 * Properties: no crash, no undefined behaviour, no leak, no allocation
 * beyond the caps (libFuzzer's -rss_limit_mb and -malloc_limit_mb catch a
 * 16 GiB calloc); a reply is a tree of known types, at most
 * CA_REDIS_MAX_DEPTH arrays deep, each array at most CA_REDIS_MAX_ELEMENTS
 * long, its strings' lengths within the input; a failure is CHATAPP_ETOOBIG
 * or CHATAPP_EPARSE with a message of printable ASCII.
 */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const redisReply *x, int depth, size_t size)
{
  switch (x->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
  case REDIS_REPLY_ERROR:
    if (x->len > size || (x->len && !x->str))
      abort();
    break;
  case REDIS_REPLY_INTEGER:
  case REDIS_REPLY_NIL:
    break;
  case REDIS_REPLY_ARRAY:
    if (depth >= CA_REDIS_MAX_DEPTH || x->elements > CA_REDIS_MAX_ELEMENTS ||
        x->elements > size) {
      fprintf(stderr, "an array of %zu at depth %d\n", x->elements, depth + 1);
      abort();
    }
    for (size_t i = 0; i < x->elements; i++) {
      if (!x->element[i])
        abort();
      walk(x->element[i], depth + 1, size);
    }
    break;
  default:
    fprintf(stderr, "a reply of type %d\n", x->type);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  redisReply *x = NULL;
  ca_buf err = CA_BUF_INIT(4096);
  chatapp_status st = ca_redis_parse_reply((const char *)data, size, &x, &err);

  if (st == CHATAPP_OK) {
    if (x)
      walk(x, 0, size);
    freeReplyObject(x);
  } else {
    const char *m = ca_buf_str(&err);
    if (x || (st != CHATAPP_ETOOBIG && st != CHATAPP_EPARSE) || !*m) {
      fprintf(stderr, "status %d, message '%s'\n", (int)st, m);
      abort();
    }
    for (const char *p = m; *p; p++)
      if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
        fprintf(stderr, "the message holds byte 0x%02x: %s\n",
                (unsigned char)*p, m);
        abort();
      }
  }
  ca_buf_free(&err);
  return 0;
}
