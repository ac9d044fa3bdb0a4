-- Tests of tier-report.lua: chatapp-run test scripts/policies
-- (docs/testing-policies.md).
local t = require "chatapp.testing"

local policy = t.load("tier-report.lua")

t.case("counts the numbers of each tier, smallest tier first", function()
  local r = policy:run {
    numbers = {
      { phone_number = "8613800000001", messaging_limit_tier = "TIER_10K" },
      { phone_number = "8613800000002", messaging_limit_tier = "TIER_1K" },
      { phone_number = "8613800000003", messaging_limit_tier = "TIER_1K" },
      { phone_number = "8613800000004", messaging_limit_tier = "TIER_UNLIMITED" },
      { phone_number = "8613800000005" },
    },
  }
  r:expect_matched(5)
  r:expect_actions(1)
  r:expect_action { kind = "log", message = "own numbers: (none) 1, TIER_1K 2, TIER_10K 1, TIER_UNLIMITED 1" }
end)

t.case("one line per space, sorted by label", function()
  local r = policy:run {
    spaces = {
      { cust_space_id = "C2023B", label = "Globex", numbers = {
        { phone_number = "8613800000011", messaging_limit_tier = "TIER_250" } } },
      { cust_space_id = "C2023A", label = "Acme", numbers = {
        { phone_number = "8613800000012", messaging_limit_tier = "TIER_2K" },
        { phone_number = "8613800000013", messaging_limit_tier = "TIER_50" } } },
    },
  }
  r:expect_actions(2, { kind = "log" })
  t.equal(r.actions[1].message, "Acme: TIER_50 1, TIER_2K 1", "first line")
  t.equal(r.actions[2].message, "Globex: TIER_250 1", "second line")
end)

t.case("no numbers, no lines", function()
  local r = policy:run { numbers = {} }
  r:expect_actions(0)
end)
