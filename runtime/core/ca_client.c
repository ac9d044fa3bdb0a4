/*
 * The API client: creating it (the endpoint, the credentials, the limiter,
 * the multi handle), freeing it, its accessors and statistics, redaction
 * and its credentials.  Running calls (attempts, retries, the loop) is
 * ca_perform.c; one attempt is ca_attempt.c; making a call ca_call.c.
 */
#include "ca_client_int.h"
#include "ca_config.h" /* ca_interrupted, ca_config_check_endpoint */

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "ca_cred_provider.h"
#include "ca_crypto.h"

/* ---- helpers ------------------------------------------------------------ */

void ca_client_log(ca_client *c, int level, const char *fmt, ...)
{
  ca_buf b = CA_BUF_INIT(64 * 1024);
  va_list ap;

  if (!c->log || level > c->verbose)
    return;
  va_start(ap, fmt);
  if (ca_buf_vprintf(&b, fmt, ap) == CHATAPP_OK) {
    ca_client_redact(c, &b);
    c->log(c->log_ud, level, ca_buf_str(&b));
  }
  va_end(ap);
  ca_buf_free(&b);
}

static char *xstrdup(const char *s)
{
  return s ? strdup(s) : NULL;
}

static void free_secret(char *s)
{
  if (s) {
    ca_wipe(s, strlen(s));
    free(s);
  }
}

/* ---- configuration ------------------------------------------------------ */

/* The proxy variables libcurl reads for http and https URLs, and
 * HTTP_PROXY, which it ignores but a user may have set. */
static const char *const proxy_vars[] = {
  "http_proxy",  "HTTP_PROXY", "https_proxy",
  "HTTPS_PROXY", "all_proxy",  "ALL_PROXY",
};

const char *ca_client_env_proxy(int https, const char **var)
{
  /* libcurl 7.88 (url.c, detect_proxy): <scheme>_proxy, its upper case
   * except HTTP_PROXY, then all_proxy, ALL_PROXY. */
  const char *const names[] = {https ? "https_proxy" : "http_proxy",
                               https ? "HTTPS_PROXY" : NULL, "all_proxy",
                               "ALL_PROXY"};
  size_t i;

  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *v = names[i] ? getenv(names[i]) : NULL;
    if (v) {
      *var = names[i];
      return v;
    }
  }
  *var = NULL;
  return NULL;
}

void ca_client_proxy_note(const char *url, int certain, const char *msg,
                          char *out, size_t n)
{
  const char *var, *px, *h, *end, *at = NULL, *p, *colon;
  int https = url && strncmp(url, "https://", 8) == 0;
  char hostport[300], host[300], port[8], needle[330];
  size_t scheme_len, hl;

  if (n)
    out[0] = '\0';
  px = ca_client_env_proxy(https, &var);
  if (!px || !*px || n == 0)
    return;
  h = strstr(px, "://");
  scheme_len = h ? (size_t)(h - px) + 3 : 0;
  h = h ? h + 3 : px;
  end = h + strcspn(h, "/?#");
  for (p = h; p < end; p++)
    if (*p == '@')
      at = p;
  if (at)
    h = at + 1;
  hl = (size_t)(end - h);
  if (hl == 0 || hl >= sizeof hostport)
    return;
  memcpy(hostport, h, hl);
  hostport[hl] = '\0';
  /* libcurl's words for a connection that failed: "... to HOST port N" */
  colon = hostport[0] == '[' ? strchr(hostport, ']') : hostport;
  colon = colon ? strrchr(colon, ':') : NULL;
  if (colon) {
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    snprintf(port, sizeof port, "%.7s", colon + 1);
  } else {
    snprintf(host, sizeof host, "%s", hostport);
    snprintf(port, sizeof port, "%s",
             scheme_len == 8 && strncasecmp(px, "https", 5) == 0 ? "443"
                                                                 : "1080");
  }
  if (host[0] == '[' && host[strlen(host) - 1] == ']') {
    memmove(host, host + 1, strlen(host));
    host[strlen(host) - 1] = '\0';
  }
  snprintf(needle, sizeof needle, "to %s port %s ", host, port);
  if (!certain && !(msg && strstr(msg, needle)))
    return;
  snprintf(out, n,
           "; that is the proxy from %s (%.*s%s%s): check that it runs and "
           "is reachable, or list the host in no_proxy to go direct",
           var, (int)scheme_len, px, at ? CA_REDACT_MARK "@" : "", hostport);
}

static int hexval(int ch)
{
  return ch >= '0' && ch <= '9'   ? ch - '0'
         : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
         : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                  : -1;
}

/* Add s[0..n) and, if it has %XX escapes, its decoded form. */
static chatapp_status add_secret_forms(ca_secrets *set, const char *s, size_t n)
{
  char dec[512];
  size_t i, k = 0;
  chatapp_status st = ca_secrets_add(set, s, n);

  if (st || !memchr(s, '%', n) || n >= sizeof dec)
    return st;
  for (i = 0; i < n; i++) {
    int hi = s[i] == '%' && i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
    int lo = hi >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
    if (lo >= 0) {
      dec[k++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      dec[k++] = s[i];
    }
  }
  st = ca_secrets_add(set, dec, k);
  ca_wipe(dec, sizeof dec);
  return st;
}

/*
 * The credentials of a proxy given in the environment
 * (http://user:password@proxy:3128) are secrets: libcurl quotes a proxy URL
 * it cannot use whole in its message ("Unsupported proxy syntax in
 * '...'"), and that message reaches the user.  "user:password" and the
 * password alone (as written and percent-decoded) are redacted wherever
 * the client's secrets are.
 */
static chatapp_status add_proxy_secrets(ca_secrets *set)
{
  size_t i;

  for (i = 0; i < sizeof proxy_vars / sizeof proxy_vars[0]; i++) {
    const char *v = getenv(proxy_vars[i]), *h, *end, *at = NULL, *p, *colon;
    chatapp_status st;
    if (!v || !*v)
      continue;
    h = strstr(v, "://");
    h = h ? h + 3 : v;
    end = h + strcspn(h, "/?#");
    for (p = h; p < end; p++) /* the last '@' before the path */
      if (*p == '@')
        at = p;
    if (!at || at == h)
      continue;
    st = add_secret_forms(set, h, (size_t)(at - h));
    colon = memchr(h, ':', (size_t)(at - h));
    if (!st && colon && colon + 1 < at)
      st = add_secret_forms(set, colon + 1, (size_t)(at - colon - 1));
    if (st)
      return st;
  }
  return CHATAPP_OK;
}

chatapp_status ca_curl_check_version(unsigned version_num, const char *version,
                                     ca_buf *err)
{
  if (version_num >= CA_CURL_MIN_VERSION)
    return CHATAPP_OK;
  ca_buf_printf(err,
                "libcurl %s is too old: chatapp-run needs libcurl %s or newer "
                "(for the loopback and metadata-address checks, the protocol "
                "list and SIGPIPE-safe TLS); install a newer libcurl",
                version ? version : "(unknown version)",
                CA_CURL_MIN_VERSION_STR);
  return CHATAPP_ECONFIG;
}

/* The libcurl loaded at run time, which may be older than the headers the
 * library was built with. */
static chatapp_status check_runtime_curl(ca_buf *err)
{
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

  if (!v) {
    ca_buf_adds(err, "curl_version_info failed: libcurl is not usable");
    return CHATAPP_ECONFIG;
  }
  return ca_curl_check_version(v->version_num, v->version, err);
}

int ca_loopback_host(const char *host, size_t len)
{
  char h[INET6_ADDRSTRLEN + 2];
  struct in6_addr a6;
  struct in_addr a4;

  if (!host || len == 0 || len >= sizeof h || memchr(host, '\0', len))
    return 0;
  if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
    return 1;
  if (host[0] == '[') { /* brackets hold an IPv6 address, nothing else */
    if (len < 3 || host[len - 1] != ']')
      return 0;
    memcpy(h, host + 1, len - 2);
    h[len - 2] = '\0';
  } else {
    memcpy(h, host, len);
    h[len] = '\0';
    /* inet_pton takes four decimal parts only: no 127.1, no 0x7f.1 */
    if (inet_pton(AF_INET, h, &a4) == 1)
      return (ntohl(a4.s_addr) >> 24) == 127;
  }
  if (inet_pton(AF_INET6, h, &a6) != 1)
    return 0;
  return IN6_IS_ADDR_LOOPBACK(&a6) ||
         (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

const char *ca_curl_version(void)
{
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

  return v && v->version ? v->version : "(unknown)";
}

/* Split "scheme://host[:port][/]" and check the rules for endpoints. */
static chatapp_status parse_endpoint(ca_client *c, const char *url, ca_buf *err)
{
  const char *h;
  size_t hostlen, n = strlen(url);
  char why[512];

  /* One grammar for endpoints: the configuration's (ca_config.c). */
  if (ca_config_check_endpoint(url, why, sizeof why) != 0) {
    return ca_buf_adds(err, why) == CHATAPP_OK ? CHATAPP_ECONFIG
                                               : CHATAPP_ENOMEM;
  }
  c->plain_http = n > 7 && memcmp(url, "http://", 7) == 0;
  h = url + (c->plain_http ? 7 : 8);
  if (url[n - 1] == '/') /* at most one, after a host (checked above) */
    n--;
  hostlen = (size_t)(url + n - h);
  /* Credentials never travel over plain http, except to this machine. */
  if (c->plain_http) {
    size_t name_len = hostlen;
    const char *q = h[0] == '[' ? memchr(h, ']', hostlen) : NULL;
    if (q)
      name_len = (size_t)(q - h) + 1;
    else if (h[0] != '[' && (q = memchr(h, ':', hostlen)) != NULL)
      name_len = (size_t)(q - h);
    if (!ca_loopback_host(h, name_len)) {
      ca_buf_printf(err,
                    "refusing to send credentials over plain http to '%.*s'; "
                    "use https:// (http is allowed only to 127.0.0.1, ::1 "
                    "or localhost)",
                    (int)name_len, h);
      return CHATAPP_ECONFIG;
    }
  }
  c->endpoint = strndup(url, n);
  c->host = strndup(h, hostlen);
  return c->endpoint && c->host ? CHATAPP_OK : CHATAPP_ENOMEM;
}

chatapp_status ca_client_new(const ca_client_config *cfg, ca_client **out,
                             ca_buf *err)
{
  ca_client *c;
  chatapp_status st;
  CURLMcode mc;

  *out = NULL;
  st = check_runtime_curl(err);
  if (st) {
    ca_cred_provider_free(cfg->provider);
    return st;
  }
  c = calloc(1, sizeof *c);
  if (!c) {
    ca_cred_provider_free(cfg->provider);
    return CHATAPP_ENOMEM;
  }
  c->prov = cfg->provider;
  if (!cfg->http_only && !c->prov &&
      (!cfg->access_key_id || !*cfg->access_key_id || !cfg->access_key_secret ||
       !*cfg->access_key_secret)) {
    ca_buf_adds(err, "no AccessKey id and secret were given to the client");
    st = CHATAPP_ECREDENTIALS;
    goto fail;
  }
  c->http_only = cfg->http_only;
  if (!c->http_only) {
    st = parse_endpoint(c, cfg->endpoint ? cfg->endpoint : "", err);
    if (st)
      goto fail;
  }
  if (cfg->signature_version != 0 && cfg->signature_version != 2 &&
      cfg->signature_version != 3) {
    ca_buf_printf(err, "signature version must be v3 or v2, not %d",
                  cfg->signature_version);
    st = CHATAPP_EINVAL;
    goto fail;
  }
  c->sigver = cfg->signature_version ? cfg->signature_version : 3;
  c->ak_id = xstrdup(cfg->access_key_id ? cfg->access_key_id : "");
  c->secret = xstrdup(cfg->access_key_secret ? cfg->access_key_secret : "");
  c->token = cfg->security_token && *cfg->security_token
               ? xstrdup(cfg->security_token)
               : NULL;
  if (c->prov) {
    char e[512];
    st = ca_client_sync_credentials(c, e, sizeof e);
    if (st) {
      ca_buf_adds(err, e);
      goto fail;
    }
  }
  c->account_key =
    xstrdup(cfg->account_key && *cfg->account_key ? cfg->account_key
            : c->prov && ca_cred_provider_identity(c->prov)
              ? ca_cred_provider_identity(c->prov)
            : c->ak_id ? c->ak_id
                       : "");
  c->user_agent =
    xstrdup(cfg->user_agent ? cfg->user_agent : "chatapp-run/" CHATAPP_VERSION);
  if (cfg->ca_file && *cfg->ca_file) {
    char e[512];
    if (ca_config_check_ca_file(cfg->ca_file, e, sizeof e)) {
      ca_buf_adds(err, e);
      st = CHATAPP_ECONFIG;
      goto fail;
    }
    c->ca_file = xstrdup(cfg->ca_file);
    if (!c->ca_file) {
      st = CHATAPP_ENOMEM;
      goto fail;
    }
  }
  c->qps = cfg->qps;
  c->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 5000;
  c->attempt_ms = cfg->attempt_timeout_ms > 0 ? cfg->attempt_timeout_ms : 15000;
  c->low_speed_s = cfg->low_speed_time_s > 0 ? cfg->low_speed_time_s : 10;
  c->call_ms = cfg->call_timeout_ms > 0 ? cfg->call_timeout_ms : 60000;
  c->max_retry_after_ms =
    cfg->max_retry_after_ms > 0 ? cfg->max_retry_after_ms : 20000;
  c->max_body =
    cfg->max_response_bytes ? cfg->max_response_bytes : (size_t)64 << 20;
  c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
  c->max_in_flight = cfg->max_in_flight > 0 ? cfg->max_in_flight : 16;
  c->log = cfg->log;
  c->log_ud = cfg->log_ud;
  c->verbose = cfg->verbose;
  c->budget = BUDGET_START;
  c->stats.min_factor = 1.0;
  if ((cfg->security_token && *cfg->security_token && !c->token) || !c->ak_id ||
      !c->secret || !c->account_key || !c->user_agent) {
    st = CHATAPP_ENOMEM;
    goto fail;
  }
  st = ca_secrets_add(&c->secrets, c->secret, strlen(c->secret));
  if (!st && c->token)
    st = ca_secrets_add(&c->secrets, c->token, strlen(c->token));
  if (!st)
    st = add_proxy_secrets(&c->secrets);
  if (st)
    goto fail;
  st = ca_limiter_new(cfg->limiter_path,
                      cfg->window_margin_us > 0 ? cfg->window_margin_us
                                                : CA_LIMITER_MARGIN_US,
                      &c->limiter, err);
  if (st)
    goto fail;
  c->multi = curl_multi_init();
  if (!c->multi) {
    ca_buf_adds(err, "curl_multi_init failed (out of memory?)");
    st = CHATAPP_ENOMEM;
    goto fail;
  }
  c->multi_perform = curl_multi_perform;
  c->share = curl_share_init();
  if (!c->share ||
      curl_share_setopt(c->share, CURLSHOPT_SHARE,
                        CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
      curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) !=
        CURLSHE_OK) {
    ca_buf_adds(err, "curl_share_init failed (out of memory?)");
    st = CHATAPP_ENOMEM;
    goto fail;
  }
  /* The connection cache keeps as many idle connections as there can be
   * calls in flight.  libcurl's default is 4 per easy handle in the multi,
   * and each attempt has one only while it runs: when a batch of calls
   * (8 spaces at a time) winds down, the cache shrank with it and closed
   * connections the next batch opened again (a TLS handshake each). */
  mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                         (long)c->max_in_flight);
  if (mc == CURLM_OK)
    mc =
      curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)c->max_in_flight);
  if (mc != CURLM_OK) {
    ca_buf_printf(err,
                  "libcurl refused CURLMOPT_MAX_HOST_CONNECTIONS or "
                  "CURLMOPT_MAXCONNECTS: %s",
                  curl_multi_strerror(mc));
    st = mc == CURLM_OUT_OF_MEMORY ? CHATAPP_ENOMEM : CHATAPP_ECONFIG;
    goto fail;
  }
  *out = c;
  return CHATAPP_OK;
fail:
  ca_client_free(c);
  return st;
}

void ca_client_free(ca_client *c)
{
  if (!c)
    return;
  if (c->multi)
    (void)curl_multi_cleanup(c->multi); /* nothing left to do on failure */
  if (c->share)
    (void)curl_share_cleanup(c->share); /* no easy handle uses it now */
  ca_limiter_free(c->limiter);
  ca_cred_provider_free(c->prov);
  free(c->endpoint);
  free(c->host);
  free(c->ak_id);
  free_secret(c->secret);
  free_secret(c->token);
  ca_secrets_free(&c->secrets);
  free(c->account_key);
  free(c->user_agent);
  free(c->ca_file);
  free(c);
}

const char *ca_client_account(const ca_client *c)
{
  return c->account_key;
}

const char *ca_client_endpoint(const ca_client *c)
{
  return c->endpoint ? c->endpoint : "(HTTP only)";
}

int ca_client_signature_version(const ca_client *c)
{
  return c->sigver;
}

void ca_client_set_progress(ca_client *c, ca_progress_fn fn, void *ud)
{
  c->progress = fn;
  c->progress_ud = ud;
}

void ca_client_stats_get(const ca_client *c, ca_client_stats *out)
{
  ca_limiter_stats ls;

  *out = c->stats;
  ca_limiter_stats_get(c->limiter, ca_now_us(), &ls);
  out->limiter_round_trips = ls.round_trips;
  out->limiter_outages = ls.outages;
  out->limiter_down_ms = ls.down_us > 0 ? (uint64_t)ls.down_us / 1000 : 0;
}

const char *ca_client_limiter_where(const ca_client *c)
{
  return ca_limiter_where(c->limiter);
}

/* ---- redaction ---------------------------------------------------------- */

void ca_client_redact(const ca_client *c, ca_buf *b)
{
  ca_secrets_redact_buf(&c->secrets, b);
}

const ca_secrets *ca_client_secrets(const ca_client *c)
{
  return &c->secrets;
}

/* ---- credentials -------------------------------------------------------- */

chatapp_status ca_client_sync_credentials(ca_client *c, char *err,
                                          size_t errlen)
{
  ca_cred_copy cur;
  chatapp_status st;

  if (!c->prov)
    return CHATAPP_OK;
  cur.gen = c->cred_gen;
  cur.id = c->ak_id;
  cur.secret = c->secret;
  cur.token = c->token;
  cur.secrets_seen = c->cred_secrets_seen;
  st = ca_cred_provider_sync(c->prov, &cur, &c->secrets, err, errlen);
  c->ak_id = cur.id;
  c->secret = cur.secret;
  c->token = cur.token;
  c->cred_gen = cur.gen;
  c->cred_secrets_seen = cur.secrets_seen;
  return st;
}

chatapp_status ca_client_describe_credentials(ca_client *c, ca_buf *out)
{
  char masked[CA_CRED_MASK_LEN];

  if (c->prov)
    return ca_cred_provider_describe(c->prov, out);
  ca_cred_mask_id(c->ak_id, masked);
  return ca_buf_printf(out, "AccessKey %s", masked);
}
