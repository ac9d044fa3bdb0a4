-- ctest: timeout=120
-- B8: self-signed certificate / wrong hostname.
-- Criterion: TLS verify error; no request bytes sent.
--
-- How: chatapp-run (a run of quality-alert, -vv, JSON output) against
-- the emulator serving HTTPS at https://127.0.0.1:PORT with
--   1. a self-signed certificate for 127.0.0.1 (made here with openssl;
--      chatapp-run trusts the system store, as a user would), and
--   2. a certificate from the CA chatapp-run trusts (--ca-file, the CA of
--      tests/lua/tls_ca.lua) that names localhost only: the wrong host
--      for 127.0.0.1.
-- Each run must end with exit 1 and the TLS verification error (host,
-- the check that failed: unknown CA for the self-signed one, host name
-- mismatch for the other, and what to do), after one attempt (never
-- retried).  "No request bytes sent" is read from the emulator: its
-- connection counters show the client connected (opened grew) but no
-- connection completed its handshake and sent a request (tls_handshakes
-- did not grow), no API request arrived (requests did not grow) and its
-- request log has no line.  The emulator's control endpoint is reached
-- by the test with a client that trusts the certificate (the self-signed
-- certificate itself; https://localhost:PORT for the second).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local dir = E.tmpdir()
local q = E.quote
local certs = require("tls_ca").create(dir)

local function openssl(cmd)
  local ok = os.execute("umask 077; openssl " .. cmd .. " >>" .. q(dir .. "/openssl.log") .. " 2>&1")
  assert(ok, "openssl " .. cmd .. ": " .. (E.read(dir .. "/openssl.log") or ""))
end

local EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
-- 1. self-signed, for 127.0.0.1 and localhost: only its issuer is wrong
openssl(("req -x509 %s -keyout %s -out %s -days 2 -subj /CN=127.0.0.1 "
         .. "-addext subjectAltName=IP:127.0.0.1,DNS:localhost")
        :format(EC, q(dir .. "/self.key"), q(dir .. "/self.pem")))
-- 2. from the trusted CA, for localhost only: only its host name is wrong
E.write(dir .. "/localhost.ext", "subjectAltName=DNS:localhost\n")
openssl(("req %s -keyout %s -out %s -subj /CN=localhost")
        :format(EC, q(dir .. "/localhost.key"), q(dir .. "/localhost.csr")))
openssl(("x509 -req -in %s -CA %s -CAkey %s -CAcreateserial -days 2 -extfile %s -out %s")
        :format(q(dir .. "/localhost.csr"), q(certs.ca), q(certs.ca_key), q(dir .. "/localhost.ext"),
                q(dir .. "/localhost.pem")))

local quality = E.path("scripts/policies/quality-alert.lua")

-- Serve cert/key; run chatapp-run at https://127.0.0.1:PORT with extra
-- args; check the refusal and that no request reached the emulator.
-- control_host: the name the test's control client uses.
local function refused(name, cert, key, trust, control_host, extra, check)
  local emu = E.emulator({}, { tls = { server = { cert = cert, key = key }, ca = trust } })
  emu.url = ("https://%s:%d"):format(control_host, emu.port)
  local before = emu:stats()
  local endpoint = "https://127.0.0.1:" .. emu.port
  local args = { "--endpoint", endpoint, "--output", "json", "-vv", "--max-attempts", "3" }
  for _, a in ipairs(extra) do args[#args + 1] = a end
  args[#args + 1] = quality
  local r = E.run(args, nil, { wrap = "timeout 60" })
  local after = emu:stats()
  local log = emu:log_lines()
  emu:stop()

  T.eq(r.code, 1, name .. ": exit 1: " .. r.err)
  T.check(r.err:find("TLS verification of 127.0.0.1:" .. emu.port .. " failed, no request was sent", 1, true),
          name .. ": the TLS verify error names the host: " .. r.err)
  for _, words in ipairs(check) do
    T.check(r.err:find(words, 1, true), name .. ": says " .. words .. ": " .. r.err)
  end
  T.check(r.err:find("(1 attempt)", 1, true), name .. ": one attempt: " .. r.err)
  T.check(not r.err:find("retrying", 1, true), name .. ": not retried: " .. r.err)
  local _, by = E.json_lines(r.out)
  T.eq(by.summary and by.summary[1].calls.attempts, 1, name .. ": one attempt in the summary")
  -- no request bytes sent: the client connected, no handshake completed
  -- with a request, no API request arrived, nothing logged
  local c0, c1 = before.connections, after.connections
  T.check(c1.opened > c0.opened, name .. ": the client connected (opened " .. c0.opened .. " -> " .. c1.opened .. ")")
  T.eq(c1.tls_handshakes, c0.tls_handshakes, name .. ": no connection finished its handshake with a request")
  T.eq(after.requests, before.requests, name .. ": no API request arrived")
  T.eq(#log, 0, name .. ": the emulator logged no request")
end

T.cases {
  { "a self-signed certificate: TLS verify error (unknown CA), no request bytes sent", function()
    refused("self-signed", dir .. "/self.pem", dir .. "/self.key", dir .. "/self.pem", "127.0.0.1", {},
            { "self-signed certificate", "unknown CA", "--ca-file FILE" })
  end },

  { "a wrong hostname: TLS verify error (host name mismatch), no request bytes sent", function()
    refused("wrong hostname", dir .. "/localhost.pem", dir .. "/localhost.key", certs.ca, "localhost",
            { "--ca-file", certs.ca },
            { "host name mismatch", "check the endpoint's host name" })
  end },
}

E.cleanup()
return T.done()
