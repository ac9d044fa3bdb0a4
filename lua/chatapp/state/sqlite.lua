--- The state store in a SQLite 3 file (--state FILE): the schema, its
--- versions and every query.  chatapp.state holds the logic; this file
--- only stores and loads.  The schema is documented for users in
--- docs/state.md; change both together, and add a migration below.
--
-- Every table is keyed by account, so two accounts (or two sets of
-- credentials) sharing a file never see each other's numbers.

local core = require "chatapp.core"

local M = {}

--- PRAGMA application_id of our files ("CArn"): a SQLite file without it,
--- and with tables, belongs to another program.
M.APPLICATION_ID = 0x4341726e

--- PRAGMA user_version: the schema this program writes.
M.SCHEMA_VERSION = 1

local SCHEMA_1 = [[
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE numbers (
  account    TEXT NOT NULL,
  space      TEXT NOT NULL,     -- cust_space_id; '' for the caller's own numbers
  number     TEXT NOT NULL,     -- PhoneNumber
  snapshot   TEXT NOT NULL,     -- the API's object at the last fetch, as JSON
  first_seen INTEGER NOT NULL,  -- Unix time
  last_seen  INTEGER NOT NULL,
  since      TEXT NOT NULL,     -- JSON: tracked field -> Unix time it took its value
  PRIMARY KEY (account, space, number)
) WITHOUT ROWID;
CREATE TABLE transitions (
  id      INTEGER PRIMARY KEY,
  time    INTEGER NOT NULL,
  account TEXT NOT NULL,
  space   TEXT NOT NULL,
  number  TEXT NOT NULL,
  field   TEXT NOT NULL,        -- a tracked field, or 'presence' (new / gone)
  old     TEXT,
  new     TEXT
);
CREATE INDEX transitions_by_number ON transitions (account, number, time);
CREATE TABLE reminders (
  account    TEXT NOT NULL,
  policy     TEXT NOT NULL,
  space      TEXT NOT NULL,
  number     TEXT NOT NULL,
  last_fired INTEGER NOT NULL,
  PRIMARY KEY (account, policy, space, number)
) WITHOUT ROWID;
CREATE TABLE outbox (
  account  TEXT NOT NULL,
  id       TEXT NOT NULL,       -- the action id: its Idempotency-Key
  policy   TEXT NOT NULL,
  kind     TEXT NOT NULL,
  space    TEXT NOT NULL,
  number   TEXT NOT NULL,
  target   TEXT NOT NULL,       -- what it does, one line
  record   TEXT NOT NULL,       -- the action as JSON, without secrets
  status   TEXT NOT NULL,       -- pending, done, failed, expired
  created  INTEGER NOT NULL,
  updated  INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  error    TEXT,
  PRIMARY KEY (account, id)
) WITHOUT ROWID;
CREATE INDEX outbox_by_status ON outbox (account, status, created);
]]

-- migrations[v] takes a file from schema v - 1 to v (1: a new file).
local migrations = { SCHEMA_1 }

local Store = {}
Store.__index = Store

local function fail(self, what, err, code)
  return nil, ("state file %s: %s: %s"):format(self.path, what, tostring(err)), code
end

-- Raise (caught by M.open and Store:commit) with the message and code.
local function check(ok, err, code)
  if ok == nil then error({ message = err, code = code }, 0) end
  return ok
end

local function one(db, sql)
  local rows = check(db:query(sql))
  local row = rows[1] or {}
  local _, v = next(row)
  return v
end

-- The file's identity: nil when it is ours, (or new and empty), else why not.
local function identify(self)
  local db = self.db
  local app = one(db, "PRAGMA application_id") or 0
  local version = one(db, "PRAGMA user_version") or 0
  local tables = check(db:query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"))
  if app == 0 and version == 0 and #tables == 0 then return "new" end
  if app ~= M.APPLICATION_ID then
    local names = {}
    for i, t in ipairs(tables) do if i <= 5 then names[i] = t.name end end
    return nil, ("is a SQLite database of another program (application_id %d; tables: %s); "
      .. "give chatapp-run a file of its own"):format(app, table.concat(names, ", ")), "EFOREIGN"
  end
  -- A damaged page anywhere is found now, not in the middle of a run.
  local verdict = one(db, "PRAGMA quick_check")
  if verdict ~= "ok" then
    return nil, ("is corrupt (SQLite's quick_check: %s); move it away (the next run starts a new one) "
      .. "or repair it with the sqlite3 CLI's .recover"):format(tostring(verdict)), "ECORRUPT"
  end
  if version > M.SCHEMA_VERSION then
    return nil, ("was written by a newer chatapp-run (schema version %d; this one knows up to %d); "
      .. "upgrade chatapp-run, or give another file"):format(version, M.SCHEMA_VERSION), "ENEWER"
  end
  return version
end

--- Open (creating when needed) the store at path.  opts.readonly: only
--- read (a dry run); a file that does not exist then reads as empty.
--- opts.must_exist: a missing file is an error (ENOENT; state show and
--- forget).  opts.account and opts.fence are not needed here (the file
--- holds every account; the watcher's lock file keeps one writer).
--- Returns the store, or nil, message, code.  A file that is not ours, is
--- newer, is corrupt or cannot be written is refused and left as it was.
function M.open(path, opts)
  opts = opts or {}
  if opts.must_exist then
    local f, _, errno = io.open(path, "rb")
    if f then
      f:close()
    elseif errno == 2 then -- ENOENT
      return nil, ("no state file at %s: runs keep state with --state %s"):format(path, path), "ENOENT"
    end
  end
  local db, err, code = core.sqlite_open(path, { readonly = opts.readonly, create = not opts.readonly })
  if not db then
    if opts.readonly and code == "ENOENT" then return setmetatable({ path = path, empty = true }, Store) end
    return nil, err, code
  end
  -- opts.lock (an account): one writer per file and account, the lock a
  -- watcher takes too (docs/state.md, "One writer"); taken once the path
  -- is known to be a file SQLite opens (it has read the header, written
  -- nothing), before anything is checked or written; never waited for.
  local lock
  if opts.lock and not opts.readonly then
    local lerr, lcode, warning
    lock, lerr, lcode, warning = core.state_lock(path, opts.lock, "a run")
    if not lock then
      db:close()
      return nil, ("state file %s: %s"):format(path, lerr), lcode
    end
    if warning and opts.warn then opts.warn(warning) end
  end
  local self = setmetatable({ path = path, db = db, readonly = opts.readonly, lock = lock }, Store)
  local ok, e = pcall(function()
    local version, why, wcode = identify(self)
    if not version then error({ message = why, code = wcode }, 0) end
    if opts.readonly then
      if version == "new" then self.empty = true end
      return
    end
    -- A write now, before any API call: a read-only file or folder, or a
    -- full disk, fails here and not after the run.
    check(db:exec("BEGIN IMMEDIATE"))
    if version == "new" then
      check(db:exec(("PRAGMA application_id = %d"):format(M.APPLICATION_ID)))
      version = 0
    end
    for v = version + 1, M.SCHEMA_VERSION do
      check(db:exec(migrations[v]))
      check(db:exec(("PRAGMA user_version = %d"):format(v)))
    end
    check(db:run("INSERT OR REPLACE INTO meta (key, value) VALUES ('program', ?1)", "chatapp-run " .. core.version))
    check(db:exec("COMMIT"))
  end)
  if not ok then
    if db then pcall(db.exec, db, "ROLLBACK") ; db:close() end
    if lock then lock:release() end
    if type(e) == "table" then
      local msg = e.message
      if not msg:find(path, 1, true) then msg = ("state file %s %s"):format(path, msg) end
      return nil, msg, e.code
    end
    return nil, ("state file %s: %s"):format(path, tostring(e)), "ESQL"
  end
  return self
end

--- What the store calls itself in messages.
function Store:describe()
  return "state file " .. self.path
end

function Store:close()
  if self.db then self.db:close(); self.db = nil end
  if self.lock then self.lock:release(); self.lock = nil end
end

-- Rows, or nil, message, code.
local function query(self, sql, ...)
  if self.empty then return {} end
  local rows, err, code = self.db:query(sql, ...)
  if not rows then return nil, err, code end
  return rows
end

--- Rows { number, snapshot, first_seen, since } of one space.
function Store:numbers(account, space)
  return query(self, "SELECT number, snapshot, first_seen, since FROM numbers "
    .. "WHERE account = ?1 AND space = ?2", account, space)
end

--- Rows { policy, space, number, last_fired } of an account.
function Store:reminders(account)
  return query(self, "SELECT policy, space, number, last_fired FROM reminders WHERE account = ?1", account)
end

--- Pending outbox rows of an account, oldest first.
function Store:pending(account)
  return query(self, "SELECT id, policy, kind, space, number, record, created FROM outbox "
    .. "WHERE account = ?1 AND status = 'pending' ORDER BY created, id", account)
end

-- Run fn(db) in one transaction; nil, message, code when it fails (then
-- nothing of it is kept).
local function transaction(self, what, fn)
  if self.readonly or self.empty then return true end
  local db = self.db
  local ok, e = pcall(function()
    check(db:exec("BEGIN IMMEDIATE"))
    fn(db)
    check(db:exec("COMMIT"))
  end)
  if ok then return true end
  pcall(db.exec, db, "ROLLBACK")
  if type(e) == "table" then return fail(self, what, e.message, e.code) end
  return fail(self, what, e, "ESQL")
end

--- Write what a run saw and decided, at once (docs/state.md):
---   c.spaces      { space = id, seen = { x... } (new or changed), gone = { number... } | nil },
---                 for each space fetched; c.row(x) -> { number, snapshot, first_seen, since }
---                 (made one at a time, as written)
---   c.transitions { time, space, number, field, old, new }
---   c.reminders   { policy, space, number, last_fired | false (clear) }
---   c.outbox      { id, policy, kind, space, number, target, record }
function Store:commit(account, now, c)
  return transaction(self, "cannot record the run", function(db)
    for _, s in ipairs(c.spaces) do
      check(db:run("UPDATE numbers SET last_seen = ?3 WHERE account = ?1 AND space = ?2", account, s.space, now))
      for _, x in ipairs(s.seen) do
        local r = c.row(x)
        check(db:run("INSERT INTO numbers (account, space, number, snapshot, first_seen, last_seen, since) "
          .. "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (account, space, number) DO UPDATE SET "
          .. "snapshot = excluded.snapshot, first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
          .. "since = excluded.since",
          account, s.space, r.number, r.snapshot, r.first_seen, now, r.since))
      end
      for _, number in ipairs(s.gone or {}) do
        for _, t in ipairs { "numbers", "reminders" } do
          check(db:run(("DELETE FROM %s WHERE account = ?1 AND space = ?2 AND number = ?3"):format(t),
            account, s.space, number))
        end
      end
    end
    for _, t in ipairs(c.transitions) do
      check(db:run("INSERT INTO transitions (time, account, space, number, field, old, new) "
        .. "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", now, account, t.space, t.number, t.field, t.old, t.new))
    end
    for _, r in ipairs(c.reminders) do
      if r.last_fired then
        check(db:run("INSERT OR REPLACE INTO reminders (account, policy, space, number, last_fired) "
          .. "VALUES (?1, ?2, ?3, ?4, ?5)", account, r.policy, r.space, r.number, r.last_fired))
      else
        check(db:run("DELETE FROM reminders WHERE account = ?1 AND policy = ?2 AND space = ?3 AND number = ?4",
          account, r.policy, r.space, r.number))
      end
    end
    -- An action planned again is a new decision: pending again, its age
    -- (for --outbox-max-age) counted from now.
    for _, o in ipairs(c.outbox) do
      check(db:run("INSERT INTO outbox (account, id, policy, kind, space, number, target, record, status, "
        .. "created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', ?9, ?9) "
        .. "ON CONFLICT (account, id) DO UPDATE SET record = excluded.record, target = excluded.target, "
        .. "created = excluded.created, status = 'pending', updated = excluded.updated, error = NULL",
        account, o.id, o.policy, o.kind, o.space, o.number, o.target, o.record, now))
    end
  end)
end

--- Record outcomes: list of { id, status, error, tried (attempted once more) }.
function Store:settle(account, now, list)
  return transaction(self, "cannot record the actions' outcomes", function(db)
    for _, o in ipairs(list) do
      check(db:run("UPDATE outbox SET status = ?3, error = ?4, updated = ?5, attempts = attempts + ?6 "
        .. "WHERE account = ?1 AND id = ?2", account, o.id, o.status, o.error, now, o.tried and 1 or 0))
    end
  end)
end

--- Remove finished outbox rows last changed before `finished`, and
--- transitions older than `transitions` (Unix times).
function Store:prune(account, finished, transitions)
  return transaction(self, "cannot prune old history", function(db)
    check(db:run("DELETE FROM outbox WHERE account = ?1 AND status <> 'pending' AND updated < ?2", account,
      finished))
    check(db:run("DELETE FROM transitions WHERE account = ?1 AND time < ?2", account, transitions))
  end)
end

---------------------------------------------------------------------------
-- Looking inside (chatapp-run state show / forget)

local function where_clause(f, cols)
  local terms, args = {}, {}
  for _, c in ipairs(cols) do
    if f[c] ~= nil then
      args[#args + 1] = f[c]
      terms[#terms + 1] = ("%s = ?%d"):format(c, #args)
    end
  end
  return #terms > 0 and (" WHERE " .. table.concat(terms, " AND ")) or "", args
end

--- Numbers, transitions and outbox rows matching f = { account, space, number }.
function Store:show(f, limit)
  local w, args = where_clause(f, { "account", "space", "number" })
  local n = #args
  limit = math.tointeger(limit) or 50
  local queries = {
    numbers = "SELECT account, space, number, snapshot, first_seen, last_seen, since FROM numbers" .. w
      .. " ORDER BY account, space, number",
    transitions = ("SELECT time, account, space, number, field, old, new FROM transitions%s "
      .. "ORDER BY time DESC, id DESC LIMIT %d"):format(w, limit),
    outbox = ("SELECT account, id, policy, kind, space, number, target, status, created, updated, attempts, "
      .. "error FROM outbox%s ORDER BY created DESC, id LIMIT %d"):format(w, limit),
    reminders = "SELECT account, policy, space, number, last_fired FROM reminders" .. w,
    outbox_counts = "SELECT status, count(*) AS n FROM outbox" .. w .. " GROUP BY status ORDER BY status",
    pending = ("SELECT account, id, policy, kind, space, number, target, status, created, updated, attempts, "
      .. "error FROM outbox%s status = 'pending' ORDER BY created, id LIMIT %d")
      :format(w == "" and " WHERE" or w .. " AND", limit),
  }
  local out = {}
  for name, sql in pairs(queries) do
    local rows, err, code = query(self, sql, table.unpack(args, 1, n))
    if not rows then return nil, err, code end
    out[name] = rows
  end
  return out
end

--- Forget what matches f = { account, space, number } (none: all):
--- returns the count of rows removed per table.  keep_pending: refuse
--- (nothing removed; code EPENDING) when pending outbox entries match.
function Store:forget(f, keep_pending)
  local w, args = where_clause(f, { "account", "space", "number" })
  local counts = {}
  -- The lock of every account it may touch, as a run takes it: a run or a
  -- watcher of one of them makes forget exit 2 ("already running").
  local accounts = { f.account }
  if not f.account and not self.empty then
    local rows, qerr, qcode = query(self, "SELECT account FROM numbers UNION SELECT account FROM transitions "
      .. "UNION SELECT account FROM reminders UNION SELECT account FROM outbox")
    if not rows then return nil, qerr, qcode end
    for i, r in ipairs(rows) do accounts[i] = r.account end
  end
  local locks = {}
  local function release() for _, l in ipairs(locks) do l:release() end end
  for _, a in ipairs(self.readonly and {} or accounts) do
    local l, lerr, lcode = core.state_lock(self.path, a, "state forget")
    if not l then release(); return fail(self, "cannot forget", lerr, lcode) end
    locks[#locks + 1] = l
  end
  local ok, err, code = transaction(self, "cannot forget", function(db)
    if keep_pending then
      local rows = check(db:query(("SELECT count(*) AS n FROM outbox%s status = 'pending'")
        :format(w == "" and " WHERE" or w .. " AND"), table.unpack(args)))
      local n = rows[1] and rows[1].n or 0
      if n > 0 then
        error({ message = ("%d pending action%s would never be sent; add --yes"):format(n, n == 1 and "" or "s"),
                code = "EPENDING" }, 0)
      end
    end
    for _, t in ipairs { "numbers", "transitions", "reminders", "outbox" } do
      counts[t] = check(db:run(("DELETE FROM %s%s"):format(t, w), table.unpack(args)))
    end
  end)
  release()
  if not ok then return nil, err, code end
  return counts
end

return M
