-- B6, a reset mid-body / truncated JSON.  Criterion: a transport error,
-- retried per policy; no partial data reaches Lua.
--
-- How: a client in this process against the emulator's rules
-- (docs/emulator.md): `reset` (100 bytes of the body, then a TCP RST),
-- `truncate` (Content-Length of the whole body, 64 bytes of it, then
-- close), and `malformed` with the first 120 bytes of a real answer as a
-- complete body (truncated JSON that arrives whole).  The retry policy
-- (docs/lua-api.md, "Every call ... is retried when the answer allows
-- it"): a read is retried on network errors and malformed answers, up to
-- max_attempts (3); a write only when the answer proves it did not happen
-- (a reset mid-body comes after the write: the emulator runs the
-- operation first).  For each fault on a read:
--   - on the first attempt only: the call succeeds on the second (both
--     arrivals in the emulator's log, the first the fault), and the list
--     is the whole list, equal to an unfaulted call's;
--   - on every attempt: nil and an ApiError, ETRANSPORT ("reset",
--     "closed"; EPARSE for the JSON cut short), after 3 attempts; no field
--     of the error holds any of the partial body (no JSON, no phone
--     number, no "Code" or "PhoneNumbers", not the cut body's RequestId),
--     and its code is not the partial body's "OK".
-- A write (UpdatePhoneWebhook) reset mid-body: not retried, EUNKNOWN, the
-- outcome unknown (it did happen: the emulator's data shows it).
-- About 3 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local emu = E.emulator()
local client = emu:client()

local function numbers(list)
  local t = {}
  for i, n in ipairs(list) do t[i] = n.phone_number .. "/" .. tostring(n.status) .. "/" .. tostring(n.quality_rating) end
  return table.concat(t, " ")
end

local clean = assert(client:query_phone_numbers())
T.check(#clean >= 7, "an unfaulted call gives the whole list")
local whole = numbers(clean)

-- Log lines of the API calls since mark (a count of lines).
local function since(mark)
  local lines, r = emu:log_lines(), {}
  for i = mark + 1, #lines do r[#r + 1] = lines[i] end
  return r
end

-- No string in the error (its fields, its text) holds part of the body.
local function nothing_partial(err)
  local texts = { tostring(err) }
  for _, v in pairs(err) do
    if type(v) == "string" then texts[#texts + 1] = v end
  end
  for _, s in ipairs(texts) do
    for _, bit in ipairs { '{"', '"Code"', '"PhoneNumbers"', "86138000", "B6-TRUNCATED" } do
      if s:find(bit, 1, true) then return false, s end
    end
  end
  return true
end

-- A real answer's first 120 bytes: JSON cut short.
local cut = [[{"RequestId":"B6-TRUNCATED","Code":"OK","Message":"SUCCESS","PhoneNumbers":[{"PhoneNumber":"8613800000001","Status":"CONN]]

local faults = {
  { "reset mid-body", { kind = "reset", after_bytes = 100 }, "ETRANSPORT" },
  { "truncated body", { kind = "truncate", after_bytes = 64 }, "ETRANSPORT" },
  { "truncated JSON, whole", { kind = "malformed", body = cut }, "EPARSE" },
}

for _, f in ipairs(faults) do
  local name, rule, status = f[1], f[2], f[3]
  T.cases {
    { name .. " on the first attempt: retried, the whole list", function()
      local mark = #emu:log_lines()
      rule.next = 1
      emu:fault(rule)
      local r, err = client:query_phone_numbers()
      T.check(r, "the retry succeeds: " .. tostring(err))
      T.eq(r and numbers(r), whole, "the whole list, as unfaulted")
      local lines = since(mark)
      T.eq(#lines, 2, "two attempts reached the emulator")
      T.eq(lines[1] and lines[1].fault, rule.kind, "the first was the fault")
      T.eq(lines[2] and lines[2].code, "OK", "the second was answered")
    end },
    { name .. " on every attempt: " .. status .. ", nothing partial", function()
      rule.next = 3
      emu:fault(rule)
      local r, err = client:query_phone_numbers()
      T.eq(r, nil, "no list, not part of one")
      T.eq(getmetatable(err), chatapp.ApiError, "an ApiError")
      T.eq(err and err.status, status, tostring(err))
      T.eq(err and err.attempts, 3, "retried up to max_attempts")
      T.check(err and err.code ~= "OK", "no Code taken from the partial body")
      local ok, where = nothing_partial(err)
      T.check(ok, "no part of the body in the error: " .. tostring(where))
    end },
  }
end

T.cases { { "a write reset mid-body: not retried, outcome unknown", function()
  local mark = #emu:log_lines()
  emu:fault { kind = "reset", after_bytes = 20, op = "UpdatePhoneWebhook", next = 1 }
  local r, err = client:call("UpdatePhoneWebhook", {
    CustSpaceId = "C20230220000002", PhoneNumber = "60123456789",
    UpCallbackUrl = "https://hooks.example.com/b6" })
  T.eq(r, nil)
  T.eq(err and err.status, "EUNKNOWN", tostring(err))
  T.eq(err and err.attempts, 1, "not retried")
  T.eq(err and err.outcome_unknown, true)
  T.eq(#since(mark), 1, "one attempt reached the emulator")
  local data = emu:control("GET", "numbers?space=C20230220000002")
  local found
  for _, n in ipairs(data.spaces[1].phone_numbers) do
    if n.PhoneNumber == "60123456789" then found = n.UpCallbackUrl end
  end
  T.eq(found, "https://hooks.example.com/b6", "the write did happen")
end } }

emu:stop()
E.cleanup()
return T.done()
