/*
 * ca_cred_answer: the parser of the role providers' answers (STS, the
 * metadata service, the credentials URI, the external command: the JSON
 * that carries AccessKeyId, AccessKeySecret, SecurityToken and Expiration)
 * and of their expiry times (ca_cred_provider.h).  Fuzzed by fuzz_cred.
 */
#include "ca_cred_prov_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ca_crypto.h"
#include "ca_json.h"

/* ---- parsing ------------------------------------------------------------ */

int64_t ca_cred_parse_time(const char *s)
{
  size_t n = s ? strlen(s) : 0;
  struct tm tm;
  int i;
  static const char pat20[] = "dddd-dd-ddTdd:dd:ddZ";
  static const char pat24[] = "dddd-dd-ddTdd:dd:dd.dddZ";
  const char *pat = n == 20 ? pat20 : n == 24 ? pat24 : NULL;
  time_t t;

  if (!pat)
    return -1;
  for (i = 0; pat[i]; i++) {
    if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
      return -1;
  }
  memset(&tm, 0, sizeof tm);
  tm.tm_year = atoi(s) - 1900;
  tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
  tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
  tm.tm_hour = (s[11] - '0') * 10 + (s[12] - '0');
  tm.tm_min = (s[14] - '0') * 10 + (s[15] - '0');
  tm.tm_sec = (s[17] - '0') * 10 + (s[18] - '0');
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return -1;
  t = timegm(&tm);
  return t == (time_t)-1 ? -1 : (int64_t)t;
}

/* A string member, non-empty, without NUL bytes; NULL otherwise. */
static const char *str_member(const ca_json *o, const char *key)
{
  const ca_json *m = o ? ca_json_get(o, key) : NULL;

  if (!m || m->type != CA_JSON_STRING || !m->str_len ||
      strlen(m->str) != m->str_len)
    return NULL;
  return m->str;
}

/* A credential string is printable ASCII without blanks (it goes into
 * headers and query strings). */
int cred_usable(const char *v)
{
  for (; v && *v; v++)
    if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
      return 0;
  return 1;
}

chatapp_status ca_cred_parse_answer(ca_cred_kind kind, const char *text,
                                    size_t len, char **id, char **secret,
                                    char **token, int64_t *exp, char *err,
                                    size_t errlen)
{
  const char *kid = "AccessKeyId", *ksec = "AccessKeySecret",
             *ktok = "SecurityToken", *kexp = "Expiration";
  const char *vid, *vsec, *vtok, *vexp, *code;
  const ca_json *root, *o;
  ca_json_doc *doc;
  char jerr[160];
  chatapp_status st = CHATAPP_EPARSE;
  int need_token = 1;

  *id = *secret = *token = NULL;
  *exp = 0;
  if (len > CRED_ANSWER_MAX) {
    snprintf(err, errlen, "the answer is over %d bytes", CRED_ANSWER_MAX);
    return CHATAPP_ETOOBIG;
  }
  doc = ca_json_parse(text, len, 16, CA_JSON_WIPE, jerr, sizeof jerr);
  if (!doc) {
    snprintf(err, errlen, "the answer is not JSON (%s)", jerr);
    return CHATAPP_EPARSE;
  }
  root = ca_json_root(doc);
  o = root->type == CA_JSON_OBJECT ? root : NULL;
  if (!o) {
    snprintf(err, errlen, "the answer is not a JSON object");
    goto out;
  }
  switch (kind) {
  case CA_CRED_RAM_ROLE:
  case CA_CRED_OIDC:
    o = ca_json_get(o, "Credentials");
    if (!o || o->type != CA_JSON_OBJECT) {
      snprintf(err, errlen, "the answer has no \"Credentials\" object");
      goto out;
    }
    break;
  case CA_CRED_ECS:
  case CA_CRED_URI:
    code = ca_json_get_str(o, "Code");
    if ((kind == CA_CRED_ECS || code) &&
        (!code || strcmp(code, "Success") != 0)) {
      snprintf(err, errlen, "the answer's Code is not \"Success\"");
      goto out;
    }
    break;
  case CA_CRED_PROCESS:
    kid = "access_key_id";
    ksec = "access_key_secret";
    ktok = "sts_token";
    kexp = "expiration";
    code = ca_json_get_str(o, "mode");
    need_token = code && strcasecmp(code, "StsToken") == 0;
    break;
  default:
    snprintf(err, errlen, "no parser for this kind of answer");
    goto out;
  }
  vid = str_member(o, kid);
  vsec = str_member(o, ksec);
  vtok = str_member(o, ktok);
  vexp = str_member(o, kexp);
  if (!vid || !vsec || (need_token && !vtok)) {
    snprintf(err, errlen, "the answer lacks %s",
             !vid    ? kid
             : !vsec ? ksec
                     : ktok);
    goto out;
  }
  if (!cred_usable(vid) || !cred_usable(vsec) || (vtok && !cred_usable(vtok))) {
    snprintf(err, errlen,
             "the answer's credentials hold blanks or non-ASCII bytes");
    goto out;
  }
  if (vexp) {
    *exp = ca_cred_parse_time(vexp);
    if (*exp <= 0) {
      snprintf(err, errlen,
               "the answer's %s is not a time like 2026-01-02T03:04:05Z", kexp);
      *exp = 0;
      goto out;
    }
  } else if (kind != CA_CRED_PROCESS) {
    snprintf(err, errlen, "the answer lacks %s", kexp);
    goto out;
  }
  *id = strdup(vid);
  *secret = strdup(vsec);
  *token = vtok ? strdup(vtok) : NULL;
  if (!*id || !*secret || (vtok && !*token)) {
    snprintf(err, errlen, "out of memory");
    st = CHATAPP_ENOMEM;
    goto out;
  }
  st = CHATAPP_OK;
out:
  if (st) {
    free(*id);
    if (*secret) {
      ca_wipe(*secret, strlen(*secret));
      free(*secret);
    }
    if (*token) {
      ca_wipe(*token, strlen(*token));
      free(*token);
    }
    *id = *secret = *token = NULL;
    *exp = 0;
  }
  ca_json_free(doc);
  return st;
}
