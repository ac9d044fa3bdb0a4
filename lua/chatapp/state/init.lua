--- What chatapp-run remembers between runs (--state FILE): each number's
--- last snapshot and transitions, the policies' reminders, and the outbox
--- of actions.  The logic lives here; the storage in a store module
--- (chatapp.state.sqlite, chatapp.state.redis: one interface, written
--- down in docs/internals/state-engine.md), chosen by M.store_of.
--- docs/state.md says what users see.
--
-- A run with state:
--   open      before any API call: a file that cannot be used stops the run
--   observe   after the fetch: each number gets its previous snapshot
--             (n.previous, n:changed); transitions and gone numbers are noted
--   quiet / fired / unmatched   reminders, while policies decide
--   stage     the planned actions, as outbox entries
--   commit    snapshots, transitions, reminders and the outbox in one
--             transaction, before any action is carried out
--   resume    pending actions of earlier runs, carried out first
--   settle    each action's outcome, after every slice the executor sends
-- A dry run opens the file read-only and records nothing.

local chatapp = require "chatapp"
local core = chatapp.core
local actions = require "chatapp.actions"
local lib = require "chatapp.actions.lib"
local sandbox = require "chatapp.sandbox"
local ago = require("chatapp.report").ago

local M = {}

--- Pending actions older than this (seconds) expire (--outbox-max-age).
M.DEFAULT_MAX_AGE = 3600
--- Finished outbox entries are kept this long (seconds), then pruned.
M.KEEP_FINISHED = 30 * 86400
--- Transitions are kept this long (seconds), then pruned.
M.KEEP_TRANSITIONS = 400 * 86400
--- Environment values shorter than this are kept in outbox records as
--- they are (too short to tell from other text).
M.MIN_ENV_VALUE = 8

local TRACKED = core.phone_tracked()

--- The state's clock: Unix time; CHATAPP_RUN_NOW (Unix seconds) sets it
--- for tests (docs/internals/testing.md).  Signing never uses it.
function M.now()
  local fake = os.getenv("CHATAPP_RUN_NOW")
  if fake and fake:find("^%d+$") and #fake <= 12 then return math.tointeger(tonumber(fake)) end
  return os.time()
end

--- The state file used without --state (watch mode, chatapp-run state):
--- $XDG_STATE_HOME/chatapp-run/state.db, else
--- ~/.local/state/chatapp-run/state.db.  A relative XDG_STATE_HOME is
--- ignored, as the XDG spec says.  Returns the path, or nil and a message.
function M.default_path()
  return core.default_state_path() -- one rule, shared with the watcher (C)
end

--- The stores by URL scheme: `scheme://...` is STORES[scheme]; anything
--- without a scheme is a SQLite file.  A new store is one module
--- implementing the interface plus one line here.
M.STORES = {
  redis = "chatapp.state.redis",
}
M.FILE_STORE = "chatapp.state.sqlite"

--- The store module for --state `where` (the one rule, shared by runs,
--- the watcher's cycles and `chatapp-run state`), or nil and a message.
function M.store_of(where)
  local scheme = type(where) == "string" and where:match("^(%a[%w+.-]*)://")
  if not scheme then return require(M.FILE_STORE) end
  local name = M.STORES[scheme:lower()]
  if not name then
    local known = {}
    for k in pairs(M.STORES) do known[#known + 1] = k .. "://" end
    table.sort(known)
    return nil, ("--state %s: unknown store %s:// (known: %s; a path without a scheme is a SQLite file)")
      :format(where, scheme, table.concat(known, ", "))
  end
  return require(name)
end

local State = {}
State.__index = State

--- Open the state at path (a file, or a store's URL) for a run: opts.dry
--- (read only, record nothing), opts.max_age (seconds), opts.account (the
--- account, when known now: a store checks its part at once), opts.lock
--- (an account: a file store locks the file for it first), opts.warn (a
--- function given a warning to show).  The lease's
--- fencing token, when this runtime holds one, goes to the store: its
--- writes then fail (EFENCED) once another watcher took over.  Returns
--- the state or nil, message, code.
function M.open(path, opts)
  opts = opts or {}
  local backend, berr = M.store_of(path)
  if not backend then return nil, berr, "EINVAL" end
  local fence = core.lease_token and core.lease_token()
  local store, err, code = backend.open(path, { readonly = opts.dry, account = opts.account, fence = fence,
                                                lock = opts.lock, warn = opts.warn })
  if not store then return nil, err, code end
  return setmetatable({
    store = store, path = path, dry = opts.dry, now = M.now(),
    max_age = opts.max_age and opts.max_age > 0 and opts.max_age or M.DEFAULT_MAX_AGE,
    transitions = {}, -- { space (table), number, field, old, new }
    gone = {},        -- by space index: list of PhoneNumber (last snapshots)
    seen = {},        -- the store's rows to write: { space = id, seen = {...}, gone = {...} }
    reminded = nil,   -- policy \0 space \0 number -> last_fired
    reminder_changes = {},
    staged = {},      -- outbox entries of this run's actions
    outbox_ids = {},  -- id -> true for every action with an outbox entry
  }, State)
end

function State:close()
  self.store:close()
end

local function space_id(space)
  return space.cust_space_id or ""
end

---------------------------------------------------------------------------
-- Snapshots and transitions

-- A Unix time read from the state file (a user may have edited it), or
-- nil: an integer from 0 to 9999-12-31, what core.phone_attach takes.
local MAX_TIME = 253402300799
local function unix_time(v)
  local t = type(v) == "number" and math.tointeger(v)
  if t and t >= 0 and t <= MAX_TIME then return t end
  return nil
end

-- The `since` of a stored row: tracked field -> Unix time.  What is not
-- (not JSON, not an object, another key, not a time) is unknown, as if
-- the field had no time yet; the next change records it again.
local function read_since(text)
  local since = type(text) == "string" and core.json_decode(text)
  local out = {}
  if type(since) ~= "table" then return out end
  for _, f in ipairs(TRACKED) do out[f] = unix_time(since[f]) end
  return out
end

-- The previous numbers of a space, decoded from their snapshots, by number.
local function previous_numbers(rows, space)
  local by = {}
  if #rows == 0 then return by end
  local parts = {}
  for i, r in ipairs(rows) do parts[i] = r.snapshot end
  local list, err = core.decode_phone_numbers('{"PhoneNumbers":[' .. table.concat(parts, ",") .. "]}", space)
  local ok = list and #list == #rows
  for i, r in ipairs(rows) do ok = ok and list[i].phone_number == r.number end
  if not ok then
    -- Which one (a snapshot edited into two objects, or another number's,
    -- would shift or mismatch the rest): each alone.
    for _, r in ipairs(rows) do
      local one, e = core.decode_phone_numbers('{"PhoneNumbers":[' .. r.snapshot .. "]}", space)
      if not one then return nil, ("number %s: %s"):format(r.number, e) end
      if #one ~= 1 or one[1].phone_number ~= r.number then
        return nil, ("number %s: the snapshot is not one JSON object of that number"):format(r.number)
      end
    end
    return nil, err or "the snapshots do not match their numbers"
  end
  for i, r in ipairs(rows) do
    by[r.number] = { n = list[i], row = r, since = read_since(r.since) }
  end
  return by
end

--- Give every number of the fetched spaces its history (n.previous,
--- n:changed, n:since) and note what changed.  spaces and lists as the
--- runner fetched them (lists[i] nil: the fetch of space i failed, and
--- its snapshots are left as they are).  Returns true or nil, message.
function State:observe(account, spaces, lists)
  self.account = account
  local now = self.now
  for i, space in ipairs(spaces) do
    local list = lists[i]
    if list then
      local sid = space_id(space)
      local rows, err = self.store:numbers(account, sid)
      -- how to get past a damaged snapshot
      local function forget()
        return ("chatapp-run state forget --space %s --state %s"):format(sid == "" and "''" or sid, self.path)
      end
      if not rows then
        return nil, ("%s (reading the snapshots of space %s); if one of them is damaged, forget them with: %s")
          :format(err, sid, forget())
      end
      local before, derr = previous_numbers(rows, space)
      if not before then
        return nil, ("%s: the snapshots of space %s cannot be read (%s); forget them with: %s")
          :format(self.store:describe(), sid, derr, forget())
      end
      -- What to write: the numbers themselves (their rows are made at the
      -- commit, one at a time: nothing per number is held meanwhile).
      local write = { space = sid, seen = {}, gone = nil }
      local present = {}
      for _, n in ipairs(list) do
        local number = n.phone_number
        if number and not present[number] then
          present[number] = true
          local old = before[number]
          local prev = old and old.n
          local since = old and old.since or {}
          local changed = false
          for _, f in ipairs(TRACKED) do
            local was, is = prev and prev[f], n[f]
            if not prev or was ~= is then
              if prev then
                self.transitions[#self.transitions + 1] = { space = space, number = number, field = f,
                                                            old = was, new = is }
              end
              since[f] = is ~= nil and now or nil
              changed = true
            end
          end
          if not prev then
            self.transitions[#self.transitions + 1] = { space = space, number = number, field = "presence",
                                                        new = "present" }
          end
          -- A first_seen that is not a Unix time (an edited file): now.
          local first = old and unix_time(old.row.first_seen) or now
          core.phone_attach(n, prev, first, since, now)
          -- Unchanged in every tracked field: the snapshot may still differ
          -- in a field chatapp-run does not know (encoded only then).
          if changed or old.row.first_seen ~= first or old.row.snapshot ~= assert(core.json_encode(n:raw())) then
            write.seen[#write.seen + 1] = n
          end
        end
      end
      for _, r in ipairs(rows) do
        if not present[r.number] then
          local gone = self.gone[i] or {}
          self.gone[i] = gone
          gone[#gone + 1] = before[r.number].n
          write.gone = write.gone or {}
          write.gone[#write.gone + 1] = r.number
          self.transitions[#self.transitions + 1] = { space = space, number = r.number, field = "presence",
                                                      old = "present", new = "gone" }
        end
      end
      self.seen[#self.seen + 1] = write
    end
  end
  return true
end

---------------------------------------------------------------------------
-- Reminders: a policy with `remind` decides on a number that keeps
-- matching at most once per interval.

local function reminder_key(policy, space, n)
  return policy.name .. "\0" .. space_id(space) .. "\0" .. n.phone_number
end

function State:load_reminders()
  if self.reminded then return true end
  local rows, err = self.store:reminders(self.account)
  if not rows then return nil, err end
  self.reminded = {}
  for _, r in ipairs(rows) do
    -- A last_fired that is not a Unix time (an edited file) is no reminder.
    self.reminded[tostring(r.policy) .. "\0" .. tostring(r.space) .. "\0" .. tostring(r.number)] =
      unix_time(r.last_fired)
  end
  return true
end

--- When the policy decided on n last (it is quiet until last + remind),
--- or nil when it should decide now.
function State:quiet(policy, space, n)
  if not policy.remind or not n.phone_number then return nil end
  local last = self.reminded[reminder_key(policy, space, n)]
  if last and self.now - last < policy.remind then return last end
  return nil
end

local function set_reminder(self, policy, space, n, value)
  local key = reminder_key(policy, space, n)
  if self.reminded[key] == (value or nil) then return end
  self.reminded[key] = value or nil
  self.reminder_changes[#self.reminder_changes + 1] = { policy = policy.name, space = space_id(space),
                                                        number = n.phone_number, last_fired = value }
end

--- The policy acted on n now.
function State:fired(policy, space, n)
  if policy.remind and n.phone_number then set_reminder(self, policy, space, n, self.now) end
end

--- n does not match the policy (any more): its next match acts at once.
function State:unmatched(policy, space, n)
  if policy.remind and n.phone_number then set_reminder(self, policy, space, n, false) end
end

---------------------------------------------------------------------------
-- The outbox
--
-- Records keep no secret: a string that holds the value of an environment
-- variable a policy read (os.getenv) keeps a reference to the variable
-- instead ({"$env": ["Bearer ", {"env": "PAGER_TOKEN"}]}), read again
-- when the action is resumed; a header that may carry a secret
-- (Authorization, *-Token, ...) and holds anything else is not kept
-- ({"$redacted": true}): such an action can only be resumed by the run
-- that plans it again.

local function env_values()
  local list = {}
  for _, name in ipairs(sandbox.env_names_read()) do
    local v = os.getenv(name)
    if v and #v >= M.MIN_ENV_VALUE then list[#list + 1] = { name = name, value = v } end
  end
  table.sort(list, function(a, b) return #a.value > #b.value end)
  return list
end

-- The parts of s around the environment values in it, or nil when none.
local function env_parts(s, envs)
  local parts, pos = {}, 1
  while true do
    local at, e
    for _, x in ipairs(envs) do
      local i = s:find(x.value, pos, true)
      if i and (not at or i < at) then at, e = i, x end
    end
    if not at then break end
    if at > pos then parts[#parts + 1] = s:sub(pos, at - 1) end
    parts[#parts + 1] = { env = e.name }
    pos = at + #e.value
  end
  if #parts == 0 then return nil end
  if pos <= #s then parts[#parts + 1] = s:sub(pos) end
  return parts
end

local function seal(v, envs, secret)
  if type(v) == "string" then
    local parts = #envs > 0 and env_parts(v, envs)
    if parts then return { ["$env"] = parts } end
    if secret then return { ["$redacted"] = true } end
    return v
  end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do
    if k == "headers" and type(x) == "table" then
      local h = {}
      for name, value in pairs(x) do
        h[name] = seal(value, envs, type(name) == "string" and lib.secret_header(name))
      end
      t[k] = h
    else
      t[k] = seal(x, envs)
    end
  end
  return t
end

-- The record with its references filled in; filled.env is set when an
-- environment value was.
local function unseal(v, filled)
  if type(v) ~= "table" then return v end
  if v["$redacted"] then
    error("it held a secret header, which the state file does not keep (read secrets with os.getenv, "
      .. "so a resumed action takes them from the environment)", 0)
  end
  local parts = v["$env"]
  if type(parts) == "table" then
    local out = {}
    for i, p in ipairs(parts) do
      if type(p) == "string" then
        out[i] = p
      else
        local name = type(p) == "table" and p.env
        if not sandbox.env_allowed(name) then
          error(("it refers to the environment variable %s, which actions cannot use"):format(tostring(name)), 0)
        end
        out[i] = os.getenv(name)
        if not out[i] then error(("the environment variable %s it used is not set"):format(name), 0) end
        filled.env = true
      end
    end
    return table.concat(out)
  end
  local t = {}
  for k, x in pairs(v) do t[k] = unseal(x, filled) end
  return t
end

-- Whether an action kind keeps a record in the outbox (a log line does not).
local function kept(a)
  local K = actions.get(a.kind)
  return K and K.counted ~= false
end

--- Outbox entries for the actions planned in this run (written by commit).
function State:stage(list)
  local envs = env_values()
  for _, a in ipairs(list) do
    if a.status == "planned" and kept(a) then
      local rec = actions.to_record(a)
      local text = rec and core.json_encode(seal(rec, envs))
      -- Belt and braces: a known secret (the AccessKey secret) is never
      -- stored, whatever put it there.
      if text and core.redact(text) ~= text then text = nil end
      if text then
        self.staged[#self.staged + 1] = {
          id = a.id, policy = a.policy, kind = a.kind, space = a.space and space_id(a.space) or "",
          number = a.phone_number or "", target = actions.get(a.kind).describe(a), record = text,
        }
        self.outbox_ids[a.id] = true
      end
    end
  end
end

-- The row of a number that observe attached: its snapshot, first seen
-- and since times, read back from the number itself.
local function number_row(n)
  local since = {}
  for _, f in ipairs(TRACKED) do since[f] = n:since(f) end
  return { number = n.phone_number, snapshot = assert(core.json_encode(n:raw())), first_seen = n.first_seen,
           since = assert(core.json_encode(since)) }
end

--- Write what the run saw and planned, before anything is carried out.
function State:commit()
  if self.dry then return true end
  return self.store:commit(self.account, self.now, {
    spaces = self.seen, row = number_row, transitions = self:transition_rows(),
    reminders = self.reminder_changes, outbox = self.staged,
  })
end

function State:transition_rows()
  local rows = {}
  for i, t in ipairs(self.transitions) do
    rows[i] = { space = space_id(t.space), number = t.number, field = t.field, old = t.old, new = t.new }
  end
  return rows
end


-- An action of a pending row, or a stand-in for the report and why it
-- cannot be carried out.
local function from_row(row)
  local rec, err = core.json_decode(row.record)
  local a
  if not unix_time(row.created) then
    rec, err = nil, "its created time in the state file is not a Unix time (edited?)"
  end
  if rec then
    -- A value from the environment is today's (a rotated token is the
    -- new one); the action keeps its id, the key it was first sent with.
    local filled = {}
    local ok, r = pcall(unseal, rec, filled)
    if ok then
      a, err = actions.from_record(r, filled.env)
      -- The record of another entry (copied, edited): resumed under its
      -- id, it would settle that entry and leave this one pending forever.
      if a and a.id ~= row.id then
        a, err = nil, ("its record is of action %s, not of this entry (edited?)"):format(tostring(a.id))
      end
    else
      err = r
    end
  end
  if a then return a end
  -- The stand-in's kind only when it is one the outbox keeps: the report
  -- prints a log action (or another kind's own line) from its request,
  -- which a stand-in has not.
  return {
    kind = kept({ kind = row.kind }) and row.kind or "unknown",
    id = row.id, policy = row.policy, phone_number = row.number ~= "" and row.number or nil,
    space = row.space ~= "" and { cust_space_id = row.space } or nil, request = {}, stub = true,
    target = row.target,
  }, ("cannot be resumed: %s"):format(tostring(err))
end

--- Pending actions of earlier runs that this run did not plan again (an
--- action planned again is the same action: same id, same key).  Returns
--- the list to carry out before the new ones: each marked from_outbox
--- (when it was planned); expired and unreadable ones come back finished
--- ("skipped" / "failed") and are recorded so.
function State:resume(planned)
  if self.dry then return {} end
  local rows, err = self.store:pending(self.account)
  if not rows then return nil, err end
  local again = {}
  for _, a in ipairs(planned) do again[a.id] = true end
  local list, finished = {}, {}
  for _, row in ipairs(rows) do
    if not again[row.id] then
      local a, why = from_row(row)
      local created = unix_time(row.created)
      local age = created and math.max(0, self.now - created) or 0
      a.from_outbox = created or 0
      a.outbox_age = age
      if why then
        a.status, a.error = "failed", why
      elseif age > self.max_age then
        a.status = "skipped"
        a.reason = ("expired: planned %s ago, older than --outbox-max-age (%s); not sent")
          :format(ago(age), ago(self.max_age))
        a.expired = true
      else
        a.status = "planned"
      end
      if a.status ~= "planned" then finished[#finished + 1] = a end
      self.outbox_ids[a.id] = true
      list[#list + 1] = a
    end
  end
  if #finished > 0 then
    local ok, serr = self:settle(finished)
    if not ok then return nil, serr end
  end
  return list
end

-- What the outbox says of an action after a try.
local function outcome(a)
  if a.status == "done" then return "done", nil, true end
  if a.status == "skipped" then
    if a.expired then return "expired", a.reason end
    if a.reason and a.reason:find("^not started") then return "pending", a.reason end
    return "done", a.reason -- skipped by its kind (nothing to do)
  end
  if a.status == "failed" then
    local K = actions.get(a.kind)
    if not a.stub and K and K.retry_later and K.retry_later(a) then return "pending", a.error, true end
    return "failed", a.error, true
  end
  return "pending", nil
end

--- Record the outcome of actions that have an outbox entry.
function State:settle(list)
  if self.dry then return true end
  local rows = {}
  for _, a in ipairs(list) do
    if self.outbox_ids[a.id] then
      local status, err, tried = outcome(a)
      rows[#rows + 1] = { id = a.id, status = status, error = err, tried = tried }
      if status == "pending" and tried then a.retry = true end
    end
  end
  if #rows == 0 then return true end
  return self.store:settle(self.account, self.now, rows)
end

--- Remove finished outbox entries older than KEEP_FINISHED and
--- transitions older than KEEP_TRANSITIONS.
function State:prune()
  if self.dry then return true end
  return self.store:prune(self.account, self.now - M.KEEP_FINISHED, self.now - M.KEEP_TRANSITIONS)
end

return M
