-- Tests of quality-alert.lua: chatapp-run test scripts/policies
-- (docs/testing-policies.md).
local t = require "chatapp.testing"

local policy = t.load("quality-alert.lua")
local HOOK = "https://ops.example.com/hooks/cams"

t.case("posts a RED and a YELLOW connected number to OPS_HOOK", function()
  local r = policy:run {
    env = { OPS_HOOK = HOOK },
    numbers = {
      { phone_number = "8613800000001", quality_rating = "RED", status = "CONNECTED",
        verified_name = "Acme Support", messaging_limit_tier = "TIER_1K" },
      { PhoneNumber = "8613800000002", QualityRating = "YELLOW", Status = "CONNECTED" },
      { PhoneNumber = "8613800000003", QualityRating = "GREEN", Status = "CONNECTED" },
    },
  }
  r:expect_matched { "8613800000001", "8613800000002" }
  r:expect_actions(2)
  r:expect_action { kind = "webhook", method = "POST", url = HOOK, number = "8613800000001",
                    json = { event = "quality-alert", quality = "RED", name = "Acme Support", tier = "TIER_1K" } }
  r:expect_action { kind = "webhook", json = { number = "8613800000002", quality = "YELLOW" } }
  r:expect_no_action { number = "8613800000003" }
end)

t.case("leaves numbers that are not connected alone", function()
  local r = policy:run {
    env = { OPS_HOOK = HOOK },
    numbers = {
      { phone_number = "8613800000004", quality_rating = "RED", status = "FLAGGED" },
      { phone_number = "8613800000005", quality_rating = "RED", status = "OFFLINE" },
    },
  }
  r:expect_matched {}
  r:expect_no_action()
end)

t.case("without OPS_HOOK, matches but plans nothing", function()
  local r = policy:run {
    numbers = { { phone_number = "8613800000001", quality_rating = "RED", status = "CONNECTED" } },
  }
  r:expect_matched { "8613800000001" }
  r:expect_actions(0)
end)

t.case("posts the space of an ISV sub-customer's number", function()
  local r = policy:run {
    env = { OPS_HOOK = HOOK },
    spaces = {
      { cust_space_id = "C2023A", label = "Acme", numbers = {
        { phone_number = "8613800000006", quality_rating = "YELLOW", status = "CONNECTED" } } },
      { cust_space_id = "C2023B", label = "Globex", numbers = {
        { phone_number = "8613800000007", quality_rating = "GREEN", status = "CONNECTED" } } },
    },
  }
  r:expect_matched { "8613800000006" }
  r:expect_action { kind = "webhook", space = "C2023A", json = { space = "C2023A", space_label = "Acme" } }
end)
