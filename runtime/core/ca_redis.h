/*
 * ca_redis: one blocking connection to a Redis server, for what several
 * hosts share (docs/multi-host.md): the limiter's windows
 * (ca_limiter_redis.c), the leader lease (ca_lease.c) and, through the Lua
 * binding (lca_redis.c), the state store (lua/chatapp/state/redis.lua).
 * The client is hiredis (RESP2, synchronous).
 *
 * URL: redis://[user@]host[:port][/db]   (port 6379, db 0 by default)
 *   A password in the URL is refused: it would sit in the command line,
 *   the shell history and `ps`.  It comes from the environment instead:
 *   CHATAPP_REDIS_PASSWORD, or CHATAPP_REDIS_PASSWORD_FILE (a regular file,
 *   at most 4 KiB, one trailing newline dropped).  The password is never
 *   in a message: ca_redis_where() names the server without it.
 *
 * The server is untrusted data: replies are capped in size, elements and
 * depth; a reply of an unexpected type is an error, never a crash.  The
 * caps are checked before hiredis allocates (its reply object functions go
 * through a budget), so a hostile header costs nothing.  Each round trip
 * has one deadline (poll), and writes never raise SIGPIPE.
 * docs/internals/redis.md has the details.
 *
 * Failure and reconnection: a command on a broken connection fails at once
 * with CHATAPP_ETRANSPORT and a message naming the server; the next command
 * reconnects, but not before a backoff (50 ms doubling to 2 s, reset by a
 * success) has passed since the last failed attempt, so callers that ask
 * often do not hammer a dead server.  Callers own the retry policy and the
 * deadline (ca_redis_down_since tells how long the server has been away).
 *
 * Not thread-safe: one connection per thread.
 */
#ifndef CA_REDIS_H
#define CA_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "ca_buf.h"
#include "chatapp.h"

typedef struct ca_redis ca_redis;
typedef struct redisReply redisReply; /* hiredis; freeReplyObject() */

#define CA_REDIS_DEFAULT_PORT      6379
#define CA_REDIS_CONNECT_MS        1000        /* connect (and AUTH, SELECT) */
#define CA_REDIS_COMMAND_MS        2000        /* one command's round trip */
#define CA_REDIS_MAX_REPLY         (64u << 20) /* bytes of one reply */
#define CA_REDIS_MAX_ELEMENTS      (1u << 20)  /* elements of an array */
#define CA_REDIS_MAX_DEPTH         7           /* arrays nested in a reply */
#define CA_REDIS_MAX_LINE          (1u << 20)  /* a status or error line */
#define CA_REDIS_PASSWORD_ENV      "CHATAPP_REDIS_PASSWORD"
#define CA_REDIS_PASSWORD_FILE_ENV "CHATAPP_REDIS_PASSWORD_FILE"

typedef struct ca_redis_url {
  char host[256]; /* a name, an IPv4 or an IPv6 address (no brackets) */
  int port;
  int db;
  char user[128]; /* "" : the default user */
} ca_redis_url;

/* 1 when s names a Redis server (starts with "redis://"), else 0. */
int ca_redis_is_url(const char *s);

/* Parse url into out.  CHATAPP_EINVAL with a message in err (which never
 * repeats a password) for anything else: another scheme (rediss:// says
 * TLS is not supported), a password, a bad port or db, a query string. */
chatapp_status ca_redis_parse_url(const char *url, ca_redis_url *out,
                                  ca_buf *err);

/* Connect to url now: parse, read the password from the environment,
 * connect, AUTH, SELECT, PING.  On failure *out is NULL and err says what
 * failed, where and what to do (CHATAPP_EINVAL: the URL or the password
 * setting; CHATAPP_ECREDENTIALS: the server refused the password;
 * CHATAPP_ETRANSPORT: unreachable).  Free with ca_redis_free. */
chatapp_status ca_redis_open(const char *url, ca_redis **out, ca_buf *err);
void ca_redis_free(ca_redis *r);

/* "redis://host:port/db" (with "user@" when set), never the password: for
 * messages. */
const char *ca_redis_where(const ca_redis *r);

/* Run one command (argv/argvlen as hiredis's redisCommandArgv).  On
 * CHATAPP_OK *out is the reply (may be a REDIS_REPLY_ERROR: the server
 * answered; the caller decides); free it with freeReplyObject.  Otherwise
 * *out is NULL and err says why (CHATAPP_ETRANSPORT: connection lost or
 * refused, or still in its backoff; CHATAPP_ETIMEDOUT: no answer within
 * CA_REDIS_COMMAND_MS; CHATAPP_ETOOBIG / CHATAPP_EPARSE: a hostile reply).
 */
chatapp_status ca_redis_command(ca_redis *r, int argc, const char **argv,
                                const size_t *argvlen, redisReply **out,
                                ca_buf *err);

/* A server-side Lua script, run with EVALSHA (its SHA-1 is computed once)
 * and loaded with SCRIPT LOAD when the server answers NOSCRIPT (a restarted
 * or flushed server).  Define one per script as a static:
 *   static ca_redis_script acquire = {ACQUIRE_LUA, ""}; */
typedef struct ca_redis_script {
  const char *source;
  char sha[41]; /* filled on first use */
} ca_redis_script;

/* EVALSHA s with nkeys keys then args: argv holds the keys first, argc in
 * all.  Same results as ca_redis_command. */
chatapp_status ca_redis_eval(ca_redis *r, ca_redis_script *s, int nkeys,
                             int argc, const char **argv, const size_t *argvlen,
                             redisReply **out, ca_buf *err);

/* Parse buf as one reply, with the caps and the budget of a command's
 * reply (for tests and fuzzing: no connection).  CHATAPP_OK with *out the
 * reply (free it with freeReplyObject), or NULL when buf holds no whole
 * reply; CHATAPP_ETOOBIG or CHATAPP_EPARSE with a message in err. */
chatapp_status ca_redis_parse_reply(const char *buf, size_t len,
                                    redisReply **out, ca_buf *err);

/* Monotonic microseconds (ca_now_us) since the server was last reachable,
 * when a command failed for want of a connection; 0 when connected. */
int64_t ca_redis_down_since(const ca_redis *r);

/* Round trips made (commands sent, connects excluded): for the stats. */
uint64_t ca_redis_round_trips(const ca_redis *r);

#endif
