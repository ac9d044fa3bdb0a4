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
local state_mod = require "chatapp.state"

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
  -- Time: instructions do not bound it (a loop calling a costly C
  -- function runs for days on a few thousand), so each file also has
  -- time_limit_ms of running time: by default 1 ms per 10,000
  -- instructions of its budget, at least 10 s (20 s for the default
  -- budget, some 100 times what the instructions take; the floor leaves
  -- room for policies heavy in C work on slow builds: ASan, valgrind).
  r.time_ms = options.time_limit_ms and options.time_limit_ms > 0 and options.time_limit_ms
    or math.max(10000, r.instructions // 10000)
  r.run_budget = { instructions = r.instructions * RUN_FACTOR, memory = r.memory * RUN_FACTOR, retained = 0,
                   time_ms = r.time_ms * RUN_FACTOR }
  return r
end

function Runner:log(level, line)
  self.host.log(level, report.safe_lines(line)) -- policy and server text, escaped
end

--- A policy file's budget: every policy of the file, its loading and its
--- plan:lua functions draw on it, and on the run's total.
function Runner:new_budget(file)
  return { instructions = self.instructions, memory = self.memory, retained = 0,
           time_ms = self.time_ms, run = self.run_budget, file = file }
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
      if line:find("^%s*%-%-") then line = "" end -- a comment line names nothing
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
  self.sources = self.sources or {}
  self.sources[name] = src -- for --check's source scan (chatapp.check)
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
  if self.options.replay then
    -- the recording is read once, before anything runs; its spaces are
    -- the run's unless --spaces names others
    local rec, spaces_of = recording.load(self.options.replay)
    if not rec then return nil, spaces_of end
    self.recording = rec
    if not self.options.spaces then return spaces_of end
  end
  if self.options.spaces then return spaces_mod.load(self.options.spaces) end
  return { spaces_mod.OWN }
end

--- Fetch every space once: lists[i] or errors[i].
function Runner:fetch(rep, spaces)
  local lists, errors = {}, {}
  if self.options.replay then
    local rec = self.recording
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
    -- the API was called: a failure here is "output" (exit 1), not "config"
    if not ok then rep:fail_shown("output", "cannot write the recording: " .. err) end
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
  local what = spent.kind == "memory" and "memory cap reached"
    or spent.kind == "time" and "time budget used up" or "instruction budget used up"
  local option = spent.kind == "memory" and "memory-limit-mb" or "instruction-limit"
  if spent.scope == "run" then
    rep:policy_error(policy, nil, nil, ("stopped: %s for all policy files of the run together "
      .. "(%d times one file's; raise it with --%s)"):format(what, RUN_FACTOR, option))
  else
    rep:policy_error(policy, nil, nil, ("stopped: %s (shared by every policy of %s); raise the limit with --%s")
      :format(what, policy.file or "the file", option))
  end
end

-- Note a call that failed: the policy's error; out of budget stops the
-- rest of the file's numbers.
local function failed_call(rep, policy, space, n, err, kind, scope, state)
  rep:policy_error(policy, space, n, err)
  if kind ~= "error" then
    state.stopped = true
    out_of_budget(rep, policy, state.budget, kind, scope)
  elseif state.capped then
    -- Past the action cap: the rest would fail the same way.
    state.stopped = true
  end
end

function Runner:evaluate(rep, policy, space, list, plan, state, history)
  local filter, decide = policy.filter, policy.decide
  local remind = history and policy.remind
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
      local quiet = remind and history:quiet(policy, space, n)
      if quiet then
        rep:quiet(policy, space, n, history.now - quiet)
      elseif decide then
        local before = state.count
        plans.focus(plan, n, space)
        ok, hit, kind, scope = sandbox.call(state.budget, decide, n, plan)
        if ok and remind and state.count > before then history:fired(policy, space, n) end
      end
    elseif ok and remind then
      history:unmatched(policy, space, n)
    end
    if not ok then failed_call(rep, policy, space, n, hit, kind, scope, state) end
  end
end

-- The policy's gone hook, for each number of the space that was there
-- last time and is not now.
function Runner:gone(rep, policy, space, gone, plan, state)
  for _, n in ipairs(gone) do
    if state.stopped then return end
    plans.focus(plan, n, space)
    local ok, err, kind, scope = sandbox.call(state.budget, policy.gone, n, plan)
    if not ok then failed_call(rep, policy, space, n, err, kind, scope, state) end
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
  -- --check: the policies run dry on sample numbers (chatapp.check)
  if flags.check then return require("chatapp.check").run(self, rep) end

  -- a replay is a dry run unless --apply asks for its actions
  local dry = flags.dry_run or (self.options.replay ~= nil and not self.options.apply)
  local spaces, serr = self:spaces()
  if not spaces then return rep:abort("config", serr) end
  -- The state file is opened (and checked) before any API call.
  local history
  if self.options.state then
    local err
    -- The account, before any API call: a shared store (Redis) checks
    -- that account's part now, and a run that writes a state file locks
    -- it for its account first (docs/state.md, "One writer"), so a second
    -- one exits 2 at once.  A client that cannot be made ends the run
    -- here, as the fetch would.
    local account = self.options.account
    local store = state_mod.store_of(self.options.state)
    local locks = not dry and store and not store.SHARED
    if not account and not self.options.replay and store and (store.SHARED or locks) then
      local client, cerr, code = self.host.client()
      if not client then return rep:abort(code == "ECREDENTIALS" and "credentials" or "config", cerr) end
      account = client:account()
    end
    history, err = state_mod.open(self.options.state, { dry = dry, max_age = self.options.outbox_max_age_s,
                                                        account = account,
                                                        lock = locks and (account or "default") or nil,
                                                        warn = function(w) self:log(0, w) end })
    if not history then return rep:abort("config", err) end
  else
    for _, p in ipairs(self.policies) do
      if chatapp.uses_history(p) then
        local w = p.where or {}
        local term = w.became and "became" or w.changed and "changed" or w.new ~= nil and "new"
          or p.remind and "remind" or "gone"
        local src = self.sources and self.sources[p.file]
        rep:warn(((src and locate(p.file, src, term) .. ": " or "") .. "policy %s looks at the previous run (where.new/changed/became, remind or gone), but this "
          .. "run keeps no state: every number is new to it; give --state FILE"):format(p.name))
      end
    end
  end
  local ok, err, kind = self:run_with(rep, flags, dry, spaces, history)
  if history then history:close() end
  if not ok then return rep:abort(kind or "config", err) end
  return rep:finish()
end

--- The account the state is kept under: --account, else the client's
--- (the AccessKey id); "default" when there is neither (a replay).
function Runner:account()
  if self.options.account then return self.options.account end
  if not self.options.replay then
    local client = self.host.client()
    if client then return client:account() end
  end
  return "default"
end

function Runner:run_with(rep, flags, dry, spaces, history)
  local lists, errors, fail_kind = self:fetch(rep, spaces)
  if not lists then return nil, errors, fail_kind end
  for i, space in ipairs(spaces) do rep:space(space, lists[i], errors[i]) end
  if history then
    local ok, err = history:observe(self:account(), spaces, lists)
    if not ok then return nil, err end
    rep:transitions(history.transitions, dry)
    ok, err = history:load_reminders()
    if not ok then return nil, err end
  end

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
        self:evaluate(rep, policy, space, lists[i], plan, state, history)
        if policy.gone and history and history.gone[i] then
          self:gone(rep, policy, space, history.gone[i], plan, state)
        end
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

  local list = rep.actions -- the outbox's first, then the new ones
  if history and not dry then
    -- The outbox first: what earlier runs left pending goes out before
    -- anything new, and everything planned now is on disk before it is
    -- carried out.
    local resumed, err = history:resume(list)
    if not resumed then return nil, err end
    history:stage(list)
    local ok, cerr, ccode = history:commit()
    if not ok and ccode == "EFENCED" then
      -- Another watcher holds the lease now: it plans the same actions
      -- (same keys) and carries them out; this one must not.
      return nil, cerr .. "; no action was carried out", "config"
    end
    if not ok then
      -- The actions still go out (they were promised); the next run sees
      -- the same changes again and plans them with the same keys.
      rep:fail_shown("output", cerr .. "; the actions are carried out without an outbox entry")
    end
    for _, a in ipairs(resumed) do rep:action(a, self:policy_named(a.policy), true) end
  end
  if not dry then
    executor.run(list, {
      client = function()
        local c, err = self.host.client()
        return c, err
      end,
      http = self.host.http,
      allow_exec = self.options.allow_exec,
      budget = function(name) return budgets[name] end,
      progress = self:progress_label("actions") ~= nil,
      after = history and function(group)
        local ok, err, code = history:settle(group)
        if not ok then rep:fail_shown("output", err) end
        -- Another watcher took the lease mid-run: it resumes what is
        -- still pending (same keys); this one sends nothing more.
        if code == "EFENCED" then return "not sent: this instance lost the lease" end
      end,
    })
    if history then
      local ok, err = history:prune()
      if not ok then rep:warn(err) end
    end
  else
    executor.dry_run(list)
  end
  rep:settle(dry)
  if not self.options.replay then
    local client = self.host.client()
    if client then rep:calls(client:stats()) end
  end
  return true
end

--- A run that cannot happen (a policy file that does not load): the
--- report of it, through the one abort path (JSON: its summary).
function Runner:report_failure(status, message)
  return report.new(self.options, self.policies, self.host.log):abort(status, message)
end

--- The loaded policy of that name, or nil.
function Runner:policy_named(name)
  for _, p in ipairs(self.policies) do
    if p.name == name then return p end
  end
  return nil
end

return M
