--- Carry out a plan: each run of consecutive actions of one kind by that
--- kind's runner (chatapp.actions): webhooks and API calls concurrently
--- (the API calls under the shared limiter), commands and Lua functions
--- one by one.
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
local actions = require "chatapp.actions"
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

local function failed(a, err)
  a.status = "failed"
  a.error = report.text(err)
end

-- What a kind's runner gets besides its actions and ctx.
local x = { interrupted = M.interrupted, not_started = not_started, failed = failed }

-- Run one group of actions of one kind; a runner that raises fails the
-- actions it left unfinished (with the message), never the whole run.
local function run_group(kind, group, ctx)
  local K = actions.get(kind)
  if not K then
    for _, a in ipairs(group) do failed(a, ("unknown action kind %q"):format(tostring(kind))) end
    return
  end
  local ok, err = pcall(K.run, group, ctx, x)
  if not ok then
    for _, a in ipairs(group) do
      if a.status == "planned" then failed(a, ("%s actions failed: %s"):format(kind, report.text(err))) end
    end
  end
end

--- Carry out actions (a list); ctx: client(), http(), budget(policy name),
--- allow_exec, progress (show a progress line on stderr), after(slice)
--- (called with each slice once its outcomes are known: the outbox
--- records them; a string returned stops the run there: every action
--- not started yet is skipped with it as the reason).  Returns the
--- interruption message when a signal stopped the run early, else nil.
function M.run(list, ctx)
  local i, stopped = 1, nil
  while i <= #list do
    local kind = list[i].kind
    local group = {}
    while i <= #list and list[i].kind == kind do
      if list[i].status == "planned" then group[#group + 1] = list[i] end
      i = i + 1
    end
    local from = 1
    while from <= #group do
      local why = M.interrupted() or stopped
      if why then
        for k = from, #group do not_started(group[k], why) end
        break
      end
      local K = actions.get(kind)
      -- Concurrent kinds go out SLICE at a time, the others (commands,
      -- Lua functions) one at a time: after(slice) records each outcome as
      -- soon as it is known, so a kill -9 repeats at most the actions in
      -- flight, one command (reliability case E1).
      local to = K and K.concurrent and math.min(#group, from + M.SLICE - 1) or from
      local slice = group
      if from ~= 1 or to ~= #group then slice = table.move(group, from, to, 1, {}) end
      run_group(kind, slice, ctx)
      if ctx.after then stopped = stopped or ctx.after(slice) end
      from = to + 1
    end
  end
  return M.interrupted()
end

--- A dry run: nothing is carried out; the kinds with nothing to send
--- (log) are "done".
function M.dry_run(list)
  for _, a in ipairs(list) do
    local K = actions.get(a.kind)
    if K and K.done_in_dry_run and a.status == "planned" then a.status = "done" end
  end
end

return M
