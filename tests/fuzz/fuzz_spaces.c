/*
 * Fuzz target: a --spaces file (lua/chatapp/spaces.lua): spaces.parse()
 * over the input, then spaces.name() over every space, as the runner and
 * the report use them.  Runs in the runtime's Lua state (fuzz_lua.h:
 * capped allocator, protected calls).
 *
 * Properties: no crash, no leak, no undefined behaviour; parse never
 * raises, it returns a non-empty list or nil and a message; every space
 * has a non-empty string cust_space_id, unique in the list, and string or
 * absent isv_code and label.
 */
#include <stdint.h>

#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char script[] =
  "local text = ...\n"
  "local spaces = require 'chatapp.spaces'\n"
  "local list, err = spaces.parse(text, 'spaces.json')\n"
  "if list == nil then\n"
  "  assert(type(err) == 'string', 'parse failed without a message')\n"
  "  return\n"
  "end\n"
  "assert(type(list) == 'table' and #list > 0, 'an empty list')\n"
  "local seen = {}\n"
  "for i, s in ipairs(list) do\n"
  "  assert(type(s.cust_space_id) == 'string' and s.cust_space_id ~= '')\n"
  "  assert(not seen[s.cust_space_id], 'a space listed twice')\n"
  "  seen[s.cust_space_id] = true\n"
  "  assert(s.isv_code == nil or type(s.isv_code) == 'string')\n"
  "  assert(s.label == nil or type(s.label) == 'string')\n"
  "  assert(type(spaces.name(s)) == 'string')\n"
  "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_lua_run(script, (const char *)data, size, NULL);
  return 0;
}
