-- ctest: timeout=120
-- F4. Webhook target that resolves to a link-local or metadata-like
-- address.  Criterion: refused before connect.
--
-- Issue 19 spells it out: webhooks and calls to link-local and metadata
-- addresses (100.100.100.200, 169.254.0.0/16, fe80::/10, the IPv4-mapped
-- ::ffff:169.254.x.x and ::ffff:100.100.100.200, and names that resolve to
-- them) are refused, with no socket opened.  How this test checks it:
--   * policies plan webhooks to every literal form (https: plain http to a
--     non-loopback host is refused when planned already), and a script's
--     client sends plain HTTP requests and signed API calls to them;
--     chatapp-run runs with tests/shim/faultfs.c preloaded, which writes
--     down every IPv4/IPv6 socket the process opens and every connect;
--   * each request fails with the refusal (ca_attempt.c, on_opensocket:
--     libcurl's open-socket callback, which sees the resolved address and
--     opens no socket for a forbidden one), naming the host and address,
--     after one attempt (final, never retried);
--   * "no socket opened": every stream socket the process opened was
--     connected to the emulator on 127.0.0.1 (as many stream sockets as
--     connects to 127.0.0.1, and no connect to any other address); that
--     the log sees sockets at all is shown by those emulator connections;
--   * names: chatapp-run runs under `unshare --mount` with /etc/hosts
--     bind-mounted to map test names to those addresses (the "test-netns
--     alias" of the criterion; needs root, else that part is skipped and
--     says so).  Behind a proxy the address libcurl connects to is the
--     proxy's: docs/policies.md says so.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local SHIM = os.getenv("CHATAPP_FAULTFS") or (E.run_bin:match("^(.*)/[^/]*$") or ".") ..
  "/tests/shim/libchatapp_faultfs.so"
assert(io.open(SHIM, "rb"), "the faultfs shim is built beside chatapp-run: " .. SHIM):close()
-- In a sanitizer build the shim is preloaded ahead of the ASan runtime,
-- which then must not insist on coming first.
local ASAN = ((os.getenv("ASAN_OPTIONS") or "") .. ":verify_asan_link_order=0"):gsub("^:", "")
local SPACES = E.path("scripts/spaces/sample-spaces.json")

-- Every forbidden address, as a URL host, with the address libcurl is to
-- be refused (inet_ntop's form).
local LITERALS = {
  { "169.254.169.254", "169.254.169.254" },
  { "169.254.0.1", "169.254.0.1" },
  { "169.254.255.254", "169.254.255.254" },
  { "100.100.100.200", "100.100.100.200" },
  { "[fe80::1]", "fe80::1" },
  { "[febf:ffff::1]", "febf:ffff::1" },
  { "[::ffff:169.254.169.254]", "::ffff:169.254.169.254" },
  { "[::ffff:a9fe:1]", "::ffff:169.254.0.1" },
  { "[::ffff:100.100.100.200]", "::ffff:100.100.100.200" },
}
-- Names mapped in a private /etc/hosts.
local NAMES = {
  { "metadata.f4.test", "169.254.169.254" },
  { "ecs-meta.f4.test", "100.100.100.200" },
  { "ll6.f4.test", "fe80::1" },
  { "mapped.f4.test", "::ffff:169.254.169.254" },
  { "mapped-meta.f4.test", "::ffff:100.100.100.200" },
}

local emu = E.emulator {}

-- The sockets of one run: the stream sockets opened and the connects.
local function sockets(log)
  local streams, connects, loopback, other = 0, 0, 0, {}
  for line in (E.read(log) or ""):gmatch("[^\n]+") do
    local fam, ty = line:match("^socket (%S+) (%d+)$")
    if fam and tonumber(ty) == 1 then streams = streams + 1 end
    local ip = line:match("^connect (%S+) %d+$")
    if ip then
      connects = connects + 1
      if ip == "127.0.0.1" or ip == "::1" then loopback = loopback + 1 else other[#other + 1] = ip end
    end
  end
  return { streams = streams, connects = connects, loopback = loopback, other = other }
end

local function no_socket_for(s, what)
  T.eq(#s.other, 0, what .. ": connects to " .. table.concat(s.other, ", "))
  T.eq(s.streams, s.loopback, what .. ": every stream socket opened went to 127.0.0.1 (the emulator)")
end

-- A policy planning one webhook per host, each with 3 attempts allowed.
local function hook_policy(list)
  local src = { 'return require("chatapp").policy { name = "f4", where = { phone_number = "6591234567" },',
                "  decide = function(n, plan)" }
  for _, h in ipairs(list) do
    src[#src + 1] = ("    plan:webhook { url = %q, json = { n = n.phone_number }, attempts = 3 }")
      :format("https://" .. h[1] .. "/latest/meta-data?token=hidden")
  end
  src[#src + 1] = "  end }"
  return E.policy(table.concat(src, "\n"))
end

-- A script: a client's plain HTTP requests and signed API calls.
local function call_script(list, dir)
  local src = { 'local chatapp = require "chatapp"', "local out = {}" }
  for _, h in ipairs(list) do
    src[#src + 1] = ([[
do
  local c = assert(chatapp.client { endpoint = %q, access_key_id = "LTAIf4", access_key_secret = "s",
                                    limiter = "process" })
  local _, errs = c:batch { { url = %q, method = "GET", max_attempts = 3 } }
  out[#out + 1] = "http " .. %q .. " " .. tostring(errs and errs[1] and errs[1].status) .. " "
                  .. tostring(errs and errs[1] and errs[1].message)
  local ok, err = c:call("QueryChatappPhoneNumbers", { CustSpaceId = "C1" })
  out[#out + 1] = "api " .. %q .. " " .. tostring(ok == nil and err.status) .. " " .. tostring(err and err.message)
  c:close()
end]]):format("https://" .. h[1], "https://" .. h[1] .. "/x?token=hidden", h[1], h[1])
  end
  src[#src + 1] = 'io.stdout:write(table.concat(out, "\\n"), "\\n")'
  return E.write(dir .. "/calls.lua", table.concat(src, "\n"))
end

local function check_refusals(text, list, what)
  for _, h in ipairs(list) do
    local want = ("refused: %s resolved to %s, a link-local or metadata address"):format(h[1], h[2])
    T.check(text:find(want, 1, true), ("%s: %s refused naming the address: %s"):format(what, h[1], text:sub(1, 600)))
  end
end

local function run_all(list, wrap, what)
  local dir = E.tmpdir()
  local log = dir .. "/net.log"
  local env = { LD_PRELOAD = SHIM, FAULTFS_NET_LOG = log, ASAN_OPTIONS = ASAN }
  -- webhooks of a policy
  local r = E.run({ "--endpoint", emu.url, "--spaces", SPACES, "--output", "json", hook_policy(list) }, env,
    { wrap = wrap })
  T.eq(r.code, 1, what .. ": the failed webhooks make the run fail: " .. r.err)
  check_refusals(r.err, list, what .. " webhooks")
  local n = 0
  for _ in r.err:gmatch("refused: [^\n]- %(1 attempt%)") do n = n + 1 end
  T.eq(n, #list, what .. ": each webhook refused after 1 attempt of 3 allowed")
  local s = sockets(log)
  T.check(s.loopback > 0, what .. ": the log saw the emulator's connections")
  no_socket_for(s, what .. " webhooks")
  -- a script's calls
  os.remove(log)
  r = E.run({ "--lua", call_script(list, dir) }, env, { wrap = wrap })
  T.eq(r.code, 0, what .. ": the script ran: " .. r.err)
  check_refusals(r.out, list, what .. " calls")
  for _, h in ipairs(list) do
    T.check(r.out:find("http " .. h[1] .. " ECONFIG refused", 1, true), what .. ": http " .. h[1] .. ": " .. r.out)
    T.check(r.out:find("api " .. h[1] .. " ECONFIG refused", 1, true), what .. ": api " .. h[1] .. ": " .. r.out)
  end
  s = sockets(log)
  T.eq(s.streams, 0, what .. ": no stream socket at all for the script's calls")
  T.eq(s.connects, 0, what .. ": no connect at all")
end

T.cases {
  { "literal addresses: refused, no socket opened", function()
    run_all(LITERALS, nil, "literals")
  end },

  { "names resolving to them (a private /etc/hosts)", function()
    local uid = io.popen("id -u"):read("l")
    local probe = os.execute("unshare --mount true >/dev/null 2>&1")
    if uid ~= "0" or not probe then
      print(("# skipped: names resolving to forbidden addresses need root and unshare --mount "
        .. "(uid %s, unshare %s)"):format(uid, probe and "works" or "fails"))
      return
    end
    local dir = E.tmpdir()
    local lines = { "127.0.0.1 localhost", "::1 localhost" }
    for _, h in ipairs(NAMES) do lines[#lines + 1] = h[2] .. " " .. h[1] end
    local hosts = E.write(dir .. "/hosts", table.concat(lines, "\n") .. "\n")
    local wrap = ("unshare --mount sh -c %s"):format(E.quote(
      ('mount --bind %s /etc/hosts && exec "$0" "$@"'):format(E.quote(hosts))))
    -- the private file is the one resolved
    local r = E.run({ "--lua", E.write(dir .. "/resolve.lua", [[
      local p = io.popen("getent ahosts metadata.f4.test")
      io.stdout:write(p:read("a")) p:close()]]) }, {}, { wrap = wrap })
    T.check(r.out:find("169.254.169.254", 1, true), "the private /etc/hosts resolves: " .. r.out .. r.err)
    run_all(NAMES, wrap, "names")
  end },
}

emu:stop()
E.cleanup()
return T.done()
