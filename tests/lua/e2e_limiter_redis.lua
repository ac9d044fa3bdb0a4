-- The limiter shared through Redis when Redis fails (issue 16): killed and
-- restarted empty mid-run (no window over the quota at the emulator, the
-- calls complete), down past the calls' deadline (they fail with a clear
-- error, exit 1, the report says why), unreachable or refusing at start
-- (exit 2 before any API call), and the password never shown.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local R = require "redis_server"
local chatapp = require "chatapp"
local core = chatapp.core

local dir = E.tmpdir()
local NSPACES = 120
local function id(s) return ("C2099%010d"):format(s) end
do
  local spaces = { { cust_space_id = "", default = true, account = "1000000000000001", label = "own",
    phone_numbers = chatapp.json.array {} } }
  for s = 1, NSPACES do
    spaces[#spaces + 1] = { cust_space_id = id(s), label = "Space " .. s, phone_numbers = { {
      PhoneNumber = ("86%011d"):format(s), VerifiedName = "Shop " .. s, Status = "CONNECTED",
      QualityRating = "GREEN", MessagingLimitTier = "TIER_1K", CodeVerificationStatus = "VERIFIED" } } }
  end
  E.write(dir .. "/fixture.json", assert(chatapp.json.encode { spaces = spaces }))
end
-- A --spaces file of spaces first .. last.
local function spaces_file(first, last)
  local list = {}
  for s = first, last do list[#list + 1] = { cust_space_id = id(s), label = "Space " .. s } end
  return E.write(("%s/spaces-%d-%d.json"):format(dir, first, last),
    assert(chatapp.json.encode(chatapp.json.array(list))))
end
local policy = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "count", where = { quality_rating = "RED" } }]])



-- A port nothing listens on: a server's, once it stopped.
local function dead_port()
  local s = R.start()
  s:stop()
  return s.port
end

T.cases {
  { "Redis unreachable at start: exit 2, the server named, no API call", function()
    local emu = E.emulator { "--data", dir .. "/fixture.json" }
    local port = dead_port()
    local r = E.run({ "--endpoint", emu.url, "--limiter", "redis://127.0.0.1:" .. port,
      "--spaces", spaces_file(1, 3), policy })
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("redis://127.0.0.1:" .. port .. "/0", 1, true), "names the server: " .. r.err)
    T.check(r.err:find("shared limiter", 1, true), "says which part: " .. r.err)
    T.check(r.err:find("start the server", 1, true), "says what to do: " .. r.err)
    T.eq(#emu:log_lines(), 0, "no API call")
    -- the same for rediss:// (TLS is not supported)
    r = E.run({ "--endpoint", emu.url, "--limiter", "rediss://127.0.0.1:" .. port, "--spaces",
      spaces_file(1, 3), policy })
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("TLS", 1, true), r.err)
    emu:stop()
  end },

  { "the Redis password: from the environment, never shown", function()
    local pw = "canary-redis-pw-8d1f"
    local srv = R.start { password = pw }
    local emu = E.emulator { "--data", dir .. "/fixture.json" }
    local args = { "--endpoint", emu.url, "--limiter", srv.url, "--spaces", spaces_file(1, 3), "-v", policy }
    local r = E.run(args)
    T.eq(r.code, 2, "no password: " .. r.err)
    T.check(r.err:find("CHATAPP_REDIS_PASSWORD", 1, true), "says where it goes: " .. r.err)
    r = E.run(args, { CHATAPP_REDIS_PASSWORD = "wrong-" .. pw })
    T.eq(r.code, 2, r.err)
    T.check(not (r.out .. r.err):find(pw, 1, true), "the wrong password is not shown")
    r = E.run(args, { CHATAPP_REDIS_PASSWORD = pw })
    T.eq(r.code, 0, r.err)
    T.check(not (r.out .. r.err):find(pw, 1, true), "the password is not shown")
    -- in the URL: refused, and not repeated
    r = E.run({ "--endpoint", emu.url, "--limiter", ("redis://u:%s@127.0.0.1:%d"):format(pw, srv.port),
      "--spaces", spaces_file(1, 3), policy })
    T.eq(r.code, 2, r.err)
    T.check(not (r.out .. r.err):find(pw, 1, true), "a password in the URL is not shown: " .. r.err)
    emu:stop()
    srv:stop()
  end },

  { "Redis killed and restarted empty mid-run: no window over the quota, every call completes", function()
    local srv = R.start()
    local emu = E.emulator { "--data", dir .. "/fixture.json", "--quota", "10", "--latency", "100" }
    local procs = {}
    for h = 1, 2 do
      procs[h] = E.start({ "--endpoint", emu.url, "--limiter", srv.url, "--output", "json",
        "--spaces", spaces_file((h - 1) * 50 + 1, h * 50), policy })
    end
    -- 1. back at once (0.2 s): the starts of the last window are lost, and
    -- a client may not even see the outage (it reconnects at its next
    -- question); the epoch guard must hold the calls for one window.
    T.check(E.wait_for(function() return #emu:arrivals("QueryChatappPhoneNumbers") >= 25 end, 20000), "calls started")
    local killed = core.monotonic()
    srv:kill()
    E.sleep_ms(200)
    srv:restart()
    local back = core.monotonic()
    -- 2. away for 1.5 s: the clients see it, say so, wait, and go on.
    T.check(E.wait_for(function() return #emu:arrivals("QueryChatappPhoneNumbers") >= 55 end, 20000), "calls went on")
    local killed2 = core.monotonic()
    srv:kill()
    E.sleep_ms(1500)
    srv:restart()
    local back2 = core.monotonic()
    for h = 1, 2 do
      T.eq(procs[h].wait(60000), 0, procs[h].err())
      local _, by = E.json_lines(procs[h].out())
      local c = (by.summary and by.summary[1] or {}).calls or {}
      T.eq(c.calls, 50, "host " .. h .. ": every call")
      T.eq(c.failed, 0, "host " .. h .. ": none failed")
      T.check((c.limiter_outages or 0) >= 1, "host " .. h .. ": the outage is counted")
      T.check((c.limiter_down_ms or 0) >= 500, "host " .. h .. ": and how long")
      T.check(procs[h].err():find("the shared limiter does not answer", 1, true), procs[h].err())
      T.check(procs[h].err():find("answers again", 1, true), procs[h].err())
    end
    local t = emu:arrivals("QueryChatappPhoneNumbers")
    local st = emu:stats()
    emu:stop()
    srv:stop()
    T.eq(#t, 100, "each call once")
    T.eq(st.throttled, 0, "no throttle answer")
    T.check(E.busiest(t, 1000000) <= 10, "at most 10 in any 1 s: " .. E.busiest(t, 1000000))
    -- the epoch guard: nothing granted for one window after a restart
    -- (arrivals within 0.1 s of a kill were granted before it)
    local function first_after(from)
      for _, x in ipairs(t) do
        if x >= (from + 0.1) * 1e6 then return x / 1e6 end
      end
      return 0
    end
    local f1, f2 = first_after(killed), first_after(killed2)
    T.check(f1 >= killed + 1.0, ("first arrival %.3f s after the kill (restarted after %.3f s)"):format(
      f1 - killed, back - killed))
    T.check(f2 >= back2 - 0.1, ("nothing while Redis was away: first arrival %.3f s after the kill, "
      .. "restarted after %.3f s"):format(f2 - killed2, back2 - killed2))
  end },

  { "Redis down past the deadline: calls fail with the reason, exit 1, the report says why", function()
    local srv = R.start()
    local emu = E.emulator { "--data", dir .. "/fixture.json", "--quota", "10" }
    -- (small answers: all 40 spaces fetched at once, spaces.lua; each
    -- group fetched later would wait its own deadline)
    local p = E.start({ "--endpoint", emu.url, "--limiter", srv.url, "--call-timeout-ms", "2000",
      "--max-response-bytes", "65536", "--spaces", spaces_file(1, 40), policy })
    T.check(E.wait_for(function() return #emu:arrivals("QueryChatappPhoneNumbers") >= 10 end, 20000), "calls started")
    local killed = core.monotonic()
    srv:kill()
    local code = p.wait(30000)
    local took = core.monotonic() - killed
    local sent = #emu:arrivals("QueryChatappPhoneNumbers")
    emu:stop()
    T.eq(code, 1, p.err())
    T.check(took >= 1.9 and took < 5, ("ended %.1f s after Redis went away (deadline 2 s)"):format(took))
    local out, err = p.out(), p.err()
    T.check(err:find("the shared limiter does not answer", 1, true), "said at once: " .. err)
    local where = "redis://127.0.0.1:" .. srv.port .. "/0"
    T.check((out .. err):find("not sent: the shared limiter did not answer for", 1, true),
      "each failed space says why: " .. out .. err)
    T.check((out .. err):find(where, 1, true), "names the server")
    T.check(out:find("the shared limiter (Redis at " .. where .. ") did not answer", 1, true),
      "the report says why: " .. out)
    T.check(out:find(("%d calls failed at their deadline"):format(40 - sent), 1, true),
      ("%d calls not sent: %s"):format(40 - sent, out))
    T.check(out:find(("(%d failed)"):format(40 - sent), 1, true), out)
  end },
}
E.cleanup()
R.cleanup()
return T.done()
