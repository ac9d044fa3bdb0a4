/*
 * emu_keys.c: the emulator's credential store.
 *
 * Without --keys it holds throwaway keys that exist only here (documented in
 * docs/emulator.md and --help; they open nothing anywhere else).  A --keys
 * file replaces them:
 *
 *   {"keys": [
 *     {"access_key_id": "LTAI...", "access_key_secret": "...",
 *      "account": "1000000000000001",
 *      "security_token": "...",            optional: an STS key
 *      "expiration": "2030-01-01T00:00:00Z", optional
 *      "disabled": false}                  optional
 *   ]}
 *
 * Secrets are wiped on free and never appear in a message.
 */
#include "emu.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_crypto.h"

#define KEYS_FILE_MAX (1024 * 1024)

static const struct {
  const char *id, *secret, *token, *account;
} builtin[] = {
  {"LTAIemulatorTestKey01", "emulator-secret-not-real", NULL,
   "1000000000000001"},
  {"STS.emulatorTemporaryKey", "emulator-sts-secret", "emulator-sts-token",
   "1000000000000001"},
  {"LTAIemulatorOtherAcct", "emulator-other-secret", NULL, "1000000000000002"},
};

static void wipe_free(char *s)
{
  if (s) {
    ca_wipe(s, strlen(s));
    free(s);
  }
}

static chatapp_status key_set(emu_key *k, const char *id, const char *secret,
                              const char *token, const char *account);

static void key_free(emu_key *k)
{
  free(k->access_key_id);
  wipe_free(k->secret);
  wipe_free(k->token);
  free(k->account);
  memset(k, 0, sizeof *k);
}

void emu_key_clear(emu_key *k)
{
  key_free(k);
}

chatapp_status emu_key_copy(emu_key *dst, const emu_key *src)
{
  chatapp_status st =
    key_set(dst, src->access_key_id, src->secret, src->token, src->account);

  if (st)
    return st;
  dst->expires = src->expires;
  dst->disabled = src->disabled;
  return CHATAPP_OK;
}

void emu_keys_free(emu_keys *ks)
{
  size_t i;

  for (i = 0; i < ks->n; i++)
    key_free(&ks->v[i]);
  free(ks->v);
  ks->v = NULL;
  ks->n = 0;
}

static chatapp_status key_set(emu_key *k, const char *id, const char *secret,
                              const char *token, const char *account)
{
  memset(k, 0, sizeof *k);
  k->access_key_id = strdup(id);
  k->secret = strdup(secret);
  k->token = token ? strdup(token) : NULL;
  k->account = strdup(account);
  if (!k->access_key_id || !k->secret || (token && !k->token) || !k->account) {
    key_free(k);
    return CHATAPP_ENOMEM;
  }
  return CHATAPP_OK;
}

chatapp_status emu_keys_builtin(emu_keys *ks)
{
  size_t i, n = sizeof builtin / sizeof builtin[0];

  ks->v = calloc(n, sizeof *ks->v);
  ks->n = 0;
  if (!ks->v)
    return CHATAPP_ENOMEM;
  for (i = 0; i < n; i++) {
    chatapp_status st = key_set(&ks->v[i], builtin[i].id, builtin[i].secret,
                                builtin[i].token, builtin[i].account);
    if (st) {
      emu_keys_free(ks);
      return st;
    }
    ks->n++;
  }
  return CHATAPP_OK;
}

chatapp_status emu_keys_load(emu_keys *ks, const char *path, char *err,
                             size_t errlen)
{
  char *text = NULL;
  ca_json_doc *doc = NULL;
  const ca_json *keys, *k;
  char jerr[160];
  size_t len = 0, i = 0;
  chatapp_status st = CHATAPP_ECONFIG;

  memset(ks, 0, sizeof *ks);
  text = emu_read_file(path, KEYS_FILE_MAX, &len);
  if (!text) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    st = CHATAPP_EIO;
    goto out;
  }
  doc = ca_json_parse(text, len, 16, 0, jerr, sizeof jerr);
  if (!doc) {
    snprintf(err, errlen, "%s: %s", path, jerr);
    goto out;
  }
  keys = ca_json_get(ca_json_root(doc), "keys");
  if (!keys || keys->type != CA_JSON_ARRAY || keys->count == 0) {
    snprintf(err, errlen,
             "%s: expected {\"keys\": [ ... ]} with at least "
             "one key",
             path);
    goto out;
  }
  ks->v = calloc(keys->count, sizeof *ks->v);
  if (!ks->v) {
    st = CHATAPP_ENOMEM;
    goto out;
  }
  for (k = keys->child; k; k = k->next, i++) {
    const char *id = ca_json_get_str(k, "access_key_id");
    const char *secret = ca_json_get_str(k, "access_key_secret");
    const char *token = ca_json_get_str(k, "security_token");
    const char *account = ca_json_get_str(k, "account");
    const char *exp = ca_json_get_str(k, "expiration");
    const ca_json *dis = ca_json_get(k, "disabled");

    if (!id || !*id || !secret || !*secret || !account || !*account) {
      snprintf(err, errlen,
               "%s: key %zu needs access_key_id, "
               "access_key_secret and account strings",
               path, i + 1);
      goto out;
    }
    if (emu_keys_find(ks, id)) {
      snprintf(err, errlen, "%s: key %zu: access_key_id %s given twice", path,
               i + 1, id);
      goto out;
    }
    st = key_set(&ks->v[ks->n], id, secret, token && *token ? token : NULL,
                 account);
    if (st)
      goto out;
    ks->n++;
    st = CHATAPP_ECONFIG;
    if (exp && emu_parse_iso8601(exp, &ks->v[ks->n - 1].expires) != 0) {
      snprintf(err, errlen,
               "%s: key %s: expiration must look like "
               "2030-01-01T00:00:00Z",
               path, id);
      goto out;
    }
    ks->v[ks->n - 1].disabled = dis && dis->type == CA_JSON_TRUE;
  }
  st = CHATAPP_OK;
out:
  if (st)
    emu_keys_free(ks);
  ca_json_free(doc);
  if (text) {
    ca_wipe(text, len);
    free(text);
  }
  return st;
}

const emu_key *emu_keys_find(const emu_keys *ks, const char *access_key_id)
{
  size_t i;

  for (i = 0; i < ks->n; i++)
    if (strcmp(ks->v[i].access_key_id, access_key_id) == 0)
      return &ks->v[i];
  return NULL;
}

const emu_key *emu_keys_find_token(const emu_keys *ks, const char *token)
{
  size_t i;

  for (i = 0; i < ks->n; i++)
    if (ks->v[i].token && emu_ct_equal(ks->v[i].token, token))
      return &ks->v[i];
  return NULL;
}
