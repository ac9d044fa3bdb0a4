-- The client over TLS (issue 18): a throwaway CA and certificates made
-- with the openssl CLI at test time (no keys committed), served by
-- `openssl s_server` on 127.0.0.1.  A certificate from another CA and an
-- expired one are each refused with an error that names the host, the
-- failed check and what to do, after one attempt and without a request
-- reaching the server (a self-signed certificate and a wrong host name:
-- tests/reliability/B8.lua, against the emulator); the right CA given with
-- --ca-file (ca_file) is accepted.  The CA file is checked with the
-- configuration (a FIFO does not hang), and https_proxy / no_proxy are
-- honoured for HTTPS.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local dir = E.tmpdir()
local q = E.quote

-- The PKI: ca (trusted with --ca-file), other (an unknown CA), and leaf
-- certificates for 127.0.0.1 / localhost: good, by_other and expired.
local function sh(cmd)
  local ok = os.execute(cmd .. " >>" .. q(dir .. "/openssl.log") .. " 2>&1")
  return ok
end

local function make_pki()
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local ok = true
  for _, ca in ipairs { "ca", "other" } do
    ok = ok and sh(("openssl req -x509 %s -keyout %s/%s.key -out %s/%s.pem -days 2 -subj /CN=chatapp-test-%s")
      :format(ec, q(dir), ca, q(dir), ca, ca))
  end
  E.write(dir .. "/ext_ok", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
  local leaves = {
    { "good", "ca", "2", "ext_ok" },
    { "by_other", "other", "2", "ext_ok" },
    { "expired", "ca", "-1", "ext_ok" },
  }
  for _, l in ipairs(leaves) do
    local name, ca, days, ext = l[1], l[2], l[3], l[4]
    ok = ok and sh(("openssl req %s -keyout %s/%s.key -out %s/%s.csr -subj /CN=%s")
      :format(ec, q(dir), name, q(dir), name, "localhost"))
    ok = ok and sh(("openssl x509 -req -in %s/%s.csr -CA %s/%s.pem -CAkey %s/%s.key -CAcreateserial "
      .. "-days %s -extfile %s/%s -out %s/%s.pem")
      :format(q(dir), name, q(dir), ca, q(dir), ca, days, q(dir), ext, q(dir), name))
  end
  return ok
end

local TLS = require "tls_ca"

-- openssl s_server with a leaf certificate on a free port (TLS.s_server).
-- www: answer GET with a status page; else what arrives is echoed to
-- srv.received, which shows whether any request bytes reached the server.
local function serve(leaf, www)
  return TLS.s_server(dir .. "/" .. leaf .. ".pem", dir .. "/" .. leaf .. ".key",
    { www = www, received = ("%s/received-%s-%d"):format(dir, leaf, math.random(1, 1e9)) })
end
local stop = TLS.stop

local function client(srv, opts)
  local o = { endpoint = srv.url, access_key_id = E.KEY_ID, access_key_secret = E.KEY_SECRET,
              limiter = "process", max_attempts = 3, timeout_ms = 5000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(chatapp.client(o))
end

local function nothing_received(srv)
  local got = E.read(srv.received) or ""
  return not got:find("POST", 1, true) and not got:find("GET", 1, true)
end

local pki = make_pki()
T.check(pki, "the throwaway PKI was made: " .. (E.read(dir .. "/openssl.log") or ""))

-- One refused certificate, through the API client: the checks shared by
-- every case.  Returns the error.
local function refused(leaf, opts)
  local srv = serve(leaf, false)
  T.check(srv, "openssl s_server started for " .. leaf)
  if not srv then return nil end
  local r, err = client(srv, opts):query_phone_numbers()
  stop(srv)
  T.eq(r, nil, leaf .. ": refused")
  if not err then return nil end
  T.eq(err.status, "ETRANSPORT", leaf)
  T.eq(err.attempts, 1, leaf .. ": not retried (max_attempts 3)")
  T.eq(err.retryable, false, leaf .. ": final")
  local m = err.message
  T.check(m:find("TLS verification of 127.0.0.1:" .. srv.port .. " failed", 1, true), m)
  T.check(m:find("no request was sent", 1, true), m)
  T.check(nothing_received(srv), leaf .. ": no request bytes reached the server")
  return m
end

T.cases {
  { "a certificate from another CA: unknown CA, says --ca-file, one attempt, nothing sent", function()
    if not pki then return end
    local m = refused("by_other", { ca_file = dir .. "/ca.pem" })
    T.check(m and m:find("unknown CA", 1, true), m)
    T.check(m and m:find("--ca-file", 1, true), m)
  end },

  { "the system store does not trust a private CA: unknown CA, suggests --ca-file", function()
    if not pki then return end
    local m = refused("good")
    T.check(m and m:find("unknown CA", 1, true), m)
    T.check(m and m:find("--ca-file FILE", 1, true), m)
  end },

  { "an expired certificate: expired, says to check the clock, one attempt, nothing sent", function()
    if not pki then return end
    local m = refused("expired", { ca_file = dir .. "/ca.pem" })
    T.check(m and m:find("expired", 1, true), m)
    T.check(m and m:find("clock", 1, true), m)
  end },

  { "the right CA with ca_file is accepted (the http client of webhooks)", function()
    if not pki then return end
    local srv = serve("good", true)
    T.check(srv, "openssl s_server -www started")
    if not srv then return end
    local h = assert(core.http_client { ca_file = dir .. "/ca.pem", timeout_ms = 5000, max_attempts = 1 })
    local results, errors = h:batch { { url = srv.url .. "/", method = "GET" } }
    T.check(results[1], errors[1] and tostring(errors[1].message))
    T.eq(results[1] and results[1].status, 200)
    T.check(results[1] and tostring(results[1].body):find("s_server", 1, true), "the status page")
    -- and without it (the system store), the same server is refused
    local h2 = assert(core.http_client { timeout_ms = 5000, max_attempts = 3 })
    results, errors = h2:batch { { url = srv.url .. "/", method = "GET" } }
    T.eq(results[1], nil)
    T.check(errors[1] and tostring(errors[1].message):find("unknown CA", 1, true),
            errors[1] and tostring(errors[1].message))
    T.eq(errors[1] and errors[1].attempts, 1, "not retried")
    h:close()
    h2:close()
    stop(srv)
  end },

  { "a new connection resumes the TLS session of an earlier call (no full handshake)", function()
    if not pki then return end
    local srv = serve("good", true) -- -www closes the connection after each answer
    T.check(srv, "openssl s_server -www started")
    if not srv then return end
    local h = assert(core.http_client { ca_file = dir .. "/ca.pem", timeout_ms = 5000, max_attempts = 1 })
    local pages = {}
    for i = 1, 3 do
      local results, errors = h:batch { { url = srv.url .. "/", method = "GET" } }
      pages[i] = results[1] and tostring(results[1].body) or tostring(errors[1] and errors[1].message)
    end
    h:close()
    stop(srv)
    T.check(pages[1]:find("\nNew, TLS", 1, true), "the first call: a full handshake: " .. pages[1]:sub(1, 300))
    T.check(pages[2]:find("\nReused, TLS", 1, true), "the second call resumed it: " .. pages[2]:sub(1, 300))
    T.check(pages[3]:find("\nReused, TLS", 1, true), "and the third: " .. pages[3]:sub(1, 300))
  end },

  { "the right CA with --ca-file on the CLI: the TLS handshake succeeds", function()
    if not pki then return end
    local srv = serve("good", false)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    local p = E.path("scripts/policies/quality-alert.lua")
    local r = E.run({ "--endpoint", srv.url, "--ca-file", dir .. "/ca.pem", "--max-attempts", "1",
                      "--timeout-ms", "1500", p })
    stop(srv)
    T.eq(r.code, 1, "no API answer (s_server only echoes): " .. r.err)
    T.check(not r.err:find("TLS verification", 1, true), r.err)
    T.check((E.read(srv.received) or ""):find("POST /", 1, true), "the signed request went through TLS")
  end },

  { "--ca-file of another CA on the CLI: a clear error, exit 1", function()
    if not pki then return end
    local srv = serve("by_other", false)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    local p = E.path("scripts/policies/quality-alert.lua")
    local r = E.run({ "--endpoint", srv.url, "--ca-file", dir .. "/ca.pem", p })
    stop(srv)
    T.eq(r.code, 1, r.err)
    T.check(r.err:find("TLS verification of 127.0.0.1:" .. srv.port, 1, true), r.err)
    T.check(r.err:find("unknown CA", 1, true), r.err)
    T.check(nothing_received(srv), "nothing reached the server")
  end },

  { "the CA file is checked with the configuration: clear errors, a FIFO does not hang", function()
    local p = E.path("scripts/policies/quality-alert.lua")
    os.execute("mkfifo " .. q(dir .. "/fifo"))
    E.write(dir .. "/empty.pem", "")
    E.write(dir .. "/notpem.pem", "hello\n")
    os.execute("truncate -s 17M " .. q(dir .. "/huge.pem"))
    local cases = {
      { dir .. "/fifo", "is a FIFO" },
      { dir, "is a directory" },
      { dir .. "/missing.pem", "No such file" },
      { dir .. "/empty.pem", "holds no PEM certificate" },
      { dir .. "/notpem.pem", "holds no PEM certificate" },
      { dir .. "/huge.pem", "bytes; at most" },
      { "", "is empty" },
    }
    for _, c in ipairs(cases) do
      local r = E.run({ "--endpoint", "https://127.0.0.1:9", "--ca-file", c[1], p }, nil,
                      { wrap = "timeout 20" })
      T.check(r.code ~= 0 and r.code ~= 124, c[1] .. ": refused, not hung (" .. tostring(r.code) .. ")")
      T.check(r.err:find(c[2], 1, true), c[1] .. ": " .. r.err)
      T.check(r.err:find("--ca-file", 1, true), r.err)
    end
    -- the embedding/Lua key: the same check
    local ok, err = pcall(chatapp.client, { endpoint = "https://127.0.0.1:9", access_key_id = "x",
                                            access_key_secret = "y", ca_file = dir .. "/fifo" })
    T.check(not ok or err ~= nil, "refused")
    T.check(tostring(err):find("is a FIFO", 1, true), tostring(err))
  end },

  { "the credential providers' fetch client (STS) verifies too, with the same --ca-file", function()
    if not pki then return end
    local home = E.tmpdir()
    os.execute("mkdir -p " .. q(home .. "/.aliyun") .. " && chmod 700 " .. q(home .. "/.aliyun"))
    local cfgfile = E.write(home .. "/.aliyun/config.json", assert(chatapp.json.encode {
      current = "role", profiles = { { name = "role", mode = "RamRoleArn", access_key_id = E.KEY_ID,
        access_key_secret = E.KEY_SECRET, ram_role_arn = "acs:ram::123456789012:role/tls-test",
        ram_session_name = "e2e" } } }))
    os.execute("chmod 600 " .. q(cfgfile))
    local env = { HOME = home, ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
    local p = E.path("scripts/policies/quality-alert.lua")
    -- a certificate of another CA: refused, the STS host named
    local srv = serve("by_other", false)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    local r = E.run({ "--endpoint", "https://127.0.0.1:9", "--sts-endpoint", srv.url, "--ca-file",
                      dir .. "/ca.pem", p }, env)
    stop(srv)
    T.check(r.code ~= 0, "refused")
    T.check(r.err:find("TLS verification of 127.0.0.1:" .. srv.port, 1, true), r.err)
    T.check(r.err:find("unknown CA", 1, true), r.err)
    T.check(nothing_received(srv), "no STS request reached the server")
    -- the right CA: the handshake succeeds and the AssumeRole request is sent
    srv = serve("good", false)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    r = E.run({ "--endpoint", "https://127.0.0.1:9", "--sts-endpoint", srv.url, "--ca-file",
                dir .. "/ca.pem", "--timeout-ms", "1500", "--max-attempts", "1", p }, env)
    stop(srv)
    T.check(r.code ~= 0, "no STS answer (s_server only echoes)")
    T.check(not r.err:find("TLS verification", 1, true), r.err)
    local got = E.read(srv.received) or ""
    T.check(got:find("AssumeRole", 1, true), "the AssumeRole request went through TLS: " .. got:sub(1, 200))
  end },

  { "https_proxy is honoured for HTTPS, no_proxy bypasses it", function()
    if not pki then return end
    local srv = serve("good", false)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    local p = E.path("scripts/policies/quality-alert.lua")
    local args = { "--endpoint", srv.url, "--ca-file", dir .. "/ca.pem", "--max-attempts", "1",
                   "--timeout-ms", "1500", p }
    local r = E.run(args, { https_proxy = "http://127.0.0.1:1" })
    T.eq(r.code, 1, r.err)
    T.check(r.err:find("127.0.0.1 port 1", 1, true), "the (dead) proxy was used: " .. r.err)
    T.check(nothing_received(srv), "nothing went around the proxy")
    r = E.run(args, { https_proxy = "http://127.0.0.1:1", no_proxy = "127.0.0.1" })
    stop(srv)
    T.check(not r.err:find("127.0.0.1 port 1", 1, true), "no_proxy: direct: " .. r.err)
    T.check((E.read(srv.received) or ""):find("POST /", 1, true), "no_proxy: the request went direct")
  end },
}

TLS.stop_all()
E.cleanup()
return T.done()
