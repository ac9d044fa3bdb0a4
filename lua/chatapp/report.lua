--- The run report: counts per policy, matches, errors; printed as a text
--- table (a terminal) or JSON Lines (machines), and returned to the host.
--
-- Report shape (also what chatapp_runtime_run reads):
--   status    "ok" | "policy" | "api" | "action" | "config" | "credentials"
--   message   why, when status is not "ok"
--   policies  { {name, seen, matched, planned, done, failed, errors}, ... }

local chatapp = require "chatapp"

local Report = {}
Report.__index = Report

local M = {}

function M.new(options, policies)
  local r = setmetatable({
    options = options,
    out = io.stdout,
    policies = {},
    by_name = {},
    matches = {},
    errors = {},
    spaces = {},
    status = "ok",
  }, Report)
  for _, p in ipairs(policies) do
    local entry = {
      name = p.name, file = p.file, description = p.description,
      seen = 0, matched = 0, planned = 0, done = 0, failed = 0, errors = 0,
    }
    r.policies[#r.policies + 1] = entry
    r.by_name[p] = entry
  end
  return r
end

-- A failure raises the status; the most serious one wins.
local rank = { ok = 0, action = 1, api = 2, policy = 3, config = 4, credentials = 5 }

function Report:fail(status, message)
  if rank[status] > rank[self.status] then
    self.status = status
    self.message = message
  elseif not self.message then
    self.message = message
  end
end

local function stderr(line)
  io.stderr:write("chatapp-run: ", line, "\n")
end

function Report:seen(policy)
  local e = self.by_name[policy]
  e.seen = e.seen + 1
end

function Report:matched(policy, space, n)
  local e = self.by_name[policy]
  e.matched = e.matched + 1
  self.matches[#self.matches + 1] = { policy = e, space = space, number = n }
end

function Report:policy_error(policy, space, n, err)
  local e = self.by_name[policy]
  e.errors = e.errors + 1
  local msg = ("policy %s failed on number %s (space %s): %s")
    :format(policy.name, tostring(n.phone_number), space.label or space.cust_space_id or "?",
            tostring(err))
  self.errors[#self.errors + 1] = msg
  stderr(msg)
  self:fail("policy", msg)
end

function Report:space(space, list, err)
  local s = { label = space.label, cust_space_id = space.cust_space_id }
  if list then
    s.numbers = #list
  else
    s.error = tostring(err)
    local msg = ("space %s: %s"):format(space.label or space.cust_space_id or "?", s.error)
    stderr(msg)
    self:fail("api", msg)
  end
  self.spaces[#self.spaces + 1] = s
end

function Report:calls(stats)
  self.call_stats = stats
end

--- The run cannot start (no credentials, bad configuration): the host
--- prints the message.
function Report:abort(status, message)
  self:fail(status, message)
  return self
end

---------------------------------------------------------------------------
-- Output

-- Columns of the match table: header and how to read a cell.
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

function Report:print_text()
  local out = self.out
  for _, e in ipairs(self.policies) do
    out:write(e.name, e.file and ("  (" .. e.file .. ")") or "", "\n")
    if e.description then out:write("  ", e.description, "\n") end
    local rows = {}
    for _, m in ipairs(self.matches) do
      if m.policy == e then
        if #rows == 0 then
          local header = {}
          for i, c in ipairs(columns) do header[i] = c[1] end
          rows[1] = header
        end
        local row = {}
        for i, c in ipairs(columns) do row[i] = tostring(c[2](m) or "-") end
        rows[#rows + 1] = row
      end
    end
    for _, line in ipairs(table_lines(rows)) do out:write("  ", line, "\n") end
    out:write(("  %d of %d numbers matched"):format(e.matched, e.seen))
    if e.errors > 0 then out:write((", %d errors"):format(e.errors)) end
    out:write("\n\n")
  end
end

function Report:print_json()
  local out = self.out
  for _, m in ipairs(self.matches) do
    out:write(chatapp.json.encode {
      type = "match", policy = m.policy.name,
      space = m.space.cust_space_id or "", space_label = m.space.label,
      number = m.number,
    }, "\n")
  end
  local summary = { type = "summary", status = self.status, message = self.message, policies = {} }
  for i, e in ipairs(self.policies) do
    summary.policies[i] = {
      name = e.name, seen = e.seen, matched = e.matched, planned = e.planned,
      done = e.done, failed = e.failed, errors = e.errors,
    }
  end
  out:write(chatapp.json.encode(summary), "\n")
end

function Report:finish()
  if self.options.output == "text" then
    self:print_text()
  elseif self.options.output == "json" then
    self:print_json()
  end
  self.out:flush()
  return self
end

function Report:finish_check()
  if self.options.output ~= "none" then
    for _, e in ipairs(self.policies) do
      self.out:write(("%s: ok (%s)\n"):format(e.name, e.file or "?"))
    end
  end
  return self
end

return M
