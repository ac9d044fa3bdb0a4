-- Reads n.previous without a nil check: fails on a number seen for the
-- first time (and in every run without --state).
local chatapp = require "chatapp"
return chatapp.policy {
  name = "previous-unchecked",
  filter = function(n)
    return n.previous.quality_rating ~= n.quality_rating
  end,
}
