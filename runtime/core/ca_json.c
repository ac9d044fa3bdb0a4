#include "ca_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_crypto.h"

/* Arena: nodes and decoded strings live in chunks freed together. */
typedef struct chunk {
  struct chunk *next;
  size_t used, size;
  max_align_t data[]; /* flexible, aligned */
} chunk;

struct ca_json_doc {
  chunk *chunks;
  ca_json *root;
  int flags; /* CA_JSON_WIPE is read by ca_json_free() */
};

typedef struct parser {
  const char *p, *start, *end;
  int depth, max_depth, flags;
  ca_json_doc *doc;
  char *err;
  size_t errlen;
  int failed;
} parser;

static void *arena_alloc(parser *ps, size_t n)
{
  chunk *c = ps->doc->chunks;
  void *r;

  n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
  if (!c || c->size - c->used < n) {
    size_t size = n > 16384 ? n : 16384;
    c = malloc(sizeof(chunk) + size);
    if (!c)
      return NULL;
    c->used = 0;
    c->size = size;
    c->next = ps->doc->chunks;
    ps->doc->chunks = c;
  }
  r = (char *)c->data + c->used;
  c->used += n;
  return r;
}

static int fail(parser *ps, const char *what)
{
  int line, col;

  if (ps->failed)
    return -1;
  ps->failed = 1;
  ca_json_position(ps->start, ps->p, ps->end, &line, &col);
  if (ps->err && ps->errlen)
    snprintf(ps->err, ps->errlen, "line %d, column %d: %s", line, col, what);
  return -1;
}

void ca_json_position(const char *start, const char *at, const char *end,
                      int *line, int *col)
{
  const char *q;

  *line = 1;
  *col = 1;
  for (q = start; q < at && q < end; q++) {
    if (*q == '\n') {
      ++*line;
      *col = 1;
    } else {
      ++*col;
    }
  }
}

static void skip_ws(parser *ps)
{
  while (ps->p < ps->end &&
         (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

int ca_hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* The four hex digits at *p into *out; NULL or what is wrong. */
static const char *hex4(const char **p, const char *end, unsigned *out)
{
  unsigned v = 0;
  int i;

  if (end - *p < 4)
    return "truncated \\u escape";
  for (i = 0; i < 4; i++) {
    int h = ca_hexval((*p)[i]);
    if (h < 0)
      return "bad \\u escape";
    v = v * 16 + (unsigned)h;
  }
  *p += 4;
  *out = v;
  return NULL;
}

static size_t put_utf8(char *o, unsigned cp)
{
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

size_t ca_utf8_len(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len, i;
  unsigned cp;

  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

size_t ca_json_string_span(const char *s, const char *end)
{
  const char *e = s;

  while (e < end && *e != '"') {
    if (*e == '\\' && e + 1 < end)
      e++;
    e++;
  }
  return (size_t)(e - s);
}

const char *ca_json_unescape(const char **p, const char *end, int strict,
                             char *out, size_t *outlen)
{
  const char *s = *p, *err = NULL;
  size_t n = 0;

  while (s < end && !err) {
    unsigned char c = (unsigned char)*s;
    unsigned cp;

    if (c == '"') {
      *p = s + 1;
      if (out)
        out[n] = '\0';
      *outlen = n;
      return NULL;
    }
    if (c != '\\') {
      size_t l = 1;
      if (strict && c < 0x20) {
        err = "control character in string";
        break;
      }
      if (strict &&
          !(l = ca_utf8_len((const unsigned char *)s, (size_t)(end - s)))) {
        err = "invalid UTF-8 in string";
        break;
      }
      if (out)
        memcpy(out + n, s, l);
      n += l;
      s += l;
      continue;
    }
    if (++s >= end)
      break;
    switch (*s++) {
    case '"':
      cp = '"';
      break;
    case '\\':
      cp = '\\';
      break;
    case '/':
      cp = '/';
      break;
    case 'b':
      cp = '\b';
      break;
    case 'f':
      cp = '\f';
      break;
    case 'n':
      cp = '\n';
      break;
    case 'r':
      cp = '\r';
      break;
    case 't':
      cp = '\t';
      break;
    case 'u':
      if ((err = hex4(&s, end, &cp)))
        break;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        unsigned lo;
        if (end - s < 2 || s[0] != '\\' || s[1] != 'u') {
          err = "lone surrogate in \\u escape";
          break;
        }
        s += 2;
        if ((err = hex4(&s, end, &lo)))
          break;
        if (lo < 0xDC00 || lo > 0xDFFF) {
          err = "bad surrogate pair in \\u escape";
          break;
        }
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        err = "lone surrogate in \\u escape";
      }
      break;
    default:
      s--;
      err = "bad escape in string";
    }
    if (!err) {
      if (out)
        put_utf8(out + n, cp);
      n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    }
  }
  *p = s;
  return err ? err : "unterminated string";
}

/*
 * Parse a string at ps->p (on the opening quote).  When build is set, the
 * decoded copy goes to *out / *outlen; otherwise it is only checked.
 */
static int parse_string(parser *ps, int build, const char **out, size_t *outlen)
{
  const char *err;
  char *o = NULL;
  size_t n;

  ps->p++;
  if (build) { /* decoded text is never longer than its source */
    o = arena_alloc(ps, ca_json_string_span(ps->p, ps->end) + 1);
    if (!o)
      return fail(ps, "out of memory");
  }
  if ((err = ca_json_unescape(&ps->p, ps->end, 1, o, &n)))
    return fail(ps, err);
  if (build) {
    *out = o;
    *outlen = n;
  }
  return 0;
}

static int parse_number(parser *ps, double *out)
{
  const char *s = ps->p;
  char tmp[64];
  size_t n;

  if (ps->p < ps->end && *ps->p == '-')
    ps->p++;
  if (ps->p >= ps->end)
    return fail(ps, "bad number");
  if (*ps->p == '0') {
    ps->p++;
  } else if (*ps->p >= '1' && *ps->p <= '9') {
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
  } else {
    return fail(ps, "bad number");
  }
  if (ps->p < ps->end && *ps->p == '.') {
    ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
      return fail(ps, "bad number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
      ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
      return fail(ps, "bad number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
      ps->p++;
  }
  n = (size_t)(ps->p - s);
  if (out) {
    if (n >= sizeof tmp)
      return fail(ps, "number too long");
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    if (!isfinite(*out))
      return fail(ps, "number out of range");
  }
  return 0;
}

static int literal(parser *ps, const char *word)
{
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
    return fail(ps, "unexpected character");
  ps->p += n;
  return 0;
}

/* Parse one value; node is NULL when only checking (shallow part). */
static int parse_value(parser *ps, ca_json *node);

static int parse_container(parser *ps, ca_json *node, int is_obj)
{
  char close = is_obj ? '}' : ']';
  ca_json **tail = node ? &node->child : NULL;
  int build_children = node && !(ps->flags & CA_JSON_SHALLOW && ps->depth > 0);

  if (++ps->depth > ps->max_depth)
    return fail(ps, "nesting too deep");
  ps->p++; /* '[' or '{' */
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    ps->depth--;
    return 0;
  }
  for (;;) {
    ca_json *child = NULL;
    const char *key = NULL;
    size_t key_len = 0;

    skip_ws(ps);
    if (is_obj) {
      if (ps->p >= ps->end || *ps->p != '"')
        return fail(ps, "expected a member name");
      if (parse_string(ps, build_children, &key, &key_len))
        return -1;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':')
        return fail(ps, "expected ':'");
      ps->p++;
      skip_ws(ps);
    }
    if (build_children) {
      child = arena_alloc(ps, sizeof *child);
      if (!child)
        return fail(ps, "out of memory");
      memset(child, 0, sizeof *child);
      child->key = key;
      child->key_len = key_len;
      *tail = child;
      tail = &child->next;
    }
    if (node)
      node->count++;
    if (parse_value(ps, child))
      return -1;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == close) {
      ps->p++;
      ps->depth--;
      return 0;
    }
    return fail(ps, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int parse_value(parser *ps, ca_json *node)
{
  const char *s;
  int r;

  skip_ws(ps);
  if (ps->p >= ps->end)
    return fail(ps, "unexpected end of input");
  s = ps->p;
  switch (*ps->p) {
  case '{':
  case '[':
    if (node)
      node->type = *ps->p == '{' ? CA_JSON_OBJECT : CA_JSON_ARRAY;
    r = parse_container(ps, node, *ps->p == '{');
    break;
  case '"':
    if (node)
      node->type = CA_JSON_STRING;
    r = parse_string(ps, node != NULL, node ? &node->str : NULL,
                     node ? &node->str_len : NULL);
    break;
  case 't':
    if (node)
      node->type = CA_JSON_TRUE;
    r = literal(ps, "true");
    break;
  case 'f':
    if (node)
      node->type = CA_JSON_FALSE;
    r = literal(ps, "false");
    break;
  case 'n':
    if (node)
      node->type = CA_JSON_NULL;
    r = literal(ps, "null");
    break;
  default:
    if (node)
      node->type = CA_JSON_NUMBER;
    r = parse_number(ps, node ? &node->num : NULL);
    break;
  }
  if (node) {
    node->raw = s;
    node->raw_len = (size_t)(ps->p - s);
  }
  return r;
}

ca_json_doc *ca_json_parse(const char *text, size_t len, int max_depth,
                           int flags, char *err, size_t errlen)
{
  parser ps;
  ca_json_doc *doc = calloc(1, sizeof *doc);

  if (!doc) {
    if (err && errlen)
      snprintf(err, errlen, "out of memory");
    return NULL;
  }
  doc->flags = flags;
  memset(&ps, 0, sizeof ps);
  ps.p = ps.start = text;
  ps.end = text + len;
  ps.max_depth = max_depth > 0 ? max_depth : CA_JSON_MAX_DEPTH;
  ps.flags = flags;
  ps.doc = doc;
  ps.err = err;
  ps.errlen = errlen;
  doc->root = arena_alloc(&ps, sizeof *doc->root);
  if (!doc->root) {
    fail(&ps, "out of memory");
    goto bad;
  }
  memset(doc->root, 0, sizeof *doc->root);
  if (parse_value(&ps, doc->root))
    goto bad;
  skip_ws(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing characters after the JSON value");
    goto bad;
  }
  return doc;
bad:
  ca_json_free(doc);
  return NULL;
}

void ca_json_free(ca_json_doc *doc)
{
  chunk *c, *next;

  if (!doc)
    return;
  for (c = doc->chunks; c; c = next) {
    next = c->next;
    if (doc->flags & CA_JSON_WIPE)
      ca_wipe(c->data, c->used);
    free(c);
  }
  free(doc);
}

const ca_json *ca_json_root(const ca_json_doc *doc)
{
  return doc->root;
}

const ca_json *ca_json_get(const ca_json *o, const char *key)
{
  const ca_json *m, *found = NULL;
  size_t n = strlen(key);

  if (!o || o->type != CA_JSON_OBJECT)
    return NULL;
  /* The last duplicate wins, as in lua-cjson. */
  for (m = o->child; m; m = m->next)
    if (m->key_len == n && memcmp(m->key, key, n) == 0)
      found = m;
  return found;
}

const char *ca_json_get_str(const ca_json *o, const char *key)
{
  const ca_json *m = ca_json_get(o, key);
  return m && m->type == CA_JSON_STRING ? m->str : NULL;
}
