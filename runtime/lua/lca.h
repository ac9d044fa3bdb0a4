/*
 * lca: the Lua bindings ("chatapp.core").  One file per type:
 *
 *   lca_core.c    luaopen_chatapp_core, module functions, and the helpers
 *                 every binding shares (parameters, numbers, traceback)
 *   lca_client.c  Client: signed, throttled calls (ca_client.h)
 *   lca_phone.c   PhoneNumber: typed, strict, compact results
 *   lca_phone_decode.c  a PhoneList built from an answer (lca_phone.h)
 *   lca_error.c   ApiError: what failed, where, and whether to retry
 *   lca_json.c    JSON: the decoder and a deterministic encoder
 *   lca_sys.c     commands, atomic file writes, terminals, clocks
 *   lca_sandbox.c memory cap and instruction budget for policy code
 *   lca_sqlite.c  the state store's engine (SQLite 3), for the runner only
 *   lca_sqlite_open.c  its core.sqlite_open: options, path checks, settings
 *   lca_redis.c   a Redis connection (ca_redis.h), for the runner only
 *   lca_modules.c require finds chatapp.core and the embedded lua/ sources
 *   lca_runtime.c the embedding API (chatapp.h) over one Lua state: the
 *                 state, errors, loading, the run (lca_runtime_int.h)
 *   lca_runtime_report.c  the report of a run in C structs
 *   lca_runtime_lease.c   the leader lease of a run with a Redis state
 *   lca_runtime_tools.c   scripts (--lua), tools and files chatapp-run runs
 *
 * Bindings never call libcurl or OpenSSL directly, and the C core never
 * includes lua.h.  No C globals: per-state data lives in the registry under
 * the keys below.
 */
#ifndef LCA_H
#define LCA_H

#include <lauxlib.h>
#include <lua.h>

#include "ca_client.h"

#define CLIENT_MT    "chatapp.Client"
#define PHONE_MT     "chatapp.PhoneNumber"
#define PHONELIST_MT "chatapp.PhoneList"
#define APIERROR_MT  "chatapp.ApiError"

/* Each adds its functions to the module table on top of the stack. */
void lca_open_client(lua_State *L);
void lca_open_phone(lua_State *L);
void lca_open_error(lua_State *L);
void lca_open_json(lua_State *L);
void lca_open_sys(lua_State *L);
void lca_open_sandbox(lua_State *L);
void lca_open_sqlite(lua_State *L);
void lca_open_redis(lua_State *L);

/* Make require find "chatapp.core" and the embedded lua/chatapp modules
 * first (lca_modules.c); once per state. */
void lca_install_modules(lua_State *L);

/* The allocator of states made by the runtime: counts bytes and refuses
 * to grow past limit (0: no limit), so policies can be capped. */
typedef struct lca_alloc_state {
  size_t used, peak, limit;
} lca_alloc_state;
void *lca_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

/* Push a Client wrapping c; when owned, the Client frees it on close/gc. */
void lca_client_push(lua_State *L, ca_client *c, int owned);
/* The ca_client of the Client at idx (raises if not one, or closed). */
ca_client *lca_client_check(lua_State *L, int idx);

/* Push an ApiError for a finished call that failed. */
void lca_push_call_error(lua_State *L, const ca_call *call);
/* Push an ApiError built from parts (any may be NULL). */
void lca_push_error(lua_State *L, const char *status, const char *operation,
                    const char *code, const char *message,
                    const char *request_id);

/*
 * Decode a QueryChatappPhoneNumbers answer into a PhoneList of PhoneNumber.
 * The space table at space_idx (0: none) gives cust_space_id, isv_code and
 * label for every number.  Pushes the list and returns LUA_OK, or pushes
 * nil and a message and returns the failure (LUA_ERRMEM: out of memory).
 */
int lca_decode_phone_numbers(lua_State *L, const char *body, size_t len,
                             int space_idx);

/*
 * Decode JSON text into plain Lua values (lca_json.c): integers exact,
 * non-finite numbers refused, object members that are null dropped, null
 * array elements chatapp.json.null, nesting capped at CA_JSON_MAX_DEPTH.
 * All memory is the state's (counted against its cap).  Pushes the value
 * and returns LUA_OK, or pushes nil and a message and returns the failure
 * (LUA_ERRMEM: out of memory); never raises.
 */
int lca_json_decode(lua_State *L, const char *text, size_t len);
/* The same, raising on malformed text (for use inside a protected call).
 * With LCA_JSON_BIG_TEXT, an integer too large for 64 bits is kept as the
 * string of its digits instead of becoming a float. */
#define LCA_JSON_BIG_TEXT 0x1
void lca_json_push_decoded(lua_State *L, const char *text, size_t len,
                           int flags);

/*
 * Known secrets of the state (lca_core.c): the values of the secret
 * environment variables at luaopen_chatapp_core, and the secret and token
 * of every Client made in the state.  lca_redact replaces them in b (L may
 * be NULL: nothing to do); lca_redacted_dup is a malloc'd redacted copy of
 * the string at idx (NULL when not a string or out of memory).
 */
void lca_secrets_add_client(lua_State *L, const ca_client *c);
void lca_redact(lua_State *L, ca_buf *b);
char *lca_redacted_dup(lua_State *L, int idx);
/* Push text redacted (Lua memory only); 1 when text holds a known secret. */
void lca_push_redacted(lua_State *L, const char *text, size_t len);
int lca_secret_found(lua_State *L, const char *text, size_t len);

/* Push the text a number at idx is sent as (lca_core.c): integers and
 * integral floats without ".0", other floats with %f's digits ("%.14g").
 * 1 when pushed; 0 (nothing pushed) when the number is not finite. */
int lca_push_number_text(lua_State *L, int idx);

/* The message handler for lua_pcall: a traceback for string errors, an
 * object's __tostring, or "(error object is a T value)". */
int lca_traceback(lua_State *L);

/* Flatten a parameter table at idx into "Key.1.Sub" = "value" pairs:
 * pushes a table of flat strings.  Raises on values that cannot be sent. */
void lca_flatten_params(lua_State *L, int idx);

#endif
