/*
 * ca_client: CAMS calls as the product makes them.
 *
 *   params -> sign (fresh date and nonce every attempt) -> limiter slot
 *          -> libcurl multi transfer -> classify -> retry or finish
 *
 * Many calls run at once on one curl multi handle, so one process reaches
 * the quota even when every call takes 300 ms.  Starts are gated by the
 * shared limiter (ca_limiter.h); the number in flight is capped apart.
 * Design notes: docs/internals/client.md.
 *
 * A client is used from one thread at a time.
 */
#ifndef CA_CLIENT_H
#define CA_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "ca_api.h"
#include "ca_buf.h"
#include "ca_limiter.h"
#include "ca_secrets.h"
#include "ca_sign.h"

struct curl_slist;

typedef void (*ca_log_fn)(void *ud, int level, const char *line);

#define CA_LOG_ERROR 0
#define CA_LOG_INFO  1
#define CA_LOG_DEBUG 2
#define CA_LOG_TRACE 3 /* canonical requests and strings to sign */

typedef struct ca_client_config {
  const char *endpoint; /* "https://host[:port]"; http only to loopback */
  const char *access_key_id;
  const char *access_key_secret;
  const char *security_token; /* NULL unless STS */
  int signature_version;      /* 3 (default) or 2 (legacy HMAC-SHA1) */
  const char *account_key;    /* limiter key; default: the AccessKey id */
  const char *limiter_path;   /* shared state file, or a redis:// URL
                                 (ca_limiter_new); NULL: this process */
  double qps;                 /* > 0: override every operation's limit */
  int64_t window_margin_us;   /* default CA_LIMITER_MARGIN_US */
  long connect_timeout_ms;    /* default 5000 */
  long attempt_timeout_ms;    /* whole attempt; default 15000 */
  long low_speed_time_s;      /* abort below 100 B/s for this long; 10 */
  long call_timeout_ms;       /* one call, from its first attempt to its
                                 last; default 60000 */
  long max_retry_after_ms;    /* cap on server-requested waits; 20000 */
  size_t max_response_bytes;  /* default 64 MiB */
  int max_attempts;           /* per call; default 3 */
  int max_in_flight;          /* default 16 */
  const char *user_agent;
  const char *ca_file; /* PEM CA bundle instead of the system store; NULL:
                          the system's.  Verification is always on. */
  int http_only;       /* no credentials: plain HTTP calls (webhooks) only */
  /* Credentials that may change (ca_cred_provider.h), used instead of the
   * three above; the client takes it (and frees it), even on failure. */
  struct ca_cred_provider *provider;
  ca_log_fn log;
  void *log_ud;
  int verbose; /* highest level passed to log */
} ca_client_config;

typedef struct ca_client ca_client;

typedef enum ca_call_kind { CA_CALL_API, CA_CALL_HTTP } ca_call_kind;

/*
 * One logical call.  Inputs are copied at creation; outputs are filled by
 * ca_client_perform().  Free with ca_call_free().
 */
typedef struct ca_call {
  /* in */
  ca_call_kind kind;
  char *operation; /* CA_CALL_API */
  ca_kv *params;   /* flattened; owned */
  size_t nparams;
  int is_write;
  char *method; /* CA_CALL_HTTP */
  char *url;
  ca_kv *headers; /* extra headers; owned */
  size_t nheaders;
  ca_buf req_body;
  long timeout_ms;    /* per attempt; 0: the client's */
  int max_attempts;   /* 0: the client's */
  int allow_metadata; /* the credential provider's metadata calls only:
                         the metadata address, plain http to it */

  /* out */
  chatapp_status status; /* CHATAPP_OK when the call succeeded */
  long http_status;      /* last answer's, 0 if none */
  ca_envelope env;       /* CA_CALL_API: last answer's envelope */
  ca_buf body;           /* last answer's body */
  int attempts;
  int throttled; /* throttle answers seen */
  int retryable; /* a later call may succeed */
  char
    error[512]; /* what failed, without the operation (see ca_call_describe) */

  /* engine state */
  int state;
  int64_t not_before_us;
  int64_t deadline_us;
  int64_t limiter_down_us; /* when this call found the shared limiter
                              unreachable, in the current outage; 0: not */
  int64_t retry_after_us;
  void *easy;
  struct curl_slist *slist;
  ca_buf url_buf;
  char curl_err[256];
  size_t header_bytes;
  int too_big;
} ca_call;

/* A new API call (params copied).  NULL on out of memory. */
ca_call *ca_call_new_api(const char *operation, const ca_kv *params, size_t n);
/* A new plain HTTP request (webhooks); body may be NULL. */
ca_call *ca_call_new_http(const char *method, const char *url,
                          const ca_kv *headers, size_t nheaders,
                          const void *body, size_t body_len);
void ca_call_free(ca_call *call);

/* Create a client; on failure returns CHATAPP_EINVAL / ECONFIG / EIO with
 * the reason in err (ECONFIG too when the libcurl loaded is older than
 * 7.87.0).  The secret and token are copied and wiped on free. */
chatapp_status ca_client_new(const ca_client_config *cfg, ca_client **out,
                             ca_buf *err);
void ca_client_free(ca_client *c);

/*
 * Run the calls to completion, many at once.  Each call's own status says
 * how it ended.  Returns CHATAPP_OK unless libcurl's multi engine failed
 * (CHATAPP_ENOMEM or CHATAPP_ETRANSPORT); then every call that had not
 * ended is ended with that failure in its status and error (a write in
 * flight: CHATAPP_EUNKNOWN).
 */
chatapp_status ca_client_perform(ca_client *c, ca_call **calls, size_t n);

/* Called while ca_client_perform runs: after calls end and at least every
 * 200 ms (for a progress line). */
typedef void (*ca_progress_fn)(void *ud, size_t done, size_t total);
void ca_client_set_progress(ca_client *c, ca_progress_fn fn, void *ud);

/* Counters since the client was created. */
typedef struct ca_client_stats {
  uint64_t calls, attempts, retries, throttled, failed;
  uint64_t limiter_waits; /* starts delayed by the limiter */
  double min_factor;      /* lowest adaptive factor seen */
  /* A limiter shared through Redis (all 0 otherwise): */
  uint64_t limiter_round_trips; /* commands sent to Redis */
  uint64_t limiter_outages;     /* times Redis stopped answering */
  uint64_t limiter_down_ms;     /* time it did not answer */
  uint64_t limiter_failed; /* calls that failed waiting for it (deadline) */
} ca_client_stats;

void ca_client_stats_get(const ca_client *c, ca_client_stats *out);
const char *ca_client_endpoint(const ca_client *c);
/* The Redis server of a shared limiter ("redis://host:port/db", never a
 * password), or NULL when the limiter is this host's. */
const char *ca_client_limiter_where(const ca_client *c);
/* The account the client's calls count against: the "account" key, else
 * the AccessKey id (the limiter's and the state store's key). */
const char *ca_client_account(const ca_client *c);
/* Signature version in use: 3 or 2. */
int ca_client_signature_version(const ca_client *c);

/*
 * The one "plain http only to this machine" rule (docs/internals/client.md):
 * 1 when the len bytes of host (a URL host, with or without [brackets], or
 * a connected address) can only mean this machine: "localhost" (any case),
 * an IPv4 address in 127.0.0.0/8 written as four decimal parts, ::1, or
 * ::ffff:127.x.y.z (IPv4-mapped), the IPv6 forms with or without brackets.
 * 0 for everything else: 0.0.0.0, shorthands such as 127.1 (what they mean
 * depends on the resolver), [127.0.0.1], zone ids, "localhost." and names
 * such as localhost.example.com.  Used for endpoints (ca_client.c), the
 * connected address (ca_attempt.c) and webhooks (core.loopback_host).
 */
int ca_loopback_host(const char *host, size_t len);

/* The version of the libcurl loaded at run time, e.g. "8.5.0". */
const char *ca_curl_version(void);

/* Replace every occurrence of the client's secrets (plain or percent-
 * encoded once or twice; at least 4 characters long) in b by
 * "<redacted>" (ca_secrets_redact_buf). */
void ca_client_redact(const ca_client *c, ca_buf *b);
/* The client's secret and token, as known secrets (for ca_secrets_merge):
 * with a provider, every secret and token it has handled so far (the set
 * grows as credentials are refreshed). */
const ca_secrets *ca_client_secrets(const ca_client *c);
/* Where the credentials come from and when they expire, never a secret
 * ("environment (...), AccessKey LTAI****" or "...: RAM role ARN by STS
 * AssumeRole at URL, AccessKey STS.****, expires 2026-...Z"). */
chatapp_status ca_client_describe_credentials(ca_client *c, ca_buf *out);
/* Bring the credentials up to date (a refresh when due): what every API
 * attempt does before it is signed.  CHATAPP_ECREDENTIALS (expired, not
 * refreshed) with the reason in err. */
chatapp_status ca_client_sync_credentials(ca_client *c, char *err,
                                          size_t errlen);

#endif
