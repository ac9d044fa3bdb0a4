-- chatapp-run --check runs the policies, not only loads them (issue 15):
-- each mistake of the issue fails the check with file:line and a
-- did-you-mean; a policy that fails only on a transition, on a gone
-- number or on one number fails it too; a good policy passes; --data FILE
-- gives the numbers; no credentials, no network.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local chatapp = require "chatapp"

local function policy(name) return E.path("tests/policies/check/" .. name .. ".lua") end
local DATA = E.path("tests/policies/check/data.json")
-- No credentials anywhere, and an endpoint nothing listens on.
local OFFLINE = { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
local function check(...)
  local args = { "--check", "--endpoint", "http://127.0.0.1:9", ... }
  return E.run(args, OFFLINE)
end

local function has(s, what, label)
  T.check(s:find(what, 1, true), ("%s: %q in:\n%s"):format(label or "output", what, s))
end

-- A mistake: exit 3, the file:line, the did-you-mean, the number when a
-- number was being decided.
local function fails(name, line, mean, number)
  local r = check(policy(name))
  T.eq(r.code, 3, name .. ": " .. r.err)
  has(r.err, ("tests/policies/check/%s.lua:%d:"):format(name, line), name)
  has(r.err, mean, name)
  if number then has(r.err, "on number " .. number, name) end
  T.check(r.out:find("FAILED", 1, true) or r.out == "", name .. ": " .. r.out)
  return r
end

T.cases {
  -- the issue's five mistakes
  { "n.qualty in filter", function()
    fails("qualty", 6, "did you mean 'quality_rating'?", "8613800000001")
  end },
  { "plan:page_oncall{}", function()
    local r = fails("page_oncall", 7, "did you mean plan:webhook?", "8613800000003")
    has(r.err, "plan methods: call, exec, log", "the list of methods")
  end },
  { "chatapp.QualityRating.AMBER", function()
    local r = fails("amber", 6, "did you mean chatapp.QualityRating.YELLOW?")
    has(r.err, "known: GREEN, YELLOW, RED, UNKNOWN", "the valid names")
  end },
  { "where = { status = \"FLAGED\" } is an error, not a warning", function()
    local r = fails("flaged", 6, "did you mean FLAGGED?")
    has(r.err, "chatapp.unknown_value", "how to expect a new value")
    T.check(not r.out:find("ok", 1, true), r.out)
  end },
  { "n.quality_rating == \"red\" (the lint)", function()
    fails("red_lowercase", 7, "did you mean \"RED\"")
  end },

  { "the lint: reversed, ~=, n.previous, an open enum's case, comments ignored", function()
    local r = check(policy("lint_more"))
    T.eq(r.code, 3, r.err)
    has(r.err, "lint_more.lua:6: n.quality_rating is compared with \"Red\"")
    has(r.err, "lint_more.lua:7: n.quality_rating is compared with \"amber\"")
    has(r.err, "did you mean \"YELLOW\"")
    has(r.err, "lint_more.lua:8: n.status is compared with \"flagged\"")
    has(r.err, "did you mean \"FLAGGED\"")
    T.check(not r.err:find("\"x\"", 1, true), "a comparison in a comment is no finding: " .. r.err)
    has(r.out, "FAILED, 3 errors")
  end },

  { "n.previous without a nil check fails (the first runs)", function()
    local r = fails("previous_nil", 7, "attempt to index a nil value (field 'previous')", "8613800000001")
    has(r.err, "a run without --state")
  end },
  { "a typo only the transition path reaches fails (the later run)", function()
    local r = fails("transition_only", 12, "did you mean 'quality_rating'?")
    has(r.err, "a later run")
  end },
  { "the gone hook runs, on a number gone since the previous run", function()
    local r = fails("gone_typo", 7, "did you mean 'phone_number'?")
    has(r.err, "a later run")
  end },
  { "a policy that raises for one number only is caught, with that number", function()
    local r = fails("some_numbers", 6, "boom on this one", "6591234570")
    T.check(select(2, r.err:gsub("boom on this one", "")) == 1, "said once: " .. r.err)
  end },

  { "a good policy passes: where, filter, decide, gone, finish; nothing carried out", function()
    local r = check(policy("good"))
    T.eq(r.code, 0, r.err)
    has(r.out, "good: ok (")
    has(r.out, "3 runs over 26 numbers")
    has(r.out, "checked against the built-in sample data")
    T.eq(r.err, "", "nothing on stderr")
  end },
  { "the example policies pass", function()
    local list = {}
    for _, n in ipairs { "quality-alert", "number-health", "tier-report", "webhook-drift" } do
      list[#list + 1] = E.path("scripts/policies/" .. n .. ".lua")
    end
    local r = check(table.unpack(list))
    T.eq(r.code, 0, r.err)
    has(r.out, "webhook-drift: ok")
  end },

  { "--check --data FILE checks against the user's numbers", function()
    local r = check(policy("data_only"))
    T.eq(r.code, 0, "fine on the built-in sample: " .. r.err)
    r = check("--data", DATA, policy("data_only"))
    T.eq(r.code, 3, r.err)
    has(r.err, "on number 15550000002", "the number only the file has")
    has(r.err, "data_only.lua:7:")
    has(r.out, "3 runs over 2 numbers")
    has(r.out, "checked against " .. DATA)
    r = check("--data", DATA, "--output", "json", policy("good"))
    T.eq(r.code, 0, r.err)
    local lines = E.json_lines(r.out)
    T.eq(lines[1].status, "ok", r.out)
    T.eq(lines[1].name, "good")
  end },
  { "--check --data: a missing or broken file is exit 2 naming it", function()
    local r = check("--data", E.path("tests/policies/check/no-such.json"), policy("good"))
    T.eq(r.code, 2, r.err)
    has(r.err, "no-such.json")
    local bad = E.write(E.tmpdir() .. "/bad.json", '{"spaces": [{"phone_numbers": []}]}')
    r = check("--data", bad, policy("good"))
    T.eq(r.code, 2, r.err)
    has(r.err, "cust_space_id")
  end },
  { "--data without --emulator or --check is still a usage error", function()
    local r = E.run({ "--data", DATA, policy("good") }, OFFLINE)
    T.eq(r.code, 2, r.err)
    has(r.err, "--data needs --emulator or --check")
  end },

  { "--check makes no API call: an emulator as --endpoint sees nothing", function()
    local emu = E.emulator()
    local r = E.run({ "--check", "--endpoint", emu.url, policy("good"), E.path("scripts/policies/webhook-drift.lua") })
    T.eq(r.code, 0, r.err)
    local lines = emu:log_lines()
    T.eq(#lines, 0, "requests the emulator logged")
    -- the log does record calls: a dry run makes one
    r = E.run({ "--dry-run", "--endpoint", emu.url, policy("good") })
    T.eq(r.code, 0, r.err)
    T.check(#emu:log_lines() > 0, "a dry run's call is logged")
    emu:stop()
  end },

  { "the warning about history without --state carries file:line", function()
    local emu = E.emulator()
    local p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "hist",
  where = { became = { quality_rating = "RED" } },
}
]])
    local r = E.run({ "--dry-run", "--endpoint", emu.url, p })
    emu:stop()
    T.eq(r.code, 0, r.err)
    has(r.err, "policy.lua:4: policy hist looks at the previous run")
  end },

  { "a plan method's unknown key is an error with the nearest key, not ignored", function()
    local p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "jsno", where = { quality_rating = "RED" },
  decide = function(n, plan)
    plan:webhook { url = "https://hooks.example.com/x", jsno = { number = n.phone_number } }
  end }
]])
    local r = check(p)
    T.eq(r.code, 3, r.err)
    has(r.err, "policy.lua:4: plan:webhook: unknown key jsno; did you mean json?")
    p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "exec-keys", where = { quality_rating = "RED" },
  decide = function(n, plan) plan:exec { argv = { "true" }, timeout = 5 } end }
]])
    r = check(p)
    T.eq(r.code, 3, r.err)
    has(r.err, "policy.lua:3: plan:exec: unknown key timeout; did you mean timeout_ms?")
  end },

  { "a where value the runtime does not know yet, on purpose", function()
    local p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "new-state",
  where = { status = chatapp.unknown_value "NEW_STATE",
            became = { quality_rating = { "RED", chatapp.unknown_value "PURPLE" } } } }
]])
    local r = check(p)
    T.eq(r.code, 0, r.err)
    T.eq(r.err, "", "no warning")
  end },
}

-- The Lua side of did-you-mean: one rule (chatapp.suggest).
T.cases {
  { "chatapp.suggest", function()
    T.eq(chatapp.suggest("FLAGED", chatapp.enums.Status.values), "FLAGGED")
    T.eq(chatapp.suggest("flagged", chatapp.enums.Status.values), "FLAGGED")
    T.eq(chatapp.suggest("qualty", chatapp.fields), "quality_rating")
    T.eq(chatapp.suggest("AMBER", chatapp.enums.QualityRating.values), "YELLOW")
    T.eq(chatapp.suggest("zzzzzzzz", chatapp.enums.QualityRating.values), nil)
    T.eq(require("chatapp.actions").suggest("webhok"), "webhook")
    T.eq(require("chatapp.actions").distance, chatapp.distance, "one distance")
  end },
  { "where keys, history keys and policy keys suggest", function()
    T.raises(function() chatapp.policy { name = "x", where = { stauts = "FLAGGED" } } end,
      "unknown field stauts; did you mean status?")
    T.raises(function() chatapp.policy { name = "x", where = { changed = "qualty_rating" } } end,
      "did you mean quality_rating?")
    T.raises(function() chatapp.policy { name = "x", fitler = function() end } end, "did you mean filter?")
    T.raises(function() chatapp.policy { name = "x", where = { quality_rating = "AMBER" } } end,
      "did you mean YELLOW?")
  end },
}

os.exit(T.done())
