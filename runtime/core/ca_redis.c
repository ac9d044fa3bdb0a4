#include "ca_redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_limiter.h" /* ca_now_us */

#define PASSWORD_MAX     4096
#define BACKOFF_FIRST_US 50000
#define BACKOFF_MAX_US   2000000
#define SCHEME           "redis://"

struct ca_redis {
  redisContext *c; /* NULL while disconnected */
  ca_redis_url url;
  char *password;       /* NULL: none; wiped when freed */
  char where[400];      /* redis://[user@]host:port/db */
  char last_error[256]; /* why the last connection failed or broke */
  int64_t down_since;   /* 0: connected (or never tried) */
  int64_t next_try;     /* no connect attempt before this */
  int64_t backoff;
  uint64_t round_trips;
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

  memset(out, 0, sizeof *out);
  out->port = CA_REDIS_DEFAULT_PORT;
  if (!url || strncmp(url, "rediss://", 9) == 0) {
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
  end = p + strcspn(p, "/?#");
  at = memchr(p, '@', (size_t)(end - p));
  if (at) {
    if (memchr(p, ':', (size_t)(at - p))) {
      /* Never repeat any of it: it holds the password. */
      ca_buf_printf(err,
                    "the Redis URL holds a password: a command line is seen "
                    "by `ps` and kept in shell histories; remove it from the "
                    "URL and put it in %s, or the path of a file holding it "
                    "in %s",
                    CA_REDIS_PASSWORD_ENV, CA_REDIS_PASSWORD_FILE_ENV);
      return CHATAPP_EINVAL;
    }
    n = (size_t)(at - p);
    if (n == 0 || n >= sizeof out->user) {
      ca_buf_printf(err, "the Redis URL's user name is empty or too long%s",
                    usage);
      return CHATAPP_EINVAL;
    }
    memcpy(out->user, p, n);
    for (size_t i = 0; i < n; i++)
      if (!host_char(out->user[i])) {
        ca_buf_printf(err, "the Redis URL's user name may hold only letters, "
                           "digits, '.', '-' and '_'");
        return CHATAPP_EINVAL;
      }
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
  if (colon &&
      parse_int(colon + 1, (size_t)(end - colon - 1), 1, 65535, &out->port)) {
    ca_buf_printf(err, "the Redis URL's port is not a number in 1..65535%s",
                  usage);
    return CHATAPP_EINVAL;
  }
  if (*end == '?' || *end == '#') {
    ca_buf_printf(err,
                  "the Redis URL may not have a query or a fragment "
                  "(options go in chatapp-run's own options)%s",
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
 * it was sent). */
static void copy_clean(const ca_redis *r, char *dst, size_t size,
                       const char *text)
{
  char *hit;

  snprintf(dst, size, "%s", text);
  if (!r->password || !*r->password)
    return;
  while ((hit = strstr(dst, r->password)) != NULL)
    memset(hit, '*', strlen(r->password));
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

static struct timeval tv_ms(int ms)
{
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  return tv;
}

/* Read one reply of c into *out, never buffering more than the cap.  The
 * loop of hiredis's redisGetReply, with the size check added. */
static int get_reply(redisContext *c, redisReply **out)
{
  void *reply = NULL;

  if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
    return REDIS_ERR;
  while (!reply) {
    int wdone = 0;
    while (!wdone)
      if (redisBufferWrite(c, &wdone) != REDIS_OK)
        return REDIS_ERR;
    if (redisBufferRead(c) != REDIS_OK)
      return REDIS_ERR;
    if (c->reader->len - c->reader->pos > CA_REDIS_MAX_REPLY) {
      c->err = REDIS_ERR_OTHER;
      snprintf(c->errstr, sizeof c->errstr,
               "a reply over %u bytes (a hostile or wrong server?)",
               CA_REDIS_MAX_REPLY);
      return REDIS_ERR;
    }
    if (redisGetReplyFromReader(c, &reply) != REDIS_OK)
      return REDIS_ERR;
  }
  *out = reply;
  return REDIS_OK;
}

/* Send one command on the live connection; the reply, or NULL with the
 * context's error set. */
static redisReply *roundtrip(ca_redis *r, int argc, const char **argv,
                             const size_t *argvlen)
{
  redisReply *reply = NULL;

  r->round_trips++;
  if (redisAppendCommandArgv(r->c, argc, argv, argvlen) != REDIS_OK)
    return NULL;
  if (get_reply(r->c, &reply) != REDIS_OK)
    return NULL;
  return reply;
}

/* Why a reply is not the one expected: the server's error or its type. */
static void reply_problem(const ca_redis *r, const redisReply *x, char *dst,
                          size_t size)
{
  if (x->type == REDIS_REPLY_ERROR)
    copy_clean(r, dst, size, x->str ? x->str : "(error)");
  else
    snprintf(dst, size, "an unexpected reply of type %d", x->type);
}

/* Connect, AUTH, SELECT, PING.  0 on success; else -1 with last_error set
 * and *st the class of failure. */
static int connect_now(ca_redis *r, chatapp_status *st)
{
  char why[256], dbs[16];
  const char *argv[3];
  size_t len[3];
  redisReply *x;

  *st = CHATAPP_ETRANSPORT;
  r->c = redisConnectWithTimeout(r->url.host, r->url.port,
                                 tv_ms(CA_REDIS_CONNECT_MS));
  if (!r->c || r->c->err) {
    snprintf(why, sizeof why, "cannot connect: %s",
             r->c ? r->c->errstr : "out of memory");
    drop(r, why);
    return -1;
  }
  if (redisSetTimeout(r->c, tv_ms(CA_REDIS_COMMAND_MS)) != REDIS_OK) {
    drop(r, "cannot set the socket's timeout");
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
    x = roundtrip(r, n, argv, len);
    if (!x || x->type == REDIS_REPLY_ERROR) {
      if (x) {
        reply_problem(r, x, why, sizeof why);
        freeReplyObject(x);
        *st = CHATAPP_ECREDENTIALS;
        drop(r, "");
        snprintf(r->last_error, sizeof r->last_error,
                 "the server refused the password (%.160s); check %s or %s",
                 why, CA_REDIS_PASSWORD_ENV, CA_REDIS_PASSWORD_FILE_ENV);
      } else {
        snprintf(why, sizeof why, "lost during AUTH: %s", r->c->errstr);
        drop(r, why);
      }
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
    x = roundtrip(r, 2, argv, len);
    if (!x || x->type == REDIS_REPLY_ERROR) {
      if (x)
        reply_problem(r, x, why, sizeof why);
      else
        snprintf(why, sizeof why, "%s", r->c->errstr);
      if (x) {
        freeReplyObject(x);
        *st = CHATAPP_EINVAL;
      }
      {
        char msg[300];
        snprintf(msg, sizeof msg, "cannot select database %d: %.200s",
                 r->url.db, why);
        drop(r, msg);
      }
      return -1;
    }
    freeReplyObject(x);
  }
  argv[0] = "PING";
  len[0] = 4;
  x = roundtrip(r, 1, argv, len);
  if (x && x->type == REDIS_REPLY_ERROR && x->str &&
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
  if (!x || x->type != REDIS_REPLY_STATUS) {
    if (x) {
      reply_problem(r, x, why, sizeof why);
      freeReplyObject(x);
    } else
      snprintf(why, sizeof why, "%s", r->c->errstr);
    {
      char msg[300];
      snprintf(msg, sizeof msg, "PING failed: %.200s", why);
      drop(r, msg);
    }
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

  *out = NULL;
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
      r->next_try = now + r->backoff;
      ca_buf_printf(err, "Redis at %s: %s", r->where, r->last_error);
      return st;
    }
  }
  x = roundtrip(r, argc, argv, argvlen);
  if (!x) {
    int timed_out =
      r->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    char why[200];
    snprintf(why, sizeof why, "%s",
             timed_out ? "no answer in time" : r->c->errstr);
    drop(r, why);
    /* The next command may reconnect at once: a server restarted between
     * two commands is back without waiting. */
    r->next_try = now;
    if (timed_out)
      ca_buf_printf(err, "Redis at %s: no answer within %d ms", r->where,
                    CA_REDIS_COMMAND_MS);
    else
      ca_buf_printf(err, "Redis at %s: %s", r->where, r->last_error);
    return timed_out ? CHATAPP_ETIMEDOUT : CHATAPP_ETRANSPORT;
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
    if (x->type != REDIS_REPLY_STRING) {
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
