-- expect: error
-- Recursion without a base case (not a tail call, so the stack grows).
local chatapp = require "chatapp"
local function f(n) return 1 + f(n + 1) end
return chatapp.policy { name = "deep-recursion", filter = function() return f(1) > 0 end }
