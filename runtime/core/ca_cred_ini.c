/*
 * ca_cred_ini: the SDKs' INI file ~/.alibabacloud/credentials, source 4 of
 * the default chain (see ca_cred.c for the chain and docs/credentials.md):
 * its sections (access_key, sts) and role types (ram_role_arn,
 * ecs_ram_role, oidc_role_arn).  Read by cred_read_file
 * (owner, mode 0600, no links, size cap); its contents are wiped when
 * freed.
 */
#include "ca_cred_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca_crypto.h"

/* What the INI scan found in the wanted section (pointers into the file). */
typedef struct ini_section {
  int found;
  const char *type, *id, *secret, *token;
  const char *role_arn, *session, *policy, *role_name, *oidc_arn, *oidc_file;
  const char *sts_region, *sts_endpoint, *duration;
} ini_section;

static char *trim(char *s, char *e)
{
  while (s < e && (*s == ' ' || *s == '\t'))
    s++;
  while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
    e--;
  *e = '\0';
  return s;
}

/*
 * Scan an INI file in place (NULs are written into text): `[section]`
 * headers, `key = value` lines, `#` / `;` comment lines, blank lines, CRLF.
 * A value may be quoted ("..." or '...') and may be followed by a comment
 * that starts with whitespace + `#` or `;`.  Later keys and repeated
 * sections override earlier ones.  Section names go to names[] (at most
 * cap; *nnames counts them all).  A line that is none of these is
 * CHATAPP_EPARSE with the line number (never the content) in r->msg.
 */
static chatapp_status ini_scan(resolver *r, const char *sp, char *text,
                               size_t len, const char *want, ini_section *sec,
                               const char **names, size_t cap, size_t *nnames)
{
  char *p = text + cred_bom_len(text, len), *end = text + len;
  size_t lineno = 0;
  int in_want = 0;

  memset(sec, 0, sizeof *sec);
  *nnames = 0;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *line = p, *le = nl ? nl : end, *s, *eq, *key, *val;
    size_t vlen;

    p = nl ? nl + 1 : end;
    lineno++;
    if (memchr(line, '\0', (size_t)(le - line))) {
      cred_say(r, &r->msg, "%s, line %zu: a NUL byte", sp, lineno);
      return CHATAPP_EPARSE;
    }
    if (le > line && le[-1] == '\r')
      le--;
    s = trim(line, le);
    if (*s == '\0' || *s == '#' || *s == ';')
      continue;
    if (*s == '[') {
      char *close = strchr(s, ']');
      char *name;
      if (!close || *trim(close + 1, close + 1 + strlen(close + 1)) != '\0') {
        cred_say(r, &r->msg, "%s, line %zu: a section header must be '[name]'",
                 sp, lineno);
        return CHATAPP_EPARSE;
      }
      name = trim(s + 1, close);
      if (*name == '\0') {
        cred_say(r, &r->msg, "%s, line %zu: an empty section name", sp, lineno);
        return CHATAPP_EPARSE;
      }
      if (*nnames < cap)
        names[*nnames] = name;
      ++*nnames;
      in_want = strcmp(name, want) == 0;
      if (in_want)
        sec->found = 1;
      continue;
    }
    eq = strchr(s, '=');
    if (!eq || eq == s) {
      cred_say(r, &r->msg,
               "%s, line %zu: expected 'key = value', '[section]' or a comment",
               sp, lineno);
      return CHATAPP_EPARSE;
    }
    key = trim(s, eq);
    val = eq + 1;
    for (s = val; *s; s++) {
      if ((*s == '#' || *s == ';') && s > val &&
          (s[-1] == ' ' || s[-1] == '\t')) {
        *s = '\0';
        break;
      }
    }
    val = trim(val, val + strlen(val));
    vlen = strlen(val);
    if (vlen >= 2 && (val[0] == '"' || val[0] == '\'') &&
        val[vlen - 1] == val[0]) {
      val[vlen - 1] = '\0';
      val++;
    }
    if (!in_want)
      continue;
    if (strcmp(key, "type") == 0)
      sec->type = val;
    else if (strcmp(key, "access_key_id") == 0)
      sec->id = val;
    else if (strcmp(key, "access_key_secret") == 0)
      sec->secret = val;
    else if (strcmp(key, "security_token") == 0)
      sec->token = val;
    else if (strcmp(key, "role_arn") == 0)
      sec->role_arn = val;
    else if (strcmp(key, "role_session_name") == 0)
      sec->session = val;
    else if (strcmp(key, "policy") == 0)
      sec->policy = val;
    else if (strcmp(key, "role_name") == 0)
      sec->role_name = val;
    else if (strcmp(key, "oidc_provider_arn") == 0)
      sec->oidc_arn = val;
    else if (strcmp(key, "oidc_token_file_path") == 0 ||
             strcmp(key, "oidc_token_file") == 0)
      sec->oidc_file = val;
    else if (strcmp(key, "sts_region") == 0)
      sec->sts_region = val;
    else if (strcmp(key, "sts_endpoint") == 0)
      sec->sts_endpoint = val;
    else if (strcmp(key, "duration_seconds") == 0 ||
             strcmp(key, "role_session_expiration") == 0)
      sec->duration = val;
  }
  return CHATAPP_OK;
}

/* A role type of an INI section (options.roles): ram_role_arn,
 * ecs_ram_role, oidc_role_arn.  *handled unset for other types. */
static chatapp_status use_ini_role(resolver *r, const char *sp,
                                   const ini_section *sec, const char *sn,
                                   const char *by, ca_credentials *out,
                                   int *handled)
{
  const char *type = sec->type, *canon, *missing = NULL;
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  ca_cred_role *role;
  ca_cred_kind kind;
  chatapp_status st = CHATAPP_OK;

  *handled = 0;
  if (strcasecmp(type, "ram_role_arn") == 0) {
    canon = "ram_role_arn";
    kind = CA_CRED_RAM_ROLE;
  } else if (strcasecmp(type, "ecs_ram_role") == 0) {
    canon = "ecs_ram_role";
    kind = CA_CRED_ECS;
  } else if (strcasecmp(type, "oidc_role_arn") == 0) {
    canon = "oidc_role_arn";
    kind = CA_CRED_OIDC;
  } else {
    return CHATAPP_OK;
  }
  *handled = 1;
  role = cred_role_new(r, kind);
  if (!role)
    return CHATAPP_ENOMEM;
  cred_role_set(r, &role->role_arn,
                sec->role_arn && *sec->role_arn
                  ? sec->role_arn
                  : cred_env_get(r, "ALIBABA_CLOUD_ROLE_ARN"));
  cred_role_set(r, &role->session_name,
                sec->session && *sec->session
                  ? sec->session
                  : cred_env_get(r, "ALIBABA_CLOUD_ROLE_SESSION_NAME"));
  cred_role_set(r, &role->policy, sec->policy);
  cred_role_set(r, &role->sts_region, sec->sts_region);
  cred_role_set(r, &role->sts_endpoint, sec->sts_endpoint);
  if (sec->duration && *sec->duration) {
    char *end;
    long d = strtol(sec->duration, &end, 10);
    if (*end || d < 0) {
      cred_say(r, &r->msg,
               "section [%s] of %s: duration_seconds is not a whole number of "
               "seconds",
               sn, sp);
      ca_cred_role_free(role);
      return CHATAPP_EPARSE;
    }
    role->duration_s = d;
  }
  if (kind == CA_CRED_RAM_ROLE) {
    if (!sec->id || !*sec->id)
      missing = "access_key_id";
    else if (!sec->secret || !*sec->secret)
      missing = "access_key_secret";
    else if (!role->role_arn)
      missing = "role_arn";
    if (!missing) {
      ca_buf s2 = CA_BUF_INIT(MSG_MAX);
      role->source = calloc(1, sizeof *role->source);
      if (!role->source) {
        ca_cred_role_free(role);
        return CHATAPP_ENOMEM;
      }
      cred_say(r, &s2, "the AccessKey of section [%s]", sn);
      st = cred_fill(r, role->source, sec->id, sec->secret,
                     sec->token && *sec->token ? sec->token : NULL, NULL, &s2);
      ca_buf_free(&s2);
    }
  } else if (kind == CA_CRED_ECS) {
    cred_role_set(r, &role->ecs_role, sec->role_name);
  } else {
    cred_role_set(r, &role->oidc_provider_arn,
                  sec->oidc_arn && *sec->oidc_arn
                    ? sec->oidc_arn
                    : cred_env_get(r, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"));
    cred_role_set(r, &role->oidc_token_file,
                  sec->oidc_file && *sec->oidc_file
                    ? sec->oidc_file
                    : cred_env_get(r, "ALIBABA_CLOUD_OIDC_TOKEN_FILE"));
    if (!role->role_arn)
      missing = "role_arn";
    else if (!role->oidc_provider_arn)
      missing = "oidc_provider_arn";
    else if (!role->oidc_token_file)
      missing = "oidc_token_file_path";
  }
  if (!st && missing) {
    cred_say(r, &r->msg, "section [%s] (type %s) of %s has no %s", sn, canon,
             sp, missing);
    st = CHATAPP_ECREDENTIALS;
  }
  if (!st && r->nomem)
    st = CHATAPP_ENOMEM;
  if (st) {
    ca_cred_role_free(role);
    return st;
  }
  cred_say(r, &src, "section [%s] (type %s) of %s", sn, canon, sp);
  cred_say_selected(r, &src, by);
  st = cred_fill_role(r, out, role, NULL, &src);
  ca_buf_free(&src);
  return st;
}

/* Use section want of the INI file at sp. */
static chatapp_status use_ini_section(resolver *r, const char *sp,
                                      const ini_section *sec, const char *want,
                                      const char *by, ca_credentials *out)
{
  char sn[NAME_SHOW], sm[NAME_SHOW];
  const char *canon, *missing = NULL;
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  chatapp_status st;
  int sts;

  cred_shown(sn, sizeof sn, want);
  if (!sec->type || !*sec->type) {
    cred_say(r, &r->msg,
             "section [%s] of %s has no type; supported types: access_key, sts",
             sn, sp);
    return CHATAPP_ECREDENTIALS;
  }
  if (r->opt->roles) {
    int handled;
    st = use_ini_role(r, sp, sec, sn, by, out, &handled);
    if (handled || st)
      return st;
  }
  if (strcasecmp(sec->type, "access_key") == 0) {
    canon = "access_key";
    sts = 0;
  } else if (strcasecmp(sec->type, "sts") == 0) {
    canon = "sts";
    sts = 1;
  } else {
    cred_say(
      r, &r->msg,
      "section [%s] of %s has type %s, which chatapp-run does not support "
      "yet; supported types: access_key, sts.  Use a section of one of "
      "those types, or set ALIBABA_CLOUD_ACCESS_KEY_ID and "
      "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
      sn, sp, cred_shown_mode(sm, sizeof sm, sec->type));
    return CHATAPP_ECREDENTIALS;
  }
  if (!sec->id || !*sec->id)
    missing = "access_key_id";
  else if (!sec->secret || !*sec->secret)
    missing = "access_key_secret";
  else if (sts && (!sec->token || !*sec->token))
    missing = "security_token";
  if (missing) {
    cred_say(r, &r->msg, "section [%s] (type %s) of %s has no %s", sn, canon,
             sp, missing);
    return CHATAPP_ECREDENTIALS;
  }
  cred_say(r, &src, "section [%s] (type %s) of %s", sn, canon, sp);
  cred_say_selected(r, &src, by);
  st = cred_fill(r, out, sec->id, sec->secret, sts ? sec->token : NULL, NULL,
                 &src);
  ca_buf_free(&src);
  return st;
}

/* 4. The SDK's INI file (~/.alibabacloud/credentials or the override). */
chatapp_status cred_from_ini_file(resolver *r, ca_credentials *out, int *done)
{
  chatapp_status st = CHATAPP_OK;
  const char *override = cred_env_get(r, "ALIBABA_CLOUD_CREDENTIALS_FILE");
  const char *want = r->profile ? r->profile : "default";
  const char *names[LIST_MAX];
  char *path = NULL;
  char sp[PATH_SHOW], sn[NAME_SHOW];
  ini_section sec;
  size_t nnames = 0;
  cfile f = {NULL, 0, 0};

  if (override) {
    path = strdup(override);
  } else if (!r->home) {
    cred_say(r, &r->looked,
             "  - ~/.alibabacloud/credentials: skipped, home directory unknown "
             "(set HOME)\n");
    return CHATAPP_OK;
  } else {
    path = cred_join(r->home, ".alibabacloud/credentials");
  }
  if (!path)
    return CHATAPP_ENOMEM;
  cred_shown(sp, sizeof sp, path);
  memcpy(r->ini_shown, sp, sizeof sp);
  st = cred_read_file(r, path, &f);
  if (st)
    goto out;
  if (!f.exists) {
    if (override) {
      cred_say(r, &r->msg,
               "ALIBABA_CLOUD_CREDENTIALS_FILE is set to %s, which does not "
               "exist",
               sp);
      st = CHATAPP_ECREDENTIALS;
    } else {
      cred_say(r, &r->looked, "  - %s: does not exist\n", sp);
    }
    goto out;
  }
  st = ini_scan(r, sp, f.data, f.len, want, &sec, names, LIST_MAX, &nnames);
  if (st)
    goto out;
  if (!sec.found) {
    cred_say(r, &r->looked, "  - %s%s: no section [%s]", sp,
             override ? " (from ALIBABA_CLOUD_CREDENTIALS_FILE)" : "",
             cred_shown(sn, sizeof sn, want));
    cred_say_selected(r, &r->looked, r->profile_by);
    cred_say(r, &r->looked, "; its sections: ");
    cred_list_names(r, &r->looked, names, nnames < LIST_MAX ? nnames : LIST_MAX,
                    "[", "]");
    if (nnames > LIST_MAX)
      cred_say(r, &r->looked, " and %zu more", nnames - LIST_MAX);
    cred_say(r, &r->looked, "\n");
    goto out;
  }
  st = use_ini_section(r, sp, &sec, want, r->profile_by, out);
  *done = !st;
out:
  cred_cfile_free(&f);
  free(path);
  return st;
}
