/*
 * Limits on policy code: a memory cap and an instruction budget.
 *
 *   core.sandbox_call(budget, fn, ...) -> true, results... |
 *                                          false, message, "memory" |
 *                                          "instructions" | "error"
 *
 * budget is a table the caller keeps per policy:
 *   instructions  what the policy may still execute (decreases)
 *   memory        bytes the policy may hold (its net allocations)
 *   retained      bytes it holds so far (maintained here)
 *
 * Instructions: a count hook every HOOK_STEP instructions subtracts from
 * the budget; when it runs out, the hook re-arms itself to fire on every
 * instruction and raises each time, so a pcall inside the policy cannot
 * swallow it (reliability.md 4.2).  The hook is only set while fn runs, so
 * the runner's own Lua code never counts.
 *
 * Memory: the state's allocator (lca_alloc, installed by the runtime) has
 * a ceiling; during a call it is what the policy still may take, so a
 * string.rep or table-growth bomb fails with "not enough memory" at the
 * cap.  In a Lua state made by someone else (luaopen_chatapp_core in a
 * host's state) only the instruction budget applies.
 *
 * C functions are not covered by the hook: the sandbox wraps the pattern
 * functions (lua/chatapp/sandbox.lua).
 */
#include <stdlib.h>
#include <string.h>

#include "lca.h"

#define HOOK_STEP   1000
#define SANDBOX_KEY "chatapp.sandbox"

typedef struct sandbox {
  int active;
  int exceeded;
  long long remaining; /* instructions */
} sandbox;

/* ---- the allocator ------------------------------------------------------ */

void *lca_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  lca_alloc_state *a = ud;
  size_t old = ptr ? osize : 0;
  void *p;

  if (nsize == 0) {
    free(ptr);
    a->used -= old;
    return NULL;
  }
  /* Growing past the ceiling fails; shrinking never does (Lua relies on
   * that). */
  if (nsize > old && a->limit && a->used + (nsize - old) > a->limit)
    return NULL;
  p = realloc(ptr, nsize);
  if (!p)
    return NULL;
  a->used = a->used - old + nsize;
  if (a->used > a->peak)
    a->peak = a->used;
  return p;
}

static lca_alloc_state *our_alloc(lua_State *L)
{
  void *ud;
  return lua_getallocf(L, &ud) == lca_alloc ? ud : NULL;
}

/* ---- the instruction hook ----------------------------------------------- */

static sandbox *get_sandbox(lua_State *L)
{
  sandbox *s;
  lua_getfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY);
  s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

static void hook(lua_State *L, lua_Debug *ar)
{
  sandbox *s = get_sandbox(L);

  (void)ar;
  if (!s || !s->active)
    return;
  s->remaining -= s->exceeded ? 1 : HOOK_STEP;
  if (s->remaining < 0) {
    s->exceeded = 1;
    lua_sethook(L, hook, LUA_MASKCOUNT, 1); /* every instruction from now */
    luaL_where(L, 0);                       /* the policy's line */
    lua_pushliteral(L, "instruction budget exceeded");
    lua_concat(L, 2);
    lua_error(L);
  }
}

/* ---- sandbox_call ------------------------------------------------------- */

static lua_Integer budget_field(lua_State *L, const char *k)
{
  lua_Integer v;
  lua_getfield(L, 1, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Message handler: a traceback for string errors (not called for memory
 * errors); error objects (tables) are passed through untouched. */
static int traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (msg)
    luaL_traceback(L, L, msg, 1);
  else if (!lua_istable(L, 1) && !luaL_callmeta(L, 1, "__tostring"))
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  else
    lua_settop(L, 1);
  return 1;
}

static int l_sandbox_call(lua_State *L)
{
  sandbox *s = get_sandbox(L);
  lca_alloc_state *a = our_alloc(L);
  lua_Integer instructions, memory, retained;
  size_t before = 0, saved_limit = 0;
  int nargs = lua_gettop(L) - 2, st, nres;

  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!s || s->active)
    return luaL_error(L, "sandbox_call cannot nest");
  instructions = budget_field(L, "instructions");
  memory = budget_field(L, "memory");
  retained = budget_field(L, "retained");

  lua_pushcfunction(L, traceback);
  lua_insert(L, 2); /* 1 budget, 2 handler, 3 fn, 4.. args */
  s->active = 1;
  s->exceeded = instructions <= 0;
  s->remaining = instructions;
  if (a && memory > 0) {
    before = a->used;
    saved_limit = a->limit;
    a->limit = before + (size_t)(memory > retained ? memory - retained : 0);
  }
  lua_sethook(L, hook, LUA_MASKCOUNT, s->exceeded ? 1 : HOOK_STEP);
  st = lua_pcall(L, nargs, LUA_MULTRET, 2);
  lua_sethook(L, NULL, 0, 0);
  s->active = 0;
  if (a && memory > 0) {
    long long delta = (long long)a->used - (long long)before;
    a->limit = saved_limit;
    retained += delta;
    if (retained < 0)
      retained = 0;
    lua_pushinteger(L, retained);
    lua_setfield(L, 1, "retained");
  }
  lua_pushinteger(L, s->remaining > 0 ? s->remaining : 0);
  lua_setfield(L, 1, "instructions");

  if (st == LUA_OK) {
    nres = lua_gettop(L) - 2;
    lua_pushboolean(L, 1);
    lua_replace(L, 2); /* the handler's slot */
    return nres + 1;
  }
  lua_pushboolean(L, 0);
  lua_insert(L, -2); /* false, message */
  if (st == LUA_ERRMEM) {
    lua_pop(L, 1);
    lua_pushfstring(L, "memory cap of %d MB exceeded",
                    (int)(memory / (1024 * 1024)));
    lua_pushliteral(L, "memory");
  } else if (s->exceeded) {
    lua_pushliteral(L, "instructions");
  } else {
    lua_pushliteral(L, "error");
  }
  return 3;
}

/* core.memory() -> bytes held by this Lua state (our allocator), or nil */
static int l_memory(lua_State *L)
{
  lca_alloc_state *a = our_alloc(L);
  if (!a)
    return 0;
  lua_pushinteger(L, (lua_Integer)a->used);
  lua_pushinteger(L, (lua_Integer)a->peak);
  return 2;
}

void lca_open_sandbox(lua_State *L)
{
  sandbox *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  lua_setfield(L, LUA_REGISTRYINDEX, SANDBOX_KEY);
  lua_pushcfunction(L, l_sandbox_call);
  lua_setfield(L, -2, "sandbox_call");
  lua_pushcfunction(L, l_memory);
  lua_setfield(L, -2, "memory");
}
