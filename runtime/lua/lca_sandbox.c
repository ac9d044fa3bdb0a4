/*
 * Limits on policy code: a memory cap and an instruction budget.
 *
 *   core.sandbox_call(budget, fn, ...) -> true, results (up to 8)... |
 *                                          false, message, "memory" |
 *                                          "instructions" | "error"
 *
 * budget is a table the caller keeps per policy file:
 *   instructions  what the file's code may still execute (decreases)
 *   memory        bytes the file's code may hold (its net allocations)
 *   time_ms       optional: milliseconds the file's code may still run
 *                 (decreases; -1 once spent; absent or 0: no time limit)
 *   retained      bytes it holds so far (maintained here)
 *   run           optional: a second table of the same shape shared by
 *                 every file of the run; a call gets the smaller of the
 *                 two allowances and both are charged.  When the run's
 *                 allowance was the binding one, a fourth result "run"
 *                 follows the kind.
 *
 * Instructions: a count hook every HOOK_STEP instructions subtracts from
 * the budget; when it runs out, the hook re-arms itself to fire on every
 * instruction and raises each time, so a pcall inside the policy cannot
 * swallow it (docs/internals/sandbox.md).  The hook is only set while fn
 * runs, so the runner's own Lua code never counts.
 *
 * Time: instructions do not bound time, as a C function called in a loop
 * (s:upper() of a 10 MB string, a coroutine switch) costs far more than
 * an instruction: 20,000 instructions of such a loop took 55 s.  With
 * time_ms the same hook also reads the monotonic clock and stops the
 * call once its deadline has passed ("time budget exceeded"), within one
 * C call of it (the hook then fires on calls too); the kind is "time".
 *
 * Memory: the state's allocator (lca_alloc, installed by the runtime) has
 * a ceiling; during a call it is what the policy still may take, so a
 * string.rep or table-growth bomb fails with "not enough memory" at the
 * cap.  In a Lua state made by someone else (luaopen_chatapp_core in a
 * host's state) only the instruction budget applies.
 *
 * C functions are not covered by the hook: the sandbox wraps the pattern
 * functions (lua/chatapp/sandbox.lua), which ask pattern_cost for a bound
 * on a search's work and use find_plain (linear) for plain searches.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca_limiter.h"
#include "lca.h"

#define HOOK_STEP   1000
#define MAX_RESULTS 8 /* results of fn passed back */
#define SANDBOX_KEY "chatapp.sandbox"

typedef struct sandbox {
  int active;
  int exceeded;
  int timed_out;       /* exceeded by time, not by instructions */
  int run_bound;       /* the run's allowance is the smaller one */
  long long remaining; /* instructions */
  int time_run_bound;  /* the run's time is the smaller */
  int64_t deadline;    /* ca_now_us() when time runs out; 0: none */
} sandbox;

/* ---- the allocator ------------------------------------------------------ */

/*
 * What a block of n bytes takes of the heap: malloc's chunk (glibc: the
 * size plus an 8-byte header, rounded up to 16, at least 32).  Counting
 * the bytes asked for instead let a policy of small objects ({i} tables,
 * short strings) hold half as much again as its cap: a 64 MB cap gave a
 * 100 MB process (reliability case D2).
 */
static size_t footprint(size_t n)
{
  size_t c;

  if (n == 0)
    return 0;
  if (n > (size_t)-1 - 32)
    return (size_t)-1;
  c = (n + 8 + 15) & ~(size_t)15;
  return c < 32 ? 32 : c;
}

void *lca_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  lca_alloc_state *a = ud;
  size_t old = footprint(ptr ? osize : 0), want = footprint(nsize);
  void *p;

  if (nsize == 0) {
    free(ptr);
    a->used -= old;
    return NULL;
  }
  /* Growing past the ceiling fails; shrinking never does (Lua relies on
   * that). */
  if (want > old && a->limit &&
      (want - old > a->limit || a->used > a->limit - (want - old)))
    return NULL;
  p = realloc(ptr, nsize);
  if (!p)
    return NULL;
  a->used = a->used - old + want;
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

/* The hook's events: counts, and with a deadline every call too, so the
 * clock is read before each C function (whose time instructions do not
 * see) and a call past the deadline is never started. */
static int hook_mask(const sandbox *s)
{
  return s->deadline ? LUA_MASKCOUNT | LUA_MASKCALL : LUA_MASKCOUNT;
}

static void hook(lua_State *L, lua_Debug *ar)
{
  sandbox *s = get_sandbox(L);

  if (!s || !s->active)
    return;
  /* What this thread's hook counted: a coroutine keeps the count it was
   * created with (or re-armed to), so charge that, not a constant. */
  if (ar->event == LUA_HOOKCOUNT)
    s->remaining -= lua_gethookcount(L);
  if (!s->exceeded && s->deadline && ca_now_us() >= s->deadline)
    s->timed_out = 1;
  if (s->remaining < 0 || s->timed_out) {
    s->exceeded = 1;
    lua_sethook(L, hook, hook_mask(s), 1); /* every instruction from now */
    luaL_where(L, 0);                      /* the policy's line */
    if (s->timed_out && s->time_run_bound)
      lua_pushliteral(L, "time budget exceeded (the run's total for all "
                         "policy files)");
    else if (s->timed_out)
      lua_pushliteral(L, "time budget exceeded");
    else if (s->run_bound)
      lua_pushliteral(L, "instruction budget exceeded (the run's total for "
                         "all policy files)");
    else
      lua_pushliteral(L, "instruction budget exceeded");
    lua_concat(L, 2);
    lua_error(L);
  }
  if (!s->exceeded &&
      (lua_gethookcount(L) != HOOK_STEP || lua_gethookmask(L) != hook_mask(s)))
    lua_sethook(L, hook, hook_mask(s), HOOK_STEP);
}

/* ---- sandbox_call ------------------------------------------------------- */

static lua_Integer budget_field(lua_State *L, int idx, const char *k)
{
  lua_Integer v;
  lua_getfield(L, idx, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

typedef struct allowance {
  lua_Integer instructions, memory, retained, time_ms;
} allowance;

static void read_allowance(lua_State *L, int idx, allowance *a)
{
  a->instructions = budget_field(L, idx, "instructions");
  a->memory = budget_field(L, idx, "memory");
  a->retained = budget_field(L, idx, "retained");
  a->time_ms = budget_field(L, idx, "time_ms");
}

/* Charge a finished call to the budget table at idx. */
static void charge(lua_State *L, int idx, const allowance *a, long long used,
                   long long delta, int counted, long long ms)
{
  if (a->time_ms > 0) { /* -1 once spent: 0 would mean no limit */
    lua_pushinteger(L, a->time_ms > ms ? a->time_ms - ms : -1);
    lua_setfield(L, idx, "time_ms");
  }
  if (counted) {
    long long retained = (long long)a->retained + delta;
    lua_pushinteger(L, retained > 0 ? retained : 0);
    lua_setfield(L, idx, "retained");
  }
  lua_pushinteger(L, a->instructions > used ? a->instructions - used : 0);
  lua_setfield(L, idx, "instructions");
}

static lua_Integer room(const allowance *a)
{
  return a->memory > a->retained ? a->memory - a->retained : 0;
}

/* Message handler: a traceback for string errors (not called for memory
 * errors); error objects (tables) are passed through untouched. */
static int traceback(lua_State *L)
{
  if (lua_istable(L, 1)) {
    lua_settop(L, 1);
    return 1;
  }
  return lca_traceback(L);
}

static int l_sandbox_call(lua_State *L)
{
  sandbox *s = get_sandbox(L);
  lca_alloc_state *a = our_alloc(L);
  allowance file, run;
  int has_run, counted, mem_run_bound = 0;
  lua_Integer instructions, memory = 0, time_ms = 0;
  int64_t started;
  size_t before = 0, saved_limit = 0;
  long long used;
  int nargs, st, nres;

  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!s || s->active)
    return luaL_error(L, "sandbox_call cannot nest");
  read_allowance(L, 1, &file);
  has_run = lua_getfield(L, 1, "run") == LUA_TTABLE;
  if (has_run)
    read_allowance(L, -1, &run);
  lua_pop(L, 1);
  /* The run's table stays at index 1's "run": reached again after the
   * call, as fn may not touch it (it is the runner's). */

  instructions = file.instructions;
  s->run_bound = 0;
  if (has_run && run.instructions < instructions) {
    instructions = run.instructions;
    s->run_bound = 1;
  }
  /* time: the smaller of the two; negative when one is spent */
  time_ms = file.time_ms;
  s->time_run_bound = 0;
  if (has_run && run.time_ms != 0 && (time_ms == 0 || run.time_ms < time_ms)) {
    time_ms = run.time_ms;
    s->time_run_bound = 1;
  }
  counted = a && file.memory > 0;
  if (counted) {
    memory = room(&file);
    if (has_run && run.memory > 0 && room(&run) < memory) {
      memory = room(&run);
      mem_run_bound = 1;
    }
  }

  nargs = lua_gettop(L) - 2;
  lua_pushcfunction(L, traceback);
  lua_insert(L, 2); /* 1 budget, 2 handler, 3 fn, 4.. args */
  s->active = 1;
  s->timed_out = 0;
  s->exceeded = instructions <= 0;
  s->remaining = instructions;
  started = ca_now_us();
  s->deadline = 0;
  if (time_ms > 0)
    s->deadline = started + (int64_t)time_ms * 1000;
  else if (time_ms < 0) /* spent by an earlier call */
    s->deadline = started;
  if (counted) {
    before = a->used;
    saved_limit = a->limit;
    a->limit = before + (size_t)memory;
    if (a->limit == 0) /* 0 means no limit: one byte, then nothing */
      a->limit = 1;
  }
  lua_sethook(L, hook, hook_mask(s), s->exceeded ? 1 : HOOK_STEP);
  st = lua_pcall(L, nargs, LUA_MULTRET, 2);
  lua_sethook(L, NULL, 0, 0);
  s->active = 0;
  used = (long long)instructions - (s->remaining > 0 ? s->remaining : 0);
  if (used < 0)
    used = 0;
  {
    long long delta = 0, ms = (long long)((ca_now_us() - started) / 1000);
    if (counted) {
      delta = (long long)a->used - (long long)before;
      a->limit = saved_limit;
    }
    charge(L, 1, &file, used, delta, counted, ms);
    if (has_run) {
      if (lua_getfield(L, 1, "run") == LUA_TTABLE)
        charge(L, lua_gettop(L), &run, used, delta, counted && run.memory > 0,
               ms);
      lua_pop(L, 1);
    }
  }

  if (st == LUA_OK) {
    nres = lua_gettop(L) - 2;
    if (nres > MAX_RESULTS) { /* the runner reads one or two */
      lua_settop(L, 2 + MAX_RESULTS);
      nres = MAX_RESULTS;
    }
    lua_pushboolean(L, 1);
    lua_replace(L, 2); /* the handler's slot */
    return nres + 1;
  }
  lua_pushboolean(L, 0);
  lua_insert(L, -2); /* false, message */
  if (st == LUA_ERRMEM) {
    lua_pop(L, 1);
    if (mem_run_bound)
      lua_pushfstring(L,
                      "memory cap of %d MB for all policy files of the run "
                      "exceeded",
                      (int)(run.memory / (1024 * 1024)));
    else
      lua_pushfstring(L, "memory cap of %d MB exceeded",
                      (int)(file.memory / (1024 * 1024)));
    lua_pushliteral(L, "memory");
    if (mem_run_bound) {
      lua_pushliteral(L, "run");
      return 4;
    }
  } else if (s->timed_out) {
    lua_pushliteral(L, "time");
    if (s->time_run_bound) {
      lua_pushliteral(L, "run");
      return 4;
    }
  } else if (s->exceeded) {
    lua_pushliteral(L, "instructions");
    if (s->run_bound) {
      lua_pushliteral(L, "run");
      return 4;
    }
  } else {
    lua_pushliteral(L, "error");
  }
  return 3;
}

/* ---- bounded string searches -------------------------------------------- */

/*
 * core.find_plain(s, p [, init]) -> start, end | nil
 * string.find(s, p, init, true) in O(#s + #p) (Knuth-Morris-Pratt) where
 * Lua's own search is O(#s * #p) and cannot be interrupted.
 */
static int l_find_plain(lua_State *L)
{
  size_t ls, lp, i, k;
  const char *s = luaL_checklstring(L, 1, &ls);
  const char *p = luaL_checklstring(L, 2, &lp);
  lua_Integer pos = luaL_optinteger(L, 3, 1);
  size_t init, *fail;

  /* string.find's own reading of init (posrelatI) */
  if (pos > 0)
    init = (size_t)pos;
  else if (pos == 0 || pos < -(lua_Integer)ls)
    init = 1;
  else
    init = ls + (size_t)pos + 1;
  init -= 1;
  if (init > ls) {
    luaL_pushfail(L);
    return 1;
  }
  if (lp == 0) {
    lua_pushinteger(L, (lua_Integer)init + 1);
    lua_pushinteger(L, (lua_Integer)init);
    return 2;
  }
  if (lp > ls - init) {
    luaL_pushfail(L);
    return 1;
  }
  if (lp > (size_t)-1 / sizeof *fail)
    return luaL_error(L, "string.find: pattern too long");
  fail = lua_newuserdatauv(L, lp * sizeof *fail, 0); /* counted, capped */
  fail[0] = 0;
  for (i = 1, k = 0; i < lp; i++) {
    while (k > 0 && p[i] != p[k])
      k = fail[k - 1];
    if (p[i] == p[k])
      k++;
    fail[i] = k;
  }
  for (i = init, k = 0; i < ls; i++) {
    while (k > 0 && s[i] != p[k])
      k = fail[k - 1];
    if (s[i] == p[k])
      k++;
    if (k == lp) {
      lua_pushinteger(L, (lua_Integer)(i + 2 - lp));
      lua_pushinteger(L, (lua_Integer)(i + 1));
      return 2;
    }
  }
  luaL_pushfail(L);
  return 1;
}

/* Past a set starting at p[i] == '[' (lstrlib's classEnd); m if malformed. */
static size_t set_end(const char *p, size_t i, size_t m)
{
  i++;
  if (i < m && p[i] == '^')
    i++;
  do {
    if (i >= m)
      return m;
    if (p[i++] == '%') {
      if (i >= m)
        return m;
      i++;
    }
  } while (i >= m || p[i] != ']');
  return i + 1;
}

/*
 * core.pattern_cost(n, p [, unanchored]) -> a bound on the steps Lua's
 * matcher may take for pattern p on an n-byte subject:
 *
 *   starts * n^k * 2^q * (S + n * B)
 *
 * starts: n + 1 (1 when anchored with ^ and unanchored is not set, as for
 * gmatch); k: items repeated with * + -; q: items with ?; S: the cost of
 * trying every item once (a set costs its length); B: back-references and
 * %b items, which scan the subject.  Each start tries at most n^k * 2^q
 * combinations of repetition counts, each visiting every item once.
 * Returned as log10 of the bound, so nothing overflows.
 */
static int l_pattern_cost(lua_State *L)
{
  lua_Integer n = luaL_checkinteger(L, 1);
  size_t m, i = 0;
  const char *p = luaL_checklstring(L, 2, &m);
  int unanchored = lua_toboolean(L, 3);
  double nn = (double)(n > 1 ? n : 1) + 1, k = 0, q = 0, sum = 0, scans = 0;
  double starts = nn;

  if (m > 0 && p[0] == '^' && !unanchored) {
    starts = 1;
    i = 1;
  }
  while (i < m) {
    size_t end;
    double cost = 1;
    char c = p[i];
    if (c == '(' || c == ')') { /* a step of its own */
      sum++;
      i++;
      continue;
    }
    if (c == '$' && i + 1 == m) {
      i++;
      continue;
    }
    if (c == '%') {
      char d = i + 1 < m ? p[i + 1] : '\0';
      if (d == 'b') {
        scans++;
        i += 4;
        continue;
      }
      if (d == 'f') {
        end = i + 2 < m && p[i + 2] == '[' ? set_end(p, i + 2, m) : m;
        sum += (double)(end - i);
        i = end;
        continue;
      }
      if (d >= '0' && d <= '9') {
        scans++;
        i += 2;
        continue;
      }
      end = i + 2;
    } else if (c == '[') {
      end = set_end(p, i, m);
      cost = (double)(end - i);
    } else {
      end = i + 1;
    }
    sum += cost;
    if (end < m) {
      char r = p[end];
      if (r == '*' || r == '+' || r == '-') {
        k++;
        end++;
      } else if (r == '?') {
        q++;
        end++;
      }
    }
    i = end;
  }
  sum += 1 + nn * scans;
  lua_pushnumber(L,
                 log10(starts) + k * log10(nn) + q * log10(2.0) + log10(sum));
  return 1;
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
  lua_pushcfunction(L, l_find_plain);
  lua_setfield(L, -2, "find_plain");
  lua_pushcfunction(L, l_pattern_cost);
  lua_setfield(L, -2, "pattern_cost");
}
