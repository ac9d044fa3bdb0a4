-- Correct on a first run; the code that runs when a number changed has a
-- typo, and so has the gone hook: only the later run of --check reaches
-- them.
local chatapp = require "chatapp"
return chatapp.policy {
  name = "transition-only",
  filter = function(n)
    if n.previous == nil then return false end
    return n.previous.quality_rating ~= n.quality_rating
  end,
  decide = function(n, plan)
    plan:log(("%s: was %s"):format(n.phone_number, n.previous.qualty_rating))
  end,
}
