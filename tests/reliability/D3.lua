-- ctest: serial timeout=120
-- D3: backtracking patterns (the cases of section 4.1), a gsub bomb.
-- Criterion: refused by the wrappers or killed by the process limit within
-- 2x the time limit.
--
-- Each pattern runs as a policy through the real runner and sandbox
-- (chatapp.runner as the CLI drives it, a host serving three fixture
-- numbers), with a time budget of 100 ms (the runner's time_limit_ms;
-- docs/policies.md) and instructions unlimited, a well-behaved file after
-- it.  Pass: the policy is stopped (refused by the pattern wrappers,
-- "can take hours", or out of its time or memory budget), the other file
-- evaluates every number, and the whole run is over within 2 x 100 ms,
-- measured around it.  Lua's own matcher takes 118 s and 1.3 s on the
-- first two (section 4.1), with the hook never firing.  RUN_SERIAL: the
-- time is measured alone on the machine.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local runner_mod = require "chatapp.runner"

local LIMIT_MS = 100

local host = require("fake_host").new {
  { PhoneNumber = "8613800000001" }, { PhoneNumber = "8613800000002" }, { PhoneNumber = "8613800000003" },
}

local function run(body)
  local r = runner_mod.new({ output = "none", memory_limit_mb = 32, instruction_limit = 1e12,
                             time_limit_ms = LIMIT_MS }, host)
  assert(r:load_string("bomb.lua", ([[
local chatapp = require "chatapp"
return chatapp.policy { name = "bomb", filter = function(n) %s end }]]):format(body)))
  assert(r:load_string("good.lua", [[
return require("chatapp").policy { name = "good", filter = function(n) return true end }]]))
  local t0 = core.monotonic()
  local rep = r:run { dry_run = true }
  local by = {}
  for _, p in ipairs(rep.policies) do by[p.name] = p end
  return rep, core.monotonic() - t0, by
end

local STOPPED = { "can take hours", "time budget exceeded", "memory cap of 32 MB exceeded" }

local CASES = {
  -- section 4.1, as measured there
  { "4.1: find, ('a-'):rep(14) .. 'b' over 22 a's", "return (('a'):rep(22)):find(('a-'):rep(14) .. 'b')" },
  { "4.1: gsub, ('a?'):rep(24) .. ('a'):rep(24) over 24 a's",
    "return (('a'):rep(24)):gsub(('a?'):rep(24) .. ('a'):rep(24), '') ~= nil" },
  -- the same through every pattern function and a method call
  { "match, ('.-'):rep(9) .. 'x'", "return (n.phone_number:rep(50)):match(('.-'):rep(9) .. 'x') ~= nil" },
  { "gmatch, ('a*'):rep(12) .. 'b'",
    "for m in (('a'):rep(40)):gmatch(('a*'):rep(12) .. 'b') do end return true" },
  { "find, anchored but nested", "return (('a'):rep(30)):find('^' .. ('a?'):rep(30) .. ('a'):rep(30) .. 'b')" },
  { "a back-reference over a long subject", "return (('ab'):rep(1e5)):find('(a.-)%1%1%1x') ~= nil" },
  { "a 100 KB set, repeated", "return (('b'):rep(1e5)):find('[' .. ('b'):rep(1e5) .. 'a]*c') ~= nil" },
  { "%b over a long subject, repeated",
    "return ((('('):rep(5e4)) .. (')'):rep(4e4)):find(('%b()'):rep(3) .. 'x') ~= nil" },
  -- gsub bombs
  { "gsub: every byte of 1 MB into 1 MB", "return #(('x'):rep(1e6)):gsub('.', ('y'):rep(1e6)) > 0" },
  { "gsub: a doubling loop", "local s = 'xx' while true do s = s:gsub('x', 'xx') end" },
  { "gsub: a function replacement that never returns",
    "return (('x'):rep(10)):gsub('x', function() while true do end end)" },
  { "gsub: a table replacement with an endless __index",
    "return (('x'):rep(10)):gsub('x', setmetatable({}, { __index = function() while true do end end }))" },
  { "gsub: a long subject, a cheap pattern, in a loop",
    "local s = ('ab'):rep(5e5) while true do s:gsub('a', 'b') end" },
}

local cases = {}
for _, c in ipairs(CASES) do
  cases[#cases + 1] = { c[1], function()
    local rep, seconds, by = run(c[2])
    local msg = rep.errors[1] and rep.errors[1].message or ""
    io.stderr:write(("D3: %s: %.1f ms: %s\n"):format(c[1], seconds * 1000, msg:match("^[^\n]*")))
    local stopped = false
    for _, s in ipairs(STOPPED) do stopped = stopped or msg:find(s, 1, true) ~= nil end
    T.check(stopped, c[1] .. ": refused or stopped: " .. msg)
    T.eq(by.bomb and by.bomb.matched, 0, c[1])
    T.eq(by.good and by.good.matched, 3, c[1] .. ": the other file evaluates every number")
    T.check(seconds * 1000 <= 2 * LIMIT_MS,
      ("%s: over within 2 x %d ms: %.1f ms"):format(c[1], LIMIT_MS, seconds * 1000))
  end }
end

-- What is not refused still works: everyday patterns over the numbers.
cases[#cases + 1] = { "everyday patterns are not refused", function()
  local rep, _, by = run("return n.phone_number:find('^86%d+$') ~= nil and n.phone_number:gsub('%d', 'x'):match('^x+$') "
    .. "and (('a.b'):find('.', 1, true)) == 2 and ('k=v; k2=v2'):match('(%w+)=(%w+)') == 'k'")
  T.eq(by.bomb.matched, 3, rep.errors[1] and rep.errors[1].message)
end }

T.cases(cases)
return T.done()
