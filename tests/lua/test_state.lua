-- A state file (--state FILE) as hostile input: values a user edited or a
-- disk damaged, read by chatapp.state (lua/chatapp/state/).  Each case
-- writes rows with the store's own connection (bound parameters), then
-- runs open -> observe -> reminders -> resume -> settle as a run does.
-- Nothing may raise: a snapshot that cannot be read stops the run with a
-- message naming the file, the space and the way out; a since, a
-- first_seen or a reminder that cannot be read is unknown; an outbox entry
-- that cannot be resumed comes back failed, with a clear error, and the
-- run goes on.  The fuzz target tests/fuzz/fuzz_state.c covers the same
-- values at random.
--
-- With the argument "redis" (ctest lua/test_state_redis) the same cases
-- run against the Redis store (rows written with Redis commands), and
-- then the Redis store's own: keys of the wrong type, hostile transition
-- members and reminder fields, fencing, a 10,000-number commit, the
-- server lost at the commit.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local state = require "chatapp.state"
local REDIS = arg[1] == "redis"
local backend = require(REDIS and "chatapp.state.redis" or "chatapp.state.sqlite")
local actions = require "chatapp.actions"
local report = require "chatapp.report"

local NOW = 1700003600
local SPACE = { cust_space_id = "cs-1", label = "one" }
local N1, N2, GONE = "8613800000001", "8613800000002", "8613800000009"
local ANSWER = assert(core.json_encode {
  PhoneNumbers = {
    { PhoneNumber = N1, QualityRating = "GREEN", Status = "CONNECTED" },
    { PhoneNumber = N2, QualityRating = "RED" },
  },
})

local paths = {}
local srv, R, dbs = nil, nil, 0
local function fresh()
  if REDIS then
    if not srv then
      R = require "redis_server"
      srv = R.start { extra = { "--databases", "1000" } }
    end
    dbs = dbs + 1
    local url = srv.url .. "/" .. dbs
    local c = assert(core.redis_connect(url))
    assert(c:call("FLUSHDB"))
    c:close()
    return url
  end
  local p = os.tmpname()
  paths[#paths + 1] = p
  return p
end

-- A Redis command on a state (its own connection).
local function rcall(url, ...)
  local c = assert(core.redis_connect(url))
  local r, err, code = c:call(...)
  c:close()
  return r, err, code
end
local P = "chatapp:state:{acct}:"

-- rows: { numbers = {{number, snapshot, first_seen, since}...},
--         reminders = {{policy, number, last_fired}...},
--         outbox = {{id, kind, record, created}...} }
local function put(path, rows)
  if REDIS then
    local c = assert(core.redis_connect(path))
    assert(c:call("HSET", P .. "meta", "schema", 1))
    assert(c:call("HSET", P .. "spaces", "cs-1", NOW - 300))
    for _, r in ipairs(rows.numbers or {}) do
      assert(c:call("HSET", P .. "numbers:cs-1", r[1], r[2]))
      assert(c:call("HSET", P .. "first_seen:cs-1", r[1], tostring(r[3] or 1)))
      assert(c:call("HSET", P .. "since:cs-1", r[1], r[4] or "{}"))
    end
    for _, r in ipairs(rows.reminders or {}) do
      assert(c:call("HSET", P .. "reminders", assert(core.json_encode { r[1], "cs-1", r[2] }), tostring(r[3])))
    end
    for _, r in ipairs(rows.outbox or {}) do
      local created = r[4] or NOW - 60
      assert(c:call("HSET", P .. "outbox:" .. r[1], "policy", "p", "kind", r[2], "space", "cs-1", "number", N1,
        "target", "POST https://hooks.example/a", "record", r[3], "status", "pending", "created", tostring(created),
        "updated", tostring(created), "attempts", 0))
      assert(c:call("ZADD", P .. "outbox:pending", tonumber(created) or 0, r[1]))
    end
    c:close()
    return
  end
  local store = assert(backend.open(path))
  local db = store.db
  assert(db:exec("BEGIN"))
  for _, r in ipairs(rows.numbers or {}) do
    assert(db:run("INSERT INTO numbers (account, space, number, snapshot, first_seen, last_seen, since) "
      .. "VALUES ('acct', 'cs-1', ?1, ?2, ?3, ?3, ?4)", r[1], r[2], r[3] or 1, r[4] or "{}"))
  end
  for _, r in ipairs(rows.reminders or {}) do
    assert(db:run("INSERT INTO reminders (account, policy, space, number, last_fired) "
      .. "VALUES ('acct', ?1, 'cs-1', ?2, ?3)", r[1], r[2], r[3]))
  end
  for _, r in ipairs(rows.outbox or {}) do
    assert(db:run("INSERT INTO outbox (account, id, policy, kind, space, number, target, record, status, "
      .. "created, updated) VALUES ('acct', ?1, 'p', ?2, 'cs-1', ?3, 'POST https://hooks.example/a', ?4, "
      .. "'pending', ?5, ?5)", r[1], r[2], N1, r[3], r[4] or NOW - 60))
  end
  assert(db:exec("COMMIT"))
  store:close()
end

local function open(path)
  local st = assert(state.open(path, { max_age = 3600 }))
  st.now = NOW
  return st
end

local function list()
  return assert(core.decode_phone_numbers(ANSWER, SPACE))
end

-- observe over a file holding rows; returns ok, err, the list, the state.
local function observe(rows)
  local path = fresh()
  put(path, rows)
  local st = open(path)
  local l = list()
  local ok, err = st:observe("acct", { SPACE }, { l })
  return ok, err, l, st, path
end

local function snap(number, quality)
  return assert(core.json_encode { PhoneNumber = number, QualityRating = quality or "GREEN", Status = "CONNECTED" })
end

-- A webhook action as a run plans it, and its outbox record.
local function webhook(body, headers)
  local a = {
    kind = "webhook", policy = "p", phone_number = N1, space = { cust_space_id = "cs-1" }, status = "planned",
    request = { method = "POST", url = "https://hooks.example/a", headers = headers or {}, body = body,
                timeout_ms = 10000, attempts = 3 },
  }
  a.id = actions.id(a)
  return a, assert(actions.to_record(a))
end

local function json(v) return assert(core.json_encode(v)) end

-- resume over a file holding the outbox rows; returns the list by id and
-- the outbox rows' statuses after settle, by id.
local function resume(outbox)
  local path = fresh()
  put(path, { outbox = outbox })
  local st = open(path)
  assert(st:observe("acct", { SPACE }, { list() }))
  local todo = assert(st:resume({}))
  local by = {}
  for _, a in ipairs(todo) do by[a.id] = a; a.resumed_as = a.status end
  local pending = {}
  for _, a in ipairs(todo) do if a.status == "planned" then pending[#pending + 1] = a end end
  for _, a in ipairs(pending) do a.status = "done" end
  assert(st:settle(pending))
  st:close()
  local status = {}
  if REDIS then
    for _, a in pairs(by) do
      local h = assert(rcall(path, "HGETALL", P .. "outbox:" .. a.id))
      local r = { id = a.id }
      for i = 1, #h, 2 do r[h[i]] = h[i + 1] end
      status[a.id] = r
    end
    return by, status
  end
  local store = assert(backend.open(path))
  for _, r in ipairs(assert(store.db:query("SELECT id, status, error FROM outbox"))) do
    status[r.id] = r
  end
  store:close()
  return by, status
end

-- The report's text lines of an action, as print_action writes them.
local function text_of(a)
  local rep = report.new({ output = "text" }, {}, function() end)
  local buf = {}
  rep:print_action(a, { write = function(self, ...)
    for _, s in ipairs { ... } do buf[#buf + 1] = s end
    return self
  end })
  return table.concat(buf)
end

T.cases {
  { "a snapshot that is not JSON stops observe, naming the file, the space and the way out", function()
    local ok, err, _, _, path = observe { numbers = { { N1, "not json {" } } }
    T.eq(ok, nil, "observe fails")
    T.check(type(err) == "string", "with a message")
    err = tostring(err)
    T.check(err:find(path, 1, true), "naming the file: " .. err)
    T.check(err:find("cs-1", 1, true), "naming the space: " .. err)
    T.check(err:find("chatapp-run state forget --space cs-1", 1, true), "saying how to recover: " .. err)
  end },

  { "a snapshot that is JSON but not an object stops observe", function()
    for _, s in ipairs { "[1,2]", "5", '"x"', "null", "" } do
      local ok, err = observe { numbers = { { N1, s } } }
      T.eq(ok, nil, "observe fails on " .. s)
      T.check(type(err) == "string" and err:find("state forget", 1, true), "a message: " .. tostring(err))
    end
  end },

  { "a snapshot of two objects, or of another number, stops observe naming the number", function()
    -- Before: the two objects shifted the pairing of snapshots and rows
    -- (or core.phone_attach raised: previous is number X, not Y).
    local two = snap(N1) .. "," .. snap("8613800000003")
    local ok, err = observe { numbers = { { N1, two }, { GONE, '"x"' } } }
    T.eq(ok, nil, "two objects in one snapshot")
    T.check(tostring(err):find("number " .. N1, 1, true), "names the number: " .. tostring(err))
    local ok2, err2 = pcall(observe, { numbers = { { N1, snap(GONE) } } })
    T.check(ok2, "observe does not raise on another number's snapshot: " .. tostring(err2))
    ok, err = observe { numbers = { { N1, snap(GONE) } } }
    T.eq(ok, nil, "another number's snapshot")
    T.check(tostring(err):find("not one JSON object of that number", 1, true), tostring(err))
  end },

  { "a since that is not an object of tracked fields and times is unknown", function()
    for _, s in ipairs { "[5,6]", "not json", '"x"', '{"bogus":1}', '{"quality_rating":"yesterday"}',
                         '{"quality_rating":1e300}', '{"quality_rating":-1}', '{"quality_rating":1.5}' } do
      local okc, ok, err, l = pcall(observe, { numbers = { { N1, snap(N1), 100, s } } })
      T.check(okc, "observe does not raise on since " .. s .. ": " .. tostring(ok))
      if okc then
        T.eq(ok, true, "observe reads since " .. s .. " (" .. tostring(err) .. ")")
        T.eq(l[1]:since("quality_rating"), nil, "unknown since for " .. s)
        T.check(l[1].previous ~= nil, "the previous snapshot is there")
      end
    end
    -- A good since is kept as it was.
    local ok, _, l = observe { numbers = { { N1, snap(N1), 100, '{"quality_rating":1690000000}' } } }
    T.eq(ok, true, "a good since")
    T.eq(l[1]:since("quality_rating"), 1690000000, "read")
    T.eq(l[1]:held("quality_rating"), NOW - 1690000000, "held")
  end },

  { "a first_seen that is not a Unix time reads as now", function()
    for _, f in ipairs { "not a time", -5, 1.5, "1e400" } do
      local okc, ok, _, l = pcall(observe, { numbers = { { N1, snap(N1), f } } })
      T.check(okc, "observe does not raise on first_seen " .. tostring(f) .. ": " .. tostring(ok))
      if okc then
        T.eq(ok, true, "observe")
        T.eq(l[1].first_seen, NOW, "first_seen " .. tostring(f))
      end
    end
    local ok, _, l = observe { numbers = { { N1, snap(N1), 1600000000 } } }
    T.eq(ok, true, "a good first_seen")
    T.eq(l[1].first_seen, 1600000000, "kept")
    -- and the bad one is written over by the next commit
    local okb, _, _, st, path = observe { numbers = { { N1, snap(N1), "not a time" } } }
    T.eq(okb, true, "observe")
    T.eq(st:commit(), true, "commit")
    st:close()
    local row
    if REDIS then
      row = { first_seen = math.tointeger(tonumber(assert(rcall(path, "HGET", P .. "first_seen:cs-1", N1)))) }
    else
      local db = assert(core.sqlite_open(path, { readonly = true }))
      row = assert(db:query("SELECT first_seen FROM numbers WHERE number = ?1", N1))[1]
      db:close()
    end
    T.eq(row and row.first_seen, NOW, "repaired in the file")
  end },

  { "a reminder whose last_fired is not a Unix time is no reminder", function()
    local policy = { name = "p", remind = 86400 }
    for _, v in ipairs { "soon", 1.5, "\27[31m" } do
      local ok, _, l, st = observe { numbers = { { N1, snap(N1) } }, reminders = { { "p", N1, v } } }
      T.eq(ok, true, "observe")
      T.eq(st:load_reminders(), true, "load_reminders")
      local okq, q = pcall(st.quiet, st, policy, SPACE, l[1])
      T.check(okq, "quiet does not raise on last_fired " .. tostring(v) .. ": " .. tostring(q))
      T.eq(okq and q, nil, "the number is not quiet")
    end
    local ok, _, l, st = observe { numbers = { { N1, snap(N1) } }, reminders = { { "p", N1, NOW - 60 } } }
    T.eq(ok, true, "observe")
    T.eq(st:load_reminders(), true, "load_reminders")
    T.eq(st:quiet(policy, SPACE, l[1]), NOW - 60, "a good reminder keeps the number quiet")
  end },

  { "unreadable outbox entries come back failed with a clear error, and the run goes on", function()
    local good, good_rec = webhook("ok")
    local tampered, tampered_rec = webhook("original")
    tampered_rec.request.body = "changed"
    local secret, secret_rec = webhook("x")
    secret_rec.request.headers["X-Key"] = { ["$env"] = { "k=", { env = "ALIBABA_CLOUD_ACCESS_KEY_SECRET" } } }
    local redacted, redacted_rec = webhook("y", { Authorization = "Bearer s3cret-token" })
    redacted_rec.request.headers.Authorization = { ["$redacted"] = true }
    local unknown_rec = { v = 1, kind = "nope", id = "u1", policy = "p" }
    local by, status = resume {
      { "bad-json", "webhook", "not json \27[31m{" },
      { "u1", "nope", json(unknown_rec) },
      { tampered.id, "webhook", json(tampered_rec) },
      { secret.id, "webhook", json(secret_rec) },
      { redacted.id, "webhook", json(redacted_rec) },
      { good.id, "webhook", json(good_rec) },
    }
    local function failed(id, pattern, what)
      local a = by[id]
      T.check(a ~= nil, what .. ": comes back")
      if not a then return end
      T.eq(a.status, "failed", what .. ": failed")
      T.check(type(a.error) == "string" and a.error:find(pattern, 1, true),
        what .. ": error " .. tostring(a.error) .. " names " .. pattern)
      T.eq(status[id] and status[id].status, "failed", what .. ": recorded failed in the outbox")
    end
    failed("bad-json", "cannot be resumed", "a record that is not JSON")
    failed("u1", "unknown action kind nope", "an unknown kind")
    failed(tampered.id, "does not match its content", "a tampered request")
    failed(secret.id, "ALIBABA_CLOUD_ACCESS_KEY_SECRET, which actions cannot use", "an $env secret")
    failed(redacted.id, "secret header", "a $redacted header")
    T.eq(by[secret.id] and next(by[secret.id].request), nil, "the secret's action carries no request")
    T.eq(by[good.id] and by[good.id].resumed_as, "planned", "the good one is resumed")
    T.eq(status[good.id] and status[good.id].status, "done", "and recorded done")
  end },

  { "an outbox entry whose created time is not a Unix time fails instead of raising", function()
    local a, rec = webhook("ok")
    local ok, by, status = pcall(resume, { { a.id, "webhook", json(rec), "yesterday" } })
    T.check(ok, "resume does not raise: " .. tostring(by))
    if not ok then return end
    T.eq(by[a.id] and by[a.id].status, "failed", "failed")
    T.check(by[a.id] and tostring(by[a.id].error):find("created time", 1, true), "says why")
    T.eq(status[a.id].status, "failed", "recorded")
  end },

  { "a record that is another entry's (its id is not the row's) is not resumed under that id", function()
    -- With an $env reference the record keeps its own id; before, the
    -- action took it, settle marked the other entry, and this one stayed
    -- pending for every run to send again.
    local home = os.getenv("HOME")
    if not home or #home < 8 then home = nil end
    local a, rec = webhook("x")
    rec.id = "someone-else"
    local env_name = home and "HOME" or "PATH"
    rec.request.body = { ["$env"] = { "at ", { env = env_name } } }
    local by, status = resume { { a.id, "webhook", json(rec) } }
    T.eq(by["someone-else"], nil, "not resumed under the record's id")
    T.eq(by[a.id] and by[a.id].status, "failed", "failed under the row's id")
    T.check(by[a.id] and tostring(by[a.id].error):find("someone-else", 1, true), tostring(by[a.id] and by[a.id].error))
    T.eq(status[a.id].status, "failed", "recorded failed, not left pending")
  end },

  { "control characters and ANSI escapes of stored values never reach the text report", function()
    local by = resume {
      { "\27[2J\27]0;x\7id", "\27[31mkind", "\27[31mnot json" },
      { "lg", "log", "{}" },
    }
    for id, a in pairs(by) do
      local ok, text = pcall(text_of, a)
      T.check(ok, "the report prints the action " .. report.safe(id) .. ": " .. tostring(text))
      if ok then
        T.check(not text:find("[%z\1-\8\11-\31\127]"), "no control character: " .. report.safe(text))
      end
    end
  end },

  { "control characters of a stored snapshot never reach the text report's changes", function()
    local evil = assert(core.json_encode { PhoneNumber = N1, QualityRating = "\27[31mRED\27]0;x\7", Status = "\r\n" })
    local ok, err, _, st = observe { numbers = { { N1, evil } } }
    T.eq(ok, true, "observe: " .. tostring(err))
    T.check(#st.transitions > 0, "changes noted")
    local rep = report.new({ output = "text" }, {}, function() end)
    local buf = {}
    rep.out = { write = function(self, ...)
      for _, s in ipairs { ... } do buf[#buf + 1] = s end
      return self
    end }
    rep:transitions(st.transitions, false)
    rep:print_changes_text()
    local text = table.concat(buf)
    T.check(text:find("quality_rating", 1, true), "the change is listed: " .. report.safe(text))
    T.check(not text:find("[%z\1-\9\11-\31\127]"), "no control character: " .. report.safe(text))
  end },

  { "a 10 MB snapshot is handled without holding much more than it", function()
    local big = assert(core.json_encode { PhoneNumber = N1, QualityRating = "GREEN",
                                          VerifiedName = string.rep("A", 10 * 1024 * 1024) })
    collectgarbage()
    local before = collectgarbage("count")
    local okc, ok, err, l = pcall(observe, { numbers = { { N1, big } } })
    T.check(okc, "observe does not raise: " .. tostring(ok))
    if okc then
      T.check(ok == true or type(err) == "string", "true, or a message")
      if ok then T.eq(#l[1].previous.verified_name, 10 * 1024 * 1024, "the snapshot read whole") end
    end
    big, l = nil, nil
    collectgarbage()
    local after = collectgarbage("count")
    T.check(after - before < 4 * 1024, ("memory held after: %d KB more"):format(math.floor(after - before)))
  end },
}

-- The Redis store's own cases.
local function digest(url)
  local c = assert(core.redis_connect(url))
  local keys = assert(c:call("KEYS", "*"))
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "\0" .. tostring(assert(c:call("DUMP", k))) end
  c:close()
  return core.sha256_hex(table.concat(parts, "\0\0"))
end

-- A list of n numbers as the API answers, in SPACE.
local function many(n, quality)
  local list = {}
  for i = 1, n do
    list[i] = { PhoneNumber = ("86139%08d"):format(i), QualityRating = quality or "GREEN", Status = "CONNECTED",
                VerifiedName = "Bench " .. i }
  end
  return assert(core.decode_phone_numbers(assert(core.json_encode { PhoneNumbers = list }), SPACE))
end

local redis_cases = {
  { "keys of the wrong type: refused with the key's name, never a raise, nothing written", function()
    local url = fresh()
    put(url, { numbers = { { N1, snap(N1) } } })
    assert(rcall(url, "DEL", P .. "since:cs-1"))
    assert(rcall(url, "RPUSH", P .. "since:cs-1", "theirs"))
    local st = open(url)
    local okc, ok, err = pcall(st.observe, st, "acct", { SPACE }, { list() })
    T.check(okc, "observe does not raise: " .. tostring(ok))
    T.eq(ok, nil, "observe fails")
    T.check(tostring(err):find("key " .. P .. "since:cs-1 holds a list, not a hash", 1, true), tostring(err))
    T.check(tostring(err):find("another program", 1, true), tostring(err))
    st:close()
    local store = assert(backend.open(url, { account = "acct" }))
    local before = digest(url)
    local okw, werr, code = store:commit("acct", NOW, {
      spaces = { { space = "cs-1", seen = { { number = N2, snapshot = snap(N2), first_seen = NOW, since = "{}" } } } },
      row = function(x) return x end, transitions = {}, reminders = {}, outbox = {} })
    T.eq(okw, nil, "a commit into it fails")
    T.eq(code, "EFOREIGN", "EFOREIGN: " .. tostring(werr))
    T.eq(digest(url), before, "and writes nothing")
    store:close()
    -- a fixed key of the wrong type: refused at open, before any API call
    url = fresh()
    assert(rcall(url, "SET", P .. "reminders", "theirs"))
    local s2, e2, c2 = state.open(url, { account = "acct" })
    T.eq(s2, nil, "open refuses")
    T.eq(c2, "EFOREIGN", tostring(e2))
    T.check(tostring(e2):find(P .. "reminders holds a string, not a hash", 1, true), tostring(e2))
    -- an outbox entry that is not a hash
    url = fresh()
    put(url, {})
    assert(rcall(url, "ZADD", P .. "outbox:pending", NOW - 60, "odd"))
    assert(rcall(url, "SET", P .. "outbox:odd", "theirs"))
    st = open(url)
    assert(st:observe("acct", { SPACE }, { list() }))
    local okr, todo, rerr = pcall(st.resume, st, {})
    T.check(okr, "resume does not raise: " .. tostring(todo))
    T.eq(todo, nil, "resume fails")
    T.check(tostring(rerr):find(P .. "outbox:odd holds a string", 1, true), tostring(rerr))
    st:close()
  end },

  { "a commit that fails its checks half way writes nothing (all or nothing)", function()
    local url = fresh()
    put(url, {})
    -- the second space's key is of the wrong type: the first's numbers
    -- must not be written either
    assert(rcall(url, "SET", P .. "first_seen:cs-2", "theirs"))
    local store = assert(backend.open(url, { account = "acct" }))
    local before = digest(url)
    local rows = {}
    for i = 1, 3 do rows[i] = { number = "n" .. i, snapshot = snap("n" .. i), first_seen = NOW, since = "{}" } end
    local ok, err, code = store:commit("acct", NOW, {
      spaces = { { space = "cs-1", seen = rows }, { space = "cs-2", seen = { rows[1] } } },
      row = function(x) return x end, transitions = { { space = "cs-1", number = "n1", field = "presence",
                                                        new = "present" } },
      reminders = {}, outbox = {},
    })
    T.eq(ok, nil, "refused")
    T.eq(code, "EFOREIGN", tostring(err))
    T.eq(digest(url), before, "nothing written")
    store:close()
  end },

  { "hostile reminder fields, transition members and outbox hashes: skipped or shown, never a raise", function()
    local url = fresh()
    put(url, { numbers = { { N1, snap(N1) } }, reminders = { { "p", N1, NOW - 60 } } })
    assert(rcall(url, "HSET", P .. "reminders", "not json {", "5", "[1,2,3]", "6", "\27[31m", "x"))
    assert(rcall(url, "ZADD", P .. "transitions", 5, "garbage", 6, "000000000000001 {bad", 7,
      "000000000000002 [1]", 8, '000000000000003 {"space":5,"number":{},"field":"\\u001b[31m"}'))
    assert(rcall(url, "HSET", P .. "outbox:x", "status", "done", "created", "yesterday"))
    assert(rcall(url, "ZADD", P .. "outbox:finished", 1, "x"))
    local st = open(url)
    local ok = st:observe("acct", { SPACE }, { list() })
    T.eq(ok, true, "observe")
    local okc, okl, lerr = pcall(st.load_reminders, st)
    T.check(okc and okl == true, "load_reminders skips fields that are not ours: " .. tostring(lerr))
    T.eq(st:quiet({ name = "p", remind = 86400 }, SPACE, list()[1]), NOW - 60, "the good reminder is kept")
    st:close()
    local store = assert(backend.open(url, { readonly = true }))
    local oks, got = pcall(store.show, store, {}, 50)
    T.check(oks and type(got) == "table", "show does not raise: " .. tostring(got))
    if oks and got then
      T.eq(#got.transitions, 2, "the members that decode to an object are shown (the rest skipped)")
      T.eq(#got.outbox, 1, "the odd outbox entry is listed")
    end
    store:close()
  end },

  { "huge values: a 20 MB record and a 5 MB reminder field", function()
    local url = fresh()
    local a, rec = webhook("ok")
    rec.request.body = string.rep("B", 20 * 1024 * 1024)
    put(url, { outbox = { { a.id, "webhook", json(rec) } } })
    assert(rcall(url, "HSET", P .. "reminders", string.rep("[", 5 * 1024 * 1024), "1"))
    local st = open(url)
    assert(st:observe("acct", { SPACE }, { list() }))
    local okc, okl = pcall(st.load_reminders, st)
    T.check(okc and okl == true, "load_reminders: " .. tostring(okl))
    local okr, todo = pcall(st.resume, st, {})
    T.check(okr and type(todo) == "table", "resume: " .. tostring(todo))
    st:close()
  end },

  { "fencing: a commit after another watcher took the lease fails EFENCED and writes nothing", function()
    local url = fresh()
    local fence = "chatapp:fence:{acct}"
    assert(rcall(url, "SET", fence, "5"))
    local had = rawget(core, "lease_token")
    core.lease_token = function() return 5 end
    local st = open(url)
    core.lease_token = had
    T.eq(st.store.fence, 5, "the store got the runtime's token")
    assert(st:observe("acct", { SPACE }, { list() }))
    T.eq(st:commit(), true, "the lease holder commits")
    st:close()
    T.eq(assert(rcall(url, "HLEN", P .. "numbers:cs-1")), 2, "written")
    local store = assert(backend.open(url, { fence = 5 }))
    assert(rcall(url, "INCR", fence))
    local before = digest(url)
    local c = { spaces = { { space = "cs-1", seen = { { number = "n9", snapshot = snap("n9"), first_seen = NOW,
                                                        since = "{}" } } } },
                row = function(x) return x end, transitions = {}, reminders = {}, outbox = {} }
    local ok, err, code = store:commit("acct", NOW, c)
    T.eq(ok, nil, "commit refused")
    T.eq(code, "EFENCED", "EFENCED")
    T.check(tostring(err):find("no longer holds the lease of acct (token 5, now 6): another watcher took over; "
      .. "nothing was written", 1, true), tostring(err))
    for _, w in ipairs {
      { "settle", function() return store:settle("acct", NOW, { { id = "x", status = "done", tried = true } }) end },
      { "prune", function() return store:prune("acct", NOW, NOW) end },
      { "forget", function() return store:forget({ account = "acct" }, false) end },
    } do
      local okw, _, wcode = w[2]()
      T.eq(okw, nil, w[1] .. " refused")
      T.eq(wcode, "EFENCED", w[1] .. ": EFENCED")
    end
    T.eq(digest(url), before, "nothing changed")
    store:close()
    -- the fence gone (a flushed server): refused too
    store = assert(backend.open(url, { fence = 6 }))
    assert(rcall(url, "DEL", fence))
    local okd, _, dcode = store:commit("acct", NOW, c)
    T.eq(okd, nil, "no fence: refused")
    T.eq(dcode, "EFENCED", "EFENCED")
    store:close()
  end },

  { "a 10,000-number commit: one script, within the command timeout", function()
    local url = fresh()
    local st = open(url)
    local l = many(10000)
    assert(st:observe("acct", { SPACE }, { l }))
    local t0 = core.monotonic()
    local ok, err = st:commit()
    local first = core.monotonic() - t0
    T.eq(ok, true, "first commit: " .. tostring(err))
    st:close()
    T.eq(assert(rcall(url, "HLEN", P .. "numbers:cs-1")), 10000, "10,000 snapshots")
    T.eq(assert(rcall(url, "ZCARD", P .. "transitions")), 10000, "10,000 transitions")
    st = open(url)
    st.now = NOW + 60
    l = many(10000, "RED")
    assert(st:observe("acct", { SPACE }, { l }))
    t0 = core.monotonic()
    ok, err = st:commit()
    local changed = core.monotonic() - t0
    T.eq(ok, true, "every number changed: " .. tostring(err))
    st:close()
    io.stderr:write(("redis store: a commit of 10,000 new numbers took %.0f ms, of 10,000 changed %.0f ms\n")
      :format(first * 1e3, changed * 1e3))
    T.check(first < 2 and changed < 2, "within ca_redis's 2 s command timeout")
  end },

  { "the server lost at the commit: a clear error naming it, nothing half-written, the next run resumes", function()
    local s2 = R.start {}
    local url = s2.url
    local st = open(url)
    assert(st:observe("acct", { SPACE }, { list() }))
    s2:kill()
    local ok, err, code = st:commit()
    T.eq(ok, nil, "the commit fails")
    T.check(tostring(err):find(url, 1, true) and tostring(err):find("cannot record the run", 1, true),
      "names the server and what failed: " .. tostring(err))
    T.check(code == "ETRANSPORT" or code == "ETIMEDOUT", "a transport error: " .. tostring(code))
    st:close()
    s2:restart()
    st = open(url)
    T.eq(st:observe("acct", { SPACE }, { list() }), true, "back: observe")
    T.eq(st:commit(), true, "and commit")
    st:close()
    s2:stop()
  end },
}
if REDIS then T.cases(redis_cases) end

for _, p in ipairs(paths) do os.remove(p); os.remove(p .. "-journal") end
if srv then srv:stop(); R.cleanup() end
return T.done()
