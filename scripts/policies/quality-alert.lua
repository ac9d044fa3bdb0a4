-- quality-alert: connected numbers whose quality rating dropped to YELLOW
-- or RED.  Meta lowers a number's messaging tier when its quality stays
-- low, so these are the numbers to look at today.
--
-- With OPS_HOOK set (an https:// URL, or http:// to 127.0.0.1), each one is
-- posted there as JSON; without it, the report lists them.
--
--   chatapp-run --emulator scripts/policies/quality-alert.lua
--   OPS_HOOK=https://ops.example.com/hooks/cams chatapp-run --dry-run scripts/policies/quality-alert.lua
local chatapp = require "chatapp"
local Q = chatapp.QualityRating
local hook = os.getenv("OPS_HOOK")

return chatapp.policy {
  name = "quality-alert",
  description = "Connected numbers with a YELLOW or RED quality rating",
  where = { status = chatapp.Status.CONNECTED },
  filter = function(n)
    return n.quality_rating == Q.YELLOW or n.quality_rating == Q.RED
  end,
  decide = function(n, plan)
    if not hook or hook == "" then return end
    plan:webhook {
      url = hook,
      json = {
        event = "quality-alert",
        number = n.phone_number,
        name = n.verified_name,
        quality = n.quality_rating,
        tier = n.messaging_limit_tier,
        space = n.cust_space_id,
        space_label = n.space_label,
      },
    }
  end,
}
