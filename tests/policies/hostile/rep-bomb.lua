-- expect: error
-- string.rep bombs: an empty string a quintillion times (a C loop that
-- never allocates), then a terabyte.
local chatapp = require "chatapp"
return chatapp.policy { name = "rep-bomb", filter = function()
  local e = (""):rep(1e18) .. ("").rep("", 1e18, "")
  return #e + #("x"):rep(1 << 40) > 0
end }
