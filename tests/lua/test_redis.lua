-- The Redis binding (runtime/lua/lca_redis.c, core.redis_connect) against
-- a real redis-server (tests/lua/redis_server.lua; needs Debian's
-- redis-server): reply conversions, argument errors, close, __close and
-- __gc, connect errors, and a server killed and restarted: commands fail
-- fast in the backoff, reconnect after it, down_since tracks the outage,
-- and EVALSHA reloads its script (NOSCRIPT) on the empty server.
--
--   chatapp-run --lua test_redis.lua
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local R = require "redis_server"
local chatapp = require "chatapp"
local core = chatapp.core

local function sleep(s) os.execute(("sleep %.3f"):format(s)) end

local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  if #a ~= #b then return false end
  for i = 1, #a do
    if not same(a[i], b[i]) then return false end
  end
  return true
end

local function clients(srv)
  return tonumber(srv:cli("INFO", "clients"):match("connected_clients:(%d+)"))
end

local srv = R.start()
local c = assert(core.redis_connect(srv.url))

T.cases {
  { "replies", function()
    T.eq(c:where(), srv.url .. "/0", "where")
    T.eq(c:call("PING"), "PONG", "status")
    T.eq(c:call("SET", "k", "v"), "OK", "status OK")
    T.eq(c:call("GET", "k"), "v", "bulk")
    T.eq(c:call("GET", "missing"), false, "nil is false")
    T.eq(c:call("INCR", "n"), 1, "integer")
    T.eq(c:call("INCRBY", "n", 41), 42, "a number argument")
    T.eq(math.type(c:call("INCRBY", "n", 0)), "integer", "an integer")
    local bin = "a\0b\r\nc\255"
    T.eq(c:call("SET", "b", bin), "OK")
    T.eq(c:call("GET", "b"), bin, "binary safe")
    T.eq(c:call("RPUSH", "l", "a", "b", "c"), 3)
    T.check(same(c:call("LRANGE", "l", 0, -1), { "a", "b", "c" }), "array")
    T.check(same(c:call("LRANGE", "none", 0, -1), {}), "empty array")
    local got = c:eval([[return {1, "two", {3, {4, false}}, false, redis.status_reply("ok")}]], 0)
    T.check(same(got, { 1, "two", { 3, { 4, false } }, false, "ok" }), "nested arrays, nil elements")
    T.check(same(c:eval("return {KEYS[1], ARGV[1], #KEYS, #ARGV}", 1, "k1", "a1"), { "k1", "a1", 1, 1 }),
      "keys then arguments")
    local big = ("x"):rep(10 << 20)
    T.eq(c:call("SET", "big", big), "OK")
    T.eq(#c:call("GET", "big"), #big, "a 10 MB reply")
  end },

  { "error replies: nil, message, EREDIS", function()
    local r, msg, code = c:call("NOPE")
    T.eq(r, nil)
    T.check(msg:find("unknown command", 1, true), msg)
    T.eq(code, "EREDIS")
    r, msg, code = c:eval("return redis.error_reply('BOOM bad thing')", 0)
    T.eq(r, nil)
    T.eq(msg, "BOOM bad thing")
    T.eq(code, "EREDIS")
    r, msg, code = c:call("INCR", "k")
    T.eq(code, "EREDIS", msg)
    T.eq(c:call("PING"), "PONG", "the connection goes on")
  end },

  { "argument errors raise", function()
    T.raises(function() c:call("SET", {}, "x") end, "string or number", "a table")
    T.raises(function() c:call("SET", "k", true) end, "string or number", "a boolean")
    T.raises(function() c:call() end, "needs a name", "no command")
    local many = {}
    for i = 1, 65 do many[i] = "a" end
    T.raises(function() c:call(table.unpack(many)) end, "at most 64", "65 arguments")
    many[65] = nil
    many[1] = "DEL"
    T.eq(c:call(table.unpack(many)), 0, "64 arguments are fine")
    T.raises(function() c:eval("return 1", 2, "k") end, "keys out of range", "more keys than arguments")
    T.raises(function() c:eval("return 1", -1) end, "keys out of range", "negative keys")
    T.raises(function() c:eval({}, 0) end, "string", "a table for the script")
    T.eq(c:call("PING"), "PONG", "the connection goes on")
  end },

  { "connect errors", function()
    local r, msg, code = core.redis_connect("redis://127.0.0.1:1")
    T.eq(r, nil)
    T.eq(code, "ETRANSPORT")
    T.check(msg:find("redis://127.0.0.1:1/0", 1, true) and msg:find("reachable", 1, true), msg)
    r, msg, code = core.redis_connect("redis://user:CANARY-in-url@127.0.0.1")
    T.eq(code, "EINVAL")
    T.check(not msg:find("CANARY", 1, true), msg)
    r, msg, code = core.redis_connect("rediss://127.0.0.1")
    T.eq(code, "EINVAL")
    T.check(msg:find("TLS", 1, true), msg)
    T.raises(function() core.redis_connect() end, "string", "no URL")
    r, msg, code = core.redis_connect(srv.url .. "/20")
    T.eq(code, "EINVAL", msg)
    T.check(msg and msg:find("cannot select database 20", 1, true), msg)
    local d3 = assert(core.redis_connect(srv.url .. "/3"))
    T.eq(d3:where(), srv.url .. "/3")
    T.eq(d3:call("SET", "only-in-3", "x"), "OK")
    T.eq(d3:call("GET", "only-in-3"), "x")
    T.eq(c:call("GET", "only-in-3"), false, "databases are apart")
    d3:close()
    local locked = R.start { password = "CANARY-lock-pw" }
    r, msg, code = core.redis_connect(locked.url)
    T.eq(code, "ECREDENTIALS", msg)
    T.check(msg and msg:find("CHATAPP_REDIS_PASSWORD", 1, true), msg)
    locked:stop()
  end },

  { "close, __close, __gc", function()
    local base = clients(srv)
    local d = assert(core.redis_connect(srv.url))
    T.eq(clients(srv), base + 1, "one more client")
    d:close()
    d:close() -- twice is fine
    T.raises(function() d:call("PING") end, "closed", "call after close")
    T.raises(function() d:eval("return 1", 0) end, "closed", "eval after close")
    T.raises(function() d:where() end, "closed", "where after close")
    do
      local e <close> = assert(core.redis_connect(srv.url))
      T.eq(e:call("PING"), "PONG")
    end
    for _ = 1, 20 do assert(core.redis_connect(srv.url)) end
    collectgarbage()
    collectgarbage()
    local n
    for _ = 1, 50 do
      n = clients(srv)
      if n == base then break end
      sleep(0.02)
    end
    T.eq(n, base, "closed and collected connections are gone from the server")
  end },

  { "killed and restarted: backoff, down_since, NOSCRIPT", function()
    local script = "return tonumber(ARGV[1]) * 2"
    T.eq(c:eval(script, 0, 21), 42)
    T.eq(c:down_since(), nil, "connected")
    local before = core.monotonic()
    srv:kill()
    local r, msg, code = c:call("PING")
    T.eq(r, nil)
    T.eq(code, "ETRANSPORT", msg)
    T.check(msg:find(srv.url, 1, true), msg)
    local down = c:down_since()
    T.check(down and down >= before and down <= core.monotonic(), "down_since is when it went away")
    -- a connect attempt, refused: the backoff starts
    r, msg, code = c:call("PING")
    T.eq(code, "ETRANSPORT", msg)
    -- in the backoff: at once, without connecting
    local t0 = core.monotonic()
    r, msg, code = c:call("PING")
    T.eq(code, "ETRANSPORT")
    T.check(msg:find("trying again in", 1, true), msg)
    T.check(core.monotonic() - t0 < 0.5, "fast")
    T.eq(c:down_since(), down, "down_since stays")
    srv:restart()
    local ok
    local t1 = core.monotonic()
    for _ = 1, 100 do
      ok = c:call("PING")
      if ok then break end
      sleep(0.05)
    end
    T.eq(ok, "PONG", "back after the restart")
    T.check(core.monotonic() - t1 < 3, "within the 2 s backoff")
    T.eq(c:down_since(), nil, "connected again")
    -- the new server is empty: EVALSHA, NOSCRIPT, SCRIPT LOAD, EVALSHA
    local rt = c:round_trips()
    T.eq(c:eval(script, 0, 5), 10, "the script is reloaded")
    T.eq(c:round_trips() - rt, 3, "EVALSHA, SCRIPT LOAD, EVALSHA")
    T.eq(c:eval(script, 0, 6), 12)
    T.eq(c:round_trips() - rt, 4, "then one round trip")
  end },
}

c:close()
srv:stop()
R.cleanup()
return T.done()
