-- A3, kill -9 one process while it holds the limiter lock.  Criterion:
-- others continue within 1 s; still <= 10 per window.
--
-- How: three chatapp-run processes (tests/bench/worker.lua, 40
-- QueryChatappPhoneNumbers each) share one host-local limiter file
-- against the emulator at quota 10 (100 ms latency).  The first one runs
-- with CHATAPP_TEST_LIMITER_HOLD_AFTER=25 (docs/internals/testing.md): the
-- 25th time it takes the file's lock it says so and keeps the lock.  The
-- test waits for that line, sees the lock held by that pid in
-- /proc/locks, sees the others stopped (no arrival at the emulator for
-- 0.5 s: they wait for the lock), and kill -9s the holder.  Held: the
-- first arrival after the kill comes within 1 s of it; the two others
-- finish every call (exit 0); the emulator's log never has more than 10
-- arrivals in any 1 s window, and no throttle answer.  About 12 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local core = require("chatapp").core

local PER = 40
local worker = E.root .. "/tests/bench/worker.lua"

local emu = E.emulator { "--quota", "10", "--latency", "100" }
local state = E.tmpdir() .. "/limiter.state"
local victim = E.start({ "--lua", worker, emu.url, state, tostring(PER) },
  { CHATAPP_TEST_LIMITER_HOLD_AFTER = "25" })
local others = {}
for i = 1, 2 do others[i] = E.start { "--lua", worker, emu.url, state, tostring(PER) } end

T.check(victim.wait_err("holding the limiter lock", 30000), "the victim holds the lock: " .. victim.err())
-- the lock, as the kernel sees it: "N: FLOCK ADVISORY WRITE PID maj:min:INODE ..."
local p = io.popen("stat -c %i " .. E.quote(state))
local inode = p:read("l")
p:close()
local held = false
for line in (E.read("/proc/locks") or ""):gmatch("[^\n]+") do
  local pid, ino = line:match("FLOCK%s+%S+%s+WRITE%s+(%d+)%s+%x+:%x+:(%d+)")
  if pid and tonumber(pid) == victim.pid and ino == inode then held = true end
end
T.check(held, "/proc/locks: the victim " .. victim.pid .. " holds the lock on inode " .. tostring(inode))
-- the others wait for it: nothing new reaches the emulator
local n0 = #emu:log_lines()
E.sleep_ms(500)
local n_before = #emu:log_lines()
E.sleep_ms(500)
T.eq(#emu:log_lines(), n_before, "no call started while the lock was held")
T.check(n0 > 0, "calls were made before the hold")

os.execute("kill -9 " .. victim.pid)
local killed_us = math.floor(core.monotonic() * 1e6)
T.check(E.wait_for(function() return not E.alive(victim.pid) end, 5000), "the victim died")
for i = 1, 2 do
  T.eq(others[i].wait(60000), 0, "process " .. (i + 1) .. ": " .. others[i].err())
  local res = E.last_json(others[i].dir .. "/stdout")
  T.eq(res.ok, PER, "process " .. (i + 1) .. " made every call")
end
local lines = emu:log_lines()
local st = emu:stats()
emu:stop()

local all, first_after = {}, nil
for _, l in ipairs(lines) do
  all[#all + 1] = l.t_us
  if l.t_us >= killed_us and (not first_after or l.t_us < first_after) then first_after = l.t_us end
end
table.sort(all)
local resumed = first_after and (first_after - killed_us) / 1e6
io.stderr:write(("A3: the others resumed %.3f s after the kill; busiest 1 s %d\n"):format(resumed or -1,
  E.busiest(all, 1000000)))
T.check(resumed and resumed <= 1.0, "the others continue within 1 s: " .. tostring(resumed))
T.check(E.busiest(all, 1000000) <= 10, "still <= 10 per window: " .. E.busiest(all, 1000000))
T.eq(st.throttled, 0, "no throttle answer")
E.cleanup()
return T.done()
