-- expect: error
-- Fifty policies in one file, each holding 3 MB: one file's budget is
-- shared by all its policies.
local chatapp = require "chatapp"
local keep = {}
local list = {}
for i = 1, 50 do
  list[i] = chatapp.policy { name = "many-" .. i, filter = function()
    keep[#keep + 1] = ("x"):rep(3 * 1024 * 1024)
    return true
  end }
end
return list
