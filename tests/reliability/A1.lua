-- ctest: serial timeout=180
-- A1, one process, 300 queued calls.  Criterion: the server's max in any
-- 1 s window <= 10; zero throttles; throughput >= 8.5/s; every nonce
-- unique.
--
-- How: one chatapp-run process (tests/bench/worker.lua: a client with
-- the host-local limiter, one batch of 300 QueryChatappPhoneNumbers)
-- against the emulator at quota 10 with 300 +- 50 ms latency (a network's
-- round trip, so calls overlap).  From the emulator's request log: the
-- most arrivals in any 1 s window (every verdict counted, not only the
-- accepted ones) and the emulator's own busiest_1s; its throttle count;
-- each line's nonce.  Throughput both ways: the emulator's accepted
-- arrivals, (n - 1) / (last - first), and the worker's calls completed /
-- its wall time from the batch's start to its end.  No loosening (serial:
-- measured alone on the machine).  About 31 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local N = 300
local worker = E.root .. "/tests/bench/worker.lua"

local emu = E.emulator { "--quota", "10", "--latency", "300:50" }
local dir = E.tmpdir()
local r = E.run({ "--lua", worker, emu.url, dir .. "/limiter.state", tostring(N) }, nil,
  { no_limiter = true })
T.eq(r.code, 0, r.err)
local res = E.last_json(r.dir .. "/stdout")
local lines = emu:log_lines()
local st = emu:stats()
emu:stop()

T.eq(res.ok, N, "every call succeeded: " .. tostring(res.first_error))
T.eq(res.attempts, N, "one attempt each")
local all, accepted, dup = E.log_times(lines)
T.eq(#lines, N, "the emulator saw each call once")
T.eq(dup, 0, "every nonce unique (and present)")
local busiest = E.busiest(all, 1000000)
T.check(busiest <= 10, "max in any 1 s window <= 10: " .. busiest)
T.check(st.operations.QueryChatappPhoneNumbers.busiest_1s <= 10, "the emulator's own busiest_1s")
T.eq(st.throttled, 0, "zero throttles")
T.eq((st.rejected_by_code or {}).SignatureNonceUsed, nil, "no SignatureNonceUsed")
local rate = (#accepted - 1) / ((accepted[#accepted] - accepted[1]) / 1e6)
local wall = N / res.elapsed_s
io.stderr:write(("A1: %.2f calls/s at the emulator, %.2f/s end to end (%.1f s), busiest 1 s %d\n")
  :format(rate, wall, res.elapsed_s, busiest))
T.check(rate >= 8.5, ("throughput at the emulator >= 8.5/s: %.2f"):format(rate))
T.check(wall >= 8.5, ("throughput end to end >= 8.5/s: %.2f"):format(wall))
E.cleanup()
return T.done()
