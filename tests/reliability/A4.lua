-- A4, "several hosts" using the Redis script.  Criterion: <= 10 per
-- window by Redis TIME; with Redis stopped mid-run, behaviour follows the
-- configured choice (fail closed or static split), no burst.
--
-- How: three chatapp-run processes as three hosts (tests/bench/worker.lua,
-- 50 QueryChatappPhoneNumbers each, each with its own HOME and
-- XDG_RUNTIME_DIR, so no limiter file in common), `limiter =
-- redis://...` (tests/lua/redis_server.lua), against the emulator at quota
-- 10 with 100 ms latency.  While they run, the test reads the limiter's
-- log of start times in Redis (`LRANGE`, every 100 ms: the times are the
-- server's `TIME`, docs/internals/limiter.md) and keeps every one it sees.
-- After 40 arrivals it kills Redis (SIGKILL, no persistence: it comes
-- back empty) and restarts it 1.5 s later.  chatapp-run has one
-- configured choice, fail closed (it never falls back to a limit of its
-- own host), so held: no arrival at the emulator from 0.1 s after the
-- kill (answers to calls granted before it) until one limiter window
-- (1.05 s) after the restart (the epoch guard: no fresh window at once);
-- every call completes (the outage is shorter than a call's deadline);
-- at most 10 starts in any 1 s window of Redis's TIME (the starts seen;
-- the last ones before the kill may be lost with it) and at most 10
-- arrivals in any 1 s window of the emulator's log; no throttle answer.
-- About 20 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local R = require "redis_server"
local core = require("chatapp").core

local HOSTS, PER = 3, 50
local worker = E.root .. "/tests/bench/worker.lua"
local LOG_KEY = "chatapp:limiter:{" .. E.KEY_ID .. "}:log:QueryChatappPhoneNumbers"

local srv = R.start()
local emu = E.emulator { "--quota", "10", "--latency", "100" }
local procs = {}
for h = 1, HOSTS do
  local home = E.tmpdir()
  assert(os.execute("mkdir -m 700 " .. E.quote(home .. "/run")))
  procs[h] = E.start({ "--lua", worker, emu.url, srv.url, tostring(PER) },
    { HOME = home, XDG_RUNTIME_DIR = home .. "/run" })
end

local starts, nstarts = {}, 0
local function poll()
  for t in srv:cli("LRANGE", LOG_KEY, "0", "-1"):gmatch("%d+") do
    if not starts[t] then starts[t], nstarts = true, nstarts + 1 end
  end
end
local function running()
  for h = 1, HOSTS do
    if not E.read(procs[h].dir .. "/rc") then return true end
  end
  return false
end

local killed_us, back_us
local deadline = core.monotonic() + 120
while running() and core.monotonic() < deadline do
  if srv.pid then poll() end
  if not killed_us and #emu:arrivals() >= 40 then
    srv:kill()
    killed_us = math.floor(core.monotonic() * 1e6)
  elseif killed_us and not back_us and core.monotonic() * 1e6 >= killed_us + 1500000 then
    srv:restart()
    back_us = math.floor(core.monotonic() * 1e6)
  end
  E.sleep_ms(100)
end
T.check(killed_us and back_us, "Redis was stopped and restarted mid-run")
for h = 1, HOSTS do
  T.eq(procs[h].wait(10000), 0, "host " .. h .. ": " .. procs[h].err())
  local res = E.last_json(procs[h].dir .. "/stdout")
  T.eq(res.ok, PER, "host " .. h .. " made every call: " .. tostring(res.first_error))
end
local lines = emu:log_lines()
local st = emu:stats()
emu:stop()
srv:stop()

-- Redis TIME
local redis_t = {}
for t in pairs(starts) do redis_t[#redis_t + 1] = tonumber(t) end
table.sort(redis_t)
T.check(nstarts >= HOSTS * PER - 15, ("the starts seen in Redis: %d of %d"):format(nstarts, HOSTS * PER))
local busiest_redis = E.busiest(redis_t, 1000000)
T.check(busiest_redis <= 10, "<= 10 per window by Redis TIME: " .. busiest_redis)
-- the emulator: fail closed, no burst
local all, during = {}, 0
for _, l in ipairs(lines) do
  all[#all + 1] = l.t_us
  if killed_us and back_us and l.t_us >= killed_us + 100000 and l.t_us < back_us + 1050000 then
    during = during + 1
  end
end
table.sort(all)
T.eq(#all, HOSTS * PER, "each call reached the emulator once")
T.eq(during, 0, "fail closed: nothing sent while Redis was away, nor in the window after it came back")
local busiest = E.busiest(all, 1000000)
T.check(busiest <= 10, "no burst: <= 10 arrivals in any 1 s window at the emulator: " .. busiest)
T.eq(st.throttled, 0, "no throttle answer")
local first_after
for _, t in ipairs(all) do
  if back_us and t >= back_us and not first_after then first_after = t end
end
io.stderr:write(("A4: %d starts seen in Redis, busiest 1 s by Redis TIME %d, at the emulator %d; "
  .. "first arrival %.2f s after the restart\n"):format(nstarts, busiest_redis, busiest,
  first_after and (first_after - back_us) / 1e6 or -1))
E.cleanup()
R.cleanup()
return T.done()
