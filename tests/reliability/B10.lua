-- ctest: timeout=60
-- B10, proxy environment: `http_proxy` pointing at a dead port, the
-- endpoint in `NO_PROXY`.  Criterion: the direct connection succeeds;
-- without `NO_PROXY` the failure is reported with the proxy redacted.
--
-- How: chatapp-run (the CLI, a policy) against the emulator over plain
-- http on 127.0.0.1, with http_proxy=http://USER:PASSWORD@127.0.0.1:1
-- (nothing listens on port 1), USER and PASSWORD canaries.
--   1. NO_PROXY=127.0.0.1 (upper case, as written), then lower-case
--      no_proxy: exit 0 and the emulator accepted the call, so it went
--      direct.
--   2. No NO_PROXY: exit 1; the failure names the proxy's address
--      (127.0.0.1 port 1) and says it is the proxy, from http_proxy, as
--      http://<redacted>@127.0.0.1:1, with what to do; neither canary
--      appears in stderr, stdout or the JSON summary (--output json), at
--      -vv (every retry logged); the emulator saw no call.
--   3. A proxy URL libcurl cannot use (a bad port, an unknown scheme):
--      libcurl quotes it whole in its message ("Unsupported proxy syntax
--      in '...'"); the failure is reported with the credentials replaced
--      by <redacted>, and neither canary appears (it did before: the
--      client now counts the proxy variables' credentials as secrets).
-- About 1 s.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local USER, PASSWORD = "b10canaryuser", "b10-Canary-Pa55word"
local emu = E.emulator()
local policy = E.path("scripts/policies/quality-alert.lua")

local function accepted() return emu:stats().accepted or 0 end

-- No canary anywhere the user sees.
local function no_canary(r, what)
  for _, s in ipairs { r.err, r.out } do
    T.check(not s:find(USER, 1, true), what .. ": the proxy's user name is not shown: " .. s)
    T.check(not s:find(PASSWORD, 1, true), what .. ": the proxy's password is not shown: " .. s)
  end
end

T.cases {
  { "the endpoint in NO_PROXY (or no_proxy): the dead proxy is bypassed, the direct connection succeeds", function()
    for _, name in ipairs { "NO_PROXY", "no_proxy" } do
      local before = accepted()
      local r = E.run({ "--endpoint", emu.url, policy },
        { http_proxy = ("http://%s:%s@127.0.0.1:1"):format(USER, PASSWORD), [name] = "127.0.0.1" })
      T.eq(r.code, 0, name .. ": direct connection: " .. r.err)
      T.check(accepted() > before, name .. ": the emulator answered the call")
      no_canary(r, name)
    end
  end },

  { "without NO_PROXY: the dead proxy is used, the failure names it, credentials redacted", function()
    local before = accepted()
    local r = E.run({ "--endpoint", emu.url, "--max-attempts", "2", "--output", "json", "-vv", policy },
      { http_proxy = ("http://%s:%s@127.0.0.1:1"):format(USER, PASSWORD) })
    T.eq(r.code, 1, "the run failed: " .. r.err)
    T.check(r.err:find("127.0.0.1 port 1 ", 1, true), "the failure names the proxy's address: " .. r.err)
    T.check(r.err:find("that is the proxy from http_proxy (http://<redacted>@127.0.0.1:1)", 1, true),
            "says it is the proxy, credentials redacted: " .. r.err)
    T.check(r.err:find("no_proxy", 1, true), "says how to go direct: " .. r.err)
    T.check(r.err:find("attempt 1 failed", 1, true), "the retry is logged at -vv: " .. r.err)
    T.check(r.out:find('"type":"summary"', 1, true), "a JSON summary: " .. r.out)
    T.eq(accepted(), before, "nothing reached the endpoint around the proxy")
    no_canary(r, "dead proxy")
  end },

  { "a proxy URL libcurl cannot use: quoted in the failure with its credentials redacted", function()
    for _, url in ipairs { "http://%s:%s@127.0.0.1:99999", "foo://%s:%s@127.0.0.1:1",
                           "http://%s:%s@[zz]:1" } do
      local px = url:format(USER, PASSWORD)
      local r = E.run({ "--endpoint", emu.url, "--max-attempts", "1", "--output", "json", policy },
        { http_proxy = px })
      T.eq(r.code, 1, px .. ": " .. r.err)
      T.check(r.err:find("proxy", 1, true) and r.err:find("<redacted>@", 1, true),
              px .. ": reported, redacted: " .. r.err)
      no_canary(r, px)
    end
  end },
}

emu:stop()
E.cleanup()
return T.done()
