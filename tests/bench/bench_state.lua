-- State store benchmark (issue 13): 1,000 numbers in 100 spaces of 10,
-- driven through chatapp.state as a run with --state drives it (open,
-- observe the fetched lists, commit, close), without the network: each
-- run decodes its answers afresh with core.decode_phone_numbers, as a
-- fetch does.
--   - the commit's time (wall clock: it includes SQLite's fsyncs), for a
--     first run (every number new), a steady run (nothing changed) and a
--     run where 10% of the numbers changed one tracked field;
--   - the whole state part of a run (open + observe + commit + close);
--   - the file's size per 1,000 numbers after 1 run and after 100 runs
--     with 10% changes each (the transitions history grows).
--   chatapp-run --lua tests/bench/bench_state.lua [DIR] [NUMBERS] [RUNS] [redis]
-- DIR: where the state files go (default /tmp); use a disk like the one
-- a real state file lives on.  With "redis": the same runs then go to the
-- Redis store (--state redis://..., a redis-server of its own on
-- 127.0.0.1, started by tests/lua/redis_server.lua), and the two stores'
-- figures are printed side by side, with the Redis round trips a run
-- makes and the server's memory per 1,000 numbers.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. arg[0]:match("^(.*)/") .. "/../lua/?.lua;"
  .. package.path
local fleet = require "fleet"
local chatapp = require "chatapp"
local core = chatapp.core
local state = require "chatapp.state"

local DIR = arg[1] or "/tmp"
local N = tonumber(arg[2] or "") or 1000
local RUNS = tonumber(arg[3] or "") or 100
local SPACES = 100
local PER = N // SPACES
local REPEAT = 9 -- timed runs per scenario: the median is printed
local ACCOUNT = "LTAIbenchStateKey0001"

local spaces = fleet.spaces(SPACES)
local ratings = fleet.RATINGS

-- The numbers' current quality ratings (index into ratings), by number index.
local rating = {}
for i = 1, N do rating[i] = i % #ratings + 1 end
local function rating_of(i) return ratings[rating[i]] end

-- The answer of space s as the API sends it (about 600 bytes a number).
local function answer(s) return fleet.answer(s, PER, rating_of) end

local function fetch()
  local lists = {}
  for s = 1, SPACES do lists[s] = assert(core.decode_phone_numbers(answer(s), spaces[s])) end
  return lists
end

-- Change one tracked field (QualityRating, to the next value) of 10% of
-- the numbers: a different tenth in each run.
local function change_tenth(run)
  local n = 0
  for i = 1, N do
    if (i + run) % 10 == 0 then
      rating[i] = rating[i] % #ratings + 1
      n = n + 1
    end
  end
  return n
end

local clock = 1800000000 -- the state's clock: 5 minutes between runs
-- One run's state part: seconds of each step (open, observe, commit,
-- close, all: open to close) and the transitions recorded.
local function run(path)
  local lists = fetch()
  clock = clock + 300
  local c0 = os.clock()
  local t0 = core.monotonic()
  local st = assert(state.open(path, { account = ACCOUNT }))
  local t1 = core.monotonic()
  st.now = clock
  assert(st:observe(ACCOUNT, spaces, lists))
  assert(st:load_reminders())
  st:stage({})
  local t2 = core.monotonic()
  local c2 = os.clock()
  assert(st:commit())
  local t3 = core.monotonic()
  local c3 = os.clock()
  local trips = st.store.conn and st.store.conn:round_trips()
  st:close()
  local t4 = core.monotonic()
  return { open = t1 - t0, observe = t2 - t1, commit = t3 - t2, close = t4 - t3, all = t4 - t0,
           commit_cpu = c3 - c2, cpu = os.clock() - c0, trips = trips },
    #st.transitions
end

local function remove(path)
  os.remove(path)
  os.remove(path .. "-journal")
end

local function size(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

-- The median of each step over a list of runs' times, in ms.
local function medians(list)
  local m = {}
  for _, step in ipairs { "open", "observe", "commit", "close", "all", "commit_cpu", "cpu" } do
    local v = {}
    for i, t in ipairs(list) do v[i] = t[step] end
    table.sort(v)
    m[step] = v[(#v + 1) // 2] * 1e3
  end
  return m
end

local function value(path, sql)
  local db = assert(core.sqlite_open(path, { readonly = true }))
  local r = assert(db:query(sql))
  db:close()
  local _, v = next(r[1])
  return v
end

local path = ("%s/bench-state-%d-%d.db"):format(DIR, os.time(), math.random(1e6))

-- First run: every number new (a fresh file each time).
local first, first_tr = {}, 0
for k = 1, REPEAT do
  remove(path)
  first[k], first_tr = run(path)
end
local size_1 = size(path)

-- Steady: nothing changed since the last run.
local steady = {}
for k = 1, REPEAT do
  local t, tr = run(path)
  assert(tr == 0, "a steady run records no transition")
  steady[k] = t
end

-- RUNS runs, each with another 10% of the numbers changed.
local tenth, tenth_tr, sizes = {}, 0, {}
for r = 1, RUNS do
  local changed = change_tenth(r)
  local t, tr = run(path)
  assert(tr == changed, ("run %d: %d transitions for %d changes"):format(r, tr, changed))
  tenth[r], tenth_tr = t, tr
  if r == 1 or r == 10 or r % 25 == 0 then
    sizes[#sizes + 1] = { r, size(path), value(path, "SELECT count(*) FROM transitions") }
  end
end
local last10 = table.move(tenth, math.max(1, RUNS - 9), RUNS, 1, {})
local size_n = size(path)
local transitions = value(path, "SELECT count(*) FROM transitions")
local page = value(path, "PRAGMA page_size")
local integrity = value(path, "PRAGMA integrity_check")
remove(path)

local p = io.popen("stat -f -c %T " .. ("%q"):format(DIR) .. " 2>/dev/null")
local fs = p and p:read("l") or "?"
if p then p:close() end
local per = 1000 / N
print(("chatapp-run state store benchmark, %s, SQLite %s"):format(os.date("!%Y-%m-%d %H:%M UTC"),
  core.sqlite_version()))
print(("%d numbers in %d spaces of %d; state file in %s (%s); wall-clock medians (ms)"):format(
  N, SPACES, PER, DIR, fs))
print("(CPU: this process's CPU time, the rest of the wall clock is I/O, fsync, or waiting for a core)")
print("run                                 commit (CPU)   open  observe  close  open to close (CPU)")
local function line(name, m)
  print(("%-34s %6.1f (%5.1f) %6.1f %8.1f %6.1f %8.1f (%5.1f)"):format(name, m.commit, m.commit_cpu, m.open,
    m.observe, m.close, m.all, m.cpu))
end
local mf, ms, mt = medians(first), medians(steady), medians(tenth)
line(("first run, all new (%d runs)"):format(REPEAT), mf)
line(("steady, nothing changed (%d runs)"):format(REPEAT), ms)
line(("10%% changed (%d runs)"):format(RUNS), mt)
line(("10%% changed, the last %d runs"):format(#last10), medians(last10))
print(("ratios to the first run's commit: steady %.2f, 10%% changed %.2f; open to close: steady %.2f, "
  .. "10%% changed %.2f"):format(ms.commit / mf.commit, mt.commit / mf.commit, ms.all / mf.all, mt.all / mf.all))
print(("transitions recorded: first run %d (one 'present' a number), 10%% run %d"):format(first_tr, tenth_tr))
print(("file size after 1 run: %.0f KiB per 1,000 numbers (%.2f KiB a number; page %d bytes)")
  :format(size_1 / 1024 * per, size_1 / 1024 / N, page))
print(("then %d steady runs, then runs with 10%% changes:"):format(REPEAT))
for _, s in ipairs(sizes) do
  print(("  after %3d runs with 10%% changes: %6.0f KiB per 1,000 numbers, %6d transitions"):format(
    s[1], s[2] / 1024 * per, s[3]))
end
print(("growth: %.0f bytes per transition recorded after the first run; after %d runs the file is %.2f "
  .. "times its size after 1; integrity_check %s")
  :format((size_n - size_1) / math.max(1, transitions - first_tr), RUNS, size_n / size_1, integrity))

if arg[4] ~= "redis" then return 0 end

---------------------------------------------------------------------------
-- The same runs on the Redis store, side by side.

local R = require "redis_server"
local srv = R.start {}
local url = srv.url .. "/0"
local conn = assert(core.redis_connect(url))
for i = 1, N do rating[i] = i % #ratings + 1 end
local rfirst, rsteady, rtenth = {}, {}, {}
local trips = {}
for k = 1, REPEAT do
  assert(conn:call("FLUSHDB"))
  rfirst[k] = run(url)
  trips.first = rfirst[k].trips
end
local function used() return tonumber(assert(conn:call("INFO", "memory")):match("used_memory:(%d+)")) end
assert(conn:call("FLUSHDB"))
local empty = used()
run(url)
local mem_1 = used() - empty
for k = 1, REPEAT do
  local t, tr = run(url)
  assert(tr == 0, "a steady run records no transition")
  rsteady[k] = t
  trips.steady = t.trips
end
for r = 1, RUNS do
  local changed = change_tenth(r)
  local t, tr = run(url)
  assert(tr == changed, ("redis run %d: %d transitions for %d changes"):format(r, tr, changed))
  rtenth[r] = t
  trips.tenth = t.trips
end
local mem_n = used() - empty
conn:close()
srv:stop()
R.cleanup()

local rf, rs, rt = medians(rfirst), medians(rsteady), medians(rtenth)
print()
print(("SQLite (state file in %s) against Redis %s (redis-server on 127.0.0.1, no persistence), same runs;")
  :format(DIR, (io.popen("redis-server --version"):read("l") or ""):match("v=(%S+)") or "?"))
print("wall-clock medians (ms); Redis round trips per run (open to close)")
print("run                          SQLite commit  Redis commit (CPU)   SQLite open-close  Redis open-close  trips")
local function side(name, a, b, t)
  print(("%-28s %13.1f %7.1f (%5.1f) %18.1f %17.1f %6s"):format(name, a.commit, b.commit, b.commit_cpu, a.all, b.all,
    tostring(t)))
end
side("first run, all new", mf, rf, trips.first)
side("steady, nothing changed", ms, rs, trips.steady)
side("10% changed", mt, rt, trips.tenth)
print(("Redis memory (used_memory): %.0f KiB per 1,000 numbers after 1 run, %.0f KiB after %d more runs "
  .. "(%d steady, %d with 10%% changes)"):format(mem_1 / 1024 * per, mem_n / 1024 * per, REPEAT + RUNS, REPEAT, RUNS))
