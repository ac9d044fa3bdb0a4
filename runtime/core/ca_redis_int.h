/*
 * ca_redis_int.h: internals shared by the Redis connection's files (the
 * public interface is ca_redis.h):
 *
 *   ca_redis_url.c    the URL (ca_redis_parse_url) and the password from
 *                     the environment
 *   ca_redis_reply.c  one round trip on the socket under one deadline, the
 *                     reply read through a budget (ca_redis_parse_reply)
 *   ca_redis.c        the connection: connect, AUTH, SELECT, PING, backoff,
 *                     commands and scripts
 */
#ifndef CA_REDIS_INT_H
#define CA_REDIS_INT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "ca_redis.h"

/* The reply being read: what its objects cost so far, against
 * CA_REDIS_MAX_REPLY.  The reader's privdata, so every task sees it. */
typedef struct reply_budget {
  redisReplyObjectFunctions *base; /* hiredis's own (build the objects) */
  size_t used;
  char why[160]; /* "" : nothing refused */
} reply_budget;

/* How a round trip ended. */
typedef enum { RT_OK, RT_IO, RT_TIMEOUT, RT_PROTOCOL, RT_TOOBIG } rt_result;

/* ca_redis_url.c: the password from the environment into *out (NULL:
 * none): CA_REDIS_PASSWORD_ENV, else the file CA_REDIS_PASSWORD_FILE_ENV
 * names.  CHATAPP_EINVAL with a message in err (never the password). */
chatapp_status ca_redis_read_password(char **out, ca_buf *err);

/* ca_redis_reply.c: route the reader rd through budget b (fns: where the
 * wrapped table lives, as long as rd).  0, or -1 for a reader without the
 * object functions. */
int ca_redis_budget_reader(redisReader *rd, reply_budget *b,
                           redisReplyObjectFunctions *fns);

/* ca_redis_reply.c: send one command on the live connection c and read its
 * reply into *out before deadline (monotonic, ca_now_us), its objects
 * charged to b (c's reader goes through it).  secret: the command holds the
 * password (its formatted copy is wiped).  Not RT_OK: why says what failed,
 * and the connection is out of step. */
rt_result ca_redis_roundtrip(redisContext *c, reply_budget *b, int argc,
                             const char **argv, const size_t *argvlen,
                             int64_t deadline, int secret, redisReply **out,
                             char *why, size_t size);

#endif
