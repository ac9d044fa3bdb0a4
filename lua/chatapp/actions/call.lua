--- The call action: any CAMS operation, signed and sent under the shared
--- limiter.
--
--   plan:call(operation, params)          (or plan:call{operation=, params=})
--   plan:update_phone_webhook{up_callback_url=, status_callback_url=,
--                             http_flag=, queue_flag=}
--
-- update_phone_webhook is a call to UpdatePhoneWebhook for the number
-- being decided; it keeps the current URLs (`current`) for the dry run.
-- Calls go out concurrently (client:batch); known writes and unknown
-- operations are retried only when that is safe (the client decides from
-- `write`).

local chatapp = require "chatapp"
local core = chatapp.core
local lib = require "chatapp.actions.lib"

local K = { kind = "call", concurrent = true }

local operations = core.operations()
local NAME = "^[A-Z][A-Za-z0-9]+$"

-- What the client knows of the operation: a write (or unknown), known.
local function facts(operation)
  local info = operations[operation]
  return not info or info.write, info ~= nil
end

-- extra: frames between the kind's plan method and this function.
local function call_action(P, operation, params, current, extra)
  local flat_ok, flat = pcall(core.flatten_params, params)
  if not flat_ok then lib.fail("plan:call: " .. tostring(flat), extra + 1) end
  local write, known = facts(operation)
  local action = P.add({
    kind = "call",
    request = { operation = operation, params = flat },
    write = write, known = known, current = current,
  }, extra + 1)
  return action
end

K.methods = {}

function K.methods.call(P, operation, params)
  if type(operation) == "table" and params == nil then
    operation, params = operation.operation, operation.params
  end
  if type(operation) ~= "string" or not operation:match(NAME) then
    lib.fail(("plan:call: operation must be a CAMS operation name such as UpdatePhoneWebhook, not %s")
      :format(tostring(operation)))
  end
  params = params or {}
  lib.check_table(params, "plan:call parameters")
  local action = call_action(P, operation, params, nil, 0)
  return action
end

local FLAGS = { Y = true, N = true }

--- UpdatePhoneWebhook for the number being decided; in a dry run the
--- report shows the current value beside each new one.
function K.methods.update_phone_webhook(P, spec)
  lib.check_table(spec, "plan:update_phone_webhook")
  local n = P.number
  if not n then lib.fail("plan:update_phone_webhook needs a number (use it in decide)") end
  local params = { PhoneNumber = n.phone_number, CustSpaceId = n.cust_space_id }
  local current = {}
  local fields = {
    up_callback_url = { "UpCallbackUrl", n.up_callback_url },
    status_callback_url = { "StatusCallbackUrl", n.status_callback_url },
    http_flag = { "HttpFlag" },
    queue_flag = { "QueueFlag" },
  }
  local any = false
  for k, v in pairs(spec) do
    local f = fields[k]
    if not f then
      local names = { "up_callback_url", "status_callback_url", "http_flag", "queue_flag" }
      lib.fail(("plan:update_phone_webhook: unknown key %q%s (%s)")
        :format(tostring(k), chatapp.did_you_mean(tostring(k), names), table.concat(names, ", ")))
    end
    if type(v) ~= "string" then lib.fail(("plan:update_phone_webhook: %s must be a string"):format(k)) end
    if (k == "http_flag" or k == "queue_flag") and not FLAGS[v] then
      lib.fail(("plan:update_phone_webhook: %s must be \"Y\" or \"N\""):format(k))
    end
    params[f[1]] = v
    if k:match("url$") then current[f[1]] = f[2] or "" end
    any = true
  end
  if not any then lib.fail("plan:update_phone_webhook: nothing to update") end
  if not params.CustSpaceId then
    lib.fail(("plan:update_phone_webhook: the space of number %s is not known; run with --spaces and "
      .. "give your own numbers' space id (your instance id) there"):format(n.phone_number))
  end
  local action = call_action(P, "UpdatePhoneWebhook", params, current, 0)
  return action
end

function K.validate(a)
  local r = a.request
  if type(r.operation) ~= "string" or not r.operation:find(NAME) then
    return "call operation must be a CAMS operation name"
  end
  if not lib.str_map(r.params) then return "call parameters must be flattened strings" end
  if a.current ~= nil and not lib.str_map(a.current) then return "call current values must be strings" end
end

--- The id: the operation and its parameters.
function K.identity(r)
  return lib.without(r, {})
end

function K.run(actions, ctx, x)
  local client, err = ctx.client()
  if not client then
    for _, a in ipairs(actions) do x.failed(a, err) end
    return
  end
  local reqs = {}
  for i, a in ipairs(actions) do
    reqs[i] = { operation = a.request.operation, params = a.request.params, typed = false }
  end
  local results, errors = client:batch(reqs, { progress = ctx.progress and "calling the API" })
  for i, a in ipairs(actions) do
    if results[i] then
      a.status = "done"
      a.result = { request_id = results[i].RequestId, code = results[i].Code }
    elseif (errors[i].attempts or 0) == 0 and x.interrupted() then
      x.not_started(a, x.interrupted())
    else
      x.failed(a, errors[i])
      a.result = { code = errors[i].code, request_id = errors[i].request_id,
                   outcome_unknown = errors[i].outcome_unknown }
    end
  end
end

function K.describe(a)
  return a.request.operation
end

function K.request_view(a)
  return { operation = a.request.operation, params = a.request.params, write = a.write }
end

function K.outcome(a)
  local id = a.result and a.result.request_id
  if id then return ("RequestId %s"):format(id) end
end

-- Sorted "k=v" pairs of a flat table.
local function pairs_line(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = ("%s=%s"):format(k, t[k]) end
  return table.concat(keys, " ")
end

--- The parameters, then each changed value beside the current one.
function K.dry_run_lines(a, view)
  local lines = { pairs_line(view.params) }
  local names = {}
  for k in pairs(a.current or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    lines[#lines + 1] = ('%s: "%s" -> "%s"'):format(k, a.current[k], view.params[k])
  end
  return lines
end

--- Storage: the request and the current values; whether it is a write
--- is decided again when it is read back (by this version's operations).
function K.to_record(a)
  return { request = lib.copy(a.request), current = lib.copy(a.current) }
end

function K.from_record(rec)
  local r = rec.request
  local write, known = facts(type(r) == "table" and r.operation)
  return { kind = "call", request = lib.copy(r), current = lib.copy(rec.current),
           write = write, known = known }
end

return K
