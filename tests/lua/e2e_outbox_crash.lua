-- The outbox under kill -9 (issue 13): a policy pages, once, for each of
-- 200 numbers new to the state (200 webhooks to the emulator's sink, each
-- with its Idempotency-Key).  In each of 10 trials a fresh state file is
-- used, chatapp-run is killed with SIGKILL at a random moment, then run
-- again (not killed) until it exits 0.  From the sink's deliveries:
--   - every one of the 200 keys delivered at least once: no action lost;
--   - a key always carries the same body, and no key outside the 200;
--   - duplicates only of actions pending in the outbox at the kill (sent
--     but not yet recorded done), at most one executor slice per kill;
--   - a kill before the outbox was committed leaves nothing sent: the
--     next run plans the same actions again (same ids), no duplicate;
--   - after the last run: no pending outbox row, integrity_check ok.
-- Kills land on both sides of the commit: odd trials while the fetch is
-- held by the emulator (surely before it), even trials anywhere after
-- the fetch's answer.  Then 4 trials are killed twice in a row: after the
-- commit, and again while the next run resumes the outbox.  Which side a kill landed on is read from a copy of
-- the state file (and its journal) taken right after the kill.
--   chatapp-run --lua e2e_outbox_crash.lua RUN EMULATOR [TRIALS]
-- CHATAPP_CRASH_SEED=N replays a seed printed by a failed run.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local chatapp = require "chatapp"
local core = chatapp.core
local executor = require "chatapp.executor"

local NUMBERS = 200
-- 10 trials: the kill loop itself (hundreds of kills, every action
-- executed at least once, duplicates per kill, a valid file after each)
-- is reliability/E1; these trials keep what E1 does not look at: a kill
-- before the commit sends nothing and the rerun plans the same ids, one
-- body per key, kills in a row.
local TRIALS = tonumber(arg[3] or "") or 10
local QUERY_MS = 300  -- the fetch's latency: the window before the commit
local SINK_DELAY_MS = 40 -- each webhook's answer: slices take this long
local MAX_RERUNS = 3
local DOUBLE = 4 -- more trials, killed twice in a row
local SLICE = executor.SLICE

local seed = tonumber(os.getenv("CHATAPP_CRASH_SEED") or "") or (os.time() % 1000003)
math.randomseed(seed)

-- 200 numbers in the caller's own space, all CONNECTED RED.
local emu = E.emulator { "--data",
  E.fixture { count = NUMBERS, prefix = "86139", name = "Crash", label = "crash test" },
  "--fault", ("kind=latency,op=QueryChatappPhoneNumbers,ms=%d"):format(QUERY_MS) }

local policy = E.pager(("%s/_emulator/sink/pager?delay_ms=%d"):format(emu.url, SINK_DELAY_MS),
                      { attempts = 3, quality = true })

local function run_args(state)
  return { "--endpoint", emu.url, "--state", state, "--output", "json", policy }
end

-- chatapp-run, killed with SIGKILL after delay_s (the shell times it from
-- the start).  Returns the exit status: 137 when the kill hit it, 0 when
-- it had finished before.
local function run_killed(state, delay_s)
  local dir = E.tmpdir()
  local line = ("%s >%s 2>%s </dev/null & p=$!; sleep %.3f; kill -9 $p 2>/dev/null; wait $p; echo $? >%s")
    :format(E.command(run_args(state), nil, { home = dir }), E.quote(dir .. "/stdout"), E.quote(dir .. "/stderr"), delay_s,
            E.quote(dir .. "/rc"))
  -- (the shell's own "Killed" notice is not wanted on stderr)
  os.execute("timeout -s KILL 120 sh -c " .. E.quote(line) .. " 2>/dev/null")
  return tonumber(E.read(dir .. "/rc") or ""), E.read(dir .. "/stderr") or ""
end

-- Rows of a query on the state file (nil when it does not exist yet).
local function query(path, sql)
  local db, err, code = core.sqlite_open(path, { create = false })
  if not db then
    if code == "ENOENT" then return nil end
    error(("cannot open %s: %s"):format(path, err))
  end
  local rows, qerr = db:query(sql)
  db:close()
  if not rows then
    if tostring(qerr):find("no such table", 1, true) then return nil end
    error(("%s: %s"):format(path, qerr))
  end
  return rows
end

-- The outbox as the killed run left it: a copy of the file and its
-- journal (opening the copy rolls back an unfinished transaction, as the
-- next run would).  Returns { id -> status } or nil when there is no
-- outbox yet (the kill came before the commit).
local function outbox_at_kill(state)
  local dir = E.tmpdir()
  local copy = dir .. "/state.db"
  os.execute(("cp %s %s 2>/dev/null; cp %s %s 2>/dev/null"):format(E.quote(state), E.quote(copy),
    E.quote(state .. "-journal"), E.quote(copy .. "-journal")))
  local rows = query(copy, "SELECT id, status FROM outbox")
  if not rows or #rows == 0 then return nil end
  local by = {}
  for _, r in ipairs(rows) do by[r.id] = r.status end
  return by
end

local function deliveries()
  local list = emu:deliveries()
  local keyed = {}
  for _, d in ipairs(list) do
    if d.path == "sink/pager" then keyed[#keyed + 1] = d end
  end
  return keyed
end

local function clear_deliveries()
  local _, status = emu:control("DELETE", "deliveries")
  assert(status == 200, "DELETE /_emulator/deliveries")
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function runs_out(out)
  local from_outbox, actions = 0, 0
  for line in out:gmatch("[^\n]+") do
    local t = chatapp.json.decode(line)
    if t and t.type == "action" then
      actions = actions + 1
      if t.outbox then from_outbox = from_outbox + 1 end
    end
  end
  return actions, from_outbox
end

-- The final state: no pending row, NUMBERS done, the file intact.
local function check_final(state, what)
  local ok = query(state, "PRAGMA integrity_check")
  T.eq(ok and ok[1] and ok[1].integrity_check, "ok", what .. ": integrity_check")
  local rows = query(state, "SELECT status, count(*) AS n FROM outbox GROUP BY status") or {}
  local by = {}
  for _, r in ipairs(rows) do by[r.status] = r.n end
  T.eq(by.pending, nil, what .. ": no pending outbox row")
  T.eq(by.done, NUMBERS, what .. ": every action done in the outbox")
end

-- The reference: one run, not killed.  Its keys and bodies are the ones
-- every trial must deliver (ids are deterministic).
local expected = {} -- key -> body
local run_s
do
  clear_deliveries()
  local state = E.tmpdir() .. "/state.db"
  local t0 = core.monotonic()
  local r = E.run(run_args(state))
  run_s = core.monotonic() - t0
  T.eq(r.code, 0, "the reference run: " .. r.err)
  for _, d in ipairs(deliveries()) do
    T.check(expected[d.idempotency_key] == nil, "the reference run sends each key once")
    expected[d.idempotency_key] = d.body
  end
  T.eq(count(expected), NUMBERS, "the reference run delivers 200 distinct keys")
  check_final(state, "the reference run")
  local again = E.run(run_args(state))
  T.eq(again.code, 0, again.err)
  T.eq((runs_out(again.out)), 0, "a second run with the same state plans nothing")
end

io.stderr:write(("crash test: seed %d, reference run %.2f s, slice %d, %d trials\n")
  :format(seed, run_s, SLICE, TRIALS))

-- The sink's deliveries of a trial with `kills` kills: every expected
-- key, each with its body; a key sent more than once only if it was
-- pending in the outbox at the (first) kill, at most once more per kill;
-- at most a slice of duplicates per kill.  Returns the duplicates.
local all_keys = {} -- key -> body over every trial
local function check_deliveries(what, pending_at_kill, kills)
  local per_key = {}
  local list = deliveries()
  for _, d in ipairs(list) do
    local key = d.idempotency_key
    T.check(expected[key] ~= nil, what .. ": a delivery with an unknown key " .. tostring(key))
    T.check(expected[key] == nil or expected[key] == d.body, what .. ": key " .. tostring(key) .. " with another body")
    T.check(all_keys[key] == nil or all_keys[key] == d.body, what .. ": key " .. tostring(key) .. " changed body")
    all_keys[key] = d.body
    per_key[key] = (per_key[key] or 0) + 1
  end
  local lost = 0
  for key in pairs(expected) do
    if not per_key[key] then lost = lost + 1 end
  end
  T.eq(lost, 0, what .. ": no key lost")
  local dups = #list - count(per_key)
  for key, n in pairs(per_key) do
    if n > 1 then
      T.check(pending_at_kill[key], what .. ": key " .. key .. " sent again but it was done at the kill")
      T.check(n <= 1 + kills, what .. ": key " .. key .. " sent " .. n .. " times")
    end
  end
  T.check(dups <= SLICE * kills, ("%s: %d duplicates, more than a slice (%d) per kill"):format(what, dups, SLICE))
  return dups
end

local figures = { kills = 0, before = 0, after = 0, finished = 0, dups = {}, reruns = {}, done_at_kill = {} }
for trial = 1, TRIALS do
  clear_deliveries()
  local state = E.tmpdir() .. "/state.db"
  local q = QUERY_MS / 1000
  local delay
  if trial % 2 == 1 then
    delay = math.random() * q * 0.9 -- the fetch is still held: before the commit
  else
    delay = q + math.random() * math.max(0.05, run_s * 0.95 - q)
  end
  local rc, err = run_killed(state, delay)
  local what = ("trial %d (seed %d, kill at %.0f ms)"):format(trial, seed, delay * 1000)
  T.check(rc == 137 or rc == 0, what .. ": killed (137) or finished (0), got " .. tostring(rc) .. " " .. err)
  local at_kill = outbox_at_kill(state)
  local pending_at_kill, done_at_kill = {}, 0
  if rc == 137 then
    figures.kills = figures.kills + 1
    if at_kill then
      figures.after = figures.after + 1
      for id, s in pairs(at_kill) do
        if s == "pending" then pending_at_kill[id] = true else done_at_kill = done_at_kill + 1 end
      end
      figures.done_at_kill[#figures.done_at_kill + 1] = done_at_kill
    else
      figures.before = figures.before + 1
    end
  else
    figures.finished = figures.finished + 1
  end
  if trial % 2 == 1 and rc == 137 then
    T.check(at_kill == nil, what .. ": a kill while the fetch is held leaves no outbox")
  end
  local sent_by_killed = #deliveries()

  -- Rerun until it exits 0.
  local reruns, last = 0, nil
  repeat
    reruns = reruns + 1
    last = E.run(run_args(state), nil, { wrap = "timeout -s KILL 120" })
  until last.code == 0 or reruns >= MAX_RERUNS
  T.eq(last.code, 0, what .. ": the rerun exits 0: " .. last.err)
  if rc == 137 then figures.reruns[#figures.reruns + 1] = reruns end
  if reruns == 1 and rc == 137 then
    local actions, from_outbox = runs_out(last.out)
    if at_kill then
      T.eq(from_outbox, count(pending_at_kill), what .. ": the rerun resumes what was pending")
      T.eq(actions, from_outbox, what .. ": and plans nothing new (the numbers are known now)")
    else
      T.eq(actions, NUMBERS, what .. ": killed before the commit, the rerun plans every action again")
      T.eq(from_outbox, 0, what .. ": none of them from the outbox")
    end
  end

  -- What the sink got.
  local dups = check_deliveries(what, pending_at_kill, 1)
  if rc == 137 and not at_kill then
    T.eq(sent_by_killed, 0, what .. ": nothing sent before the commit")
    T.eq(dups, 0, what .. ": no duplicate after a kill before the commit")
  end
  if rc == 137 then figures.dups[#figures.dups + 1] = dups end
  check_final(state, what)
end

-- Kills in a row: the run is killed after its commit, then the run that
-- resumes the outbox is killed too, then rerun until it exits 0.
local double = { trials = 0, dups = {} }
for trial = 1, DOUBLE do
  clear_deliveries()
  local state = E.tmpdir() .. "/state.db"
  local q = QUERY_MS / 1000
  local pending_at_kill, rc, at_kill = {}, nil, nil
  local delay = q + 0.05 + math.random() * math.max(0.05, run_s * 0.6 - q)
  for _ = 1, 3 do -- until a kill lands after the commit, with work left
    rc = run_killed(state, delay)
    at_kill = outbox_at_kill(state)
    if rc == 137 and at_kill then break end
    clear_deliveries()
    os.remove(state)
    os.remove(state .. "-journal")
    delay = delay + 0.1
  end
  local what = ("double kill %d (seed %d, kills at %.0f ms"):format(trial, seed, delay * 1000)
  if rc == 137 and at_kill then
    double.trials = double.trials + 1
    for id, st in pairs(at_kill) do
      if st == "pending" then pending_at_kill[id] = true end
    end
    -- The resuming run: the fetch (held QUERY_MS), then the pending actions.
    local delay2 = math.random() * (q + count(pending_at_kill) / SLICE * SINK_DELAY_MS / 1000)
    what = what .. (" and %.0f ms)"):format(delay2 * 1000)
    local rc2 = run_killed(state, delay2)
    T.check(rc2 == 137 or rc2 == 0, what .. ": the second run killed or finished, got " .. tostring(rc2))
    local reruns, last = 0, nil
    repeat
      reruns = reruns + 1
      last = E.run(run_args(state), nil, { wrap = "timeout -s KILL 120" })
    until last.code == 0 or reruns >= MAX_RERUNS
    T.eq(last.code, 0, what .. ": the rerun exits 0: " .. last.err)
    double.dups[#double.dups + 1] = check_deliveries(what, pending_at_kill, 2)
    check_final(state, what)
  end
end

local function stats(list)
  local max, sum = 0, 0
  for _, v in ipairs(list) do
    max = math.max(max, v)
    sum = sum + v
  end
  return max, #list > 0 and sum / #list or 0
end
local dmax, dmean = stats(figures.dups)
local rmax, rmean = stats(figures.reruns)
local amax, amean = stats(figures.done_at_kill)
io.stderr:write(("crash test: %d trials, %d kills (%d before the outbox commit, %d after; %d runs had "
  .. "finished first); actions done at a kill after the commit: mean %.1f, max %d of %d; duplicates per "
  .. "kill: max %d, mean %.2f (bound: a slice of %d); reruns to exit 0: max %d, mean %.2f; %d keys, "
  .. "each with one body\n")
  :format(TRIALS, figures.kills, figures.before, figures.after, figures.finished, amean, amax, NUMBERS,
          dmax, dmean, SLICE, rmax, rmean, count(all_keys)))
local ddmax, ddmean = stats(double.dups)
io.stderr:write(("crash test: %d trials killed twice (after the commit, then while resuming): "
  .. "duplicates max %d, mean %.2f (bound: two slices, %d)\n"):format(double.trials, ddmax, ddmean, 2 * SLICE))
T.check(double.trials >= 1, "some trial was killed twice")
T.check(figures.before >= 1, "some kill landed before the outbox commit")
T.check(figures.after >= 1, "some kill landed after the outbox commit")
T.eq(count(all_keys), NUMBERS, "the same 200 keys in every trial")

emu:stop()
E.cleanup()
os.exit(T.done())
