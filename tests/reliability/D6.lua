-- ctest: timeout=180
-- D6: a script returns 1e6 actions or 100 MB of strings.
-- Criterion: capped; policy error reported.
--
-- End to end: chatapp-run --emulator --dry-run --output json, each flood
-- in a policy file of its own with the well-behaved file after it, at the
-- default limits (64 MB per file, 10,000 actions per policy):
--   * 1e6 actions (log lines; webhooks), planned on the first number:
--     at most 10,000 reach the report, the policy error says "more than
--     10000 actions" with the policy's file:line, and the numbers left
--     are said once with their count;
--   * 100 MB of strings: one 100 MB log line; 100 log lines of 1 MB;
--     100 webhook bodies of 1 MB; a `finish` returning 100 MB; a filter
--     returning 100 MB: each stopped at the memory cap ("memory cap of
--     64 MB exceeded") or by the action checks, reported as a policy error
--     naming the file;
-- and each time the run ends by itself (exit 1), the report on stdout is
-- within the cap (what a policy planned before it failed is kept and
-- shown, as for the action cap: so up to 64 MB of log lines), and the
-- well-behaved file matched all 7 numbers.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local core = require("chatapp").core

local MB = 1024 * 1024

local FLOODS = {
  { "1e6 log actions", "decide = function(n, plan) for i = 1, 1e6 do plan:log('line %d', i) end end",
    "more than 10000 actions" },
  { "1e6 webhooks", "decide = function(n, plan) for i = 1, 1e6 do "
    .. "plan:webhook { url = 'https://hooks.example.com/x', json = { i = i } } end end",
    "more than 10000 actions" },
  { "a 100 MB log line", "decide = function(n, plan) plan:log(('x'):rep(100 * 1024 * 1024)) end",
    "memory cap of 64 MB exceeded" },
  { "100 log lines of 1 MB", "decide = function(n, plan) for i = 1, 100 do "
    .. "plan:log(('x'):rep(1024 * 1024) .. i) end end", "memory cap of 64 MB exceeded" },
  { "100 webhook bodies of 1 MB", "decide = function(n, plan) for i = 1, 100 do "
    .. "plan:webhook { url = 'https://hooks.example.com/x', body = ('x'):rep(1024 * 1024) .. i } end end",
    "memory cap of 64 MB exceeded" },
  { "a filter returning 100 MB", "filter = function(n) local t = {} for i = 1, 100 do "
    .. "t[i] = ('x'):rep(1024 * 1024) .. i end return t end", "memory cap of 64 MB exceeded" },
  { "finish returning 100 MB", "filter = function() return true end, finish = function(plan, matched) "
    .. "local t = {} for i = 1, 100 do t[i] = ('x'):rep(1024 * 1024) .. i end return t end",
    "memory cap of 64 MB exceeded" },
}

local cases = {}
for i, f in ipairs(FLOODS) do
  cases[#cases + 1] = { f[1], function()
    local dir = E.tmpdir()
    local file = E.write(dir .. "/flood.lua", ([[
local chatapp = require "chatapp"
return chatapp.policy { name = "flood",
  %s }]]):format(f[2]))
    local t0 = core.monotonic()
    local r = E.dry_run({ file }, { seconds = 120 })
    io.stderr:write(("D6: %s: %.2f s, %d bytes of report\n"):format(f[1], core.monotonic() - t0, #r.out))
    local blurb = ("%s: exit %s\nstderr: %s"):format(f[1], tostring(r.code), r.err:sub(1, 1500))
    T.eq(r.code, 1, blurb)
    T.check(#r.out < 64 * MB, f[1] .. ": the report is within the cap: " .. #r.out)
    T.check(r.err:find(f[3], 1, true), f[1] .. ": the error says why: " .. blurb)
    T.check(r.err:find("flood.lua", 1, true), f[1] .. ": and names the file: " .. blurb)
    local by = r.by
    T.check(r.summary, f[1] .. ": a summary")
    T.check(by.flood and by.flood.errors > 0, f[1] .. ": the policy is reported failing")
    T.eq(by["well-behaved"] and by["well-behaved"].matched, 7, f[1] .. ": the well-behaved file")
    local planned = 0
    for _, a in ipairs(r.kinds.action or {}) do
      if a.policy == "flood" then planned = planned + 1 end
    end
    T.check(planned <= 10000, f[1] .. ": at most 10,000 actions: " .. planned)
    if i <= 2 then
      T.check(r.err:find("flood.lua:3: ", 1, true), f[1] .. ": with the policy's line")
      T.check(r.err:find("6 more numbers not decided after the cap of 10000 actions", 1, true),
        f[1] .. ": the numbers left, once: " .. blurb)
    end
  end }
end
T.cases(cases)
E.cleanup()
return T.done()
