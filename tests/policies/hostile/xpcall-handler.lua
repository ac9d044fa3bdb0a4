-- expect: error
-- Loops inside the message handler of xpcall.
local chatapp = require "chatapp"
return chatapp.policy { name = "xpcall-handler", filter = function()
  while true do
    xpcall(function() while true do end end, function() while true do end end)
  end
end }
