-- number-health: numbers that cannot send as they should, with what to do
-- about each.  Posted to OPS_HOOK when it is set, listed otherwise.
--
--   chatapp-run --emulator --spaces scripts/spaces/sample-spaces.json scripts/policies/number-health.lua
local chatapp = require "chatapp"
local S = chatapp.Status
local hook = os.getenv("OPS_HOOK")

local advice = {
  [S.FLAGGED] = "Quality is low and the number is at risk: review recent templates and "
    .. "opt-in practice; Meta downgrades the tier if it stays FLAGGED for 7 days.",
  [S.RESTRICTED] = "The number hit its messaging limit or a policy block: it can only reply "
    .. "to customers. Check the WhatsApp Manager for the reason and wait for the window to reset.",
  [S.BANNED] = "Meta banned the number. Stop routing traffic to it and file an appeal in the "
    .. "WhatsApp Manager.",
  [S.DISCONNECTED] = "The number is disconnected from the WhatsApp Business API. Re-register it "
    .. "(ChatappPhoneNumberRegister) or check the account's payment method.",
}

return chatapp.policy {
  name = "number-health",
  description = "FLAGGED, RESTRICTED, BANNED or DISCONNECTED numbers, with what to do",
  where = { status = { S.FLAGGED, S.RESTRICTED, S.BANNED, S.DISCONNECTED } },
  decide = function(n, plan)
    local what = advice[n.status]
    if hook and hook ~= "" then
      plan:webhook {
        url = hook,
        json = {
          event = "number-health",
          number = n.phone_number,
          name = n.verified_name,
          status = n.status,
          quality = n.quality_rating,
          space = n.cust_space_id,
          space_label = n.space_label,
          advice = what,
        },
      }
    else
      plan:log("%s (%s): %s", n.phone_number, n.status, what)
    end
  end,
}
