--- Plans: what a policy wants done, as data.
--
-- decide(n, plan) and finish(plan, numbers) add actions to a plan; the
-- runner carries them out afterwards (or, in a dry run, only shows them).
-- Every action is checked here, when it is planned, so a bad URL or a
-- missing argument fails in the policy with its file:line.
--
-- The plan methods are those of the action kinds (chatapp.actions: one
-- module per kind, its methods, checks, runner, report view and record);
-- this file holds none of its own:
--
--   plan:webhook{url=, method="POST", json=tbl | body=s, headers={}, timeout_ms=, attempts=}
--   plan:call(operation, params)               any CAMS operation
--   plan:update_phone_webhook{up_callback_url=, status_callback_url=,
--                             http_flag=, queue_flag=}
--   plan:exec{argv={...}, stdin=s, timeout_ms=}  only with --allow-exec
--   plan:lua(function(n) ... end)               only when applying
--   plan:log(message)                           a line in the report
--
-- A name the plan does not have raises, with the methods it has (and the
-- nearest one); names beginning with "_" read as nil.

local actions = require "chatapp.actions"
local lib = require "chatapp.actions.lib"

local M = {}

-- The plan object a policy gets is an empty table whose locked metatable
-- reaches the public methods only; its state (the policy, the runner's
-- `add`, the number in focus) lives here, out of the policy's reach.
local method_of -- the public method for a name the registry knows (below)
local plan_mt = {
  __index = function(_, k)
    local m = method_of(k)
    if m ~= nil then return m end
    if type(k) ~= "string" or k:sub(1, 1) == "_" then return nil end
    error(actions.unknown_method(k), 2)
  end,
  __newindex = function(_, k)
    error(("the plan is read-only (tried to set %s)"):format(tostring(k)), 2)
  end,
  __name = "chatapp.Plan",
  __metatable = "chatapp.Plan",
}
local states = setmetatable({}, { __mode = "k" })

M.MAX_ACTIONS = 10000 -- per policy and run

--- A plan for one policy; add(plan, action) receives each action and
--- returns it, or nil and a message (raised at the policy's line).
function M.new(policy, add)
  local plan = setmetatable({}, plan_mt)
  states[plan] = { policy = policy, add = add }
  return plan
end

--- Point the plan at the number being decided (nil for finish).
function M.focus(plan, n, space)
  local st = states[plan]
  st.n, st.space = n, space
end

local function state_of(plan)
  local st = type(plan) == "table" and states[plan] or nil
  if not st then error("a plan method was called without the plan (use plan:method(...), not plan.method(...))", 3) end
  return st
end

--- nil when action is one the executor can carry out, else why not.
M.validate = actions.validate

-- Check an action and hand it to the runner; errors name the policy line
-- (`depth` levels up: 5 from add through P.add, the kind's plan method and
-- the public method; the frames are kept: no tail calls).  The policy gets
-- a copy: the action the runner carries out stays as checked.
local function add(plan, action, depth)
  local st = states[plan]
  local why = M.validate(action)
  if why then error("plan: " .. why, depth) end
  local a, err = st.add(plan, action)
  if not a then error(err, depth) end
  return {
    id = a.id, kind = a.kind, policy = a.policy, phone_number = a.phone_number,
    status = a.status, request = lib.copy(a.request), write = a.write, known = a.known,
    current = lib.copy(a.current),
  }
end

-- The public methods: each calls its kind's method with P (the number in
-- focus and `add`).  Not a tail call: the kind counts on this frame.  Made
-- when first used and kept while the registry has the method, so a kind
-- registered later has its methods too.
local public = setmetatable({}, { __mode = "k" }) -- registry entry -> method

function method_of(name)
  local m = type(name) == "string" and actions.methods[name]
  if not m then return nil end
  if public[m] then return public[m] end
  local fn = m.fn
  public[m] = function(self, ...)
    local st = state_of(self)
    local P = {
      number = st.n, space = st.space,
      add = function(action, extra)
        local a = add(self, action, 5 + (extra or 0))
        return a
      end,
    }
    local a = fn(P, ...)
    return a
  end
  return public[m]
end

--- Finish an action planned for plan: subject, id.  Used by the runner's
--- `add`.
function M.complete(plan, action)
  local st = states[plan]
  local n, space = st.n, st.space
  action.policy = st.policy.name
  action.number = n
  action.space = space
  action.phone_number = n and n.phone_number or nil
  action.id = actions.id(action)
  action.status = "planned"
  return action
end

return M
