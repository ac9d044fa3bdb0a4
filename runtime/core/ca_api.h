/*
 * ca_api: what the client knows about CAMS operations and their answers.
 *
 *   - the operation table: read or write, documented calls per second;
 *   - the answer envelope (Code, Message, RequestId, ...) read from the
 *     body without decoding the rest of it;
 *   - the classification of an answer into success, retryable or final.
 */
#ifndef CA_API_H
#define CA_API_H

#include <stddef.h>

#include "chatapp.h"

#define CA_API_VERSION    "2020-06-06"
#define CA_DEFAULT_REGION "ap-southeast-1"

typedef struct ca_operation {
  const char *name;
  int is_write; /* has side effects: retried only when provably not run */
  int qps;      /* documented calls per second per account; 0: not stated */
} ca_operation;

/* The table entry for name, or NULL for an operation we do not know. */
const ca_operation *ca_operation_find(const char *name);
/* The whole table, ended by a NULL name. */
const ca_operation *ca_operation_table(void);
/* Calls per second to allow: documented, else CA_QPS_UNSTATED. */
int ca_operation_qps(const char *name);
/* Unknown operations count as writes: never retried blindly. */
int ca_operation_is_write(const char *name);

#define CA_QPS_UNSTATED 5

/* The envelope fields of an answer; every field may be NULL. */
typedef struct ca_envelope {
  char *code;
  char *message;
  char *request_id;
  char *host_id;
  char *recommend;
  char *access_denied_detail;
} ca_envelope;

/*
 * Read the envelope of a JSON answer.  Fails with CHATAPP_EPARSE (reason in
 * err) when the body is not a JSON object.  Free with ca_envelope_free.
 */
chatapp_status ca_envelope_parse(const char *body, size_t len, ca_envelope *env,
                                 char *err, size_t errlen);
void ca_envelope_free(ca_envelope *env);

typedef enum ca_answer_class {
  CA_ANSWER_OK,        /* Code == "OK" */
  CA_ANSWER_THROTTLED, /* Throttling*, System.LimitControl: not executed */
  CA_ANSWER_NONCE,     /* SignatureNonceUsed: not executed; re-sign */
  CA_ANSWER_TRANSIENT, /* ServiceUnavailable, InternalError, 5xx: retry a
                          read; a write's outcome is unknown */
  CA_ANSWER_FINAL      /* signature, credential, permission, parameter ... */
} ca_answer_class;

/* Classify on the body's Code first, then on the HTTP status. */
ca_answer_class ca_classify_answer(long http_status, const char *code);
/* True for the throttling codes. */
int ca_is_throttle_code(const char *code);
/* A hint for the user about a final error Code, or NULL. */
const char *ca_error_hint(const char *code);

#endif
