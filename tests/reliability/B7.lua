-- B7, a 302 to a second loopback address.  Criterion: not followed; the
-- error is reported; the second server gets zero requests and no `x-acs-*`
-- headers.
--
-- How: two emulators.  The first answers every API call with a redirect
-- (its `redirect` rule, docs/emulator.md) to the second: the emulator
-- listens on 127.0.0.1 only, so the second address is a second server on
-- 127.0.0.1 and another port, named as 127.0.0.1:PORT and as
-- localhost:PORT (another host name).  The Location is the second
-- server's API path, so a request that followed it would be logged there
-- as an API call, with its x-acs-* header names (the log's
-- signed_headers).  Redirect statuses 302 (the criterion's), and 301,
-- 303, 307, 308.
--   - in this process: each call ends at once with an ApiError, HTTP
--     status the redirect's, "redirect to <Location> refused", 1 attempt;
--   - chatapp-run, a policy run: exit status 1, and the error (the
--     redirect, refused, its Location) on standard error;
--   - the second server, asked last: its connection counter shows one
--     connection, the one asking (so nothing else ever connected: no
--     request, no header), its request log is empty, its statistics count
--     zero requests and its webhook sink got nothing.
-- About 2 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local emu = E.emulator()
local second = E.emulator()
local targets = { second.url .. "/", "http://localhost:" .. second.port .. "/" }

local client = emu:client()

for _, status in ipairs { 302, 301, 303, 307, 308 } do
  for _, to in ipairs(targets) do
    T.cases { { ("%d to %s: not followed, reported"):format(status, to), function()
      emu:fault { kind = "redirect", status = status, location = to, next = 1 }
      local r, err = client:query_phone_numbers()
      T.eq(r, nil, "no answer")
      T.eq(getmetatable(err), chatapp.ApiError)
      T.eq(err and err.http_status, status)
      T.check(err and err.message:find(("redirect to %s refused"):format(to), 1, true), tostring(err))
      T.eq(err and err.attempts, 1, "not retried")
    end } }
  end
end

T.cases { { "a policy run reports it", function()
  emu:fault { kind = "redirect", location = targets[1] }
  local r = E.run { "--endpoint", emu.url, E.path("scripts/policies/quality-alert.lua") }
  emu:clear_faults()
  T.eq(r.code, 1, "the run failed: " .. r.err)
  T.check(r.err:find(("HTTP 302 redirect to %s refused"):format(targets[1]), 1, true), r.err)
end } }

T.cases { { "the second server got nothing", function()
  local s = second:stats()
  T.eq(s.connections.opened, 1, "one connection: this question's own")
  T.eq(s.requests, 0, "zero API requests")
  T.eq(#second:log_lines(), 0, "an empty request log (no x-acs-* header names)")
  T.eq(#second:deliveries(), 0, "nothing at its sink")
end } }

emu:stop()
second:stop()
E.cleanup()
return T.done()
