-- The limiter shared through Redis against the host-local one (issue 16),
-- side by side in one run: calls per second, CPU per call and Redis round
-- trips per call.
--
--   chatapp-run --lua tests/bench/bench_limiter_redis.lua CHATAPP_RUN CHATAPP_EMULATOR [N]
--
-- 1. Overhead: one process, N calls (default 1000) with the limit raised
--    to the most a window holds (qps 1000: 128 per window, CA_LIMITER_MAX_N,
--    about 122/s) against an emulator at a quota it never reaches, no
--    latency: what the limiter itself costs per call.
-- 2. At the quota: three processes x 100 calls, quota 10, 300 ms latency,
--    as the test e2e_limiter_redis_hosts: the rate the server sees.
-- Each with the host-local limiter (the shared state file) and with Redis
-- (a fresh redis-server on loopback).  "At the server": accepted arrivals
-- at the emulator, (n - 1) / (last - first); "with the start": calls over
-- the workers' batch time, which with a fresh Redis includes the one
-- window of the epoch guard (docs/internals/limiter.md).
package.path = arg[0]:match("^(.*)/bench/") .. "/lua/?.lua;" .. package.path

local chatapp = require "chatapp"

-- Worker mode: one client, n calls, one JSON line of what it saw and cost.
if arg[1] == "--worker" then
  local endpoint, limiter, n, qps = arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
  local c = assert(chatapp.client { endpoint = endpoint, access_key_id = "LTAIemulatorTestKey01",
    access_key_secret = "emulator-secret-not-real", limiter = limiter, qps = qps > 0 and qps or nil,
    max_in_flight = 32 })
  local reqs = {}
  for i = 1, n do reqs[i] = { operation = "QueryChatappPhoneNumbers" } end
  local t0 = chatapp.core.monotonic()
  local res = c:batch(reqs)
  local elapsed = chatapp.core.monotonic() - t0
  local ok = 0
  for i = 1, n do if res[i] then ok = ok + 1 end end
  local fields = {}
  for f in io.open("/proc/self/stat"):read("a"):gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
  local s = c:stats()
  print(assert(chatapp.json.encode {
    ok = ok, elapsed_s = elapsed, cpu_s = (tonumber(fields[12]) + tonumber(fields[13])) / 100,
    attempts = s.attempts, throttled = s.throttled, round_trips = s.limiter_round_trips or 0,
  }))
  return 0
end

local E = require "e2e"
local R = require "redis_server"
local N = tonumber(arg[3] or "1000")

local function spawn(emu, limiter, n, qps, out)
  local p = io.popen(("%s --lua %s --worker %s %s %d %d >%s 2>&1 & echo $!"):format(E.quote(E.run_bin),
    E.quote(arg[0]), emu.url, E.quote(limiter), n, qps, E.quote(out)))
  local pid = p:read("l")
  p:close()
  return pid
end

local function row(name, fields)
  io.write(("%-40s"):format(name))
  for _, f in ipairs(fields) do io.write(("  %s"):format(f)) end
  io.write("\n")
  io.flush()
end

-- procs processes of n calls each; limiter: "file" or "redis".
local function scenario(kind, procs, n, qps, emu_args)
  local dir = E.tmpdir()
  local srv = kind == "redis" and R.start() or nil
  local limiter = srv and srv.url or dir .. "/limiter.state"
  local emu = E.emulator(emu_args)
  local pids = {}
  for i = 1, procs do pids[i] = spawn(emu, limiter, n, qps, ("%s/out%d"):format(dir, i)) end
  for i = 1, procs do assert(E.wait_pid(pids[i]), "a worker did not end") end
  local ok, cpu, trips, elapsed, throttled = 0, 0, 0, 0, 0
  for i = 1, procs do
    local r = E.last_json(("%s/out%d"):format(dir, i))
    ok, cpu, trips = ok + r.ok, cpu + r.cpu_s, trips + r.round_trips
    elapsed, throttled = math.max(elapsed, r.elapsed_s), throttled + r.throttled
  end
  local t = emu:arrivals()
  emu:stop()
  if srv then srv:stop() end
  local rate = #t > 1 and (#t - 1) / ((t[#t] - t[1]) / 1e6) or 0
  return { ok = ok, total = procs * n, cpu_ms = cpu * 1000 / (procs * n), trips = trips / (procs * n),
           rate = rate, wall_rate = ok / elapsed, busiest = E.busiest(t, 1000000), throttled = throttled }
end

io.write(("chatapp-run limiter benchmark (host-local file vs Redis), %s\n"):format(os.date("!%Y-%m-%d %H:%M UTC")))
for _, kind in ipairs { "file", "redis" } do
  local r = scenario(kind, 1, N, 1000, { "--quota", "1000000" })
  row(("overhead, 1 x %d calls, 128/window, %s"):format(N, kind), {
    ("%.0f calls/s at the server"):format(r.rate), ("%.0f/s with the start"):format(r.wall_rate),
    ("CPU %.3f ms/call"):format(r.cpu_ms),
    ("%.2f round trips/call"):format(r.trips), ("ok %d/%d"):format(r.ok, r.total) })
end
for _, kind in ipairs { "file", "redis" } do
  local r = scenario(kind, 3, 100, 0, { "--quota", "10", "--latency", "300" })
  row(("at the quota, 3 x 100 calls, 300 ms, %s"):format(kind), {
    ("%.2f calls/s at the server"):format(r.rate), ("%.2f/s with the start"):format(r.wall_rate),
    ("busiest 1 s %d"):format(r.busiest), ("throttled %d"):format(r.throttled),
    ("CPU %.3f ms/call"):format(r.cpu_ms), ("%.2f round trips/call"):format(r.trips),
    ("ok %d/%d"):format(r.ok, r.total) })
end
R.cleanup()
E.cleanup()
