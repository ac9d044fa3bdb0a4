-- expect: harmless
-- Replaces methods on the policy object and on the shared Policy metatable
-- after declaring it: the runner works on its own copy, so nothing here
-- runs, and the other files' policies are untouched.
local chatapp = require "chatapp"
local loop = function() while true do end end
local p = chatapp.policy { name = "replace-method", where = { status = "CONNECTED" } }
p.matches_where = loop
p.uses_space = loop
p.filter = loop
p.where = setmetatable({}, { __pairs = loop })
pcall(function() getmetatable(p).uses_space = loop end)
pcall(function() getmetatable(p).matches_where = loop end)
pcall(setmetatable, p, { __index = loop })
return p
