-- ctest: timeout=180
-- E4: torn last journal record / corrupt middle record.
-- Criterion (reliability.md, section 7): tail ignored / startup refused
-- with a clear message.
--
-- Mapped onto chatapp-run: the state is a SQLite file in rollback-journal
-- mode (never WAL: no -wal or -shm file is ever made), and the journal of
-- actions is its outbox table.  Two journals, two parts:
--
-- 1. The rollback journal (SQLite's job, shown here).  A child process
--    opens a state of 40 numbers and 40 outbox entries, starts a write
--    transaction with a page cache of 2 pages (so changed pages are
--    written into the file before the commit: SQLite syncs the journal
--    first), changes every row, and kills itself with SIGKILL: a hot
--    journal is left and the file holds uncommitted pages.  The journal is
--    parsed (segments: header, nRec counted records, each page number +
--    page + checksum); what a crash can tear is its tail past the last
--    counted record (records appended after the last sync: their pages are
--    not in the file yet).  Each variant is a copy, opened by a run
--    (exit 0) or by the store:
--      - as left; its tail cut at several points (mid record, mid page,
--        a whole record); a torn partial record appended to it;
--    each is rolled back: every row as before the transaction (the rows
--    compared one by one), quick_check ok, no journal left, the run's
--    report the same as on the untouched file.  ("Tail ignored".)
--    A counted record cannot be torn by a crash (it was synced before
--    any page it guards was written); damage there is media damage:
--    SQLite's checksum stops the playback, and what is left is checked by
--    the next open's quick_check (case E3).
-- 2. A corrupt middle record of the outbox: five pending entries (as a
--    killed run leaves them), the third (in the order they are resumed)
--    overwritten with the sqlite3 CLI with hostile values, one variant per
--    run: a record that is not JSON, another entry's record, an unknown
--    kind with a terminal escape in its target, a created time that is not
--    a number, a 1 MiB record of nested arrays.  Decided: skipped with a
--    report, not startup refused: one damaged entry must not stop every
--    other page, and refusing would leave it there for every later run.
--    Each run: exit 1 (an action failed); the other four are carried out
--    (each delivered once, with its key); the damaged one is never
--    executed, is reported failed with "cannot be resumed" and why,
--    its escape not printed raw, and is recorded failed (not pending: the
--    next run does not meet it again, and exits 0).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core
local store_mod = require "chatapp.state.sqlite"

local NUMBERS = 40

local emu = E.emulator { "--data",
  E.fixture { count = NUMBERS, prefix = "86134", name = "Torn", label = "torn test" } }
local policy = E.pager(emu.url .. "/_emulator/sink/e4")

local function run(state)
  return E.run { "--endpoint", emu.url, "--state", state, "--output", "json", policy }
end

local function deliveries()
  local list = {}
  for _, d in ipairs(emu:deliveries()) do
    if d.path == "sink/e4" then list[#list + 1] = d end
  end
  local _, status = emu:control("DELETE", "deliveries")
  assert(status == 200, "DELETE /_emulator/deliveries")
  return list
end

-- Every row of the four tables, as one digest (meta left out: an open
-- for writing rewrites its `program` row).
local content = E.rows_digest

---------------------------------------------------------------------------
-- 1. The rollback journal.

local base = E.tmpdir() .. "/state.db"
T.eq(run(base).code, 0, "the first run")
deliveries()
local D0, rows0 = content(base)
T.check(rows0 > 2 * NUMBERS, "the state holds numbers and outbox entries")

-- The child: a big write transaction, then SIGKILL to itself.
local child = E.write(E.tmpdir() .. "/child.lua", [[
local core = require("chatapp").core
local path = arg[1]
local db = assert(core.sqlite_open(path))
assert(db:exec("PRAGMA cache_size = 2"))
assert(db:exec("BEGIN IMMEDIATE"))
assert(db:exec("UPDATE numbers SET snapshot = snapshot || '" .. ("x"):rep(200) .. "'"))
assert(db:exec("UPDATE outbox SET status = 'pending', record = record || '" .. ("y"):rep(200) .. "'"))
assert(db:exec("INSERT INTO transitions (time, account, space, number, field, old, new) "
  .. "SELECT 1, account, space, number, 'status', 'a', 'b' FROM numbers"))
local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
os.execute("kill -9 " .. pid)
os.execute("sleep 5")
error("not killed")
]])

local torn = E.tmpdir() .. "/torn.db"
os.execute(("cp %s %s"):format(E.quote(base), E.quote(torn)))
local sha_before = core.sha256_hex(E.read(torn))
local ok, how, code = os.execute(("%s --lua %s %s 2>/dev/null"):format(E.quote(E.run_bin), E.quote(child),
  E.quote(torn)))
T.check(not ok and (how == "signal" and code == 9 or code == 137), "the child was killed: " .. tostring(how)
  .. " " .. tostring(code))
local journal = E.read(torn .. "-journal")
T.check(journal and #journal > 0, "a hot journal is left")
T.check(core.sha256_hex(E.read(torn)) ~= sha_before, "and the file holds uncommitted pages")

-- Parse the journal: { {off, nrec, first, stop} } per segment, the end of
-- the last counted record, the record size.
local MAGIC = "\217\213\5\249\32\161\99\215"
local function segments(j)
  local list = {}
  local off = 0
  local page, sector
  while off + 28 <= #j and j:sub(off + 1, off + 8) == MAGIC do
    local nrec, _, _, sec, psz = string.unpack(">I4I4I4I4I4", j, off + 9)
    page, sector = page or psz, sector or sec
    local first = off + sector
    local stop = first + nrec * (page + 8)
    list[#list + 1] = { off = off, nrec = nrec, first = first, stop = stop }
    off = ((stop + sector - 1) // sector) * sector
    if nrec == 0 then break end
  end
  return list, page, sector
end
local segs, page = segments(journal or "")
T.check(#segs >= 1 and page == E.db_rows(base, "PRAGMA page_size")[1].page_size, "the journal parses")
local last = segs[#segs]
local counted_end = 0
for _, s in ipairs(segs) do if s.nrec > 0 then counted_end = s.stop end end
local rec = page + 8
local tail = #journal - counted_end
io.stderr:write(("E4: journal %d bytes, %d segment(s), counted records end at %d, uncounted tail %d bytes "
  .. "(last segment: nRec %d)\n"):format(#journal, #segs, counted_end, tail, last.nrec))
T.check(counted_end > 0, "some records were counted (synced before pages were written into the file)")

-- The report of a run on the untouched file: what every rolled-back copy
-- must give.
local function report_of(r)
  local _, by = E.json_lines(r.out)
  local s = by.summary and by.summary[1] or {}
  return ("actions %s, status %s"):format(#(by.action or {}), tostring(s.status))
end
local reference
do
  local copy = E.tmpdir() .. "/ref.db"
  os.execute(("cp %s %s"):format(E.quote(base), E.quote(copy)))
  local r = run(copy)
  T.eq(r.code, 0, "a run on the untouched state")
  reference = report_of(r)
  deliveries()
end

local variants = { { "as left by the kill", journal } }
if tail > 0 then
  for _, cut in ipairs { 1, 100, page // 2, rec } do
    if cut <= tail then
      variants[#variants + 1] = { ("its tail cut by %d bytes (uncounted records)"):format(cut), journal:sub(1, #journal - cut) }
    end
  end
  variants[#variants + 1] = { "cut back to its last counted record", journal:sub(1, counted_end) }
end
variants[#variants + 1] = { "a torn record appended (page number, half a page, no checksum)",
  journal .. string.pack(">I4", 3) .. ("\0\1"):rep(page // 4) }
variants[#variants + 1] = { "garbage appended", journal .. ("\255"):rep(777) }

for n, v in ipairs(variants) do
  local dir = E.tmpdir()
  local path = dir .. "/state.db"
  os.execute(("cp %s %s"):format(E.quote(torn), E.quote(path)))
  E.write(path .. "-journal", v[2])
  local what = "journal " .. v[1]
  if n % 2 == 1 then
    -- a run opens it (and rolls it back)
    local r = run(path)
    T.eq(r.code, 0, what .. ": the next run: " .. r.err)
    T.eq(report_of(r), reference, what .. ": the run's report is the untouched state's")
    T.eq(#deliveries(), 0, what .. ": nothing sent (nothing was pending before the transaction)")
  else
    local st, err = store_mod.open(path, {})
    T.check(st, what .. ": the store opens it: " .. tostring(err))
    if st then st:close() end
  end
  T.eq(E.read(path .. "-journal"), nil, what .. ": no journal left")
  T.eq(E.db_rows(path, "PRAGMA quick_check")[1].quick_check, "ok", what .. ": quick_check")
  if n % 2 == 1 then
    -- the run added its own meta and last_seen; compare without it
    local a = E.db_rows(path, "SELECT count(*) AS n FROM outbox WHERE status = 'done'")[1].n
    T.eq(a, NUMBERS, what .. ": every outbox entry as before (done)")
    local t = E.db_rows(path, "SELECT count(*) AS n FROM transitions WHERE field = 'status'")[1].n
    T.eq(t, 0, what .. ": none of the transaction's transitions")
    local x = E.db_rows(path, "SELECT count(*) AS n FROM numbers WHERE snapshot LIKE '%xxxx'")[1].n
    T.eq(x, 0, what .. ": none of its snapshots")
  else
    T.eq((content(path)), D0, what .. ": every row as before the transaction")
  end
end

---------------------------------------------------------------------------
-- 2. A corrupt middle record of the outbox.

-- Five pending entries (the first five of the base state), in created
-- order; the others done.
local function pending_state()
  local path = E.tmpdir() .. "/state.db"
  os.execute(("cp %s %s"):format(E.quote(base), E.quote(path)))
  local db = assert(core.sqlite_open(path))
  local ids = assert(db:query("SELECT id FROM outbox ORDER BY id LIMIT 5"))
  for k, r in ipairs(ids) do
    assert(db:run("UPDATE outbox SET status = 'pending', created = ?2, updated = ?2 WHERE id = ?1", r.id,
      os.time() - 60 + k))
  end
  db:close()
  local list = {}
  for k, r in ipairs(ids) do list[k] = r.id end
  return path, list
end

local function sql_quote(s) return "'" .. s:gsub("'", "''") .. "'" end
local function sqlite3(path, sql)
  local f = E.write(E.tmpdir() .. "/x.sql", sql)
  local ok = os.execute(("sqlite3 %s < %s"):format(E.quote(path), E.quote(f)))
  T.check(ok, "sqlite3 ran: " .. sql:sub(1, 80))
end

local hostile = {
  { "a record that is not JSON", function(id) return "record = 'not json {'" end, "cannot be resumed" },
  { "another entry's record", function(_, other) return "record = (SELECT record FROM outbox WHERE id = "
      .. sql_quote(other) .. ")" end, "not of this entry" },
  { "an unknown kind with an escape, in its record and columns", function()
      return "kind = 'rm -rf', target = 'x' || char(27) || '[2J', "
        .. "record = replace(record, '\"kind\":\"webhook\"', '\"kind\":\"rm ' || char(27) || '[2J\"')" end,
    "cannot be resumed" },
  { "a created time that is not a number", function() return "created = 'yesterday'" end, "created time" },
  { "a 1 MiB record of nested arrays", function() return "record = '" .. ("["):rep(1024 * 1024) .. "'" end,
    "cannot be resumed" },
}
for _, h in ipairs(hostile) do
  local path, ids = pending_state()
  local bad = ids[3]
  sqlite3(path, ("UPDATE outbox SET %s WHERE id = %s;"):format(h[2](bad, ids[1]), sql_quote(bad)))
  local what = "outbox: " .. h[1]
  local r = run(path)
  T.eq(r.code, 1, what .. ": exit 1 (an action failed), not refused: " .. r.err)
  local got = deliveries()
  local keys = {}
  for _, d in ipairs(got) do keys[d.idempotency_key] = (keys[d.idempotency_key] or 0) + 1 end
  for k, id in ipairs(ids) do
    if k == 3 then
      T.eq(keys[id], nil, what .. ": the damaged entry is not executed")
    else
      T.eq(keys[id], 1, what .. ": entry " .. k .. " carried out once")
    end
  end
  T.eq(#got, 4, what .. ": four deliveries, nothing else")
  local _, by = E.json_lines(r.out)
  local failed
  for _, a in ipairs(by.action or {}) do
    if a.id == bad then failed = a end
  end
  T.check(failed and failed.status == "failed", what .. ": reported failed")
  T.check(failed and tostring(failed.error):find(h[3], 1, true), what .. ": says why (" .. h[3] .. "): "
    .. tostring(failed and failed.error))
  T.check(not r.out:find("\27", 1, true) and not r.err:find("\27", 1, true), what .. ": no raw escape printed")
  local row = E.db_rows(path, "SELECT status, error FROM outbox WHERE id = ?1", bad)[1]
  T.eq(row and row.status, "failed", what .. ": recorded failed, not left pending")
  T.eq(E.db_rows(path, "SELECT count(*) AS n FROM outbox WHERE status = 'pending'")[1].n, 0,
    what .. ": nothing pending")
  local again = run(path)
  T.eq(again.code, 0, what .. ": the next run does not meet it again: " .. again.err)
  T.eq(#deliveries(), 0, what .. ": and sends nothing")
  T.eq(E.db_rows(path, "PRAGMA quick_check")[1].quick_check, "ok", what .. ": quick_check")
end

emu:stop()
E.cleanup()
os.exit(T.done())
