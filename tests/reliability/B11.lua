-- B11, a 400 with a non-throttle code (`InvalidParameter`).  Criterion:
-- not retried; a typed error given to Lua.
--
-- How: a client in this process against the emulator.  Not retried: the
-- emulator's request log shows exactly one arrival per call, though the
-- rule would answer three (next = 3) and max_attempts is 3; the error says
-- 1 attempt and retryable false.  Typed: the error is an ApiError (its
-- metatable chatapp.ApiError, docs/lua-api.md) with status EAPI, code
-- InvalidParameter, the answer's message and RequestId, http_status 400,
-- the operation, outcome_unknown false, and its text in the documented
-- form.  Three ways to get the 400:
--   - an error rule on a read (QueryChatappPhoneNumbers), through
--     client:query_phone_numbers and through client:batch (the error in
--     the errors table, at the request's index);
--   - the emulator's own InvalidParameter: GetPhoneNumberVerificationStatus
--     and UpdatePhoneWebhook (a write) for a number not in the space; the
--     write's error is EAPI too, not EUNKNOWN (the answer proves it was
--     not done).
-- About 1 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local emu = E.emulator()
local client = emu:client { max_attempts = 3 }

local function arrivals_since(mark)
  return #emu:log_lines() - mark
end

-- The error's type and fields.
local function typed(err, op, message)
  T.eq(getmetatable(err), chatapp.ApiError, op .. ": an ApiError")
  if not err then return end
  T.eq(err.status, "EAPI", op .. ": " .. tostring(err))
  T.eq(err.code, "InvalidParameter")
  T.eq(err.http_status, 400)
  T.eq(err.operation, op)
  T.eq(err.attempts, 1, "one attempt")
  T.eq(err.retryable, false, "not retryable")
  T.check(not err.outcome_unknown, "the outcome is known")
  T.check(type(err.request_id) == "string" and #err.request_id > 0, "the answer's RequestId")
  T.check(err.message:find(message, 1, true), err.message)
  T.check(tostring(err):find(("%s failed: InvalidParameter: "):format(op), 1, true)
          and tostring(err):find("(HTTP 400, RequestId " .. err.request_id .. ", 1 attempt)", 1, true),
          tostring(err))
end

T.cases {
  { "an InvalidParameter rule on a read", function()
    emu:fault { kind = "error", code = "InvalidParameter", message = "bad Status", next = 3 }
    local mark = #emu:log_lines()
    local r, err = client:query_phone_numbers()
    T.eq(r, nil)
    typed(err, "QueryChatappPhoneNumbers", "bad Status")
    T.eq(arrivals_since(mark), 1, "one request reached the emulator")
    emu:clear_faults()
  end },

  { "the same in a batch", function()
    emu:fault { kind = "error", code = "InvalidParameter", message = "bad Status", next = 3 }
    local mark = #emu:log_lines()
    local results, errors = client:batch { { operation = "QueryChatappPhoneNumbers" } }
    T.eq(results[1], nil)
    typed(errors[1], "QueryChatappPhoneNumbers", "bad Status")
    T.eq(arrivals_since(mark), 1, "one request reached the emulator")
    emu:clear_faults()
  end },

  { "the emulator's own InvalidParameter, a read and a write", function()
    local params = { CustSpaceId = "C20230220000002", PhoneNumber = "60000000000" }
    local mark = #emu:log_lines()
    local r, err = client:call("GetPhoneNumberVerificationStatus", params)
    T.eq(r, nil)
    typed(err, "GetPhoneNumberVerificationStatus", "")
    T.eq(arrivals_since(mark), 1, "one request reached the emulator")
    mark = #emu:log_lines()
    params.UpCallbackUrl = "https://hooks.example.com/b11"
    r, err = client:call("UpdatePhoneWebhook", params)
    T.eq(r, nil)
    typed(err, "UpdatePhoneWebhook", "")
    T.eq(arrivals_since(mark), 1, "one request reached the emulator")
  end },
}

emu:stop()
E.cleanup()
return T.done()
