/*
 * emu_sink.c: a webhook receiver, so policies' webhook actions can be
 * tried and tested against the emulator with no other server:
 *
 *   ANY    /_emulator/sink[/NAME][?status=N&delay_ms=M]
 *                                  record the delivery; answer N (200)
 *                                  after M ms
 *   GET    /_emulator/deliveries   {"deliveries":[{...}, ...]}, oldest first
 *   DELETE /_emulator/deliveries   forget them
 *
 * A delivery records the method, path, query, arrival time, the headers a
 * receiver cares about (Content-Type, Idempotency-Key, User-Agent, and
 * whether Authorization was present, never its value) and the body (first
 * 64 KiB).  At most EMU_SINK_MAX are kept; older ones are dropped.
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (64 * 1024)

static chatapp_status header_json(ca_buf *b, const emu_request *rq,
                                  const char *name, const char *key)
{
  const char *v = emu_kvs_geti(&rq->headers, name);
  chatapp_status st = CHATAPP_OK;

  if (v) {
    st = ca_buf_printf(b, ",\"%s\":", key);
    if (!st)
      st = emu_json_strz(b, v);
  }
  return st;
}

/* The delivery as one JSON object. */
static chatapp_status delivery_json(ca_buf *b, const emu_request *rq,
                                    const char *path, unsigned long long n)
{
  const char *q = strchr(rq->raw_uri, '?');
  size_t body_len = rq->body.len < BODY_MAX ? rq->body.len : BODY_MAX;
  char when[32];
  chatapp_status st;

  emu_iso8601_ms(rq->arrival_wall_ms, when);
  st = ca_buf_printf(b, "{\"n\":%llu,\"at\":\"%s\",\"method\":", n, when);
  if (!st)
    st = emu_json_strz(b, rq->method);
  if (!st)
    st = ca_buf_adds(b, ",\"path\":");
  if (!st)
    st = emu_json_strz(b, path);
  if (!st)
    st = ca_buf_adds(b, ",\"query\":");
  if (!st)
    st = emu_json_strz(b, q ? q + 1 : "");
  if (!st)
    st = header_json(b, rq, "content-type", "content_type");
  if (!st)
    st = header_json(b, rq, "idempotency-key", "idempotency_key");
  if (!st)
    st = header_json(b, rq, "user-agent", "user_agent");
  if (!st)
    st = ca_buf_printf(b, ",\"authorization\":%s",
                       emu_kvs_geti(&rq->headers, "authorization") ? "true"
                                                                   : "false");
  if (!st)
    st = ca_buf_adds(b, ",\"body\":");
  if (!st)
    st = emu_json_str(b, ca_buf_str(&rq->body), body_len);
  if (!st)
    st = ca_buf_printf(b, ",\"body_bytes\":%zu}", rq->body.len);
  return st;
}

void emu_sink_receive(emu *e, emu_request *rq, const char *path, emu_answer *a)
{
  const char *q = strchr(rq->raw_uri, '?');
  emu_kvs params = {NULL, 0, 0};
  unsigned long status = 200;
  long long delay_ms = 0;
  ca_buf b = CA_BUF_INIT(BODY_MAX * 7 + 4096);
  char *item = NULL;
  const char *v;

  if (q)
    (void)emu_parse_urlencoded(q + 1, strlen(q + 1), &params);
  if ((v = emu_kvs_get(&params, "status")) != NULL) {
    status = strtoul(v, NULL, 10);
    if (status < 100 || status > 599)
      status = 200;
  }
  if ((v = emu_kvs_get(&params, "delay_ms")) != NULL)
    delay_ms = strtoll(v, NULL, 10);
  emu_kvs_free(&params);

  pthread_mutex_lock(&e->lock);
  e->sink.total++;
  if (delivery_json(&b, rq, path, (unsigned long long)e->sink.total) ==
      CHATAPP_OK)
    item = ca_buf_steal(&b);
  if (item) {
    if (e->sink.n == EMU_SINK_MAX) {
      free(e->sink.items[0]);
      memmove(e->sink.items, e->sink.items + 1,
              (EMU_SINK_MAX - 1) * sizeof *e->sink.items);
      e->sink.n--;
    }
    e->sink.items[e->sink.n++] = item;
  }
  pthread_mutex_unlock(&e->lock);
  ca_buf_free(&b);

  a->status = (unsigned)status;
  a->delay_us = delay_ms > 0 ? delay_ms * 1000 : 0;
  snprintf(a->code, sizeof a->code, status < 300 ? "OK" : "SinkStatus");
  ca_buf_reset(&a->body);
  (void)ca_buf_adds(&a->body,
                    status < 300 ? "{\"ok\":true}" : "{\"ok\":false}");
}

chatapp_status emu_sink_json(emu *e, ca_buf *b)
{
  chatapp_status st = ca_buf_adds(b, "{\"deliveries\":[");
  size_t i;

  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sink.n && !st; i++) {
    if (i)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = ca_buf_adds(b, e->sink.items[i]);
  }
  pthread_mutex_unlock(&e->lock);
  if (!st)
    st = ca_buf_adds(b, "]}");
  return st;
}

/* Forget every delivery; emu.lock held (or single-threaded at exit). */
void emu_sink_clear(emu_sink *s)
{
  size_t i;

  for (i = 0; i < s->n; i++)
    free(s->items[i]);
  s->n = 0;
}
