-- A closed-set field compared with a literal it never equals: "red".
local chatapp = require "chatapp"
return chatapp.policy {
  name = "lowercase-literal",
  filter = function(n)
    -- quality_rating is GREEN, YELLOW, RED or UNKNOWN: "red" never matches
    return n.quality_rating == "red"
  end,
}
