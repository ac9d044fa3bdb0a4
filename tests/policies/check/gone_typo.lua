-- The gone hook (a number that disappeared) misspells a field.
local chatapp = require "chatapp"
return chatapp.policy {
  name = "gone-typo",
  where = { quality_rating = "GREEN" },
  gone = function(n, plan)
    plan:log("gone: " .. n.phone_numbr)
  end,
}
