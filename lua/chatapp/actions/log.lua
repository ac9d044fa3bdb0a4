--- The log action: a line in the report.  Not counted as an action, and
--- "done" in a dry run too (there is nothing to send).
--
--   plan:log(fmt, ...)           string.format(fmt, ...) when args follow

local lib = require "chatapp.actions.lib"

local K = { kind = "log", concurrent = false, counted = false, done_in_dry_run = true }

K.methods = {}

function K.methods.log(P, message, ...)
  if select("#", ...) > 0 then message = string.format(message, ...) end
  if type(message) ~= "string" then lib.fail("plan:log expects a message string") end
  local action = P.add { kind = "log", request = { message = message } }
  return action
end

function K.validate(a)
  if type(a.request.message) ~= "string" then return "log message must be a string" end
end

function K.identity(r)
  return lib.without(r, {})
end

function K.run(actions)
  for _, a in ipairs(actions) do a.status = "done" end
end

function K.describe(a)
  return a.request.message
end

function K.request_view(a)
  return { message = a.request.message }
end

--- The whole line in the text report (in place of kind, target, status).
function K.report_line(a)
  return "log: " .. a.request.message
end

function K.dry_run_lines()
  return {}
end

function K.to_record(a)
  return { request = { message = a.request.message } }
end

function K.from_record(rec)
  return { kind = "log", request = lib.copy(rec.request) }
end

return K
