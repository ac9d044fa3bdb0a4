/*
 * emu.h: internals of chatapp-emulator, a local stand-in for Alibaba Cloud's
 * Chat App Message Service (CAMS, API 2020-06-06, RPC style).
 *
 * One job per file:
 *   emu_main.c     command line, start-up, signals, shutdown
 *   emu_http.c     libmicrohttpd glue: collect a request, send an answer in
 *                  one of the fault shapes (drip, reset, truncated, ...)
 *   emu_api.c      the pipeline of one API call: verify, quota, faults, op,
 *                  and the JSON Lines request log
 *   emu_verify.c   V3 and legacy signature checks, timestamps, STS tokens
 *   emu_keys.c     the credential store (built-in throwaway keys or --keys)
 *   emu_nonce.c    the replay cache of signature nonces
 *   emu_quota.c    sliding 1 s logs per (account, operation), busiest window
 *   emu_faults.c   fault rules: parse, select, expire
 *   emu_data.c     fixture spaces and numbers, rendered as API JSON
 *   emu_ops.c      the CAMS operations
 *   emu_control.c  the unsigned /_emulator/ endpoints and the statistics
 *   emu_sink.c     a webhook receiver for testing policies' webhooks
 *   emu_sts.c      STS AssumeRole / AssumeRoleWithOIDC
 *   emu_sts_keys.c the issued temporary keys, the metadata tokens, the
 *                  credential endpoints' counters
 *   emu_cred.c     the pipeline of a credential endpoint's request, the
 *                  credentials URI, the ECS metadata service (on its own
 *                  loopback port)
 *   emu_util.c     key/value lists, URL decoding, JSON writing, clocks
 *
 * Threads: libmicrohttpd runs one thread per connection.  Everything that
 * is shared (data, nonces, quota logs, fault rules, statistics) is guarded
 * by emu.lock; the log has its own lock.  Nothing sleeps while holding a
 * lock.
 */
#ifndef CHATAPP_EMU_H
#define CHATAPP_EMU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ca_buf.h"
#include "ca_json.h"
#include "ca_sign.h"

#define EMU_VERSION      "0.1.0"
#define EMU_API_VERSION  "2020-06-06"
#define EMU_HOST_ID      "cams.ap-southeast-1.aliyuncs.com"
#define EMU_MAX_BODY     (1024 * 1024)      /* largest request body */
#define EMU_WINDOW_US    INT64_C(1000000)   /* the quota window: 1 s */
#define EMU_MAX_ANSWER   (64 * 1024 * 1024) /* largest answer we build */
#define EMU_CONTROL_PATH "/_emulator/"

/* ---- emu_util.c -------------------------------------------------------- */

/* An owned list of key/value strings (query or form parameters, headers). */
typedef struct emu_kvs {
  ca_kv *v; /* keys and values are malloc'd, NUL-terminated */
  size_t n, cap;
} emu_kvs;

chatapp_status emu_kvs_add(emu_kvs *l, const char *k, size_t kn, const char *v,
                           size_t vn);
void emu_kvs_free(emu_kvs *l);
/* First value of key (exact match), or NULL. */
const char *emu_kvs_get(const emu_kvs *l, const char *key);
/* First value of key compared without case (header names), or NULL. */
const char *emu_kvs_geti(const emu_kvs *l, const char *key);

/*
 * Parse "a=1&b=x%20y" into out, percent-decoding names and values ('+' is
 * a space, as in HTML forms).  Returns 0, or -1 for a malformed escape or
 * a %00 (out then holds what was parsed before it).
 */
int emu_parse_urlencoded(const char *s, size_t n, emu_kvs *out);

/* Append s[0..n) as a JSON string literal (quotes included); bytes that
 * are not valid UTF-8 become U+FFFD. */
chatapp_status emu_json_str(ca_buf *b, const char *s, size_t n);
chatapp_status emu_json_strz(ca_buf *b, const char *s); /* NULL: null */

/* Clocks: monotonic microseconds; wall-clock seconds and milliseconds. */
int64_t emu_mono_us(void);
int64_t emu_wall_ms(void);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" into out[32]. */
void emu_iso8601_ms(int64_t wall_ms, char out[32]);
/* Parse strict "YYYY-MM-DDTHH:MM:SSZ"; 0 and *epoch on success, else -1. */
int emu_parse_iso8601(const char *s, int64_t *epoch);

/* An Alibaba-style request id, e.g. "6BE56E05-1A2B-4C3D-8E9F-FD90C4FFD581". */
void emu_request_id(char out[37]);

/* Constant-time equality of two strings (length leaks, content does not). */
int emu_ct_equal(const char *a, const char *b);

/* Write data to path atomically (path.tmp.PID, then rename). 0 or -1. */
int emu_write_file_atomic(const char *path, const char *data, size_t len);

/* Read a whole file (at most max bytes) into a NUL-terminated malloc'd
 * buffer; NULL with errno set on failure (EFBIG when too large). */
char *emu_read_file(const char *path, size_t max, size_t *len);

/* ---- emu_keys.c -------------------------------------------------------- */

typedef struct emu_key {
  char *access_key_id;
  char *secret;
  char *token;     /* STS security token, or NULL for a permanent key */
  char *account;   /* the owning account's uid */
  int64_t expires; /* wall-clock seconds; 0 = never */
  int disabled;
} emu_key;

typedef struct emu_keys {
  emu_key *v;
  size_t n;
} emu_keys;

/* The built-in throwaway keys (docs/emulator.md lists them). */
chatapp_status emu_keys_builtin(emu_keys *ks);
/* Load a --keys file; on failure err says why (never a secret). */
chatapp_status emu_keys_load(emu_keys *ks, const char *path, char *err,
                             size_t errlen);
void emu_keys_free(emu_keys *ks);
const emu_key *emu_keys_find(const emu_keys *ks, const char *access_key_id);
/* The key whose token is token, or NULL. */
const emu_key *emu_keys_find_token(const emu_keys *ks, const char *token);
/* Free one key's strings (the secret and token wiped first) and zero it. */
void emu_key_clear(emu_key *k);
/* A deep copy of src into dst (zeroed on failure): CHATAPP_OK or ENOMEM. */
chatapp_status emu_key_copy(emu_key *dst, const emu_key *src);

/* ---- emu_nonce.c ------------------------------------------------------- */

/*
 * Two generations of a hash set of (access key, nonce) digests.  A nonce is
 * remembered for at least retain_us (the current generation is retired
 * after retain_us, and kept one more period as the previous generation),
 * or until max entries force an early rotation.
 */
typedef struct emu_nonce_set {
  unsigned char *slots; /* 16-byte digests; all zero = empty */
  size_t cap, used;
} emu_nonce_set;

typedef struct emu_nonces {
  emu_nonce_set cur, prev;
  int64_t cur_since_us;
  int64_t retain_us;
  size_t max; /* entries in one generation */
  uint64_t rotations_early;
} emu_nonces;

void emu_nonces_init(emu_nonces *ns, int64_t retain_us, size_t max);
void emu_nonces_free(emu_nonces *ns);
/* 1 if (akid, nonce) was seen (and is still remembered); else records it
 * and returns 0; -1 when out of memory. */
int emu_nonces_check_add(emu_nonces *ns, const char *akid, const char *nonce,
                         int64_t now_us);
size_t emu_nonces_count(const emu_nonces *ns);

/* ---- emu_verify.c ------------------------------------------------------ */

typedef enum emu_scheme {
  EMU_SCHEME_NONE,
  EMU_SCHEME_V3,
  EMU_SCHEME_RPC
} emu_scheme;

/* The outcome of checking a request's signature. */
typedef struct emu_auth {
  emu_scheme scheme;
  const char *code; /* NULL: verified; else the error Code */
  unsigned status;  /* HTTP status of the error */
  ca_buf message;
  char *access_key_id; /* as sent */
  const emu_key *key;  /* NULL when unknown; may point at issued */
  emu_key issued;      /* an owned copy of an issued temporary key */
  char *nonce, *action, *version;
  ca_buf signed_headers; /* names, ';'-separated (V3) */
  emu_kvs params;        /* query + form body, decoded, minus Signature */
} emu_auth;

void emu_auth_init(emu_auth *a);
void emu_auth_free(emu_auth *a);
struct emu;
struct emu_request;
/* Verify rq against e's keys, clock and nonce cache (takes emu.lock only
 * for the nonce).  a->code is NULL when every check passed. */
void emu_verify(struct emu *e, const struct emu_request *rq, emu_auth *a);
/* The same for an API of another version (STS: "2015-04-01"). */
void emu_verify_version(struct emu *e, const struct emu_request *rq,
                        emu_auth *a, const char *version);

/* ---- emu_quota.c ------------------------------------------------------- */

/* Arrival times (monotonic us) of accepted calls, sorted, pruned. */
typedef struct emu_tlog {
  int64_t *t;
  size_t n, cap;
} emu_tlog;

typedef struct emu_qentry {
  char *account; /* NULL for the all-accounts statistics log */
  char *op;
  emu_tlog log;
  uint64_t accepted, throttled;
  size_t busiest; /* max accepted calls in any 1 s window */
  struct emu_qentry *next;
} emu_qentry;

typedef struct emu_quota {
  unsigned default_limit;
  struct emu_qop {
    char *op;
    unsigned limit;
  } * ops;
  size_t nops;
  emu_qentry *entries; /* per (account, op) and per op (account NULL) */
} emu_quota;

void emu_quota_init(emu_quota *q, unsigned default_limit);
void emu_quota_free(emu_quota *q);
/* Per-operation limit (--quota-op); replaces an earlier one. */
chatapp_status emu_quota_set_op(emu_quota *q, const char *op, unsigned n);
/* The configured limit for op (before temporary lowering by faults). */
unsigned emu_quota_limit(const emu_quota *q, const char *op);
/*
 * Admit a call of op by account that arrived at t_us (monotonic) under
 * limit: 1 accepted (recorded), 0 throttled; -1 out of memory.  When
 * throttled and retry_ms is not NULL, *retry_ms is how long until a slot
 * frees.  Exact for out-of-order arrivals: no 1 s window ends up with more
 * than limit accepted calls.
 */
int emu_quota_admit(emu_quota *q, const char *account, const char *op,
                    int64_t t_us, int64_t now_us, unsigned limit,
                    int64_t *retry_ms);
/* Forget every log and counter (keeps the limits). */
void emu_quota_reset(emu_quota *q);

/* ---- emu_faults.c ------------------------------------------------------ */

typedef enum emu_fault_kind {
  EMU_FAULT_LATENCY,   /* delay the answer: ms +- jitter_ms */
  EMU_FAULT_ERROR,     /* answer code/status instead */
  EMU_FAULT_RESET,     /* send after_bytes of the body, then a TCP RST */
  EMU_FAULT_TRUNCATE,  /* Content-Length of the whole body, send less, close */
  EMU_FAULT_MALFORMED, /* 200 with a body that is not valid JSON */
  EMU_FAULT_DRIP,      /* the body one byte every interval_ms */
  EMU_FAULT_OVERSIZE,  /* Content-Length: bytes, body padded to it */
  EMU_FAULT_CHUNKED,   /* chunked body that never ends */
  EMU_FAULT_REDIRECT,  /* 302 (or status) to location */
  EMU_FAULT_HANG,      /* read the request, never answer */
  EMU_FAULT_QUOTA,     /* lower the quota to quota */
  EMU_FAULT_DROP,      /* reset a new connection at once (mid-handshake) */
  EMU_FAULT_GZIP,      /* Content-Encoding: gzip, a chunked gzip bomb */
  EMU_FAULT_NKINDS
} emu_fault_kind;

typedef struct emu_fault {
  unsigned id;
  emu_fault_kind kind;
  char *op;         /* scope: NULL = every operation */
  double p;         /* probability; 1 = always */
  unsigned every;   /* every Nth matching call; 0 = each */
  long long next;   /* fire for the next K matching calls; -1 = unlimited */
  int64_t until_us; /* expiry (monotonic); 0 = never */
  uint64_t matched, fired;
  /* kind-specific */
  long long ms, jitter_ms, interval_ms, after_bytes, bytes;
  unsigned status, quota;
  char *code, *message, *location, *body;
  char *retry_after, *x_acs_retry_after; /* header values, sent verbatim */
  struct emu_fault *nextf;
} emu_fault;

typedef struct emu_faults {
  emu_fault *head;
  unsigned next_id;
  uint64_t rng; /* xorshift state for p and jitter */
} emu_faults;

/* Parse one rule from JSON text ({...}) or "kind=error,code=X,p=0.5";
 * on failure err says why. */
chatapp_status emu_fault_parse(const char *spec, size_t len, int64_t now_us,
                               emu_fault **out, char *err, size_t errlen);
chatapp_status emu_fault_from_json(const ca_json *o, int64_t now_us,
                                   emu_fault **out, char *err, size_t errlen);
void emu_fault_free(emu_fault *f);
void emu_faults_add(emu_faults *fs, emu_fault *f); /* takes ownership */
void emu_faults_clear(emu_faults *fs);
int emu_faults_remove(emu_faults *fs, unsigned id); /* 1 if found */
const char *emu_fault_kind_name(emu_fault_kind k);
/* Append the rules as a JSON array. */
chatapp_status emu_faults_json(const emu_faults *fs, ca_buf *b, int64_t now_us);

/* Latency rules matching op (any call). */
int64_t emu_faults_latency(emu_faults *fs, const char *op, int64_t now_us);
/* The answer-replacing rule for an accepted call of op, or NULL. */
emu_fault *emu_faults_pick(emu_faults *fs, const char *op, int64_t now_us);
/* The drop rule (op "connection") that hits a new connection, or NULL. */
emu_fault *emu_faults_drop(emu_faults *fs, int64_t now_us);
/* --stall-port-file: a port on 127.0.0.1 whose connections never complete
 * (a full accept queue: Linux drops the SYNs).  fds[0] the listener,
 * fds[1] the connection that fills its queue; close both at exit.  0, or
 * -1 with the reason in err. */
int emu_stall_listen(int fds[2], unsigned *port, char *err, size_t errlen);
/* Bytes pos.. of a gzip bomb (the gzip fault's body): a gzip header, then
 * a deflate block of zeros that never ends, every 13 bytes inflating to
 * 2,064 zero bytes.  Fills buf with max bytes; returns max. */
size_t emu_gzip_bomb(uint64_t pos, char *buf, size_t max);
/* The lowest active quota rule for op into *limit: 1, or 0 when none. */
int emu_faults_quota(emu_faults *fs, const char *op, int64_t now_us,
                     unsigned *limit);
/* Drop expired and used-up rules. */
void emu_faults_expire(emu_faults *fs, int64_t now_us);

/* ---- emu_data.c -------------------------------------------------------- */

typedef struct emu_member {
  char *key; /* decoded member name */
  char *raw; /* the value's JSON text, passed through untouched */
} emu_member;

typedef struct emu_number {
  emu_member *m;
  size_t n;
  char *phone;  /* PhoneNumber, decoded */
  char *status; /* Status, decoded, or NULL */
} emu_number;

typedef struct emu_space {
  char *cust_space_id; /* "" for the caller's own space */
  char *isv_code;      /* NULL: no IsvCode needed */
  char *label;
  char *account; /* NULL: every account may use it */
  int is_default;
  emu_number *numbers;
  size_t nnumbers;
} emu_space;

typedef struct emu_data {
  emu_space *spaces;
  size_t nspaces;
  char *source; /* where it came from, for messages */
} emu_data;

/* Load a fixture file or a directory of *.json files (path NULL: the
 * embedded sample). */
chatapp_status emu_data_load(emu_data *d, const char *path, char *err,
                             size_t errlen);
void emu_data_free(emu_data *d);
/* A deep copy of src into dst (to restore the data on reset). */
chatapp_status emu_data_copy(emu_data *dst, const emu_data *src);
/* The embedded sample fixture (NUL-terminated). */
const char *emu_sample_json(size_t *len);

/* The space a call addresses: cust_space_id NULL or "" = the account's
 * default space.  NULL when there is none. */
emu_space *emu_data_space(emu_data *d, const char *cust_space_id,
                          const char *account);
emu_number *emu_space_number(emu_space *s, const char *phone);
/* The string value of a member, decoded, into out; NULL if absent or not a
 * string. */
const char *emu_number_str(const emu_number *num, const char *key, char *out,
                           size_t outlen);
/* Set member key to the JSON string value (added at the end if absent). */
chatapp_status emu_number_set_str(emu_number *num, const char *key,
                                  const char *value);
/* Append the number as a JSON object, members in fixture order. */
chatapp_status emu_number_json(const emu_number *num, ca_buf *b);

/* Changes made through the control endpoint (emu_control.c), on the live
 * data with emu.lock held unless said otherwise. */

/* d in the fixture format ({"spaces":[...]}); only one space when only is
 * not NULL. */
chatapp_status emu_data_json(const emu_data *d, const emu_space *only,
                             ca_buf *b);
/* The space whose cust_space_id is id, whoever may use it; NULL if none. */
emu_space *emu_data_space_id(emu_data *d, const char *id);
/* A number from an API-shaped object ("PhoneNumber" required); EPARSE with
 * the reason in err.  No lock needed. */
chatapp_status emu_number_from_json(const ca_json *o, emu_number *n, char *err,
                                    size_t errlen);
void emu_number_free(emu_number *n);
#define EMU_PATCH_MAX 1000 /* members in one PATCH */
/* Apply patch, an object (at most EMU_PATCH_MAX members): each member is set to
 * its value (added at the end when new), null removes it; "PhoneNumber" may not
 * change.  All or nothing; EPARSE (a bad patch) or ENOMEM, the reason in err.
 */
chatapp_status emu_number_patch(emu_number *num, const ca_json *patch,
                                char *err, size_t errlen);
/* Move v[0..n) to the end of s (v is left zeroed); ENOMEM leaves both as
 * they were.  The caller checks for duplicates. */
chatapp_status emu_space_add_numbers(emu_space *s, emu_number *v, size_t n);
/* Remove the number; 1 if it was there. */
int emu_space_remove_number(emu_space *s, const char *phone);
/* One space object in the fixture format ("phone_numbers" optional) into
 * one (a data set of that space); EPARSE or ENOMEM, the reason in err.  No
 * lock needed. */
chatapp_status emu_space_parse(const ca_json *o, emu_data *one, char *err,
                               size_t errlen);
/* Move one's space into d and free one; EINVAL (its cust_space_id exists,
 * or a second default space for an account) or ENOMEM leave one to the
 * caller, the reason in err. */
chatapp_status emu_data_take_space(emu_data *d, emu_data *one, char *err,
                                   size_t errlen);

/* ---- the request log (emu_api.c) ------------------------------------- */

typedef struct emu_log emu_log;
/* path "-" is standard output.  NULL on failure (errno set). */
emu_log *emu_log_open(const char *path);
void emu_log_close(emu_log *l);
/* Write one line (a complete JSON object, no newline) and flush. */
void emu_log_line(emu_log *l, const char *json, size_t len);

/* ---- the server and one API call ------------------------------------- */

/* ---- role credentials: emu_sts.c, emu_sts_keys.c, emu_cred.c ---------- */

#define EMU_STS_VERSION     "2015-04-01"
#define EMU_STS_HOST_ID     "sts.aliyuncs.com"
#define EMU_ROLE_ACCOUNT    "1000000000000001"
#define EMU_ROLE_ARN        "acs:ram::1000000000000001:role/chatapp-test"
#define EMU_OIDC_PROVIDER   "acs:ram::1000000000000001:oidc-provider/ack-test"
#define EMU_OIDC_TOKEN      "emulator-oidc-token-not-real"
#define EMU_ECS_ROLE        "chatapp-ecs-role"
#define EMU_ISSUED_MAX      4096 /* temporary keys kept at once */
#define EMU_IMDS_TOKENS_MAX 4096 /* metadata tokens kept at once */
#define EMU_EXPIRED_KEEP_S  900  /* an expired key is known this long */
#define EMU_STS_MAX_LIFE    43200

/* The credential endpoints, each counted on its own. */
typedef enum emu_cred_ep {
  EMU_EP_ASSUME_ROLE, /* STS AssumeRole */
  EMU_EP_OIDC,        /* STS AssumeRoleWithOIDC */
  EMU_EP_IMDS_TOKEN,  /* PUT /latest/api/token */
  EMU_EP_IMDS_ROLE,   /* GET .../security-credentials/ */
  EMU_EP_IMDS_CREDS,  /* GET .../security-credentials/ROLE */
  EMU_EP_CRED_URI,    /* GET /_emulator/credentials */
  EMU_EP_N
} emu_cred_ep;

typedef struct emu_ep_stats {
  uint64_t requests, ok, rejected, faulted;
  unsigned in_flight, in_flight_max; /* from arrival until answered */
} emu_ep_stats;

typedef struct emu_imds_token {
  char tok[64];
  int64_t expires_ms; /* wall clock */
} emu_imds_token;

typedef struct emu_sts {
  emu_key *issued; /* EMU_ISSUED_MAX slots, nissued used */
  size_t nissued;
  uint64_t issued_total, evicted;
  emu_imds_token *tokens; /* EMU_IMDS_TOKENS_MAX slots */
  size_t ntokens;
  char *oidc_token; /* wiped on free */
  char *ecs_role;
  unsigned lifetime_s; /* --sts-lifetime; 0: DurationSeconds or 3600 */
  int imds_require_token;
  emu_ep_stats ep[EMU_EP_N];
} emu_sts;

struct emu;
struct emu_answer;
chatapp_status emu_sts_init(emu_sts *s, const char *oidc_token,
                            const char *ecs_role, unsigned lifetime_s,
                            int imds_require_token);
void emu_sts_free(emu_sts *s);
/* Forget the issued keys and metadata tokens (the fuzz target). */
void emu_sts_forget(emu_sts *s);
/* An issued key by AccessKeyId, copied into *copy (takes emu.lock): 1
 * found, 0 not, -1 out of memory. */
int emu_sts_find_key(struct emu *e, const char *akid, emu_key *copy);
/* 1 if token is the token of an issued key (takes emu.lock). */
int emu_sts_token_known(struct emu *e, const char *token);
/* The fault-rule scope name of an endpoint ("AssumeRole", "metadata.token",
 * "credentials", ...). */
const char *emu_cred_ep_name(emu_cred_ep ep);
/* 1 if op names a credential endpoint: fault rules without an op leave
 * them alone. */
int emu_op_is_credential(const char *op);
/* The statistics' "credentials" members (emu.lock held). */
chatapp_status emu_sts_stats_json(const emu_sts *s, ca_buf *b);
/* Make every issued key expired now (emu.lock held); how many were valid. */
size_t emu_sts_expire_all(emu_sts *s);
/* Zero the counters (not what is in flight; emu.lock held). */
void emu_sts_stats_reset(emu_sts *s);
/* After an answer of a credential endpoint went out (takes emu.lock). */
void emu_cred_done(struct emu *e, int ep);
/* emu_sts_keys.c: issue a temporary key for account, valid lifetime_s
 * seconds (emu.lock held); *out points into the table until the lock is
 * dropped. */
chatapp_status emu_sts_issue(struct emu *e, const char *account,
                             int64_t lifetime_s, emu_key **out);
/* The lifetime of a key issued now: --sts-lifetime, else requested (else
 * 3600). */
int64_t emu_sts_lifetime(const struct emu *e, long long requested);
/* "AccessKeyId":...,"AccessKeySecret":...,"SecurityToken":...,
 * "Expiration":... of k (without braces). */
chatapp_status emu_sts_key_members(ca_buf *b, const emu_key *k);
/* A fresh metadata token valid ttl_s seconds into out (emu.lock held). */
chatapp_status emu_sts_new_token(emu_sts *s, long ttl_s, char out[64]);
/* "valid", "invalid", "expired" for a metadata token sent (takes
 * emu.lock). */
const char *emu_sts_token_state(struct emu *e, const char *tok);

/* Counters by name (error codes, fault kinds). */
typedef struct emu_counts {
  struct emu_count {
    char *key;
    uint64_t n;
  } * v;
  size_t n;
} emu_counts;

typedef struct emu_stats {
  uint64_t requests, accepted, ok, throttled, rejected, faulted, control;
  emu_counts rejected_by_code, faults_by_kind, answers_by_code;
  int64_t started_us;
} emu_stats;

/* Connections to the API port (counted by emu_http.c's connection
 * callback, under emu.lock).  open is the live count (never reset);
 * the rest restart at POST /_emulator/reset.  A TLS handshake is counted
 * when the first request of a TLS connection arrives (libmicrohttpd has
 * completed the handshake by then), and tls_resumed when that handshake
 * resumed a session (a ticket; with GnuTLS's headers only). */
typedef struct emu_conn_stats {
  uint64_t open, opened, closed, open_max, tls_handshakes, tls_resumed, dropped,
    next_id;
} emu_conn_stats;

/* emu_sink.c: the webhook receiver's deliveries (rendered JSON). */
#define EMU_SINK_MAX 10000
typedef struct emu_sink {
  char *items[EMU_SINK_MAX];
  size_t n;
  unsigned long long total;
} emu_sink;

struct emu_request;
/* One HTTP server: the API port or the metadata port. */
typedef struct emu_server {
  struct emu *e;
  void (*route)(struct emu *e, struct emu_request *rq, struct emu_answer *a);
} emu_server;

typedef struct emu {
  pthread_mutex_t lock; /* guards everything below except log */
  emu_keys keys;
  emu_sts sts;       /* roles: issued keys, metadata tokens, counters */
  emu_data data;     /* the live data, changed by calls */
  emu_data pristine; /* as loaded, for POST /_emulator/reset */
  emu_quota quota;
  emu_nonces nonces;
  emu_faults faults;
  emu_stats stats;
  emu_conn_stats conns;
  emu_sink sink;
  emu_log *log;
  int64_t skew_s;           /* allowed timestamp skew, seconds (900) */
  int throttle_retry_after; /* quota throttles carry retry-after headers */
  unsigned port;
  unsigned imds_port; /* 0: no metadata service */
  int tls;            /* the API port serves HTTPS (--tls-cert/--tls-key) */
  char *tls_cert, *tls_key; /* PEM, NUL-terminated; freed by main */
  void *tls_ticket_key;     /* session ticket key (GnuTLS), or NULL */
  emu_server main_srv, imds_srv;
  atomic_int stopping;
} emu;

/* How an answer is to be sent (emu_http.c carries it out). */
typedef enum emu_send_mode {
  EMU_SEND_NORMAL,
  EMU_SEND_RESET,
  EMU_SEND_TRUNCATE,
  EMU_SEND_DRIP,
  EMU_SEND_OVERSIZE,
  EMU_SEND_CHUNKED,
  EMU_SEND_GZIP, /* chunked, emu_gzip_bomb's bytes */
  EMU_SEND_HANG,
  EMU_SEND_CLOSE /* close without an answer */
} emu_send_mode;

/* A request as received. */
typedef struct emu_request {
  int64_t arrival_us; /* monotonic, when the request line came in */
  int64_t arrival_wall_ms;
  char *raw_uri; /* path and query as sent */
  const char *method;
  emu_kvs headers;
  ca_buf body;
  int body_too_big;
  char remote[64];
  uint64_t conn_id; /* the connection's number (1, 2, ...), 0 unknown */
} emu_request;

/* An answer to send. */
typedef struct emu_answer {
  unsigned status;
  char code[96]; /* the body's Code, for logs and statistics */
  ca_buf body;
  emu_kvs headers; /* extra response headers */
  emu_send_mode mode;
  int64_t delay_us; /* sleep before answering */
  long long after_bytes, bytes, interval_ms, hang_ms;
  long long body_delay_ms;  /* oversize, chunked, gzip: body after headers */
  const char *content_type; /* NULL: application/json;charset=utf-8 */
  int track_ep;             /* a credential endpoint (emu_cred_done), or -1 */
} emu_answer;

void emu_answer_init(emu_answer *a);
void emu_answer_free(emu_answer *a);
/* Fill a with Alibaba's error shape. */
void emu_answer_error(emu_answer *a, unsigned status, const char *code,
                      const char *message, const char *request_id);
/* The same for another product (STS: host sts.aliyuncs.com, "Sts"). */
void emu_answer_error_for(emu_answer *a, unsigned status, const char *code,
                          const char *message, const char *request_id,
                          const char *host_id, const char *product);
/* Replace the answer as fault rule f says: 1 when it is replaced (error,
 * malformed (malformed_body when the rule has none), redirect, hang); 0
 * when the operation must run first, then emu_fault_send_mode. */
int emu_fault_answer(const emu_fault *f, const char *rid,
                     const char *malformed_body, emu_answer *a);
/* reset, truncate, drip, oversize, chunked: how the answer gets lost. */
void emu_fault_send_mode(const emu_fault *f, emu_answer *a);

/* emu_api.c: one signed API call, end to end (takes and drops emu.lock). */
void emu_api_call(emu *e, emu_request *rq, emu_answer *a);
/* The fields every request log line begins with ({"t_us", "time",
 * "remote", "method") and ends with ("verdict", "fault", "code", "status",
 * "request_id", "delay_ms"}), for the CAMS and the credential endpoints. */
chatapp_status emu_log_head(ca_buf *b, const emu_request *rq);
chatapp_status emu_log_tail(ca_buf *b, const emu_answer *a, const char *rid,
                            const char *verdict, const emu_fault *f,
                            int64_t delay_us);

/* emu_control.c: GET/POST/DELETE under /_emulator/. */
void emu_control(emu *e, emu_request *rq, const char *path, emu_answer *a);
void emu_counts_add(emu_counts *c, const char *key);

/* emu_sink.c: the webhook receiver under /_emulator/sink. */
void emu_sink_receive(emu *e, emu_request *rq, const char *path, emu_answer *a);
chatapp_status emu_sink_json(emu *e, ca_buf *b);    /* takes emu.lock */
void emu_sink_clear(emu_sink *s);                   /* emu.lock held */
void emu_stats_reset(emu_stats *s, int64_t now_us); /* also frees */

/* emu_cred.c: one request to a credential endpoint, as its handler
 * (emu_sts.c, emu_cred.c) sees it. */
typedef struct emu_cred_ctx {
  emu_cred_ep ep;
  const char *endpoint; /* "sts", "metadata", "credentials" (log) */
  const char *scheme;   /* "legacy", "v3", "anonymous", "none" */
  /* a rejection decided before the lock, or NULL */
  unsigned err_status;
  const char *err_code;
  char err_msg[512];
  int text; /* errors as text/plain (metadata) */
  /* for the log */
  const char *caller;  /* AccessKeyId of the caller, or NULL */
  const char *account; /* its account */
  const char *role, *session;
  const char *imds_token; /* "valid", "invalid", "expired", "none" */
  long long duration;     /* requested DurationSeconds, or 0 */
  char issued[64];        /* AccessKeyId issued, or "" */
  /* success: build the answer (emu.lock held) */
  chatapp_status (*build)(emu *e, struct emu_cred_ctx *c, const char *rid,
                          emu_answer *a);
  const char *build_text; /* metadata: the token or role name to send */
} emu_cred_ctx;
/* Reject the request (the first rejection is the one answered). */
void emu_cred_reject(emu_cred_ctx *c, unsigned status, const char *code,
                     const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
/* Answer a request of endpoint c->ep: the rejection in c, or a fault
 * rule's answer, or c->build's; count and log it (takes emu.lock). */
void emu_cred_answer(emu *e, emu_request *rq, emu_cred_ctx *c, const char *rid,
                     emu_answer *a);

/* emu_sts.c: an STS call (Action AssumeRole or AssumeRoleWithOIDC). */
int emu_sts_is_call(const emu_request *rq);
void emu_sts_call(emu *e, emu_request *rq, emu_answer *a);
/* emu_cred.c: GET /_emulator/credentials, the credentials URI. */
void emu_cred_uri(emu *e, emu_request *rq, emu_answer *a);
/* emu_cred.c: a request to the metadata port. */
void emu_imds_route(emu *e, emu_request *rq, emu_answer *a);

/* emu_ops.c: run an operation whose call was accepted (emu.lock held). */
void emu_ops_run(emu *e, const char *op, const emu_kvs *params,
                 const char *account, const char *request_id, emu_answer *a);
/* 1 if op is a CAMS operation the emulator answers. */
int emu_ops_known(const char *op);
/* 1 if op is a documented CAMS operation (emulated or not). */
int emu_ops_documented(const char *op);

/* emu_http.c */
/* Answer rq: the control endpoint under /_emulator/, else an API call. */
void emu_route(emu *e, emu_request *rq, emu_answer *a);
struct MHD_Daemon;
/* The API server on 127.0.0.1:port; HTTPS when e->tls (e->tls_cert and
 * e->tls_key set).  NULL with a message in err on failure. */
struct MHD_Daemon *emu_http_start(emu *e, unsigned port, char *err,
                                  size_t errlen);
/* Load --tls-cert/--tls-key into e (PEM, checked for a certificate and a
 * private key block); CHATAPP_OK or an error naming the file in err. */
chatapp_status emu_tls_load(emu *e, const char *cert_path, const char *key_path,
                            char *err, size_t errlen);
/* Free what emu_tls_load made (after the server stopped). */
void emu_tls_free(emu *e);
/* The metadata service's server (emu_imds_route) on 127.0.0.1:port;
 * e->imds_port is the port it got. */
struct MHD_Daemon *emu_imds_start(emu *e, unsigned port, char *err,
                                  size_t errlen);

#endif
