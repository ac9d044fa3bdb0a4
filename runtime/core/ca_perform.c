/*
 * ca_client_perform: runs a set of calls on the client's multi handle
 * until every call has ended: the limiter's slots, starting attempts
 * (ca_attempt.c), finishing them (what an answer or a transport failure
 * means), the backoff and the retry budget, and the engine's failures.
 * Creating the client and its accessors are ca_client.c.
 */
#include "ca_client_int.h"
#include "ca_config.h" /* ca_interrupted */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "ca_cred_provider.h"
#include "ca_crypto.h"

#define BASE_THROTTLE_US 1000000 /* backoff base after a throttle answer */
#define BASE_OTHER_US    100000  /* ... after other transient failures */
#define BACKOFF_CAP_US   20000000

/* ---- finishing an attempt ----------------------------------------------- */

/* How a transport failure bears on retrying. */
typedef enum { NET_FINAL, NET_NOT_SENT, NET_MAYBE_SENT } net_class;

/*
 * CURLE_SSL_CONNECT_ERROR is a TLS handshake that did not finish (the
 * server reset or closed the connection mid-handshake, an alert, a
 * protocol error): the request is only written once the handshake is
 * done (no early data: libcurl sends none unless asked), so no byte of it
 * left, and a write is retried like a refused connection.  A failure
 * after the handshake is a send or receive error (CURLE_SEND_ERROR,
 * CURLE_RECV_ERROR), which may have been sent.  A refused certificate is
 * CURLE_PEER_FAILED_VERIFICATION: final, never retried (verify_failed).
 */
static net_class classify_curl(CURLcode rc)
{
  switch (rc) {
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_CONNECT:
  case CURLE_SSL_CONNECT_ERROR:
    return NET_NOT_SENT;
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return NET_MAYBE_SENT;
  default:
    return NET_FINAL;
  }
}

/* host[:port] of a URL, without user information, into buf. */
static void url_host(const char *url, char *buf, size_t size)
{
  const char *h = strstr(url, "://"), *end, *at;
  size_t n;

  h = h ? h + 3 : url;
  end = h + strcspn(h, "/?#");
  at = memchr(h, '@', (size_t)(end - h));
  if (at)
    h = at + 1;
  n = (size_t)(end - h);
  if (n >= size)
    n = size - 1;
  memcpy(buf, h, n);
  buf[n] = '\0';
}

/* A refused certificate (CURLE_PEER_FAILED_VERIFICATION): which host,
 * which check failed, what to do.  Final: the handshake did not end, so
 * no request was sent, and another attempt would meet the same
 * certificate. */
static void verify_failed(const ca_client *c, ca_call *call)
{
  char host[300] = "?";
  char *url = NULL;
  long vr = 0, pvr = 0;
  const char *what, *todo;
  const char *why = call->curl_err[0] ? call->curl_err : "";
  char lwhy[CURL_ERROR_SIZE];
  size_t i;

  if (curl_easy_getinfo(call->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
      url)
    url_host(url, host, sizeof host);
  if (curl_easy_getinfo(call->easy, CURLINFO_SSL_VERIFYRESULT, &vr) != CURLE_OK)
    vr = 0;
  /* An HTTPS proxy's certificate refused: name the proxy, not the URL. */
  if (curl_easy_getinfo(call->easy, CURLINFO_PROXY_SSL_VERIFYRESULT, &pvr) ==
        CURLE_OK &&
      pvr != 0) {
    const char *var,
      *px = ca_client_env_proxy(url && strncmp(url, "https://", 8) == 0, &var);
    char ph[256] = "?";
    if (px)
      url_host(px, ph, sizeof ph);
    snprintf(host, sizeof host, "the HTTPS proxy %s (%s)", ph,
             var ? var : "the proxy");
    vr = pvr;
  }
  for (i = 0; why[i] && i + 1 < sizeof lwhy; i++)
    lwhy[i] = (char)((why[i] >= 'A' && why[i] <= 'Z') ? why[i] + 32 : why[i]);
  lwhy[i] = '\0';
  /* vr is OpenSSL's X509_V_ERR_*: 10 expired, 9 not yet valid, 62 host
   * name mismatch, 2/18/19/20/21 an issuer that is not trusted. */
  if (vr == 10 || strstr(lwhy, "expired")) {
    what = "the server's certificate has expired";
    todo = "check this machine's clock (date -u); if it is right, the "
           "server must renew its certificate";
  } else if (vr == 9 || strstr(lwhy, "not yet valid")) {
    what = "the server's certificate is not valid yet";
    todo = "check this machine's clock (date -u)";
  } else if (vr == 62 || strstr(lwhy, "subject name") ||
             strstr(lwhy, "host name") || strstr(lwhy, "hostname")) {
    what = "the certificate does not name this host (host name mismatch)";
    todo = "check the endpoint's host name (--endpoint, --sts-endpoint, the "
           "webhook URL): use the name the certificate was issued for";
  } else if (vr == 2 || vr == 18 || vr == 19 || vr == 20 || vr == 21 ||
             strstr(lwhy, "issuer") || strstr(lwhy, "self-signed") ||
             strstr(lwhy, "self signed")) {
    what = "the certificate was issued by a certificate authority that is "
           "not trusted (unknown CA)";
    todo = c->ca_file ? "check that --ca-file (ca_file) holds the CA that "
                        "issued this server's certificate, and that the "
                        "endpoint is the right one"
                      : "if the server uses a private CA, give its "
                        "certificate with --ca-file FILE (ca_file); else "
                        "check the endpoint (a proxy or a wrong host?)";
  } else {
    what = "the server's certificate was refused";
    todo = "check the endpoint, the clock, and --ca-file (ca_file)";
  }
  snprintf(call->error, sizeof call->error,
           "TLS verification of %s failed, no request was sent: %s (%s); %s",
           host, what, why[0] ? why : "certificate verification failed", todo);
}

static int64_t backoff_us(int attempt, int throttled)
{
  int64_t base = throttled ? BASE_THROTTLE_US : BASE_OTHER_US;
  int64_t d = base;
  uint32_t r = 0;
  int i;

  for (i = 1; i < attempt && d < BACKOFF_CAP_US; i++)
    d *= 2;
  if (d > BACKOFF_CAP_US)
    d = BACKOFF_CAP_US;
  ca_random(&r, sizeof r);
  /* d plus up to d of jitter: never less than the base. */
  return d + (int64_t)((double)d * ((double)r / 4294967296.0));
}

/* The limiter key of an API call: account and operation. */
static const char *limiter_key(const ca_client *c, const ca_call *call,
                               char *buf, size_t size)
{
  snprintf(buf, size, "%s/%s", c->account_key, call->operation);
  return buf;
}

/* The signed URL and header lines of the attempt that ended: the next
 * attempt builds its own, so a batch of thousands of calls does not keep
 * one of each per call until the last one ends (docs/internals/client.md,
 * "Memory per space"). */
static void release_request(ca_call *call)
{
  curl_slist_free_all(call->slist);
  call->slist = NULL;
  ca_buf_free(&call->url_buf);
}

static void finish(ca_client *c, ca_call *call, chatapp_status st)
{
  call->status = st;
  call->state = ST_DONE;
  c->stats.calls++;
  if (st)
    c->stats.failed++;
}

/* Decide what a completed attempt means: done, or retry when.  Returns
 * what curl_multi_remove_handle said (the engine's health). */
static CURLMcode complete_attempt(ca_client *c, ca_call *call, CURLcode rc,
                                  int64_t now)
{
  const char *subject = call->operation ? call->operation : call->url;
  int retry = 0, throttled = 0;
  chatapp_status st = CHATAPP_OK;
  char perr[160];
  CURLcode irc;
  CURLMcode mc;

  irc =
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &call->http_status);
  if (irc != CURLE_OK)
    call->http_status = 0;
  if (rc == CURLE_OK && irc != CURLE_OK) {
    /* The answer came but cannot be judged: a write may have happened. */
    snprintf(call->error, sizeof call->error,
             "libcurl could not report the HTTP status: %s",
             curl_easy_strerror(irc));
    st = call->is_write ? CHATAPP_EUNKNOWN : CHATAPP_ETRANSPORT;
    ca_buf_reset(&call->body);
  } else if (rc != CURLE_OK) {
    net_class nc = classify_curl(rc);
    const char *what =
      call->curl_err[0] ? call->curl_err : curl_easy_strerror(rc);
    if (call->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
      snprintf(call->error, sizeof call->error,
               "the answer is larger than the %zu-byte cap", c->max_body);
      st = CHATAPP_ETOOBIG;
    } else if ((rc == CURLE_ABORTED_BY_CALLBACK ||
                rc == CURLE_COULDNT_CONNECT) &&
               call->error[0]) {
      /* the loopback rule, or an address refused before its socket was
       * opened (ca_attempt.c): final, the message is already set */
      st = CHATAPP_ECONFIG;
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION) {
      verify_failed(c, call);
      st = CHATAPP_ETRANSPORT; /* final: not retried (nothing was sent) */
    } else if (rc == CURLE_SSL_CACERT_BADFILE) {
      snprintf(call->error, sizeof call->error,
               "the CA file %s could not be loaded (%s); give a PEM file of "
               "CA certificates with --ca-file (ca_file)",
               c->ca_file ? c->ca_file : "(the system's)", what);
      st = CHATAPP_ECONFIG;
    } else if (rc == CURLE_SSL_CONNECT_ERROR) {
      char host[300] = "?";
      char *url = NULL;
      if (curl_easy_getinfo(call->easy, CURLINFO_EFFECTIVE_URL, &url) ==
            CURLE_OK &&
          url)
        url_host(url, host, sizeof host);
      snprintf(call->error, sizeof call->error,
               "the TLS handshake with %s failed, no request was sent: %s",
               host, what);
      st = CHATAPP_ETRANSPORT;
      retry = 1;
    } else {
      if (rc == CURLE_OPERATION_TIMEDOUT && now + 1000 >= call->deadline_us) {
        snprintf(call->error, sizeof call->error,
                 "%s: the call's %ld ms deadline passed (--call-timeout-ms, "
                 "call_timeout_ms)",
                 what, c->call_ms);
      } else {
        char note[256]; /* a proxy in the way: say so (ca_client.c) */
        ca_client_proxy_note(
          call->kind == CA_CALL_API ? c->endpoint : call->url,
          rc == CURLE_COULDNT_RESOLVE_PROXY, what, note, sizeof note);
        snprintf(call->error, sizeof call->error, "%s%s", what, note);
      }
      st =
        rc == CURLE_OPERATION_TIMEDOUT ? CHATAPP_ETIMEDOUT : CHATAPP_ETRANSPORT;
      retry = nc == NET_NOT_SENT || (nc == NET_MAYBE_SENT && !call->is_write);
      if (nc == NET_MAYBE_SENT && call->is_write)
        st = CHATAPP_EUNKNOWN;
    }
    ca_buf_reset(&call->body);
  } else if (call->kind == CA_CALL_HTTP) {
    long s = call->http_status;
    if (s >= 200 && s < 300) {
      st = CHATAPP_OK;
    } else {
      snprintf(call->error, sizeof call->error, "HTTP %ld", s);
      st = CHATAPP_ETRANSPORT;
      retry = s >= 500 || s == 429;
      throttled = s == 429;
    }
  } else if (call->http_status >= 300 && call->http_status < 400) {
    char *loc = NULL;
    if (curl_easy_getinfo(call->easy, CURLINFO_REDIRECT_URL, &loc) != CURLE_OK)
      loc = NULL;
    snprintf(call->error, sizeof call->error,
             "HTTP %ld redirect to %s refused: signed calls never follow "
             "redirects; check the endpoint",
             call->http_status, loc ? loc : "(no Location)");
    st = CHATAPP_ETRANSPORT;
  } else if (ca_envelope_parse(ca_buf_str(&call->body), call->body.len,
                               &call->env, perr, sizeof perr)) {
    snprintf(call->error, sizeof call->error,
             "HTTP %ld with a malformed body (%s)", call->http_status, perr);
    st = call->is_write ? CHATAPP_EUNKNOWN : CHATAPP_EPARSE;
    retry = !call->is_write;
  } else {
    ca_answer_class cls = ca_classify_answer(call->http_status, call->env.code);
    switch (cls) {
    case CA_ANSWER_OK:
      st = CHATAPP_OK;
      break;
    case CA_ANSWER_THROTTLED:
      throttled = 1;
      retry = 1;
      st = CHATAPP_EAPI;
      break;
    case CA_ANSWER_NONCE:
      retry = 1;
      st = CHATAPP_EAPI;
      break;
    case CA_ANSWER_TRANSIENT:
      retry = !call->is_write;
      st = call->is_write ? CHATAPP_EUNKNOWN : CHATAPP_EAPI;
      break;
    case CA_ANSWER_FINAL:
      st = CHATAPP_EAPI;
      /* Temporary credentials the server says expired (revoked early, or
       * clocks apart): not executed; refresh them and re-sign. */
      if (c->prov && call->env.code &&
          strcmp(call->env.code, "InvalidSecurityToken.Expired") == 0) {
        ca_cred_provider_expired(c->prov, c->cred_gen);
        retry = 1;
      }
      break;
    }
    if (st)
      snprintf(call->error, sizeof call->error, "%s: %s",
               call->env.code ? call->env.code : "(no Code)",
               call->env.message ? call->env.message : "(no Message)");
  }
  mc = curl_multi_remove_handle(c->multi, call->easy);
  curl_easy_cleanup(call->easy);
  call->easy = NULL;
  release_request(call);

  if (throttled) {
    char key[256];
    call->throttled++;
    c->stats.throttled++;
    if (call->kind == CA_CALL_API)
      ca_limiter_throttled(c->limiter, limiter_key(c, call, key, sizeof key),
                           now);
  }
  call->retryable = retry;
  if (st == CHATAPP_OK) {
    finish(c, call, st);
    return mc;
  }
  /* The retry budget guards against hammering a failing server; a throttle
   * answer comes from a live one, and the limiter slows down for it. */
  if (retry &&
      call->attempts <
        (call->max_attempts ? call->max_attempts : c->max_attempts) &&
      (throttled || c->budget >= 1.0)) {
    int64_t wait = backoff_us(call->attempts, throttled);
    int64_t ra = call->retry_after_us;
    if (ra > (int64_t)c->max_retry_after_ms * 1000)
      ra = (int64_t)c->max_retry_after_ms * 1000;
    if (ra > wait)
      wait = ra;
    if (now + wait < call->deadline_us) {
      if (!throttled)
        c->budget -= 1.0;
      call->status = st; /* what ended this attempt, should none follow */
      call->not_before_us = now + wait;
      call->state = ST_WAITING;
      ca_client_log(c, CA_LOG_DEBUG,
                    "%s: attempt %d failed (%s); retrying in %lld ms", subject,
                    call->attempts, call->error, (long long)(wait / 1000));
      return mc;
    }
  }
  finish(c, call, st);
  return mc;
}

/* ---- the loop ----------------------------------------------------------- */

/* Say when a shared limiter (Redis) stops answering and when it is back:
 * the calls wait for it, and the user should know why. */
static void limiter_answered(ca_client *c, int got, int64_t now)
{
  ca_limiter_stats ls;

  if (got < 0 && !c->limiter_down) {
    c->limiter_down = 1;
    ca_client_log(c, CA_LOG_ERROR,
                  "the shared limiter does not answer (%s): API calls wait "
                  "for it, each up to its %ld ms deadline; none is sent "
                  "without it",
                  ca_limiter_error(c->limiter), c->call_ms);
  } else if (got >= 0 && c->limiter_down) {
    c->limiter_down = 0;
    ca_limiter_stats_get(c->limiter, now, &ls);
    ca_client_log(c, CA_LOG_ERROR,
                  "the shared limiter (Redis at %s) answers again; it did "
                  "not for %.1f s in all",
                  ca_limiter_where(c->limiter), (double)ls.down_us / 1e6);
  }
}

/*
 * The shared limiter did not answer for call: 1 when the call has waited
 * for it as long as its deadline allows (counted from when it first found
 * the limiter unreachable: time queued behind a working limiter does not
 * count), with the reason in call->error; 0 when it waits on.
 */
static int limiter_gave_up(ca_client *c, ca_call *call, int64_t now)
{
  int64_t waited;
  const char *why = ca_limiter_error(c->limiter);

  if (!call->limiter_down_us)
    call->limiter_down_us = now;
  waited = now - call->limiter_down_us;
  if (waited < (int64_t)c->call_ms * 1000 && now < call->deadline_us)
    return 0;
  snprintf(call->error, sizeof call->error,
           "not sent: the shared limiter did not answer for %.1f s, past "
           "the call's %ld ms deadline (%s); chatapp-run never calls without "
           "it: start the Redis server, or check --limiter",
           (double)waited / 1e6, c->call_ms, why ? why : "no answer");
  call->retryable = call->status != CHATAPP_EUNKNOWN;
  c->stats.limiter_failed++;
  return 1;
}

static int limit_for(ca_client *c, const char *operation)
{
  if (c->qps > 0)
    return (int)(c->qps < 1 ? 1 : c->qps);
  return ca_operation_qps(operation);
}

/* The call whose transfer is easy: CURLINFO_PRIVATE, or a search should
 * libcurl not answer. */
static ca_call *call_of(CURL *easy, ca_call **calls, size_t n)
{
  char *p = NULL;
  size_t i;

  if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) == CURLE_OK && p)
    return (ca_call *)(void *)p;
  for (i = 0; i < n; i++)
    if (calls[i]->easy == easy)
      return calls[i];
  return NULL;
}

/* Complete the finished transfers; *ended counts the calls that ended.
 * Returns CURLM_OK, or the first failure of the engine. */
static CURLMcode drain_messages(ca_client *c, ca_call **calls, size_t n,
                                int64_t now, int *in_flight, size_t *ended)
{
  CURLMcode first = CURLM_OK;
  CURLMsg *m;
  int left;

  while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
    CURLMcode mc;
    ca_call *call;
    if (m->msg != CURLMSG_DONE)
      continue;
    call = call_of(m->easy_handle, calls, n);
    if (!call) {
      if (first == CURLM_OK)
        first = CURLM_INTERNAL_ERROR;
      continue;
    }
    (*in_flight)--;
    mc = complete_attempt(c, call, m->data.result, now);
    if (mc != CURLM_OK && first == CURLM_OK)
      first = mc;
    *ended += call->state == ST_DONE;
  }
  return first;
}

/*
 * The multi handle failed (curl_multi_poll, _perform, _remove_handle):
 * no transfer can be trusted to finish.  End every call that has not
 * ended, with a message naming the failure; a write in flight may have
 * reached the server.  Returns the status perform reports.
 */
static chatapp_status engine_failed(ca_client *c, ca_call **calls, size_t n,
                                    const char *where, CURLMcode mc)
{
  chatapp_status st =
    mc == CURLM_OUT_OF_MEMORY ? CHATAPP_ENOMEM : CHATAPP_ETRANSPORT;
  size_t i;

  ca_client_log(c, CA_LOG_ERROR, "libcurl's transfer engine failed in %s: %s",
                where, curl_multi_strerror(mc));
  for (i = 0; i < n; i++) {
    ca_call *call = calls[i];
    chatapp_status cst = st;
    if (call->state == ST_DONE)
      continue;
    if (call->status == CHATAPP_EUNKNOWN)
      cst = CHATAPP_EUNKNOWN; /* an earlier attempt may have been applied */
    if (call->easy) {
      /* Nothing more can be done if this fails too: the handle goes. */
      (void)curl_multi_remove_handle(c->multi, call->easy);
      curl_easy_cleanup(call->easy);
      call->easy = NULL;
      release_request(call);
      if (call->state == ST_IN_FLIGHT && call->is_write)
        cst = CHATAPP_EUNKNOWN;
    }
    snprintf(call->error, sizeof call->error,
             "libcurl's transfer engine failed in %s: %s", where,
             curl_multi_strerror(mc));
    call->retryable = cst != CHATAPP_EUNKNOWN;
    finish(c, call, cst);
  }
  return st;
}

chatapp_status ca_client_perform(ca_client *c, ca_call **calls, size_t n)
{
  int64_t now = ca_now_us();
  size_t remaining = 0, i;
  int in_flight = 0;
  int64_t last_progress = 0;
  char key[256];
  /* Operations the limiter refused, until when: no slot frees before the
   * time it gave (starts only add up), so asking again sooner is waste: a
   * shared lock, or a round trip to Redis, per pass of the loop. */
  const char *denied[8];
  int denied_down[8]; /* ... because it could not answer */
  int64_t denied_until[8];
  size_t ndenied = 0;
  CURLMcode mc;

  for (i = 0; i < n; i++) {
    ca_call *call = calls[i];
    call->state = ST_WAITING;
    call->not_before_us = now;
    call->deadline_us = INT64_MAX; /* set when the first attempt starts */
    call->limiter_down_us = 0;
    call->attempts = 0;
    call->throttled = 0;
    call->status = CHATAPP_OK;
    call->error[0] = '\0';
    remaining++;
    c->budget += BUDGET_PER_CALL;
    if (c->budget > BUDGET_MAX)
      c->budget = BUDGET_MAX;
  }
  while (remaining > 0) {
    int64_t wake = now + 1000000;
    int running = 0;
    long timeout_ms;

    now = ca_now_us();
    {
      size_t d, keep = 0;
      for (d = 0; d < ndenied; d++)
        if (denied_until[d] > now) {
          denied[keep] = denied[d];
          denied_down[keep] = denied_down[d];
          denied_until[keep++] = denied_until[d];
          if (denied_until[d] < wake)
            wake = denied_until[d];
        }
      ndenied = keep;
    }
    for (i = 0; i < n; i++) {
      ca_call *call = calls[i];
      int64_t retry_at = 0;

      if (call->state != ST_WAITING)
        continue;
      /* Interrupted (SIGINT / SIGTERM): start nothing new, no retry. */
      if (ca_interrupted()) {
        if (!call->attempts || !call->error[0])
          snprintf(call->error, sizeof call->error,
                   "not sent: the run was interrupted");
        finish(c, call, call->status ? call->status : CHATAPP_EIO);
        remaining--;
        continue;
      }
      if (call->not_before_us > now) {
        if (call->not_before_us < wake)
          wake = call->not_before_us;
        continue;
      }
      /* The deadline counts from the first attempt: a call queued behind
       * the limiter (hundreds of spaces at 10/s) has not started yet. */
      if (now >= call->deadline_us) {
        if (!call->error[0])
          snprintf(call->error, sizeof call->error,
                   "no retry could start before the call's %ld ms deadline",
                   c->call_ms);
        finish(c, call, call->status ? call->status : CHATAPP_ETIMEDOUT);
        remaining--;
        continue;
      }
      if (in_flight >= c->max_in_flight)
        continue;
      if (call->kind == CA_CALL_API && c->http_only) {
        snprintf(call->error, sizeof call->error,
                 "this client has no credentials: it makes plain HTTP "
                 "requests only");
        finish(c, call, CHATAPP_ECREDENTIALS);
        remaining--;
        continue;
      }
      if (call->kind == CA_CALL_API) {
        double f = 1.0;
        size_t d;
        int got;
        /* An operation refused is refused for every call until the time
         * the limiter gave: do not ask again before. */
        for (d = 0; d < ndenied && strcmp(denied[d], call->operation); d++)
          ;
        if (d < ndenied) {
          got = denied_down[d] ? -1 : 0;
        } else {
          limiter_key(c, call, key, sizeof key);
          got = ca_limiter_acquire(
            c->limiter, key, limit_for(c, call->operation), now, &retry_at, &f);
          limiter_answered(c, got, now);
          if (got <= 0) {
            c->stats.limiter_waits += got == 0;
            if (retry_at < wake)
              wake = retry_at;
            if (ndenied < sizeof denied / sizeof denied[0]) {
              denied_down[ndenied] = got < 0;
              denied_until[ndenied] = retry_at;
              denied[ndenied++] = call->operation;
            }
          }
        }
        if (got < 0) {
          if (limiter_gave_up(c, call, now)) {
            /* (an earlier attempt of a write may have been applied) */
            finish(c, call,
                   call->status == CHATAPP_EUNKNOWN ? CHATAPP_EUNKNOWN
                                                    : CHATAPP_ETIMEDOUT);
            remaining--;
          }
          continue;
        }
        call->limiter_down_us = 0;
        if (got == 0)
          continue;
        if (f < c->stats.min_factor)
          c->stats.min_factor = f;
      }
      if (call->attempts == 0)
        call->deadline_us = now + (int64_t)c->call_ms * 1000;
      {
        chatapp_status ast = ca_attempt_start(c, call);
        if (ast != CHATAPP_OK) {
          /* expired credentials not refreshed yet: a later call may work */
          call->retryable = ast == CHATAPP_ECREDENTIALS;
          if (!call->error[0])
            snprintf(call->error, sizeof call->error,
                     "could not prepare the request: %s",
                     chatapp_strerror(ast));
          finish(c, call, ast);
          remaining--;
          continue;
        }
      }
      call->state = ST_IN_FLIGHT;
      in_flight++;
    }
    if (remaining == 0)
      break;
    timeout_ms = (long)((wake - now + 999) / 1000);
    if (timeout_ms < 0)
      timeout_ms = 0;
    if (timeout_ms > 1000)
      timeout_ms = 1000;
    if (in_flight == 0) {
      struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000};
      while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    } else {
      mc = curl_multi_poll(c->multi, NULL, 0, (int)timeout_ms, NULL);
      if (mc != CURLM_OK)
        return engine_failed(c, calls, n, "curl_multi_poll", mc);
    }
    mc = c->multi_perform(c->multi, &running);
    if (mc != CURLM_OK)
      return engine_failed(c, calls, n, "curl_multi_perform", mc);
    now = ca_now_us();
    {
      size_t ended = 0;
      mc = drain_messages(c, calls, n, now, &in_flight, &ended);
      remaining -= ended;
      if (mc != CURLM_OK)
        return engine_failed(c, calls, n, "curl_multi_remove_handle", mc);
      if (c->progress && (ended || now - last_progress >= 200000)) {
        c->progress(c->progress_ud, n - remaining, n);
        last_progress = now;
      }
    }
  }
  return CHATAPP_OK;
}
