-- The LuaLS stubs (lua/types/chatapp.lua) repeat the enum tables of
-- runtime/lca_phone.c: this test holds them together, both ways.  Every
-- enum the runtime knows has an `---@enum chatapp.Name` table in the stubs
-- with exactly its values (no value missing, none extra, each member equal
-- to its name), the stubs declare no enum the runtime lacks, and the
-- PhoneNumber field of each enum is typed with it.
--
--   chatapp-run --lua test_stubs.lua lua/types/chatapp.lua
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"

local stubs_path = assert(arg[1], "usage: test_stubs.lua STUBS.lua")
local stubs = T.read(stubs_path)

--- The enum tables of a stubs text: name -> { list = {values in order},
--- set = {value = true} }, and a list of malformed member lines.
local function stub_enums(text)
  local found, bad = {}, {}
  for name, body in text:gmatch("%-%-%-@enum chatapp%.([%w_]+)\nchatapp%.[%w_]+ = {\n(.-)\n}") do
    local e = { list = {}, set = {} }
    for line in (body .. "\n"):gmatch("(.-)\n") do
      local key, value = line:match('^%s*([%w_]+)%s*=%s*"([^"]*)",?%s*$')
      if not key or key ~= value then
        bad[#bad + 1] = name .. ": " .. line
      else
        e.list[#e.list + 1] = value
        e.set[value] = true
      end
    end
    found[name] = e
  end
  return found, bad
end

-- Every `---@enum` line of the text is parsed (none skipped by the pattern).
local function count_enum_lines(text)
  local n = 0
  for _ in text:gmatch("%-%-%-@enum ") do n = n + 1 end
  return n
end

--- Differences between the runtime's enums and the stubs' tables, as
--- messages; empty when they agree.
local function compare(runtime, stub, stub_lines)
  local diffs = {}
  local function say(fmt, ...) diffs[#diffs + 1] = fmt:format(...) end
  local parsed = 0
  for name in pairs(stub) do
    parsed = parsed + 1
    if not runtime[name] then say("the stubs declare chatapp.%s, the runtime has no such enum", name) end
  end
  if parsed ~= stub_lines then
    say("%d ---@enum lines, %d tables parsed (write them as `chatapp.Name = {` ... `}`)", stub_lines, parsed)
  end
  for name, e in pairs(runtime) do
    local s = stub[name]
    if not s then
      say("the runtime's enum %s has no ---@enum chatapp.%s in the stubs", name, name)
    else
      local known = {}
      for _, v in ipairs(e.values) do
        known[v] = true
        if not s.set[v] then say("%s.%s is missing from the stubs", name, v) end
      end
      for _, v in ipairs(s.list) do
        if not known[v] then say("the stubs have %s.%s, the runtime does not", name, v) end
      end
      if #s.list ~= #e.values then
        say("%s: %d values in the stubs, %d in the runtime", name, #s.list, #e.values)
      end
    end
  end
  table.sort(diffs)
  return diffs
end

local function malformed(text)
  local _, bad = stub_enums(text)
  return bad
end

T.cases {
  { "the runtime has enums to compare", function()
    local n = 0
    for _, e in pairs(chatapp.enums) do
      n = n + 1
      T.check(#e.values > 0, e.field)
    end
    T.eq(n, 6, "six enums")
  end },

  { "the stubs agree with the runtime, both ways", function()
    local stub = stub_enums(stubs)
    local diffs = compare(chatapp.enums, stub, count_enum_lines(stubs))
    T.eq(#diffs, 0, table.concat(diffs, "\n  "))
    local bad = malformed(stubs)
    T.eq(#bad, 0, "members are NAME = \"NAME\": " .. table.concat(bad, "\n  "))
  end },

  { "each enum types its PhoneNumber field", function()
    for name, e in pairs(chatapp.enums) do
      T.check(stubs:find(("\n---@field %s? chatapp.%s|string"):format(e.field, name), 1, true),
        ("---@field %s? chatapp.%s|string"):format(e.field, name))
    end
  end },

  -- The comparison itself: it sees one value changed, removed or added,
  -- and an enum missing on either side.
  { "the comparison catches every kind of drift", function()
    local function drift(from, to)
      local text, n = stubs:gsub(from, to, 1)
      T.eq(n, 1, "the mutation applies: " .. from)
      return #compare(chatapp.enums, stub_enums(text), count_enum_lines(text)) + #malformed(text)
    end
    T.check(drift('\n  BANNED = "BANNED",', '\n  BANNED = "BANNED_X",') > 0, "a value changed")
    T.check(drift('\n  BANNED = "BANNED",', '\n  BANNED_X = "BANNED_X",') > 0, "a member renamed")
    T.check(drift('\n  BANNED = "BANNED",', "") > 0, "a value removed")
    T.check(drift('\n  BANNED = "BANNED",', '\n  BANNED = "BANNED",\n  GONE = "GONE",') > 0, "a value added")
    T.check(drift("\n%-%-%-@enum chatapp%.NewNameStatus\n", "\n---@enum chatapp.Renamed\n") > 0,
      "an enum the runtime lacks")
    T.check(drift("\n%-%-%-@enum chatapp%.NewNameStatus\n", "\n") > 0, "an enum the stubs lack")
    local runtime = {}
    for k, v in pairs(chatapp.enums) do runtime[k] = v end
    runtime.Extra = { values = { "X" }, field = "extra" }
    T.check(#compare(runtime, stub_enums(stubs), count_enum_lines(stubs)) > 0, "a runtime enum missing from the stubs")
    runtime.Extra = nil
    runtime.Status = { values = { "CONNECTED" }, field = "status" }
    T.check(#compare(runtime, stub_enums(stubs), count_enum_lines(stubs)) > 0, "a runtime with fewer values")
  end },
}

return T.done()
