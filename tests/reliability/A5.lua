-- ctest: serial timeout=240
-- A5, server quota lowered to 5/s (another tenant).  Criterion: throttled
-- share < 5% after 10 s; retries/first attempts <= 1.1; recovers to
-- >= 8.5/s within 30 s after the quota is restored.
--
-- How: one chatapp-run process (tests/bench/worker.lua: 300
-- QueryChatappPhoneNumbers in one batch, the host-local limiter) against
-- the emulator at quota 10 with 300 +- 50 ms latency; 5 s in, the test
-- lowers the emulator's quota to 5/s for 20 s (POST /_emulator/quota, the
-- emulator's clock: the rule's start is taken from its request log).
-- From the log: the throttled share of the attempts that arrived from
-- 10 s after the quota was lowered until it was restored (< 5%); all
-- attempts / first attempts over the whole run (<= 1.1: at most one
-- retry per ten calls, the stricter reading of "retries / first
-- attempts"); and the first 3 s window after the restore whose accepted
-- arrivals average >= 8.5/s must end within 30 s of the restore, and
-- the rate from there to the end of the run stays >= 8.5/s.  No
-- loosening (serial).  About 45 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local core = require("chatapp").core

local N, LOWER_AFTER_MS, LOWERED_MS = 300, 5000, 20000
local worker = E.root .. "/tests/bench/worker.lua"

local emu = E.emulator { "--quota", "10", "--latency", "300:50" }
local p = E.start { "--lua", worker, emu.url, E.tmpdir() .. "/limiter.state", tostring(N) }
T.check(E.wait_for(function() return #emu:log_lines() >= 1 end, 10000), "the worker started calling")
local first_us = emu:log_lines()[1].t_us
E.sleep_ms(LOWER_AFTER_MS)
-- the emulator's monotonic clock is ours (CLOCK_MONOTONIC, microseconds)
local lowered_us = math.floor(core.monotonic() * 1e6)
emu:control("POST", "quota", { quota = 5, for_ms = LOWERED_MS })
local restored_us = lowered_us + LOWERED_MS * 1000
T.eq(p.wait(180000), 0, p.err())
local res = E.last_json(p.dir .. "/stdout")
local lines = emu:log_lines()
local st = emu:stats()
emu:stop()

T.eq(res.ok, N, "every call succeeded: " .. tostring(res.first_error))
T.check(lowered_us - first_us >= 4000000, "calls ran at the full quota before it was lowered")
-- throttled share from 10 s after the quota was lowered until it was restored
local late, late_throttled, throttled_lowered = 0, 0, 0
local accepted = {}
for _, l in ipairs(lines) do
  if l.t_us >= lowered_us + 10000000 and l.t_us < restored_us then
    late = late + 1
    if l.verdict == "throttled" then late_throttled = late_throttled + 1 end
  end
  if l.verdict == "throttled" then throttled_lowered = throttled_lowered + 1 end
  if l.verdict == "accepted" then accepted[#accepted + 1] = l.t_us end
end
table.sort(accepted)
T.check(late >= 30, "attempts to measure in the late part of the lowered quota: " .. late)
local share = late_throttled / math.max(late, 1)
-- recovery: the first 3 s window starting after the restore with >= 25.5 accepted
local recovered_at
local hi = 1
for lo = 1, #accepted do
  if accepted[lo] >= restored_us then
    while hi <= #accepted and accepted[hi] < accepted[lo] + 3000000 do hi = hi + 1 end
    if hi - lo >= 25.5 and hi <= #accepted then
      recovered_at = accepted[lo]
      break
    end
    if hi > #accepted then break end
  end
end
local rest_rate
if recovered_at then
  local n, last = 0, recovered_at
  for _, t in ipairs(accepted) do
    if t >= recovered_at then n, last = n + 1, t end
  end
  rest_rate = (n - 1) / ((last - recovered_at) / 1e6)
end
io.stderr:write(("A5: %d attempts for %d calls (%.3f), %d throttled in all; from 10 s after the quota was "
  .. "lowered: %d of %d throttled (%.1f%%); >= 8.5/s %s after the restore, then %s/s\n"):format(
  res.attempts, N, res.attempts / N, throttled_lowered, late_throttled, late, 100 * share,
  recovered_at and ("%.1f s"):format((recovered_at - restored_us) / 1e6) or "never",
  rest_rate and ("%.2f"):format(rest_rate) or "-"))
T.check(share < 0.05, ("throttled share < 5%% after 10 s: %.1f%%"):format(100 * share))
T.check(res.attempts / N <= 1.1, ("attempts / first attempts <= 1.1: %.3f"):format(res.attempts / N))
T.eq(st.throttled, throttled_lowered, "the log and the emulator's count agree")
T.check(recovered_at and recovered_at + 3000000 <= restored_us + 30000000,
  "back to >= 8.5/s within 30 s of the restore")
T.check(rest_rate and rest_rate >= 8.5, "and it stays there: " .. tostring(rest_rate))
E.cleanup()
return T.done()
