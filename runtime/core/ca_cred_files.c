/*
 * ca_cred_files: the two credential files of the default chain, after the
 * environment (see ca_cred.c for the chain and docs/credentials.md):
 *
 *   ~/.aliyun/config.json          the aliyun CLI's profiles (AK, StsToken)
 *   ~/.alibabacloud/credentials    the SDKs' INI file (access_key, sts)
 *
 * Both are read by cred_read_file (owner, mode 0600, no links, size cap);
 * their contents are wiped when freed.
 */
#include "ca_cred_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca_crypto.h"
#include "ca_json.h"

/* Append "'a', 'b', ..." (at most LIST_MAX) or "none". */
static void list_names(resolver *r, ca_buf *b, const char *const *names,
                       size_t n, const char *open, const char *close)
{
  char sn[NAME_SHOW];
  size_t i;

  if (n == 0) {
    cred_say(r, b, "none");
    return;
  }
  for (i = 0; i < n && i < LIST_MAX; i++)
    cred_say(r, b, "%s%s%s%s", i ? ", " : "", open,
             cred_shown(sn, sizeof sn, names[i]), close);
  if (n > LIST_MAX)
    cred_say(r, b, " and %zu more", n - LIST_MAX);
}

/* How the profile was chosen, for source strings and messages. */
static void say_selected(resolver *r, ca_buf *b, const char *by)
{
  if (by)
    cred_say(r, b, ", selected by %s", by);
}

/* A string member of a config.json profile: NULL when absent or null,
 * CHATAPP_EPARSE when of another type. */
static chatapp_status json_str(resolver *r, const char *sp, const char *sn,
                               const ca_json *o, const char *key,
                               const char **v)
{
  const ca_json *m = ca_json_get(o, key);

  *v = NULL;
  if (!m || m->type == CA_JSON_NULL)
    return CHATAPP_OK;
  if (m->type != CA_JSON_STRING || strlen(m->str) != m->str_len) {
    cred_say(r, &r->msg, "%s: in profile '%s', \"%s\" is not a string", sp, sn,
             key);
    return CHATAPP_EPARSE;
  }
  *v = m->str;
  return CHATAPP_OK;
}

/* Use profile p (named name, chosen by `by`) of config.json at sp. */
static chatapp_status use_cli_profile(resolver *r, const char *sp,
                                      const ca_json *p, const char *name,
                                      const char *by, ca_credentials *out)
{
  const char *mode, *id, *secret, *token, *region, *canon, *missing = NULL;
  char sn[NAME_SHOW], sm[NAME_SHOW];
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  chatapp_status st;
  int sts;

  cred_shown(sn, sizeof sn, name);
  if ((st = json_str(r, sp, sn, p, "mode", &mode)) ||
      (st = json_str(r, sp, sn, p, "access_key_id", &id)) ||
      (st = json_str(r, sp, sn, p, "access_key_secret", &secret)) ||
      (st = json_str(r, sp, sn, p, "sts_token", &token)) ||
      (st = json_str(r, sp, sn, p, "region_id", &region)))
    return st;
  if (!mode || !*mode) {
    cred_say(r, &r->msg,
             "profile '%s' of %s has no mode; supported modes: AK, StsToken "
             "(run `aliyun configure --mode AK --profile %s`)",
             sn, sp, sn);
    return CHATAPP_ECREDENTIALS;
  }
  if (strcasecmp(mode, "AK") == 0) {
    canon = "AK";
    sts = 0;
  } else if (strcasecmp(mode, "StsToken") == 0) {
    canon = "StsToken";
    sts = 1;
  } else {
    cred_say(
      r, &r->msg,
      "profile '%s' of %s uses mode %s, which chatapp-run does not "
      "support yet; supported modes: AK, StsToken.  Use a profile in one "
      "of those modes (`aliyun configure --mode AK --profile NAME`), or "
      "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
      sn, sp, cred_shown_mode(sm, sizeof sm, mode));
    return CHATAPP_ECREDENTIALS;
  }
  if (!id || !*id)
    missing = "access_key_id";
  else if (!secret || !*secret)
    missing = "access_key_secret";
  else if (sts && (!token || !*token))
    missing = "sts_token";
  if (missing) {
    cred_say(r, &r->msg,
             "profile '%s' (mode %s) of %s has no %s; run `aliyun configure "
             "--mode %s --profile %s`",
             sn, canon, sp, missing, canon, sn);
    return CHATAPP_ECREDENTIALS;
  }
  cred_say(r, &src, "profile '%s' (mode %s) of %s", sn, canon, sp);
  say_selected(r, &src, by);
  st = cred_fill(r, out, id, secret, sts ? token : NULL, region, &src);
  ca_buf_free(&src);
  return st;
}

/* A UTF-8 byte order mark is skipped (RFC 8259 allows ignoring it). */
static size_t bom_len(const char *s, size_t n)
{
  return n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/* 3. The aliyun CLI's ~/.aliyun/config.json. */
chatapp_status cred_from_cli_file(resolver *r, ca_credentials *out, int *done)
{
  chatapp_status st = CHATAPP_OK;
  const char *v = cred_env_get(r, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED");
  const ca_json *root, *profiles, *p, *found = NULL;
  const char *name, *by, *current = NULL;
  const char **names = NULL;
  char *path = NULL;
  char sp[PATH_SHOW], sn[NAME_SHOW], jerr[160];
  ca_json_doc *doc = NULL;
  size_t n = 0, skip;
  cfile f = {NULL, 0, 0};

  if (v && strcasecmp(v, "true") == 0) {
    cred_say(r, &r->looked,
             "  - ~/.aliyun/config.json: skipped, "
             "ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true\n");
    return CHATAPP_OK;
  }
  if (!r->home) {
    cred_say(r, &r->looked,
             "  - ~/.aliyun/config.json: skipped, home directory unknown (set "
             "HOME)\n");
    return CHATAPP_OK;
  }
  path = cred_join(r->home, ".aliyun/config.json");
  if (!path)
    return CHATAPP_ENOMEM;
  cred_shown(sp, sizeof sp, path);
  st = cred_read_file(r, path, &f);
  if (st)
    goto out;
  if (!f.exists) {
    cred_say(r, &r->looked, "  - %s: does not exist\n", sp);
    goto out;
  }
  skip = bom_len(f.data, f.len);
  doc = ca_json_parse(f.data + skip, f.len - skip, 16, CA_JSON_WIPE, jerr,
                      sizeof jerr);
  if (!doc) {
    cred_say(r, &r->msg,
             "%s is not valid JSON: %s; fix the file or run `aliyun configure` "
             "to rewrite it",
             sp, jerr);
    st = CHATAPP_EPARSE;
    goto out;
  }
  root = ca_json_root(doc);
  profiles = ca_json_get(root, "profiles");
  if (root->type != CA_JSON_OBJECT ||
      (profiles && profiles->type != CA_JSON_ARRAY &&
       profiles->type != CA_JSON_NULL)) {
    cred_say(r, &r->msg,
             "%s is not an aliyun CLI configuration: expected an object with a "
             "\"profiles\" array",
             sp);
    st = CHATAPP_EPARSE;
    goto out;
  }
  current = ca_json_get_str(root, "current");
  if (r->profile) {
    name = r->profile;
    by = r->profile_by;
  } else if (current && *current) {
    name = current;
    by = "its \"current\" setting";
  } else {
    name = "default";
    by = NULL;
  }
  names = calloc(profiles ? profiles->count + 1 : 1, sizeof *names);
  if (!names) {
    st = CHATAPP_ENOMEM;
    goto out;
  }
  for (p = profiles ? profiles->child : NULL; p; p = p->next) {
    const char *pn = ca_json_get_str(p, "name");
    if (p->type != CA_JSON_OBJECT || !pn) {
      cred_say(r, &r->msg,
               "%s: profile number %zu is not an object with a \"name\" string",
               sp, n + 1);
      st = CHATAPP_EPARSE;
      goto out;
    }
    names[n++] = pn;
    if (!found && strcmp(pn, name) == 0)
      found = p; /* the first one, as the CLI does */
  }
  if (!found) {
    cred_say(r, &r->looked, "  - %s: no profile '%s'", sp,
             cred_shown(sn, sizeof sn, name));
    say_selected(r, &r->looked, by);
    cred_say(r, &r->looked, "; its profiles: ");
    list_names(r, &r->looked, names, n, "'", "'");
    cred_say(r, &r->looked, "\n");
    goto out;
  }
  st = use_cli_profile(r, sp, found, name, by, out);
  *done = !st;
out:
  free(names);
  ca_json_free(doc);
  cred_cfile_free(&f);
  free(path);
  return st;
}

/* What the INI scan found in the wanted section (pointers into the file). */
typedef struct ini_section {
  int found;
  const char *type, *id, *secret, *token;
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
  char *p = text + bom_len(text, len), *end = text + len;
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
  }
  return CHATAPP_OK;
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
  say_selected(r, &src, by);
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
    say_selected(r, &r->looked, r->profile_by);
    cred_say(r, &r->looked, "; its sections: ");
    list_names(r, &r->looked, names, nnames < LIST_MAX ? nnames : LIST_MAX, "[",
               "]");
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
