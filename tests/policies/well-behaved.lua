-- A policy that behaves: loaded beside every hostile policy of
-- tests/policies/hostile, it must still see an intact environment and
-- complete (tests/lua/e2e_hostile.lua).
local chatapp = require "chatapp"
return chatapp.policy {
  name = "well-behaved",
  filter = function(n)
    return math.floor(1.5) == 1 and ("a"):upper() == "A" and string.rep("ab", 2) == "abab"
      and chatapp.Status.CONNECTED == "CONNECTED" and chatapp.fields[1] == "phone_number"
      and chatapp.enums.Status ~= nil and ("").dump == nil and string.dump == nil
      and leaked_global == nil and n.phone_number:find("^%d+$") ~= nil
      and chatapp.json.encode(chatapp.json.array {}) == "[]"
      and table.concat({ "a", "b" }, ",") == "a,b"
  end,
  decide = function(n, plan) plan:log("checked %s", n.phone_number) end,
}
