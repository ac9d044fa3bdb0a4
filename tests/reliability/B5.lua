-- B5, an endless chunked body / a gzip bomb.  Criterion: aborted at the
-- byte cap; RSS growth < cap + 2 MB.
--
-- How: a client in this process against the emulator's rules
-- (docs/emulator.md), bodies with no length, `chunked` (spaces
-- that never end) and `gzip` (Content-Encoding: gzip, deflated zeros that
-- never end: every 13 bytes inflate to 2,064 bytes, so a client that
-- inflated it would hold 159 times what it read).  Each call must end
-- ETOOBIG naming the cap, at once (an endless body ends no other way
-- before the attempt's 15 s), not retried.  RSS: this process's own
-- accounting (/proc/self/status): the peak (VmHWM) is reset to the
-- current RSS before the call (/proc/self/clear_refs, 5) and its growth
-- over the call must stay under cap + 2 MB.  A first call that succeeds
-- sets the client up first.  Caps: 1 MiB, and the default 64 MiB.  Also a
-- finite bomb, 512 KiB that inflate to 81 MB, under the default cap: it
-- is not inflated (chatapp-run asks for no encoding), so it is 512 KiB of
-- binary, not JSON: EPARSE (after 3 attempts), and the growth stays under
-- 512 KiB + 2 MB.
-- Under AddressSanitizer (ASAN_OPTIONS set) the 64 MiB runs and the
-- finite bomb are not measured: its allocator moves a buffer that grows
-- (no mremap) and keeps the old ones in quarantine, so 32 + 64 MiB are
-- held at the peak (and three attempts' buffers for the bomb); the two
-- 1 MiB runs are measured there too.
-- About 2 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local asan = os.getenv("ASAN_OPTIONS") ~= nil

local emu = E.emulator()

local function client(cap)
  local c = emu:client { max_response_bytes = cap }
  T.check(c:query_phone_numbers(), "a first call succeeds")
  return c
end

-- One faulted call: the result, the error, the seconds, the RSS growth (kB).
local function call(c, fault)
  fault.next = fault.next or 1
  emu:fault(fault)
  local base = E.peak_rss_base()
  local t0 = core.monotonic()
  local r, err = c:query_phone_numbers()
  return r, err, core.monotonic() - t0, E.self_kb("VmHWM") - base
end

local MiB = 1024 * 1024
for _, cap in ipairs { MiB, 64 * MiB } do
  local c = client(cap)
  for _, kind in ipairs { "chunked", "gzip" } do
    T.cases { { ("an endless %s body, a %d-byte cap"):format(kind, cap), function()
      local r, err, took, growth = call(c, { kind = kind })
      T.eq(r, nil, "aborted")
      T.eq(err and err.status, "ETOOBIG", tostring(err))
      T.check(err and err.message:find(("larger than the %d-byte cap"):format(cap), 1, true), tostring(err))
      T.eq(err and err.attempts, 1, "not retried")
      T.check(took < 10, ("aborted at the cap, not by the attempt's timeout (%.3f s)"):format(took))
      if cap == MiB or not asan then
        T.check(growth < cap // 1024 + 2048,
          ("RSS growth %d kB < cap + 2 MB (%d kB)"):format(growth, cap // 1024 + 2048))
      end
    end } }
  end
  if cap == 64 * MiB then
    T.cases { { "a finite gzip bomb (512 KiB to 81 MB) is not inflated", function()
      -- (every attempt gets it: a malformed answer to a read is retried)
      local r, err, _, growth = call(c, { kind = "gzip", bytes = 512 * 1024, next = 3 })
      T.eq(r, nil, "a failure")
      T.eq(err and err.status, "EPARSE", "512 KiB of gzip, not JSON: " .. tostring(err))
      T.eq(err and err.attempts, 3, "retried as a malformed answer")
      if not asan then
        T.check(growth < 512 + 2048, ("RSS growth %d kB < 512 KiB + 2 MB"):format(growth))
      end
    end } }
  end
  c:close()
end

-- Every aborted answer was one the emulator sent with its rule.
T.eq(emu:faulted("chunked"), 2, "two endless chunked answers")
T.eq(emu:faulted("gzip"), 5, "two endless gzip answers, three finite ones")

emu:stop()
E.cleanup()
return T.done()
