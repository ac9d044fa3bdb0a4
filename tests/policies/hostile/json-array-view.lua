-- expect: error
-- chatapp.json.array on the read-only views replaced their metatable, and
-- math.floor vanished for every other file.
local chatapp = require "chatapp"
pcall(chatapp.json.array, math)
pcall(chatapp.json.array, chatapp)
pcall(chatapp.json.array, string)
pcall(function() getmetatable(chatapp.json.array {}).__gc = function() while true do end end end)
return chatapp.policy { name = "json-array-view", filter = function()
  chatapp.json.array(table)
end }
