-- tier-report: how many numbers sit in each messaging tier, per space.
--
-- The counts go to the report as log lines; with --metrics FILE the same
-- numbers are in chatapp_numbers{space, status, quality, tier} for
-- Prometheus (node_exporter's textfile collector can pick the file up).
--
--   chatapp-run --emulator --spaces scripts/spaces/sample-spaces.json \
--     --metrics /tmp/chatapp.prom scripts/policies/tier-report.lua
local chatapp = require "chatapp"

-- Tiers from the smallest limit up; unknown tiers last.
local function order(tier)
  local limits = { TIER_50 = 50, TIER_250 = 250, TIER_1K = 1000, TIER_2K = 2000,
                   TIER_10K = 10000, TIER_100K = 100000, TIER_UNLIMITED = math.huge }
  return limits[tier] or -1
end

return chatapp.policy {
  name = "tier-report",
  description = "Numbers per messaging tier and space",
  finish = function(plan, numbers)
    local by_space, spaces = {}, {}
    for _, n in ipairs(numbers) do
      local space = n.space_label or n.cust_space_id or "own numbers"
      if not by_space[space] then
        by_space[space] = {}
        spaces[#spaces + 1] = space
      end
      local tier = n.messaging_limit_tier or "(none)"
      by_space[space][tier] = (by_space[space][tier] or 0) + 1
    end
    table.sort(spaces)
    for _, space in ipairs(spaces) do
      local tiers = {}
      for tier in pairs(by_space[space]) do tiers[#tiers + 1] = tier end
      table.sort(tiers, function(a, b)
        if order(a) ~= order(b) then return order(a) < order(b) end
        return a < b
      end)
      local parts = {}
      for i, tier in ipairs(tiers) do parts[i] = ("%s %d"):format(tier, by_space[space][tier]) end
      plan:log("%s: %s", space, table.concat(parts, ", "))
    end
  end,
}
