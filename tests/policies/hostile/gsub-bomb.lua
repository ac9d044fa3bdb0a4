-- expect: error
-- Doubles a string with gsub until the memory cap.
local chatapp = require "chatapp"
return chatapp.policy { name = "gsub-bomb", filter = function()
  local s = ("x"):rep(1000)
  for _ = 1, 40 do s = s:gsub("x", "xx") end
  return #s > 0
end }
