/*
 * Opening a state file, core.sqlite_open(path [, {readonly =, create =,
 * busy_timeout_ms =}]) (lca_sqlite.c has the rest of the engine): the
 * options, the path checked before SQLite sees it (a FIFO or a device is
 * never opened, a symbolic link is followed only to a regular file, a new
 * file is created 0600), and the settings of every connection (defensive,
 * untrusted schema, no extensions, no ATTACH, capped lengths; the header
 * and the schema read at once, so a file of another program is refused at
 * open).
 */
#include "lca_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *kind_of(mode_t m)
{
  if (S_ISDIR(m))
    return "a directory";
  if (S_ISFIFO(m))
    return "a FIFO";
  if (S_ISCHR(m))
    return "a character device";
  if (S_ISBLK(m))
    return "a block device";
  if (S_ISSOCK(m))
    return "a socket";
  return "not a regular file";
}

/* The directory part of path into dir ("." when none). */
static void dir_of(const char *path, char *dir, size_t size)
{
  const char *slash = strrchr(path, '/');
  size_t n;

  if (!slash) {
    snprintf(dir, size, ".");
    return;
  }
  n = (size_t)(slash - path);
  if (n == 0)
    n = 1; /* "/x" */
  if (n >= size)
    n = size - 1;
  memcpy(dir, path, n);
  dir[n] = '\0';
}

typedef struct open_opts {
  int readonly, create;
  int busy_ms;
} open_opts;

static void read_opts(lua_State *L, int idx, open_opts *o)
{
  o->readonly = 0;
  o->create = -1;
  o->busy_ms = DEFAULT_BUSY_MS;
  if (lua_isnoneornil(L, idx))
    goto out;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "readonly") == 0 || strcmp(k, "create") == 0) {
      if (!lua_isboolean(L, -1))
        luaL_error(L, "sqlite_open: option %s must be a boolean", k);
      if (k[0] == 'r')
        o->readonly = lua_toboolean(L, -1);
      else
        o->create = lua_toboolean(L, -1);
    } else if (strcmp(k, "busy_timeout_ms") == 0) {
      lua_Integer ms;
      if (!lua_isinteger(L, -1) || (ms = lua_tointeger(L, -1)) < 0 ||
          ms > 3600 * 1000)
        luaL_error(L, "sqlite_open: busy_timeout_ms must be an integer from "
                      "0 to 3600000");
      o->busy_ms = (int)lua_tointeger(L, -1);
    } else {
      luaL_error(L,
                 "sqlite_open: unknown option %s (readonly, create, "
                 "busy_timeout_ms)",
                 lua_type(L, -2) == LUA_TSTRING ? k : luaL_typename(L, -2));
    }
    lua_pop(L, 1);
  }
out:
  if (o->create < 0)
    o->create = !o->readonly;
  if (o->readonly)
    o->create = 0;
}

/*
 * Check the path and create the file when asked.  Returns NULL when SQLite
 * may open it, else the code, with the message in msg.  Pure C.
 */
static const char *prepare_path(const char *path, const open_opts *o, char *msg,
                                size_t size, int *created)
{
  struct stat sb;
  char dir[512];
  int tries, fd;

  for (tries = 0; tries < 2; tries++) {
    if (lstat(path, &sb) == 0) {
      if (S_ISLNK(sb.st_mode) && stat(path, &sb) != 0) {
        snprintf(msg, size, "a symbolic link to %s (%s)",
                 errno == ENOENT ? "nothing" : "a file that cannot be read",
                 strerror(errno));
        return errno == ENOENT ? "ENOENT" : "EOPEN";
      }
      if (!S_ISREG(sb.st_mode)) {
        snprintf(msg, size, "is %s, not a state file (give a regular file)",
                 kind_of(sb.st_mode));
        return "ENOTREG";
      }
      return NULL;
    }
    if (errno != ENOENT) {
      snprintf(msg, size, "cannot look at it: %s", strerror(errno));
      return "EOPEN";
    }
    if (!o->create) {
      snprintf(msg, size, "does not exist%s",
               o->readonly ? "" : " (and it was not to be created)");
      return "ENOENT";
    }
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      int e = fchmod(fd, 0600) == 0 ? 0 : errno; /* whatever the umask */
      if (close(fd) != 0 && !e)
        e = errno;
      if (e) {
        snprintf(msg, size, "cannot create it: %s", strerror(e));
        unlink(path);
        return "EOPEN";
      }
      *created = 1;
      return NULL;
    }
    if (errno == EEXIST)
      continue; /* made meanwhile: look again */
    dir_of(path, dir, sizeof dir);
    if (errno == EACCES || errno == EROFS || errno == EPERM) {
      snprintf(msg, size,
               "cannot create it: %s (the directory %s is not "
               "writable?)",
               strerror(errno), dir);
      return "EREADONLY";
    }
    if (errno == ENOENT) {
      snprintf(msg, size,
               "cannot create it: the directory %s does not "
               "exist (make it first)",
               dir);
      return "ENOENT";
    }
    snprintf(msg, size, "cannot create it: %s", strerror(errno));
    return "EOPEN";
  }
  snprintf(msg, size, "it keeps appearing and disappearing");
  return "EOPEN";
}

/* Settings of every connection: see the head of the file. */
static int configure(sqlite3 *db, int busy_ms)
{
  int rc = SQLITE_OK;

  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_ms);
  if (sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL) ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_FTS3_TOKENIZER, 0, NULL) ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, NULL) ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL))
    return SQLITE_ERROR;
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, MAX_VALUE_LEN);
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LEN);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  sqlite3_limit(db, SQLITE_LIMIT_EXPR_DEPTH, 200);
  sqlite3_limit(db, SQLITE_LIMIT_TRIGGER_DEPTH, 20);
  sqlite3_limit(db, SQLITE_LIMIT_WORKER_THREADS, 0);
  /* Damage found on read rather than followed. */
  rc = sqlite3_exec(db, "PRAGMA cell_size_check=ON", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return rc;
  /* Read the header and the schema now: a file of another program or a
   * damaged schema is refused at open, not at first use. */
  return sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL,
                      NULL);
}

int lca_sqlite_open_file(lua_State *L)
{
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  open_opts o;
  lsqlite *u;
  const char *code;
  char msg[900];
  int rc, flags, err = 0, created = 0;

  luaL_argcheck(L, len > 0, 1, "the state file's path is empty");
  luaL_argcheck(L, strlen(path) == len, 1, "the path holds a NUL byte");
  read_opts(L, 2, &o);
  lua_settop(L, 1);

  /* the userdata first, closed: a Lua error from here on leaks nothing */
  u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, SQLITE_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  /* A relative path as ./path: never a URI ("file:") nor ":memory:". */
  if (path[0] != '/')
    lua_pushfstring(L, "./%s", path);
  else
    lua_pushvalue(L, 1);

  code = prepare_path(path, &o, msg, sizeof msg, &created);
  if (code && strcmp(code, "ENOTREG") == 0) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, msg);
    lua_pushstring(L, code);
    return 3;
  }
  if (code)
    return lca_sqlite_push_fail(L, path, msg, code);

  flags = (o.readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) |
          SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  rc = sqlite3_open_v2(lua_tostring(L, -1), &u->db, flags, NULL);
  if (rc == SQLITE_OK)
    rc = configure(u->db, o.busy_ms);
  if (rc != SQLITE_OK) {
    lca_sqlite_take_error(u->db, rc, NULL, msg, sizeof msg, &err);
    if ((rc & 0xff) == SQLITE_CANTOPEN && (err == EACCES || err == EROFS)) {
      char dir[512];
      size_t n = strlen(msg);
      dir_of(path, dir, sizeof dir);
      snprintf(msg + n, sizeof msg - n,
               " (check the permissions of the file and of the directory %s)",
               dir);
    }
    code = lca_sqlite_code_name(rc, err);
    lca_sqlite_shut(u);
    if (created) {
      struct stat sb;
      /* the empty file made above: removed, as it was not there */
      if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0)
        unlink(path);
    }
    return lca_sqlite_push_fail(L, path, msg, code);
  }
  lua_pop(L, 1);
  return 1;
}
