/*
 * emu_util.c: small helpers shared by the emulator's files: owned key/value
 * lists, URL decoding, JSON string writing, clocks, request ids, files.
 */
#include "emu.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca_crypto.h"

static char *dup_n(const char *s, size_t n)
{
  char *r = malloc(n + 1);
  if (!r)
    return NULL;
  if (n)
    memcpy(r, s, n);
  r[n] = '\0';
  return r;
}

chatapp_status emu_kvs_add(emu_kvs *l, const char *k, size_t kn, const char *v,
                           size_t vn)
{
  char *kk = NULL, *vv = NULL;

  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 8;
    ca_kv *nv = realloc(l->v, cap * sizeof *nv);
    if (!nv)
      return CHATAPP_ENOMEM;
    l->v = nv;
    l->cap = cap;
  }
  kk = dup_n(k, kn);
  vv = dup_n(v, vn);
  if (!kk || !vv) {
    free(kk);
    free(vv);
    return CHATAPP_ENOMEM;
  }
  l->v[l->n].key = kk;
  l->v[l->n].value = vv;
  l->n++;
  return CHATAPP_OK;
}

void emu_kvs_free(emu_kvs *l)
{
  size_t i;

  for (i = 0; i < l->n; i++) {
    free((void *)(uintptr_t)l->v[i].key);
    free((void *)(uintptr_t)l->v[i].value);
  }
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

const char *emu_kvs_get(const emu_kvs *l, const char *key)
{
  size_t i;

  for (i = 0; i < l->n; i++)
    if (strcmp(l->v[i].key, key) == 0)
      return l->v[i].value;
  return NULL;
}

const char *emu_kvs_geti(const emu_kvs *l, const char *key)
{
  size_t i;

  for (i = 0; i < l->n; i++)
    if (strcasecmp(l->v[i].key, key) == 0)
      return l->v[i].value;
  return NULL;
}

/* Decode s[0..n) into out (at least n+1 bytes); length, or -1. */
static long url_decode(const char *s, size_t n, char *out)
{
  size_t i, o = 0;

  for (i = 0; i < n; i++) {
    if (s[i] == '+') {
      out[o++] = ' ';
    } else if (s[i] == '%') {
      int hi, lo;
      if (i + 2 >= n)
        return -1;
      hi = ca_hexval(s[i + 1]);
      lo = ca_hexval(s[i + 2]);
      if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
        return -1;
      out[o++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  return (long)o;
}

int emu_parse_urlencoded(const char *s, size_t n, emu_kvs *out)
{
  char *k = NULL, *v = NULL;
  size_t i = 0;
  int rc = 0;

  k = malloc(n + 1);
  v = malloc(n + 1);
  if (!k || !v) {
    rc = -1;
    goto out;
  }
  while (i < n) {
    size_t start = i, eq, end;
    long kl, vl;

    while (i < n && s[i] != '&')
      i++;
    end = i;
    if (i < n)
      i++; /* the '&' */
    if (end == start)
      continue; /* "a=1&&b=2" */
    for (eq = start; eq < end && s[eq] != '='; eq++)
      ;
    kl = url_decode(s + start, eq - start, k);
    vl = eq < end ? url_decode(s + eq + 1, end - eq - 1, v) : 0;
    if (eq >= end)
      v[0] = '\0';
    if (kl < 0 || vl < 0 ||
        emu_kvs_add(out, k, (size_t)kl, v, (size_t)vl) != CHATAPP_OK) {
      rc = -1;
      goto out;
    }
  }
out:
  free(k);
  free(v);
  return rc;
}

chatapp_status emu_json_str(ca_buf *b, const char *s, size_t n)
{
  static const char hex[] = "0123456789abcdef";
  chatapp_status st = ca_buf_addc(b, '"');
  size_t i = 0;

  while (!st && i < n) {
    unsigned char c = (unsigned char)s[i];
    size_t l;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      st = ca_buf_add(b, e, 2);
      i++;
    } else if (c == '\n') {
      st = ca_buf_add(b, "\\n", 2);
      i++;
    } else if (c == '\r') {
      st = ca_buf_add(b, "\\r", 2);
      i++;
    } else if (c == '\t') {
      st = ca_buf_add(b, "\\t", 2);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      st = ca_buf_add(b, e, 6);
      i++;
    } else if ((l = ca_utf8_len((const unsigned char *)s + i, n - i)) != 0) {
      st = ca_buf_add(b, s + i, l);
      i += l;
    } else {
      st = ca_buf_add(b, "\\ufffd", 6);
      i++;
    }
  }
  if (!st)
    st = ca_buf_addc(b, '"');
  return st;
}

chatapp_status emu_json_strz(ca_buf *b, const char *s)
{
  if (!s)
    return ca_buf_adds(b, "null");
  return emu_json_str(b, s, strlen(s));
}

int64_t emu_mono_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t emu_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void emu_iso8601_ms(int64_t wall_ms, char out[32])
{
  time_t t = (time_t)(wall_ms / 1000);
  struct tm tm;
  char base[24];

  gmtime_r(&t, &tm);
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03dZ", base, (int)(wall_ms % 1000));
}

static int digits(const char *s, int n, int *out)
{
  int v = 0, i;

  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int emu_parse_iso8601(const char *s, int64_t *epoch)
{
  struct tm tm;
  int y, mo, d, h, mi, se;
  time_t t;

  if (strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':' || s[19] != 'Z')
    return -1;
  if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
      digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
    return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
    return -1;
  memset(&tm, 0, sizeof tm);
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  t = timegm(&tm);
  if (t == (time_t)-1)
    return -1;
  *epoch = (int64_t)t;
  return 0;
}

void emu_request_id(char out[37])
{
  unsigned char r[16];
  static const char hex[] = "0123456789ABCDEF";
  size_t i, o = 0;

  if (ca_random(r, sizeof r) != CHATAPP_OK) {
    /* Not a secret: fall back to the clock. */
    int64_t t = emu_mono_us();
    for (i = 0; i < sizeof r; i++)
      r[i] = (unsigned char)(t >> (8 * (i % 8)));
  }
  for (i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[r[i] >> 4];
    out[o++] = hex[r[i] & 15];
  }
  out[o] = '\0';
}

int emu_ct_equal(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), i;
  unsigned char d = 0;

  if (la != lb)
    return 0;
  for (i = 0; i < la; i++)
    d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

int emu_write_file_atomic(const char *path, const char *data, size_t len)
{
  char tmp[4096];
  int fd = -1, rc = -1;
  size_t done = 0;

  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
      (int)sizeof tmp) {
    errno = ENAMETOOLONG;
    return -1;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      goto out;
    }
    done += (size_t)w;
  }
  if (fsync(fd) != 0)
    goto out;
  if (close(fd) != 0) {
    fd = -1;
    goto out;
  }
  fd = -1;
  if (rename(tmp, path) != 0)
    goto out;
  rc = 0;
out:
  if (fd >= 0)
    close(fd);
  if (rc)
    unlink(tmp);
  return rc;
}

char *emu_read_file(const char *path, size_t max, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ca_buf b = CA_BUF_INIT(max);
  char chunk[65536];
  size_t n;

  if (!f)
    return NULL;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
    chatapp_status st = ca_buf_add(&b, chunk, n);
    if (st) {
      fclose(f);
      ca_buf_free(&b);
      errno = st == CHATAPP_ETOOBIG ? EFBIG : ENOMEM;
      return NULL;
    }
  }
  if (ferror(f)) {
    fclose(f);
    ca_buf_free(&b);
    errno = EIO;
    return NULL;
  }
  fclose(f);
  if (len)
    *len = b.len;
  if (!b.ptr) /* empty file */
    return calloc(1, 1);
  return ca_buf_steal(&b);
}
