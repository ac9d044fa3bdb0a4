-- Connections and TLS sessions reused (issue 18), counted by the HTTPS
-- emulator (stats.connections): a run of 300 calls, then a second batch on
-- the same client, open no more connections than calls in flight at once
-- (max_in_flight), each with one handshake.  libcurl by default keeps 4
-- idle connections per transfer in its multi handle, so as a burst ended
-- (the limiter's window full, a batch's tail) the connections were closed
-- and the next burst opened (and handshook) new ones: 40 to 50 connections
-- for 1,000 calls at 16 in flight.  The client keeps max_in_flight
-- (CURLMOPT_MAXCONNECTS, runtime/core/ca_client.c).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local function calls(n)
  local reqs = {}
  for i = 1, n do reqs[i] = { operation = "QueryChatappPhoneNumbers" } end
  return reqs
end

T.cases {
  { "300 calls and a second batch open at most max_in_flight connections, one handshake each", function()
    local emu = E.emulator({ "--quota", "1000" }, { tls = true })
    local before = emu:stats().connections -- the control client's own connection
    local c = emu:client { qps = 1000, max_in_flight = 16, max_attempts = 3 }
    local ok = 0
    for _, n in ipairs { 300, 40 } do
      local res = c:batch(calls(n))
      for i = 1, n do ok = ok + (res[i] and 1 or 0) end
    end
    local after = emu:stats().connections
    emu:stop()
    T.eq(ok, 340, "every call answered")
    local opened = after.opened - before.opened
    T.check(opened >= 1 and opened <= 16,
            ("connections opened by 340 calls at 16 in flight: %d (at most 16)"):format(opened))
    T.eq(after.tls_handshakes - before.tls_handshakes, opened, "one TLS handshake per connection")
    T.check(after.open_max <= 17, ("open at once: %d (16 and the control client's)"):format(after.open_max))
    T.eq(after.closed - before.closed, 0, "no connection of the client closed during the run")
  end },
}

E.cleanup()
return T.done()
