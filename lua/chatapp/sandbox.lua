--- The environment policies run in: an allow-list of the standard library,
--- read-only shared tables, no access to files, processes, the host's
--- globals, the debug library or the credentials.
--
-- Every policy file gets a fresh environment, so one file's globals never
-- leak into another's.

local chatapp = require "chatapp"

local M = {}

-- Environment variables a policy may never read: every name the credential
-- chain uses for a secret or a token (docs/credentials.md).
local secret_vars = {
  ALIBABA_CLOUD_ACCESS_KEY_SECRET = true, ALIBABACLOUD_ACCESS_KEY_SECRET = true,
  ALICLOUD_ACCESS_KEY_SECRET = true, ACCESS_KEY_SECRET = true,
  ALICLOUD_SECRET_KEY = true,
  ALIBABA_CLOUD_SECURITY_TOKEN = true, ALIBABACLOUD_SECURITY_TOKEN = true,
  ALICLOUD_SECURITY_TOKEN = true, SECURITY_TOKEN = true,
}

local function safe_getenv(name)
  if type(name) ~= "string" then
    error("os.getenv expects a variable name", 2)
  end
  if secret_vars[name] then
    error(("os.getenv(%q): policies cannot read credentials"):format(name), 2)
  end
  return os.getenv(name)
end

-- A read-only view of a library table.
local function frozen(name, t)
  local copy = {}
  for k, v in pairs(t) do copy[k] = v end
  return setmetatable({}, {
    __index = copy,
    __newindex = function(_, k)
      error(("%s is read-only (tried to set %s)"):format(name, tostring(k)), 2)
    end,
    __pairs = function() return next, copy, nil end,
    __metatable = name,
  })
end

local string_lib = {}
for k, v in pairs(string) do
  if k ~= "dump" then string_lib[k] = v end
end

-- Policies see the chatapp module through read-only views.
local chatapp_view
do
  local t = {}
  for k, v in pairs(chatapp) do t[k] = v end
  t.json = frozen("chatapp.json", chatapp.json)
  chatapp_view = frozen("chatapp", t)
end

local shared = {
  math = frozen("math", math),
  string = frozen("string", string_lib),
  table = frozen("table", table),
  utf8 = frozen("utf8", utf8),
  coroutine = frozen("coroutine", coroutine),
}

-- Strings share one metatable with the host: lock it.
do
  local mt = getmetatable("")
  if mt and rawget(mt, "__metatable") == nil then
    mt.__metatable = "string"
  end
end

local basics = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
  "tonumber", "tostring", "type", "xpcall", "rawequal", "rawlen",
  "setmetatable", "getmetatable", "_VERSION",
}

--- A fresh environment.  print goes to log(line).
function M.env(log)
  local env = {}
  for _, k in ipairs(basics) do env[k] = _G[k] end
  for k, v in pairs(shared) do env[k] = v end
  env.os = frozen("os", {
    time = os.time, clock = os.clock, date = os.date, difftime = os.difftime,
    getenv = safe_getenv,
  })
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    log(table.concat(parts, "\t", 1, parts.n))
  end
  env.require = function(name)
    if name == "chatapp" then return chatapp_view end
    error(("require(%q): policies can only require \"chatapp\""):format(tostring(name)), 2)
  end
  env.load = function(chunk, name, mode, e)
    if mode ~= nil and mode ~= "t" then
      return nil, "policies can only load text chunks"
    end
    return load(chunk, name, "t", e == nil and env or e)
  end
  env._G = env
  return env
end

return M
