-- ctest: timeout=300
-- E1: kill -9 in a loop during state and journal writes.
-- Criterion (reliability.md, section 7): kill -9 loop (1000x) during state
-- and journal writes: always a valid generation; every journaled action is
-- later executed at least once; at most 1 duplicate per kill; no temp
-- files left.
--
-- Mapped onto chatapp-run: the state is one SQLite file (rollback
-- journal), the "journal" of actions is its outbox table.  One state file
-- is used by a chain of runs; run i plans new actions (the environment
-- variable E1_GEN = "g<i>" is in every action, so each run plans its own)
-- and first resumes what earlier, killed runs left pending.  Each run
-- does what a cron run does: open (a write transaction), fetch 40
-- numbers, commit snapshots and outbox (one transaction), then 32
-- webhooks to the emulator's sink (2 slices of 16, each settled in a
-- transaction) and 8 commands (plan:exec, each settled in its own
-- transaction), then prune.  Each run is killed with SIGKILL at a moment
-- drawn uniformly over about 1.1x the time an unkilled run takes (scaled
-- by what it has to resume, and by how often runs finish first), so kills land
-- all along it: before the commit, inside a write transaction (a hot
-- journal is left: counted), between them.  After every kill:
--   - a valid generation: a copy of the file and its journal opened (the
--     hot journal rolled back, as the next run does): quick_check ok, the
--     schema intact (application_id, user_version, the five tables); and
--     the next run opens it (exit 0 or 137, never 1 or 2);
-- after the loop, a final run (not killed) and:
--   - every action that reached the outbox is done and was executed at
--     least once (its key seen by the sink or the command's file), and
--     nothing was executed that never reached the outbox;
--   - at most 1 duplicate per kill: a key executed more than once only
--     after a kill of the run that executed it (attributed to that kill);
--     commands: at most 1 per kill, as written (they run one at a time and
--     each outcome is recorded at once); webhooks go 16 at a time, so a
--     kill can repeat up to the 16 in flight, each at most once: that is
--     checked (at most 1 more execution of an action per kill that hit it,
--     at most a slice per kill) and the per-kill figure printed, and is
--     why the case is marked "adapted" for concurrent actions;
--   - no temp files: after every kill the folder holds nothing but
--     state.db, its journal and its lock file; at the end, state.db and
--     its lock file
--     (state.db.lock-HASH, kept on purpose: docs/state.md "One writer")
--     and nothing else (no -journal, -wal, -shm, nothing temporary).
-- The count: E1_KILLS (default 1000) or as many as fit in E1_SECONDS
-- (default 120 s, for the CI budget of 30 minutes for everything); the
-- count reached is printed and at least 150 are required.  A longer run:
--   E1_KILLS=5000 E1_SECONDS=3600 ctest -R reliability/E1 --timeout 4000
-- E1_SEED=N replays a seed printed by a failed run.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core
local SLICE = require("chatapp.executor").SLICE

local KILLS = tonumber(os.getenv("E1_KILLS") or "") or 1000
local SECONDS = tonumber(os.getenv("E1_SECONDS") or "") or 120
local MIN_KILLS = 150
local NUMBERS, HOOKS = 40, 32 -- numbers 1..32 get a webhook, 33..40 a command
local seed = tonumber(os.getenv("E1_SEED") or "") or (os.time() % 1000003)
math.randomseed(seed)

local emu = E.emulator { "--data",
  E.fixture { count = NUMBERS, prefix = "86135", name = "Kill", label = "kill test" } }
local work = E.tmpdir()
local recv = work .. "/commands.txt" -- one line per command executed: "KEY GEN" (GEN: the run's)
E.write(recv, "")
local statedir = E.tmpdir()
local state = statedir .. "/state.db"

-- The key of an action: E1_GEN (shorter than 8 characters: kept in the
-- outbox as it is, not as a reference to the variable) and the number.
local policy = E.policy(([[
local chatapp = require "chatapp"
local gen = os.getenv("E1_GEN") or "g0"
return chatapp.policy {
  name = "e1",
  decide = function(n, plan)
    local i = tonumber(n.phone_number:sub(-3))
    local key = gen .. ":" .. n.phone_number
    if i <= %d then
      plan:webhook { url = "%s/_emulator/sink/e1", json = { key = key } }
    else
      plan:exec { argv = { "/bin/sh", "-c", 'echo "$1 $E1_GEN" >> "$2"', "e1", key, %q }, timeout_ms = 5000 }
    end
  end,
}]]):format(HOOKS, emu.url, recv))

local function shell_cmd(gen)
  return E.command({ "--endpoint", emu.url, "--state", state, "--allow-exec", "--output", "json", policy },
                   { E1_GEN = gen }, { home = work })
end

-- A run killed with SIGKILL delay_s after its start (the shell times it);
-- returns the exit status (137: killed; 0: it had finished) and its pid.
local function run_killed(gen, delay_s)
  local out = work .. "/run"
  local line = ("%s >%s.out 2>%s.err </dev/null & p=$!; echo $p >%s.pid; sleep %.4f; kill -9 $p 2>/dev/null; "
    .. "wait $p; echo $? >%s.rc"):format(shell_cmd(gen), out, out, out, delay_s, out)
  os.execute("timeout -s KILL 60 sh -c " .. E.quote(line) .. " 2>/dev/null")
  return tonumber(E.read(out .. ".rc") or ""), tonumber(E.read(out .. ".pid") or ""), E.read(out .. ".err") or ""
end

local function run_clean(gen)
  local out = work .. "/clean"
  local line = ("%s >%s.out 2>%s.err </dev/null & p=$!; echo $p >%s.pid; wait $p; echo $? >%s.rc")
    :format(shell_cmd(gen), out, out, out, out)
  os.execute("timeout -s KILL 60 sh -c " .. E.quote(line) .. " 2>/dev/null")
  return tonumber(E.read(out .. ".rc") or ""), tonumber(E.read(out .. ".pid") or ""), E.read(out .. ".err") or ""
end

-- What was executed since the last call: { {key, pid|nil} } (webhooks:
-- the sink's deliveries, then forgotten; commands: new lines of recv).
local recv_off = 0
local function executed()
  local list = {}
  local got = emu:deliveries()
  for _, d in ipairs(got) do
    if d.path == "sink/e1" then
      local key = tostring(d.body):match('"key":"([^"]+)"')
      list[#list + 1] = { key = key or "?", hook = true }
    end
  end
  if #got > 0 then
    local _, status = emu:control("DELETE", "deliveries")
    assert(status == 200, "DELETE /_emulator/deliveries")
  end
  local text = E.read(recv) or ""
  local new = text:sub(recv_off + 1)
  local last = new:match(".*\n()") -- only whole lines
  if last then
    for l in new:sub(1, last - 1):gmatch("[^\n]+") do
      local key, by = l:match("^(%S+) (%S+)$")
      list[#list + 1] = { key = key or l, by = by }
    end
    recv_off = recv_off + last - 1
  end
  return list
end

-- A valid generation: a copy of the file and its journal, opened as the
-- next run opens it (a hot journal is rolled back), is intact.
local TABLES = { "meta", "numbers", "outbox", "reminders", "transitions" }
local function valid(what)
  local dir = E.tmpdir()
  local copy = dir .. "/state.db"
  local hot = false
  local f = io.open(state .. "-journal", "rb")
  if f then
    local head = f:read(8)
    f:close()
    hot = head ~= nil and #head == 8
  end
  os.execute(("cp %s %s 2>/dev/null; cp %s %s 2>/dev/null"):format(E.quote(state), E.quote(copy),
    E.quote(state .. "-journal"), E.quote(copy .. "-journal")))
  if not E.read(copy) then return true, hot, 0 end -- killed before the file was made
  local db, err = core.sqlite_open(copy)
  if not T.check(db, what .. ": the state opens: " .. tostring(err)) then return false, hot, 0 end
  local ok = true
  local q = db:query("PRAGMA quick_check")
  ok = T.eq(q and q[1] and q[1].quick_check, "ok", what .. ": quick_check") and ok
  local tables = db:query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name") or {}
  local names = {}
  for i, r in ipairs(tables) do names[i] = r.name end
  local app = (db:query("PRAGMA application_id") or {})[1]
  if #names > 0 then -- an empty file: killed before its first commit
    ok = T.eq(table.concat(names, ","), table.concat(TABLES, ","), what .. ": the schema's tables") and ok
    ok = T.eq(app and app.application_id, 0x4341726e, what .. ": application_id") and ok
  end
  local pend = #names > 0 and (db:query("SELECT count(*) AS n FROM outbox WHERE status = 'pending'") or {})[1]
  db:close()
  os.execute("rm -rf " .. E.quote(dir))
  return ok, hot, pend and pend.n or 0
end

-- An unkilled run's time (the fastest of three: load from other tests
-- only makes runs longer): the window the kills are spread over.
local runs = {}
local run_s = math.huge
for k = 1, 3 do
  local t0 = core.monotonic()
  local rc0, _, err0 = run_clean("g0" .. k)
  run_s = math.min(run_s, core.monotonic() - t0)
  T.eq(rc0, 0, "a reference run: " .. err0)
  runs[k] = { gen = "g0" .. k, killed = false, exec = executed(), late = {} }
  T.eq(#runs[k].exec, NUMBERS, "a reference run executes 40 actions")
end
io.stderr:write(("E1: seed %d, an unkilled run takes %.3f s; up to %d kills in %d s\n")
  :format(seed, run_s, KILLS, SECONDS))

local LOCKFILE = "state.db.lock-" .. core.sha256_hex(E.KEY_ID):sub(1, 12)
local allowed = { ["state.db"] = true, ["state.db-journal"] = true, [LOCKFILE] = true }
local started = core.monotonic()
local pending = 0
local scale = 1.1
local figures = { kills = 0, finished = 0, hot = 0, bad_rc = 0, invalid = 0 }
local i = 0
while i < KILLS and core.monotonic() - started < SECONDS do
  i = i + 1
  local gen = "g" .. i
  -- A run first resumes what killed runs left pending: its window grows
  -- with that, so kills land all along it, new actions included.
  -- The window also follows the machine's load: narrower after a run
  -- that finished before its kill, wider after one that did not.
  local delay = math.random() * run_s * scale * math.max(1, (pending + NUMBERS) / NUMBERS)
  local rc, pid, err = run_killed(gen, delay)
  E.sleep_ms(10) -- what was in flight lands before it is counted
  local killed = rc == 137
  if killed then
    figures.kills = figures.kills + 1
    scale = math.min(3, scale * 1.03)
  elseif rc == 0 then
    figures.finished = figures.finished + 1
    scale = math.max(0.5, scale * 0.85)
  else
    figures.bad_rc = figures.bad_rc + 1
    T.check(false, ("run %d (kill at %.0f ms): exit 0 or 137, got %s: %s"):format(i, delay * 1000, tostring(rc), err))
  end
  -- Nothing but the file, its journal and its lock file, at any kill.
  local lp = io.popen("ls -A " .. E.quote(statedir))
  for name in lp:lines() do
    if not allowed[name] then
      T.check(false, ("run %d: a stray file beside the state: %s"):format(i, name))
    end
  end
  lp:close()
  local ok, hot
  ok, hot, pending = valid(("run %d (seed %d, kill at %.0f ms)"):format(i, seed, delay * 1000))
  if not ok then figures.invalid = figures.invalid + 1 end
  if hot and killed then figures.hot = figures.hot + 1 end
  runs[#runs + 1] = { gen = gen, killed = killed, pid = pid, exec = executed(), late = {} }
  if figures.invalid > 3 or figures.bad_rc > 3 then break end
end

-- The final run, not killed, until nothing is pending.
for _ = 1, 3 do
  local rc, pid, err = run_clean("gF" .. #runs)
  T.eq(rc, 0, "the final run: " .. err)
  runs[#runs + 1] = { gen = "gF" .. #runs, killed = false, pid = pid, exec = executed(), late = {} }
  local p = E.db_rows(state, "SELECT count(*) AS n FROM outbox WHERE status = 'pending'")[1].n
  if p == 0 then break end
end

-- The outbox: every entry done; its keys.
local outboxed, entries = {}, 0
for _, r in ipairs(E.db_rows(state, "SELECT status, record FROM outbox")) do
  entries = entries + 1
  local key = r.record:match("(g%w+:86135%d+)")
  T.check(key ~= nil, "an outbox record with a key")
  if key then
    T.check(outboxed[key] == nil, "one outbox entry per key: " .. key)
    outboxed[key] = true
  end
  T.eq(r.status, "done", "every outbox entry done: " .. tostring(key))
end

-- Executions per key, in run order; a duplicate is charged to the run
-- that executed the key before, which must be a killed run.
-- A command says which run executed it (a command started just before
-- its run was killed may write its line after the kill): moved there.
local run_of = {}
for ri, r in ipairs(runs) do run_of[r.gen] = run_of[r.gen] or ri end
for ri, r in ipairs(runs) do
  local keep = {}
  for _, x in ipairs(r.exec) do
    local owner = x.by and run_of[x.by]
    T.check(x.hook or owner, "a command line names a run: " .. tostring(x.by))
    if owner and owner ~= ri then
      table.insert(runs[owner].late, x)
    else
      keep[#keep + 1] = x
    end
  end
  r.exec = keep
end
for _, r in ipairs(runs) do
  for _, x in ipairs(r.late) do r.exec[#r.exec + 1] = x end
end
local count, last_run = {}, {}
local per_kill = {} -- run index -> { hook = n, cmd = n }
local dups = { hook = 0, cmd = 0 }
local max_per_kill = { hook = 0, cmd = 0 }
local lost, stray = 0, 0
for ri, r in ipairs(runs) do
  for _, x in ipairs(r.exec) do
    local key = x.key
    if not outboxed[key] then stray = stray + 1 end
    count[key] = (count[key] or 0) + 1
    if count[key] > 1 then
      local prev = last_run[key]
      local kind = x.hook and "hook" or "cmd"
      -- A webhook the killed run before sent just before its kill may be
      -- logged by the sink after that run's deliveries were read: twice in
      -- one run's window, the first is the killed run's.
      if prev == ri and x.hook and ri > 1 and runs[ri - 1].killed then prev = ri - 1 end
      dups[kind] = dups[kind] + 1
      T.check(runs[prev].killed, ("key %s executed again in %s, but run %s that executed it was not killed")
        :format(key, r.gen, runs[prev].gen))
      T.check(prev ~= ri, ("key %s executed twice by one run (%s)"):format(key, r.gen))
      per_kill[prev] = per_kill[prev] or { hook = 0, cmd = 0 }
      per_kill[prev][kind] = per_kill[prev][kind] + 1
      max_per_kill[kind] = math.max(max_per_kill[kind], per_kill[prev][kind])
    end
    last_run[key] = ri
  end
end
for key in pairs(outboxed) do
  if not count[key] then lost = lost + 1 end
end
T.eq(lost, 0, "every action in the outbox executed at least once")
T.eq(stray, 0, "nothing executed that never reached the outbox")
T.check(max_per_kill.cmd <= 1, ("commands: at most 1 duplicate per kill (got %d)"):format(max_per_kill.cmd))
T.check(max_per_kill.hook <= SLICE, ("webhooks: at most a slice (%d) repeated per kill (got %d)")
  :format(SLICE, max_per_kill.hook))
T.check(dups.cmd <= figures.kills, "commands: duplicates <= kills")

-- No temp files.
local listing = {}
local p = io.popen("ls -A " .. E.quote(statedir))
for l in p:lines() do listing[#listing + 1] = l end
p:close()
table.sort(listing)
T.eq(table.concat(listing, " "), "state.db " .. LOCKFILE,
  "the folder holds the state file and its lock file, nothing else")
T.eq(E.db_rows(state, "PRAGMA quick_check")[1].quick_check, "ok", "the final state: quick_check")

io.stderr:write(("E1: %d runs in %.1f s: %d killed (%d inside a write transaction: a hot journal left), %d finished "
  .. "before the kill; %d outbox entries, all done, none lost; duplicates: commands %d (max %d per kill), webhooks "
  .. "%d (max %d per kill; bound: a slice of %d); seed %d\n")
  :format(i, core.monotonic() - started, figures.kills, figures.hot, figures.finished, entries, dups.cmd,
    max_per_kill.cmd, dups.hook, max_per_kill.hook, SLICE, seed))
T.check(i >= math.min(KILLS, MIN_KILLS), ("at least %d kills in the time (got %d)"):format(MIN_KILLS, i))
T.check(figures.hot >= 1, "some kills landed inside a write transaction")
T.check(figures.kills >= i // 2, "most runs were killed (the kills are spread over a run's time)")

emu:stop()
E.cleanup()
os.exit(T.done())
