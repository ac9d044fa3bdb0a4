/*
 * ca_redis.c: one connection to a Redis server (ca_redis.h): open it
 * (connect, AUTH, SELECT, PING within CA_REDIS_CONNECT_MS), run a command
 * or a script (EVALSHA, SCRIPT LOAD on NOSCRIPT), drop a broken connection
 * and reconnect after a backoff.  The URL and the password are parsed in
 * ca_redis_url.c, a round trip and its reply are read in ca_redis_reply.c
 * (ca_redis_int.h).
 */
#include "ca_redis_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "ca_crypto.h"
#include "ca_limiter.h" /* ca_now_us */

#define BACKOFF_FIRST_US 50000
#define BACKOFF_MAX_US   2000000

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

/* Route the reader of the new context through r's budget. */
static int install_budget(ca_redis *r)
{
  return ca_redis_budget_reader(r->c->reader, &r->budget, &r->fns);
}

/* One round trip on r's live connection. */
static rt_result roundtrip(ca_redis *r, int argc, const char **argv,
                           const size_t *argvlen, int64_t deadline, int secret,
                           redisReply **out, char *why, size_t size)
{
  return ca_redis_roundtrip(r->c, &r->budget, argc, argv, argvlen, deadline,
                            secret, out, why, size);
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
    st = ca_redis_read_password(&r->password, err);
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
