-- A typo in a field name, in filter: n.qualty (quality_rating meant).
local chatapp = require "chatapp"
return chatapp.policy {
  name = "typo-field",
  filter = function(n)
    return n.qualty == "RED"
  end,
  decide = function(n, plan) plan:log("red: " .. n.phone_number) end,
}
