-- The client core against the emulator: the limiter's guarantee seen by the
-- server, several processes sharing one budget, adaptive slow-down,
-- classified retries (re-signed each time), Retry-After, the retry budget,
-- and every transport fault of docs/internals/testing.md (A, B) that applies.
--
-- Correctness only: speed is measured by the benchmarks (docs/benchmarks.md).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local emu = E.emulator()

local function client(opts)
  local o = { endpoint = emu.url, access_key_id = E.KEY_ID, access_key_secret = E.KEY_SECRET,
              limiter = "process" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(chatapp.client(o))
end

local function queries(n, status_prefix)
  local reqs = {}
  for i = 1, n do
    reqs[i] = { operation = "QueryChatappPhoneNumbers",
                params = status_prefix and { Status = status_prefix .. i } or nil }
  end
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
  { "A1: one process, many calls at 300 ms latency: never over 10 in any 1 s", function()
    emu:reset()
    local mark = #emu:log_lines()
    emu:fault { kind = "latency", ms = 300, jitter_ms = 50 }
    -- A wide margin: on a loaded test machine a process can be descheduled
    -- between taking a slot and sending (the benchmark uses the default).
    local c = client { window_margin_ms = 200 }
    local results, errors = c:batch(queries(40))
    local ok = 0
    for i = 1, 40 do if results[i] then ok = ok + 1 end end
    T.eq(ok, 40, tostring(errors[1]))
    local st = emu:stats()
    T.eq(st.throttled, 0, "zero throttles")
    T.check(st.operations.QueryChatappPhoneNumbers.busiest_1s <= 10,
      "busiest 1 s window " .. st.operations.QueryChatappPhoneNumbers.busiest_1s)
    local nonces, n = {}, 0
    for _, l in ipairs(log_since(mark)) do
      T.check(l.nonce and not nonces[l.nonce], "nonce unique")
      nonces[l.nonce] = true
      n = n + 1
    end
    T.eq(n, 40)
    T.eq(c:stats().attempts, 40, "no retries")
  end },

  { "A2: three processes of one account share the limit", function()
    emu:reset()
    local dir = E.tmpdir()
    local state = dir .. "/limiter.state"
    local script = E.write(dir .. "/worker.lua", ([[
local chatapp = require "chatapp"
local c = assert(chatapp.client { endpoint = %q, access_key_id = %q, access_key_secret = %q,
                                  limiter = %q, window_margin_ms = 200 })
local reqs = {}
for i = 1, 15 do reqs[i] = { operation = "QueryChatappPhoneNumbers" } end
local res, err = c:batch(reqs)
for i = 1, 15 do if not res[i] then print(tostring(err[i])) return 1 end end
return 0]]):format(emu.url, E.KEY_ID, E.KEY_SECRET, state))
    local pids = {}
    for i = 1, 3 do
      local p = io.popen(("%s --lua %s >%s/out%d 2>&1 & echo $!"):format(E.quote(E.run_bin),
        E.quote(script), E.quote(dir), i))
      pids[i] = p:read("l")
      p:close()
    end
    for _, pid in ipairs(pids) do E.wait_pid(pid, 30000) end
    local st = emu:stats()
    T.eq(st.operations.QueryChatappPhoneNumbers.accepted, 45, E.read(dir .. "/out1"))
    T.eq(st.throttled, 0, "zero throttles across processes")
    T.check(st.operations.QueryChatappPhoneNumbers.busiest_1s <= 10,
      "busiest window " .. st.operations.QueryChatappPhoneNumbers.busiest_1s)
  end },

  { "A5: quota lowered by someone else: slow down, every call still succeeds", function()
    emu:reset()
    emu:control("POST", "quota", { quota = 4, for_ms = 3000 })
    local c = client { max_attempts = 5 }
    local results, errors = c:batch(queries(20))
    for i = 1, 20 do T.check(results[i], tostring(errors[i])) end
    local s = c:stats()
    T.check(s.throttled > 0, "throttle answers seen")
    T.check(s.min_factor < 1, "the limiter slowed down")
    T.check(s.retries >= s.throttled, "throttled calls were retried")
  end },

  { "a call's deadline counts from its first attempt, not from the queue", function()
    emu:reset()
    -- 4 calls at 1/s take 3 s to start: longer than each call's deadline.
    local c = client { qps = 1, call_timeout_ms = 1500, window_margin_ms = 0 }
    local results, errors = c:batch(queries(4))
    for i = 1, 4 do T.check(results[i], tostring(errors[i])) end
  end },

  { "A6: a dead server is not hammered", function()
    emu:reset()
    local mark = #emu:log_lines()
    emu:fault { kind = "error", code = "InternalError" }
    local c = client()
    local results, errors = c:batch(queries(12, "S"))
    local attempts = 0
    for i = 1, 12 do
      T.eq(results[i], nil)
      T.check(errors[i].attempts <= 3, "at most 3 attempts per call")
      attempts = attempts + errors[i].attempts
      T.eq(errors[i].code, "InternalError")
      T.eq(errors[i].http_status, 500)
      T.eq(errors[i].retryable, true)
    end
    T.check(attempts <= 1.1 * 12 + 10, "retry budget: " .. attempts .. " attempts")
    -- Gaps between one call's attempts are never below the base backoff.
    local by_call = {}
    for _, l in ipairs(log_since(mark)) do
      local k = l.params and l.params.Status
      if k then
        by_call[k] = by_call[k] or {}
        table.insert(by_call[k], l.t_us)
      end
    end
    local calls, gaps = 0, 0
    for k, times in pairs(by_call) do
      calls = calls + 1
      for i = 2, #times do
        T.check(times[i] - times[i - 1] >= 100000, ("%s: gap %d us"):format(k, times[i] - times[i - 1]))
        gaps = gaps + 1
      end
    end
    -- the loop above saw every call, and retries to measure
    T.eq(calls, 12, "every call found in the log by its Status parameter")
    T.check(gaps > 0, "some calls were retried: " .. gaps .. " gaps measured")
  end },

  { "A7: Retry-After is honoured; absurd values are capped", function()
    emu:reset()
    local mark = #emu:log_lines()
    emu:fault { kind = "error", code = "Throttling.User", next = 1, x_acs_retry_after = "2000" }
    local c = client()
    local t0 = core.monotonic()
    local r, err = c:query_phone_numbers()
    T.check(r, tostring(err))
    T.check(core.monotonic() - t0 >= 1.9, "waited for x-acs-retry-after")
    local lines = log_since(mark)
    T.eq(#lines, 2)
    if #lines == 2 then T.check(lines[2].t_us - lines[1].t_us >= 1900000, "2 s apart") end
    for _, v in ipairs { "1000000000000", "-5", "garbage", "Wed, 21 Oct 2099 07:28:00 GMT" } do
      emu:fault { kind = "error", code = "ServiceUnavailable", next = 1, retry_after = v }
      t0 = core.monotonic()
      r, err = client { max_retry_after_ms = 1500 }:query_phone_numbers()
      T.check(r, tostring(err))
      T.check(core.monotonic() - t0 < 4, "Retry-After " .. v .. " did not hang")
    end
  end },

  { "A8: every attempt is signed afresh", function()
    emu:reset()
    local mark = #emu:log_lines()
    emu:fault { kind = "error", code = "ServiceUnavailable", next = 2 }
    local r, err = client():query_phone_numbers()
    T.check(r, tostring(err))
    local lines = log_since(mark)
    T.eq(#lines, 3)
    local seen = {}
    for _, l in ipairs(lines) do
      T.check(not seen[l.nonce], "a new nonce")
      seen[l.nonce] = true
    end
    T.eq((emu:stats().rejected_by_code or {}).SignatureNonceUsed, nil, "no SignatureNonceUsed")
  end },

  { "B1: a server that never answers: the attempt times out", function()
    emu:reset()
    emu:fault { kind = "hang" }
    local t0 = core.monotonic()
    local r, err = client { timeout_ms = 500, max_attempts = 2 }:query_phone_numbers()
    T.eq(r, nil)
    T.eq(err.status, "ETIMEDOUT")
    T.check(core.monotonic() - t0 < 3, "bounded")
  end },

  { "B3: a dripping body is aborted", function()
    emu:reset()
    emu:fault { kind = "drip", interval_ms = 1500 }
    local t0 = core.monotonic()
    local r, err = client { low_speed_time_s = 1, max_attempts = 1 }:query_phone_numbers()
    T.eq(r, nil)
    T.check(err and (err.status == "ETIMEDOUT" or err.status == "ETRANSPORT"), tostring(err))
    T.check(core.monotonic() - t0 < 4, "aborted by the low-speed window")
  end },

  { "B4/B5: oversized and endless bodies stop at the cap", function()
    emu:reset()
    emu:fault { kind = "oversize", next = 1 }
    local r, err = client { max_response_bytes = 1048576 }:query_phone_numbers()
    T.eq(r, nil)
    T.eq(err.status, "ETOOBIG")
    T.check(err.message:find("1048576-byte cap", 1, true), err.message)
    emu:fault { kind = "chunked", next = 1 }
    local t0 = core.monotonic()
    r, err = client { max_response_bytes = 1048576 }:query_phone_numbers()
    T.eq(r, nil)
    T.eq(err.status, "ETOOBIG")
    T.eq(err.attempts, 1, "not retried")
    T.check(core.monotonic() - t0 < 5)
  end },

  { "B6: reset mid-body and truncated JSON: retried, nothing partial reaches Lua", function()
    emu:reset()
    emu:fault { kind = "reset", after_bytes = 100, next = 1 }
    local r, err = client():query_phone_numbers()
    T.check(r and #r == 7, tostring(err))
    emu:fault { kind = "truncate", after_bytes = 64, next = 1 }
    r, err = client():query_phone_numbers()
    T.check(r and #r == 7, tostring(err))
    emu:fault { kind = "malformed", next = 3 }
    r, err = client():query_phone_numbers()
    T.eq(r, nil)
    T.eq(err.status, "EPARSE")
    T.eq(err.attempts, 3)
  end },

  { "B7: redirects are never followed", function()
    emu:reset()
    emu:fault { kind = "redirect", location = "http://127.0.0.2:9/steal", next = 1 }
    local r, err = client():query_phone_numbers()
    T.eq(r, nil)
    T.check(err.message:find("redirect", 1, true) and err.message:find("refused", 1, true), err.message)
    T.eq(err.attempts, 1)
  end },

  { "B9: plain http to a non-loopback host is refused before any connection", function()
    local c, err = chatapp.client { endpoint = "http://cams.invalid", access_key_id = "x",
                                    access_key_secret = "y", limiter = "process" }
    T.eq(c, nil)
    T.check(tostring(err):find("plain http", 1, true), tostring(err))
    T.eq(err.status, "ECONFIG")
  end },

  { "B8: a self-signed certificate fails TLS verification; no request is sent", function()
    local dir = E.tmpdir()
    os.execute(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/k.pem -out %s/c.pem -days 1 "
      .. "-subj /CN=localhost >/dev/null 2>&1"):format(dir, dir))
    -- Is something listening on 127.0.0.1:port (/proc/net/tcp, state 0A)?
    local function listening(port)
      local tcp = E.read("/proc/net/tcp") or ""
      return tcp:find((":%04X %%x+:%%x+ 0A"):format(port)) ~= nil
    end
    local port, pid
    for _ = 1, 20 do
      port = 20000 + math.random(0, 40000)
      local p = io.popen(("openssl s_server -accept 127.0.0.1:%d -cert %s/c.pem -key %s/k.pem -quiet "
        .. ">%s/received 2>/dev/null & echo $!"):format(port, dir, dir, dir))
      pid = p:read("l")
      p:close()
      -- wait until it listens (or has died: the port was taken), not a guess
      for _ = 1, 250 do
        if listening(port) or not os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
        E.sleep_ms(20)
      end
      if listening(port) and os.execute("kill -0 " .. pid .. " 2>/dev/null") then break end
      os.execute("kill " .. pid .. " 2>/dev/null")
      pid = nil
    end
    T.check(pid, "openssl s_server started")
    if not pid then return end
    local c = assert(chatapp.client { endpoint = "https://127.0.0.1:" .. port, access_key_id = E.KEY_ID,
      access_key_secret = E.KEY_SECRET, limiter = "process", max_attempts = 1 })
    local r, err = c:query_phone_numbers()
    os.execute("kill " .. pid)
    T.eq(r, nil)
    T.eq(err.status, "ETRANSPORT")
    T.check(err.message:lower():find("certificate", 1, true), err.message)
    T.check(not (E.read(dir .. "/received") or ""):find("POST", 1, true), "no request bytes reached the server")
  end },

  { "B10: proxies from the environment; no_proxy honoured, credentials in the proxy URL never shown", function()
    local p = E.path("scripts/policies/quality-alert.lua")
    local r = E.run({ "--endpoint", emu.url, p },
      { http_proxy = "http://user:proxy-password@127.0.0.1:1", no_proxy = "127.0.0.1" })
    T.eq(r.code, 0, "direct connection: " .. r.err)
    r = E.run({ "--endpoint", emu.url, "--max-attempts", "1", p },
      { http_proxy = "http://user:proxy-password@127.0.0.1:1" })
    T.eq(r.code, 1, "the dead proxy is used and fails")
    T.check(r.err:find("127.0.0.1 port 1", 1, true), r.err)
    T.check(not r.err:find("proxy-password", 1, true), "the proxy's password is not shown")
  end },

  { "B11/B12: final errors are not retried and reach Lua typed", function()
    emu:reset()
    emu:fault { kind = "error", code = "InvalidParameter", message = "bad Status", next = 1 }
    local r, err = client():query_phone_numbers()
    T.eq(r, nil)
    T.eq(getmetatable(err), chatapp.ApiError)
    T.eq(err.code, "InvalidParameter")
    T.eq(err.attempts, 1)
    T.eq(err.retryable, false)
    T.eq(err.operation, "QueryChatappPhoneNumbers")
    T.check(err.request_id and #err.request_id > 0, "a RequestId")
    T.check(tostring(err):find("QueryChatappPhoneNumbers failed: InvalidParameter: bad Status (HTTP 400, RequestId", 1, true),
      tostring(err))
    emu:fault { kind = "error", code = "Biz.Failed", status = 200, message = "no", next = 1 }
    r, err = client():query_phone_numbers()
    T.eq(r, nil, "200 with a non-OK Code is a failure")
    T.eq(err.code, "Biz.Failed")
    T.eq(err.http_status, 200)
  end },

  { "writes are retried only when provably not executed", function()
    emu:reset()
    local params = { CustSpaceId = "C20230220000002", PhoneNumber = "60123456789",
                     UpCallbackUrl = "https://hooks.example.com/x" }
    emu:fault { kind = "error", code = "InternalError", op = "UpdatePhoneWebhook", next = 1 }
    local r, err = client():call("UpdatePhoneWebhook", params)
    T.eq(r, nil)
    T.eq(err.attempts, 1, "a 500 on a write is not retried")
    T.eq(err.status, "EUNKNOWN")
    T.check(tostring(err):find("outcome unknown", 1, true), tostring(err))
    emu:fault { kind = "error", code = "Throttling.User", op = "UpdatePhoneWebhook", next = 1 }
    r, err = client():call("UpdatePhoneWebhook", params)
    T.check(r, tostring(err))
    T.eq(r.Code, "OK")
  end },

  { "signature and credential errors name the fix", function()
    emu:reset()
    local c = client { access_key_secret = "wrong-secret" }
    local r, err = c:query_phone_numbers()
    T.eq(r, nil)
    T.eq(err.code, "SignatureDoesNotMatch")
    T.eq(err.attempts, 1)
    T.check(err.hint and err.hint:find("secret", 1, true), tostring(err))
    c = client { access_key_id = "LTAInobody" }
    r, err = c:query_phone_numbers()
    T.eq(err.code, "InvalidAccessKeyId.NotFound")
  end },

  { "STS credentials sign with their token", function()
    emu:reset()
    local c = client { access_key_id = "STS.emulatorTemporaryKey", access_key_secret = "emulator-sts-secret",
                       security_token = "emulator-sts-token" }
    local r, err = c:query_phone_numbers()
    T.check(r and #r == 7, tostring(err))
    c = client { access_key_id = "STS.emulatorTemporaryKey", access_key_secret = "emulator-sts-secret",
                 security_token = "emulator-sts-token", signature_version = "v2" }
    r, err = c:query_phone_numbers()
    T.check(r and #r == 7, tostring(err))
  end },

  { "batch mixes operations and reports each outcome", function()
    emu:reset()
    local c = client()
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
