-- ctest: timeout=300
-- E2. Injected ENOSPC/EIO on write, fsync, rename, dir-fsync at every call
-- site.  Criterion: previous state intact; failure reported; fsync never
-- retried and then treated as success.
--
-- How: tests/shim/faultfs.c (LD_PRELOAD) fails the Nth write, pwrite,
-- fsync, fdatasync, rename, open(O_CREAT) or ftruncate on the files of one
-- folder, and logs every such call.  A clean run lists the calls
-- chatapp-run makes writing every file it writes: the SQLite state and its
-- rollback journal (and the folder SQLite syncs), --record and --metrics
-- (temporary file, fsync, rename, folder fsync), the --limiter state file;
-- a watcher (--every) adds its lock file.  Then each call is failed in
-- turn, in a run from the same previous state (ENOSPC on writes, opens,
-- renames and truncations, EIO on syncs; the first call of each kind also
-- with the other errno), and:
--   * the fault was reached (the shim logs FAIL);
--   * reported: exit status not 0 and stderr names the file (the state
--     file for its journal too; the replaced file for a folder sync);
--   * previous state intact: the state file, opened as the next run opens
--     it (a hot journal rolled back), passes PRAGMA integrity_check and
--     holds exactly a generation a clean run commits (the previous state,
--     or the state after one of the run's transactions: the shim ends
--     a clean run just before each transaction to take them); a --record /
--     --metrics file whose write failed before its rename still holds the
--     old content, and no temporary file is left;
--   * fsync never retried and then treated as success: after a failed
--     fsync/fdatasync of the state or journal, the transaction it belongs
--     to is not in the state (the generation is one before it), and the
--     file is not synced again within that transaction unless written
--     again first (SQLite's rollback writes the old pages back from the
--     journal and syncs them: that is no retry);
--   * the next clean run (no fault) exits 0 and reaches the same final
--     state as a run that never failed (outbox attempt counts aside: a
--     run sends its webhooks again);
--   * the state's lock file (a run's and a watcher's): a failed create
--     is exit 2 naming it; a failed truncate or write of its holder line
--     is a warning naming it, and the run or watcher goes on (the lock
--     is a flock and holds; the line is for people).
-- The number of call sites covered is printed.  Not covered (said here
-- and in docs/reliability.md): SQLite syncs the folder after creating its
-- journal and ignores a failure there (os_unix.c unixSync): those calls
-- are failed too and must leave the state intact, but no report is
-- expected.  stdout (the report) is written through stdio, below what
-- LD_PRELOAD sees: it is sent to /dev/full instead (ENOSPC on every write).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local SHIM = os.getenv("CHATAPP_FAULTFS") or (E.run_bin:match("^(.*)/[^/]*$") or ".") ..
  "/tests/shim/libchatapp_faultfs.so"
assert(io.open(SHIM, "rb"), "the faultfs shim is built beside chatapp-run: " .. SHIM):close()
-- In a sanitizer build the shim is preloaded ahead of the ASan runtime,
-- which then must not insist on coming first.
local ASAN = ((os.getenv("ASAN_OPTIONS") or "") .. ":verify_asan_link_order=0"):gsub("^:", "")

-- A high quota: the emulator must not throttle this test's many short runs.
local emu = E.emulator { "--quota", "100000" }
local base = E.tmpdir()
local SPACES = E.write(base .. "/spaces.json",
  '[{"cust_space_id": "C20230115000001", "isv_code": "isv-acme-7f3k9q2m", "label": "Acme Retail"}]')
local function hook_policy(name)
  return E.write(base .. "/" .. name .. ".lua", ([[
return require("chatapp").policy { name = %q, where = { status = "CONNECTED" },
  decide = function(n, plan)
    plan:webhook { url = %q, json = { n = n.phone_number } }
  end }]]):format(name, emu.url .. "/_emulator/sink/e2"))
end
local POLICY_A, POLICY_B = hook_policy("e2a"), hook_policy("e2b")

local function sh(cmd) assert(os.execute(cmd), cmd) end

-- A run in folder w (the files) with the shim's log in log.
local function run(w, log, policy, fault, watch)
  local env = { LD_PRELOAD = SHIM, FAULTFS_PATH = w, FAULTFS_LOG = log, ASAN_OPTIONS = ASAN }
  for k, v in pairs(fault or {}) do env[k] = v end
  local args = { "--limiter", w .. "/limiter", "--endpoint", emu.url, "--spaces", SPACES, "--state", w .. "/state.db",
                 "--record", w .. "/rec.json", "--metrics", w .. "/met.prom", "--output", "json", policy }
  if not watch then return E.run(args, env, { no_limiter = true }) end
  table.insert(args, 1, "--every")
  table.insert(args, 2, "1s")
  local p = E.start(args, env)
  -- one cycle (or its failure), then SIGTERM; a watcher that cannot start
  -- exits by itself
  E.wait_for(function() return p.err():find("cycle 1", 1, true) or E.read(p.dir .. "/rc") end, 15000)
  p.kill("TERM")
  local code = p.wait(20000)
  return { code = code, out = p.out(), err = p.err() }
end

-- The calls of a shim log: {op=, n=, path=, fail=}.
local function calls(log)
  local list = {}
  for line in (E.read(log) or ""):gmatch("[^\n]+") do
    local fail, op, n, path = line:match("^(F?A?I?L? ?)(%a+) (%d+) (.*)$")
    list[#list + 1] = { op = op, n = tonumber(n), path = path, fail = fail ~= "" }
  end
  return list
end

-- The state file as the next run sees it: opened read-write (a hot
-- journal is rolled back), checked, and reduced to what a generation is
-- (times left out, except whether a number was seen again; no_attempts:
-- nor the outbox's attempt counts and the commit counter).
local s0_seen
local function digest(path, no_attempts)
  local db, err = core.sqlite_open(path, { create = false })
  if not db then return nil, "cannot open: " .. tostring(err) end
  local check = db:query("PRAGMA integrity_check")
  local parts = {}
  local ok = check and check[1] and check[1].integrity_check == "ok"
  for _, r in ipairs(db:query("SELECT number, snapshot, last_seen FROM numbers ORDER BY number") or {}) do
    parts[#parts + 1] = ("n %s %s %s"):format(r.number, r.snapshot,
      s0_seen and (s0_seen[r.number] == r.last_seen and "old" or "new") or "-")
  end
  for _, r in ipairs(db:query("SELECT policy, id, kind, status, attempts FROM outbox ORDER BY policy, id") or {}) do
    parts[#parts + 1] = ("o %s %s %s %s %s"):format(r.policy, r.id, r.kind, r.status,
      no_attempts and "-" or r.attempts)
  end
  for _, t in ipairs { "transitions", "reminders", "meta" } do
    local c = db:query("SELECT count(*) AS c FROM " .. t)
    parts[#parts + 1] = ("%s %s"):format(t, c and c[1] and c[1].c)
  end
  db:close()
  if not ok then return nil, "integrity_check: " .. tostring(check and check[1] and check[1].integrity_check) end
  if not no_attempts then
    -- the file change counter (header bytes 24-27): one more each commit,
    -- so each generation differs even where a transaction changes no row
    local head = E.read(path) or ""
    parts[#parts + 1] = "counter " .. (#head >= 28 and string.unpack(">I4", head, 25) or "?")
  end
  return table.concat(parts, "\n")
end

local function last_seen(path)
  local seen = {}
  for _, r in ipairs(E.db_rows(path, "SELECT number, last_seen FROM numbers")) do seen[r.number] = r.last_seen end
  return seen
end

-- The previous state: a clean run of policy A.
local s0 = base .. "/s0"
sh("mkdir -p " .. E.quote(s0))
local r0 = run(s0, base .. "/s0.log", POLICY_A)
assert(r0.code == 0, "the first run: " .. r0.err)
s0_seen = last_seen(s0 .. "/state.db")
-- the next runs see the numbers in a later second
E.wait_for(function() return os.time() > math.max(table.unpack((function()
  local v = {} for _, x in pairs(s0_seen) do v[#v + 1] = x end return v end)())) end, 3000)

local n_w = 0
local function fresh()
  n_w = n_w + 1
  local w = ("%s/w%d"):format(base, n_w)
  sh(("mkdir -p %s && cp %s %s"):format(E.quote(w), E.quote(s0 .. "/state.db"), E.quote(w .. "/state.db")))
  E.write(w .. "/rec.json", "OLD-REC\n")
  E.write(w .. "/met.prom", "OLD-MET\n")
  return w, w .. ".log"
end

local function leftovers(w)
  local p = io.popen("ls -a " .. E.quote(w))
  local names = {}
  for name in p:lines() do
    if name:find("%.tmp%.") or name:find("%-journal$") then names[#names + 1] = name end
  end
  p:close()
  return names
end

-- The transactions of a clean run: the journal opens.  gens[t] is the
-- state after t transactions (gens[0]: the previous state), taken by
-- ending a run just before its (t+1)th journal opens.
local function generations(watch)
  local w, log = fresh()
  local r = run(w, log, POLICY_B, nil, watch)
  T.eq(r.code, 0, "a clean run: " .. r.err)
  local list = calls(log)
  local opens = 0
  for _, c in ipairs(list) do
    if c.op == "open" and c.path:find("state.db-journal", 1, true) then opens = opens + 1 end
  end
  local gens = { [0] = assert(digest(s0 .. "/state.db")) }
  gens[opens] = assert(digest(w .. "/state.db"))
  local final = assert(digest(w .. "/state.db", true))
  for t = 1, opens - 1 do
    local wt, logt = fresh()
    -- the nth open with O_CREAT on the folder: count only journal opens
    local n = 0
    for _, c in ipairs(list) do
      if c.op == "open" and c.path:find("state.db-journal", 1, true) then
        n = n + 1
        if n == t + 1 then n = c.n break end
      end
    end
    local rt = run(wt, logt, POLICY_B, { FAULTFS_STOP = "open " .. n }, watch)
    T.check(rt.code == 99 or (watch and rt.code ~= 0), "stopped before transaction " .. (t + 1))
    gens[t] = assert(digest(wt .. "/state.db"))
  end
  return list, gens, opens, final
end

local ERRNO_TEXT = { ENOSPC = "No space left on device", EIO = "Input/output error" }
local covered, ignored, sites = 0, 0, {}

-- Fail call c of a clean run (its op and number), check everything.
local function inject(c, errno, gens, ntx, final, watch)
  local w, log = fresh()
  local r = run(w, log, POLICY_B, { FAULTFS_OP = c.op, FAULTFS_NTH = tostring(c.n), FAULTFS_ERRNO = errno }, watch)
  local what = ("%s #%d %s (%s)%s"):format(c.op, c.n, c.path:gsub("^.*/w%d+", "W"), errno, watch and " watcher" or "")
  local list = calls(log)
  local failed_at
  for i, x in ipairs(list) do if x.fail then failed_at = i end end
  if not T.check(failed_at, what .. ": the fault was reached") then return end
  local fc = list[failed_at]
  local file = fc.path:match("^(.-)%.tmp%.") or fc.path:match("^(.-) %-> ") or fc.path
  local is_dir = file == w
  local kind = file:find("state.db", 1, true) and "state" or is_dir and "dir"
    or file:find("/limiter", 1, true) and "limiter" or "file"
  -- which transaction the call is in (journal opens before it)
  local tx = 0
  for i = 1, failed_at do
    local x = list[i]
    if x.op == "open" and x.path:find("state.db-journal", 1, true) then tx = tx + 1 end
  end
  local sqlite_dirsync = is_dir and c.op == "fdatasync"
  sites[("%s %s"):format(c.op, sqlite_dirsync and "W (SQLite)" or (file:gsub("^.*/w%d+", "W")))] = true
  -- reported
  if sqlite_dirsync then
    ignored = ignored + 1
  else
    T.check(r.code ~= 0, what .. ": the exit status reports it: " .. tostring(r.code))
    local named = kind == "state" and w .. "/state.db" or file
    if is_dir then
      -- the folder sync after a rename: the file replaced is named
      local prev
      for i = failed_at, 1, -1 do if list[i].op == "rename" then prev = list[i].path:match(" %-> (.*)$") break end end
      named = prev
    end
    T.check(named and r.err:find(named, 1, true), what .. ": the message names " .. tostring(named) .. ": " .. r.err)
    T.check(r.err:find(ERRNO_TEXT[errno], 1, true) or r.err:find("disk I/O error", 1, true)
      or r.err:find("database or disk is full", 1, true) or r.err:find("cannot create its journal", 1, true),
      what .. ": the message says why: " .. r.err)
  end
  -- previous state intact: a generation, integrity ok
  local d, why = digest(w .. "/state.db")
  T.check(d, what .. ": the state opens and checks: " .. tostring(why))
  local gen
  for t = 0, ntx do if d == gens[t] then gen = t end end
  T.check(gen, what .. ": the state is a committed generation\n" .. tostring(d))
  if kind == "state" and (c.op == "fsync" or c.op == "fdatasync") and gen then
    -- never treated as success: the transaction is not in the state
    T.check(gen < tx, ("%s: the failed sync's transaction %d is not committed (generation %d)"):format(what, tx, gen))
    -- and the same file is not synced again with nothing written in
    -- between (a retry); SQLite's rollback writes the old pages back from
    -- the journal and syncs those, which is no retry
    local written = false
    for i = failed_at + 1, #list do
      local x = list[i]
      if x.op == "open" and x.path:find("state.db-journal", 1, true) then break end
      if x.path == fc.path and (x.op == "pwrite" or x.op == "write") then written = true end
      T.check(written or not ((x.op == "fsync" or x.op == "fdatasync") and x.path == fc.path),
        what .. ": synced again after the failure with nothing written: " .. x.op .. " " .. x.n)
    end
  end
  -- the other files: old content unless the rename happened
  local renamed = false
  for i = 1, failed_at - (c.op == "rename" and 1 or 0) do
    if list[i].op == "rename" and list[i].path:find(file, 1, true) then renamed = true end
  end
  if kind == "file" and not renamed then
    local old = file:find("rec.json", 1, true) and "OLD-REC\n" or "OLD-MET\n"
    T.eq(E.read(file), old, what .. ": the old file is intact")
  end
  -- the next clean run
  local r2 = run(w, log .. "2", POLICY_B, nil, watch)
  T.eq(r2.code, 0, what .. ": the next clean run: " .. r2.err)
  -- (a run sends its webhooks again, done or not: attempts differ)
  T.eq(digest(w .. "/state.db", true), final, what .. ": the next run reaches the final state")
  local left = leftovers(w)
  T.eq(#left, 0, what .. ": left behind: " .. table.concat(left, ", "))
  covered = covered + 1
end

local function all_sites(watch)
  local list, gens, ntx, final = generations(watch)
  T.check(ntx >= 2, "the run commits transactions: " .. ntx)
  local first = {}
  for _, c in ipairs(list) do
    -- (the lock file's calls: the case "its lock file" below)
    if c.path:find(".lock-", 1, true) then goto next end
    local sync = c.op == "fsync" or c.op == "fdatasync"
    inject(c, sync and "EIO" or "ENOSPC", gens, ntx, final, watch)
    local key = c.op .. " " .. c.path:gsub("%.tmp%..*$", ""):gsub("^.*/w%d+", "W")
    if not first[key] then
      first[key] = true
      inject(c, sync and "ENOSPC" or "EIO", gens, ntx, final, watch)
    end
    ::next::
  end
  return #list
end

T.cases {
  { "a run: every write, sync, rename and create of every file it writes", function()
    local n = all_sites(false)
    T.check(n >= 50, "the run makes file calls: " .. n)
  end },

  { "a first run: the state file made", function()
    -- No previous state: the file is created (open O_CREAT, the schema's
    -- transaction).  Each kind of call (op and file) is failed once, and
    -- every sync: reported, the file then absent or a valid state, and
    -- the next clean run completes.
    local w0 = base .. "/first0"
    sh("mkdir -p " .. E.quote(w0))
    local r0 = run(w0, w0 .. ".log", POLICY_B)
    T.eq(r0.code, 0, "a first run: " .. r0.err)
    local done = {}
    for _, c in ipairs(calls(w0 .. ".log")) do
      local key = c.op .. " " .. c.path:gsub("%.tmp%..*$", ""):gsub("^.*/first0", "W")
      local sync = c.op == "fsync" or c.op == "fdatasync"
      if (sync or not done[key]) and not c.path:find(".lock-", 1, true)
        and (c.path:find("state.db", 1, true) or (c.path == w0 and c.op == "fdatasync")) then
        done[key] = true
        n_w = n_w + 1
        local w = ("%s/first%d"):format(base, n_w)
        sh("mkdir -p " .. E.quote(w))
        local errno = sync and "EIO" or "ENOSPC"
        local r = run(w, w .. ".log", POLICY_B, { FAULTFS_OP = c.op, FAULTFS_NTH = tostring(c.n), FAULTFS_ERRNO = errno })
        local what = ("first run: %s #%d %s (%s)"):format(c.op, c.n, key, errno)
        T.check((E.read(w .. ".log") or ""):find("FAIL " .. c.op .. " " .. c.n .. " ", 1, true),
          what .. ": the fault was reached")
        local dirsync = c.path == w0 and c.op == "fdatasync"
        if not dirsync then
          T.check(r.code ~= 0, what .. ": the exit status reports it")
          T.check(r.err:find(w .. "/state.db", 1, true), what .. ": the message names the state file: " .. r.err)
        end
        if E.read(w .. "/state.db") then
          T.check(digest(w .. "/state.db"), what .. ": what is left is a valid state")
        end
        local r2 = run(w, w .. ".log2", POLICY_B)
        T.eq(r2.code, 0, what .. ": the next clean run: " .. r2.err)
        sites[(dirsync and (c.op .. " W (SQLite)") or key) .. " (new)"] = true
        covered = covered + 1
        if dirsync then ignored = ignored + 1 end
      end
    end
  end },

  { "the report on stdout, on a full disk (/dev/full)", function()
    -- stdio's writes are below the shim; /dev/full fails them with ENOSPC
    if not os.execute("test -c /dev/full") then
      print("# skipped: no /dev/full on this machine")
      return
    end
    local w = fresh()
    local r = E.run({ "--limiter", "process", "--endpoint", emu.url, "--spaces", SPACES, "--state", w .. "/state.db",
                      "--output", "json", POLICY_B }, {}, { no_limiter = true, wrap = "sh -c 'exec \"$0\" \"$@\" >/dev/full'" })
    T.eq(r.code, 1, "a report that could not be written fails the run: " .. r.err)
    T.check(r.err:find("cannot write the report to standard output", 1, true), "and says so: " .. r.err)
    T.check(digest(w .. "/state.db"), "the state is valid")
    sites["write stdout (a file on a full disk)"] = true
    covered = covered + 1
  end },

  { "a run and a watcher: the lock file of the state", function()
    -- The lock's calls come before anything is written; each is failed
    -- in turn, for a one-shot run and for a watcher.
    for _, watch in ipairs { false, true } do
      local w, log = fresh()
      local r = run(w, log, POLICY_B, watch and { FAULTFS_STOP = "open 3" } or nil, watch)
      local lock = {}
      for _, c in ipairs(calls(log)) do
        if c.path:find(".lock-", 1, true) then lock[#lock + 1] = c end
      end
      T.check(#lock >= 2, "the lock file is written: " .. #lock .. " calls; " .. r.err)
      for _, c in ipairs(lock) do
        for _, errno in ipairs { "ENOSPC", "EIO" } do
          local wf, logf = fresh()
          local rf = run(wf, logf, POLICY_B, { FAULTFS_OP = c.op, FAULTFS_NTH = tostring(c.n), FAULTFS_ERRNO = errno },
            watch)
          local what = ("%s %s #%d the lock (%s)"):format(watch and "watcher" or "run", c.op, c.n, errno)
          T.check((E.read(logf) or ""):find("FAIL " .. c.op .. " " .. c.n, 1, true), what .. ": the fault was reached")
          local path = c.path:gsub("^.*/w%d+", wf)
          T.check(rf.err:find(path, 1, true) and rf.err:find(ERRNO_TEXT[errno], 1, true),
            what .. ": the message names the lock and why: " .. rf.err)
          if c.op == "open" then
            T.eq(rf.code, 2, what .. ": it cannot start")
          else
            -- the holder line is information for people; the lock holds
            T.check(rf.err:find("the lock holds anyway", 1, true), what .. ": " .. rf.err)
            if not watch then T.eq(rf.code, 0, what .. ": the run goes on") end
          end
          T.check(digest(wf .. "/state.db"), what .. ": the state opens and checks")
          local r2 = run(wf, logf .. "2", POLICY_B)
          T.eq(r2.code, 0, what .. ": the next clean run: " .. r2.err)
          sites[c.op .. " W/state.db.lock-*"] = true
          covered = covered + 1
        end
      end
    end
  end },
}

local names = {}
for k in pairs(sites) do names[#names + 1] = k end
table.sort(names)
print(("# E2: %d faults injected and checked, %d call sites (op and file): %s; %d of the faults at SQLite's "
  .. "folder sync (ignored by SQLite, state intact)"):format(covered, #names, table.concat(names, "; "), ignored))
emu:stop()
E.cleanup()
return T.done()
