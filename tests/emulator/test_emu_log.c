/*
 * chatapp-emulator: the request log (fields, verdicts, no secret, token or
 * signature in it, flushed while running and at exit), the statistics,
 * the port file and the printed URL, clean exit on SIGTERM and SIGINT, and
 * the command line (--help, --version, usage errors).
 *
 * Usage: test_emu_log EMULATOR
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "harness.h"
#include "test.h"

extern const char *emu_exe;

static const char *const secrets[] = {
  KEY_SECRET,      STS_SECRET,      STS_TOKEN, KEY2_SECRET,
  "Authorization", "\"Signature\"", NULL};

/* The log line holding needle, parsed; NULL if none. */
static ca_json_doc *line_with(char **l, size_t n, const char *needle)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (strstr(l[i], needle))
      return ca_json_parse(l[i], strlen(l[i]), 16, 0, NULL, 0);
  return NULL;
}

static void test_log(void)
{
  const char *args[] = {"--quota", "2", NULL};
  static const ca_kv params[] = {{"Status", "CONNECTED"}};
  emu_proc p;
  call_opts o;
  http_resp r;
  char **l;
  size_t n, i, k;
  ca_json_doc *d;
  const ca_json *root, *sh;
  long v;

  fprintf(stderr, "request log\n");
  if (emu_start(&p, args) != 0) {
    CHECK(0 && "emulator did not start");
    return;
  }
  memset(&o, 0, sizeof o);
  o.params = params;
  o.nparams = 1;
  o.nonce = "log-test-nonce-accepted";
  CHECK(emu_call(&p, &o, &r) == 0);
  http_resp_free(&r);
  memset(&o, 0, sizeof o);
  o.legacy = 1;
  o.akid = STS_ID;
  o.secret = STS_SECRET;
  o.token = STS_TOKEN;
  o.nonce = "log-test-nonce-sts";
  CHECK(emu_call(&p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "OK");
  http_resp_free(&r);
  memset(&o, 0, sizeof o);
  o.tamper = 1;
  o.nonce = "log-test-nonce-tampered";
  CHECK(emu_call(&p, &o, &r) == 0);
  http_resp_free(&r);
  o.tamper = 0;
  o.nonce = "log-test-nonce-throttled";
  CHECK(emu_call(&p, &o, &r) == 0);
  CHECK_STR(resp_code(&r), "Throttling.User");
  http_resp_free(&r);

  /* Read while it runs: every line is complete JSON. */
  l = read_log(&p, &n);
  CHECK(n == 4);
  for (i = 0; i < n; i++) {
    d = ca_json_parse(l[i], strlen(l[i]), 16, 0, NULL, 0);
    CHECK(d != NULL);
    root = d ? ca_json_root(d) : NULL;
    CHECK(ca_json_get(root, "t_us") && ca_json_get_str(root, "time") &&
          ca_json_get(root, "params") && ca_json_get(root, "signed_headers") &&
          ca_json_get_str(root, "verdict") && ca_json_get_str(root, "code") &&
          ca_json_get(root, "status") && ca_json_get_str(root, "request_id"));
    CHECK_STR(ca_json_get_str(root, "op"), QUERY);
    ca_json_free(d);
    for (k = 0; secrets[k]; k++)
      CHECK(strstr(l[i], secrets[k]) == NULL);
  }
  d = line_with(l, n, "log-test-nonce-accepted");
  root = d ? ca_json_root(d) : NULL;
  CHECK_STR(ca_json_get_str(root, "verdict"), "accepted");
  CHECK_STR(ca_json_get_str(root, "code"), "OK");
  CHECK_STR(ca_json_get_str(root, "scheme"), "v3");
  CHECK_STR(ca_json_get_str(root, "access_key_id"), KEY_ID);
  CHECK_STR(ca_json_get_str(root, "account"), "1000000000000001");
  CHECK_STR(ca_json_get_str(ca_json_get(root, "params"), "Status"),
            "CONNECTED");
  CHECK(ca_json_get(root, "status") && ca_json_get(root, "status")->num == 200);
  sh = ca_json_get(root, "signed_headers");
  CHECK(sh && sh->count == 6 && sh->child &&
        strcmp(sh->child->str, "host") == 0);
  CHECK(strstr(ca_json_get_str(root, "time"), "Z") != NULL);
  ca_json_free(d);
  d = line_with(l, n, "log-test-nonce-sts");
  root = d ? ca_json_root(d) : NULL;
  CHECK_STR(ca_json_get_str(root, "scheme"), "legacy");
  CHECK_STR(ca_json_get_str(ca_json_get(root, "params"), "SecurityToken"),
            "[REDACTED]");
  CHECK(ca_json_get(ca_json_get(root, "params"), "Signature") == NULL);
  ca_json_free(d);
  d = line_with(l, n, "log-test-nonce-tampered");
  root = d ? ca_json_root(d) : NULL;
  CHECK_STR(ca_json_get_str(root, "verdict"), "rejected");
  CHECK_STR(ca_json_get_str(root, "code"), "SignatureDoesNotMatch");
  ca_json_free(d);
  d = line_with(l, n, "log-test-nonce-throttled");
  root = d ? ca_json_root(d) : NULL;
  CHECK_STR(ca_json_get_str(root, "verdict"), "throttled");
  CHECK(ca_json_get(root, "status") && ca_json_get(root, "status")->num == 400);
  ca_json_free(d);
  free_lines(l, n);

  fprintf(stderr, "statistics\n");
  CHECK(emu_http(&p, "GET", "/_emulator/stats", NULL, &r) == 0);
  d = resp_json(&r);
  root = d ? ca_json_root(d) : NULL;
  v = ca_json_get(root, "requests") ? (long)ca_json_get(root, "requests")->num
                                    : -1;
  CHECK(v == 4);
  CHECK(ca_json_get(root, "accepted")->num == 2);
  CHECK(ca_json_get(root, "throttled")->num == 1);
  CHECK(ca_json_get(root, "rejected")->num == 1);
  CHECK(
    ca_json_get(ca_json_get(root, "rejected_by_code"), "SignatureDoesNotMatch")
      ->num == 1);
  CHECK(ca_json_get(ca_json_get(ca_json_get(root, "operations"), QUERY),
                    "busiest_1s")
          ->num == 2);
  ca_json_free(d);
  http_resp_free(&r);
  CHECK(emu_http(&p, "GET", "/_emulator/nothing", NULL, &r) == 0);
  CHECK(r.status == 404);
  http_resp_free(&r);
  CHECK(emu_http(&p, "POST", "/_emulator/stats", "", &r) == 0);
  CHECK(r.status == 405);
  http_resp_free(&r);

  /* Port file written atomically: no temp file left beside it. */
  {
    DIR *dir = opendir(p.dir);
    struct dirent *de;
    int others = 0;
    char path[400];
    FILE *f;
    unsigned port = 0;
    while (dir && (de = readdir(dir)))
      if (de->d_name[0] != '.' && strcmp(de->d_name, "port") != 0 &&
          strcmp(de->d_name, "log.jsonl") != 0)
        others++;
    if (dir)
      closedir(dir);
    CHECK(others == 0);
    snprintf(path, sizeof path, "%s/port", p.dir);
    f = fopen(path, "r");
    CHECK(f && fscanf(f, "%u", &port) == 1 && port == p.port);
    if (f)
      fclose(f);
  }

  /* SIGTERM: exit 0, and the log holds the last call. */
  memset(&o, 0, sizeof o);
  o.action = "NoSuchThing";
  o.nonce = "log-test-nonce-last";
  CHECK(emu_call(&p, &o, &r) == 0);
  http_resp_free(&r);
  {
    emu_proc copy = p;
    CHECK(emu_stop(&p) == 0);
    l = read_log(&copy, &n);
    CHECK(n == 5 && strstr(l[n - 1], "log-test-nonce-last") &&
          strstr(l[n - 1], "InvalidAction.NotFound"));
    free_lines(l, n);
  }
}

/* Run the emulator with args, stdout to a pipe; first line into out. */
static pid_t spawn_read(const char *const *args, char *out, size_t outlen,
                        int drain)
{
  int fds[2];
  pid_t pid;
  const char *argv[16];
  size_t n = 0;
  FILE *f;

  argv[n++] = emu_exe;
  while (*args && n < 15)
    argv[n++] = *args++;
  argv[n] = NULL;
  if (pipe(fds) != 0)
    return -1;
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execv(emu_exe, (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  close(fds[1]);
  f = fdopen(fds[0], "r");
  out[0] = '\0';
  if (f) {
    /* Bounded: the child prints at once or exits. */
    if (!fgets(out, (int)outlen, f))
      out[0] = '\0';
    while (drain && fgetc(f) != EOF) /* the child exits, so EOF comes */
      ;
    fclose(f);
  }
  return pid;
}

static int wait_exit(pid_t pid)
{
  int status = 0, i;

  for (i = 0; i < 1000; i++) {
    if (waitpid(pid, &status, WNOHANG) == pid)
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    usleep(10000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

static void test_cli(void)
{
  char line[4096];
  pid_t pid;
  const char *help[] = {"--help", NULL};
  const char *ver[] = {"--version", NULL};
  const char *bad[] = {"--quota", "many", NULL};
  const char *run[] = {"--port", "0", "-q", NULL};
  const char *sample[] = {"--print-sample", NULL};

  fprintf(stderr, "command line, SIGINT\n");
  pid = spawn_read(help, line, sizeof line, 1);
  CHECK(strncmp(line, "Usage: chatapp-emulator", 23) == 0);
  CHECK(wait_exit(pid) == 0);
  pid = spawn_read(ver, line, sizeof line, 1);
  CHECK(strncmp(line, "chatapp-emulator ", 17) == 0);
  CHECK(wait_exit(pid) == 0);
  pid = spawn_read(bad, line, sizeof line, 1);
  CHECK(wait_exit(pid) == 2);
  pid = spawn_read(sample, line, sizeof line, 1);
  CHECK(line[0] == '{');
  CHECK(wait_exit(pid) == 0);
  pid = spawn_read(run, line, sizeof line, 0);
  CHECK(strncmp(line, "http://127.0.0.1:", 17) == 0 && atoi(line + 17) > 0);
  kill(pid, SIGINT);
  CHECK(wait_exit(pid) == 0);
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s EMULATOR\n", argv[0]);
    return 2;
  }
  emu_exe = argv[1];
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  test_log();
  test_cli();
  curl_global_cleanup();
  return test_report("test_emu_log");
}
