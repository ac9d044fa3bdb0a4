/* Known secret values, for redaction in every sink. */
#ifndef CA_SECRETS_H
#define CA_SECRETS_H

#include <stddef.h>

#include "ca_buf.h"
#include "ca_cred.h"

/*
 * ca_secrets: known secret values, for redaction in every sink.  Each value
 * is kept as is and percent-encoded once and twice (query strings, strings
 * to sign); values shorter than CA_SECRET_MIN bytes are not secrets (an
 * AccessKey secret has 30) and are ignored.  Copies are wiped on free.
 */
#define CA_SECRET_MIN  4
#define CA_REDACT_MARK "<redacted>"

typedef struct ca_secrets {
  char **needle; /* NUL-terminated; longest first is not required */
  size_t *len;
  size_t n, cap;
} ca_secrets;

#define CA_SECRETS_INIT                                                        \
  {                                                                            \
    NULL, NULL, 0, 0                                                           \
  }

/* Add a value (and its encodings); a duplicate or short value is a no-op. */
chatapp_status ca_secrets_add(ca_secrets *s, const char *value, size_t len);
/* Add the secret and the token of c (NULL-safe). */
chatapp_status ca_secrets_add_credentials(ca_secrets *s,
                                          const ca_credentials *c);
/* Add every value src knows (its encodings included, as they are). */
chatapp_status ca_secrets_merge(ca_secrets *dst, const ca_secrets *src);
/* Add the values of the secret variables (ca_cred_secret_env_name) read
 * through fn (NULL: the process environment). */
chatapp_status ca_secrets_add_env(ca_secrets *s, ca_getenv_fn fn, void *ud);
/* 1 when text holds a known secret (in any of its forms). */
int ca_secrets_found(const ca_secrets *s, const char *text, size_t len);
/*
 * Append text to out with every known secret replaced by CA_REDACT_MARK
 * (one pass, longest match first at each position, so a mark is never
 * searched again).  On failure (out of memory, over out's maximum) out is
 * wiped and reset, so no partial copy survives.  s may be NULL (no secret).
 */
chatapp_status ca_secrets_redact(const ca_secrets *s, const char *text,
                                 size_t len, ca_buf *out);
/* The same into memory: writes the redacted text to dst (when not NULL) and
 * returns its length, so a first call with dst NULL sizes dst. */
size_t ca_secrets_redact_into(const ca_secrets *s, const char *text, size_t len,
                              char *dst);
/*
 * Redact b in place.  When that cannot be done (out of memory, or the marks
 * would pass b's maximum) b is replaced by a short notice instead: never
 * the clear text, never half-redacted.  s may be NULL (nothing to do).
 */
void ca_secrets_redact_buf(const ca_secrets *s, ca_buf *b);
/* Wipe and free every copy; NULL-safe, idempotent. */
void ca_secrets_free(ca_secrets *s);

#endif
