/*
 * Internals of the state store's engine shared by lca_sqlite.c (the
 * errors, the userdata, the statements, the registration) and
 * lca_sqlite_open.c (core.sqlite_open: the options, the path checked before
 * SQLite sees it, the connection's settings).
 */
#ifndef LCA_SQLITE_H
#define LCA_SQLITE_H

#include <sqlite3.h>
#include <stddef.h>

#include "lca.h"

#define SQLITE_MT "chatapp.StateFile"

/* Statements kept prepared per connection; the least recently used goes. */
#define CACHE_MAX 32
/* SQLITE_LIMIT_LENGTH: the largest string, blob or row. */
#define MAX_VALUE_LEN   (64 * 1024 * 1024)
#define MAX_SQL_LEN     (1024 * 1024)
#define DEFAULT_BUSY_MS 5000

typedef struct cached {
  sqlite3_stmt *st; /* NULL: a free slot */
  char *sql;        /* a copy of the text it was prepared from (malloc) */
  size_t len;
  unsigned long used; /* the tick of its last use */
} cached;

typedef struct lsqlite {
  sqlite3 *db; /* NULL: closed */
  int active;  /* a statement of this connection is being stepped */
  int last;    /* the slot used last */
  unsigned long tick;
  cached cache[CACHE_MAX];
} lsqlite;

/* The code string of a SQLite result code (extended or primary). */
const char *lca_sqlite_code_name(int rc, int sys_errno);

/* Copy the connection's error into msg: "WORD: sqlite's message (hint)";
 * *sys_errno is the system's errno behind it, or 0.  Called right after the
 * failure, before reset/finalize; pure C. */
void lca_sqlite_take_error(sqlite3 *db, int rc, const char *word, char *msg,
                           size_t size, int *sys_errno);

/* Push nil, "state file <path>: msg", code; returns 3. */
int lca_sqlite_push_fail(lua_State *L, const char *path, const char *msg,
                         const char *code);

/* Close the connection: finalize every statement, then the handle.
 * Returns the sqlite3_close result (SQLITE_OK when already closed). */
int lca_sqlite_shut(lsqlite *u);

/* core.sqlite_open(path [, opts]) -> db | nil, message, code */
int lca_sqlite_open_file(lua_State *L);

#endif
