-- expect: harmless
-- Values with metamethods everywhere the runner looks: where lists,
-- spaces, the returned list, filter results.
local chatapp = require "chatapp"
local loop = function() while true do end end
local trap = { __index = loop, __len = loop, __eq = loop, __lt = loop, __le = loop,
               __concat = loop, __tostring = loop, __call = loop, __pairs = loop, __close = loop }
local p = chatapp.policy {
  name = "meta-values",
  where = { status = setmetatable({ "CONNECTED", "FLAGGED" }, trap) },
  filter = function() return setmetatable({}, trap) end,
}
return setmetatable({ p }, trap)
