#include "ca_redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_limiter.h" /* ca_now_us */

#define PASSWORD_MAX     4096
#define BACKOFF_FIRST_US 50000
#define BACKOFF_MAX_US   2000000
#define SCHEME           "redis://"
#define READ_CHUNK       16384
/* What one reply object costs beside its string or element array: its
 * redisReply (malloc's own overhead left out, so that an array of
 * CA_REDIS_MAX_ELEMENTS integers fits the budget). */
#define OBJECT_COST sizeof(redisReply)

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
typedef size_t array_count; /* hiredis 1.x's createArray */
#else
typedef int array_count; /* hiredis 0.14's */
#endif

/* The reply being read: what its objects cost so far, against
 * CA_REDIS_MAX_REPLY.  The reader's privdata, so every task sees it. */
typedef struct reply_budget {
  redisReplyObjectFunctions *base; /* hiredis's own (build the objects) */
  size_t used;
  char why[160]; /* "" : nothing refused */
} reply_budget;

struct ca_redis {
  redisContext *c; /* NULL while disconnected */
  ca_redis_url url;
  char *password;       /* NULL: none; wiped when freed */
  char where[448];      /* redis://[user@]host:port/db */
  char last_error[512]; /* why the last connection failed or broke */
  int64_t down_since;   /* 0: connected (or never tried) */
  int64_t next_try;     /* no connect attempt before this */
  int64_t backoff;
  uint64_t round_trips;
  reply_budget budget;
  redisReplyObjectFunctions fns; /* hiredis's, through the budget */
};

int ca_redis_is_url(const char *s)
{
  return s && strncmp(s, SCHEME, sizeof SCHEME - 1) == 0;
}

/* ---- the URL ------------------------------------------------------------ */

static int parse_int(const char *s, size_t n, long lo, long hi, int *out)
{
  long v = 0;
  size_t i;

  if (n == 0 || n > 6)
    return -1;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (v < lo || v > hi)
    return -1;
  *out = (int)v;
  return 0;
}

static int host_char(char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_';
}

chatapp_status ca_redis_parse_url(const char *url, ca_redis_url *out,
                                  ca_buf *err)
{
  static const char usage[] =
    "; the form is redis://[user@]host[:port][/db] (docs/multi-host.md)";
  const char *p, *at, *end, *host, *host_end, *colon = NULL;
  size_t n;

  /* No message repeats any of the URL: a mistyped one may hold a secret. */
  memset(out, 0, sizeof *out);
  out->port = CA_REDIS_DEFAULT_PORT;
  if (!url) {
    ca_buf_printf(err, "no Redis URL%s", usage);
    return CHATAPP_EINVAL;
  }
  if (strncmp(url, "rediss://", 9) == 0) {
    ca_buf_printf(err, "a Redis server over TLS (rediss://) is not supported: "
                       "reach it over a private network or a TLS tunnel "
                       "(stunnel) and give its plain redis:// address");
    return CHATAPP_EINVAL;
  }
  if (!ca_redis_is_url(url)) {
    ca_buf_printf(err, "not a Redis URL (it must start with redis://)%s",
                  usage);
    return CHATAPP_EINVAL;
  }
  p = url + sizeof SCHEME - 1;
  /* The last '@' anywhere: a password may hold '/', '?', '#' or '@'
   * unencoded, and must be refused, not mistaken for a port or a path. */
  at = strrchr(p, '@');
  if (at && memchr(p, ':', (size_t)(at - p))) {
    ca_buf_printf(err,
                  "the Redis URL holds a password: a command line is seen "
                  "by `ps` and kept in shell histories; remove it from the "
                  "URL and put it in %s, or the path of a file holding it "
                  "in %s",
                  CA_REDIS_PASSWORD_ENV, CA_REDIS_PASSWORD_FILE_ENV);
    return CHATAPP_EINVAL;
  }
  end = p + strcspn(p, "/?#");
  if (strpbrk(p, "?#")) {
    ca_buf_printf(err,
                  "the Redis URL may not have a query or a fragment "
                  "(options go in chatapp-run's own options)%s",
                  usage);
    return CHATAPP_EINVAL;
  }
  if (at) {
    if (at > end) {
      ca_buf_printf(err, "the Redis URL has an '@' after its host%s", usage);
      return CHATAPP_EINVAL;
    }
    n = (size_t)(at - p);
    if (n == 0 || n >= sizeof out->user) {
      ca_buf_printf(err, "the Redis URL's user name is empty or too long%s",
                    usage);
      return CHATAPP_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
      if (!host_char(p[i])) {
        ca_buf_printf(err, "the Redis URL's user name may hold only letters, "
                           "digits, '.', '-' and '_'");
        return CHATAPP_EINVAL;
      }
    memcpy(out->user, p, n);
    p = at + 1;
  }
  if (*p == '[') {
    host = p + 1;
    host_end = memchr(host, ']', (size_t)(end - host));
    if (!host_end) {
      ca_buf_printf(err, "the Redis URL's IPv6 address has no ']'%s", usage);
      return CHATAPP_EINVAL;
    }
    for (const char *q = host; q < host_end; q++)
      if (!((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
            (*q >= 'A' && *q <= 'F') || *q == ':' || *q == '.')) {
        ca_buf_printf(err, "the Redis URL's IPv6 address is not one%s", usage);
        return CHATAPP_EINVAL;
      }
    if (host_end == host || !memchr(host, ':', (size_t)(host_end - host))) {
      ca_buf_printf(err, "the Redis URL's IPv6 address is not one%s", usage);
      return CHATAPP_EINVAL;
    }
    if (host_end + 1 < end) {
      if (host_end[1] != ':') {
        ca_buf_printf(err, "unexpected text after the IPv6 address%s", usage);
        return CHATAPP_EINVAL;
      }
      colon = host_end + 1;
    }
  } else {
    host = p;
    colon = memchr(p, ':', (size_t)(end - p));
    host_end = colon ? colon : end;
    for (const char *q = host; q < host_end; q++)
      if (!host_char(*q)) {
        ca_buf_printf(err,
                      "the Redis URL's host may hold only letters, "
                      "digits, '.', '-' and '_' (an IPv6 address goes "
                      "in brackets)%s",
                      usage);
        return CHATAPP_EINVAL;
      }
  }
  n = (size_t)(host_end - host);
  if (n == 0 || n >= sizeof out->host) {
    ca_buf_printf(err, "the Redis URL has no host, or one too long%s", usage);
    return CHATAPP_EINVAL;
  }
  memcpy(out->host, host, n);
  out->host[n] = '\0';
  if (colon &&
      parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &out->port)) {
    ca_buf_printf(err, "the Redis URL's port is not a number in 1..65535%s",
                  usage);
    return CHATAPP_EINVAL;
  }
  if (*end == '/' && end[1] &&
      parse_int(end + 1, strlen(end + 1), 0, 100000, &out->db)) {
    ca_buf_printf(err,
                  "the Redis URL's database (after '/') is not a number "
                  "in 0..100000%s",
                  usage);
    return CHATAPP_EINVAL;
  }
  return CHATAPP_OK;
}

/* ---- the password ------------------------------------------------------- */

/* The password from the environment into *out (NULL: none). */
static chatapp_status read_password(char **out, ca_buf *err)
{
  const char *v = getenv(CA_REDIS_PASSWORD_ENV);
  const char *path = getenv(CA_REDIS_PASSWORD_FILE_ENV);
  char buf[PASSWORD_MAX + 1];
  struct stat sb;
  ssize_t got;
  size_t len = 0;
  int fd;

  *out = NULL;
  if (v && *v) {
    *out = strdup(v);
    return *out ? CHATAPP_OK : CHATAPP_ENOMEM;
  }
  if (!path || !*path)
    return CHATAPP_OK;
  /* O_NONBLOCK: a FIFO must not hang the open; fstat then refuses it. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    ca_buf_printf(err, "cannot open the Redis password file %s (%s): %s", path,
                  CA_REDIS_PASSWORD_FILE_ENV, strerror(errno));
    return CHATAPP_EINVAL;
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      sb.st_size > PASSWORD_MAX) {
    close(fd);
    ca_buf_printf(err,
                  "the Redis password file %s (%s) is not a regular file "
                  "of at most %d bytes",
                  path, CA_REDIS_PASSWORD_FILE_ENV, PASSWORD_MAX);
    return CHATAPP_EINVAL;
  }
  while (len < sizeof buf &&
         (got = read(fd, buf + len, sizeof buf - len)) != 0) {
    if (got < 0) {
      if (errno == EINTR)
        continue;
      ca_buf_printf(err, "cannot read the Redis password file %s: %s", path,
                    strerror(errno));
      close(fd);
      ca_wipe(buf, sizeof buf);
      return CHATAPP_EINVAL;
    }
    len += (size_t)got;
  }
  close(fd);
  if (len > PASSWORD_MAX) {
    ca_wipe(buf, sizeof buf);
    ca_buf_printf(err, "the Redis password file %s is over %d bytes", path,
                  PASSWORD_MAX);
    return CHATAPP_EINVAL;
  }
  if (len && buf[len - 1] == '\n')
    len--;
  if (len && buf[len - 1] == '\r')
    len--;
  if (len == 0 || memchr(buf, '\0', len)) {
    ca_wipe(buf, sizeof buf);
    ca_buf_printf(err,
                  "the Redis password file %s is empty or holds a NUL "
                  "byte",
                  path);
    return CHATAPP_EINVAL;
  }
  *out = malloc(len + 1);
  if (*out) {
    memcpy(*out, buf, len);
    (*out)[len] = '\0';
  }
  ca_wipe(buf, sizeof buf);
  return *out ? CHATAPP_OK : CHATAPP_ENOMEM;
}

/* ---- the connection ----------------------------------------------------- */

/* Copy text into dst without the password (a server's error may quote what
 * it was sent) and without control bytes.  The password is masked before the
 * text is cut to size, so no prefix of it survives the cut. */
static void copy_clean(const ca_redis *r, char *dst, size_t size,
                       const char *text)
{
  static const char mask[] = "<redacted>";
  const char *pw = r->password, *s = text;
  size_t o = 0, pn = pw ? strlen(pw) : 0;

  if (size == 0)
    return;
  while (*s && o + 1 < size) {
    if (pn && strncmp(s, pw, pn) == 0) {
      for (size_t i = 0; i < sizeof mask - 1 && o + 1 < size; i++)
        dst[o++] = mask[i];
      s += pn;
    } else {
      /* a server's text is shown on terminals: no control bytes */
      unsigned char ch = (unsigned char)*s++;
      dst[o++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
  }
  dst[o] = '\0';
  /* Cut short: the end may be the start of the password. */
  if (*s && pn > 1)
    for (size_t k = pn - 1 < o ? pn - 1 : o; k > 0; k--)
      if (memcmp(dst + o - k, pw, k) == 0) {
        memset(dst + o - k, '*', k);
        break;
      }
}

static void drop(ca_redis *r, const char *why)
{
  if (r->c) {
    redisFree(r->c);
    r->c = NULL;
  }
  copy_clean(r, r->last_error, sizeof r->last_error, why);
  if (!r->down_since)
    r->down_since = ca_now_us();
}

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

/* Route the reader rd through budget b (fns: where the wrapped table
 * lives, as long as rd). */
static int budget_reader(redisReader *rd, reply_budget *b,
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

/* Route the reader of the new context through r's budget. */
static int install_budget(ca_redis *r)
{
  return budget_reader(r->c->reader, &r->budget, &r->fns);
}

/* ---- one round trip --------------------------------------------------------
 * Our own I/O on the context's socket, not hiredis's: send() with
 * MSG_NOSIGNAL (a server that closes while we write must not kill the
 * process with SIGPIPE), and poll() against one deadline for the whole
 * round trip (a socket timeout bounds each read() only: a server dripping a
 * byte a second would hold a command for ever). */

typedef enum { RT_OK, RT_IO, RT_TIMEOUT, RT_PROTOCOL, RT_TOOBIG } rt_result;

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

/* Read one reply of r->c into *out before deadline.  Never holds more than
 * CA_REDIS_MAX_REPLY unparsed bytes, nor objects over the budget. */
static rt_result read_reply(ca_redis *r, int64_t deadline, redisReply **out,
                            char *why, size_t size)
{
  redisReader *rd = r->c->reader;
  char chunk[READ_CHUNK];

  for (;;) {
    void *reply;
    ssize_t got;
    rt_result rt = parse_step(rd, &r->budget, &reply, why, size);
    if (rt != RT_OK)
      return rt;
    if (reply) {
      *out = reply;
      return RT_OK;
    }
    rt = wait_fd(r->c->fd, POLLIN, deadline, why, size);
    if (rt != RT_OK)
      return rt;
    got = recv(r->c->fd, chunk, sizeof chunk, MSG_DONTWAIT);
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
  if (!rd || budget_reader(rd, &b, &fns)) {
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

/* Send one command on the live connection and read its reply before
 * deadline.  secret: the command holds the password (its formatted copy is
 * wiped). */
static rt_result roundtrip(ca_redis *r, int argc, const char **argv,
                           const size_t *argvlen, int64_t deadline, int secret,
                           redisReply **out, char *why, size_t size)
{
  char *cmd = NULL;
  long long len;
  rt_result rt;

  *out = NULL;
  r->budget.used = 0;
  r->budget.why[0] = '\0';
  len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
  if (len < 0 || !cmd) {
    snprintf(why, size, "out of memory formatting a command");
    return RT_IO;
  }
  rt = send_all(r->c->fd, cmd, (size_t)len, deadline, why, size);
  if (secret)
    ca_wipe(cmd, (size_t)len);
  redisFreeCommand(cmd);
  if (rt != RT_OK)
    return rt;
  return read_reply(r, deadline, out, why, size);
}

/* Why a reply is not the one expected: the server's error or its type. */
static void reply_problem(const ca_redis *r, const redisReply *x, char *dst,
                          size_t size)
{
  if (x->type == REDIS_REPLY_ERROR)
    copy_clean(r, dst, size, x->str ? x->str : "(error)");
  else if (x->type == REDIS_REPLY_STRING && x->len == 40)
    snprintf(dst, size, "SCRIPT LOAD answered another SHA-1: %.40s", x->str);
  else
    snprintf(dst, size, "an unexpected reply of type %d", x->type);
}

/* A refusal of AUTH that is about the credentials (not, say, "max number of
 * clients reached" or "LOADING"). */
static int credentials_refused(const char *s)
{
  return s && (strncmp(s, "WRONGPASS", 9) == 0 ||
               strncmp(s, "NOAUTH", 6) == 0 || strcasestr(s, "password"));
}

/* Connect, AUTH, SELECT, PING, all within CA_REDIS_CONNECT_MS.  0 on
 * success; else -1 with last_error set and *st the class of failure. */
static int connect_now(ca_redis *r, chatapp_status *st)
{
  int64_t deadline = ca_now_us() + (int64_t)CA_REDIS_CONNECT_MS * 1000;
  struct timeval tv = {CA_REDIS_CONNECT_MS / 1000,
                       (CA_REDIS_CONNECT_MS % 1000) * 1000};
  char why[256], msg[320], dbs[16];
  const char *argv[3];
  size_t len[3];
  redisReply *x;
  rt_result rt;

  *st = CHATAPP_ETRANSPORT;
  r->c = redisConnectWithTimeout(r->url.host, r->url.port, tv);
  if (!r->c || r->c->err) {
    snprintf(why, sizeof why, "cannot connect: %s",
             r->c ? r->c->errstr : "out of memory");
    drop(r, why);
    return -1;
  }
  if (install_budget(r)) {
    drop(r, "cannot set up the reply reader");
    return -1;
  }
  if (r->password || r->url.user[0]) {
    int n = 0;
    argv[n++] = "AUTH";
    if (r->url.user[0])
      argv[n++] = r->url.user;
    argv[n++] = r->password ? r->password : "";
    for (int i = 0; i < n; i++)
      len[i] = strlen(argv[i]);
    rt = roundtrip(r, n, argv, len, deadline, 1, &x, why, sizeof why);
    if (rt == RT_OK && x->type == REDIS_REPLY_ERROR &&
        credentials_refused(x->str)) {
      reply_problem(r, x, why, sizeof why);
      freeReplyObject(x);
      *st = CHATAPP_ECREDENTIALS;
      drop(r, "");
      if (r->password)
        snprintf(r->last_error, sizeof r->last_error,
                 "the server refused the %s (%.160s); check %s or %s",
                 r->url.user[0] ? "user name or password" : "password", why,
                 CA_REDIS_PASSWORD_ENV, CA_REDIS_PASSWORD_FILE_ENV);
      else
        snprintf(r->last_error, sizeof r->last_error,
                 "the server refused user %.100s without a password (%.120s): "
                 "put the password in %s, or the path of a file holding it "
                 "in %s",
                 r->url.user, why, CA_REDIS_PASSWORD_ENV,
                 CA_REDIS_PASSWORD_FILE_ENV);
      return -1;
    }
    if (rt != RT_OK || x->type == REDIS_REPLY_ERROR) {
      if (rt == RT_OK) {
        reply_problem(r, x, why, sizeof why);
        freeReplyObject(x);
      } else if (rt == RT_TIMEOUT)
        snprintf(why, sizeof why, "no answer within %d ms",
                 CA_REDIS_CONNECT_MS);
      snprintf(msg, sizeof msg, "AUTH failed: %.200s", why);
      drop(r, msg);
      return -1;
    }
    freeReplyObject(x);
  }
  if (r->url.db) {
    snprintf(dbs, sizeof dbs, "%d", r->url.db);
    argv[0] = "SELECT";
    argv[1] = dbs;
    len[0] = 6;
    len[1] = strlen(dbs);
    rt = roundtrip(r, 2, argv, len, deadline, 0, &x, why, sizeof why);
    if (rt != RT_OK || x->type == REDIS_REPLY_ERROR) {
      if (rt == RT_OK) {
        reply_problem(r, x, why, sizeof why);
        /* NOAUTH: the server wants a password; reported by PING below */
        if (!(x->str && strncmp(x->str, "NOAUTH", 6) == 0))
          *st = CHATAPP_EINVAL;
        freeReplyObject(x);
      } else if (rt == RT_TIMEOUT)
        snprintf(why, sizeof why, "no answer within %d ms",
                 CA_REDIS_CONNECT_MS);
      if (*st == CHATAPP_EINVAL || rt != RT_OK) {
        snprintf(msg, sizeof msg, "cannot select database %d: %.200s",
                 r->url.db, why);
        drop(r, msg);
        return -1;
      }
    } else
      freeReplyObject(x);
  }
  argv[0] = "PING";
  len[0] = 4;
  rt = roundtrip(r, 1, argv, len, deadline, 0, &x, why, sizeof why);
  if (rt == RT_OK && x->type == REDIS_REPLY_ERROR && x->str &&
      strncmp(x->str, "NOAUTH", 6) == 0) {
    freeReplyObject(x);
    *st = CHATAPP_ECREDENTIALS;
    drop(r, "");
    snprintf(r->last_error, sizeof r->last_error,
             "the server wants a password: put it in %s, or the path of a "
             "file holding it in %s",
             CA_REDIS_PASSWORD_ENV, CA_REDIS_PASSWORD_FILE_ENV);
    return -1;
  }
  if (rt != RT_OK || x->type != REDIS_REPLY_STATUS) {
    if (rt == RT_OK) {
      reply_problem(r, x, why, sizeof why);
      freeReplyObject(x);
    } else if (rt == RT_TIMEOUT)
      snprintf(why, sizeof why, "no answer within %d ms", CA_REDIS_CONNECT_MS);
    snprintf(msg, sizeof msg, "PING failed: %.200s", why);
    drop(r, msg);
    return -1;
  }
  freeReplyObject(x);
  r->down_since = 0;
  r->backoff = 0;
  r->last_error[0] = '\0';
  return 0;
}

chatapp_status ca_redis_open(const char *url, ca_redis **out, ca_buf *err)
{
  ca_redis *r;
  chatapp_status st;

  *out = NULL;
  r = calloc(1, sizeof *r);
  if (!r)
    return CHATAPP_ENOMEM;
  st = ca_redis_parse_url(url, &r->url, err);
  if (!st)
    st = read_password(&r->password, err);
  if (st) {
    ca_redis_free(r);
    return st;
  }
  snprintf(r->where, sizeof r->where, "redis://%s%s%s%s%s:%d/%d", r->url.user,
           r->url.user[0] ? "@" : "", strchr(r->url.host, ':') ? "[" : "",
           r->url.host, strchr(r->url.host, ':') ? "]" : "", r->url.port,
           r->url.db);
  if (connect_now(r, &st)) {
    ca_buf_printf(err, "Redis at %s: %s%s", r->where, r->last_error,
                  st == CHATAPP_ETRANSPORT
                    ? "; is the server running and reachable from here?"
                    : "");
    ca_redis_free(r);
    return st;
  }
  *out = r;
  return CHATAPP_OK;
}

void ca_redis_free(ca_redis *r)
{
  if (!r)
    return;
  if (r->c)
    redisFree(r->c);
  if (r->password) {
    ca_wipe(r->password, strlen(r->password));
    free(r->password);
  }
  free(r);
}

const char *ca_redis_where(const ca_redis *r)
{
  return r->where;
}

int64_t ca_redis_down_since(const ca_redis *r)
{
  return r->down_since;
}

uint64_t ca_redis_round_trips(const ca_redis *r)
{
  return r->round_trips;
}

chatapp_status ca_redis_command(ca_redis *r, int argc, const char **argv,
                                const size_t *argvlen, redisReply **out,
                                ca_buf *err)
{
  int64_t now = ca_now_us();
  chatapp_status st;
  redisReply *x;
  rt_result rt;
  char why[200];

  *out = NULL;
  if (argc < 1 || !argv) {
    ca_buf_printf(err, "ca_redis_command: no command");
    return CHATAPP_EINVAL;
  }
  if (!r->c) {
    if (now < r->next_try) {
      ca_buf_printf(err,
                    "Redis at %s is unreachable (%s); trying again in "
                    "%lld ms",
                    r->where, r->last_error,
                    (long long)(r->next_try - now + 999) / 1000);
      return CHATAPP_ETRANSPORT;
    }
    if (connect_now(r, &st)) {
      r->backoff = r->backoff ? r->backoff * 2 : BACKOFF_FIRST_US;
      if (r->backoff > BACKOFF_MAX_US)
        r->backoff = BACKOFF_MAX_US;
      r->next_try = ca_now_us() + r->backoff;
      ca_buf_printf(err, "Redis at %s: %s", r->where, r->last_error);
      return st;
    }
    now = ca_now_us();
  }
  r->round_trips++;
  rt =
    roundtrip(r, argc, argv, argvlen, now + (int64_t)CA_REDIS_COMMAND_MS * 1000,
              0, &x, why, sizeof why);
  if (rt != RT_OK) {
    /* The connection is out of step (or gone): drop it.  The next command
     * may reconnect at once: a server restarted between two commands is
     * back without waiting. */
    drop(r, rt == RT_TIMEOUT ? "no answer in time" : why);
    r->next_try = now;
    switch (rt) {
    case RT_TIMEOUT:
      ca_buf_printf(err, "Redis at %s: no answer within %d ms", r->where,
                    CA_REDIS_COMMAND_MS);
      return CHATAPP_ETIMEDOUT;
    case RT_TOOBIG:
      ca_buf_printf(err, "Redis at %s: %s", r->where, r->last_error);
      return CHATAPP_ETOOBIG;
    case RT_PROTOCOL:
      ca_buf_printf(err, "Redis at %s: %s", r->where, r->last_error);
      return CHATAPP_EPARSE;
    default:
      ca_buf_printf(err, "Redis at %s: %s", r->where, r->last_error);
      return CHATAPP_ETRANSPORT;
    }
  }
  *out = x;
  return CHATAPP_OK;
}

chatapp_status ca_redis_eval(ca_redis *r, ca_redis_script *s, int nkeys,
                             int argc, const char **argv, const size_t *argvlen,
                             redisReply **out, ca_buf *err)
{
  enum { MAX_ARGS = 64 };
  const char *av[MAX_ARGS + 3];
  size_t al[MAX_ARGS + 3];
  char nk[16];
  chatapp_status st;
  int i, tries;

  *out = NULL;
  if (argc < nkeys || argc > MAX_ARGS || nkeys < 0) {
    ca_buf_printf(err, "ca_redis_eval: %d arguments (at most %d)", argc,
                  MAX_ARGS);
    return CHATAPP_EINTERNAL;
  }
  if (!s->sha[0] && ca_sha1_hex(s->source, strlen(s->source), s->sha))
    return CHATAPP_ENOMEM;
  snprintf(nk, sizeof nk, "%d", nkeys);
  for (i = 0; i < argc; i++) {
    av[i + 3] = argv[i];
    al[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
  }
  av[2] = nk;
  al[2] = strlen(nk);
  for (tries = 0; tries < 2; tries++) {
    redisReply *x;
    av[0] = "EVALSHA";
    al[0] = 7;
    av[1] = s->sha;
    al[1] = 40;
    st = ca_redis_command(r, argc + 3, av, al, &x, err);
    if (st)
      return st;
    if (x->type != REDIS_REPLY_ERROR || !x->str ||
        strncmp(x->str, "NOSCRIPT", 8) != 0 || tries) {
      *out = x;
      return CHATAPP_OK;
    }
    freeReplyObject(x);
    /* A restarted or flushed server: load the script, then run it. */
    {
      const char *lv[3] = {"SCRIPT", "LOAD", s->source};
      size_t ll[3] = {6, 4, strlen(s->source)};
      st = ca_redis_command(r, 3, lv, ll, &x, err);
    }
    if (st)
      return st;
    if (x->type != REDIS_REPLY_STRING || x->len != 40 ||
        strncasecmp(x->str, s->sha, 40) != 0) {
      char why[256];
      reply_problem(r, x, why, sizeof why);
      freeReplyObject(x);
      ca_buf_printf(err, "Redis at %s refused a script: %s", r->where, why);
      return CHATAPP_EIO;
    }
    freeReplyObject(x);
  }
  return CHATAPP_EINTERNAL; /* not reached */
}
