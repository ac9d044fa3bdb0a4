-- expect: error
-- Catches the budget error with pcall and carries on.
local chatapp = require "chatapp"
return chatapp.policy { name = "pcall-swallow", filter = function()
  while true do pcall(function() while true do end end) end
end }
