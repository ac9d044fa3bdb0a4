/*
 * ca_cred: the Alibaba Cloud default credential chain (see ca_cred.h and
 * docs/credentials.md).
 *
 * Shape: ca_cred_resolve() tries each source in order with a `resolver`
 * that carries the options, the home directory, the selected profile and
 * three message buffers: `looked` (one line per place tried, for the
 * "nothing found" error), `msg` (the failure message) and `warn` (notes for
 * ca_credentials.warning).  A source returns CHATAPP_OK with *done unset when
 * it has nothing, and an error (message in r->msg) when what it found is
 * unusable: a refused or malformed file stops the chain rather than
 * silently falling through to another account's credentials.  This file
 * holds the chain, its explicit, environment and OIDC-variable sources,
 * the ECS role at its end, messages and the secret variables; the file sources
 * are in ca_cred_cli.c and ca_cred_ini.c, over ca_cred_files.c (the safe
 * reader).
 *
 * Secrets: file contents live in one exact-size malloc'd buffer (never
 * realloc'd, so no stale copies) that is wiped before free; config.json is
 * parsed with CA_JSON_WIPE.  Messages are built only from paths, variable
 * names and profile/section names, escaped and length-capped.
 */
#include "ca_cred_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_json.h"
#include "ca_sign.h"

/* Variables the aliyun CLI accepts, the SDK's name first (docs/credentials.md,
 * "Environment variables").
 * The same index is the same family: ENV_ID[i] pairs with ENV_SECRET[i]. */
static const char *const ENV_ID[] = {
  "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABACLOUD_ACCESS_KEY_ID",
  "ALICLOUD_ACCESS_KEY_ID", "ACCESS_KEY_ID", NULL};
static const char *const ENV_SECRET[] = {
  "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABACLOUD_ACCESS_KEY_SECRET",
  "ALICLOUD_ACCESS_KEY_SECRET", "ACCESS_KEY_SECRET", NULL};
static const char *const ENV_TOKEN[] = {
  "ALIBABA_CLOUD_SECURITY_TOKEN", "ALIBABACLOUD_SECURITY_TOKEN",
  "ALICLOUD_SECURITY_TOKEN", "SECURITY_TOKEN", NULL};
/* Other names of a secret: the Terraform provider's
 * (ALICLOUD_ACCESS_KEY / ALICLOUD_SECRET_KEY / ALICLOUD_SECURITY_TOKEN). */
static const char *const ENV_SECRET_OTHER[] = {"ALICLOUD_SECRET_KEY", NULL};
/* Secrets that are not Alibaba Cloud's: the Redis password of the shared
 * limiter and state (ca_redis.h). */
static const char *const ENV_SECRET_NOT_CLOUD[] = {"CHATAPP_REDIS_PASSWORD",
                                                   NULL};
static const char *const ENV_PROFILE[] = {
  "ALIBABA_CLOUD_PROFILE", "ALIBABACLOUD_PROFILE", "ALICLOUD_PROFILE", NULL};

/* Modes / types we know by name, so they can be named in messages even
 * though they are not supported; any other value is only shown when it
 * cannot be a secret (short identifier; AccessKey secrets are 30 chars). */
/* clang-format off */
static const char *const KNOWN_MODES[] = {
  "RamRoleArn", "EcsRamRole", "ChainableRamRoleArn", "RamRoleArnWithRoleName",
  "RsaKeyPair", "External", "CredentialsURI", "OIDC", "CloudSSO", "OAuth",
  "BearerToken", "Anonymous", "ecs_ram_role", "ram_role_arn", "oidc_role_arn",
  "rsa_key_pair", "bearer", "credentials_uri", NULL};
/* clang-format on */

void cred_say(resolver *r, ca_buf *b, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  if (ca_buf_vprintf(b, fmt, ap) == CHATAPP_ENOMEM)
    r->nomem = 1;
  va_end(ap);
}

/*
 * s made safe for a terminal and a log line: bytes outside printable ASCII
 * become \xNN, and the result is cut with "..." to fit out[n] (n >= 8).
 */
const char *cred_shown(char *out, size_t n, const char *s)
{
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;

  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    size_t need = c >= 0x20 && c < 0x7f ? 1 : 4;
    if (o + need + 4 > n) {
      memcpy(out + o, "...", 4);
      return out;
    }
    if (need == 1) {
      out[o++] = (char)c;
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
  return out;
}

/* A mode or type value for a message: see KNOWN_MODES. */
const char *cred_shown_mode(char *out, size_t n, const char *v)
{
  size_t i, len = strlen(v);

  for (i = 0; KNOWN_MODES[i]; i++)
    if (strcasecmp(v, KNOWN_MODES[i]) == 0)
      return cred_shown(out, n, v);
  if (len > 20)
    return "(an unrecognised value, not shown)";
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)v[i];
    if (!(c == '_' || c == '-' || (c >= '0' && c <= '9') ||
          (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
      return "(an unrecognised value, not shown)";
  }
  return cred_shown(out, n, v);
}

/* A variable's value, or NULL when unset or empty. */
const char *cred_env_get(const resolver *r, const char *name)
{
  const char *v =
    r->opt->getenv ? r->opt->getenv(r->opt->getenv_ud, name) : getenv(name);
  return v && *v ? v : NULL;
}

/* The first non-empty variable of names[]; its index in *which. */
static const char *env_first(const resolver *r, const char *const *names,
                             size_t *which)
{
  size_t i;

  for (i = 0; names[i]; i++) {
    const char *v = cred_env_get(r, names[i]);
    if (v) {
      *which = i;
      return v;
    }
  }
  return NULL;
}

char *cred_join(const char *dir, const char *rel)
{
  size_t n = strlen(dir);
  char *p;

  while (n > 1 && dir[n - 1] == '/')
    n--;
  p = malloc(n + 1 + strlen(rel) + 1);
  if (p) {
    memcpy(p, dir, n);
    p[n] = '/';
    strcpy(p + n + 1, rel);
  }
  return p;
}

/* The home directory: the option, $HOME, then the passwd entry. */
static chatapp_status find_home(resolver *r)
{
  const char *h =
    r->opt->home && *r->opt->home ? r->opt->home : cred_env_get(r, "HOME");
  struct passwd pw, *res = NULL;
  long sz;
  size_t n;
  char *buf;

  if (!h) {
    int found = 0;
    sz = sysconf(_SC_GETPW_R_SIZE_MAX);
    n = sz > 16384 ? (size_t)sz : 16384;
    buf = malloc(n);
    if (!buf)
      return CHATAPP_ENOMEM;
    if (getpwuid_r(geteuid(), &pw, buf, n, &res) == 0 && res && res->pw_dir &&
        *res->pw_dir) {
      found = 1;
      r->home = strdup(res->pw_dir);
    }
    free(buf);
    return found && !r->home ? CHATAPP_ENOMEM : CHATAPP_OK;
  }
  r->home = strdup(h);
  return r->home ? CHATAPP_OK : CHATAPP_ENOMEM;
}

/* Copy the winning values into *out (which owns them from then on). */
chatapp_status cred_fill(resolver *r, ca_credentials *out, const char *id,
                         const char *secret, const char *token,
                         const char *region, ca_buf *source)
{
  out->access_key_id = strdup(id);
  out->access_key_secret = strdup(secret);
  out->security_token = token ? strdup(token) : NULL;
  out->region = region && *region ? strdup(region) : NULL;
  out->source = ca_buf_steal(source);
  if (!out->access_key_id || !out->access_key_secret ||
      (token && !out->security_token) || (region && *region && !out->region) ||
      !out->source) {
    ca_cred_free(out);
    r->nomem = 1;
    return CHATAPP_ENOMEM;
  }
  return CHATAPP_OK;
}

/* 1. Explicit access_key_id / access_key_secret [/ security_token]. */
static chatapp_status from_explicit(resolver *r, ca_credentials *out, int *done)
{
  const ca_cred_options *o = r->opt;
  int has_id = o->access_key_id && *o->access_key_id;
  int has_secret = o->access_key_secret && *o->access_key_secret;
  int has_token = o->security_token && *o->security_token;
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  chatapp_status st;

  if (!has_id && !has_secret && !has_token) {
    cred_say(r, &r->looked, "  - explicit configuration: none given\n");
    return CHATAPP_OK;
  }
  if (!has_id || !has_secret) {
    cred_say(
      r, &r->msg,
      "the explicit credentials are incomplete: %s; give both "
      "access_key_id and access_key_secret (and security_token for STS), "
      "or none of them to use the default chain",
      has_id       ? "access_key_id is set but access_key_secret is not"
      : has_secret ? "access_key_secret is set but access_key_id is not"
                   : "security_token is set without access_key_id and "
                     "access_key_secret");
    return CHATAPP_ECREDENTIALS;
  }
  cred_say(r, &src, "explicit configuration");
  st = cred_fill(r, out, o->access_key_id, o->access_key_secret,
                 has_token ? o->security_token : NULL, NULL, &src);
  ca_buf_free(&src);
  *done = !st;
  return st;
}

/* 2. The environment (aliases: docs/credentials.md; first non-empty wins). */
static chatapp_status from_env(resolver *r, ca_credentials *out, int *done)
{
  size_t iid = 0, isec = 0, itok = 0;
  const char *id = env_first(r, ENV_ID, &iid);
  const char *secret = env_first(r, ENV_SECRET, &isec);
  const char *token = env_first(r, ENV_TOKEN, &itok);
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  char sn[NAME_SHOW];
  chatapp_status st;

  if (r->opt->profile && *r->opt->profile) {
    cred_shown(sn, sizeof sn, r->opt->profile);
    cred_say(r, &r->looked,
             "  - environment: not consulted, profile '%s' was requested "
             "explicitly\n",
             sn);
    if (id || secret)
      cred_say(r, &r->warn,
               "%s is set but was not used: profile '%s' was requested "
               "explicitly\n",
               id ? ENV_ID[iid] : ENV_SECRET[isec], sn);
    return CHATAPP_OK;
  }
  if (id && secret) {
    cred_say(r, &src, "environment (%s", ENV_ID[iid]);
    if (isec != iid)
      cred_say(r, &src, ", %s", ENV_SECRET[isec]);
    if (token)
      cred_say(r, &src, ", %s", ENV_TOKEN[itok]);
    cred_say(r, &src, ")");
    if (r->profile) /* selected by a variable: the option returned above */
      cred_say(r, &r->warn,
               "%s=%s was not used: the AccessKey in %s comes first in the "
               "chain\n",
               r->profile_by, cred_shown(sn, sizeof sn, r->profile),
               ENV_ID[iid]);
    st = cred_fill(r, out, id, secret, token, NULL, &src);
    ca_buf_free(&src);
    *done = !st;
    return st;
  }
  if (id || secret || token) {
    char note[256];
    if (id)
      snprintf(note, sizeof note, "%s is set but %s is not", ENV_ID[iid],
               ENV_SECRET[iid]);
    else if (secret)
      snprintf(note, sizeof note, "%s is set but %s is not", ENV_SECRET[isec],
               ENV_ID[isec]);
    else
      snprintf(note, sizeof note, "%s is set but %s and %s are not",
               ENV_TOKEN[itok], ENV_ID[itok], ENV_SECRET[itok]);
    cred_say(r, &r->warn, "%s; the environment was skipped\n", note);
    cred_say(r, &r->looked, "  - environment: %s\n", note);
    return CHATAPP_OK;
  }
  cred_say(r, &r->looked,
           "  - environment: %s and %s are not set (nor ALIBABACLOUD_*, "
           "ALICLOUD_*, ACCESS_KEY_ID/ACCESS_KEY_SECRET)\n",
           ENV_ID[0], ENV_SECRET[0]);
  return CHATAPP_OK;
}

/* A variable is "true" (case-insensitive), as the SDK reads its flags. */
int cred_env_true(const resolver *r, const char *name)
{
  const char *v = cred_env_get(r, name);
  return v && strcasecmp(v, "true") == 0;
}

ca_cred_role *cred_role_new(resolver *r, ca_cred_kind kind)
{
  ca_cred_role *role = calloc(1, sizeof *role);

  if (!role) {
    r->nomem = 1;
    return NULL;
  }
  role->kind = kind;
  role->imdsv1_off = cred_env_true(r, "ALIBABA_CLOUD_IMDSV1_DISABLED");
  return role;
}

int cred_role_set(resolver *r, char **dst, const char *v)
{
  free(*dst);
  *dst = v && *v ? strdup(v) : NULL;
  if (v && *v && !*dst) {
    r->nomem = 1;
    return -1;
  }
  return 0;
}

/* A role found: out has no AccessKey, only the role and the source. */
chatapp_status cred_fill_role(resolver *r, ca_credentials *out,
                              ca_cred_role *role, const char *region,
                              ca_buf *source)
{
  out->role = role;
  out->region = region && *region ? strdup(region) : NULL;
  out->source = ca_buf_steal(source);
  if (r->nomem || (region && *region && !out->region) || !out->source) {
    ca_cred_free(out);
    r->nomem = 1;
    return CHATAPP_ENOMEM;
  }
  return CHATAPP_OK;
}

/* 2b. The OIDC role of ACK RRSA: the three variables, all set. */
static chatapp_status from_oidc_env(resolver *r, ca_credentials *out, int *done)
{
  static const char *const names[] = {"ALIBABA_CLOUD_ROLE_ARN",
                                      "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
                                      "ALIBABA_CLOUD_OIDC_TOKEN_FILE"};
  const char *v[3];
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  ca_cred_role *role;
  chatapp_status st;
  int i, n = 0;

  if (!r->opt->roles || (r->opt->profile && *r->opt->profile))
    return CHATAPP_OK;
  for (i = 0; i < 3; i++)
    n += (v[i] = cred_env_get(r, names[i])) != NULL;
  if (n == 0) {
    cred_say(
      r, &r->looked,
      "  - OIDC role (ACK RRSA): ALIBABA_CLOUD_ROLE_ARN, "
      "ALIBABA_CLOUD_OIDC_PROVIDER_ARN and ALIBABA_CLOUD_OIDC_TOKEN_FILE "
      "are not set\n");
    return CHATAPP_OK;
  }
  if (n < 3) {
    for (i = 0; i < 3 && v[i]; i++)
      ;
    if (v[0] && !v[1] && !v[2])
      return CHATAPP_OK; /* the role ARN alone belongs to other modes */
    cred_say(r, &r->warn,
             "the OIDC role variables are incomplete (%s is not set); the "
             "OIDC role was skipped\n",
             names[i]);
    cred_say(r, &r->looked, "  - OIDC role (ACK RRSA): %s is not set\n",
             names[i]);
    return CHATAPP_OK;
  }
  role = cred_role_new(r, CA_CRED_OIDC);
  if (!role)
    return CHATAPP_ENOMEM;
  cred_role_set(r, &role->role_arn, v[0]);
  cred_role_set(r, &role->oidc_provider_arn, v[1]);
  cred_role_set(r, &role->oidc_token_file, v[2]);
  cred_role_set(r, &role->session_name,
                cred_env_get(r, "ALIBABA_CLOUD_ROLE_SESSION_NAME"));
  cred_say(
    r, &src,
    "OIDC role (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, "
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE)");
  st = cred_fill_role(r, out, role, NULL, &src);
  ca_buf_free(&src);
  *done = !st;
  return st;
}

/* 5, 6. Nothing configured: the ECS role (unless disabled), then the
 * credentials URI; which one answers is known only by asking, so the
 * provider decides (ca_cred_provider.c).  The message for "nothing" goes
 * along. */
static void nothing_found(resolver *r);
static chatapp_status from_tail(resolver *r, ca_credentials *out, int *done)
{
  ca_buf src = CA_BUF_INIT(MSG_MAX);
  const char *uri = cred_env_get(r, "ALIBABA_CLOUD_CREDENTIALS_URI");
  int ecs = !cred_env_true(r, "ALIBABA_CLOUD_ECS_METADATA_DISABLED");
  ca_cred_role *role;
  chatapp_status st;

  if (!r->opt->roles || r->profile)
    return CHATAPP_OK;
  if (!ecs)
    cred_say(r, &r->looked,
             "  - ECS instance role: skipped, "
             "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true\n");
  if (!uri)
    cred_say(r, &r->looked, "  - ALIBABA_CLOUD_CREDENTIALS_URI: not set\n");
  if (!ecs && !uri)
    return CHATAPP_OK;
  role = cred_role_new(r, CA_CRED_TAIL);
  if (!role)
    return CHATAPP_ENOMEM;
  role->ecs_ok = ecs;
  cred_role_set(r, &role->uri, uri);
  cred_role_set(r, &role->ecs_role,
                cred_env_get(r, "ALIBABA_CLOUD_ECS_METADATA"));
  nothing_found(r);
  role->nothing = ca_buf_steal(&r->msg);
  ca_buf_init(&r->msg, MSG_MAX);
  cred_say(r, &src, "%s", ecs ? "ECS instance role" : "credentials URI");
  st = cred_fill_role(r, out, role, NULL, &src);
  ca_buf_free(&src);
  *done = !st;
  return st;
}

/* The one message when no source had credentials. */
static void nothing_found(resolver *r)
{
  char sn[NAME_SHOW], sh[PATH_SHOW];

  if (r->profile)
    cred_say(r, &r->msg,
             "profile '%s' (selected by %s) was not found; looked in:\n",
             cred_shown(sn, sizeof sn, r->profile), r->profile_by);
  else
    cred_say(r, &r->msg, "no Alibaba Cloud credentials found; looked in:\n");
  cred_say(r, &r->msg, "%s", ca_buf_str(&r->looked));
  cred_shown(sh, sizeof sh, r->home ? r->home : "~");
  if (r->profile)
    cred_say(
      r, &r->msg,
      "to fix: check the profile name, or create it with `aliyun "
      "configure --profile %s` (in %s/.aliyun/config.json), or add a [%s] "
      "section to %s; see docs/credentials.md",
      sn, sh, sn, r->ini_shown[0] ? r->ini_shown : "the credentials file");
  else
    cred_say(
      r, &r->msg,
      "to fix: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
      "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `aliyun configure` (writes "
      "%s/.aliyun/config.json), or create %s/.alibabacloud/credentials "
      "(mode 0600) with a [default] section of type access_key; see "
      "docs/credentials.md",
      sh, sh);
}

chatapp_status ca_cred_resolve(const ca_cred_options *opt, ca_credentials *out,
                               ca_buf *err)
{
  static const ca_cred_options defaults;
  chatapp_status st;
  resolver r;
  size_t which = 0;
  int done = 0;

  memset(out, 0, sizeof *out);
  memset(&r, 0, sizeof r);
  r.opt = opt ? opt : &defaults;
  ca_buf_init(&r.looked, MSG_MAX);
  ca_buf_init(&r.msg, MSG_MAX);
  ca_buf_init(&r.warn, MSG_MAX);
  if (err)
    ca_buf_reset(err);

  st = from_explicit(&r, out, &done);
  if (!st && !done) {
    if (r.opt->profile && *r.opt->profile) {
      r.profile = r.opt->profile;
      r.profile_by = "the profile option";
    } else if ((r.profile = env_first(&r, ENV_PROFILE, &which))) {
      r.profile_by = ENV_PROFILE[which];
    }
    st = find_home(&r);
  }
  if (!st && !done)
    st = from_env(&r, out, &done);
  if (!st && !done)
    st = from_oidc_env(&r, out, &done);
  if (!st && !done)
    st = cred_from_cli_file(&r, out, &done);
  if (!st && !done)
    st = cred_from_ini_file(&r, out, &done);
  if (!st && !done)
    st = from_tail(&r, out, &done);
  if (!st && !done) {
    nothing_found(&r);
    st = CHATAPP_ECREDENTIALS;
  }
  if (!st && r.warn.len) {
    /* one line per note, without the last newline */
    r.warn.ptr[--r.warn.len] = '\0';
    out->warning = ca_buf_steal(&r.warn);
  }
  if (r.nomem)
    st = CHATAPP_ENOMEM;
  if (st) {
    ca_cred_free(out);
    if (err) {
      const char *m = st == CHATAPP_ENOMEM
                        ? "out of memory while looking for credentials"
                        : ca_buf_str(&r.msg);
      size_t n = strlen(m);
      ca_buf_reset(err);
      ca_buf_add(err, m, n < err->max ? n : err->max);
    }
  }
  free(r.home);
  ca_buf_free(&r.looked);
  ca_buf_free(&r.msg);
  ca_buf_free(&r.warn);
  return st;
}

static void wipe_free(char *s)
{
  if (s) {
    ca_wipe(s, strlen(s));
    free(s);
  }
}

void ca_cred_role_free(ca_cred_role *role)
{
  if (!role)
    return;
  free(role->role_arn);
  free(role->session_name);
  free(role->policy);
  wipe_free(role->external_id);
  free(role->oidc_provider_arn);
  free(role->oidc_token_file);
  free(role->sts_endpoint);
  free(role->sts_region);
  free(role->ecs_role);
  free(role->uri);
  free(role->process);
  free(role->nothing);
  if (role->source) {
    ca_cred_free(role->source);
    free(role->source);
  }
  free(role);
}

void ca_cred_free(ca_credentials *c)
{
  if (!c)
    return;
  ca_cred_role_free(c->role);
  wipe_free(c->access_key_id);
  wipe_free(c->access_key_secret);
  wipe_free(c->security_token);
  free(c->region);
  free(c->source);
  free(c->warning);
  memset(c, 0, sizeof *c);
}

void ca_cred_mask_id(const char *id, char out[CA_CRED_MASK_LEN])
{
  size_t n = id ? strlen(id) : 0, show = n / 4, i;

  if (show > 6)
    show = 6;
  for (i = 0; i < show; i++) {
    unsigned char c = (unsigned char)id[i];
    out[i] = c > 0x20 && c < 0x7f ? (char)c : '?';
  }
  memcpy(out + show, "****", 5);
}

/* ---- secret variables and redaction ------------------------------------- */

/* The one list of secret variables: ENV_SECRET, ENV_TOKEN, ENV_SECRET_OTHER,
 * ENV_SECRET_NOT_CLOUD in that order (ca_cred.h). */
const char *ca_cred_secret_env_name(size_t i)
{
  const char *const *lists[] = {ENV_SECRET, ENV_TOKEN, ENV_SECRET_OTHER,
                                ENV_SECRET_NOT_CLOUD};
  size_t k, j;

  for (k = 0; k < sizeof lists / sizeof lists[0]; k++)
    for (j = 0; lists[k][j]; j++)
      if (i-- == 0)
        return lists[k][j];
  return NULL;
}

int ca_cred_is_secret_env(const char *name, size_t len)
{
  const char *n;
  size_t i;

  for (i = 0; (n = ca_cred_secret_env_name(i)); i++)
    if (strlen(n) == len && memcmp(n, name, len) == 0)
      return 1;
  return 0;
}

size_t ca_cred_child_env(char *const *env, char **out,
                         int (*keep)(void *ud, const char *value), void *ud)
{
  size_t i, k = 0;

  for (i = 0; env && env[i]; i++) {
    const char *eq = strchr(env[i], '=');
    size_t name_len = eq ? (size_t)(eq - env[i]) : strlen(env[i]);
    if (ca_cred_is_secret_env(env[i], name_len) ||
        (keep && eq && !keep(ud, eq + 1)))
      continue;
    out[k++] = env[i];
  }
  out[k] = NULL;
  return k;
}
