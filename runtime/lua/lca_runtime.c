/*
 * chatapp_runtime: the embedding API (chatapp.h) over one Lua state.
 * A binding (it sees lua.h), hence lca_; lca_runtime.h is its C-only face
 * for chatapp-run.
 *
 * The runtime owns a Lua state with the standard libraries, "chatapp.core"
 * and the embedded Lua sources of lua/ (lca_modules.c, so no file needs to
 * be installed).  Policy loading, evaluation, plans and
 * reports are Lua (chatapp.runner); this file creates the state, gives the
 * runner its host functions (the API client, built lazily so --check and
 * --replay need no credentials), loads policies and runs them, and holds
 * the errors, the protected calls and what a watcher moves from one
 * runtime to the next (clients, metrics).  The rest, sharing
 * lca_runtime_int.h: the report of a run in C (lca_runtime_report.c), the
 * leader lease of a run with a Redis state (lca_runtime_lease.c), and the
 * scripts, tools and files chatapp-run runs (lca_runtime_tools.c).
 *
 * Every piece of Lua work an API function does runs inside a protected
 * C function (lua_pcall of a lua_CFunction, as lua.c does with pmain): an
 * out-of-memory error or any other raise becomes a status and a message,
 * never a panic that aborts the host.  C memory taken while Lua runs is
 * owned by rt at once, so a raise leaks nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ca_config.h"
#include "ca_lease.h"
#include "lca.h"
#include "lca_runtime.h"
#include "lca_runtime_int.h"

/* ---- errors ------------------------------------------------------------- */

/* The collector's pause (percent): see chatapp_runtime_new. */
#define GC_PAUSE 150

/* The largest metrics text kept for a watcher (per-number gauges of a
 * 10,000-space ISV fit many times over). */
#define METRICS_MAX (256 * 1024 * 1024)
/* Formatting stops here; redaction runs on this much before the cut. */
#define FORMAT_MAX (1024 * 1024)

/*
 * Set rt's message.  Secrets are redacted before the message is cut, so a
 * secret across the cut is never half shown.  A message over ERRMSG_MAX
 * bytes is cut at a UTF-8 boundary and ends with a marker giving its full
 * length; when even that cannot be allocated the message is the status's
 * sentence, never "".
 */
chatapp_status lca_rt_fail(chatapp_runtime *rt, chatapp_status st,
                           const char *fmt, ...)
{
  ca_buf full = CA_BUF_INIT(8 * FORMAT_MAX); /* room for redaction marks */
  char *text = NULL;
  va_list ap;
  int n, cut;

  ca_buf_reset(&rt->errmsg);
  rt->errfixed = chatapp_strerror(st);
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return st;
  cut = (size_t)n > FORMAT_MAX;
  text = malloc((size_t)n < FORMAT_MAX ? (size_t)n + 1 : FORMAT_MAX + 1);
  if (!text)
    return st;
  va_start(ap, fmt);
  vsnprintf(text, (size_t)n < FORMAT_MAX ? (size_t)n + 1 : FORMAT_MAX + 1, fmt,
            ap);
  va_end(ap);
  if (ca_buf_adds(&full, text) == CHATAPP_OK) {
    lca_redact(rt->L, &full); /* every known secret, the client's too */
    if (full.len >= ERRMSG_MAX || cut) {
      char mark[96];
      size_t keep;
      int m = snprintf(mark, sizeof mark,
                       " [... message truncated: %d bytes in all]", n);
      keep = ERRMSG_MAX - 1 - (size_t)m;
      if (keep > full.len)
        keep = full.len;
      while (keep > 0 && ((unsigned char)full.ptr[keep] & 0xC0) == 0x80)
        keep--; /* not inside a UTF-8 sequence */
      if (ca_buf_add(&rt->errmsg, full.ptr, keep) != CHATAPP_OK ||
          ca_buf_add(&rt->errmsg, mark, (size_t)m) != CHATAPP_OK)
        ca_buf_reset(&rt->errmsg);
    } else if (ca_buf_add(&rt->errmsg, full.ptr, full.len) != CHATAPP_OK) {
      ca_buf_reset(&rt->errmsg);
    }
  }
  free(text);
  ca_buf_free(&full);
  return st;
}

void lca_rt_clear_error(chatapp_runtime *rt)
{
  ca_buf_reset(&rt->errmsg);
  rt->errfixed = NULL;
}

const char *chatapp_runtime_errmsg(const chatapp_runtime *rt)
{
  if (!rt)
    return "out of memory";
  if (rt->errmsg.len == 0 && rt->errfixed)
    return rt->errfixed;
  return ca_buf_str(&rt->errmsg);
}

/* The error value at idx as text, without converting it (a conversion
 * allocates and could raise). */
const char *lca_rt_errstr(lua_State *L, int idx)
{
  return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx)
                                         : "(error object is not a string)";
}

/* An error outside any protected call: say what it was before abort().
 * Every API function protects its Lua work, so this is a bug. */
static int panic(lua_State *L)
{
  fprintf(stderr, "chatapp: unprotected Lua error: %s\n", lca_rt_errstr(L, -1));
  return 0;
}

/* A failed lua_pcall (st, the message on top): out of memory is
 * CHATAPP_ENOMEM, anything else the caller's status; what (or NULL)
 * prefixes the message. */
chatapp_status lca_rt_lua_failed(chatapp_runtime *rt, int st,
                                 chatapp_status other, const char *what)
{
  lua_State *L = rt->L;

  if (st == LUA_ERRMEM)
    return lca_rt_fail(rt, CHATAPP_ENOMEM, "%s%snot enough memory",
                       what ? what : "", what ? ": " : "");
  return lca_rt_fail(rt, other, "%s%s%s", what ? what : "", what ? ": " : "",
                     lca_rt_errstr(L, -1));
}

/*
 * Run fn(job) as a protected C function.  What fn sets (j->st and rt's
 * message) stands when it returns; when it raises, out of memory is
 * CHATAPP_ENOMEM and anything else CHATAPP_EINTERNAL, with what in the
 * message.  The stack is empty afterwards.
 */
chatapp_status lca_rt_protect(chatapp_runtime *rt, lua_CFunction fn, job *j,
                              const char *what)
{
  lua_State *L = rt->L;
  int st;

  lua_settop(L, 0);
  if (!lua_checkstack(L, 2))
    return lca_rt_fail(rt, CHATAPP_ENOMEM, "%s: no room on the Lua stack",
                       what);
  j->rt = rt;
  j->st = CHATAPP_OK;
  lua_pushcfunction(L, fn); /* light C function: allocates nothing */
  lua_pushlightuserdata(L, j);
  st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {
    j->raised = 1;
    j->st = lca_rt_lua_failed(rt, st, CHATAPP_EINTERNAL, what);
  }
  lua_settop(L, 0);
  return j->st;
}

/* Call the runner method name with nargs arguments already pushed; the
 * method is looked up and the runner inserted as self.  Leaves nres
 * results; returns the Lua status with the message on top on failure.
 * Called inside a protected function (the lookups may raise). */
int lca_rt_call_runner(chatapp_runtime *rt, const char *name, int nargs,
                       int nres)
{
  lua_State *L = rt->L;
  int base = lua_gettop(L) - nargs, st;

  luaL_checkstack(L, 4, "calling the runner");
  lua_pushcfunction(L, lca_traceback);
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
  } else {
    /* Role credentials change: say the current ones (and their expiry). */
    ca_buf_reset(&rt->cred_source);
    if (ca_client_describe_credentials(rt->client, &rt->cred_source))
      ca_buf_reset(&rt->cred_source);
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
    lca_redact(L, &b); /* every known secret, the client's too */
    rt->cfg->log(rt->cfg->log_ud, level, ca_buf_str(&b));
  }
  ca_buf_free(&b);
  return 0;
}

/* The options table the runner reads (no secrets in it). */
static void push_options(lua_State *L, const chatapp_config *cfg)
{
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
  STR(check_data);
  STR(metrics);
  STR(profile);
  STR(account);
  STR(state);
  NUM(verbose);
  NUM(outbox_max_age_s);
  NUM(memory_limit_mb);
  NUM(instruction_limit);
  NUM(fetch_memory_mb);
  NUM(max_response_bytes);
#undef STR
#undef NUM
  lua_pushstring(L, cfg->output); /* checked in setup (report.formats) */
  lua_setfield(L, -2, "output");
  lua_pushinteger(L, cfg->color);
  lua_setfield(L, -2, "color");
  lua_pushboolean(L, cfg->allow_exec);
  lua_setfield(L, -2, "allow_exec");
  lua_pushboolean(L, cfg->apply);
  lua_setfield(L, -2, "apply");
}

/* ---- life cycle --------------------------------------------------------- */

/* Protected: libraries, modules, runner = require("chatapp.runner").new(
 * options, host). */
static int setup(lua_State *L)
{
  job *j = job_of(L);
  chatapp_runtime *rt = j->rt;
  int h, st;

  luaL_openlibs(L);
  lca_install_modules(L);
  lua_settop(L, 0);
  lua_pushcfunction(L, lca_traceback);
  h = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "chatapp.runner");
  st = lua_pcall(L, 1, 1, h);
  if (st == LUA_OK) {
    lua_getfield(L, -1, "new");
    push_options(L, rt->cfg);
    lua_createtable(L, 0, 3);
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, host_client, 1);
    lua_setfield(L, -2, "client");
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, host_log, 1);
    lua_setfield(L, -2, "log");
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, host_http, 1);
    lua_setfield(L, -2, "http");
    st = lua_pcall(L, 2, 1, h);
  }
  if (st != LUA_OK) {
    j->st =
      lca_rt_lua_failed(rt, st, CHATAPP_EINTERNAL, "cannot start the runtime");
    return 0;
  }
  rt->runner = luaL_ref(L, LUA_REGISTRYINDEX);
  /* core.lease_token, on the module every require of "chatapp.core" in
   * this state gets (the runner has loaded it) */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "chatapp.core") == LUA_TTABLE) {
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, lca_rt_core_lease_token, 1);
    lua_setfield(L, -2, "lease_token");
  }
  lua_pop(L, 2);
  /* The output format names one of report.formats, the one table of them:
   * report.check_format(name) -> true | nil, message */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "chatapp.report");
  st = lua_pcall(L, 1, 1, h);
  if (st == LUA_OK) {
    lua_getfield(L, -1, "check_format");
    lua_pushstring(L, rt->cfg->output);
    st = lua_pcall(L, 1, 2, h);
  }
  if (st != LUA_OK)
    j->st =
      lca_rt_lua_failed(rt, st, CHATAPP_EINTERNAL, "cannot start the runtime");
  else if (!lua_toboolean(L, -2))
    j->st = lca_rt_fail(rt, CHATAPP_ECONFIG, "%s", lca_rt_errstr(L, -1));
  return 0;
}

chatapp_status ca_runtime_new_limited(const chatapp_config *cfg, size_t limit,
                                      chatapp_runtime **out)
{
  chatapp_runtime *rt;
  job j;

  if (!out)
    return CHATAPP_EINVAL;
  *out = rt = calloc(1, sizeof *rt);
  if (!rt)
    return CHATAPP_ENOMEM;
  ca_buf_init(&rt->errmsg, ERRMSG_MAX);
  ca_buf_init(&rt->cred_source, 4096);
  ca_buf_init(&rt->metrics, METRICS_MAX);
  rt->runner = LUA_NOREF;
  rt->alloc.limit = limit;
  if (chatapp_global_init() != CHATAPP_OK)
    return lca_rt_fail(rt, CHATAPP_ENOMEM, "cannot initialise libcurl");
  rt->cfg = cfg ? ca_config_dup(cfg) : chatapp_config_new();
  if (!rt->cfg)
    return lca_rt_fail(rt, CHATAPP_ENOMEM,
                       "out of memory copying the configuration");
  rt->L = lua_newstate(lca_alloc, &rt->alloc);
  if (!rt->L)
    return lca_rt_fail(rt, CHATAPP_ENOMEM,
                       "cannot create a Lua state: out of memory");
  lua_atpanic(rt->L, panic);
  /* A collection cycle starts when the heap reaches 1.5 times what the
   * last one left (Lua's default: 2 times).  A run's garbage is mostly
   * the decoded JSON of answers and snapshots, made once per space: over
   * 10,000 spaces this takes the peak from 80 to 63 MB with --state (37
   * MB without) for about a quarter more collector time
   * (docs/benchmarks.md, "Memory per space"). */
  (void)lua_gc(rt->L, LUA_GCINC, GC_PAUSE, 0, 0);
  memset(&j, 0, sizeof j);
  if (lca_rt_protect(rt, setup, &j, "cannot start the runtime") != CHATAPP_OK) {
    /* A half-made state is no use: later calls say it failed. */
    lua_close(rt->L);
    rt->L = NULL;
    rt->runner = LUA_NOREF;
    return j.st;
  }
  return CHATAPP_OK;
}

chatapp_status chatapp_runtime_new(const chatapp_config *cfg,
                                   chatapp_runtime **out)
{
  return ca_runtime_new_limited(cfg, 0, out);
}

size_t ca_runtime_limit_memory(chatapp_runtime *rt, size_t headroom)
{
  if (rt->L) /* garbage would give the cap room of its own */
    (void)lua_gc(rt->L, LUA_GCCOLLECT);
  rt->alloc.peak = rt->alloc.used;
  rt->alloc.limit = headroom ? rt->alloc.used + headroom : 0;
  return rt->alloc.used;
}

size_t ca_runtime_memory_peak(const chatapp_runtime *rt)
{
  return rt->alloc.peak;
}

void chatapp_runtime_free(chatapp_runtime *rt)
{
  if (!rt)
    return;
  if (rt->L)
    lua_close(rt->L);       /* before the client: Lua holds a borrowed handle */
  ca_lease_free(rt->lease); /* only after a run cut short: it expires */
  ca_client_free(rt->client);
  ca_client_free(rt->http);
  chatapp_config_free(rt->cfg);
  lca_rt_clear_reports(rt);
  ca_buf_free(&rt->cred_source);
  ca_buf_free(&rt->errmsg);
  ca_buf_free(&rt->metrics);
  free(rt);
}

/* An API function on a runtime whose set-up failed. */
chatapp_status lca_rt_unusable(chatapp_runtime *rt)
{
  return lca_rt_fail(rt, CHATAPP_EINVAL,
                     "this runtime could not be set up (chatapp_runtime_new "
                     "failed); free it and make a new one");
}

/* ---- loading ------------------------------------------------------------ */

/* Protected: runner:load_file(path) / runner:load_string(name, src), which
 * return true or false and a message. */
static int do_load(lua_State *L)
{
  job *j = job_of(L);
  chatapp_runtime *rt = j->rt;
  int st;

  lua_settop(L, 0);
  if (j->path) {
    lua_pushstring(L, j->path);
    st = lca_rt_call_runner(rt, "load_file", 1, 2);
  } else {
    lua_pushstring(L, j->name);
    lua_pushlstring(L, j->src, j->len);
    st = lca_rt_call_runner(rt, "load_string", 2, 2);
  }
  if (st != LUA_OK) /* a policy error names its file itself */
    j->st = lca_rt_lua_failed(rt, st, CHATAPP_EPOLICY,
                              st == LUA_ERRMEM ? (j->path ? j->path : j->name)
                                               : NULL);
  else if (!lua_toboolean(L, -2))
    j->st = lca_rt_fail(rt, CHATAPP_EPOLICY, "%s", lca_rt_errstr(L, -1));
  return 0;
}

chatapp_status chatapp_runtime_load_file(chatapp_runtime *rt, const char *path)
{
  job j;

  if (!rt || !path)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return lca_rt_unusable(rt);
  lca_rt_clear_error(rt);
  memset(&j, 0, sizeof j);
  j.path = path;
  return lca_rt_protect(rt, do_load, &j, path);
}

chatapp_status chatapp_runtime_load_string(chatapp_runtime *rt,
                                           const char *name, const char *src,
                                           size_t len)
{
  job j;

  if (!rt || !name || !src)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return lca_rt_unusable(rt);
  lca_rt_clear_error(rt);
  memset(&j, 0, sizeof j);
  j.name = name;
  j.src = src;
  j.len = len;
  return lca_rt_protect(rt, do_load, &j, name);
}

/* ---- running ------------------------------------------------------------ */

/* Protected: report = runner:run{dry_run=, check=}; the report into C. */
static int do_run(lua_State *L)
{
  job *j = job_of(L);
  chatapp_runtime *rt = j->rt;
  const char *status;
  int report, st;

  lua_settop(L, 0);
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, j->flags & CHATAPP_RUN_DRY);
  lua_setfield(L, -2, "dry_run");
  lua_pushboolean(L, j->flags & CHATAPP_RUN_CHECK);
  lua_setfield(L, -2, "check");
  st = lca_rt_call_runner(rt, "run", 1, 1);
  if (st != LUA_OK) {
    j->st = lca_rt_lua_failed(rt, st, CHATAPP_EPOLICY, "the run failed");
    return 0;
  }
  report = lua_gettop(L);
  if (!lua_istable(L, report)) {
    j->st = lca_rt_fail(rt, CHATAPP_EINTERNAL,
                        "the run returned a %s instead of a report (a bug in "
                        "chatapp-run; please report it)",
                        luaL_typename(L, report));
    return 0;
  }
  if (rt->keep_metrics) {
    /* The run's metrics text, for a watcher's /metrics (redacted like the
     * --metrics file). */
    size_t len;
    const char *text;
    ca_buf_reset(&rt->metrics);
    lua_getfield(L, report, "metrics_text");
    lua_pushvalue(L, report);
    lua_call(L, 1, 1);
    text = lua_tolstring(L, -1, &len);
    if (text && ca_buf_add(&rt->metrics, text, len) == CHATAPP_OK)
      lca_redact(L, &rt->metrics);
    lua_pop(L, 1);
  }
  j->st = lca_rt_collect_reports(rt, report);
  if (j->st == CHATAPP_ENOMEM) {
    lca_rt_clear_reports(rt);
    j->st = lca_rt_fail(rt, CHATAPP_ENOMEM,
                        "out of memory copying the report of the run");
    return 0;
  }
  if (j->st != CHATAPP_OK) {
    lca_rt_clear_reports(rt);
    j->st = lca_rt_fail(rt, j->st,
                        "the report of the run is malformed (a bug in "
                        "chatapp-run; please report it)");
    return 0;
  }
  lua_getfield(L, report, "message_shown");
  rt->failure_shown = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, report, "status");
  status = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  lua_getfield(L, report, "message");
  j->st = ca_runtime_report_status(status);
  if (j->st == CHATAPP_EINTERNAL)
    lca_rt_fail(rt, j->st,
                "the run ended with status '%s', which this library does not "
                "know (a bug in chatapp-run; please report it): %s",
                status ? status : "(none)",
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  else if (j->st != CHATAPP_OK)
    lca_rt_fail(rt, j->st, "%s",
                lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                               : chatapp_strerror(j->st));
  return 0;
}

chatapp_status chatapp_runtime_run(chatapp_runtime *rt, int flags)
{
  chatapp_status st;
  job j;

  if (!rt)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return lca_rt_unusable(rt);
  lca_rt_clear_error(rt);
  rt->failure_shown = 0;
  if (lca_rt_run_needs_lease(rt, flags)) {
    const char *kind = "config";
    st = lca_rt_take_lease(rt, &kind);
    if (st) {
      lca_rt_clear_reports(rt);
      ca_runtime_report_failure(rt, kind); /* the summary of --output json */
      return st;
    }
  }
  memset(&j, 0, sizeof j);
  j.flags = flags;
  st = lca_rt_protect(rt, do_run, &j, "the run failed");
  if (j.raised)
    lca_rt_clear_reports(rt); /* none rather than half of one */
  if (rt->lease)
    lca_rt_drop_lease(rt);
  return st;
}

/* ---- for a watcher (runtime/cli/ca_watch.c) ----------------------------- */

void ca_runtime_keep_metrics(chatapp_runtime *rt, int on)
{
  if (rt)
    rt->keep_metrics = on;
}

const char *ca_runtime_metrics(const chatapp_runtime *rt, size_t *len)
{
  *len = rt ? rt->metrics.len : 0;
  return rt && rt->metrics.len ? ca_buf_str(&rt->metrics) : NULL;
}

void ca_runtime_take_clients(chatapp_runtime *rt, ca_runtime_clients *out)
{
  out->api = rt->client;
  out->http = rt->http;
  rt->client = NULL; /* Lua's handles were borrowed: they free nothing */
  rt->http = NULL;
  ca_buf_reset(&out->source);
  if (ca_buf_add(&out->source, rt->cred_source.ptr ? rt->cred_source.ptr : "",
                 rt->cred_source.len))
    ca_buf_reset(&out->source); /* at worst the source is not logged */
}

void ca_runtime_give_clients(chatapp_runtime *rt, ca_runtime_clients *in)
{
  if (!rt->client && in->api) {
    rt->client = in->api;
    in->api = NULL;
    ca_buf_reset(&rt->cred_source);
    if (ca_buf_add(&rt->cred_source, in->source.ptr ? in->source.ptr : "",
                   in->source.len))
      ca_buf_reset(&rt->cred_source);
  }
  if (!rt->http && in->http) {
    rt->http = in->http;
    in->http = NULL;
  }
}

void ca_runtime_clients_free(ca_runtime_clients *c)
{
  ca_client_free(c->api);
  ca_client_free(c->http);
  c->api = c->http = NULL;
  ca_buf_free(&c->source);
}
