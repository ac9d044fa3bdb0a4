-- expect: harmless
-- A plain find of a 1 MB needle in 4 MB took 68 s; it is linear now.
local chatapp = require "chatapp"
return chatapp.policy { name = "plain-find", filter = function()
  local hay = ("a"):rep(4e6)
  return hay:find(("a"):rep(1e6) .. "b", 1, true) == nil
    and hay:find(("a"):rep(1e6) .. "b") == nil
end }
