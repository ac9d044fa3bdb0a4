-- expect: error
-- Grows a table until something stops it.
local chatapp = require "chatapp"
return chatapp.policy { name = "huge-table", filter = function()
  local t = {}
  for i = 1, 1e9 do t[i] = { i } end
end }
