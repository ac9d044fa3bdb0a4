-- ctest: timeout=180
-- D2: a string.rep bomb; table growth.
-- Criterion: ERRMEM at the cap; host RSS < cap + 16 MB.
--
-- Each bomb runs in a fresh chatapp-run process (this file again, with
-- "child N"), through the real runner and sandbox (chatapp.runner as the
-- CLI drives it, a host serving three fixture numbers) at the default cap,
-- --memory-limit-mb 64, with a well-behaved file after it.  The child
-- reports:
--   * the policy's error: "memory cap of 64 MB exceeded" (the sandbox's
--     name for LUA_ERRMEM at the cap; a bomb that catches it with pcall
--     and carries on hits it again and is still stopped), and the other
--     file evaluating every number;
--   * the Lua heap's peak (core.memory(), the counting allocator's own
--     figure, which counts malloc's chunks, header and rounding included)
--     at most the cap above what the state held before the run, plus the
--     runner's own bookkeeping (under 1 MB);
--   * the process's peak resident size, VmHWM from /proc/self/status (the
--     kernel's accounting of this process), under cap + 16 MB = 80 MB:
--     the whole process, libraries, runner and all.
-- Under AddressSanitizer (ASAN_OPTIONS set) resident sizes measure ASan's
-- shadow memory and quarantine, not ours: the RSS check is skipped there
-- (the cap check is not).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core

local CAP_MB = 64
local MB = 1024 * 1024

local BOMBS = {
  { "string.rep of 1 GiB", "return #string.rep('x', 1 << 30) > 0" },
  { "string.rep with a separator", "return #('xy'):rep(1 << 22, ('z'):rep(64)) > 0" },
  { "doubling a string", "local s = 'x' for _ = 1, 40 do s = s .. s end return #s > 0" },
  { "a table growing", "local t = {} for i = 1, 1e9 do t[i] = i end" },
  { "a table of tables", "local t = {} for i = 1, 1e9 do t[i] = { i } end" },
  { "a hash growing", "local t = {} for i = 1, 1e9 do t['k' .. i] = true end" },
  { "table.concat of a growing list",
    "local t = {} for i = 1, 1e9 do t[i] = 'abcdefgh' if i % 100000 == 0 then local s = table.concat(t) end end" },
  { "ERRMEM caught with pcall, then asked again",
    "local keep = {} for _ = 1, 1e6 do if not pcall(function() keep[#keep + 1] = ('x'):rep(1 << 20) end) "
      .. "then break end end keep[#keep + 1] = ('x'):rep(1 << 20)" },
}

if arg[1] == "child" then
  local bomb = BOMBS[tonumber(arg[2])]
  local runner_mod = require "chatapp.runner"
  local host = require("fake_host").new { { PhoneNumber = "1" }, { PhoneNumber = "2" }, { PhoneNumber = "3" } }
  local r = runner_mod.new({ output = "none", memory_limit_mb = CAP_MB }, host)
  collectgarbage()
  local base = core.memory()
  assert(r:load_string("bomb.lua", ([[
return require("chatapp").policy { name = "bomb", filter = function(n) %s end }]]):format(bomb[2])))
  assert(r:load_string("good.lua", [[
return require("chatapp").policy { name = "good", filter = function(n) return true end }]]))
  local rep = r:run { dry_run = true }
  local _, peak = core.memory()
  local status = io.open("/proc/self/status"):read("a")
  local matched = {}
  for _, p in ipairs(rep.policies) do matched[p.name] = p.matched end
  io.write(assert(chatapp.json.encode {
    error = rep.errors[1] and rep.errors[1].message or "",
    good = matched.good, bomb = matched.bomb,
    heap_peak = peak - base,
    hwm_kb = tonumber(status:match("VmHWM:%s*(%d+)")),
  }), "\n")
  return 0
end

local E = require "e2e"
local asan = os.getenv("ASAN_OPTIONS") ~= nil
local cases = {}
for i, bomb in ipairs(BOMBS) do
  cases[#cases + 1] = { bomb[1], function()
    local t0 = core.monotonic()
    local p = io.popen(("%s --lua %s child %d 2>&1"):format(E.quote(E.run_bin), E.quote(arg[0]), i))
    local out = p:read("a")
    p:close()
    local r = chatapp.json.decode(out:match("([^\n]*)\n*$") or "")
    if not T.check(type(r) == "table", bomb[1] .. ": the child's report: " .. out) then return end
    io.stderr:write(("D2: %s: %.2f s, Lua heap peak %.1f MB, VmHWM %.1f MB\n"):format(
      bomb[1], core.monotonic() - t0, r.heap_peak / MB, r.hwm_kb / 1024))
    T.check(r.error:find(("memory cap of %d MB exceeded"):format(CAP_MB), 1, true), bomb[1] .. ": " .. r.error)
    T.eq(r.bomb, 0, bomb[1] .. ": the bomb matched nothing")
    T.eq(r.good, 3, bomb[1] .. ": the other file evaluated every number")
    -- (the runner's own bookkeeping beside the policy's: well under 1 MB)
    T.check(r.heap_peak <= CAP_MB * MB + MB, bomb[1] .. ": the heap stayed at the cap: " .. r.heap_peak)
    if not asan then
      T.check(r.hwm_kb * 1024 < (CAP_MB + 16) * MB,
        ("%s: VmHWM %.1f MB < cap + 16 MB"):format(bomb[1], r.hwm_kb / 1024))
    end
  end }
end
T.cases(cases)
return T.done()
