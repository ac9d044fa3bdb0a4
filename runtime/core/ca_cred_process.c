/*
 * ca_cred_process: the external command of a role provider
 * (ca_cred_provider.h; docs/credentials.md): process_command split into
 * words without a shell (ca_cred_split_argv), run with stdin on /dev/null
 * and without the secret variables, its JSON on stdout read within
 * PROCESS_TIMEOUT and CRED_ANSWER_MAX, then parsed by ca_cred_parse_answer.
 * The answer holds secrets: its buffer is wiped before free.
 */
#include "ca_cred_prov_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_cred.h"
#include "ca_crypto.h"

#define PROCESS_TIMEOUT 60 /* s */

extern char **environ;

/* ---- the external command ----------------------------------------------- */

void ca_cred_argv_free(char **argv)
{
  size_t i;

  for (i = 0; argv && argv[i]; i++)
    free(argv[i]);
  free(argv);
}

char **ca_cred_split_argv(const char *cmd)
{
  size_t cap = 8, n = 0, len = strlen(cmd);
  char **argv = calloc(cap, sizeof *argv);
  char *word = malloc(len + 1);
  size_t w = 0;
  int in_word = 0;
  const char *s = cmd;

  if (!argv || !word)
    goto fail;
  for (;;) {
    char c = *s;
    if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
      if (in_word) {
        if (n + 2 > cap) {
          char **na = realloc(argv, cap * 2 * sizeof *argv);
          if (!na)
            goto fail;
          argv = na;
          cap *= 2;
        }
        /* word is not NUL-terminated: copy w bytes, not a string. */
        argv[n] = malloc(w + 1);
        if (!argv[n])
          goto fail;
        memcpy(argv[n], word, w);
        argv[n][w] = '\0';
        argv[++n] = NULL;
        w = 0;
        in_word = 0;
      }
      if (c == '\0')
        break;
      s++;
      continue;
    }
    in_word = 1;
    if (c == '\'') {
      const char *e = strchr(s + 1, '\'');
      if (!e)
        goto fail;
      memcpy(word + w, s + 1, (size_t)(e - s - 1));
      w += (size_t)(e - s - 1);
      s = e + 1;
    } else if (c == '"') {
      s++;
      while (*s && *s != '"') {
        if (*s == '\\' &&
            (s[1] == '"' || s[1] == '\\' || s[1] == '$' || s[1] == '`'))
          s++;
        word[w++] = *s++;
      }
      if (*s != '"')
        goto fail;
      s++;
    } else if (c == '\\') {
      if (!s[1])
        goto fail;
      word[w++] = s[1];
      s += 2;
    } else {
      word[w++] = c;
      s++;
    }
  }
  free(word);
  if (n == 0) {
    free(argv);
    return NULL;
  }
  return argv;
fail:
  free(word);
  ca_cred_argv_free(argv);
  return NULL;
}

chatapp_status cred_fetch_process(ca_cred_provider *p, cred_fetched *out,
                                  char *err, size_t errlen)
{
  char **argv = ca_cred_split_argv(p->role->process);
  ca_buf ans = CA_BUF_INIT(CRED_ANSWER_MAX);
  char **env = NULL, e2[256];
  size_t ne = 0;
  int fds[2] = {-1, -1}, status = 0, over = 0;
  pid_t pid;
  struct timespec t0, t;
  chatapp_status st = CHATAPP_ECREDENTIALS;

  if (!argv) {
    snprintf(err, errlen,
             "process_command is empty or has unbalanced quotes (it is split "
             "into words without a shell)");
    return CHATAPP_ECONFIG;
  }
  while (environ && environ[ne])
    ne++;
  env = calloc(ne + 1, sizeof *env);
  if (!env || pipe(fds) != 0) {
    snprintf(err, errlen, "the external command: %s", strerror(errno));
    goto out;
  }
  /* The child does not get the secret variables (ca_cred_child_env). */
  ca_cred_child_env(environ, env, NULL, NULL);
  pid = fork();
  if (pid < 0) {
    snprintf(err, errlen, "the external command: fork: %s", strerror(errno));
    goto out;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0)
      dup2(devnull, 0);
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execvpe(argv[0], argv, env);
    _exit(127);
  }
  close(fds[1]);
  fds[1] = -1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    struct pollfd pf = {fds[0], POLLIN, 0};
    char buf[4096];
    long left;
    ssize_t n;
    clock_gettime(CLOCK_MONOTONIC, &t);
    left = (PROCESS_TIMEOUT - (t.tv_sec - t0.tv_sec)) * 1000;
    if (left <= 0) {
      over = 1;
      break;
    }
    if (poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
      break;
    if (!(pf.revents & (POLLIN | POLLHUP)))
      continue;
    n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (ca_buf_add(&ans, buf, (size_t)n) != CHATAPP_OK) {
      over = 2;
      ca_wipe(buf, sizeof buf);
      break;
    }
    ca_wipe(buf, (size_t)n);
  }
  if (over)
    kill(pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (over) {
    snprintf(err, errlen,
             over == 1 ? "the external command %s ran over %d s"
                       : "the external command %s wrote too much (%d)",
             argv[0], over == 1 ? PROCESS_TIMEOUT : CRED_ANSWER_MAX);
    goto out;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    snprintf(err, errlen, "the external command %.200s failed (%s %d)", argv[0],
             WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    goto out;
  }
  st = ca_cred_parse_answer(CA_CRED_PROCESS, ans.ptr ? ans.ptr : "", ans.len,
                            &out->id, &out->secret, &out->token, &out->exp, e2,
                            sizeof e2);
  if (st) {
    snprintf(err, errlen, "the external command %.200s: %s", argv[0], e2);
    if (st != CHATAPP_ENOMEM)
      st = CHATAPP_ECREDENTIALS;
  }
out:
  if (fds[0] >= 0)
    close(fds[0]);
  if (fds[1] >= 0)
    close(fds[1]);
  cred_wipe_buf(&ans);
  ca_buf_free(&ans);
  free(env);
  ca_cred_argv_free(argv);
  return st;
}
