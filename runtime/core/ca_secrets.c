/*
 * ca_secrets: the known secret values of a process or a client, and their
 * redaction from any text (ca_secrets.h).
 */
#include "ca_secrets.h"

#include <stdlib.h>
#include <string.h>

#include "ca_crypto.h"
#include "ca_sign.h"

/* Add one needle (a copy); duplicates and short ones are skipped. */
static chatapp_status add_needle(ca_secrets *s, const char *v, size_t len)
{
  size_t i;
  char *copy;

  if (len < CA_SECRET_MIN)
    return CHATAPP_OK;
  for (i = 0; i < s->n; i++)
    if (s->len[i] == len && memcmp(s->needle[i], v, len) == 0)
      return CHATAPP_OK;
  if (s->n == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 8;
    char **nn = realloc(s->needle, cap * sizeof *nn);
    size_t *nl;
    if (!nn)
      return CHATAPP_ENOMEM;
    s->needle = nn;
    nl = realloc(s->len, cap * sizeof *nl);
    if (!nl)
      return CHATAPP_ENOMEM;
    s->len = nl;
    s->cap = cap;
  }
  copy = malloc(len + 1);
  if (!copy)
    return CHATAPP_ENOMEM;
  memcpy(copy, v, len);
  copy[len] = '\0';
  s->needle[s->n] = copy;
  s->len[s->n++] = len;
  return CHATAPP_OK;
}

static void wipe_buf(ca_buf *b)
{
  if (b->ptr)
    ca_wipe(b->ptr, b->cap);
  ca_buf_free(b);
}

chatapp_status ca_secrets_add(ca_secrets *s, const char *value, size_t len)
{
  ca_buf once = CA_BUF_INIT((size_t)1 << 20),
         twice = CA_BUF_INIT((size_t)1 << 22);
  chatapp_status st;

  if (!value || len < CA_SECRET_MIN)
    return CHATAPP_OK;
  st = add_needle(s, value, len);
  if (!st)
    st = ca_pct_encode(&once, value, len);
  if (!st)
    st = add_needle(s, ca_buf_str(&once), once.len);
  if (!st)
    st = ca_pct_encode(&twice, ca_buf_str(&once), once.len);
  if (!st)
    st = add_needle(s, ca_buf_str(&twice), twice.len);
  wipe_buf(&once);
  wipe_buf(&twice);
  return st;
}

chatapp_status ca_secrets_add_credentials(ca_secrets *s,
                                          const ca_credentials *c)
{
  chatapp_status st = CHATAPP_OK;

  if (c && c->access_key_secret)
    st = ca_secrets_add(s, c->access_key_secret, strlen(c->access_key_secret));
  if (!st && c && c->security_token)
    st = ca_secrets_add(s, c->security_token, strlen(c->security_token));
  return st;
}

chatapp_status ca_secrets_merge(ca_secrets *dst, const ca_secrets *src)
{
  chatapp_status st = CHATAPP_OK;
  size_t i;

  for (i = 0; src && !st && i < src->n; i++)
    st = add_needle(dst, src->needle[i], src->len[i]);
  return st;
}

chatapp_status ca_secrets_add_env(ca_secrets *s, ca_getenv_fn fn, void *ud)
{
  const char *name, *v;
  chatapp_status st = CHATAPP_OK;
  size_t i;

  for (i = 0; !st && (name = ca_cred_secret_env_name(i)); i++) {
    v = fn ? fn(ud, name) : getenv(name);
    if (v)
      st = ca_secrets_add(s, v, strlen(v));
  }
  return st;
}

int ca_secrets_found(const ca_secrets *s, const char *text, size_t len)
{
  size_t k;

  for (k = 0; s && k < s->n; k++)
    if (memmem(text, len, s->needle[k], s->len[k]))
      return 1;
  return 0;
}

size_t ca_secrets_redact_into(const ca_secrets *s, const char *text, size_t len,
                              char *dst)
{
  static const char mark[] = CA_REDACT_MARK;
  size_t pos = 0, start = 0, o = 0, k;

  if (!ca_secrets_found(s, text, len)) {
    if (dst)
      memcpy(dst, text, len);
    return len;
  }
  while (pos < len) {
    size_t best = 0;
    for (k = 0; k < s->n; k++)
      if (s->len[k] > best && s->len[k] <= len - pos &&
          text[pos] == s->needle[k][0] &&
          memcmp(text + pos, s->needle[k], s->len[k]) == 0)
        best = s->len[k];
    if (!best) {
      pos++;
      continue;
    }
    if (dst) {
      memcpy(dst + o, text + start, pos - start);
      memcpy(dst + o + (pos - start), mark, sizeof mark - 1);
    }
    o += pos - start + sizeof mark - 1;
    pos += best;
    start = pos;
  }
  if (dst)
    memcpy(dst + o, text + start, len - start);
  return o + len - start;
}

chatapp_status ca_secrets_redact(const ca_secrets *s, const char *text,
                                 size_t len, ca_buf *out)
{
  chatapp_status st;
  char *tmp;
  size_t n;

  if (!ca_secrets_found(s, text, len))
    return ca_buf_add(out, text, len);
  n = ca_secrets_redact_into(s, text, len, NULL);
  tmp = malloc(n ? n : 1);
  if (!tmp)
    return CHATAPP_ENOMEM;
  ca_secrets_redact_into(s, text, len, tmp);
  st = ca_buf_add(out, tmp, n);
  ca_wipe(tmp, n);
  free(tmp);
  if (st && out->ptr) {
    ca_wipe(out->ptr, out->cap);
    ca_buf_reset(out);
  }
  return st;
}

void ca_secrets_redact_buf(const ca_secrets *s, ca_buf *b)
{
  static const char withheld[] =
    "(message withheld: out of memory while redacting secrets)";
  ca_buf out = CA_BUF_INIT(b->max);

  if (!s || !b->len || !ca_secrets_found(s, b->ptr, b->len))
    return;
  if (ca_secrets_redact(s, b->ptr, b->len, &out) != CHATAPP_OK)
    (void)ca_buf_add(&out, withheld, sizeof withheld - 1); /* "" if not */
  ca_wipe(b->ptr, b->cap);
  ca_buf_free(b);
  *b = out;
}

void ca_secrets_free(ca_secrets *s)
{
  size_t i;

  if (!s)
    return;
  for (i = 0; i < s->n; i++) {
    ca_wipe(s->needle[i], s->len[i]);
    free(s->needle[i]);
  }
  free(s->needle);
  free(s->len);
  memset(s, 0, sizeof *s);
}
