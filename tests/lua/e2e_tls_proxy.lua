-- An HTTPS proxy is verified with the same CA bundle as the endpoint
-- (issue 18): https_proxy=https://127.0.0.1:PORT, served by
-- `openssl s_server` with a certificate of the throwaway CA
-- (tests/lua/tls_ca.lua).  s_server is no proxy: it only records what
-- arrives after the TLS handshake, which shows whether the client trusted
-- it (the CONNECT request arrives) or not (nothing does).
--   - ca_file holds the proxy's CA: the handshake with the proxy succeeds
--     and the CONNECT for the endpoint is sent through it (before, the
--     proxy was checked against the system store only: CURLOPT_PROXY_CAINFO
--     was not set, and such a proxy could not be used);
--   - the proxy's certificate is from another CA: refused, nothing sent,
--     not retried, and the error names the proxy (it named the endpoint);
--   - a dead proxy: the failure says it is the proxy (redacted);
--   - no_proxy and the plain-http rule: tests/lua/e2e_tls_client.lua and
--     e2e_client.lua (B9); the proxy's credentials: reliability/B10.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local dir = E.tmpdir()
local TLS = require "tls_ca"
local certs = TLS.create(dir)

-- openssl s_server with cert/key on a free port; what arrives in srv.received.
local function serve(cert, key)
  return TLS.s_server(cert, key, { received = ("%s/received-%d"):format(dir, math.random(1, 1e9)) })
end

-- A call to https://127.0.0.1:9 through the proxy srv, in a child
-- chatapp-run (the proxy variables are read from its environment).
local function call_through(srv, max_attempts, proxy)
  local script = E.write(dir .. "/call.lua", ([[
    local chatapp = require "chatapp"
    local c = assert(chatapp.client { endpoint = "https://127.0.0.1:9", access_key_id = %q,
      access_key_secret = %q, limiter = "process", max_attempts = %d, timeout_ms = 1000,
      ca_file = %q })
    local r, err = c:query_phone_numbers()
    print(err and err.message or "answered")
    print(err and err.attempts or 0)
  ]]):format(E.KEY_ID, E.KEY_SECRET, max_attempts, certs.ca))
  local r = E.run({ "--lua", script }, { https_proxy = proxy or ("https://127.0.0.1:" .. srv.port) }, { no_limiter = true })
  local msg, attempts = r.out:match("^(.-)\n(%d+)\n")
  return msg or (r.out .. r.err), tonumber(attempts)
end

T.cases {
  { "an HTTPS proxy with a certificate of the --ca-file CA: trusted, the CONNECT goes through it", function()
    local srv = serve(certs.server.cert, certs.server.key)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    local msg = call_through(srv, 1) -- s_server answers nothing: a timeout
    E.sleep_ms(100) -- s_server writes what it read
    local got = E.read(srv.received) or ""
    T.check(got:find("CONNECT 127.0.0.1:9 HTTP/1.1", 1, true),
            "the CONNECT reached the proxy over TLS: " .. got:sub(1, 200) .. " / " .. msg)
    T.check(not msg:find("TLS verification", 1, true) and not msg:find("certificate", 1, true), msg)
  end },

  { "an HTTPS proxy with a certificate of another CA: refused, nothing sent, not retried", function()
    local srv = serve(certs.other_ca.cert, certs.other_ca.key)
    T.check(srv, "openssl s_server started")
    if not srv then return end
    local msg, attempts = call_through(srv, 3)
    E.sleep_ms(100)
    local got = E.read(srv.received) or ""
    T.eq(got, "", "nothing reached the proxy")
    T.check(msg:find("unknown CA", 1, true), msg)
    T.check(msg:find(("TLS verification of the HTTPS proxy 127.0.0.1:%d (https_proxy) failed"):format(srv.port),
                     1, true), "the proxy is named, not the endpoint: " .. msg)
    T.eq(attempts, 1, "not retried: " .. msg)
  end },

  { "a dead proxy: the failure says it is the proxy from https_proxy, its credentials redacted", function()
    local msg, attempts = call_through(nil, 1, "http://proxyuser:proxy-Canary-99@127.0.0.1:1")
    T.check(msg:find("Failed to connect to 127.0.0.1 port 1 ", 1, true), msg)
    T.check(msg:find("that is the proxy from https_proxy (http://<redacted>@127.0.0.1:1)", 1, true), msg)
    T.check(not msg:find("proxy-Canary-99", 1, true) and not msg:find("proxyuser", 1, true), msg)
    T.eq(attempts, 1)
  end },
}

TLS.stop_all()
E.cleanup()
return T.done()
