-- Watch mode end to end (chatapp-run --every) against chatapp-emulator:
-- SIGTERM mid-cycle, SIGHUP with a broken and a good policy, the lock,
-- overruns, /healthz and /metrics (docs/watch.md).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local prom = require "prom"

local chatapp = require "chatapp"
local core = chatapp.core
local emu = E.emulator()
local http = assert(core.http_client { timeout_ms = 5000, max_attempts = 1 })

local function watcher(args, env)
  local full = { "--endpoint", emu.url, "--limiter", "process" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  return E.start(full, env)
end

-- The status and body of a GET (the client keeps no body of a failing
-- status: its text is checked in tests/c/test_listen.c).
local function get(url)
  local res, err = http:batch { { url = url, method = "GET" } }
  if not res[1] then return err[1].http_status, tostring(err[1]) end
  return res[1].status, res[1].body
end

-- The URL the watcher serves on (it logs it).
local function served(p)
  if not E.wait_for(function() return p.err():find("serving /metrics", 1, true) end) then return nil end
  return p.err():match("(http://127%.0%.0%.1:%d+)")
end

local db_rows = E.db_rows

T.cases {
  { "SIGTERM mid-cycle: in-flight actions finish, the state is committed, exit 0", function()
    emu:reset()
    emu:control("DELETE", "deliveries")
    local state = E.tmpdir() .. "/state.db"
    local pol = E.policy(([[
      return require("chatapp").policy {
        name = "slow-pager",
        where = { new = true },
        decide = function(n, plan)
          plan:webhook { url = %q, json = { n = n.phone_number } }
        end,
      }
    ]]):format(emu.url .. "/_emulator/sink/slow?delay_ms=1500"))
    local p = watcher { "--every", "60s", "--state", state, pol }
    T.check(E.wait_for(function() return #(emu:deliveries() or {}) > 0 end, 15000), "webhooks in flight")
    p.kill("TERM")
    local rc = p.wait(20000)
    T.eq(rc, 0, "exit 0 on SIGTERM: " .. p.err())
    T.check(p.err():find("stopped by SIGTERM after 1 cycle", 1, true), "says it stopped: " .. p.err())
    T.check(not p.err():find("cycle 1 failed", 1, true), "a cycle cut short is not a failing one")
    local rows = db_rows(state, "SELECT status, count(*) AS n FROM outbox GROUP BY status")
    local by = {}
    for _, r in ipairs(rows) do by[r.status] = r.n end
    T.eq((by.done or 0) + (by.pending or 0), 7, "every action is done or still pending: "
      .. tostring(by.done) .. " done, " .. tostring(by.pending) .. " pending")
    T.check((by.done or 0) >= 1, "the in-flight ones finished")
    T.eq(#db_rows(state, "SELECT 1 FROM numbers"), 7, "the snapshots are committed")
  end },

  { "SIGHUP: a broken policy keeps the old one running; a good one replaces it", function()
    emu:reset()
    local dir = E.tmpdir()
    local pol = E.write(dir .. "/policy.lua", [[
      return require("chatapp").policy { name = "v", where = { phone_number = "8613800000001" },
        decide = function(n, plan) plan:log("version one") end }
    ]])
    local p = watcher({ "--every", "1s", "--state", dir .. "/state.db", "--output", "json", pol })
    T.check(E.wait_for(function() return p.out():find("version one", 1, true) end), "v1 runs")
    E.write(pol, "return require('chatapp').policy { name = 'v', where = { nonsense_field = 1 } }\n")
    p.kill("HUP")
    T.check(p.wait_err("SIGHUP: the policy files do not load", 10000), "the broken version is refused")
    T.check(p.err():find(pol .. ":1:", 1, true), "with file:line: " .. p.err())
    local before = select(2, p.out():gsub("version one", ""))
    T.check(E.wait_for(function() return select(2, p.out():gsub("version one", "")) > before end),
      "the old policy keeps running")
    E.write(pol, [[
      return require("chatapp").policy { name = "v", where = { phone_number = "8613800000001" },
        decide = function(n, plan) plan:log("version two") end }
    ]])
    p.kill("HUP")
    T.check(p.wait_err("SIGHUP: reloaded 1 policy file", 10000), "the good version is loaded")
    T.check(E.wait_for(function() return p.out():find("version two", 1, true) end), "and runs")
    p.kill("TERM")
    T.eq(p.wait(20000), 0, "exit 0")
  end },

  { "one watcher per state file and account: the second names the holder", function()
    emu:reset()
    local dir = E.tmpdir()
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    local first = watcher { "--every", "60s", "--state", dir .. "/state.db", pol }
    T.check(first.wait_err("cycle 1: ok", 15000), "the first watcher runs: " .. first.err())
    local second = watcher { "--every", "60s", "--state", dir .. "/state.db", pol }
    T.eq(second.wait(15000), 2, "the second refuses: exit 2")
    T.check(second.err():find("pid " .. first.pid, 1, true), "naming the holder's pid: " .. second.err())
    local other = watcher({ "--every", "60s", "--state", dir .. "/state.db", "--account", "another", pol })
    T.check(other.wait_err("cycle 1: ok", 15000), "another account may watch the same file: " .. other.err())
    for _, p in ipairs { first, other } do
      p.kill("TERM")
      T.eq(p.wait(20000), 0, "exit 0")
    end
    local again = watcher { "--every", "60s", "--state", dir .. "/state.db", pol }
    T.check(again.wait_err("cycle 1: ok", 15000), "the lock died with its holder")
    again.kill("INT")
    T.eq(again.wait(20000), 0, "exit 0 on SIGINT")
  end },

  { "a cycle that overruns is logged and the next starts at once", function()
    emu:reset()
    emu:fault { kind = "latency", ms = 1300, op = "QueryChatappPhoneNumbers" }
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    local p = watcher { "--every", "1s", "--state", E.tmpdir() .. "/state.db", "-v", pol }
    T.check(p.wait_err("longer than --every 1 s: the next starts now", 15000), "overrun logged: " .. p.err())
    T.check(p.wait_err("cycle 2: ok", 15000), "the next cycle ran")
    p.kill("TERM")
    T.eq(p.wait(20000), 0, "exit 0")
    emu:clear_faults()
  end },

  { "/healthz turns unhealthy when cycles fail; /metrics parses and has per-number gauges", function()
    emu:reset()
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    local p = watcher { "--every", "1s", "--listen", "127.0.0.1:0", "--healthz-max-age", "2s", "--state",
                        E.tmpdir() .. "/state.db", "--max-attempts", "1", pol }
    local url = served(p)
    T.check(url, "the watcher says where it serves: " .. p.err())
    if not url then p.kill("KILL"); return end
    T.check(p.wait_err("cycle 1: ok", 15000), "a first good cycle")
    local status, body = get(url .. "/healthz")
    T.eq(status, 200, "healthy: " .. tostring(body))
    status, body = get(url .. "/metrics")
    T.eq(status, 200, "/metrics")
    local parsed, perr = prom.parse(body or "")
    T.check(parsed, "Prometheus text: " .. tostring(perr))
    if parsed then
      local q = prom.find(parsed, "chatapp_number_quality_level", { number = "8613800000003" })[1]
      T.eq(q and q.value, 1, "a per-number gauge: 8613800000003 is RED")
      local ok = prom.find(parsed, "chatapp_watch_cycles_total", { result = "ok" })[1]
      T.check(ok and ok.value >= 1, "the watcher's own counters")
    end
    emu:fault { kind = "error", code = "InternalError", op = "QueryChatappPhoneNumbers" }
    T.check(E.wait_for(function() return (get(url .. "/healthz")) == 503 end, 15000),
      "unhealthy once the last good cycle is older than 2 s")
    T.check(p.err():find("failed (", 1, true) and p.err():find("InternalError", 1, true),
      "failing cycles are logged with why: " .. p.err())
    emu:clear_faults()
    T.check(E.wait_for(function() return (get(url .. "/healthz")) == 200 end, 30000), "healthy again")
    p.kill("TERM")
    T.eq(p.wait(20000), 0, "exit 0")
  end },

  { "failing cycles (credentials rejected, a policy error) are reported, the watcher goes on, backing off", function()
    emu:reset()
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    local p = watcher({ "--every", "1s", "--state", E.tmpdir() .. "/state.db", pol },
      { ALIBABA_CLOUD_ACCESS_KEY_SECRET = "not-the-secret" })
    T.check(p.wait_err("cycle 2 failed", 15000), "credentials rejected: reported, and the watcher goes on: "
      .. p.err())
    T.check(p.err():find("cycle 1 failed (ECREDENTIALS", 1, true) or p.err():find("cycle 1 failed (EAPI", 1, true),
      "the cycle says why")
    T.check(p.wait_err("backing off after 2 failing cycles: the next in 2 s", 15000), "backs off")
    T.check(p.wait_err("backing off after 3 failing cycles: the next in 4 s", 15000), "doubling")
    p.kill("TERM")
    T.eq(p.wait(20000), 0, "exit 0")

    local bad = E.policy [[ return require("chatapp").policy { name = "raises",
      filter = function(n) error("boom on " .. n.phone_number) end } ]]
    p = watcher { "--every", "1s", "--state", E.tmpdir() .. "/state.db", bad }
    T.check(p.wait_err("cycle 2 failed (EPOLICY", 15000), "a policy error: reported, the watcher goes on: "
      .. p.err())
    T.check(p.err():find("boom on", 1, true), "with the policy's error")
    p.kill("TERM")
    T.eq(p.wait(20000), 0, "exit 0")
  end },

  { "usage: --listen without --every, --every with --replay, a bad duration", function()
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    for _, args in ipairs {
      { "--listen", "9464", pol }, { "--every", "5x", pol }, { "--every", "0", pol },
      { "--every", "1m", "--replay", "/nonexistent", pol },
    } do
      local r = E.run(args)
      T.eq(r.code, 2, table.concat(args, " ") .. ": exit 2")
    end
  end },
}

emu:stop()
E.cleanup()
return T.done()
