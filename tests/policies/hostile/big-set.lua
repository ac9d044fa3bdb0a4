-- expect: error
-- A character set of 100 KB, repeated, over a long subject.
local chatapp = require "chatapp"
return chatapp.policy { name = "big-set", filter = function()
  return ("b"):rep(1e5):find("[" .. ("b"):rep(1e5) .. "a]*c") ~= nil
end }
