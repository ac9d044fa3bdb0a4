-- Run a C test against two fresh redis-servers (tests/lua/redis_server.lua):
-- one open, one with a password.
--   chatapp-run --lua with_redis.lua [LAUNCHER...] TEST_BINARY
-- runs  TEST_REDIS_PASSWORD=PW [LAUNCHER...] TEST_BINARY URL URL_WITH_PASSWORD
-- and exits with its status (1 for a signal).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local R = require "redis_server"

assert(arg[1], "arg[1]: the test binary")
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local words = {}
for i = 1, #arg do words[i] = q(arg[i]) end
local bin = table.concat(words, " ")
local pw = ("pw-%d-%d"):format(os.time(), math.random(1, 1 << 30))
local open, locked = R.start(), R.start { password = pw }
local ok, how, code = os.execute(("env TEST_REDIS_PASSWORD=%s %s %s %s"):format(q(pw), bin, q(open.url),
  q(locked.url)))
open:stop()
locked:stop()
R.cleanup()
if how ~= "exit" then
  io.stderr:write(("%s ended by signal %s\n"):format(bin, tostring(code)))
  return 1
end
return ok and 0 or code
