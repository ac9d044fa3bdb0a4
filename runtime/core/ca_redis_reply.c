/*
 * ca_redis_reply.c: one round trip on a Redis connection's socket, and the
 * reply read without trusting the server: the command sent and its reply
 * read under one deadline (our own I/O, not hiredis's), the reply objects
 * built by hiredis through a budget (CA_REDIS_MAX_REPLY, _ELEMENTS, _DEPTH,
 * _LINE checked before anything is allocated), and ca_redis_parse_reply,
 * the same reader on a buffer for the tests and the fuzzer.
 */
#include "ca_redis_int.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_limiter.h" /* ca_now_us */

#define READ_CHUNK 16384
/* What one reply object costs beside its string or element array: its
 * redisReply (malloc's own overhead left out, so that an array of
 * CA_REDIS_MAX_ELEMENTS integers fits the budget). */
#define OBJECT_COST sizeof(redisReply)

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
typedef size_t array_count; /* hiredis 1.x's createArray */
#else
typedef int array_count; /* hiredis 0.14's */
#endif

/* ---- replies: objects built through a budget -----------------------------
 * hiredis builds the reply objects; these wrappers refuse first what is
 * over the caps (an array header announcing 2^31 elements would otherwise
 * be one calloc of 16 GiB; a stream of small elements, consumed as it comes,
 * is never large in the read buffer yet grows without bound in objects).
 * Returning NULL makes hiredis stop with "out of memory"; why says the
 * real reason. */

static int charge(reply_budget *b, size_t bytes)
{
  if (bytes > CA_REDIS_MAX_REPLY - b->used) {
    snprintf(b->why, sizeof b->why,
             "a reply over %u bytes (a hostile or wrong server?)",
             CA_REDIS_MAX_REPLY);
    return -1;
  }
  b->used += bytes;
  return 0;
}

static void *budget_string(const redisReadTask *t, char *s, size_t len)
{
  reply_budget *b = t->privdata;
  if (len > CA_REDIS_MAX_REPLY || charge(b, OBJECT_COST + len + 1)) {
    snprintf(b->why, sizeof b->why,
             "a reply over %u bytes (a hostile or wrong server?)",
             CA_REDIS_MAX_REPLY);
    return NULL;
  }
  return b->base->createString(t, s, len);
}

static void *budget_array(const redisReadTask *t, array_count elements)
{
  reply_budget *b = t->privdata;
  int depth = 1;

  for (const redisReadTask *q = t->parent; q; q = q->parent)
    depth++;
  if (depth > CA_REDIS_MAX_DEPTH) {
    snprintf(b->why, sizeof b->why,
             "a reply of arrays nested over %d deep (a hostile or wrong "
             "server?)",
             CA_REDIS_MAX_DEPTH);
    return NULL;
  }
  if ((unsigned long long)elements > CA_REDIS_MAX_ELEMENTS) {
    snprintf(b->why, sizeof b->why,
             "an array of %llu elements, over %u (a hostile or wrong "
             "server?)",
             (unsigned long long)elements, CA_REDIS_MAX_ELEMENTS);
    return NULL;
  }
  if (charge(b, OBJECT_COST + (size_t)elements * sizeof(redisReply *)))
    return NULL;
  return b->base->createArray(t, elements);
}

static void *budget_integer(const redisReadTask *t, long long v)
{
  reply_budget *b = t->privdata;
  if (charge(b, OBJECT_COST))
    return NULL;
  return b->base->createInteger(t, v);
}

static void *budget_nil(const redisReadTask *t)
{
  reply_budget *b = t->privdata;
  if (charge(b, OBJECT_COST))
    return NULL;
  return b->base->createNil(t);
}

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
static void *budget_double(const redisReadTask *t, double d, char *s,
                           size_t len)
{
  reply_budget *b = t->privdata;
  if (charge(b, OBJECT_COST + len + 1))
    return NULL;
  return b->base->createDouble(t, d, s, len);
}

static void *budget_bool(const redisReadTask *t, int v)
{
  reply_budget *b = t->privdata;
  if (charge(b, OBJECT_COST))
    return NULL;
  return b->base->createBool(t, v);
}
#endif

int ca_redis_budget_reader(redisReader *rd, reply_budget *b,
                           redisReplyObjectFunctions *fns)
{
  if (!rd || !rd->fn || !rd->fn->createString || !rd->fn->createArray ||
      !rd->fn->createInteger || !rd->fn->createNil || !rd->fn->freeObject)
    return -1;
  b->base = rd->fn;
  b->used = 0;
  b->why[0] = '\0';
  *fns = *rd->fn;
  fns->createString = budget_string;
  fns->createArray = budget_array;
  fns->createInteger = budget_integer;
  fns->createNil = budget_nil;
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
  if (fns->createDouble)
    fns->createDouble = budget_double;
  if (fns->createBool)
    fns->createBool = budget_bool;
  rd->maxelements = CA_REDIS_MAX_ELEMENTS;
#endif
  rd->fn = fns;
  rd->privdata = b;
  return 0;
}

/* ---- one round trip --------------------------------------------------------
 * Our own I/O on the context's socket, not hiredis's: send() with
 * MSG_NOSIGNAL (a server that closes while we write must not kill the
 * process with SIGPIPE), and poll() against one deadline for the whole
 * round trip (a socket timeout bounds each read() only: a server dripping a
 * byte a second would hold a command for ever). */

static int remaining_ms(int64_t deadline)
{
  int64_t left = deadline - ca_now_us();
  if (left <= 0)
    return 0;
  return (int)((left + 999) / 1000);
}

/* Wait for fd to be ready for events; RT_OK, RT_TIMEOUT or RT_IO. */
static rt_result wait_fd(int fd, short events, int64_t deadline, char *why,
                         size_t size)
{
  for (;;) {
    struct pollfd pfd = {fd, events, 0};
    int ms = remaining_ms(deadline), n;
    if (ms == 0)
      return RT_TIMEOUT;
    n = poll(&pfd, 1, ms);
    if (n > 0)
      return RT_OK; /* readable, writable, or an error read() will tell */
    if (n == 0)
      continue; /* the deadline is checked above */
    if (errno != EINTR) {
      snprintf(why, size, "poll: %s", strerror(errno));
      return RT_IO;
    }
  }
}

static rt_result send_all(int fd, const char *buf, size_t len, int64_t deadline,
                          char *why, size_t size)
{
  size_t done = 0;

  while (done < len) {
    ssize_t w = send(fd, buf + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      done += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      rt_result rt = wait_fd(fd, POLLOUT, deadline, why, size);
      if (rt != RT_OK)
        return rt;
      continue;
    }
    snprintf(why, size, "sending: %s",
             w < 0 ? strerror(errno) : "nothing sent");
    return RT_IO;
  }
  return RT_OK;
}

/* The item the reader waits on, from what is buffered so far: a bulk
 * string announced over the cap fails now, not once 64 MiB have come; a
 * line (status, error, integer, array header) or a bulk string's header
 * over its size fails too (hiredis would rescan the unfinished line on
 * every read: quadratic time on a line that never ends). */
static int pending_too_big(const redisReader *rd, char *why, size_t size)
{
  const redisReadTask *t;
  size_t avail = rd->len - rd->pos, i;
  unsigned long long n = 0;

  if (rd->ridx < 0 || avail == 0)
    return 0;
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
  t = rd->task ? rd->task[rd->ridx] : NULL;
#else
  t = &rd->rstack[rd->ridx];
#endif
  if (!t)
    return 0;
  if (t->type != REDIS_REPLY_STRING) {
    if (avail <= CA_REDIS_MAX_LINE)
      return 0;
    snprintf(why, size,
             "a reply line over %u bytes (a hostile or wrong server?)",
             CA_REDIS_MAX_LINE);
    return 1;
  }
  for (i = rd->pos; i < rd->len && rd->buf[i] >= '0' && rd->buf[i] <= '9' &&
                    n <= CA_REDIS_MAX_REPLY;
       i++)
    n = n * 10 + (unsigned)(rd->buf[i] - '0');
  if (n > CA_REDIS_MAX_REPLY) {
    snprintf(why, size,
             "a bulk string announced over %u bytes (a hostile or wrong "
             "server?)",
             CA_REDIS_MAX_REPLY);
    return 1;
  }
  if (avail >= 32 && !memchr(rd->buf + rd->pos, '\n', 32)) {
    snprintf(why, size,
             "not Redis's protocol: a bulk string's length of "
             "over 30 bytes");
    return 2;
  }
  return 0;
}

/* Take a reply out of rd if it holds a whole one: RT_OK with *out set, or
 * RT_OK with *out NULL (more is needed), or why not. */
static rt_result parse_step(redisReader *rd, const reply_budget *b, void **out,
                            char *why, size_t size)
{
  *out = NULL;
  if (redisReaderGetReply(rd, out) != REDIS_OK) {
    if (b->why[0]) {
      snprintf(why, size, "%s", b->why);
      return RT_TOOBIG;
    }
    if (rd->err == REDIS_ERR_OOM) {
      snprintf(why, size, "out of memory reading a reply");
      return RT_IO;
    }
    snprintf(why, size, "not Redis's protocol: %s", rd->errstr);
    return RT_PROTOCOL;
  }
  if (*out)
    return RT_OK;
  switch (pending_too_big(rd, why, size)) {
  case 1:
    return RT_TOOBIG;
  case 2:
    return RT_PROTOCOL;
  default:
    return RT_OK;
  }
}

/* Give rd n more bytes, never holding more than CA_REDIS_MAX_REPLY
 * unparsed. */
static rt_result feed(redisReader *rd, const char *chunk, size_t n, char *why,
                      size_t size)
{
  if (redisReaderFeed(rd, chunk, n) != REDIS_OK) {
    snprintf(why, size, "out of memory reading a reply");
    return RT_IO;
  }
  if (rd->len - rd->pos > CA_REDIS_MAX_REPLY) {
    snprintf(why, size, "a reply over %u bytes (a hostile or wrong server?)",
             CA_REDIS_MAX_REPLY);
    return RT_TOOBIG;
  }
  return RT_OK;
}

/* Read one reply of c into *out before deadline, its objects charged to b.
 * Never holds more than CA_REDIS_MAX_REPLY unparsed bytes, nor objects over
 * the budget. */
static rt_result read_reply(redisContext *c, const reply_budget *b,
                            int64_t deadline, redisReply **out, char *why,
                            size_t size)
{
  redisReader *rd = c->reader;
  char chunk[READ_CHUNK];

  for (;;) {
    void *reply;
    ssize_t got;
    rt_result rt = parse_step(rd, b, &reply, why, size);
    if (rt != RT_OK)
      return rt;
    if (reply) {
      *out = reply;
      return RT_OK;
    }
    rt = wait_fd(c->fd, POLLIN, deadline, why, size);
    if (rt != RT_OK)
      return rt;
    got = recv(c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
        continue;
      snprintf(why, size, "reading: %s", strerror(errno));
      return RT_IO;
    }
    if (got == 0) {
      snprintf(why, size, "the server closed the connection");
      return RT_IO;
    }
    rt = feed(rd, chunk, (size_t)got, why, size);
    if (rt != RT_OK)
      return rt;
  }
}

chatapp_status ca_redis_parse_reply(const char *buf, size_t len,
                                    redisReply **out, ca_buf *err)
{
  redisReader *rd = redisReaderCreate();
  redisReplyObjectFunctions fns;
  reply_budget b;
  char why[256];
  rt_result rt = RT_OK;
  void *reply = NULL;
  size_t done = 0;

  *out = NULL;
  if (!rd || ca_redis_budget_reader(rd, &b, &fns)) {
    if (rd)
      redisReaderFree(rd);
    return CHATAPP_ENOMEM;
  }
  /* as from a socket: READ_CHUNK bytes at a time, parsed after each */
  while (rt == RT_OK) {
    size_t n = len - done < READ_CHUNK ? len - done : READ_CHUNK;
    rt = parse_step(rd, &b, &reply, why, sizeof why);
    if (rt != RT_OK || reply || n == 0)
      break;
    rt = feed(rd, buf + done, n, why, sizeof why);
    done += n;
  }
  redisReaderFree(rd);
  switch (rt) {
  case RT_OK:
    *out = reply;
    return CHATAPP_OK;
  case RT_TOOBIG:
    ca_buf_printf(err, "%s", why);
    return CHATAPP_ETOOBIG;
  case RT_PROTOCOL:
    ca_buf_printf(err, "%s", why);
    return CHATAPP_EPARSE;
  default:
    ca_buf_printf(err, "%s", why);
    return CHATAPP_ENOMEM;
  }
}

rt_result ca_redis_roundtrip(redisContext *c, reply_budget *b, int argc,
                             const char **argv, const size_t *argvlen,
                             int64_t deadline, int secret, redisReply **out,
                             char *why, size_t size)
{
  char *cmd = NULL;
  long long len;
  rt_result rt;

  *out = NULL;
  b->used = 0;
  b->why[0] = '\0';
  len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
  if (len < 0 || !cmd) {
    snprintf(why, size, "out of memory formatting a command");
    return RT_IO;
  }
  rt = send_all(c->fd, cmd, (size_t)len, deadline, why, size);
  if (secret)
    ca_wipe(cmd, (size_t)len);
  redisFreeCommand(cmd);
  if (rt != RT_OK)
    return rt;
  return read_reply(c, b, deadline, out, why, size);
}
