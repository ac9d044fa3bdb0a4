/*
 * Internals shared by ca_client.c (creating the client, its accessors),
 * ca_perform.c (the loop, finishing attempts, retries) and ca_attempt.c
 * (building and sending one signed attempt).
 */
#ifndef CA_CLIENT_INT_H
#define CA_CLIENT_INT_H

#include "ca_client.h"

#include <curl/curl.h>

/*
 * The oldest libcurl the rules of an attempt hold with: the loopback and
 * metadata-address check (CURLOPT_PREREQFUNCTION, 7.80), the protocol
 * list (CURLOPT_PROTOCOLS_STR, 7.85) and no SIGPIPE from TLS writes
 * (7.87).  Checked when building (CMakeLists.txt, and below), and when a
 * client is created, against the libcurl actually loaded.
 */
#define CA_CURL_MIN_VERSION     0x075700
#define CA_CURL_MIN_VERSION_STR "7.87.0"

#if LIBCURL_VERSION_NUM < CA_CURL_MIN_VERSION
#error "chatapp-run needs libcurl 7.87.0 or newer"
#endif

enum { ST_WAITING, ST_IN_FLIGHT, ST_DONE };

/* The retry budget (ca_client.c starts it, ca_perform.c spends it). */
#define BUDGET_START    10.0 /* retries allowed before any success */
#define BUDGET_PER_CALL 0.1  /* retries earned per first attempt */
#define BUDGET_MAX      100.0

/* An answer slower than this many bytes a second for low_speed_time_s is
 * aborted (CURLOPT_LOW_SPEED_LIMIT). */
#define CA_LOW_SPEED_BYTES 100

struct ca_client {
  char *endpoint; /* without a trailing '/' */
  char *host;     /* host[:port] exactly as in the URL (signed as host) */
  int plain_http; /* http:// (loopback only) */
  int http_only;  /* no credentials: CA_CALL_HTTP only */
  char *ak_id, *secret, *token;
  ca_secrets secrets;            /* secret and token, for redaction */
  struct ca_cred_provider *prov; /* credentials that change, or NULL */
  uint64_t cred_gen;             /* the provider's generation in ak_id.. */
  size_t cred_secrets_seen;      /* its secrets merged into `secrets` */
  char *account_key;
  char *user_agent;
  char *ca_file; /* CURLOPT_CAINFO, or NULL: the system store */
  int sigver;
  double qps;
  long connect_ms, attempt_ms, low_speed_s, call_ms, max_retry_after_ms;
  size_t max_body;
  int max_attempts, max_in_flight;
  ca_log_fn log;
  void *log_ud;
  int verbose;
  ca_limiter *limiter;
  int limiter_down; /* the shared limiter's server did not answer (logged) */
  CURLM *multi;
  /* TLS sessions (and DNS answers) shared by every attempt: each attempt
   * has an easy handle of its own, and a new connection resumes the
   * session of an earlier one instead of a full handshake.  Only easy
   * handles in the multi use it (ca_attempt_start). */
  CURLSH *share;
  /* curl_multi_perform; a test puts a failing one here to see how an
   * engine failure ends the calls */
  CURLMcode (*multi_perform)(CURLM *multi, int *running);
  double budget;
  ca_progress_fn progress;
  void *progress_ud;
  ca_client_stats stats;
};

/* Set up call->easy for its next attempt, signed with a fresh date and
 * nonce, and add it to the multi handle. */
chatapp_status ca_attempt_start(ca_client *c, ca_call *call);

/* CHATAPP_OK when the libcurl of version_num (curl_version_info's
 * version_num, e.g. 0x075801 for 7.88.1) is new enough; otherwise
 * CHATAPP_ECONFIG with the reason in err. */
chatapp_status ca_curl_check_version(unsigned version_num, const char *version,
                                     ca_buf *err);

/* How the connected address ip bears on a request (the rules of
 * on_prereq): 0 allowed, 1 a link-local or metadata address, 2 plain http
 * to an address that is not loopback.  allow_metadata (the credential
 * provider's metadata calls only) lets 100.100.100.200 through, plain
 * http included; nothing else. */
int ca_attempt_address_check(int allow_metadata, int plain, const char *ip);

/* The proxy libcurl takes from the environment for http (https 0) or
 * https URLs, and in *var the variable it came from; NULL if none (no_proxy
 * not applied).  It may hold credentials: print only its host. */
const char *ca_client_env_proxy(int https, const char **var);

/* When a proxy from the environment is what failed for url: certain (the
 * proxy could not be resolved or answered wrong), or msg, libcurl's
 * message, says the connection to the proxy's host and port failed: "; that
 * is the proxy from VAR (URL, credentials redacted): ..." into out (n
 * bytes); else "". */
void ca_client_proxy_note(const char *url, int certain, const char *msg,
                          char *out, size_t n);

/* Log a line at level, secrets redacted. */
void ca_client_log(ca_client *c, int level, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

#endif
