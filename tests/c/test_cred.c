/*
 * The credential chain (ca_cred.c, ca_cred_files.c, ca_cred_cli.c,
 * ca_cred_ini.c) in a temporary HOME with an injected
 * environment: source order, env aliases, config.json profiles and modes,
 * the INI file, every error message, and file permission refusals.
 *
 * Canary: every secret and token in this file contains "CANARY-", and every
 * AccessKey id "LTAI" or "STS."; resolve() checks after each call that no
 * message, source or warning contains any of them, including the errors
 * produced while a file holding them is malformed or badly permissioned.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_cred.h"
#include "ca_secrets.h"
#include "test.h"

#define MAXENV 32

static char tmproot[] = "/tmp/test_cred.XXXXXX";
static int homes;

/* ---- fixtures ------------------------------------------------------- */

typedef struct fake_env {
  const char *kv[MAXENV + 1]; /* "NAME=value", NULL-terminated */
} fake_env;

static const char *fake_getenv(void *ud, const char *name)
{
  const fake_env *e = ud;
  size_t i, n = strlen(name);

  for (i = 0; e->kv[i]; i++)
    if (strncmp(e->kv[i], name, n) == 0 && e->kv[i][n] == '=')
      return e->kv[i] + n + 1;
  return NULL;
}

static void env_add(fake_env *e, const char *kv)
{
  size_t i = 0;

  while (e->kv[i])
    i++;
  if (i >= MAXENV) {
    fprintf(stderr, "too many env entries\n");
    exit(2);
  }
  e->kv[i] = kv;
  e->kv[i + 1] = NULL;
}

static void die(const char *what, const char *path)
{
  fprintf(stderr, "%s %s: %s\n", what, path, strerror(errno));
  exit(2);
}

/* A fresh, empty home directory (mode 0700) under tmproot. */
static const char *new_home(char *buf, size_t n)
{
  snprintf(buf, n, "%s/home%d", tmproot, ++homes);
  if (mkdir(buf, 0700) != 0)
    die("mkdir", buf);
  return buf;
}

static void mkdir_p(const char *dir)
{
  char tmp[512];
  char *p;

  snprintf(tmp, sizeof tmp, "%s", dir);
  for (p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = '\0';
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        die("mkdir", tmp);
      *p = '/';
    }
  }
  if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
    die("mkdir", tmp);
}

/* Write path (creating its directories) with the given mode. */
static void write_file(const char *path, const char *text, mode_t mode)
{
  char dir[512];
  char *slash;
  int fd;
  size_t n = strlen(text);

  snprintf(dir, sizeof dir, "%s", path);
  slash = strrchr(dir, '/');
  if (slash) {
    *slash = '\0';
    mkdir_p(dir);
  }
  if (unlink(path) != 0 && errno != ENOENT) /* it may be read-only */
    die("unlink", path);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    die("open", path);
  if (write(fd, text, n) != (ssize_t)n || fchmod(fd, mode) != 0)
    die("write", path);
  close(fd);
}

static const char *cli_path(char *buf, size_t n, const char *home)
{
  snprintf(buf, n, "%s/.aliyun/config.json", home);
  return buf;
}

static const char *ini_path(char *buf, size_t n, const char *home)
{
  snprintf(buf, n, "%s/.alibabacloud/credentials", home);
  return buf;
}

static void write_cli(const char *home, const char *text, mode_t mode)
{
  char p[512];
  write_file(cli_path(p, sizeof p, home), text, mode);
}

static void write_ini(const char *home, const char *text, mode_t mode)
{
  char p[512];
  write_file(ini_path(p, sizeof p, home), text, mode);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
  (void)sb;
  (void)ftw;
  if (flag == FTW_DP ? rmdir(path) : unlink(path))
    fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
  return 0;
}

/* Nothing of a credential may appear in what the chain prints. */
static void check_clean(const char *what, const char *s)
{
  if (!s)
    return;
  test_checks++;
  if (strstr(s, "CANARY") || strstr(s, "LTAI") || strstr(s, "STS.")) {
    test_failures++;
    fprintf(stderr, "LEAK in %s: %s\n", what, s);
  }
}

/* One run of the chain; err and c are reset first and checked after. */
static chatapp_status resolve(const char *home, const char *profile,
                              fake_env *env, ca_credentials *c, ca_buf *err)
{
  ca_cred_options o;
  chatapp_status st;

  memset(&o, 0, sizeof o);
  o.profile = profile;
  o.getenv = fake_getenv;
  o.getenv_ud = env;
  o.home = home;
  ca_cred_free(c);
  st = ca_cred_resolve(&o, c, err);
  check_clean("error", ca_buf_str(err));
  check_clean("source", c->source);
  check_clean("warning", c->warning);
  if (st) {
    CHECK(c->access_key_id == NULL && c->source == NULL);
    CHECK(err->len > 0);
  } else {
    CHECK(c->access_key_id && c->access_key_secret && c->source);
  }
  return st;
}

#define HAS(s, sub) CHECK_HAS(s, sub, __LINE__)
static void CHECK_HAS(const char *s, const char *sub, int line)
{
  test_checks++;
  if (!s || !strstr(s, sub)) {
    test_failures++;
    fprintf(stderr, "%s:%d: missing \"%s\" in:\n  %s\n", __FILE__, line, sub,
            s ? s : "(null)");
  }
}

/* ---- data ----------------------------------------------------------- */

#define ID_ENV      "LTAIenv00000000000000000"
#define SECRET_ENV  "CANARY-SECRET-env-7f3a9c"
#define TOKEN_ENV   "CANARY-TOKEN-env-41d8e2"
#define SECRET_DEV  "CANARY-SECRET-dev-7f3a9c"
#define SECRET_PROD "CANARY-SECRET-prod-7f3a9c"
#define TOKEN_PROD  "CANARY-TOKEN-prod-41d8e2"
#define SECRET_INI  "CANARY-SECRET-ini-7f3a9c"
#define TOKEN_INI   "CANARY-TOKEN-ini-41d8e2"

/* clang-format off */
static const char CLI_JSON[] =
  "{\n"
  "  \"current\": \"dev\",\n"
  "  \"profiles\": [\n"
  "    {\"name\": \"dev\", \"mode\": \"AK\",\n"
  "     \"access_key_id\": \"LTAIdev00000000000000000\",\n"
  "     \"access_key_secret\": \"" SECRET_DEV "\",\n"
  "     \"sts_token\": \"\", \"region_id\": \"ap-southeast-1\",\n"
  "     \"output_format\": \"json\", \"expired_seconds\": 0},\n"
  "    {\"name\": \"prod\", \"mode\": \"StsToken\",\n"
  "     \"access_key_id\": \"STS.prod000000000000000\",\n"
  "     \"access_key_secret\": \"" SECRET_PROD "\",\n"
  "     \"sts_token\": \"" TOKEN_PROD "\", \"region_id\": \"cn-hangzhou\"},\n"
  "    {\"name\": \"lower\", \"mode\": \"ststoken\",\n"
  "     \"access_key_id\": \"STS.lower00000000000000\",\n"
  "     \"access_key_secret\": \"CANARY-SECRET-lower\",\n"
  "     \"sts_token\": \"CANARY-TOKEN-lower\"},\n"
  "    {\"name\": \"default\", \"mode\": \"ak\",\n"
  "     \"access_key_id\": \"LTAIdefault0000000000000\",\n"
  "     \"access_key_secret\": \"CANARY-SECRET-default\"},\n"
  "    {\"name\": \"role\", \"mode\": \"RamRoleArn\",\n"
  "     \"access_key_id\": \"LTAIrole0000000000000000\",\n"
  "     \"access_key_secret\": \"CANARY-SECRET-role\",\n"
  "     \"ram_role_arn\": \"acs:ram::1:role/x\"},\n"
  "    {\"name\": \"ecs\", \"mode\": \"EcsRamRole\", \"ram_role_name\": \"r\"},\n"
  "    {\"name\": \"oidc\", \"mode\": \"OIDC\"},\n"
  "    {\"name\": \"weird\", \"mode\": \"CANARY-SECRET-in-the-mode-field\",\n"
  "     \"access_key_secret\": \"CANARY-SECRET-weird\"},\n"
  "    {\"name\": \"nosecret\", \"mode\": \"AK\",\n"
  "     \"access_key_id\": \"LTAInosecret000000000000\"},\n"
  "    {\"name\": \"nomode\",\n"
  "     \"access_key_id\": \"LTAInomode00000000000000\",\n"
  "     \"access_key_secret\": \"CANARY-SECRET-nomode\"}\n"
  "  ],\n"
  "  \"meta_path\": \"\"\n"
  "}\n";

static const char INI[] =
  "# SDK credentials\n"
  "[default]\n"
  "type = access_key\n"
  "access_key_id = LTAIini00000000000000000\n"
  "access_key_secret = " SECRET_INI "\n"
  "\n"
  "[sts]\n"
  "type = sts\n"
  "access_key_id = STS.ini0000000000000000\n"
  "access_key_secret = " SECRET_INI "\n"
  "security_token = " TOKEN_INI "\n"
  "\n"
  "[ecs]\n"
  "type = ecs_ram_role\n"
  "role_name = MyRole\n"
  "\n"
  "[assume]\n"
  "type = ram_role_arn\n"
  "access_key_id = LTAIassume00000000000000\n"
  "access_key_secret = CANARY-SECRET-assume\n"
  "role_arn = acs:ram::123456:role/x\n"
  "\n"
  "[oidc]\n"
  "type = oidc_role_arn\n"
  "\n"
  "[notype]\n"
  "access_key_id = LTAInotype00000000000000\n"
  "access_key_secret = CANARY-SECRET-notype\n";
/* clang-format on */

/* ---- tests ---------------------------------------------------------- */

static void test_mask(void)
{
  char m[CA_CRED_MASK_LEN];

  ca_cred_mask_id("LTAI5tABCDEFGHIJKLMNOPQR", m);
  CHECK_STR(m, "LTAI5t****");
  ca_cred_mask_id("STS.NTmuch-longer-temporary-id-000000000000000", m);
  CHECK_STR(m, "STS.NT****");
  ca_cred_mask_id("abcdefgh", m);
  CHECK_STR(m, "ab****");
  ca_cred_mask_id("abc", m);
  CHECK_STR(m, "****");
  ca_cred_mask_id(NULL, m);
  CHECK_STR(m, "****");
  ca_cred_mask_id("ab\ncdefg", m);
  CHECK_STR(m, "ab****");
  ca_cred_mask_id("a\nbcdefgh", m);
  CHECK_STR(m, "a?****");
}

static void test_explicit(void)
{
  char h[256];
  fake_env env = {{"ALIBABA_CLOUD_ACCESS_KEY_ID=" ID_ENV,
                   "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" SECRET_ENV, NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);
  ca_cred_options o;

  new_home(h, sizeof h);
  write_cli(h, CLI_JSON, 0600);
  memset(&o, 0, sizeof o);
  o.getenv = fake_getenv;
  o.getenv_ud = &env;
  o.home = h;
  o.profile = "prod";
  o.access_key_id = "LTAIexplicit000000000000";
  o.access_key_secret = "CANARY-SECRET-explicit";
  o.security_token = "CANARY-TOKEN-explicit";
  CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, "LTAIexplicit000000000000");
  CHECK_STR(c.access_key_secret, "CANARY-SECRET-explicit");
  CHECK_STR(c.security_token, "CANARY-TOKEN-explicit");
  CHECK_STR(c.source, "explicit configuration");
  CHECK(c.region == NULL && c.warning == NULL);
  ca_cred_free(&c);

  o.security_token = NULL;
  CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_OK);
  CHECK(c.security_token == NULL);
  ca_cred_free(&c);

  o.access_key_secret = "";
  CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "access_key_id is set but access_key_secret is not");
  check_clean("error", ca_buf_str(&err));
  CHECK(c.access_key_id == NULL);

  o.access_key_id = NULL;
  o.security_token = "CANARY-TOKEN-explicit";
  CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "security_token is set without access_key_id");
  check_clean("error", ca_buf_str(&err));
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_env_precedence(void)
{
  char h[256];
  fake_env env = {{"ALIBABA_CLOUD_ACCESS_KEY_ID=" ID_ENV,
                   "ALIBABA_CLOUD_ACCESS_KEY_SECRET=" SECRET_ENV,
                   "ALIBABA_CLOUD_PROFILE=prod", NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);

  new_home(h, sizeof h);
  write_cli(h, CLI_JSON, 0600);
  write_ini(h, INI, 0600);
  /* env beats both files, even with ALIBABA_CLOUD_PROFILE set (SDK order) */
  CHECK(resolve(h, NULL, &env, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, ID_ENV);
  CHECK_STR(c.access_key_secret, SECRET_ENV);
  CHECK(c.security_token == NULL && c.region == NULL);
  CHECK_STR(c.source, "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)");
  CHECK_STR(c.warning, "ALIBABA_CLOUD_PROFILE=prod was not used: the "
                       "AccessKey in ALIBABA_CLOUD_ACCESS_KEY_ID comes "
                       "first in the chain");

  env_add(&env, "ALIBABA_CLOUD_SECURITY_TOKEN=" TOKEN_ENV);
  CHECK(resolve(h, NULL, &env, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.security_token, TOKEN_ENV);
  CHECK_STR(c.source, "environment (ALIBABA_CLOUD_ACCESS_KEY_ID, "
                      "ALIBABA_CLOUD_SECURITY_TOKEN)");

  /* an explicit profile is explicit configuration: it beats the env */
  CHECK(resolve(h, "dev", &env, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, SECRET_DEV);
  HAS(c.warning, "ALIBABA_CLOUD_ACCESS_KEY_ID is set but was not used: "
                 "profile 'dev' was requested explicitly");
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_env_aliases(void)
{
  static const char *const fam[] = {"ALIBABA_CLOUD", "ALIBABACLOUD", "ALICLOUD",
                                    NULL};
  char h[256], id[128], sec[128], tok[128], want[256];
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);
  size_t i;

  new_home(h, sizeof h);
  for (i = 0; i < 4; i++) {
    fake_env env = {{NULL}};
    const char *pre = fam[i];
    snprintf(id, sizeof id, "%s%sACCESS_KEY_ID=LTAIalias%zu", pre ? pre : "",
             pre ? "_" : "", i);
    snprintf(sec, sizeof sec, "%s%sACCESS_KEY_SECRET=CANARY-SECRET-%zu",
             pre ? pre : "", pre ? "_" : "", i);
    snprintf(tok, sizeof tok, "%s%sSECURITY_TOKEN=CANARY-TOKEN-%zu",
             pre ? pre : "", pre ? "_" : "", i);
    env_add(&env, id);
    env_add(&env, sec);
    env_add(&env, tok);
    CHECK(resolve(h, NULL, &env, &c, &err) == CHATAPP_OK);
    CHECK(c.access_key_id && strncmp(c.access_key_id, "LTAIalias", 9) == 0 &&
          c.access_key_id[9] == (char)('0' + i));
    CHECK(c.access_key_secret && c.access_key_secret[14] == (char)('0' + i));
    CHECK(c.security_token && c.security_token[13] == (char)('0' + i));
    snprintf(want, sizeof want, "environment (%.*s, %.*s)",
             (int)(strchr(id, '=') - id), id, (int)(strchr(tok, '=') - tok),
             tok);
    CHECK_STR(c.source, want);
  }

  /* first non-empty wins, per variable, across families */
  {
    fake_env env = {
      {"ALIBABA_CLOUD_ACCESS_KEY_ID=", "ALIBABACLOUD_ACCESS_KEY_ID=LTAIsecond",
       "ALICLOUD_ACCESS_KEY_ID=LTAIthird",
       "ACCESS_KEY_SECRET=CANARY-SECRET-last",
       "ALICLOUD_ACCESS_KEY_SECRET=CANARY-SECRET-third", NULL}};
    CHECK(resolve(h, NULL, &env, &c, &err) == CHATAPP_OK);
    CHECK_STR(c.access_key_id, "LTAIsecond");
    CHECK_STR(c.access_key_secret, "CANARY-SECRET-third");
    CHECK_STR(c.source, "environment (ALIBABACLOUD_ACCESS_KEY_ID, "
                        "ALICLOUD_ACCESS_KEY_SECRET)");
  }
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_env_half(void)
{
  char h[256];
  fake_env id_only = {{"ALIBABA_CLOUD_ACCESS_KEY_ID=" ID_ENV, NULL}};
  fake_env secret_only = {{"ALICLOUD_ACCESS_KEY_SECRET=" SECRET_ENV, NULL}};
  fake_env token_only = {{"ALIBABA_CLOUD_SECURITY_TOKEN=" TOKEN_ENV, NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);

  new_home(h, sizeof h);
  CHECK(resolve(h, NULL, &id_only, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "ALIBABA_CLOUD_ACCESS_KEY_ID is set but "
                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not");
  CHECK(resolve(h, NULL, &secret_only, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err),
      "ALICLOUD_ACCESS_KEY_SECRET is set but ALICLOUD_ACCESS_KEY_ID is not");
  CHECK(resolve(h, NULL, &token_only, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "ALIBABA_CLOUD_SECURITY_TOKEN is set but "
                        "ALIBABA_CLOUD_ACCESS_KEY_ID and "
                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET are not");

  /* with a file, the chain moves on (SDK) but says so in the warning */
  write_cli(h, CLI_JSON, 0600);
  CHECK(resolve(h, NULL, &id_only, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, SECRET_DEV);
  CHECK_STR(c.warning, "ALIBABA_CLOUD_ACCESS_KEY_ID is set but "
                       "ALIBABA_CLOUD_ACCESS_KEY_SECRET is not; the "
                       "environment was skipped");
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_cli_profiles(void)
{
  char h[256], p[512], want[1024];
  fake_env none = {{NULL}};
  fake_env e1 = {{"ALICLOUD_PROFILE=lower", "ALIBABACLOUD_PROFILE=default",
                  "ALIBABA_CLOUD_PROFILE=prod", NULL}};
  fake_env e2 = {
    {"ALICLOUD_PROFILE=lower", "ALIBABACLOUD_PROFILE=default", NULL}};
  fake_env e3 = {{"ALICLOUD_PROFILE=lower", NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);

  new_home(h, sizeof h);
  cli_path(p, sizeof p, h);
  write_cli(h, CLI_JSON, 0600);

  /* no selection: "current" (dev), mode AK, region from the profile */
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, "LTAIdev00000000000000000");
  CHECK_STR(c.access_key_secret, SECRET_DEV);
  CHECK(c.security_token == NULL); /* "" in the file, and mode AK */
  CHECK_STR(c.region, "ap-southeast-1");
  snprintf(want, sizeof want,
           "profile 'dev' (mode AK) of %s, selected by its \"current\" "
           "setting",
           p);
  CHECK_STR(c.source, want);
  CHECK(c.warning == NULL);

  /* option > ALIBABA_CLOUD_PROFILE > ALIBABACLOUD_ > ALICLOUD_ > current */
  CHECK(resolve(h, "dev", &e1, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, SECRET_DEV);
  snprintf(want, sizeof want,
           "profile 'dev' (mode AK) of %s, selected by the profile option", p);
  CHECK_STR(c.source, want);

  CHECK(resolve(h, NULL, &e1, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, "STS.prod000000000000000");
  CHECK_STR(c.access_key_secret, SECRET_PROD);
  CHECK_STR(c.security_token, TOKEN_PROD);
  CHECK_STR(c.region, "cn-hangzhou");
  snprintf(want, sizeof want,
           "profile 'prod' (mode StsToken) of %s, selected by "
           "ALIBABA_CLOUD_PROFILE",
           p);
  CHECK_STR(c.source, want);

  CHECK(resolve(h, NULL, &e2, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, "CANARY-SECRET-default");
  CHECK(c.region == NULL);
  HAS(c.source, "profile 'default' (mode AK) of ");
  HAS(c.source, "selected by ALIBABACLOUD_PROFILE");

  /* mode names are case-insensitive; the source shows the canonical one */
  CHECK(resolve(h, NULL, &e3, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.security_token, "CANARY-TOKEN-lower");
  HAS(c.source, "profile 'lower' (mode StsToken) of ");
  HAS(c.source, "selected by ALICLOUD_PROFILE");

  /* no "current": the profile named default */
  new_home(h, sizeof h);
  write_cli(h,
            "{\"profiles\": [{\"name\": \"x\", \"mode\": \"AK\", "
            "\"access_key_id\": \"LTAIx\", \"access_key_secret\": "
            "\"CANARY-SECRET-x\"}, {\"name\": \"default\", \"mode\": \"AK\", "
            "\"access_key_id\": \"LTAId\", \"access_key_secret\": "
            "\"CANARY-SECRET-d\", \"region_id\": \"\"}]}",
            0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, "CANARY-SECRET-d");
  CHECK(c.region == NULL);
  snprintf(want, sizeof want, "profile 'default' (mode AK) of %s",
           cli_path(p, sizeof p, h));
  CHECK_STR(c.source, want);

  /* a CRLF file with a UTF-8 BOM is fine */
  new_home(h, sizeof h);
  write_cli(h,
            "\xEF\xBB\xBF{\r\n\"current\": \"a\",\r\n\"profiles\": [{\"name\": "
            "\"a\", \"mode\": \"AK\", \"access_key_id\": \"LTAIa\",\r\n"
            "\"access_key_secret\": \"CANARY-SECRET-a\"}]}\r\n",
            0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, "CANARY-SECRET-a");
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_cli_errors(void)
{
  static const char *const modes[][2] = {
    {"role", "RamRoleArn"}, {"ecs", "EcsRamRole"}, {"oidc", "OIDC"}};
  char h[256], p[512], want[1024];
  fake_env none = {{NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);
  size_t i;

  new_home(h, sizeof h);
  cli_path(p, sizeof p, h);
  write_cli(h, CLI_JSON, 0600);
  for (i = 0; i < 3; i++) {
    CHECK(resolve(h, modes[i][0], &none, &c, &err) == CHATAPP_ECREDENTIALS);
    snprintf(want, sizeof want, "profile '%s' of %s uses mode %s, which",
             modes[i][0], p, modes[i][1]);
    HAS(ca_buf_str(&err), want);
    HAS(ca_buf_str(&err), "not support yet; supported modes: AK, StsToken");
  }
  /* an unknown mode value is not echoed (it might be a pasted secret) */
  CHECK(resolve(h, "weird", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "uses mode (an unrecognised value, not shown)");

  CHECK(resolve(h, "nosecret", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  snprintf(want, sizeof want,
           "profile 'nosecret' (mode AK) of %s has no access_key_secret", p);
  HAS(ca_buf_str(&err), want);
  CHECK(resolve(h, "nomode", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "profile 'nomode' of ");
  HAS(ca_buf_str(&err), "has no mode; supported modes: AK, StsToken");

  /* an explicitly requested profile that exists nowhere */
  CHECK(resolve(h, "staging", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err),
      "profile 'staging' (selected by the profile option) was not found");
  snprintf(want, sizeof want,
           "%s: no profile 'staging', selected by the profile option; its "
           "profiles: 'dev', 'prod', 'lower', 'default', 'role', 'ecs', "
           "'oidc', 'weird', 'nosecret', 'nomode'",
           p);
  HAS(ca_buf_str(&err), want);
  HAS(ca_buf_str(&err), "/.alibabacloud/credentials: does not exist");
  HAS(ca_buf_str(&err), "aliyun configure --profile staging");

  /* a field of the wrong type, a profiles member that is not an object */
  new_home(h, sizeof h);
  cli_path(p, sizeof p, h);
  write_cli(h,
            "{\"current\": \"a\", \"profiles\": [{\"name\": \"a\", \"mode\": "
            "\"AK\", \"access_key_id\": \"LTAIa\", \"access_key_secret\": "
            "[\"CANARY-SECRET-a\"]}]}",
            0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  snprintf(want, sizeof want,
           "%s: in profile 'a', \"access_key_secret\" is not a string", p);
  HAS(ca_buf_str(&err), want);
  write_cli(h, "{\"profiles\": [\"CANARY-SECRET-a\"]}", 0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  HAS(ca_buf_str(&err), "profile number 1 is not an object");
  write_cli(h, "[\"CANARY-SECRET-a\"]", 0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  HAS(ca_buf_str(&err), "is not an aliyun CLI configuration");
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_malformed_json(void)
{
  char h[256], p[512], want[1024];
  fake_env none = {{NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);

  new_home(h, sizeof h);
  cli_path(p, sizeof p, h);
  /* a trailing comma after the secret on line 4 */
  write_cli(h,
            "{\"current\": \"a\",\n"
            " \"profiles\": [{\"name\": \"a\", \"mode\": \"AK\",\n"
            "   \"access_key_id\": \"LTAIa\",\n"
            "   \"access_key_secret\": \"CANARY-SECRET-a\",\n"
            " }]}\n",
            0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  snprintf(want, sizeof want, "%s is not valid JSON: line 5, column 2: ", p);
  HAS(ca_buf_str(&err), want);
  /* an unterminated secret string: the parser must not echo it */
  write_cli(h, "{\"profiles\": [{\"access_key_secret\": \"CANARY-SECRET-b",
            0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  HAS(ca_buf_str(&err), "line 1, column ");
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_cli_disabled(void)
{
  char h[256];
  fake_env env = {{"ALIBABA_CLOUD_CLI_PROFILE_DISABLED=TRUE", NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);

  new_home(h, sizeof h);
  write_cli(h, CLI_JSON, 0600);
  CHECK(resolve(h, NULL, &env, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "~/.aliyun/config.json: skipped, "
                        "ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true");
  write_ini(h, INI, 0600);
  CHECK(resolve(h, NULL, &env, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, SECRET_INI);
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_ini(void)
{
  char h[256], p[512], want[1024], override[600], other[512];
  fake_env none = {{NULL}};
  fake_env sts = {{"ALIBABA_CLOUD_PROFILE=sts", NULL}};
  fake_env missing = {{"ALIBABA_CLOUD_PROFILE=nope", NULL}};
  fake_env ovr = {{NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);

  new_home(h, sizeof h);
  ini_path(p, sizeof p, h);
  write_ini(h, INI, 0600);

  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, "LTAIini00000000000000000");
  CHECK_STR(c.access_key_secret, SECRET_INI);
  CHECK(c.security_token == NULL && c.region == NULL);
  snprintf(want, sizeof want, "section [default] (type access_key) of %s", p);
  CHECK_STR(c.source, want);

  CHECK(resolve(h, NULL, &sts, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, "STS.ini0000000000000000");
  CHECK_STR(c.security_token, TOKEN_INI);
  snprintf(want, sizeof want,
           "section [sts] (type sts) of %s, selected by ALIBABA_CLOUD_PROFILE",
           p);
  CHECK_STR(c.source, want);

  CHECK(resolve(h, "ecs", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  snprintf(want, sizeof want,
           "section [ecs] of %s has type ecs_ram_role, which chatapp-run "
           "does not support yet; supported types: access_key, sts",
           p);
  HAS(ca_buf_str(&err), want);
  CHECK(resolve(h, "assume", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "has type ram_role_arn, which");
  CHECK(resolve(h, "oidc", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "has type oidc_role_arn, which");
  CHECK(resolve(h, "notype", &none, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err), "section [notype] of ");
  HAS(ca_buf_str(&err), "has no type; supported types: access_key, sts");

  CHECK(resolve(h, NULL, &missing, &c, &err) == CHATAPP_ECREDENTIALS);
  HAS(ca_buf_str(&err),
      "profile 'nope' (selected by ALIBABA_CLOUD_PROFILE) was not found");
  snprintf(want, sizeof want,
           "%s: no section [nope], selected by ALIBABA_CLOUD_PROFILE; its "
           "sections: [default], [sts], [ecs], [assume], [oidc], [notype]",
           p);
  HAS(ca_buf_str(&err), want);

  /* comments, CRLF, blank lines, whitespace around '=', quotes, a
   * repeated section, keys before any section, inline comments */
  write_ini(h,
            "; leading comment\r\n"
            "stray = ignored\r\n"
            "\r\n"
            "  [ default ]  \r\n"
            "\ttype=access_key   \r\n"
            "# comment inside\r\n"
            "access_key_id   =   LTAIws00000000000000000   ; the id\r\n"
            "access_key_secret = \"CANARY-SECRET-ws\"\r\n"
            "[other]\r\n"
            "type = sts\r\n"
            "[default]\r\n"
            "access_key_secret='CANARY-SECRET-ws2'  # later wins\r\n",
            0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_id, "LTAIws00000000000000000");
  CHECK_STR(c.access_key_secret, "CANARY-SECRET-ws2");

  /* malformed lines: file and line number, never the content */
  write_ini(h, "[default]\ntype = access_key\nCANARY-SECRET-noequals\n", 0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  snprintf(want, sizeof want,
           "%s, line 3: expected 'key = value', '[section]' or a comment", p);
  HAS(ca_buf_str(&err), want);
  write_ini(h, "[default\naccess_key_secret = CANARY-SECRET-x\n", 0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EPARSE);
  HAS(ca_buf_str(&err), "line 1: a section header must be '[name]'");

  /* ALIBABA_CLOUD_CREDENTIALS_FILE overrides the path */
  snprintf(other, sizeof other, "%s/elsewhere/creds.ini", tmproot);
  write_file(other,
             "[default]\ntype = sts\naccess_key_id = STS.ovr\n"
             "access_key_secret = CANARY-SECRET-ovr\n"
             "security_token = CANARY-TOKEN-ovr\n",
             0600);
  snprintf(override, sizeof override, "ALIBABA_CLOUD_CREDENTIALS_FILE=%s",
           other);
  env_add(&ovr, override);
  CHECK(resolve(h, NULL, &ovr, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, "CANARY-SECRET-ovr");
  CHECK_STR(c.security_token, "CANARY-TOKEN-ovr");
  snprintf(want, sizeof want, "section [default] (type sts) of %s", other);
  CHECK_STR(c.source, want);
  /* ... and naming a missing file is an error, not a fallback */
  unlink(other);
  CHECK(resolve(h, NULL, &ovr, &c, &err) == CHATAPP_ECREDENTIALS);
  snprintf(want, sizeof want,
           "ALIBABA_CLOUD_CREDENTIALS_FILE is set to %s, which does not "
           "exist",
           other);
  HAS(ca_buf_str(&err), want);
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_nothing(void)
{
  char h[256], want[1024];
  fake_env none = {{NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);
  const char *m;

  new_home(h, sizeof h);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_ECREDENTIALS);
  m = ca_buf_str(&err);
  HAS(m, "no Alibaba Cloud credentials found; looked in:\n");
  HAS(m, "  - explicit configuration: none given\n");
  HAS(m, "  - environment: ALIBABA_CLOUD_ACCESS_KEY_ID and "
         "ALIBABA_CLOUD_ACCESS_KEY_SECRET are not set (nor ALIBABACLOUD_*, "
         "ALICLOUD_*, ACCESS_KEY_ID/ACCESS_KEY_SECRET)\n");
  snprintf(want, sizeof want, "  - %s/.aliyun/config.json: does not exist\n",
           h);
  HAS(m, want);
  snprintf(want, sizeof want,
           "  - %s/.alibabacloud/credentials: does not exist\n", h);
  HAS(m, want);
  HAS(m, "to fix: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
         "ALIBABA_CLOUD_ACCESS_KEY_SECRET, or run `aliyun configure`");

  /* a file with profiles but none selected is listed too */
  write_cli(h, "{\"current\": \"gone\", \"profiles\": []}", 0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_ECREDENTIALS);
  snprintf(want, sizeof want,
           "  - %s/.aliyun/config.json: no profile 'gone', selected by its "
           "\"current\" setting; its profiles: none\n",
           h);
  HAS(ca_buf_str(&err), want);

  /* HOME comes from the (injected) environment when no home is given */
  {
    char hv[300];
    fake_env henv = {{NULL}};
    ca_cred_options o;
    snprintf(hv, sizeof hv, "HOME=%s", h);
    env_add(&henv, hv);
    write_ini(h, INI, 0600);
    memset(&o, 0, sizeof o);
    o.getenv = fake_getenv;
    o.getenv_ud = &henv;
    CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_OK);
    CHECK_STR(c.access_key_secret, SECRET_INI);
    check_clean("source", c.source);
  }
  ca_cred_free(&c);
  ca_buf_free(&err);
}

/* Both files in each refused state: the message names path and mode. */
static void test_permissions(void)
{
  static const mode_t bad[] = {0644, 0640, 0604, 0660, 0606, 0601};
  static const char *const badstr[] = {"0644", "0640", "0604",
                                       "0660", "0606", "0601"};
  char h[256], p[512], want[1200], target[600];
  fake_env none = {{NULL}};
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(65536);
  size_t i;
  int which;

  for (which = 0; which < 2; which++) {
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      new_home(h, sizeof h);
      if (which == 0) {
        write_cli(h, CLI_JSON, bad[i]);
        cli_path(p, sizeof p, h);
      } else {
        write_ini(h, INI, bad[i]);
        ini_path(p, sizeof p, h);
      }
      CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EIO);
      snprintf(want, sizeof want,
               "refusing to use %s: its permissions %s give group or others "
               "access to it",
               p, badstr[i]);
      HAS(ca_buf_str(&err), want);
      snprintf(want, sizeof want, "run `chmod 600 %s`", p);
      HAS(ca_buf_str(&err), want);
    }
  }

  /* a malformed file with bad permissions: refused before parsing */
  new_home(h, sizeof h);
  write_cli(h, "{\"access_key_secret\": \"CANARY-SECRET-bad\",", 0644);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EIO);
  HAS(ca_buf_str(&err), "0644");

  /* 0600 and 0400 are fine */
  new_home(h, sizeof h);
  write_cli(h, CLI_JSON, 0400);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  write_cli(h, CLI_JSON, 0600);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);
  CHECK_STR(c.access_key_secret, SECRET_DEV);

  /* a symlink (even to a 0600 file) is refused */
  new_home(h, sizeof h);
  snprintf(target, sizeof target, "%s/real-config.json", h);
  write_file(target, CLI_JSON, 0600);
  mkdir_p(cli_path(p, sizeof p, h));
  rmdir(p);
  if (symlink(target, p) != 0)
    die("symlink", p);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EIO);
  snprintf(want, sizeof want, "refusing to use %s: it is a symbolic link", p);
  HAS(ca_buf_str(&err), want);

  /* a FIFO does not hang the open; it is not a regular file */
  new_home(h, sizeof h);
  mkdir_p(ini_path(p, sizeof p, h));
  rmdir(p);
  if (mkfifo(p, 0600) != 0)
    die("mkfifo", p);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EIO);
  snprintf(want, sizeof want, "refusing to use %s: it is not a regular file",
           p);
  HAS(ca_buf_str(&err), want);

  /* a directory others can write to (not sticky) */
  new_home(h, sizeof h);
  write_cli(h, CLI_JSON, 0600);
  snprintf(target, sizeof target, "%s/.aliyun", h);
  chmod(target, 0777);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EIO);
  snprintf(want, sizeof want,
           "its directory %s is writable by group or others (mode 0777)",
           target);
  HAS(ca_buf_str(&err), want);
  chmod(target, 01777); /* sticky, like /tmp: fine */
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_OK);

  /* over the size cap (a sparse file) */
  new_home(h, sizeof h);
  write_ini(h, INI, 0600);
  if (truncate(ini_path(p, sizeof p, h), CA_CRED_FILE_MAX + 1) != 0)
    die("truncate", p);
  CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_ETOOBIG);
  HAS(ca_buf_str(&err), "over the 1048576-byte limit");

  /* someone else's file (only testable as root) */
  if (geteuid() == 0) {
    new_home(h, sizeof h);
    write_ini(h, INI, 0600);
    if (chown(ini_path(p, sizeof p, h), 12345, 12345) != 0)
      die("chown", p);
    CHECK(resolve(h, NULL, &none, &c, &err) == CHATAPP_EIO);
    HAS(ca_buf_str(&err), "it is owned by uid 12345, not by you (uid 0)");
  }
  ca_cred_free(&c);
  ca_buf_free(&err);
}

static void test_free(void)
{
  ca_credentials c = {0};
  ca_buf err = CA_BUF_INIT(40);
  fake_env none = {{NULL}};
  char h[256];
  ca_cred_options o;

  ca_cred_free(NULL);
  ca_cred_free(&c);
  ca_cred_free(&c);
  CHECK(c.access_key_id == NULL);

  /* a small err buffer gets the start of the message, not nothing */
  memset(&o, 0, sizeof o);
  o.getenv = fake_getenv;
  o.getenv_ud = &none;
  o.home = new_home(h, sizeof h);
  CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_ECREDENTIALS);
  CHECK(err.len == 40);
  CHECK(strncmp(ca_buf_str(&err), "no Alibaba Cloud credentials", 28) == 0);
  ca_buf_free(&err);
  /* err may be NULL */
  CHECK(ca_cred_resolve(&o, &c, NULL) == CHATAPP_ECREDENTIALS);
}

/* The one list of secret variables: every name the chain reads a secret or
 * a token from (each one must be a secret source the chain really uses),
 * and ALICLOUD_SECRET_KEY; never an id or a profile. */
static void test_secret_env_names(void)
{
  static const char *const expect[] = {"ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                                       "ALIBABACLOUD_ACCESS_KEY_SECRET",
                                       "ALICLOUD_ACCESS_KEY_SECRET",
                                       "ACCESS_KEY_SECRET",
                                       "ALIBABA_CLOUD_SECURITY_TOKEN",
                                       "ALIBABACLOUD_SECURITY_TOKEN",
                                       "ALICLOUD_SECURITY_TOKEN",
                                       "SECURITY_TOKEN",
                                       "ALICLOUD_SECRET_KEY",
                                       "CHATAPP_REDIS_PASSWORD",
                                       NULL};
  size_t i;

  for (i = 0; expect[i]; i++) {
    CHECK_STR(ca_cred_secret_env_name(i), expect[i]);
    CHECK(ca_cred_is_secret_env(expect[i], strlen(expect[i])));
  }
  CHECK(ca_cred_secret_env_name(i) == NULL);
  CHECK(!ca_cred_is_secret_env("ALIBABA_CLOUD_ACCESS_KEY_ID", 27));
  CHECK(!ca_cred_is_secret_env("ALIBABA_CLOUD_PROFILE", 21));
  CHECK(!ca_cred_is_secret_env("SECURITY_TOKEN_X", 16));
  CHECK(!ca_cred_is_secret_env("SECURITY_TOKE", 13));
  /* a name given with its "=value" (environ entries): only the name counts */
  CHECK(ca_cred_is_secret_env("SECURITY_TOKEN=abc", 14));

  /* Every secret-variable name is one the chain takes a secret from: a
   * lone secret variable is reported as "set but ... is not". */
  for (i = 0; i < 8; i++) {
    fake_env e = {{NULL}};
    ca_cred_options o;
    ca_credentials c;
    ca_buf err = CA_BUF_INIT(16384);
    char kv[128];
    snprintf(kv, sizeof kv, "%s=CANARY-%zu", expect[i], i);
    env_add(&e, kv);
    env_add(&e, "HOME=/nonexistent-home");
    memset(&o, 0, sizeof o);
    o.getenv = fake_getenv;
    o.getenv_ud = &e;
    CHECK(ca_cred_resolve(&o, &c, &err) == CHATAPP_ECREDENTIALS);
    CHECK(strstr(ca_buf_str(&err), expect[i]) != NULL);
    ca_cred_free(&c);
    ca_buf_free(&err);
  }
}

static char *redacted(const ca_secrets *s, const char *text)
{
  ca_buf b = CA_BUF_INIT(1 << 20);
  size_t n = ca_secrets_redact_into(s, text, strlen(text), NULL);
  char *mem = malloc(n + 1);

  CHECK(ca_secrets_redact(s, text, strlen(text), &b) == CHATAPP_OK);
  CHECK(b.len == n);
  if (mem) {
    CHECK(ca_secrets_redact_into(s, text, strlen(text), mem) == n);
    mem[n] = '\0';
    CHECK_STR(mem, ca_buf_str(&b));
    free(mem);
  }
  return ca_buf_steal(&b);
}

#define CHECK_REDACTED(s, in, out)                                             \
  do {                                                                         \
    char *r_ = redacted((s), (in));                                            \
    CHECK_STR(r_ ? r_ : "", (out));                                            \
    free(r_);                                                                  \
  } while (0)

static void test_secrets_redact(void)
{
  ca_secrets s = CA_SECRETS_INIT;
  ca_credentials c;
  fake_env e = {{NULL}};
  ca_buf small = CA_BUF_INIT(12);
  char secret[] = "CANARY-SECRET-1", token[] = "tok+en/1==";

  /* nothing known: the text as is */
  CHECK_REDACTED(&s, "plain text", "plain text");
  CHECK_REDACTED(NULL, "plain text", "plain text");
  CHECK(!ca_secrets_found(NULL, "x", 1));

  memset(&c, 0, sizeof c);
  c.access_key_secret = secret;
  c.security_token = token;
  CHECK(ca_secrets_add_credentials(&s, &c) == CHATAPP_OK);
  CHECK(ca_secrets_add_credentials(&s, NULL) == CHATAPP_OK);
  CHECK(ca_secrets_add(&s, "abc", 3) == CHATAPP_OK); /* too short: ignored */
  CHECK(ca_secrets_add(&s, "CANARY-SECRET-1", 15) == CHATAPP_OK); /* dup */
  CHECK(ca_secrets_found(&s, "x CANARY-SECRET-1 y", 19));
  CHECK(!ca_secrets_found(&s, "abc abc", 7));
  CHECK_REDACTED(&s, "abc", "abc");
  CHECK_REDACTED(&s, "CANARY-SECRET-1", "<redacted>");
  CHECK_REDACTED(&s, "Message: token tok+en/1== and CANARY-SECRET-1!",
                 "Message: token <redacted> and <redacted>!");
  /* percent-encoded once and twice (query strings, strings to sign) */
  CHECK_REDACTED(&s, "t=tok%2Ben%2F1%3D%3D&u=tok%252Ben%252F1%253D%253D",
                 "t=<redacted>&u=<redacted>");
  /* adjacent, overlapping with the mark, at both ends */
  CHECK_REDACTED(&s, "tok+en/1==tok+en/1==", "<redacted><redacted>");
  CHECK_REDACTED(&s, "CANARY-SECRET-CANARY-SECRET-1",
                 "CANARY-SECRET-<redacted>");
  /* NUL bytes in the text are kept */
  {
    ca_buf b = CA_BUF_INIT(1024);
    CHECK(ca_secrets_redact(&s, "a\0CANARY-SECRET-1", 17, &b) == CHATAPP_OK);
    CHECK(b.len == 12 && memcmp(b.ptr, "a\0<redacted>", 12) == 0);
    ca_buf_free(&b);
  }
  /* over the buffer's maximum: an error and nothing kept */
  CHECK(ca_secrets_redact(&s, "0123 CANARY-SECRET-1 456789", 27, &small) ==
        CHATAPP_ETOOBIG);
  CHECK(small.len == 0);
  ca_buf_free(&small);

  /* from the environment: the secret variables' values, not others */
  env_add(&e, "ALICLOUD_SECRET_KEY=terraform-secret-9");
  env_add(&e, "ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIvisible000");
  env_add(&e, "SECURITY_TOKEN=");
  CHECK(ca_secrets_add_env(&s, fake_getenv, &e) == CHATAPP_OK);
  CHECK_REDACTED(&s, "k=terraform-secret-9 id=LTAIvisible000",
                 "k=<redacted> id=LTAIvisible000");
  ca_secrets_free(&s);
  ca_secrets_free(&s); /* idempotent */
  ca_secrets_free(NULL);
  CHECK_REDACTED(&s, "CANARY-SECRET-1", "CANARY-SECRET-1");
}

int main(void)
{
  int rc;

  umask(077);
  if (!mkdtemp(tmproot))
    die("mkdtemp", tmproot);
  test_mask();
  test_explicit();
  test_env_precedence();
  test_env_aliases();
  test_env_half();
  test_cli_profiles();
  test_cli_errors();
  test_malformed_json();
  test_cli_disabled();
  test_ini();
  test_nothing();
  test_permissions();
  test_free();
  test_secret_env_names();
  test_secrets_redact();
  rc = test_report("test_cred");
  if (nftw(tmproot, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "cannot remove %s\n", tmproot);
  return rc;
}
