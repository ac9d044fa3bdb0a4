-- B9, an `http://` endpoint with a `.invalid` name.  Criterion: refused
-- before DNS or connect (open-socket counter = 0).
--
-- How: chatapp-run refuses a plain-http endpoint that is not loopback when
-- the client is made (docs/cli.md: http only to 127.0.0.1, ::1 or
-- localhost), so nothing exists yet that could resolve or connect.  Shown
-- three ways, each with a control run that would have shown it:
--   1. In this process: chatapp.client with http://cams.invalid (also
--      with a port and a subdomain) returns nil and an ECONFIG error
--      naming the host and saying to use https://: no client, no call.
--   2. chatapp-run with the endpoint, and every proxy variable
--      (http_proxy, HTTPS_PROXY, ALL_PROXY) pointing at an emulator that
--      counts its connections: any request to an http:// URL would go to
--      it (libcurl then resolves nothing itself).  Exit status 2 (a
--      configuration error, nothing ran), the refusal on standard error,
--      and the emulator's connection counter shows no connection but the
--      test's own question.  Control: http://127.0.0.2:1 (loopback, so
--      allowed) is counted there.
--   3. The open-socket counter: chatapp-run under valgrind's syscall
--      trace (--tool=none --trace-syscalls=yes), every system call it
--      makes: no socket, socketpair or connect at all, and no file of the
--      resolver opened (/etc/resolv.conf, /etc/hosts, /etc/nsswitch.conf,
--      /etc/gai.conf, /etc/host.conf).  Control: https://cams.invalid (allowed,
--      so it is resolved) shows the resolver's files and a socket in the
--      same trace.  Skipped, with a note, when valgrind is missing or the
--      binary is built with AddressSanitizer (valgrind cannot run it): 1
--      and 2 still hold there.
-- About 3 s (with valgrind; 1 s without).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local policy = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "b9", decide = function(n, plan) end }
]])

T.cases { { "the client is refused when it is made", function()
  for _, url in ipairs { "http://cams.invalid", "http://cams.invalid:8080/", "http://api.cams.invalid" } do
    local host = url:match("^http://([^:/]+)")
    local c, err = chatapp.client { endpoint = url, access_key_id = E.KEY_ID,
                                    access_key_secret = E.KEY_SECRET, limiter = "process" }
    T.eq(c, nil, url .. ": no client")
    T.eq(err and err.status, "ECONFIG", url .. ": " .. tostring(err))
    T.check(tostring(err):find(("plain http to '%s'"):format(host), 1, true)
            and tostring(err):find("use https://", 1, true), tostring(err))
  end
end } }

local observer = E.emulator()
local function opened() return observer:stats().connections.opened end
local proxy = { http_proxy = observer.url, HTTPS_PROXY = observer.url, ALL_PROXY = observer.url }

T.cases { { "chatapp-run: refused, nothing reaches a proxy", function()
  local before = opened()
  local r = E.run({ "--endpoint", "http://cams.invalid", policy }, proxy)
  T.eq(r.code, 2, "a configuration error, nothing ran: " .. r.err)
  T.check(r.err:find("refusing to send credentials over plain http to 'cams.invalid'", 1, true), r.err)
  T.eq(opened(), before, "no connection to the proxy")
  -- Control: an allowed endpoint does go through the proxy.
  r = E.run({ "--endpoint", "http://127.0.0.2:1", "--max-attempts", "1", policy }, proxy)
  T.check(opened() > before, "control: an allowed http:// endpoint reached the proxy")
end } }

-- Is valgrind there, and can it run this binary?
local function has_valgrind()
  if not os.execute("command -v valgrind >/dev/null 2>&1") then return false, "no valgrind" end
  if os.getenv("ASAN_OPTIONS") then return false, "ASAN_OPTIONS is set" end
  local bin = E.read(E.run_bin) or ""
  if bin:find("__asan_init", 1, true) then return false, "the binary is built with AddressSanitizer" end
  return true
end

-- chatapp-run under valgrind's syscall trace: its result, and the trace.
local function traced(endpoint)
  local log = E.tmpdir() .. "/trace"
  local r = E.run({ "--endpoint", endpoint, "--max-attempts", "1", policy }, nil,
    { wrap = "valgrind --tool=none --trace-syscalls=yes --log-file=" .. E.quote(log) })
  return r, E.read(log) or ""
end

local RESOLVER = { "/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/host.conf" }
local function count(trace, what)
  local n = 0
  for _ in trace:gmatch(what) do n = n + 1 end
  return n
end

local ok, why = has_valgrind()
if ok then
  T.cases { { "the open-socket counter is 0 (valgrind's syscall trace)", function()
    local r, trace = traced("http://cams.invalid")
    T.eq(r.code, 2, "refused: " .. r.err)
    T.check(count(trace, "SYSCALL%[") > 100, "the trace holds the run's system calls")
    T.eq(count(trace, "sys_socket%f[^%w]"), 0, "no socket opened")
    T.eq(count(trace, "sys_socketpair"), 0, "no socket pair")
    T.eq(count(trace, "sys_connect%f[^%w]"), 0, "no connect")
    for _, f in ipairs(RESOLVER) do
      T.check(not trace:find("(" .. f .. ")", 1, true), "no DNS: " .. f .. " not opened")
    end
    -- Control: an https:// endpoint with the name is resolved.
    r, trace = traced("https://cams.invalid")
    T.eq(r.code, 1, "control: it ran, and the call failed: " .. r.err)
    T.check(count(trace, "sys_socket%f[^%w]") > 0, "control: sockets are seen")
    local dns = false
    for _, f in ipairs(RESOLVER) do dns = dns or trace:find("(" .. f .. ")", 1, true) ~= nil end
    T.check(dns, "control: the resolver's files are seen")
  end } }
else
  io.stderr:write("B9: valgrind's syscall trace not run (" .. why .. "); checks 1 and 2 still ran\n")
end

observer:stop()
E.cleanup()
return T.done()
