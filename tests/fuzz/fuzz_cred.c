/*
 * Fuzz target: the two credential files of the default chain
 * (runtime/core/ca_cred_cli.c, ca_cred_ini.c, ca_cred_files.c), read the
 * way chatapp-run reads them: the input is written as
 * ~/.aliyun/config.json of one temporary home and as
 * ~/.alibabacloud/credentials (the INI file) of another, both mode 0600,
 * and ca_cred_resolve runs over each with an empty environment, once
 * without a profile and once with the profile "prod".
 *
 * The same input runs through the chain again with the role modes on
 * (options.roles: RamRoleArn, ChainableRamRoleArn and its source_profile
 * cycle check, EcsRamRole, OIDC, CredentialsURI, External; INI
 * ram_role_arn, ecs_ram_role, oidc_role_arn; no network: the chain only
 * describes a role), through the parser of the role providers' answers
 * (STS, metadata service, credentials URI, external command) and through
 * the process_command splitter.
 *
 * Properties: no crash, no leak, no undefined behaviour; a failure has a
 * message and one of the documented statuses; a success has a non-empty
 * AccessKey id and secret; every message, source and warning is printable
 * ASCII (names from the file are escaped) and never holds the secret or
 * the token.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_cred.h"
#include "ca_cred_provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[] = "/tmp/fuzz_cred.XXXXXX";
static char home_cli[256], home_ini[256], file_cli[300], file_ini[300];
static int ready;

static const char *no_env(void *ud, const char *name)
{
  (void)ud;
  (void)name;
  return NULL;
}

static void cleanup(void)
{
  unlink(file_cli);
  unlink(file_ini);
  snprintf(file_cli, sizeof file_cli, "%s/.aliyun", home_cli);
  rmdir(file_cli);
  snprintf(file_ini, sizeof file_ini, "%s/.alibabacloud", home_ini);
  rmdir(file_ini);
  rmdir(home_cli);
  rmdir(home_ini);
  rmdir(root);
}

static void mkdir_or_die(const char *p)
{
  if (mkdir(p, 0700) != 0) {
    perror(p);
    abort();
  }
}

static void setup(void)
{
  char d[300];

  if (!mkdtemp(root)) {
    perror("mkdtemp");
    abort();
  }
  snprintf(home_cli, sizeof home_cli, "%s/cli", root);
  snprintf(home_ini, sizeof home_ini, "%s/ini", root);
  mkdir_or_die(home_cli);
  mkdir_or_die(home_ini);
  snprintf(d, sizeof d, "%s/.aliyun", home_cli);
  mkdir_or_die(d);
  snprintf(d, sizeof d, "%s/.alibabacloud", home_ini);
  mkdir_or_die(d);
  snprintf(file_cli, sizeof file_cli, "%s/.aliyun/config.json", home_cli);
  snprintf(file_ini, sizeof file_ini, "%s/.alibabacloud/credentials", home_ini);
  atexit(cleanup);
  ready = 1;
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  size_t done = 0;

  if (fd < 0) {
    perror(path);
    abort();
  }
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0) {
      perror(path);
      abort();
    }
    done += (size_t)w;
  }
  if (close(fd) != 0)
    abort();
}

/* Printable ASCII and newlines only. */
static void check_text(const char *what, const char *s)
{
  const unsigned char *p;

  if (!s)
    return;
  for (p = (const unsigned char *)s; *p; p++) {
    if ((*p < 0x20 && *p != '\n') || *p >= 0x7f) {
      fprintf(stderr, "%s holds byte 0x%02x: %s\n", what, *p, s);
      abort();
    }
  }
}

/* A secret or token that occurs once in the input (so not also as a
 * profile name) must not show up in text. */
static void check_hidden(const char *what, const char *text, const char *secret,
                         const uint8_t *data, size_t size)
{
  size_t n = secret ? strlen(secret) : 0;
  const uint8_t *first;

  if (!text || n < 12)
    return;
  first = memmem(data, size, secret, n);
  if (!first || memmem(first + 1, size - (size_t)(first + 1 - data), secret, n))
    return;
  if (strstr(text, secret)) {
    fprintf(stderr, "%s shows a secret: %s\n", what, text);
    abort();
  }
}

static void resolve(const char *home, const char *profile, const uint8_t *data,
                    size_t size, int roles)
{
  ca_cred_options o;
  ca_credentials c;
  ca_buf err = CA_BUF_INIT(64 * 1024);
  chatapp_status st;

  memset(&o, 0, sizeof o);
  o.getenv = no_env;
  o.home = home;
  o.profile = profile;
  o.roles = roles;
  st = ca_cred_resolve(&o, &c, &err);
  if (st == CHATAPP_OK && c.role) {
    const ca_credentials *s = c.role->source;
    if (!roles || !c.source || c.access_key_id ||
        (c.role->kind == CA_CRED_RAM_ROLE && (!s || !c.role->role_arn)))
      abort();
    check_text("source", c.source);
    for (; s; s = s->role ? s->role->source : NULL) {
      if (!s->role && (!s->access_key_id || !s->access_key_secret))
        abort();
      check_hidden("source", c.source, s->access_key_secret, data, size);
    }
  } else if (st == CHATAPP_OK) {
    if (!c.access_key_id || !*c.access_key_id || !c.access_key_secret ||
        !*c.access_key_secret || !c.source)
      abort();
    check_text("source", c.source);
    check_text("warning", c.warning);
    check_hidden("source", c.source, c.access_key_secret, data, size);
    check_hidden("source", c.source, c.security_token, data, size);
    check_hidden("warning", c.warning, c.access_key_secret, data, size);
  } else {
    if (st != CHATAPP_ECREDENTIALS && st != CHATAPP_EPARSE &&
        st != CHATAPP_EIO && st != CHATAPP_ETOOBIG) {
      fprintf(stderr, "unexpected status %d: %s\n", (int)st, ca_buf_str(&err));
      abort();
    }
    if (err.len == 0) {
      fprintf(stderr, "status %d without a message\n", (int)st);
      abort();
    }
    check_text("message", ca_buf_str(&err));
  }
  ca_cred_free(&c);
  ca_buf_free(&err);
}

/* The role providers' answers, each kind; the process_command splitter. */
static void answers(const uint8_t *data, size_t size)
{
  static const ca_cred_kind kinds[] = {
    CA_CRED_RAM_ROLE, CA_CRED_OIDC, CA_CRED_ECS, CA_CRED_URI, CA_CRED_PROCESS};
  char *id, *secret, *token, err[256], *cmd;
  int64_t exp;
  size_t i;

  for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    chatapp_status st =
      ca_cred_parse_answer(kinds[i], (const char *)data, size, &id, &secret,
                           &token, &exp, err, sizeof err);
    if (st == CHATAPP_OK) {
      if (!id || !*id || !secret || !*secret ||
          (kinds[i] != CA_CRED_PROCESS && (!token || exp <= 0)))
        abort();
      free(id);
      free(secret);
      free(token);
    } else {
      if (id || secret || token)
        abort();
      check_text("answer message", err);
    }
  }
  cmd = malloc(size + 1);
  if (!cmd)
    abort();
  memcpy(cmd, data, size);
  cmd[size] = '\0';
  {
    char **argv = ca_cred_split_argv(cmd);
    for (i = 0; argv && argv[i]; i++)
      if (strlen(argv[i]) > size)
        abort();
    ca_cred_argv_free(argv);
  }
  free(cmd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!ready)
    setup();
  if (size > CA_CRED_FILE_MAX)
    return 0;
  write_file(file_cli, data, size);
  write_file(file_ini, data, size);
  resolve(home_cli, NULL, data, size, 0);
  resolve(home_cli, "prod", data, size, 0);
  resolve(home_ini, NULL, data, size, 0);
  resolve(home_ini, "prod", data, size, 0);
  resolve(home_cli, NULL, data, size, 1);
  resolve(home_cli, "prod", data, size, 1);
  resolve(home_ini, NULL, data, size, 1);
  resolve(home_ini, "prod", data, size, 1);
  answers(data, size);
  return 0;
}
