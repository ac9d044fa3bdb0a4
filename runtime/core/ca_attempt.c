#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "ca_client_int.h"
#include "ca_crypto.h"

#define MAX_HEADER_BYTES (64 * 1024)

/* ---- one attempt -------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
  ca_call *call = ud;
  size_t n = size * nmemb;

  if (ca_buf_add(&call->body, data, n) != CHATAPP_OK) {
    call->too_big = 1; /* the cap, enforced here for chunked bodies too */
    return 0;
  }
  return n;
}

/*
 * Parse Retry-After (RFC 9110: delay-seconds, digits only, or an
 * HTTP-date) / x-acs-retry-after (milliseconds, digits): the wait in
 * microseconds, 0 for a date in the past, -1 for anything else (ignored:
 * "1e12", "0x10", "-5", "inf", garbage).  A huge number is cut here and
 * capped by max_retry_after_ms where it is used (ca_perform.c); a date is
 * counted from this process's wall clock (ca_wall_s, the signing clock).
 */
static int64_t parse_retry_after(const char *name, const char *v)
{
  int ms = strcasecmp(name, "x-acs-retry-after") == 0;
  const char *p;
  int64_t x = 0;

  while (*v == ' ' || *v == '\t')
    v++;
  for (p = v; *p >= '0' && *p <= '9'; p++)
    if (x < 1000000000) /* absurd: capped later */
      x = x * 10 + (*p - '0');
  if (p != v) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
      p++;
    if (*p)
      return -1;
    return ms ? x * 1000 : x * 1000000;
  }
  if (ms)
    return -1; /* milliseconds only */
  {
    time_t when = curl_getdate(v, NULL);
    int64_t now = ca_wall_s();
    if (when == -1)
      return -1;
    return (int64_t)when > now ? ((int64_t)when - now) * 1000000 : 0;
  }
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
  ca_call *call = ud;
  size_t n = size * nmemb;
  char line[512];
  char *colon;

  call->header_bytes += n;
  if (call->header_bytes > MAX_HEADER_BYTES)
    return 0;
  if (n >= sizeof line || n < 3)
    return n;
  memcpy(line, data, n);
  line[n] = '\0';
  colon = strchr(line, ':');
  if (!colon)
    return n;
  *colon = '\0';
  if (strcasecmp(line, "retry-after") == 0 ||
      strcasecmp(line, "x-acs-retry-after") == 0) {
    int64_t us = parse_retry_after(line, colon + 1);
    if (us > call->retry_after_us)
      call->retry_after_us = us;
  }
  return n;
}

/* Addresses no request of ours may reach: link-local (169.254.0.0/16,
 * fe80::/10) and Alibaba Cloud's metadata service, which hands out RAM
 * role credentials to whoever asks from an ECS instance; an IPv4 address
 * also in its IPv4-mapped IPv6 form (::ffff:169.254.x.x).  *metadata is
 * set when the address is the metadata service's. */
static int ip_is_forbidden(const char *ip, int *metadata)
{
  struct in6_addr a6;
  struct in_addr a4;
  uint32_t v4;

  *metadata = 0;
  if (inet_pton(AF_INET, ip, &a4) == 1) {
    v4 = ntohl(a4.s_addr);
  } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
    if (IN6_IS_ADDR_LINKLOCAL(&a6))
      return 1;
    if (!IN6_IS_ADDR_V4MAPPED(&a6))
      return 0;
    v4 = (uint32_t)a6.s6_addr[12] << 24 | (uint32_t)a6.s6_addr[13] << 16 |
         (uint32_t)a6.s6_addr[14] << 8 | (uint32_t)a6.s6_addr[15];
  } else {
    return 0;
  }
  if (v4 == 0x646464C8u) { /* 100.100.100.200 */
    *metadata = 1;
    return 1;
  }
  return (v4 >> 16) == 0xA9FEu; /* 169.254.0.0/16 */
}

/*
 * Checked on the address about to be connected to, before any socket is
 * opened (on_opensocket) and again on the connected one before a request
 * byte is sent (on_prereq): plain http goes to loopback only (credentials,
 * webhook secrets); no request goes to a link-local or metadata address,
 * except the credential provider's own calls to the metadata service.
 */
int ca_attempt_address_check(int allow_metadata, int plain, const char *ip)
{
  int metadata;

  if (ip_is_forbidden(ip, &metadata)) {
    if (allow_metadata && metadata)
      return 0; /* the provider's plain http to the metadata service */
    return 1;
  }
  if (plain && !ca_loopback_host(ip, strlen(ip)))
    return 2;
  return 0;
}

/* The refusal names the host (never the path or query of a URL, which may
 * hold a token) and the address. */
static void refused_address(ca_call *call, const char *ip)
{
  const char *h = call->url ? strstr(call->url, "://") : NULL;
  const char *at;
  size_t n = 0;

  if (h) {
    h += 3;
    n = strcspn(h, "/?#");
    at = memchr(h, '@', n);
    if (at) {
      n -= (size_t)(at + 1 - h);
      h = at + 1;
    }
  }
  if (n > 200)
    n = 200;
  snprintf(call->error, sizeof call->error,
           "refused: %s%.*s resolved to %s, a link-local or metadata address "
           "(no connection is made to those)",
           n ? "" : "the endpoint", (int)n, n ? h : "", ip);
}

/*
 * libcurl asks here for every socket it would open, with the resolved
 * address: a forbidden one gets no socket (CURL_SOCKET_BAD, which libcurl
 * reports as CURLE_COULDNT_CONNECT; ca_perform.c turns it into a final
 * error when call->error holds the refusal).  Behind a proxy the address
 * is the proxy's: the target's name is the proxy's to resolve.
 */
static curl_socket_t on_opensocket(void *ud, curlsocktype purpose,
                                   struct curl_sockaddr *a)
{
  ca_call *call = ud;
  char ip[INET6_ADDRSTRLEN];
  const void *src = NULL;

  (void)purpose;
  if (a->family == AF_INET &&
      a->addrlen >= (unsigned)sizeof(struct sockaddr_in))
    src = &((const struct sockaddr_in *)(const void *)&a->addr)->sin_addr;
  else if (a->family == AF_INET6 &&
           a->addrlen >= (unsigned)sizeof(struct sockaddr_in6))
    src = &((const struct sockaddr_in6 *)(const void *)&a->addr)->sin6_addr;
  if (src && !inet_ntop(a->family, src, ip, sizeof ip))
    src = NULL;
  if (!src) {
    snprintf(call->error, sizeof call->error,
             "refused: an address of family %d (only IPv4 and IPv6 are used)",
             a->family);
    return CURL_SOCKET_BAD;
  }
  if (ca_attempt_address_check(
        call->kind == CA_CALL_HTTP && call->allow_metadata, 0, ip) == 1) {
    refused_address(call, ip);
    return CURL_SOCKET_BAD;
  }
  return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int on_prereq(void *ud, char *conn_primary_ip, char *conn_local_ip,
                     int conn_primary_port, int conn_local_port)
{
  ca_call *call = ud;
  int plain =
    call->kind == CA_CALL_API ? 1 : strncmp(call->url, "http://", 7) == 0;
  int why = ca_attempt_address_check(
    call->kind == CA_CALL_HTTP && call->allow_metadata, plain, conn_primary_ip);

  (void)conn_local_ip;
  (void)conn_primary_port;
  (void)conn_local_port;
  if (why == 1) {
    refused_address(call, conn_primary_ip);
    return CURL_PREREQFUNC_ABORT;
  }
  if (why == 2) {
    snprintf(call->error, sizeof call->error,
             "refused: plain http resolved to %s, which is not loopback; "
             "use https",
             conn_primary_ip);
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

/* Append a header line; on failure the list is kept as it was (libcurl
 * returns NULL and leaves it alone). */
static chatapp_status add_line(ca_call *call, const char *line)
{
  struct curl_slist *s = curl_slist_append(call->slist, line);

  if (!s)
    return CHATAPP_ENOMEM;
  call->slist = s;
  return CHATAPP_OK;
}

static chatapp_status add_header(ca_call *call, const char *name,
                                 const char *value)
{
  char line[8192];
  chatapp_status st;

  if ((size_t)snprintf(line, sizeof line, "%s: %s", name, value) >= sizeof line)
    return CHATAPP_ETOOBIG;
  st = add_line(call, line);
  ca_wipe(line, sizeof line);
  return st;
}

/* Build URL and headers for a V3-signed attempt. */
static chatapp_status prepare_v3(ca_client *c, ca_call *call, const char *date,
                                 const char *nonce)
{
  ca_kv h[8];
  size_t nh = 0, i;
  ca_v3_input in;
  ca_v3_output out;
  chatapp_status st;

  h[nh++] = (ca_kv){"host", c->host};
  h[nh++] = (ca_kv){"x-acs-action", call->operation};
  h[nh++] = (ca_kv){"x-acs-version", CA_API_VERSION};
  h[nh++] = (ca_kv){"x-acs-date", date};
  h[nh++] = (ca_kv){"x-acs-signature-nonce", nonce};
  h[nh++] = (ca_kv){"x-acs-content-sha256", CA_EMPTY_SHA256};
  if (c->token) {
    h[nh++] = (ca_kv){"x-acs-accesskey-id", c->ak_id};
    h[nh++] = (ca_kv){"x-acs-security-token", c->token};
  }
  memset(&in, 0, sizeof in);
  in.method = "POST";
  in.pathname = "/";
  in.query = call->params;
  in.nquery = call->nparams;
  in.headers = h;
  in.nheaders = nh;
  in.access_key_id = c->ak_id;
  in.access_key_secret = c->secret;
  ca_v3_output_init(&out);
  st = ca_sign_v3(&in, &out);
  if (!st && c->verbose >= CA_LOG_TRACE)
    ca_client_log(c, CA_LOG_TRACE,
                  "%s: canonical request:\n%s\n%s: string to sign:\n%s",
                  call->operation, ca_buf_str(&out.canonical_request),
                  call->operation, ca_buf_str(&out.string_to_sign));
  if (!st)
    st = ca_buf_printf(&call->url_buf, "%s/%s%s", c->endpoint,
                       out.canonical_query.len ? "?" : "",
                       ca_buf_str(&out.canonical_query));
  for (i = 0; i < nh && !st; i++)
    st = add_header(call, h[i].key, h[i].value);
  if (!st)
    st = add_header(call, "Authorization", ca_buf_str(&out.authorization));
  ca_v3_output_free(&out);
  return st;
}

/* Build the URL for a legacy-signed attempt (everything in the query). */
static chatapp_status prepare_v2(ca_client *c, ca_call *call, const char *date,
                                 const char *nonce)
{
  size_t n = call->nparams, np = 0;
  ca_kv *p = calloc(n + 10, sizeof *p);
  ca_rpc_output out;
  chatapp_status st;

  if (!p)
    return CHATAPP_ENOMEM;
  memcpy(p, call->params, n * sizeof *p);
  np = n;
  p[np++] = (ca_kv){"Action", call->operation};
  p[np++] = (ca_kv){"Version", CA_API_VERSION};
  p[np++] = (ca_kv){"Format", "JSON"};
  p[np++] = (ca_kv){"AccessKeyId", c->ak_id};
  p[np++] = (ca_kv){"SignatureMethod", "HMAC-SHA1"};
  p[np++] = (ca_kv){"SignatureVersion", "1.0"};
  p[np++] = (ca_kv){"SignatureNonce", nonce};
  p[np++] = (ca_kv){"Timestamp", date};
  if (c->token)
    p[np++] = (ca_kv){"SecurityToken", c->token};
  ca_rpc_output_init(&out);
  st = ca_sign_rpc("POST", p, np, c->secret, &out);
  if (!st && c->verbose >= CA_LOG_TRACE)
    ca_client_log(c, CA_LOG_TRACE, "%s: string to sign:\n%s", call->operation,
                  ca_buf_str(&out.string_to_sign));
  if (!st)
    st = ca_buf_printf(&call->url_buf, "%s/?%s", c->endpoint,
                       ca_buf_str(&out.signed_query));
  ca_rpc_output_free(&out);
  free(p);
  return st;
}

/*
 * Every option below carries a rule (the loopback and metadata-address
 * checks, protocols, timeouts, size caps): an option libcurl refuses fails
 * the attempt, it never goes out without it.
 */
static chatapp_status setopt_failed(ca_call *call, const char *name,
                                    CURLcode rc)
{
  snprintf(call->error, sizeof call->error,
           "libcurl refused %s: %s (chatapp-run needs libcurl %s or newer, "
           "built with HTTP and TLS support)",
           name, curl_easy_strerror(rc), CA_CURL_MIN_VERSION_STR);
  return rc == CURLE_OUT_OF_MEMORY ? CHATAPP_ENOMEM : CHATAPP_ECONFIG;
}

#define SETOPT(opt, val)                                                       \
  do {                                                                         \
    CURLcode rc_ = curl_easy_setopt(e, opt, val);                              \
    if (rc_ != CURLE_OK)                                                       \
      return setopt_failed(call, #opt, rc_);                                   \
  } while (0)

chatapp_status ca_attempt_start(ca_client *c, ca_call *call)
{
  char date[21], nonce[33];
  chatapp_status st;
  CURLMcode mc;
  CURL *e;
  size_t i;

  if (call->easy) {
    curl_easy_cleanup(call->easy);
    call->easy = NULL;
  }
  curl_slist_free_all(call->slist);
  call->slist = NULL;
  ca_buf_reset(&call->url_buf);
  ca_buf_free(&call->body);
  ca_buf_init(&call->body, c->max_body);
  ca_envelope_free(&call->env);
  call->http_status = 0;
  call->retry_after_us = 0;
  call->header_bytes = 0;
  call->too_big = 0;
  call->curl_err[0] = '\0';
  call->error[0] = '\0';

  e = curl_easy_init();
  if (!e) {
    snprintf(call->error, sizeof call->error,
             "curl_easy_init failed (out of memory?)");
    return CHATAPP_ENOMEM;
  }
  call->easy = e;
  if (call->kind == CA_CALL_API) {
    /* Fresh credentials for every attempt: a retry after a refresh is
     * signed with the new ones. */
    st = ca_client_sync_credentials(c, call->error, sizeof call->error);
    if (st)
      return st;
    st = ca_nonce(nonce);
    if (!st) {
      ca_iso8601((long long)ca_wall_s(), date); /* test offset: ca_limiter.h */
      st = c->sigver == 2 ? prepare_v2(c, call, date, nonce)
                          : prepare_v3(c, call, date, nonce);
    }
    if (!st)
      st = add_header(call, "Accept", "application/json");
    /* An empty body: no Content-Type (it would have to be signed). */
    if (!st)
      st = add_line(call, "Content-Type:");
    if (st)
      return st;
    SETOPT(CURLOPT_URL, ca_buf_str(&call->url_buf));
    SETOPT(CURLOPT_POST, 1L);
    SETOPT(CURLOPT_POSTFIELDS, "");
    SETOPT(CURLOPT_POSTFIELDSIZE, 0L);
    if (c->plain_http) {
      SETOPT(CURLOPT_PREREQFUNCTION, on_prereq);
      SETOPT(CURLOPT_PREREQDATA, call);
    }
  } else {
    for (i = 0; i < call->nheaders; i++)
      if ((st = add_header(call, call->headers[i].key,
                           call->headers[i].value)) != CHATAPP_OK)
        return st;
    SETOPT(CURLOPT_URL, call->url);
    SETOPT(CURLOPT_CUSTOMREQUEST, call->method);
    SETOPT(CURLOPT_PREREQFUNCTION, on_prereq);
    SETOPT(CURLOPT_PREREQDATA, call);
    if (call->allow_metadata) /* the metadata service is never proxied */
      SETOPT(CURLOPT_NOPROXY, "*");
    if (call->req_body.len || strcmp(call->method, "POST") == 0 ||
        strcmp(call->method, "PUT") == 0) {
      SETOPT(CURLOPT_POSTFIELDS, ca_buf_str(&call->req_body));
      SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)call->req_body.len);
    }
  }
  /* No "Expect: 100-continue" round trip. */
  if ((st = add_line(call, "Expect:")) != CHATAPP_OK)
    return st;
  SETOPT(CURLOPT_HTTPHEADER, call->slist);
  SETOPT(CURLOPT_USERAGENT, c->user_agent);
  SETOPT(CURLOPT_PRIVATE, call);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
  SETOPT(CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
  SETOPT(CURLOPT_OPENSOCKETDATA, call);
  SETOPT(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
  /* Always verified, whatever libcurl's defaults (there is no switch to
   * turn this off); the CA bundle of the configuration, else the system
   * store.  Proxies come from the environment (https_proxy, no_proxy):
   * nothing here sets CURLOPT_PROXY, so libcurl reads them. */
  SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
  SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
  SETOPT(CURLOPT_PROXY_SSL_VERIFYPEER, 1L);
  SETOPT(CURLOPT_PROXY_SSL_VERIFYHOST, 2L);
  if (c->ca_file) { /* an HTTPS proxy is verified with the same bundle */
    SETOPT(CURLOPT_CAINFO, c->ca_file);
    SETOPT(CURLOPT_PROXY_CAINFO, c->ca_file);
  }
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
  {
    /* An attempt never outlives its call's deadline (call_timeout_ms). */
    long ms = call->timeout_ms > 0 ? call->timeout_ms : c->attempt_ms;
    if (call->deadline_us != INT64_MAX) {
      int64_t left = (call->deadline_us - ca_now_us() + 999) / 1000;
      if (left < ms)
        ms = left > 1 ? (long)left : 1L;
    }
    SETOPT(CURLOPT_TIMEOUT_MS, ms);
  }
  /* A stalled or dripping answer: under CA_LOW_SPEED_BYTES a second for
   * low_speed_s.  At a limit of 1 B/s a body dripping 1 B/s is not slow to
   * libcurl (its speed rounds to 1 or 0 from one second to the next) and
   * runs to the attempt's timeout. */
  SETOPT(CURLOPT_LOW_SPEED_LIMIT, (long)CA_LOW_SPEED_BYTES);
  /* A call given a timeout of its own (a webhook's timeout_ms) was told it
   * may wait that long for its answer: the window is never shorter. */
  SETOPT(CURLOPT_LOW_SPEED_TIME, call->timeout_ms / 1000 > c->low_speed_s
                                   ? call->timeout_ms / 1000
                                   : c->low_speed_s);
  SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body);
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, call);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, call);
  SETOPT(CURLOPT_ERRORBUFFER, call->curl_err);
  /* Last: only a handle in the multi uses the share, so none is left
   * holding it when the client is freed (ca_client_int.h). */
  SETOPT(CURLOPT_SHARE, c->share);
  mc = curl_multi_add_handle(c->multi, e);
  if (mc != CURLM_OK) {
    (void)curl_easy_setopt(e, CURLOPT_SHARE, (CURLSH *)NULL);
    snprintf(call->error, sizeof call->error, "curl_multi_add_handle: %s",
             curl_multi_strerror(mc));
    return mc == CURLM_OUT_OF_MEMORY ? CHATAPP_ENOMEM : CHATAPP_ETRANSPORT;
  }
  call->attempts++;
  c->stats.attempts++;
  if (call->attempts > 1)
    c->stats.retries++;
  return CHATAPP_OK;
}
