-- lua_host.lua: CAMS from a plain lua5.4 with the installed chatapp module
-- (docs/embedding.md shows this file; tests/install runs it against
-- chatapp-emulator).
--
--   lua5.4 lua_host.lua ENDPOINT
--
-- The AccessKey comes from HOST_ACCESS_KEY_ID / HOST_ACCESS_KEY_SECRET
-- when they are set, else from the default credential chain.  Calls that
-- fail for outside reasons return nil and an ApiError; misuse raises.
local chatapp = require "chatapp"

local endpoint = assert(arg[1], "usage: lua5.4 lua_host.lua ENDPOINT")

local client <close>, err = chatapp.client {
  endpoint = endpoint,
  access_key_id = os.getenv "HOST_ACCESS_KEY_ID",
  access_key_secret = os.getenv "HOST_ACCESS_KEY_SECRET",
  limiter = "process", -- this script's own rate limit, not the host's
  qps = 5,
}
if not client then
  io.stderr:write("lua_host: ", tostring(err), "\n")
  os.exit(2)
end

-- Typed numbers.
local numbers, qerr = client:query_phone_numbers {}
if not numbers then
  io.stderr:write("lua_host: ", tostring(qerr), "\n")
  os.exit(1)
end
print(("%d numbers"):format(#numbers))
for _, n in ipairs(numbers) do
  local limit = n.messaging_limit == math.huge and "unlimited"
    or tostring(n.messaging_limit)
  print(("  %-15s %-12s %-8s %s"):format(n.phone_number, n.status,
    n.quality_rating or "-", limit))
end

-- The policy helpers work outside chatapp-run too.
local watch = chatapp.policy {
  name = "quality-watch",
  where = { status = chatapp.Status.CONNECTED },
  filter = function(n) return n.quality_rating ~= chatapp.QualityRating.GREEN end,
}
local hits = {}
for _, n in ipairs(numbers) do
  if watch:matches_where(n) and watch.filter(n) then
    hits[#hits + 1] = n.phone_number
  end
end
print("to watch: " .. table.concat(hits, ", "))

-- Any operation, many at once under the limiter: results[i] or errors[i].
local results, errors = client:batch {
  { operation = "QueryChatappPhoneNumbers", params = { Status = "FLAGGED" } },
  { operation = "QueryChatappPhoneNumbers", params = { Status = "CONNECTED" } },
  { operation = "NoSuchOperation" },
}
for i = 1, 3 do
  if results[i] then
    print(("request %d: %d numbers"):format(i, #results[i]))
  else
    assert(getmetatable(errors[i]) == chatapp.ApiError)
    print(("request %d: %s (%s)"):format(i, errors[i].code, errors[i].status))
  end
end

-- The untyped form: the decoded JSON answer.
local answer = assert(client:call("QueryChatappPhoneNumbers", {}))
print("Code " .. answer.Code .. ", RequestId " .. answer.RequestId)
print(chatapp.json.encode(client:stats()))
