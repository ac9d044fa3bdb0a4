-- quality-alert: connected numbers whose quality rating dropped to YELLOW
-- or RED.  Meta lowers a number's messaging tier when its quality stays
-- low, so these are the numbers to look at today.
--
--   chatapp-run --emulator scripts/policies/quality-alert.lua
local chatapp = require "chatapp"
local Q = chatapp.QualityRating

return chatapp.policy {
  name = "quality-alert",
  description = "Connected numbers with a YELLOW or RED quality rating",
  where = { status = chatapp.Status.CONNECTED },
  filter = function(n)
    return n.quality_rating == Q.YELLOW or n.quality_rating == Q.RED
  end,
}
