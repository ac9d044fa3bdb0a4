-- expect: error
-- Loops inside coroutines: one made while loading, one per number.
local chatapp = require "chatapp"
local early = coroutine.wrap(function() while true do coroutine.yield() end end)
return chatapp.policy { name = "coroutine-loop", filter = function()
  for _ = 1, 1e9 do early() end
  coroutine.wrap(function() while true do end end)()
end }
