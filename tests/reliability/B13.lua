-- ctest: timeout=200
-- B13: a 10-minute soak with random faults (10% of responses).
-- Criterion: RSS growth < 5%, fd count constant, no handle leaks
-- (valgrind or ASan clean).
--
-- How: tests/bench/soak.lua (its header says exactly what it does and
-- checks) for 60 s here, 10 minutes with `make soak` (figures in
-- docs/benchmarks.md): a watcher (--every 2s, --state) against the
-- emulator with fault rules hitting about 10% of the API's answers
-- (latency, 503, throttles, resets, truncation), 2 number changes a
-- second, a policy planning a webhook and an UpdatePhoneWebhook per
-- change, a SIGHUP reload every 10 s; then SIGTERM.  Checked: exit 0; no
-- sanitizer report on the watcher's stderr (the ASan pass of CI runs
-- this with an instrumented watcher, LeakSanitizer at its exit: that is
-- "ASan clean"); RSS, read between cycles, < 5% above its level after
-- warm-up (gcc build; printed only under ASan, whose quarantine keeps
-- freed memory); the non-socket descriptors identical at every reading
-- after warm-up and the sockets no more than during warm-up (the API
-- client's pool); the state file's size per kept row flat; every planned
-- action accounted for (outbox, sink deliveries, emulator log).
-- Loosened: 60 s in CI instead of 10 minutes (the CI budget); `make soak`
-- runs the criterion's 10 minutes.
--
-- First, the defect the soak found: a cycle whose only failure was an
-- action (a webhook answered 503, a write whose outcome is unknown) made
-- the watcher back off (2, 4, 8 ... s up to 15 min), and with actions
-- failing at a steady share the backoff fed itself (each late cycle
-- carried more actions, so it failed more surely): the soak's cycles
-- fell to one in 14 s within the first minute.  Failed actions wait in
-- the outbox for the next cycle; only failures of the API, a policy, the
-- configuration or the credentials back off now.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. arg[0]:match("^(.*)/") .. "/../bench/?.lua;"
  .. package.path
local T = require "testlib"
local E = require "e2e"
local soak = require "soak"

T.cases {
  { "a cycle whose only failure is an action does not back off", function()
    local emu = E.emulator()
    local pol = E.policy(([[
      return require("chatapp").policy {
        name = "down-pager",
        where = { phone_number = "8613800000001" },
        decide = function(n, plan)
          plan:webhook { url = %q, attempts = 1, json = { n = n.phone_number } }
        end,
      }
    ]]):format(emu.url .. "/_emulator/sink/down?status=503"))
    local p = E.start { "--endpoint", emu.url, "--limiter", "process", "--every", "1s", "--state",
                        E.tmpdir() .. "/state.db", "-v", pol }
    -- Backing off, cycle 6 would start 1 + 2 + 4 + 8 + 16 s after the first.
    local ran = p.wait_err("cycle 6 failed (EACTION", 12000)
    p.kill("TERM")
    T.eq(p.wait(20000), 0, "exit 0 on SIGTERM")
    T.check(ran, "6 cycles in 12 s, each failing on the webhook: " .. p.err():sub(-1500))
    T.check(not p.err():find("backing off", 1, true), "no backing off: " .. p.err():sub(-1500))
    local tries = 0
    for _, d in ipairs(emu:deliveries() or {}) do
      if d.path == "sink/down" then tries = tries + 1 end
    end
    T.check(tries >= 6, ("the webhook was tried by every cycle: %d times"):format(tries))
    emu:stop()
  end },
}

local t0 = os.time()
local rc = soak.run(60)
io.stderr:write(("B13: the soak took %d s\n"):format(os.time() - t0))
os.exit(rc)
