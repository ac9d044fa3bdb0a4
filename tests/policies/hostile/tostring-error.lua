-- expect: error
-- Raises an error value whose __tostring never returns, for every number.
local chatapp = require "chatapp"
return chatapp.policy { name = "tostring-error", filter = function()
  error(setmetatable({}, { __tostring = function() while true do end end }))
end }
