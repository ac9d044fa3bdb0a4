/*
 * ca_sign: Alibaba Cloud request signing, as pure functions.
 *
 *   V3      ACS3-HMAC-SHA256, headers x-acs-* + Authorization
 *   legacy  RPC SignatureVersion 1.0, HMAC-SHA1, Signature parameter
 *
 * Spec: docs/internals/signing.md.  No I/O, no clock, no randomness: the
 * caller passes the date and nonce inside the headers / parameters, so the
 * test vectors in tests/data/signing.json reproduce exactly.  The outputs
 * hold every intermediate (canonical request, string to sign) for debugging
 * SignatureDoesNotMatch; none of them contains the secret or a derived key.
 */
#ifndef CA_SIGN_H
#define CA_SIGN_H

#include <stddef.h>

#include "ca_buf.h"

typedef struct ca_kv {
  const char *key;
  const char *value;
} ca_kv;

#define CA_EMPTY_SHA256                                                        \
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Append the percent-encoding of s[0..n): keep A-Z a-z 0-9 - _ . ~,
 * everything else %XX (upper-case hex, UTF-8 bytes; space is %20). */
chatapp_status ca_pct_encode(ca_buf *b, const char *s, size_t n);

/* UTC "YYYY-MM-DDTHH:MM:SSZ" for a time_t into out[21]. */
void ca_iso8601(long long epoch_seconds, char out[21]);

typedef struct ca_v3_input {
  const char *method;   /* upper case, e.g. "POST" */
  const char *pathname; /* "/" for RPC APIs */
  const ca_kv *query;   /* flattened parameters; order does not matter */
  size_t nquery;
  const ca_kv *headers; /* every header sent; host, content-type and x-acs-*
                           are signed, the rest ignored */
  size_t nheaders;
  const void *body;
  size_t body_len;
  const char *access_key_id;
  const char *access_key_secret;
} ca_v3_input;

typedef struct ca_v3_output {
  char hashed_payload[65];
  ca_buf canonical_query;
  ca_buf canonical_headers;
  ca_buf signed_headers;
  ca_buf canonical_request;
  char hashed_canonical_request[65];
  ca_buf string_to_sign;
  char signature[65];
  ca_buf authorization; /* the Authorization header's value */
} ca_v3_output;

void ca_v3_output_init(ca_v3_output *out);
void ca_v3_output_free(ca_v3_output *out);
chatapp_status ca_sign_v3(const ca_v3_input *in, ca_v3_output *out);

typedef struct ca_rpc_output {
  ca_buf canonical_query; /* CanonicalizedQueryString */
  ca_buf string_to_sign;
  char signature[29];  /* base64 */
  ca_buf signed_query; /* canonical_query + "&Signature=" + encoded */
} ca_rpc_output;

void ca_rpc_output_init(ca_rpc_output *out);
void ca_rpc_output_free(ca_rpc_output *out);
/* params: every parameter except Signature (Action, Timestamp, ... too). */
chatapp_status ca_sign_rpc(const char *method, const ca_kv *params, size_t n,
                           const char *access_key_secret, ca_rpc_output *out);

#endif
