-- expect: error
-- string.dump through the string metatable.
local chatapp = require "chatapp"
return chatapp.policy { name = "string-dump", filter = function()
  return load(("").dump(function() return 1 end)) ~= nil
end }
