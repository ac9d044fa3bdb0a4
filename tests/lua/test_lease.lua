-- The leader lease's unit test (tests/c/test_lease.c) needs a real
-- redis-server: start one on a free loopback port, run the C test against
-- it, stop it.
--   chatapp-run --lua test_lease.lua TEST_LEASE_BINARY
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local R = require "redis_server"

local bin = assert(arg[1], "usage: test_lease.lua TEST_LEASE_BINARY")
local srv = R.start()
local ok, how, code = os.execute(("%s %s"):format(bin, srv.url))
T.check(ok and how == "exit" and code == 0,
  ("test_lease against %s: %s %s"):format(srv.url, tostring(how), tostring(code)))
-- what the C test left: no lease of its own (each released or expired)
T.eq(srv:cli("GET", "chatapp:lease:{acct-a}"), "", "acct-a released")
T.check((tonumber(srv:cli("GET", "chatapp:fence:{acct-a}")) or 0) >= 2, "acct-a's fence moved once per lease won")
srv:stop()
R.cleanup()
return T.done()
