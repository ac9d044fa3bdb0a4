-- expect: error
-- Reaches for the plan's internals and smuggles headers: a bogus action
-- or a header with CR/LF aborted every action of the run.
local chatapp = require "chatapp"
return chatapp.policy { name = "plan-internals", decide = function(n, plan)
  pcall(function() plan._add(plan, { kind = "bogus", request = {} }) end)
  pcall(function() rawget(plan, "_add")(plan, { kind = "bogus", request = {} }) end)
  pcall(function() plan.log = function() end end)
  pcall(plan.webhook, { url = "http://127.0.0.1:9/x" })
  local a = plan:log("still here for %s", n.phone_number)
  a.kind = "bogus"
  a.request.message = setmetatable({}, { __tostring = function() while true do end end })
  plan:webhook { url = "http://127.0.0.1:9/hook", headers = { ["X-Note"] = "a\r\nInjected: 1" } }
end }
