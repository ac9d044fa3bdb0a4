--- The state store in Redis (--state redis://[user@]host[:port][/db]):
--- the layout, its version and every command.  chatapp.state holds the
--- logic; this file only stores and loads, with the same interface as
--- chatapp.state.sqlite (docs/internals/state-engine.md).  The layout is
--- documented for users in docs/state.md; change both together.
--
-- All keys of an account start with chatapp:state:{ACCOUNT}: (one hash
-- tag: one slot).  Every write (open, commit, settle, prune, forget) is one
-- server-side script that checks everything it depends on first (the
-- fence, the version, the keys' types, the payload) and only then writes:
-- a script that fails writes nothing.  Values are passed as one JSON
-- payload (decoded by the server's cjson), never as thousands of
-- arguments.

local core = require "chatapp.core"

local M = {}

--- A store shared by hosts: a run resolves its account before opening
--- (its part is checked before any API call), and writes are fenced.
M.SHARED = true

--- The layout this program writes (the meta hash's field `schema`).
M.SCHEMA_VERSION = 1

--- The key prefix of an account's state.
function M.prefix(account)
  return "chatapp:state:{" .. account .. "}:"
end

--- The fencing counter of an account (the leader lease's, ca_lease.c).
function M.fence_key(account)
  return "chatapp:fence:{" .. account .. "}"
end

-- The server-side helpers every script starts with.  KEYS[1] is the
-- fence, KEYS[2] the meta hash; ARGV[1] the token ('' for none), ARGV[2]
-- the prefix.  Errors are replies: "FENCED now", "NEWER v", "WRONGTYPE
-- key has want", "PAYLOAD why", "PENDING n".
local PRELUDE = [==[
local P = ARGV[2]
local function fail(s) return redis.error_reply(s) end
local function check_fence()
  if ARGV[1] ~= '' then
    local now = redis.call('GET', KEYS[1])
    if now ~= ARGV[1] then return fail('FENCED ' .. tostring(now or 'none')) end
  end
end
local function check_type(key, want)
  local t = redis.call('TYPE', key)
  t = type(t) == 'table' and t.ok or t
  if t ~= 'none' and t ~= want then return fail('WRONGTYPE ' .. key .. ' ' .. t .. ' ' .. want) end
end
local function check_meta(max)
  local e = check_type(KEYS[2], 'hash')
  if e then return e end
  local v = redis.call('HGET', KEYS[2], 'schema')
  if v and (tonumber(v) == nil or tonumber(v) > max) then return fail('NEWER ' .. tostring(v)) end
end
local function check_fixed()
  for _, kt in ipairs({ { 'spaces', 'hash' }, { 'transitions', 'zset' }, { 'transition_seq', 'string' },
                        { 'reminders', 'hash' }, { 'outbox:pending', 'zset' }, { 'outbox:finished', 'zset' } }) do
    local e = check_type(P .. kt[1], kt[2])
    if e then return e end
  end
end
local function check_space(s)
  for _, k in ipairs({ 'numbers:', 'first_seen:', 'since:' }) do
    local e = check_type(P .. k .. s, 'hash')
    if e then return e end
  end
end
local function hset_many(key, list)
  for i = 1, #list, 1000 do
    redis.call('HSET', key, unpack(list, i, math.min(#list, i + 999)))
  end
end
local function hdel_many(key, list)
  for i = 1, #list, 1000 do
    redis.call('HDEL', key, unpack(list, i, math.min(#list, i + 999)))
  end
end
local function payload(i)
  local ok, v = pcall(cjson.decode, ARGV[i])
  if not ok or type(v) ~= 'table' then return nil, fail('PAYLOAD not a JSON object') end
  return v
end
local function str(v) if type(v) == 'string' then return v end return nil end
]==]

-- Checks before anything is written, then the first write of a state
-- opened for writing: the version and the program.
local OPEN = PRELUDE .. [==[
local e = check_fence() or check_meta(tonumber(ARGV[3])) or check_fixed()
if e then return e end
redis.call('HSETNX', KEYS[2], 'schema', ARGV[3])
redis.call('HSET', KEYS[2], 'program', ARGV[4])
return 1
]==]

-- Read-only checks (a dry run, state show).
local CHECK = PRELUDE .. [==[
local e = check_meta(tonumber(ARGV[3])) or check_fixed()
if e then return e end
return redis.call('HGET', KEYS[2], 'schema') or ''
]==]

-- ARGV[3]: the space.  Returns { numbers..., first_seen..., since... } as
-- HGETALL lists.
local NUMBERS = PRELUDE .. [==[
local s = ARGV[3]
local e = check_space(s)
if e then return e end
return { redis.call('HGETALL', P .. 'numbers:' .. s), redis.call('HGETALL', P .. 'first_seen:' .. s),
         redis.call('HGETALL', P .. 'since:' .. s) }
]==]

-- The pending outbox entries, oldest first: { id, fields (HGETALL) }...
local PENDING = PRELUDE .. [==[
local e = check_type(P .. 'outbox:pending', 'zset')
if e then return e end
local ids = redis.call('ZRANGE', P .. 'outbox:pending', 0, -1)
local out = {}
for i, id in ipairs(ids) do
  local k = P .. 'outbox:' .. id
  e = check_type(k, 'hash')
  if e then return e end
  out[i] = { id, redis.call('HGETALL', k) }
end
return out
]==]

-- ARGV[3] now, ARGV[4] the payload (docs/internals/state-engine.md).
local COMMIT = PRELUDE .. [==[
local e = check_fence() or check_meta(1) or check_fixed()
if e then return e end
local c, perr = payload(4)
if not c then return perr end
local now = ARGV[3]
local spaces, trans, rems, outbox = c.spaces or {}, c.transitions or {}, c.reminders or {}, c.outbox or {}
for _, s in ipairs(spaces) do
  if type(s) ~= 'table' or not str(s.space) then return fail('PAYLOAD a space without its id') end
  for _, r in ipairs(s.seen or {}) do
    if type(r) ~= 'table' or not str(r[1]) or not str(r[2]) or type(r[3]) ~= 'number' or not str(r[4]) then
      return fail('PAYLOAD a number row that is not {number, snapshot, first_seen, since}')
    end
  end
  for _, n in ipairs(s.gone or {}) do
    if not str(n) then return fail('PAYLOAD a gone number that is not a string') end
  end
  e = check_space(s.space)
  if e then return e end
end
for _, t in ipairs(trans) do
  if not str(t) then return fail('PAYLOAD a transition that is not a string') end
end
for _, r in ipairs(rems) do
  if type(r) ~= 'table' or not str(r[1]) or (r[2] ~= false and type(r[2]) ~= 'number') then
    return fail('PAYLOAD a reminder that is not {key, time | false}')
  end
end
for _, o in ipairs(outbox) do
  if type(o) ~= 'table' then return fail('PAYLOAD an outbox entry that is not an object') end
  for _, f in ipairs({ 'id', 'policy', 'kind', 'space', 'number', 'target', 'record' }) do
    if not str(o[f]) then return fail('PAYLOAD an outbox entry without its ' .. f) end
  end
  e = check_type(P .. 'outbox:' .. o.id, 'hash')
  if e then return e end
end
-- Everything checked: from here on, only writes.
local gone_pairs = {}
for _, s in ipairs(spaces) do
  local sid = s.space
  redis.call('HSET', P .. 'spaces', sid, now)
  local snaps, firsts, sinces = {}, {}, {}
  for _, r in ipairs(s.seen or {}) do
    snaps[#snaps + 1] = r[1]; snaps[#snaps + 1] = r[2]
    firsts[#firsts + 1] = r[1]; firsts[#firsts + 1] = r[3]
    sinces[#sinces + 1] = r[1]; sinces[#sinces + 1] = r[4]
  end
  if #snaps > 0 then
    hset_many(P .. 'numbers:' .. sid, snaps)
    hset_many(P .. 'first_seen:' .. sid, firsts)
    hset_many(P .. 'since:' .. sid, sinces)
  end
  local gone = s.gone or {}
  if #gone > 0 then
    for _, k in ipairs({ 'numbers:', 'first_seen:', 'since:' }) do hdel_many(P .. k .. sid, gone) end
    for _, n in ipairs(gone) do gone_pairs[sid .. '\0' .. n] = true end
  end
end
if next(gone_pairs) then
  -- a gone number's reminders, of every policy
  local drop = {}
  for _, f in ipairs(redis.call('HKEYS', P .. 'reminders')) do
    local ok, k = pcall(cjson.decode, f)
    if ok and type(k) == 'table' and type(k[2]) == 'string' and type(k[3]) == 'string'
       and gone_pairs[k[2] .. '\0' .. k[3]] then
      drop[#drop + 1] = f
    end
  end
  if #drop > 0 then hdel_many(P .. 'reminders', drop) end
end
if #trans > 0 then
  local last = redis.call('INCRBY', P .. 'transition_seq', #trans)
  local args = {}
  for i, t in ipairs(trans) do
    args[#args + 1] = now
    args[#args + 1] = string.format('%015d ', last - #trans + i) .. t
  end
  for i = 1, #args, 1000 do
    redis.call('ZADD', P .. 'transitions', unpack(args, i, math.min(#args, i + 999)))
  end
end
for _, r in ipairs(rems) do
  if r[2] then redis.call('HSET', P .. 'reminders', r[1], r[2]) else redis.call('HDEL', P .. 'reminders', r[1]) end
end
-- An action planned again is a new decision: pending again, its age
-- counted from now.
for _, o in ipairs(outbox) do
  local k = P .. 'outbox:' .. o.id
  redis.call('HSET', k, 'policy', o.policy, 'kind', o.kind, 'space', o.space, 'number', o.number,
    'target', o.target, 'record', o.record, 'status', 'pending', 'created', now, 'updated', now)
  redis.call('HSETNX', k, 'attempts', 0)
  redis.call('HDEL', k, 'error')
  redis.call('ZADD', P .. 'outbox:pending', now, o.id)
  redis.call('ZREM', P .. 'outbox:finished', o.id)
end
return 1
]==]

-- ARGV[3] now, ARGV[4] the outcomes: { {id, status, error|false, tried} }
local SETTLE = PRELUDE .. [==[
local e = check_fence() or check_meta(1) or check_fixed()
if e then return e end
local list, perr = payload(4)
if not list then return perr end
for _, o in ipairs(list) do
  if type(o) ~= 'table' or not str(o[1]) or not str(o[2]) then return fail('PAYLOAD an outcome without its id') end
  e = check_type(P .. 'outbox:' .. o[1], 'hash')
  if e then return e end
end
local now = ARGV[3]
for _, o in ipairs(list) do
  local id, status = o[1], o[2]
  local k = P .. 'outbox:' .. id
  if redis.call('EXISTS', k) == 1 then
    redis.call('HSET', k, 'status', status, 'updated', now)
    if str(o[3]) then redis.call('HSET', k, 'error', o[3]) else redis.call('HDEL', k, 'error') end
    if o[4] then redis.call('HINCRBY', k, 'attempts', 1) end
    if status == 'pending' then
      redis.call('ZREM', P .. 'outbox:finished', id)
      if not redis.call('ZSCORE', P .. 'outbox:pending', id) then
        redis.call('ZADD', P .. 'outbox:pending', redis.call('HGET', k, 'created') or now, id)
      end
    else
      redis.call('ZREM', P .. 'outbox:pending', id)
      redis.call('ZADD', P .. 'outbox:finished', now, id)
    end
  end
end
return 1
]==]

-- ARGV[3]: finished entries changed before this go; ARGV[4]: transitions
-- older than this go.  Returns { outbox entries removed, transitions removed }.
local PRUNE = PRELUDE .. [==[
local e = check_fence() or check_meta(1) or check_fixed()
if e then return e end
local old = redis.call('ZRANGEBYSCORE', P .. 'outbox:finished', '-inf', '(' .. ARGV[3])
for i = 1, #old, 1000 do
  local keys = {}
  for j = i, math.min(#old, i + 999) do keys[#keys + 1] = P .. 'outbox:' .. old[j] end
  redis.call('DEL', unpack(keys))
end
redis.call('ZREMRANGEBYSCORE', P .. 'outbox:finished', '-inf', '(' .. ARGV[3])
local t = redis.call('ZREMRANGEBYSCORE', P .. 'transitions', '-inf', '(' .. ARGV[4])
return { #old, t }
]==]

-- ARGV[3] the filter { space = s | nil, number = n | nil, keep_pending }.
-- Returns { numbers, transitions, reminders, outbox } removed, or PENDING n.
local FORGET = PRELUDE .. [==[
local e = check_fence() or check_meta(1) or check_fixed()
if e then return e end
local f, perr = payload(3)
if not f then return perr end
local fs, fn = str(f.space), str(f.number)
local function match(s, n)
  return (fs == nil or s == fs) and (fn == nil or n == fn)
end
local spaces = fs and { fs } or redis.call('HKEYS', P .. 'spaces')
for _, s in ipairs(spaces) do
  e = check_space(s)
  if e then return e end
end
local ids = redis.call('ZRANGE', P .. 'outbox:pending', 0, -1)
for _, id in ipairs(redis.call('ZRANGE', P .. 'outbox:finished', 0, -1)) do ids[#ids + 1] = id end
local drop_ids, pending = {}, 0
for _, id in ipairs(ids) do
  local k = P .. 'outbox:' .. id
  e = check_type(k, 'hash')
  if e then return e end
  local v = redis.call('HMGET', k, 'space', 'number', 'status')
  if match(v[1], v[2]) then
    drop_ids[#drop_ids + 1] = id
    if v[3] == 'pending' then pending = pending + 1 end
  end
end
if f.keep_pending and pending > 0 then return fail('PENDING ' .. pending) end
-- Everything checked: from here on, only writes.
local counts = { 0, 0, 0, #drop_ids }
for _, s in ipairs(spaces) do
  if fn then
    counts[1] = counts[1] + redis.call('HDEL', P .. 'numbers:' .. s, fn)
    redis.call('HDEL', P .. 'first_seen:' .. s, fn)
    redis.call('HDEL', P .. 'since:' .. s, fn)
  else
    counts[1] = counts[1] + redis.call('HLEN', P .. 'numbers:' .. s)
    redis.call('DEL', P .. 'numbers:' .. s, P .. 'first_seen:' .. s, P .. 'since:' .. s)
    redis.call('HDEL', P .. 'spaces', s)
  end
end
local drop = {}
for _, m in ipairs(redis.call('ZRANGE', P .. 'transitions', 0, -1)) do
  local ok, t = pcall(cjson.decode, string.sub(m, 17))
  if ok and type(t) == 'table' and match(t.space, t.number) then drop[#drop + 1] = m end
end
for i = 1, #drop, 1000 do redis.call('ZREM', P .. 'transitions', unpack(drop, i, math.min(#drop, i + 999))) end
counts[2] = #drop
drop = {}
for _, k in ipairs(redis.call('HKEYS', P .. 'reminders')) do
  local ok, t = pcall(cjson.decode, k)
  if ok and type(t) == 'table' and match(t[2], t[3]) then drop[#drop + 1] = k end
end
if #drop > 0 then hdel_many(P .. 'reminders', drop) end
counts[3] = #drop
for _, id in ipairs(drop_ids) do
  redis.call('DEL', P .. 'outbox:' .. id)
  redis.call('ZREM', P .. 'outbox:pending', id)
  redis.call('ZREM', P .. 'outbox:finished', id)
end
return counts
]==]

local Store = {}
Store.__index = Store

-- A value read back: an integer when it is one, else the string.
local function int_or(v)
  if type(v) == "string" and v:find("^%-?%d+$") and #v <= 18 then return math.tointeger(tonumber(v)) end
  return v
end

-- What the store calls itself in messages.
function Store:describe()
  return "Redis state " .. self.where
end

-- A failed command or script as nil, message, code: what failed, where, and
-- what to do.
local function failure(self, account, what, msg, code)
  msg = tostring(msg)
  local at = ("%s%s"):format(self:describe(), account and (" (account " .. account .. ")") or "")
  local head = what and (at .. ": " .. what) or at
  local now = msg:match("FENCED (%S+)")
  if code == "EREDIS" and now then
    return nil, ("%s: this instance no longer holds the lease of %s (token %s, now %s): another watcher took "
      .. "over; nothing was written"):format(head, tostring(account), tostring(self.fence), now), "EFENCED"
  end
  local key, has, want = msg:match("WRONGTYPE (%S+) (%S+) (%S+)")
  if key then
    return nil, ("%s: key %s holds a %s, not a %s: this database is used by another program; give "
      .. "chatapp-run a database of its own (another /db in the URL) or remove the key"):format(head, key, has, want),
      "EFOREIGN"
  end
  local v = msg:match("NEWER (%S+)")
  if v then
    return nil, ("%s: was written by a newer chatapp-run (schema version %s; this one knows up to %d); "
      .. "upgrade chatapp-run, or give another database"):format(head, v, M.SCHEMA_VERSION), "ENEWER"
  end
  local n = msg:match("PENDING (%d+)")
  if n then
    n = math.tointeger(tonumber(n))
    return nil, ("%s: %d pending action%s would never be sent; add --yes"):format(head, n, n == 1 and "" or "s"),
      "EPENDING"
  end
  if msg:find("WRONGTYPE", 1, true) then code = "EFOREIGN" end
  if code == "EREDIS" then code = "ESTORE" end
  return nil, ("%s: %s"):format(head, msg), code
end

local function run(self, account, what, src, ...)
  local r, err, code = self.conn:eval(src, 2, M.fence_key(account), M.prefix(account) .. "meta",
    self.fence and tostring(self.fence) or "", M.prefix(account), ...)
  if r == nil then return failure(self, account, what, err, code) end
  return r
end

-- The account's state checked (once): version, types; for a writer, its
-- version and program recorded.
local function ready(self, account, check_only)
  if self.checked[account] then return true end
  local ok, err, code
  if self.readonly or check_only then
    ok, err, code = run(self, account, nil, CHECK, tostring(M.SCHEMA_VERSION))
  else
    ok, err, code = run(self, account, nil, OPEN, tostring(M.SCHEMA_VERSION), "chatapp-run " .. core.version)
  end
  if not ok then return nil, err, code end
  self.checked[account] = true
  return true
end

-- The accounts that have state here (a SCAN of the meta keys: state
-- show and forget without --account).
local function accounts(self)
  local list, seen, cursor = {}, {}, "0"
  for _ = 1, 100000 do
    local r, err, code = self.conn:call("SCAN", cursor, "MATCH", "chatapp:state:{*}:meta", "COUNT", 1000)
    if not r then return failure(self, nil, "cannot list the accounts", err, code) end
    cursor = r[1]
    for _, k in ipairs(r[2] or {}) do
      local a = type(k) == "string" and k:match("^chatapp:state:{(.*)}:meta$")
      if a and not seen[a] then seen[a] = true; list[#list + 1] = a end
    end
    if cursor == "0" then break end
  end
  table.sort(list)
  return list
end

--- Open the store at url (redis://...).  opts.readonly: only read (a dry
--- run, state show); opts.account: check that account's state now (else
--- at its first use); opts.fence: the lease's token, checked by every
--- write; opts.must_exist: a database without any state is an error
--- (ENOENT).  Returns the store, or nil, message, code.
function M.open(url, opts)
  opts = opts or {}
  local conn, err, code = core.redis_connect(url)
  if not conn then
    return nil, ("cannot open the state: %s"):format(tostring(err)), code
  end
  local self = setmetatable({ conn = conn, url = url, where = conn:where(), readonly = opts.readonly,
                              fence = opts.fence, checked = {} }, Store)
  self.path = self.where
  if opts.must_exist then
    local list, aerr, acode = accounts(self)
    if not list then self:close(); return nil, aerr, acode end
    if #list == 0 then
      self:close()
      return nil, ("no chatapp-run state in %s: runs keep state with --state %s"):format(self.where, url), "ENOENT"
    end
  end
  if opts.account then
    local ok, rerr, rcode = ready(self, opts.account)
    if not ok then self:close(); return nil, rerr, rcode end
  end
  return self
end

function Store:close()
  if self.conn then self.conn:close(); self.conn = nil end
end

-- A HGETALL list as a table.
local function pairs_of(list)
  local t = {}
  for i = 1, #list - 1, 2 do t[list[i]] = list[i + 1] end
  return t
end

--- Rows { number, snapshot, first_seen, since } of one space.
function Store:numbers(account, space)
  local ok, err, code = ready(self, account)
  if not ok then return nil, err, code end
  local r
  r, err, code = run(self, account, "cannot read the snapshots", NUMBERS, space)
  if not r then return nil, err, code end
  local first, since = pairs_of(r[2]), pairs_of(r[3])
  local rows = {}
  for i = 1, #r[1] - 1, 2 do
    local n = r[1][i]
    rows[#rows + 1] = { number = n, snapshot = r[1][i + 1], first_seen = int_or(first[n]), since = since[n] }
  end
  -- in the number's order, as the SQLite store's primary key gives them
  table.sort(rows, function(x, y) return x.number < y.number end)
  return rows
end

--- Rows { policy, space, number, last_fired } of an account.
function Store:reminders(account)
  local ok, err, code = ready(self, account)
  if not ok then return nil, err, code end
  local r
  r, err, code = self.conn:call("HGETALL", M.prefix(account) .. "reminders")
  if not r then return failure(self, account, "cannot read the reminders", err, code) end
  local rows = {}
  for i = 1, #r - 1, 2 do
    local k = core.json_decode(r[i])
    -- a field that is not ours (edited) is no reminder
    if type(k) == "table" and type(k[1]) == "string" and type(k[2]) == "string" and type(k[3]) == "string" then
      rows[#rows + 1] = { policy = k[1], space = k[2], number = k[3], last_fired = int_or(r[i + 1]) }
    end
  end
  return rows
end

local OUTBOX_FIELDS = { "policy", "kind", "space", "number", "target", "record", "status", "error" }

-- An outbox row from its id and HGETALL list.
local function outbox_row(account, id, list)
  local h = pairs_of(list)
  local row = { account = account, id = id }
  for _, f in ipairs(OUTBOX_FIELDS) do row[f] = h[f] end
  for _, f in ipairs { "policy", "kind", "space", "number", "target", "record", "status" } do
    row[f] = row[f] or ""
  end
  row.created, row.updated, row.attempts = int_or(h.created), int_or(h.updated), int_or(h.attempts) or 0
  return row
end

--- Pending outbox rows of an account, oldest first.
function Store:pending(account)
  local ok, err, code = ready(self, account)
  if not ok then return nil, err, code end
  local r
  r, err, code = run(self, account, "cannot read the outbox", PENDING)
  if not r then return nil, err, code end
  local rows = {}
  for i, x in ipairs(r) do rows[i] = outbox_row(account, x[1], x[2]) end
  return rows
end

local function write(self, account, what, src, ...)
  if self.readonly then return true end
  local ok, err, code = ready(self, account)
  if not ok then return nil, err, code end
  return run(self, account, what, src, ...)
end

local function encode(v)
  local s, err = core.json_encode(v)
  if not s then error("cannot encode the state's payload: " .. tostring(err), 0) end
  return s
end

--- Write what a run saw and decided, at once: the same c as
--- chatapp.state.sqlite's commit.
function Store:commit(account, now, c)
  local spaces = {}
  for i, s in ipairs(c.spaces) do
    local seen = {}
    for j, x in ipairs(s.seen) do
      local r = c.row(x)
      seen[j] = { r.number, r.snapshot, r.first_seen, r.since }
    end
    spaces[i] = { space = s.space, seen = seen, gone = s.gone }
  end
  local trans = {}
  for i, t in ipairs(c.transitions) do
    trans[i] = encode { space = t.space, number = t.number, field = t.field, old = t.old, new = t.new }
  end
  local rems = {}
  for i, r in ipairs(c.reminders) do
    rems[i] = { encode { r.policy, r.space, r.number }, r.last_fired or false }
  end
  local outbox = {}
  for i, o in ipairs(c.outbox) do
    outbox[i] = { id = o.id, policy = o.policy, kind = o.kind, space = o.space, number = o.number,
                  target = o.target, record = o.record }
  end
  local ok, payload = pcall(encode, { spaces = spaces, transitions = trans, reminders = rems, outbox = outbox })
  if not ok then return failure(self, account, "cannot record the run", payload, "EINVAL") end
  local r, err, code = write(self, account, "cannot record the run", COMMIT, tostring(now), payload)
  if not r then return nil, err, code end
  return true
end

--- Record outcomes: list of { id, status, error, tried }.
function Store:settle(account, now, list)
  local rows = {}
  for i, o in ipairs(list) do rows[i] = { o.id, o.status, o.error or false, o.tried and true or false } end
  local ok, payload = pcall(encode, rows)
  if not ok then return failure(self, account, "cannot record the actions' outcomes", payload, "EINVAL") end
  local r, err, code = write(self, account, "cannot record the actions' outcomes", SETTLE, tostring(now), payload)
  if not r then return nil, err, code end
  return true
end

--- Remove finished outbox entries last changed before `finished`, and
--- transitions older than `transitions` (Unix times).
function Store:prune(account, finished, transitions)
  local r, err, code = write(self, account, "cannot prune old history", PRUNE, tostring(finished),
    tostring(transitions))
  if not r then return nil, err, code end
  return true
end

---------------------------------------------------------------------------
-- Looking inside (chatapp-run state show / forget)

local function account_list(self, f)
  if f.account then return { f.account } end
  return accounts(self)
end

-- A transition member: "%015d <json>".
local function transition_row(account, member, score)
  local id, text = member:match("^(%d+) (.*)$")
  local t = text and core.json_decode(text)
  if type(t) ~= "table" then return nil end
  local str = function(v) return type(v) == "string" and v or nil end
  return { id = math.tointeger(tonumber(id)), time = int_or(score) or math.tointeger(tonumber(score)),
           account = account, space = str(t.space) or "", number = str(t.number) or "", field = str(t.field) or "",
           old = str(t.old), new = str(t.new) }
end

--- Numbers, transitions and outbox rows matching f = { account, space,
--- number }: the same tables as chatapp.state.sqlite's show.
function Store:show(f, limit)
  limit = math.tointeger(limit) or 50
  local list, err, code = account_list(self, f)
  if not list then return nil, err, code end
  local out = { numbers = {}, transitions = {}, outbox = {}, reminders = {}, outbox_counts = {}, pending = {} }
  local function match(s, n) return (f.space == nil or s == f.space) and (f.number == nil or n == f.number) end
  local counts = {}
  local all_outbox = {}
  for _, account in ipairs(list) do
    local ok
    ok, err, code = ready(self, account)
    if not ok then return nil, err, code end
    local P = M.prefix(account)
    local spaces
    spaces, err, code = self.conn:call("HGETALL", P .. "spaces")
    if not spaces then return failure(self, account, "cannot read", err, code) end
    local seen_at = pairs_of(spaces)
    local names = {}
    for s in pairs(seen_at) do if f.space == nil or s == f.space then names[#names + 1] = s end end
    table.sort(names)
    for _, s in ipairs(names) do
      local rows
      rows, err, code = self:numbers(account, s)
      if not rows then return nil, err, code end
      for _, r in ipairs(rows) do
        if match(s, r.number) then
          r.account, r.space, r.last_seen = account, s, int_or(seen_at[s])
          out.numbers[#out.numbers + 1] = r
        end
      end
    end
    -- transitions, newest first, 1,000 at a time until `limit` matched
    local got = {}
    local total
    total, err, code = self.conn:call("ZCARD", P .. "transitions")
    if not total then return failure(self, account, "cannot read the transitions", err, code) end
    for start = 0, total - 1, 1000 do
      local page
      page, err, code = self.conn:call("ZREVRANGE", P .. "transitions", start, start + 999, "WITHSCORES")
      if not page then return failure(self, account, "cannot read the transitions", err, code) end
      for i = 1, #page - 1, 2 do
        local t = transition_row(account, page[i], page[i + 1])
        if t and match(t.space, t.number) then got[#got + 1] = t end
      end
      if #got >= limit then break end
    end
    for _, t in ipairs(got) do out.transitions[#out.transitions + 1] = t end
    local rem
    rem, err, code = self:reminders(account)
    if not rem then return nil, err, code end
    for _, x in ipairs(rem) do
      if match(x.space, x.number) then
        x.account = account
        out.reminders[#out.reminders + 1] = x
      end
    end
    for _, z in ipairs { "outbox:pending", "outbox:finished" } do
      local ids
      ids, err, code = self.conn:call("ZRANGE", P .. z, 0, -1)
      if not ids then return failure(self, account, "cannot read the outbox", err, code) end
      for _, id in ipairs(ids) do
        local h
        h, err, code = self.conn:call("HGETALL", P .. "outbox:" .. id)
        if not h then return failure(self, account, "cannot read the outbox", err, code) end
        local row = outbox_row(account, id, h)
        if match(row.space, row.number) then
          all_outbox[#all_outbox + 1] = row
          counts[row.status] = (counts[row.status] or 0) + 1
        end
      end
    end
  end
  -- The orders of chatapp.state.sqlite's queries.
  table.sort(out.numbers, function(a, b)
    if a.account ~= b.account then return a.account < b.account end
    if a.space ~= b.space then return a.space < b.space end
    return a.number < b.number
  end)
  table.sort(out.transitions, function(a, b)
    if a.time ~= b.time then return (a.time or 0) > (b.time or 0) end
    return (a.id or 0) > (b.id or 0)
  end)
  for i = #out.transitions, limit + 1, -1 do out.transitions[i] = nil end
  table.sort(all_outbox, function(a, b)
    if a.created ~= b.created then return (a.created or 0) > (b.created or 0) end
    return a.id < b.id
  end)
  for i, o in ipairs(all_outbox) do if i <= limit then out.outbox[i] = o end end
  local pend = {}
  for _, o in ipairs(all_outbox) do if o.status == "pending" then pend[#pend + 1] = o end end
  table.sort(pend, function(a, b)
    if a.created ~= b.created then return (a.created or 0) < (b.created or 0) end
    return a.id < b.id
  end)
  for i, o in ipairs(pend) do if i <= limit then out.pending[i] = o end end
  local statuses = {}
  for s in pairs(counts) do statuses[#statuses + 1] = s end
  table.sort(statuses)
  for i, s in ipairs(statuses) do out.outbox_counts[i] = { status = s, n = counts[s] } end
  return out
end

--- Forget what matches f = { account, space, number } (none: all): the
--- count removed per kind.  keep_pending: refuse (nothing removed; code
--- EPENDING) when pending outbox entries match.
function Store:forget(f, keep_pending)
  local list, err, code = account_list(self, f)
  if not list then return nil, err, code end
  local counts = { numbers = 0, transitions = 0, reminders = 0, outbox = 0 }
  local filter = encode { space = f.space, number = f.number, keep_pending = keep_pending or false }
  -- Several accounts: the pending check of all first, so a refusal
  -- removes nothing anywhere.
  if keep_pending and #list > 1 then
    local n = 0
    for _, account in ipairs(list) do
      local rows
      rows, err, code = self:show({ account = account, space = f.space, number = f.number }, 1)
      if not rows then return nil, err, code end
      for _, c in ipairs(rows.outbox_counts) do if c.status == "pending" then n = n + c.n end end
    end
    if n > 0 then return failure(self, nil, "cannot forget", "PENDING " .. n, "EREDIS") end
  end
  for _, account in ipairs(list) do
    -- checked, not stamped: forget never makes the state of an account
    -- that has none
    local ok
    ok, err, code = ready(self, account, true)
    if not ok then return nil, err, code end
    local r = true
    local exists
    exists, err, code = self.conn:call("EXISTS", M.prefix(account) .. "meta")
    if not exists then return failure(self, account, "cannot forget", err, code) end
    if exists == 1 then r, err, code = run(self, account, "cannot forget", FORGET, filter) end
    if not r then return nil, err, code end
    if type(r) == "table" then
      counts.numbers = counts.numbers + (r[1] or 0)
      counts.transitions = counts.transitions + (r[2] or 0)
      counts.reminders = counts.reminders + (r[3] or 0)
      counts.outbox = counts.outbox + (r[4] or 0)
    end
  end
  return counts
end

return M
