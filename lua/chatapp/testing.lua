--- chatapp.testing: tests for policies, run by `chatapp-run test`.
--- docs/testing-policies.md is the user's guide; this is the code.
--
-- A test file (NAME_test.lua) registers cases with t.case; each case loads
-- a policy (t.load), runs it over fixture numbers (policy:run) and states
-- what it expects of the result (r:expect_*).  A run is the real one: the
-- real runner (chatapp.runner), the policy in the real sandbox with its
-- budgets, the plan built and validated in a dry run; only the host is
-- fake:
--   host.client()  answers QueryChatappPhoneNumbers with the fixtures
--                  (encoded as the API would, decoded by the runtime's
--                  decoder); it never opens a connection
--   host.http()    has no network: nothing is sent (the run is dry anyway)
--   os.getenv      in the policy reads the run's `env` table, never the
--                  process environment (sandbox.test_env)
--   the spaces     are the fixtures' (the runner's spaces method is
--                  replaced on that one runner: no --spaces file)
-- The runner itself is not changed: no hook in runner.lua.
-- With `previous`, the run keeps state in a temporary state file: the
-- previous snapshots are recorded there first (at `previous_at`), then the
-- run reads them as a --state run would (n.previous, transitions, where.new
-- / changed / became, gone numbers); the file is removed afterwards.  The
-- state's clock (chatapp.state.now) is `now` for the run (previous_at
-- while the snapshots are recorded), restored after it.
--
-- Test files themselves are trusted Lua (like --lua scripts): they are not
-- sandboxed; the policies they load are.

local chatapp = require "chatapp"
local core = chatapp.core
local runner_mod = require "chatapp.runner"
local sandbox = require "chatapp.sandbox"
local state_mod = require "chatapp.state"
local report = require "chatapp.report"

local M = {}

local MB = 1024 * 1024
--- Folders are searched this deep for *_test.lua.
M.MAX_DEPTH = 4
--- The account fixtures are kept under (state, action ids).
M.ACCOUNT = "test"

---------------------------------------------------------------------------
-- Failures at the test's line

local Failure = {}
Failure.__index = Failure

local current -- the test file being run: { file = path, dir = folder, cases = {} }

-- file:line of the innermost frame of the test file on the stack.
local function test_line()
  if not current then return nil end
  local src = "@" .. current.file
  for level = 2, 200 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.source == src and info.currentline and info.currentline > 0 then
      return ("%s:%d"):format(current.file, info.currentline)
    end
  end
  return nil
end

--- Fail the current case with message, at the test file's line.
local function fail(message)
  error(setmetatable({ message = message, where = test_line() }, Failure), 0)
end
M.fail = fail

local nearest = chatapp.suggest -- the one did-you-mean rule

-- Keys sorted, "kind" first (it says what an action is).
local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list, function(a, b)
    if a == "kind" or b == "kind" then return a == "kind" and b ~= "kind" end
    return tostring(a) < tostring(b)
  end)
  return list
end

-- Raise for a key of t not in allowed (a list), with a did-you-mean.
local function check_keys(t, allowed, what)
  local set = {}
  for _, k in ipairs(allowed) do set[k] = true end
  for _, k in ipairs(sorted_keys(t)) do
    if type(k) ~= "string" or not set[k] then
      local near = type(k) == "string" and nearest(k, allowed)
      fail(("%s: unknown key %s%s (known: %s)"):format(what, tostring(k),
        near and ("; did you mean '" .. near .. "'?") or "", table.concat(allowed, ", ")))
    end
  end
end

---------------------------------------------------------------------------
-- Showing values in messages

local show

local function show_key(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  return "[" .. show(k) .. "]"
end

-- A short Lua-like rendering of a value (keys sorted).
function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if type(v) ~= "table" then return tostring(v) end
  if getmetatable(v) and getmetatable(v).__like then return ("t.like(%q)"):format(v.pattern) end
  if depth > 4 then return "{...}" end
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1) end
  for _, k in ipairs(sorted_keys(v)) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      parts[#parts + 1] = show_key(k) .. " = " .. show(v[k], depth + 1)
    end
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end
M.show = show

---------------------------------------------------------------------------
-- Fixtures: numbers as plain tables, with API names or snake_case

-- snake_case field -> the API's name, for the fields the API sends.
local API_NAME, API_FIELD = {}, {}
-- Fields a number has that do not come from the API's answer.
local NOT_API = {
  cust_space_id = "comes from the space: give spaces = { { cust_space_id = ..., numbers = {...} } }",
  isv_code = "comes from the space: give spaces = { { isv_code = ..., numbers = {...} } }",
  space_label = "comes from the space: give spaces = { { label = ..., numbers = {...} } }",
  messaging_limit = "is derived from messaging_limit_tier: give that",
  quality_level = "is derived from quality_rating: give that",
}
local FIELD_NAMES = {}
for _, f in ipairs(core.phone_fields) do
  if not NOT_API[f] then
    local api = f:gsub("^%l", string.upper):gsub("_(%l)", string.upper)
    API_NAME[f], API_FIELD[api] = api, f
    FIELD_NAMES[#FIELD_NAMES + 1] = f
  end
end

-- One fixture number as the API's JSON object (text).
local function api_number(t, what)
  if type(t) ~= "table" then fail(("%s is a %s, expected a table of fields"):format(what, type(t))) end
  local out = {}
  for _, k in ipairs(sorted_keys(t)) do
    local v = t[k]
    local name
    if type(k) ~= "string" then
      fail(("%s: field names are strings, not %s"):format(what, show(k)))
    elseif API_FIELD[k] or k:match("^%u") then
      name = k -- the API's name (an unknown one is kept, as the API's would be)
    elseif API_NAME[k] then
      name = API_NAME[k]
    elseif NOT_API[k] then
      fail(("%s: %s %s"):format(what, k, NOT_API[k]))
    else
      local near = nearest(k, FIELD_NAMES)
      fail(("%s: unknown field %s%s (fields: %s)"):format(what, k,
        near and ("; did you mean '" .. near .. "'?") or "", table.concat(FIELD_NAMES, ", ")))
    end
    if out[name] ~= nil then fail(("%s: field %s is given twice (%s and %s)"):format(what, name, API_FIELD[name] or name, k)) end
    local tv = type(v)
    if tv ~= "string" and tv ~= "boolean" and tv ~= "number" then
      fail(("%s: field %s is a %s (give a string, number or boolean)"):format(what, k, tv))
    end
    out[name] = v
  end
  local text, err = core.json_encode(out)
  if not text then fail(("%s: %s"):format(what, tostring(err))) end
  return text
end

-- The decoded list of PhoneNumber values of fixtures for space.
local function decode(list, space, what)
  if type(list) ~= "table" then fail(("%s must be a list of numbers, not a %s"):format(what, type(list))) end
  local parts = {}
  for i, t in ipairs(list) do parts[i] = api_number(t, ("%s[%d]"):format(what, i)) end
  local text = '{"PhoneNumbers":[' .. table.concat(parts, ",") .. "]}"
  local numbers, err = core.decode_phone_numbers(text, space)
  if not numbers then fail(("%s: %s"):format(what, report.text(err))) end
  return numbers, text
end

-- spaces (the run's), texts (API answers, by space) and previous lists
-- (by space, or nil) of a run's spec.
local function fixtures(spec)
  local spaces, texts, previous = {}, {}, {}
  if spec.spaces ~= nil then
    if spec.numbers ~= nil or spec.previous ~= nil then
      fail("give numbers (your own numbers) or spaces (ISV spaces, each with its numbers and previous), not both")
    end
    if type(spec.spaces) ~= "table" or #spec.spaces == 0 then fail("spaces must be a non-empty list of spaces") end
    local seen = {}
    for i, s in ipairs(spec.spaces) do
      local what = ("spaces[%d]"):format(i)
      if type(s) ~= "table" then fail(what .. " must be a table") end
      check_keys(s, { "cust_space_id", "isv_code", "label", "numbers", "previous" }, what)
      if type(s.cust_space_id) ~= "string" or s.cust_space_id == "" then
        fail(what .. ": cust_space_id must be a non-empty string")
      end
      if seen[s.cust_space_id] then fail(("%s: cust_space_id %s is listed twice"):format(what, s.cust_space_id)) end
      seen[s.cust_space_id] = true
      local space = { cust_space_id = s.cust_space_id, isv_code = s.isv_code, label = s.label }
      spaces[i] = space
      local _, text = decode(s.numbers or {}, space, what .. ".numbers")
      texts[space] = text
      if s.previous ~= nil then previous[i] = (decode(s.previous, space, what .. ".previous")) end
    end
  else
    local space = { label = "own numbers" }
    spaces[1] = space
    local _, text = decode(spec.numbers or {}, space, "numbers")
    texts[space] = text
    if spec.previous ~= nil then previous[1] = (decode(spec.previous, space, "previous")) end
  end
  return spaces, texts, next(previous) ~= nil and previous or nil
end

---------------------------------------------------------------------------
-- Loading and running a policy

local Policy = {}
Policy.__index = Policy

local function resolve(path)
  if path:sub(1, 1) == "/" or not current then return path end
  return current.dir .. path
end

-- The host of a test run: no credentials, no network.
local function fake_host(texts, log)
  local client = {}
  function client.batch(_, reqs)
    local res, errs = {}, {}
    for k, req in ipairs(reqs) do
      local text = texts[req.space]
      if not text then
        errs[k] = "chatapp-run test: no fixture for this space"
      else
        res[k], errs[k] = core.decode_phone_numbers(text, req.space)
      end
    end
    return res, errs
  end
  function client.account() return M.ACCOUNT end
  function client.stats() return nil end
  return {
    client = function() return client, "fixtures (chatapp-run test)" end,
    http = function() return nil, "chatapp-run test has no network: actions are planned, never sent" end,
    log = function(level, line) if level <= 0 then log[#log + 1] = line end end,
  }
end

local RUN_KEYS = { "numbers", "previous", "spaces", "env", "now", "previous_at", "expect_errors",
                   "instruction_limit", "memory_limit_mb" }

--- t.load(path [, options]): the policy file at path (relative to the test
--- file); options: instruction_limit, memory_limit_mb (as the CLI's).
--- It is loaded once here (with an empty environment) so a policy that
--- does not load fails the case at this line; each run loads it afresh.
function M.load(path, options)
  if type(path) ~= "string" then fail("t.load expects the path of a policy file") end
  options = options or {}
  check_keys(options, { "instruction_limit", "memory_limit_mb" }, "t.load options")
  local file = resolve(path)
  local src, err = core.read_file(file, 4 * MB, "the policy file")
  if not src then fail("t.load: " .. err) end
  local p = setmetatable({ file = file, src = src, options = options }, Policy)
  local saved = sandbox.test_env
  sandbox.test_env = {}
  local ok, done, lerr = pcall(function()
    local r = runner_mod.new({ output = "none" }, fake_host({}, {}))
    return r:load_string(file, src)
  end)
  sandbox.test_env = saved
  if not ok then error(done, 0) end
  if not done then fail("the policy does not load: " .. report.text(lerr)) end
  return p
end

-- load_string's result, wrapped: the message of a failed load.
local function loaded(ok, err)
  if not ok then fail("the policy does not load: " .. report.text(err)) end
end

local Result = {}
Result.__index = Result

local function temp_state()
  local base = os.tmpname()
  return base, base .. ".db"
end

local function remove_state(base, path)
  for _, suffix in ipairs { "", "-wal", "-shm", "-journal" } do os.remove(path .. suffix) end
  os.remove(base)
end

--- policy:run(spec) -> result.  See docs/testing-policies.md.
function Policy:run(spec)
  spec = spec or {}
  if type(spec) ~= "table" then fail("policy:run expects a table") end
  check_keys(spec, RUN_KEYS, "policy:run")
  if spec.env ~= nil and type(spec.env) ~= "table" then fail("env must be a table of NAME = \"value\"") end
  for k, v in pairs(spec.env or {}) do
    if type(k) ~= "string" or type(v) ~= "string" then
      fail(("env: %s = %s: names and values are strings"):format(show(k), show(v)))
    end
  end
  local now = spec.now or os.time()
  if math.type(now) ~= "integer" or now < 0 then fail("now must be a Unix time (whole seconds)") end
  local previous_at = spec.previous_at or now - 3600
  if math.type(previous_at) ~= "integer" or previous_at < 0 or previous_at > now then
    fail("previous_at must be a Unix time (whole seconds) not after now")
  end
  local spaces, texts, previous = fixtures(spec)
  local log = {}
  local host = fake_host(texts, log)
  local options = {
    output = "none", account = M.ACCOUNT,
    instruction_limit = spec.instruction_limit or self.options.instruction_limit,
    memory_limit_mb = spec.memory_limit_mb or self.options.memory_limit_mb,
  }
  local base, path
  local saved_env, saved_now = sandbox.test_env, state_mod.now
  local ok, rep = pcall(function()
    sandbox.test_env = spec.env or {}
    if previous then
      base, path = temp_state()
      options.state = path
      -- The previous run: its snapshots recorded as a run would.
      state_mod.now = function() return previous_at end
      local st, err = state_mod.open(path, {})
      if not st then fail("cannot keep the test's state: " .. err) end
      local before = {}
      for i = 1, #spaces do before[i] = previous[i] or {} end
      local okk, oerr = st:observe(M.ACCOUNT, spaces, before)
      if okk then okk, oerr = st:commit() end
      st:close()
      if not okk then fail("cannot record the previous snapshots: " .. tostring(oerr)) end
    end
    state_mod.now = function() return now end
    local r = runner_mod.new(options, host)
    function r.spaces() return spaces end -- the fixtures' spaces, not a --spaces file
    loaded(r:load_string(self.file, self.src))
    return r:run { dry_run = true }
  end)
  sandbox.test_env, state_mod.now = saved_env, saved_now
  if path then remove_state(base, path) end
  if not ok then error(rep, 0) end
  local result = M.result(rep, log)
  if rep.status ~= "ok" and rep.status ~= "policy" then
    fail(("the run failed (%s): %s"):format(rep.status, tostring(rep.message)))
  end
  if #result.errors > 0 and not spec.expect_errors then
    local e = result.errors[1]
    fail(("the policy raised an error%s: %s%s"):format(e.number and (" on number " .. e.number) or "",
      e.message, #result.errors > 1 and (" (and %d more errors)"):format(#result.errors - 1) or "")
      .. "\n(give expect_errors = true to policy:run to test errors with r:expect_error)")
  end
  return result
end

-- A plain view of one planned action, for matching and messages.
local function view(a)
  local v = {
    kind = a.kind, policy = a.policy, number = a.phone_number, status = a.status,
    space = a.space and a.space.cust_space_id, target = report.describe(a),
  }
  for k, x in pairs(core.deepcopy(a.request or {})) do v[k] = x end
  if a.current then v.current = core.deepcopy(a.current) end
  if a.kind == "webhook" and type(a.request.body) == "string" then
    local ct = a.request.headers and a.request.headers["Content-Type"] or ""
    if ct:find("json", 1, true) then v.json = core.json_decode(a.request.body) end
  end
  return v
end

--- The result of a report (rep) and the run's warnings (log).
function M.result(rep, log)
  local r = setmetatable({ report = rep, status = rep.status, matched = {}, matches = {}, actions = {},
                           errors = {}, warnings = log, transitions = {} }, Result)
  for _, m in ipairs(rep.matches) do
    r.matched[#r.matched + 1] = m.number.phone_number
    r.matches[#r.matches + 1] = { policy = m.policy.name, number = m.number.phone_number,
                                  space = m.space and m.space.cust_space_id }
  end
  for _, a in ipairs(rep.actions) do r.actions[#r.actions + 1] = view(a) end
  for _, e in ipairs(rep.errors) do
    r.errors[#r.errors + 1] = { policy = e.policy.name, number = e.number and e.number.phone_number,
                                message = report.text(e.message) }
  end
  for _, t in ipairs(rep.changes or {}) do
    r.transitions[#r.transitions + 1] = { number = t.number, field = t.field, old = t.old, new = t.new,
                                          space = t.space and t.space.cust_space_id }
  end
  return r
end

---------------------------------------------------------------------------
-- Expectations

--- t.like(pattern): in an expectation, matches a string with that Lua
--- pattern (string.find) instead of equality.
function M.like(pattern)
  if type(pattern) ~= "string" then fail("t.like expects a Lua pattern (a string)") end
  return setmetatable({ pattern = pattern }, { __like = true })
end

local function is_like(v)
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__like
end

-- Whether value has everything pattern says (tables: a subset).
local function matches(pattern, value)
  if is_like(pattern) then
    return type(value) == "string" and value:find(pattern.pattern) ~= nil
  end
  if type(pattern) == "table" then
    if type(value) ~= "table" then return false end
    for k, p in pairs(pattern) do
      if not matches(p, value[k]) then return false end
    end
    return true
  end
  return pattern == value
end

local ACTION_KEYS = { "kind", "policy", "number", "status", "space", "target", "method", "url", "headers",
                      "body", "json", "operation", "params", "current", "message", "argv", "stdin", "name",
                      "timeout_ms", "attempts" }

local function check_pattern(pattern, what)
  if type(pattern) ~= "table" then fail(what .. " expects a table of what the action has, e.g. { kind = \"webhook\" }") end
  check_keys(pattern, ACTION_KEYS, what)
end

-- One planned action on one line.
local function action_line(v)
  local parts = { v.kind, v.target }
  if v.number then parts[#parts + 1] = "for " .. v.number end
  if v.json ~= nil then
    parts[#parts + 1] = show(v.json)
  elseif v.kind == "webhook" and v.body then
    parts[#parts + 1] = show(v.body)
  elseif v.params then
    parts[#parts + 1] = show(v.params)
  end
  return table.concat(parts, " ")
end

function Result:planned_text()
  if #self.actions == 0 then return "planned: nothing" end
  local lines = { ("planned (%d):"):format(#self.actions) }
  for _, v in ipairs(self.actions) do lines[#lines + 1] = "  " .. action_line(v) end
  return table.concat(lines, "\n")
end

local function count(self, pattern)
  local n = 0
  for _, v in ipairs(self.actions) do
    if pattern == nil or matches(pattern, v) then n = n + 1 end
  end
  return n
end

--- r:expect_action(pattern): at least one planned action has every field
--- of pattern (subset match; json is the decoded body).
function Result:expect_action(pattern)
  check_pattern(pattern, "expect_action")
  if count(self, pattern) == 0 then
    fail(("expected an action %s\n%s"):format(show(pattern), self:planned_text()))
  end
  return self
end

--- r:expect_no_action([pattern]): no planned action matches.
function Result:expect_no_action(pattern)
  if pattern ~= nil then check_pattern(pattern, "expect_no_action") end
  if count(self, pattern) > 0 then
    fail(("expected no action%s\n%s"):format(pattern and (" " .. show(pattern)) or "", self:planned_text()))
  end
  return self
end

--- r:expect_actions(n [, pattern]): exactly n planned actions (matching
--- pattern when given).  Log lines (plan:log) are actions of kind "log".
function Result:expect_actions(n, pattern)
  if math.type(n) ~= "integer" or n < 0 then fail("expect_actions expects a count (a whole number)") end
  if pattern ~= nil then check_pattern(pattern, "expect_actions") end
  local got = count(self, pattern)
  if got ~= n then
    fail(("expected %d action%s%s, got %d\n%s"):format(n, n == 1 and "" or "s",
      pattern and (" " .. show(pattern)) or "", got, self:planned_text()))
  end
  return self
end

local function number_list(list)
  if #list == 0 then return "none" end
  return table.concat(list, ", ")
end

--- r:expect_matched { numbers... }: the policy matched exactly these
--- numbers (in any order); r:expect_matched(n): that many.
function Result:expect_matched(want)
  if math.type(want) == "integer" then
    if #self.matched ~= want then
      fail(("expected %d matched numbers, got %d: %s"):format(want, #self.matched, number_list(self.matched)))
    end
    return self
  end
  if type(want) ~= "table" then fail("expect_matched expects a list of phone numbers or a count") end
  local got, missing, extra = {}, {}, {}
  for _, n in ipairs(self.matched) do got[n] = (got[n] or 0) + 1 end
  local wanted = {}
  for _, n in ipairs(want) do
    wanted[n] = true
    if not got[n] then missing[#missing + 1] = tostring(n) end
  end
  for _, n in ipairs(self.matched) do
    if not wanted[n] then extra[#extra + 1] = n end
  end
  if #missing > 0 or #extra > 0 then
    local parts = {}
    if #missing > 0 then parts[#parts + 1] = "not matched: " .. table.concat(missing, ", ") end
    if #extra > 0 then parts[#parts + 1] = "matched but not expected: " .. table.concat(extra, ", ") end
    fail(("expected matched: %s; %s (matched: %s)"):format(number_list(want), table.concat(parts, "; "),
      number_list(self.matched)))
  end
  return self
end

--- r:expect_error(text [, number]): the policy raised an error whose
--- message holds text (plain), on that number when given.  Needs
--- expect_errors = true in policy:run.
function Result:expect_error(text, number)
  if type(text) ~= "string" then fail("expect_error expects the text the error message holds") end
  for _, e in ipairs(self.errors) do
    if e.message:find(text, 1, true) and (number == nil or e.number == number) then return self end
  end
  local got = {}
  for _, e in ipairs(self.errors) do got[#got + 1] = "  " .. (e.number and (e.number .. ": ") or "") .. e.message end
  fail(("expected a policy error holding %q%s; %s"):format(text, number and (" on " .. number) or "",
    #got == 0 and "the policy raised none" or ("errors:\n" .. table.concat(got, "\n"))))
end

--- r:expect_warning(text): the run warned (as chatapp-run would on
--- stderr) with a line holding text (plain).
function Result:expect_warning(text)
  if type(text) ~= "string" then fail("expect_warning expects the text the warning holds") end
  for _, w in ipairs(self.warnings) do
    if w:find(text, 1, true) then return self end
  end
  fail(("expected a warning holding %q; warnings: %s"):format(text,
    #self.warnings == 0 and "none" or ("\n  " .. table.concat(self.warnings, "\n  "))))
end

---------------------------------------------------------------------------
-- Cases

--- t.case(name, fn): a test case of the file.
function M.case(name, fn)
  if not current then error("t.case is for test files run by chatapp-run test", 2) end
  if type(name) ~= "string" or type(fn) ~= "function" then
    error("t.case expects a name and a function: t.case(\"pages on RED\", function() ... end)", 2)
  end
  local info = debug.getinfo(2, "l")
  current.cases[#current.cases + 1] = { name = name, fn = fn, line = info and info.currentline or 0 }
end

--- t.expect(cond, message): fail with message unless cond.
function M.expect(cond, message)
  if not cond then fail(message or "expectation failed") end
  return cond
end

--- t.equal(got, want [, what]): fail unless got == want (tables: same
--- fields, deeply).
local function deep_equal(a, b)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  for k, v in pairs(a) do if not deep_equal(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

function M.equal(got, want, what)
  if not deep_equal(got, want) then
    fail(("%sexpected %s, got %s"):format(what and (what .. ": ") or "", show(want), show(got)))
  end
  return got
end

local function dir_of(path)
  return path:match("^(.*/)") or ""
end

-- Run one case: { name, line, status = "ok" | "fail", message, where }.
local function run_case(c)
  local ok, err = xpcall(c.fn, function(e)
    if getmetatable(e) == Failure then return e end
    -- a plain error in the test's code: its message, and where in the test
    return { message = tostring(e), where = test_line(), traceback = debug.traceback(nil, 2) }
  end)
  local res = { name = c.name, file = current.file, line = c.line }
  if ok then
    res.status = "ok"
  else
    res.status = "fail"
    res.message = report.text(err.message)
    res.where = err.where
    -- a Lua error's message starts with its place already
    if res.where and res.message:sub(1, #res.where + 2) == res.where .. ": " then
      res.message = res.message:sub(#res.where + 3)
    end
  end
  return res
end

--- Run a test file: list of case results, or nil and the file's error.
function M.run_file(path)
  local src, err = core.read_file(path, 4 * MB, "the test file")
  if not src then return nil, err end
  local env = setmetatable({}, { __index = _G })
  local chunk, lerr = load(src, "@" .. path, "t", env)
  if not chunk then return nil, lerr end
  local saved = current
  current = { file = path, dir = dir_of(path), cases = {} }
  local results
  local ok, cerr = xpcall(chunk, function(e)
    if getmetatable(e) == Failure then return (e.where and (e.where .. ": ") or "") .. e.message end
    return tostring(e)
  end)
  if ok and #current.cases == 0 then
    ok, cerr = false, path .. ": no test case in the file (add t.case(\"name\", function() ... end))"
  end
  if ok then
    results = {}
    for i, c in ipairs(current.cases) do results[i] = run_case(c) end
  end
  current = saved
  if not ok then return nil, cerr end
  return results
end

---------------------------------------------------------------------------
-- chatapp-run test [--output text|json] [FILES or FOLDERS...]

M.USAGE = [[
Usage: chatapp-run test [--output text|json] [FILE|FOLDER...]

Run policy tests: *_test.lua files given, or found in the folders given
(up to 4 levels deep; default: the current folder).  Tests run offline:
no credentials, no network, no emulator.  docs/testing-policies.md.

  --output text|json   one line per test and a summary (default), or
                       JSON Lines: one object per test and a summary
  -h, --help           this help

Exit status: 0 every test passed; 1 a test failed (or a test file did not
load); 2 usage error or no test file found.
]]

local OPTIONS = { "--output", "--help" }

local Usage = {}

local function usage(msg) error(setmetatable({ message = msg }, Usage), 0) end

function M.parse(args)
  local o = { output = "text", paths = {} }
  local i = 1
  local only_paths = false
  while i <= #args do
    local a = args[i]
    if only_paths or a:sub(1, 1) ~= "-" or a == "-" then
      o.paths[#o.paths + 1] = a
    elseif a == "--" then
      only_paths = true
    elseif a == "-h" or a == "--help" then
      o.help = true
    else
      local name, value = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      if name == "--output" then
        if not value then
          i = i + 1
          value = args[i]
          if value == nil then usage("--output needs a value: text or json") end
        end
        if value ~= "text" and value ~= "json" then
          usage(("--output %s: use text or json"):format(report.safe(value)))
        end
        o.output = value
      else
        local near = nearest(name, OPTIONS)
        usage(("test: unknown option '%s'%s"):format(report.safe(name),
          near and ("; did you mean '" .. near .. "'?") or ""))
      end
    end
    i = i + 1
  end
  return o
end

-- The *_test.lua files under dir, sorted.
local function find_tests(dir)
  local start = dir:sub(1, 1) == "-" and ("./" .. dir) or dir
  local r, err = core.exec {
    argv = { "find", start, "-maxdepth", tostring(M.MAX_DEPTH),
             "(", "-name", ".git", "-o", "-name", "node_modules", ")", "-prune",
             "-o", "-type", "f", "-name", "*_test.lua", "-print" },
    timeout_ms = 30000, max_output = 4 * MB,
  }
  if not r then return nil, ("cannot search folder %s: %s"):format(dir, err) end
  if r.status ~= 0 then
    return nil, ("cannot search folder %s: %s"):format(dir, (r.output or ""):gsub("%s+$", ""))
  end
  local list = {}
  for line in r.output:gmatch("[^\n]+") do
    if line:sub(1, 2) == "./" and dir:sub(1, 2) ~= "./" then line = line:sub(3) end
    list[#list + 1] = line
  end
  table.sort(list)
  return list
end

local function is_file(path)
  local f = io.open(path, "r")
  if not f then return false end
  -- a folder opens on Linux, but cannot be read
  local ok = f:read(0) ~= nil or f:read("a") ~= nil
  f:close()
  return ok
end

--- chatapp-run test ARGS...: the exit status.
function M.main(args)
  local stdout = core.redacting(io.stdout)
  local function err(s) io.stderr:write("chatapp-run: ", s, "\n") end
  local ok, o = pcall(M.parse, args)
  if not ok then
    if getmetatable(o) == Usage then
      err(o.message .. "\nTry 'chatapp-run test --help'.")
      return 2
    end
    error(o, 0)
  end
  if o.help then
    stdout:write(M.USAGE)
    return 0
  end
  if #o.paths == 0 then o.paths = { "." } end
  local files, seen = {}, {}
  for _, p in ipairs(o.paths) do
    local list
    if p:match("%.lua$") then
      if not is_file(p) then
        err(("no test file %s"):format(report.safe(p)))
        return 2
      end
      list = { p }
    else
      local ferr
      list, ferr = find_tests(p)
      if not list then err(report.safe(ferr)); return 2 end
    end
    for _, f in ipairs(list) do
      if not seen[f] then
        seen[f] = true
        files[#files + 1] = f
      end
    end
  end
  if #files == 0 then
    err(("no test files (*_test.lua) in %s"):format(report.safe(table.concat(o.paths, ", "))))
    return 2
  end

  local passed, failed = 0, 0
  local function emit(t) stdout:write(core.json_encode(t), "\n") end
  for _, file in ipairs(files) do
    local results, ferr = M.run_file(file)
    if not results then
      failed = failed + 1
      ferr = report.text(ferr)
      if o.output == "json" then
        emit { type = "file", file = file, status = "error", message = ferr }
      else
        stdout:write(("FAIL %s\n     %s\n"):format(report.safe(file), report.safe_lines(ferr):gsub("\n", "\n     ")))
      end
    else
      for _, r in ipairs(results) do
        if r.status == "ok" then passed = passed + 1 else failed = failed + 1 end
        if o.output == "json" then
          emit { type = "test", name = r.name, file = r.file, line = r.line, status = r.status,
                 message = r.message, where = r.where }
        else
          stdout:write(("%-4s %s (%s:%d)\n"):format(r.status == "ok" and "ok" or "FAIL", report.safe(r.name),
            report.safe(r.file), r.line))
          if r.status ~= "ok" then
            local msg = (r.where and (r.where .. ": ") or "") .. r.message
            stdout:write("     ", report.safe_lines(msg):gsub("\n", "\n     "), "\n")
          end
        end
      end
    end
  end
  local status = failed == 0 and "ok" or "fail"
  if o.output == "json" then
    emit { type = "summary", status = status, passed = passed, failed = failed, files = #files }
  else
    stdout:write(("%s: %d passed, %d failed (%d file%s)\n"):format(status == "ok" and "ok" or "FAILED",
      passed, failed, #files, #files == 1 and "" or "s"))
  end
  stdout:flush()
  return failed == 0 and 0 or 1
end

return M
