-- D5: changing the string metatable, API tables or userdata metatables.
-- Criterion: error; the next evaluation is unaffected.
--
-- End to end: chatapp-run --emulator --dry-run --output json with
--   * changes.lua: one policy per change ("change:WHAT"), made
--     unprotected in the filter, as a script would: each must raise on
--     every one of the 7 numbers (errors 7, matched 0); then, in the same
--     file, "check-same-file", which matches a number only when
--     everything the changes aimed at is as it was;
--   * check.lua, a second file with the same check ("check-next-file"),
--     and the well-behaved file: every number matched.
-- The check reads the string methods through a string and through the
-- string table, the chatapp API tables, a PhoneNumber's fields and
-- methods, and a plan's methods (planning a log line).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local CHANGES = {
  -- the string metatable
  { "string metatable __index", "getmetatable('').__index = {}" },
  { "string metatable method", "getmetatable('').__index.upper = nil" },
  { "setmetatable on a string", "setmetatable('', {})" },
  { "string table", "string.upper = function() return 'pwned' end" },
  { "string table, a new key", "string.evil = 1" },
  -- API tables
  { "chatapp.policy", "require('chatapp').policy = nil" },
  { "chatapp enum", "require('chatapp').Status.CONNECTED = 'x'" },
  { "chatapp.enums", "require('chatapp').enums.Status.CONNECTED = 'x'" },
  { "chatapp.fields", "require('chatapp').fields[1] = 'x'" },
  { "chatapp.json", "require('chatapp').json.encode = nil" },
  { "chatapp metatable", "setmetatable(require('chatapp'), {})" },
  { "chatapp view's metatable", "getmetatable(require('chatapp')).__index = {}" },
  { "math", "math.pi = 3" },
  { "table", "table.insert = nil" },
  { "os", "os.time = function() return 0 end" },
  { "coroutine", "coroutine.wrap = nil" },
  -- userdata metatables
  { "PhoneNumber metatable", "getmetatable(n).__index = nil" },
  { "PhoneNumber setmetatable", "setmetatable(n, {})" },
  { "PhoneNumber field", "n.phone_number = 'x'" },
  { "json.array metatable", "getmetatable(require('chatapp').json.array()).__newindex = print" },
}

local CHECK = [[
function(n, plan)
  local chatapp = require "chatapp"
  local ok = ("x"):upper() == "X" and string.upper("y") == "Y" and string.evil == nil
    and ("ab"):find("b", 1, true) == 2
    and type(chatapp.policy) == "function" and chatapp.Status.CONNECTED == "CONNECTED"
    and type(chatapp.json.encode) == "function" and chatapp.json.encode(chatapp.json.array()) == "[]"
    and math.pi > 3.14 and type(table.insert) == "function" and os.time() > 0
    and type(coroutine.wrap) == "function"
    and type(n.phone_number) == "string" and n.phone_number:match("^%d+$") ~= nil
    and type(getmetatable(n)) ~= "table"
  if ok then plan:log("intact: %s", n.phone_number) end
  return ok
end]]

local dir = E.tmpdir()
local src = { 'local chatapp = require "chatapp"', "local list = {}" }
for _, c in ipairs(CHANGES) do
  src[#src + 1] = ("list[#list + 1] = chatapp.policy { name = %q, filter = function(n) %s return true end }")
    :format("change:" .. c[1], c[2])
end
src[#src + 1] = ("list[#list + 1] = chatapp.policy { name = 'check-same-file', decide = %s }"):format(CHECK)
src[#src + 1] = "return list"
local changes = E.write(dir .. "/changes.lua", table.concat(src, "\n"))
local check = E.write(dir .. "/check.lua",
  ("return require('chatapp').policy { name = 'check-next-file', decide = %s }"):format(CHECK))

local r = E.dry_run { changes, check }
local by = r.by
T.eq(r.code, 1, "policies failed, the run completed: " .. r.blurb)
T.check(r.summary, "a summary: " .. r.blurb)
for _, c in ipairs(CHANGES) do
  local p = by["change:" .. c[1]]
  T.eq(p and p.errors, 7, c[1] .. ": an error on every number")
  T.eq(p and p.matched, 0, c[1] .. ": nothing matched")
end
for _, name in ipairs { "check-same-file", "check-next-file" } do
  T.eq(by[name] and by[name].errors, 0, name .. ": no error")
  local logged = 0
  for _, a in ipairs(r.kinds.action or {}) do
    if a.policy == name and a.request and tostring(a.request.message):find("intact", 1, true) then logged = logged + 1 end
  end
  T.eq(logged, 7, name .. ": every number intact, and the plan works")
end
T.eq(by["well-behaved"] and by["well-behaved"].matched, 7, "the well-behaved file")
E.cleanup()
return T.done()
