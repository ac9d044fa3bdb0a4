-- B1, a server that accepts but never answers.  Criterion: the attempt
-- fails by the total timeout + 0.5 s; the call ends by its overall
-- deadline.
--
-- How: a client in this process against the emulator, whose `hang` rule
-- (docs/emulator.md) reads the whole request and never answers; the
-- emulator's request log shows each attempt arrived (it was accepted).
-- The client's timeouts (docs/embedding.md): timeout_ms, one attempt's
-- total time (1000 ms here), and call_timeout_ms, one call from its first
-- attempt to its last (2700 ms here).
--   1. One attempt (max_attempts 1): it fails ETIMEDOUT no sooner than
--      the 1 s total timeout and by 1.5 s.
--   2. Many attempts allowed (max_attempts 10, a 1 s attempt timeout, a
--      2.7 s call deadline): it is retried (each attempt reaches the
--      emulator), and the call ends ETIMEDOUT by its deadline.  The last
--      attempt would run to 3.2 to 3.6 s if it were given its whole 1 s
--      (so it was, before: the attempt now gets what is left of the
--      call's time).  Measured from before the call, so it includes the
--      start of the first attempt; 0.1 s of slack for a loaded machine,
--      with 0.5 s left between that and an attempt past the deadline.
-- About 4 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local emu = E.emulator()

-- The emulator's log lines of the hang rule (one per attempt that arrived).
local function hung() return emu:faulted("hang") end

T.cases {
  { "one attempt: fails by the total timeout + 0.5 s", function()
    emu:reset()
    emu:fault { kind = "hang" }
    local before = hung()
    local t0 = core.monotonic()
    local r, err = emu:client { timeout_ms = 1000, max_attempts = 1 }:query_phone_numbers()
    local took = core.monotonic() - t0
    T.eq(r, nil, "no answer")
    T.eq(err and err.status, "ETIMEDOUT", tostring(err))
    T.eq(err and err.attempts, 1)
    T.check(took >= 1.0, ("not before the 1 s timeout (%.3f s)"):format(took))
    T.check(took <= 1.5, ("by the 1 s timeout + 0.5 s (%.3f s)"):format(took))
    T.check(E.wait_for(function() return hung() == before + 1 end, 2000),
      "the server accepted the request (its log has the hung call)")
  end },

  { "retried: the call ends by its overall deadline", function()
    emu:reset()
    emu:fault { kind = "hang" }
    local before = hung()
    local t0 = core.monotonic()
    local r, err = emu:client { timeout_ms = 1000, call_timeout_ms = 2700, max_attempts = 10 }
      :query_phone_numbers()
    local took = core.monotonic() - t0
    T.eq(r, nil, "no answer")
    T.eq(err and err.status, "ETIMEDOUT", tostring(err))
    T.check(err and err.attempts >= 2, "retried: " .. tostring(err))
    T.check(err and err.message:find("2700 ms deadline", 1, true), "the error names the deadline: " .. tostring(err))
    T.check(took >= 2.0, ("retried until near the deadline (%.3f s)"):format(took))
    T.check(took <= 2.8, ("ended by the 2.7 s deadline (%.3f s)"):format(took))
    T.check(E.wait_for(function() return hung() == before + (err and err.attempts or 0) end, 2000),
      "every attempt reached the server")
  end },
}

emu:stop()
E.cleanup()
return T.done()
