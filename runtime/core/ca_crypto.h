/*
 * ca_crypto: the few OpenSSL primitives the signer and client need, with
 * every OpenSSL return checked.  Output buffers are fixed-size C strings.
 */
#ifndef CA_CRYPTO_H
#define CA_CRYPTO_H

#include <stddef.h>

#include "chatapp.h"

#define CA_SHA256_HEX_LEN 64 /* plus NUL */
#define CA_SHA1_B64_LEN   28 /* plus NUL */

/* Lower-case hex SHA-256 of data into out[65]. */
chatapp_status ca_sha256_hex(const void *data, size_t len, char out[65]);
/* SHA-1, lowercase hex (a Redis script's name for EVALSHA; not security). */
chatapp_status ca_sha1_hex(const void *data, size_t len, char out[41]);
/* Lower-case hex HMAC-SHA256(key, data) into out[65]. */
chatapp_status ca_hmac_sha256_hex(const void *key, size_t keylen,
                                  const void *data, size_t len, char out[65]);
/* Base64 HMAC-SHA1(key, data) into out[29]. */
chatapp_status ca_hmac_sha1_b64(const void *key, size_t keylen,
                                const void *data, size_t len, char out[29]);
/* A fresh nonce: 128 bits from OpenSSL's CSPRNG as 32 hex digits. */
chatapp_status ca_nonce(char out[33]);
/* n random bytes from the CSPRNG. */
chatapp_status ca_random(void *out, size_t n);
/* Wipe memory that held a secret (cannot be optimised away). */
void ca_wipe(void *p, size_t n);

/* The version of the OpenSSL library loaded at run time, e.g.
 * "OpenSSL 3.0.13 30 Jan 2024". */
const char *ca_crypto_version(void);

#endif
