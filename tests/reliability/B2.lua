-- B2, a connect that never completes.  Criterion: fails by the connect
-- timeout + 0.5 s.
--
-- How: the reference drops the SYNs with a rule inside a test network
-- namespace; here (no root, no netns on a CI machine) the kernel drops
-- them itself: the emulator's --stall-port-file listener (docs/emulator.md)
-- has a backlog of 0, never accepts, and its one accept-queue slot holds a
-- connection of the emulator's own, and Linux drops a SYN to a listener
-- whose accept queue is full (no SYN-ACK, no RST).  The client's connect
-- stays in SYN-SENT.  A client in this process, connect_timeout_ms 1000,
-- timeout_ms 10000 (so only the connect timeout can end it):
--   1. one attempt fails by 1.5 s, and not before 1 s (the connect really
--      hung: a refused or reset connect fails at once), with a timeout
--      status and libcurl's connect-timeout message;
--   2. the same stalled port is no slower with retries allowed: each
--      attempt ends by its connect timeout + 0.5 s (attempts x 1.5 s plus
--      the backoffs between them, at most 0.2 s and 0.4 s).
-- About 6 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local dir = E.tmpdir()
local emu = E.emulator { "--stall-port-file", dir .. "/stall" }
local stall = tonumber((E.read(dir .. "/stall") or ""):match("%d+"))
assert(stall, "the emulator wrote no stall port")

local function client(opts)
  local o = { endpoint = "http://127.0.0.1:" .. stall, access_key_id = E.KEY_ID,
              access_key_secret = E.KEY_SECRET, limiter = "process",
              connect_timeout_ms = 1000, timeout_ms = 10000 }
  for k, v in pairs(opts) do o[k] = v end
  return assert(chatapp.client(o))
end

T.cases {
  { "one attempt: fails by the connect timeout + 0.5 s", function()
    local t0 = core.monotonic()
    local r, err = client { max_attempts = 1 }:query_phone_numbers()
    local took = core.monotonic() - t0
    T.eq(r, nil, "no answer")
    T.eq(err and err.status, "ETIMEDOUT", tostring(err))
    T.eq(err and err.attempts, 1)
    T.check(err and err.message:find("Failed to connect to 127.0.0.1 port " .. stall, 1, true)
            and err.message:find("Timeout was reached", 1, true),
      "the connect timed out: " .. tostring(err))
    T.check(took >= 1.0, ("the connect hung until its 1 s timeout (%.3f s)"):format(took))
    T.check(took <= 1.5, ("by the 1 s connect timeout + 0.5 s (%.3f s)"):format(took))
  end },

  { "three attempts: each ends by the connect timeout + 0.5 s", function()
    local t0 = core.monotonic()
    local r, err = client { max_attempts = 3 }:query_phone_numbers()
    local took = core.monotonic() - t0
    T.eq(r, nil, "no answer")
    T.eq(err and err.status, "ETIMEDOUT", tostring(err))
    T.eq(err and err.attempts, 3, "a connect that never completes is retried (nothing was sent)")
    T.check(took >= 3.0, ("three connects of 1 s (%.3f s)"):format(took))
    T.check(took <= 3 * 1.5 + 0.6, ("three attempts of at most 1.5 s, two backoffs (%.3f s)"):format(took))
  end },
}

-- The emulator itself was never reached: the stalled port is not its API
-- port, and nothing arrived there.
T.eq(#emu:log_lines(), 0, "no API call reached the emulator")

emu:stop()
E.cleanup()
return T.done()
