-- expect: error
-- Catches an error chatapp.policy raised, gives its fields metamethods that
-- loop, and raises it again from filter and from a plan:lua action: the
-- runner must report the recorded message, never touch the policy's value.
local chatapp = require "chatapp"
local function poisoned()
  local _, e = pcall(chatapp.policy, 5)
  local loop = setmetatable({}, { __concat = function() while true do end end,
                                  __tostring = function() while true do end end })
  e.message, e.where = loop, loop
  return e
end
return chatapp.policy {
  name = "policy-error-fields",
  filter = function() error(poisoned()) end,
  finish = function(plan) plan:lua(function() error(poisoned()) end) end,
}
