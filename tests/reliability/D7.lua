-- D7: error values that are tables or userdata, errors inside __gc /
-- __tostring.
-- Criterion: handled; no crash.
--
-- End to end: chatapp-run --emulator --dry-run --output json over
--   * errors.lua: one policy per odd error ("raise:WHAT"), raised in the
--     filter on every number: tables (plain, with a __tostring that
--     raises, that returns a table, that returns a string, with __name,
--     with an __index that raises), userdata (a PhoneNumber, the plan,
--     chatapp.json.null), nil, a function, a coroutine, errors inside
--     __close, inside print's tostring, and __gc (refused by setmetatable;
--     as a placeholder; and added after setmetatable, which Lua never
--     calls); and error() with a table at level 2 from a nested call.
--     Each must be reported as a policy error on every number (errors 7),
--     with a message that is text;
--   * loop.lua: an error value whose __tostring never returns: stopped by
--     the file's budget, reported as "(error object is a table value)";
--   * the well-behaved file after them: every number matched;
-- the run ends by itself (exit 1, not a signal) with its summary; then
-- a file whose loading raises a table is refused by name (exit 3).  In
-- the ASan pass of CI this runs under AddressSanitizer and UBSan too.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local RAISES = {
  { "a table", "error({ code = 1 })" },
  { "a table, __tostring raising", "error(setmetatable({}, { __tostring = function() error('nested') end }))" },
  { "a table, __tostring raising a table",
    "error(setmetatable({}, { __tostring = function() error({}) end }))" },
  { "a table, __tostring returning a table", "error(setmetatable({}, { __tostring = function() return {} end }))" },
  { "a table, __tostring returning text", "error(setmetatable({}, { __tostring = function() return 'custom' end }))" },
  { "a table, __name", "error(setmetatable({}, { __name = 'My.Error' }))" },
  { "a table, __index raising", "error(setmetatable({}, { __index = function() error('idx') end }))" },
  { "a PhoneNumber (userdata)", "error(n)" },
  { "the plan", "error(plan)" },
  { "chatapp.json.null (light userdata)", "error(require('chatapp').json.null)" },
  { "nil", "error(nil)" },
  { "a function", "error(print)" },
  { "a coroutine", "error(coroutine.create(print))" },
  { "a table from a nested call, level 2", "local function f() error({}, 2) end f()" },
  { "a table inside __close",
    "do local x <close> = setmetatable({}, { __close = function() error({ 'close' }) end }) end" },
  { "__close after a table error",
    "local x <close> = setmetatable({}, { __close = function() error('second') end }) error({})" },
  { "inside print's tostring", "print(setmetatable({}, { __tostring = function() error({}) end }))" },
  { "__gc refused", "setmetatable({}, { __gc = function() error({}) end })" },
  { "__gc as a placeholder", "setmetatable({}, { __gc = true })" },
  { "__gc added afterwards (never called), then a table",
    "local mt = {} setmetatable({}, mt) mt.__gc = function() error('gc') end collectgarbage() error({})" },
}

local dir = E.tmpdir()
local src = { 'local chatapp = require "chatapp"', "local list = {}" }
for _, c in ipairs(RAISES) do
  src[#src + 1] = ("list[#list + 1] = chatapp.policy { name = %q, decide = function(n, plan) %s end }")
    :format("raise:" .. c[1], c[2])
end
src[#src + 1] = "return list"
local errors = E.write(dir .. "/errors.lua", table.concat(src, "\n"))
local loop = E.write(dir .. "/loop.lua", [[
return require("chatapp").policy { name = "loop", filter = function()
  error(setmetatable({}, { __tostring = function() while true do end end }))
end }]])

local r = E.dry_run { "--instruction-limit", "20000000", errors, loop }
local blurb, by = r.blurb, r.by
T.eq(r.code, 1, "the run ended by itself, policies failing: " .. blurb)
T.check(r.summary, "a summary: " .. blurb)
for _, c in ipairs(RAISES) do
  local p = by["raise:" .. c[1]]
  T.eq(p and p.errors, 7, c[1] .. ": a policy error on every number")
end
-- every error line is text, naming the policy
local errs = 0
for _, e in ipairs(r.kinds.error or {}) do
  errs = errs + 1
  T.check(type(e.message) == "string" and #e.message > 0, "an error with a message")
end
T.check(errs >= #RAISES * 7, "the errors are in the report: " .. errs)
T.check(r.err:find("(error object is a table value)", 1, true), "a table without text says so")
T.check(r.err:find("custom", 1, true), "a __tostring that returns text names the error")
T.check(by.loop and by.loop.errors >= 1, "the looping __tostring: reported")
T.check(r.err:find("budget used up (shared by every policy of " .. loop, 1, true),
  "the looping __tostring ran under loop.lua's budget: " .. blurb)
T.eq(by["well-behaved"] and by["well-behaved"].matched, 7, "the well-behaved file")

-- raised while loading
local ENV = { CHATAPP_EMULATOR = E.emu_bin, ALIBABA_CLOUD_ACCESS_KEY_ID = false,
              ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
local bad = E.write(dir .. "/load-raises.lua", "error(setmetatable({}, { __tostring = function() error({}) end }))")
r = E.run({ "--emulator", "--dry-run", bad, E.path("tests/policies/well-behaved.lua") }, ENV,
          { wrap = "timeout -s KILL 60" })
T.eq(r.code, 3, "a file that raises a table while loading: refused: " .. r.err)
T.check(r.err:find("load-raises.lua", 1, true), "named: " .. r.err)
E.cleanup()
return T.done()
