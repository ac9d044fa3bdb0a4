-- The installed module in a stock lua5.4, no network (install/lua_module):
-- where it is loaded from, what it holds, expected failures as values,
-- misuse as errors, and the LuaLS stubs in step with the module.
--
--   lua5.4 lua_module.lua PREFIX VERSION STUBS.lua
local prefix, version, stubs_path = arg[1], arg[2], arg[3]
assert(prefix and version and stubs_path, "usage: lua_module.lua PREFIX VERSION STUBS")

local checks, failures = 0, 0
local function check(cond, what)
  checks = checks + 1
  if not cond then
    failures = failures + 1
    io.stderr:write(("FAILED %s (line %d)\n"):format(what,
      debug.getinfo(2, "l").currentline))
  end
end
local function raises(fn, pattern, what)
  local ok, e = pcall(fn)
  check(not ok and tostring(e):find(pattern, 1, true), what .. ": " .. tostring(e))
end

local chatapp = require "chatapp"

-- Loaded from the prefix, not from a build tree or the system.
local lpath = package.searchpath("chatapp", package.path)
local cpath = package.searchpath("chatapp.core", package.cpath)
check(lpath and lpath:sub(1, #prefix) == prefix, "chatapp from " .. tostring(lpath))
check(cpath and cpath:sub(1, #prefix) == prefix, "chatapp.core from " .. tostring(cpath))
check(chatapp.version == version, "version " .. tostring(chatapp.version))
check(require "chatapp.core" == chatapp.core, "one chatapp.core")
-- The action kinds, from their folder (lua/chatapp/actions/) in the prefix.
local apath = package.searchpath("chatapp.actions.webhook", package.path)
check(apath and apath:sub(1, #prefix) == prefix, "chatapp.actions.webhook from " .. tostring(apath))
check(require("chatapp.actions").get("webhook") == require "chatapp.actions.webhook", "the action registry loads")
check(_G.cjson == nil, "no global cjson left behind")

-- Types and helpers.
check(chatapp.Status.FLAGGED == "FLAGGED", "enum member")
raises(function() return chatapp.Status.FLAGED end, "FLAGGED", "misspelt enum member")
raises(function() chatapp.Status.X = 1 end, "read-only", "enums are read-only")
check(chatapp.json.encode({ a = 1 }) == '{"a":1}', "json.encode")
local v = chatapp.json.decode('{"n":3,"list":[1,null]}')
check(math.type(v.n) == "integer" and v.list[2] == chatapp.json.null, "json.decode")
check(select(2, chatapp.json.decode("{")) ~= nil, "bad JSON is nil, message")
local list = chatapp.core.decode_phone_numbers(
  '{"PhoneNumbers":[{"PhoneNumber":"1","Status":"BANNED","MessagingLimitTier":"TIER_1K"}]}')
check(#list == 1 and list[1].status == "BANNED" and list[1].messaging_limit == 1000,
  "typed numbers")
raises(function() return list[1].qualty end, "quality_rating", "unknown field names the valid ones")
local p = chatapp.policy { name = "p", where = { status = "BANNED" } }
check(p:matches_where(list[1]), "policy where")
raises(function() chatapp.policy { name = "p", colour = 1 } end, "unknown key",
  "policy with an unknown key")
raises(function() chatapp.policy { where = {} } end, "name", "policy without a name")

-- Misuse raises.
raises(function() chatapp.client { no_such_key = 1 } end, "no_such_key", "unknown client key")
raises(function() chatapp.client { qps = "fast" } end, "qps", "bad client value")

-- Expected failures return nil, ApiError.  No credentials anywhere (the
-- test runs with an empty HOME and no credential variables):
local c, err = chatapp.client { endpoint = "http://127.0.0.1:9" }
check(c == nil and getmetatable(err) == chatapp.ApiError, "no credentials: nil, ApiError")
check(err and err.status == "ECREDENTIALS", "status ECREDENTIALS")
-- A closed port on loopback:
c = assert(chatapp.client { endpoint = "http://127.0.0.1:9", access_key_id = "LTAIx",
  access_key_secret = "s3cr3t-value", limiter = "process", max_attempts = 1 })
local numbers, qerr = c:query_phone_numbers {}
check(numbers == nil and getmetatable(qerr) == chatapp.ApiError, "closed port: nil, ApiError")
check(qerr and qerr.status == "ETRANSPORT", "status ETRANSPORT")
check(qerr and not tostring(qerr):find("s3cr3t-value", 1, true), "no secret in the error")
local results, errors = c:batch { { operation = "QueryChatappPhoneNumbers" },
  { "GetPhoneNumberVerificationStatus", { PhoneNumber = "1" } } }
check(results[1] == nil and errors[1] and errors[2], "batch: an error per request")
raises(function() c:batch { 42 } end, "request 1", "batch of non-tables")
raises(function() c:call() end, "string expected", "call without an operation")
c:close()
raises(function() c:query_phone_numbers {} end, "closed", "a closed client")

-- The LuaLS stubs describe the whole module.
local f = assert(io.open(stubs_path))
local stubs = f:read("a")
f:close()
check(stubs:find("---@meta chatapp", 1, true) == 1, "stubs start with ---@meta chatapp")
local function described(pattern, what)
  check(stubs:find(pattern), "stubs lack " .. what)
end
for k in pairs(chatapp) do
  described("chatapp%." .. k .. "[^%w_]", "chatapp." .. k)
end
for _, field in ipairs(chatapp.fields) do
  described("---@field " .. field .. "%??%s", "PhoneNumber field " .. field)
end
-- (The enum tables are compared value by value, both ways, by
-- tests/lua/test_stubs.lua; install/install checks the installed stubs are
-- the source's.)
local methods = debug.getregistry()["chatapp.Client"].__index
for name in pairs(methods) do
  described("function Client:" .. name .. "%(", "Client:" .. name)
end
for name in pairs(chatapp.Policy) do
  if not name:find("^__") then
    described("function Policy:" .. name .. "%(", "Policy:" .. name)
  end
end

collectgarbage()
io.stderr:write(("lua_module: %d checks, %d failed\n"):format(checks, failures))
os.exit(failures == 0 and checks > 0 and 0 or 1)
