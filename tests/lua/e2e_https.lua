-- HTTPS end to end (issue 18): chatapp-run against the emulator serving
-- HTTPS with a throwaway CA (tests/lua/tls_ca.lua, made at test time).
--
-- - The example policies (scripts/policies) give over HTTPS the same
--   JSON report as over HTTP (the spaces, matches, webhooks to the
--   emulator's sink, UpdatePhoneWebhook writes), run side by side against
--   an HTTP and an HTTPS emulator.
-- - `chatapp-run --emulator --emulator-tls-cert/-key --ca-file` runs the
--   demo over HTTPS; its usage errors are clear.
-- - A run of 300 calls (300 spaces) opens no more connections, and makes
--   no more TLS handshakes, than it had calls in flight at once: the
--   connections from the emulator's stats.connections, the calls in
--   flight at once from its request log (each call is held 50 ms by a
--   latency rule: the most [arrival, arrival + 50 ms] intervals that
--   overlap, which is never more than the client had in flight).
-- - A connection dropped mid-handshake (fault kind drop) is a retried
--   network error, "not sent": a write (UpdatePhoneWebhook) is retried
--   too, and succeeds on the next connection.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local json = chatapp.json

local SPACES = E.path("scripts/spaces/sample-spaces.json")
local function policy(name) return E.path("scripts/policies/" .. name .. ".lua") end

local certs = require("tls_ca").create(E.tmpdir())
local plain = E.emulator()
local tls = E.emulator({}, { tls = certs })

-- A JSON report made comparable across emulators: the emulator's URL
-- becomes EMU; what differs from run to run (request ids, durations, the
-- idempotency keys, which hash the URL) goes.
local VOLATILE = { request_id = true, duration_s = true, id = true, ["Idempotency-Key"] = true }

local function canon(v, url)
  local t = type(v)
  if t == "string" then
    return json.encode((v:gsub(url:gsub("%p", "%%%0"), "EMU")))
  elseif t ~= "table" then
    return json.encode(v)
  end
  if #v > 0 or next(v) == nil then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = canon(x, url) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local keys = {}
  for k in pairs(v) do
    if not VOLATILE[k] then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = json.encode(k) .. ":" .. canon(v[k], url) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function report(r, url)
  local lines = {}
  for i, t in ipairs((E.json_lines(r.out))) do lines[i] = canon(t, url) end
  return table.concat(lines, "\n")
end

-- Run chatapp-run against emu with args (the endpoint, the CA and a
-- webhook target at emu's sink added): the result and its comparable
-- report.
local function run_on(emu, args)
  local full = { "--endpoint", emu.url, "--ca-file", certs.ca, "--output", "json" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  local r = E.run(full, { OPS_HOOK = emu.url .. "/_emulator/sink/ops" })
  return r, report(r, emu.url)
end

-- The same run over HTTP and over HTTPS: both succeed with one report.
local function same(args, what)
  local rh, h = run_on(plain, args)
  local rs, s = run_on(tls, args)
  T.eq(rh.code, 0, what .. " over HTTP: " .. rh.err)
  T.eq(rs.code, 0, what .. " over HTTPS: " .. rs.err)
  T.check(not rs.err:find("TLS", 1, true), rs.err)
  T.eq(s, h, what .. ": the same report over HTTPS as over HTTP")
  return rs, s
end

T.cases {
  { "the example policies over HTTPS: the same report as over HTTP (webhooks included)", function()
    plain:control("DELETE", "deliveries")
    tls:control("DELETE", "deliveries")
    local r = same({ "--spaces", SPACES, policy("quality-alert"), policy("number-health"),
                     policy("tier-report") }, "quality-alert, number-health, tier-report")
    local _, by = E.json_lines(r.out)
    T.eq(#(by.space or {}), 4, "four spaces fetched over HTTPS")
    T.check(by.match and #by.match >= 4, "numbers matched")
    T.check(by.action and #by.action >= 2, "webhooks planned")
    for _, a in ipairs(by.action or {}) do
      if a.kind == "webhook" then
        T.eq(a.status, "done", a.phone_number)
        T.check(a.request.url:find("^https://127%.0%.0%.1:%d+/_emulator/sink/ops"), a.request.url)
      end
    end
    local dh, ds = plain:deliveries(), tls:deliveries()
    T.check(#ds > 0, "webhooks reached the HTTPS sink")
    T.eq(#ds, #dh, "as many as over HTTP")
    local c = tls:stats().connections
    T.eq(c.tls, true)
    T.check(c.tls_handshakes > 0, "TLS handshakes counted")
  end },

  { "webhook-drift applied over HTTPS: the writes done as over HTTP, then nothing left", function()
    plain:reset()
    tls:reset()
    local r = same({ "--spaces", SPACES, policy("webhook-drift") }, "webhook-drift")
    local _, by = E.json_lines(r.out)
    T.eq(#(by.action or {}), 3, "three UpdatePhoneWebhook")
    for _, a in ipairs(by.action or {}) do
      T.eq(a.status, "done", a.phone_number)
      T.eq(a.request.operation, "UpdatePhoneWebhook")
    end
    T.eq(tls:stats().operations.UpdatePhoneWebhook.accepted, 3, "the HTTPS emulator got the writes")
    r = same({ "--spaces", SPACES, policy("webhook-drift") }, "webhook-drift again")
    _, by = E.json_lines(r.out)
    T.eq(by.action, nil, "nothing left to do")
  end },

  { "chatapp-run --emulator over HTTPS: the demo with a certificate the user made", function()
    local sinkp = E.policy([[
local chatapp = require "chatapp"
local url = os.getenv("CHATAPP_EMULATOR_SINK") .. "/pager"
return chatapp.policy { name = "red-pager", where = { quality_rating = "RED" },
  decide = function(n, plan) plan:webhook { url = url, json = { number = n.phone_number } } end }]])
    local env = { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false,
                  CHATAPP_EMULATOR = E.emu_bin }
    local r = E.run({ "--emulator", "--emulator-tls-cert", certs.server.cert, "--emulator-tls-key",
                      certs.server.key, "--ca-file", certs.ca, "-v", "--output", "json",
                      policy("quality-alert"), sinkp }, env)
    T.eq(r.code, 0, r.err)
    local url = r.err:match("emulator listening on (%S+)")
    T.check(url and url:find("^https://127%.0%.0%.1:%d+$"), "an HTTPS endpoint: " .. r.err)
    local _, by = E.json_lines(r.out)
    T.eq(by.summary and by.summary[1].policies[1].matched, 2, "quality-alert: 2 matched")
    local a = { request = {} }
    for _, x in ipairs(by.action or {}) do
      if x.policy == "red-pager" then a = x end
    end
    T.check(tostring(a.request.url):find("^https://127%.0%.0%.1:%d+/_emulator/sink/pager"),
            "the sink is HTTPS too: " .. tostring(a.request.url))
    T.eq(a.status, "done", tostring(a.error))
    -- and the same report as the plain --emulator
    local p = E.run({ "--emulator", "-v", "--output", "json", policy("quality-alert"), sinkp }, env)
    T.eq(p.code, 0, p.err)
    local purl = p.err:match("emulator listening on (%S+)")
    T.check(purl and purl:find("^http://"), p.err)
    T.eq(report(r, url or "?"), report(p, purl or "?"), "the same report as over HTTP")
  end },

  { "--emulator over HTTPS: usage errors say what to do", function()
    local env = { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false,
                  CHATAPP_EMULATOR = E.emu_bin }
    local p = policy("quality-alert")
    local cert, key, ca = certs.server.cert, certs.server.key, certs.ca
    local cases = {
      { { "--emulator", "--emulator-tls-cert", cert, "--ca-file", ca, p },
        "--emulator-tls-cert needs --emulator-tls-key KEY.pem too" },
      { { "--emulator", "--emulator-tls-key", key, "--ca-file", ca, p },
        "--emulator-tls-key needs --emulator-tls-cert CERT.pem too" },
      { { "--emulator-tls-cert", cert, "--emulator-tls-key", key, "--ca-file", ca, p },
        "go with --emulator" },
      { { "--emulator", "--emulator-tls-cert", cert, "--emulator-tls-key", key, p },
        "give the CA that signed it with --ca-file CA.pem" },
      { { "--emulator", "--emulator-tls-cert", cert .. ".missing", "--emulator-tls-key", key, "--ca-file", ca, p },
        "--emulator-tls-cert " .. cert .. ".missing: No such file or directory" },
      { { "--emulator", "--emulator-tls-cert", cert, "--emulator-tls-key", certs.dir, "--ca-file", ca, p },
        "--emulator-tls-key " .. certs.dir .. ": not a regular file" },
      -- a key that is not the certificate's: the emulator's reason, exit 2
      { { "--emulator", "--emulator-tls-cert", cert, "--emulator-tls-key", certs.expired.key, "--ca-file", ca, p },
        "check that --tls-key is the private key of --tls-cert" },
    }
    for _, c in ipairs(cases) do
      local r = E.run(c[1], env, { wrap = "timeout 20" })
      T.eq(r.code, 2, table.concat(c[1], " ") .. ": " .. r.err)
      T.check(r.err:find(c[2], 1, true), c[2] .. " in: " .. r.err)
    end
    -- a CA that did not sign the certificate: refused, no request sent
    local r = E.run({ "--emulator", "--emulator-tls-cert", cert, "--emulator-tls-key", key,
                      "--ca-file", certs.other_ca_cert, p }, env, { wrap = "timeout 20" })
    T.eq(r.code, 1, r.err)
    T.check(r.err:find("unknown CA", 1, true) and r.err:find("no request was sent", 1, true), r.err)
  end },

  { "300 calls open no more connections (and TLS handshakes) than calls in flight at once", function()
    local dir = E.tmpdir()
    local spaces, list = {}, {}
    for i = 1, 300 do
      local id = ("C9%014d"):format(i)
      spaces[i] = { cust_space_id = id, label = "S" .. i,
                    phone_numbers = { { PhoneNumber = ("86139%08d"):format(i), Status = "CONNECTED",
                                        QualityRating = "GREEN", MessagingLimitTier = "TIER_1K" } } }
      list[i] = { cust_space_id = id, label = "S" .. i }
    end
    local fx = E.write(dir .. "/fixture.json", assert(json.encode { spaces = spaces }))
    local sp = E.write(dir .. "/spaces.json", assert(json.encode(list)))
    local emu = E.emulator({ "--data", fx, "--quota", "5000", "--latency", "50" }, { tls = certs })
    local before = emu:stats().connections -- the control connection is open now, and kept
    local r = E.run({ "--endpoint", emu.url, "--ca-file", certs.ca, "--spaces", sp, "--qps", "1000",
                      "--output", "json", policy("tier-report") })
    local after = emu:stats()
    emu:stop()
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(by.summary and by.summary[1].calls.calls, 300, "300 calls")
    T.eq(after.accepted, 300, "300 calls reached the emulator")
    -- calls in flight at once, at the server: each held 50 ms
    local ev, conns, nconns = {}, {}, 0
    for _, l in ipairs(emu:log_lines()) do
      if l.verdict == "accepted" then
        ev[#ev + 1] = { l.t_us, 1 }
        ev[#ev + 1] = { l.t_us + (l.delay_ms or 0) * 1000, -1 }
        if not conns[l.conn] then conns[l.conn], nconns = true, nconns + 1 end
      end
    end
    table.sort(ev, function(a, b)
      if a[1] ~= b[1] then return a[1] < b[1] end
      return a[2] < b[2] -- an end before a start at the same instant
    end)
    local cur, peak = 0, 0
    for _, e in ipairs(ev) do
      cur = cur + e[2]
      peak = math.max(peak, cur)
    end
    local c = after.connections
    local opened = c.opened - before.opened
    local handshakes = c.tls_handshakes - before.tls_handshakes
    local resumed = c.tls_resumed - before.tls_resumed
    print(("# 300 calls: %d in flight at once at most; %d connections opened (%d used by calls), "
           .. "%d TLS handshakes, %d of them resumed"):format(peak, opened, nconns, handshakes, resumed))
    T.check(peak >= 2, "calls overlapped (" .. peak .. ")")
    T.check(nconns <= peak, ("the calls came on %d connections, at most %d in flight"):format(nconns, peak))
    T.check(opened <= peak, ("%d connections opened, at most %d calls in flight"):format(opened, peak))
    T.check(handshakes <= peak, ("%d TLS handshakes, at most %d calls in flight"):format(handshakes, peak))
  end },

  { "a connection dropped mid-handshake: a retried network error, not sent; a write retried too", function()
    local client = function(attempts)
      return assert(chatapp.client { endpoint = tls.url, ca_file = certs.ca, access_key_id = E.KEY_ID,
                                     access_key_secret = E.KEY_SECRET, limiter = "process",
                                     max_attempts = attempts, timeout_ms = 5000 })
    end
    local params = { CustSpaceId = "C20230220000002", PhoneNumber = "60123456790",
                     StatusCallbackUrl = "https://hooks.example.com/cams/C20230220000002/status" }
    tls:reset()
    local before = tls:stats() -- opens the control connection before the rule
    local logged = #tls:log_lines()
    -- one attempt: the error says what happened, and that it may be retried
    tls:fault { kind = "drop", next = 1 }
    local res, err = client(1):call("UpdatePhoneWebhook", params)
    T.eq(res, nil)
    T.eq(err and err.status, "ETRANSPORT", "not EUNKNOWN: nothing was sent")
    T.eq(err and err.retryable, true)
    local m = tostring(err and err.message)
    T.check(m:find("the TLS handshake with 127.0.0.1:" .. tls.port .. " failed, no request was sent", 1, true), m)
    -- three attempts: two connections dropped, the third carries the write
    tls:fault { kind = "drop", next = 2 }
    res, err = client(3):call("UpdatePhoneWebhook", params)
    T.eq(err, nil, err and tostring(err.message))
    T.eq(res and res.Code, "OK")
    local s = tls:stats()
    T.eq(s.connections.dropped - before.connections.dropped, 3, "three connections dropped in all")
    T.eq(s.operations.UpdatePhoneWebhook and s.operations.UpdatePhoneWebhook.accepted, 1,
         "the write arrived once, after the drops")
    local drops, writes = 0, 0
    for i, l in ipairs(tls:log_lines()) do
      if i <= logged then goto next end
      if l.fault == "drop" then drops = drops + 1 end
      if l.op == "UpdatePhoneWebhook" then writes = writes + 1 end
      ::next::
    end
    T.eq(drops, 3, "the log has the three drops")
    T.eq(writes, 1, "and one write")
    -- the CLI: a query on a dropped connection is retried, the run succeeds
    tls:fault { kind = "drop", next = 1 }
    local r = E.run({ "--endpoint", tls.url, "--ca-file", certs.ca, "-vv", policy("quality-alert") })
    T.eq(r.code, 0, r.err)
    T.check(r.err:find("attempt 1 failed (the TLS handshake with", 1, true), r.err)
    T.eq(tls:stats().connections.dropped - before.connections.dropped, 4, "the run's connection was dropped")
  end },
}

plain:stop()
tls:stop()
E.cleanup()
return T.done()
