-- More comparisons the lint reports: reversed, ~=, previous, an open enum.
local chatapp = require "chatapp"
return chatapp.policy {
  name = "lint-more",
  filter = function(n)
    if "Red" ~= n.quality_rating then return false end
    if n.previous and n.previous.quality_rating == 'amber' then return true end
    return n.status == "flagged" -- comparisons in comments are ignored: n.status == "x"
  end,
}
