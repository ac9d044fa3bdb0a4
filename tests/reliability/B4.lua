-- B4, `Content-Length: 100 MB`.  Criterion: refused before the body
-- (CURLE_FILESIZE_EXCEEDED); RSS growth < 1 MB.
--
-- How: a client in this process, with the default cap on answers
-- (max_response_bytes, 64 MiB), against the emulator's `oversize` rule
-- (docs/emulator.md): a 200 whose Content-Length says 100 MB (104857600)
-- and whose body starts 3 s after the headers (`ms`).  The call must end
-- ETOOBIG ("larger than the 67108864-byte cap"), not retried, well before
-- the body's first byte could arrive: within 1 s, so on the headers alone
-- (libcurl's CURLE_FILESIZE_EXCEEDED on a known length; a client that
-- read the body up to its cap would take 3 s and more).  RSS: this
-- process's own accounting (/proc/self/status): the peak (VmHWM) is reset
-- to the current RSS before the call (/proc/self/clear_refs, 5), and its
-- growth over the call must stay under 1 MB (1024 kB).  A first call that
-- succeeds sets the client up (connection, handles) before the
-- measurement: the growth measured is the oversized answer's.  Repeated
-- three times.  About 1 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local emu = E.emulator()
local client = emu:client()
T.check(client:query_phone_numbers(), "a first call succeeds")

for i = 1, 3 do
  T.cases { { "Content-Length 100 MB, try " .. i, function()
    emu:fault { kind = "oversize", bytes = 104857600, ms = 3000, next = 1 }
    local base = E.peak_rss_base()
    local t0 = core.monotonic()
    local r, err = client:query_phone_numbers()
    local took = core.monotonic() - t0
    local growth = E.self_kb("VmHWM") - base
    T.eq(r, nil, "refused")
    T.eq(err and err.status, "ETOOBIG", tostring(err))
    T.check(err and err.message:find("larger than the 67108864-byte cap", 1, true), tostring(err))
    T.eq(err and err.attempts, 1, "not retried")
    T.check(took < 1.0, ("refused on the headers, before the body (%.3f s; the body starts at 3 s)"):format(took))
    T.check(growth < 1024, ("RSS growth %d kB < 1 MB"):format(growth))
  end } }
end

-- Every refused answer was the emulator's oversized one.
T.eq(emu:faulted("oversize"), 3, "three oversized answers were sent")

emu:stop()
E.cleanup()
return T.done()
