/*
 * ca_listen.c: /metrics and /healthz for the watcher (docs/watch.md).
 *
 * The socket is opened, bound and put to listen here (so a port in use or
 * a bad address gives a precise error), then handed to libmicrohttpd,
 * which serves it from one internal polling thread: every socket is
 * non-blocking, so a client that connects and sends nothing (or one byte
 * at a time) holds a connection slot until the inactivity timeout, never
 * the thread.  Bounds: CA_LISTEN_MAX_CONNECTIONS connections,
 * CA_LISTEN_TIMEOUT_S of inactivity, CA_LISTEN_MAX_REQUEST bytes of request
 * line and headers (MHD answers 414/431 beyond), no request body (413).
 *
 * What /metrics serves is an immutable, reference-counted snapshot: publish
 * copies the text outside the lock and swaps the pointer under it; a
 * request takes a reference under it and hands the bytes to MHD, which
 * drops the reference when the response is gone.  The watch loop therefore
 * never waits for a client, and a slow scrape never sees a half-written
 * text.
 */
#include "ca_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "ca_client.h" /* ca_loopback_host */

#define LISTEN_BACKLOG 64
#define HEALTH_BODY    (CA_LISTEN_MAX_ERROR * 4 + 256)

/* One published text.  data is what MHD sends; MHD's free callback gets
 * data back and finds the snapshot by offset. */
typedef struct snapshot {
  atomic_int refs;
  size_t len;
  char data[];
} snapshot;

struct ca_listen {
  struct MHD_Daemon *d;
  int port;
  int loopback;
  char address[INET6_ADDRSTRLEN + 16];
  pthread_mutex_t mu;
  /* under mu */
  snapshot *metrics; /* NULL before the first publish */
  int health_set;
  /* Ages are taken on the monotonic clock (a step of the wall clock must
   * not make a healthy watcher look stale): started and last_good are
   * CLOCK_MONOTONIC seconds; last_good_unix is what the watcher gave. */
  int64_t started, last_good, last_good_unix, max_age;
  char error[CA_LISTEN_MAX_ERROR * 4 + 1]; /* escaped; "" = none */
};

static void snap_release(snapshot *s)
{
  if (s && atomic_fetch_sub(&s->refs, 1) == 1)
    free(s);
}

/* MHD's free callback: cls is s->data. */
static void snap_free_cb(void *cls)
{
  snap_release((snapshot *)(void *)((char *)cls - offsetof(snapshot, data)));
}

/* ---- escaping ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid
 * (overlong forms, surrogates, beyond U+10FFFF, truncated). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
  uint32_t cp;
  size_t len, i;

  if (s[0] < 0x80)
    return 1;
  if (s[0] >= 0xc2 && s[0] <= 0xdf)
    len = 2, cp = s[0] & 0x1fu;
  else if (s[0] >= 0xe0 && s[0] <= 0xef)
    len = 3, cp = s[0] & 0x0fu;
  else if (s[0] >= 0xf0 && s[0] <= 0xf4)
    len = 4, cp = s[0] & 0x07u;
  else
    return 0;
  if (n < len)
    return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return len;
}

/*
 * in (at most CA_LISTEN_MAX_ERROR bytes of it) as one safe line: C0
 * controls, DEL, C1 controls and bytes that are not UTF-8 become \xNN
 * (a backslash as \\), so nothing in it can end the line or reach a
 * terminal as a control sequence.  out has room for 4 bytes per input byte.
 */
static void escape_line(const char *in, char *out, size_t outlen)
{
  const unsigned char *s = (const unsigned char *)in;
  size_t n = strlen(in), i = 0, o = 0;

  if (n > CA_LISTEN_MAX_ERROR)
    n = CA_LISTEN_MAX_ERROR;
  while (i < n && o + 5 < outlen) {
    size_t k = utf8_seq(s + i, n - i);
    int c1 = k == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0;

    if (k == 0 || s[i] < 0x20 || s[i] == 0x7f || c1) {
      o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", s[i]);
      i++;
    } else if (s[i] == '\\') {
      out[o++] = '\\';
      out[o++] = '\\';
      i++;
    } else {
      if (o + k >= outlen)
        break;
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    }
  }
  out[o] = '\0';
}

/* addr for an error message: printable ASCII only, bounded. */
static void shown(const char *addr, char *out, size_t outlen)
{
  size_t i, o = 0;

  for (i = 0; addr[i] && o + 4 < outlen; i++) {
    unsigned char c = (unsigned char)addr[i];
    out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (addr[i])
    out[o++] = '.', out[o++] = '.', out[o++] = '.';
  out[o] = '\0';
}

/* ---- the address -------------------------------------------------------- */

/* "0" to "65535", digits only. */
static int parse_port(const char *s, int *port)
{
  long v = 0;
  size_t i;

  for (i = 0; s[i]; i++) {
    if (s[i] < '0' || s[i] > '9' || i == 5)
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  if (i == 0 || v > 65535)
    return -1;
  *port = (int)v;
  return 0;
}

typedef struct parsed {
  int family;
  struct sockaddr_storage ss;
  socklen_t sslen;
  char host[INET6_ADDRSTRLEN];
  int port;
} parsed;

static chatapp_status parse_addr(const char *addr, parsed *p, char *err,
                                 size_t errlen)
{
  char host[INET6_ADDRSTRLEN + 8], what[80];
  const char *colon = NULL, *port;
  size_t hlen;

  memset(p, 0, sizeof *p);
  shown(addr, what, sizeof what);
  if (!*addr) {
    snprintf(err, errlen,
             "--listen: an empty address: give PORT, HOST:PORT or "
             "[IPv6]:PORT (e.g. 127.0.0.1:9464)");
    return CHATAPP_EINVAL;
  }
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (!close) {
      snprintf(err, errlen,
               "--listen \"%s\": no \"]\" closes the IPv6 address: write "
               "[ADDRESS]:PORT (e.g. [::1]:9464)",
               what);
      return CHATAPP_EINVAL;
    }
    if (close[1] != ':') {
      snprintf(err, errlen,
               "--listen \"%s\": no \":PORT\" after the IPv6 address: write "
               "[ADDRESS]:PORT (e.g. [::1]:9464)",
               what);
      return CHATAPP_EINVAL;
    }
    hlen = (size_t)(close - addr - 1);
    if (hlen >= sizeof host) {
      snprintf(err, errlen, "--listen \"%s\": the IPv6 address is too long",
               what);
      return CHATAPP_EINVAL;
    }
    memcpy(host, addr + 1, hlen);
    host[hlen] = '\0';
    port = close + 2;
    p->family = AF_INET6;
  } else {
    colon = strrchr(addr, ':');
    if (!colon) {
      host[0] = '\0';
      port = addr;
    } else {
      hlen = (size_t)(colon - addr);
      if (memchr(addr, ':', hlen)) {
        snprintf(err, errlen,
                 "--listen \"%s\": an IPv6 address needs brackets: "
                 "[ADDRESS]:PORT (e.g. [::1]:9464)",
                 what);
        return CHATAPP_EINVAL;
      }
      if (hlen >= sizeof host) {
        snprintf(err, errlen, "--listen \"%s\": the host is too long", what);
        return CHATAPP_EINVAL;
      }
      memcpy(host, addr, hlen);
      host[hlen] = '\0';
      port = colon + 1;
    }
    p->family = AF_INET;
  }
  if (parse_port(port, &p->port) != 0) {
    char pw[40];
    shown(port, pw, sizeof pw);
    if (!colon && addr[0] != '[' && !(*port >= '0' && *port <= '9'))
      snprintf(err, errlen,
               "--listen \"%s\": not an address: give PORT, HOST:PORT or "
               "[IPv6]:PORT (e.g. 127.0.0.1:9464)",
               what);
    else
      snprintf(err, errlen,
               "--listen \"%s\": the port \"%s\" is not a number from 0 to "
               "65535 (0: any free port)",
               what, pw);
    return CHATAPP_EINVAL;
  }
  if (p->family == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&p->ss;
    if (!host[0] || strcmp(host, "localhost") == 0)
      snprintf(host, sizeof host, "127.0.0.1");
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)p->port);
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
      char hw[INET6_ADDRSTRLEN + 8];
      shown(host, hw, sizeof hw);
      snprintf(err, errlen,
               "--listen \"%s\": \"%s\" is not a numeric IPv4 address or "
               "localhost (names are not looked up): e.g. 127.0.0.1:9464, "
               "0.0.0.0:9464 for every interface",
               what, hw);
      return CHATAPP_EINVAL;
    }
    p->sslen = sizeof *sin;
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&p->ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((uint16_t)p->port);
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
      char hw[INET6_ADDRSTRLEN + 8];
      shown(host, hw, sizeof hw);
      snprintf(err, errlen,
               "--listen \"%s\": \"%s\" is not a numeric IPv6 address: "
               "e.g. [::1]:9464",
               what, hw);
      return CHATAPP_EINVAL;
    }
    p->sslen = sizeof *sin6;
  }
  snprintf(p->host, sizeof p->host, "%s", host);
  return CHATAPP_OK;
}

/* ---- the socket --------------------------------------------------------- */

static int open_socket(const parsed *p, const char *shown_addr, int *fd_out,
                       int *port_out, char *err, size_t errlen)
{
  int fd, one = 1, e;
  struct sockaddr_storage got;
  socklen_t glen = sizeof got;

  fd = socket(p->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(err, errlen, "--listen %s: cannot create a socket: %s", shown_addr,
             strerror(errno));
    return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (p->family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)) {
    snprintf(err, errlen, "--listen %s: cannot set the socket options: %s",
             shown_addr, strerror(errno));
    goto fail;
  }
  if (bind(fd, (const struct sockaddr *)(const void *)&p->ss, p->sslen) != 0) {
    e = errno;
    if (e == EADDRINUSE)
      snprintf(err, errlen,
               "--listen %s: the port is in use (another watcher or program "
               "listens there; `ss -ltnp` names it): stop it or choose "
               "another port",
               shown_addr);
    else if (e == EACCES)
      snprintf(err, errlen,
               "--listen %s: permission denied (ports below 1024 need "
               "privileges): choose a port above 1024, e.g. 9464",
               shown_addr);
    else if (e == EADDRNOTAVAIL)
      snprintf(err, errlen,
               "--listen %s: the address is not one of this machine's: use "
               "127.0.0.1, an interface's address or 0.0.0.0",
               shown_addr);
    else
      snprintf(err, errlen, "--listen %s: cannot bind: %s", shown_addr,
               strerror(e));
    goto fail;
  }
  if (listen(fd, LISTEN_BACKLOG) != 0) {
    snprintf(err, errlen, "--listen %s: cannot listen: %s", shown_addr,
             strerror(errno));
    goto fail;
  }
  if (getsockname(fd, (struct sockaddr *)(void *)&got, &glen) != 0) {
    snprintf(err, errlen, "--listen %s: cannot read the bound port: %s",
             shown_addr, strerror(errno));
    goto fail;
  }
  if (got.ss_family == AF_INET6)
    *port_out = ntohs(((struct sockaddr_in6 *)(void *)&got)->sin6_port);
  else
    *port_out = ntohs(((struct sockaddr_in *)(void *)&got)->sin_port);
  *fd_out = fd;
  return 0;
fail:
  (void)close(fd);
  return -1;
}

/* ---- requests ----------------------------------------------------------- */

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status,
                             struct MHD_Response *r, const char *type,
                             int close_after)
{
  enum MHD_Result ok;

  if (!r)
    return MHD_NO; /* out of memory: MHD closes the connection */
  if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) !=
        MHD_YES ||
      MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") !=
        MHD_YES ||
      MHD_add_response_header(r, "X-Content-Type-Options", "nosniff") !=
        MHD_YES ||
      (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
       MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") !=
         MHD_YES) ||
      (close_after && MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION,
                                              "close") != MHD_YES)) {
    MHD_destroy_response(r);
    return MHD_NO;
  }
  ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ok;
}

#define TEXT_PLAIN "text/plain; charset=utf-8"

static enum MHD_Result text(struct MHD_Connection *c, unsigned status,
                            const char *body, int close_after)
{
  return queue(c, status,
               MHD_create_response_from_buffer(
                 strlen(body), (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY),
               TEXT_PLAIN, close_after);
}

static enum MHD_Result serve_metrics(ca_listen *l, struct MHD_Connection *c)
{
  snapshot *s;
  struct MHD_Response *r;

  if (pthread_mutex_lock(&l->mu) != 0)
    return MHD_NO;
  s = l->metrics;
  if (s)
    atomic_fetch_add(&s->refs, 1);
  (void)pthread_mutex_unlock(&l->mu);
  if (!s)
    r = MHD_create_response_from_buffer(0, (void *)(uintptr_t) "",
                                        MHD_RESPMEM_PERSISTENT);
  else {
    r = MHD_create_response_from_buffer_with_free_callback(s->len, s->data,
                                                           snap_free_cb);
    if (!r)
      snap_release(s);
  }
  return queue(c, MHD_HTTP_OK, r, "text/plain; version=0.0.4; charset=utf-8",
               0);
}

static int64_t mono_s(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec;
}

/* The /healthz answer, into body; returns the HTTP status. */
static unsigned health_body(ca_listen *l, char *body, size_t len)
{
  int64_t now = mono_s(), age;
  const char *e = l->error;

  if (!l->health_set) {
    snprintf(body, len, "ok: starting, no cycle has finished yet\n");
    return MHD_HTTP_OK;
  }
  if (l->last_good > 0) {
    age = now > l->last_good ? now - l->last_good : 0;
    if (age <= l->max_age) {
      snprintf(body, len, "ok: last good cycle %lld s ago%s%s\n",
               (long long)age, *e ? "; the last cycle failed: " : "", e);
      return MHD_HTTP_OK;
    }
    snprintf(body, len,
             "unhealthy: last good cycle %lld s ago (more than %lld s)%s%s\n",
             (long long)age, (long long)l->max_age, *e ? "; last error: " : "",
             e);
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  age = now > l->started ? now - l->started : 0;
  if (*e) {
    snprintf(body, len, "unhealthy: no good cycle yet; last error: %s\n", e);
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  if (age <= l->max_age) {
    snprintf(body, len, "ok: no cycle has finished yet (started %lld s ago)\n",
             (long long)age);
    return MHD_HTTP_OK;
  }
  snprintf(body, len,
           "unhealthy: no good cycle in the %lld s since the start (more "
           "than %lld s)\n",
           (long long)age, (long long)l->max_age);
  return MHD_HTTP_SERVICE_UNAVAILABLE;
}

static enum MHD_Result serve_health(ca_listen *l, struct MHD_Connection *c)
{
  char body[HEALTH_BODY];
  unsigned status;

  if (pthread_mutex_lock(&l->mu) != 0)
    return MHD_NO;
  status = health_body(l, body, sizeof body);
  (void)pthread_mutex_unlock(&l->mu);
  return text(c, status, body, 0);
}

/* A request body is announced by Content-Length (not 0) or
 * Transfer-Encoding. */
static int has_body(struct MHD_Connection *c)
{
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *te = MHD_lookup_connection_value(
    c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

  return te != NULL || (cl != NULL && strcmp(cl, "0") != 0);
}

/* Every answer is given on the first call, before any body is read; a
 * request that announced one is refused and its connection closed. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
  ca_listen *l = cls;

  (void)version;
  (void)upload;
  (void)req_cls;
  if (*upload_size)
    return MHD_NO; /* not reached: the answer is queued on the first call */
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                "method not allowed: use GET or HEAD\n", 1);
  if (has_body(c))
    return text(c, MHD_HTTP_CONTENT_TOO_LARGE,
                "a request body is not accepted\n", 1);
  if (strcmp(url, "/metrics") == 0)
    return serve_metrics(l, c);
  if (strcmp(url, "/healthz") == 0)
    return serve_health(l, c);
  return text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics or /healthz\n",
              0);
}

/* ---- the interface ------------------------------------------------------ */

chatapp_status ca_listen_start(const char *addr, ca_listen **out, char *err,
                               size_t errlen)
{
  ca_listen *l = NULL;
  parsed p;
  int fd = -1, port = 0, mu = 0;
  chatapp_status st;
  sigset_t all, old;

  if (!out || !addr)
    return CHATAPP_EINVAL;
  *out = NULL;
  st = parse_addr(addr, &p, err, errlen);
  if (st != CHATAPP_OK)
    return st;
  l = calloc(1, sizeof *l);
  if (!l) {
    snprintf(err, errlen, "--listen: out of memory");
    return CHATAPP_ENOMEM;
  }
  if (p.family == AF_INET6)
    snprintf(l->address, sizeof l->address, "[%s]:%d", p.host, p.port);
  else
    snprintf(l->address, sizeof l->address, "%s:%d", p.host, p.port);
  if (open_socket(&p, l->address, &fd, &port, err, errlen) != 0) {
    st = CHATAPP_EIO;
    goto fail;
  }
  l->port = port;
  if (p.family == AF_INET6)
    snprintf(l->address, sizeof l->address, "[%s]:%d", p.host, port);
  else
    snprintf(l->address, sizeof l->address, "%s:%d", p.host, port);
  l->loopback = ca_loopback_host(p.host, strlen(p.host));
  l->started = mono_s();
  if (pthread_mutex_init(&l->mu, NULL) != 0) {
    snprintf(err, errlen, "--listen %s: cannot create a mutex", l->address);
    st = CHATAPP_ENOMEM;
    goto fail;
  }
  mu = 1;
  /* The daemon's thread inherits this mask: with every signal blocked in
   * it, SIGTERM, SIGINT and SIGHUP reach the watch loop's thread. */
  if (sigfillset(&all) != 0 || pthread_sigmask(SIG_BLOCK, &all, &old) != 0) {
    snprintf(err, errlen, "--listen %s: cannot block signals", l->address);
    st = CHATAPP_EINTERNAL;
    goto fail;
  }
  l->d = MHD_start_daemon(
    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
      (p.family == AF_INET6 ? MHD_USE_IPv6 : 0),
    0, NULL, NULL, handler, l, MHD_OPTION_LISTEN_SOCKET, fd,
    MHD_OPTION_CONNECTION_LIMIT, (unsigned)CA_LISTEN_MAX_CONNECTIONS,
    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CA_LISTEN_TIMEOUT_S,
    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CA_LISTEN_MAX_REQUEST,
    MHD_OPTION_END);
  if (pthread_sigmask(SIG_SETMASK, &old, NULL) != 0) {
    snprintf(err, errlen, "--listen %s: cannot restore the signal mask",
             l->address);
    st = CHATAPP_EINTERNAL;
    goto fail;
  }
  if (!l->d) {
    snprintf(err, errlen,
             "--listen %s: libmicrohttpd failed to start (out of memory or "
             "threads?)",
             l->address);
    st = CHATAPP_EINTERNAL;
    goto fail;
  }
  *out = l;
  return CHATAPP_OK;
fail:
  if (l && l->d)
    MHD_stop_daemon(l->d); /* closes fd */
  else if (fd >= 0 && (fcntl(fd, F_GETFD) != -1 || errno != EBADF))
    (void)close(fd); /* MHD may have closed it when it failed */
  if (mu)
    (void)pthread_mutex_destroy(&l->mu);
  free(l);
  return st;
}

int ca_listen_port(const ca_listen *l)
{
  return l ? l->port : 0;
}

int ca_listen_is_loopback(const ca_listen *l)
{
  return l ? l->loopback : 0;
}

const char *ca_listen_address(const ca_listen *l)
{
  return l ? l->address : "";
}

int ca_listen_connections(const ca_listen *l)
{
  const union MHD_DaemonInfo *di;

  if (!l || !l->d)
    return -1;
  di = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return di ? (int)di->num_connections : -1;
}

chatapp_status ca_listen_publish(ca_listen *l, const char *metrics, size_t len)
{
  snapshot *s, *old;

  if (!l || (!metrics && len))
    return CHATAPP_EINVAL;
  if (len > SIZE_MAX - sizeof *s - 1)
    return CHATAPP_ETOOBIG;
  s = malloc(sizeof *s + len + 1);
  if (!s)
    return CHATAPP_ENOMEM;
  atomic_init(&s->refs, 1);
  s->len = len;
  if (len)
    memcpy(s->data, metrics, len);
  s->data[len] = '\0';
  if (pthread_mutex_lock(&l->mu) != 0) {
    free(s);
    return CHATAPP_EINTERNAL;
  }
  old = l->metrics;
  l->metrics = s;
  (void)pthread_mutex_unlock(&l->mu);
  snap_release(old);
  return CHATAPP_OK;
}

void ca_listen_health(ca_listen *l, int64_t last_good_unix, int64_t max_age_s,
                      const char *last_error)
{
  char e[sizeof l->error];

  if (!l)
    return;
  e[0] = '\0';
  if (last_error)
    escape_line(last_error, e, sizeof e);
  if (last_error && !e[0])
    snprintf(e, sizeof e, "(no message)");
  if (pthread_mutex_lock(&l->mu) != 0)
    return;
  l->health_set = 1;
  if (last_good_unix <= 0) {
    l->last_good = l->last_good_unix = 0;
  } else if (last_good_unix != l->last_good_unix) {
    /* a new good cycle, that ended (now - last_good_unix) ago */
    int64_t ago = (int64_t)time(NULL) - last_good_unix;
    l->last_good = mono_s() - (ago > 0 ? ago : 0);
    if (l->last_good < 1)
      l->last_good = 1; /* (0 is "none") */
    l->last_good_unix = last_good_unix;
  }
  l->max_age = max_age_s > 0 ? max_age_s : 0;
  memcpy(l->error, e, sizeof e);
  (void)pthread_mutex_unlock(&l->mu);
}

void ca_listen_stop(ca_listen *l)
{
  if (!l)
    return;
  MHD_stop_daemon(l->d); /* joins its thread; releases responses */
  snap_release(l->metrics);
  (void)pthread_mutex_destroy(&l->mu);
  free(l);
}
