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
 * --replay need no credentials) and turns the runner's report into C data.
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
#include "ca_redis.h"
#include "lca.h"
#include "lca_runtime.h"

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
  const char *errfixed; /* static; the message when errmsg cannot be built */
  int keep_metrics;     /* ca_runtime_keep_metrics: metrics text after a run */
  int failure_shown;    /* the last run's report logged its failure message */
  ca_buf metrics;
  /* The fence token of the leader lease the run works under (Redis state):
   * given by a watcher (ca_runtime_set_lease_token), or taken by
   * chatapp_runtime_run for the run (lease, then freed).  0: none. */
  int64_t given_token, run_token;
  ca_lease *lease;
};

/* ---- errors ------------------------------------------------------------- */

/* Messages longer than this are cut, with a marker saying so. */
#define ERRMSG_MAX (64 * 1024)
/* The collector's pause (percent): see chatapp_runtime_new. */
#define GC_PAUSE 150

/* The largest metrics text kept for a watcher (per-number gauges of a
 * 10,000-space ISV fit many times over). */
#define METRICS_MAX (256 * 1024 * 1024)
/* Formatting stops here; redaction runs on this much before the cut. */
#define FORMAT_MAX (1024 * 1024)

static chatapp_status fail(chatapp_runtime *rt, chatapp_status st,
                           const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/*
 * Set rt's message.  Secrets are redacted before the message is cut, so a
 * secret across the cut is never half shown.  A message over ERRMSG_MAX
 * bytes is cut at a UTF-8 boundary and ends with a marker giving its full
 * length; when even that cannot be allocated the message is the status's
 * sentence, never "".
 */
static chatapp_status fail(chatapp_runtime *rt, chatapp_status st,
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

static void clear_error(chatapp_runtime *rt)
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
static const char *errstr(lua_State *L, int idx)
{
  return lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx)
                                         : "(error object is not a string)";
}

/* An error outside any protected call: say what it was before abort().
 * Every API function protects its Lua work, so this is a bug. */
static int panic(lua_State *L)
{
  fprintf(stderr, "chatapp: unprotected Lua error: %s\n", errstr(L, -1));
  return 0;
}

/* A failed lua_pcall (st, the message on top): out of memory is
 * CHATAPP_ENOMEM, anything else the caller's status; what (or NULL)
 * prefixes the message. */
static chatapp_status lua_failed(chatapp_runtime *rt, int st,
                                 chatapp_status other, const char *what)
{
  lua_State *L = rt->L;

  if (st == LUA_ERRMEM)
    return fail(rt, CHATAPP_ENOMEM, "%s%snot enough memory", what ? what : "",
                what ? ": " : "");
  return fail(rt, other, "%s%s%s", what ? what : "", what ? ": " : "",
              errstr(L, -1));
}

/* The work of one API function, run protected; in and out values. */
typedef struct job {
  chatapp_runtime *rt;
  const char *path, *name, *src;
  size_t len;
  int flags, argc;
  char **argv;
  int rc;      /* run_script: the exit status */
  ca_buf *out; /* read_file: the text */
  size_t max;
  chatapp_status st; /* set by the work */
  int raised;        /* the work raised part way */
} job;

/*
 * Run fn(job) as a protected C function.  What fn sets (j->st and rt's
 * message) stands when it returns; when it raises, out of memory is
 * CHATAPP_ENOMEM and anything else CHATAPP_EINTERNAL, with what in the
 * message.  The stack is empty afterwards.
 */
static chatapp_status protect(chatapp_runtime *rt, lua_CFunction fn, job *j,
                              const char *what)
{
  lua_State *L = rt->L;
  int st;

  lua_settop(L, 0);
  if (!lua_checkstack(L, 2))
    return fail(rt, CHATAPP_ENOMEM, "%s: no room on the Lua stack", what);
  j->rt = rt;
  j->st = CHATAPP_OK;
  lua_pushcfunction(L, fn); /* light C function: allocates nothing */
  lua_pushlightuserdata(L, j);
  st = lua_pcall(L, 1, 0, 0);
  if (st != LUA_OK) {
    j->raised = 1;
    j->st = lua_failed(rt, st, CHATAPP_EINTERNAL, what);
  }
  lua_settop(L, 0);
  return j->st;
}

static job *job_of(lua_State *L)
{
  return lua_touserdata(L, 1);
}

/* Call the runner method name with nargs arguments already pushed; the
 * method is looked up and the runner inserted as self.  Leaves nres
 * results; returns the Lua status with the message on top on failure.
 * Called inside a protected function (the lookups may raise). */
static int call_runner(chatapp_runtime *rt, const char *name, int nargs,
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

/* core.lease_token() -> integer | nil: the fence token of the leader
 * lease the current run works under (a Redis state), which the state
 * store passes to every write; nil without one. */
static int core_lease_token(lua_State *L)
{
  chatapp_runtime *rt = lua_touserdata(L, lua_upvalueindex(1));
  int64_t t = rt->given_token ? rt->given_token : rt->run_token;

  if (t > 0)
    lua_pushinteger(L, (lua_Integer)t);
  else
    lua_pushnil(L);
  return 1;
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
    j->st = lua_failed(rt, st, CHATAPP_EINTERNAL, "cannot start the runtime");
    return 0;
  }
  rt->runner = luaL_ref(L, LUA_REGISTRYINDEX);
  /* core.lease_token, on the module every require of "chatapp.core" in
   * this state gets (the runner has loaded it) */
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "chatapp.core") == LUA_TTABLE) {
    lua_pushlightuserdata(L, rt);
    lua_pushcclosure(L, core_lease_token, 1);
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
    j->st = lua_failed(rt, st, CHATAPP_EINTERNAL, "cannot start the runtime");
  else if (!lua_toboolean(L, -2))
    j->st = fail(rt, CHATAPP_ECONFIG, "%s", errstr(L, -1));
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
    return fail(rt, CHATAPP_ENOMEM, "cannot initialise libcurl");
  rt->cfg = cfg ? ca_config_dup(cfg) : chatapp_config_new();
  if (!rt->cfg)
    return fail(rt, CHATAPP_ENOMEM, "out of memory copying the configuration");
  rt->L = lua_newstate(lca_alloc, &rt->alloc);
  if (!rt->L)
    return fail(rt, CHATAPP_ENOMEM, "cannot create a Lua state: out of memory");
  lua_atpanic(rt->L, panic);
  /* A collection cycle starts when the heap reaches 1.5 times what the
   * last one left (Lua's default: 2 times).  A run's garbage is mostly
   * the decoded JSON of answers and snapshots, made once per space: over
   * 10,000 spaces this takes the peak from 80 to 63 MB with --state (37
   * MB without) for about a quarter more collector time
   * (docs/benchmarks.md, "Memory per space"). */
  (void)lua_gc(rt->L, LUA_GCINC, GC_PAUSE, 0, 0);
  memset(&j, 0, sizeof j);
  if (protect(rt, setup, &j, "cannot start the runtime") != CHATAPP_OK) {
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
    lua_close(rt->L);       /* before the client: Lua holds a borrowed handle */
  ca_lease_free(rt->lease); /* only after a run cut short: it expires */
  ca_client_free(rt->client);
  ca_client_free(rt->http);
  chatapp_config_free(rt->cfg);
  clear_reports(rt);
  ca_buf_free(&rt->cred_source);
  ca_buf_free(&rt->errmsg);
  ca_buf_free(&rt->metrics);
  free(rt);
}

/* An API function on a runtime whose set-up failed. */
static chatapp_status unusable(chatapp_runtime *rt)
{
  return fail(rt, CHATAPP_EINVAL,
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
    st = call_runner(rt, "load_file", 1, 2);
  } else {
    lua_pushstring(L, j->name);
    lua_pushlstring(L, j->src, j->len);
    st = call_runner(rt, "load_string", 2, 2);
  }
  if (st != LUA_OK) /* a policy error names its file itself */
    j->st = lua_failed(rt, st, CHATAPP_EPOLICY,
                       st == LUA_ERRMEM ? (j->path ? j->path : j->name) : NULL);
  else if (!lua_toboolean(L, -2))
    j->st = fail(rt, CHATAPP_EPOLICY, "%s", errstr(L, -1));
  return 0;
}

chatapp_status chatapp_runtime_load_file(chatapp_runtime *rt, const char *path)
{
  job j;

  if (!rt || !path)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return unusable(rt);
  clear_error(rt);
  memset(&j, 0, sizeof j);
  j.path = path;
  return protect(rt, do_load, &j, path);
}

chatapp_status chatapp_runtime_load_string(chatapp_runtime *rt,
                                           const char *name, const char *src,
                                           size_t len)
{
  job j;

  if (!rt || !name || !src)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return unusable(rt);
  clear_error(rt);
  memset(&j, 0, sizeof j);
  j.name = name;
  j.src = src;
  j.len = len;
  return protect(rt, do_load, &j, name);
}

/* ---- running and the report --------------------------------------------- */

/* A copy of string field k of the table at t into *out (NULL when the
 * field is not a string).  CHATAPP_ENOMEM when the copy fails. */
static chatapp_status field_dup(lua_State *L, int t, const char *k,
                                const char **out)
{
  chatapp_status st = CHATAPP_OK;

  *out = NULL;
  if (lua_getfield(L, t, k) == LUA_TSTRING &&
      !(*out = lca_redacted_dup(L, -1))) /* no known secret reaches the host */
    st = CHATAPP_ENOMEM;
  lua_pop(L, 1);
  return st;
}

static size_t field_size(lua_State *L, int t, const char *k)
{
  lua_Integer v;
  lua_getfield(L, t, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v > 0 ? (size_t)v : 0;
}

/* Copy report.policies and report.action_list (the table at report) into
 * C structs.  The arrays are owned by rt as soon as they exist, so a raise
 * part way leaks nothing. */
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
  rt->nreports = n;
  for (i = 0; i < n; i++) {
    chatapp_policy_report *r = &rt->reports[i];
    int t;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      return CHATAPP_EINTERNAL;
    t = lua_gettop(L);
    if (field_dup(L, t, "name", &r->name) != CHATAPP_OK)
      return CHATAPP_ENOMEM;
    if (!r->name && !(r->name = strdup("?")))
      return CHATAPP_ENOMEM;
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
  rt->nactions = n;
  for (i = 0; i < n; i++) {
    chatapp_action_report *a = &rt->actions[i];
    int t;
    if (lua_rawgeti(L, -1, (lua_Integer)i + 1) != LUA_TTABLE)
      return CHATAPP_EINTERNAL;
    t = lua_gettop(L);
    if (field_dup(L, t, "policy", &a->policy) ||
        field_dup(L, t, "kind", &a->kind) || field_dup(L, t, "id", &a->id) ||
        field_dup(L, t, "phone_number", &a->phone_number) ||
        field_dup(L, t, "space", &a->space) ||
        field_dup(L, t, "target", &a->target) ||
        field_dup(L, t, "status", &a->status) ||
        field_dup(L, t, "error", &a->error))
      return CHATAPP_ENOMEM;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return CHATAPP_OK;
}

chatapp_status ca_runtime_report_status(const char *name)
{
  /* "output": a file of the run could not be written once it had started;
   * "load": a policy file did not load (report.lua) */
  static const char *const names[] = {"ok",     "config", "credentials",
                                      "policy", "api",    "action",
                                      "output", "load",   NULL};
  static const chatapp_status codes[] = {
    CHATAPP_OK,   CHATAPP_ECONFIG, CHATAPP_ECREDENTIALS, CHATAPP_EPOLICY,
    CHATAPP_EAPI, CHATAPP_EACTION, CHATAPP_EIO,          CHATAPP_EPOLICY};
  size_t i;

  for (i = 0; name && names[i]; i++)
    if (strcmp(name, names[i]) == 0)
      return codes[i];
  return CHATAPP_EINTERNAL;
}

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
  st = call_runner(rt, "run", 1, 1);
  if (st != LUA_OK) {
    j->st = lua_failed(rt, st, CHATAPP_EPOLICY, "the run failed");
    return 0;
  }
  report = lua_gettop(L);
  if (!lua_istable(L, report)) {
    j->st = fail(rt, CHATAPP_EINTERNAL,
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
  j->st = collect_reports(rt, report);
  if (j->st == CHATAPP_ENOMEM) {
    clear_reports(rt);
    j->st =
      fail(rt, CHATAPP_ENOMEM, "out of memory copying the report of the run");
    return 0;
  }
  if (j->st != CHATAPP_OK) {
    clear_reports(rt);
    j->st = fail(rt, j->st,
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
    fail(rt, j->st,
         "the run ended with status '%s', which this library does not "
         "know (a bug in chatapp-run; please report it): %s",
         status ? status : "(none)",
         lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "");
  else if (j->st != CHATAPP_OK)
    fail(rt, j->st, "%s",
         lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                        : chatapp_strerror(j->st));
  return 0;
}

/* ---- the leader lease of a Redis state ---------------------------------- */

static void rt_log(const chatapp_runtime *rt, int level, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

static void rt_log(const chatapp_runtime *rt, int level, const char *fmt, ...)
{
  char line[2048];
  va_list ap;

  if (!rt->cfg->log || level > rt->cfg->verbose)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  rt->cfg->log(rt->cfg->log_ud, level, line);
}

void ca_runtime_set_lease_token(chatapp_runtime *rt, int64_t token)
{
  if (rt)
    rt->given_token = token > 0 ? token : 0;
}

/* Whether a run takes the lease itself: a Redis state, a run that may
 * write it (not --check, not a dry run or a replay without --apply), and
 * no lease given by a watcher. */
static int run_needs_lease(const chatapp_runtime *rt, int flags)
{
  const chatapp_config *c = rt->cfg;

  if (!c->state || !ca_redis_is_url(c->state) || rt->given_token)
    return 0;
  if (flags & (CHATAPP_RUN_CHECK | CHATAPP_RUN_DRY))
    return 0;
  return !c->replay || c->apply;
}

/* The account the state is kept under, as Runner:account() says:
 * --account, else "default" for a replay, else the client's (made now, as
 * host.client() would, and kept for the run).  NULL when the client
 * cannot be made: then rt's message, *st and the report status *kind. */
static const char *run_account(chatapp_runtime *rt, chatapp_status *st,
                               const char **kind)
{
  ca_buf err = CA_BUF_INIT(4096);

  if (rt->cfg->account)
    return rt->cfg->account;
  if (rt->cfg->replay)
    return "default";
  if (!rt->client) {
    ca_buf_reset(&rt->cred_source);
    *st = ca_config_new_client(rt->cfg, &rt->client, &err, &rt->cred_source);
    if (*st) {
      *st =
        *st == CHATAPP_ECREDENTIALS ? CHATAPP_ECREDENTIALS : CHATAPP_ECONFIG;
      *kind = *st == CHATAPP_ECREDENTIALS ? "credentials" : "config";
      fail(rt, *st, "%s", ca_buf_str(&err));
      ca_buf_free(&err);
      return NULL;
    }
  }
  ca_buf_free(&err);
  return ca_client_account(rt->client);
}

/* Take the lease of the run's account and start renewing it; a lease
 * another holds is a configuration error naming the holder.  On failure
 * rt's message, the status and the report status *kind. */
static chatapp_status take_lease(chatapp_runtime *rt, const char **kind)
{
  ca_buf err = CA_BUF_INIT(4096);
  chatapp_status st = CHATAPP_OK;
  const char *account = run_account(rt, &st, kind);
  int won = 0;

  if (!account)
    return st;
  *kind = "config";
  st = ca_lease_new(rt->cfg->state, account, (int64_t)rt->cfg->lease_s * 1000,
                    &rt->lease, &err);
  if (st) {
    st = fail(rt, CHATAPP_ECONFIG,
              "cannot take the leader lease of account %s for the state "
              "%s: %s",
              account, rt->cfg->state, ca_buf_str(&err));
    goto out;
  }
  st = ca_lease_acquire(rt->lease, &won, &err);
  if (st) {
    st = fail(rt, CHATAPP_ECONFIG,
              "cannot take the leader lease of account %s at %s: %s", account,
              ca_lease_where(rt->lease), ca_buf_str(&err));
    goto out;
  }
  if (!won) {
    st = fail(rt, CHATAPP_ECONFIG,
              "%s holds the lease of account %s at %s; a watcher runs there "
              "(or another run of this state); run this there, or stop it "
              "(docs/watch.md)",
              ca_lease_holder(rt->lease), account, ca_lease_where(rt->lease));
    goto out;
  }
  st = ca_lease_start(rt->lease, &err);
  if (st) {
    (void)ca_lease_release(rt->lease, NULL, &err);
    st = fail(rt, CHATAPP_ECONFIG,
              "the leader lease of account %s at %s cannot be renewed: %s",
              account, ca_lease_where(rt->lease), ca_buf_str(&err));
    goto out;
  }
  rt->run_token = ca_lease_token(rt->lease);
  rt_log(rt, 1,
         "took the leader lease of account %s at %s (token %lld, %lld s)",
         account, ca_lease_where(rt->lease), (long long)rt->run_token,
         (long long)ca_lease_ttl_ms(rt->lease) / 1000);
out:
  if (st) {
    ca_lease_free(rt->lease);
    rt->lease = NULL;
  }
  ca_buf_free(&err);
  return st;
}

/* After the run: say whether the lease was lost on the way, release it
 * (a standby takes over at once) and forget it. */
static void drop_lease(chatapp_runtime *rt)
{
  ca_buf err = CA_BUF_INIT(4096);
  char why[1024];
  int released = 0, ours = 0;

  /* one renewal asks Redis whether it is still ours (the thread may not
   * have renewed during a short run) */
  if (ca_lease_held(rt->lease, NULL, 0) &&
      ca_lease_renew(rt->lease, &ours, &err) != CHATAPP_OK)
    ca_buf_reset(&err); /* unknown: the release below says more */
  if (!ca_lease_held(rt->lease, why, sizeof why))
    rt_log(rt, 0,
           "the leader lease was lost during the run: %s; state writes after "
           "that were refused (FENCED)",
           why);
  else if (ca_lease_release(rt->lease, &released, &err) != CHATAPP_OK)
    rt_log(rt, 0,
           "cannot release the leader lease (it ends by itself within %lld "
           "s): %s",
           (long long)ca_lease_ttl_ms(rt->lease) / 1000, ca_buf_str(&err));
  ca_lease_free(rt->lease);
  rt->lease = NULL;
  rt->run_token = 0;
  ca_buf_free(&err);
}

chatapp_status chatapp_runtime_run(chatapp_runtime *rt, int flags)
{
  chatapp_status st;
  job j;

  if (!rt)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return unusable(rt);
  clear_error(rt);
  rt->failure_shown = 0;
  if (run_needs_lease(rt, flags)) {
    const char *kind = "config";
    st = take_lease(rt, &kind);
    if (st) {
      clear_reports(rt);
      ca_runtime_report_failure(rt, kind); /* the summary of --output json */
      return st;
    }
  }
  memset(&j, 0, sizeof j);
  j.flags = flags;
  st = protect(rt, do_run, &j, "the run failed");
  if (j.raised)
    clear_reports(rt); /* none rather than half of one */
  if (rt->lease)
    drop_lease(rt);
  return st;
}

int ca_runtime_failure_shown(const chatapp_runtime *rt)
{
  return rt && rt->failure_shown;
}

/* Protected: runner:report_failure(status, message), the report of a run
 * that cannot happen (its JSON summary). */
static int do_report_failure(lua_State *L)
{
  job *j = job_of(L);
  chatapp_runtime *rt = j->rt;
  int st;

  lua_settop(L, 0);
  lua_pushstring(L, j->name);
  lua_pushstring(L, j->src);
  st = call_runner(rt, "report_failure", 2, 0);
  if (st != LUA_OK)
    j->st = lua_failed(rt, st, CHATAPP_EINTERNAL, "the report of the failure");
  return 0;
}

void ca_runtime_report_failure(chatapp_runtime *rt, const char *status)
{
  ca_buf msg = CA_BUF_INIT(ERRMSG_MAX + 64);
  job j;

  if (!rt || !rt->L)
    return;
  /* the message stays the one of the failure */
  if (ca_buf_add(&msg, chatapp_runtime_errmsg(rt),
                 strlen(chatapp_runtime_errmsg(rt))) != CHATAPP_OK) {
    ca_buf_free(&msg);
    return;
  }
  memset(&j, 0, sizeof j);
  j.name = status;
  j.src = ca_buf_str(&msg);
  if (protect(rt, do_report_failure, &j, "the report of the failure") !=
      CHATAPP_OK)
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
  ca_buf_free(&msg);
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

/* ---- plain scripts (chatapp-run --lua) ---------------------------------- */

/* A script's or tool's exit status from how it ended (st) and what it
 * returned (on top): an error is printed (redacted) and is 1; an integer
 * is itself; nil or true 0, anything else 1. */
static void exit_status(lua_State *L, job *j, int st)
{
  if (st != LUA_OK) {
    const char *msg = errstr(L, -1);
    lca_push_redacted(L, msg, strlen(msg)); /* stderr is a sink too */
    fprintf(stderr, "chatapp-run: %s\n", lua_tostring(L, -1));
    j->rc = 1;
  } else if (lua_isinteger(L, -1)) {
    j->rc = (int)lua_tointeger(L, -1);
  } else {
    j->rc = lua_isnil(L, -1) || lua_toboolean(L, -1) ? 0 : 1;
  }
}

/* Run a script or a tool's main: fn does it under protect. */
static int run_tool(chatapp_runtime *rt, lua_CFunction fn, job *j,
                    const char *what)
{
  if (!rt->L) {
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    return 1;
  }
  j->rc = 1;
  if (protect(rt, fn, j, what) != CHATAPP_OK) {
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    return 1;
  }
  return j->rc;
}

/* Protected: the arg table, then the script under the traceback handler. */
static int do_script(lua_State *L)
{
  job *j = job_of(L);
  int i, h, st;

  lua_settop(L, 0);
  lua_createtable(L, j->argc, 1);
  lua_pushstring(L, j->path);
  lua_rawseti(L, -2, 0);
  for (i = 0; i < j->argc; i++) {
    lua_pushstring(L, j->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setglobal(L, "arg");
  lua_pushcfunction(L, lca_traceback);
  h = lua_gettop(L);
  st = luaL_loadfilex(L, j->path, "t");
  if (st == LUA_OK)
    st = lua_pcall(L, 0, 1, h);
  exit_status(L, j, st);
  return 0;
}

int ca_runtime_run_script(chatapp_runtime *rt, const char *path, int argc,
                          char **argv)
{
  job j;

  memset(&j, 0, sizeof j);
  j.path = path;
  j.argc = argc;
  j.argv = argv;
  return run_tool(rt, do_script, &j, path);
}

/* ---- embedded tools (chatapp-run state ...) ----------------------------- */

/* Protected: require(module).main(args) under the traceback handler. */
static int do_module(lua_State *L)
{
  job *j = job_of(L);
  int i, h, st;

  lua_settop(L, 0);
  lua_pushcfunction(L, lca_traceback);
  h = lua_gettop(L);
  lua_getglobal(L, "require");
  lua_pushstring(L, j->name);
  st = lua_pcall(L, 1, 1, h);
  if (st == LUA_OK) {
    if (lua_type(L, -1) != LUA_TTABLE ||
        lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
      lua_pushfstring(L, "module %s has no main function", j->name);
      st = LUA_ERRRUN;
    } else {
      lua_createtable(L, j->argc, 0);
      for (i = 0; i < j->argc; i++) {
        lua_pushstring(L, j->argv[i]);
        lua_rawseti(L, -2, i + 1);
      }
      st = lua_pcall(L, 1, 1, h);
    }
  }
  exit_status(L, j, st);
  return 0;
}

int ca_runtime_run_module(chatapp_runtime *rt, const char *module, int argc,
                          char **argv)
{
  job j;

  memset(&j, 0, sizeof j);
  j.name = module;
  j.argc = argc;
  j.argv = argv;
  return run_tool(rt, do_module, &j, module);
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

/* Protected: core.read_file(path, max, "the policy file") into j->out. */
static int do_read_file(lua_State *L)
{
  job *j = job_of(L);
  size_t len;
  const char *text;

  lua_settop(L, 0);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "chatapp.core");
  lua_getfield(L, -1, "read_file");
  lua_pushstring(L, j->path);
  lua_pushinteger(L, (lua_Integer)j->max);
  lua_pushliteral(L, "the policy file");
  lua_call(L, 3, 2);
  text = lua_tolstring(L, -2, &len);
  if (!text) {
    j->st = fail(j->rt, CHATAPP_EPOLICY, "%s", errstr(L, -1));
    return 0;
  }
  ca_buf_reset(j->out);
  j->st = ca_buf_add(j->out, text, len);
  return 0;
}

chatapp_status ca_runtime_read_file(chatapp_runtime *rt, const char *path,
                                    size_t max, ca_buf *out)
{
  job j;

  if (!rt || !path || !out)
    return CHATAPP_EINVAL;
  if (!rt->L)
    return unusable(rt);
  clear_error(rt);
  memset(&j, 0, sizeof j);
  j.path = path;
  j.out = out;
  j.max = max;
  return protect(rt, do_read_file, &j, path);
}
