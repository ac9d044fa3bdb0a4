-- Tests of webhook-drift.lua: chatapp-run test scripts/policies
-- (docs/testing-policies.md).
local t = require "chatapp.testing"

local policy = t.load("webhook-drift.lua")
local BASE = "https://hooks.example.net/cams"

local function space(numbers)
  return { { cust_space_id = "C2023A", label = "Acme", numbers = numbers } }
end

t.case("puts a drifted inbound URL back, and only that one", function()
  local r = policy:run {
    env = { HOOK_BASE = BASE },
    spaces = space {
      { phone_number = "8613800000001", status = "CONNECTED",
        up_callback_url = "https://old.example.net/inbound", status_callback_url = BASE .. "/C2023A/status" },
      { phone_number = "8613800000002", status = "CONNECTED",
        up_callback_url = BASE .. "/C2023A/inbound", status_callback_url = BASE .. "/C2023A/status" },
    },
  }
  r:expect_matched { "8613800000001" }
  r:expect_actions(1)
  r:expect_action { kind = "call", operation = "UpdatePhoneWebhook", number = "8613800000001",
                    params = { UpCallbackUrl = BASE .. "/C2023A/inbound", HttpFlag = "Y" } }
  r:expect_no_action { params = { StatusCallbackUrl = t.like(".") } }
end)

t.case("the default base is the emulator's sample", function()
  local r = policy:run {
    spaces = space { { phone_number = "8613800000003", status = "CONNECTED" } },
  }
  r:expect_action { kind = "call", params = {
    UpCallbackUrl = "https://hooks.example.com/cams/C2023A/inbound",
    StatusCallbackUrl = "https://hooks.example.com/cams/C2023A/status" } }
end)

t.case("leaves deleted numbers and numbers of no space alone", function()
  local r = policy:run {
    spaces = space { { phone_number = "8613800000004", status = "DELETED" } },
  }
  r:expect_actions(0)
  r = policy:run { numbers = { { phone_number = "8613800000005", status = "CONNECTED" } } }
  r:expect_matched {}
  r:expect_actions(0)
end)
