-- Fine on the built-in sample; fails on a number that only the user's
-- --data file has (tests/policies/check/data.json: a tier with no limit).
local chatapp = require "chatapp"
return chatapp.policy {
  name = "data-only",
  filter = function(n)
    return n.messaging_limit < 1000 -- nil for a tier chatapp-run cannot read
  end,
}
