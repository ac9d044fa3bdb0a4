--- The exec action: a command, no shell; carried out only with
--- --allow-exec (skipped otherwise), one at a time, in plan order.
--
--   plan:exec{argv={...}, stdin=s, timeout_ms=10000}
--
-- Commands get an environment without the secret variables and their
-- output is redacted (core.exec).

local core = require "chatapp.core"
local lib = require "chatapp.actions.lib"

local K = { kind = "exec", concurrent = false }

local MAX_TIMEOUT = 3600000

K.methods = {}

function K.methods.exec(P, spec)
  lib.check_table(spec, "plan:exec")
  lib.check_keys(spec, "plan:exec", { "argv", "stdin", "timeout_ms" })
  local argv = spec.argv
  if type(argv) ~= "table" or #argv == 0 then lib.fail("plan:exec: argv must be a non-empty list of strings") end
  local copy = {}
  for i, a in ipairs(argv) do
    if type(a) ~= "string" or a:find("\0", 1, true) then
      lib.fail(("plan:exec: argv[%d] must be a string without NUL"):format(i))
    end
    copy[i] = a
  end
  if spec.stdin ~= nil and type(spec.stdin) ~= "string" then lib.fail("plan:exec: stdin must be a string") end
  local timeout = spec.timeout_ms or 10000
  if not lib.is_int(timeout, 1, MAX_TIMEOUT) then
    lib.fail(("plan:exec: timeout_ms must be a whole number from 1 to %d"):format(MAX_TIMEOUT))
  end
  local action = P.add { kind = "exec", request = { argv = copy, stdin = spec.stdin, timeout_ms = timeout } }
  return action
end

function K.validate(a)
  local r = a.request
  if type(r.argv) ~= "table" or #r.argv == 0 then return "exec argv must be a non-empty list" end
  for i, v in ipairs(r.argv) do
    if type(v) ~= "string" or v:find("\0", 1, true) then
      return ("exec argv[%d] must be a string without NUL"):format(i)
    end
  end
  if r.stdin ~= nil and type(r.stdin) ~= "string" then return "exec stdin must be a string" end
  if not lib.is_int(r.timeout_ms, 1, MAX_TIMEOUT) then return "exec timeout_ms out of range" end
end

--- The id: the command and its input, not its timeout.
function K.identity(r)
  return lib.without(r, { "timeout_ms" })
end

--- One by one; a signal stops before the next command starts.
function K.run(actions, ctx, x)
  for _, a in ipairs(actions) do
    if x.interrupted() then
      x.not_started(a, x.interrupted())
    elseif not ctx.allow_exec then
      a.status = "skipped"
      a.reason = "exec actions run only with --allow-exec"
    else
      local r, err = core.exec {
        argv = a.request.argv, stdin = a.request.stdin, timeout_ms = a.request.timeout_ms,
      }
      if not r then
        x.failed(a, err)
      else
        a.result = { exit_status = r.status, signal = r.signal, output = r.output,
                     truncated = r.truncated or nil }
        if r.timed_out then
          x.failed(a, ("killed after %d ms"):format(a.request.timeout_ms))
        elseif r.signal then
          x.failed(a, ("killed by signal %d"):format(r.signal))
        elseif r.status ~= 0 then
          x.failed(a, ("exited with status %d"):format(r.status))
        else
          a.status = "done"
        end
      end
    end
  end
end

function K.describe(a)
  return table.concat(a.request.argv, " ")
end

function K.request_view(a)
  local r = a.request
  return { argv = r.argv, stdin_bytes = r.stdin and #r.stdin or nil }
end

function K.dry_run_lines(_, view)
  if view.stdin_bytes then return { ("stdin: %d bytes"):format(view.stdin_bytes) } end
  return {}
end

function K.to_record(a)
  return { request = lib.copy(a.request) }
end

function K.from_record(rec)
  return { kind = "exec", request = lib.copy(rec.request) }
end

return K
