--- The environment policies run in: an allow-list of the standard library,
--- read-only shared tables, no access to files, processes, the host's
--- globals, the debug library or the credentials.
--
-- Every policy file gets a fresh environment, so one file's globals never
-- leak into another's.  Policy code runs under core.sandbox_call (memory
-- cap, instruction budget); the pattern functions, which the instruction
-- hook cannot interrupt, refuse patterns that could run for hours.

local chatapp = require "chatapp"

local M = { active = false }

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
M.frozen = frozen

---------------------------------------------------------------------------
-- Pattern functions
--
-- Lua's matcher backtracks: with k repetition items (* + - ?) it can take
-- about n^k steps on an n-byte subject, times n more when unanchored, and
-- the instruction hook never fires inside it (reliability.md 4.1: 118 s
-- for a 22-byte subject).  While a policy runs, a pattern is refused when
-- that bound passes COST_LIMIT; plain = true searches are never limited.

local COST_LIMIT = 1e8
M.COST_LIMIT = COST_LIMIT

-- Repetition items in a pattern (escapes and sets skipped).
local function repetitions(p)
  local k, i, n = 0, 1, #p
  while i <= n do
    local c = p:sub(i, i)
    if c == "%" then
      i = i + 2
    elseif c == "[" then
      i = i + 1
      if p:sub(i, i) == "^" then i = i + 1 end
      if p:sub(i, i) == "]" then i = i + 1 end
      while i <= n and p:sub(i, i) ~= "]" do
        if p:sub(i, i) == "%" then i = i + 1 end
        i = i + 1
      end
      i = i + 1
    else
      if c == "*" or c == "+" or c == "-" or c == "?" then k = k + 1 end
      i = i + 1
    end
  end
  return k
end
M.repetitions = repetitions

local raw = {
  find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub,
}

local function guard(name, s, p, plain)
  if not M.active or plain or type(s) ~= "string" or type(p) ~= "string" then return end
  local k = repetitions(p)
  local exponent = k + (p:sub(1, 1) == "^" and 0 or 1)
  local n = math.max(#s, 2)
  if exponent * math.log(n, 10) > math.log(COST_LIMIT, 10) then
    error(("string.%s: pattern %q has %d repetition items (* + - ?) over a %d-byte subject, "
      .. "which can take hours; simplify it, anchor it with ^, or search with plain = true")
      :format(name, #p > 40 and p:sub(1, 40) .. "..." or p, k, #s), 3)
  end
end

local wrapped = {
  find = function(s, p, init, plain) guard("find", s, p, plain) return raw.find(s, p, init, plain) end,
  match = function(s, p, init) guard("match", s, p) return raw.match(s, p, init) end,
  gmatch = function(s, p, init) guard("gmatch", s, p) return raw.gmatch(s, p, init) end,
  gsub = function(s, p, r, n) guard("gsub", s, p) return raw.gsub(s, p, r, n) end,
}
-- Installed in the state's string table, so s:find(...) is covered too; the
-- checks only apply while policy code runs (M.active).
for k, f in pairs(wrapped) do string[k] = f end

---------------------------------------------------------------------------
-- The environment

local string_lib = {}
for k, v in pairs(string) do
  if k ~= "dump" then string_lib[k] = v end
end

-- Policies see a read-only view of the chatapp module without its host
-- side: no chatapp.core (commands, files, the sandbox itself), no clients
-- (policies plan API calls; the runner makes them).
local policy_api = { "version", "fields", "enums", "policy", "enum_for_field" }
local chatapp_view
do
  local t = {}
  for _, k in ipairs(policy_api) do t[k] = chatapp[k] end
  for name in pairs(chatapp.enums) do t[name] = chatapp[name] end
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

local safe_collectgarbage = function(opt)
  if opt == nil or opt == "count" or opt == "step" or opt == "collect" then
    return collectgarbage(opt)
  end
  error(("collectgarbage(%q) is not available to policies"):format(tostring(opt)), 2)
end

--- A fresh environment.  print goes to log(line).
function M.env(log)
  local env = {}
  for _, k in ipairs(basics) do env[k] = _G[k] end
  for k, v in pairs(shared) do env[k] = v end
  env.collectgarbage = safe_collectgarbage
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
    if type(chunk) == "string" and chunk:byte(1) == 27 then
      return nil, "policies can only load text chunks"
    end
    return load(chunk, name, "t", e == nil and env or e)
  end
  env._G = env
  return env
end

--- Call a policy function under its budget: true, results... or false,
--- message, kind ("memory" | "instructions" | "error").
function M.call(budget, fn, ...)
  M.active = true
  local r = table.pack(chatapp.core.sandbox_call(budget, fn, ...))
  M.active = false
  if not r[1] and type(r[2]) == "string" then
    -- The traceback ends where the policy was called: the runner's own
    -- frames below that say nothing to the policy's author.
    r[2] = r[2]:gsub("\n%s*%[C%]: in function 'chatapp%.core%.sandbox_call'.*$", "")
  end
  return table.unpack(r, 1, r.n)
end

return M
