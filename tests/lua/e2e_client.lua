-- The client core against the emulator, beyond the reliability cases
-- (tests/reliability/A*.lua and B*.lua: the limiter, retries and every
-- transport fault, docs/reliability.md): a call's deadline, which writes
-- are retried, signature and credential errors, STS tokens, mixed
-- batches, a request that raises, an option libcurl refuses.
--
-- Correctness only: speed is measured by the benchmarks (docs/benchmarks.md).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local emu = E.emulator()

local function queries(n)
  local reqs = {}
  for i = 1, n do reqs[i] = { operation = "QueryChatappPhoneNumbers" } end
  return reqs
end

-- Log lines written since mark (a count of lines).
local function log_since(mark)
  local lines = emu:log_lines()
  local r = {}
  for i = mark + 1, #lines do r[#r + 1] = lines[i] end
  return r
end

T.cases {
  { "a call's deadline counts from its first attempt, not from the queue", function()
    emu:reset()
    -- 4 calls at 1/s take 3 s to start: longer than each call's deadline.
    local c = emu:client { qps = 1, call_timeout_ms = 1500, window_margin_ms = 0 }
    local results, errors = c:batch(queries(4))
    for i = 1, 4 do T.check(results[i], tostring(errors[i])) end
  end },

  { "writes are retried only when provably not executed", function()
    emu:reset()
    local params = { CustSpaceId = "C20230220000002", PhoneNumber = "60123456789",
                     UpCallbackUrl = "https://hooks.example.com/x" }
    emu:fault { kind = "error", code = "InternalError", op = "UpdatePhoneWebhook", next = 1 }
    local r, err = emu:client():call("UpdatePhoneWebhook", params)
    T.eq(r, nil)
    T.eq(err.attempts, 1, "a 500 on a write is not retried")
    T.eq(err.status, "EUNKNOWN")
    T.check(tostring(err):find("outcome unknown", 1, true), tostring(err))
    emu:fault { kind = "error", code = "Throttling.User", op = "UpdatePhoneWebhook", next = 1 }
    r, err = emu:client():call("UpdatePhoneWebhook", params)
    T.check(r, tostring(err))
    T.eq(r.Code, "OK")
  end },

  { "signature and credential errors name the fix", function()
    emu:reset()
    local c = emu:client { access_key_secret = "wrong-secret" }
    local r, err = c:query_phone_numbers()
    T.eq(r, nil)
    T.eq(err.code, "SignatureDoesNotMatch")
    T.eq(err.attempts, 1)
    T.check(err.hint and err.hint:find("secret", 1, true), tostring(err))
    c = emu:client { access_key_id = "LTAInobody" }
    r, err = c:query_phone_numbers()
    T.eq(err.code, "InvalidAccessKeyId.NotFound")
  end },

  { "STS credentials sign with their token", function()
    emu:reset()
    local c = emu:client { access_key_id = "STS.emulatorTemporaryKey", access_key_secret = "emulator-sts-secret",
                       security_token = "emulator-sts-token" }
    local r, err = c:query_phone_numbers()
    T.check(r and #r == 7, tostring(err))
    c = emu:client { access_key_id = "STS.emulatorTemporaryKey", access_key_secret = "emulator-sts-secret",
                 security_token = "emulator-sts-token", signature_version = "v2" }
    r, err = c:query_phone_numbers()
    T.check(r and #r == 7, tostring(err))
  end },

  { "batch mixes operations and reports each outcome", function()
    emu:reset()
    local c = emu:client()
    local results, errors = c:batch {
      { operation = "QueryChatappPhoneNumbers", space = { cust_space_id = "C20230220000002", label = "B" } },
      { operation = "QueryChatappPhoneNumbers", space = { cust_space_id = "C404" } },
      { "ChatappSyncPhoneNumber", { CustSpaceId = "C20230220000002" } },
    }
    T.eq(#results[1], 5)
    T.eq(results[1][1].space_label, "B")
    T.eq(errors[2].code, "Unknown.ResourceOwnerId")
    T.eq(results[3].Code, "OK")
    T.eq(math.type(#results[3].PhoneNumbers), "integer")
  end },

  { "a request that raises while it is read sends nothing and leaks nothing", function()
    emu:reset()
    local mark = #emu:log_lines()
    local h = assert(core.http_client {})
    local mt = { __index = function(_, k)
      if k == "timeout_ms" then error("boom reading " .. k) end
    end }
    for _ = 1, 200 do -- 1,120 bytes each were lost before (ASan/valgrind see it)
      local ok, err = pcall(h.batch, h, { setmetatable({ url = emu.url .. "/hook" }, mt) })
      T.check(not ok and tostring(err):find("boom reading timeout_ms", 1, true), tostring(err))
    end
    local ok, err = pcall(h.batch, h, { { url = emu.url .. "/hook", method = {} } })
    T.check(not ok and tostring(err):find("string expected", 1, true), tostring(err))
    T.eq(#log_since(mark), 0, "nothing reached the server")
    h:close()
  end },

  { "an option libcurl refuses fails the call, naming it; nothing is sent", function()
    emu:reset()
    local mark = #emu:log_lines()
    local h = assert(core.http_client {})
    local results, errors = h:batch { { url = emu.url .. "/" .. ("a"):rep(8000001) } }
    T.eq(results[1], nil)
    T.eq(errors[1].status, "ECONFIG")
    T.check(tostring(errors[1].message):find("libcurl refused CURLOPT_URL", 1, true), tostring(errors[1]))
    T.eq(#log_since(mark), 0, "nothing reached the server")
    h:close()
  end },
}

emu:stop()
E.cleanup()
return T.done()
