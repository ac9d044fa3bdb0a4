/*
 * emu_nonce.c: the replay cache for x-acs-signature-nonce / SignatureNonce.
 *
 * A request is valid only while its timestamp is within the allowed skew
 * (15 min) of now, so a nonce must be remembered for as long as a request
 * carrying it could still pass the timestamp check: at most 2 x skew after
 * it was first seen (a timestamp 15 min in the future).  The cache keeps two
 * generations of an open-addressing hash set of 16-byte digests of
 * (AccessKeyId, nonce): new entries go to the current one; every retain_us
 * the previous generation is dropped and the current one becomes previous.
 * So an entry lives between retain_us and 2 x retain_us.  Memory is bounded:
 * a generation that reaches max entries is rotated early (counted in
 * rotations_early), which shortens how long the oldest nonces are kept.
 */
#include "emu.h"

#include <stdlib.h>
#include <string.h>

#include "ca_crypto.h"

#define DIGEST 16

void emu_nonces_init(emu_nonces *ns, int64_t retain_us, size_t max)
{
  memset(ns, 0, sizeof *ns);
  ns->retain_us = retain_us;
  ns->max = max < 16 ? 16 : max;
}

static void set_free(emu_nonce_set *s)
{
  free(s->slots);
  memset(s, 0, sizeof *s);
}

void emu_nonces_free(emu_nonces *ns)
{
  set_free(&ns->cur);
  set_free(&ns->prev);
}

static int is_empty(const unsigned char *slot)
{
  size_t i;

  for (i = 0; i < DIGEST; i++)
    if (slot[i])
      return 0;
  return 1;
}

static size_t slot_of(const unsigned char *d, size_t cap)
{
  uint64_t h;

  memcpy(&h, d, sizeof h);
  return (size_t)(h & (cap - 1));
}

static int set_has(const emu_nonce_set *s, const unsigned char *d)
{
  size_t i;

  if (!s->cap)
    return 0;
  for (i = slot_of(d, s->cap);; i = (i + 1) & (s->cap - 1)) {
    const unsigned char *slot = s->slots + i * DIGEST;
    if (is_empty(slot))
      return 0;
    if (memcmp(slot, d, DIGEST) == 0)
      return 1;
  }
}

static void set_put_nogrow(emu_nonce_set *s, const unsigned char *d)
{
  size_t i;

  for (i = slot_of(d, s->cap);; i = (i + 1) & (s->cap - 1)) {
    unsigned char *slot = s->slots + i * DIGEST;
    if (is_empty(slot)) {
      memcpy(slot, d, DIGEST);
      s->used++;
      return;
    }
  }
}

/* Insert d, growing to keep the load at most 1/2.  0 or -1 (memory). */
static int set_put(emu_nonce_set *s, const unsigned char *d)
{
  if ((s->used + 1) * 2 > s->cap) {
    emu_nonce_set g;
    size_t i;

    g.cap = s->cap ? 2 * s->cap : 1024;
    g.used = 0;
    g.slots = calloc(g.cap, DIGEST);
    if (!g.slots)
      return -1;
    for (i = 0; i < s->cap; i++)
      if (!is_empty(s->slots + i * DIGEST))
        set_put_nogrow(&g, s->slots + i * DIGEST);
    free(s->slots);
    *s = g;
  }
  set_put_nogrow(s, d);
  return 0;
}

static void rotate(emu_nonces *ns, int64_t now_us)
{
  set_free(&ns->prev);
  ns->prev = ns->cur;
  memset(&ns->cur, 0, sizeof ns->cur);
  ns->cur_since_us = now_us;
}

int emu_nonces_check_add(emu_nonces *ns, const char *akid, const char *nonce,
                         int64_t now_us)
{
  unsigned char d[DIGEST];
  char hex[65];
  ca_buf b = CA_BUF_INIT(64 * 1024);
  size_t i;

  if (ns->cur_since_us == 0)
    ns->cur_since_us = now_us;
  if (now_us - ns->cur_since_us >= 2 * ns->retain_us)
    rotate(ns, now_us); /* two periods idle: both generations are stale */
  if (now_us - ns->cur_since_us >= ns->retain_us)
    rotate(ns, now_us);
  if (ca_buf_adds(&b, akid) || ca_buf_addc(&b, '\n') ||
      ca_buf_adds(&b, nonce) || ca_sha256_hex(b.ptr, b.len, hex)) {
    ca_buf_free(&b);
    return -1;
  }
  ca_buf_free(&b);
  for (i = 0; i < DIGEST; i++)
    d[i] =
      (unsigned char)(ca_hexval(hex[2 * i]) * 16 + ca_hexval(hex[2 * i + 1]));
  d[0] |= 1; /* never all zero, which marks an empty slot */
  if (set_has(&ns->cur, d) || set_has(&ns->prev, d))
    return 1;
  if (ns->cur.used >= ns->max) {
    rotate(ns, now_us);
    ns->rotations_early++;
  }
  return set_put(&ns->cur, d) ? -1 : 0;
}

size_t emu_nonces_count(const emu_nonces *ns)
{
  return ns->cur.used + ns->prev.used;
}
