--- The environment policies run in: an allow-list of the standard library,
--- read-only shared tables, no access to files, processes, the host's
--- globals, the debug library or the credentials.
--
-- Every policy file gets a fresh environment, so one file's globals never
-- leak into another's.  Policy code runs under core.sandbox_call (memory
-- cap, instruction budget); the pattern functions, which the instruction
-- hook cannot interrupt, refuse patterns that could run for hours.

local chatapp = require "chatapp"
local core = chatapp.core

local M = { active = false }

-- Environment variables a policy may never read: the one list of secret
-- names (ca_cred.c, shared with exec and redaction).  A variable whose value
-- holds a known secret under another name is refused too.
local secret_vars = {}
for _, name in ipairs(chatapp.core.secret_env_names()) do secret_vars[name] = true end

-- The names policies read, so the outbox can keep a reference to the
-- variable instead of its value (chatapp.state).
local env_read = {}

local function safe_getenv(name)
  if type(name) ~= "string" then
    error("os.getenv expects a variable name", 2)
  end
  -- chatapp.testing sets M.test_env: policy tests see their own
  -- environment, never the process's (docs/testing-policies.md).
  local value
  if M.test_env then value = M.test_env[name] else value = os.getenv(name) end
  if secret_vars[name] or (value and chatapp.core.redact(value) ~= value) then
    error(("os.getenv(%q): policies cannot read credentials"):format(name), 2)
  end
  if value then env_read[name] = true end
  return value
end

-- A read-only view of a table: reads go to a private copy, writes raise,
-- pairs walks the copy without handing it out, and the metatable is
-- locked.  Views are made afresh for every policy file (M.env), so even a
-- C function that replaces a table's metatable behind __metatable's back
-- only breaks the file that called it.
local function frozen(name, t)
  local copy = {}
  for k, v in next, t do copy[k] = v end
  local view = {}
  return setmetatable(view, {
    __index = copy,
    __newindex = function(_, k)
      error(("%s is read-only (tried to set %s)"):format(name, tostring(k)), 2)
    end,
    __pairs = function() return function(_, k) return next(copy, k) end, view, nil end,
    __len = function() return #copy end,
    __metatable = name,
  })
end
M.frozen = frozen

--- The environment variables policies have read (names; the values are
--- the process's own, read again when needed).
function M.env_names_read()
  local list = {}
  for name in pairs(env_read) do list[#list + 1] = name end
  table.sort(list)
  return list
end

--- Whether policies may read the variable (not a credential).
function M.env_allowed(name)
  return type(name) == "string" and not secret_vars[name]
end

-- A frozen view of a tree of plain tables (chatapp.enums, chatapp.fields).
local function frozen_tree(name, t)
  local copy = {}
  for k, v in next, t do
    if type(v) == "table" and getmetatable(v) == nil then
      v = frozen_tree(name .. "." .. tostring(k), v)
    end
    copy[k] = v
  end
  return frozen(name, copy)
end

---------------------------------------------------------------------------
-- String searches
--
-- Lua's matcher backtracks and the instruction hook never fires inside a C
-- function (docs/internals/sandbox.md: 118 s for a 22-byte subject; a plain find
-- of a 1 MB needle in 4 MB took 68 s).  While a policy runs:
--   * plain searches (plain = true, or a find pattern without specials)
--     use core.find_plain, linear in subject + pattern;
--   * other searches are refused when core.pattern_cost, a bound on the
--     matcher's steps (subject length, repetition items, set sizes,
--     back-references), passes COST_LIMIT.

local COST_LIMIT = 1e9
M.COST_LIMIT = COST_LIMIT
local LOG_LIMIT = math.log(COST_LIMIT, 10)

local raw = {
  find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub,
  rep = string.rep,
}
local table_raw = { insert = table.insert, remove = table.remove, move = table.move }

-- What makes string.find use the matcher (lstrlib's SPECIALS); without
-- one of these it searches plainly, O(#s * #p), so we search instead.
local SPECIALS = "[%^%$%*%+%?%.%(%[%%%-]"

local function guard(name, s, p, unanchored)
  local cost = core.pattern_cost(#s, p, unanchored)
  if cost > LOG_LIMIT then
    error(("string.%s: pattern %q over a %d-byte subject may take up to 10^%.0f steps, "
      .. "which can take hours; simplify it, anchor it with ^, or search with plain = true")
      :format(name, #p > 40 and p:sub(1, 40) .. "..." or p, #s, cost), 3)
  end
end

local function checked(s, p)
  return M.active and type(s) == "string" and type(p) == "string"
end

local wrapped = {
  find = function(s, p, init, plain)
    if checked(s, p) then
      if plain or not raw.find(p, SPECIALS) then return core.find_plain(s, p, init) end
      guard("find", s, p)
    end
    return raw.find(s, p, init, plain)
  end,
  match = function(s, p, init)
    if checked(s, p) then guard("match", s, p) end
    return raw.match(s, p, init)
  end,
  gmatch = function(s, p, init)
    if checked(s, p) then guard("gmatch", s, p, true) end
    return raw.gmatch(s, p, init)
  end,
  gsub = function(s, p, r, n)
    if checked(s, p) then guard("gsub", s, p) end
    return raw.gsub(s, p, r, n)
  end,
  -- ("").rep("", 1e18) loops 1e18 times in C without allocating.
  rep = function(s, n, sep)
    if M.active and type(s) == "string" and (sep == nil or type(sep) == "string")
      and #s + #(sep or "") == 0 then
      return ""
    end
    return raw.rep(s, n, sep)
  end,
}
-- Installed in the state's string table, so s:find(...) is covered too; the
-- checks only apply while policy code runs (M.active).
for k, f in pairs(wrapped) do string[k] = f end

-- table.insert, table.remove and table.move shift or copy element by
-- element in C: with a faked length (__len) or a huge range and nothing
-- stored, they loop for ages without allocating or meeting the hook.
local MAX_SHIFT = 1 << 24
local function shift_limit(name, n)
  if math.type(n) == "integer" and (n > MAX_SHIFT or n < -MAX_SHIFT) then
    error(("table.%s: %d elements is more than a policy may shift (%d)"):format(name, n, MAX_SHIFT), 3)
  end
end
local table_wrapped = {
  insert = function(t, ...)
    if select("#", ...) == 2 then shift_limit("insert", #t) end
    return table_raw.insert(t, ...)
  end,
  remove = function(t, ...)
    shift_limit("remove", #t)
    return table_raw.remove(t, ...)
  end,
  move = function(a1, f, e, t, a2)
    if math.type(f) == "integer" and math.type(e) == "integer" and e >= f then
      shift_limit("move", e - f)
    end
    return table_raw.move(a1, f, e, t, a2)
  end,
}

---------------------------------------------------------------------------
-- The environment

-- What policies reach through string.* and a string's methods: no dump.
local string_lib = {}
for k, v in pairs(string) do
  if k ~= "dump" then string_lib[k] = v end
end

-- Strings share one metatable with the host: lock it, and index a copy of
-- the string library without string.dump (the host's string table keeps
-- it; ("").dump is nil).
do
  local mt = getmetatable("")
  if mt then
    local methods = {}
    for k, v in pairs(string_lib) do methods[k] = v end
    rawset(mt, "__index", methods)
    if rawget(mt, "__metatable") == nil then rawset(mt, "__metatable", "string") end
  end
end

-- The metatable json.array marks tables with is shared by every file:
-- lock it (getmetatable(chatapp.json.array{}) gives a name, not the table).
local array_mt = debug.getmetatable(core.json_array({}))
if array_mt and rawget(array_mt, "__metatable") == nil then
  rawset(array_mt, "__metatable", "chatapp.json.array")
end

-- json.array as policies see it: only a table without a metatable (or one
-- it already marked), never a read-only view or another file's object.
local function policy_json_array(t)
  if t == nil then return core.json_array({}) end
  if type(t) ~= "table" then
    error(("chatapp.json.array expects a table, not a %s"):format(type(t)), 2)
  end
  local mt = debug.getmetatable(t)
  if mt ~= nil and mt ~= array_mt then
    error("chatapp.json.array: the table already has a metatable", 2)
  end
  return core.json_array(t)
end

-- Policies see a read-only view of the chatapp module without its host
-- side: no chatapp.core (commands, files, the sandbox itself), no clients
-- (policies plan API calls; the runner makes them), no Policy metatable.
local policy_api = { "version", "policy", "unknown_value" }

local function chatapp_view()
  local t = {}
  for _, k in ipairs(policy_api) do t[k] = chatapp[k] end
  local enum_views = {}
  t.enum_for_field = function(field)
    local e = chatapp.enum_for_field(field)
    if e == nil then return nil end
    enum_views[field] = enum_views[field] or frozen_tree("enum " .. tostring(field), e)
    return enum_views[field]
  end
  t.fields = frozen_tree("chatapp.fields", chatapp.fields)
  t.enums = frozen_tree("chatapp.enums", chatapp.enums)
  for name in pairs(chatapp.enums) do t[name] = chatapp[name] end
  local json = {}
  for k, v in pairs(chatapp.json) do json[k] = v end
  json.array = policy_json_array
  t.json = frozen("chatapp.json", json)
  return frozen("chatapp", t)
end

local coroutine_lib = {}
for k, v in pairs(coroutine) do coroutine_lib[k] = v end

local function shared()
  local tbl = {}
  for k, v in pairs(table) do tbl[k] = table_wrapped[k] or v end
  return {
    math = frozen("math", math),
    string = frozen("string", string_lib),
    table = frozen("table", tbl),
    utf8 = frozen("utf8", utf8),
    coroutine = frozen("coroutine", coroutine_lib),
  }
end

local basics = {
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select",
  "tonumber", "tostring", "type", "rawequal", "rawlen",
  "getmetatable", "_VERSION",
}

local safe_collectgarbage = function(opt)
  if opt == nil or opt == "count" or opt == "step" or opt == "collect" then
    return collectgarbage(opt)
  end
  error(("collectgarbage(%q) is not available to policies"):format(tostring(opt)), 2)
end

-- Finalizers run with the hook off, wherever the collector happens to be
-- (often outside any policy call): no __gc in a policy's metatables.
local function safe_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc finalizers are not available to policies", 2)
  end
  return setmetatable(t, mt)
end

-- A message handler runs where the error was raised; when the hook raised
-- it (the budget ran out), Lua leaves hooks off there, so a handler could
-- loop for ever.  Policies get xpcall's result with the handler called
-- after the protected call has returned, under the budget.
local function safe_xpcall(f, handler, ...)
  if type(handler) ~= "function" then
    error("xpcall: the message handler must be a function", 2)
  end
  local r = table.pack(pcall(f, ...))
  if r[1] then return table.unpack(r, 1, r.n) end
  local _, v = pcall(handler, r[2])
  return false, v
end

-- The same for to-be-closed variables of a coroutine the budget stopped:
-- coroutine.wrap and coroutine.close would run their __close with hooks
-- off.  A coroutine that failed is left dead without closing them.
local failed_threads = setmetatable({}, { __mode = "k" })

local function safe_resume(co, ...)
  local r = table.pack(coroutine.resume(co, ...))
  if not r[1] then failed_threads[co] = true end
  return table.unpack(r, 1, r.n)
end

local function safe_wrap(f)
  local co = coroutine.create(f)
  return function(...)
    local r = table.pack(safe_resume(co, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    error(r[2], 0)
  end
end

local function safe_close(co)
  if failed_threads[co] then return true end
  return coroutine.close(co)
end
coroutine_lib.resume = safe_resume
coroutine_lib.wrap = safe_wrap
coroutine_lib.close = safe_close

--- A fresh environment, with fresh read-only views of the shared tables.
--- print goes to log(line).
function M.env(log)
  local env = {}
  for _, k in ipairs(basics) do env[k] = _G[k] end
  for k, v in pairs(shared()) do env[k] = v end
  env.setmetatable = safe_setmetatable
  env.xpcall = safe_xpcall
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
  local view = chatapp_view()
  env.require = function(name)
    if name == "chatapp" then return view end
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

-- tostring of an error value, run under the budget (its __tostring or
-- __name is policy code); never raises.
local function error_text(budget, v)
  local t = type(v)
  if t == "string" then return v end
  if t ~= "table" and t ~= "userdata" then return tostring(v) end
  local ok, s = core.sandbox_call(budget, function(x)
    local r = tostring(x)
    if type(r) ~= "string" then error("not a string") end
    return r
  end, v)
  if ok and type(s) == "string" then return s end
  return ("(error object is a %s value)"):format(t)
end

--- Call a policy function under its budget: true, results... or false,
--- message, kind ("memory" | "instructions" | "error"), scope ("run" when
--- the run's total was the limit), info.  The message is always a string:
--- the value the policy raised never leaves here (its fields and
--- metamethods are policy code).  For an error chatapp.policy raised, the
--- message is its recorded text and info its record ({message, token,
--- where}, runner-owned: chatapp.policy_error_info).
function M.call(budget, fn, ...)
  local was = M.active
  M.active = true
  local r = table.pack(core.sandbox_call(budget, fn, ...))
  if not r[1] then
    local info = chatapp.policy_error_info(r[2])
    if info then
      -- where the stack knew it, else the file the budget belongs to
      local where = info.where or (budget.file and budget.file .. ": ") or ""
      r[2], r[5], r.n = where .. info.message, info, 5
    else
      r[2] = error_text(budget, r[2])
      -- The traceback ends where the policy was called: the runner's own
      -- frames below that say nothing to the policy's author.
      M.active = false
      r[2] = r[2]:gsub("\n%s*%[C%]: in function 'chatapp%.core%.sandbox_call'.*$", "")
    end
  end
  M.active = was
  return table.unpack(r, 1, r.n)
end

return M
