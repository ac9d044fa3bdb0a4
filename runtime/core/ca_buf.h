/*
 * ca_buf: a growable byte buffer with a hard maximum (curl's dynbuf shape).
 *
 * The content is always NUL-terminated so it can be used as a C string, but
 * it may also hold binary data; use len.  On any failure (out of memory or
 * over the maximum) the buffer frees its memory and stays usable as empty,
 * so a caller can bail out without a second cleanup path.
 */
#ifndef CA_BUF_H
#define CA_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "chatapp.h"

typedef struct ca_buf {
  char *ptr;  /* NULL until the first append */
  size_t len; /* bytes used, not counting the terminating NUL */
  size_t cap; /* bytes allocated */
  size_t max; /* largest len allowed */
} ca_buf;

#define CA_BUF_INIT(maxlen)                                                    \
  {                                                                            \
    NULL, 0, 0, (maxlen)                                                       \
  }

void ca_buf_init(ca_buf *b, size_t max);
void ca_buf_free(ca_buf *b);
void ca_buf_reset(ca_buf *b); /* len = 0, keeps the memory */

/* Append; return CHATAPP_OK, CHATAPP_ENOMEM or CHATAPP_ETOOBIG. */
chatapp_status ca_buf_add(ca_buf *b, const void *p, size_t n);
chatapp_status ca_buf_adds(ca_buf *b, const char *s);
chatapp_status ca_buf_addc(ca_buf *b, char c);
chatapp_status ca_buf_printf(ca_buf *b, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));
chatapp_status ca_buf_vprintf(ca_buf *b, const char *fmt, va_list ap)
  __attribute__((format(printf, 2, 0)));

/* The content as a C string; "" for an empty buffer, never NULL. */
const char *ca_buf_str(const ca_buf *b);

/* Take the memory out of the buffer; the caller frees it.  NULL if empty. */
char *ca_buf_steal(ca_buf *b);

#endif
