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
 * silently falling through to another account's credentials.
 *
 * Secrets: file contents live in one exact-size malloc'd buffer (never
 * realloc'd, so no stale copies) that is wiped before free; config.json is
 * parsed with CA_JSON_WIPE.  Messages are built only from paths, variable
 * names and profile/section names, escaped and length-capped.
 */
#include "ca_cred.h"

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

#define MSG_MAX   (16 * 1024) /* each message buffer */
#define PATH_SHOW 1024        /* bytes of a path shown in a message */
#define NAME_SHOW 128         /* bytes of a profile name shown */
#define LIST_MAX  20          /* profile names listed in a message */

#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

/* Variables the aliyun CLI accepts, the SDK's name first (signing.md 6.1).
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

typedef struct resolver {
  const ca_cred_options *opt;
  char *home;                /* owned; NULL when unknown */
  const char *profile;       /* requested profile name, or NULL */
  const char *profile_by;    /* "the profile option" or the variable's name */
  char ini_shown[PATH_SHOW]; /* the INI file's path, once known */
  ca_buf looked;             /* "  - place: what was found\n" per place */
  ca_buf msg;                /* the failure message */
  ca_buf warn;               /* notes for ca_credentials.warning */
  int nomem;                 /* a message could not be built */
} resolver;

typedef struct cfile {
  char *data; /* NUL-terminated contents, len + 1 bytes; wiped on free */
  size_t len;
  int exists;
} cfile;

static void cfile_free(cfile *f)
{
  if (f->data) {
    ca_wipe(f->data, f->len + 1);
    free(f->data);
  }
  f->data = NULL;
  f->len = 0;
}

static void say(resolver *r, ca_buf *b, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void say(resolver *r, ca_buf *b, const char *fmt, ...)
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
static const char *shown(char *out, size_t n, const char *s)
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
static const char *shown_mode(char *out, size_t n, const char *v)
{
  size_t i, len = strlen(v);

  for (i = 0; KNOWN_MODES[i]; i++)
    if (strcasecmp(v, KNOWN_MODES[i]) == 0)
      return shown(out, n, v);
  if (len > 20)
    return "(an unrecognised value, not shown)";
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)v[i];
    if (!(c == '_' || c == '-' || (c >= '0' && c <= '9') ||
          (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
      return "(an unrecognised value, not shown)";
  }
  return shown(out, n, v);
}

static const char *errstr(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, buf, n);
#else
  return strerror_r(e, buf, n) == 0 ? buf : "unknown error";
#endif
}

/* A variable's value, or NULL when unset or empty. */
static const char *env_get(const resolver *r, const char *name)
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
    const char *v = env_get(r, names[i]);
    if (v) {
      *which = i;
      return v;
    }
  }
  return NULL;
}

static char *join(const char *dir, const char *rel)
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
    r->opt->home && *r->opt->home ? r->opt->home : env_get(r, "HOME");
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

/* Refuse a file or directory not owned by us (or root). */
static chatapp_status check_owner(resolver *r, const char *what,
                                  const char *path, const struct stat *st)
{
  char sp[PATH_SHOW];

  if (st->st_uid == geteuid() || st->st_uid == 0)
    return CHATAPP_OK;
  say(r, &r->msg,
      "refusing to use %s %s: it is owned by uid %lu, not by you (uid %lu) "
      "or root",
      what, shown(sp, sizeof sp, path), (unsigned long)st->st_uid,
      (unsigned long)geteuid());
  return CHATAPP_EIO;
}

/*
 * Open a credentials file without a check-then-open race and read it whole
 * into f.  The directory is opened first, the file relative to it with
 * O_NOFOLLOW; then both are checked on their descriptors: the directory's
 * owner, and that group or others cannot write it unless it is sticky
 * (or someone else could swap the file); the file's type, owner, mode and
 * size.  O_NONBLOCK keeps a FIFO from hanging the open; it is
 * then refused as not a regular file.  A missing file (or directory) is
 * not an error: f->exists stays 0.
 */
static chatapp_status read_cred_file(resolver *r, const char *path, cfile *f)
{
  chatapp_status st = CHATAPP_OK;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char *dir = NULL;
  int dfd = -1, fd = -1;
  struct stat sd, sf;
  char sp[PATH_SHOW], sdir[PATH_SHOW], eb[128];
  size_t got = 0;

  memset(f, 0, sizeof *f);
  if (!slash)
    dir = strdup(".");
  else
    dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
  if (!dir)
    return CHATAPP_ENOMEM;
  shown(sp, sizeof sp, path);
  shown(sdir, sizeof sdir, dir);

  dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 && (errno == ENOENT || errno == ENOTDIR))
    goto out; /* absent */
  if (dfd < 0 || fstat(dfd, &sd) != 0) {
    say(r, &r->msg, "cannot use the directory %s of %s: %s", sdir, sp,
        errstr(errno, eb, sizeof eb));
    st = CHATAPP_EIO;
    goto out;
  }

  fd = openat(dfd, base,
              O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      goto out; /* absent */
    if (errno == ELOOP) {
      say(r, &r->msg,
          "refusing to use %s: it is a symbolic link, and credential files "
          "are not followed through links; replace the link with the file "
          "itself (mode 0600)",
          sp);
    } else {
      say(r, &r->msg, "cannot open %s: %s", sp, errstr(errno, eb, sizeof eb));
    }
    st = CHATAPP_EIO;
    goto out;
  }
  f->exists = 1;
  st = check_owner(r, "the directory", dir, &sd);
  if (st)
    goto out;
  if ((sd.st_mode & 022) && !(sd.st_mode & S_ISVTX)) {
    say(r, &r->msg,
        "refusing to use %s: its directory %s is writable by group or "
        "others (mode %04lo), so someone else could replace the file; run "
        "`chmod go-w %s`",
        sp, sdir, (unsigned long)(sd.st_mode & 07777), sdir);
    st = CHATAPP_EIO;
    goto out;
  }
  if (fstat(fd, &sf) != 0) {
    say(r, &r->msg, "cannot use %s: %s", sp, errstr(errno, eb, sizeof eb));
    st = CHATAPP_EIO;
    goto out;
  }
  if (!S_ISREG(sf.st_mode)) {
    say(r, &r->msg, "refusing to use %s: it is not a regular file", sp);
    st = CHATAPP_EIO;
    goto out;
  }
  st = check_owner(r, "the file", path, &sf);
  if (st)
    goto out;
  if (sf.st_mode & 077) {
    say(r, &r->msg,
        "refusing to use %s: its permissions %04lo give group or others "
        "access to it, and it holds secrets (like an unprotected SSH "
        "private key); run `chmod 600 %s`",
        sp, (unsigned long)(sf.st_mode & 07777), sp);
    st = CHATAPP_EIO;
    goto out;
  }
  if (sf.st_size < 0 || (unsigned long long)sf.st_size > CA_CRED_FILE_MAX) {
    say(r, &r->msg,
        "refusing to use %s: it is %lld bytes, over the %d-byte limit for "
        "a credentials file",
        sp, (long long)sf.st_size, CA_CRED_FILE_MAX);
    st = CHATAPP_ETOOBIG;
    goto out;
  }
  /* One exact-size buffer: a file that grows meanwhile is read truncated
   * (and then fails to parse) rather than realloc'd, which would leave an
   * unwiped copy of the secrets behind. */
  f->data = malloc((size_t)sf.st_size + 1);
  if (!f->data) {
    st = CHATAPP_ENOMEM;
    goto out;
  }
  while (got < (size_t)sf.st_size) {
    ssize_t n = read(fd, f->data + got, (size_t)sf.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      say(r, &r->msg, "cannot read %s: %s", sp, errstr(errno, eb, sizeof eb));
      st = CHATAPP_EIO;
      break;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  f->len = got;
  f->data[got] = '\0';
out:
  if (st)
    cfile_free(f);
  if (fd >= 0)
    close(fd);
  if (dfd >= 0)
    close(dfd);
  free(dir);
  return st;
}

/* Copy the winning values into *out (which owns them from then on). */
static chatapp_status fill(resolver *r, ca_credentials *out, const char *id,
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
    say(r, &r->looked, "  - explicit configuration: none given\n");
    return CHATAPP_OK;
  }
  if (!has_id || !has_secret) {
    say(r, &r->msg,
        "the explicit credentials are incomplete: %s; give both "
        "access_key_id and access_key_secret (and security_token for STS), "
        "or none of them to use the default chain",
        has_id       ? "access_key_id is set but access_key_secret is not"
        : has_secret ? "access_key_secret is set but access_key_id is not"
                     : "security_token is set without access_key_id and "
                       "access_key_secret");
    return CHATAPP_ECREDENTIALS;
  }
  say(r, &src, "explicit configuration");
  st = fill(r, out, o->access_key_id, o->access_key_secret,
            has_token ? o->security_token : NULL, NULL, &src);
  ca_buf_free(&src);
  *done = !st;
  return st;
}

/* 2. The environment (aliases: signing.md 6.1; first non-empty wins). */
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
    shown(sn, sizeof sn, r->opt->profile);
    say(r, &r->looked,
        "  - environment: not consulted, profile '%s' was requested "
        "explicitly\n",
        sn);
    if (id || secret)
      say(r, &r->warn,
          "%s is set but was not used: profile '%s' was requested "
          "explicitly\n",
          id ? ENV_ID[iid] : ENV_SECRET[isec], sn);
    return CHATAPP_OK;
  }
  if (id && secret) {
    say(r, &src, "environment (%s", ENV_ID[iid]);
    if (isec != iid)
      say(r, &src, ", %s", ENV_SECRET[isec]);
    if (token)
      say(r, &src, ", %s", ENV_TOKEN[itok]);
    say(r, &src, ")");
    if (r->profile) /* selected by a variable: the option returned above */
      say(r, &r->warn,
          "%s=%s was not used: the AccessKey in %s comes first in the "
          "chain\n",
          r->profile_by, shown(sn, sizeof sn, r->profile), ENV_ID[iid]);
    st = fill(r, out, id, secret, token, NULL, &src);
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
    say(r, &r->warn, "%s; the environment was skipped\n", note);
    say(r, &r->looked, "  - environment: %s\n", note);
    return CHATAPP_OK;
  }
  say(r, &r->looked,
      "  - environment: %s and %s are not set (nor ALIBABACLOUD_*, "
      "ALICLOUD_*, ACCESS_KEY_ID/ACCESS_KEY_SECRET)\n",
      ENV_ID[0], ENV_SECRET[0]);
  return CHATAPP_OK;
}

/* Append "'a', 'b', ..." (at most LIST_MAX) or "none". */
static void list_names(resolver *r, ca_buf *b, const char *const *names,
                       size_t n, const char *open, const char *close)
{
  char sn[NAME_SHOW];
  size_t i;

  if (n == 0) {
    say(r, b, "none");
    return;
  }
  for (i = 0; i < n && i < LIST_MAX; i++)
    say(r, b, "%s%s%s%s", i ? ", " : "", open, shown(sn, sizeof sn, names[i]),
        close);
  if (n > LIST_MAX)
    say(r, b, " and %zu more", n - LIST_MAX);
}

/* How the profile was chosen, for source strings and messages. */
static void say_selected(resolver *r, ca_buf *b, const char *by)
{
  if (by)
    say(r, b, ", selected by %s", by);
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
    say(r, &r->msg, "%s: in profile '%s', \"%s\" is not a string", sp, sn, key);
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

  shown(sn, sizeof sn, name);
  if ((st = json_str(r, sp, sn, p, "mode", &mode)) ||
      (st = json_str(r, sp, sn, p, "access_key_id", &id)) ||
      (st = json_str(r, sp, sn, p, "access_key_secret", &secret)) ||
      (st = json_str(r, sp, sn, p, "sts_token", &token)) ||
      (st = json_str(r, sp, sn, p, "region_id", &region)))
    return st;
  if (!mode || !*mode) {
    say(r, &r->msg,
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
    say(r, &r->msg,
        "profile '%s' of %s uses mode %s, which chatapp-run does not "
        "support yet; supported modes: AK, StsToken.  Use a profile in one "
        "of those modes (`aliyun configure --mode AK --profile NAME`), or "
        "set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        sn, sp, shown_mode(sm, sizeof sm, mode));
    return CHATAPP_ECREDENTIALS;
  }
  if (!id || !*id)
    missing = "access_key_id";
  else if (!secret || !*secret)
    missing = "access_key_secret";
  else if (sts && (!token || !*token))
    missing = "sts_token";
  if (missing) {
    say(r, &r->msg,
        "profile '%s' (mode %s) of %s has no %s; run `aliyun configure "
        "--mode %s --profile %s`",
        sn, canon, sp, missing, canon, sn);
    return CHATAPP_ECREDENTIALS;
  }
  say(r, &src, "profile '%s' (mode %s) of %s", sn, canon, sp);
  say_selected(r, &src, by);
  st = fill(r, out, id, secret, sts ? token : NULL, region, &src);
  ca_buf_free(&src);
  return st;
}

/* A UTF-8 byte order mark is skipped (RFC 8259 allows ignoring it). */
static size_t bom_len(const char *s, size_t n)
{
  return n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/* 3. The aliyun CLI's ~/.aliyun/config.json. */
static chatapp_status from_cli_file(resolver *r, ca_credentials *out, int *done)
{
  chatapp_status st = CHATAPP_OK;
  const char *v = env_get(r, "ALIBABA_CLOUD_CLI_PROFILE_DISABLED");
  const ca_json *root, *profiles, *p, *found = NULL;
  const char *name, *by, *current = NULL;
  const char **names = NULL;
  char *path = NULL;
  char sp[PATH_SHOW], sn[NAME_SHOW], jerr[160];
  ca_json_doc *doc = NULL;
  size_t n = 0, skip;
  cfile f = {NULL, 0, 0};

  if (v && strcasecmp(v, "true") == 0) {
    say(r, &r->looked,
        "  - ~/.aliyun/config.json: skipped, "
        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true\n");
    return CHATAPP_OK;
  }
  if (!r->home) {
    say(r, &r->looked,
        "  - ~/.aliyun/config.json: skipped, home directory unknown (set "
        "HOME)\n");
    return CHATAPP_OK;
  }
  path = join(r->home, ".aliyun/config.json");
  if (!path)
    return CHATAPP_ENOMEM;
  shown(sp, sizeof sp, path);
  st = read_cred_file(r, path, &f);
  if (st)
    goto out;
  if (!f.exists) {
    say(r, &r->looked, "  - %s: does not exist\n", sp);
    goto out;
  }
  skip = bom_len(f.data, f.len);
  doc = ca_json_parse(f.data + skip, f.len - skip, 16, CA_JSON_WIPE, jerr,
                      sizeof jerr);
  if (!doc) {
    say(r, &r->msg,
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
    say(r, &r->msg,
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
      say(r, &r->msg,
          "%s: profile number %zu is not an object with a \"name\" string", sp,
          n + 1);
      st = CHATAPP_EPARSE;
      goto out;
    }
    names[n++] = pn;
    if (!found && strcmp(pn, name) == 0)
      found = p; /* the first one, as the CLI does */
  }
  if (!found) {
    say(r, &r->looked, "  - %s: no profile '%s'", sp,
        shown(sn, sizeof sn, name));
    say_selected(r, &r->looked, by);
    say(r, &r->looked, "; its profiles: ");
    list_names(r, &r->looked, names, n, "'", "'");
    say(r, &r->looked, "\n");
    goto out;
  }
  st = use_cli_profile(r, sp, found, name, by, out);
  *done = !st;
out:
  free(names);
  ca_json_free(doc);
  cfile_free(&f);
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
      say(r, &r->msg, "%s, line %zu: a NUL byte", sp, lineno);
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
        say(r, &r->msg, "%s, line %zu: a section header must be '[name]'", sp,
            lineno);
        return CHATAPP_EPARSE;
      }
      name = trim(s + 1, close);
      if (*name == '\0') {
        say(r, &r->msg, "%s, line %zu: an empty section name", sp, lineno);
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
      say(r, &r->msg,
          "%s, line %zu: expected 'key = value', '[section]' or a comment", sp,
          lineno);
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

  shown(sn, sizeof sn, want);
  if (!sec->type || !*sec->type) {
    say(r, &r->msg,
        "section [%s] of %s has no type; supported types: access_key, sts", sn,
        sp);
    return CHATAPP_ECREDENTIALS;
  }
  if (strcasecmp(sec->type, "access_key") == 0) {
    canon = "access_key";
    sts = 0;
  } else if (strcasecmp(sec->type, "sts") == 0) {
    canon = "sts";
    sts = 1;
  } else {
    say(r, &r->msg,
        "section [%s] of %s has type %s, which chatapp-run does not support "
        "yet; supported types: access_key, sts.  Use a section of one of "
        "those types, or set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        sn, sp, shown_mode(sm, sizeof sm, sec->type));
    return CHATAPP_ECREDENTIALS;
  }
  if (!sec->id || !*sec->id)
    missing = "access_key_id";
  else if (!sec->secret || !*sec->secret)
    missing = "access_key_secret";
  else if (sts && (!sec->token || !*sec->token))
    missing = "security_token";
  if (missing) {
    say(r, &r->msg, "section [%s] (type %s) of %s has no %s", sn, canon, sp,
        missing);
    return CHATAPP_ECREDENTIALS;
  }
  say(r, &src, "section [%s] (type %s) of %s", sn, canon, sp);
  say_selected(r, &src, by);
  st = fill(r, out, sec->id, sec->secret, sts ? sec->token : NULL, NULL, &src);
  ca_buf_free(&src);
  return st;
}

/* 4. The SDK's INI file (~/.alibabacloud/credentials or the override). */
static chatapp_status from_ini_file(resolver *r, ca_credentials *out, int *done)
{
  chatapp_status st = CHATAPP_OK;
  const char *override = env_get(r, "ALIBABA_CLOUD_CREDENTIALS_FILE");
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
    say(r, &r->looked,
        "  - ~/.alibabacloud/credentials: skipped, home directory unknown "
        "(set HOME)\n");
    return CHATAPP_OK;
  } else {
    path = join(r->home, ".alibabacloud/credentials");
  }
  if (!path)
    return CHATAPP_ENOMEM;
  shown(sp, sizeof sp, path);
  memcpy(r->ini_shown, sp, sizeof sp);
  st = read_cred_file(r, path, &f);
  if (st)
    goto out;
  if (!f.exists) {
    if (override) {
      say(r, &r->msg,
          "ALIBABA_CLOUD_CREDENTIALS_FILE is set to %s, which does not "
          "exist",
          sp);
      st = CHATAPP_ECREDENTIALS;
    } else {
      say(r, &r->looked, "  - %s: does not exist\n", sp);
    }
    goto out;
  }
  st = ini_scan(r, sp, f.data, f.len, want, &sec, names, LIST_MAX, &nnames);
  if (st)
    goto out;
  if (!sec.found) {
    say(r, &r->looked, "  - %s%s: no section [%s]", sp,
        override ? " (from ALIBABA_CLOUD_CREDENTIALS_FILE)" : "",
        shown(sn, sizeof sn, want));
    say_selected(r, &r->looked, r->profile_by);
    say(r, &r->looked, "; its sections: ");
    list_names(r, &r->looked, names, nnames < LIST_MAX ? nnames : LIST_MAX, "[",
               "]");
    if (nnames > LIST_MAX)
      say(r, &r->looked, " and %zu more", nnames - LIST_MAX);
    say(r, &r->looked, "\n");
    goto out;
  }
  st = use_ini_section(r, sp, &sec, want, r->profile_by, out);
  *done = !st;
out:
  cfile_free(&f);
  free(path);
  return st;
}

/* The one message when no source had credentials. */
static void nothing_found(resolver *r)
{
  char sn[NAME_SHOW], sh[PATH_SHOW];

  if (r->profile)
    say(r, &r->msg, "profile '%s' (selected by %s) was not found; looked in:\n",
        shown(sn, sizeof sn, r->profile), r->profile_by);
  else
    say(r, &r->msg, "no Alibaba Cloud credentials found; looked in:\n");
  say(r, &r->msg, "%s", ca_buf_str(&r->looked));
  shown(sh, sizeof sh, r->home ? r->home : "~");
  if (r->profile)
    say(r, &r->msg,
        "to fix: check the profile name, or create it with `aliyun "
        "configure --profile %s` (in %s/.aliyun/config.json), or add a [%s] "
        "section to %s; see docs/credentials.md",
        sn, sh, sn, r->ini_shown[0] ? r->ini_shown : "the credentials file");
  else
    say(r, &r->msg,
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
    st = from_cli_file(&r, out, &done);
  if (!st && !done)
    st = from_ini_file(&r, out, &done);
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

void ca_cred_free(ca_credentials *c)
{
  if (!c)
    return;
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
