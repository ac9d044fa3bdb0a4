/*
 * Fuzz target: an API answer decoded and typed into PhoneNumber values
 * (lca_json.c, then lca_phone.c), then every field, raw() and the JSON
 * encoder run over each number.  Properties: no crash, no leak, no
 * undefined behaviour, every failure is a clean (nil, message), every
 * number encodes (but for two names that differ only in bytes that are
 * not UTF-8) and its encoding decodes, messaging_limit is nil, a
 * positive integer or math.huge, a phone number sent as a JSON
 * integer keeps its digits, and a number attached to its twin of a
 * second decode (core.phone_attach) has changed nothing.
 */
#include <stdint.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "chatapp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char script[] =
  "local core, body = ...\n"
  "local list, err = core.decode_phone_numbers(body, { cust_space_id = 'S' })\n"
  "if not list then assert(type(err) == 'string') return end\n"
  "local plain = core.json_decode(body)\n"
  "local src = type(plain) == 'table' and plain.PhoneNumbers\n"
  "for i, n in ipairs(list) do\n"
  "  local e = type(src) == 'table' and src[i]\n"
  "  if type(e) == 'table' and math.type(e.PhoneNumber) == 'integer' then\n"
  "    assert(n.phone_number == tostring(e.PhoneNumber))\n"
  "  end\n"
  "  for _, f in ipairs(core.phone_fields) do local _ = n[f] end\n"
  "  local raw = n:raw()\n"
  "  local s, e = core.json_encode(n)\n"
  /* the encoder's one refusal (see fuzz_json.c) */
  "  assert(s or e:find('twice', 1, true), e)\n"
  "  if s then assert(core.json_decode(s)) end\n"
  "  local lim = n.messaging_limit\n"
  "  assert(lim == nil or lim == math.huge or\n"
  "         (math.type(lim) == 'integer' and lim >= 0 and lim < 2^53))\n"
  "  local pn = n.phone_number\n"
  "  assert(pn == nil or type(pn) == 'string')\n"
  "  local _ = tostring(n)\n"
  "end\n"
  /* the history: each number attached to its twin of a second decode has
   * changed nothing, and reading it never raises */
  "local again = assert(core.decode_phone_numbers(body))\n"
  "local tracked = core.phone_tracked()\n"
  "local since = {}\n"
  "for i, f in ipairs(tracked) do since[f] = i end\n"
  "for i, n in ipairs(list) do\n"
  "  core.phone_attach(n, again[i], 0, since, 100)\n"
  "  local any, changed = n:changed()\n"
  "  assert(any == false and #changed == 0)\n"
  "  for j, f in ipairs(tracked) do\n"
  "    local c, old, new = n:changed(f)\n"
  "    assert(c == false and old == new and new == n[f])\n"
  "    assert(n:since(f) == j and n:held(f) == 100 - j)\n"
  "  end\n"
  "  assert(n:changed('messaging_limit') == false)\n"
  "  assert(n.previous == again[i] and n.previous.previous == nil)\n"
  "  assert(core.json_encode(n) == core.json_encode(again[i]))\n"
  "end\n";

static lua_State *L; /* one state for the whole run, like a long-lived host */

static void close_state(void)
{
  lua_close(L);
  L = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!L) {
    L = luaL_newstate();
    atexit(close_state);
    luaL_openlibs(L);
    luaL_requiref(L, "chatapp.core", luaopen_chatapp_core, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.core");
  }
  if (luaL_loadstring(L, script) != LUA_OK)
    abort();
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.core");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    abort(); /* the decoder must not raise: it returns nil, message */
  lua_gc(L, LUA_GCCOLLECT);
  return 0;
}
