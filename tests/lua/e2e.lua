--- Helpers for end-to-end tests run by `chatapp-run --lua`:
--- start and stop chatapp-emulator on 127.0.0.1, drive its control
--- endpoint, run chatapp-run as a user would and capture what it prints.
--
--   local E = require "e2e"        -- arg[1] = chatapp-run, arg[2] = emulator
--   local emu = E.emulator { "--quota", "10" }
--   local r = E.run { "--endpoint", emu.url, "policy.lua" }
--   emu:stop()

local chatapp = require "chatapp"
local core = chatapp.core

local E = {}

E.run_bin = assert(arg[1], "arg[1]: the chatapp-run binary")
E.emu_bin = assert(arg[2], "arg[2]: the chatapp-emulator binary")
E.root = (arg[0]:match("^(.*)/tests/[^/]+/[^/]*$")) or "."
E.KEY_ID = "LTAIemulatorTestKey01"
E.KEY_SECRET = "emulator-secret-not-real"

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
E.quote = sh_quote

local tmp_root
--- A fresh temporary directory (removed by E.cleanup()).
function E.tmpdir()
  if not tmp_root then
    local p = io.popen("mktemp -d /tmp/chatapp-e2e-XXXXXX")
    tmp_root = p:read("l")
    p:close()
  end
  E.n = (E.n or 0) + 1
  local d = ("%s/%d"):format(tmp_root, E.n)
  os.execute("mkdir -p " .. sh_quote(d))
  return d
end

function E.cleanup()
  if tmp_root then os.execute("rm -rf " .. sh_quote(tmp_root)) end
end

function E.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function E.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

local function sleep_ms(ms)
  os.execute(("sleep %.3f"):format(ms / 1000))
end
E.sleep_ms = sleep_ms

---------------------------------------------------------------------------
-- The emulator

local Emu = {}
Emu.__index = Emu

--- Start chatapp-emulator with extra arguments; waits until it listens.
--- opts.tls: serve HTTPS with a throwaway CA (tests/lua/tls_ca.lua, made
--- in the emulator's folder; pass the result of TLS.create to share one):
--- emu.url is then https://127.0.0.1:PORT, emu.ca the CA bundle to give
--- chatapp-run (--ca-file) and emu.certs the whole set.
function E.emulator(args, opts)
  opts = opts or {}
  local dir = E.tmpdir()
  local certs
  if opts.tls then
    certs = type(opts.tls) == "table" and opts.tls or require("tls_ca").create(dir)
    args = { "--tls-cert", certs.server.cert, "--tls-key", certs.server.key,
             table.unpack(args or {}) }
  end
  local portfile = dir .. "/port"
  local log = dir .. "/emulator.log"
  local cmd = { sh_quote(E.emu_bin), "--quiet", "--port", "0", "--port-file", sh_quote(portfile),
                "--log", sh_quote(log) }
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = sh_quote(a) end
  local p = io.popen(table.concat(cmd, " ") .. " >/dev/null 2>>" .. sh_quote(dir .. "/stderr") ..
                     " & echo $!")
  local pid = tonumber(p:read("l"))
  p:close()
  local port
  for _ = 1, 500 do
    local s = E.read(portfile)
    port = s and tonumber(s:match("%d+"))
    if port then break end
    sleep_ms(10)
  end
  assert(port, "the emulator did not start: " .. (E.read(dir .. "/stderr") or ""))
  local emu = setmetatable({ pid = pid, port = port,
                             url = (certs and "https" or "http") .. "://127.0.0.1:" .. port,
                             dir = dir, log = log, certs = certs, ca = certs and certs.ca },
                           Emu)
  emu.http = assert(core.http_client { timeout_ms = 5000, max_attempts = 1, ca_file = emu.ca })
  return emu
end

--- A control request: method, path under /_emulator/, body table or nil.
function Emu:control(method, path, body)
  local req = { url = self.url .. "/_emulator/" .. path, method = method }
  if body ~= nil then req.body = assert(core.json_encode(body)) end
  local res, err = self.http:batch { req }
  local r = res[1]
  if not r then error("control " .. path .. ": " .. tostring(err[1])) end
  return chatapp.json.decode(r.body), r.status
end

--- A chatapp.client of this process for the emulator: its URL (and CA),
--- the emulator's keys, the process limiter; opts added or overriding.
function Emu:client(opts)
  local o = { endpoint = self.url, access_key_id = E.KEY_ID, access_key_secret = E.KEY_SECRET,
              limiter = "process", ca_file = self.ca }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(chatapp.client(o))
end

function Emu:stats() return (self:control("GET", "stats")) end
function Emu:fault(rule) return self:control("POST", "faults", rule) end
function Emu:clear_faults() return self:control("DELETE", "faults") end
function Emu:reset() return self:control("POST", "reset") end
function Emu:deliveries() return self:control("GET", "deliveries").deliveries end

--- The request log, one table per line.
function Emu:log_lines()
  local lines = {}
  for line in (E.read(self.log) or ""):gmatch("[^\n]+") do
    lines[#lines + 1] = assert(chatapp.json.decode(line))
  end
  return lines
end

--- How many requests the log says were answered by the fault rule of
--- that kind (docs/emulator.md: "hang", "drip", "oversize"...).
function Emu:faulted(kind)
  local n = 0
  for _, l in ipairs(self:log_lines()) do
    if l.verdict == "fault" and l.fault == kind then n = n + 1 end
  end
  return n
end

--- The arrival times (microseconds, sorted) of the accepted API calls in
--- the request log; op: only that operation's.
function Emu:arrivals(op)
  local t = {}
  for _, l in ipairs(self:log_lines()) do
    if l.verdict == "accepted" and (not op or l.op == op) then t[#t + 1] = l.t_us end
  end
  table.sort(t)
  return t
end

--- Of request log lines: every arrival time and the accepted ones
--- (microseconds, each sorted), and how many lines have a missing or an
--- already seen nonce.
function E.log_times(lines)
  local all, accepted, nonces, dup = {}, {}, {}, 0
  for _, l in ipairs(lines) do
    all[#all + 1] = l.t_us
    if l.verdict == "accepted" then accepted[#accepted + 1] = l.t_us end
    if not l.nonce or nonces[l.nonce] then dup = dup + 1 end
    if l.nonce then nonces[l.nonce] = true end
  end
  table.sort(all)
  table.sort(accepted)
  return all, accepted, dup
end

--- The most arrivals in any window of w microseconds (t sorted): what a
--- quota of N per window must keep at most N.
function E.busiest(t, w)
  local best, lo = 0, 1
  for hi = 1, #t do
    while t[hi] - t[lo] >= w do lo = lo + 1 end
    best = math.max(best, hi - lo + 1)
  end
  return best
end

function Emu:stop()
  if not self.pid then return end
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  for _ = 1, 300 do
    if not E.alive(self.pid) then break end -- not kill -0: a zombie answers it
    sleep_ms(10)
  end
  os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
  self.pid = nil
end

---------------------------------------------------------------------------
-- chatapp-run

--- The shell command that runs chatapp-run with args (a list) in a clean
--- environment: PATH, the emulator's keys, NO_COLOR, HOME = opts.home,
--- then env (name -> value; false removes one).  opts.wrap: words before
--- the binary (shell text); opts.bin: another binary; the process limiter
--- (--limiter process) unless opts.no_limiter or opts.bin.
function E.command(args, env, opts)
  opts = opts or {}
  local vars = { ALIBABA_CLOUD_ACCESS_KEY_ID = E.KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET = E.KEY_SECRET,
                 NO_COLOR = "", HOME = assert(opts.home, "E.command: opts.home") }
  for k, v in pairs(env or {}) do vars[k] = v end
  local cmd = { "env", "-i", "PATH=" .. sh_quote(os.getenv("PATH") or "/usr/bin:/bin") }
  for k, v in pairs(vars) do
    if v ~= false then cmd[#cmd + 1] = k .. "=" .. sh_quote(v) end
  end
  if opts.wrap then cmd[#cmd + 1] = opts.wrap end
  cmd[#cmd + 1] = sh_quote(opts.bin or E.run_bin)
  if not opts.no_limiter and not opts.bin then
    cmd[#cmd + 1] = "--limiter"
    cmd[#cmd + 1] = "process"
  end
  for _, a in ipairs(args) do cmd[#cmd + 1] = sh_quote(a) end
  return table.concat(cmd, " ")
end

--- Run chatapp-run with args (a list) and env (name -> value; the
--- emulator's keys by default).  Returns {code, out, err}.
function E.run(args, env, opts)
  opts = opts or {}
  local dir = E.tmpdir()
  local out, err = dir .. "/stdout", dir .. "/stderr"
  local line = E.command(args, env, { home = dir, wrap = opts.wrap, bin = opts.bin, no_limiter = opts.no_limiter })
    .. " >" .. sh_quote(out) .. " 2>" .. sh_quote(err) ..
               (opts.stdin and (" <" .. sh_quote(opts.stdin)) or " </dev/null")
  local ok, how, code = os.execute(line)
  if how == "signal" then code = 128 + code end
  return { code = code, out = E.read(out) or "", err = E.read(err) or "", dir = dir, ok = ok }
end

-- chatapp-run in the background: returns {pid, dir, wait = function}.
-- The exit status lands in dir/rc (written by the shell that waited).
-- opts.wrap: a list of words run before chatapp-run (valgrind ...), which
-- must exec it in the same process (pid is then the wrapper's).
function E.start(args, env, opts)
  local dir = E.tmpdir()
  local vars = { ALIBABA_CLOUD_ACCESS_KEY_ID = E.KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET = E.KEY_SECRET,
                 NO_COLOR = "", HOME = dir, CHATAPP_EMULATOR = E.emu_bin }
  for k, v in pairs(env or {}) do vars[k] = v end
  local cmd = { "env", "-i", "PATH=" .. sh_quote(os.getenv("PATH") or "/usr/bin:/bin") }
  for k, v in pairs(vars) do
    if v ~= false then cmd[#cmd + 1] = k .. "=" .. sh_quote(v) end
  end
  for _, w in ipairs(opts and opts.wrap or {}) do cmd[#cmd + 1] = sh_quote(w) end
  cmd[#cmd + 1] = sh_quote(E.run_bin)
  for _, a in ipairs(args) do cmd[#cmd + 1] = sh_quote(a) end
  local q = sh_quote
  local line = ("(%s >%s 2>%s </dev/null & echo $! >%s; wait $!; echo $? >%s) >/dev/null 2>&1 &")
    :format(table.concat(cmd, " "), q(dir .. "/stdout"), q(dir .. "/stderr"), q(dir .. "/pid"),
            q(dir .. "/rc"))
  os.execute(line)
  local pid
  for _ = 1, 500 do
    pid = tonumber(E.read(dir .. "/pid") or "")
    if pid then break end
    sleep_ms(10)
  end
  local p = { pid = assert(pid, "chatapp-run did not start"), dir = dir }
  function p.err() return E.read(dir .. "/stderr") or "" end
  function p.out() return E.read(dir .. "/stdout") or "" end
  --- Wait until stderr holds text (at most ms); true when it does.
  function p.wait_err(text, ms)
    for _ = 1, (ms or 10000) // 20 do
      if p.err():find(text, 1, true) then return true end
      sleep_ms(20)
    end
    return false
  end
  --- Wait for the exit (at most ms); the status, or nil.
  function p.wait(ms)
    for _ = 1, (ms or 30000) // 20 do
      local rc = tonumber(E.read(dir .. "/rc") or "")
      if rc then return rc end
      sleep_ms(20)
    end
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    return nil
  end
  function p.kill(sig) os.execute(("kill -%s %d"):format(sig, pid)) end
  return p
end

--- Poll cond() every 20 ms for at most ms: true once it holds.  A handshake
--- with what the test waits for, never a guess at how long it takes.
function E.wait_for(cond, ms)
  for _ = 1, (ms or 10000) // 20 do
    if cond() then return true end
    sleep_ms(20)
  end
  return false
end

--- Wait (at most ms, default 10 min) for a background process to end;
--- true when it did.
function E.wait_pid(pid, ms)
  return E.wait_for(function() return not E.alive(pid) end, ms or 600000)
end

--- The last line of a file, decoded as JSON (a worker's result); raises
--- with the file's text when there is none.
function E.last_json(path)
  local text = E.read(path) or ""
  local last = text:match("([^\n]+)\n*$")
  return last and chatapp.json.decode(last) or error("worker failed: " .. text)
end

function E.alive(pid)
  -- a zombie is dead: look at the state in /proc
  local stat = E.read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

--- The rows of a query on a state file, opened read-only.
function E.db_rows(path, sql, ...)
  local db = assert(core.sqlite_open(path, { readonly = true }))
  local rows = assert(db:query(sql, ...))
  db:close()
  return rows
end

--- A digest of every row of a state file's four tables (numbers,
--- transitions, reminders, outbox; not meta, whose `program` row an open
--- for writing rewrites), and the number of rows.
function E.rows_digest(path)
  local parts = {}
  for _, t in ipairs { "numbers", "transitions", "reminders", "outbox" } do
    for _, r in ipairs(E.db_rows(path, ("SELECT * FROM %s ORDER BY 1, 2, 3"):format(t))) do
      local cols = {}
      for k, v in pairs(r) do cols[#cols + 1] = k .. "=" .. tostring(v) end
      table.sort(cols)
      parts[#parts + 1] = t .. ":" .. table.concat(cols, "\1")
    end
  end
  return core.sha256_hex(table.concat(parts, "\0")), #parts
end

--- JSON Lines output as a list of tables, and the objects by type.
function E.json_lines(text)
  local all, by = {}, {}
  for line in text:gmatch("[^\n]+") do
    local t = assert(chatapp.json.decode(line), "not JSON: " .. line)
    all[#all + 1] = t
    by[t.type] = by[t.type] or {}
    table.insert(by[t.type], t)
  end
  return all, by
end

--- A policy file from source text.
function E.policy(src)
  return E.write(E.tmpdir() .. "/policy.lua", src)
end

--- An emulator --data file: opts.count numbers in the caller's own space
--- (labelled opts.label), PhoneNumber opts.prefix .. 8 digits (1 to
--- count), VerifiedName opts.name .. " " .. i, all CONNECTED, RED,
--- TIER_1K.  Returns its path.
function E.fixture(opts)
  local parts = {}
  for i = 1, opts.count do
    parts[i] = ('{"PhoneNumber":"%s%08d","VerifiedName":"%s %d","Status":"CONNECTED",'
      .. '"QualityRating":"RED","MessagingLimitTier":"TIER_1K"}'):format(opts.prefix, i, opts.name, i)
  end
  return E.write(E.tmpdir() .. "/fixture.json", '{"spaces":[{"cust_space_id":"","default":true,'
    .. '"label":' .. ("%q"):format(opts.label) .. ',"phone_numbers":[' .. table.concat(parts, ",") .. "]}]}")
end

--- The "pager" policy file: a webhook to url for every new number, its
--- body { number = ... }.  opts.attempts: the webhook's attempts (the
--- default when nil); opts.quality: the body carries quality = the
--- number's quality rating too.
function E.pager(url, opts)
  opts = opts or {}
  return E.policy(([[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "pager",
  where = { new = true },
  decide = function(n, plan)
    plan:webhook { url = %q,%s
                   json = { number = n.phone_number%s } }
  end,
}]]):format(url, opts.attempts and (" attempts = %d,"):format(opts.attempts) or "",
             opts.quality and ", quality = n.quality_rating" or ""))
end

--- chatapp-run --emulator --dry-run --output json over args (options and
--- policy files), then tests/policies/well-behaved.lua; its own emulator,
--- no keys; killed after opts.seconds (60).  Returns E.run's result with
--- blurb (the exit status and stderr, for messages), summary (the last
--- line when it is the summary), by (the summary's policies by name) and
--- kinds (the report's lines by type).
function E.dry_run(args, opts)
  local all_args = { "--emulator", "--dry-run", "--output", "json" }
  for _, a in ipairs(args) do all_args[#all_args + 1] = a end
  all_args[#all_args + 1] = E.path("tests/policies/well-behaved.lua")
  local r = E.run(all_args, { CHATAPP_EMULATOR = E.emu_bin, ALIBABA_CLOUD_ACCESS_KEY_ID = false,
                              ALIBABA_CLOUD_ACCESS_KEY_SECRET = false },
                  { wrap = "timeout -s KILL " .. (opts and opts.seconds or 60) })
  r.blurb = ("exit %s\nstderr: %s"):format(tostring(r.code), r.err:sub(1, 3000))
  local ok, all, kinds = pcall(E.json_lines, r.out)
  local last = ok and all[#all]
  r.summary = last and last.type == "summary" and last or nil
  r.kinds = ok and kinds or {}
  r.by = {}
  for _, p in ipairs(r.summary and r.summary.policies or {}) do r.by[p.name] = p end
  return r
end

--- A field of this process's /proc/self/status, in kB (VmRSS, VmHWM...).
function E.self_kb(field)
  return tonumber((E.read("/proc/self/status") or ""):match(field .. ":%s*(%d+) kB"))
end

--- The peak RSS now (kB), reset to the current RSS when the kernel allows
--- it (else the current RSS: the growth measured against it can only be
--- larger than the true one).  The growth of a call: E.self_kb("VmHWM")
--- after it less this before it.
function E.peak_rss_base()
  collectgarbage()
  collectgarbage()
  local f = io.open("/proc/self/clear_refs", "w")
  if f and f:write("5") and f:close() then return E.self_kb("VmHWM") end
  if f then f:close() end
  return E.self_kb("VmRSS")
end

function E.path(rel)
  return E.root .. "/" .. rel
end

return E
