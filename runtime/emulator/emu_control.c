/*
 * emu_control.c: the unsigned control endpoint under /_emulator/, on the
 * same port (loopback only), so a test can change the emulator mid-run:
 *
 *   GET    /_emulator/health        {"ok":true}
 *   GET    /_emulator/stats         counters and busiest 1 s windows
 *   GET    /_emulator/faults        the active fault rules
 *   POST   /_emulator/faults        add rules: one object, an array, or
 *                                   {"faults":[...]}; answers their ids
 *   DELETE /_emulator/faults        remove every rule
 *   DELETE /_emulator/faults/ID     remove one rule
 *   POST   /_emulator/quota         shorthand for a quota rule:
 *                                   {"quota":5,"for_ms":10000,"op":...}
 *   POST   /_emulator/credentials/expire  every temporary key issued so
 *                                   far expires now (emu_sts_keys.c)
 *   POST   /_emulator/reset         rules, quota logs, statistics and data
 *                                   back to how they were at start (the
 *                                   nonce cache is kept: replays stay
 *                                   replays)
 *   ANY    /_emulator/sink[/NAME]   a webhook receiver (emu_sink.c)
 *   GET    /_emulator/deliveries    what it received; DELETE forgets
 *
 * The live data, so a test can make a number change while the emulator
 * runs (?space=ID picks a space by cust_space_id; else ?account=UID that
 * account's own space; else the first default space):
 *
 *   GET    /_emulator/numbers       every space ({"spaces":[...]}, the
 *                                   fixture format); ?space=ID: that one
 *   POST   /_emulator/numbers       add numbers: one API-shaped object or
 *                                   an array (409 if one exists)
 *   PATCH  /_emulator/numbers/PHONE members to set; null removes one
 *   DELETE /_emulator/numbers/PHONE remove the number
 *   POST   /_emulator/spaces        add a space (fixture format)
 *
 * Bodies are at most EMU_MAX_BODY bytes and nested at most BODY_DEPTH
 * deep; anything else is a 400 saying what is wrong.
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_DEPTH 64 /* as fixtures */

void emu_counts_add(emu_counts *c, const char *key)
{
  size_t i;
  struct emu_count *v;
  char *k;

  for (i = 0; i < c->n; i++) {
    if (strcmp(c->v[i].key, key) == 0) {
      c->v[i].n++;
      return;
    }
  }
  k = strdup(key);
  v = k ? realloc(c->v, (c->n + 1) * sizeof *v) : NULL;
  if (!v) {
    free(k);
    return; /* a statistic lost to memory pressure */
  }
  c->v = v;
  c->v[c->n].key = k;
  c->v[c->n].n = 1;
  c->n++;
}

static void counts_free(emu_counts *c)
{
  size_t i;

  for (i = 0; i < c->n; i++)
    free(c->v[i].key);
  free(c->v);
  c->v = NULL;
  c->n = 0;
}

void emu_stats_reset(emu_stats *s, int64_t now_us)
{
  counts_free(&s->rejected_by_code);
  counts_free(&s->faults_by_kind);
  counts_free(&s->answers_by_code);
  memset(s, 0, sizeof *s);
  s->started_us = now_us;
}

static chatapp_status counts_json(ca_buf *b, const emu_counts *c)
{
  chatapp_status st = ca_buf_addc(b, '{');
  size_t i;

  for (i = 0; i < c->n && !st; i++) {
    if (i)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = emu_json_strz(b, c->v[i].key);
    if (!st)
      st = ca_buf_printf(b, ":%llu", (unsigned long long)c->v[i].n);
  }
  if (!st)
    st = ca_buf_addc(b, '}');
  return st;
}

static chatapp_status qentry_json(ca_buf *b, const emu_qentry *q)
{
  chatapp_status st = emu_json_strz(b, q->op);

  if (!st)
    st = ca_buf_printf(b,
                       ":{\"accepted\":%llu,\"throttled\":%llu,"
                       "\"busiest_1s\":%zu}",
                       (unsigned long long)q->accepted,
                       (unsigned long long)q->throttled, q->busiest);
  return st;
}

static chatapp_status stats_json(emu *e, ca_buf *b, int64_t now)
{
  const emu_stats *s = &e->stats;
  const emu_qentry *q, *r;
  chatapp_status st;
  int first = 1;
  const emu_fault *f;
  size_t nf = 0, i;

  for (f = e->faults.head; f; f = f->nextf)
    nf++;
  st = ca_buf_printf(
    b,
    "{\"uptime_ms\":%lld,\"requests\":%llu,\"accepted\":%llu,\"ok\":%llu,"
    "\"throttled\":%llu,\"rejected\":%llu,\"faulted\":%llu,"
    "\"control\":%llu,\"nonces_remembered\":%zu,\"faults_active\":%zu,"
    "\"rejected_by_code\":",
    (long long)((now - s->started_us) / 1000), (unsigned long long)s->requests,
    (unsigned long long)s->accepted, (unsigned long long)s->ok,
    (unsigned long long)s->throttled, (unsigned long long)s->rejected,
    (unsigned long long)s->faulted, (unsigned long long)s->control,
    emu_nonces_count(&e->nonces), nf);
  if (!st)
    st = counts_json(b, &s->rejected_by_code);
  if (!st)
    st = ca_buf_adds(b, ",\"faults_by_kind\":");
  if (!st)
    st = counts_json(b, &s->faults_by_kind);
  if (!st)
    st = ca_buf_adds(b, ",\"answers_by_code\":");
  if (!st)
    st = counts_json(b, &s->answers_by_code);
  if (!st)
    st = ca_buf_printf(b, ",\"quota\":{\"default\":%u,\"ops\":{",
                       e->quota.default_limit);
  for (i = 0; i < e->quota.nops && !st; i++) {
    if (i)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = emu_json_strz(b, e->quota.ops[i].op);
    if (!st)
      st = ca_buf_printf(b, ":%u", e->quota.ops[i].limit);
  }
  if (!st)
    st = ca_buf_adds(b, "}},\"operations\":{");
  for (q = e->quota.entries; q && !st; q = q->next) {
    if (q->account)
      continue;
    if (!first)
      st = ca_buf_addc(b, ',');
    first = 0;
    if (!st)
      st = qentry_json(b, q);
  }
  if (!st)
    st = ca_buf_adds(b, "},\"accounts\":{");
  first = 1;
  for (q = e->quota.entries; q && !st; q = q->next) {
    int seen = 0, inner = 1;
    if (!q->account)
      continue;
    for (r = e->quota.entries; r != q; r = r->next)
      if (r->account && strcmp(r->account, q->account) == 0)
        seen = 1;
    if (seen)
      continue;
    if (!first)
      st = ca_buf_addc(b, ',');
    first = 0;
    if (!st)
      st = emu_json_strz(b, q->account);
    if (!st)
      st = ca_buf_adds(b, ":{");
    for (r = q; r && !st; r = r->next) {
      if (!r->account || strcmp(r->account, q->account) != 0)
        continue;
      if (!inner)
        st = ca_buf_addc(b, ',');
      inner = 0;
      if (!st)
        st = qentry_json(b, r);
    }
    if (!st)
      st = ca_buf_addc(b, '}');
  }
  if (!st)
    st = ca_buf_printf(
      b,
      "},\"connections\":{\"tls\":%s,\"tls_tickets\":%s,\"open\":%llu,"
      "\"opened\":%llu,"
      "\"closed\":%llu,\"open_max\":%llu,\"tls_handshakes\":%llu,"
      "\"tls_resumed\":%llu,\"dropped\":%llu",
      e->tls ? "true" : "false", e->tls_ticket_key ? "true" : "false",
      (unsigned long long)e->conns.open, (unsigned long long)e->conns.opened,
      (unsigned long long)e->conns.closed,
      (unsigned long long)e->conns.open_max,
      (unsigned long long)e->conns.tls_handshakes,
      (unsigned long long)e->conns.tls_resumed,
      (unsigned long long)e->conns.dropped);
  if (!st)
    st = ca_buf_adds(b, "},\"credentials\":");
  if (!st)
    st = emu_sts_stats_json(&e->sts, b);
  if (!st)
    st = ca_buf_addc(b, '}');
  return st;
}

static void reply(emu_answer *a, unsigned status, const char *json)
{
  a->status = status;
  snprintf(a->code, sizeof a->code, status < 300 ? "OK" : "Error");
  ca_buf_reset(&a->body);
  (void)ca_buf_adds(&a->body, json);
}

static void reply_error(emu_answer *a, unsigned status, const char *msg)
{
  a->status = status;
  snprintf(a->code, sizeof a->code, "Error");
  ca_buf_reset(&a->body);
  if (ca_buf_adds(&a->body, "{\"ok\":false,\"error\":") ||
      emu_json_strz(&a->body, msg) || ca_buf_addc(&a->body, '}')) {
    ca_buf_reset(&a->body);
    (void)ca_buf_adds(&a->body, "{\"ok\":false}");
  }
}

/* Parse every rule of body first, then add them all (or none). */
static void add_faults(emu *e, const emu_request *rq, int quota_only,
                       emu_answer *a)
{
  char jerr[160], err[256];
  ca_json_doc *doc = ca_json_parse(ca_buf_str(&rq->body), rq->body.len, 16, 0,
                                   jerr, sizeof jerr);
  const ca_json *root = doc ? ca_json_root(doc) : NULL, *list, *m;
  emu_fault **fs = NULL;
  size_t n = 0, i;
  int64_t now = emu_mono_us();
  chatapp_status st = CHATAPP_OK;
  ca_buf out = CA_BUF_INIT(64 * 1024);

  if (!doc) {
    snprintf(err, sizeof err, "body: %s", jerr);
    reply_error(a, 400, err);
    goto out;
  }
  list = root;
  if (root->type == CA_JSON_OBJECT && ca_json_get(root, "faults"))
    list = ca_json_get(root, "faults");
  if (quota_only &&
      (root->type != CA_JSON_OBJECT || ca_json_get(root, "kind"))) {
    reply_error(a, 400, "expected {\"quota\":N, \"for_ms\":MS, \"op\":...}");
    goto out;
  }
  fs = calloc(list->type == CA_JSON_ARRAY ? list->count + 1 : 1, sizeof *fs);
  if (!fs) {
    reply_error(a, 500, "out of memory");
    goto out;
  }
  for (m = list->type == CA_JSON_ARRAY ? list->child : list; m && !st;
       m = list->type == CA_JSON_ARRAY ? m->next : NULL) {
    err[0] = '\0';
    st = emu_fault_from_json(m, now, &fs[n], err, sizeof err);
    if (!st)
      n++;
  }
  if (st) {
    reply_error(a, st == CHATAPP_ENOMEM ? 500 : 400,
                *err ? err : "out of memory");
    goto out;
  }
  pthread_mutex_lock(&e->lock);
  st = ca_buf_adds(&out, "{\"ok\":true,\"ids\":[");
  for (i = 0; i < n; i++) {
    emu_faults_add(&e->faults, fs[i]);
    if (!st)
      st = ca_buf_printf(&out, "%s%u", i ? "," : "", fs[i]->id);
    fs[i] = NULL;
  }
  pthread_mutex_unlock(&e->lock);
  if (!st)
    st = ca_buf_adds(&out, "]}");
  reply(a, 200, st ? "{\"ok\":true}" : out.ptr);
out:
  for (i = 0; fs && i < n; i++)
    emu_fault_free(fs[i]);
  free(fs);
  ca_buf_free(&out);
  ca_json_free(doc);
}

/* The JSON body of a control request, or NULL after answering 400. */
static ca_json_doc *body_json(const emu_request *rq, emu_answer *a)
{
  char jerr[160], err[256];
  ca_json_doc *doc;

  if (rq->body_too_big) {
    snprintf(err, sizeof err, "body: larger than %d bytes", EMU_MAX_BODY);
    reply_error(a, 400, err);
    return NULL;
  }
  if (rq->body.len == 0) {
    reply_error(a, 400, "body: empty (expected JSON)");
    return NULL;
  }
  doc = ca_json_parse(ca_buf_str(&rq->body), rq->body.len, BODY_DEPTH, 0, jerr,
                      sizeof jerr);
  if (!doc) {
    snprintf(err, sizeof err, "body: %s", jerr);
    reply_error(a, 400, err);
  }
  return doc;
}

/* The query parameters of rq into q; -1 after answering 400. */
static int query_of(const emu_request *rq, emu_kvs *q, emu_answer *a)
{
  const char *s = strchr(rq->raw_uri, '?');

  if (s && emu_parse_urlencoded(s + 1, strlen(s + 1), q) != 0) {
    reply_error(a, 400, "malformed query string (a bad %-escape or %00)");
    return -1;
  }
  return 0;
}

/* Percent-decode a path segment into out (outlen bytes; '+' stays '+', as
 * in "+6591234567"); -1 for a bad escape, %00 or a name too long. */
static int path_decode(const char *s, char *out, size_t outlen)
{
  size_t o = 0;

  for (; *s; s++) {
    char c = *s;
    if (c == '%') {
      int hi = s[1] ? ca_hexval(s[1]) : -1;
      int lo = hi >= 0 && s[2] ? ca_hexval(s[2]) : -1;
      if (lo < 0 || (hi == 0 && lo == 0))
        return -1;
      c = (char)(hi * 16 + lo);
      s += 2;
    }
    if (o + 1 >= outlen)
      return -1;
    out[o++] = c;
  }
  out[o] = '\0';
  return o ? 0 : -1;
}

/* ?space= or ?account= given (not empty): a numbers request names its
 * space; otherwise it goes to the first default space. */
static int names_space(const emu_kvs *q)
{
  const char *id = emu_kvs_get(q, "space");
  const char *acct = emu_kvs_get(q, "account");

  return (id && *id) || (acct && *acct);
}

/* The space a numbers request addresses (emu.lock held): ?space=ID, else
 * the own space of ?account=UID, else the first default space.  NULL
 * after answering 404. */
static emu_space *space_of(emu *e, const emu_kvs *q, emu_answer *a)
{
  const char *id = emu_kvs_get(q, "space");
  const char *acct = emu_kvs_get(q, "account");
  emu_space *s = NULL;
  char msg[256];
  size_t i;

  if (id && *id)
    s = emu_data_space_id(&e->data, id);
  else if (acct && *acct)
    s = emu_data_space(&e->data, NULL, acct);
  for (i = 0; !names_space(q) && !s && i < e->data.nspaces; i++)
    if (e->data.spaces[i].is_default)
      s = &e->data.spaces[i];
  if (s)
    return s;
  if (id && *id)
    snprintf(msg, sizeof msg,
             "no space \"%.64s\" (GET /_emulator/numbers lists them; POST "
             "/_emulator/spaces adds one)",
             id);
  else if (acct && *acct)
    snprintf(msg, sizeof msg, "no default space for account \"%.64s\"", acct);
  else
    snprintf(msg, sizeof msg, "no default space; name one with ?space=ID");
  reply_error(a, 404, msg);
  return NULL;
}

static void get_numbers(emu *e, const emu_request *rq, emu_answer *a)
{
  emu_kvs q = {NULL, 0, 0};
  ca_buf b = CA_BUF_INIT(EMU_MAX_ANSWER);
  emu_space *s = NULL;
  chatapp_status st = CHATAPP_OK;
  int one;

  if (query_of(rq, &q, a))
    goto out;
  one = names_space(&q);
  pthread_mutex_lock(&e->lock);
  if (one)
    s = space_of(e, &q, a);
  if (!one || s)
    st = emu_data_json(&e->data, s, &b);
  pthread_mutex_unlock(&e->lock);
  if (one && !s)
    goto out; /* answered 404 */
  if (st)
    reply_error(a, 500, "out of memory (or the data is over 64 MiB)");
  else
    reply(a, 200, b.ptr);
out:
  emu_kvs_free(&q);
  ca_buf_free(&b);
}

static int phone_cmp(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The first phone (in sorted order) of v[0..n) that s holds already or
 * that v holds twice, into *dup (NULL when none): sorted, so a body of
 * 50,000 numbers is not 10^9 comparisons under the lock. */
static chatapp_status first_duplicate(const emu_space *s, const emu_number *v,
                                      size_t n, const char **dup)
{
  const char **p = malloc((s->nnumbers + n) * sizeof *p);
  size_t i, k = 0;

  *dup = NULL;
  if (!p)
    return CHATAPP_ENOMEM;
  for (i = 0; i < s->nnumbers; i++)
    p[k++] = s->numbers[i].phone;
  for (i = 0; i < n; i++)
    p[k++] = v[i].phone;
  qsort(p, k, sizeof *p, phone_cmp);
  for (i = 1; i < k && !*dup; i++)
    if (strcmp(p[i - 1], p[i]) == 0)
      *dup = p[i];
  free(p);
  return CHATAPP_OK;
}

/* POST /_emulator/numbers: every number is checked first, then all are
 * added, or none. */
static void add_numbers(emu *e, const emu_request *rq, emu_answer *a)
{
  emu_kvs q = {NULL, 0, 0};
  ca_json_doc *doc = NULL;
  const ca_json *root, *m;
  emu_number *v = NULL;
  emu_space *s;
  size_t n = 0, i;
  char err[320], num_err[200];
  chatapp_status st = CHATAPP_OK;

  if (query_of(rq, &q, a) || !(doc = body_json(rq, a)))
    goto out;
  root = ca_json_root(doc);
  if (root->type == CA_JSON_ARRAY && root->count == 0) {
    reply_error(a, 400, "body: an empty array (no number to add)");
    goto out;
  }
  v = calloc(root->type == CA_JSON_ARRAY ? root->count : 1, sizeof *v);
  if (!v) {
    reply_error(a, 500, "out of memory");
    goto out;
  }
  for (m = root->type == CA_JSON_ARRAY ? root->child : root; m && !st;
       m = root->type == CA_JSON_ARRAY ? m->next : NULL) {
    num_err[0] = '\0';
    st = emu_number_from_json(m, &v[n], num_err, sizeof num_err);
    if (st) {
      snprintf(err, sizeof err, "body: number %zu: %s", n + 1,
               st == CHATAPP_ENOMEM ? "out of memory" : num_err);
      reply_error(a, st == CHATAPP_ENOMEM ? 500 : 400, err);
      goto out;
    }
    n++;
  }
  pthread_mutex_lock(&e->lock);
  s = space_of(e, &q, a);
  if (s) {
    const char *dup = NULL;
    st = first_duplicate(s, v, n, &dup);
    if (st) {
      reply_error(a, 500, "out of memory");
    } else if (dup) {
      snprintf(err, sizeof err,
               "number \"%.64s\" exists in space \"%.64s\" (PATCH it, or "
               "DELETE it first)",
               dup, s->cust_space_id);
      reply_error(a, 409, err);
      st = CHATAPP_EINVAL;
    }
  }
  if (s && !st) {
    st = emu_space_add_numbers(s, v, n);
    if (!st) {
      snprintf(err, sizeof err, "{\"ok\":true,\"added\":%zu,\"space\":", n);
      ca_buf_reset(&a->body);
      if (ca_buf_adds(&a->body, err) ||
          emu_json_strz(&a->body, s->cust_space_id) ||
          ca_buf_addc(&a->body, '}'))
        reply(a, 200, "{\"ok\":true}");
      a->status = 200;
      snprintf(a->code, sizeof a->code, "OK");
    } else if (st == CHATAPP_ENOMEM) {
      reply_error(a, 500, "out of memory");
    }
  }
  pthread_mutex_unlock(&e->lock);
out:
  for (i = 0; v && i < n; i++)
    emu_number_free(&v[i]); /* those not moved into the space */
  free(v);
  ca_json_free(doc);
  emu_kvs_free(&q);
}

/* PATCH or DELETE /_emulator/numbers/PHONE. */
static void change_number(emu *e, const emu_request *rq, const char *what,
                          int remove, emu_answer *a)
{
  emu_kvs q = {NULL, 0, 0};
  ca_json_doc *doc = NULL;
  emu_space *s;
  emu_number *num;
  char phone[200], err[320], perr[200];
  chatapp_status st;

  if (path_decode(what, phone, sizeof phone) != 0) {
    reply_error(a, 400,
                "numbers/PHONE: the phone number is empty, too long or "
                "badly %-escaped");
    goto out;
  }
  if (query_of(rq, &q, a) || (!remove && !(doc = body_json(rq, a))))
    goto out;
  pthread_mutex_lock(&e->lock);
  s = space_of(e, &q, a);
  num = s ? emu_space_number(s, phone) : NULL;
  if (s && !num) {
    snprintf(err, sizeof err, "no number \"%.64s\" in space \"%.64s\"", phone,
             s->cust_space_id);
    reply_error(a, 404, err);
  } else if (num && remove) {
    (void)emu_space_remove_number(s, phone);
    reply(a, 200, "{\"ok\":true}");
  } else if (num) {
    perr[0] = '\0';
    st = emu_number_patch(num, ca_json_root(doc), perr, sizeof perr);
    if (st) {
      snprintf(err, sizeof err, "body: %s", perr);
      reply_error(a, st == CHATAPP_ENOMEM ? 500 : 400, err);
    } else {
      ca_buf_reset(&a->body);
      if (ca_buf_adds(&a->body, "{\"ok\":true,\"number\":") ||
          emu_number_json(num, &a->body) || ca_buf_addc(&a->body, '}'))
        reply(a, 200, "{\"ok\":true}");
      a->status = 200;
      snprintf(a->code, sizeof a->code, "OK");
    }
  }
  pthread_mutex_unlock(&e->lock);
out:
  ca_json_free(doc);
  emu_kvs_free(&q);
}

/* POST /_emulator/spaces: one space object of the fixture format. */
static void add_space(emu *e, const emu_request *rq, emu_answer *a)
{
  ca_json_doc *doc = body_json(rq, a);
  emu_data one;
  char err[320], perr[256];
  chatapp_status st;

  if (!doc)
    return;
  perr[0] = '\0';
  st = emu_space_parse(ca_json_root(doc), &one, perr, sizeof perr);
  ca_json_free(doc);
  if (st) {
    snprintf(err, sizeof err, "body: %s", perr);
    reply_error(a, st == CHATAPP_ENOMEM ? 500 : 400, err);
    return;
  }
  pthread_mutex_lock(&e->lock);
  st = emu_data_take_space(&e->data, &one, perr, sizeof perr);
  pthread_mutex_unlock(&e->lock);
  if (st) {
    emu_data_free(&one);
    reply_error(a, st == CHATAPP_ENOMEM ? 500 : 409, perr);
    return;
  }
  reply(a, 200, "{\"ok\":true}");
}

static void reset_all(emu *e, emu_answer *a)
{
  emu_data fresh;
  int64_t now = emu_mono_us();

  if (emu_data_copy(&fresh, &e->pristine) != CHATAPP_OK) {
    reply_error(a, 500, "out of memory");
    return;
  }
  pthread_mutex_lock(&e->lock);
  emu_faults_clear(&e->faults);
  emu_quota_reset(&e->quota);
  emu_stats_reset(&e->stats, now);
  /* The open connections stay counted (this one among them). */
  e->conns.opened = e->conns.open_max = e->conns.open;
  e->conns.closed = e->conns.tls_handshakes = e->conns.dropped = 0;
  e->conns.tls_resumed = 0;
  emu_sts_stats_reset(&e->sts);
  emu_data_free(&e->data);
  e->data = fresh;
  pthread_mutex_unlock(&e->lock);
  reply(a, 200, "{\"ok\":true}");
}

void emu_control(emu *e, emu_request *rq, const char *path, emu_answer *a)
{
  const char *m = rq->method;
  int64_t now = emu_mono_us();
  ca_buf b = CA_BUF_INIT(EMU_MAX_ANSWER);
  chatapp_status st;

  pthread_mutex_lock(&e->lock);
  e->stats.control++;
  pthread_mutex_unlock(&e->lock);
  if (strcmp(path, "health") == 0 && strcmp(m, "GET") == 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "{\"ok\":true,\"port\":%u,\"version\":\"%s\"}",
             e->port, EMU_VERSION);
    reply(a, 200, msg);
  } else if (strcmp(path, "stats") == 0 && strcmp(m, "GET") == 0) {
    pthread_mutex_lock(&e->lock);
    st = stats_json(e, &b, now);
    pthread_mutex_unlock(&e->lock);
    if (st)
      reply_error(a, 500, "out of memory");
    else
      reply(a, 200, b.ptr);
  } else if (strcmp(path, "faults") == 0 && strcmp(m, "GET") == 0) {
    pthread_mutex_lock(&e->lock);
    emu_faults_expire(&e->faults, now);
    st = ca_buf_adds(&b, "{\"faults\":");
    if (!st)
      st = emu_faults_json(&e->faults, &b, now);
    pthread_mutex_unlock(&e->lock);
    if (!st)
      st = ca_buf_addc(&b, '}');
    if (st)
      reply_error(a, 500, "out of memory");
    else
      reply(a, 200, b.ptr);
  } else if (strcmp(path, "faults") == 0 && strcmp(m, "POST") == 0) {
    add_faults(e, rq, 0, a);
  } else if (strcmp(path, "quota") == 0 && strcmp(m, "POST") == 0) {
    add_faults(e, rq, 1, a);
  } else if (strcmp(path, "faults") == 0 && strcmp(m, "DELETE") == 0) {
    pthread_mutex_lock(&e->lock);
    emu_faults_clear(&e->faults);
    pthread_mutex_unlock(&e->lock);
    reply(a, 200, "{\"ok\":true}");
  } else if (strncmp(path, "faults/", 7) == 0 && strcmp(m, "DELETE") == 0) {
    char *end;
    unsigned long id = strtoul(path + 7, &end, 10);
    int found;
    pthread_mutex_lock(&e->lock);
    found = !*end && path[7] && emu_faults_remove(&e->faults, (unsigned)id);
    pthread_mutex_unlock(&e->lock);
    if (found)
      reply(a, 200, "{\"ok\":true}");
    else
      reply_error(a, 404, "no such fault rule");
  } else if (strcmp(path, "reset") == 0 && strcmp(m, "POST") == 0) {
    reset_all(e, a);
  } else if (strcmp(path, "credentials/expire") == 0 &&
             strcmp(m, "POST") == 0) {
    char msg[64];
    size_t n;
    pthread_mutex_lock(&e->lock);
    n = emu_sts_expire_all(&e->sts);
    pthread_mutex_unlock(&e->lock);
    snprintf(msg, sizeof msg, "{\"ok\":true,\"expired\":%zu}", n);
    reply(a, 200, msg);
  } else if (strcmp(path, "sink") == 0 || strncmp(path, "sink/", 5) == 0) {
    emu_sink_receive(e, rq, path, a);
  } else if (strcmp(path, "deliveries") == 0 && strcmp(m, "GET") == 0) {
    if (emu_sink_json(e, &b))
      reply_error(a, 500, "out of memory");
    else
      reply(a, 200, b.ptr);
  } else if (strcmp(path, "deliveries") == 0 && strcmp(m, "DELETE") == 0) {
    pthread_mutex_lock(&e->lock);
    emu_sink_clear(&e->sink);
    pthread_mutex_unlock(&e->lock);
    reply(a, 200, "{\"ok\":true}");
  } else if (strcmp(path, "numbers") == 0 && strcmp(m, "GET") == 0) {
    get_numbers(e, rq, a);
  } else if (strcmp(path, "numbers") == 0 && strcmp(m, "POST") == 0) {
    add_numbers(e, rq, a);
  } else if (strncmp(path, "numbers/", 8) == 0 && strcmp(m, "PATCH") == 0) {
    change_number(e, rq, path + 8, 0, a);
  } else if (strncmp(path, "numbers/", 8) == 0 && strcmp(m, "DELETE") == 0) {
    change_number(e, rq, path + 8, 1, a);
  } else if (strcmp(path, "spaces") == 0 && strcmp(m, "POST") == 0) {
    add_space(e, rq, a);
  } else if (strcmp(path, "health") == 0 || strcmp(path, "stats") == 0 ||
             strcmp(path, "faults") == 0 || strcmp(path, "quota") == 0 ||
             strcmp(path, "reset") == 0 || strncmp(path, "faults/", 7) == 0 ||
             strcmp(path, "credentials/expire") == 0 ||
             strcmp(path, "deliveries") == 0 || strcmp(path, "numbers") == 0 ||
             strncmp(path, "numbers/", 8) == 0 || strcmp(path, "spaces") == 0) {
    reply_error(a, 405, "method not allowed here");
  } else {
    reply_error(a, 404, "unknown control path; see chatapp-emulator --help");
  }
  ca_buf_free(&b);
}
