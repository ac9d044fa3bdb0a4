#include "ca_buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ca_buf_init(ca_buf *b, size_t max)
{
  b->ptr = NULL;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

void ca_buf_free(ca_buf *b)
{
  free(b->ptr);
  b->ptr = NULL;
  b->len = 0;
  b->cap = 0;
}

void ca_buf_reset(ca_buf *b)
{
  b->len = 0;
  if (b->ptr)
    b->ptr[0] = '\0';
}

/* Make room for n more bytes plus the NUL; frees the buffer on failure. */
static chatapp_status grow(ca_buf *b, size_t n)
{
  size_t need, cap;
  char *p;

  if (n > b->max || b->len > b->max - n) {
    ca_buf_free(b);
    return CHATAPP_ETOOBIG;
  }
  need = b->len + n + 1;
  if (need <= b->cap)
    return CHATAPP_OK;
  cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
  if (cap > b->max + 1)
    cap = b->max + 1;
  p = realloc(b->ptr, cap);
  if (!p) {
    ca_buf_free(b);
    return CHATAPP_ENOMEM;
  }
  b->ptr = p;
  b->cap = cap;
  return CHATAPP_OK;
}

chatapp_status ca_buf_add(ca_buf *b, const void *p, size_t n)
{
  chatapp_status st = grow(b, n);
  if (st)
    return st;
  if (n)
    memcpy(b->ptr + b->len, p, n);
  b->len += n;
  b->ptr[b->len] = '\0';
  return CHATAPP_OK;
}

chatapp_status ca_buf_adds(ca_buf *b, const char *s)
{
  return ca_buf_add(b, s, strlen(s));
}

chatapp_status ca_buf_addc(ca_buf *b, char c)
{
  return ca_buf_add(b, &c, 1);
}

chatapp_status ca_buf_vprintf(ca_buf *b, const char *fmt, va_list ap)
{
  va_list ap2;
  int n;
  chatapp_status st;

  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return CHATAPP_EINVAL;
  st = grow(b, (size_t)n);
  if (st)
    return st;
  vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return CHATAPP_OK;
}

chatapp_status ca_buf_printf(ca_buf *b, const char *fmt, ...)
{
  va_list ap;
  chatapp_status st;

  va_start(ap, fmt);
  st = ca_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return st;
}

const char *ca_buf_str(const ca_buf *b)
{
  return b->ptr ? b->ptr : "";
}

char *ca_buf_steal(ca_buf *b)
{
  char *p = b->ptr;
  b->ptr = NULL;
  b->len = 0;
  b->cap = 0;
  return p;
}
