-- The state store's engine (runtime/lua/lca_sqlite.c, core.sqlite_open):
-- values round trip exactly, parameters are checked, statements are
-- cached and never left mid-step, the path is checked before SQLite sees
-- it (FIFO, directory, device refused without blocking), a new file is
-- 0600 whatever the umask, and each failure comes back as nil, message,
-- code with the path and the SQL's first word, never a bound value.
--
--   chatapp-run --lua test_sqlite.lua CHATAPP-RUN
--   (child modes, used by the test itself: --create PATH, --open PATH)
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core

-- Child modes: open (creating) a path and report, for the umask and
-- relative-path cases, which need another process.
if arg[1] == "--create" or arg[1] == "--open" then
  local db, err, code = core.sqlite_open(arg[2])
  if not db then
    io.stderr:write(err, " ", code, "\n")
    return 1
  end
  assert(db:exec("CREATE TABLE IF NOT EXISTS t(x)"))
  assert(db:run("INSERT INTO t VALUES (1)"))
  db:close()
  return 0
end

local function absolute(path)
  if path:sub(1, 1) == "/" then return path end
  return (os.getenv("PWD") or ".") .. "/" .. path
end
local RUN = absolute(assert(arg[1], "usage: test_sqlite.lua CHATAPP-RUN"))
local SELF = absolute(arg[0])

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true
end

local function sh_out(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return (s:gsub("%s+$", ""))
end

-- A private folder for this run's files, removed at the end.
local DIR = os.tmpname()
os.remove(DIR)
assert(sh("mkdir -m 700 " .. DIR), "mkdir " .. DIR)
local n_files = 0
local function tmp(name)
  n_files = n_files + 1
  return ("%s/%d-%s"):format(DIR, n_files, name or "state.db")
end

local function mode_of(path)
  return sh_out("stat -c %a " .. path)
end

local function kind_of(path)
  return sh_out("stat -c %F " .. path)
end

local is_root = sh_out("id -u") == "0"
local slow = os.getenv("ASAN_OPTIONS") ~= nil or (os.getenv("LD_PRELOAD") or ""):find("valgrind") ~= nil

local function open(path, opts)
  local db, err, code = core.sqlite_open(path, opts)
  if not db then error(("open %s: %s (%s)"):format(path, tostring(err), tostring(code)), 2) end
  return db
end

local function fails(what, code, ok, err, got_code)
  T.eq(ok, nil, what .. ": fails")
  T.eq(got_code, code, what .. ": code")
  T.check(type(err) == "string" and #err > 0, what .. ": a message")
  return err or ""
end

local function has(s, plain, what)
  return T.check(type(s) == "string" and s:find(plain, 1, true) ~= nil,
    ("%s: %q in %q"):format(what, plain, tostring(s)))
end

-- A directory the user may not write (run by a user permissions apply
-- to: not root).
local function readonly_dir_case()
  local ro = tmp("ro")
  assert(sh("mkdir " .. ro))
  local inside = ro .. "/state.db"
  local db = open(inside)
  assert(db:exec("CREATE TABLE r(x)"))
  db:close()
  local locked = tmp("locked.db") -- a file of mode 0444 in a writable folder
  open(locked):close()
  assert(sh("chmod 555 " .. ro .. " && chmod 444 " .. locked))
  local ok, err, code = core.sqlite_open(ro .. "/new.db")
  fails("creating in a read-only directory", "EREADONLY", ok, err, code)
  has(err, "the directory " .. ro .. " is not writable?", "the message")
  T.check(io.open(ro .. "/new.db") == nil, "nothing created")
  db = core.sqlite_open(inside)
  T.check(db ~= nil, "an existing file in a read-only directory opens")
  if db then
    -- Writing needs a journal beside the file: refused.
    ok, err, code = db:run("INSERT INTO r VALUES (1)")
    fails("a write in a read-only directory", "EREADONLY", ok, err, code)
    has(err, "state file " .. inside .. ": INSERT: attempt to write a readonly database", "the message")
    T.eq(#db:query("SELECT * FROM r"), 0, "reads work")
    db:close()
  end
  db = core.sqlite_open(locked)
  T.check(db ~= nil, "a read-only file opens")
  if db then
    ok, err, code = db:exec("CREATE TABLE x(y)")
    fails("a write to a read-only file", "EREADONLY", ok, err, code)
    has(err, "CREATE: attempt to write a readonly database", "the message")
    db:close()
  end
  sh("chmod 755 " .. ro)
end

if arg[1] == "--rodir" then
  io.stdout:write("RODIR START\n")
  io.stdout:flush()
  T.cases { { "a read-only directory", readonly_dir_case } }
  sh("chmod -R u+w " .. DIR .. " 2>/dev/null")
  sh("rm -rf " .. DIR)
  return T.done()
end

T.cases {
  { "the version is the library's", function()
    T.check(core.sqlite_version():match("^3%.%d+%.%d+$") ~= nil, core.sqlite_version())
  end },

  { "create, exec, run, query round trip", function()
    local path = tmp()
    local db = open(path)
    T.eq(db:path(), path, "db:path()")
    T.check(tostring(db):find(path, 1, true), "tostring names the path")
    T.eq(db:exec([[
      CREATE TABLE t(k TEXT PRIMARY KEY, v TEXT, n INTEGER, f REAL) STRICT;
      CREATE INDEX t_n ON t(n); -- a comment
    ]]), true, "exec of two statements")
    T.eq(db:autocommit(), true, "no transaction yet")
    T.eq(db:exec("BEGIN"), true)
    T.eq(db:autocommit(), false, "in a transaction")
    local changes, rowid = db:run("INSERT INTO t(k, v, n, f) VALUES (?1, ?2, ?3, ?4)", "a", "x", 1, 0.5)
    T.eq(changes, 1, "one change")
    T.eq(rowid, 1, "rowid")
    changes, rowid = db:run("INSERT INTO t(k, v, n, f) VALUES (?, ?, ?, ?)", "b", "y", 2, 1.5)
    T.eq(rowid, 2, "second rowid")
    T.eq(db:exec("COMMIT"), true)
    T.eq(db:run("UPDATE t SET n = n + 10"), 2, "changes of an UPDATE")
    local rows = db:query("SELECT k, v, n, f FROM t ORDER BY k")
    T.eq(#rows, 2, "two rows")
    T.eq(rows[1].k, "a")
    T.eq(rows[1].v, "x")
    T.eq(rows[1].n, 11)
    T.eq(rows[1].f, 0.5)
    T.eq(rows[2].k, "b")
    T.eq(rows[2].n, 12)
    local none = db:query("SELECT * FROM t WHERE k = ?1", "zzz")
    T.eq(type(none), "table", "no rows: a table")
    T.eq(#none, 0, "no rows: empty")
    T.eq(db:close(), true)
    -- Read back in another connection, and with the sqlite3 shell.
    db = open(path, { readonly = true })
    T.eq(db:query("SELECT count(*) AS c FROM t")[1].c, 2, "readonly sees the rows")
    db:close()
    T.eq(sh_out("sqlite3 " .. path .. " 'SELECT group_concat(k) FROM t'"), "a,b", "the sqlite3 shell reads it")
  end },

  { "integers are exact, floats stay floats", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE n(i INTEGER, f REAL, any)"))
    local values = { 2 ^ 53 + 1, math.mininteger, math.maxinteger, 0, -1 }
    for _, v in ipairs(values) do
      if math.type(v) == "float" then v = math.tointeger(v) or v end
      assert(db:run("INSERT INTO n(i, any) VALUES (?1, ?1)", v))
    end
    assert(db:run("INSERT INTO n(i, any) VALUES (?1, ?1)", (1 << 53) + 1))
    local rows = db:query("SELECT i, any FROM n")
    T.eq(rows[1].i, 2 ^ 53, "2^53+1 computed as a float is 2^53 (Lua)")
    T.eq(rows[2].i, math.mininteger, "-2^63")
    T.eq(math.type(rows[2].i), "integer", "an integer")
    T.eq(rows[3].i, math.maxinteger, "2^63-1")
    T.eq(rows[6].i, (1 << 53) + 1, "2^53+1 exact")
    T.eq(rows[6].any, 9007199254740993, "2^53+1 exact in an untyped column")
    T.eq(math.type(rows[6].any), "integer", "still an integer")
    assert(db:run("INSERT INTO n(f, any) VALUES (?1, ?2)", 0.1, 3.0))
    rows = db:query("SELECT f, any FROM n WHERE f IS NOT NULL")
    T.eq(rows[1].f, 0.1, "0.1 exact")
    T.eq(math.type(rows[1].any), "float", "3.0 stays a float")
    assert(db:run("INSERT INTO n(i, any) VALUES (?1, ?2)", true, false))
    rows = db:query("SELECT i, any FROM n WHERE rowid = last_insert_rowid()")
    T.eq(rows[1].i, 1, "true is 1")
    T.eq(rows[1].any, 0, "false is 0")
  end },

  { "strings keep their NUL bytes; blobs come back as strings", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE s(k, v)"))
    local s = "a\0b\0\0c" .. ("\255"):rep(3) .. "\0"
    assert(db:run("INSERT INTO s VALUES (1, ?1)", s))
    local rows = db:query("SELECT v, length(CAST(v AS BLOB)) AS n FROM s")
    T.eq(rows[1].v, s, "the same bytes back")
    T.eq(rows[1].n, #s, "stored with its length")
    T.eq(db:query("SELECT k FROM s WHERE v = ?1", s)[1].k, 1, "found by a NUL-holding key")
    rows = db:query("SELECT X'00FF0041' AS b, X'' AS e, '' AS t")
    T.eq(rows[1].b, "\0\255\0A", "a blob is a string")
    T.eq(rows[1].e, "", "an empty blob is an empty string")
    T.eq(rows[1].t, "", "an empty text")
  end },

  { "NULL is absent; nil binds NULL", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE z(a, b, c)"))
    assert(db:run("INSERT INTO z VALUES (?1, ?2, ?3)", 1, nil, "c"))
    assert(db:run("INSERT INTO z VALUES (?1, ?2, ?3)", 2)) -- fewer: NULL
    local rows = db:query("SELECT a, b, c FROM z ORDER BY a")
    T.eq(rows[1].b, nil, "NULL absent")
    T.eq(rows[1].c, "c")
    local keys = 0
    for _ in pairs(rows[2]) do keys = keys + 1 end
    T.eq(keys, 1, "only the non-NULL column is a key")
    T.eq(db:query("SELECT count(*) AS n FROM z WHERE b IS NULL")[1].n, 2, "stored as NULL")
    -- A statement's bindings are cleared after use: no value leaks into
    -- the next run of the same SQL.
    assert(db:run("INSERT INTO z VALUES (?1, ?2, ?3)", 3, "bee", "see"))
    assert(db:run("INSERT INTO z VALUES (?1, ?2, ?3)", 4))
    rows = db:query("SELECT b, c FROM z WHERE a = 4")
    T.eq(rows[1].b, nil, "no stale binding")
    T.eq(rows[1].c, nil, "no stale binding")
  end },

  { "a parameter of another type raises, naming its index", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE p(a, b)"))
    T.raises(function() db:run("INSERT INTO p VALUES (?1, ?2)", 1, {}) end,
      "SQL parameter 2 is a table", "a table")
    T.raises(function() db:query("SELECT ?1", print) end,
      "SQL parameter 1 is a function", "a function")
    T.raises(function() db:run("INSERT INTO p VALUES (?1, ?2)", 1, 2, 3) end,
      "3 SQL parameters given, the INSERT statement takes 2", "too many")
    T.raises(function() db:query("SELECT 1; SELECT 2") end, "one SQL statement", "two statements to query")
    T.raises(function() db:run("INSERT INTO p VALUES (1, 2); -- c\n DELETE FROM p") end, "one SQL statement",
      "two statements to run")
    T.eq(db:query("SELECT 7 AS x; -- the answer\n /* done */ ;")[1].x, 7, "a comment after the statement")
    T.raises(function() db:query("-- nothing") end, "one SQL statement", "no statement")
    T.raises(function() db:exec("SELECT ?1") end, "takes no SQL parameters", "exec with a parameter")
    T.raises(function() core.sqlite_open(tmp(), { readonly = "yes" }) end, "readonly must be a boolean")
    T.raises(function() core.sqlite_open(tmp(), { busy_timeout = 1 }) end, "unknown option busy_timeout")
    T.raises(function() core.sqlite_open("") end, "empty")
    T.raises(function() core.sqlite_open(DIR .. "/a\0b") end, "NUL")
    -- The failed calls left nothing behind: the same statements still run.
    T.eq(db:run("INSERT INTO p VALUES (?1, ?2)", 1, 2), 1, "still usable")
    T.eq(db:query("SELECT count(*) AS n FROM p")[1].n, 1)
  end },

  { "SQL errors: the path and the first word, never a bound value", function()
    local path = tmp()
    local db <close> = open(path)
    assert(db:exec("CREATE TABLE u(k TEXT PRIMARY KEY)"))
    assert(db:run("INSERT INTO u VALUES (?1)", "secret-value-123"))
    local ok, err, code = db:run("INSERT INTO u VALUES (?1)", "secret-value-123")
    fails("a UNIQUE violation", "ESQL", ok, err, code)
    has(err, "state file " .. path .. ": INSERT: UNIQUE constraint failed: u.k", "the message")
    T.check(not err:find("secret", 1, true), "no bound value in " .. err)
    ok, err, code = db:query("SELEC 1")
    fails("a syntax error", "ESQL", ok, err, code)
    has(err, "SELEC: near \"SELEC\": syntax error", "syntax error")
    ok, err, code = db:exec("CREATE TABLE v(x); /* first */ DELETE FROM nowhere; CREATE TABLE w(x)")
    fails("exec stops at the failing statement", "ESQL", ok, err, code)
    has(err, "DELETE: no such table: nowhere", "the failing statement's word")
    T.eq(#db:query("SELECT name FROM sqlite_schema WHERE name = 'v'"), 1, "the statement before ran")
    T.eq(#db:query("SELECT name FROM sqlite_schema WHERE name = 'w'"), 0, "the one after did not")
    ok, err, code = db:query([[SELECT "nope" FROM u]])
    fails("double-quoted strings are identifiers only", "ESQL", ok, err, code)
    -- Defensive mode: the schema cannot be written directly.
    ok, err, code = db:exec("PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = 'x'")
    T.eq(ok, nil, "sqlite_schema is not writable")
    ok, err, code = db:exec("ATTACH DATABASE '" .. tmp() .. "' AS other")
    fails("ATTACH", "ESQL", ok, err, code)
    ok, err, code = db:query("SELECT load_extension('/nonexistent')")
    fails("load_extension", "ESQL", ok, err, code)
    has(err, "not authorized", "extensions off")
  end },

  { "prepared statements are cached and reused", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE c(i INTEGER PRIMARY KEY, v)"))
    assert(db:exec("BEGIN"))
    for i = 1, 1000 do
      assert(db:run("INSERT INTO c(i, v) VALUES (?1, ?2)", i, "v" .. i))
    end
    assert(db:exec("COMMIT"))
    local sum = 0
    for i = 1, 1000 do sum = sum + db:query("SELECT i FROM c WHERE i = ?1", i)[1].i end
    T.eq(sum, 500500, "1000 queries of one SQL")
    -- The cache (32) overflows: 100 different texts, each twice, stay right.
    local right = 0
    for round = 1, 2 do
      for i = 1, 100 do
        local r = db:query(("SELECT v, %d AS j FROM c WHERE i = ?1"):format(i), i)
        if r[1].v == "v" .. i and r[1].j == i then right = right + 1 end
      end
      T.eq(right, 100 * round, "evicted statements come back right")
    end
    -- A cached statement follows a schema change.
    T.eq(#db:query("SELECT * FROM c WHERE i = 1")[1], 0, "rows are keyed by name")
    assert(db:exec("ALTER TABLE c ADD COLUMN w DEFAULT 'new'"))
    T.eq(db:query("SELECT * FROM c WHERE i = 1")[1].w, "new", "the new column")
    -- Dropping a table whose statement is cached: no statement is left
    -- active, so DROP works (it fails with "table is locked" otherwise).
    T.eq(db:exec("DROP TABLE c"), true, "DROP after cached use")
  end },

  { "10,000 INSERT OR REPLACE of 500-byte rows in one transaction", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE b(k TEXT PRIMARY KEY, v TEXT, n INTEGER)"))
    local v = ("x"):rep(500)
    local t0 = core.monotonic()
    assert(db:exec("BEGIN"))
    for i = 1, 10000 do
      assert(db:run("INSERT OR REPLACE INTO b(k, v, n) VALUES (?1, ?2, ?3)", "key" .. (i % 9000), v, i))
    end
    assert(db:exec("COMMIT"))
    local ms = (core.monotonic() - t0) * 1000
    io.stderr:write(("test_sqlite: 10,000 INSERT OR REPLACE of 500 bytes in one transaction: %.1f ms\n"):format(ms))
    T.eq(db:query("SELECT count(*) AS n FROM b")[1].n, 9000, "replaced, not added")
    if not slow then T.check(ms < 500, ("%.1f ms"):format(ms)) end
  end },

  { "a new file is 0600 whatever the umask", function()
    local path = tmp()
    open(path):close()
    T.eq(mode_of(path), "600", "created by this process")
    -- SQLite gives its journal files the file's mode.
    local db <close> = open(path)
    assert(db:exec("PRAGMA journal_mode=WAL; CREATE TABLE m(x); INSERT INTO m VALUES (1)"))
    T.eq(mode_of(path .. "-wal"), "600", "the WAL file")
    T.eq(mode_of(path .. "-shm"), "600", "the shared-memory file")
    local loose = tmp()
    T.check(sh(("umask 000 && %s --lua %s --create %s"):format(RUN, SELF, loose)), "child with umask 000")
    T.eq(mode_of(loose), "600", "umask 000")
    local strict = tmp()
    T.check(sh(("umask 277 && %s --lua %s --create %s"):format(RUN, SELF, strict)), "child with umask 277")
    T.eq(mode_of(strict), "600", "umask 277 (no owner write)")
    -- An existing file keeps its mode.
    local mine = tmp()
    assert(sh("touch " .. mine .. " && chmod 640 " .. mine))
    open(mine):close()
    T.eq(mode_of(mine), "640", "an existing file's mode is kept")
  end },

  { "a relative path is a file name, never a URI or :memory:", function()
    local sub = tmp("cwd")
    assert(sh("mkdir " .. sub))
    for _, name in ipairs { ":memory:", "file:x.db?mode=memory" } do
      T.check(sh(("cd %s && %s --lua %s --open '%s'"):format(sub, RUN, SELF, name)), "child opens " .. name)
      local f = io.open(sub .. "/" .. name, "rb")
      T.check(f ~= nil, name .. " is a file in the working directory")
      if f then
        T.eq(f:read(15), "SQLite format 3", name .. " holds the database")
        f:close()
      end
    end
  end },

  { "a FIFO is refused at once, never opened", function()
    local fifo = tmp("fifo")
    assert(sh("mkfifo -m 600 " .. fifo))
    local t0 = core.monotonic()
    local ok, err, code = core.sqlite_open(fifo)
    fails("a FIFO", "ENOTREG", ok, err, code)
    T.eq(err, fifo .. ": is a FIFO, not a state file (give a regular file)", "the message")
    ok, err, code = core.sqlite_open(fifo, { readonly = true })
    fails("a FIFO read-only", "ENOTREG", ok, err, code)
    local link = tmp("link-to-fifo")
    assert(sh(("ln -s %s %s"):format(fifo, link)))
    ok, err, code = core.sqlite_open(link)
    fails("a symbolic link to a FIFO", "ENOTREG", ok, err, code)
    T.check(core.monotonic() - t0 < 1, "no wait")
    T.eq(kind_of(fifo), "fifo", "the FIFO is left as it was")
  end },

  { "a directory, /dev/null and a missing file are refused", function()
    local ok, err, code = core.sqlite_open(DIR)
    fails("a directory", "ENOTREG", ok, err, code)
    has(err, "is a directory", "directory")
    ok, err, code = core.sqlite_open("/dev/null")
    fails("/dev/null", "ENOTREG", ok, err, code)
    has(err, "/dev/null: is a character device", "char device")
    T.eq(kind_of("/dev/null"), "character special file", "/dev/null untouched")
    local missing = tmp("missing")
    ok, err, code = core.sqlite_open(missing, { readonly = true })
    fails("missing, read-only", "ENOENT", ok, err, code)
    ok, err, code = core.sqlite_open(missing, { create = false })
    fails("missing, create = false", "ENOENT", ok, err, code)
    T.check(io.open(missing) == nil, "not created")
    ok, err, code = core.sqlite_open(DIR .. "/no/such/dir/state.db")
    fails("missing directory", "ENOENT", ok, err, code)
    has(err, "the directory " .. DIR .. "/no/such/dir does not exist", "names the directory")
    local dangling = tmp("dangling")
    assert(sh(("ln -s %s/nothing-here %s"):format(DIR, dangling)))
    ok, err, code = core.sqlite_open(dangling)
    fails("a dangling symbolic link", "ENOENT", ok, err, code)
    T.check(io.open(DIR .. "/nothing-here") == nil, "nothing created through the link")
    -- A symbolic link to a regular file is fine.
    local real, link = tmp(), tmp("link")
    open(real):close()
    assert(sh(("ln -s %s %s"):format(real, link)))
    local db = open(link)
    T.eq(db:exec("CREATE TABLE l(x)"), true, "through a symbolic link")
    db:close()
  end },

  { "a file of another program is ENOTADB, and left as it was", function()
    local path = tmp("hello.txt")
    local f = assert(io.open(path, "wb"))
    f:write("hello\n")
    f:close()
    local ok, err, code = core.sqlite_open(path)
    fails("a text file", "ENOTADB", ok, err, code)
    T.eq(err, "state file " .. path .. ": is not a SQLite database (a file of another program, or a state file with a damaged header: give another --state, or move it aside and let a new one be made)", "the message")
    T.eq(T.read(path), "hello\n", "unchanged")
    ok, err, code = core.sqlite_open(path, { readonly = true })
    fails("a text file, read-only", "ENOTADB", ok, err, code)
  end },

  { "a damaged file: ECORRUPT (on use when the schema page is intact)", function()
    local path = tmp()
    local db = open(path)
    assert(db:exec("CREATE TABLE d(k INTEGER PRIMARY KEY, v TEXT)"))
    assert(db:exec("BEGIN"))
    for i = 1, 300 do assert(db:run("INSERT INTO d VALUES (?1, ?2)", i, ("v"):rep(100))) end
    assert(db:exec("COMMIT"))
    db:close()
    -- Page 2 is the table's root (an interior page, 4096 bytes): junk over
    -- its middle and its header.
    local f = assert(io.open(path, "r+b"))
    f:seek("set", 4096)
    f:write(("\xAB"):rep(4096))
    f:close()
    local size = #T.read(path)
    db = core.sqlite_open(path)
    T.check(db ~= nil, "open reads only page 1 and the schema: it succeeds")
    if db then
      local ok, err, code = db:query("SELECT count(*) AS n, max(length(v)) AS m FROM d")
      T.check(code == "ECORRUPT" or code == "ENOTADB", "on first use: " .. tostring(code))
      T.eq(ok, nil)
      has(err, "state file " .. path .. ": SELECT: database disk image is malformed", "the message")
      has(err, "the state file is damaged", "what to do")
      db:close()
    end
    T.eq(#T.read(path), size, "left as it was")
    -- Damage on page 1 (the schema) is found at open.
    f = assert(io.open(path, "r+b"))
    f:seek("set", 100)
    f:write(("\xAB"):rep(200))
    f:close()
    local ok, err, code = core.sqlite_open(path)
    T.check(code == "ECORRUPT" or code == "ENOTADB", "schema damage at open: " .. tostring(code))
    T.eq(ok, nil)
    -- A truncated file: ECORRUPT.
    local cut = tmp()
    db = open(cut)
    assert(db:exec("CREATE TABLE d(k INTEGER PRIMARY KEY, v TEXT)"))
    assert(db:exec("BEGIN"))
    for i = 1, 300 do assert(db:run("INSERT INTO d VALUES (?1, ?2)", i, ("v"):rep(100))) end
    assert(db:exec("COMMIT"))
    db:close()
    local whole = T.read(cut)
    f = assert(io.open(cut, "wb"))
    f:write(whole:sub(1, #whole // 2))
    f:close()
    -- (SQLite 3.40 finds it at open: the header's page count is more
    -- than the file holds.)
    db, err, code = core.sqlite_open(cut)
    if db then
      ok, err, code = db:query("SELECT count(*) AS n, max(length(v)) AS m FROM d")
      db:close()
    end
    T.eq(code, "ECORRUPT", "truncated: at open or on first use")
    has(err, "database disk image is malformed", "truncated: the message")
  end },

  { "read-only: EREADONLY on a write", function()
    local path = tmp()
    local db = open(path)
    assert(db:exec("CREATE TABLE r(x)"))
    db:close()
    db = open(path, { readonly = true })
    local ok, err, code = db:run("INSERT INTO r VALUES (1)")
    fails("INSERT on a read-only connection", "EREADONLY", ok, err, code)
    has(err, "INSERT: attempt to write a readonly database", "the message")
    T.eq(#db:query("SELECT * FROM r"), 0, "reads work")
    db:close()
    if not is_root then
      readonly_dir_case()
      return
    end
    -- Root ignores permissions: the case runs in a child as nobody, when
    -- setpriv can make one (util-linux).
    if not sh("command -v setpriv >/dev/null 2>&1") then
      io.stderr:write("test_sqlite: root and no setpriv: the read-only directory case is skipped\n")
      return
    end
    local out = sh_out(("setpriv --reuid=65534 --regid=65534 --clear-groups %s --lua %s --rodir 2>&1; echo EXIT=$?")
      :format(RUN, SELF))
    if not out:find("RODIR START", 1, true) then
      io.stderr:write("test_sqlite: cannot run as nobody, the read-only directory case is skipped:\n" .. out .. "\n")
      return
    end
    T.check(out:find(", 0 failed", 1, true) and out:find("EXIT=0", 1, true), "as nobody:\n" .. out)
  end },

  { "busy: a second writer gets EBUSY after its timeout", function()
    local path = tmp()
    local a = open(path)
    assert(a:exec("CREATE TABLE w(x)"))
    local b = open(path, { busy_timeout_ms = 50 })
    assert(a:exec("BEGIN IMMEDIATE"))
    assert(a:run("INSERT INTO w VALUES (1)"))
    local t0 = core.monotonic()
    local ok, err, code = b:run("INSERT INTO w VALUES (2)")
    local waited = core.monotonic() - t0
    fails("a write while another holds the lock", "EBUSY", ok, err, code)
    has(err, "INSERT: database is locked", "the message")
    T.check(waited >= 0.04 and waited < 1, ("waited %.3f s"):format(waited))
    T.eq(#b:query("SELECT * FROM w"), 0, "a reader sees the committed state")
    assert(a:exec("COMMIT"))
    T.eq(b:run("INSERT INTO w VALUES (2)"), 1, "after the commit")
    a:close()
    b:close()
  end },

  { "close twice, use after close, <close>, __gc", function()
    local db = open(tmp())
    T.eq(db:close(), true, "close")
    T.eq(db:close(), true, "close again")
    T.raises(function() db:query("SELECT 1") end, "the state file is closed", "query after close")
    T.raises(function() db:exec("SELECT 1") end, "the state file is closed", "exec after close")
    T.raises(function() db:run("SELECT 1") end, "the state file is closed", "run after close")
    T.check(tostring(db):find("(closed)", 1, true), "tostring says closed")
    local kept
    do
      local d <close> = open(tmp())
      kept = d
      assert(d:exec("CREATE TABLE k(x)"))
    end
    T.raises(function() kept:exec("SELECT 1") end, "the state file is closed", "closed at the end of its block")
    -- Garbage collected while open, with cached statements: finalized.
    for _ = 1, 5 do
      local g = open(tmp())
      assert(g:exec("CREATE TABLE g(x)"))
      assert(g:run("INSERT INTO g VALUES (?1)", 1))
      assert(g:query("SELECT * FROM g"))
    end
    collectgarbage()
    collectgarbage()
  end },

  { "a finalizer that re-enters a connection mid-query gets an error, not a freed statement", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE big(k INTEGER PRIMARY KEY, v TEXT)"))
    assert(db:exec("BEGIN"))
    for i = 1, 2000 do assert(db:run("INSERT INTO big VALUES (?1, ?2)", i, ("z"):rep(100))) end
    assert(db:exec("COMMIT"))
    local refused, allowed = 0, 0
    collectgarbage("collect")
    for i = 1, 100 do
      setmetatable({}, { __gc = function()
        -- Closing would finalize the statement being stepped.
        local ok, err = pcall(i % 2 == 0 and db.close or db.query, db, "SELECT k, v FROM big")
        if not ok and tostring(err):find("in use", 1, true) then
          refused = refused + 1
        else
          allowed = allowed + 1
        end
      end })
    end
    -- Collect continuously: the finalizers run while the rows are built.
    collectgarbage("incremental", 1, 1000)
    local rows = db:query("SELECT k, v FROM big")
    collectgarbage("incremental", 200, 100)
    collectgarbage("collect")
    T.eq(refused + allowed, 100, "every finalizer ran")
    T.check(refused > 0, ("some ran mid-query and were refused (%d of 100)"):format(refused))
    T.eq(#rows, 2000, "the query's rows are whole")
    T.eq(rows[2000].k, 2000)
    T.eq(db:query("SELECT count(*) AS n FROM big")[1].n, 2000, "the connection works after")
  end },

  { "a result too big for the memory cap raises, and leaves no statement mid-step", function()
    local db <close> = open(tmp())
    assert(db:exec("CREATE TABLE big(k INTEGER PRIMARY KEY, v TEXT)"))
    assert(db:exec("BEGIN"))
    for i = 1, 2000 do assert(db:run("INSERT INTO big VALUES (?1, ?2)", i, ("z"):rep(1000))) end
    assert(db:exec("COMMIT"))
    collectgarbage()
    local ok, msg, kind = core.memory_call(256 * 1024, function()
      return db:query("SELECT k, v FROM big")
    end)
    T.eq(ok, false, "the query fails under a 256 kB cap")
    T.eq(kind, "memory", "as a memory error: " .. tostring(msg))
    -- The statement was reset: DROP needs no statement active on the table.
    local rows = db:query("SELECT k, v FROM big WHERE k <= 3")
    T.eq(#rows, 3, "the connection works")
    T.eq(db:exec("DROP TABLE big"), true, "no statement left active")
  end },
}

sh("chmod -R u+w " .. DIR .. " 2>/dev/null")
sh("rm -rf " .. DIR)
T.check(io.open(DIR) == nil, "the test's folder is removed")
return T.done()
