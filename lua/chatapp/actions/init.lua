--- The action kinds: the one list of what a plan can hold.
--
-- ADDING AN ACTION KIND: write lua/chatapp/actions/<kind>.lua (the
-- interface below; webhook.lua is a full example), add its name to KINDS,
-- and add its cases to tests/lua/test_actions.lua (plan method, checks,
-- run, report, a record round trip).  plan.lua, executor.lua and
-- report.lua iterate this registry and need no change; the build embeds
-- and installs every file of this folder.  docs/internals/actions.md
-- says more.
--
-- A kind module returns a table K:
--   K.kind             its name (the `kind` of its actions)
--   K.methods          { name = function(P, ...) }: the plan methods policies
--                      call (plan:name(...)); P.number, P.space (nil in
--                      finish), P.add(action [, extra]) -> the policy's copy.
--                      Errors go through lib.fail (the policy's file:line).
--   K.validate(a)      nil, or why the action cannot be carried out (every
--                      action is checked when planned and when read back)
--   K.identity(r)      the part of the request the action's id is made of
--   K.concurrent       true: the executor hands K.run slices of M.SLICE
--                      actions; false: the whole run of consecutive actions
--   K.run(actions, ctx, x)  carry them out: set status "done" / "failed"
--                      (x.failed) / "skipped"; x.interrupted() and
--                      x.not_started(a, why) for signals
--   K.describe(a)      one line: what it does
--   K.request_view(a)  the request as data, secrets redacted (JSON, dry run)
--   K.outcome(a)       optional: shown after the status ("HTTP 200")
--   K.dry_run_lines(a, view)  lines under the action in a text dry run
--   K.report_line(a)   optional: the whole text line instead of the usual
--   K.counted          false: not counted as an action (log)
--   K.done_in_dry_run  true: "done" in a dry run too (log)
--   K.retry_later(a)   optional: true when a failed action is worth another
--                      try by the next run (the outbox keeps it pending)
--   K.to_record(a)     the kind's part of a stored record (plain data)
--   K.from_record(rec) an action from that part, or nil and why
--
-- M.register(K) checks K against this interface (the loader registers
-- KINDS with it; a test may register a kind of its own).  lib.lua holds
-- helpers the kinds share; it is not a kind.

local core = require "chatapp.core"
local chatapp = require "chatapp"

local M = {}

--- The kinds, in the order they are listed to users.
M.KINDS = { "webhook", "call", "exec", "lua", "log" }

--- The record format written by to_record.
M.RECORD_VERSION = 1

local REQUIRED = { "methods", "validate", "identity", "run", "describe", "request_view",
                   "dry_run_lines", "to_record", "from_record" }

M.kinds = {}   -- name -> K
M.methods = {} -- plan method name -> { kind = K, fn = function(P, ...) }

--- Add a kind (the loader below does it for KINDS; tests add their own).
--- Raises when K lacks part of the interface or reuses a name.
function M.register(K)
  local name = K.kind
  if type(name) ~= "string" or not name:find("^[%l_][%l%d_]*$") then
    error(("an action kind needs a name (lowercase letters, digits, _), not %s"):format(tostring(name)), 2)
  end
  for _, f in ipairs(REQUIRED) do
    if K[f] == nil then error(("action kind %s has no %s"):format(name, f), 2) end
  end
  if M.kinds[name] and M.kinds[name] ~= K then error(("action kind %s is defined twice"):format(name), 2) end
  for method in pairs(K.methods) do
    local other = M.methods[method]
    if other and other.kind ~= K then
      error(("plan method %s is defined by kinds %s and %s"):format(method, other.kind.kind, name), 2)
    end
  end
  M.kinds[name] = K
  for method, fn in pairs(K.methods) do M.methods[method] = { kind = K, fn = fn } end
  local listed = false
  for _, k in ipairs(M.KINDS) do listed = listed or k == name end
  if not listed then M.KINDS[#M.KINDS + 1] = name end
  return K
end

for _, name in ipairs(M.KINDS) do
  local K = require("chatapp.actions." .. name)
  assert(K.kind == name, ("chatapp.actions.%s says its kind is %s"):format(name, tostring(K.kind)))
  M.register(K)
end

--- The kind of an action kind name, or nil.
function M.get(kind)
  return type(kind) == "string" and M.kinds[kind] or nil
end

--- The plan methods, sorted.
function M.method_names()
  local list = {}
  for name in pairs(M.methods) do list[#list + 1] = name end
  table.sort(list)
  return list
end

--- Edit distance: chatapp.distance (one nearest-name rule everywhere).
M.distance = chatapp.distance

--- The plan method nearest to name, when one is near enough to be a typo.
function M.suggest(name)
  return chatapp.suggest(name, M.method_names())
end

-- A method no typo explains, but whose name says what it is for: alerts
-- and notifications go out as webhooks.
local function hint(name)
  if type(name) ~= "string" then return nil end
  local l = name:lower()
  for _, w in ipairs { "page", "alert", "notify", "notification", "slack", "pager", "send", "post", "http",
                       "oncall", "email", "sms", "message", "teams" } do
    if l:find(w, 1, true) then return "webhook" end
  end
  return nil
end

--- The message for a plan method that does not exist.
function M.unknown_method(name)
  local near = M.suggest(name)
  local why = ""
  if not near then
    near = hint(name)
    if near then why = " (alerts and notifications go out as webhooks)" end
  end
  local kinds = {}
  for i, k in ipairs(M.KINDS) do kinds[i] = k end
  return ("plan has no method %s%s; plan methods: %s (action kinds: %s)"):format(
    tostring(name), near and ("; did you mean plan:" .. near .. "?" .. why) or "",
    table.concat(M.method_names(), ", "), table.concat(kinds, ", "))
end

--- nil when action is one the executor can carry out, else why not.
function M.validate(action)
  if type(action) ~= "table" then return "an action must be a table" end
  local K = M.get(action.kind)
  if not K then
    return ("unknown action kind %s (known: %s)"):format(tostring(action.kind), table.concat(M.KINDS, ", "))
  end
  if type(action.request) ~= "table" then return "an action needs a request table" end
  return K.validate(action)
end

--- The deterministic id of an action: the same policy, subject and request
--- give the same id in every run (the webhook's Idempotency-Key).
function M.action_id(policy, space_id, phone, kind, request)
  local K = assert(M.get(kind), "unknown action kind")
  local canonical = core.json_encode { policy = policy, space = space_id or "", number = phone or "",
                                       kind = kind, request = K.identity(request) }
  return core.sha256_hex(canonical):sub(1, 32)
end

function M.id(action)
  return M.action_id(action.policy, action.space and action.space.cust_space_id, action.phone_number,
                     action.kind, action.request)
end

---------------------------------------------------------------------------
-- Storage

-- Records are JSON: a string that is not UTF-8 (a binary body or stdin)
-- is kept as { bytes_hex = "..." }, which no request holds otherwise.
local function to_plain(v)
  if type(v) == "string" then
    if utf8.len(v) then return v end
    return { bytes_hex = (v:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) }
  end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in next, v do t[k] = to_plain(x) end
  return t
end

local function from_plain(v)
  if type(v) ~= "table" then return v end
  local hex = v.bytes_hex
  if type(hex) == "string" and next(v, next(v)) == nil and #hex % 2 == 0 and not hex:find("[^%x]") then
    return (hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
  end
  local t = {}
  for k, x in next, v do t[k] = from_plain(x) end
  return t
end

--- The action as plain, JSON-encodable data: what it is, whose, and
--- where it stands.
function M.to_record(a)
  local K = M.get(a.kind)
  if not K then return nil, ("unknown action kind %s"):format(tostring(a.kind)) end
  local rec = to_plain(K.to_record(a))
  rec.v = M.RECORD_VERSION
  rec.kind = a.kind
  rec.id = a.id
  rec.policy = a.policy
  rec.phone_number = a.phone_number
  rec.space = a.space and a.space.cust_space_id
  rec.space_label = a.space and a.space.label
  rec.status = a.status
  return rec
end

--- An action from a record, checked again as when it was planned (and
--- its id against its content, unless keep_id: the record's parts were
--- filled in again, e.g. from the environment, and its id stays); nil and
--- why when it cannot be.
function M.from_record(rec, keep_id)
  if type(rec) ~= "table" then return nil, "an action record must be a table" end
  if rec.v ~= M.RECORD_VERSION then
    return nil, ("action record version %s is not %d"):format(tostring(rec.v), M.RECORD_VERSION)
  end
  local K = M.get(rec.kind)
  if not K then
    return nil, ("unknown action kind %s in a record (known: %s)"):format(tostring(rec.kind),
      table.concat(M.KINDS, ", "))
  end
  for _, f in ipairs { "policy", "id" } do
    if type(rec[f]) ~= "string" then return nil, ("action record: %s must be a string"):format(f) end
  end
  for _, f in ipairs { "phone_number", "space", "space_label", "status" } do
    if rec[f] ~= nil and type(rec[f]) ~= "string" then
      return nil, ("action record: %s must be a string"):format(f)
    end
  end
  rec = from_plain(rec)
  local ok, a, err = pcall(K.from_record, rec)
  if not ok then return nil, ("%s record: %s"):format(rec.kind, tostring(a)) end
  if not a then return nil, err end
  a.kind = rec.kind
  a.policy = rec.policy
  a.phone_number = rec.phone_number
  if rec.space or rec.space_label then a.space = { cust_space_id = rec.space, label = rec.space_label } end
  a.status = rec.status or "planned"
  local why = M.validate(a)
  if why then return nil, "action record: " .. why end
  a.id = M.id(a)
  if keep_id then
    a.id = rec.id
  elseif a.id ~= rec.id then
    return nil, ("action record %s: its id does not match its content (changed, or written by another version)")
      :format(rec.id)
  end
  return a
end

return M
