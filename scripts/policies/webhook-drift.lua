-- webhook-drift: put drifted receipt callback URLs back.
--
-- Every number of a space should send its inbound messages and delivery
-- receipts to the space's endpoints.  When a number's URLs differ (someone
-- changed them in the console, or a migration reset them), this policy
-- plans UpdatePhoneWebhook with the wanted URLs; a second run then finds
-- nothing to do.  Try it with --dry-run first: the report shows the current
-- value beside the new one.
--
-- HOOK_BASE sets where the endpoints live (default the emulator's sample).
--
--   chatapp-run --emulator --spaces scripts/spaces/sample-spaces.json --dry-run scripts/policies/webhook-drift.lua
local chatapp = require "chatapp"

local base = os.getenv("HOOK_BASE") or "https://hooks.example.com/cams"

local function wanted(n)
  return {
    up = ("%s/%s/inbound"):format(base, n.cust_space_id),
    status = ("%s/%s/status"):format(base, n.cust_space_id),
  }
end

return chatapp.policy {
  name = "webhook-drift",
  description = "Callback URLs that differ from the space's endpoints",
  -- Only numbers of a known space can be updated (UpdatePhoneWebhook needs
  -- CustSpaceId); deleted numbers are left alone.
  filter = function(n)
    if not n.cust_space_id or n.status == chatapp.Status.DELETED then return false end
    local w = wanted(n)
    return n.up_callback_url ~= w.up or n.status_callback_url ~= w.status
  end,
  decide = function(n, plan)
    local w = wanted(n)
    local change = {}
    if n.up_callback_url ~= w.up then change.up_callback_url = w.up end
    if n.status_callback_url ~= w.status then change.status_callback_url = w.status end
    change.http_flag = "Y"
    plan:update_phone_webhook(change)
  end,
}
