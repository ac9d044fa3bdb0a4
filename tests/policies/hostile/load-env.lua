-- expect: error
-- load with its own environment, and a reader function, looping.
local chatapp = require "chatapp"
return chatapp.policy { name = "load-env", filter = function()
  local f = load("local x = 0 while true do x = x + 1 end", "=inner", "t", {})
  f()
end }
