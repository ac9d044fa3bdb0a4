-- The Redis password never leaks (issue 16): a canary password, given in
-- CHATAPP_REDIS_PASSWORD or in a file named by CHATAPP_REDIS_PASSWORD_FILE,
-- right or wrong, reaches no output or error of chatapp-run, is refused to
-- policies' os.getenv, and is not in an exec child's environment.  Starts
-- a real redis-server (tests/lua/redis_server.lua; Debian's redis-server).
--
--   chatapp-run --lua e2e_redis_secrets.lua CHATAPP-RUN CHATAPP-EMULATOR
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local R = require "redis_server"

local CANARY = "CANARY-redis-9c41e2/pw+="
local WRONG = "CANARY-redis-wrong-55d0"
local CANARIES = { CANARY, WRONG }

local function no_canary(where, text)
  for _, c in ipairs(CANARIES) do
    for _, form in ipairs { c, c:sub(1, 14), c:sub(-10) } do
      T.check(not text:find(form, 1, true), ("%s contains a canary (%s)"):format(where, form))
    end
  end
end

local dir = E.tmpdir()
local srv = R.start { password = CANARY }

-- A script run by chatapp-run --lua: connect, a command, an error reply,
-- and every message printed, to stdout and stderr.
local child = E.write(dir .. "/child.lua", [[
local core = require("chatapp").core
local c, msg, code = core.redis_connect(arg[1])
if not c then
  print("connect failed:", msg, code)
  io.stderr:write("connect failed: ", tostring(msg), " ", tostring(code), "\n")
  error(msg)
end
print("where:", c:where())
print("ping:", c:call("PING"))
print("error reply:", c:call("AUTH", "nobody", "x"))
print("eval:", c:eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, "k", "v"))
c:close()
]])

local function run_child(name, env, want_ok)
  local r = E.run({ "--lua", child, srv.url }, env, { no_limiter = true })
  no_canary(name .. " stdout", r.out)
  no_canary(name .. " stderr", r.err)
  T.check(#r.out + #r.err > 0, name .. ": something to check")
  if want_ok then
    T.eq(r.code, 0, name .. ": " .. r.err)
    T.check(r.out:find("ping:\tPONG", 1, true), name .. ": " .. r.out)
  else
    T.check(r.code ~= 0, name .. " fails")
  end
  return r
end

T.cases {
  { "the password from the environment, right and wrong", function()
    run_child("env", { CHATAPP_REDIS_PASSWORD = CANARY }, true)
    local r = run_child("wrong env", { CHATAPP_REDIS_PASSWORD = WRONG }, false)
    T.check(r.out:find("ECREDENTIALS", 1, true) and r.out:find("CHATAPP_REDIS_PASSWORD", 1, true), r.out)
    r = run_child("missing", {}, false)
    T.check(r.out:find("wants a password", 1, true), r.out)
  end },

  { "the password from a file, right and wrong", function()
    local f = E.write(dir .. "/pw", CANARY .. "\n")
    run_child("file", { CHATAPP_REDIS_PASSWORD_FILE = f }, true)
    local w = E.write(dir .. "/wrong", WRONG .. "\r\n")
    local r = run_child("wrong file", { CHATAPP_REDIS_PASSWORD_FILE = w }, false)
    T.check(r.out:find("ECREDENTIALS", 1, true), r.out)
  end },

  { "an ACL user: redis://user@host, its password from the environment", function()
    srv:cli("ACL", "SETUSER", "app", "on", ">" .. CANARY, "~*", "+@all")
    local url = srv.url:gsub("redis://", "redis://app@")
    local r = E.run({ "--lua", child, url }, { CHATAPP_REDIS_PASSWORD = CANARY }, { no_limiter = true })
    no_canary("ACL stdout", r.out)
    no_canary("ACL stderr", r.err)
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("where:\tredis://app@127.0.0.1:", 1, true), r.out)
    r = E.run({ "--lua", child, url }, { CHATAPP_REDIS_PASSWORD = WRONG }, { no_limiter = true })
    no_canary("ACL wrong stdout", r.out)
    no_canary("ACL wrong stderr", r.err)
    T.check(r.out:find("refused the user name or password", 1, true), r.out)
    r = E.run({ "--lua", child, url }, {}, { no_limiter = true })
    T.check(r.out:find("without a password", 1, true), r.out)
  end },

  { "the password in the URL is refused without repeating it", function()
    local url = srv.url:gsub("redis://", "redis://default:" .. CANARY .. "@")
    local r = E.run({ "--lua", child, url }, {}, { no_limiter = true })
    no_canary("URL stdout", r.out)
    no_canary("URL stderr", r.err)
    T.check(r.out:find("holds a password", 1, true), r.out)
  end },

  { "policies cannot read it, exec children do not get it", function()
    local emu = E.emulator {}
    local SPACES = E.path("scripts/spaces/sample-spaces.json")
    local p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "nosy", where = { status = chatapp.Status.CONNECTED },
  decide = function(n, plan)
    local ok, err = pcall(os.getenv, "CHATAPP_REDIS_PASSWORD")
    print("getenv:", ok, err)
    plan:exec { argv = { "/usr/bin/printenv" } }
  end }]])
    local env = { CHATAPP_REDIS_PASSWORD = CANARY }
    local r = E.run({ "--endpoint", emu.url, "-vvv", "--allow-exec", "--output", "json", "--spaces", SPACES, p },
      env)
    no_canary("policy stdout", r.out)
    no_canary("policy stderr", r.err)
    T.check(r.out:find("PATH=", 1, true), "printenv ran: " .. r.out:sub(1, 300))
    T.check(not r.out:find("CHATAPP_REDIS_PASSWORD=", 1, true), "the password reached the exec child")
    T.check((r.out .. r.err):find("policies cannot read credentials", 1, true),
      "os.getenv is refused: " .. r.out:sub(1, 300) .. r.err:sub(1, 300))
    -- the password file's path is no secret; the password still is not in it
    local f = E.write(dir .. "/pw2", CANARY)
    r = E.run({ "--endpoint", emu.url, "--allow-exec", "--output", "json", "--spaces", SPACES, p },
      { CHATAPP_REDIS_PASSWORD_FILE = f })
    no_canary("policy (file) stdout", r.out)
    no_canary("policy (file) stderr", r.err)
    emu:stop()
  end },
}

srv:stop()
R.cleanup()
E.cleanup()
return T.done()
