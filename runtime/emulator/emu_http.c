/*
 * emu_http.c: libmicrohttpd glue.
 *
 * One thread per connection, so an answer that sleeps (latency, drip, hang)
 * never holds up another request.  The URI log callback stamps the arrival
 * time as soon as the request line is in and keeps the raw URI (the query
 * string exactly as sent: the signature is checked against it, decoded by
 * our own rules).  Headers and body are collected, then the request goes to
 * the control endpoint or to the API pipeline, and the answer is sent in
 * the shape it asks for:
 *
 *   NORMAL    the body, Content-Length
 *   TRUNCATE  Content-Length of the whole body, after_bytes sent, close
 *   RESET     after_bytes sent, then a TCP RST (connect(AF_UNSPEC) on
 *             Linux aborts the connection without closing the descriptor,
 *             which stays libmicrohttpd's to close)
 *   DRIP      one byte every interval_ms
 *   OVERSIZE  Content-Length: bytes, the body padded with spaces to it
 *   CHUNKED   chunked encoding, the body then spaces, without end (or up
 *             to bytes)
 *   HANG      no answer until the client hangs up (or ms passes)
 *
 * Every wait polls the socket for the client hanging up and checks the
 * stop flag every 50 ms, so shutdown is never held up.
 *
 * With --tls-cert/--tls-key the API port speaks HTTPS (libmicrohttpd's
 * GnuTLS backend, certificate and key given in memory).  The connection
 * callback numbers the API port's connections and counts them (e->conns);
 * the first request on a TLS connection counts its handshake.
 */
#include "emu.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#ifdef EMU_HAVE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#define STEP_US     50000
#define BLOCK_SIZE  16384
#define CONTROL_LEN (sizeof EMU_CONTROL_PATH - 1)

enum { WAIT_DONE, WAIT_GONE, WAIT_STOP };

/* One connection to the API port (its socket context). */
typedef struct conn_ctx {
  uint64_t id;
  uint64_t requests;
} conn_ctx;

/* "IP:PORT" of the client, or "". */
static void remote_of(struct MHD_Connection *c, char *out, size_t n)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

  out[0] = '\0';
  if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
    const struct sockaddr_in *sin =
      (const struct sockaddr_in *)(const void *)ci->client_addr;
    char ip[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip))
      snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(sin->sin_port));
  }
}

/* A drop rule hit connection id: reset it before any byte is answered
 * (the client is mid-handshake over TLS), and log it. */
static void drop_conn(emu *e, struct MHD_Connection *c, uint64_t id,
                      unsigned fault_id)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct sockaddr sa;
  char when[32], remote[64];
  ca_buf b = CA_BUF_INIT(4096);
  int64_t now = emu_mono_us();

  if (ci && ci->connect_fd >= 0) {
    /* Once the client's first bytes (its TLS ClientHello) are in, so it
     * sees the reset mid-handshake rather than at connect; at most
     * 500 ms (this holds up accepting other connections). */
    struct pollfd p;
    p.fd = ci->connect_fd;
    p.events = POLLIN;
    p.revents = 0;
    (void)poll(&p, 1, 500);
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    (void)connect(ci->connect_fd, &sa, sizeof sa); /* a TCP RST */
  }
  if (!e->log)
    return;
  remote_of(c, remote, sizeof remote);
  emu_iso8601_ms(emu_wall_ms(), when);
  if (ca_buf_printf(&b, "{\"t_us\":%lld,\"time\":\"%s\",\"remote\":",
                    (long long)now, when) == CHATAPP_OK &&
      emu_json_strz(&b, remote) == CHATAPP_OK &&
      ca_buf_printf(&b,
                    ",\"conn\":%llu,\"method\":null,\"scheme\":\"none\","
                    "\"op\":\"connection\",\"verdict\":\"fault\","
                    "\"fault\":\"drop\",\"fault_id\":%u,\"code\":null,"
                    "\"status\":0,\"request_id\":null,\"delay_ms\":0}",
                    (unsigned long long)id, fault_id) == CHATAPP_OK)
    emu_log_line(e->log, b.ptr, b.len);
  ca_buf_free(&b);
}

static void conn_cb(void *cls, struct MHD_Connection *c, void **socket_ctx,
                    enum MHD_ConnectionNotificationCode code)
{
  emu *e = cls;
  conn_ctx *cc;

  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    emu_fault *f;
    unsigned fault_id = 0;
    uint64_t id;
    cc = calloc(1, sizeof *cc);
    pthread_mutex_lock(&e->lock);
    e->conns.opened++;
    e->conns.open++;
    if (e->conns.open > e->conns.open_max)
      e->conns.open_max = e->conns.open;
    id = ++e->conns.next_id;
    if (cc)
      cc->id = id;
    if ((f = emu_faults_drop(&e->faults, emu_mono_us())) != NULL) {
      e->conns.dropped++;
      fault_id = f->id;
    }
    pthread_mutex_unlock(&e->lock);
    *socket_ctx = cc;
#ifdef EMU_HAVE_GNUTLS
    if (e->tls_ticket_key) {
      /* Before the handshake: session tickets, so clients can resume. */
      const union MHD_ConnectionInfo *si =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
      if (si && si->tls_session)
        (void)gnutls_session_ticket_enable_server(
          (gnutls_session_t)si->tls_session,
          (const gnutls_datum_t *)e->tls_ticket_key);
    }
#endif
    if (fault_id)
      drop_conn(e, c, id, fault_id);
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
    pthread_mutex_lock(&e->lock);
    e->conns.closed++;
    if (e->conns.open)
      e->conns.open--;
    pthread_mutex_unlock(&e->lock);
    free(*socket_ctx);
    *socket_ctx = NULL;
  }
}

/* Note a request on its connection: its number for the log, and the TLS
 * handshake, done once the first request is in. */
static uint64_t conn_request(emu *e, struct MHD_Connection *c)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn_ctx *cc = ci ? (conn_ctx *)ci->socket_context : NULL;

  if (!cc)
    return 0;
  if (cc->requests++ == 0 && e->tls) {
    int resumed = 0;
#ifdef EMU_HAVE_GNUTLS
    const union MHD_ConnectionInfo *si =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    resumed = si && si->tls_session &&
              gnutls_session_is_resumed((gnutls_session_t)si->tls_session);
#endif
    pthread_mutex_lock(&e->lock);
    e->conns.tls_handshakes++;
    if (resumed)
      e->conns.tls_resumed++;
    pthread_mutex_unlock(&e->lock);
  }
  return cc->id;
}

typedef struct conn_req {
  emu_request rq;
  int started;
  char method[16];
} conn_req;

/* Sleep for us (< 0: without end), waking early when the client hangs up
 * or the emulator stops. */
static int wait_us(emu *e, int fd, int64_t us)
{
  int64_t end = emu_mono_us() + (us > 0 ? us : 0);

  for (;;) {
    int64_t now = emu_mono_us(), step = STEP_US;
    struct pollfd p;

    if (atomic_load(&e->stopping))
      return WAIT_STOP;
    if (us >= 0 && now >= end)
      return WAIT_DONE;
    if (us >= 0 && end - now < step)
      step = end - now;
    p.fd = fd;
    p.events = POLLRDHUP;
    p.revents = 0;
    if (fd < 0) {
      usleep((useconds_t)step);
      continue;
    }
    if (poll(&p, 1, (int)((step + 999) / 1000)) > 0 &&
        (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
      return WAIT_GONE;
  }
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
  emu_server *srv = cls;
  conn_req *r = calloc(1, sizeof *r);
  uint64_t id = srv == &srv->e->main_srv ? conn_request(srv->e, c) : 0;

  if (!r)
    return NULL;
  r->rq.conn_id = id;
  r->rq.arrival_us = emu_mono_us();
  r->rq.arrival_wall_ms = emu_wall_ms();
  r->rq.raw_uri = strdup(uri ? uri : "/");
  ca_buf_init(&r->rq.body, EMU_MAX_BODY);
  remote_of(c, r->rq.remote, sizeof r->rq.remote);
  if (!r->rq.raw_uri) {
    free(r);
    return NULL;
  }
  return r;
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
  conn_req *r = *req_cls;

  (void)cls;
  (void)c;
  (void)toe;
  if (!r)
    return;
  free(r->rq.raw_uri);
  emu_kvs_free(&r->rq.headers);
  ca_buf_free(&r->rq.body);
  free(r);
  *req_cls = NULL;
}

static enum MHD_Result header_it(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
  emu_kvs *h = cls;

  (void)kind;
  if (emu_kvs_add(h, key, strlen(key), value ? value : "",
                  value ? strlen(value) : 0) != CHATAPP_OK)
    return MHD_NO;
  return MHD_YES;
}

/* State of a body sent by a callback. */
typedef struct body_state {
  emu *e;
  int fd;
  emu_send_mode mode;
  char *data;
  size_t len;
  uint64_t cut;   /* TRUNCATE/RESET: bytes to send */
  uint64_t total; /* OVERSIZE/CHUNKED: bytes in all; 0 = endless */
  int64_t interval_us;
  int64_t delay_us; /* OVERSIZE/CHUNKED/GZIP: the body after the headers */
} body_state;

static void body_free(void *cls)
{
  body_state *b = cls;

  free(b->data);
  free(b);
}

static size_t fill(const body_state *b, uint64_t pos, char *buf, size_t max)
{
  size_t n = 0;

  if (pos < b->len) {
    n = b->len - (size_t)pos < max ? b->len - (size_t)pos : max;
    memcpy(buf, b->data + pos, n);
  }
  if (n < max)
    memset(buf + n, ' ', max - n);
  return max;
}

static ssize_t body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
  body_state *b = cls;
  size_t n;

  if (atomic_load(&b->e->stopping))
    return MHD_CONTENT_READER_END_WITH_ERROR;
  switch (b->mode) {
  case EMU_SEND_TRUNCATE:
  case EMU_SEND_RESET:
    if (pos >= b->cut) {
      if (b->mode == EMU_SEND_RESET && b->fd >= 0) {
        struct sockaddr sa;
        /* Let the bytes sent so far reach the client, then abort. */
        (void)wait_us(b->e, b->fd, 50000);
        memset(&sa, 0, sizeof sa);
        sa.sa_family = AF_UNSPEC;
        (void)connect(b->fd, &sa, sizeof sa);
      }
      return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    n = (size_t)(b->cut - pos) < max ? (size_t)(b->cut - pos) : max;
    memcpy(buf, b->data + pos, n);
    return (ssize_t)n;
  case EMU_SEND_DRIP:
    if (pos >= b->len)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (wait_us(b->e, b->fd, b->interval_us) != WAIT_DONE)
      return MHD_CONTENT_READER_END_WITH_ERROR;
    buf[0] = b->data[pos];
    return 1;
  case EMU_SEND_OVERSIZE:
  case EMU_SEND_CHUNKED:
  case EMU_SEND_GZIP:
    if (pos == 0 && b->delay_us > 0 &&
        wait_us(b->e, b->fd, b->delay_us) != WAIT_DONE)
      return MHD_CONTENT_READER_END_WITH_ERROR;
    if (b->total && pos >= b->total)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (b->total && b->total - pos < max)
      max = (size_t)(b->total - pos);
    if (b->mode == EMU_SEND_GZIP)
      return (ssize_t)emu_gzip_bomb(pos, buf, max);
    return (ssize_t)fill(b, pos, buf, max);
  default:
    return MHD_CONTENT_READER_END_WITH_ERROR;
  }
}

static struct MHD_Response *make_response(emu *e, int fd, emu_answer *a)
{
  body_state *b;
  uint64_t size;
  long long half = (long long)(a->body.len / 2);

  if (a->mode == EMU_SEND_NORMAL)
    return MHD_create_response_from_buffer(
      a->body.len, (void *)(uintptr_t)ca_buf_str(&a->body),
      MHD_RESPMEM_MUST_COPY);
  b = calloc(1, sizeof *b);
  if (!b)
    return NULL;
  b->e = e;
  b->fd = fd;
  b->mode = a->mode;
  b->len = a->body.len;
  b->data = ca_buf_steal(&a->body);
  if (!b->data)
    b->data = calloc(1, 1);
  if (!b->data) {
    free(b);
    return NULL;
  }
  b->cut = (uint64_t)(a->after_bytes >= 0 ? a->after_bytes : half);
  if (b->cut > b->len)
    b->cut = b->len;
  b->interval_us = (int64_t)a->interval_ms * 1000;
  b->delay_us = (int64_t)a->body_delay_ms * 1000;
  b->total = (uint64_t)(a->bytes > 0 ? a->bytes : 0);
  switch (a->mode) {
  case EMU_SEND_OVERSIZE:
    if (b->total < b->len)
      b->total = b->len;
    size = b->total;
    break;
  case EMU_SEND_CHUNKED:
  case EMU_SEND_GZIP:
    size = MHD_SIZE_UNKNOWN;
    break;
  default:
    size = b->len;
    break;
  }
  {
    struct MHD_Response *r = MHD_create_response_from_callback(
      size, a->mode == EMU_SEND_DRIP ? 1 : BLOCK_SIZE, body_reader, b,
      body_free);
    if (!r)
      body_free(b);
    return r;
  }
}

static enum MHD_Result send_answer(emu *e, struct MHD_Connection *c,
                                   emu_answer *a)
{
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  int fd = ci ? ci->connect_fd : -1;
  struct MHD_Response *r;
  enum MHD_Result ok;
  size_t i;

  if (a->delay_us > 0 && wait_us(e, fd, a->delay_us) != WAIT_DONE)
    return MHD_NO;
  if (a->mode == EMU_SEND_HANG) {
    (void)wait_us(e, fd, a->hang_ms > 0 ? a->hang_ms * 1000 : -1);
    return MHD_NO; /* close without an answer */
  }
  if (a->mode == EMU_SEND_CLOSE)
    return MHD_NO;
  r = make_response(e, fd, a);
  if (!r)
    return MHD_NO;
  if (MHD_add_response_header(r, "Content-Type",
                              a->content_type
                                ? a->content_type
                                : "application/json;charset=utf-8") != MHD_YES)
    goto fail;
  for (i = 0; i < a->headers.n; i++)
    if (MHD_add_response_header(r, a->headers.v[i].key,
                                a->headers.v[i].value) != MHD_YES)
      goto fail;
  ok = MHD_queue_response(c, a->status, r);
  MHD_destroy_response(r);
  return ok;
fail:
  MHD_destroy_response(r);
  return MHD_NO;
}

void emu_route(emu *e, emu_request *rq, emu_answer *a)
{
  size_t plen = strcspn(rq->raw_uri, "?");
  char path[256];
  static const char cred_path[] = EMU_CONTROL_PATH "credentials";

  if (plen == sizeof cred_path - 1 &&
      strncmp(rq->raw_uri, cred_path, plen) == 0) {
    emu_cred_uri(e, rq, a); /* counted and logged like an API call */
  } else if (plen >= CONTROL_LEN - 1 &&
             strncmp(rq->raw_uri, EMU_CONTROL_PATH, CONTROL_LEN - 1) == 0 &&
             (plen == CONTROL_LEN - 1 || rq->raw_uri[CONTROL_LEN - 1] == '/')) {
    size_t off = plen > CONTROL_LEN ? CONTROL_LEN : plen;
    size_t n = plen - off < sizeof path - 1 ? plen - off : sizeof path - 1;
    memcpy(path, rq->raw_uri + off, n);
    path[n] = '\0';
    emu_control(e, rq, path, a);
  } else if (emu_sts_is_call(rq)) {
    emu_sts_call(e, rq, a);
  } else {
    emu_api_call(e, rq, a);
  }
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c,
                               const char *url, const char *method,
                               const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
  emu_server *srv = cls;
  emu *e = srv->e;
  conn_req *r = *req_cls;
  emu_answer a;
  enum MHD_Result ok;

  (void)url;
  (void)version;
  if (!r)
    return MHD_NO; /* out of memory in uri_cb */
  if (!r->started) {
    r->started = 1;
    snprintf(r->method, sizeof r->method, "%s", method);
    r->rq.method = r->method;
    if (MHD_get_connection_values(c, MHD_HEADER_KIND, header_it,
                                  &r->rq.headers) < 0)
      return MHD_NO;
    return MHD_YES;
  }
  if (*upload_size) {
    if (!r->rq.body_too_big &&
        ca_buf_add(&r->rq.body, upload, *upload_size) != CHATAPP_OK)
      r->rq.body_too_big = 1;
    *upload_size = 0;
    return MHD_YES;
  }
  emu_answer_init(&a);
  srv->route(e, &r->rq, &a);
  ok = send_answer(e, c, &a);
  if (a.track_ep >= 0)
    emu_cred_done(e, a.track_ep);
  emu_answer_free(&a);
  return ok;
}

static struct MHD_Daemon *start(emu *e, emu_server *srv, unsigned port,
                                unsigned *bound, char *err, size_t errlen)
{
  struct sockaddr_in sa;
  struct MHD_Daemon *d;
  const union MHD_DaemonInfo *di;
  int main_port = srv == &e->main_srv, tls = main_port && e->tls;
  unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                   MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;

  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      snprintf(err, errlen,
               "--tls-cert: this libmicrohttpd was built without TLS "
               "support; install one built with GnuTLS (Debian's is)");
      return NULL;
    }
    flags |= MHD_USE_TLS;
  }
  errno = 0;
  /* The TLS options last: without TLS the list ends before them. */
  d = MHD_start_daemon(
    flags, (uint16_t)port, NULL, NULL, handler, srv, MHD_OPTION_SOCK_ADDR, &sa,
    MHD_OPTION_URI_LOG_CALLBACK, uri_cb, srv, MHD_OPTION_NOTIFY_COMPLETED,
    completed_cb, e, MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
    main_port ? MHD_OPTION_NOTIFY_CONNECTION : MHD_OPTION_END, conn_cb, e,
    tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, e->tls_cert,
    MHD_OPTION_HTTPS_MEM_KEY, e->tls_key, MHD_OPTION_END);
  if (!d) {
    if (tls)
      snprintf(err, errlen,
               "cannot serve HTTPS on 127.0.0.1:%u: %s; check that "
               "--tls-key is the private key of --tls-cert (both PEM, the "
               "key unencrypted)",
               port,
               errno ? strerror(errno)
                     : "libmicrohttpd refused the certificate or key");
    else
      snprintf(err, errlen, "cannot listen on 127.0.0.1:%u: %s", port,
               errno ? strerror(errno) : "libmicrohttpd failed to start");
    return NULL;
  }
  di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  *bound = di && di->port ? di->port : port;
  return d;
}

struct MHD_Daemon *emu_http_start(emu *e, unsigned port, char *err,
                                  size_t errlen)
{
  e->main_srv.e = e;
  e->main_srv.route = emu_route;
  return start(e, &e->main_srv, port, &e->port, err, errlen);
}

struct MHD_Daemon *emu_imds_start(emu *e, unsigned port, char *err,
                                  size_t errlen)
{
  e->imds_srv.e = e;
  e->imds_srv.route = emu_imds_route;
  return start(e, &e->imds_srv, port, &e->imds_port, err, errlen);
}

/* A PEM file of at most 1 MiB holding the given block ("CERTIFICATE",
 * "PRIVATE KEY": any "-----BEGIN ...PRIVATE KEY-----"). */
static char *read_pem(const char *opt, const char *path, const char *what,
                      char *err, size_t errlen)
{
  size_t len;
  char *s = emu_read_file(path, (size_t)1 << 20, &len);
  const char *begin;

  if (!s) {
    snprintf(err, errlen, "%s %s: %s", opt, path,
             errno == EFBIG ? "larger than 1 MiB, not a PEM file"
                            : strerror(errno));
    return NULL;
  }
  begin = strstr(s, "-----BEGIN ");
  while (begin) {
    const char *eol = strstr(begin + 11, "-----");
    if (eol && (size_t)(eol - begin) < 80) {
      size_t wl = strlen(what);
      if ((size_t)(eol - (begin + 11)) >= wl && memcmp(eol - wl, what, wl) == 0)
        break;
    }
    begin = strstr(begin + 11, "-----BEGIN ");
  }
  if (strlen(s) != len || !begin) {
    snprintf(err, errlen,
             "%s %s: no PEM %s in it (expected a block "
             "\"-----BEGIN %s-----\")",
             opt, path,
             strcmp(what, "CERTIFICATE") == 0 ? "certificate" : "private key",
             what);
    free(s);
    return NULL;
  }
  if (strstr(s, "ENCRYPTED")) {
    snprintf(err, errlen,
             "%s %s: the key is encrypted; give an unencrypted "
             "key (openssl pkey -in KEY -out PLAIN)",
             opt, path);
    free(s);
    return NULL;
  }
  return s;
}

chatapp_status emu_tls_load(emu *e, const char *cert_path, const char *key_path,
                            char *err, size_t errlen)
{
  e->tls_cert = read_pem("--tls-cert", cert_path, "CERTIFICATE", err, errlen);
  if (!e->tls_cert)
    return CHATAPP_EINVAL;
  e->tls_key = read_pem("--tls-key", key_path, "PRIVATE KEY", err, errlen);
  if (!e->tls_key) {
    free(e->tls_cert);
    e->tls_cert = NULL;
    return CHATAPP_EINVAL;
  }
  e->tls = 1;
#ifdef EMU_HAVE_GNUTLS
  {
    gnutls_datum_t *k = calloc(1, sizeof *k);
    if (k && gnutls_session_ticket_key_generate(k) == GNUTLS_E_SUCCESS)
      e->tls_ticket_key = k;
    else
      free(k); /* no tickets: full handshakes only */
  }
#endif
  return CHATAPP_OK;
}

void emu_tls_free(emu *e)
{
#ifdef EMU_HAVE_GNUTLS
  gnutls_datum_t *k = e->tls_ticket_key;
  if (k) {
    gnutls_memset(k->data, 0, k->size);
    gnutls_free(k->data);
    free(k);
  }
#endif
  e->tls_ticket_key = NULL;
  free(e->tls_cert);
  free(e->tls_key);
  e->tls_cert = e->tls_key = NULL;
}
