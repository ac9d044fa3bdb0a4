/*
 * emu_data.c: the phone numbers the emulator serves.
 *
 * Fixture format (one file, or a directory whose *.json files are read in
 * name order and merged; each file holds {"spaces": [...]} or one space):
 *
 *   {"spaces": [
 *     {"cust_space_id": "C20230115000001",   required; "" = own numbers
 *      "default": true,                      optional: the caller's own
 *                                            numbers (used when no
 *                                            CustSpaceId is sent)
 *      "isv_code": "isv-acme-7f3k9q2m",      optional: IsvCode required
 *      "account": "1000000000000001",        optional: only this account
 *      "label": "Acme Retail Pte Ltd",       optional, for people
 *      "phone_numbers": [ {API-shaped objects, "PhoneNumber" required} ]}
 *   ]}
 *
 * Members whose name starts with "_" are comments.  Number objects are kept
 * as (name, raw JSON text) pairs in their order, so every field, known or
 * not, nested or not, is passed through as written (only the whitespace
 * between tokens is dropped); only members that a call changes
 * (UpdatePhoneWebhook) are re-encoded.
 */
#include "emu.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ca_embed.h"

#define FIXTURE_MAX (256 * 1024 * 1024)

extern const ca_embedded emu_sample_files[]; /* generated: data/ */

const char *emu_sample_json(size_t *len)
{
  const ca_embedded *f = ca_embedded_find(emu_sample_files, "sample.json");

  if (len)
    *len = f ? f->len : 0;
  return f ? f->data : NULL;
}

void emu_number_free(emu_number *n)
{
  size_t i;

  for (i = 0; i < n->n; i++) {
    free(n->m[i].key);
    free(n->m[i].raw);
  }
  free(n->m);
  free(n->phone);
  free(n->status);
  memset(n, 0, sizeof *n);
}

static void space_free(emu_space *s)
{
  size_t i;

  for (i = 0; i < s->nnumbers; i++)
    emu_number_free(&s->numbers[i]);
  free(s->numbers);
  free(s->cust_space_id);
  free(s->isv_code);
  free(s->label);
  free(s->account);
  memset(s, 0, sizeof *s);
}

void emu_data_free(emu_data *d)
{
  size_t i;

  for (i = 0; i < d->nspaces; i++)
    space_free(&d->spaces[i]);
  free(d->spaces);
  free(d->source);
  memset(d, 0, sizeof *d);
}

static char *ndup(const char *s, size_t n)
{
  char *r = malloc(n + 1);
  if (r) {
    memcpy(r, s, n);
    r[n] = '\0';
  }
  return r;
}

static char *sdup(const char *s)
{
  return s ? strdup(s) : NULL;
}

/*
 * Copy the raw text of a JSON value without the whitespace between tokens
 * (fixtures are indented; answers are compact).  Strings and numbers are
 * kept byte for byte.
 */
static char *compact_dup(const char *s, size_t n)
{
  char *r = malloc(n + 1);
  size_t i, o = 0;
  int in_str = 0;

  if (!r)
    return NULL;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (in_str) {
      r[o++] = c;
      if (c == '\\' && i + 1 < n)
        r[o++] = s[++i];
      else if (c == '"')
        in_str = 0;
    } else if (c == '"') {
      in_str = 1;
      r[o++] = c;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      r[o++] = c;
    }
  }
  r[o] = '\0';
  return r;
}

/* Decode a raw JSON string value; NULL if it is not a string. */
static char *decode_raw(const char *raw)
{
  ca_json_doc *doc = ca_json_parse(raw, strlen(raw), 2, 0, NULL, 0);
  const ca_json *v = doc ? ca_json_root(doc) : NULL;
  char *r = v && v->type == CA_JSON_STRING ? sdup(v->str) : NULL;

  ca_json_free(doc);
  return r;
}

/* A member name holding \u0000 would be cut short at the NUL and could
 * pose as another member (a second "PhoneNumber"): refused. */
static int bad_key(const ca_json *m, char *err, size_t errlen)
{
  if (strlen(m->key) == m->key_len)
    return 0;
  snprintf(err, errlen, "member name \"%s...\" holds \\u0000", m->key);
  return 1;
}

chatapp_status emu_number_from_json(const ca_json *o, emu_number *n, char *err,
                                    size_t errlen)
{
  const ca_json *m;
  const char *phone = ca_json_get_str(o, "PhoneNumber");
  const char *status = ca_json_get_str(o, "Status");

  memset(n, 0, sizeof *n);
  if (o->type != CA_JSON_OBJECT || !phone || !*phone) {
    snprintf(err, errlen,
             "each phone number is an object with a "
             "\"PhoneNumber\" string");
    return CHATAPP_EPARSE;
  }
  n->m = calloc(o->count ? o->count : 1, sizeof *n->m);
  n->phone = strdup(phone);
  n->status = sdup(status);
  if (!n->m || !n->phone || (status && !n->status))
    goto nomem;
  for (m = o->child; m; m = m->next) {
    if (bad_key(m, err, errlen)) {
      emu_number_free(n);
      return CHATAPP_EPARSE;
    }
    n->m[n->n].key = ndup(m->key, m->key_len);
    n->m[n->n].raw = compact_dup(m->raw, m->raw_len);
    n->n++;
    if (!n->m[n->n - 1].key || !n->m[n->n - 1].raw)
      goto nomem;
  }
  return CHATAPP_OK;
nomem:
  emu_number_free(n);
  return CHATAPP_ENOMEM;
}

static const char *const space_fields[] = {
  "cust_space_id", "default",       "isv_code", "account",
  "label",         "phone_numbers", NULL,
};

static chatapp_status add_space(emu_data *d, const ca_json *o,
                                int numbers_optional, char *err, size_t errlen)
{
  emu_space *s, *v;
  const ca_json *m, *nums;
  const char *id = ca_json_get_str(o, "cust_space_id");
  const char *isv = ca_json_get_str(o, "isv_code");
  const char *acct = ca_json_get_str(o, "account");
  const char *label = ca_json_get_str(o, "label");
  const ca_json *def = ca_json_get(o, "default");
  chatapp_status st;
  size_t i;

  if (o->type != CA_JSON_OBJECT) { /* an array's members have no key */
    snprintf(err, errlen, "a space is an object");
    return CHATAPP_EPARSE;
  }
  for (m = o->child; m; m = m->next) {
    for (i = 0; space_fields[i] && strcmp(space_fields[i], m->key); i++)
      ;
    if (!space_fields[i] && m->key[0] != '_') {
      snprintf(err, errlen, "unknown space field \"%s\"", m->key);
      return CHATAPP_EPARSE;
    }
  }
  nums = ca_json_get(o, "phone_numbers");
  if (!id || (nums ? nums->type != CA_JSON_ARRAY : !numbers_optional)) {
    snprintf(err, errlen,
             "a space needs \"cust_space_id\" (a string, \"\" "
             "for the caller's own numbers) and "
             "\"phone_numbers\" (an array)");
    return CHATAPP_EPARSE;
  }
  for (i = 0; i < d->nspaces; i++) {
    if (*id && strcmp(d->spaces[i].cust_space_id, id) == 0) {
      snprintf(err, errlen, "cust_space_id \"%s\" appears twice", id);
      return CHATAPP_EPARSE;
    }
  }
  v = realloc(d->spaces, (d->nspaces + 1) * sizeof *v);
  if (!v)
    return CHATAPP_ENOMEM;
  d->spaces = v;
  s = &d->spaces[d->nspaces];
  memset(s, 0, sizeof *s);
  d->nspaces++;
  s->cust_space_id = strdup(id);
  s->isv_code = isv && *isv ? strdup(isv) : NULL;
  s->account = acct && *acct ? strdup(acct) : NULL;
  s->label = sdup(label);
  s->is_default = !*id || (def && def->type == CA_JSON_TRUE);
  s->numbers =
    calloc(nums && nums->count ? nums->count : 1, sizeof *s->numbers);
  if (!s->cust_space_id || !s->numbers)
    return CHATAPP_ENOMEM;
  for (m = nums ? nums->child : NULL; m; m = m->next) {
    st = emu_number_from_json(m, &s->numbers[s->nnumbers], err, errlen);
    if (st)
      return st;
    s->nnumbers++;
    for (i = 0; i + 1 < s->nnumbers; i++) {
      if (strcmp(s->numbers[i].phone, s->numbers[s->nnumbers - 1].phone) == 0) {
        snprintf(err, errlen, "space \"%s\": PhoneNumber %s appears twice", id,
                 s->numbers[i].phone);
        return CHATAPP_EPARSE;
      }
    }
  }
  for (i = 0; i + 1 < d->nspaces; i++) {
    const emu_space *t = &d->spaces[i];
    if (t->is_default && s->is_default &&
        ((!t->account && !s->account) ||
         (t->account && s->account && !strcmp(t->account, s->account)))) {
      snprintf(err, errlen,
               "two default spaces (\"%s\" and \"%s\") for the "
               "same account",
               t->cust_space_id, id);
      return CHATAPP_EPARSE;
    }
  }
  return CHATAPP_OK;
}

static chatapp_status load_text(emu_data *d, const char *name, const char *text,
                                size_t len, char *err, size_t errlen)
{
  char jerr[160], serr[200];
  ca_json_doc *doc = ca_json_parse(text, len, 64, 0, jerr, sizeof jerr);
  const ca_json *root, *spaces, *s;
  chatapp_status st = CHATAPP_OK;

  if (!doc) {
    snprintf(err, errlen, "%s: %s", name, jerr);
    return CHATAPP_EPARSE;
  }
  serr[0] = '\0';
  root = ca_json_root(doc);
  spaces = ca_json_get(root, "spaces");
  if (spaces && spaces->type == CA_JSON_ARRAY) {
    for (s = spaces->child; s && !st; s = s->next)
      st = add_space(d, s, 0, serr, sizeof serr);
  } else if (ca_json_get(root, "cust_space_id")) {
    st = add_space(d, root, 0, serr, sizeof serr);
  } else {
    snprintf(serr, sizeof serr,
             "expected {\"spaces\": [...]} or one space "
             "object");
    st = CHATAPP_EPARSE;
  }
  if (st)
    snprintf(err, errlen, "%s: %s", name,
             st == CHATAPP_ENOMEM ? "out of memory" : serr);
  ca_json_free(doc);
  return st;
}

static chatapp_status load_file(emu_data *d, const char *path, char *err,
                                size_t errlen)
{
  size_t len = 0;
  char *text = emu_read_file(path, FIXTURE_MAX, &len);
  chatapp_status st;

  if (!text) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return CHATAPP_EIO;
  }
  st = load_text(d, path, text, len, err, errlen);
  free(text);
  return st;
}

static int json_file(const struct dirent *de)
{
  size_t n = strlen(de->d_name);
  return de->d_name[0] != '.' && n > 5 &&
         strcmp(de->d_name + n - 5, ".json") == 0;
}

chatapp_status emu_data_load(emu_data *d, const char *path, char *err,
                             size_t errlen)
{
  struct stat sb;
  chatapp_status st = CHATAPP_OK;

  memset(d, 0, sizeof *d);
  if (!path) {
    size_t len;
    const char *text = emu_sample_json(&len);
    d->source = strdup("built-in sample data");
    if (!text || !d->source) {
      snprintf(err, errlen, "the built-in sample data is missing");
      return CHATAPP_ENOMEM;
    }
    st = load_text(d, "built-in sample", text, len, err, errlen);
  } else if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
    struct dirent **list = NULL;
    int n = scandir(path, &list, json_file, alphasort), i;
    if (n < 0) {
      snprintf(err, errlen, "%s: %s", path, strerror(errno));
      return CHATAPP_EIO;
    }
    if (n == 0) {
      snprintf(err, errlen, "%s: no *.json files", path);
      st = CHATAPP_EIO;
    }
    for (i = 0; i < n; i++) {
      char full[4096];
      if (!st) {
        if (snprintf(full, sizeof full, "%s/%s", path, list[i]->d_name) >=
            (int)sizeof full) {
          snprintf(err, errlen, "%s: path too long", path);
          st = CHATAPP_EIO;
        } else {
          st = load_file(d, full, err, errlen);
        }
      }
      free(list[i]);
    }
    free(list);
    d->source = strdup(path);
  } else {
    st = load_file(d, path, err, errlen);
    d->source = strdup(path);
  }
  if (!st && !d->source)
    st = CHATAPP_ENOMEM;
  if (st)
    emu_data_free(d);
  return st;
}

/* A deep copy of a into b; on failure b is left empty. */
static chatapp_status number_copy(emu_number *b, const emu_number *a)
{
  size_t k;

  memset(b, 0, sizeof *b);
  b->phone = sdup(a->phone);
  b->status = sdup(a->status);
  b->m = calloc(a->n ? a->n : 1, sizeof *b->m);
  if (!b->phone || !b->m || (a->status && !b->status))
    goto nomem;
  for (k = 0; k < a->n; k++) {
    b->m[k].key = sdup(a->m[k].key);
    b->m[k].raw = sdup(a->m[k].raw);
    b->n++;
    if (!b->m[k].key || !b->m[k].raw)
      goto nomem;
  }
  return CHATAPP_OK;
nomem:
  emu_number_free(b);
  return CHATAPP_ENOMEM;
}

chatapp_status emu_data_copy(emu_data *dst, const emu_data *src)
{
  size_t i, j;

  memset(dst, 0, sizeof *dst);
  dst->source = sdup(src->source);
  dst->spaces = calloc(src->nspaces ? src->nspaces : 1, sizeof *dst->spaces);
  if (!dst->spaces || (src->source && !dst->source))
    goto nomem;
  for (i = 0; i < src->nspaces; i++) {
    const emu_space *s = &src->spaces[i];
    emu_space *t = &dst->spaces[i];
    dst->nspaces++;
    t->cust_space_id = sdup(s->cust_space_id);
    t->isv_code = sdup(s->isv_code);
    t->label = sdup(s->label);
    t->account = sdup(s->account);
    t->is_default = s->is_default;
    t->numbers = calloc(s->nnumbers ? s->nnumbers : 1, sizeof *t->numbers);
    if (!t->cust_space_id || !t->numbers)
      goto nomem;
    for (j = 0; j < s->nnumbers; j++) {
      if (number_copy(&t->numbers[j], &s->numbers[j]) != CHATAPP_OK)
        goto nomem;
      t->nnumbers++;
    }
  }
  return CHATAPP_OK;
nomem:
  emu_data_free(dst);
  return CHATAPP_ENOMEM;
}

emu_space *emu_data_space(emu_data *d, const char *id, const char *account)
{
  size_t i;

  if (!id || !*id) {
    emu_space *any = NULL;
    for (i = 0; i < d->nspaces; i++) {
      emu_space *s = &d->spaces[i];
      if (!s->is_default)
        continue;
      if (s->account && account && strcmp(s->account, account) == 0)
        return s;
      if (!s->account && !any)
        any = s;
    }
    return any;
  }
  for (i = 0; i < d->nspaces; i++) {
    emu_space *s = &d->spaces[i];
    if (strcmp(s->cust_space_id, id) == 0)
      return !s->account || (account && strcmp(s->account, account) == 0)
               ? s
               : NULL;
  }
  return NULL;
}

emu_number *emu_space_number(emu_space *s, const char *phone)
{
  size_t i;

  for (i = 0; i < s->nnumbers; i++)
    if (strcmp(s->numbers[i].phone, phone) == 0)
      return &s->numbers[i];
  return NULL;
}

const char *emu_number_str(const emu_number *num, const char *key, char *out,
                           size_t outlen)
{
  size_t i;

  for (i = num->n; i-- > 0;) { /* the last duplicate wins */
    if (strcmp(num->m[i].key, key) == 0) {
      char *v = decode_raw(num->m[i].raw);
      if (!v)
        return NULL;
      snprintf(out, outlen, "%s", v);
      free(v);
      return out;
    }
  }
  return NULL;
}

chatapp_status emu_number_set_str(emu_number *num, const char *key,
                                  const char *value)
{
  ca_buf b = CA_BUF_INIT(1024 * 1024);
  char *raw, *copy = NULL;
  size_t i;
  int found = 0;

  if (emu_json_strz(&b, value) != CHATAPP_OK)
    return CHATAPP_ENOMEM;
  raw = ca_buf_steal(&b);
  for (i = 0; i < num->n; i++) {
    if (strcmp(num->m[i].key, key) == 0) {
      char *r = found ? strdup(raw) : raw;
      if (!r) {
        free(raw);
        return CHATAPP_ENOMEM;
      }
      free(num->m[i].raw);
      num->m[i].raw = r;
      found = 1;
    }
  }
  if (!found) {
    emu_member *v = realloc(num->m, (num->n + 1) * sizeof *v);
    char *k = strdup(key);
    if (!v || !k) {
      if (v)
        num->m = v;
      free(k);
      free(raw);
      return CHATAPP_ENOMEM;
    }
    num->m = v;
    num->m[num->n].key = k;
    num->m[num->n].raw = raw;
    num->n++;
  }
  if (strcmp(key, "Status") == 0) {
    copy = strdup(value);
    if (!copy)
      return CHATAPP_ENOMEM;
    free(num->status);
    num->status = copy;
  }
  return CHATAPP_OK;
}

chatapp_status emu_number_json(const emu_number *num, ca_buf *b)
{
  chatapp_status st = ca_buf_addc(b, '{');
  size_t i;

  for (i = 0; i < num->n && !st; i++) {
    if (i)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = emu_json_strz(b, num->m[i].key);
    if (!st)
      st = ca_buf_addc(b, ':');
    if (!st)
      st = ca_buf_adds(b, num->m[i].raw);
  }
  if (!st)
    st = ca_buf_addc(b, '}');
  return st;
}

/* ---- changes through the control endpoint ----------------------------- */

static chatapp_status space_json(const emu_space *s, ca_buf *b)
{
  chatapp_status st = ca_buf_adds(b, "{\"cust_space_id\":");
  size_t i;

  if (!st)
    st = emu_json_strz(b, s->cust_space_id);
  if (!st)
    st = ca_buf_printf(b, ",\"default\":%s", s->is_default ? "true" : "false");
  if (!st && s->isv_code) {
    st = ca_buf_adds(b, ",\"isv_code\":");
    if (!st)
      st = emu_json_strz(b, s->isv_code);
  }
  if (!st && s->account) {
    st = ca_buf_adds(b, ",\"account\":");
    if (!st)
      st = emu_json_strz(b, s->account);
  }
  if (!st && s->label) {
    st = ca_buf_adds(b, ",\"label\":");
    if (!st)
      st = emu_json_strz(b, s->label);
  }
  if (!st)
    st = ca_buf_adds(b, ",\"phone_numbers\":[");
  for (i = 0; i < s->nnumbers && !st; i++) {
    if (i)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = emu_number_json(&s->numbers[i], b);
  }
  if (!st)
    st = ca_buf_adds(b, "]}");
  return st;
}

chatapp_status emu_data_json(const emu_data *d, const emu_space *only,
                             ca_buf *b)
{
  chatapp_status st = ca_buf_adds(b, "{\"spaces\":[");
  size_t i, k = 0;

  for (i = 0; i < d->nspaces && !st; i++) {
    if (only && only != &d->spaces[i])
      continue;
    if (k++)
      st = ca_buf_addc(b, ',');
    if (!st)
      st = space_json(&d->spaces[i], b);
  }
  if (!st)
    st = ca_buf_adds(b, "]}");
  return st;
}

emu_space *emu_data_space_id(emu_data *d, const char *id)
{
  size_t i;

  for (i = 0; i < d->nspaces; i++)
    if (strcmp(d->spaces[i].cust_space_id, id) == 0)
      return &d->spaces[i];
  return NULL;
}

/* num->status from its last "Status" member (NULL if none or not a
 * string), as emu_number_str reads it. */
static chatapp_status sync_status(emu_number *num)
{
  char *v = NULL;
  size_t i;

  for (i = num->n; i-- > 0;) {
    if (strcmp(num->m[i].key, "Status") == 0) {
      if (num->m[i].raw[0] == '"' && !(v = decode_raw(num->m[i].raw)))
        return CHATAPP_ENOMEM;
      break;
    }
  }
  free(num->status);
  num->status = v;
  return CHATAPP_OK;
}

/* Remove every member named key. */
static void member_remove(emu_number *num, const char *key)
{
  size_t i, o = 0;

  for (i = 0; i < num->n; i++) {
    if (strcmp(num->m[i].key, key) == 0) {
      free(num->m[i].key);
      free(num->m[i].raw);
    } else {
      num->m[o++] = num->m[i];
    }
  }
  num->n = o;
}

/* Set every member named key to raw (taken; appended when absent). */
static chatapp_status member_set(emu_number *num, const char *key, char *raw)
{
  size_t i;
  int found = 0;
  emu_member *v;
  char *k;

  for (i = 0; i < num->n; i++) {
    if (strcmp(num->m[i].key, key) == 0) {
      char *r = found ? strdup(raw) : raw;
      if (!r)
        return CHATAPP_ENOMEM; /* raw is held by an earlier member */
      free(num->m[i].raw);
      num->m[i].raw = r;
      found = 1;
    }
  }
  if (found)
    return CHATAPP_OK;
  v = realloc(num->m, (num->n + 1) * sizeof *v);
  if (v)
    num->m = v;
  k = v ? strdup(key) : NULL;
  if (!k) {
    free(raw);
    return CHATAPP_ENOMEM;
  }
  num->m[num->n].key = k;
  num->m[num->n].raw = raw;
  num->n++;
  return CHATAPP_OK;
}

chatapp_status emu_number_patch(emu_number *num, const ca_json *patch,
                                char *err, size_t errlen)
{
  const ca_json *m;
  emu_number t;
  chatapp_status st;

  if (patch->type != CA_JSON_OBJECT) {
    snprintf(err, errlen,
             "expected a JSON object of members to set (null removes one), "
             "e.g. {\"QualityRating\":\"RED\"}");
    return CHATAPP_EPARSE;
  }
  if (patch->count > EMU_PATCH_MAX) {
    /* each member is looked up among the number's: keep that quadratic
     * work (done under the lock) small */
    snprintf(err, errlen, "%zu members; at most %d in one change", patch->count,
             EMU_PATCH_MAX);
    return CHATAPP_EPARSE;
  }
  for (m = patch->child; m; m = m->next) {
    if (bad_key(m, err, errlen))
      return CHATAPP_EPARSE;
    if (strcmp(m->key, "PhoneNumber") == 0 &&
        !(m->type == CA_JSON_STRING && strcmp(m->str, num->phone) == 0)) {
      snprintf(err, errlen,
               "\"PhoneNumber\" cannot be changed (DELETE the number and "
               "POST a new one)");
      return CHATAPP_EPARSE;
    }
  }
  /* All or nothing: the changes go to a copy, which then replaces num. */
  st = number_copy(&t, num);
  for (m = patch->child; m && !st; m = m->next) {
    if (m->type == CA_JSON_NULL) {
      member_remove(&t, m->key);
    } else {
      char *raw = compact_dup(m->raw, m->raw_len);
      st = raw ? member_set(&t, m->key, raw) : CHATAPP_ENOMEM;
    }
  }
  if (!st)
    st = sync_status(&t);
  if (st) {
    emu_number_free(&t);
    snprintf(err, errlen, "out of memory");
    return st;
  }
  emu_number_free(num);
  *num = t;
  return CHATAPP_OK;
}

chatapp_status emu_space_add_numbers(emu_space *s, emu_number *v, size_t n)
{
  emu_number *all;

  if (n == 0)
    return CHATAPP_OK;
  all = realloc(s->numbers, (s->nnumbers + n) * sizeof *all);
  if (!all)
    return CHATAPP_ENOMEM;
  s->numbers = all;
  memcpy(s->numbers + s->nnumbers, v, n * sizeof *v);
  s->nnumbers += n;
  memset(v, 0, n * sizeof *v); /* moved */
  return CHATAPP_OK;
}

int emu_space_remove_number(emu_space *s, const char *phone)
{
  emu_number *n = emu_space_number(s, phone);
  size_t i;

  if (!n)
    return 0;
  i = (size_t)(n - s->numbers);
  emu_number_free(n);
  memmove(s->numbers + i, s->numbers + i + 1,
          (s->nnumbers - i - 1) * sizeof *s->numbers);
  s->nnumbers--;
  return 1;
}

chatapp_status emu_space_parse(const ca_json *o, emu_data *one, char *err,
                               size_t errlen)
{
  chatapp_status st;

  memset(one, 0, sizeof *one);
  st = add_space(one, o, 1, err, errlen);
  if (st == CHATAPP_ENOMEM)
    snprintf(err, errlen, "out of memory");
  if (st)
    emu_data_free(one);
  return st;
}

chatapp_status emu_data_take_space(emu_data *d, emu_data *one, char *err,
                                   size_t errlen)
{
  emu_space *s = &one->spaces[0], *v;
  size_t i;

  for (i = 0; i < d->nspaces; i++) {
    const emu_space *t = &d->spaces[i];
    if (*s->cust_space_id && strcmp(t->cust_space_id, s->cust_space_id) == 0) {
      snprintf(err, errlen, "space \"%.64s\" exists", s->cust_space_id);
      return CHATAPP_EINVAL;
    }
    if (t->is_default && s->is_default &&
        ((!t->account && !s->account) ||
         (t->account && s->account && !strcmp(t->account, s->account)))) {
      snprintf(err, errlen,
               "space \"%.64s\" is already the default space of %s%.32s",
               t->cust_space_id, t->account ? "account " : "every account",
               t->account ? t->account : "");
      return CHATAPP_EINVAL;
    }
  }
  v = realloc(d->spaces, (d->nspaces + 1) * sizeof *v);
  if (!v) {
    snprintf(err, errlen, "out of memory");
    return CHATAPP_ENOMEM;
  }
  d->spaces = v;
  d->spaces[d->nspaces++] = *s;
  memset(s, 0, sizeof *s); /* moved; one is freed empty */
  emu_data_free(one);
  return CHATAPP_OK;
}
