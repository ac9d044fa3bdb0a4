--- The lua action: a function of the policy, run in its sandbox (its
--- file's budget) when applying, never in a dry run; one at a time.
--
--   plan:lua(function(n) ... end [, name])      (alias plan:run)
--
-- The function lives only in the run that planned it: a record keeps its
-- name, and from_record refuses it (there is nothing to run).

local lib = require "chatapp.actions.lib"
local sandbox = require "chatapp.sandbox"

local K = { kind = "lua", concurrent = false }

K.methods = {}

function K.methods.lua(P, fn, name)
  if type(fn) ~= "function" then lib.fail("plan:lua expects a function") end
  if name ~= nil and type(name) ~= "string" then lib.fail("plan:lua: the name must be a string") end
  local info = debug.getinfo(fn, "S")
  local action = P.add {
    kind = "lua", fn = fn,
    request = { name = name or ("function at %s:%d"):format(info.short_src, info.linedefined) },
  }
  return action
end
K.methods.run = K.methods.lua

function K.validate(a)
  if type(a.fn) ~= "function" then return "lua action needs a function" end
  if type(a.request.name) ~= "string" then return "lua action name must be a string" end
end

--- The id: the function's name (or where it is defined).
function K.identity(r)
  return { name = r.name }
end

function K.run(actions, ctx, x)
  for _, a in ipairs(actions) do
    if x.interrupted() then
      x.not_started(a, x.interrupted())
    else
      local ok, err = sandbox.call(ctx.budget(a.policy), a.fn, a.number)
      if ok then
        a.status = "done"
      else
        x.failed(a, err)
      end
    end
  end
end

function K.describe(a)
  return a.request.name
end

function K.request_view(a)
  return { ["function"] = a.request.name }
end

function K.dry_run_lines()
  return {}
end

function K.to_record(a)
  return { request = { name = a.request.name } }
end

function K.from_record(rec)
  local name = type(rec.request) == "table" and rec.request.name
  return nil, ("lua action %s cannot be read back: its function lives only in the run that planned it")
    :format(type(name) == "string" and name or "?")
end

return K
