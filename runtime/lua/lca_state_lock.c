/*
 * The lock of a state file and account: see lca_state_lock.h.
 *
 * flock, not fcntl: SQLite takes POSIX (fcntl) locks on the state file
 * itself, and closing any descriptor of a file drops every fcntl lock the
 * process holds on it; a separate file locked with flock is untouched by
 * what SQLite does (flock and fcntl locks do not interact on Linux).
 */
#include "lca_state_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca_crypto.h"

struct lca_state_lock {
  struct lca_state_lock *next;
  dev_t dev;
  ino_t ino;
  int fd;
  int refs;
  char path[4200];
};

/* The locks this process holds (a few at most). */
static lca_state_lock *held_locks;
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;

static lca_state_lock *find_held(dev_t dev, ino_t ino)
{
  lca_state_lock *l;
  for (l = held_locks; l; l = l->next)
    if (l->dev == dev && l->ino == ino)
      return l;
  return NULL;
}

int lca_state_lock_take(const char *state, const char *account, const char *who,
                        lca_state_lock **out, char *err, size_t errlen)
{
  char hash[65], path[4200], info[512], holder[256], host[256];
  lca_state_lock *lk;
  struct stat st;
  ssize_t n;
  int fd, len, rc = LCA_STATE_LOCK_ERROR;

  *out = NULL;
  if (errlen)
    *err = '\0';
  if (ca_sha256_hex(account, strlen(account), hash) != CHATAPP_OK) {
    snprintf(err, errlen, "cannot name the lock of %s (out of memory)", state);
    return LCA_STATE_LOCK_ERROR;
  }
  len = snprintf(path, sizeof path, "%s.lock-%.12s", state, hash);
  if (len < 0 || (size_t)len >= sizeof path) {
    snprintf(err, errlen, "the state path is too long for its lock file");
    return LCA_STATE_LOCK_ERROR;
  }
  /* A lock this process holds under the same name (a watcher's cycle):
   * shared without touching the file. */
  if (pthread_mutex_lock(&held_mu) != 0) {
    snprintf(err, errlen, "cannot lock %s: the process's lock list", path);
    return LCA_STATE_LOCK_ERROR;
  }
  for (lk = held_locks; lk && strcmp(lk->path, path) != 0; lk = lk->next)
    ;
  if (lk)
    lk->refs++;
  (void)pthread_mutex_unlock(&held_mu);
  if (lk) {
    *out = lk;
    return 0;
  }
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    snprintf(err, errlen,
             "cannot open the lock %s of the state file: %s (check the "
             "folder's permissions)",
             path, strerror(errno));
    return LCA_STATE_LOCK_ERROR;
  }
  if (fstat(fd, &st) != 0) {
    snprintf(err, errlen, "cannot stat the lock %s: %s", path, strerror(errno));
    close(fd);
    return LCA_STATE_LOCK_ERROR;
  }
  if (pthread_mutex_lock(&held_mu) != 0) {
    snprintf(err, errlen, "cannot lock %s: the process's lock list", path);
    close(fd);
    return LCA_STATE_LOCK_ERROR;
  }
  lk = find_held(st.st_dev, st.st_ino);
  if (lk) { /* this process holds it (a watcher's cycle): share it */
    lk->refs++;
    close(fd);
    *out = lk;
    rc = 0;
    goto done;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    n = pread(fd, holder, sizeof holder - 1, 0);
    holder[n > 0 ? n : 0] = '\0';
    holder[strcspn(holder, "\n")] = '\0';
    close(fd);
    if (e == EWOULDBLOCK) {
      snprintf(err, errlen,
               "already running: another chatapp-run uses %s for account %s "
               "(%s; lock %s): wait for it to finish or stop it, or give "
               "another --state",
               state, account, *holder ? holder : "pid unknown", path);
      rc = LCA_STATE_LOCK_HELD;
    } else {
      snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
    }
    goto done;
  }
  lk = calloc(1, sizeof *lk);
  if (!lk) {
    snprintf(err, errlen, "cannot lock %s: out of memory", path);
    close(fd); /* drops the flock */
    goto done;
  }
  if (gethostname(host, sizeof host) != 0)
    snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  len = snprintf(info, sizeof info,
                 "pid %ld on host %s, %s, since %ld (Unix time)\n",
                 (long)getpid(), host, who, (long)time(NULL));
  /* Who holds it is for the message of the next one: the lock holds
   * without it, so a failed write is a warning in err (a full disk). */
  if (len > 0 && (size_t)len < sizeof info &&
      (ftruncate(fd, 0) != 0 || pwrite(fd, info, (size_t)len, 0) != len)) {
    snprintf(err, errlen,
             "cannot write the holder into %s: %s (the lock holds anyway)",
             path, strerror(errno));
    if (ftruncate(fd, 0) != 0)
      len = 0; /* a partial line is cut; if not even that, it stays */
  }
  lk->dev = st.st_dev;
  lk->ino = st.st_ino;
  lk->fd = fd;
  lk->refs = 1;
  memcpy(lk->path, path, (size_t)strlen(path) + 1);
  lk->next = held_locks;
  held_locks = lk;
  *out = lk;
  rc = 0;
done:
  (void)pthread_mutex_unlock(&held_mu);
  return rc;
}

const char *lca_state_lock_path(const lca_state_lock *lk)
{
  return lk->path;
}

void lca_state_lock_release(lca_state_lock *lk)
{
  lca_state_lock **p;

  if (!lk || pthread_mutex_lock(&held_mu) != 0)
    return;
  if (--lk->refs == 0) {
    for (p = &held_locks; *p; p = &(*p)->next)
      if (*p == lk) {
        *p = lk->next;
        break;
      }
    close(lk->fd); /* the flock goes with the last descriptor */
    free(lk);
  }
  (void)pthread_mutex_unlock(&held_mu);
}

/* ---- Lua ------------------------------------------------------------------
 */

#define LOCK_MT "chatapp.StateLock"

static int lock_release(lua_State *L)
{
  lca_state_lock **u = luaL_checkudata(L, 1, LOCK_MT);
  lca_state_lock_release(*u);
  *u = NULL;
  return 0;
}

static int lock_path(lua_State *L)
{
  lca_state_lock **u = luaL_checkudata(L, 1, LOCK_MT);
  if (!*u)
    return luaL_error(L, "the state lock is released");
  lua_pushstring(L, (*u)->path);
  return 1;
}

int lca_state_lock_lua(lua_State *L)
{
  const char *state = luaL_checkstring(L, 1);
  const char *account = luaL_checkstring(L, 2);
  const char *who = luaL_optstring(L, 3, "a run");
  lca_state_lock **u;
  char err[1024];
  int rc;

  u = lua_newuserdatauv(L, sizeof *u, 0);
  *u = NULL;
  luaL_setmetatable(L, LOCK_MT);
  rc = lca_state_lock_take(state, account, who, u, err, sizeof err);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_pushstring(L, rc == LCA_STATE_LOCK_HELD ? "ELOCKED" : "EIO");
    return 3;
  }
  if (*err) { /* held, with a warning: the holder's line is not written */
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 4;
  }
  return 1;
}

void lca_state_lock_open(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"release", lock_release},
    {"path", lock_path},
    {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
    {"__gc", lock_release},
    {"__close", lock_release},
    {"__index", NULL},
    {NULL, NULL},
  };

  luaL_newmetatable(L, LOCK_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}
