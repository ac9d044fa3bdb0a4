-- Raises for one number only: the check finds it on that number.
local chatapp = require "chatapp"
return chatapp.policy {
  name = "one-number",
  filter = function(n)
    if n.phone_number == "6591234570" then error("boom on this one") end
    return n.status == chatapp.Status.RESTRICTED
  end,
}
