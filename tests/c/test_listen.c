/*
 * ca_listen: /metrics and /healthz for --listen (runtime/cli/ca_listen.c).
 * A raw-socket HTTP client on 127.0.0.1, every wait bounded by poll.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ca_listen.h"
#include "test.h"

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connected socket to 127.0.0.1:port (connect bounded by 2 s), or -1. */
static int dial(int port)
{
  struct sockaddr_in sa;
  struct pollfd p;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int soerr = 0;
  socklen_t sl = sizeof soerr;

  if (fd < 0)
    return -1;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (errno != EINPROGRESS)
      goto fail;
    p.fd = fd;
    p.events = POLLOUT;
    if (poll(&p, 1, 2000) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)
      goto fail;
  }
  return fd;
fail:
  close(fd);
  return -1;
}

static int send_all(int fd, const char *s, size_t n)
{
  int64_t end = now_ms() + 2000;
  while (n) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    if (k > 0) {
      s += k;
      n -= (size_t)k;
    } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
      struct pollfd p = {fd, POLLOUT, 0};
      if (now_ms() > end || poll(&p, 1, 100) < 0)
        return -1;
    } else {
      return -1;
    }
  }
  return 0;
}

/* Read until the peer closes (or ms pass): the whole answer, malloc'd. */
static char *read_all(int fd, int ms, size_t *len)
{
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap + 1);
  int64_t end = now_ms() + ms;

  if (!buf)
    return NULL;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int left = (int)(end - now_ms());
    ssize_t k;
    if (left <= 0 || poll(&p, 1, left) <= 0)
      break;
    if (n == cap) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb)
        break;
      buf = nb;
      cap *= 2;
    }
    k = recv(fd, buf + n, cap - n, 0);
    if (k <= 0)
      break;
    n += (size_t)k;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

typedef struct answer {
  int status; /* 0: no answer */
  char *raw;  /* whole answer */
  const char *body;
  size_t body_len;
} answer;

static void answer_free(answer *a)
{
  free(a->raw);
  memset(a, 0, sizeof *a);
}

static void parse_answer(answer *a, char *raw, size_t n)
{
  char *sep;
  a->raw = raw;
  a->status = 0;
  a->body = "";
  a->body_len = 0;
  if (!raw || sscanf(raw, "HTTP/1.%*d %d", &a->status) != 1)
    a->status = 0;
  sep = raw ? strstr(raw, "\r\n\r\n") : NULL;
  if (sep) {
    a->body = sep + 4;
    a->body_len = n - (size_t)(sep + 4 - raw);
  }
}

/* One request (raw text) on a fresh connection. */
static answer request_raw(int port, const char *req)
{
  answer a = {0, NULL, "", 0};
  size_t n = 0;
  int fd = dial(port);
  if (fd < 0)
    return a;
  if (send_all(fd, req, strlen(req)) == 0) {
    char *raw = read_all(fd, 5000, &n);
    parse_answer(&a, raw, n);
  }
  close(fd);
  return a;
}

static answer request(int port, const char *method, const char *path)
{
  char req[512];
  snprintf(req, sizeof req,
           "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
           method, path);
  return request_raw(port, req);
}

static int has_header(const answer *a, const char *line)
{
  return a->raw && strstr(a->raw, line) != NULL;
}

/* ---- bad addresses ------------------------------------------------------ */

static void check_refused(const char *addr, const char *want)
{
  char err[512] = "";
  ca_listen *l = (ca_listen *)(uintptr_t)1;
  chatapp_status st = ca_listen_start(addr, &l, err, sizeof err);
  CHECK(st != CHATAPP_OK);
  CHECK(l == NULL);
  if (!strstr(err, want)) {
    fprintf(stderr, "address '%s': error '%s' lacks '%s'\n", addr, err, want);
    CHECK(0);
  }
  ca_listen_stop(l);
}

static void test_addresses(void)
{
  char err[512], addr[64];
  ca_listen *a = NULL, *b = NULL;

  check_refused("abc", "not an address");
  check_refused("", "empty address");
  check_refused("1.2.3.4.5:1", "not a numeric IPv4 address");
  check_refused("example.com:80", "names are not looked up");
  check_refused(":99999", "not a number from 0 to 65535");
  check_refused("127.0.0.1:-1", "not a number from 0 to 65535");
  check_refused("127.0.0.1:", "not a number from 0 to 65535");
  check_refused("127.0.0.1:0x10", "not a number from 0 to 65535");
  check_refused("[::1", "no \"]\"");
  check_refused("[::1]", "no \":PORT\"");
  check_refused("[::1]:", "not a number");
  check_refused("::1:80", "needs brackets");
  check_refused("[1.2.3.4]:80", "not a numeric IPv6 address");
  check_refused("1.2.3.4\x1b[31m:80", "1.2.3.4?[31m"); /* no raw ESC */
  check_refused("1.2.3.4:80", "not one of this machine's");

  /* "PORT", ":PORT", localhost: loopback */
  CHECK(ca_listen_start("0", &a, err, sizeof err) == CHATAPP_OK);
  CHECK(a && ca_listen_port(a) > 0 && ca_listen_is_loopback(a));
  if (a)
    CHECK(strncmp(ca_listen_address(a), "127.0.0.1:", 10) == 0);
  /* port in use: the same port again */
  if (a) {
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ca_listen_port(a));
    check_refused(addr, "the port is in use");
    snprintf(addr, sizeof addr, ":%d", ca_listen_port(a));
    check_refused(addr, "stop it or choose another port");
  }
  ca_listen_stop(a);
  a = NULL;
  CHECK(ca_listen_start("localhost:0", &a, err, sizeof err) == CHATAPP_OK);
  CHECK(a && ca_listen_is_loopback(a));
  ca_listen_stop(a);
  a = NULL;
  CHECK(ca_listen_start(":0", &a, err, sizeof err) == CHATAPP_OK);
  CHECK(a && ca_listen_is_loopback(a));
  ca_listen_stop(a);
  /* IPv6 loopback, where the machine has it */
  if (ca_listen_start("[::1]:0", &b, err, sizeof err) == CHATAPP_OK) {
    CHECK(ca_listen_is_loopback(b));
    CHECK(strncmp(ca_listen_address(b), "[::1]:", 6) == 0);
    ca_listen_stop(b);
  } else {
    fprintf(stderr, "note: no IPv6 loopback here (%s)\n", err);
  }
  ca_listen_stop(NULL);
}

/* ---- serving ------------------------------------------------------------ */

static void test_metrics(ca_listen *l)
{
  int port = ca_listen_port(l);
  answer a;
  static const char text[] = "# HELP x An x.\n# TYPE x gauge\nx{a=\"b\"} 1\n";
  char *big;
  size_t i, blen = 1 << 20;

  a = request(port, "GET", "/metrics");
  CHECK(a.status == 200);
  CHECK(a.body_len == 0); /* before the first publish */
  CHECK(has_header(&a, "text/plain; version=0.0.4; charset=utf-8"));
  answer_free(&a);

  CHECK(ca_listen_publish(l, text, strlen(text)) == CHATAPP_OK);
  a = request(port, "GET", "/metrics");
  CHECK(a.status == 200);
  CHECK(a.body_len == strlen(text) && memcmp(a.body, text, a.body_len) == 0);
  CHECK(has_header(&a, "Content-Type: text/plain; version=0.0.4; "
                       "charset=utf-8\r\n"));
  CHECK(has_header(&a, "Cache-Control: no-store"));
  answer_free(&a);

  /* the query string is ignored */
  a = request(port, "GET", "/metrics?x=1");
  CHECK(a.status == 200 && a.body_len == strlen(text));
  answer_free(&a);

  /* HEAD: the headers, no body */
  a = request(port, "HEAD", "/metrics");
  CHECK(a.status == 200);
  CHECK(a.body_len == 0);
  {
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(text));
    CHECK(has_header(&a, cl));
  }
  answer_free(&a);

  /* a large text, NUL bytes included, comes back byte for byte */
  big = malloc(blen);
  CHECK(big != NULL);
  if (big) {
    for (i = 0; i < blen; i++)
      big[i] = (char)(i % 251);
    CHECK(ca_listen_publish(l, big, blen) == CHATAPP_OK);
    a = request(port, "GET", "/metrics");
    CHECK(a.status == 200 && a.body_len == blen &&
          memcmp(a.body, big, blen) == 0);
    answer_free(&a);
    free(big);
  }
  CHECK(ca_listen_publish(l, text, strlen(text)) == CHATAPP_OK);
  CHECK(ca_listen_publish(NULL, text, 1) == CHATAPP_EINVAL);
  CHECK(ca_listen_publish(l, NULL, 1) == CHATAPP_EINVAL);
}

static void test_routes(ca_listen *l)
{
  int port = ca_listen_port(l);
  answer a;
  char *longurl;

  a = request(port, "GET", "/nope");
  CHECK(a.status == 404);
  answer_free(&a);
  a = request(port, "GET", "/metrics/");
  CHECK(a.status == 404);
  answer_free(&a);
  a = request(port, "POST", "/metrics");
  CHECK(a.status == 405);
  CHECK(has_header(&a, "Allow: GET, HEAD\r\n"));
  answer_free(&a);
  a = request(port, "DELETE", "/healthz");
  CHECK(a.status == 405);
  answer_free(&a);
  /* a body: refused before it is read, the connection closed */
  a = request_raw(port, "POST /metrics HTTP/1.1\r\nHost: x\r\n"
                        "Content-Length: 5\r\n\r\nhello");
  CHECK(a.status == 405);
  answer_free(&a);
  a = request_raw(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                        "Content-Length: 100000\r\n\r\nhello");
  CHECK(a.status == 413);
  answer_free(&a);
  a = request_raw(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  CHECK(a.status == 413);
  answer_free(&a);
  /* a URL beyond the request bound: refused (414) or closed, no crash */
  longurl = malloc(CA_LISTEN_MAX_REQUEST * 2 + 64);
  CHECK(longurl != NULL);
  if (longurl) {
    size_t n = CA_LISTEN_MAX_REQUEST * 2, h;
    memcpy(longurl, "GET /", 5);
    memset(longurl + 5, 'a', n);
    memcpy(longurl + 5 + n, " HTTP/1.1\r\nHost: x\r\n\r\n", 23);
    a = request_raw(port, longurl);
    CHECK(a.status == 0 || a.status == 414 || a.status == 431);
    answer_free(&a);
    /* a header beyond it */
    snprintf(longurl, 64, "GET /metrics HTTP/1.1\r\nX-Big: ");
    h = strlen(longurl);
    memset(longurl + h, 'b', n);
    memcpy(longurl + h + n, "\r\n\r\n", 5);
    a = request_raw(port, longurl);
    CHECK(a.status == 0 || a.status == 431 || a.status == 414);
    answer_free(&a);
    free(longurl);
  }
  a = request(port, "GET", "/metrics");
  CHECK(a.status == 200); /* still serving */
  answer_free(&a);
}

static void test_health(ca_listen *l)
{
  int port = ca_listen_port(l);
  int64_t now = (int64_t)time(NULL);
  answer a;

  a = request(port, "GET", "/healthz");
  CHECK(a.status == 200);
  CHECK(strncmp(a.body, "ok: starting", 12) == 0);
  CHECK(has_header(&a, "text/plain; charset=utf-8"));
  answer_free(&a);

  /* no good cycle yet, none failed, young: ok */
  ca_listen_health(l, 0, 60, NULL);
  a = request(port, "GET", "/healthz");
  CHECK(a.status == 200);
  CHECK(strstr(a.body, "ok: no cycle has finished yet") == a.body);
  answer_free(&a);
  /* no good cycle yet and one failed: unhealthy */
  ca_listen_health(l, 0, 60, "credentials rejected");
  a = request(port, "GET", "/healthz");
  CHECK(a.status == 503);
  CHECK_STR(a.body, "unhealthy: no good cycle yet; last error: credentials "
                    "rejected\n");
  answer_free(&a);

  ca_listen_health(l, now - 5, 60, NULL);
  a = request(port, "GET", "/healthz");
  CHECK(a.status == 200);
  CHECK(strncmp(a.body, "ok: last good cycle ", 20) == 0);
  CHECK(strstr(a.body, " s ago\n") != NULL);
  CHECK(strstr(a.body, "5 s ago") || strstr(a.body, "6 s ago"));
  answer_free(&a);
  a = request(port, "HEAD", "/healthz");
  CHECK(a.status == 200 && a.body_len == 0);
  answer_free(&a);

  /* old: unhealthy, with the error escaped (no control byte, no raw
   * newline: one line) */
  ca_listen_health(l, now - 1000, 60,
                   "network down\n\x1b[31mfake line\r\x07 \xff \xc2\x9b ok\\");
  a = request(port, "GET", "/healthz");
  CHECK(a.status == 503);
  CHECK(strncmp(a.body, "unhealthy: last good cycle 10", 29) == 0);
  CHECK(strstr(a.body, "(more than 60 s)") != NULL);
  CHECK(strstr(a.body, "last error: network down\\x0a\\x1b[31mfake "
                       "line\\x0d\\x07 \\xff \\xc2\\x9b ok\\\\\n") != NULL);
  {
    size_t i, ctl = 0;
    for (i = 0; i + 1 < a.body_len; i++)
      if ((unsigned char)a.body[i] < 0x20 || (unsigned char)a.body[i] >= 0x7f)
        ctl++;
    CHECK(ctl == 0);
    CHECK(a.body_len > 0 && a.body[a.body_len - 1] == '\n');
  }
  answer_free(&a);
  /* a recent good cycle and a failing last one: still ok, says so */
  ca_listen_health(l, now, 60, "timeout");
  a = request(port, "GET", "/healthz");
  CHECK(a.status == 200);
  CHECK(strstr(a.body, "the last cycle failed: timeout") != NULL);
  answer_free(&a);
  /* a huge error is cut */
  {
    char *huge = malloc(100000);
    CHECK(huge != NULL);
    if (huge) {
      memset(huge, '\x01', 99999);
      huge[99999] = '\0';
      ca_listen_health(l, now - 1000, 60, huge);
      a = request(port, "GET", "/healthz");
      CHECK(a.status == 503 && a.body_len < 4 * CA_LISTEN_MAX_ERROR + 200);
      answer_free(&a);
      free(huge);
    }
  }
  ca_listen_health(l, now, 60, NULL);
}

/* A client that connects and sends nothing holds no one up. */
static void test_slow_client(ca_listen *l)
{
  int port = ca_listen_port(l);
  int slow = dial(port), slow2 = dial(port);
  int64_t t0;
  answer a;

  CHECK(slow >= 0 && slow2 >= 0);
  /* and one that sends half a request line */
  if (slow2 >= 0)
    CHECK(send_all(slow2, "GET /metr", 9) == 0);
  t0 = now_ms();
  a = request(port, "GET", "/metrics");
  CHECK(a.status == 200);
  CHECK(now_ms() - t0 < 2000);
  answer_free(&a);
  if (slow >= 0)
    close(slow);
  if (slow2 >= 0)
    close(slow2);
}

/* 64 connections at once, twice the limit: no crash, the daemon holds at
 * most the limit, and once they are gone requests work again. */
static void test_many(ca_listen *l)
{
  enum { N = 64 };
  int port = ca_listen_port(l), fds[N], i, opened = 0, max_conns = 0;
  answer a;
  int64_t end;

  for (i = 0; i < N; i++) {
    fds[i] = dial(port);
    if (fds[i] >= 0)
      opened++;
  }
  CHECK(opened >= CA_LISTEN_MAX_CONNECTIONS);
  end = now_ms() + 1000;
  while (now_ms() < end) {
    int n = ca_listen_connections(l);
    if (n > max_conns)
      max_conns = n;
    usleep(20000);
  }
  CHECK(max_conns > 0 && max_conns <= CA_LISTEN_MAX_CONNECTIONS);
  {
    int eof = 0;
    for (i = 0; i < N; i++) {
      struct pollfd p = {fds[i], POLLIN, 0};
      char c;
      if (fds[i] >= 0 && poll(&p, 1, 0) == 1 && recv(fds[i], &c, 1, 0) == 0)
        eof++;
    }
    fprintf(stderr,
            "note: %d of %d connections open at the daemon, %d "
            "closed by it\n",
            max_conns, opened, eof);
  }
  /* half of them ask for /metrics: those served answer, none crashes */
  for (i = 0; i < N; i += 2)
    if (fds[i] >= 0)
      (void)send_all(fds[i],
                     "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n",
                     50);
  for (i = 0; i < N; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  /* the slots come back */
  end = now_ms() + 3000;
  while (now_ms() < end && ca_listen_connections(l) > 0)
    usleep(20000);
  a = request(port, "GET", "/metrics");
  CHECK(a.status == 200);
  answer_free(&a);
}

/* Publishing while clients read: every answer is one whole version. */
typedef struct pub_arg {
  ca_listen *l;
  atomic_int stop;
  atomic_int count;
} pub_arg;

static void *publisher(void *p)
{
  pub_arg *pa = p;
  char buf[4096];
  while (!pa->stop && pa->count < 100000) {
    int fill = 'a' + pa->count % 26;
    memset(buf, fill, sizeof buf - 1);
    buf[sizeof buf - 1] = '\n';
    if (ca_listen_publish(pa->l, buf, sizeof buf) != CHATAPP_OK)
      break;
    pa->count++;
  }
  return NULL;
}

static void test_concurrent_publish(ca_listen *l)
{
  pub_arg pa = {l, 0, 0};
  pthread_t t;
  int i, whole = 0;

  if (pthread_create(&t, NULL, publisher, &pa) != 0) {
    CHECK(0);
    return;
  }
  {
    int64_t end = now_ms() + 3000; /* the publisher has started */
    while (pa.count == 0 && now_ms() < end)
      usleep(1000);
  }
  for (i = 0; i < 20; i++) {
    answer a = request(ca_listen_port(l), "GET", "/metrics");
    if (a.status == 200 && a.body_len == 4096) {
      size_t k;
      int same = 1;
      for (k = 1; k + 1 < 4096; k++)
        if (a.body[k] != a.body[0])
          same = 0;
      whole += same;
    }
    answer_free(&a);
  }
  pa.stop = 1;
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(whole == 20);
  CHECK(pa.count > 0);
}

/* Stop with clients connected, one mid-request: prompt, no crash. */
static void test_stop_with_clients(void)
{
  char err[512];
  ca_listen *l = NULL;
  int fds[4], i;
  int64_t t0;

  CHECK(ca_listen_start("127.0.0.1:0", &l, err, sizeof err) == CHATAPP_OK);
  if (!l)
    return;
  CHECK(ca_listen_publish(l, "x 1\n", 4) == CHATAPP_OK);
  for (i = 0; i < 4; i++)
    fds[i] = dial(ca_listen_port(l));
  if (fds[1] >= 0)
    (void)send_all(fds[1], "GET /metrics HTTP/1.1\r\nHo", 25);
  usleep(100000);
  t0 = now_ms();
  ca_listen_stop(l);
  CHECK(now_ms() - t0 < 3000);
  for (i = 0; i < 4; i++) {
    if (fds[i] >= 0) {
      size_t n = 0;
      char *rest = read_all(fds[i], 2000, &n);
      CHECK(n == 0); /* closed, no answer */
      free(rest);
      close(fds[i]);
    }
  }
}

int main(void)
{
  char err[512] = "";
  ca_listen *l = NULL;
  int idle;
  int64_t idle_since;

  test_addresses();
  CHECK(ca_listen_start("127.0.0.1:0", &l, err, sizeof err) == CHATAPP_OK);
  if (!l) {
    fprintf(stderr, "cannot start: %s\n", err);
    return test_report("test_listen");
  }
  idle = dial(ca_listen_port(l));
  idle_since = now_ms();
  CHECK(idle >= 0);
  test_metrics(l);
  test_routes(l);
  test_health(l);
  test_slow_client(l);
  test_many(l);
  test_concurrent_publish(l);
  /* the idle connection opened first is closed after the timeout */
  if (idle >= 0) {
    size_t n = 99;
    char *rest = read_all(idle, (CA_LISTEN_TIMEOUT_S + 5) * 1000, &n);
    int64_t took = now_ms() - idle_since;
    CHECK(n == 0);
    CHECK(took >= (CA_LISTEN_TIMEOUT_S - 1) * 1000);
    CHECK(took < (CA_LISTEN_TIMEOUT_S + 4) * 1000);
    free(rest);
    close(idle);
  }
  ca_listen_stop(l);
  test_stop_with_clients();
  return test_report("test_listen");
}
