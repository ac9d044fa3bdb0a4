/*
 * emu_sts_keys.c: what the credential endpoints hold (emu_sts): the
 * temporary keys they issue and the metadata service's tokens, and their
 * counters.
 *
 * A temporary key: AccessKeyId "STS." + 28 characters, a secret, a
 * SecurityToken, for the account of the built-in role (1000000000000001),
 * valid for --sts-lifetime seconds (else DurationSeconds, else 3600).  CAMS
 * calls accept it (emu_verify.c asks emu_sts_find_key) until it expires,
 * then answer InvalidSecurityToken.Expired.  The table holds at most
 * EMU_ISSUED_MAX keys: a key expired more than EMU_EXPIRED_KEEP_S ago is
 * dropped, and when the table is full the key expiring first goes.  The
 * metadata tokens are kept the same way (EMU_IMDS_TOKENS_MAX).
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_crypto.h"

chatapp_status emu_sts_init(emu_sts *s, const char *oidc_token,
                            const char *ecs_role, unsigned lifetime_s,
                            int imds_require_token)
{
  memset(s, 0, sizeof *s);
  s->issued = calloc(EMU_ISSUED_MAX, sizeof *s->issued);
  s->tokens = calloc(EMU_IMDS_TOKENS_MAX, sizeof *s->tokens);
  s->oidc_token = strdup(oidc_token ? oidc_token : EMU_OIDC_TOKEN);
  s->ecs_role = strdup(ecs_role ? ecs_role : EMU_ECS_ROLE);
  s->lifetime_s = lifetime_s;
  s->imds_require_token = imds_require_token;
  if (!s->issued || !s->tokens || !s->oidc_token || !s->ecs_role) {
    emu_sts_free(s);
    return CHATAPP_ENOMEM;
  }
  return CHATAPP_OK;
}

void emu_sts_forget(emu_sts *s)
{
  size_t i;

  for (i = 0; i < s->nissued; i++)
    emu_key_clear(&s->issued[i]);
  s->nissued = 0;
  if (s->tokens)
    ca_wipe(s->tokens, EMU_IMDS_TOKENS_MAX * sizeof *s->tokens);
  s->ntokens = 0;
}

void emu_sts_free(emu_sts *s)
{
  emu_sts_forget(s);
  free(s->issued);
  free(s->tokens);
  if (s->oidc_token) {
    ca_wipe(s->oidc_token, strlen(s->oidc_token));
    free(s->oidc_token);
  }
  free(s->ecs_role);
  memset(s, 0, sizeof *s);
}

int emu_sts_find_key(emu *e, const char *akid, emu_key *copy)
{
  size_t i;
  int r = 0;

  memset(copy, 0, sizeof *copy);
  if (!akid || strncmp(akid, "STS.", 4) != 0)
    return 0;
  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sts.nissued; i++) {
    if (strcmp(e->sts.issued[i].access_key_id, akid) == 0) {
      r = emu_key_copy(copy, &e->sts.issued[i]) == CHATAPP_OK ? 1 : -1;
      break;
    }
  }
  pthread_mutex_unlock(&e->lock);
  return r;
}

int emu_sts_token_known(emu *e, const char *token)
{
  size_t i;
  int r = 0;

  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sts.nissued && !r; i++)
    if (emu_ct_equal(e->sts.issued[i].token, token))
      r = 1;
  pthread_mutex_unlock(&e->lock);
  return r;
}

size_t emu_sts_expire_all(emu_sts *s)
{
  int64_t now_ms = emu_wall_ms(), now_s = now_ms / 1000;
  size_t i, n = 0;

  for (i = 0; i < s->nissued; i++) {
    if (now_ms < s->issued[i].expires * 1000) {
      s->issued[i].expires = now_s;
      n++;
    }
  }
  return n;
}

void emu_sts_stats_reset(emu_sts *s)
{
  size_t i;

  for (i = 0; i < EMU_EP_N; i++) {
    unsigned in = s->ep[i].in_flight;
    memset(&s->ep[i], 0, sizeof s->ep[i]);
    s->ep[i].in_flight = in;
    s->ep[i].in_flight_max = in;
  }
  s->issued_total = 0;
  s->evicted = 0;
}

chatapp_status emu_sts_stats_json(const emu_sts *s, ca_buf *b)
{
  chatapp_status st = ca_buf_adds(b, "{");
  int64_t now_ms = emu_wall_ms();
  size_t i, live = 0;

  for (i = 0; i < EMU_EP_N && !st; i++) {
    const emu_ep_stats *p = &s->ep[i];
    st = ca_buf_printf(
      b,
      "%s\"%s\":{\"requests\":%llu,\"ok\":%llu,"
      "\"rejected\":%llu,\"faulted\":%llu,"
      "\"in_flight\":%u,\"in_flight_max\":%u}",
      i ? "," : "", emu_cred_ep_name((emu_cred_ep)i),
      (unsigned long long)p->requests, (unsigned long long)p->ok,
      (unsigned long long)p->rejected, (unsigned long long)p->faulted,
      p->in_flight, p->in_flight_max);
  }
  for (i = 0; i < s->nissued; i++)
    if (now_ms < s->issued[i].expires * 1000)
      live++;
  if (!st)
    st =
      ca_buf_printf(b,
                    "},\"temporary_keys\":{\"issued\":%llu,\"kept\":%zu,"
                    "\"valid\":%zu,\"evicted\":%llu,\"lifetime_s\":%u},"
                    "\"metadata_tokens\":%zu",
                    (unsigned long long)s->issued_total, s->nissued, live,
                    (unsigned long long)s->evicted, s->lifetime_s, s->ntokens);
  return st;
}

/* n random characters of alphabet into out (NUL-terminated). */
static chatapp_status random_text(char *out, size_t n, const char *alphabet)
{
  unsigned char r[256];
  size_t i, k = strlen(alphabet);

  if (n > sizeof r || ca_random(r, n) != CHATAPP_OK)
    return CHATAPP_EIO;
  for (i = 0; i < n; i++)
    out[i] = alphabet[r[i] % k];
  out[n] = '\0';
  ca_wipe(r, sizeof r);
  return CHATAPP_OK;
}

static const char alnum[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

chatapp_status emu_sts_issue(emu *e, const char *account, int64_t lifetime_s,
                             emu_key **out)
{
  emu_sts *s = &e->sts;
  int64_t now_s = emu_wall_ms() / 1000;
  char id[40], secret[40], token[200];
  emu_key *k;
  chatapp_status st;
  size_t i;

  /* Drop keys expired long ago; when still full, the one expiring first. */
  for (i = 0; i < s->nissued;) {
    if (s->issued[i].expires + EMU_EXPIRED_KEEP_S <= now_s) {
      emu_key_clear(&s->issued[i]);
      s->issued[i] = s->issued[--s->nissued];
      memset(&s->issued[s->nissued], 0, sizeof s->issued[0]);
      s->evicted++;
    } else {
      i++;
    }
  }
  if (s->nissued == EMU_ISSUED_MAX) {
    size_t first = 0;
    for (i = 1; i < s->nissued; i++)
      if (s->issued[i].expires < s->issued[first].expires)
        first = i;
    emu_key_clear(&s->issued[first]);
    s->issued[first] = s->issued[--s->nissued];
    memset(&s->issued[s->nissued], 0, sizeof s->issued[0]);
    s->evicted++;
  }
  memcpy(id, "STS.", 4);
  memcpy(token, "CAIS", 4);
  st = random_text(id + 4, 28, alnum);
  if (!st)
    st = random_text(secret, 30, alnum);
  if (!st)
    st = random_text(token + 4, 180, alnum);
  if (!st) {
    emu_key src;
    memset(&src, 0, sizeof src);
    src.access_key_id = id;
    src.secret = secret;
    src.token = token;
    src.account = (char *)(uintptr_t)account;
    src.expires = now_s + lifetime_s;
    k = &s->issued[s->nissued];
    st = emu_key_copy(k, &src);
    if (!st) {
      s->nissued++;
      s->issued_total++;
      *out = k;
    }
  }
  ca_wipe(secret, sizeof secret);
  ca_wipe(token, sizeof token);
  return st;
}

int64_t emu_sts_lifetime(const emu *e, long long requested)
{
  if (e->sts.lifetime_s)
    return e->sts.lifetime_s;
  return requested > 0 ? requested : 3600;
}

chatapp_status emu_sts_key_members(ca_buf *b, const emu_key *k)
{
  char exp[21];
  chatapp_status st;

  ca_iso8601(k->expires, exp);
  st = ca_buf_adds(b, "\"AccessKeyId\":");
  if (!st)
    st = emu_json_strz(b, k->access_key_id);
  if (!st)
    st = ca_buf_adds(b, ",\"AccessKeySecret\":");
  if (!st)
    st = emu_json_strz(b, k->secret);
  if (!st)
    st = ca_buf_adds(b, ",\"SecurityToken\":");
  if (!st)
    st = emu_json_strz(b, k->token);
  if (!st)
    st = ca_buf_printf(b, ",\"Expiration\":\"%s\"", exp);
  return st;
}

chatapp_status emu_sts_new_token(emu_sts *s, long ttl_s, char out[64])
{
  int64_t now = emu_wall_ms();
  size_t i;
  chatapp_status st;

  for (i = 0; i < s->ntokens;) {
    if (s->tokens[i].expires_ms <= now) {
      s->tokens[i] = s->tokens[--s->ntokens];
      ca_wipe(&s->tokens[s->ntokens], sizeof s->tokens[0]);
    } else {
      i++;
    }
  }
  if (s->ntokens == EMU_IMDS_TOKENS_MAX) {
    size_t first = 0;
    for (i = 1; i < s->ntokens; i++)
      if (s->tokens[i].expires_ms < s->tokens[first].expires_ms)
        first = i;
    s->tokens[first] = s->tokens[--s->ntokens];
    ca_wipe(&s->tokens[s->ntokens], sizeof s->tokens[0]);
  }
  memcpy(out, "AQAEA", 5);
  st = random_text(out + 5, 51, alnum);
  if (st)
    return st;
  memcpy(s->tokens[s->ntokens].tok, out, 57);
  s->tokens[s->ntokens].expires_ms = now + (int64_t)ttl_s * 1000;
  s->ntokens++;
  return CHATAPP_OK;
}

const char *emu_sts_token_state(emu *e, const char *tok)
{
  int64_t now = emu_wall_ms();
  const char *r = "invalid";
  size_t i;

  pthread_mutex_lock(&e->lock);
  for (i = 0; i < e->sts.ntokens; i++) {
    if (emu_ct_equal(e->sts.tokens[i].tok, tok)) {
      r = e->sts.tokens[i].expires_ms > now ? "valid" : "expired";
      break;
    }
  }
  pthread_mutex_unlock(&e->lock);
  return r;
}
