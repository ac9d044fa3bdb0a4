-- ctest: serial timeout=180
-- A2, 4 processes on one host, shared local limiter, 300 calls total.
-- Criterion: the same as A1 across all processes: the server's max in any
-- 1 s window <= 10; zero throttles; throughput >= 8.5/s; every nonce
-- unique.
--
-- How: four chatapp-run processes started together (tests/bench/worker.lua,
-- 75 QueryChatappPhoneNumbers each) sharing one limiter state file (the
-- host-local limiter, docs/internals/limiter.md), against the emulator at
-- quota 10 with 300 +- 50 ms latency.  From the emulator's request log:
-- the most arrivals of any verdict in any 1 s window, and its own
-- busiest_1s; its throttle count; the nonces of all four.  Throughput of
-- the four together: accepted arrivals, (n - 1) / (last - first), and 300
-- / the wall time from the first process's start to the last one's end.
-- No loosening (serial).  About 32 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local core = require("chatapp").core

local P, PER = 4, 75
local worker = E.root .. "/tests/bench/worker.lua"

local emu = E.emulator { "--quota", "10", "--latency", "300:50" }
local state = E.tmpdir() .. "/limiter.state"
local procs = {}
local t0 = core.monotonic()
for i = 1, P do
  procs[i] = E.start { "--lua", worker, emu.url, state, tostring(PER) }
end
local ok_calls = 0
for i = 1, P do
  T.eq(procs[i].wait(120000), 0, "process " .. i .. ": " .. procs[i].err())
  local res = E.last_json(procs[i].dir .. "/stdout")
  ok_calls = ok_calls + res.ok
  T.eq(res.throttled, 0, "process " .. i .. " saw no throttle")
end
local wall = core.monotonic() - t0
local lines = emu:log_lines()
local st = emu:stats()
emu:stop()

T.eq(ok_calls, P * PER, "every call succeeded")
local all, accepted, dup = E.log_times(lines)
T.eq(#lines, P * PER, "the emulator saw each call once")
T.eq(dup, 0, "every nonce unique across the processes")
local busiest = E.busiest(all, 1000000)
T.check(busiest <= 10, "max in any 1 s window <= 10: " .. busiest)
T.check(st.operations.QueryChatappPhoneNumbers.busiest_1s <= 10, "the emulator's own busiest_1s")
T.eq(st.throttled, 0, "zero throttles")
local rate = (#accepted - 1) / ((accepted[#accepted] - accepted[1]) / 1e6)
io.stderr:write(("A2: %.2f calls/s at the emulator, %.2f/s end to end (%.1f s), busiest 1 s %d\n")
  :format(rate, P * PER / wall, wall, busiest))
T.check(rate >= 8.5, ("throughput at the emulator >= 8.5/s: %.2f"):format(rate))
T.check(P * PER / wall >= 8.5, ("throughput end to end >= 8.5/s: %.2f"):format(P * PER / wall))
E.cleanup()
return T.done()
