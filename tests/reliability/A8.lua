-- A8, retry re-signing.  Criterion: every attempt has a new nonce and a
-- fresh date; zero `SignatureNonceUsed`.
--
-- How: the emulator runs with `--skew 1`: it refuses (InvalidTimeStamp.
-- Expired) a signed date (`x-acs-date` for V3, `Timestamp` for the legacy
-- signature) more than 1 s from its clock, so an attempt that reused an
-- earlier attempt's date 2 s later would be refused.  For each signature
-- version, one call answered twice 503 with `Retry-After: 2` (attempts
-- >= 2 s apart), then OK; and one call through each other retry path
-- (a reset connection, a throttle answer, SignatureNonceUsed): in the
-- emulator's log every attempt passed the signature, date and nonce
-- checks (verdict fault or accepted, never rejected), every nonce is new,
-- the legacy `Timestamp` of each attempt is its own arrival time (to the
-- second), and the emulator counted no SignatureNonceUsed.  About 10 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local emu = E.emulator { "--skew", "1" }

local function client(sigver)
  return emu:client { signature_version = sigver, max_attempts = 3 }
end

-- "2026-11-30T03:40:08Z" or "...08.123Z" -> seconds since the epoch
local function epoch(s)
  local y, mo, d, h, mi, se = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then return nil end
  -- days from civil (UTC), no os.time (local time zone)
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(se)
end

local nonces = {}
for _, sigver in ipairs { "v3", "v2" } do
  local cases = {
    { "503 twice, Retry-After: 2", { kind = "error", code = "ServiceUnavailable", next = 2, retry_after = "2" }, 3 },
    { "a reset connection", { kind = "reset", after_bytes = 0, next = 1 }, 2 },
    { "a throttle answer", { kind = "error", code = "Throttling.User", next = 1 }, 2 },
    { "SignatureNonceUsed", { kind = "error", code = "SignatureNonceUsed", next = 1 }, 2 },
  }
  for _, c in ipairs(cases) do
    local what = sigver .. ", " .. c[1]
    emu:reset()
    local mark = #emu:log_lines()
    emu:fault(c[2])
    local r, err = client(sigver):query_phone_numbers()
    T.check(r, what .. ": the call succeeded: " .. tostring(err))
    local lines = emu:log_lines()
    T.eq(#lines - mark, c[3], what .. ": attempts")
    for i = mark + 1, #lines do
      local l = lines[i]
      T.check(l.verdict == "accepted" or l.verdict == "fault",
        ("%s: attempt %d passed the checks: %s %s"):format(what, i - mark, l.verdict, tostring(l.code)))
      T.eq(l.scheme, sigver == "v3" and "v3" or "legacy", what .. ": signed as asked")
      T.check(l.nonce and not nonces[l.nonce], what .. ": a new nonce")
      nonces[l.nonce or ""] = true
      if sigver == "v2" then
        local signed, arrived = epoch(l.params.Timestamp or ""), epoch(l.time)
        T.check(signed and arrived and math.abs(arrived - signed) <= 1,
          ("%s: attempt %d signed at %s, arrived %s"):format(what, i - mark, tostring(l.params.Timestamp), l.time))
      end
      if i > mark + 1 and c[2].retry_after then
        T.check(l.t_us - lines[i - 1].t_us >= 2000000, what .. ": attempts 2 s apart")
      end
    end
    -- (since the reset above; the fault rule answers SignatureNonceUsed
    -- itself, as a fault: the emulator's own nonce check counts here)
    local st = emu:stats()
    T.eq((st.rejected_by_code or {}).SignatureNonceUsed, nil, what .. ": zero SignatureNonceUsed")
    T.eq((st.rejected_by_code or {})["InvalidTimeStamp.Expired"], nil, what .. ": no stale date")
    T.eq(st.rejected, 0, what .. ": nothing rejected")
  end
end
emu:stop()
E.cleanup()
return T.done()
