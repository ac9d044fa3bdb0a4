-- expect: error
-- table.insert / table.move over a faked length or a huge range loop in C
-- without allocating.
local chatapp = require "chatapp"
return chatapp.policy { name = "table-shift", filter = function()
  pcall(table.move, {}, 1, 1 << 40, 2)
  table.insert(setmetatable({}, { __len = function() return 1 << 40 end }), 1, "x")
end }
