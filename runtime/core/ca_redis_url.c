/*
 * ca_redis_url.c: what names a Redis server and what opens it, parsed
 * before any connection: the URL redis://[user@]host[:port][/db]
 * (ca_redis_is_url, ca_redis_parse_url; a password in it is refused) and
 * the password from the environment (CHATAPP_REDIS_PASSWORD or the file
 * CHATAPP_REDIS_PASSWORD_FILE names).  No message repeats a password.
 */
#include "ca_redis_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_crypto.h"

#define PASSWORD_MAX 4096
#define SCHEME       "redis://"

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

chatapp_status ca_redis_read_password(char **out, ca_buf *err)
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
