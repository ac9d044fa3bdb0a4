/*
 * ca_cred_cli: the aliyun CLI's ~/.aliyun/config.json, source 3 of the
 * default chain (see ca_cred.c for the chain and docs/credentials.md): its
 * profiles (AK, StsToken) and role modes (RamRoleArn, ChainableRamRoleArn,
 * EcsRamRole, OIDC, CredentialsURI, External).  Read by cred_read_file
 * (owner, mode 0600, no links, size cap), parsed with CA_JSON_WIPE; its
 * contents are wiped when freed.
 */
#include "ca_cred_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ca_crypto.h"
#include "ca_json.h"

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

/* A number member (or a numeric string): def when absent. */
static chatapp_status json_long(resolver *r, const char *sp, const char *sn,
                                const ca_json *o, const char *key, long *v)
{
  const ca_json *m = ca_json_get(o, key);
  char *end;

  if (!m || m->type == CA_JSON_NULL)
    return CHATAPP_OK;
  if (m->type == CA_JSON_NUMBER && m->num >= 0 && m->num <= 86400 * 366) {
    *v = (long)m->num;
    return CHATAPP_OK;
  }
  if (m->type == CA_JSON_STRING && m->str_len > 0 && m->str_len < 12) {
    long x = strtol(m->str, &end, 10);
    if (*end == '\0' && x >= 0) {
      *v = x;
      return CHATAPP_OK;
    }
  }
  cred_say(r, &r->msg, "%s: in profile '%s', \"%s\" is not a number", sp, sn,
           key);
  return CHATAPP_EPARSE;
}

/* A boolean member: true, or the string "true" (any case). */
static int json_true(const ca_json *o, const char *key)
{
  const ca_json *m = ca_json_get(o, key);
  return m && (m->type == CA_JSON_TRUE ||
               (m->type == CA_JSON_STRING && strcasecmp(m->str, "true") == 0));
}

/* The profile named name in profiles, or NULL. */
static const ca_json *find_profile(const ca_json *profiles, const char *name)
{
  const ca_json *p;

  for (p = profiles ? profiles->child : NULL; p; p = p->next) {
    const char *pn = ca_json_get_str(p, "name");
    if (p->type == CA_JSON_OBJECT && pn && strcmp(pn, name) == 0)
      return p;
  }
  return NULL;
}

#define CHAIN_MAX 8 /* ChainableRamRoleArn: profiles in one chain */

static chatapp_status use_cli_profile(resolver *r, const char *sp,
                                      const ca_json *profiles, const ca_json *p,
                                      const char *name, const char *by,
                                      ca_credentials *out, const char **chain,
                                      int depth);

/* The role fields of a role mode (RamRoleArn, ChainableRamRoleArn, OIDC). */
static chatapp_status cli_role_fields(resolver *r, const char *sp,
                                      const char *sn, const ca_json *p,
                                      ca_cred_role *role)
{
  const char *arn, *session, *region, *ep, *ext, *pol;
  chatapp_status st;

  if ((st = json_str(r, sp, sn, p, "ram_role_arn", &arn)) ||
      (st = json_str(r, sp, sn, p, "ram_session_name", &session)) ||
      (st = json_str(r, sp, sn, p, "sts_region", &region)) ||
      (st = json_str(r, sp, sn, p, "sts_endpoint", &ep)) ||
      (st = json_str(r, sp, sn, p, "external_id", &ext)) ||
      (st = json_str(r, sp, sn, p, "policy", &pol)) ||
      (st = json_long(r, sp, sn, p, "expired_seconds", &role->duration_s)))
    return st;
  if (role->kind == CA_CRED_OIDC &&
      (st = json_long(r, sp, sn, p, "duration_seconds", &role->duration_s)))
    return st;
  if (!arn || !*arn)
    arn = cred_env_get(r, "ALIBABA_CLOUD_ROLE_ARN");
  if (!session || !*session)
    session = cred_env_get(r, "ALIBABA_CLOUD_ROLE_SESSION_NAME");
  cred_role_set(r, &role->role_arn, arn);
  cred_role_set(r, &role->session_name, session);
  cred_role_set(r, &role->sts_region, region);
  cred_role_set(r, &role->sts_endpoint, ep);
  cred_role_set(r, &role->external_id, ext);
  cred_role_set(r, &role->policy, pol);
  role->vpc = json_true(p, "enable_vpc");
  if (!role->role_arn) {
    cred_say(r, &r->msg,
             "profile '%s' of %s has no ram_role_arn; run `aliyun configure "
             "--profile %s` with the role's ARN",
             sn, sp, sn);
    return CHATAPP_ECREDENTIALS;
  }
  return CHATAPP_OK;
}

/* A role mode of a config.json profile (options.roles). */
static chatapp_status use_cli_role(resolver *r, const char *sp,
                                   const ca_json *profiles, const ca_json *p,
                                   const char *sn, const char *canon,
                                   ca_cred_kind kind, ca_buf *src,
                                   ca_credentials *out, const char **chain,
                                   int depth)
{
  ca_cred_role *role = cred_role_new(r, kind);
  const char *v = NULL, *v2 = NULL, *missing = NULL;
  chatapp_status st = CHATAPP_OK;

  if (!role)
    return CHATAPP_ENOMEM;
  switch (kind) {
  case CA_CRED_RAM_ROLE:
    if (strcmp(canon, "ChainableRamRoleArn") == 0) {
      const ca_json *sp2;
      int i;
      if ((st = json_str(r, sp, sn, p, "source_profile", &v)))
        break;
      if (!v || !*v) {
        missing = "source_profile";
        break;
      }
      for (i = 0; i < depth; i++)
        if (strcmp(chain[i], v) == 0)
          break;
      if (i < depth || depth + 1 >= CHAIN_MAX) {
        char sv[NAME_SHOW];
        cred_say(r, &r->msg,
                 "profile '%s' of %s: its source_profile chain %s at '%s'; "
                 "a ChainableRamRoleArn profile must lead to one with an "
                 "AccessKey or a role",
                 sn, sp, i < depth ? "loops back" : "is too long",
                 cred_shown(sv, sizeof sv, v));
        st = CHATAPP_ECREDENTIALS;
        break;
      }
      sp2 = find_profile(profiles, v);
      if (!sp2) {
        char sv[NAME_SHOW];
        cred_say(r, &r->msg,
                 "profile '%s' of %s names source_profile '%s', which does not "
                 "exist in that file",
                 sn, sp, cred_shown(sv, sizeof sv, v));
        st = CHATAPP_ECREDENTIALS;
        break;
      }
      role->source = calloc(1, sizeof *role->source);
      if (!role->source) {
        st = CHATAPP_ENOMEM;
        break;
      }
      chain[depth] = v;
      st = use_cli_profile(r, sp, profiles, sp2, v, "source_profile",
                           role->source, chain, depth + 1);
      if (st)
        break;
    } else {
      const char *id, *secret, *token;
      ca_buf s2 = CA_BUF_INIT(MSG_MAX);
      if ((st = json_str(r, sp, sn, p, "access_key_id", &id)) ||
          (st = json_str(r, sp, sn, p, "access_key_secret", &secret)) ||
          (st = json_str(r, sp, sn, p, "sts_token", &token)))
        break;
      if (!id || !*id) {
        missing = "access_key_id";
        break;
      }
      if (!secret || !*secret) {
        missing = "access_key_secret";
        break;
      }
      role->source = calloc(1, sizeof *role->source);
      if (!role->source) {
        st = CHATAPP_ENOMEM;
        break;
      }
      cred_say(r, &s2, "the AccessKey of profile '%s'", sn);
      st = cred_fill(r, role->source, id, secret,
                     token && *token ? token : NULL, NULL, &s2);
      ca_buf_free(&s2);
      if (st)
        break;
    }
    st = cli_role_fields(r, sp, sn, p, role);
    break;
  case CA_CRED_OIDC:
    if ((st = json_str(r, sp, sn, p, "oidc_provider_arn", &v)) ||
        (st = json_str(r, sp, sn, p, "oidc_token_file", &v2)))
      break;
    if (!v || !*v)
      v = cred_env_get(r, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN");
    if (!v2 || !*v2)
      v2 = cred_env_get(r, "ALIBABA_CLOUD_OIDC_TOKEN_FILE");
    if (!v || !*v)
      missing = "oidc_provider_arn";
    else if (!v2 || !*v2)
      missing = "oidc_token_file";
    cred_role_set(r, &role->oidc_provider_arn, v);
    cred_role_set(r, &role->oidc_token_file, v2);
    if (!missing)
      st = cli_role_fields(r, sp, sn, p, role);
    break;
  case CA_CRED_ECS:
    if ((st = json_str(r, sp, sn, p, "ram_role_name", &v)))
      break;
    cred_role_set(r, &role->ecs_role, v);
    break;
  case CA_CRED_URI:
    if ((st = json_str(r, sp, sn, p, "credentials_uri", &v)))
      break;
    if (!v || !*v)
      v = cred_env_get(r, "ALIBABA_CLOUD_CREDENTIALS_URI");
    if (!v || !*v)
      missing = "credentials_uri";
    cred_role_set(r, &role->uri, v);
    break;
  case CA_CRED_PROCESS:
    if ((st = json_str(r, sp, sn, p, "process_command", &v)))
      break;
    if (!v || !*v)
      missing = "process_command";
    cred_role_set(r, &role->process, v);
    break;
  default:
    break;
  }
  if (!st && missing) {
    cred_say(r, &r->msg,
             "profile '%s' (mode %s) of %s has no %s; run `aliyun configure "
             "--mode %s --profile %s`",
             sn, canon, sp, missing, canon, sn);
    st = CHATAPP_ECREDENTIALS;
  }
  if (!st && r->nomem)
    st = CHATAPP_ENOMEM;
  if (st) {
    ca_cred_role_free(role);
    return st;
  }
  return cred_fill_role(r, out, role, NULL, src);
}

/* Use profile p (named name, chosen by `by`) of config.json at sp. */
static chatapp_status use_cli_profile(resolver *r, const char *sp,
                                      const ca_json *profiles, const ca_json *p,
                                      const char *name, const char *by,
                                      ca_credentials *out, const char **chain,
                                      int depth)
{
  static const struct {
    const char *mode;
    ca_cred_kind kind;
  } role_modes[] = {
    {"RamRoleArn", CA_CRED_RAM_ROLE}, {"ChainableRamRoleArn", CA_CRED_RAM_ROLE},
    {"EcsRamRole", CA_CRED_ECS},      {"OIDC", CA_CRED_OIDC},
    {"CredentialsURI", CA_CRED_URI},  {"External", CA_CRED_PROCESS}};
  const char *mode, *id, *secret, *token, *region, *canon, *missing = NULL;
  char sn[NAME_SHOW], sm[NAME_SHOW];
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  chatapp_status st;
  size_t i;
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
             "profile '%s' of %s has no mode; supported modes: AK, StsToken%s "
             "(run `aliyun configure --mode AK --profile %s`)",
             sn, sp,
             r->opt->roles ? ", RamRoleArn, ChainableRamRoleArn, EcsRamRole, "
                             "OIDC, CredentialsURI, External"
                           : "",
             sn);
    return CHATAPP_ECREDENTIALS;
  }
  for (i = 0; r->opt->roles && i < sizeof role_modes / sizeof role_modes[0];
       i++) {
    if (strcasecmp(mode, role_modes[i].mode) == 0) {
      cred_say(r, &src, "profile '%s' (mode %s) of %s", sn, role_modes[i].mode,
               sp);
      cred_say_selected(r, &src, by);
      st = use_cli_role(r, sp, profiles, p, sn, role_modes[i].mode,
                        role_modes[i].kind, &src, out, chain, depth);
      if (!st && region && *region && !out->region) {
        out->region = strdup(region);
        if (!out->region)
          st = CHATAPP_ENOMEM;
      }
      ca_buf_free(&src);
      return st;
    }
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
      "support yet; supported modes: AK, StsToken%s.  Use a profile in one "
      "of those modes (`aliyun configure --mode AK --profile NAME`), or "
      "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
      sn, sp, cred_shown_mode(sm, sizeof sm, mode),
      r->opt->roles ? ", RamRoleArn, ChainableRamRoleArn, EcsRamRole, OIDC, "
                      "CredentialsURI, External"
                    : "");
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
  cred_say_selected(r, &src, by);
  st = cred_fill(r, out, id, secret, sts ? token : NULL, region, &src);
  ca_buf_free(&src);
  return st;
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
  skip = cred_bom_len(f.data, f.len);
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
    cred_say_selected(r, &r->looked, by);
    cred_say(r, &r->looked, "; its profiles: ");
    cred_list_names(r, &r->looked, names, n, "'", "'");
    cred_say(r, &r->looked, "\n");
    goto out;
  }
  {
    const char *chain[CHAIN_MAX];
    chain[0] = name;
    st = use_cli_profile(r, sp, profiles, found, name, by, out, chain, 1);
  }
  *done = !st;
out:
  free(names);
  ca_json_free(doc);
  cred_cfile_free(&f);
  free(path);
  return st;
}
