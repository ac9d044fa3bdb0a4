-- expect: error
-- Looks for rawset, debug or the host's globals through load's
-- environment, _G and the string metatable, to write the shared tables.
local chatapp = require "chatapp"
return chatapp.policy { name = "rawset-shared", filter = function()
  local rs = load("return rawset or (debug and debug.setmetatable) or (package and package.loaded)")()
    or _G.rawset or (getmetatable("") ~= "string" and getmetatable("").__index.rawset)
    or load("return rawset", "x", "t", setmetatable({}, { __index = _G }))()
  rs(math, "floor", nil)
end }
