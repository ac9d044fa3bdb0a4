-- expect: error
-- Exponential backtracking.
local chatapp = require "chatapp"
return chatapp.policy { name = "backtrack", filter = function(n)
  return n.phone_number:rep(20):match(("%d-"):rep(12) .. "x") ~= nil
end }
