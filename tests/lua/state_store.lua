--- The state store under test, SQLite or Redis, for the state's tests
--- (e2e_state, e2e_state_cli): one set of cases runs against both.  The
--- store is picked by the test's argument after the two binaries
--- ("redis"; default "sqlite").  A state is a file path for SQLite, a URL
--- (redis://127.0.0.1:PORT/DB, a database of its own) for Redis.  The
--- helpers read and edit a state the way a user or a damaged store would:
--- with SQL, or with Redis commands, never through chatapp.state.
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local S = {}
S.kind = (arg[3] == "redis") and "redis" or "sqlite"
S.redis = S.kind == "redis"

local srv, next_db = nil, 0
local MAX_DB = 1000

--- The Redis server of the tests (started on first use).
function S.server()
  if not srv then
    local R = require "redis_server"
    S.R = R
    srv = R.start { extra = { "--databases", tostring(MAX_DB) } }
  end
  return srv
end

--- A new, empty state.
function S.fresh()
  if not S.redis then return E.tmpdir() .. "/state.db" end
  local s = S.server()
  next_db = next_db + 1
  assert(next_db < MAX_DB, "out of Redis databases")
  local url = ("%s/%d"):format(s.url, next_db)
  local c = assert(core.redis_connect(url))
  assert(c:call("FLUSHDB"))
  c:close()
  return url
end

local function conn(url)
  return assert(core.redis_connect(url))
end

local function with(url, fn)
  local c = conn(url)
  local r = table.pack(fn(c))
  c:close()
  return table.unpack(r, 1, r.n)
end

local function sql(path, stmt, ...)
  local h = assert(core.sqlite_open(path))
  local ok, err = h:run(stmt, ...)
  h:close()
  assert(ok, err)
  return ok
end
S.sql = sql

local function prefix(account) return "chatapp:state:{" .. account .. "}:" end
S.prefix = prefix

-- Every key of a Redis database, sorted.
local function keys(c)
  local list = assert(c:call("KEYS", "*"))
  table.sort(list)
  return list
end

--- A checksum of the whole state (a file's bytes; a database's keys and
--- values): unchanged means nothing was written.
function S.digest(state)
  if not S.redis then return core.sha256_hex(E.read(state) or "") end
  return with(state, function(c)
    local parts = {}
    for _, k in ipairs(keys(c)) do
      -- (the leader lease a run takes and its fence are not the state)
      if not k:find("^chatapp:lease:") and not k:find("^chatapp:fence:") then
        parts[#parts + 1] = k .. "\0" .. tostring(assert(c:call("DUMP", k)))
      end
    end
    return core.sha256_hex(table.concat(parts, "\0\0"))
  end)
end

--- Everything the state holds, as one string (to look for a secret).
function S.raw(state)
  if not S.redis then return E.read(state) or "" end
  return with(state, function(c)
    local parts = {}
    for _, k in ipairs(keys(c)) do
      parts[#parts + 1] = k
      parts[#parts + 1] = tostring(assert(c:call("DUMP", k)))
      local t = assert(c:call("TYPE", k))
      if t == "hash" then
        for _, v in ipairs(assert(c:call("HGETALL", k))) do parts[#parts + 1] = v end
      elseif t == "zset" then
        for _, v in ipairs(assert(c:call("ZRANGE", k, 0, -1))) do parts[#parts + 1] = v end
      end
    end
    return table.concat(parts, "\n")
  end)
end

--- A copy of a state (a new file; a new database).
function S.copy(from)
  if not S.redis then
    local to = E.tmpdir() .. "/state.db"
    assert(os.execute(("cp %s %s"):format(E.quote(from), E.quote(to))))
    return to
  end
  local to = S.fresh()
  local db = assert(tonumber(to:match("/(%d+)$")))
  with(from, function(c)
    for _, k in ipairs(keys(c)) do assert(c:call("COPY", k, k, "DB", db)) end
  end)
  return to
end

-- A Redis transition member's fields.
local function transition_of(member, score)
  local id, text = member:match("^(%d+) (.*)$")
  local t = assert(core.json_decode(text))
  return { id = math.tointeger(tonumber(id)), time = math.tointeger(tonumber(score)), space = t.space,
           number = t.number, field = t.field, old = t.old, new = t.new }
end

--- Transitions, oldest first: f = { number, field, new } (each optional).
function S.transitions(state, f)
  f = f or {}
  local rows = {}
  local function keep(t)
    if (f.number == nil or t.number == f.number) and (f.field == nil or t.field == f.field)
       and (f.new == nil or t.new == f.new) then
      rows[#rows + 1] = t
    end
  end
  if not S.redis then
    for _, t in ipairs(E.db_rows(state, "SELECT id, time, account, space, number, field, old, new FROM transitions "
      .. "ORDER BY id")) do keep(t) end
    return rows
  end
  with(state, function(c)
    for _, k in ipairs(keys(c)) do
      if k:find(":transitions$") then
        local list = assert(c:call("ZRANGE", k, 0, -1, "WITHSCORES"))
        for i = 1, #list, 2 do keep(transition_of(list[i], list[i + 1])) end
      end
    end
  end)
  table.sort(rows, function(a, b) return a.id < b.id end)
  return rows
end

--- Number rows { space, number, snapshot, first_seen, last_seen, since }:
--- f = { number, space } (each optional).
function S.numbers(state, f)
  f = f or {}
  local rows = {}
  local function keep(r)
    if (f.number == nil or r.number == f.number) and (f.space == nil or r.space == f.space) then
      rows[#rows + 1] = r
    end
  end
  if not S.redis then
    for _, r in ipairs(E.db_rows(state, "SELECT account, space, number, snapshot, first_seen, last_seen, since "
      .. "FROM numbers ORDER BY account, space, number")) do keep(r) end
    return rows
  end
  with(state, function(c)
    for _, k in ipairs(keys(c)) do
      local account = k:match("^chatapp:state:{(.*)}:spaces$")
      if account then
        local P = prefix(account)
        local spaces = assert(c:call("HGETALL", k))
        for i = 1, #spaces, 2 do
          local s, seen = spaces[i], math.tointeger(tonumber(spaces[i + 1]))
          local snaps = assert(c:call("HGETALL", P .. "numbers:" .. s))
          for j = 1, #snaps, 2 do
            local n = snaps[j]
            keep { account = account, space = s, number = n, snapshot = snaps[j + 1], last_seen = seen,
                   first_seen = math.tointeger(tonumber(c:call("HGET", P .. "first_seen:" .. s, n) or "")),
                   since = c:call("HGET", P .. "since:" .. s, n) or nil }
          end
        end
      end
    end
  end)
  return rows
end

--- Per space: { space, n (numbers), seen (max last_seen) }.
function S.spaces(state)
  local by, list = {}, {}
  for _, r in ipairs(S.numbers(state)) do
    local x = by[r.space]
    if not x then
      x = { space = r.space, n = 0, seen = r.last_seen }
      by[r.space] = x
      list[#list + 1] = x
    end
    x.n = x.n + 1
    if r.last_seen > x.seen then x.seen = r.last_seen end
  end
  return list
end

--- Outbox rows { id, status, attempts, record, created, error }.
function S.outbox(state)
  if not S.redis then
    return E.db_rows(state, "SELECT id, status, attempts, record, created, error FROM outbox ORDER BY created, id")
  end
  local rows = {}
  with(state, function(c)
    for _, k in ipairs(keys(c)) do
      local id = k:match("^chatapp:state:{.*}:outbox:(.+)$")
      if id and id ~= "pending" and id ~= "finished" then
        local h = assert(c:call("HGETALL", k))
        local r = { id = id }
        for i = 1, #h, 2 do r[h[i]] = h[i + 1] end
        r.attempts = math.tointeger(tonumber(r.attempts))
        r.created = math.tointeger(tonumber(r.created))
        rows[#rows + 1] = r
      end
    end
  end)
  table.sort(rows, function(a, b) if a.created ~= b.created then return a.created < b.created end return a.id < b.id end)
  return rows
end

--- Replace a number's snapshot (every space it is in) by edit(text).
function S.edit_snapshot(state, number, edit)
  if not S.redis then
    local rows = E.db_rows(state, "SELECT account, space, snapshot FROM numbers WHERE number = ?1", number)
    for _, r in ipairs(rows) do
      sql(state, "UPDATE numbers SET snapshot = ?4 WHERE account = ?1 AND space = ?2 AND number = ?3", r.account,
        r.space, number, edit(r.snapshot))
    end
    return
  end
  with(state, function(c)
    for _, k in ipairs(keys(c)) do
      if k:find("^chatapp:state:{.*}:numbers:") then
        local v = c:call("HGET", k, number)
        if v then assert(c:call("HSET", k, number, edit(v))) end
      end
    end
  end)
end

--- Add a number row as a run of the account would have.
function S.put_number(state, account, space, number, snapshot, first_seen, since)
  if not S.redis then
    sql(state, "INSERT INTO numbers (account, space, number, snapshot, first_seen, last_seen, since) "
      .. "VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)", account, space, number, snapshot, first_seen, since)
    return
  end
  with(state, function(c)
    local P = prefix(account)
    assert(c:call("HSET", P .. "numbers:" .. space, number, snapshot))
    assert(c:call("HSET", P .. "first_seen:" .. space, number, first_seen))
    assert(c:call("HSET", P .. "since:" .. space, number, since))
    if not c:call("HGET", P .. "spaces", space) then assert(c:call("HSET", P .. "spaces", space, first_seen)) end
  end)
end

--- Add a transition row t = { time, account, space, number, field, old, new }.
function S.put_transition(state, t)
  if not S.redis then
    sql(state, "INSERT INTO transitions (time, account, space, number, field, old, new) VALUES "
      .. "(?1, ?2, ?3, ?4, ?5, ?6, ?7)", t.time, t.account, t.space, t.number, t.field, t.old, t.new)
    return
  end
  with(state, function(c)
    local P = prefix(t.account)
    local id = assert(c:call("INCR", P .. "transition_seq"))
    local member = ("%015d "):format(id) .. assert(core.json_encode { space = t.space, number = t.number,
                                                                      field = t.field, old = t.old, new = t.new })
    assert(c:call("ZADD", P .. "transitions", t.time, member))
  end)
end

--- Add an outbox entry o = { account, id, policy, kind, space, number,
--- target, record, status, created, attempts, error }.
function S.put_outbox(state, o)
  if not S.redis then
    sql(state, "INSERT INTO outbox (account, id, policy, kind, space, number, target, record, status, created, "
      .. "updated, attempts, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12)",
      o.account, o.id, o.policy, o.kind, o.space, o.number, o.target, o.record, o.status, o.created, o.attempts or 0,
      o.error)
    return
  end
  with(state, function(c)
    local P = prefix(o.account)
    local k = P .. "outbox:" .. o.id
    assert(c:call("HSET", k, "policy", o.policy, "kind", o.kind, "space", o.space, "number", o.number, "target",
      o.target, "record", o.record, "status", o.status, "created", o.created, "updated", o.created, "attempts",
      o.attempts or 0))
    if o.error then assert(c:call("HSET", k, "error", o.error)) end
    if o.status == "pending" then
      assert(c:call("ZADD", P .. "outbox:pending", o.created, o.id))
    else
      assert(c:call("ZADD", P .. "outbox:finished", o.created, o.id))
    end
  end)
end

--- Make the state look written by a newer chatapp-run (schema 99).
function S.make_newer(state)
  if not S.redis then return sql(state, "PRAGMA user_version = 99") end
  with(state, function(c)
    for _, k in ipairs(keys(c)) do
      if k:find("^chatapp:state:{.*}:meta$") then assert(c:call("HSET", k, "schema", "99")) end
    end
  end)
end

--- A Redis command on a state (Redis only).
function S.call(state, ...)
  local args = table.pack(...)
  return with(state, function(c) return c:call(table.unpack(args, 1, args.n)) end)
end

function S.cleanup()
  if srv then
    srv:stop()
    S.R.cleanup()
    srv = nil
  end
end

return S
