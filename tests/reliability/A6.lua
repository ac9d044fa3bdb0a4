-- ctest: serial timeout=180
-- A6, 100% HTTP 500 for 60 s.  Criterion: <= 3 attempts per call; total
-- attempts <= 1.1 x first attempts + 10; no gap between retries below the
-- base backoff; limiter never exceeded.
--
-- How: the emulator answers every API call 500 InternalError (a fault
-- rule, docs/emulator.md) at quota 10; a client in this process (default
-- settings: 3 attempts, the retry budget) sends batches of 20 calls, one
-- after the other, for 60 s, each call with its own Status parameter so
-- the emulator's request log tells its attempts apart.  From the log:
-- each call's attempts (<= 3), all attempts against the calls seen (first
-- attempts), every gap between two attempts of one call (>= 100 ms, the
-- base backoff after a non-throttle failure, docs/internals/client.md),
-- the most arrivals in any 1 s window (<= 10) and no throttle answer; the
-- client's own errors agree (attempts, the code, HTTP 500, retryable).
-- Serial: 60 s, as written.  About 62 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local SECONDS, BATCH, BASE_US = 60, 20, 100000

local emu = E.emulator { "--quota", "10" }
emu:fault { kind = "error", code = "InternalError" }
local c = assert(chatapp.client { endpoint = emu.url, access_key_id = E.KEY_ID,
  access_key_secret = E.KEY_SECRET, limiter = "process" })

local t0, calls, bad, client_attempts = core.monotonic(), 0, 0, 0
while core.monotonic() - t0 < SECONDS do
  local reqs = {}
  for i = 1, BATCH do
    reqs[i] = { operation = "QueryChatappPhoneNumbers", params = { Status = "A6-" .. (calls + i) } }
  end
  local res, errs = c:batch(reqs)
  for i = 1, BATCH do
    local e = errs[i]
    if res[i] or not e or e.code ~= "InternalError" or e.http_status ~= 500 or e.retryable ~= true
       or e.attempts > 3 then
      bad = bad + 1
    end
    client_attempts = client_attempts + (e and e.attempts or 0)
  end
  calls = calls + BATCH
end
local elapsed = core.monotonic() - t0
local lines = emu:log_lines()
local st = emu:stats()
emu:stop()

T.eq(bad, 0, "every call failed with the server's 500, retryable, after <= 3 attempts (client's view)")
local by_call, all, ncalls, most = {}, {}, 0, 0
for _, l in ipairs(lines) do
  all[#all + 1] = l.t_us
  local k = l.params and l.params.Status
  if k then
    if not by_call[k] then by_call[k] = {}; ncalls = ncalls + 1 end
    table.insert(by_call[k], l.t_us)
  end
end
T.eq(ncalls, calls, "every call reached the emulator")
T.eq(#lines, client_attempts, "the emulator saw every attempt the client made")
local short, gaps = 0, 0
for k, times in pairs(by_call) do
  table.sort(times)
  most = math.max(most, #times)
  for i = 2, #times do
    gaps = gaps + 1
    if times[i] - times[i - 1] < BASE_US then
      short = short + 1
      io.stderr:write(("%s: attempts %d us apart\n"):format(k, times[i] - times[i - 1]))
    end
  end
end
table.sort(all)
local busiest = E.busiest(all, 1000000)
io.stderr:write(("A6: %.1f s, %d calls, %d attempts (%.3f per call), at most %d per call, %d retries, "
  .. "busiest 1 s %d\n"):format(elapsed, ncalls, #lines, #lines / math.max(ncalls, 1), most, gaps, busiest))
T.check(elapsed >= SECONDS, "ran for the whole 60 s")
T.check(most <= 3, "at most 3 attempts per call: " .. most)
T.check(#lines <= 1.1 * ncalls + 10, ("attempts %d <= 1.1 x %d + 10"):format(#lines, ncalls))
T.check(gaps > 0, "some calls were retried (gaps to measure)")
T.eq(short, 0, "no gap between retries below the base backoff (100 ms)")
T.check(busiest <= 10, "the limiter was never exceeded: busiest 1 s " .. busiest)
T.eq(st.throttled, 0, "no throttle answer")
T.eq(st.faulted, #lines, "every attempt was answered 500")
E.cleanup()
return T.done()
