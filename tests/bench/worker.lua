-- One client process for the benchmarks: N calls as fast as the limiter
-- allows; prints one JSON line with what it saw and what it cost.
--   chatapp-run --lua worker.lua ENDPOINT LIMITER_STATE N
local chatapp = require "chatapp"
local endpoint, state, n = arg[1], arg[2], tonumber(arg[3])

local c = assert(chatapp.client { endpoint = endpoint, access_key_id = "LTAIemulatorTestKey01",
  access_key_secret = "emulator-secret-not-real", limiter = state, max_attempts = 5 })
local reqs = {}
for i = 1, n do reqs[i] = { operation = "QueryChatappPhoneNumbers" } end
local t0 = chatapp.core.monotonic()
local res, errs = c:batch(reqs)
local elapsed = chatapp.core.monotonic() - t0
local ok, failed = 0, 0
for i = 1, n do if res[i] then ok = ok + 1 else failed = failed + 1 end end

-- CPU (user + system) and peak RSS of this process, from /proc.
local stat = io.open("/proc/self/stat"):read("a")
local fields = {}
for f in stat:gsub("^.-%) ", ""):gmatch("%S+") do fields[#fields + 1] = f end
local ticks = 100 -- USER_HZ on Linux
local cpu = (tonumber(fields[12]) + tonumber(fields[13])) / ticks
local hwm = io.open("/proc/self/status"):read("a"):match("VmHWM:%s*(%d+)")
local s = c:stats()
print(assert(chatapp.json.encode {
  ok = ok, failed = failed, elapsed_s = elapsed, cpu_s = cpu, peak_rss_kb = tonumber(hwm),
  attempts = s.attempts, retries = s.retries, throttled = s.throttled, min_factor = s.min_factor,
  first_error = failed > 0 and tostring(errs[next(errs)]) or nil,
}))
