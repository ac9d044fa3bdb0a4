-- The leader lease end to end (issue 16, docs/watch.md): watchers on
-- several "hosts" (processes) sharing one Redis state, against
-- chatapp-emulator and a redis-server of the test's own.
--   - two watchers: exactly one runs cycles, the other stands by naming
--     the holder; a one-shot run is refused (exit 2, the holder named);
--     SIGTERM releases the lease and the standby takes over at once;
--   - the leader killed with SIGKILL while it sends 200 webhooks: the
--     standby takes over within the lease's time (measured) and finishes
--     the outbox: every idempotency key delivered at least once;
--   - a leader stopped (SIGSTOP) past its lease while its cycle fetches:
--     the standby takes over; woken up (SIGCONT), the old one's state
--     writes are refused (FENCED), it says it lost the lease and stands
--     by; nothing it wrote after losing lands, no webhook of it goes out.
--   chatapp-run --lua e2e_lease.lua RUN EMULATOR
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local R = require "redis_server"

local chatapp = require "chatapp"
local core = chatapp.core

local NUMBERS = 200
local LEASE_S = 3
local SINK_DELAY_MS = 100 -- each webhook's answer: a cycle sends for ~1.5 s

-- 200 numbers in the caller's own space, all new to a fresh state.
local emu = E.emulator { "--data",
  E.fixture { count = NUMBERS, prefix = "86139", name = "Lease", label = "lease test" } }
local srv = R.start()

local pager = E.pager(("%s/_emulator/sink/pager?delay_ms=%d"):format(emu.url, SINK_DELAY_MS),
                      { attempts = 3 })
local quiet = E.policy [[ return require("chatapp").policy { name = "quiet" } ]]

local function watcher(args)
  local full = { "--endpoint", emu.url, "--limiter", "process", "--lease", LEASE_S .. "s", "-v" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return E.start(full)
end

local http = assert(core.http_client { timeout_ms = 5000, max_attempts = 1 })

-- The status and body of a GET to a watcher's --listen.
local function get(url)
  local res, err = http:batch { { url = url, method = "GET" } }
  if not res[1] then return err[1].http_status, tostring(err[1]) end
  return res[1].status, res[1].body
end

local function sink()
  local list = {}
  for _, d in ipairs(emu:deliveries() or {}) do
    if d.path == "sink/pager" then list[#list + 1] = d end
  end
  return list
end

local function clear_sink()
  local _, status = emu:control("DELETE", "deliveries")
  assert(status == 200, "DELETE /_emulator/deliveries")
end

local function count(pattern, text)
  return select(2, text:gsub(pattern, ""))
end

-- Every key and value of a database but the lease's own two (a digest of
-- the state: unchanged means nothing was written).
local function digest(db)
  local c = assert(core.redis_connect(srv.url .. "/" .. db))
  local list = assert(c:call("KEYS", "*"))
  table.sort(list)
  local parts = {}
  for _, k in ipairs(list) do
    if not k:find("^chatapp:lease:") and not k:find("^chatapp:fence:") then
      parts[#parts + 1] = k .. "\0" .. tostring(assert(c:call("DUMP", k)))
    end
  end
  c:close()
  return core.sha256_hex(table.concat(parts, "\0\0")), #parts
end

local function pending(db)
  return srv:cli("-n", tostring(db), "ZCARD", "chatapp:state:{" .. E.KEY_ID .. "}:outbox:pending")
end

-- The reference: one run, on a database of its own.  Its keys and bodies
-- are what every leader must deliver (ids are deterministic).
local expected, nexpected = {}, 0
do
  clear_sink()
  local r = E.run { "--endpoint", emu.url, "--state", srv.url .. "/1", pager }
  T.eq(r.code, 0, "the reference run: " .. r.err)
  for _, d in ipairs(sink()) do
    if not expected[d.idempotency_key] then nexpected = nexpected + 1 end
    expected[d.idempotency_key] = d.body
  end
  T.eq(nexpected, NUMBERS, "the reference run delivers 200 distinct keys")
  T.eq(srv:cli("-n", "1", "GET", "chatapp:lease:{" .. E.KEY_ID .. "}"), "", "a run releases its lease")
  T.eq(srv:cli("-n", "1", "GET", "chatapp:fence:{" .. E.KEY_ID .. "}"), "1", "and took it once")
end

T.cases {
  { "--lease: a duration of 3s to 1h, with a Redis state only", function()
    local r = E.run { "--endpoint", emu.url, "--lease", "10s", "--state", E.tmpdir() .. "/s.db", quiet }
    T.eq(r.code, 2, "--lease with a state file: exit 2")
    T.check(r.err:find("goes with --state redis://", 1, true), "says why: " .. r.err)
    r = E.run { "--endpoint", emu.url, "--lease", "2s", "--state", srv.url .. "/2", quiet }
    T.eq(r.code, 2, "--lease 2s: exit 2")
    T.check(r.err:find("from 3s to 1h", 1, true), "says the range: " .. r.err)
  end },

  { "a one-shot run holds the lease during the run, with its token on every write", function()
    local url = srv.url .. "/5"
    local lease_key = "chatapp:lease:{" .. E.KEY_ID .. "}"
    emu:fault { kind = "latency", ms = 2000, op = "QueryChatappPhoneNumbers" }
    local calls = emu:stats().requests
    local p = E.start { "--endpoint", emu.url, "--limiter", "process", "--state", url, quiet }
    T.check(E.wait_for(function() return emu:stats().requests > calls end, 15000), "the run fetches")
    local held = srv:cli("-n", "5", "GET", lease_key)
    T.check(held:find("^%d+ %S+ " .. p.pid .. "$"), "the run holds the lease: " .. held)
    local r = E.run { "--endpoint", emu.url, "--state", url, quiet }
    T.eq(r.code, 2, "a second run meanwhile: exit 2")
    T.check(r.err:find(("pid %d holds the lease of account %s"):format(p.pid, E.KEY_ID), 1, true),
      "naming the first: " .. r.err)
    T.eq(p.wait(20000), 0, "the first run ends well: " .. p.err())
    T.eq(srv:cli("-n", "5", "GET", lease_key), "", "and releases the lease")

    -- another takes the lease over while a run fetches: its writes are refused
    local before = digest(5)
    calls = emu:stats().requests
    p = E.start { "--endpoint", emu.url, "--limiter", "process", "--state", url, quiet }
    T.check(E.wait_for(function() return emu:stats().requests > calls end, 15000), "the run fetches")
    T.eq(srv:cli("-n", "5", "SET", lease_key, "99 elsewhere 4242"), "OK", "another holder")
    srv:cli("-n", "5", "INCR", "chatapp:fence:{" .. E.KEY_ID .. "}")
    local rc = p.wait(20000)
    T.check(rc ~= 0 and rc ~= nil, "the run fails: " .. tostring(rc))
    T.check(p.err():find("no longer holds the lease", 1, true) or p.err():find("FENCED", 1, true),
      "its writes are refused (FENCED): " .. p.err())
    T.check(p.err():find("the leader lease was lost during the run: elsewhere pid 4242 took the lease", 1, true),
      "it says it lost the lease, and to whom: " .. p.err())
    T.eq((digest(5)), before, "nothing it wrote landed")
    T.eq(srv:cli("-n", "5", "GET", lease_key), "99 elsewhere 4242", "the other's lease is left alone")
    emu:clear_faults()
  end },

  { "two watchers: one runs cycles, one stands by; a one-shot run is refused; SIGTERM hands over", function()
    local url = srv.url .. "/2"
    local a = watcher { "--every", "1s", "--state", url, quiet }
    T.check(a.wait_err("took the lease of account " .. E.KEY_ID, 15000), "the first takes the lease: " .. a.err())
    local b = watcher { "--every", "1s", "--state", url, "--listen", "127.0.0.1:0", "--healthz-max-age", "3s", quiet }
    T.check(b.wait_err("standby: ", 15000), "the second stands by: " .. b.err())
    local listen = b.err():match("serving /metrics and /healthz on (http://127%.0%.0%.1:%d+)")
    T.check(listen, "the standby serves /metrics: " .. b.err())
    if listen then
      E.sleep_ms(4000) -- past --healthz-max-age: a standby that reaches Redis stays healthy
      local status, body = get(listen .. "/healthz")
      T.eq(status, 200, "the standby is healthy: " .. tostring(body))
      status, body = get(listen .. "/metrics")
      T.check(status == 200 and body:find("\nchatapp_watch_leader 0\n", 1, true), "chatapp_watch_leader 0: " .. tostring(body))
    end
    T.check(b.err():find(("pid %d holds the lease of account %s at %s/2"):format(a.pid, E.KEY_ID, srv.url), 1, true),
      "naming the holder: " .. b.err())
    T.check(a.wait_err("cycle 3: ok", 15000), "the leader runs cycles: " .. a.err())
    T.eq(count("cycle %d+", b.err()), 0, "the standby runs none: " .. b.err())
    T.eq(count("standby: ", b.err()), 1, "and says so once")

    -- a one-shot run of the same state: refused, the holder named, nothing written
    local fence = srv:cli("-n", "2", "GET", "chatapp:fence:{" .. E.KEY_ID .. "}")
    local calls = emu:stats().requests
    local r = E.run { "--endpoint", emu.url, "--state", url, "--output", "json", quiet }
    T.eq(r.code, 2, "a one-shot run while a watcher leads: exit 2")
    T.check(r.err:find(("pid %d holds the lease of account %s at %s/2; a watcher runs there")
      :format(a.pid, E.KEY_ID, srv.url), 1, true), "naming the holder: " .. r.err)
    T.check(r.err:find("run this there, or stop it", 1, true), "and what to do: " .. r.err)
    T.check(r.out:find('"type":"summary"', 1, true) and r.out:find('"status":"config"', 1, true),
      "its JSON summary says config: " .. r.out)
    T.eq(emu:stats().requests, calls, "no API call")
    T.eq(srv:cli("-n", "2", "GET", "chatapp:fence:{" .. E.KEY_ID .. "}"), fence, "the fence did not move")
    -- a dry run writes nothing: it needs no lease
    r = E.run { "--endpoint", emu.url, "--state", url, "--dry-run", quiet }
    T.eq(r.code, 0, "a dry run is not refused: " .. r.err)

    -- SIGTERM: the leader releases, the standby takes over at once
    local t0 = core.monotonic()
    a.kill("TERM")
    T.eq(a.wait(20000), 0, "the leader exits 0 on SIGTERM: " .. a.err())
    T.check(b.wait_err("took over the lease of account " .. E.KEY_ID, 10000), "the standby takes over: " .. b.err())
    local took = core.monotonic() - t0
    io.stderr:write(("takeover after SIGTERM: %.2f s\n"):format(took))
    -- (the standby tries every third of the lease; the leader first ends
    -- its sleep, in slices of 0.5 s)
    T.check(took < LEASE_S / 3 + 1, ("at its next try, not at the lease's end (%.2f s)"):format(took))
    T.check(b.wait_err("cycle 1: ok", 15000), "and runs cycles: " .. b.err())
    if listen then
      local status, body = get(listen .. "/metrics")
      T.check(status == 200 and body:find("\nchatapp_watch_leader 1\n", 1, true), "chatapp_watch_leader 1: " .. tostring(body))
    end
    b.kill("TERM")
    T.eq(b.wait(20000), 0, "exit 0")
    T.eq(srv:cli("-n", "2", "GET", "chatapp:lease:{" .. E.KEY_ID .. "}"), "", "no lease left behind")
  end },

  { "a run that loses the lease while it sends stops sending: the new holder has the rest", function()
    local url = srv.url .. "/6"
    local lease_key = "chatapp:lease:{" .. E.KEY_ID .. "}"
    clear_sink()
    local p = E.start { "--endpoint", emu.url, "--limiter", "process", "--state", url, pager }
    T.check(E.wait_for(function() return #sink() >= 1 end, 20000), "the run is sending its webhooks")
    T.eq(srv:cli("-n", "6", "SET", lease_key, "99 elsewhere 4242"), "OK", "another holder")
    srv:cli("-n", "6", "INCR", "chatapp:fence:{" .. E.KEY_ID .. "}")
    local rc = p.wait(30000)
    T.check(rc ~= 0 and rc ~= nil, "the run fails: " .. tostring(rc))
    local sent = #sink()
    -- The slice in flight when the lease went finishes (16 at once), and
    -- the one whose outcomes could not be recorded; then nothing.
    T.check(sent <= 2 * 16, ("it stopped sending (%d of %d sent)"):format(sent, NUMBERS))
    T.check(p.out():find("this instance lost the lease", 1, true) or p.err():find("this instance lost the lease", 1, true),
      "the report says why the rest was not sent: " .. p.out():sub(1, 600))
    T.check(tonumber(pending(6)) >= NUMBERS - sent, "the rest is pending for the new holder: " .. pending(6))
  end },

  { "the leader killed with SIGKILL mid-run: the standby takes over within the lease; no action lost", function()
    local url = srv.url .. "/3"
    clear_sink()
    local a = watcher { "--every", "60s", "--state", url, pager }
    T.check(a.wait_err("took the lease", 15000), "the first leads: " .. a.err())
    local b = watcher { "--every", "60s", "--state", url, pager }
    T.check(b.wait_err("standby: ", 15000), "the second stands by: " .. b.err())
    T.check(E.wait_for(function() return #sink() >= 20 end, 20000), "the leader is sending its webhooks")
    a.kill("KILL")
    local t0 = core.monotonic()
    local sent_by_a = #sink()
    T.check(sent_by_a < NUMBERS, ("killed mid-run (%d of %d sent)"):format(sent_by_a, NUMBERS))
    T.check(b.wait_err("took over the lease", (LEASE_S + 5) * 1000), "the standby takes over: " .. b.err())
    local took = core.monotonic() - t0
    io.stderr:write(("takeover after SIGKILL: %.2f s (lease %d s)\n"):format(took, LEASE_S))
    T.check(took <= LEASE_S + 0.5, ("within the lease's time: %.2f s"):format(took))
    T.check(b.wait_err("cycle 1: ok", 30000), "its first cycle finishes: " .. b.err())
    local per_key = {}
    for _, d in ipairs(sink()) do
      local k = d.idempotency_key
      T.check(expected[k] ~= nil, "a delivery with an unknown key " .. tostring(k))
      T.check(expected[k] == nil or expected[k] == d.body, "key " .. tostring(k) .. " with another body")
      per_key[k] = (per_key[k] or 0) + 1
    end
    local missing, dups = 0, 0
    for k in pairs(expected) do
      if not per_key[k] then missing = missing + 1 elseif per_key[k] > 1 then dups = dups + 1 end
    end
    T.eq(missing, 0, "every idempotency key delivered at least once")
    io.stderr:write(("%d keys delivered twice (pending at the kill)\n"):format(dups))
    T.check(dups <= 2 * 16, "duplicates only of what was in flight at the kill")
    T.eq(pending(3), "0", "no pending outbox entry left")
    b.kill("TERM")
    T.eq(b.wait(20000), 0, "exit 0")
  end },

  { "a stalled leader (SIGSTOP past its lease) cannot write once it wakes up: FENCED, standby", function()
    local url = srv.url .. "/4"
    clear_sink()
    emu:fault { kind = "latency", ms = 2500, op = "QueryChatappPhoneNumbers" }
    local calls = emu:stats().requests
    local a = watcher { "--every", "60s", "--state", url, pager }
    T.check(a.wait_err("took the lease", 15000), "the first leads: " .. a.err())
    T.check(E.wait_for(function() return emu:stats().requests > calls end, 15000), "the leader fetches")
    a.kill("STOP") -- its fetch is held by the emulator: stopped mid-cycle
    local b = watcher { "--every", "60s", "--state", url, pager }
    T.check(b.wait_err("standby: ", 15000), "the second stands by: " .. b.err())
    T.check(b.wait_err("took over the lease", (LEASE_S + 5) * 1000), "the standby takes over: " .. b.err())
    T.check(b.wait_err("cycle 1: ok", 30000), "and runs its cycle: " .. b.err())
    T.eq(#sink(), NUMBERS, "the new leader sent the webhooks")
    emu:clear_faults()
    local before, nkeys = digest(4)
    T.check(nkeys > 0, "the new leader wrote the state")
    local fence = srv:cli("-n", "4", "GET", "chatapp:fence:{" .. E.KEY_ID .. "}")

    a.kill("CONT")
    T.check(a.wait_err("lost the lease", 20000), "the old leader says it lost the lease: " .. a.err())
    T.check(a.wait_err("standby: ", 10000), "and stands by: " .. a.err())
    T.check(a.err():find(("pid %d holds the lease"):format(b.pid), 1, true), "naming the new leader: " .. a.err())
    T.check(a.err():find("no longer holds the lease", 1, true) or a.err():find("FENCED", 1, true),
      "its state write was refused (FENCED): " .. a.err())
    T.check(a.err():find("cycle 1 failed", 1, true), "its cycle failed: " .. a.err())
    T.eq(count("cycle 2", a.err()), 0, "and no new cycle started: " .. a.err())
    T.eq((digest(4)), before, "nothing it wrote after losing the lease landed")
    T.eq(#sink(), NUMBERS, "no webhook of it went out")
    T.eq(srv:cli("-n", "4", "GET", "chatapp:fence:{" .. E.KEY_ID .. "}"), fence, "the new leader still holds it")
    T.check(E.alive(b.pid) and not b.err():find("lost the lease", 1, true), "and leads on: " .. b.err())
    for _, p in ipairs { a, b } do
      p.kill("TERM")
      T.eq(p.wait(20000), 0, "exit 0: " .. p.err())
    end
  end },
}

emu:stop()
srv:stop()
R.cleanup()
E.cleanup()
return T.done()
