-- expect: harmless
-- Tries every way into the shared tables: plain writes, the tables pairs
-- and next hand out, the enum and field lists, the string metatable.
local chatapp = require "chatapp"
local loop = function() while true do end end
local function try(f) pcall(f) end
for _, lib in ipairs { math, string, table, chatapp, chatapp.json, chatapp.enums, chatapp.fields, os } do
  local _, inner = pairs(lib)
  try(function() inner.floor = nil; inner.upper = nil; inner.policy = nil end)
  try(function() setmetatable(lib, nil) end)
  for k in pairs(lib) do try(function() lib[k] = nil end) end
  local k = next(lib)
  if k then try(function() lib[k] = nil end) end
end
try(function() chatapp.enums.Status = nil end)
try(function() chatapp.enums.Status.values[1] = "X" end)
try(function() chatapp.fields[1] = "x" end)
try(function() table.remove(chatapp.fields) end)
try(function() getmetatable("").__index = { upper = loop } end)
try(function() getmetatable("").__index.upper = loop end)
try(function() chatapp.Status.CONNECTED = "x" end)
leaked_global = loop
return chatapp.policy { name = "shared-write", filter = function() return true end }
