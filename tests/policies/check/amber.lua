-- An enum constant that does not exist: chatapp.QualityRating.AMBER.
local chatapp = require "chatapp"
return chatapp.policy {
  name = "unknown-constant",
  filter = function(n)
    return n.quality_rating == chatapp.QualityRating.AMBER
  end,
}
