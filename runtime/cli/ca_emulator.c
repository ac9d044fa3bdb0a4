#include "ca_emulator.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_cred.h"

extern char **environ;

struct ca_emulator {
  pid_t pid;
  char dir[64]; /* temporary folder for the port file */
  char portfile[96];
  char endpoint[64];
};

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

/* Path of the emulator binary into out; 1 if it is a path to run as is,
 * 0 if it must be searched on PATH. */
static int find_binary(char *out, size_t size)
{
  const char *env = getenv("CHATAPP_EMULATOR");
  char self[PATH_MAX];
  ssize_t n;

  if (env && *env) {
    snprintf(out, size, "%s", env);
    return 1;
  }
  n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    char *slash;
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash) {
      *slash = '\0';
      if ((size_t)snprintf(out, size, "%s/chatapp-emulator", self) < size &&
          access(out, X_OK) == 0)
        return 1;
    }
  }
  snprintf(out, size, "chatapp-emulator");
  return 0;
}

/* Our environment without the secret variables (ca_cred.h): the emulator
 * has keys of its own and is handed no secret.  The strings stay
 * environ's; free the array.  NULL when out of memory. */
static char **scrubbed_environ(void)
{
  size_t n = 0;
  char **envp;

  while (environ && environ[n])
    n++;
  envp = malloc((n + 1) * sizeof *envp);
  if (envp)
    ca_cred_child_env(environ, envp, NULL, NULL);
  return envp;
}

chatapp_status ca_emulator_start(const char *const *extra, ca_emulator **out,
                                 char *err, size_t errlen)
{
  ca_emulator *e = calloc(1, sizeof *e);
  char bin[PATH_MAX];
  const char *portfile;
  const char *argv[32];
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  sigset_t none; /* the child blocks nothing, whatever the caller blocks */
  char **envp;
  size_t argc = 0;
  int is_path, rc, i, tls = 0;

  *out = NULL;
  if (!e) {
    snprintf(err, errlen, "out of memory");
    return CHATAPP_ENOMEM;
  }
  snprintf(e->dir, sizeof e->dir, "/tmp/chatapp-emulator-XXXXXX");
  if (!mkdtemp(e->dir)) {
    snprintf(err, errlen, "cannot create a temporary folder: %s",
             strerror(errno));
    free(e);
    return CHATAPP_EIO;
  }
  snprintf(e->portfile, sizeof e->portfile, "%s/port", e->dir);
  portfile = e->portfile;
  is_path = find_binary(bin, sizeof bin);
  argv[argc++] = bin;
  argv[argc++] = "--port";
  argv[argc++] = "0";
  argv[argc++] = "--port-file";
  argv[argc++] = portfile;
  /* A chatapp-run killed with SIGKILL leaves no emulator behind. */
  argv[argc++] = "--exit-with-parent";
  for (i = 0; extra && extra[i] && argc < 31; i++) {
    tls |= strcmp(extra[i], "--tls-cert") == 0; /* it serves HTTPS */
    argv[argc++] = extra[i];
  }
  argv[argc] = NULL;

  /* Its own process group: a Ctrl-C at the terminal reaches chatapp-run
   * only, which lets the actions in flight finish against the emulator
   * and then stops it. */
  envp = scrubbed_environ();
  rc = envp ? posix_spawn_file_actions_init(&fa) : ENOMEM;
  if (rc == 0) {
    if ((rc = posix_spawnattr_init(&attr)) != 0)
      posix_spawn_file_actions_destroy(&fa);
  }
  if (rc == 0) {
    if (!(rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                                0)) &&
        !(rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY,
                                                0)) &&
        !(rc = posix_spawnattr_setpgroup(&attr, 0)) &&
        !(rc = sigemptyset(&none) ? errno : 0) &&
        !(rc = posix_spawnattr_setsigmask(&attr, &none)) &&
        !(rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                                 POSIX_SPAWN_SETSIGMASK)))
      rc = (is_path ? posix_spawn : posix_spawnp)(
        &e->pid, bin, &fa, &attr, (char *const *)(uintptr_t)argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
  free(envp);
  if (rc != 0) {
    snprintf(err, errlen,
             "cannot start %s: %s (build it, or set CHATAPP_EMULATOR)", bin,
             strerror(rc));
    e->pid = 0;
    ca_emulator_stop(e);
    return CHATAPP_EIO;
  }
  /* Wait for the port file: written (atomically) once it listens. */
  for (i = 0; i < 1000; i++) {
    FILE *f = fopen(portfile, "r");
    int port = 0, status;
    if (f) {
      if (fscanf(f, "%d", &port) != 1)
        port = 0;
      fclose(f);
    }
    if (port > 0 && port < 65536) {
      snprintf(e->endpoint, sizeof e->endpoint, "%s://127.0.0.1:%d",
               tls ? "https" : "http", port);
      *out = e;
      return CHATAPP_OK;
    }
    if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
      snprintf(err, errlen,
               "%s exited before listening (status %d; its reason is above)",
               bin, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
      e->pid = 0;
      ca_emulator_stop(e);
      return CHATAPP_EIO;
    }
    sleep_ms(10);
  }
  snprintf(err, errlen, "%s did not start listening within 10 s", bin);
  ca_emulator_stop(e);
  return CHATAPP_ETIMEDOUT;
}

const char *ca_emulator_endpoint(const ca_emulator *e)
{
  return e->endpoint;
}

int ca_emulator_export_sink(const ca_emulator *e)
{
  char url[96];

  snprintf(url, sizeof url, "%s/_emulator/sink",
           e ? e->endpoint : "http://127.0.0.1:0");
  return setenv(CA_EMULATOR_SINK_ENV, url, 1);
}

/* Remove the temporary folder and whatever the emulator left in it (the
 * port file, a temporary file of its atomic write). */
static void remove_dir(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *ent;
  char path[256];

  if (d) {
    while ((ent = readdir(d)) != NULL) {
      if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
        continue;
      if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, ent->d_name) <
          sizeof path)
        unlink(path);
    }
    closedir(d);
  }
  rmdir(dir);
}

void ca_emulator_abandon(const ca_emulator *e)
{
  if (!e)
    return;
  if (e->pid > 0) {
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
  }
  unlink(e->portfile);
  rmdir(e->dir);
}

void ca_emulator_stop(ca_emulator *e)
{
  int i, status;

  if (!e)
    return;
  if (e->pid > 0) {
    kill(e->pid, SIGTERM);
    for (i = 0; i < 300 && waitpid(e->pid, &status, WNOHANG) == 0; i++)
      sleep_ms(10);
    if (i == 300) {
      kill(e->pid, SIGKILL);
      waitpid(e->pid, &status, 0);
    }
  }
  remove_dir(e->dir);
  free(e);
}
