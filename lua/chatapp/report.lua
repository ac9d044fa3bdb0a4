--- The run report: what each policy saw, matched and did; printed as a
--- text table or JSON Lines, written as Prometheus metrics, and returned to
--- the host (chatapp_runtime_run reads status, message and policies).
--
--   status    "ok" | "api" | "action" | "policy" | "output" | "load" | "config"
--             | "credentials"
--   message   why, when status is not "ok"
--   message_shown  true when the message already went to the log (the
--             host does not print it again)
--   policies  { {name, seen, matched, planned, done, failed, skipped, errors}, ... }
--
-- The JSON Lines objects and the metrics are documented in docs/cli.md.

local chatapp = require "chatapp"
local core = chatapp.core
local spaces_mod = require "chatapp.spaces"
local actions = require "chatapp.actions"

local Report = {}
Report.__index = Report

local format_of -- the writers of the format the options name (below)

local M = {}

--- tostring that never raises (an error object's __tostring may).
function M.text(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return ("(a %s error value whose __tostring failed)"):format(type(v))
end
local text = M.text

-- Characters that may not reach a terminal as they are: C0 controls and
-- DEL (ESC sequences, BEL, CR/LF, NUL), C1 controls (U+0080-U+009F, CSI
-- among them), line and paragraph separators, bidirectional overrides and
-- isolates (they reorder what is shown), and bytes that are not UTF-8.
local named = { [7] = "\\a", [8] = "\\b", [9] = "\\t", [10] = "\\n", [11] = "\\v",
  [12] = "\\f", [13] = "\\r", [27] = "\\e" }
local function hidden_code(cp)
  return (cp >= 0x80 and cp <= 0x9f) or cp == 0x2028 or cp == 0x2029
    or (cp >= 0x202a and cp <= 0x202e) or (cp >= 0x2066 and cp <= 0x2069)
    or cp == 0x200e or cp == 0x200f or cp == 0x061c or cp == 0xfeff
end

local function escape(s, keep_newlines)
  if not s:find("[%z\1-\31\127-\255]") then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x20 or c == 0x7f then
      if keep_newlines and c == 9 then
        out[#out + 1] = "\t"
      elseif keep_newlines and c == 10 then
        -- continuation lines are indented (once: escaping twice changes nothing)
        out[#out + 1] = s:sub(i + 1, i + 2) == "  " and "\n" or "\n  "
      else
        out[#out + 1] = named[c] or ("\\x%02x"):format(c)
      end
      i = i + 1
    elseif c < 0x80 then
      local j = s:find("[%z\1-\31\127-\255]", i) or n + 1
      out[#out + 1] = s:sub(i, j - 1)
      i = j
    else
      local ok, cp = pcall(utf8.codepoint, s, i)
      if not ok then
        out[#out + 1] = ("\\x%02x"):format(c)
        i = i + 1
      else
        local len = cp < 0x800 and 2 or cp < 0x10000 and 3 or 4
        out[#out + 1] = hidden_code(cp) and ("\\u{%x}"):format(cp) or s:sub(i, i + len - 1)
        i = i + len
      end
    end
  end
  return table.concat(out)
end

--- The one escaping of text output: v as a string (never raising) that is
--- safe to show on a terminal as one line.  Control characters appear as
--- \n, \r, \e, \x00...; C1 controls, bidirectional overrides and line
--- separators as \u{...}; bytes that are not UTF-8 as \xff.  Every value
--- that came from a server or a policy goes through it before it is shown.
function M.safe(v)
  return escape(text(v), false)
end
local safe = M.safe

--- A duration for people: "45 s", "12 min", "5 h", "3 days".
function M.ago(seconds)
  if seconds < 120 then return ("%d s"):format(seconds) end
  if seconds < 7200 then return ("%d min"):format(seconds // 60) end
  if seconds < 172800 then return ("%d h"):format(seconds // 3600) end
  return ("%d days"):format(seconds // 86400)
end

--- The same for a message that may span lines (an error and its
--- traceback): newlines and tabs are kept, every other control character
--- is escaped, and each continuation line is indented, so no data can
--- start a line of its own.
function M.safe_lines(v)
  return escape(text(v), true)
end

-- A value quoted for a message, escaped ("%q" would keep a newline).
local function quoted(v)
  return '"' .. safe(v) .. '"'
end

--- log(level, line): the host's log (stderr for chatapp-run, the log
--- callback for embedders); warnings go at level 0.
function M.new(options, policies, log)
  if options.output ~= nil then
    local ok, err = M.check_format(options.output)
    if not ok then error(err, 2) end
  end
  local function default_log(level, line)
    if level <= (options.verbose or 0) then core.redacting(io.stderr):write("chatapp-run: ", line, "\n") end
  end
  local host_log = log or default_log
  -- Every line the report logs passes through the one escaping.
  log = function(level, line) return host_log(level, M.safe_lines(line)) end
  local r = setmetatable({
    options = options,
    log_level = log,
    out = core.redacting(io.stdout), -- known secrets never reach the output
    policies = {},
    by_policy = {},
    matches = {},
    actions = {},
    errors = {},
    spaces = {},
    numbers = {}, -- every number fetched, for metrics: {space, list}
    status = "ok",
    started = core.monotonic(),
  }, Report)
  for _, p in ipairs(policies) do
    local entry = {
      name = p.name, file = p.file, description = p.description,
      seen = 0, matched = 0, planned = 0, done = 0, failed = 0, skipped = 0, errors = 0, quiet = 0,
    }
    r.policies[#r.policies + 1] = entry
    r.by_policy[p] = entry
  end
  return r
end

-- A failure raises the status; the most serious one wins.  "output": a
-- file the run writes (--metrics, --record, the state file) could not be
-- written once the run had started (exit 1: something ran); "load",
-- "config" and "credentials": nothing ran (exit 3, 2, 2).
local rank = { ok = 0, action = 1, api = 2, policy = 3, output = 4, load = 5, config = 6, credentials = 7 }

--- shown: the message already went to the log (warn); the host does not
--- print it again.
function Report:fail(status, message, shown)
  if rank[status] > rank[self.status] then
    self.status = status
    -- the host prints it (chatapp-run on stderr): escaped like every line
    self.message = M.safe_lines(message)
    self.message_shown = shown and true or false
  end
end

--- Log a failure and raise the status with it: said once.
function Report:fail_shown(status, message)
  self:warn(message)
  self:fail(status, message, true)
end

function Report:warn(line)
  self.log_level(0, line)
end

-- Known values of the enum fields, for spotting values the API sends that
-- this version does not know yet.
local known = {}
for name, e in pairs(chatapp.enums) do
  local set = {}
  for _, v in ipairs(e.values) do set[v] = true end
  known[e.field] = { name = name, set = set }
end

function Report:note_unknown_values(list)
  self.unknown_values = self.unknown_values or {}
  for _, n in ipairs(list) do
    for field, k in pairs(known) do
      local v = n[field]
      if v ~= nil and not k.set[v] then
        local seen = self.unknown_values[k.name] or {}
        self.unknown_values[k.name] = seen
        if not seen[v] then
          seen[v] = true
          self.log_level(1, ("%s value %s (number %s) is not one chatapp-run knows; "
            .. "it is kept as it came"):format(k.name, quoted(v), safe(n.phone_number or "?")))
        end
      end
    end
  end
end

function Report:space(space, list, err)
  -- One record per space serves both lists (self.numbers: {space, list}):
  -- an ISV run keeps thousands (docs/internals/client.md, "Memory per space").
  local s = { space = space, numbers = list and #list or nil, error = err and text(err), list = list }
  self.spaces[#self.spaces + 1] = s
  if list then
    self:note_unknown_values(list)
    self.numbers[#self.numbers + 1] = s
  else
    self:fail_shown("api", ("space %s: %s"):format(spaces_mod.name(space), s.error))
  end
end

function Report:seen(policy)
  local e = self.by_policy[policy]
  e.seen = e.seen + 1
end

function Report:matched(policy, space, n)
  local e = self.by_policy[policy]
  e.matched = e.matched + 1
  self.matches[#self.matches + 1] = { policy = e, space = space, number = n }
end

--- filter, decide or finish raised for one number (n may be nil).
function Report:policy_error(policy, space, n, message)
  local e = self.by_policy[policy]
  e.errors = e.errors + 1
  message = text(message)
  local msg = ("policy %s failed%s%s: %s"):format(policy.name,
    n and (" on number " .. tostring(n.phone_number)) or "",
    space and (" (space " .. spaces_mod.name(space) .. ")") or "", message)
  self.errors[#self.errors + 1] = { policy = e, space = space, number = n, message = message }
  local shown = message ~= e.last_error
  if not shown then
    -- the same failure again: one line, not the traceback again
    self:warn(("policy %s failed%s: the same error"):format(policy.name,
      n and (" on number " .. tostring(n.phone_number)) or ""))
  else
    self:warn(msg)
  end
  e.last_error = message
  self:fail("policy", msg, shown)
end

-- Whether an action counts as one (a log is a line in the report).
local function counted(a)
  local K = actions.get(a.kind)
  return not K or K.counted ~= false
end

--- A planned action.  An action resumed from the outbox names its policy
--- by name: policy is the loaded one of that name, or nil when no policy
--- file of this run has it (it gets an entry of its own); it goes before
--- the actions planned now (first), as it is carried out before them.
function Report:action(a, policy, first)
  policy = policy or a.policy_ref
  local e = policy and self.by_policy[policy] or self:entry_named(a.policy)
  a.report_entry = e
  if counted(a) then e.planned = e.planned + 1 end -- logs are lines, not actions
  if first then
    self.n_first = (self.n_first or 0) + 1
    table.insert(self.actions, self.n_first, a)
  else
    self.actions[#self.actions + 1] = a
  end
end

function Report:entry_named(name)
  for _, e in ipairs(self.policies) do
    if e.name == name and not e.file then return e end
  end
  local e = { name = name, description = "actions left pending by an earlier run (the policy is not loaded now)",
              seen = 0, matched = 0, planned = 0, done = 0, failed = 0, skipped = 0, errors = 0, quiet = 0 }
  self.policies[#self.policies + 1] = e
  return e
end

--- A policy with remind matched n, on which it acted `seconds` ago: kept
--- quiet.
function Report:quiet(policy, space, n, seconds)
  local e = self.by_policy[policy]
  e.quiet = e.quiet + 1
  self.log_level(1, ("policy %s: number %s (space %s) still matches; acted %s ago, quiet until %s have passed")
    :format(policy.name, n.phone_number or "?", spaces_mod.name(space), M.ago(seconds), M.ago(policy.remind)))
end

--- What changed since the last run (chatapp.state): recorded, or in a
--- dry run only shown.
function Report:transitions(list, dry)
  self.changes = list
  self.changes_dry = dry
end

--- After execution: count outcomes.
function Report:settle(dry_run)
  for _, a in ipairs(self.actions) do
    local e = a.report_entry
    if not counted(a) then
      -- a line in the report, nothing to count
    elseif a.status == "done" then
      e.done = e.done + 1
    elseif a.status == "failed" then
      e.failed = e.failed + 1
      local msg = ("policy %s: %s %s%s failed: %s"):format(a.policy, a.kind, M.describe(a),
        a.phone_number and (" for " .. a.phone_number) or "", a.error)
      self:fail_shown("action", msg)
    elseif a.status == "skipped" then
      e.skipped = e.skipped + 1
    end
  end
  self.dry_run = dry_run
end

function Report:calls(stats)
  self.call_stats = stats
end

--- The run cannot start or go on (no credentials, bad configuration, a
--- policy that does not load): the host prints the message; the report
--- format writes what it writes for a run that did not happen (JSON: the
--- summary with the status and message; text: nothing, the message is on
--- stderr).
function Report:abort(status, message)
  self:fail(status, message)
  local f = format_of(self.options)
  if f.abort then f.abort(self) end
  self.out:flush()
  return self
end

---------------------------------------------------------------------------
-- Describing actions

--- One line: what the action does (its kind says).
function M.describe(a)
  if a.stub then return text(a.target or "?") end
  local K = actions.get(a.kind)
  if not K then return ("(unknown action kind %s)"):format(text(a.kind)) end
  return K.describe(a)
end

--- The request as data, secrets redacted (JSON output, dry run).
function M.request_view(a)
  local K = actions.get(a.kind)
  if not K or a.stub then return {} end
  return K.request_view(a)
end

---------------------------------------------------------------------------
-- Text output

local colors = { done = "32", failed = "31", planned = "33", skipped = "90" }

function Report:use_color()
  local c = self.options.color
  if c == 0 then return false end
  if os.getenv("NO_COLOR") and os.getenv("NO_COLOR") ~= "" then return false end
  if c == 1 then return true end
  return core.isatty(1)
end

--- s is shown as it is: callers escape data (safe) before painting it.
function Report:paint(code, s)
  if not self.color then return s end
  return ("\27[%sm%s\27[0m"):format(code, s)
end

local columns = {
  { "NUMBER", function(m) return m.number.phone_number end },
  { "NAME", function(m) return m.number.verified_name end },
  { "STATUS", function(m) return m.number.status end },
  { "QUALITY", function(m) return m.number.quality_rating end },
  { "TIER", function(m) return m.number.messaging_limit_tier end },
  { "SPACE", function(m) return m.space.label or m.space.cust_space_id end },
}

-- Rows of cells, padded to the widest cell of each column.
local function table_lines(rows)
  local width = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do
      width[i] = math.max(width[i] or 0, utf8.len(cell) or #cell)
    end
  end
  local lines = {}
  for r, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local w = utf8.len(cell) or #cell
      cells[i] = i < #row and cell .. (" "):rep(width[i] - w) or cell
    end
    lines[r] = table.concat(cells, "  ")
  end
  return lines
end

function Report:print_action(a, out)
  local K = actions.get(a.kind) or {}
  if K.report_line then
    out:write("    ", safe(K.report_line(a)), "\n")
    return
  end
  local status = a.status
  local outcome = status
  local extra = K.outcome and K.outcome(a)
  if extra then outcome = ("%s (%s)"):format(status, safe(extra)) end
  out:write(("    %-7s %s%s  %s\n"):format(safe(a.kind), safe(M.describe(a)),
    a.phone_number and ("  " .. safe(a.phone_number)) or "", self:paint(colors[status] or "0", safe(outcome))))
  if a.from_outbox then
    out:write(("      from the outbox: planned by an earlier run %s ago, not finished then\n"):format(M.ago(a.outbox_age or 0)))
  end
  if a.error then out:write("      error: ", safe(a.error), "\n") end
  self:print_output(a, out)
  if a.reason then out:write("      ", safe(a.reason), "\n") end
  if a.retry then out:write("      kept in the outbox: the next run tries again\n") end
  if not self.dry_run or not K.dry_run_lines then return end
  -- The exact request, for review before applying; every line escaped.
  for _, line in ipairs(K.dry_run_lines(a, M.request_view(a))) do
    out:write("      ", safe(line), "\n")
  end
end

-- At most this many lines of a command's output in the text report (JSON
-- has all of what was captured, result.output).
local MAX_OUTPUT_LINES = 20

--- A command's output (plan:exec), under its action, every line escaped.
function Report:print_output(a, out)
  local output = type(a.result) == "table" and a.result.output
  if type(output) ~= "string" or output == "" then return end
  local lines = {}
  for line in (output:sub(-1) == "\n" and output or output .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  for i = 1, math.min(#lines, MAX_OUTPUT_LINES) do
    out:write(i == 1 and "      output: " or "              ", safe(lines[i]), "\n")
  end
  if #lines > MAX_OUTPUT_LINES then
    out:write(("              ... and %d more lines (--output json has them all)\n"):format(#lines - MAX_OUTPUT_LINES))
  end
  if a.result.truncated then out:write("              (cut: only the first 64 KiB is kept)\n") end
end

function Report:print_text()
  local out = self.out
  self.color = self:use_color()
  for _, e in ipairs(self.policies) do
    out:write(self:paint("1", safe(e.name)), e.file and ("  " .. safe(e.file)) or "", "\n")
    if e.description then out:write("  ", safe(e.description), "\n") end
    local rows = {}
    for _, m in ipairs(self.matches) do
      if m.policy == e then
        if #rows == 0 then
          local header = {}
          for i, c in ipairs(columns) do header[i] = c[1] end
          rows[1] = header
        end
        local row = {}
        for i, c in ipairs(columns) do row[i] = safe(c[2](m) or "-") end
        rows[#rows + 1] = row
      end
    end
    for _, line in ipairs(table_lines(rows)) do out:write("  ", line, "\n") end
    local any = false
    for _, a in ipairs(self.actions) do
      if a.report_entry == e then
        if not any then out:write(self.dry_run and "  plan (dry run: nothing sent)\n" or "  actions\n") end
        any = true
        self:print_action(a, out)
      end
    end
    local line = ("  %d seen, %d matched"):format(e.seen, e.matched)
    if e.planned > 0 then
      -- the same counts as the JSON summary: planned is every action
      -- planned; done, failed and skipped are what became of them
      line = line .. (", %d planned"):format(e.planned)
      if self.dry_run then
        line = line .. " (dry run: none carried out)"
      else
        line = line .. (": %d done, %d failed"):format(e.done, e.failed)
        if e.skipped > 0 then line = line .. (", %d skipped"):format(e.skipped) end
        local left = e.planned - e.done - e.failed - e.skipped
        if left > 0 then line = line .. (", %d not carried out"):format(left) end
      end
    end
    if e.quiet > 0 then line = line .. (", %d quiet (acted on within the remind interval)"):format(e.quiet) end
    if e.errors > 0 then line = line .. self:paint("31", (", %d errors"):format(e.errors)) end
    out:write(line, "\n\n")
  end
  self:print_changes_text()
  self:print_summary_text()
end

-- At most this many changes are listed in the text report (JSON has all).
local MAX_CHANGE_LINES = 50

local function change_line(t)
  if t.field == "presence" then
    return ("%s  %s  %s"):format(safe(t.number), t.new == "gone" and "gone" or "new", safe(spaces_mod.name(t.space)))
  end
  return ("%s  %s: %s -> %s  %s"):format(safe(t.number), t.field, safe(t.old or "(none)"),
    safe(t.new or "(none)"), safe(spaces_mod.name(t.space)))
end

function Report:print_changes_text()
  local list = self.changes
  if not list or #list == 0 then return end
  self.out:write(self:paint("1", ("changes since the last run (%s)"):format(
    self.changes_dry and "dry run: not recorded" or "recorded")), "\n")
  for i = 1, math.min(#list, MAX_CHANGE_LINES) do self.out:write("  ", change_line(list[i]), "\n") end
  if #list > MAX_CHANGE_LINES then
    self.out:write(("  ... and %d more (--output json lists them all)\n"):format(#list - MAX_CHANGE_LINES))
  end
  self.out:write("\n")
end

function Report:print_summary_text()
  local failed, numbers = 0, 0
  for _, s in ipairs(self.spaces) do
    if s.error then failed = failed + 1 else numbers = numbers + s.numbers end
  end
  local parts = { ("%d space%s"):format(#self.spaces, #self.spaces == 1 and "" or "s") }
  if failed > 0 then parts[1] = parts[1] .. self:paint("31", (" (%d failed)"):format(failed)) end
  parts[#parts + 1] = ("%d numbers"):format(numbers)
  local st = self.call_stats
  if st then
    parts[#parts + 1] = ("%d API calls (%d throttled, %d retries)"):format(st.calls, st.throttled, st.retries)
  end
  self.out:write(("run: %s in %.1f s%s\n"):format(table.concat(parts, ", "),
    core.monotonic() - self.started, self.replay and " (replayed)" or ""))
  if st and st.min_factor and st.min_factor < 1 then
    self.out:write(("  throttle answers showed another program spending the quota: the rate "
      .. "went down to %d%% of it, then back up\n"):format(math.floor(st.min_factor * 100 + 0.5)))
  end
  if st and st.limiter and ((st.limiter_outages or 0) > 0 or (st.limiter_failed or 0) > 0) then
    -- a limiter shared through Redis that did not answer: calls waited
    -- for it (never a limit of this host alone), some maybe past their deadline
    local failed = st.limiter_failed or 0
    self.out:write(self:paint("31", ("  the shared limiter (Redis at %s) did not answer for %.1f s in all "
      .. "(%d outage%s): API calls waited for it%s"):format(st.limiter, (st.limiter_down_ms or 0) / 1000,
      st.limiter_outages, st.limiter_outages == 1 and "" or "s",
      failed > 0 and ("; %d call%s failed at %s deadline without being sent"):format(failed,
        failed == 1 and "" or "s", failed == 1 and "its" or "their") or "")) .. "\n")
  end
end

---------------------------------------------------------------------------
-- JSON Lines

-- space: "" for your own numbers (docs/cli.md); absent, like
-- space_label, for a record of no space (an action planned in finish).
local function space_fields(t, space)
  if space then
    t.space = space.cust_space_id or ""
    t.space_label = space.label
  end
  return t
end

--- One JSON Lines record.  A record that cannot be encoded (a value the
--- encoder refuses: nesting deeper than chatapp.json.max_depth, a function,
--- a non-finite number) is never dropped in silence: a message goes to
--- the log and a record of the same type with the identifying fields and
--- "encode_error" takes its place; the other records still print.
function Report:emit_json(t)
  local line, err = core.json_encode(t)
  if not line then
    local policy = type(t.policy) == "string" and t.policy or nil
    local number = type(t.phone_number) == "string" and t.phone_number or nil
    if not number and t.type == "match" then
      local ok, pn = pcall(function() return t.number.phone_number end)
      number = ok and type(pn) == "string" and pn or nil
    end
    local msg = ("cannot write the %s record%s%s as JSON: %s"):format(t.type,
      policy and (" of policy " .. policy) or "", number and (" for number " .. number) or "",
      text(err))
    self:warn(msg)
    line = assert(core.json_encode {
      type = t.type, policy = policy, phone_number = number, space = type(t.space) == "string" and t.space or nil,
      status = type(t.status) == "string" and t.status or nil, id = type(t.id) == "string" and t.id or nil,
      encode_error = text(err),
    })
  end
  self.out:write(line, "\n")
end

function Report:print_json()
  local out = self.out
  local emit = function(t) self:emit_json(t) end
  for _, s in ipairs(self.spaces) do
    emit(space_fields({ type = "space", numbers = s.numbers, error = s.error }, s.space))
  end
  for _, m in ipairs(self.matches) do
    emit(space_fields({ type = "match", policy = m.policy.name, number = m.number }, m.space))
  end
  for _, e in ipairs(self.errors) do
    emit(space_fields({ type = "error", policy = e.policy.name,
      phone_number = e.number and e.number.phone_number, message = e.message }, e.space))
  end
  for _, t in ipairs(self.changes or {}) do
    emit(space_fields({ type = "transition", phone_number = t.number, field = t.field, old = t.old, new = t.new,
                        recorded = not self.changes_dry }, t.space))
  end
  for _, a in ipairs(self.actions) do
    emit(space_fields({
      type = "action", policy = a.policy, phone_number = a.phone_number, kind = a.kind,
      id = a.id, status = a.status, request = M.request_view(a), current = a.current,
      result = a.result, error = a.error, reason = a.reason,
      outbox = a.from_outbox and { planned_at = a.from_outbox, age_s = a.outbox_age } or nil,
      retry = a.retry,
    }, a.space))
  end
  self:print_json_summary()
end

--- The summary record, last (alone when the run did not happen).
function Report:print_json_summary()
  local unknown
  for name, set in pairs(self.unknown_values or {}) do
    unknown = unknown or {}
    local list = {}
    for v in pairs(set) do list[#list + 1] = v end
    table.sort(list)
    unknown[name] = list
  end
  local summary = {
    type = "summary", status = self.status, message = self.message,
    credentials = self.credentials, unknown_values = unknown,
    dry_run = self.dry_run or false, replay = self.replay or false,
    duration_s = math.floor((core.monotonic() - self.started) * 1000 + 0.5) / 1000,
    policies = chatapp.json.array(), calls = self.call_stats,
  }
  for i, e in ipairs(self.policies) do
    summary.policies[i] = {
      name = e.name, seen = e.seen, matched = e.matched, planned = e.planned,
      done = e.done, failed = e.failed, skipped = e.skipped, errors = e.errors, quiet = e.quiet,
    }
  end
  self:emit_json(summary)
end

---------------------------------------------------------------------------
-- Prometheus metrics

-- Prometheus takes UTF-8 only (one bad byte fails the whole scrape): a
-- byte that is not UTF-8 becomes U+FFFD.
local function utf8_only(s)
  if utf8.len(s) then return s end
  local out, i, n = {}, 1, #s
  while i <= n do
    local ok, cp = pcall(utf8.codepoint, s, i)
    if ok then
      local len = cp < 0x80 and 1 or cp < 0x800 and 2 or cp < 0x10000 and 3 or 4
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = "\u{FFFD}"
      i = i + 1
    end
  end
  return table.concat(out)
end

-- The text format's three escapes (\\, \n, \"); every other character
-- stands for itself, so a value parses back to what it was.
local function label_value(v)
  return (utf8_only(text(v or "")):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

-- A sample value: integers as they are, +Inf, -Inf, NaN as Prometheus
-- writes them.
local function sample_value(v)
  if math.type(v) == "integer" then return ("%d"):format(v) end
  if type(v) ~= "number" then return tostring(v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  return ("%.17g"):format(v)
end

local function labels(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = ('%s="%s"'):format(k, label_value(t[k])) end
  return "{" .. table.concat(keys, ",") .. "}"
end

function Report:metrics_text()
  local lines = {}
  local function metric(name, help, kind, samples)
    lines[#lines + 1] = ("# HELP %s %s"):format(name, help)
    lines[#lines + 1] = ("# TYPE %s %s"):format(name, kind)
    for _, s in ipairs(samples) do
      lines[#lines + 1] = ("%s%s %s"):format(name, s[1] and labels(s[1]) or "", sample_value(s[2]))
    end
  end
  -- numbers by space, status, quality and tier
  local counts, keys = {}, {}
  for _, entry in ipairs(self.numbers) do
    for _, n in ipairs(entry.list) do
      local l = { space = entry.space.cust_space_id or "", space_label = entry.space.label or "",
        status = n.status or "", quality = n.quality_rating or "", tier = n.messaging_limit_tier or "" }
      local k = labels(l)
      if not counts[k] then counts[k] = { l, 0 }; keys[#keys + 1] = k end
      counts[k][2] = counts[k][2] + 1
    end
  end
  table.sort(keys)
  local samples = {}
  for i, k in ipairs(keys) do samples[i] = counts[k] end
  metric("chatapp_numbers", "Sender numbers by space, status, quality rating and messaging tier.", "gauge", samples)
  -- one series per number (the first, should a space list it twice), for
  -- alerts per number (docs/cli.md, docs/watch.md)
  local info, level, limit, status, seen = {}, {}, {}, {}, {}
  for _, entry in ipairs(self.numbers) do
    local space_id = entry.space.cust_space_id or ""
    for _, n in ipairs(entry.list) do
      local number = n.phone_number or ""
      local key = space_id .. "\0" .. number
      if not seen[key] then
        seen[key] = true
        info[#info + 1] = { { space = space_id, space_label = entry.space.label or "", number = number,
          status = n.status or "", quality = n.quality_rating or "", tier = n.messaging_limit_tier or "" }, 1 }
        local id = { space = space_id, number = number }
        if n.quality_level then level[#level + 1] = { id, n.quality_level } end
        if n.messaging_limit then limit[#limit + 1] = { id, n.messaging_limit } end
        status[#status + 1] = { { space = space_id, number = number, status = n.status or "" }, 1 }
      end
    end
  end
  metric("chatapp_number_info", "A sender number: its space, status, quality rating and messaging tier (value 1).",
    "gauge", info)
  metric("chatapp_number_quality_level", "Quality rating of a number: GREEN 3, YELLOW 2, RED 1 (absent when unknown).",
    "gauge", level)
  metric("chatapp_number_messaging_limit",
    "Conversations a number may open in 24 h, from its messaging tier (+Inf when unlimited; absent when unknown).", "gauge", limit)
  metric("chatapp_number_status", "A number's status as a label (value 1): alert on status!=\"CONNECTED\".",
    "gauge", status)
  local up, up_at = {}, {}
  for _, s in ipairs(self.spaces) do
    local l = { space = s.space.cust_space_id or "", space_label = s.space.label or "" }
    local k = labels(l)
    if up_at[k] then
      up[up_at[k]][2] = math.min(up[up_at[k]][2], s.error and 0 or 1) -- a space listed twice: one series
    else
      up[#up + 1] = { l, s.error and 0 or 1 }
      up_at[k] = #up
    end
  end
  metric("chatapp_space_up", "1 when the space's numbers could be fetched.", "gauge", up)
  local st = self.call_stats or {}
  metric("chatapp_api_calls_total", "API calls made (logical calls).", "counter", { { nil, st.calls or 0 } })
  metric("chatapp_api_attempts_total", "HTTP attempts, retries included.", "counter", { { nil, st.attempts or 0 } })
  metric("chatapp_api_retries_total", "Retried attempts.", "counter", { { nil, st.retries or 0 } })
  metric("chatapp_api_throttled_total", "Throttle answers (Throttling.*, System.LimitControl).", "counter",
    { { nil, st.throttled or 0 } })
  metric("chatapp_api_failed_total", "Calls that failed after all attempts.", "counter", { { nil, st.failed or 0 } })
  local pol, act = {}, {}
  for _, e in ipairs(self.policies) do
    pol[#pol + 1] = { { policy = e.name }, e.matched }
    for _, status in ipairs { "done", "failed", "skipped" } do
      act[#act + 1] = { { policy = e.name, status = status }, e[status] }
    end
    act[#act + 1] = { { policy = e.name, status = "planned" }, e.planned - e.done - e.failed - e.skipped }
  end
  metric("chatapp_policy_matched", "Numbers matched by each policy.", "gauge", pol)
  metric("chatapp_actions", "Actions by policy and outcome.", "gauge", act)
  metric("chatapp_run_duration_seconds", "Duration of the run.", "gauge",
    { { nil, ("%.3f"):format(core.monotonic() - self.started) } })
  metric("chatapp_run_success", "1 when the run went well.", "gauge", { { nil, self.status == "ok" and 1 or 0 } })
  metric("chatapp_run_timestamp_seconds", "When the run ended (Unix time).", "gauge", { { nil, os.time() } })
  return table.concat(lines, "\n") .. "\n"
end

---------------------------------------------------------------------------

--- Plain records of the actions, for the embedding API
--- (chatapp_runtime_action_report).
function Report:action_records()
  local list = {}
  for i, a in ipairs(self.actions) do
    list[i] = {
      policy = a.policy, kind = a.kind, id = a.id, phone_number = a.phone_number,
      space = a.space and a.space.cust_space_id, target = M.describe(a),
      status = a.status, error = a.error or a.reason,
    }
  end
  return list
end

--- The report formats of --output, by name: how a run (run) and a check
--- (check) are written on stdout.  This table is the only list of them: the
--- option parser checks that a value is a name, and the runtime asks
--- check_format when it starts.  A new format is one entry here
--- (docs/internals/formats.md).
M.formats = {
  none = {
    run = function() end,
    check = function() end,
  },
  text = {
    run = function(r) r:print_text() end,
    check = function(r)
      local c = r.check
      for _, e in ipairs(r.policies) do
        local what = c and ("; %d runs over %d numbers: %d matched, %d actions planned")
          :format(c.passes, c.numbers, e.matched, e.planned) or ""
        r.out:write(("%s: %s (%s)%s\n"):format(safe(e.name),
          e.errors > 0 and ("FAILED, %d %s"):format(e.errors, e.errors == 1 and "error" or "errors") or "ok",
          safe(e.file or "?"), what))
      end
      if c then r.out:write(("checked against %s, dry: nothing carried out\n"):format(safe(c.data))) end
    end,
  },
  json = {
    run = function(r) r:print_json() end,
    abort = function(r) r:print_json_summary() end,
    check = function(r)
      for _, e in ipairs(r.policies) do
        r:emit_json { type = "policy", name = e.name, file = e.file, status = e.errors > 0 and "failed" or "ok",
                      errors = e.errors, matched = e.matched, planned = e.planned }
      end
    end,
  },
}

--- true when name is a report format, else nil and a message naming them.
function M.check_format(name)
  if M.formats[name] then return true end
  local names = {}
  for n in pairs(M.formats) do names[#names + 1] = n end
  table.sort(names)
  return nil, ("unknown output format %q: use one of %s%s"):format(tostring(name), table.concat(names, ", "),
    chatapp.did_you_mean(tostring(name), names))
end

-- The writers of the format the options name (none when unset).
function format_of(options)
  local name = options.output or "none"
  local ok, err = M.check_format(name)
  if not ok then error(err, 3) end
  return M.formats[name]
end

function Report:finish()
  self.action_list = self:action_records()
  if self.options.metrics then
    -- before the report, so its summary has the outcome; after the run
    -- started, so a failure is "output" (exit 1), never "config"
    local ok, err = core.write_file_atomic(self.options.metrics, self:metrics_text())
    if not ok then
      self:fail_shown("output", ("cannot write the metrics to %s: %s"):format(self.options.metrics, err))
    end
  end
  format_of(self.options).run(self)
  self.out:flush()
  return self
end

function Report:finish_check()
  format_of(self.options).check(self)
  return self
end

return M
