-- Tests of number-health.lua: chatapp-run test scripts/policies
-- (docs/testing-policies.md).
local t = require "chatapp.testing"

local policy = t.load("number-health.lua")
local HOOK = "https://ops.example.com/hooks/cams"

local numbers = {
  { phone_number = "8613800000001", status = "FLAGGED", quality_rating = "RED", verified_name = "Acme" },
  { phone_number = "8613800000002", status = "BANNED" },
  { phone_number = "8613800000003", status = "CONNECTED", quality_rating = "GREEN" },
  { phone_number = "8613800000004", status = "DISCONNECTED" },
  { phone_number = "8613800000005", status = "RESTRICTED" },
}

t.case("posts each unhealthy number with its advice to OPS_HOOK", function()
  local r = policy:run { env = { OPS_HOOK = HOOK }, numbers = numbers }
  r:expect_matched { "8613800000001", "8613800000002", "8613800000004", "8613800000005" }
  r:expect_actions(4, { kind = "webhook", url = HOOK })
  r:expect_action { kind = "webhook", json = { event = "number-health", number = "8613800000001",
                                               status = "FLAGGED", quality = "RED", name = "Acme",
                                               advice = t.like("FLAGGED for 7 days") } }
  r:expect_action { kind = "webhook", json = { number = "8613800000002", advice = t.like("^Meta banned") } }
  r:expect_action { kind = "webhook", json = { number = "8613800000004", advice = t.like("Re%-register") } }
  r:expect_no_action { number = "8613800000003" }
end)

t.case("without OPS_HOOK, lists them in the report", function()
  local r = policy:run { numbers = numbers }
  r:expect_actions(4, { kind = "log" })
  r:expect_no_action { kind = "webhook" }
  r:expect_action { kind = "log", message = t.like("^8613800000005 %(RESTRICTED%): .*reply") }
end)

t.case("an empty OPS_HOOK is as good as none", function()
  local r = policy:run { env = { OPS_HOOK = "" }, numbers = numbers }
  r:expect_no_action { kind = "webhook" }
end)

t.case("healthy numbers: nothing to say", function()
  local r = policy:run { numbers = { { phone_number = "8613800000003", status = "CONNECTED" } } }
  r:expect_matched {}
  r:expect_actions(0)
end)
