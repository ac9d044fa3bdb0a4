/*
 * chatapp_runtime: the embedding API (chatapp.h) over one Lua state.
 *
 * The runtime owns a Lua state with the standard libraries, "chatapp.core"
 * and the embedded Lua sources of lua/ (found by a package searcher, so no
 * file needs to be installed).  Policy loading, evaluation, plans and
 * reports are Lua (chatapp.runner); this file creates the state, gives the
 * runner its host functions (the API client, built lazily so --check and
 * --replay need no credentials) and turns the runner's report into C data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ca_config.h"
#include "ca_embed.h"
#include "ca_runtime.h"
#include "lca.h"

struct chatapp_runtime {
  chatapp_config *cfg;
  lca_alloc_state alloc; /* the Lua state's allocator: counts, caps */
  lua_State *L;
  int runner;        /* registry ref of the runner object */
  ca_client *client; /* created on first use */
  ca_client *http;   /* the same, for webhooks (no credentials) */
  ca_buf cred_source;
  ca_buf errmsg;
  chatapp_policy_report *reports;
  size_t nreports;
  chatapp_action_report *actions;
  size_t nactions;
};

/* ---- embedded Lua sources ----------------------------------------------- */

const ca_embedded *ca_embedded_find(const ca_embedded *table, const char *name)
{
  for (; table->name; table++)
    if (strcmp(table->name, name) == 0)
      return table;
  return NULL;
}

/* package.searchers entry: "chatapp.x" -> lua/chatapp/x.lua or
 * lua/chatapp/x/init.lua, from inside the binary. */
static int embedded_searcher(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  const ca_embedded *f;
  char path[256], chunk[280];
  size_t i, n = strlen(name);

  if (n + 16 > sizeof path)
    return 0;
  for (i = 0; i <= n; i++)
    path[i] = name[i] == '.' ? '/' : name[i];
  strcat(path, ".lua");
  f = ca_embedded_find(ca_lua_sources, path);
  if (!f) {
    path[n] = '\0';
    strcat(path, "/init.lua");
    f = ca_embedded_find(ca_lua_sources, path);
  }
  if (!f) {
    lua_pushfstring(L, "no embedded module '%s'", path);
    return 1;
  }
  snprintf(chunk, sizeof chunk, "@lua/%s", f->name);
  if (luaL_loadbufferx(L, f->data, f->len, chunk, "t") != LUA_OK)
    return lua_error(L);
  lua_pushstring(L, chunk + 1);
  return 2;
}

/* Make require find chatapp.core and the embedded modules first.  Once
 * per state: a second luaopen_chatapp does not add a second searcher. */
static void install_modules(lua_State *L)
{
  if (lua_getfield(L, LUA_REGISTRYINDEX, "chatapp.searcher") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_pushboolean(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "chatapp.searcher");
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_chatapp_core);
  lua_setfield(L, -2, "chatapp.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  /* insert at position 2, after the preload searcher */
  {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1), i;
    for (i = n; i >= 2; i--) {
      lua_rawgeti(L, -1, i);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushcfunction(L, embedded_searcher);
    lua_rawseti(L, -2, 2);
  }
  lua_pop(L, 2);
}

int luaopen_chatapp(lua_State *L)
{
  install_modules(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "chatapp");
  lua_call(L, 1, 1);
  return 1;
}

/* ---- errors ------------------------------------------------------------- */

static chatapp_status fail(chatapp_runtime *rt, chatapp_status st,
                           const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static chatapp_status fail(chatapp_runtime *rt, chatapp_status st,
                           const char *fmt, ...)
{
  va_list ap;

  ca_buf_reset(&rt->errmsg);
  va_start(ap, fmt);
  ca_buf_vprintf(&rt->errmsg, fmt, ap);
  va_end(ap);
  if (rt->client)
    ca_client_redact(rt->client, &rt->errmsg);
  return st;
}

const char *chatapp_runtime_errmsg(const chatapp_runtime *rt)
{
  return rt ? ca_buf_str(&rt->errmsg) : "out of memory";
}

/* An error outside any protected call: say what it was before abort(). */
static int panic(lua_State *L)
{
  fprintf(stderr, "chatapp: unprotected Lua error: %s\n",
          lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
  return 0;
}

/* Message handler: a traceback for errors that are strings. */
static int traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (msg)
    luaL_traceback(L, L, msg, 1);
  else if (!luaL_callmeta(L, 1, "__tostring"))
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  return 1;
}

/* Call the runner method name with nargs arguments already pushed; the
 * method is looked up and the runner inserted as self.  Leaves nres
 * results; returns the Lua status with the message on top on failure. */
static int call_runner(chatapp_runtime *rt, const char *name, int nargs,
                       int nres)
{
  lua_State *L = rt->L;
  int base = lua_gettop(L) - nargs, st;

  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, rt->runner);
  lua_getfield(L, -1, name);
  lua_insert(L, -2); /* handler, method, self */
  lua_rotate(L, base + 1, 3);
  st = lua_pcall(L, nargs + 1, nres, base + 1);
  lua_remove(L, base + 1); /* the handler */
  return st;
}

/* ---- host functions given to the runner --------------------------------- */

/* host.client() -> Client | nil, message: the API client, created on the
 * first call from the configuration and the credential chain. */
static int host_client(lua_State *L)
{
  chatapp_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
  ca_buf err = CA_BUF_INIT(4096);
  char msg[2048];
  chatapp_status st;

  if (!rt->client) {
    ca_buf_reset(&rt->cred_source);
    st = ca_config_new_client(rt->cfg, &rt->client, &err, &rt->cred_source);
    if (st) {
      snprintf(msg, sizeof msg, "%s", ca_buf_str(&err));
      ca_buf_free(&err);
      lua_pushnil(L);
      lua_pushstring(L, msg);
      lua_pushstring(L, chatapp_codename(st));
      return 3;
    }
    ca_buf_free(&err);
  }
  lca_client_push(L, rt->client, 0);
  lua_pushstring(L, ca_buf_str(&rt->cred_source));
  return 2;
}

/* host.http() -> Client for plain HTTP requests | nil, message */
static int host_http(lua_State *L)
{
  chatapp_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
  ca_buf err = CA_BUF_INIT(4096);
  char msg[1024];

  if (!rt->http && ca_config_new_http_client(rt->cfg, &rt->http, &err)) {
    snprintf(msg, sizeof msg, "%s", ca_buf_str(&err));
    ca_buf_free(&err);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
  }
  ca_buf_free(&err);
  lca_client_push(L, rt->http, 0);
  return 1;
}

/* host.log(level, line): to the embedder's log callback, secrets redacted. */
static int host_log(lua_State *L)
{
  chatapp_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
  int level = (int)luaL_checkinteger(L, 1);
  size_t len;
  const char *line = luaL_checklstring(L, 2, &len);
  ca_buf b = CA_BUF_INIT(1 << 20);

  if (!rt->cfg->log || level > rt->cfg->verbose)
    return 0;
  if (ca_buf_add(&b, line, len) == CHATAPP_OK) {
    if (rt->client)
      ca_client_redact(rt->client, &b);
    rt->cfg->log(rt->cfg->log_ud, level, ca_buf_str(&b));
  }
  ca_buf_free(&b);
  return 0;
}

/* The options table the runner reads (no secrets in it). */
static void push_options(lua_State *L, const chatapp_config *cfg)
{
  static const char *const outputs[] = {"none", "text", "json"};

  lua_createtable(L, 0, 12);
#define STR(k)                                                                 \
  if (cfg->k) {                                                                \
    lua_pushstring(L, cfg->k);                                                 \
    lua_setfield(L, -2, #k);                                                   \
  }
#define NUM(k)                                                                 \
  lua_pushinteger(L, (lua_Integer)cfg->k);                                     \
  lua_setfield(L, -2, #k)
  STR(spaces);
  STR(record);
  STR(replay);
  STR(metrics);
  STR(profile);
  NUM(verbose);
  NUM(memory_limit_mb);
  NUM(instruction_limit);
  NUM(fetch_memory_mb);
  NUM(max_response_bytes);
#undef STR
#undef NUM
  lua_pushstring(L, outputs[cfg->output]);
  lua_setfield(L, -2, "output");
  lua_pushinteger(L, cfg->color);
  lua_setfield(L, -2, "color");
  lua_pushboolean(L, cfg->allow_exec);
  lua_setfield(L, -2, "allow_exec");
}

/* ---- life cycle --------------------------------------------------------- */

chatapp_status chatapp_runtime_new(const chatapp_config *cfg,
                                   chatapp_runtime **out)
{
  chatapp_runtime *rt;
  lua_State *L;
  int st;

  if (!out)
    return CHATAPP_EINVAL;
  *out = rt = calloc(1, sizeof *rt);
  if (!rt)
    return CHATAPP_ENOMEM;
  ca_buf_init(&rt->errmsg, 64 * 1024);
  ca_buf_init(&rt->cred_source, 4096);
  rt->runner = LUA_NOREF;
  if (chatapp_global_init() != CHATAPP_OK)
    return fail(rt, CHATAPP_ENOMEM, "cannot initialise libcurl");
  rt->cfg = cfg ? ca_config_dup(cfg) : chatapp_config_new();
  if (!rt->cfg)
    return fail(rt, CHATAPP_ENOMEM, "out of memory");
  L = rt->L = lua_newstate(lca_alloc, &rt->alloc);
  if (!L)
    return fail(rt, CHATAPP_ENOMEM, "cannot create a Lua state");
  lua_atpanic(L, panic);
  luaL_openlibs(L);
  install_modules(L);

  /* runner = require("chatapp.runner").new(options, host) */
  lua_pushcfunction(L, traceback);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "chatapp.runner");
  st = lua_pcall(L, 1, 1, -3);
  if (st == LUA_OK) {
    lua_getfield(L, -1, "new");
    push_options(L, rt->cfg);
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, host_client, 1);
    lua_setfield(L, -2, "client");
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, host_log, 1);
    lua_setfield(L, -2, "log");
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, host_http, 1);
    lua_setfield(L, -2, "http");
    st = lua_pcall(L, 2, 1, -5);
  }
  if (st != LUA_OK)
    return fail(rt, CHATAPP_ENOMEM, "cannot start the runtime: %s",
                lua_tostring(L, -1));
  rt->runner = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return CHATAPP_OK;
}

static void free_str(const char *s)
{
  free((char *)(uintptr_t)s);
}

static void clear_reports(chatapp_runtime *rt)
{
  size_t i;

  for (i = 0; i < rt->nreports; i++)
    free_str(rt->reports[i].name);
  free(rt->reports);
  rt->reports = NULL;
  rt->nreports = 0;
  for (i = 0; i < rt->nactions; i++) {
    chatapp_action_report *a = &rt->actions[i];
    free_str(a->policy);
    free_str(a->kind);
    free_str(a->id);
    free_str(a->phone_number);
    free_str(a->space);
    free_str(a->target);
    free_str(a->status);
    free_str(a->error);
  }
  free(rt->actions);
  rt->actions = NULL;
  rt->nactions = 0;
}

void chatapp_runtime_free(chatapp_runtime *rt)
{
  if (!rt)
    return;
  if (rt->L)
    lua_close(rt->L); /* before the client: Lua holds a borrowed handle */
  ca_client_free(rt->client);
  ca_client_free(rt->http);
  chatapp_config_free(rt->cfg);
  clear_reports(rt);
  ca_buf_free(&rt->cred_source);
  ca_buf_free(&rt->errmsg);
  free(rt);
}

/* ---- loading and running ------------------------------------------------ */

/* After a runner call returning (ok, message): map to a status. */
static chatapp_status load_result(chatapp_runtime *rt, int st)
{
  lua_State *L = rt->L;
  chatapp_status r = CHATAPP_OK;

  if (st != LUA_OK)
    r = fail(rt, CHATAPP_EPOLICY, "%s", lua_tostring(L, -1));
  else if (!lua_toboolean(L, -2))
    r = fail(rt, CHATAPP_EPOLICY, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
  return r;
}

chatapp_status chatapp_runtime_load_file(chatapp_runtime *rt, const char *path)
{
  if (!rt || !rt->L || !path)
    return CHATAPP_EINVAL;
  lua_pushstring(rt->L, path);
  return load_result(rt, call_runner(rt, "load_file", 1, 2));
}

chatapp_status chatapp_runtime_load_string(chatapp_runtime *rt,
                                           const char *name, const char *src,
                                           size_t len)
{
  if (!rt || !rt->L || !name || !src)
    return CHATAPP_EINVAL;
  lua_pushstring(rt->L, name);
  lua_pushlstring(rt->L, src, len);
  return load_result(rt, call_runner(rt, "load_string", 2, 2));
}

/* A copy of string field k of the table at t, or NULL. */
static const char *field_dup(lua_State *L, int t, const char *k)
{
  const char *v = NULL;
  if (lua_getfield(L, t, k) == LUA_TSTRING)
    v = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return v;
}

static size_t field_size(lua_State *L, int t, const char *k)
{
  lua_Integer v;
  lua_getfield(L, t, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v > 0 ? (size_t)v : 0;
}

/* Copy report.policies into C structs. */
static chatapp_status collect_reports(chatapp_runtime *rt, int report)
{
  lua_State *L = rt->L;
  size_t n, i;

  clear_reports(rt);
  lua_getfield(L, report, "policies");
  n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  rt->reports = calloc(n ? n : 1, sizeof *rt->reports);
  if (!rt->reports)
    return CHATAPP_ENOMEM;
  for (i = 0; i < n; i++) {
    chatapp_policy_report *r = &rt->reports[i];
    int t;
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    t = lua_gettop(L);
    lua_getfield(L, t, "name");
    r->name = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    if (!r->name)
      return CHATAPP_ENOMEM;
    rt->nreports = i + 1;
    r->numbers_seen = field_size(L, t, "seen");
    r->numbers_matched = field_size(L, t, "matched");
    r->actions_planned = field_size(L, t, "planned");
    r->actions_done = field_size(L, t, "done");
    r->actions_failed = field_size(L, t, "failed");
    r->actions_skipped = field_size(L, t, "skipped");
    r->errors = field_size(L, t, "errors");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);

  /* report.action_list: plain records made by the report for hosts */
  lua_getfield(L, report, "action_list");
  n = lua_istable(L, -1) ? lua_rawlen(L, -1) : 0;
  rt->actions = calloc(n ? n : 1, sizeof *rt->actions);
  if (!rt->actions)
    return CHATAPP_ENOMEM;
  for (i = 0; i < n; i++) {
    chatapp_action_report *a = &rt->actions[i];
    int t;
    lua_rawgeti(L, -1, (lua_Integer)i + 1);
    t = lua_gettop(L);
    a->policy = field_dup(L, t, "policy");
    a->kind = field_dup(L, t, "kind");
    a->id = field_dup(L, t, "id");
    a->phone_number = field_dup(L, t, "phone_number");
    a->space = field_dup(L, t, "space");
    a->target = field_dup(L, t, "target");
    a->status = field_dup(L, t, "status");
    a->error = field_dup(L, t, "error");
    rt->nactions = i + 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return CHATAPP_OK;
}

chatapp_status chatapp_runtime_run(chatapp_runtime *rt, int flags)
{
  lua_State *L;
  chatapp_status st;
  const char *status;

  if (!rt || !rt->L)
    return CHATAPP_EINVAL;
  L = rt->L;
  ca_buf_reset(&rt->errmsg);
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, flags & CHATAPP_RUN_DRY);
  lua_setfield(L, -2, "dry_run");
  lua_pushboolean(L, flags & CHATAPP_RUN_CHECK);
  lua_setfield(L, -2, "check");
  if (call_runner(rt, "run", 1, 1) != LUA_OK) {
    st = fail(rt, CHATAPP_EPOLICY, "the run failed: %s", lua_tostring(L, -1));
    lua_settop(L, 0);
    return st;
  }
  st = collect_reports(rt, lua_gettop(L));
  if (st == CHATAPP_OK) {
    static const char *const names[] = {
      "ok", "config", "credentials", "policy", "api", "action", NULL};
    static const chatapp_status codes[] = {
      CHATAPP_OK,      CHATAPP_ECONFIG, CHATAPP_ECREDENTIALS,
      CHATAPP_EPOLICY, CHATAPP_EAPI,    CHATAPP_EACTION};
    size_t i;
    lua_getfield(L, -1, "status");
    status = lua_tostring(L, -1);
    for (i = 0; names[i]; i++)
      if (status && strcmp(status, names[i]) == 0)
        st = codes[i];
    lua_getfield(L, -2, "message");
    if (st != CHATAPP_OK)
      fail(rt, st, "%s",
           lua_tostring(L, -1) ? lua_tostring(L, -1) : chatapp_strerror(st));
  }
  lua_settop(L, 0);
  return st;
}

size_t chatapp_runtime_policy_count(const chatapp_runtime *rt)
{
  return rt ? rt->nreports : 0;
}

chatapp_status chatapp_runtime_policy_report(const chatapp_runtime *rt,
                                             size_t i,
                                             chatapp_policy_report *out)
{
  if (!rt || !out || i >= rt->nreports)
    return CHATAPP_EINVAL;
  *out = rt->reports[i];
  return CHATAPP_OK;
}

/* ---- plain scripts (chatapp-run --lua) ---------------------------------- */

int ca_runtime_run_script(chatapp_runtime *rt, const char *path, int argc,
                          char **argv)
{
  lua_State *L = rt->L;
  int i, rc;

  lua_createtable(L, argc, 1);
  lua_pushstring(L, path);
  lua_rawseti(L, -2, 0);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, traceback);
  if (luaL_loadfilex(L, path, "t") != LUA_OK ||
      lua_pcall(L, 0, 1, 1) != LUA_OK) {
    fprintf(stderr, "chatapp-run: %s\n", lua_tostring(L, -1));
    rc = 1;
  } else if (lua_isinteger(L, -1)) {
    rc = (int)lua_tointeger(L, -1);
  } else {
    rc = lua_isnil(L, -1) || lua_toboolean(L, -1) ? 0 : 1;
  }
  lua_settop(L, 0);
  return rc;
}

size_t chatapp_runtime_action_count(const chatapp_runtime *rt)
{
  return rt ? rt->nactions : 0;
}

chatapp_status chatapp_runtime_action_report(const chatapp_runtime *rt,
                                             size_t i,
                                             chatapp_action_report *out)
{
  if (!rt || !out || i >= rt->nactions)
    return CHATAPP_EINVAL;
  *out = rt->actions[i];
  return CHATAPP_OK;
}
