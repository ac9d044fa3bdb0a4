/*
 * emu_faults.c: fault rules, set by --fault or POST /_emulator/faults.
 *
 * A rule is a JSON object (or "key=value,key=value" on the command line):
 *
 *   kind      latency | error | reset | truncate | malformed | drip |
 *             oversize | chunked | redirect | hang | quota | drop |
 *             gzip                                             (required)
 *   op        only calls of this operation (default: all)
 *   p         probability that a matching call is hit (default 1)
 *   every     hit every Nth matching call (3 = the 3rd, 6th, ...)
 *   next      hit only the next K matching calls, then the rule is gone
 *   for_ms    the rule is gone after this many milliseconds
 *
 * and per kind: latency {ms, jitter_ms}; error {code, status, message};
 * reset and truncate {after_bytes}; malformed {body, status}; drip
 * {interval_ms}; oversize {bytes, ms}; chunked {bytes (0 = endless), ms};
 * gzip {bytes (0 = endless), ms} (a gzip bomb: emu_gzip_bomb); redirect
 * {location, status}; hang {ms (0 = until the client gives up)}; quota
 * {quota}.  For oversize, chunked and gzip, ms delays the body: the
 * headers go at once, the first body byte ms later.  Any rule may add
 * retry_after / x_acs_retry_after: header values sent verbatim on the answers
 * it makes.
 *
 * Latency rules add up and apply to every API answer (rejections and
 * throttles too).  Quota rules lower the limit while they last.  The other
 * kinds replace the answer of an accepted call: the first rule, in the
 * order they were added, that hits wins.
 */
#include "emu.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ca_crypto.h"

static const char *const kind_names[EMU_FAULT_NKINDS] = {
  "latency", "error",    "reset", "truncate", "malformed", "drip", "oversize",
  "chunked", "redirect", "hang",  "quota",    "drop",      "gzip",
};

static const char *const fields[] = {
  "kind",
  "op",
  "p",
  "every",
  "next",
  "for_ms",
  "ms",
  "jitter_ms",
  "interval_ms",
  "after_bytes",
  "bytes",
  "status",
  "quota",
  "code",
  "message",
  "location",
  "body",
  "retry_after",
  "x_acs_retry_after",
  NULL,
};

const char *emu_fault_kind_name(emu_fault_kind k)
{
  return (unsigned)k < EMU_FAULT_NKINDS ? kind_names[k] : "?";
}

void emu_fault_free(emu_fault *f)
{
  if (!f)
    return;
  free(f->op);
  free(f->code);
  free(f->message);
  free(f->location);
  free(f->body);
  free(f->retry_after);
  free(f->x_acs_retry_after);
  free(f);
}

/* A number member (JSON number or numeric string): 1 found, 0 absent,
 * -1 malformed. */
static int num(const ca_json *o, const char *key, double *out)
{
  const ca_json *m = ca_json_get(o, key);
  char *end;

  if (!m)
    return 0;
  if (m->type == CA_JSON_NUMBER) {
    *out = m->num;
    return 1;
  }
  if (m->type != CA_JSON_STRING || !*m->str)
    return -1;
  errno = 0;
  *out = strtod(m->str, &end);
  return (*end || errno || !isfinite(*out)) ? -1 : 1;
}

/* A string member copied into *out: 0 ok (absent leaves *out), -1. */
static int str(const ca_json *o, const char *key, char **out)
{
  const ca_json *m = ca_json_get(o, key);

  if (!m)
    return 0;
  if (m->type != CA_JSON_STRING)
    return -1;
  *out = strdup(m->str);
  return *out ? 0 : -1;
}

static unsigned default_status(const char *code)
{
  if (strcmp(code, "ServiceUnavailable") == 0)
    return 503;
  if (strcmp(code, "InternalError") == 0)
    return 500;
  return 400; /* Throttling*, System.LimitControl, request errors */
}

static const char *default_message(const char *code)
{
  if (strncmp(code, "Throttling.User", 15) == 0)
    return "Request was denied due to user flow control.";
  if (strncmp(code, "Throttling.Api", 14) == 0)
    return "Request was denied due to api flow control.";
  if (strncmp(code, "Throttling", 10) == 0)
    return "Request was denied due to flow control.";
  if (strcmp(code, "System.LimitControl") == 0)
    return "The system is under flow control.";
  if (strcmp(code, "ServiceUnavailable") == 0)
    return "The request has failed due to a temporary failure of the "
           "server.";
  if (strcmp(code, "InternalError") == 0)
    return "The request processing has failed due to some unknown error, "
           "exception or failure.";
  return "Fault injected by chatapp-emulator.";
}

chatapp_status emu_fault_from_json(const ca_json *o, int64_t now_us,
                                   emu_fault **out, char *err, size_t errlen)
{
  emu_fault *f = NULL;
  const ca_json *m;
  const char *kind;
  double d;
  int k, r;
  size_t i;

  *out = NULL;
  if (!o || o->type != CA_JSON_OBJECT) {
    snprintf(err, errlen, "a fault rule is a JSON object");
    return CHATAPP_EINVAL;
  }
  for (m = o->child; m; m = m->next) {
    for (i = 0; fields[i] && strcmp(fields[i], m->key) != 0; i++)
      ;
    if (!fields[i]) {
      snprintf(err, errlen, "unknown field \"%s\" in a fault rule", m->key);
      return CHATAPP_EINVAL;
    }
  }
  kind = ca_json_get_str(o, "kind");
  if (!ca_json_get(o, "kind") && ca_json_get(o, "quota"))
    kind = "quota"; /* {"quota":5,"for_ms":10000} */
  for (k = 0; kind && k < EMU_FAULT_NKINDS; k++)
    if (strcmp(kind, kind_names[k]) == 0)
      break;
  if (!kind || k == EMU_FAULT_NKINDS) {
    snprintf(err, errlen,
             "\"kind\" must be one of latency, error, reset, "
             "truncate, malformed, drip, oversize, chunked, "
             "redirect, hang, quota, drop, gzip");
    return CHATAPP_EINVAL;
  }
  f = calloc(1, sizeof *f);
  if (!f)
    return CHATAPP_ENOMEM;
  f->kind = (emu_fault_kind)k;
  f->p = 1;
  f->next = -1;
  f->after_bytes = -1;
  f->interval_ms = 1000;
  f->bytes = f->kind == EMU_FAULT_OVERSIZE ? 100LL * 1024 * 1024 : 0;
  if (str(o, "op", &f->op) || str(o, "code", &f->code) ||
      str(o, "message", &f->message) || str(o, "location", &f->location) ||
      str(o, "body", &f->body) || str(o, "retry_after", &f->retry_after) ||
      str(o, "x_acs_retry_after", &f->x_acs_retry_after)) {
    snprintf(err, errlen,
             "op, code, message, location, body, retry_after "
             "and x_acs_retry_after are strings");
    goto bad;
  }
#define NUMFIELD(name, lo, hi, assign)                                         \
  r = num(o, name, &d);                                                        \
  if (r < 0 || (r > 0 && (d < (lo) || d > (hi)))) {                            \
    snprintf(err, errlen, "\"%s\" must be a number from %g to %g", name,       \
             (double)(lo), (double)(hi));                                      \
    goto bad;                                                                  \
  }                                                                            \
  if (r > 0)                                                                   \
    assign;
  NUMFIELD("p", 0, 1, f->p = d)
  NUMFIELD("every", 1, 1e9, f->every = (unsigned)d)
  NUMFIELD("next", 1, 1e15, f->next = (long long)d)
  NUMFIELD("for_ms", 1, 1e12, f->until_us = now_us + (int64_t)(d * 1000))
  NUMFIELD("ms", 0, 1e9, f->ms = (long long)d)
  NUMFIELD("jitter_ms", 0, 1e9, f->jitter_ms = (long long)d)
  NUMFIELD("interval_ms", 1, 1e7, f->interval_ms = (long long)d)
  NUMFIELD("after_bytes", 0, 1e12, f->after_bytes = (long long)d)
  NUMFIELD("bytes", 0, 1e15, f->bytes = (long long)d)
  NUMFIELD("status", 100, 599, f->status = (unsigned)d)
  NUMFIELD("quota", 0, 1e6, f->quota = (unsigned)d)
#undef NUMFIELD
  switch (f->kind) {
  case EMU_FAULT_LATENCY:
    if (!ca_json_get(o, "ms")) {
      snprintf(err, errlen, "a latency rule needs \"ms\"");
      goto bad;
    }
    break;
  case EMU_FAULT_ERROR:
    if (!f->code && !(f->code = strdup("InternalError")))
      goto nomem;
    if (!f->status)
      f->status = default_status(f->code);
    if (!f->message && !(f->message = strdup(default_message(f->code))))
      goto nomem;
    break;
  case EMU_FAULT_REDIRECT:
    if (!f->location || !*f->location) {
      snprintf(err, errlen, "a redirect rule needs \"location\"");
      goto bad;
    }
    if (!f->status)
      f->status = 302;
    if (f->status < 300 || f->status > 399) {
      snprintf(err, errlen, "a redirect's status is 3xx");
      goto bad;
    }
    break;
  case EMU_FAULT_MALFORMED:
    if (!f->status)
      f->status = 200;
    break;
  case EMU_FAULT_QUOTA:
    if (!ca_json_get(o, "quota")) {
      snprintf(err, errlen, "a quota rule needs \"quota\"");
      goto bad;
    }
    break;
  default:
    break;
  }
  *out = f;
  return CHATAPP_OK;
nomem:
  emu_fault_free(f);
  return CHATAPP_ENOMEM;
bad:
  emu_fault_free(f);
  return CHATAPP_EINVAL;
}

chatapp_status emu_fault_parse(const char *spec, size_t len, int64_t now_us,
                               emu_fault **out, char *err, size_t errlen)
{
  ca_buf json = CA_BUF_INIT(64 * 1024);
  ca_json_doc *doc = NULL;
  chatapp_status st = CHATAPP_OK;
  size_t i = 0;

  *out = NULL;
  while (len && (*spec == ' ' || *spec == '\t')) {
    spec++;
    len--;
  }
  if (len && *spec == '{') {
    st = ca_buf_add(&json, spec, len);
  } else {
    /* kind=error,code=X,p=0.5 -> {"kind":"error","code":"X","p":"0.5"} */
    st = ca_buf_addc(&json, '{');
    while (!st && i < len) {
      size_t s = i, eq;
      while (i < len && spec[i] != ',')
        i++;
      for (eq = s; eq < i && spec[eq] != '='; eq++)
        ;
      if (eq == i || eq == s) {
        snprintf(err, errlen, "expected key=value in \"%.*s\"", (int)(i - s),
                 spec + s);
        st = CHATAPP_EINVAL;
        break;
      }
      if (json.len > 1)
        st = ca_buf_addc(&json, ',');
      if (!st)
        st = emu_json_str(&json, spec + s, eq - s);
      if (!st)
        st = ca_buf_addc(&json, ':');
      if (!st)
        st = emu_json_str(&json, spec + eq + 1, i - eq - 1);
      if (i < len)
        i++;
    }
    if (!st)
      st = ca_buf_addc(&json, '}');
  }
  if (!st) {
    char jerr[128];
    doc = ca_json_parse(json.ptr, json.len, 8, 0, jerr, sizeof jerr);
    if (!doc) {
      snprintf(err, errlen, "fault rule: %s", jerr);
      st = CHATAPP_EINVAL;
    }
  }
  if (!st)
    st = emu_fault_from_json(ca_json_root(doc), now_us, out, err, errlen);
  ca_json_free(doc);
  ca_buf_free(&json);
  return st;
}

void emu_faults_add(emu_faults *fs, emu_fault *f)
{
  emu_fault **tail = &fs->head;

  while (*tail)
    tail = &(*tail)->nextf;
  f->id = ++fs->next_id;
  f->nextf = NULL;
  *tail = f;
}

void emu_faults_clear(emu_faults *fs)
{
  while (fs->head) {
    emu_fault *n = fs->head->nextf;
    emu_fault_free(fs->head);
    fs->head = n;
  }
}

int emu_faults_remove(emu_faults *fs, unsigned id)
{
  emu_fault **pp;

  for (pp = &fs->head; *pp; pp = &(*pp)->nextf) {
    if ((*pp)->id == id) {
      emu_fault *f = *pp;
      *pp = f->nextf;
      emu_fault_free(f);
      return 1;
    }
  }
  return 0;
}

void emu_faults_expire(emu_faults *fs, int64_t now_us)
{
  emu_fault **pp = &fs->head;

  while (*pp) {
    emu_fault *f = *pp;
    if ((f->until_us && now_us >= f->until_us) || f->next == 0) {
      *pp = f->nextf;
      emu_fault_free(f);
    } else {
      pp = &f->nextf;
    }
  }
}

/* A uniform double in [0, 1). */
static double rnd(emu_faults *fs)
{
  uint64_t x = fs->rng;

  if (!x && (ca_random(&x, sizeof x) != CHATAPP_OK || !x))
    x = (uint64_t)emu_mono_us() | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  fs->rng = x;
  return (double)(x >> 11) / 9007199254740992.0;
}

/* A rule's op scopes it to that operation, or to a family of endpoints:
 * "metadata" also matches "metadata.token" and the other metadata
 * endpoints.  A rule without op hits every CAMS operation but no
 * credential endpoint (STS, metadata, credentials URI), which only rules
 * naming them hit. */
static int op_matches(const char *rule_op, const char *op)
{
  size_t n;

  if (!rule_op)
    return !emu_op_is_credential(op);
  if (!op)
    return 0;
  n = strlen(rule_op);
  return strncmp(rule_op, op, n) == 0 && (op[n] == '\0' || op[n] == '.');
}

static int applies(const emu_fault *f, const char *op, int64_t now_us)
{
  if (f->until_us && now_us >= f->until_us)
    return 0;
  if (f->next == 0)
    return 0;
  return op_matches(f->op, op);
}

/* Count a matching call; 1 if the rule hits it. */
static int hits(emu_faults *fs, emu_fault *f)
{
  f->matched++;
  if (f->every && f->matched % f->every != 0)
    return 0;
  if (f->p < 1 && rnd(fs) >= f->p)
    return 0;
  if (f->next > 0)
    f->next--;
  f->fired++;
  return 1;
}

int64_t emu_faults_latency(emu_faults *fs, const char *op, int64_t now_us)
{
  emu_fault *f;
  int64_t total = 0;

  for (f = fs->head; f; f = f->nextf) {
    if (f->kind != EMU_FAULT_LATENCY || !applies(f, op, now_us) || !hits(fs, f))
      continue;
    {
      double j = f->jitter_ms ? (2 * rnd(fs) - 1) * (double)f->jitter_ms : 0;
      double ms = (double)f->ms + j;
      if (ms > 0)
        total += (int64_t)(ms * 1000);
    }
  }
  return total;
}

emu_fault *emu_faults_pick(emu_faults *fs, const char *op, int64_t now_us)
{
  emu_fault *f;

  for (f = fs->head; f; f = f->nextf) {
    if (f->kind == EMU_FAULT_LATENCY || f->kind == EMU_FAULT_QUOTA ||
        f->kind == EMU_FAULT_DROP || !applies(f, op, now_us))
      continue;
    if (hits(fs, f))
      return f;
  }
  return NULL;
}

emu_fault *emu_faults_drop(emu_faults *fs, int64_t now_us)
{
  emu_fault *f;

  for (f = fs->head; f; f = f->nextf)
    if (f->kind == EMU_FAULT_DROP && applies(f, "connection", now_us) &&
        hits(fs, f))
      return f;
  return NULL;
}

int emu_faults_quota(emu_faults *fs, const char *op, int64_t now_us,
                     unsigned *limit)
{
  emu_fault *f;
  int found = 0;

  for (f = fs->head; f; f = f->nextf) {
    if (f->kind != EMU_FAULT_QUOTA || !applies(f, op, now_us))
      continue;
    if (!found || f->quota < *limit)
      *limit = f->quota;
    found = 1;
  }
  return found;
}

chatapp_status emu_faults_json(const emu_faults *fs, ca_buf *b, int64_t now_us)
{
  const emu_fault *f;
  chatapp_status st = ca_buf_addc(b, '[');

  for (f = fs->head; f && !st; f = f->nextf) {
    st = ca_buf_printf(
      b, "%s{\"id\":%u,\"kind\":\"%s\",\"op\":", f == fs->head ? "" : ",",
      f->id, emu_fault_kind_name(f->kind));
    if (!st)
      st = emu_json_strz(b, f->op);
    if (!st)
      st = ca_buf_printf(
        b,
        ",\"p\":%g,\"every\":%u,\"next\":%lld,"
        "\"remaining_ms\":%lld,\"matched\":%llu,"
        "\"fired\":%llu",
        f->p, f->every, f->next,
        f->until_us ? (long long)((f->until_us - now_us) / 1000) : -1LL,
        (unsigned long long)f->matched, (unsigned long long)f->fired);
    if (!st && f->kind == EMU_FAULT_LATENCY)
      st = ca_buf_printf(b, ",\"ms\":%lld,\"jitter_ms\":%lld", f->ms,
                         f->jitter_ms);
    if (!st && f->kind == EMU_FAULT_QUOTA)
      st = ca_buf_printf(b, ",\"quota\":%u", f->quota);
    if (!st && f->status)
      st = ca_buf_printf(b, ",\"status\":%u", f->status);
    if (!st && f->code) {
      st = ca_buf_adds(b, ",\"code\":");
      if (!st)
        st = emu_json_strz(b, f->code);
    }
    if (!st && f->location) {
      st = ca_buf_adds(b, ",\"location\":");
      if (!st)
        st = emu_json_strz(b, f->location);
    }
    if (!st && (f->kind == EMU_FAULT_DRIP))
      st = ca_buf_printf(b, ",\"interval_ms\":%lld", f->interval_ms);
    if (!st && (f->kind == EMU_FAULT_RESET || f->kind == EMU_FAULT_TRUNCATE))
      st = ca_buf_printf(b, ",\"after_bytes\":%lld", f->after_bytes);
    if (!st && (f->kind == EMU_FAULT_OVERSIZE || f->kind == EMU_FAULT_CHUNKED ||
                f->kind == EMU_FAULT_GZIP))
      st = ca_buf_printf(b, ",\"bytes\":%lld", f->bytes);
    if (!st && (f->kind == EMU_FAULT_HANG || f->kind == EMU_FAULT_OVERSIZE ||
                f->kind == EMU_FAULT_CHUNKED || f->kind == EMU_FAULT_GZIP))
      st = ca_buf_printf(b, ",\"ms\":%lld", f->ms);
    if (!st)
      st = ca_buf_addc(b, '}');
  }
  if (!st)
    st = ca_buf_addc(b, ']');
  return st;
}

/*
 * A port whose connects never complete (B2 of docs/reliability.md): a
 * listening socket with a backlog of 0 that nobody accepts from, its one
 * accept-queue slot taken by a connection of our own.  Linux drops a SYN
 * that arrives at a listener whose accept queue is full (no RST, no
 * SYN-ACK), so a client's connect stays in SYN-SENT, retransmitting, until
 * its own connect timeout.
 */
int emu_stall_listen(int fds[2], unsigned *port, char *err, size_t errlen)
{
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  struct timeval tv = {2, 0}; /* the filler's own connect: bounded */

  fds[0] = fds[1] = -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fds[0] < 0 || bind(fds[0], (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(fds[0], 0) != 0 ||
      getsockname(fds[0], (struct sockaddr *)&a, &alen) != 0)
    goto fail;
  fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fds[1] < 0 ||
      setsockopt(fds[1], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
      connect(fds[1], (struct sockaddr *)&a, sizeof a) != 0)
    goto fail;
  *port = ntohs(a.sin_port);
  return 0;
fail:
  snprintf(err, errlen, "the stalling port on 127.0.0.1: %s", strerror(errno));
  if (fds[1] >= 0)
    close(fds[1]);
  if (fds[0] >= 0)
    close(fds[0]);
  fds[0] = fds[1] = -1;
  return -1;
}

/*
 * The gzip fault's body: a 10-byte gzip header, then one deflate block with
 * the fixed Huffman codes (RFC 1951, 3.2.6) that never ends: a literal 0,
 * then matches of length 258 at distance 1 (code 285, 8 bits, then
 * distance code 0, 5 bits).  Bits are packed from the low end of each
 * byte, Huffman codes from their high bit.  The header (BFINAL 0, BTYPE
 * 01) and the literal take 11 bits, then the 13-bit match repeats: 8 of
 * them (104 bits, 13 bytes, 2,064 zero bytes inflated) make the period, so
 * the stream is its first 2 bytes and then 13 bytes over and over.
 */
static void gzip_bomb_bytes(unsigned char out[15])
{
  unsigned char s[32];
  size_t bit = 0;
  int i, k;

  memset(s, 0, sizeof s);
#define PUT(v) (s[bit / 8] |= (unsigned char)((v) << (bit % 8)), bit++)
  PUT(0); /* BFINAL */
  PUT(1); /* BTYPE 01, low bit first */
  PUT(0);
  for (k = 7; k >= 0; k--)
    PUT((0x30 >> k) & 1); /* literal 0: 00110000 */
  for (i = 0; i < 10; i++) {
    for (k = 7; k >= 0; k--)
      PUT((0xC5 >> k) & 1); /* length 258: code 285, 11000101 */
    for (k = 4; k >= 0; k--)
      PUT(0); /* distance 1: code 0, 00000 */
  }
#undef PUT
  memcpy(out, s, 15);
}

size_t emu_gzip_bomb(uint64_t pos, char *buf, size_t max)
{
  /* ID1 ID2, CM 8 (deflate), no flags, no time, XFL 0, OS 3 (Unix) */
  static const unsigned char head[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  unsigned char s[15];
  size_t i;

  gzip_bomb_bytes(s);
  for (i = 0; i < max; i++, pos++) {
    if (pos < sizeof head)
      buf[i] = (char)head[pos];
    else if (pos - sizeof head < 2)
      buf[i] = (char)s[pos - sizeof head];
    else
      buf[i] = (char)s[2 + (pos - sizeof head - 2) % 13];
  }
  return max;
}
