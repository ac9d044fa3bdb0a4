/*
 * The state store's engine: a small binding of SQLite 3 for the runner's
 * own Lua code (lua/chatapp/state.lua).  Policies never see it: they never
 * get chatapp.core.  docs/internals/state-engine.md describes it.
 *
 *   core.sqlite_open(path [, {readonly =, create =, busy_timeout_ms =}])
 *       -> db | nil, message, code
 *   db:exec(sql)          -> true | nil, message, code   (statements, no
 *                                                          parameters)
 *   db:query(sql, ...)    -> rows | nil, message, code   (one statement)
 *   db:run(sql, ...)      -> changes, last_insert_rowid | nil, message, code
 *   db:autocommit()       -> true outside a transaction
 *   db:path()             -> the path given
 *   db:close()            -> true | nil, message  (also __close and __gc)
 *   core.sqlite_version() -> "3.40.1" (the library in use)
 *
 * Codes: ENOTREG ENOENT EOPEN ENOTADB ECORRUPT EREADONLY EBUSY EFULL EIO
 * ENOMEM ESQL.  Misuse (a closed db, a parameter of another type, two
 * statements given to query) raises.
 *
 * Safety: the path is checked before SQLite sees it (a FIFO or a device is
 * never opened), a new file is created 0600, extensions are never loaded,
 * the connection is defensive (SQLITE_DBCONFIG_DEFENSIVE, untrusted
 * schema, no ATTACH, capped lengths): all of it at opening, in
 * lca_sqlite_open.c.  No Lua error ever crosses a statement being stepped:
 * rows are built under lua_pcall and the statement is reset before any
 * error is raised again; every other Lua call happens with no statement
 * active.  Prepared statements are cached per connection (C memory, owned
 * by the userdata) and finalized on close.
 */
#include "lca_sqlite.h"
#include "lca_state_lock.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- errors ----------------------------------------------------------- */

const char *lca_sqlite_code_name(int rc, int sys_errno)
{
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
    return "ENOTADB";
  case SQLITE_CORRUPT:
    return "ECORRUPT";
  case SQLITE_READONLY:
  case SQLITE_PERM:
    return "EREADONLY";
  case SQLITE_CANTOPEN:
    return sys_errno == EACCES || sys_errno == EROFS ? "EREADONLY" : "EOPEN";
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return "EBUSY";
  case SQLITE_FULL:
    return "EFULL";
  case SQLITE_IOERR:
    return "EIO";
  case SQLITE_NOMEM:
    return "ENOMEM";
  default:
    return "ESQL";
  }
}

/* The SQL's first word (SELECT, INSERT, ...), upper-cased, into w; never a
 * value.  Leading blanks and comments are skipped. */
static void first_word(const char *sql, size_t len, char *w, size_t wsize)
{
  size_t i = 0, n = 0;

  for (;;) {
    while (i < len && sql[i] && strchr(" \t\r\n\f\v", sql[i]))
      i++;
    if (i + 1 < len && sql[i] == '-' && sql[i + 1] == '-') {
      while (i < len && sql[i] != '\n')
        i++;
    } else if (i + 1 < len && sql[i] == '/' && sql[i + 1] == '*') {
      i += 2;
      while (i + 1 < len && !(sql[i] == '*' && sql[i + 1] == '/'))
        i++;
      i += 2;
    } else {
      break;
    }
  }
  while (
    i < len && n + 1 < wsize &&
    ((sql[i] >= 'a' && sql[i] <= 'z') || (sql[i] >= 'A' && sql[i] <= 'Z'))) {
    char c = sql[i++];
    w[n++] = (char)(c >= 'a' ? c - 'a' + 'A' : c);
  }
  w[n] = '\0';
  if (n == 0)
    snprintf(w, wsize, "SQL");
}

/* What to do about an error, after SQLite's own words. */
static const char *hint(int rc, int sys_errno)
{
  switch (rc & 0xff) {
  case SQLITE_NOTADB:
    return " (a file of another program?)";
  case SQLITE_CORRUPT:
    return " (the state file is damaged: move it aside, and restore a backup "
           "or let a new one be made)";
  case SQLITE_READONLY:
    return " (opened read-only, or the file or its directory is not "
           "writable?)";
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return " (another process holds the state file: another chatapp-run, or "
           "a sqlite3 shell in a transaction?)";
  case SQLITE_FULL:
    return " (free some disk space)";
  case SQLITE_CANTOPEN:
    /* The file is open: its rollback journal could not be made.  SQLite
     * tries a failed create again read-only, so the errno left is
     * ENOENT, whatever the first failure was (ENOSPC, EIO, EACCES). */
    if (sys_errno == ENOENT)
      return "cannot create its journal beside it (is the disk full, or "
             "does the folder take no new files?)";
    return sys_errno ? strerror(sys_errno) : NULL;
  case SQLITE_IOERR:
    return sys_errno ? strerror(sys_errno) : NULL;
  default:
    return NULL;
  }
}

void lca_sqlite_take_error(sqlite3 *db, int rc, const char *word, char *msg,
                           size_t size, int *sys_errno)
{
  /* the connection's message when it is about this error (not one of
   * ours, such as a failed malloc) */
  const char *m = db && sqlite3_extended_errcode(db) == rc ? sqlite3_errmsg(db)
                                                           : sqlite3_errstr(rc);
  const char *h;
  int e = db ? sqlite3_system_errno(db) : 0;

  *sys_errno = e;
  if ((rc & 0xff) == SQLITE_NOTADB) {
    snprintf(msg, size,
             "is not a SQLite database (a file of another program, or a "
             "state file with a damaged header: give another --state, or "
             "move it aside and let a new one be made)");
    return;
  }
  h = hint(rc, e);
  if ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_CANTOPEN) {
    snprintf(msg, size, "%s%s%s%s%s", word ? word : "", word ? ": " : "", m,
             h ? ": " : "", h ? h : "");
    return;
  }
  snprintf(msg, size, "%s%s%s%s", word ? word : "", word ? ": " : "", m,
           h ? h : "");
}

int lca_sqlite_push_fail(lua_State *L, const char *path, const char *msg,
                         const char *code)
{
  luaL_pushfail(L);
  lua_pushfstring(L, "state file %s: %s", path, msg);
  lua_pushstring(L, code);
  return 3;
}

/* ---- the userdata ----------------------------------------------------- */

static void cache_clear(lsqlite *u)
{
  int i;

  for (i = 0; i < CACHE_MAX; i++) {
    sqlite3_finalize(u->cache[i].st);
    free(u->cache[i].sql);
    u->cache[i].st = NULL;
    u->cache[i].sql = NULL;
    u->cache[i].len = 0;
  }
}

int lca_sqlite_shut(lsqlite *u)
{
  int rc;

  if (!u->db)
    return SQLITE_OK;
  cache_clear(u);
  rc = sqlite3_close(u->db);
  if (rc != SQLITE_OK)
    sqlite3_close_v2(u->db); /* a statement we do not know of: let it go */
  u->db = NULL;
  return rc;
}

/* The path the connection was opened with (its uservalue). */
static const char *db_path(lua_State *L, int idx)
{
  const char *p;

  lua_getiuservalue(L, idx, 1);
  p = lua_tostring(L, -1);
  lua_pop(L, 1); /* the uservalue keeps it alive */
  return p ? p : "?";
}

static lsqlite *check_db(lua_State *L)
{
  lsqlite *u = luaL_checkudata(L, 1, SQLITE_MT);

  if (!u->db)
    luaL_error(L, "the state file is closed");
  if (u->active)
    luaL_error(L, "the state file is in use (a statement is running)");
  return u;
}

/* db:close() -> true | nil, message; also __close and __gc. */
static int db_close(lua_State *L)
{
  lsqlite *u = luaL_checkudata(L, 1, SQLITE_MT);
  int rc;

  if (u->active)
    return luaL_error(L, "the state file is in use (a statement is running)");
  rc = lca_sqlite_shut(u);
  if (rc != SQLITE_OK) {
    luaL_pushfail(L);
    lua_pushfstring(L, "state file %s: closing: %s", db_path(L, 1),
                    sqlite3_errstr(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int db_gc(lua_State *L)
{
  lsqlite *u = luaL_checkudata(L, 1, SQLITE_MT);

  lca_sqlite_shut(u);
  return 0;
}

static int db_tostring(lua_State *L)
{
  lsqlite *u = luaL_checkudata(L, 1, SQLITE_MT);

  lua_pushfstring(L, "state file %s%s", db_path(L, 1),
                  u->db ? "" : " (closed)");
  return 1;
}

static int db_getpath(lua_State *L)
{
  luaL_checkudata(L, 1, SQLITE_MT);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int db_autocommit(lua_State *L)
{
  lsqlite *u = check_db(L);

  lua_pushboolean(L, sqlite3_get_autocommit(u->db));
  return 1;
}

/* ---- statements ------------------------------------------------------- */

/* Whether the text after a statement holds no other statement (blanks,
 * semicolons and comments only). */
static int nothing_more(sqlite3 *db, const char *tail, size_t n)
{
  sqlite3_stmt *st = NULL;
  int rc;

  if (n == 0)
    return 1;
  rc = sqlite3_prepare_v2(db, tail, (int)n, &st, NULL);
  sqlite3_finalize(st);
  return rc == SQLITE_OK && !st;
}

/*
 * The cached statement for sql, prepared on a miss.  Returns SQLITE_OK and
 * *out; or a SQLite error (the connection holds the message); or -1 when
 * the text holds no statement or more than one.  Pure C.
 */
static int get_stmt(lsqlite *u, const char *sql, size_t len, sqlite3_stmt **out)
{
  cached *c = &u->cache[u->last];
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  int i, victim = 0, rc;
  char *copy;

  *out = NULL;
  if (!(c->st && c->len == len && memcmp(c->sql, sql, len) == 0)) {
    c = NULL;
    for (i = 0; i < CACHE_MAX; i++) {
      cached *e = &u->cache[i];
      if (e->st && e->len == len && memcmp(e->sql, sql, len) == 0) {
        c = e;
        u->last = i;
        break;
      }
    }
  }
  if (c) {
    c->used = ++u->tick;
    *out = c->st;
    return SQLITE_OK;
  }
  rc = sqlite3_prepare_v3(u->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &st,
                          &tail);
  if (rc != SQLITE_OK)
    return rc;
  if (!st || (tail && !nothing_more(u->db, tail, len - (size_t)(tail - sql)))) {
    sqlite3_finalize(st);
    return -1;
  }
  copy = malloc(len + 1);
  if (!copy) {
    sqlite3_finalize(st);
    return SQLITE_NOMEM;
  }
  memcpy(copy, sql, len);
  copy[len] = '\0';
  for (i = 0; i < CACHE_MAX; i++) {
    if (!u->cache[i].st) {
      victim = i;
      break;
    }
    if (u->cache[i].used < u->cache[victim].used)
      victim = i;
  }
  c = &u->cache[victim];
  sqlite3_finalize(c->st);
  free(c->sql);
  c->st = st;
  c->sql = copy;
  c->len = len;
  c->used = ++u->tick;
  u->last = victim;
  *out = st;
  return SQLITE_OK;
}

/* Raise unless every parameter (from index first on) can be bound. */
static void check_params(lua_State *L, int first)
{
  int i, top = lua_gettop(L);

  for (i = first; i <= top; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TNIL && t != LUA_TNUMBER && t != LUA_TSTRING &&
        t != LUA_TBOOLEAN)
      luaL_error(L,
                 "SQL parameter %d is a %s (give a string, number, boolean "
                 "or nil)",
                 i - first + 1, luaL_typename(L, i));
  }
}

/* Bind the parameters at first..top; the strings stay on the stack until
 * the statement is reset, so SQLite need not copy them.  No Lua error. */
static int bind_params(lua_State *L, sqlite3_stmt *st, int first)
{
  int i, rc = SQLITE_OK, top = lua_gettop(L);

  for (i = first; i <= top && rc == SQLITE_OK; i++) {
    int k = i - first + 1;
    size_t len;
    const char *s;

    switch (lua_type(L, i)) {
    case LUA_TNUMBER:
      if (lua_isinteger(L, i))
        rc = sqlite3_bind_int64(st, k, (sqlite3_int64)lua_tointeger(L, i));
      else
        rc = sqlite3_bind_double(st, k, (double)lua_tonumber(L, i));
      break;
    case LUA_TSTRING:
      s = lua_tolstring(L, i, &len);
      rc = sqlite3_bind_text64(st, k, s, (sqlite3_uint64)len, SQLITE_STATIC,
                               SQLITE_UTF8);
      break;
    case LUA_TBOOLEAN:
      rc = sqlite3_bind_int(st, k, lua_toboolean(L, i));
      break;
    default:
      rc = sqlite3_bind_null(st, k);
      break;
    }
  }
  return rc;
}

/* Leave the statement ready for its next use (no bound string kept). */
static void done_stmt(sqlite3_stmt *st)
{
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
}

/*
 * Look up (or prepare) the statement for the SQL at index 2 and bind the
 * parameters from index 3.  Returns the statement ready to step, or NULL
 * with nil, message, code pushed (*nret = 3).  Raises (misuse) only while
 * no statement is active.
 */
static sqlite3_stmt *prepare_bound(lua_State *L, lsqlite *u, const char *what,
                                   char *word, size_t wsize, int *nret)
{
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  sqlite3_stmt *st = NULL;
  char msg[600];
  int rc, err, nparams;

  check_params(L, 3);
  first_word(sql, len, word, wsize);
  if (len > MAX_SQL_LEN)
    luaL_error(L, "db:%s: the %s statement is more than %d bytes", what, word,
               MAX_SQL_LEN);
  rc = get_stmt(u, sql, len, &st);
  if (rc == -1)
    luaL_error(L,
               "db:%s takes one SQL statement (%s; use db:exec for several, "
               "without parameters)",
               what, word);
  if (rc != SQLITE_OK) {
    lca_sqlite_take_error(u->db, rc, word, msg, sizeof msg, &err);
    *nret = lca_sqlite_push_fail(L, db_path(L, 1), msg,
                                 lca_sqlite_code_name(rc, err));
    return NULL;
  }
  nparams = sqlite3_bind_parameter_count(st);
  if (lua_gettop(L) - 2 > nparams)
    luaL_error(L, "%d SQL parameters given, the %s statement takes %d",
               lua_gettop(L) - 2, word, nparams);
  rc = bind_params(L, st, 3);
  if (rc != SQLITE_OK) {
    lca_sqlite_take_error(u->db, rc, word, msg, sizeof msg, &err);
    done_stmt(st);
    *nret = lca_sqlite_push_fail(L, db_path(L, 1), msg,
                                 lca_sqlite_code_name(rc, err));
    return NULL;
  }
  return st;
}

/* db:run(sql, ...) -> changes, last_insert_rowid | nil, message, code */
static int db_run(lua_State *L)
{
  lsqlite *u = check_db(L);
  char word[24], msg[600];
  sqlite3_stmt *st;
  int rc, err, nret = 0;

  st = prepare_bound(L, u, "run", word, sizeof word, &nret);
  if (!st)
    return nret;
  u->active = 1;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW)
    ;
  u->active = 0;
  if (rc != SQLITE_DONE) {
    lca_sqlite_take_error(u->db, rc, word, msg, sizeof msg, &err);
    done_stmt(st);
    return lca_sqlite_push_fail(L, db_path(L, 1), msg,
                                lca_sqlite_code_name(rc, err));
  }
  done_stmt(st);
  lua_pushinteger(L, (lua_Integer)sqlite3_changes64(u->db));
  lua_pushinteger(L, (lua_Integer)sqlite3_last_insert_rowid(u->db));
  return 2;
}

typedef struct step_ctx {
  sqlite3_stmt *st;
  int rc;
} step_ctx;

/* Push one column's value; nothing for NULL.  Returns 1 when pushed. */
static int push_column(lua_State *L, sqlite3_stmt *st, int i)
{
  const void *p;
  int n;

  switch (sqlite3_column_type(st, i)) {
  case SQLITE_INTEGER:
    lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(st, i));
    return 1;
  case SQLITE_FLOAT:
    lua_pushnumber(L, (lua_Number)sqlite3_column_double(st, i));
    return 1;
  case SQLITE_TEXT:
    p = sqlite3_column_text(st, i);
    n = sqlite3_column_bytes(st, i);
    break;
  case SQLITE_BLOB:
    p = sqlite3_column_blob(st, i);
    n = sqlite3_column_bytes(st, i);
    break;
  default:
    return 0;
  }
  if (!p && n > 0)
    luaL_error(L, "not enough memory for a column of %d bytes", n);
  lua_pushlstring(L, p ? (const char *)p : "", (size_t)(n > 0 ? n : 0));
  return 1;
}

/*
 * Protected: step the statement (light userdata step_ctx at 1) to the end,
 * pushing the rows.  A Lua error here (out of memory) leaves the statement
 * mid-step; the caller resets it before raising the error again.
 */
static int build_rows(lua_State *L)
{
  step_ctx *c = lua_touserdata(L, 1);
  int ncol = -1, i, rows;
  lua_Integer n = 0;

  lua_newtable(L);
  rows = lua_gettop(L);
  while ((c->rc = sqlite3_step(c->st)) == SQLITE_ROW) {
    if (ncol < 0) {
      /* names after the first step: a re-prepare may change them */
      ncol = sqlite3_column_count(c->st);
      luaL_checkstack(L, ncol + 4, "too many columns");
      for (i = 0; i < ncol; i++) {
        const char *name = sqlite3_column_name(c->st, i);
        if (!name)
          return luaL_error(L, "not enough memory for column names");
        lua_pushstring(L, name);
      }
    }
    lua_createtable(L, 0, ncol);
    for (i = 0; i < ncol; i++) {
      lua_pushvalue(L, rows + 1 + i);
      if (push_column(L, c->st, i))
        lua_rawset(L, -3);
      else
        lua_pop(L, 1);
    }
    lua_rawseti(L, rows, ++n);
  }
  lua_settop(L, rows);
  return 1;
}

/* db:query(sql, ...) -> rows | nil, message, code */
static int db_query(lua_State *L)
{
  lsqlite *u = check_db(L);
  char word[24], msg[600];
  step_ctx ctx;
  int st, err, nret = 0;

  /* room for the call below, before any parameter is bound */
  luaL_checkstack(L, 4, "too many SQL parameters");
  ctx.st = prepare_bound(L, u, "query", word, sizeof word, &nret);
  if (!ctx.st)
    return nret;
  ctx.rc = SQLITE_OK;
  lua_pushcfunction(L, build_rows);
  lua_pushlightuserdata(L, &ctx);
  u->active = 1;
  st = lua_pcall(L, 1, 1, 0);
  u->active = 0;
  if (st != LUA_OK) {
    done_stmt(ctx.st); /* never left mid-step */
    return lua_error(L);
  }
  if (ctx.rc != SQLITE_DONE) {
    lca_sqlite_take_error(u->db, ctx.rc, word, msg, sizeof msg, &err);
    done_stmt(ctx.st);
    return lca_sqlite_push_fail(L, db_path(L, 1), msg,
                                lca_sqlite_code_name(ctx.rc, err));
  }
  done_stmt(ctx.st);
  return 1;
}

/* db:exec(sql) -> true | nil, message, code: each statement in turn, not
 * cached, no parameters. */
static int db_exec(lua_State *L)
{
  lsqlite *u = check_db(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  const char *end = sql + len, *tail;
  char word[24], msg[600];
  int rc = SQLITE_OK, err;

  if (len > MAX_SQL_LEN)
    return luaL_error(L, "db:exec: %d bytes of SQL is more than %d",
                      (int)(len > INT_MAX ? INT_MAX : len), MAX_SQL_LEN);
  if (memchr(sql, '\0', len))
    return luaL_error(L, "db:exec: the SQL holds a NUL byte");
  u->active = 1;
  while (sql < end) {
    sqlite3_stmt *st = NULL;

    first_word(sql, (size_t)(end - sql), word, sizeof word);
    rc = sqlite3_prepare_v2(u->db, sql, (int)(end - sql), &st, &tail);
    if (rc != SQLITE_OK)
      break;
    if (!st) /* blank or a comment */
      break;
    if (sqlite3_bind_parameter_count(st) > 0) {
      sqlite3_finalize(st);
      u->active = 0;
      return luaL_error(L, "db:exec takes no SQL parameters (%s): use db:run",
                        word);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
      ;
    if (rc != SQLITE_DONE) {
      lca_sqlite_take_error(u->db, rc, word, msg, sizeof msg, &err);
      sqlite3_finalize(st);
      u->active = 0;
      return lca_sqlite_push_fail(L, db_path(L, 1), msg,
                                  lca_sqlite_code_name(rc, err));
    }
    rc = SQLITE_OK;
    sqlite3_finalize(st);
    sql = tail;
  }
  u->active = 0;
  if (rc != SQLITE_OK) {
    lca_sqlite_take_error(u->db, rc, word, msg, sizeof msg, &err);
    return lca_sqlite_push_fail(L, db_path(L, 1), msg,
                                lca_sqlite_code_name(rc, err));
  }
  lua_pushboolean(L, 1);
  return 1;
}
static int l_sqlite_version(lua_State *L)
{
  lua_pushstring(L, sqlite3_libversion());
  return 1;
}

void lca_open_sqlite(lua_State *L)
{
  static const luaL_Reg methods[] = {
    {"exec", db_exec},   {"query", db_query},  {"run", db_run},
    {"close", db_close}, {"path", db_getpath}, {"autocommit", db_autocommit},
    {NULL, NULL},
  };
  static const luaL_Reg meta[] = {
    {"__gc", db_gc},   {"__close", db_gc}, {"__tostring", db_tostring},
    {"__index", NULL}, {NULL, NULL},
  };
  static const luaL_Reg funcs[] = {
    {"sqlite_open", lca_sqlite_open_file},
    {"sqlite_version", l_sqlite_version},
    {"state_lock", lca_state_lock_lua},
    {NULL, NULL},
  };

  /* stack: module */
  luaL_newmetatable(L, SQLITE_MT);
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lca_state_lock_open(L);
  luaL_setfuncs(L, funcs, 0);
}
