-- E6, clock jump (injected wall-clock offset +-1 h).  Criterion: limiter
-- and scheduler unaffected (monotonic); signing uses the corrected wall
-- time.
--
-- How: the wall clock of one chatapp-run process jumps while it runs.
-- tests/shim/clockjump.c (built by CMake), preloaded
-- (LD_PRELOAD), adds the offset written in a file to every wall-clock
-- read of the process (time, gettimeofday, clock_gettime of
-- CLOCK_REALTIME), and leaves the monotonic clocks alone, as a real step
-- of the clock does (so whatever reads the wall clock, in C or in Lua,
-- sees the jump).  The test moves it: 0, +1 h, 0 (corrected), -1 h, 0
-- (corrected), a phase every 2 s (every 2.5 s for the watcher).
--  1. The limiter and signing: 100 calls in one batch, legacy signature
--     (its Timestamp is in the emulator's log), the emulator at quota 10
--     and its usual 900 s skew.  Held: at the emulator, at most 10
--     arrivals in any 1 s window, no pause over 1.2 s (the limiter's
--     bursts of 10 are 1.05 s apart) and >= 8.5/s throughout: a limiter
--     on the wall clock would burst at the forward jump and stall at the
--     backward one.  Each attempt's Timestamp is the process's wall
--     clock of the moment (the offset then in force, within 2 s of the
--     emulator's arrival time): refused as InvalidTimeStamp.Expired while
--     the clock is 1 h off, accepted again from the first attempt after
--     it is corrected.
--  2. The watch scheduler: `chatapp-run --every 1s` (state file, --listen)
--     against an emulator at `--skew 7200` (so the cycles succeed with the
--     clock off: only the scheduler is under test).  Held: cycles start
--     1 s apart (each gap 0.9 to 1.25 s) through every jump, none fails,
--     and /healthz stays 200 (its age of the last good cycle is not
--     thrown by a jump).
-- About 30 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local dir = E.tmpdir()
local shim = (E.run_bin:match("^(.*)/[^/]*$") or ".") .. "/tests/shim/libchatapp_clockjump.so"
assert(io.open(shim, "rb"), "the clockjump shim is built beside chatapp-run: " .. shim):close()
local offset_file = E.write(dir .. "/offset", "0")
local env = { LD_PRELOAD = shim, CHATAPP_CLOCKJUMP_FILE = offset_file,
              -- (an ASan build: the shim is preloaded before its runtime)
              ASAN_OPTIONS = "verify_asan_link_order=0" }
local HOUR = 3600000

-- Move the clock through the phases, `step` seconds each, from now,
-- calling tick() every 20 ms (the last phase ends early when it returns
-- true); returns the switches: {t_us, offset_ms}.
local function jumps(step, tick)
  local offsets = { 0, HOUR, 0, -HOUR, 0 }
  local switches = {}
  local t0 = core.monotonic()
  for i, off in ipairs(offsets) do
    E.write(offset_file, tostring(off))
    switches[i] = { t = math.floor(core.monotonic() * 1e6), off = off }
    local stop = t0 + i * step
    while core.monotonic() < stop and not (tick() and i == #offsets) do E.sleep_ms(20) end
  end
  return switches
end

local function offset_at(switches, t_us)
  local off, since = 0, -1
  for _, s in ipairs(switches) do
    if s.t <= t_us then off, since = s.off, t_us - s.t end
  end
  return off, since
end

-- "2026-11-30T03:40:08Z" (or with .123) -> Unix seconds
local function epoch(s)
  local y, mo, d, h, mi, se = (s or ""):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return (era * 146097 + doe - 719468) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
end

T.cases {
  { "the limiter and signing through the jumps", function()
    local N = 100
    local emu = E.emulator { "--quota", "10", "--latency", "100" }
    local worker = E.write(dir .. "/worker.lua", ([[
local chatapp = require "chatapp"
local c = assert(chatapp.client { endpoint = %q, access_key_id = %q, access_key_secret = %q,
  limiter = "process", signature_version = "v2", max_attempts = 1 })
local reqs = {}
for i = 1, %d do reqs[i] = { operation = "QueryChatappPhoneNumbers", params = { Status = "E6-" .. i } } end
local res = c:batch(reqs)
local ok = 0
for i = 1, %d do if res[i] then ok = ok + 1 end end
print(chatapp.json.encode { ok = ok })]]):format(emu.url, E.KEY_ID, E.KEY_SECRET, N, N))
    local p = E.start({ "--lua", worker }, env)
    T.check(E.wait_for(function() return #emu:log_lines() >= 1 end, 10000), "calls started")
    local switches = jumps(2, function() return E.read(p.dir .. "/rc") ~= nil end)
    T.eq(p.wait(60000), 0, p.err())
    local lines = emu:log_lines()
    emu:stop()
    T.eq(#lines, N, "every call reached the emulator once")
    local t, bad_sig, bad_verdict, checked = {}, 0, 0, {}
    for _, l in ipairs(lines) do
      t[#t + 1] = l.t_us
      local off, since = offset_at(switches, l.t_us)
      if since >= 50000 then -- not signed just before a switch
        checked[off] = (checked[off] or 0) + 1
        local skew = epoch(l.params.Timestamp) and epoch(l.params.Timestamp) - epoch(l.time)
        if not skew or math.abs(skew - off / 1000) > 2 then
          bad_sig = bad_sig + 1
          io.stderr:write(("signed %s, arrived %s, the clock %+d ms off\n"):format(
            tostring(l.params.Timestamp), l.time, off))
        end
        local want = off == 0 and "accepted" or "rejected"
        if l.verdict ~= want or (off ~= 0 and l.code ~= "InvalidTimeStamp.Expired") then
          bad_verdict = bad_verdict + 1
          io.stderr:write(("%s %s with the clock %+d ms off\n"):format(l.verdict, tostring(l.code), off))
        end
      end
    end
    T.check((checked[0] or 0) >= 30 and (checked[HOUR] or 0) >= 10 and (checked[-HOUR] or 0) >= 10,
      "attempts in every phase")
    T.eq(bad_sig, 0, "each attempt signed with the wall clock of its moment")
    T.eq(bad_verdict, 0, "refused while the clock was off, accepted once it was corrected")
    -- the first attempt after each correction is accepted
    for i = 3, 5, 2 do
      for _, l in ipairs(lines) do
        if l.t_us >= switches[i].t + 50000 then
          T.eq(l.verdict, "accepted", "the first attempt after correction " .. (i // 2))
          break
        end
      end
    end
    table.sort(t)
    local gap = 0
    for i = 2, #t do gap = math.max(gap, t[i] - t[i - 1]) end
    local rate = (#t - 1) / ((t[#t] - t[1]) / 1e6)
    io.stderr:write(("E6 limiter: %.2f calls/s, busiest 1 s %d, longest pause %.3f s\n"):format(
      rate, E.busiest(t, 1000000), gap / 1e6))
    T.check(E.busiest(t, 1000000) <= 10, "no burst: <= 10 in any 1 s window: " .. E.busiest(t, 1000000))
    T.check(gap <= 1200000, ("no stall: the longest pause %.3f s"):format(gap / 1e6))
    T.check(rate >= 8.5, ("the rate held: %.2f/s"):format(rate))
  end },

  { "the watch scheduler through the jumps", function()
    local emu = E.emulator { "--skew", "7200" }
    local policy = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "count", where = { quality_rating = "RED" } }]])
    local state = dir .. "/state.db"
    local p = E.start({ "--endpoint", emu.url, "--limiter", "process", "--every", "1s", "--state", state,
      "--listen", "0", "-v", policy }, env)
    local port
    T.check(E.wait_for(function()
      port = p.err():match("/healthz on http://127%.0%.0%.1:(%d+)")
      return port ~= nil
    end, 10000), "the watcher listens: " .. p.err())
    local probe = assert(core.http_client { timeout_ms = 2000, max_attempts = 1 })
    local unhealthy = {}
    local switches = jumps(2.5, function()
      local r, e = probe:batch { { url = "http://127.0.0.1:" .. (port or 0) .. "/healthz", method = "GET" } }
      local a = r[1]
      if not a or a.status ~= 200 then unhealthy[#unhealthy + 1] = a and a.body or tostring(e[1]) end
      return false
    end)
    p.kill("TERM")
    T.eq(p.wait(10000), 0, p.err())
    local t = emu:arrivals()
    emu:stop()
    T.check(#t >= 10, "cycles ran: " .. #t)
    local gaps_bad = 0
    for i = 2, #t do
      local g = (t[i] - t[i - 1]) / 1e6
      if g < 0.9 or g > 1.25 then
        gaps_bad = gaps_bad + 1
        local off = offset_at(switches, t[i])
        io.stderr:write(("cycles %.3f s apart (clock %+d ms)\n"):format(g, off))
      end
    end
    T.eq(gaps_bad, 0, "cycles 1 s apart through every jump")
    local ok_cycles, other = 0, {}
    for line in p.err():gmatch("[^\n]+") do
      if line:match("cycle %d+: ok") then
        ok_cycles = ok_cycles + 1
      elseif line:match("cycle %d+") and not line:match("stopped by") then
        other[#other + 1] = line
      end
    end
    T.eq(#other, 0, "no cycle failed or overran: " .. tostring(other[1]))
    T.check(ok_cycles >= #t - 1, ("every cycle ok: %d for %d calls"):format(ok_cycles, #t))
    T.eq(#unhealthy, 0, "/healthz stayed 200: " .. tostring(unhealthy[1]))
  end },
}
E.cleanup()
return T.done()
