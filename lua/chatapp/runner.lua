--- The run: load policies, fetch every space once, evaluate, plan, carry
--- the plan out (unless dry), report.
--
-- Created by the C runtime (runtime/lua/lca_runtime.c) with the options of the
-- configuration and the host functions:
--   host.client() -> Client, credential source | nil, message, code
--   host.http()   -> Client for plain HTTP (webhooks) | nil, message
--   host.log(level, line)
-- Policies decide; the runner carries out.  See docs/policies.md.

local chatapp = require "chatapp"
local core = chatapp.core
local sandbox = require "chatapp.sandbox"
local report = require "chatapp.report"
local plans = require "chatapp.plan"
local spaces_mod = require "chatapp.spaces"
local recording = require "chatapp.recording"
local executor = require "chatapp.executor"

local MB = 1024 * 1024
-- All policy files of a run together get at most RUN_FACTOR times one
-- file's memory cap and instruction budget (docs/policies.md).
local RUN_FACTOR = 4

local Runner = {}
Runner.__index = Runner

local M = { RUN_FACTOR = RUN_FACTOR }

function M.new(options, host)
  options = options or {}
  local r = setmetatable({
    options = options,
    host = host,
    policies = {},
    memory = (options.memory_limit_mb and options.memory_limit_mb > 0 and options.memory_limit_mb or 64) * MB,
    instructions = options.instruction_limit and options.instruction_limit > 0
      and options.instruction_limit or 200000000,
  }, Runner)
  r.run_budget = { instructions = r.instructions * RUN_FACTOR, memory = r.memory * RUN_FACTOR, retained = 0 }
  return r
end

function Runner:log(level, line)
  self.host.log(level, report.safe_lines(line)) -- policy and server text, escaped
end

--- A policy file's budget: every policy of the file, its loading and its
--- plan:lua functions draw on it, and on the run's total.
function Runner:new_budget(file)
  return { instructions = self.instructions, memory = self.memory, retained = 0,
           run = self.run_budget, file = file }
end

---------------------------------------------------------------------------
-- Loading

--- Turn what a policy file returned into a list of runner-owned policy
--- records.  The value is data: read raw, no metamethod of it runs.
local function policies_of(value, name)
  local rec = chatapp.policy_record(value)
  if rec then return { rec } end
  local n = type(value) == "table" and rawlen(value) or 0
  if n > 0 then
    local list = {}
    for i = 1, n do
      list[i] = chatapp.policy_record(rawget(value, i))
      if not list[i] then
        return nil, ("%s: item %d of the returned list is not a chatapp.policy{...}"):format(name, i)
      end
    end
    return list
  end
  return nil, ("%s must return chatapp.policy{...} or a list of them (it returned a %s)")
    :format(name, type(value))
end

-- file:line of the first line of src holding token as a word, or file.
local function locate(name, src, token)
  if token then
    local n = 0
    for line in (src .. "\n"):gmatch("([^\n]*)\n") do
      n = n + 1
      local from = 1
      while true do
        local i, j = line:find(token, from, true)
        if not i then break end
        local before, after = line:sub(i - 1, i - 1), line:sub(j + 1, j + 1)
        if not before:match("[%w_]") and not after:match("[%w_]") then
          return ("%s:%d"):format(name, n)
        end
        from = j + 1
      end
    end
  end
  return name
end

function Runner:load_string(name, src)
  if src:byte(1) == 27 then
    return nil, name .. ": precompiled chunks are refused; give Lua source text"
  end
  local env = sandbox.env(function(line) self:log(0, name .. ": " .. line) end)
  local chunk, err = load(src, "@" .. name, "t", env)
  if not chunk then return nil, err end
  local budget = self:new_budget(name)
  local ok, value, _, _, info = sandbox.call(budget, chunk)
  if not ok then
    if info then
      return nil, (info.where or (locate(name, src, info.token) .. ": ")) .. info.message
    end
    if not value:find(name, 1, true) then value = name .. ": " .. value end
    return nil, value
  end
  local list, perr = policies_of(value, name)
  if not list then return nil, perr end
  for i, p in ipairs(list) do
    for j = 1, i - 1 do
      if list[j] == p then
        return nil, ("%s: policy %q is returned twice"):format(name, p.name)
      end
    end
    for _, other in ipairs(self.policies) do
      if other.name == p.name then
        return nil, ("%s: policy name %q is already used by %s"):format(name, p.name, other.file)
      end
    end
  end
  for _, p in ipairs(list) do
    p.file = name
    p.budget = budget
    for _, w in ipairs(p.warnings) do self:log(0, ("%s: policy %s: %s"):format(name, p.name, w)) end
    self.policies[#self.policies + 1] = p
  end
  return true
end

function Runner:load_file(path)
  -- a regular file of at most 4 MiB (docs/cli.md, "Files")
  local src, err = core.read_file(path, 4 * MB, "the policy file")
  if not src then return nil, err end
  return self:load_string(path, src)
end

---------------------------------------------------------------------------
-- Fetching

function Runner:spaces()
  if self.options.spaces then return spaces_mod.load(self.options.spaces) end
  return { spaces_mod.OWN }
end

--- Fetch every space once: lists[i] or errors[i].
function Runner:fetch(rep, spaces)
  local lists, errors = {}, {}
  if self.options.replay then
    local rec, err = recording.load(self.options.replay)
    if not rec then return nil, err, "config" end
    lists, errors = spaces_mod.replay(spaces, function(space)
      return recording.answer(rec, space, self.options.replay)
    end, spaces_mod.fetch_cap(self.options))
    rep.replay = true
    return lists, errors
  end
  local client, source, code = self.host.client()
  if not client then
    return nil, source, code == "ECREDENTIALS" and "credentials" or "config"
  end
  self:log(1, "credentials: " .. source)
  rep.credentials = source
  -- under the run's total memory cap for fetched numbers (spaces.lua)
  lists, errors = spaces_mod.fetch(client, spaces, {
    cap = spaces_mod.fetch_cap(self.options), max_response = self.options.max_response_bytes,
    keep_body = self.options.record ~= nil, progress = self:progress_label("fetching spaces") })
  if self.options.record then
    local entries = {}
    for i, space in ipairs(spaces) do
      entries[i] = { space = space, body = lists[i] and lists[i].raw_body, error = errors[i] }
      if lists[i] then lists[i].raw_body = nil end
    end
    local ok, err = recording.save(self.options.record, entries)
    if not ok then rep:warn("cannot write the recording: " .. err); rep:fail("config", err) end
  end
  return lists, errors
end

-- Progress on stderr only when it is a terminal and the report goes
-- somewhere else than stderr.
function Runner:progress_label(label)
  if self.options.output ~= "none" and core.isatty(2) then return label end
  return nil
end

---------------------------------------------------------------------------
-- Evaluating

-- Evaluate one policy over one space's numbers, planning its actions.
-- Out of budget: the file's budget (or the run's) is spent; every
-- policy of the file stops.  Said once per policy.
local function out_of_budget(rep, policy, budget, kind, scope)
  budget.spent = budget.spent or { kind = kind, scope = scope }
  local spent = budget.spent
  local what = spent.kind == "memory" and "memory cap reached" or "instruction budget used up"
  local option = spent.kind == "memory" and "memory-limit-mb" or "instruction-limit"
  if spent.scope == "run" then
    rep:policy_error(policy, nil, nil, ("stopped: %s for all policy files of the run together "
      .. "(%d times one file's; raise it with --%s)"):format(what, RUN_FACTOR, option))
  else
    rep:policy_error(policy, nil, nil, ("stopped: %s (shared by every policy of %s); raise the limit with --%s")
      :format(what, policy.file or "the file", option))
  end
end

function Runner:evaluate(rep, policy, space, list, plan, state)
  local filter, decide = policy.filter, policy.decide
  for i, n in ipairs(list) do
    if state.stopped then
      state.skipped = state.skipped + (#list - i + 1)
      return
    end
    rep:seen(policy)
    local ok, hit, kind, scope = true, chatapp.matches_where(policy, n), nil, nil
    if hit and filter then
      ok, hit, kind, scope = sandbox.call(state.budget, filter, n)
    end
    if ok and hit then
      rep:matched(policy, space, n)
      state.matched[#state.matched + 1] = n
      if decide then
        plans.focus(plan, n, space)
        ok, hit, kind, scope = sandbox.call(state.budget, decide, n, plan)
      end
    end
    if not ok then
      rep:policy_error(policy, space, n, hit)
      if kind ~= "error" then
        -- Out of budget: the rest of this file's numbers are skipped.
        state.stopped = true
        out_of_budget(rep, policy, state.budget, kind, scope)
      elseif state.capped then
        -- Past the action cap: the rest would fail the same way.
        state.stopped = true
      end
    end
  end
end

function Runner:plan_for(policy, rep, state)
  local seen_ids = {}
  return plans.new(policy, function(plan, action)
    if state.count >= plans.MAX_ACTIONS then
      state.capped = true
      return nil, ("policy planned more than %d actions; the rest of its numbers are not decided")
        :format(plans.MAX_ACTIONS)
    end
    plans.complete(plan, action)
    action.policy_ref = policy
    -- The same action planned twice (same policy, subject and request)
    -- is carried out once.
    if seen_ids[action.id] then return action end
    seen_ids[action.id] = true
    state.count = state.count + 1
    rep:action(action)
    return action
  end)
end

function Runner:run(flags)
  flags = flags or {}
  -- the report escapes its own lines (report.new): the host's log as it is
  local rep = report.new(self.options, self.policies, self.host.log)
  if flags.check then return rep:finish_check() end

  local spaces, serr = self:spaces()
  if not spaces then return rep:abort("config", serr) end
  local lists, errors, fail_kind = self:fetch(rep, spaces)
  if not lists then return rep:abort(fail_kind, errors) end
  for i, space in ipairs(spaces) do rep:space(space, lists[i], errors[i]) end

  local budgets = {}
  for _, policy in ipairs(self.policies) do
    local budget = policy.budget or self:new_budget(policy.file)
    local state = { budget = budget, matched = {}, count = 0, skipped = 0 }
    budgets[policy.name] = budget
    local plan = self:plan_for(policy, rep, state)
    if budget.spent then
      -- An earlier policy of the same file used the budget up.
      state.stopped = true
      out_of_budget(rep, policy, budget)
    end
    for i, space in ipairs(spaces) do
      if lists[i] and chatapp.uses_space(policy, space) then
        self:evaluate(rep, policy, space, lists[i], plan, state)
      end
    end
    if state.capped and state.skipped > 0 then
      rep:warn(("policy %s: %d more numbers not decided after the cap of %d actions")
        :format(policy.name, state.skipped, plans.MAX_ACTIONS))
    end
    if policy.finish and not state.stopped then
      plans.focus(plan, nil, nil)
      local ok, err, kind, scope = sandbox.call(state.budget, policy.finish, plan, state.matched)
      if not ok then
        rep:policy_error(policy, nil, nil, err)
        if kind ~= "error" then out_of_budget(rep, policy, budget, kind, scope) end
      end
    end
  end

  local dry = flags.dry_run or self.options.replay ~= nil
  if not dry then
    executor.run(rep.actions, {
      client = function()
        local c, err = self.host.client()
        return c, err
      end,
      http = self.host.http,
      allow_exec = self.options.allow_exec,
      budget = function(name) return budgets[name] end,
      progress = self:progress_label("actions") ~= nil,
    })
  else
    executor.dry_run(rep.actions)
  end
  rep:settle(dry)
  if not self.options.replay then
    local client = self.host.client()
    if client then rep:calls(client:stats()) end
  end
  return rep:finish()
end

return M
