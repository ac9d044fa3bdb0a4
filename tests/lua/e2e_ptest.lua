-- chatapp-run test, end to end: the harness itself (docs/testing-policies.md).
-- Passing tests print "ok" lines and exit 0; a failing expectation is
-- reported at the test's file:line with what was planned, exit 1; --output
-- json is JSON Lines that parse; a test file with a syntax error, a policy
-- that raises, a fixture with a misspelt field are reported; usage errors
-- exit 2.  Offline: no credentials in the environment, and an emulator
-- stands by as a witness that nothing (no API call, no webhook) reaches it
-- although the tests point their webhooks at it.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local emu = E.emulator()
local SINK = emu.url .. "/_emulator/sink/ops"
local QUALITY = E.path("scripts/policies/quality-alert.lua")
local NO_CREDENTIALS = { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false,
                         -- the process's own OPS_HOOK: never what a policy under test sees
                         OPS_HOOK = "https://process-env.example.com/must-not-be-seen" }

local function ptest(args, env)
  local list = { "test" }
  for _, a in ipairs(args) do list[#list + 1] = a end
  local vars = {}
  for k, v in pairs(NO_CREDENTIALS) do vars[k] = v end
  for k, v in pairs(env or {}) do vars[k] = v end
  return E.run(list, vars, { no_limiter = true })
end

local dir = E.tmpdir()
local function file(name, text) return E.write(dir .. "/" .. name, text) end

file("raises.lua", [[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "raises",
  filter = function(n)
    if n.phone_number == "2" then error("boom on two") end
    return true
  end,
}
]])
file("secret.lua", [[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "secret",
  decide = function(n, plan) plan:log("%s", tostring(os.getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET"))) end,
}
]])
file("history.lua", [[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "history",
  where = { became = { quality_rating = "RED" } },
  decide = function(n, plan)
    plan:log("%s: %s -> %s since %d", n.phone_number, n.previous and n.previous.quality_rating or "new",
      n.quality_rating, n:since("quality_rating"))
  end,
  gone = function(n, plan) plan:log("%s is gone", n.phone_number) end,
}
]])

local PASS = file("pass_test.lua", ([[
local t = require "chatapp.testing"
local quality = t.load(%q)
t.case("webhook to the sink", function()
  local r = quality:run {
    env = { OPS_HOOK = %q },
    numbers = { { phone_number = "8613800000001", quality_rating = "RED", status = "CONNECTED" } },
  }
  r:expect_matched { "8613800000001" }
  r:expect_actions(1)
  r:expect_action { kind = "webhook", url = %q, json = { event = "quality-alert", quality = "RED" } }
end)
t.case("the process environment is not the policy's", function()
  local r = quality:run { numbers = { { PhoneNumber = "1", QualityRating = "RED", Status = "CONNECTED" } } }
  r:expect_matched { "1" }
  r:expect_no_action { kind = "webhook" }
end)
t.case("a policy error, expected", function()
  local r = t.load("raises.lua"):run { expect_errors = true, numbers = { { phone_number = "1" }, { phone_number = "2" } } }
  r:expect_error("boom on two", "2")
  r:expect_matched { "1" }
end)
t.case("credentials stay out of reach", function()
  local r = t.load("secret.lua"):run { expect_errors = true, env = { ALIBABA_CLOUD_ACCESS_KEY_SECRET = "x" },
                                       numbers = { { phone_number = "1" } } }
  r:expect_error("policies cannot read credentials")
end)
t.case("history: transitions, new and gone numbers", function()
  local r = t.load("history.lua"):run {
    now = 1800000000, previous_at = 1799990000,
    numbers = { { phone_number = "1", quality_rating = "RED" }, { phone_number = "2", quality_rating = "RED" },
                { phone_number = "4", quality_rating = "RED" } },
    previous = { { phone_number = "1", quality_rating = "GREEN" }, { phone_number = "2", quality_rating = "RED" },
                 { phone_number = "3", quality_rating = "GREEN" } },
  }
  r:expect_matched { "1", "4" }
  r:expect_action { kind = "log", message = "1: GREEN -> RED since 1800000000" }
  r:expect_action { kind = "log", message = "4: new -> RED since 1800000000" }
  r:expect_action { kind = "log", message = "3 is gone" }
  r:expect_actions(3)
  t.equal(#r.transitions, 3, "transitions (1's quality, 4 new, 3 gone)")
end)
]]):format(QUALITY, SINK, SINK))

-- Line numbers below are those of the expectations that fail.
local FAIL = file("fail_test.lua", ([[
local t = require "chatapp.testing"
local quality = t.load(%q)
t.case("passes", function()
  quality:run { numbers = {} }:expect_actions(0)
end)
t.case("wrong summary", function()
  local r = quality:run { env = { OPS_HOOK = "https://pager.example/x" },
                          numbers = { { phone_number = "8613800000001", quality_rating = "RED", status = "CONNECTED" } } }
  r:expect_action { kind = "webhook", url = "https://pager.example/x", json = { summary = "x" } }
end)
t.case("the policy raises", function()
  t.load("raises.lua"):run { numbers = { { phone_number = "2" } } }
end)
t.case("a misspelt field", function()
  quality:run { numbers = { { phone_number = "1", qualty_rating = "RED" } } }
end)
t.case("wrong matches", function()
  quality:run { numbers = { { phone_number = "7", quality_rating = "RED", status = "CONNECTED" } } }
    :expect_matched { "8" }
end)
]]):format(QUALITY))

local SYNTAX = file("syntax_test.lua", [[
local t = require "chatapp.testing"
t.case("never runs", function()
  local x = = 1
end)
]])

local function has(s, text, what)
  return T.check(s:find(text, 1, true), (what or "output") .. " holds " .. text .. ":\n" .. s)
end

T.cases {
  { "passing tests: ok lines, a summary, exit 0", function()
    local r = ptest { PASS }
    T.eq(r.code, 0, r.out .. r.err)
    has(r.out, "ok   webhook to the sink (" .. PASS .. ":3)")
    has(r.out, "ok   history: transitions, new and gone numbers (" .. PASS .. ":27)")
    has(r.out, "ok: 5 passed, 0 failed (1 file)")
  end },

  { "a failing expectation: FAIL at the test's file:line, what was planned, exit 1", function()
    local r = ptest { FAIL }
    T.eq(r.code, 1, r.out .. r.err)
    has(r.out, "ok   passes (" .. FAIL .. ":3)")
    has(r.out, "FAIL wrong summary (" .. FAIL .. ":6)")
    has(r.out, FAIL .. ':9: expected an action { kind = "webhook", json = { summary = "x" }, '
      .. 'url = "https://pager.example/x" }')
    has(r.out, "planned (1):")
    has(r.out, 'webhook POST https://pager.example/x for 8613800000001 { event = "quality-alert"')
    -- a policy error fails the case at the run, naming the number and the policy's line
    has(r.out, FAIL .. ":12: the policy raised an error on number 2: " .. dir .. "/raises.lua:5: boom on two")
    has(r.out, "FAIL a misspelt field")
    has(r.out, FAIL .. ":15: numbers[1]: unknown field qualty_rating; did you mean 'quality_rating'?")
    has(r.out, FAIL .. ":18: expected matched: 8; not matched: 8; matched but not expected: 7")
    has(r.out, "FAILED: 1 passed, 4 failed (1 file)")
  end },

  { "a test file with a syntax error is reported, the others still run", function()
    local r = ptest { SYNTAX, PASS }
    T.eq(r.code, 1, r.out .. r.err)
    has(r.out, "FAIL " .. SYNTAX)
    has(r.out, SYNTAX .. ":3:")
    has(r.out, "FAILED: 5 passed, 1 failed (2 files)")
  end },

  { "--output json: JSON Lines, one per test, and a summary", function()
    local r = ptest { "--output", "json", dir }
    T.eq(r.code, 1, r.err)
    local all, by = E.json_lines(r.out)
    T.eq(#by.summary, 1, "one summary")
    T.eq(all[#all].type, "summary", "the summary comes last")
    local s = by.summary[1]
    T.eq(s.status, "fail")
    T.eq(s.passed, 6)
    T.eq(s.failed, 5) -- 4 failed cases and the syntax error
    T.eq(s.files, 3)
    T.eq(#by.file, 1, "the file that did not load")
    T.eq(by.file[1].file, SYNTAX)
    local wrong
    for _, t in ipairs(by.test) do if t.name == "wrong summary" then wrong = t end end
    T.check(wrong, "the failing test is listed")
    if wrong then
      T.eq(wrong.status, "fail")
      T.eq(wrong.file, FAIL)
      T.eq(wrong.line, 6)
      T.eq(wrong.where, FAIL .. ":9")
      T.check(wrong.message:find("expected an action", 1, true), wrong.message)
    end
    r = ptest { "--output=json", PASS }
    T.eq(r.code, 0, r.err)
    all = E.json_lines(r.out)
    T.eq(#all, 6, "5 tests and the summary")
  end },

  { "offline: nothing reached the emulator the tests pointed at", function()
    local st = emu:stats()
    T.eq(st.requests, 0, "no API call")
    T.eq(#emu:deliveries(), 0, "no webhook delivered")
  end },

  { "usage errors exit 2", function()
    local r = ptest { "--outptu", "json" }
    T.eq(r.code, 2)
    has(r.err, "unknown option '--outptu'; did you mean '--output'?", "stderr")
    has(r.err, "chatapp-run test --help", "stderr")
    r = ptest { "--output", "yaml", PASS }
    T.eq(r.code, 2)
    r = ptest { E.tmpdir() }
    T.eq(r.code, 2)
    has(r.err, "no test files (*_test.lua)", "stderr")
    r = ptest { dir .. "/missing_test.lua" }
    T.eq(r.code, 2)
    has(r.err, "no test file " .. dir .. "/missing_test.lua", "stderr")
    r = ptest { "--help" }
    T.eq(r.code, 0)
    has(r.out, "Usage: chatapp-run test")
  end },

  { "the example policies' tests pass", function()
    local r = ptest { E.path("scripts/policies") }
    T.eq(r.code, 0, r.out .. r.err)
    T.check(not r.out:find("FAIL", 1, true), r.out)
  end },
}

emu:stop()
E.cleanup()
return T.done()
