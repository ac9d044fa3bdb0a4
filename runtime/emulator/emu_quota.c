/*
 * emu_quota.c: the server side of CAMS flow control.
 *
 * Rule: among the calls of one operation by one account, at most N accepted
 * calls may have an arrival time inside any 1 s window (W).  Arrival is the
 * monotonic time at which the request line came in, not the time the call
 * is decided: with a thread per connection, a call that arrived first may
 * be decided second.  So admission checks every window that would contain
 * the new arrival t, i.e. every window (s - W, s] with t <= s < t + W; the
 * count in such a window only rises at an arrival, so it is enough to try
 * s = t and s = each logged arrival in (t, t + W).
 *
 * The log holds the arrival times of accepted calls, sorted; times older
 * than KEEP_US are pruned.  A call decided more than CLAMP_US after its
 * arrival (a very slow upload) is treated as arriving CLAMP_US ago, which
 * can only make the server stricter.  Rejected and throttled calls are not
 * logged, so they do not count.
 *
 * The same logs, kept per operation over all accounts, give the statistics'
 * "busiest 1 s window".
 */
#include "emu.h"

#include <stdlib.h>
#include <string.h>

#define CLAMP_US (2 * EMU_WINDOW_US)
#define KEEP_US  (CLAMP_US + EMU_WINDOW_US + EMU_WINDOW_US / 2)

void emu_quota_init(emu_quota *q, unsigned default_limit)
{
  memset(q, 0, sizeof *q);
  q->default_limit = default_limit;
}

static void entries_free(emu_qentry *e)
{
  while (e) {
    emu_qentry *next = e->next;
    free(e->account);
    free(e->op);
    free(e->log.t);
    free(e);
    e = next;
  }
}

void emu_quota_free(emu_quota *q)
{
  size_t i;

  for (i = 0; i < q->nops; i++)
    free(q->ops[i].op);
  free(q->ops);
  entries_free(q->entries);
  memset(q, 0, sizeof *q);
}

void emu_quota_reset(emu_quota *q)
{
  entries_free(q->entries);
  q->entries = NULL;
}

chatapp_status emu_quota_set_op(emu_quota *q, const char *op, unsigned n)
{
  size_t i;
  struct emu_qop *v;
  char *c;

  for (i = 0; i < q->nops; i++) {
    if (strcmp(q->ops[i].op, op) == 0) {
      q->ops[i].limit = n;
      return CHATAPP_OK;
    }
  }
  c = strdup(op);
  v = c ? realloc(q->ops, (q->nops + 1) * sizeof *v) : NULL;
  if (!v) {
    free(c);
    return CHATAPP_ENOMEM;
  }
  q->ops = v;
  q->ops[q->nops].op = c;
  q->ops[q->nops].limit = n;
  q->nops++;
  return CHATAPP_OK;
}

unsigned emu_quota_limit(const emu_quota *q, const char *op)
{
  size_t i;

  for (i = 0; i < q->nops; i++)
    if (strcmp(q->ops[i].op, op) == 0)
      return q->ops[i].limit;
  return q->default_limit;
}

static int same(const char *a, const char *b)
{
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The entry for (account, op), created on first use; NULL: no memory. */
static emu_qentry *entry(emu_quota *q, const char *account, const char *op)
{
  emu_qentry *e, **tail = &q->entries;

  for (e = q->entries; e; e = e->next) {
    if (same(e->account, account) && strcmp(e->op, op) == 0)
      return e;
    tail = &e->next;
  }
  e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  e->op = strdup(op);
  e->account = account ? strdup(account) : NULL;
  if (!e->op || (account && !e->account)) {
    entries_free(e);
    return NULL;
  }
  *tail = e;
  return e;
}

/* Index of the first logged time > t. */
static size_t upper(const emu_tlog *l, int64_t t)
{
  size_t lo = 0, hi = l->n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (l->t[mid] <= t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Logged times in (s - W, s]. */
static size_t in_window(const emu_tlog *l, int64_t s)
{
  return upper(l, s) - upper(l, s - EMU_WINDOW_US);
}

/*
 * The largest count of any window containing t, counting t itself once
 * more when extra is set (t not yet logged).
 */
static size_t busiest_with(const emu_tlog *l, int64_t t, size_t extra)
{
  size_t best = in_window(l, t) + extra, i;

  for (i = upper(l, t); i < l->n && l->t[i] < t + EMU_WINDOW_US; i++) {
    size_t c = in_window(l, l->t[i]) + extra;
    if (c > best)
      best = c;
  }
  return best;
}

static void prune(emu_tlog *l, int64_t now_us)
{
  size_t k = upper(l, now_us - KEEP_US);

  if (k) {
    memmove(l->t, l->t + k, (l->n - k) * sizeof *l->t);
    l->n -= k;
  }
}

static int insert(emu_tlog *l, int64_t t)
{
  size_t at;

  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 32;
    int64_t *v = realloc(l->t, cap * sizeof *v);
    if (!v)
      return -1;
    l->t = v;
    l->cap = cap;
  }
  at = upper(l, t);
  memmove(l->t + at + 1, l->t + at, (l->n - at) * sizeof *l->t);
  l->t[at] = t;
  l->n++;
  return 0;
}

int emu_quota_admit(emu_quota *q, const char *account, const char *op,
                    int64_t t_us, int64_t now_us, unsigned limit,
                    int64_t *retry_ms)
{
  emu_qentry *e = entry(q, account, op);
  emu_qentry *s = entry(q, NULL, op);
  size_t c;

  if (!e || !s)
    return -1;
  if (t_us < now_us - CLAMP_US)
    t_us = now_us - CLAMP_US;
  prune(&e->log, now_us);
  prune(&s->log, now_us);
  if (busiest_with(&e->log, t_us, 1) > limit) {
    e->throttled++;
    s->throttled++;
    if (retry_ms) {
      /* Until enough of the calls in (now - W, now] have left it. */
      size_t first = upper(&e->log, now_us - EMU_WINDOW_US);
      size_t n = in_window(&e->log, now_us);
      int64_t wait = EMU_WINDOW_US;
      if (limit > 0 && n >= limit)
        wait = e->log.t[first + (n - limit)] + EMU_WINDOW_US - now_us;
      *retry_ms = wait <= 0 ? 1 : (wait + 999) / 1000;
    }
    return 0;
  }
  if (insert(&e->log, t_us) || insert(&s->log, t_us))
    return -1;
  e->accepted++;
  s->accepted++;
  c = busiest_with(&e->log, t_us, 0);
  if (c > e->busiest)
    e->busiest = c;
  c = busiest_with(&s->log, t_us, 0);
  if (c > s->busiest)
    s->busiest = c;
  return 1;
}
