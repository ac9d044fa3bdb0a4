/*
 * System helpers for the runner: running a command (exec actions), writing
 * a file atomically (metrics, recordings), terminals and clocks.
 *
 *   core.exec{argv = {...}, stdin = s, timeout_ms = n, max_output = n}
 *       -> {status = n | nil, signal = n | nil, timed_out = bool,
 *           output = s, truncated = bool}  |  nil, message
 *   core.write_file_atomic(path, data [, mode]) -> true | nil, message
 *       (data with every known secret redacted: recordings, metrics)
 *   core.read_file(path, max_bytes [, what]) -> text | nil, message
 *   core.interrupted() -> signal number | false (SIGINT / SIGTERM seen)
 *   core.memory_call(bytes, fn, ...) -> true, results... |
 *                                       false, message, "memory" | "error"
 *   core.isatty(fd) -> bool
 *   core.monotonic() -> seconds (float)
 *
 * Commands run with argv directly (posix_spawnp, no shell), stdin from the
 * given string, stdout and stderr captured together up to a cap, and are
 * killed at the timeout.  No Lua call happens while C resources are held.
 * The command's environment is ours without the secret variables
 * (ca_cred_secret_env_name) and without any variable whose value holds a
 * known secret; its output comes back with known secrets redacted.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ca_config.h"
#include "ca_cred.h"
#include "ca_crypto.h"
#include "ca_limiter.h"
#include "lca.h"

extern char **environ;

#define MAX_ARGS 256

typedef struct exec_result {
  int status, sig, timed_out, truncated, spawned;
  char *out; /* max_out bytes, owned by the caller */
  size_t out_len;
  char err[256];
} exec_result;

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/*
 * Run argv; feed input; capture output up to max_out bytes.  Pure C: the
 * caller has copied everything out of Lua first.
 */
static void run_command(char *const *argv, char *const *envp, const char *input,
                        size_t in_len, long timeout_ms, char *out,
                        size_t max_out, exec_result *r)
{
  int in_sv[2] = {-1, -1}, out_pipe[2] = {-1, -1};
  posix_spawn_file_actions_t fa;
  size_t in_off = 0;
  int64_t deadline = ca_now_us() + (int64_t)timeout_ms * 1000;
  pid_t pid = -1;
  int rc, wstatus = 0, done = 0;

  memset(r, 0, sizeof *r);
  r->status = -1;
  r->out = out;
  /* stdin is a socket so a child that exits early gives EPIPE to
   * send(MSG_NOSIGNAL), not SIGPIPE to us. */
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_sv) != 0 ||
      pipe2(out_pipe, O_CLOEXEC) != 0) {
    snprintf(r->err, sizeof r->err, "cannot create pipes: %s", strerror(errno));
    goto out;
  }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_sv[1], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 2);
  rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  close_fd(&in_sv[1]);
  close_fd(&out_pipe[1]);
  if (rc != 0) {
    snprintf(r->err, sizeof r->err, "cannot run %s: %s", argv[0], strerror(rc));
    goto out;
  }
  r->spawned = 1;
  fcntl(in_sv[0], F_SETFL, O_NONBLOCK);
  if (in_len == 0)
    close_fd(&in_sv[0]);

  while (!done) {
    struct pollfd p[2];
    int np = 0, left_ms;
    int64_t now = ca_now_us();

    if (now >= deadline) {
      r->timed_out = 1;
      kill(pid, SIGKILL);
      break;
    }
    left_ms = (int)((deadline - now + 999) / 1000);
    p[np].fd = out_pipe[0];
    p[np++].events = POLLIN;
    if (in_sv[0] >= 0) {
      p[np].fd = in_sv[0];
      p[np++].events = POLLOUT;
    }
    if (poll(p, (nfds_t)np, left_ms > 100 ? 100 : left_ms) < 0 &&
        errno != EINTR)
      break;
    if (np > 1 && p[1].revents) {
      ssize_t w = send(in_sv[0], input + in_off, in_len - in_off,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0)
        in_off += (size_t)w;
      if (w < 0 && errno != EAGAIN && errno != EINTR)
        in_off = in_len; /* the child stopped reading */
      if (in_off >= in_len)
        close_fd(&in_sv[0]);
    }
    if (p[0].revents) {
      char buf[4096];
      ssize_t n = read(out_pipe[0], buf, sizeof buf);
      if (n > 0) {
        size_t take = (size_t)n;
        if (take > max_out - r->out_len) {
          take = max_out - r->out_len;
          r->truncated = 1;
        }
        memcpy(r->out + r->out_len, buf, take);
        r->out_len += take;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        done = 1; /* EOF: the child closed its output */
      }
    }
  }
  /* Reap; a child that closed its output but lingers is waited for until
   * the deadline, then killed. */
  while (waitpid(pid, &wstatus, WNOHANG) == 0) {
    if (ca_now_us() >= deadline) {
      r->timed_out = 1;
      kill(pid, SIGKILL);
      waitpid(pid, &wstatus, 0);
      break;
    }
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  if (WIFEXITED(wstatus))
    r->status = WEXITSTATUS(wstatus);
  else if (WIFSIGNALED(wstatus))
    r->sig = WTERMSIG(wstatus);
out:
  close_fd(&in_sv[0]);
  close_fd(&in_sv[1]);
  close_fd(&out_pipe[0]);
  close_fd(&out_pipe[1]);
}

/*
 * The environment for a command, in a Lua userdata pushed on the stack (the
 * strings stay environ's own): every variable but the secret ones and those
 * whose value holds a known secret (an alias of a secret under another
 * name would otherwise reach the child).
 */
static int holds_no_secret(void *L, const char *value)
{
  return !lca_secret_found(L, value, strlen(value));
}

static char **scrubbed_environ(lua_State *L)
{
  size_t n = 0;
  char **envp;

  while (environ && environ[n])
    n++;
  envp = lua_newuserdatauv(L, (n + 1) * sizeof *envp, 0);
  ca_cred_child_env(environ, envp, holds_no_secret, L);
  return envp;
}

static int l_exec(lua_State *L)
{
  char **envp;
  const char *argv[MAX_ARGS + 1];
  size_t n, i, in_len = 0, max_out;
  const char *input = NULL;
  long timeout_ms;
  exec_result r;

  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "argv"); /* 2: anchors the argument strings */
  luaL_argcheck(L, lua_istable(L, 2), 1, "argv must be a list of strings");
  n = lua_rawlen(L, 2);
  luaL_argcheck(L, n > 0 && n <= MAX_ARGS, 1, "argv must have 1 to 256 items");
  for (i = 0; i < n; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i + 1) != LUA_TSTRING)
      return luaL_error(L, "argv[%d] is a %s, expected a string", (int)i + 1,
                        luaL_typename(L, -1));
    argv[i] = lua_tostring(L, -1); /* anchored in the argv table */
    lua_pop(L, 1);
  }
  argv[n] = NULL;
  if (lua_getfield(L, 1, "stdin") == LUA_TSTRING) /* 3 */
    input = lua_tolstring(L, 3, &in_len);
  lua_getfield(L, 1, "timeout_ms");
  timeout_ms = (long)luaL_optinteger(L, -1, 10000);
  lua_getfield(L, 1, "max_output");
  max_out = (size_t)luaL_optinteger(L, -1, 64 * 1024);
  luaL_argcheck(L, timeout_ms > 0 && max_out <= (16u << 20), 1,
                "timeout_ms must be positive, max_output at most 16 MiB");

  envp = scrubbed_environ(L);
  /* The output buffer is Lua memory: nothing to free if a push raises. */
  run_command((char *const *)(uintptr_t)argv, envp, input, in_len, timeout_ms,
              lua_newuserdatauv(L, max_out + 1, 0), max_out, &r);
  if (!r.spawned) {
    lua_pushnil(L);
    lua_pushstring(L, r.err);
    return 2;
  }
  lua_createtable(L, 0, 5);
  lca_push_redacted(L, r.out, r.out_len);
  lua_setfield(L, -2, "output");
  if (r.sig) {
    lua_pushinteger(L, r.sig);
    lua_setfield(L, -2, "signal");
  } else if (r.status >= 0) {
    lua_pushinteger(L, r.status);
    lua_setfield(L, -2, "status");
  }
  lua_pushboolean(L, r.timed_out);
  lua_setfield(L, -2, "timed_out");
  lua_pushboolean(L, r.truncated);
  lua_setfield(L, -2, "truncated");
  return 1;
}

/* Write data to path so readers see the old or the new file, never a
 * mix: temp file in the same folder, fsync, rename, fsync the folder. */
static int write_atomic(const char *path, const char *data, size_t len,
                        mode_t mode, char *err, size_t errlen)
{
  char tmp[4096], dir[4096];
  unsigned char rnd[6];
  const char *slash = strrchr(path, '/');
  int fd, dfd;
  size_t off = 0;

  ca_random(rnd, sizeof rnd);
  if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d.%02x%02x%02x%02x", path,
                       (int)getpid(), rnd[0], rnd[1], rnd[2],
                       rnd[3]) >= sizeof tmp) {
    snprintf(err, errlen, "path too long");
    return -1;
  }
  if (slash)
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path),
             path);
  else
    snprintf(dir, sizeof dir, ".");
  /* Only a regular file (or a new path) is replaced: renaming over a
   * device or a FIFO would turn it into a plain file. */
  if (ca_config_check_output_file("the file", path, err, errlen))
    return -1;
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create a temporary file beside %s: %s", path,
             strerror(errno));
    return -1;
  }
  while (off < len) {
    ssize_t w = write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
      close(fd);
      unlink(tmp);
      return -1;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    /* never retried: the data may be gone (fsyncgate) */
    snprintf(err, errlen, "cannot flush %s to disk: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "cannot replace %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  /* The rename is durable once the folder is: a failure is reported (the
   * new file is in place, but a crash may still bring the old one back),
   * never retried (fsyncgate). */
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    int e = errno;
    if (dfd >= 0)
      close(dfd);
    snprintf(err, errlen,
             "cannot flush the folder of %.300s to disk after replacing it "
             "(the new file may not survive a crash): %s",
             path, strerror(e));
    return -1;
  }
  close(dfd);
  return 0;
}

static int l_write_atomic(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer mode = luaL_optinteger(L, 3, 0644);
  char err[512];

  luaL_argcheck(L, mode >= 0 && mode <= 0777, 3, "mode must be 0 to 0777");
  lca_push_redacted(L, data, len); /* files (recordings, metrics) too */
  data = lua_tolstring(L, -1, &len);
  if (write_atomic(path, data, len, (mode_t)mode, err, sizeof err)) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * Read a whole input file of at most max bytes into a Lua string.  Opened
 * with O_NONBLOCK so a FIFO or a device never blocks us, then refused
 * unless it is a regular file; the size is checked before reading and the
 * read stops at max + 1 bytes (the file may grow meanwhile).  The buffer
 * is Lua memory (a userdata) and the descriptor is held by one (closed by
 * its __gc), so nothing leaks if an allocation raises.
 */
#define FD_MT "chatapp.fd"

static int fd_gc(lua_State *L)
{
  close_fd(luaL_checkudata(L, 1, FD_MT));
  return 0;
}

static int l_read_file(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  const char *what = luaL_optstring(L, 3, "the file");
  struct stat st;
  char err[600];
  size_t got = 0, cap;
  char *buf;
  int *fdp, fd;

  luaL_argcheck(L, max > 0 && max <= ((lua_Integer)1 << 32), 2,
                "max_bytes must be 1 to 4 GiB");
  cap = (size_t)max;
  fdp = lua_newuserdatauv(L, sizeof *fdp, 0);
  *fdp = -1;
  if (luaL_newmetatable(L, FD_MT)) {
    lua_pushcfunction(L, fd_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  *fdp = fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    snprintf(err, sizeof err, "cannot read %s %s: %s", what, path,
             strerror(errno));
    goto fail;
  }
  if (fstat(fd, &st) != 0) {
    snprintf(err, sizeof err, "cannot read %s %s: %s", what, path,
             strerror(errno));
    close_fd(fdp);
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    snprintf(err, sizeof err, "%s %s is %s, not a regular file", what, path,
             ca_config_file_kind(st.st_mode));
    close_fd(fdp);
    goto fail;
  }
  if (st.st_size > max) {
    snprintf(err, sizeof err,
             "%s %s is %lld bytes, over the cap of %lld bytes (%lld MiB)", what,
             path, (long long)st.st_size, (long long)max,
             (long long)(max >> 20));
    close_fd(fdp);
    goto fail;
  }
  /* Lua memory: freed by the collector if anything below raises. */
  buf = lua_newuserdatauv(L, (size_t)st.st_size + 1, 0);
  cap = (size_t)st.st_size + 1;
  for (;;) {
    ssize_t n = read(fd, buf + got, cap - got);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (n < 0) {
      snprintf(err, sizeof err, "cannot read %s %s: %s", what, path,
               strerror(errno));
      close_fd(fdp);
      goto fail;
    }
    if (n == 0)
      break;
    got += (size_t)n;
    if (got == cap) {
      snprintf(err, sizeof err,
               "%s %s grew while being read (over %lld bytes); give a file "
               "that is not being written",
               what, path, (long long)st.st_size);
      close_fd(fdp);
      goto fail;
    }
  }
  close_fd(fdp);
  lua_pushlstring(L, buf, got);
  return 1;
fail:
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

/* core.interrupted(): the signal that asked the run to stop, or false. */
static int l_interrupted(lua_State *L)
{
  int sig = ca_interrupted();
  if (sig)
    lua_pushinteger(L, sig);
  else
    lua_pushboolean(L, 0);
  return 1;
}

/*
 * Call fn(...) while this state may grow by at most `bytes` (our
 * allocator's ceiling, as for policies): the run's total cap on fetched
 * numbers.  A state with another allocator runs fn unbounded.
 */
static int l_memory_call(lua_State *L)
{
  lua_Integer bytes = luaL_checkinteger(L, 1);
  void *ud = NULL;
  lca_alloc_state *a = lua_getallocf(L, &ud) == lca_alloc ? ud : NULL;
  size_t saved = 0;
  int st, n;

  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (a) {
    size_t want = a->used + (size_t)(bytes > 0 ? bytes : 0);
    saved = a->limit;
    /* never loosen a ceiling already in force */
    a->limit = saved && saved < want ? saved : want;
  }
  st = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
  if (a)
    a->limit = saved;
  if (st == LUA_OK) {
    n = lua_gettop(L) - 1;
    lua_pushboolean(L, 1);
    lua_replace(L, 1);
    return n + 1;
  }
  lua_pushboolean(L, 0);
  lua_insert(L, -2);
  if (st == LUA_ERRMEM) {
    lua_pop(L, 1);
    lua_pushliteral(L, "not enough memory");
    lua_pushliteral(L, "memory");
  } else {
    lua_pushliteral(L, "error");
  }
  return 3;
}

static int l_isatty(lua_State *L)
{
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static int l_monotonic(lua_State *L)
{
  lua_pushnumber(L, (lua_Number)ca_now_us() / 1e6);
  return 1;
}

void lca_open_sys(lua_State *L)
{
  static const luaL_Reg funcs[] = {
    {"exec", l_exec},
    {"write_file_atomic", l_write_atomic},
    {"isatty", l_isatty},
    {"monotonic", l_monotonic},
    {"read_file", l_read_file},
    {"interrupted", l_interrupted},
    {"memory_call", l_memory_call},
    {NULL, NULL},
  };
  luaL_setfuncs(L, funcs, 0);
}
