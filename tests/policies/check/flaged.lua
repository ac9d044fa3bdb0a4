-- A where value its field never has: "FLAGED" (FLAGGED meant).
local chatapp = require "chatapp"
return chatapp.policy {
  name = "unknown-value",
  where = {
    status = "FLAGED",
  },
}
