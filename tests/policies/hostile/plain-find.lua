-- expect: harmless
-- A plain find of a 1 MB needle in 4 MB took 68 s; it is linear now.  (Half
-- those sizes, so that the file fits the test's 16 MB cap and the run is
-- clean: Lua's own search would still take hours.)
local chatapp = require "chatapp"
return chatapp.policy { name = "plain-find", filter = function()
  local hay = ("a"):rep(2e6)
  return hay:find(("a"):rep(5e5) .. "b", 1, true) == nil
    and hay:find(("a"):rep(5e5) .. "b") == nil
end }
