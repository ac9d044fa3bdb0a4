/*
 * Fuzz target: the JSON readers and the encoder.
 *
 *   - ca_json (C core: credential files, answer envelopes), full and
 *     shallow: a document that parses in full also parses shallow, with
 *     the same top level;
 *   - lca_json (core.json_decode / core.json_encode, policies' data and
 *     the JSON Lines report): whatever decodes encodes again (one depth
 *     limit for both; the one exception is an object with two names that
 *     differ only in bytes that are not UTF-8); every encoding is valid
 *     JSON by the strict C reader (UTF-8 included); encoding is stable
 *     (decode then encode of an encoding gives the same bytes).
 * And no crash, no leak, no undefined behaviour.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "ca_api.h"
#include "ca_json.h"
#include "chatapp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char script[] =
  "local core, text = ...\n"
  "local v, err = core.json_decode(text)\n"
  "if v == nil then assert(type(err) == 'string') return nil end\n"
  "local s, eerr = core.json_encode(v)\n"
  /* The one refusal: two names that differ only in bytes that are not
   * UTF-8 would be written the same (U+FFFD); the encoder says so. */
  "if not s then assert(eerr:find('twice', 1, true), eerr) return nil end\n"
  "local v2, err2 = core.json_decode(s)\n"
  "assert(v2 ~= nil, err2)\n" /* false is a value */
  "local again = assert(core.json_encode(v2))\n"
  "assert(again == s, 'encoding is stable')\n"
  "return s\n";

static lua_State *L; /* one state for the whole run, like a long-lived host */

static void close_state(void)
{
  lua_close(L);
  L = NULL;
}

static void check_lua(const char *text, size_t size)
{
  if (!L) {
    L = luaL_newstate();
    if (!L)
      abort();
    atexit(close_state);
    luaL_openlibs(L);
    luaL_requiref(L, "chatapp.core", luaopen_chatapp_core, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.core");
  }
  if (luaL_loadstring(L, script) != LUA_OK)
    abort();
  lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.core");
  lua_pushlstring(L, text, size);
  if (lua_pcall(L, 2, 1, 0) != LUA_OK)
    abort(); /* a property above failed */
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    ca_json_doc *d = ca_json_parse(s, n, CA_JSON_MAX_DEPTH, 0, NULL, 0);
    if (!d)
      abort(); /* the encoder wrote invalid JSON */
    ca_json_free(d);
  }
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text = (const char *)data;
  char err[160];
  ca_json_doc *full = ca_json_parse(text, size, 64, 0, err, sizeof err);
  ca_json_doc *shallow =
    ca_json_parse(text, size, 64, CA_JSON_SHALLOW, err, sizeof err);
  ca_envelope env;

  if (full && !shallow)
    abort(); /* shallow must accept what full accepts */
  if (full && shallow &&
      (ca_json_root(full)->type != ca_json_root(shallow)->type ||
       ca_json_root(full)->count != ca_json_root(shallow)->count))
    abort();
  if (full) {
    const ca_json *r = ca_json_root(full);
    (void)ca_json_get_str(r, "Code");
    (void)ca_json_get(r, "PhoneNumbers");
  }
  ca_json_free(full);
  ca_json_free(shallow);
  if (ca_envelope_parse(text, size, &env, err, sizeof err) == CHATAPP_OK) {
    (void)ca_classify_answer(400, env.code);
    ca_envelope_free(&env);
  }
  check_lua(text, size);
  return 0;
}
