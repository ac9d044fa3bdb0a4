--- A throwaway certificate authority for the HTTPS tests, made at test
--- time with the `openssl` command (no key is ever committed):
---
---   local TLS = require "tls_ca"
---   local c = TLS.create(dir)     -- dir: an existing, empty directory
---   c.ca                          -- the CA certificate (PEM): the bundle
---   c.server.cert, c.server.key   -- 127.0.0.1 and localhost (SAN), valid
---   c.expired.cert, .key          -- 127.0.0.1/localhost, expired in 2020
---   c.wrong_host.cert, .key       -- valid, for wrong-host.invalid only
---   c.other_ca.cert, .key         -- 127.0.0.1/localhost, signed by
---                                    another CA (c.other_ca_cert)
---
---   TLS.s_server(cert, key, {received = path})  -- openssl s_server on a
---                                    free port: srv.url, srv.port, srv.pid
---
--- Keys are EC P-256, unencrypted, mode 0600 (openssl's default umask
--- aside, the directory is the test's own).  Valid certificates last two
--- days; an error (with openssl's message) if openssl fails or is missing.
local M = {}

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

-- Run a shell command; raise with its standard error on failure.
local function run(dir, cmd)
  local errf = dir .. "/openssl.err"
  local ok = os.execute("umask 077; " .. cmd .. " >/dev/null 2>" .. q(errf))
  if not ok then
    error(("tls_ca: %s failed: %s"):format(cmd:match("^openssl %S+") or cmd,
                                           read(errf) or "?"), 2)
  end
end

local EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

-- A self-signed CA certificate and key: dir/NAME.pem, dir/NAME.key.
local function make_ca(dir, name, cn)
  local pem, key = dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".key"
  run(dir, ("openssl req -x509 %s -keyout %s -out %s -days 2 -subj %s "
            .. "-addext 'basicConstraints=critical,CA:TRUE' "
            .. "-addext 'keyUsage=critical,keyCertSign,cRLSign'")
           :format(EC, q(key), q(pem), q("/CN=" .. cn)))
  -- openssl ca's bookkeeping, one set per CA
  local db = dir .. "/" .. name .. ".db"
  os.execute("mkdir -p " .. q(db))
  write(db .. "/index.txt", "")
  write(db .. "/serial", ("%02X\n"):format(math.random(16, 255)))
  return { cert = pem, key = key, db = db }
end

-- A server certificate for sans, signed by ca; dates: {days=N} or
-- {start=, finish=} (YYYYMMDDHHMMSSZ).
local function make_leaf(dir, ca, name, sans, dates)
  local key, csr, pem = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".csr",
                        dir .. "/" .. name .. ".pem"
  local cnf = dir .. "/" .. name .. ".cnf"
  write(cnf, table.concat({
    "[ca]", "default_ca = d",
    "[d]", "database = " .. ca.db .. "/index.txt", "new_certs_dir = " .. ca.db,
    "serial = " .. ca.db .. "/serial", "default_md = sha256", "policy = p",
    "unique_subject = no", "x509_extensions = ext",
    "[p]", "commonName = supplied",
    "[ext]", "basicConstraints = critical,CA:FALSE",
    "keyUsage = critical,digitalSignature,keyEncipherment",
    "extendedKeyUsage = serverAuth", "subjectAltName = " .. sans, "" }, "\n"))
  run(dir, ("openssl req %s -keyout %s -out %s -subj %s")
           :format(EC, q(key), q(csr), q("/CN=" .. name)))
  local when = dates.days and ("-days " .. dates.days)
               or ("-startdate %s -enddate %s"):format(dates.start, dates.finish)
  run(dir, ("openssl ca -batch -notext -config %s -cert %s -keyfile %s -in %s -out %s %s")
           :format(q(cnf), q(ca.cert), q(ca.key), q(csr), q(pem), when))
  return { cert = pem, key = key }
end

-- Is something listening on 127.0.0.1:port (/proc/net/tcp, state 0A)?
local function listening(port)
  local tcp = read("/proc/net/tcp") or ""
  return tcp:find((":%04X %%x+:%%x+ 0A"):format(port)) ~= nil
end

-- Is pid alive (not a zombie: its state in /proc)?
local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

local servers = {}

--- `openssl s_server` with cert and key on a free port of 127.0.0.1.
--- opts.www: answer GET with a status page (-www); else what arrives is
--- echoed to opts.received (-quiet, for at most 60 s), which shows whether
--- any request byte reached the server.  Returns {pid, port, url,
--- received} (nil when no port could be had); M.stop(srv) ends it,
--- M.stop_all() every one still running.
function M.s_server(cert, key, opts)
  local srv = { received = opts.received }
  for _ = 1, 20 do
    local port = 20000 + math.random(0, 40000)
    -- -quiet echoes until its stdin ends: a bounded sleep keeps it open
    local p = io.popen(("%s exec openssl s_server -accept 127.0.0.1:%d -cert %s -key %s %s >%s 2>/dev/null & echo $!")
      :format(opts.www and "</dev/null" or "sleep 60 </dev/null 2>/dev/null |", port, q(cert), q(key),
              opts.www and "-www" or "-quiet", q(srv.received)))
    local pid = p:read("l")
    p:close()
    for _ = 1, 250 do
      if listening(port) or not alive(pid) then break end
      os.execute("sleep 0.02")
    end
    if listening(port) and alive(pid) then
      srv.pid, srv.port = pid, port
      srv.url = "https://127.0.0.1:" .. port
      servers[#servers + 1] = pid
      return srv
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
  end
  return nil
end

function M.stop(srv)
  if srv and srv.pid then os.execute("kill " .. srv.pid .. " 2>/dev/null") end
end

function M.stop_all()
  for _, pid in ipairs(servers) do os.execute("kill " .. pid .. " 2>/dev/null") end
end

--- Make the CA, a second CA and the server certificates in dir.
function M.create(dir)
  assert(type(dir) == "string" and dir ~= "", "tls_ca.create(dir)")
  local LOCAL = "IP:127.0.0.1,DNS:localhost"
  local ca = make_ca(dir, "ca", "chatapp test CA (throwaway)")
  local other = make_ca(dir, "other-ca", "chatapp other CA (throwaway)")
  return {
    dir = dir,
    ca = ca.cert,
    ca_key = ca.key,
    other_ca_cert = other.cert,
    server = make_leaf(dir, ca, "server", LOCAL, { days = 2 }),
    expired = make_leaf(dir, ca, "expired", LOCAL,
                        { start = "20200101000000Z", finish = "20200102000000Z" }),
    wrong_host = make_leaf(dir, ca, "wrong-host", "DNS:wrong-host.invalid", { days = 2 }),
    other_ca = make_leaf(dir, other, "other-ca-server", LOCAL, { days = 2 }),
  }
end

return M
