-- expect: error
-- Finalizers run with the hook off, outside the budget: a loop or an
-- allocation bomb there escapes both limits.  setmetatable refuses __gc.
local chatapp = require "chatapp"
pcall(setmetatable, {}, { __gc = function() local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(64) .. i end end })
return chatapp.policy { name = "gc-finalizer", filter = function()
  setmetatable({}, { __gc = function() while true do end end })
  collectgarbage()
  return true
end }
