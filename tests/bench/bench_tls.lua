-- HTTP and HTTPS side by side (issue 18): the same N calls (default 1,000)
-- against the emulator at a high quota (--quota 1000, the client's qps
-- 1000), once over plain HTTP and once over HTTPS (a throwaway CA, given
-- with ca_file), alternating, ROUNDS rounds each (default 3), in one run.
-- For each: the client process's CPU per call (user + system time of the
-- batch alone, from /proc/self/stat before and after it: start-up, Lua and
-- the CA bundle's first load are not in it; and of the whole process, for
-- comparison), calls per second, and from the emulator's statistics the
-- connections opened, the largest number open at once, the TLS handshakes
-- and how many of them resumed a session.  The medians of the rounds, and
-- the HTTPS/HTTP ratios of those medians.
--   chatapp-run --lua tests/bench/bench_tls.lua CHATAPP_RUN CHATAPP_EMULATOR [N] [ROUNDS]
-- (the worker: chatapp-run --lua bench_tls.lua --worker ENDPOINT CA|- N)
package.path = arg[0]:match("^(.*)/bench/") .. "/lua/?.lua;" .. package.path
local chatapp = require "chatapp"

-- /proc/self/stat: user + system CPU seconds of this process.
local function cpu_s()
  local f = assert(io.open("/proc/self/stat"))
  local stat = f:read("a")
  f:close()
  local fields = {}
  for x in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- USER_HZ
end

if arg[1] == "--worker" then
  local endpoint, ca, n = arg[2], arg[3], tonumber(arg[4])
  local c = assert(chatapp.client { endpoint = endpoint, access_key_id = "LTAIemulatorTestKey01",
    access_key_secret = "emulator-secret-not-real", limiter = "process", qps = 1000,
    max_attempts = 5, ca_file = ca ~= "-" and ca or nil })
  local reqs = {}
  for i = 1, n do reqs[i] = { operation = "QueryChatappPhoneNumbers" } end
  local cpu0, t0 = os.clock(), chatapp.core.monotonic() -- os.clock: CPU time, in µs
  local res = c:batch(reqs)
  local elapsed, cpu1 = chatapp.core.monotonic() - t0, os.clock()
  local ok = 0
  for i = 1, n do if res[i] then ok = ok + 1 end end
  local s = c:stats()
  print(assert(chatapp.json.encode { ok = ok, elapsed_s = elapsed, batch_cpu_s = cpu1 - cpu0,
    cpu_s = cpu_s(), attempts = s.attempts, retries = s.retries, throttled = s.throttled }))
  return
end

local E = require "e2e"
local N = tonumber(arg[3] or "1000")
local ROUNDS = tonumber(arg[4] or "3")
local self_path = arg[0]

local function median(t)
  local s = {}
  for i, x in ipairs(t) do s[i] = x end
  table.sort(s)
  local m = #s // 2
  return #s % 2 == 1 and s[m + 1] or (s[m] + s[m + 1]) / 2
end

-- One worker against a fresh emulator: the figures of that run.
local function one(tls)
  local emu = E.emulator({ "--quota", "1000" }, { tls = tls })
  local before = emu:stats().connections
  local dir = E.tmpdir()
  local out = dir .. "/out"
  local p = io.popen(("%s --lua %s --worker %s %s %d >%s 2>&1 & echo $!"):format(E.quote(E.run_bin),
    E.quote(self_path), emu.url, emu.ca and E.quote(emu.ca) or "-", N, E.quote(out)))
  local pid = p:read("l")
  p:close()
  assert(E.wait_pid(pid, 120000), "the worker did not end")
  local r = E.last_json(out)
  assert(r, "the worker printed no result: " .. (E.read(out) or ""))
  local after = emu:stats().connections
  emu:stop()
  -- The control requests (these two stats reads) use their own client:
  -- its connection is opened before `before`; it adds no handshake after.
  local function d(k) return (after[k] or 0) - (before[k] or 0) end
  return { ok = r.ok, cpu_call_ms = r.batch_cpu_s * 1000 / N, proc_cpu_call_ms = r.cpu_s * 1000 / N,
           rate = N / r.elapsed_s, opened = d("opened"), open_max = after.open_max or 0,
           handshakes = d("tls_handshakes"), resumed = d("tls_resumed"),
           full = d("tls_handshakes") - d("tls_resumed"), throttled = r.throttled,
           retries = r.retries }
end

local runs = { http = {}, https = {} }
for _ = 1, ROUNDS do
  runs.http[#runs.http + 1] = one(false)
  runs.https[#runs.https + 1] = one(true)
end

local function med(kind, k)
  local t = {}
  for i, r in ipairs(runs[kind]) do t[i] = r[k] end
  return median(t)
end

io.write(("chatapp-run HTTP and HTTPS side by side, %s, %d calls, --quota 1000, qps 1000, %d rounds "
  .. "alternating (medians), load %s\n"):format(os.date("!%Y-%m-%d %H:%M UTC"), N, ROUNDS,
  (E.read("/proc/loadavg") or "?"):match("^(%S+ %S+ %S+)")))
local fields = {
  { "CPU/call, batch (ms)", "cpu_call_ms", "%.3f" },
  { "CPU/call, whole process (ms)", "proc_cpu_call_ms", "%.3f" },
  { "calls/s", "rate", "%.0f" },
  { "connections opened", "opened", "%d" },
  { "connections open at most", "open_max", "%d" },
  { "TLS handshakes", "handshakes", "%d" },
  { "  of which resumed", "resumed", "%d" },
  { "  full handshakes", "full", "%d" },
  { "throttled", "throttled", "%d" },
  { "ok", "ok", "%d" },
}
io.write(("%-30s %12s %12s %10s\n"):format("", "HTTP", "HTTPS", "HTTPS/HTTP"))
for _, f in ipairs(fields) do
  local a, b = med("http", f[2]), med("https", f[2])
  local ratio = (f[2] == "cpu_call_ms" or f[2] == "proc_cpu_call_ms" or f[2] == "rate") and a > 0
    and ("%.2f"):format(b / a) or ""
  local fmt = f[3]
  if fmt == "%d" then a, b = math.floor(a + 0.5), math.floor(b + 0.5) end
  io.write(("%-30s %12s %12s %10s\n"):format(f[1], fmt:format(a), fmt:format(b), ratio))
end
io.write("rounds (CPU/call batch ms, calls/s, opened, handshakes/resumed):\n")
for i = 1, ROUNDS do
  local h, s = runs.http[i], runs.https[i]
  io.write(("  %d  HTTP %.3f %5.0f/s %3d     HTTPS %.3f %5.0f/s %3d %d/%d\n"):format(i, h.cpu_call_ms,
    h.rate, h.opened, s.cpu_call_ms, s.rate, s.opened, s.handshakes, s.resumed))
end
E.cleanup()
