-- Three hosts, one account, one Redis (issue 16, "Shared limiter"): three
-- chatapp-run processes, each with its own HOME and XDG_RUNTIME_DIR (so
-- no host-local limiter file in common), `--limiter redis://...`, against
-- the emulator at quota 10 with 300 ms latency; 300 calls in all (100
-- spaces each).  Held: at least 9.5 calls/s together, no throttle answer,
-- at most 10 arrivals in any 1 s window of the emulator's log, with the
-- clocks of two of the processes skewed (+3 s and -3 s, three windows
-- either way: CHATAPP_TEST_CLOCK_OFFSET_MS), which a limiter timed by the
-- hosts' clocks could not survive.
--
-- The rate is the emulator's: accepted arrivals, (n - 1) / (last - first),
-- as docs/benchmarks.md measures the host-local limiter.  It leaves out
-- the one window every process waits when the Redis server is new (the
-- epoch guard, docs/internals/limiter.md), which a long-lived server pays
-- once; the wall time with it is printed beside.
--
-- Timing-sensitive: registered RUN_SERIAL (tests/CMakeLists.txt).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local R = require "redis_server"
local chatapp = require "chatapp"
local core = chatapp.core

local HOSTS, PER = 3, 100
local dir = E.tmpdir()
local function id(s) return ("C2099%010d"):format(s) end
do
  local spaces = { { cust_space_id = "", default = true, account = "1000000000000001", label = "own",
    phone_numbers = chatapp.json.array {} } }
  for s = 1, HOSTS * PER do
    spaces[#spaces + 1] = { cust_space_id = id(s), label = "Space " .. s, phone_numbers = { {
      PhoneNumber = ("86%011d"):format(s), VerifiedName = "Shop " .. s, Status = "CONNECTED",
      QualityRating = "GREEN", MessagingLimitTier = "TIER_1K", CodeVerificationStatus = "VERIFIED" } } }
  end
  E.write(dir .. "/fixture.json", assert(chatapp.json.encode { spaces = spaces }))
end
local function spaces_file(h)
  local list = {}
  for s = 1, PER do
    local n = (h - 1) * PER + s
    list[s] = { cust_space_id = id(n), label = "Space " .. n }
  end
  return E.write(("%s/spaces-%d.json"):format(dir, h), assert(chatapp.json.encode(chatapp.json.array(list))))
end
local policy = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "count", where = { quality_rating = "RED" } }]])


-- One run of HOSTS processes; offsets[h]: the clock offset of host h (ms).
local function fleet(offsets)
  local srv = R.start()
  local emu = E.emulator { "--data", dir .. "/fixture.json", "--quota", "10", "--latency", "300" }
  local procs = {}
  local t0 = core.monotonic()
  for h = 1, HOSTS do
    local home = E.tmpdir()
    assert(os.execute("mkdir -m 700 " .. E.quote(home .. "/run")))
    procs[h] = E.start({ "--endpoint", emu.url, "--limiter", srv.url, "--spaces", spaces_file(h),
      "--output", "json", policy },
      { HOME = home, XDG_RUNTIME_DIR = home .. "/run",
        CHATAPP_TEST_CLOCK_OFFSET_MS = offsets[h] and tostring(offsets[h]) or false })
  end
  local summaries, codes, wall = {}, {}, 0
  for h = 1, HOSTS do
    codes[h] = procs[h].wait(120000)
    wall = math.max(wall, core.monotonic() - t0)
    local _, by = E.json_lines(procs[h].out())
    summaries[h] = by.summary and by.summary[1] or {}
  end
  local t = emu:arrivals("QueryChatappPhoneNumbers")
  local st = emu:stats()
  emu:stop()
  srv:stop()
  local rate = #t > 1 and (#t - 1) / ((t[#t] - t[1]) / 1e6) or 0
  local trips, calls = 0, 0
  for h = 1, HOSTS do
    local c = summaries[h].calls or {}
    trips, calls = trips + (c.limiter_round_trips or 0), calls + (c.calls or 0)
  end
  io.stderr:write(("  offsets %s: %d calls, %.2f calls/s at the emulator (%.2f/s with the start), "
    .. "busiest 1 s %d, throttled %d, %.2f Redis round trips a call\n"):format(
    table.concat({ tostring(offsets[1] or 0), tostring(offsets[2] or 0), tostring(offsets[3] or 0) }, "/"),
    #t, rate, #t / wall, E.busiest(t, 1000000), st.throttled, trips / math.max(calls, 1)))
  return { codes = codes, summaries = summaries, procs = procs, t = t, rate = rate, stats = st }
end

local function check(r)
  for h = 1, HOSTS do
    T.eq(r.codes[h], 0, ("host %d: %s"):format(h, r.procs[h].err()))
    local c = r.summaries[h].calls or {}
    T.eq(c.calls, PER, "host " .. h .. " made its calls")
    T.eq(c.throttled, 0, "host " .. h .. ": no throttle answer")
    T.check((c.limiter or ""):find("^redis://127%.0%.0%.1:%d+/0$"), "the summary names the limiter")
    T.eq(c.limiter_outages, 0, "Redis answered all along")
  end
  T.eq(#r.t, HOSTS * PER, "every call reached the emulator once")
  T.eq(r.stats.throttled, 0, "the emulator throttled nothing")
  T.check(E.busiest(r.t, 1000000) <= 10, "at most 10 arrivals in any 1 s window: " .. E.busiest(r.t, 1000000))
  T.check(r.stats.operations.QueryChatappPhoneNumbers.busiest_1s <= 10, "the emulator's own count")
  T.check(r.rate >= 9.5, ("at least 9.5 calls/s together: %.2f"):format(r.rate))
end

T.cases {
  { "the test clock offset reaches this process's clocks", function()
    -- core.monotonic is ca_now_us: the limiter's clock
    local function mono(offset)
      local r = E.run({ "--lua", E.write(E.tmpdir() .. "/m.lua", "print(require('chatapp').core.monotonic())") },
        { CHATAPP_TEST_CLOCK_OFFSET_MS = offset }, { no_limiter = true })
      return tonumber(r.out:match("[%d.]+"))
    end
    local a, b, c = mono(false), mono("3000"), mono("-3000")
    T.check(b - a > 2.5 and b - a < 3.5, ("+3 s: %s"):format(b - a))
    T.check(a - c > 2.5 and a - c < 3.5, ("-3 s: %s"):format(a - c))
    -- and the wall clock requests are signed with: 1000 s ahead is past
    -- the emulator's allowed skew (900 s)
    local emu = E.emulator { "--data", dir .. "/fixture.json" }
    local r = E.run({ "--endpoint", emu.url, "--spaces", spaces_file(1), policy },
      { CHATAPP_TEST_CLOCK_OFFSET_MS = "1000000" })
    emu:stop()
    T.eq(r.code, 1, r.err)
    T.check((r.out .. r.err):find("InvalidTimeStamp", 1, true), r.out .. r.err)
  end },

  -- (one run: the host with its own clock is the plain case; a run
  -- without skew showed the same figures and took its own 35 s)
  { "three hosts share the quota through Redis, two of them with skewed clocks (+3 s, -3 s)", function()
    check(fleet { nil, 3000, -3000 })
  end },
}
E.cleanup()
R.cleanup()
return T.done()
