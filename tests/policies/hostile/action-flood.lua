-- expect: error
-- Plans past the action cap for every number.
local chatapp = require "chatapp"
return chatapp.policy { name = "action-flood", decide = function(n, plan)
  for i = 1, 20000 do plan:log("line %d", i) end
end }
