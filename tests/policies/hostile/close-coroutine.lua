-- expect: error
-- A to-be-closed variable whose __close loops, in a coroutine the budget
-- stops: Lua would close it with hooks still off (coroutine.wrap,
-- coroutine.close).
local chatapp = require "chatapp"
local closer = setmetatable({}, { __close = function() while true do end end })
return chatapp.policy { name = "close-coroutine", filter = function()
  local co = coroutine.create(function()
    local x <close> = closer
    while true do end
  end)
  coroutine.resume(co)
  coroutine.close(co)
  coroutine.wrap(function()
    local y <close> = closer
    while true do end
  end)()
end }
