-- expect: error
-- Loops in finish.
local chatapp = require "chatapp"
return chatapp.policy { name = "finish-loop", finish = function() while true do end end }
