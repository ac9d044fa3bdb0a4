--- A real redis-server for a test, on 127.0.0.1 and a free port, with
--- nothing persisted (a restart starts empty, as a crashed server without
--- persistence would).  Needs Debian's redis-server (scripts/setup.sh).
--
--   local R = require "redis_server"
--   local srv = R.start { password = "..." }   -- opts optional
--   srv.url                                    -- "redis://127.0.0.1:PORT"
--   srv:cli("GET", "k")                        -- redis-cli's raw output
--   srv:kill(); srv:restart(); srv:stop()

local R = { max_life = 900 } -- seconds a server may live at most

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function sleep_ms(ms) os.execute(("sleep %.3f"):format(ms / 1000)) end

local function alive(pid)
  local stat = read("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %b() Z")
end

local Srv = {}
Srv.__index = Srv

-- Start the server on self.port; true when it accepts connections, false
-- when the port is taken (or it did not come up in 10 s).
local function launch(self)
  local log = ("%s/redis-%d.log"):format(self.dir, self.port)
  os.remove(log)
  local args = { "redis-server", "--bind", "127.0.0.1", "--port", tostring(self.port), "--save", "''",
                 "--appendonly", "no", "--daemonize", "no", "--dir", q(self.dir), "--logfile", q(log),
                 "--protected-mode", "no" }
  if self.password then args[#args + 1] = "--requirepass " .. q(self.password) end
  for _, a in ipairs(self.extra or {}) do args[#args + 1] = q(a) end
  local p = io.popen(table.concat(args, " ") .. " >/dev/null 2>&1 </dev/null & echo $!")
  self.pid = tonumber(p:read("l"))
  p:close()
  -- A watchdog: a test killed before it stops its server (ctest's timeout)
  -- leaves no redis-server behind for long.  It kills only a process that
  -- is still this redis-server on this port (not a reused pid).
  os.execute(("(sleep %d; grep -q -- %s /proc/%d/cmdline 2>/dev/null && kill -9 %d) " ..
              ">/dev/null 2>&1 </dev/null &"):format(R.max_life, q(tostring(self.port)), self.pid, self.pid))
  for _ = 1, 500 do
    local text = read(log) or ""
    if text:find("Ready to accept connections", 1, true) then return true end
    if text:find("Address already in use", 1, true) or not alive(self.pid) then
      os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
      self.pid = nil
      return false
    end
    sleep_ms(20)
  end
  os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
  self.pid = nil
  return false
end

--- Start a server.  opts.password: --requirepass; opts.extra: more
--- arguments; opts.dir: where its log goes (default: a fresh folder).
function R.start(opts)
  opts = opts or {}
  local dir = opts.dir
  if not dir then
    local p = io.popen("mktemp -d /tmp/chatapp-redis-XXXXXX")
    dir = p:read("l")
    p:close()
    R.dirs = R.dirs or {}
    R.dirs[#R.dirs + 1] = dir
  end
  local self = setmetatable({ dir = dir, password = opts.password, extra = opts.extra }, Srv)
  local seed = (os.time() * 7919 + tonumber(tostring({}):match("0x(%x+)") or "1", 16)) % 20000
  for i = 0, 49 do
    self.port = 30000 + (seed + i * 389) % 20000
    if launch(self) then
      self.url = "redis://127.0.0.1:" .. self.port
      return self
    end
  end
  error("could not start redis-server on a free port (is it installed? scripts/setup.sh)")
end

--- redis-cli's output for one command (its arguments as words).
function Srv:cli(...)
  local words = { "redis-cli", "-h", "127.0.0.1", "-p", tostring(self.port) }
  local env = self.password and ("REDISCLI_AUTH=" .. q(self.password) .. " ") or ""
  for _, a in ipairs { ... } do words[#words + 1] = q(a) end
  local p = io.popen(env .. table.concat(words, " ") .. " 2>&1")
  local out = p:read("a")
  p:close()
  return (out:gsub("\n$", ""))
end

--- Send sig (default KILL) and wait until the server is gone.
function Srv:kill(sig)
  if not self.pid then return end
  os.execute(("kill -%s %d 2>/dev/null"):format(sig or "KILL", self.pid))
  for _ = 1, 500 do
    if not alive(self.pid) then break end
    sleep_ms(10)
  end
  self.pid = nil
end

--- Start again on the same port, empty.
function Srv:restart()
  for _ = 1, 100 do
    if launch(self) then return self end
    sleep_ms(50)
  end
  error("redis-server did not restart on port " .. self.port)
end

function Srv:stop()
  self:kill("TERM")
end

--- Remove the folders of the servers started (call after stopping them).
function R.cleanup()
  for _, d in ipairs(R.dirs or {}) do os.execute("rm -rf " .. q(d)) end
  R.dirs = nil
end

return R
