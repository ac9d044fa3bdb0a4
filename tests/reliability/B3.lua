-- B3, a body that drips 1 byte/s.  Criterion: aborted by the LOW_SPEED
-- window + 1 s.
--
-- How: a client in this process against the emulator, whose `drip` rule
-- (docs/emulator.md) sends the status and headers at once, then the body
-- one byte every interval_ms.  The client's low-speed window is
-- low_speed_time_s (docs/embedding.md), 2 s here; timeout_ms is 30 s and
-- max_attempts 1, so only the low-speed check can end the attempt before
-- the 30 s.  Drips of one byte every 1000 ms (the criterion's), and every
-- 900 and 1100 ms (just above and below 1 byte/s): each ends ETIMEDOUT,
-- "too slow", by 2 + 1 s (and not before the 2 s window).  The answer
-- whose body is dripping is the emulator's own (200, a query's answer of
-- a few kilobytes), so without the window it would run to the 30 s.
-- (Found here: at libcurl's limit of 1 byte/s a 1 byte/s drip is not
-- slow to it, and ran for 7 to 8 s with a 2 to 5 s window.)
-- About 8 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local emu = E.emulator()
local client = emu:client { low_speed_time_s = 2, timeout_ms = 30000, max_attempts = 1 }

for _, interval in ipairs { 1000, 900, 1100 } do
  T.cases { { ("a drip of 1 byte every %d ms"):format(interval), function()
    emu:fault { kind = "drip", interval_ms = interval, next = 1 }
    local t0 = core.monotonic()
    local r, err = client:query_phone_numbers()
    local took = core.monotonic() - t0
    T.eq(r, nil, "no answer")
    T.eq(err and err.status, "ETIMEDOUT", tostring(err))
    T.check(err and err.message:find("too slow", 1, true), "the low-speed check ended it: " .. tostring(err))
    T.eq(err and err.http_status, 200, "the headers had come: the body was dripping")
    T.check(took >= 2.0, ("not before the 2 s window (%.3f s)"):format(took))
    T.check(took <= 3.0, ("by the 2 s window + 1 s (%.3f s)"):format(took))
  end } }
end

-- Each drip was an accepted call the emulator answered with a drip.
T.eq(emu:faulted("drip"), 3, "three dripped answers")

emu:stop()
E.cleanup()
return T.done()
