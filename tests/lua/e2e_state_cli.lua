-- chatapp-run state show | forget, end to end: a state made by two runs on
-- --emulator, then looked at (text, JSON Lines, one number, one space),
-- forgotten (pending actions kept without --yes), opened read-only (the
-- file's checksum does not move), hostile values escaped, foreign,
-- newer, missing files and bad usage refused with exit 2, and the default
-- path ($XDG_STATE_HOME, else ~/.local/state) used without --state.
-- Against the SQLite store, or with the argument "redis" (ctest
-- e2e_state_cli_redis) against the Redis store (tests/lua/state_store.lua).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local S = require "state_store"

local chatapp = require "chatapp"
local core = chatapp.core
local POLICY = E.path("scripts/policies/quality-alert.lua")
local T0 = 1800000000 -- 2027-01-15T08:00:00Z
local RED = "8613800000003"  -- RED in the sample data
local FLAGGED = "8613800000004"

-- chatapp-run state ARGS (no --limiter in front: "state" must be first)
local function state(args, env)
  local list = { "state" }
  for _, a in ipairs(args) do list[#list + 1] = a end
  local vars = { CHATAPP_RUN_NOW = tostring(T0 + 7200) }
  for k, v in pairs(env or {}) do vars[k] = v end
  return E.run(list, vars, { no_limiter = true })
end

local function run(db, now)
  return E.run({ "--emulator", "--state", db, POLICY }, { CHATAPP_EMULATOR = E.emu_bin, CHATAPP_RUN_NOW = tostring(now) })
end

local sql = S.sql
local sha = S.digest
-- What the store is called in messages.
local NAME = S.redis and "Redis state" or "state file"

local function copy(from, to)
  assert(os.execute(("cp %s %s"):format(E.quote(from), E.quote(to))))
  return to
end

local function count(s, pat)
  local n = 0
  for _ in s:gmatch(pat) do n = n + 1 end
  return n
end

-- The reference state: run 1 at T0 sees 7 numbers, RED's snapshot is
-- then made GREEN (as if it had been GREEN), run 2 at T0 + 1 h sees it RED.
local base = S.fresh()
do
  local r = run(base, T0)
  assert(r.code == 0, "first run: " .. r.err)
  S.edit_snapshot(base, RED, function(t)
    return (t:gsub('"QualityRating":"RED"', '"QualityRating":"GREEN"'))
  end)
  r = run(base, T0 + 3600)
  assert(r.code == 0, "second run: " .. r.err)
end

-- A fresh copy of the reference state.
local function fresh()
  return S.copy(base)
end

-- Pending and done outbox entries for a number.
local function add_outbox(db, number, pending, done)
  for i = 1, pending + done do
    S.put_outbox(db, { account = E.KEY_ID, id = ("act-%s-%d"):format(number, i), policy = "quality-alert",
      kind = "webhook", space = "", number = number, target = "POST http://127.0.0.1:9/hook", record = "{}",
      status = i <= pending and "pending" or "done", created = T0 + 3600, attempts = i <= pending and 1 or 0,
      error = i <= pending and "connection refused" or nil })
  end
end

T.cases {
  { "show: every number, the last transitions, the outbox", function()
    local db = fresh()
    add_outbox(db, FLAGGED, 2, 1)
    local r = state { "show", "--state", db }
    T.eq(r.code, 0, r.err)
    for i = 1, 7 do
      T.check(r.out:find("861380000000" .. i, 1, true), "number " .. i .. " listed")
    end
    T.check(r.out:find("quality_rating%s+GREEN %-> RED"), "the transition: " .. r.out)
    T.check(r.out:find("2027-01-15T09:00:00Z (60 min ago)", 1, true), "UTC time and age: " .. r.out)
    T.check(r.out:find("outbox: 1 done, 2 pending", 1, true), "outbox counts: " .. r.out)
    T.check(r.out:find("pending actions", 1, true) and r.out:find("connection refused", 1, true),
      "pending entries listed: " .. r.out)
    T.eq(r.err, "", "nothing on stderr")
  end },

  { "show --output json: JSON Lines, the snapshot as an object", function()
    local r = state { "show", "--state", base, "--output", "json" }
    T.eq(r.code, 0, r.err)
    local all, by = E.json_lines(r.out)
    T.check(#all > 0, "records")
    T.eq(#(by.number or {}), 7, "7 number records")
    local red
    for _, n in ipairs(by.number or {}) do
      if n.number == RED then red = n end
    end
    T.check(red and type(red.snapshot) == "table", "the snapshot is an object")
    T.eq(red and red.snapshot.QualityRating, "RED", "the API's own field names")
    T.eq(red and red.since.quality_rating, T0 + 3600, "since")
    T.eq(red and red.first_seen, T0, "first seen")
    local found
    for _, t in ipairs(by.transition or {}) do
      if t.number == RED and t.field == "quality_rating" then found = t end
    end
    T.check(found and found.old == "GREEN" and found.new == "RED" and found.time == T0 + 3600, "transition record")
    T.eq(#(by.transition or {}), 8, "7 new + 1 change")
  end },

  { "show --number: snapshot, since, transitions, outbox", function()
    local db = fresh()
    add_outbox(db, FLAGGED, 1, 1)
    local r = state { "show", "--state", db, "--number", RED }
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("first seen  2027-01-15T08:00:00Z (2 h ago)", 1, true), r.out)
    T.check(r.out:find("quality_rating%s+RED%s+since 2027%-01%-15T09:00:00Z %(60 min ago%)"), r.out)
    T.check(r.out:find("GREEN -> RED", 1, true), r.out)
    T.check(r.out:find("presence%s+new"), r.out)
    T.check(not r.out:find(FLAGGED, 1, true), "no other number")
    r = state { "show", "--state", db, "--number", FLAGGED }
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("pending%s+quality%-alert%s+webhook%s+POST http://127.0.0.1:9/hook%s+60 min old%s+1 attempt"
      .. "%s+error: connection refused"), r.out)
    T.check(r.out:find("done", 1, true), r.out)
    r = state { "show", "--state", db, "--number", RED, "--output", "json" }
    T.eq(r.code, 0, r.err)
    for _, rec in ipairs((E.json_lines(r.out))) do T.eq(rec.number, RED, "only that number") end
    r = state { "show", "--state", db, "--number", RED, "--limit", "1", "--output", "json" }
    local _, by = E.json_lines(r.out)
    T.eq(#(by.transition or {}), 1, "--limit")
  end },

  { "show --number of a gone number: its history, no snapshot", function()
    local db = fresh()
    local GONE = "8613899999999"
    S.put_number(db, E.KEY_ID, "", GONE, ('{"PhoneNumber":"%s","Status":"CONNECTED","QualityRating":"GREEN"}')
      :format(GONE), T0, "{}")
    local r = run(db, T0 + 5400)
    T.eq(r.code, 0, r.err)
    r = state { "show", "--state", db, "--number", GONE }
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("no snapshot", 1, true), r.out)
    T.check(r.out:find("2027-01-15T09:30:00Z (30 min ago)  presence  gone", 1, true), r.out)
    r = state { "show", "--state", db }
    T.check(r.out:find(GONE .. "%s+own numbers%s+presence%s+gone"), "in the last transitions: " .. r.out)
    T.check(not r.out:find("\n  " .. GONE, 1, true), "not in the table of numbers")
  end },

  { "show --space and an unknown number", function()
    local r = state { "show", "--state", base, "--space", "" }
    T.eq(r.code, 0, r.err)
    T.eq(count(r.out, "own numbers"), 7 + 8, "own numbers: 7 rows and 8 transitions")
    r = state { "show", "--state", base, "--space", "no-such-space" }
    T.eq(r.code, 1, "nothing matched")
    T.check(r.err:find("nothing in " .. NAME, 1, true) and r.err:find("space no-such-space", 1, true), r.err)
    r = state { "show", "--state", base, "--number", "999" }
    T.eq(r.code, 1, "unknown number")
    T.check(r.err:find("for number 999", 1, true), r.err)
    T.eq(r.out, "", "nothing on stdout")
  end },

  { "forget --number: gone from show; nothing left: exit 1", function()
    local db = fresh()
    local r = state { "forget", "--state", db, "--number", RED }
    T.eq(r.code, 0, r.err)
    T.eq(r.out, ("forgot number %s: 1 snapshot, 2 transitions, 0 reminders, 0 outbox entries\n"):format(RED))
    r = state { "show", "--state", db, "--number", RED }
    T.eq(r.code, 1, "forgotten")
    r = state { "show", "--state", db }
    T.eq(r.code, 0, r.err)
    T.check(not r.out:find(RED, 1, true), "not in the summary")
    T.check(r.out:find(FLAGGED, 1, true), "the others are")
    r = state { "forget", "--state", db, "--number", RED }
    T.eq(r.code, 1, "nothing to forget")
    T.check(r.err:find("nothing to forget", 1, true), r.err)
  end },

  { "forget refuses to drop pending actions without --yes", function()
    local db = fresh()
    add_outbox(db, FLAGGED, 2, 1)
    local r = state { "forget", "--state", db, "--number", FLAGGED }
    T.eq(r.code, 2, "refused")
    T.check(r.err:find("2 pending actions would never be sent; add --yes", 1, true), r.err)
    r = state { "show", "--state", db, "--number", FLAGGED, "--output", "json" }
    local _, by = E.json_lines(r.out)
    T.eq(#(by.outbox or {}), 3, "nothing was removed")
    T.eq(#(by.number or {}), 1, "the snapshot is kept")
    r = state { "forget", "--state", db, "--number", FLAGGED, "--yes" }
    T.eq(r.code, 0, r.err)
    T.eq(r.out, ("forgot number %s: 1 snapshot, 1 transition, 0 reminders, 3 outbox entries\n"):format(FLAGGED))
  end },

  { "forget --space and --all", function()
    local db = fresh()
    local r = state { "forget", "--state", db, "--space", "elsewhere" }
    T.eq(r.code, 1, "no such space")
    r = state { "forget", "--state", db, "--space", "" }
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("forgot space '' (own numbers): 7 snapshots, 8 transitions", 1, true), r.out)
    db = fresh()
    r = state { "forget", "--state", db, "--all", "--account", "someone-else" }
    T.eq(r.code, 1, "another account: nothing")
    if S.redis then
      T.eq(S.call(db, "EXISTS", S.prefix("someone-else") .. "meta"), 0, "and no state made for it")
    end
    r = state { "forget", "--state", db, "--all" }
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("forgot everything: 7 snapshots", 1, true), r.out)
    r = state { "show", "--state", db, "--output", "json" }
    T.eq(r.code, 0, r.err)
    T.eq(r.out, "", "empty")
  end },

  { "show opens read-only: the file does not change, a 0444 file works", function()
    local db = fresh()
    add_outbox(db, FLAGGED, 1, 0)
    local before = sha(db)
    for _, args in ipairs { {}, { "--output", "json" }, { "--number", RED }, { "--space", "" } } do
      local list = { "show", "--state", db }
      for _, a in ipairs(args) do list[#list + 1] = a end
      local r = state(list)
      T.eq(r.code, 0, r.err)
    end
    T.eq(sha(db), before, "same checksum after show")
    if S.redis then return end -- the rest is a file's
    assert(os.execute("chmod 444 " .. E.quote(db)))
    local r = state { "show", "--state", db }
    T.eq(r.code, 0, r.err)
    T.check(r.out:find(RED, 1, true), r.out)
    T.eq(sha(db), before, "same checksum")
    local dir = db:match("^(.*)/")
    local names = io.popen("ls -a " .. E.quote(dir)):read("a")
    T.check(not names:find("journal", 1, true) and not names:find("-wal", 1, true), "no journal left: " .. names)
  end },

  { "hostile values in the file are escaped", function()
    local db = fresh()
    S.edit_snapshot(db, RED, function(text)
      local snap = assert(core.json_decode(text))
      snap.VerifiedName = "Evil\27[31m RED\nforged line\r\7"
      return assert(core.json_encode(snap))
    end)
    S.put_transition(db, { time = T0 + 3700, account = E.KEY_ID, space = "sp\27]0;title\7", number = RED,
                           field = "quality_rating", old = "GREEN", new = "\27[2J\nRED" })
    for _, args in ipairs { { "show", "--state", db }, { "show", "--state", db, "--number", RED } } do
      local r = state(args)
      T.eq(r.code, 0, r.err)
      T.check(not r.out:find("\27", 1, true), "no ESC reaches the terminal")
      T.check(not r.out:find("\7", 1, true) and not r.out:find("\r", 1, true), "no BEL, no CR")
      T.check(not r.out:find("\nforged line", 1, true) and not r.out:find("\nRED", 1, true), "no forged line")
      T.check(r.out:find("\\e[2J\\nRED", 1, true), "shown escaped: " .. r.out)
      if args[4] then
        T.check(r.out:find("Evil\\e[31m RED\\nforged line\\r\\a", 1, true), "shown escaped: " .. r.out)
      end
    end
    local r = state { "show", "--state", db, "--number", RED, "--output", "json" }
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(by.number and by.number[1].snapshot.VerifiedName, "Evil\27[31m RED\nforged line\r\7", "raw in JSON")
  end },

  { "Redis: another program's keys, newer, empty and unreachable: exit 2, left as they were", function()
    if not S.redis then return end
    local foreign = fresh()
    S.call(foreign, "DEL", S.prefix(E.KEY_ID) .. "reminders")
    S.call(foreign, "SADD", S.prefix(E.KEY_ID) .. "reminders", "theirs")
    local before = sha(foreign)
    for _, cmd in ipairs { "show", "forget" } do
      local r = state { cmd, "--state", foreign, "--number", RED }
      T.eq(r.code, 2, cmd .. " of another program's keys")
      T.check(r.err:find("holds a set, not a hash: this database is used by another program", 1, true), r.err)
    end
    T.eq(sha(foreign), before, "the foreign keys are untouched")
    local newer = fresh()
    S.make_newer(newer)
    before = sha(newer)
    local r = state { "show", "--state", newer }
    T.eq(r.code, 2, "newer schema")
    T.check(r.err:find("newer chatapp-run", 1, true), r.err)
    r = state { "forget", "--state", newer, "--all", "--yes" }
    T.eq(r.code, 2, "newer schema, forget")
    T.eq(sha(newer), before, "the newer state is untouched")
    local empty = S.fresh()
    for _, args in ipairs { { "show" }, { "forget", "--all" } } do
      r = state { args[1], "--state", empty, args[2] }
      T.eq(r.code, 2, args[1] .. " of an empty database")
      T.check(r.err:find("no chatapp-run state in " .. empty .. ": runs keep state with --state " .. empty, 1, true),
        r.err)
    end
    T.eq(S.call(empty, "DBSIZE"), 0, "forget wrote nothing")
    r = state { "show", "--state", "redis://127.0.0.1:1/0" }
    T.eq(r.code, 2, "unreachable")
    T.check(r.err:find("redis://127.0.0.1:1", 1, true) and r.err:find("cannot connect", 1, true), r.err)
    r = state { "show", "--state", "mongodb://127.0.0.1/x" }
    T.eq(r.code, 2, "an unknown store")
    T.check(r.err:find("unknown store mongodb:// (known: redis://", 1, true), r.err)
  end },

  { "foreign, newer, damaged and missing files: exit 2, left as they were", function()
    if S.redis then return end
    local dir = E.tmpdir()
    local foreign = dir .. "/other.db"
    local h = assert(core.sqlite_open(foreign))
    assert(h:exec("CREATE TABLE t (x); INSERT INTO t VALUES (1)"))
    h:close()
    local before = sha(foreign)
    for _, cmd in ipairs { "show", "forget" } do
      local r = state { cmd, "--state", foreign, "--number", RED }
      T.eq(r.code, 2, cmd .. " of a foreign file")
      T.check(r.err:find("another program", 1, true), r.err)
    end
    T.eq(sha(foreign), before, "the foreign file is untouched")

    local newer = fresh()
    sql(newer, "PRAGMA user_version = 99")
    before = sha(newer)
    local r = state { "show", "--state", newer }
    T.eq(r.code, 2, "newer schema")
    T.check(r.err:find("newer chatapp-run", 1, true), r.err)
    r = state { "forget", "--state", newer, "--all", "--yes" }
    T.eq(r.code, 2, "newer schema, forget")
    T.eq(sha(newer), before, "the newer file is untouched")

    local junk = E.write(dir .. "/junk.db", ("not a database\n"):rep(100))
    r = state { "show", "--state", junk }
    T.eq(r.code, 2, "not a database")
    T.check(r.err:find("junk.db", 1, true), r.err)

    local missing = dir .. "/none.db"
    for _, args in ipairs { { "show" }, { "forget", "--all" } } do
      r = state { args[1], "--state", missing, args[2] }
      T.eq(r.code, 2, args[1] .. " of a missing file")
      T.check(r.err:find("no state file at " .. missing .. ": runs keep state with --state " .. missing, 1, true),
        r.err)
    end
    T.check(not E.read(missing), "forget did not create the file")
  end },

  { "bad usage: exit 2 with what to do", function()
    local cases = {
      { { "show", "--numbr", "1" }, "unknown option '--numbr'; did you mean --number?" },
      { { "show", "--number" }, "--number needs a value" },
      { { "show", "--number", "--space", "x" }, "--number needs a value" },
      { { "show", "--limit", "0" }, "--limit must be a whole number" },
      { { "show", "--output", "xml" }, "--output must be text or json" },
      { { "show", "--yes" }, "--yes is an option of 'state forget'" },
      { { "show", "stray" }, "unexpected argument 'stray'" },
      { { "shwo" }, "did you mean 'state show'?" },
      { { "forget" }, "say what to forget" },
      { { "forget", "--all", "--number", "1" }, "--all forgets everything" },
      { { "forget", "--number", "1", "--yse" }, "did you mean --yes?" },
      { {}, "Usage: chatapp-run state show" },
    }
    for _, c in ipairs(cases) do
      local args = c[1]
      if args[1] ~= "shwo" and #args > 0 then table.insert(args, 2, "--state") table.insert(args, 3, base) end
      local r = state(args)
      T.eq(r.code, 2, table.concat(args, " "))
      T.check(r.err:find(c[2], 1, true), "message: " .. r.err)
    end
    local r = state { "--help" }
    T.eq(r.code, 0, "state --help")
    T.check(r.out:find("chatapp-run state forget", 1, true), r.out)
    r = E.run({ "--help" }, nil, { no_limiter = true })
    T.check(r.out:find("chatapp-run state show|forget", 1, true), "chatapp-run --help lists the subcommand")
  end },

  { "the default path: $XDG_STATE_HOME, else ~/.local/state", function()
    if S.redis then return end -- a file's
    local xdg = E.tmpdir()
    assert(os.execute("mkdir -p " .. E.quote(xdg .. "/chatapp-run")))
    copy(base, xdg .. "/chatapp-run/state.db")
    local r = state({ "show", "--number", RED }, { XDG_STATE_HOME = xdg })
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("GREEN -> RED", 1, true), r.out)
    local home = E.tmpdir()
    r = state({ "show" }, { HOME = home })
    T.eq(r.code, 2, "no file under HOME")
    T.check(r.err:find("no state file at " .. home .. "/.local/state/chatapp-run/state.db", 1, true), r.err)
    assert(os.execute("mkdir -p " .. E.quote(home .. "/.local/state/chatapp-run")))
    copy(base, home .. "/.local/state/chatapp-run/state.db")
    r = state({ "forget", "--number", RED }, { HOME = home })
    T.eq(r.code, 0, r.err)
    r = state({ "show", "--number", RED }, { HOME = home, XDG_STATE_HOME = "relative/ignored" })
    T.eq(r.code, 1, "forgotten in the HOME file")
  end },
}

S.cleanup()
E.cleanup()
return T.done()
