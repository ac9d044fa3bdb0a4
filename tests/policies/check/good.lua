-- A careful policy: passes --check (history guarded, constants, gone).
local chatapp = require "chatapp"
local Q = chatapp.QualityRating
return chatapp.policy {
  name = "good",
  where = { status = { chatapp.Status.CONNECTED, chatapp.unknown_value "CONNECTED_SOON" } },
  filter = function(n)
    if n.quality_rating == Q.RED or n.quality_rating == "YELLOW" then return true end
    return n.previous ~= nil and n.previous.quality_rating ~= n.quality_rating
  end,
  decide = function(n, plan)
    local was = n.previous and n.previous.quality_rating or "new"
    plan:webhook { url = "https://hooks.example.com/alert",
                   json = { number = n.phone_number, quality = n.quality_rating, was = was } }
  end,
  gone = function(n, plan) plan:log("gone: " .. n.phone_number) end,
  finish = function(plan, numbers) plan:log(("%d numbers need a look"):format(#numbers)) end,
}
