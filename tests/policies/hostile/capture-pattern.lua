-- expect: error
-- A capture of a 100 KB pattern over a 1 MB subject.
local chatapp = require "chatapp"
return chatapp.policy { name = "capture-pattern", filter = function()
  return ("a"):rep(1e6):find("(" .. ("a"):rep(1e5) .. "b)") ~= nil
end }
