-- A plan method that does not exist: plan:page_oncall{}.
local chatapp = require "chatapp"
return chatapp.policy {
  name = "unknown-method",
  where = { quality_rating = "RED" },
  decide = function(n, plan)
    plan:page_oncall { number = n.phone_number }
  end,
}
