--- The chatapp module: what policies and Lua scripts use.
--
--   local chatapp = require "chatapp"
--   return chatapp.policy { name = ..., where = ..., filter = ..., decide = ... }
--
-- Built on "chatapp.core" (C): the API client, PhoneNumber values, JSON.
-- Reference: docs/lua-api.md.

local core = require "chatapp.core"

local M = {
  core = core,
  version = core.version,
  client = core.client,
  ApiError = core.ApiError,
  fields = core.phone_fields,
}

---------------------------------------------------------------------------
-- Did you mean: the one nearest-name rule of the product (plan methods,
-- enum constants, where keys and values, state options use it).

--- Edit distance (insertions, deletions, substitutions; a swap of two
--- neighbours counts one): the C one (ca_suggest.c), which PhoneNumber's
--- field errors use too; strings of 63 bytes or more are 99 apart.
M.distance = core.edit_distance

-- How far word is from name: case ignored; a word near a "_" prefix of
-- name counts too ("qualty" for quality_rating), when it is long enough to
-- mean something.
local function nearness(word, name)
  local w, n = word:lower(), name:lower()
  local d = M.distance(w, n)
  if #w >= 4 then
    local from = 1
    while true do
      local i = n:find("_", from, true)
      if not i then break end
      d = math.min(d, M.distance(w, n:sub(1, i - 1)) + 1)
      from = i + 1
    end
  end
  return d
end

-- Words people use for a value under another name (Meta's dashboard
-- says High/Medium/Low quality; traffic lights have amber).
local aliases = {
  AMBER = "YELLOW", ORANGE = "YELLOW", HIGH = "GREEN", MEDIUM = "YELLOW", LOW = "RED",
}

--- The name of names (a list) nearest to word, when one is near enough to
--- be a typo or a case slip; nil otherwise.  Ties go to the earlier name.
function M.suggest(word, names)
  if type(word) ~= "string" or word == "" or #word > 64 then return nil end
  local alias = aliases[word:upper()]
  if alias then
    for _, name in ipairs(names) do if name == alias then return name end end
  end
  local best, best_d
  for _, name in ipairs(names) do
    if type(name) == "string" then
      local d = nearness(word, name)
      if not best_d or d < best_d then best, best_d = name, d end
    end
  end
  if best_d and best_d <= math.max(2, #word // 3) then return best end
  return nil
end

--- "; did you mean X?" for word among names, or "".
function M.did_you_mean(word, names, prefix)
  local near = M.suggest(word, names)
  if not near then return "" end
  return ("; did you mean %s%s?"):format(prefix or "", near)
end

-- A read-only table that raises on a key it does not have, so a typo in a
-- constant (chatapp.Status.FLAGED) fails loudly instead of reading nil.
-- names: the valid keys, in the order they are listed.
local function strict(name, t, names)
  if type(names) == "string" then -- a comma-separated list, as before
    local list = {}
    for k in names:gmatch("[^,%s]+") do list[#list + 1] = k end
    names = list
  end
  local known = table.concat(names, ", ")
  return setmetatable({}, {
    __index = function(_, k)
      local v = t[k]
      if v == nil then
        error(("%s has no member %q%s (known: %s)"):format(name, tostring(k),
          M.did_you_mean(tostring(k), names, name .. "."), known), 2)
      end
      return v
    end,
    __newindex = function(_, k)
      error(("%s is read-only (tried to set %q)"):format(name, tostring(k)), 2)
    end,
    -- pairs walks t without handing it out (next, t would give it away)
    __pairs = function(view) return function(_, k) return next(t, k) end, view, nil end,
    __metatable = name,
  })
end
M.strict = strict

-- Enum constants: chatapp.Status.FLAGGED == "FLAGGED", and so on.  The
-- sets are open: the API may send values that are not listed here; those
-- reach policies as plain strings.
M.enums = {}
for name, e in pairs(core.enums) do
  local t = {}
  for _, v in ipairs(e.values) do t[v] = v end
  M[name] = strict("chatapp." .. name, t, e.values)
  M.enums[name] = e
end

-- Enum description by PhoneNumber field name (for where-clause checks).
local enum_by_field = {}
for name, e in pairs(core.enums) do enum_by_field[e.field] = { name = name, values = e.values, closed = e.closed } end
M.enum_for_field = function(field) return enum_by_field[field] end

local field_set = {}
for _, f in ipairs(core.phone_fields) do field_set[f] = true end

---------------------------------------------------------------------------
-- JSON

M.json = {
  --- null in arrays of decoded JSON (null object members are left out).
  null = core.json_null,
  --- Encode a value as JSON: keys sorted, integers exact; PhoneNumber
  --- values encode as the API shapes them.  Returns nil, message on error.
  encode = core.json_encode,
  --- Decode JSON text: integers stay integers, null members are absent,
  --- null array elements are chatapp.json.null.  nil, message on error.
  decode = core.json_decode,
  --- Mark a table to encode as an array even when empty (a table that
  --- already has a metatable is refused).
  array = core.json_array,
  --- The nesting limit of decode and encode (containers inside containers).
  max_depth = core.json_max_depth,
}

---------------------------------------------------------------------------
-- Policies

local policy_mt = { __name = "chatapp.Policy" }
policy_mt.__index = policy_mt

-- What getmetatable(policy) gives: a read-only stand-in for policy_mt, so
-- `getmetatable(p) == chatapp.Policy` holds while nobody can reach (and
-- change) the metatable every policy shares.
local function stand_in(name, methods)
  return setmetatable({}, {
    __index = methods,
    __newindex = function(_, k)
      error(("%s is read-only (tried to set %s)"):format(name, tostring(k)), 2)
    end,
    __metatable = name,
  })
end
M.Policy = stand_in("chatapp.Policy", policy_mt)
policy_mt.__metatable = M.Policy

-- The runner's own copy of each policy, by the object chatapp.policy
-- returned: what a policy file can still reach (the object, its spec) is
-- never what the runner reads or calls outside the sandbox.
local records = setmetatable({}, { __mode = "k" })

--- The runner-owned record of a policy object (nil for anything else):
--- { name, description, where, spaces, filter, decide, finish, warnings }.
function M.policy_record(p)
  if type(p) ~= "table" then return nil end
  return records[p]
end

-- A mistake in a policy's declaration.  `token` is the text to look for in
-- the source (a field name, a value) so the runner can give file:line even
-- when `return chatapp.policy {...}` is a tail call and the Lua stack no
-- longer knows the line.
local PolicyError = { __name = "chatapp.PolicyError" }
PolicyError.__tostring = function(e) return (e.where or "") .. e.message end
M.PolicyError = stand_in("chatapp.PolicyError", PolicyError)
PolicyError.__metatable = M.PolicyError

-- What each PolicyError said, kept apart from the value (which the policy
-- may catch and change).
local error_info = setmetatable({}, { __mode = "k" })

--- { message, token, where } of a value chatapp.policy raised, or nil.
function M.policy_error_info(e)
  if type(e) ~= "table" then return nil end
  return error_info[e]
end

local caller -- where chatapp.policy was called from, if the stack knows

local function policy_error(message, token)
  local e = setmetatable({ message = message, token = token, where = caller }, PolicyError)
  error_info[e] = { message = message, token = token, where = caller }
  error(e, 0)
end

-- Fields whose changes the state store tracks (n:changed, where.changed).
local tracked = {}
for _, f in ipairs(core.phone_tracked()) do tracked[f] = true end

-- chatapp.unknown_value "NEW_STATE": a where value the policy expects
-- although this runtime does not know it yet (the API adds values).
local unknown_values = setmetatable({}, { __mode = "k" })
local UnknownValue = { __name = "chatapp.unknown_value", __metatable = "chatapp.unknown_value" }
UnknownValue.__tostring = function(v) return ("chatapp.unknown_value %q"):format(unknown_values[v]) end

--- Mark a where value as one the runtime may not know yet, on purpose:
--- where = { status = chatapp.unknown_value "NEW_STATE" }.
function M.unknown_value(v)
  if type(v) ~= "string" or v == "" then
    error(("chatapp.unknown_value expects the value as a non-empty string, not %s"):format(type(v)), 2)
  end
  local marker = setmetatable({}, UnknownValue)
  unknown_values[marker] = v
  return marker
end

-- Check the values a where term wants of field (what = "where.status",
-- "where.became.status"): a value no enum of the field knows is an error
-- with the nearest known one, unless it is a chatapp.unknown_value.
-- Returns want with the markers replaced by their strings.
local function check_values(field, want, what)
  local single = type(want) ~= "table" or unknown_values[want] ~= nil
  local values = single and { want } or want
  if #values == 0 then
    policy_error(("policy '%s' is an empty list"):format(what), field)
  end
  local e = enum_by_field[field]
  for i, v in ipairs(values) do
    local expected = type(v) == "table" and unknown_values[v]
    if expected then
      values[i] = expected
    elseif type(v) ~= "string" and type(v) ~= "number" then
      policy_error(("policy '%s' values must be strings, not %s"):format(what, type(v)), field)
    elseif e then
      local known = false
      for _, k in ipairs(e.values) do if k == v then known = true end end
      if not known then
        policy_error(("policy '%s' value %q is not a known %s%s (known: %s); a value the API added "
          .. "after this version is written chatapp.unknown_value %q")
          :format(what, tostring(v), e.name, M.did_you_mean(tostring(v), e.values),
            table.concat(e.values, ", "), tostring(v)), tostring(v))
      end
    end
  end
  if single then return values[1] end
  return values
end

local function check_tracked(field, what)
  if type(field) ~= "string" or not tracked[field] then
    policy_error(("policy '%s' names %s, which is not a tracked field%s; tracked fields: %s")
      :format(what, tostring(field), M.did_you_mean(tostring(field), core.phone_tracked()),
        table.concat(core.phone_tracked(), ", ")), tostring(field))
  end
end

-- The terms of where that look at the previous run (docs/state.md).
local history_terms = {
  new = function(want)
    if type(want) ~= "boolean" then
      policy_error(("policy 'where.new' must be true or false, not a %s"):format(type(want)), "new")
    end
  end,
  changed = function(want)
    local list = type(want) == "table" and want or { want }
    if #list == 0 then policy_error("policy 'where.changed' is an empty list", "changed") end
    for _, f in ipairs(list) do check_tracked(f, "where.changed") end
  end,
  became = function(want)
    if type(want) ~= "table" or next(want) == nil or #want > 0 then
      policy_error("policy 'where.became' must be a table of field = value(s), "
        .. "like { quality_rating = \"RED\" }", "became")
    end
    for field, values in pairs(want) do
      check_tracked(field, "where.became")
      want[field] = check_values(field, values, "where.became." .. field)
    end
  end,
}

-- The names where may use: the fields, then the history terms.
local where_names = {}
for _, f in ipairs(core.phone_fields) do where_names[#where_names + 1] = f end
for _, t in ipairs { "new", "changed", "became" } do where_names[#where_names + 1] = t end

-- Check where (a copy the policy cannot reach) and replace its
-- chatapp.unknown_value markers by their strings.
local function check_where(where)
  if type(where) ~= "table" then
    policy_error(("policy 'where' must be a table of field = value(s), not a %s"):format(type(where)), "where")
  end
  for field, want in pairs(where) do
    if history_terms[field] then
      history_terms[field](want)
    elseif type(field) ~= "string" or not field_set[field] then
      policy_error(("policy 'where' names unknown field %s%s; fields: %s (and new, changed, became)")
        :format(tostring(field), M.did_you_mean(tostring(field), where_names),
          table.concat(core.phone_fields, ", ")), tostring(field))
    else
      where[field] = check_values(field, want, "where." .. field)
    end
  end
  return {}
end

--- Seconds in a duration: a whole number of seconds, or a string like
--- "90s", "15m", "24h", "7d".  nil and a message when it is not one.
function M.parse_duration(v)
  if math.type(v) == "integer" then
    if v > 0 then return v end
    return nil, "a duration must be positive"
  end
  if type(v) ~= "string" then return nil, ("a duration is a string like \"24h\", not a %s"):format(type(v)) end
  local secs = core.parse_duration(v)
  if not secs then
    return nil, ("%q is not a duration like \"90s\", \"15m\", \"24h\" or \"7d\""):format(v)
  end
  return secs
end

local allowed_keys = {
  name = "string", description = "string", where = "table",
  filter = "function", decide = "function", finish = "function",
  gone = "function", spaces = "table", remind = "string|number",
}

-- Raw copies of what a policy declared: no metamethod of the spec runs,
-- and later changes to the spec's tables change nothing.
local function copy_list(t)
  if type(t) ~= "table" or unknown_values[t] then return t end
  local c = {}
  for i = 1, rawlen(t) do c[i] = rawget(t, i) end
  return c
end

local function copy_where(where)
  if type(where) ~= "table" then return where end
  local c = {}
  for field, want in next, where do
    if field == "became" and type(want) == "table" then
      local b = {}
      for f, values in next, want do b[f] = copy_list(values) end
      c[field] = b
    else
      c[field] = copy_list(want)
    end
  end
  return c
end

--- Declare a policy.  Checked here, when the file loads: a bad field name
--- or value fails with the policy file's line, before any API call.
function M.policy(spec)
  local info = debug.getinfo(2, "Sl")
  caller = info and info.currentline > 0 and ("%s:%d: "):format(info.short_src, info.currentline) or nil
  if type(spec) ~= "table" then
    policy_error("chatapp.policy expects a table", "chatapp.policy")
  end
  local raw = {}
  for k, v in next, spec do
    local want = allowed_keys[k]
    if not want then
      local names = {}
      for n in pairs(allowed_keys) do names[#names + 1] = n end
      table.sort(names)
      policy_error(("policy has unknown key %q%s (allowed: %s)"):format(tostring(k),
        M.did_you_mean(tostring(k), names), table.concat(names, ", ")), tostring(k))
    end
    if not want:find(type(v), 1, true) then
      policy_error(("policy key %q must be a %s, not a %s"):format(k, want:gsub("|", " or "), type(v)), k)
    end
    raw[k] = v
  end
  if type(raw.name) ~= "string" or raw.name == "" then
    policy_error("policy needs a name (a non-empty string)", "chatapp.policy")
  end
  local spaces = copy_list(raw.spaces)
  for i, sp in ipairs(spaces or {}) do
    if type(sp) ~= "string" or sp == "" then
      policy_error(("policy spaces[%d] must be a space id or label (a non-empty string)"):format(i), "spaces")
    end
  end
  local where = copy_where(raw.where)
  local warnings = where and check_where(where) or {}
  local remind
  if raw.remind ~= nil then
    local why
    remind, why = M.parse_duration(raw.remind)
    if not remind then policy_error("policy 'remind': " .. why, "remind") end
  end
  local function build(w, sp)
    return {
      name = raw.name,
      description = raw.description,
      where = w,
      filter = raw.filter,
      decide = raw.decide,
      finish = raw.finish,
      gone = raw.gone,
      remind = remind,
      spaces = sp,
      warnings = copy_list(warnings),
    }
  end
  local p = setmetatable(build(copy_where(where), copy_list(spaces)), policy_mt)
  records[p] = build(where, spaces)
  return p
end

--- True when the policy runs over this space.
local function uses_space(self, space)
  if not self.spaces then return true end
  for _, s in ipairs(self.spaces) do
    if s == space.cust_space_id or s == space.label then return true end
  end
  return false
end

policy_mt.uses_space = uses_space
M.uses_space = uses_space

-- v is want, or one of the list want.
local function one_of(v, want)
  if type(want) ~= "table" then return v == want end
  for _, w in ipairs(want) do if v == w then return true end end
  return false
end

-- The history terms: n.previous is nil for a number seen for the first
-- time (and in every run that keeps no state).
local history_match = {
  new = function(n, want) return (n.previous == nil) == want end,
  changed = function(n, want)
    if type(want) ~= "table" then return (n:changed(want)) end
    for _, f in ipairs(want) do if n:changed(f) then return true end end
    return false
  end,
  became = function(n, want)
    local prev = n.previous
    for field, values in pairs(want) do
      if not one_of(n[field], values) then return false end
      if prev and one_of(prev[field], values) then return false end
    end
    return true
  end,
}

--- True when n satisfies the policy's where clause.
local function matches_where(self, n)
  local where = self.where
  if not where then return true end
  for field, want in pairs(where) do
    local term = history_match[field]
    if term then
      if not term(n, want) then return false end
    elseif not one_of(n[field], want) then
      return false
    end
  end
  return true
end

--- True when the policy looks at the previous run (where.new, .changed,
--- .became, remind or gone): it needs a run with state.
function M.uses_history(p)
  local w = p.where or {}
  return w.new ~= nil or w.changed ~= nil or w.became ~= nil or p.remind ~= nil or p.gone ~= nil
end
policy_mt.matches_where = matches_where
M.matches_where = matches_where

return M
