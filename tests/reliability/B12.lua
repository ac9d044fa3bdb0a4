-- B12, a 200 whose body's `Code` is not `OK`.  Criterion: treated as a
-- failure.
--
-- How: the emulator's error rule with status 200 (docs/emulator.md: "200
-- with a Code other than OK"), answering every attempt (next = 3).
--   - In this process: Codes Biz.Failed, InvalidParameter, ok (not OK),
--     "OK " (a space), Success, 200 and "" (empty), and a 200 body with no
--     Code at all: client:query_phone_numbers and client:call (a read),
--     and client:call of UpdatePhoneWebhook (a write) each give nil and an
--     ApiError, status EAPI, the answer's code, http_status 200; never a
--     list or a decoded table.
--   - A policy run: chatapp-run exits 1 (something failed), the space's
--     failure is on standard error with the code, the JSON output has the
--     space failed with it, the summary's status is `api` with the call
--     failed, and the policy saw no number (0 seen; its decide logs every
--     number it gets: none is in the output).  Control: the same run once
--     the rule is gone sees the numbers.
-- About 2 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local emu = E.emulator()
local client = emu:client()

local function failed(r, err, code, what)
  T.eq(r, nil, what .. ": no result")
  T.eq(getmetatable(err), chatapp.ApiError, what .. ": an ApiError")
  T.eq(err and err.status, "EAPI", what .. ": " .. tostring(err))
  T.eq(err and err.http_status, 200, what)
  if code then T.eq(err and err.code, code, what) end
end

for _, code in ipairs { "Biz.Failed", "InvalidParameter", "ok", "OK ", "Success", "200", "" } do
  T.cases { { ("Code %q with HTTP 200"):format(code), function()
    emu:fault { kind = "error", code = code, status = 200, message = "not done", next = 3 }
    local r, err = client:query_phone_numbers()
    failed(r, err, code ~= "" and code or nil, "query_phone_numbers")
    emu:clear_faults()
    emu:fault { kind = "error", code = code, status = 200, message = "not done", next = 3 }
    r, err = client:call("QueryChatappPhoneNumbers", {})
    failed(r, err, code ~= "" and code or nil, "call, a read")
    emu:clear_faults()
    emu:fault { kind = "error", code = code, status = 200, message = "not done", next = 3 }
    r, err = client:call("UpdatePhoneWebhook", { CustSpaceId = "C20230220000002", PhoneNumber = "60123456789",
                                                 UpCallbackUrl = "https://hooks.example.com/b12" })
    failed(r, err, code ~= "" and code or nil, "call, a write")
    emu:clear_faults()
  end } }
end

T.cases { { "a 200 body with no Code", function()
  emu:fault { kind = "malformed", status = 200, next = 3,
              body = '{"RequestId":"B12-NO-CODE","Message":"no code","PhoneNumbers":[{"PhoneNumber":"1"}]}' }
  local r, err = client:query_phone_numbers()
  failed(r, err, nil, "no Code")
  emu:clear_faults()
end } }

T.cases { { "a policy run fails, and its policy sees no number", function()
  local policy = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "b12", decide = function(n, plan) plan:log("B12 SAW %s", n.phone_number) end }
]])
  emu:fault { kind = "error", code = "Biz.Failed", status = 200, message = "not done" }
  local r = E.run { "--endpoint", emu.url, "--output", "json", policy }
  emu:clear_faults()
  T.eq(r.code, 1, "exit status 1: something failed")
  T.check(r.err:find("Biz.Failed: not done (HTTP 200", 1, true), r.err)
  T.check(not (r.out .. r.err):find("B12 SAW", 1, true), "the policy got no number")
  local _, by = E.json_lines(r.out)
  local summary = by.summary and by.summary[1]
  T.check(summary, "a JSON summary: " .. r.out)
  if summary then
    T.eq(summary.status, "api", "the summary: an API call failed")
    T.eq(summary.calls and summary.calls.failed, 1, "the call failed")
    T.eq(summary.policies and summary.policies[1] and summary.policies[1].seen, 0, "the policy saw 0 numbers")
  end
  local space = by.space and by.space[1]
  T.check(space and space.numbers == nil and (space.error or ""):find("Biz.Failed", 1, true),
    "the space failed with the code")
  -- And once the answers are OK again, the same run sees the numbers.
  r = E.run { "--endpoint", emu.url, "--output", "json", policy }
  T.eq(r.code, 0, "control: " .. r.err)
  T.check((r.out .. r.err):find("B12 SAW", 1, true), "control: the policy sees numbers")
end } }

emu:stop()
E.cleanup()
return T.done()
