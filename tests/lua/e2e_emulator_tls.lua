-- chatapp-emulator over HTTPS (issue 18): --tls-cert/--tls-key with a
-- throwaway CA made at test time (tests/lua/tls_ca.lua); curl with
-- --cacert answers over https; the connection counters of
-- /_emulator/stats (connections.opened/closed/open/open_max,
-- tls_handshakes) and the log's conn numbers show reuse; certificates
-- from another CA, expired or for another host are served (for the
-- client's refusal tests) and refused by curl; bad files are a start-up
-- error (exit 1), a lone --tls-cert a usage error (exit 2).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local TLS = require "tls_ca"

local chatapp = require "chatapp"
local q = E.quote

local CA = TLS.create(E.tmpdir())

-- curl with the test CA; urls: a list.  Returns ok, exit code, the
-- bodies (concatenated), stderr.
local function curl(urls, opts)
  opts = opts or {}
  local dir = E.tmpdir()
  local cmd = { "curl", "-sS", "--max-time", "10" }
  if opts.cacert ~= false then cmd[#cmd + 1] = "--cacert " .. q(opts.cacert or CA.ca) end
  if opts.method then cmd[#cmd + 1] = "-X " .. opts.method end
  if opts.data then cmd[#cmd + 1] = "--data-binary " .. q(opts.data) end
  for _, u in ipairs(urls) do cmd[#cmd + 1] = q(u) end
  local ok, _, code = os.execute(table.concat(cmd, " ") .. " >" .. q(dir .. "/out") .. " 2>"
                                 .. q(dir .. "/err"))
  return ok, code, E.read(dir .. "/out") or "", E.read(dir .. "/err") or ""
end

local function https(emu) return "https://127.0.0.1:" .. emu.port end

local function stats(base)
  local ok, code, out, err = curl({ base .. "/_emulator/stats" })
  assert(ok, ("stats: curl exit %s: %s"):format(code, err))
  return assert(chatapp.json.decode(out)).connections
end

local function tls_emulator(pair)
  return E.emulator { "--tls-cert", pair.cert, "--tls-key", pair.key }
end

T.cases {
  { "answers over https, 127.0.0.1 and localhost, with the CA", function()
    local emu = tls_emulator(CA.server)
    local ok, code, out, err = curl({ https(emu) .. "/_emulator/health" })
    T.check(ok, "curl https://127.0.0.1: exit " .. tostring(code) .. " " .. err)
    T.check(out:find('"ok":true', 1, true), "health answered: " .. out)
    ok, code, out, err = curl({ "https://localhost:" .. emu.port .. "/_emulator/health" })
    T.check(ok, "curl https://localhost: exit " .. tostring(code) .. " " .. err)
    T.check(out:find('"ok":true', 1, true), "health answered on localhost: " .. out)
    local c = stats(https(emu))
    T.eq(c.tls, true, "stats say TLS")
    T.check(c.opened >= 3 and c.tls_handshakes >= 3, "connections and handshakes counted")
    -- no certificate authority known: curl refuses (the system store
    -- does not know the throwaway CA)
    ok, code = curl({ https(emu) .. "/_emulator/health" }, { cacert = CA.other_ca_cert })
    T.check(not ok, "another CA's bundle is refused")
    T.eq(code, 60, "curl: certificate problem")
    emu:stop()
  end },

  { "one connection, one handshake, for several requests (keep-alive)", function()
    local emu = tls_emulator(CA.server)
    local base = https(emu)
    local s0 = stats(base)
    -- 4 requests in one curl: one connection; 3 API calls (unsigned, so
    -- rejected, but logged with their connection's number)
    local api = base .. "/?Action=QueryChatappPhoneNumbers&Version=2020-06-06"
    local ok, code, _, err = curl({ api, api, api, base .. "/_emulator/health" })
    T.check(ok, "curl: exit " .. tostring(code) .. " " .. err)
    local s1 = stats(base) -- its own connection
    T.eq(s1.opened - s0.opened, 2, "two connections opened (the batch, the stats)")
    T.eq(s1.tls_handshakes - s0.tls_handshakes, 2, "two handshakes")
    -- 3 separate curls: 3 connections, 3 handshakes
    for _ = 1, 3 do assert(curl({ api })) end
    local s2 = stats(base)
    T.eq(s2.opened - s1.opened, 4, "three curls and the stats: four connections")
    T.eq(s2.tls_handshakes - s1.tls_handshakes, 4, "four handshakes")
    T.check(s2.open_max >= 1, "open_max counted")
    -- closed connections are counted once the client is gone
    local s3
    T.check(E.wait_for(function()
      s3 = stats(base)
      return s3.closed == s3.opened - 1 and s3.open == 1
    end, 5000), "all but the stats connection closed: " .. chatapp.json.encode(s3 or {}))
    -- the log: the batch's 3 calls share one conn, the others each their own
    local conns, order = {}, {}
    for _, l in ipairs(emu:log_lines()) do
      if l.conn and l.verdict then
        if not conns[l.conn] then order[#order + 1] = l.conn end
        conns[l.conn] = (conns[l.conn] or 0) + 1
      end
    end
    T.eq(#order, 4, "API calls on four connections")
    T.eq(conns[order[1]], 3, "the batch's three calls on one connection")
    for i = 2, 4 do T.eq(conns[order[i]], 1, "a lone call on its own connection") end
    -- plain HTTP to the HTTPS port: a connection, no handshake, no answer
    local s4 = stats(base)
    ok = curl({ "http://127.0.0.1:" .. emu.port .. "/_emulator/health" }, { cacert = false })
    T.check(not ok, "plain HTTP to the HTTPS port gets no answer")
    local s5 = stats(base)
    T.eq(s5.opened - s4.opened, 2, "the plain connection counted")
    T.eq(s5.tls_handshakes - s4.tls_handshakes, 1, "only the stats' handshake")
    -- POST /_emulator/reset restarts the counts (the open ones stay)
    ok = curl({ base .. "/_emulator/reset" }, { method = "POST" })
    T.check(ok, "reset")
    local s6 = stats(base)
    T.check(s6.opened <= 3 and s6.tls_handshakes <= 2, "counts restarted: "
            .. chatapp.json.encode(s6))
    emu:stop()
  end },

  { "a drop rule resets new connections mid-handshake", function()
    local emu = tls_emulator(CA.server)
    local base = https(emu)
    local ok, code, out, err = curl({ base .. "/_emulator/faults" }, { method = "POST",
      data = '{"kind":"drop","next":2}' })
    T.check(ok and out:find('"ok":true', 1, true), "drop rule added: " .. out .. err)
    for i = 1, 2 do
      ok, code, _, err = curl({ base .. "/_emulator/health" })
      T.check(not ok, "connection " .. i .. " dropped")
      T.check(code == 35 or code == 56, "a TLS connect error, exit " .. tostring(code) .. " " .. err)
    end
    ok, code, out, err = curl({ base .. "/_emulator/health" })
    T.check(ok and out:find('"ok":true', 1, true), "the third connection answered: " .. err)
    local c = stats(base)
    T.eq(c.dropped, 2, "two dropped")
    T.eq(c.tls_handshakes, 3, "handshakes: the rule's, the health's and the stats' connections")
    local drops = 0
    for _, l in ipairs(emu:log_lines()) do
      if l.fault == "drop" then
        drops = drops + 1
        T.eq(l.op, "connection", "logged as a connection fault")
        T.check(l.conn > 0, "with its connection number")
      end
    end
    T.eq(drops, 2, "two drops logged")
    emu:stop()
  end },

  { "TLS sessions resume (session tickets), counted in tls_resumed", function()
    local emu = tls_emulator(CA.server)
    if not stats(https(emu)).tls_tickets then
      io.stderr:write("SKIPPED: built without GnuTLS (no session tickets)\n")
      emu:stop()
      return
    end
    local dir = E.tmpdir()
    local sess = dir .. "/session.pem"
    -- openssl s_client sends one request on each connection; the second
    -- resumes the session the first got a ticket for
    local function s_client(flag)
      local out = dir .. "/s_client.out"
      local cmd = ("printf 'GET /_emulator/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   .. "Connection: close\r\n\r\n' | timeout 10 openssl s_client -connect "
                   .. "127.0.0.1:%d -CAfile %s -verify_return_error -ign_eof %s %s >%s 2>&1")
                  :format(emu.port, q(CA.ca), flag, q(sess), q(out))
      os.execute(cmd)
      return E.read(out) or ""
    end
    local first = s_client("-sess_out")
    T.check(first:find('"ok":true', 1, true), "first connection answered: " .. first:sub(1, 300))
    T.check(first:find("New, TLS", 1, true), "a new session")
    local second = s_client("-sess_in")
    T.check(second:find('"ok":true', 1, true), "second connection answered")
    T.check(second:find("Reused, TLS", 1, true), "the session resumed: " .. second:sub(1, 300))
    local c = stats(https(emu))
    T.eq(c.tls_resumed, 1, "one resumed handshake counted")
    T.eq(c.tls_handshakes, 4, "four handshakes (the tickets check, two s_client, the stats)")
    emu:stop()
  end },

  { "plain HTTP: connections counted, no TLS", function()
    local emu = E.emulator {}
    local c = emu:stats().connections
    T.eq(c.tls, false, "not TLS")
    T.eq(c.tls_handshakes, 0, "no handshakes")
    T.check(c.opened >= 1 and c.open >= 1, "this connection counted")
    emu:stop()
  end },

  { "certificates a client must refuse: served, and refused by curl", function()
    for _, case in ipairs {
      { "expired", CA.expired }, { "wrong host", CA.wrong_host },
      { "another CA", CA.other_ca } } do
      local emu = tls_emulator(case[2])
      local ok, code, _, err = curl({ https(emu) .. "/?Action=QueryChatappPhoneNumbers" })
      T.check(not ok, case[1] .. ": refused")
      T.check(code == 60 or code == 51, case[1] .. ": a certificate error, exit "
              .. tostring(code) .. " " .. err)
      local api = 0
      for _, l in ipairs(emu:log_lines()) do if l.verdict then api = api + 1 end end
      T.eq(api, 0, case[1] .. ": no request reached the emulator")
      emu:stop()
    end
  end },

  { "bad files: start-up error naming the file; a lone option: usage", function()
    local dir = E.tmpdir()
    local function start(args)
      local cmd = { q(E.emu_bin), "--quiet", "--port", "0" }
      for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
      local ok, _, code = os.execute(table.concat(cmd, " ") .. " >/dev/null 2>" .. q(dir .. "/err"))
      return ok, code, E.read(dir .. "/err") or ""
    end
    local missing = dir .. "/missing.pem"
    local ok, code, err = start { "--tls-cert", missing, "--tls-key", CA.server.key }
    T.check(not ok and code == 1, "missing certificate: exit 1")
    T.check(err:find(missing, 1, true) and err:find("No such file", 1, true),
            "names the file and the error: " .. err)
    ok, code, err = start { "--tls-cert", CA.server.key, "--tls-key", CA.server.key }
    T.eq(code, 1, "a key as certificate: exit 1")
    T.check(err:find("no PEM certificate", 1, true), "says so: " .. err)
    ok, code, err = start { "--tls-cert", CA.server.cert, "--tls-key", CA.server.cert }
    T.eq(code, 1, "a certificate as key: exit 1")
    T.check(err:find("no PEM private key", 1, true), "says so: " .. err)
    ok, code, err = start { "--tls-cert", CA.server.cert, "--tls-key", CA.expired.key }
    T.eq(code, 1, "a key of another certificate: exit 1")
    T.check(err:find("is the private key of --tls-cert", 1, true), "says what to check: " .. err)
    T.check(not err:find("BEGIN", 1, true), "no key material in the message")
    local big = E.write(dir .. "/big.pem", ("x"):rep(2 * 1024 * 1024))
    ok, code, err = start { "--tls-cert", big, "--tls-key", CA.server.key }
    T.eq(code, 1, "a 2 MiB certificate file: exit 1")
    T.check(err:find("larger than 1 MiB", 1, true), "says so: " .. err)
    ok, code, err = start { "--tls-cert", CA.server.cert }
    T.eq(code, 2, "--tls-cert without --tls-key: usage error")
    T.check(err:find("--tls-cert needs --tls-key", 1, true), "says so: " .. err)
    T.check(not ok, "did not start")
  end },
}

E.cleanup()
return T.done()
