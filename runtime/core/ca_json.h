/*
 * ca_json: a small, strict JSON reader for the C core (RFC 8259).
 *
 * The C core reads a few JSON documents without a Lua state: credential
 * files (~/.aliyun/config.json), the envelope of API answers (Code, Message,
 * RequestId) and, in tests, the signing vectors.  Policies' data is decoded
 * straight into Lua values by lca_json.c, which shares the limits below.
 *
 * A parse builds a tree in one arena; ca_json_free() releases it all.
 * With CA_JSON_SHALLOW, values below the top-level container are checked
 * for syntax but not built (their node has no children, only raw/raw_len),
 * which lets the envelope of a 40 MB answer be read cheaply.
 */
#ifndef CA_JSON_H
#define CA_JSON_H

#include <stddef.h>

typedef enum ca_json_type {
  CA_JSON_NULL,
  CA_JSON_FALSE,
  CA_JSON_TRUE,
  CA_JSON_NUMBER,
  CA_JSON_STRING,
  CA_JSON_ARRAY,
  CA_JSON_OBJECT
} ca_json_type;

typedef struct ca_json ca_json;
struct ca_json {
  ca_json_type type;
  const char *key; /* member name inside an object (NUL-terminated) */
  size_t key_len;  /* may contain NUL bytes from \u0000 */
  const char *str; /* decoded string value (NUL-terminated), or NULL */
  size_t str_len;
  double num;      /* number value */
  const char *raw; /* the value's text in the input */
  size_t raw_len;
  ca_json *child; /* first element or member */
  ca_json *next;  /* next sibling */
  size_t count;   /* number of children */
};

/* The one nesting limit of the project's JSON: containers nested deeper
 * than this are refused by every decoder and by the encoder (lca_json.c),
 * so whatever is decoded can be encoded again. */
#define CA_JSON_MAX_DEPTH 128

#define CA_JSON_SHALLOW 0x1
/* The text holds secrets (credential files): ca_json_free() wipes the
 * arena, where decoded copies of the strings live, before freeing it. */
#define CA_JSON_WIPE 0x2

typedef struct ca_json_doc ca_json_doc;

/*
 * Parse text[0..len).  Returns a document owned by the caller (free with
 * ca_json_free), or NULL with a message such as "line 3, column 7: expected
 * ',' or '}'" in err (errlen bytes, may be NULL).
 */
ca_json_doc *ca_json_parse(const char *text, size_t len, int max_depth,
                           int flags, char *err, size_t errlen);
void ca_json_free(ca_json_doc *doc);
const ca_json *ca_json_root(const ca_json_doc *doc);

/* Length of the valid UTF-8 sequence at s (n bytes left, n > 0): 1 to 4,
 * or 0 when it is not valid (overlong, surrogate, beyond U+10FFFF). */
size_t ca_utf8_len(const unsigned char *s, size_t n);

/* The value of hex digit c, or -1. */
int ca_hexval(char c);

/* Line and column (from 1) of at in the text [start, end). */
void ca_json_position(const char *start, const char *at, const char *end,
                      int *line, int *col);

/* Bytes from s (just after a string's opening quote) to its closing quote
 * or end: room enough for the string's decoded text. */
size_t ca_json_string_span(const char *s, const char *end);

/*
 * Decode the string whose text starts at *p (just after its opening quote)
 * into out (ca_json_string_span bytes + 1, or NULL to only check it):
 * escapes resolved, \u0000 as a NUL byte, NUL-terminated, length in
 * *outlen.  strict refuses raw control characters and invalid UTF-8 (else
 * they are kept as bytes).  NULL with *p after the closing quote, or what is
 * wrong with *p where it is.
 */
const char *ca_json_unescape(const char **p, const char *end, int strict,
                             char *out, size_t *outlen);

/* The member named key of an object, or NULL (also when o is not one). */
const ca_json *ca_json_get(const ca_json *o, const char *key);
/* The string value of member key, or NULL when absent or not a string. */
const char *ca_json_get_str(const ca_json *o, const char *key);

#endif
