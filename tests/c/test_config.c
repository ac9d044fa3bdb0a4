/* chatapp_config: every key parses into its own field, bad values are
 * refused with a message, secrets are refused nowhere but copied. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_config.h"
#include "test.h"

/* Endpoints: well-formed ones pass, the rest are refused with a reason
 * (an empty one above all: it used to mean "production"). */
static void endpoints(void)
{
  static const char *const good[] = {
    "https://cams.ap-southeast-1.aliyuncs.com",
    "https://cams.ap-southeast-1.aliyuncs.com/",
    "http://127.0.0.1:8080",
    "https://[::1]:443",
    "http://[::1]",
    "https://x:1",
    "https://x:65535",
    NULL};
  static const struct {
    const char *url, *why;
  } bad[] = {{"", "empty"},
             {"https://", "no host"},
             {"http://", "no host"},
             {"https:///", "no host"},
             {"https://x:99999", "port 99999"},
             {"https://x:0", "port 0"},
             {"https://x:", "malformed port"},
             {"https://x:12a", "malformed port"},
             {"https://x:123456", "malformed port"},
             {"https://[::1", "does not close"},
             {"https://[]:80", "empty IPv6"},
             {"https://[::1]x", "after the IPv6"},
             {"https://:80", "no host"},
             {"https://a b", "space"},
             {"https://x/path", "no path"},
             {"https://user@x", "no path, query or user"},
             {"ftp://x", "must start with https://"},
             {"cams.aliyuncs.com", "must start with https://"},
             {"https://ex%61mple", "malformed host"},
             {NULL, NULL}};
  chatapp_config *cfg = chatapp_config_new();
  char err[512];
  int i;

  CHECK(cfg != NULL);
  for (i = 0; good[i]; i++) {
    CHECK(ca_config_check_endpoint(good[i], err, sizeof err) == 0);
    CHECK(chatapp_config_set(cfg, "endpoint", good[i]) == CHATAPP_OK);
    CHECK_STR(cfg->endpoint, good[i]);
  }
  for (i = 0; bad[i].url; i++) {
    err[0] = '\0';
    CHECK(ca_config_check_endpoint(bad[i].url, err, sizeof err) == -1);
    if (!strstr(err, bad[i].why))
      fprintf(stderr, "endpoint '%s': %s\n", bad[i].url, err);
    CHECK(strstr(err, bad[i].why) != NULL);
    /* The key refuses it and keeps the value it had. */
    CHECK(chatapp_config_set(cfg, "endpoint", bad[i].url) == CHATAPP_EINVAL);
    CHECK(strstr(chatapp_config_errmsg(cfg), bad[i].why) != NULL);
    CHECK_STR(cfg->endpoint, good[6]);
  }
  chatapp_config_free(cfg);
}

/* --record / --metrics targets: a regular file or a new path only. */
static void output_files(void)
{
  char dir[] = "/tmp/test_config-XXXXXX", path[256], err[1024];
  FILE *f;

  CHECK(mkdtemp(dir) != NULL);
  CHECK(ca_config_check_output_file("--record", NULL, err, sizeof err) == 0);
  snprintf(path, sizeof path, "%s/new.rec", dir);
  CHECK(ca_config_check_output_file("--record", path, err, sizeof err) == 0);
  f = fopen(path, "w");
  CHECK(f != NULL);
  if (f)
    fclose(f);
  CHECK(ca_config_check_output_file("--record", path, err, sizeof err) == 0);
  CHECK(unlink(path) == 0);
  CHECK(ca_config_check_output_file("--metrics", "/dev/null", err,
                                    sizeof err) == -1);
  CHECK(strstr(err, "--metrics /dev/null is a character device") != NULL);
  CHECK(ca_config_check_output_file("--record", dir, err, sizeof err) == -1);
  CHECK(strstr(err, "is a directory") != NULL);
  snprintf(path, sizeof path, "%s/fifo", dir);
  CHECK(mkfifo(path, 0600) == 0);
  CHECK(ca_config_check_output_file("--record", path, err, sizeof err) == -1);
  CHECK(strstr(err, "is a FIFO") != NULL);
  CHECK(unlink(path) == 0);
  /* a folder that does not exist: refused now, not after the run */
  snprintf(path, sizeof path, "%s/no/such/dir/x", dir);
  CHECK(ca_config_check_output_file("--record", path, err, sizeof err) == -1);
  CHECK(strstr(err, "no/such/dir: No such file or directory") != NULL);
  CHECK(ca_config_check_output_file("--record", "", err, sizeof err) == -1);
  CHECK(rmdir(dir) == 0);
}

/* An AccessKey id of 5,000 characters: a clear error that does not print
 * it (it used to give an empty message). */
static void long_key_id(void)
{
  chatapp_config *cfg = chatapp_config_new();
  char *id = malloc(5001);
  ca_client *c = NULL;
  ca_buf err = CA_BUF_INIT(1 << 16);
  chatapp_status st;

  CHECK(cfg && id);
  if (!cfg || !id)
    return;
  memset(id, 'K', 5000);
  id[5000] = '\0';
  CHECK(chatapp_config_set(cfg, "access_key_id", id) == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "access_key_secret", "s") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "endpoint", "http://127.0.0.1:1") ==
        CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "limiter", "process") == CHATAPP_OK);
  st = ca_config_new_client(cfg, &c, &err, NULL);
  CHECK(st == CHATAPP_ECREDENTIALS);
  CHECK(c == NULL);
  CHECK(strstr(ca_buf_str(&err), "AccessKey id") != NULL);
  CHECK(strstr(ca_buf_str(&err), "too long") != NULL);
  CHECK(strstr(ca_buf_str(&err), "KKKKKKKKKKKK") == NULL); /* masked */
  ca_client_free(c);
  ca_buf_free(&err);
  free(id);
  chatapp_config_free(cfg);
}

static void interruption(void)
{
  CHECK(ca_interrupted() == 0);
  ca_interrupt_set(SIGTERM);
  CHECK(ca_interrupted() == SIGTERM);
  ca_interrupt_set(0);
  CHECK(ca_interrupted() == 0);
}

/* Two threads configure two configurations at once (an embedder with two
 * clients): nothing is shared but the const key table, so each sees only
 * its own values (run under ASan and, when built so, TSan). */
typedef struct worker {
  const char *output, *endpoint, *attempts;
  int failures;
} worker;

static void *configure(void *ud)
{
  worker *w = ud;
  int round;

  for (round = 0; round < 200; round++) {
    chatapp_config *c = chatapp_config_new();
    const ca_config_key *k;
    size_t n = 0;
    if (!c) {
      w->failures++;
      continue;
    }
    for (k = ca_config_keys(); k->name; k++)
      n += k->help != NULL;
    if (n < 25 || chatapp_config_set(c, "output", w->output) ||
        chatapp_config_set(c, "endpoint", w->endpoint) ||
        chatapp_config_set(c, "max-attempts", w->attempts) ||
        chatapp_config_set(c, "output", "XML") != CHATAPP_EINVAL ||
        !strstr(chatapp_config_errmsg(c), "'XML'") ||
        strcmp(c->output, w->output) != 0 ||
        strcmp(c->endpoint, w->endpoint) != 0 ||
        c->max_attempts != atol(w->attempts))
      w->failures++;
    chatapp_config_free(c);
  }
  return NULL;
}

static void two_threads(void)
{
  worker w[2] = {{"json", "https://a.example", "2", 0},
                 {"text", "http://127.0.0.1:1", "7", 0}};
  pthread_t t[2];
  int started[2], i;

  for (i = 0; i < 2; i++)
    started[i] = pthread_create(&t[i], NULL, configure, &w[i]) == 0;
  for (i = 0; i < 2; i++) {
    CHECK(started[i]);
    if (started[i])
      CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(w[i].failures == 0);
  }
}

/* The output format: the parser keeps any name (report.formats decides
 * when the runtime starts) and refuses what cannot be one. */
static void output_formats(void)
{
  static const char *const bad[] = {
    "",
    "XML",
    "a b",
    "1text",
    "text\n",
    "json;rm",
    "abcdefghijklmnopqrstuvwxyzabcdef", /* 32 characters */
  };
  chatapp_config *c = chatapp_config_new();
  size_t i;

  CHECK(c && strcmp(c->output, "none") == 0);
  if (!c)
    return;
  CHECK(chatapp_config_set(c, "output", "json") == CHATAPP_OK);
  CHECK(strcmp(c->output, "json") == 0);
  CHECK(chatapp_config_set(c, "output", "xml") == CHATAPP_OK);
  CHECK(strcmp(c->output, "xml") == 0);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(chatapp_config_set(c, "output", bad[i]) == CHATAPP_EINVAL);
    CHECK(strstr(chatapp_config_errmsg(c), "not a report format name"));
    CHECK(strcmp(c->output, "xml") == 0); /* kept */
  }
  chatapp_config_free(c);
}

/* The leader lease's length (a Redis state): a duration of 3 s to 1 h. */
static void lease_key(void)
{
  static const char *const bad[] = {"2s", "0", "2h", "15 s", "x", ""};
  chatapp_config *c = chatapp_config_new();
  size_t i;

  CHECK(c && c->lease_s == 0); /* the default, 15 s, is ca_lease's */
  if (!c)
    return;
  CHECK(chatapp_config_set(c, "lease", "15s") == CHATAPP_OK);
  CHECK(c->lease_s == 15);
  CHECK(chatapp_config_set(c, "lease", "3") == CHATAPP_OK);
  CHECK(c->lease_s == 3);
  CHECK(chatapp_config_set(c, "lease", "1h") == CHATAPP_OK);
  CHECK(c->lease_s == 3600);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK(chatapp_config_set(c, "lease", bad[i]) == CHATAPP_EINVAL);
    CHECK(strstr(chatapp_config_errmsg(c), "from 3s to 1h"));
    CHECK(c->lease_s == 3600); /* kept */
  }
  chatapp_config_free(c);
}

int main(void)
{
  chatapp_config *cfg = chatapp_config_new(), *dup;
  const ca_config_key *k;
  int n = 0;

  endpoints();
  output_files();
  long_key_id();
  interruption();
  two_threads();
  output_formats();
  lease_key();

  CHECK(cfg != NULL);
  /* Setting one key never disturbs its neighbours. */
  CHECK(chatapp_config_set(cfg, "output", "json") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "verbose", "3") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "color", "always") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "max-attempts", "5") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "max_in_flight", "7") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "allow_exec", "yes") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "memory_limit_mb", "32") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "instruction_limit", "5000000") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "qps", "2.5") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "signature-version", "v2") == CHATAPP_OK);
  CHECK_STR(cfg->output, "json");
  CHECK(cfg->verbose == 3);
  CHECK(cfg->color == 1);
  CHECK(cfg->max_attempts == 5);
  CHECK(cfg->max_in_flight == 7);
  CHECK(cfg->allow_exec == 1);
  CHECK(cfg->memory_limit_mb == 32);
  CHECK(cfg->instruction_limit == 5000000);
  CHECK(cfg->qps == 2.5);
  CHECK(cfg->signature_version == 2);
  CHECK(chatapp_config_set(cfg, "signature_version", "3") == CHATAPP_OK);
  CHECK(cfg->signature_version == 3);
  CHECK(chatapp_config_set(cfg, "color", "auto") == CHATAPP_OK);
  CHECK(cfg->color == -1);

  /* Bad values: refused, with a message naming the key and the value. */
  CHECK(chatapp_config_set(cfg, "qps", "0") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "'qps'") != NULL);
  CHECK(chatapp_config_set(cfg, "qps", "ten") == CHATAPP_EINVAL);
  CHECK(chatapp_config_set(cfg, "max_attempts", "2.5") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "whole number") != NULL);
  CHECK(chatapp_config_set(cfg, "output", "x ml") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "'x ml'") != NULL);
  CHECK(chatapp_config_set(cfg, "allow_exec", "maybe") == CHATAPP_EINVAL);
  CHECK(chatapp_config_set(cfg, "no_such_key", "1") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "unknown option") != NULL);
  CHECK(chatapp_config_set(cfg, "endpoint", NULL) == CHATAPP_EINVAL);
  CHECK(cfg->qps == 2.5); /* unchanged by the refusals */

  /* Strings are copied; an empty string unsets (but for the endpoint). */
  CHECK(chatapp_config_set(cfg, "access_key_secret", "CANARY-S") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "endpoint", "https://x") == CHATAPP_OK);
  dup = ca_config_dup(cfg);
  CHECK(dup && dup->endpoint != cfg->endpoint);
  CHECK_STR(dup->endpoint, "https://x");
  CHECK_STR(dup->access_key_secret, "CANARY-S");
  CHECK(chatapp_config_set(cfg, "endpoint", "") == CHATAPP_EINVAL);
  CHECK_STR(cfg->endpoint, "https://x");
  CHECK(chatapp_config_set(cfg, "region", "cn-hangzhou") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "region", "") == CHATAPP_OK);
  CHECK(cfg->region == NULL);
  chatapp_config_free(dup);

  /* Every documented key is known to the setter (the value may be refused
   * for its form, never the key as unknown), and has a help text. */
  chatapp_config_free(cfg);
  cfg = chatapp_config_new();
  CHECK(cfg != NULL);
  for (k = ca_config_keys(); cfg && k->name; k++, n++) {
    chatapp_status st = chatapp_config_set(cfg, k->name, "1");
    CHECK(k->help && *k->help);
    CHECK(st == CHATAPP_OK || st == CHATAPP_EINVAL);
    if (st != CHATAPP_OK) {
      CHECK(strstr(chatapp_config_errmsg(cfg), "unknown option") == NULL);
      CHECK(strstr(chatapp_config_errmsg(cfg), k->name) != NULL);
    }
  }
  CHECK(n >= 25);
  /* (and an unknown one is told apart, so the checks above can fail) */
  CHECK(chatapp_config_set(cfg, "no_such_key", "1") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "unknown option") != NULL);
  chatapp_config_free(cfg);
  chatapp_config_free(NULL);
  return test_report("test_config");
}
