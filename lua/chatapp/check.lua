--- --check: run the loaded policies on sample numbers, dry, offline.
--
-- Every policy's where, filter, decide, gone and finish run in its
-- sandbox, under its normal budgets, over the numbers of a fixture (the
-- emulator's format: the built-in sample, or --data FILE), in three runs:
--
--   1. a run without --state: no history (n.previous is nil);
--   2. a first run with --state: every number new (n.previous nil,
--      n.first_seen now);
--   3. a later run: each number has a previous snapshot that differs in
--      its tracked fields (quality GREEN <-> RED, status changed, ...), and
--      the last number of each space is gone (the gone hook runs).
--
-- Plans are built and checked as in a dry run; nothing is carried out, no
-- credentials are read, no request is sent.  Then a source scan (lint)
-- reports comparisons no runtime check sees: n.quality_rating == "red".
-- Any error fails the check with the policy's file:line and the number.
-- docs/policies.md, "Testing a policy".

local chatapp = require "chatapp"
local core = chatapp.core
local sandbox = require "chatapp.sandbox"
local plans = require "chatapp.plan"
local executor = require "chatapp.executor"

local M = {}

--- The largest --data file read.
M.MAX_BYTES = 64 * 1024 * 1024

local DAY = 86400

---------------------------------------------------------------------------
-- The numbers

-- The spaces of a fixture's text: { {space = {...}, raws = {API objects}} }.
local function parse_fixture(text, name)
  local doc, err = core.json_decode(text)
  if doc == nil then return nil, ("%s: %s"):format(name, err) end
  if type(doc) ~= "table" then return nil, ("%s: expected a JSON object {\"spaces\": [...]}"):format(name) end
  local list = doc.spaces
  if list == nil and doc.phone_numbers ~= nil then list = { doc } end -- a single space object
  if type(list) ~= "table" then
    return nil, ("%s: expected {\"spaces\": [...]} or one space object (docs/emulator.md, \"Fixture format\")")
      :format(name)
  end
  local out, count = {}, 0
  for i, s in ipairs(list) do
    local where = ("%s: space %d"):format(name, i)
    if type(s) ~= "table" then return nil, where .. " is not an object" end
    if type(s.cust_space_id) ~= "string" then return nil, where .. ": cust_space_id must be a string" end
    if type(s.phone_numbers) ~= "table" then return nil, where .. ": phone_numbers must be a list" end
    local raws = {}
    for j, raw in ipairs(s.phone_numbers) do
      if type(raw) ~= "table" or type(raw.PhoneNumber) ~= "string" then
        return nil, ("%s: phone_numbers[%d] must be an object with a PhoneNumber string"):format(where, j)
      end
      raws[j] = raw
    end
    count = count + #raws
    local id = s.cust_space_id
    out[#out + 1] = {
      space = { cust_space_id = id ~= "" and id or nil, isv_code = type(s.isv_code) == "string" and s.isv_code or nil,
                label = type(s.label) == "string" and s.label or (id ~= "" and id or "own numbers") },
      raws = raws,
    }
  end
  if count == 0 then return nil, ("%s: the fixture holds no numbers to check the policies on"):format(name) end
  return out, count
end

--- The fixture's spaces and its name: --data FILE (options.check_data),
--- else the built-in sample.
function M.load_data(options)
  local path = options.check_data
  if path then
    local text, err = core.read_file(path, M.MAX_BYTES, "the --data file")
    if not text then return nil, err end
    local spaces, count = parse_fixture(text, path)
    if not spaces then return nil, count end
    return spaces, path, count
  end
  local spaces, count = parse_fixture(require "chatapp.sample_data", "the built-in sample data")
  if not spaces then return nil, count end
  return spaces, "the built-in sample data", count
end

-- A list of PhoneNumber values from API objects.
local function decode(raws, space)
  if #raws == 0 then return {} end
  local text, eerr = core.json_encode { PhoneNumbers = raws }
  if not text then return nil, eerr end
  local list, err = core.decode_phone_numbers(text, space)
  if not list then return nil, err end
  return list
end

-- Out of memory is no mistake in the data: the run fails (not exit 2).
local function data_failed(rep, message)
  if tostring(message):find("not enough memory", 1, true) then error(message, 0) end
  return rep:abort("config", message)
end

-- What a number plausibly was at the last fetch: its tracked fields moved.
local previous_of = {
  QualityRating = { GREEN = "RED", RED = "GREEN", YELLOW = "GREEN", UNKNOWN = "YELLOW" },
  Status = { CONNECTED = "FLAGGED", FLAGGED = "CONNECTED" },
  MessagingLimitTier = { TIER_UNLIMITED = "TIER_100K", TIER_100K = "TIER_10K", TIER_10K = "TIER_1K",
                         TIER_1K = "TIER_250", TIER_250 = "TIER_50", TIER_50 = "TIER_250" },
  NameStatus = { Approval = "Pending_Review", Pending_Review = "Approval", Rejected = "Pending_Review" },
}
local function previous_raw(raw)
  local p = {}
  for k, v in pairs(raw) do p[k] = v end
  for field, swap in pairs(previous_of) do
    local v = raw[field]
    p[field] = v == nil and swap.UNKNOWN or swap[v] or (field == "Status" and "CONNECTED" or v)
  end
  if p.QualityRating == nil then p.QualityRating = "GREEN" end
  if p.Status == nil then p.Status = "CONNECTED" end
  p.UpCallbackUrl = "https://previous.example.com/inbound"
  return p
end

-- The numbers of one pass: { {space, list, gone} }.
local PASSES = {
  { label = "a run without --state (no history)" },
  { label = "a first run with --state (every number new)", first = true },
  { label = "a later run (each number with a different previous snapshot; one number per space gone)",
    later = true },
}

local function pass_numbers(data, pass, now)
  local out = {}
  for _, d in ipairs(data) do
    local raws, gone_raws = d.raws, {}
    if pass.later and #raws > 1 then
      raws = table.move(d.raws, 1, #d.raws - 1, 1, {})
      gone_raws = { d.raws[#d.raws] }
    end
    local list, err = decode(raws, d.space)
    if not list then return nil, err end
    local gone = {}
    if pass.first then
      -- as the state store does: a time for each field the number has
      for _, n in ipairs(list) do
        local since = {}
        for _, f in ipairs(core.phone_tracked()) do since[f] = n[f] ~= nil and now or nil end
        core.phone_attach(n, nil, now, since, now)
      end
    elseif pass.later then
      local prevs = {}
      for i, raw in ipairs(raws) do prevs[i] = previous_raw(raw) end
      local before, perr = decode(prevs, d.space)
      if not before then return nil, perr end
      for i, n in ipairs(list) do
        local since = {}
        for _, f in ipairs(core.phone_tracked()) do
          if n[f] ~= nil then since[f] = before[i][f] ~= n[f] and now or now - 7 * DAY end
        end
        core.phone_attach(n, before[i], now - 30 * DAY, since, now)
      end
      if #gone_raws > 0 then
        local g, gerr = decode(gone_raws, d.space)
        if not g then return nil, gerr end
        gone = g
      end
    end
    out[#out + 1] = { space = d.space, list = list, gone = gone }
  end
  return out
end

---------------------------------------------------------------------------
-- Lint: what no runtime check sees

local enum_fields = {}
for name, e in pairs(chatapp.enums) do
  enum_fields[#enum_fields + 1] = { field = e.field, name = name, values = e.values, closed = e.closed }
end
table.sort(enum_fields, function(a, b) return a.field < b.field end)

-- The code of a line without a trailing comment (a "--" outside quotes).
local function code_of(line)
  local quote
  for i = 1, #line do
    local c = line:sub(i, i)
    if quote then
      if c == "\\" then
        -- the next character is escaped; skipping it is good enough here
      elseif c == quote then
        quote = nil
      end
    elseif c == '"' or c == "'" then
      quote = c
    elseif c == "-" and line:sub(i + 1, i + 1) == "-" then
      return line:sub(1, i - 1)
    end
  end
  return line
end

-- The finding for field compared with literal, or nil.
local function judge(e, lit)
  for _, v in ipairs(e.values) do if v == lit then return nil end end
  local same_case
  for _, v in ipairs(e.values) do if v:lower() == lit:lower() then same_case = v end end
  if e.closed then
    local near = same_case or chatapp.suggest(lit, e.values)
    return ("n.%s is compared with %q, a value it never has (%s values: %s)%s")
      :format(e.field, lit, e.name, table.concat(e.values, ", "),
        near and (("; did you mean %q (chatapp.%s.%s)?"):format(near, e.name, near)) or "")
  end
  if same_case then
    return ("n.%s is compared with %q, which differs from the known %s value %q only in case: "
      .. "values are compared exactly; did you mean %q (chatapp.%s.%s)?")
      :format(e.field, lit, e.name, same_case, same_case, e.name, same_case)
  end
  return nil
end

--- Findings of the source scan: { {line = n, message = s} }.
function M.lint(src)
  local found = {}
  local n = 0
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    local code = code_of(line)
    if code:find("[=~]=") then
      for _, e in ipairs(enum_fields) do
        local f = e.field
        if code:find(f, 1, true) then
          local forward = "%." .. f .. "%s*[=~]=%s*([\"'])(.-)%1"
          local reverse = "([\"'])([^\"']*)%1%s*[=~]=%s*[%w_]+[%w_%.]*%." .. f .. "%f[^%w_]"
          for _, pattern in ipairs { forward, reverse } do
            for _, lit in code:gmatch(pattern) do
              local why = judge(e, lit)
              if why then found[#found + 1] = { line = n, message = why } end
            end
          end
        end
      end
    end
  end
  return found
end

---------------------------------------------------------------------------
-- The check

-- The report as the runner's evaluation sees it during one pass: a policy
-- error is said once per policy and message, with the pass it came from.
local function pass_report(rep, label, said)
  local proxy = {}
  function proxy.policy_error(_, policy, space, n, message)
    local key = policy.name .. "\0" .. tostring(message)
    said[key] = (said[key] or 0) + 1
    if said[key] > 1 then return end
    rep:policy_error(policy, space, n, ("[--check, %s] %s"):format(label, message))
  end
  return setmetatable(proxy, {
    __index = function(_, k)
      local v = rep[k]
      if type(v) == "function" then return function(_, ...) return v(rep, ...) end end
      return v
    end,
  })
end

--- Run the check: the report (finished).
function M.run(runner, rep)
  local data, name, count = M.load_data(runner.options)
  if not data then return data_failed(rep, name) end
  rep.check = { data = name, numbers = count, passes = #PASSES }

  -- The lint, file by file (findings go to the file's first policy).
  local first_of = {}
  for _, p in ipairs(runner.policies) do
    if p.file and not first_of[p.file] then first_of[p.file] = p end
  end
  for file, p in pairs(first_of) do
    local src = runner.sources and runner.sources[file]
    if src then
      for _, f in ipairs(M.lint(src)) do
        rep:policy_error(p, nil, nil, ("%s:%d: %s"):format(file, f.line, f.message))
      end
    end
  end

  local now = os.time()
  local said = {}
  for _, pass in ipairs(PASSES) do
    local spaces, err = pass_numbers(data, pass, now)
    if not spaces then return data_failed(rep, ("%s: %s"):format(name, err)) end
    local r = pass_report(rep, pass.label, said)
    for _, policy in ipairs(runner.policies) do
      local budget = policy.budget or runner:new_budget(policy.file)
      local state = { budget = budget, matched = {}, count = 0, skipped = 0, stopped = budget.spent ~= nil }
      local plan = runner:plan_for(policy, r, state)
      -- Every policy over every sample number, whatever its `spaces`:
      -- the sample cannot know the spaces a policy names.
      for _, s in ipairs(spaces) do
        runner:evaluate(r, policy, s.space, s.list, plan, state, nil)
        if policy.gone and #s.gone > 0 then runner:gone(r, policy, s.space, s.gone, plan, state) end
      end
      if policy.finish and not state.stopped then
        plans.focus(plan, nil, nil)
        local ok, ferr = sandbox.call(state.budget, policy.finish, plan, state.matched)
        if not ok then r:policy_error(policy, nil, nil, ferr) end
      end
    end
  end
  executor.dry_run(rep.actions)
  rep.check.repeated = 0
  for _, c in pairs(said) do rep.check.repeated = rep.check.repeated + (c - 1) end
  return rep:finish_check()
end

return M
