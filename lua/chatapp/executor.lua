--- Carry out a plan: webhooks and API calls concurrently (the API calls
--- under the shared limiter), commands and Lua functions one by one.
--
-- Actions run in plan order, a run of consecutive actions of the same kind
-- at a time.  An action's outcome lands on it: status "done", "failed"
-- (with error) or "skipped" (with reason); results are kept for the report.
--
-- Interruption (SIGINT / SIGTERM, seen through core.interrupted()): no new
-- action starts; concurrent kinds go out in slices of SLICE, so at most one
-- slice is in flight when the signal comes and it is let finish; every
-- action not started is "skipped" with the reason "interrupted".

local chatapp = require "chatapp"
local core = chatapp.core
local sandbox = require "chatapp.sandbox"
local report = require "chatapp.report"

local M = {}

--- Concurrent actions (webhooks, API calls) sent at a time between two
--- looks at core.interrupted().
M.SLICE = 16

local SIGNAL_NAMES = { [2] = "SIGINT", [15] = "SIGTERM", [1] = "SIGHUP" }

--- "interrupted (SIGTERM)" when the run was asked to stop, else nil.
function M.interrupted()
  local sig = core.interrupted()
  if not sig then return nil end
  return ("interrupted (%s)"):format(SIGNAL_NAMES[sig] or ("signal " .. sig))
end

local function not_started(a, why)
  a.status = "skipped"
  a.reason = "not started: " .. why
end

local function webhook_request(a)
  local r = a.request
  local headers = {}
  for k, v in pairs(r.headers) do headers[k] = v end
  headers["Idempotency-Key"] = headers["Idempotency-Key"] or a.id
  headers["User-Agent"] = headers["User-Agent"] or ("chatapp-run/" .. chatapp.version)
  return {
    url = r.url, method = r.method, headers = headers, body = r.body,
    timeout_ms = r.timeout_ms, max_attempts = r.attempts, idempotent = true,
  }
end

local function failed(a, err)
  a.status = "failed"
  a.error = report.text(err)
end

local runners = {}

function runners.webhook(actions, ctx)
  local http, err = ctx.http()
  if not http then
    for _, a in ipairs(actions) do failed(a, err) end
    return
  end
  local reqs = {}
  for i, a in ipairs(actions) do reqs[i] = webhook_request(a) end
  local results, errors = http:batch(reqs, { progress = ctx.progress and "sending webhooks" })
  for i, a in ipairs(actions) do
    if results[i] then
      a.status = "done"
      a.result = { http_status = results[i].status }
    elseif (errors[i].attempts or 0) == 0 and M.interrupted() then
      not_started(a, M.interrupted())
    else
      failed(a, errors[i])
      a.result = { http_status = errors[i].http_status, attempts = errors[i].attempts }
    end
  end
end

function runners.call(actions, ctx)
  local client, err = ctx.client()
  if not client then
    for _, a in ipairs(actions) do failed(a, err) end
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
    elseif (errors[i].attempts or 0) == 0 and M.interrupted() then
      not_started(a, M.interrupted())
    else
      failed(a, errors[i])
      a.result = { code = errors[i].code, request_id = errors[i].request_id,
                   outcome_unknown = errors[i].outcome_unknown }
    end
  end
end

function runners.exec(actions, ctx)
  for _, a in ipairs(actions) do
    if M.interrupted() then
      not_started(a, M.interrupted())
    elseif not ctx.allow_exec then
      a.status = "skipped"
      a.reason = "exec actions run only with --allow-exec"
    else
      local r, err = core.exec {
        argv = a.request.argv, stdin = a.request.stdin, timeout_ms = a.request.timeout_ms,
      }
      if not r then
        failed(a, err)
      else
        a.result = { exit_status = r.status, signal = r.signal, output = r.output,
                     truncated = r.truncated or nil }
        if r.timed_out then
          failed(a, ("killed after %d ms"):format(a.request.timeout_ms))
        elseif r.signal then
          failed(a, ("killed by signal %d"):format(r.signal))
        elseif r.status ~= 0 then
          failed(a, ("exited with status %d"):format(r.status))
        else
          a.status = "done"
        end
      end
    end
  end
end

function runners.lua(actions, ctx)
  for _, a in ipairs(actions) do
    if M.interrupted() then
      not_started(a, M.interrupted())
      goto next
    end
    local budget = ctx.budget(a.policy)
    local ok, err = sandbox.call(budget, a.fn, a.number)
    if ok then
      a.status = "done"
    else
      failed(a, err)
    end
    ::next::
  end
end

function runners.log(actions)
  for _, a in ipairs(actions) do a.status = "done" end
end

local concurrent = { webhook = true, call = true }

-- Run one group of actions of one kind; a runner that raises fails the
-- actions it left unfinished (with the message), never the whole run.
local function run_group(kind, group, ctx)
  local runner = runners[kind]
  if not runner then
    for _, a in ipairs(group) do failed(a, ("unknown action kind %q"):format(tostring(kind))) end
    return
  end
  local ok, err = pcall(runner, group, ctx)
  if not ok then
    for _, a in ipairs(group) do
      if a.status == "planned" then failed(a, ("%s actions failed: %s"):format(kind, report.text(err))) end
    end
  end
end

--- Carry out actions (a list); ctx: client(), http(), budget(policy name),
--- allow_exec, progress (show a progress line on stderr).  Returns the
--- interruption message when a signal stopped the run early, else nil.
function M.run(actions, ctx)
  local i = 1
  while i <= #actions do
    local kind = actions[i].kind
    local group = {}
    while i <= #actions and actions[i].kind == kind do
      if actions[i].status == "planned" then group[#group + 1] = actions[i] end
      i = i + 1
    end
    local from = 1
    while from <= #group do
      local why = M.interrupted()
      if why then
        for k = from, #group do not_started(group[k], why) end
        break
      end
      local to = concurrent[kind] and math.min(#group, from + M.SLICE - 1) or #group
      local slice = group
      if from ~= 1 or to ~= #group then slice = table.move(group, from, to, 1, {}) end
      run_group(kind, slice, ctx)
      from = to + 1
    end
  end
  return M.interrupted()
end

return M
