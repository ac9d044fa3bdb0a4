-- The soak (issue 19, reliability case B13): a watcher runs for SECONDS
-- against chatapp-emulator with random faults on about 10% of the API's
-- answers, while its numbers change, its policy is reloaded by SIGHUP and
-- its actions land in the emulator's sink; then it is stopped by SIGTERM
-- and everything is counted.
--
--   chatapp-run --lua tests/bench/soak.lua CHATAPP_RUN CHATAPP_EMULATOR [--seconds N]
--   (default: SOAK_SECONDS, else 600; `make soak`)
--
-- tests/reliability/B13.lua runs the same for 60 s (require "soak").
--
-- The set-up:
--   - the emulator serves 10 spaces of 10 numbers (tests/bench/fleet.lua)
--     at a quota of 1000/s, with these fault rules, each on a share `p` of
--     the API calls (QueryChatappPhoneNumbers, UpdatePhoneWebhook): latency
--     300 +- 100 ms (3%), ServiceUnavailable 503 (2.5%), Throttling.User
--     (2%), a reset after 40 bytes (1.5%), a truncated body (1%): about
--     10% of the answers;
--   - chatapp-run --every 2s --state FILE --output json -v --outbox-max-age
--     5s --listen 127.0.0.1:0, one policy "soak": on every change of a
--     number's quality rating it plans a webhook to the emulator's sink and
--     an UpdatePhoneWebhook call (its StatusCallbackUrl names the change);
--     one webhook in 50 goes to a sink path that answers 503 (attempts =
--     1), so it stays pending, is tried again by each cycle and expires
--     after 5 s;
--   - every second 2 numbers change (PATCH /_emulator/numbers: the next
--     QualityRating and a VerifiedName "soak-SEQ" unique to the change);
--   - every 10 s a SIGHUP reloads the policy file, rewritten with a new
--     version (its webhooks carry it); every 4th reload is of a broken
--     file, which must be refused while the old version keeps running;
--   - every 10 s the sink's deliveries are collected (by their sequence
--     number `n`, with no gap).
-- After each cycle's log line (+ 150 ms) the watcher's VmRSS and its open
-- descriptors (/proc/PID/fd, by kind; sockets by /proc/PID/net) are read,
-- and every 5 s the state file's pages.  Only readings after a cycle of
-- less than 1.4 s count (the next starts 2 s after its start, so these
-- fall between cycles).
--
-- At the end (SIGTERM), the criteria of B13 and of the soak of issue 19:
--   - exit 0, "stopped by SIGTERM", no sanitizer report on its stderr
--     (in an ASan build the watcher is instrumented, and LeakSanitizer
--     checks at exit: a leak is a non-zero exit);
--   - RSS flat after warm-up: the median of the readings of the last
--     window is < 5% above the median of the first window after warm-up
--     (warm-up: a quarter of the run, 10 to 60 s; windows: a sixth, 15 to
--     30 s; at least 3 readings in each)
--     (not asserted in a sanitizer build, whose allocator quarantines
--     freed memory by design: printed only);
--   - open descriptors constant: after warm-up every reading has the same
--     files, pipes, Unix sockets and other non-TCP descriptors as the
--     first, and TCP sockets no more than the listening one and the API
--     client's pool (--max-in-flight: the pool closes a connection a reset
--     broke and opens one at the next call, so their count moves within
--     that bound);
--   - SQLite pages grow only with the rows the state keeps (transitions
--     and outbox entries are kept 400 and 30 days): the file's bytes per
--     kept row at the end within 10% of those after warm-up, no free
--     pages piling up;
--   - every planned action accounted for: each action the cycles reported
--     is in the outbox and the other way round; each quality-rating
--     transition in the state planned exactly one webhook and one call;
--     each outbox entry is done, failed (with its error), expired (the 503
--     path, past --outbox-max-age) or pending with a stated reason (the
--     503 path, not yet expired, or not yet tried when SIGTERM came); each
--     webhook's attempts equal the deliveries the sink received with its
--     Idempotency-Key, a done one delivered exactly once, and the sink got
--     nothing that was not planned; each done call is in the emulator's
--     log as an accepted UpdatePhoneWebhook answered OK with its
--     parameters, and the emulator got no UpdatePhoneWebhook that was not
--     planned.
local dir0 = arg[0]:match("^(.*)/") or "."
package.path = dir0 .. "/../bench/?.lua;" .. dir0 .. "/../lua/?.lua;" .. package.path
local E = require "e2e"
local T = require "testlib"
local fleet = require "fleet"
local chatapp = require "chatapp"
local core = chatapp.core
local json = chatapp.json

local S = {}

local NSPACES, PER = 10, 10
local N = NSPACES * PER
local PATCH_PER_S = 2
local RELOAD_EVERY_S, POLL_EVERY_S, DB_EVERY_S = 10, 10, 5
local SETTLE_MS = 150
-- A reading is between two cycles when the cycle took less than this (the
-- next starts EVERY_S after its start; the reading is ~0.15-0.4 s after its end).
local EVERY_S = 2
local BETWEEN_MAX_S = 1.4
local MIN_READINGS = 3 -- in each window, for its median
local MAX_IN_FLIGHT = 16
local MAX_AGE_S = 5
local FLAKY_EVERY = 50 -- one webhook in 50 goes to the 503 path
local FAULTS = {
  { kind = "latency", ms = 300, jitter_ms = 100, p = 0.03 },
  { kind = "error", code = "ServiceUnavailable", p = 0.025 },
  { kind = "error", code = "Throttling.User", p = 0.02 },
  { kind = "reset", after_bytes = 40, p = 0.015 },
  { kind = "truncate", p = 0.01 },
}

local function policy_src(sink, version)
  return ([[
-- the soak's policy, version %d
local chatapp = require "chatapp"
local SINK = %q
return chatapp.policy {
  name = "soak",
  where = { changed = "quality_rating" },
  decide = function(n, plan)
    local seq = n.verified_name or "?"
    local k = tonumber(seq:match("%%d+")) or 0
    local flaky = k %% %d == 0
    plan:webhook {
      url = SINK .. (flaky and "/flaky?status=503" or "/ok"),
      attempts = flaky and 1 or nil,
      json = { number = n.phone_number, seq = seq, rating = n.quality_rating, version = %d },
    }
    plan:update_phone_webhook { status_callback_url = "https://hooks.example.com/soak/" .. seq }
  end,
}
]]):format(version, sink, FLAKY_EVERY, version)
end

local BROKEN = "return require('chatapp').policy { name = 'soak', where = { no_such_field = 1 } }\n"

-- /proc readings
local function proc_status(pid)
  local s = E.read("/proc/" .. pid .. "/status") or ""
  local function kb(name) return tonumber(s:match(name .. ":%s*(%d+)")) end
  return { rss = kb("VmRSS"), anon = kb("RssAnon"), hwm = kb("VmHWM"), threads = kb("Threads") }
end

-- The open descriptors by kind: socket, pipe, anon_inode:..., or a path.
local function fds(pid)
  local p = io.popen("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
  local text = p:read("a")
  p:close()
  -- TCP sockets' states by inode (01 established, 0A listening, 08 close-wait, ...)
  local tcp = {}
  for _, f in ipairs { "/net/tcp", "/net/tcp6" } do
    for line in (E.read("/proc/" .. pid .. f) or ""):gmatch("[^\n]+") do
      local st, inode = line:match("^%s*%d+:%s+%S+%s+%S+%s+(%x%x)%s+%S+%s+%S+%s+%S+%s+%S+%s+%S+%s+(%d+)")
      if inode then tcp[inode] = ({ ["01"] = "established", ["0A"] = "listening", ["08"] = "close-wait",
        ["06"] = "time-wait", ["07"] = "closed", ["02"] = "syn-sent" })[st] or ("tcp state " .. st) end
    end
  end
  -- Unix sockets (libcurl's wake-up socket pairs, ...): fixed, like files.
  local unix = {}
  for line in (E.read("/proc/" .. pid .. "/net/unix") or ""):gmatch("[^\n]+") do
    local inode = line:match("^%x+:%s+%x+%s+%x+%s+%x+%s+%x+%s+%x+%s+(%d+)")
    if inode then unix[inode] = true end
  end
  local kinds, sockets, total, socks = {}, 0, 0, {}
  for target in text:gmatch("%d+ %-> ([^\n]+)") do
    total = total + 1
    local kind = target:match("^(%a+):%[") or target:match("^anon_inode:.*") or target
    if kind == "socket" and unix[target:match("%[(%d+)%]")] then
      kind = "unix socket"
    end
    if kind == "socket" then
      sockets = sockets + 1
      local st = tcp[target:match("%[(%d+)%]")] or "other"
      socks[st] = (socks[st] or 0) + 1
    else
      kinds[kind] = (kinds[kind] or 0) + 1
    end
  end
  local keys = {}
  for k, v in pairs(kinds) do keys[#keys + 1] = ("%s x%d"):format(k, v) end
  table.sort(keys)
  local sk = {}
  for k, v in pairs(socks) do sk[#sk + 1] = ("%s %d"):format(k, v) end
  table.sort(sk)
  return { total = total, sockets = sockets, other = table.concat(keys, ", "), socks = table.concat(sk, ", ") }
end

local function median(list)
  local v = {}
  for i, x in ipairs(list) do v[i] = x end
  table.sort(v)
  return v[(#v + 1) // 2]
end

local function sanitized(bin)
  local ok = os.execute("grep -qa __asan_init " .. E.quote(bin) .. " 2>/dev/null")
  return ok == true
end

--- Run the soak for `seconds`; returns the exit status (0: every check held).
function S.run(seconds)
  local t_begin = os.time()
  local WARM = math.max(10, math.min(60, seconds // 4))
  local WINDOW = math.max(15, math.min(30, seconds // 6))
  assert(seconds >= WARM + 2 * WINDOW, ("SOAK_SECONDS must be at least %d"):format(WARM + 2 * WINDOW))
  local asan = sanitized(E.run_bin)
  local dir = E.tmpdir()
  local fixture = E.write(dir .. "/fixture.json", fleet.fixture(NSPACES, PER))
  local spaces = E.write(dir .. "/spaces.json", fleet.spaces_json(NSPACES))
  local emu = E.emulator { "--data", fixture, "--quota", "1000" }
  local http = assert(core.http_client { timeout_ms = 10000, max_attempts = 1 })
  local sink = emu.url .. "/_emulator/sink"
  local ans = emu:fault { faults = FAULTS }
  assert(ans and ans.ok, "fault rules: " .. tostring(ans and ans.error))

  local state = dir .. "/state.db"
  local pol = dir .. "/soak.lua"
  local version = 1
  local function write_policy(text)
    E.write(pol .. ".new", text)
    assert(os.rename(pol .. ".new", pol))
  end
  write_policy(policy_src(sink, version))

  local args = { "--endpoint", emu.url, "--limiter", "process", "--qps", "200", "--every", EVERY_S .. "s",
                 "--max-in-flight", tostring(MAX_IN_FLIGHT),
                 "--state", state, "--spaces", spaces, "--outbox-max-age", MAX_AGE_S .. "s",
                 "--listen", "127.0.0.1:0", "--output", "json", "-v", pol }
  local env = {}
  for _, k in ipairs { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MALLOC_ARENA_MAX" } do
    env[k] = os.getenv(k) or false
  end
  local w = E.start(args, env)
  local t0 = core.monotonic()
  local function now() return core.monotonic() - t0 end
  io.stderr:write(("soak: %d s (warm-up %d s, windows of %d s), watcher pid %d%s, state %s\n"):format(seconds,
    WARM, WINDOW, w.pid, asan and " (ASan build)" or "", state))

  -- The emulator's data as the soak changed it.
  local rating = {}
  for i = 1, N do rating[i] = fleet.rating(i) end
  local NEXT = { GREEN = "YELLOW", YELLOW = "RED", RED = "GREEN" }
  local seq, patched = 0, 0
  math.randomseed(19013)
  local function patch()
    local picked = {}
    local reqs = {}
    while #reqs < PATCH_PER_S do
      local i = math.random(N)
      if not picked[i] then
        picked[i] = true
        seq = seq + 1
        rating[i] = NEXT[rating[i]]
        reqs[#reqs + 1] = { method = "PATCH",
          url = ("%s/_emulator/numbers/%s?space=%s"):format(emu.url, fleet.phone(i), fleet.space_id((i - 1) // PER + 1)),
          body = ('{"QualityRating":"%s","VerifiedName":"soak-%d"}'):format(rating[i], seq) }
      end
    end
    local res, errs = http:batch(reqs)
    for k = 1, #reqs do
      assert(res[k] and res[k].status == 200, "PATCH failed: " .. tostring(errs and errs[k]))
      patched = patched + 1
    end
  end

  -- The sink's deliveries, by their sequence number n.
  local deliveries, last_n, gaps = {}, 0, 0
  local function poll()
    local list = emu:deliveries() or {}
    for _, d in ipairs(list) do
      if d.n > last_n then
        if d.n ~= last_n + 1 then gaps = gaps + 1 end
        deliveries[#deliveries + 1] = d
        last_n = d.n
      end
    end
  end

  -- Cycle lines on the watcher's stderr.
  local cycles_ok, cycles_failed, cycles_seen, fail_codes = 0, 0, 0, {}
  local err_pos = 1
  local function new_cycles()
    local err = w.err()
    local n, d = 0, nil
    while true do
      local s, e, line = err:find("([^\n]*)\n", err_pos)
      if not s then break end
      err_pos = e + 1
      local c, rest = line:match("cycle (%d+)(.*)$")
      if c then
        if rest:match("^: ok") then
          cycles_ok = cycles_ok + 1
          n = n + 1
          d = tonumber(rest:match("%(([%d.]+) s%)$"))
        elseif rest:match("^ failed") then
          cycles_failed = cycles_failed + 1
          local code = rest:match("^ failed %((%u+)") or "?"
          fail_codes[code] = (fail_codes[code] or 0) + 1
          d = tonumber(rest:match("^ failed %(%u+, ([%d.]+) s%)"))
          n = n + 1
        end
        cycles_seen = math.max(cycles_seen, tonumber(c))
      end
    end
    return n, d
  end

  local readings, dbs = {}, {}
  local function read_db()
    local ok, rows = pcall(E.db_rows, state, "SELECT (SELECT page_count FROM pragma_page_count) AS pages, "
      .. "(SELECT page_size FROM pragma_page_size) AS page_size, "
      .. "(SELECT freelist_count FROM pragma_freelist_count) AS free, "
      .. "(SELECT count(*) FROM transitions) AS transitions, (SELECT count(*) FROM outbox) AS outbox, "
      .. "(SELECT count(*) FROM numbers) AS numbers")
    if ok and rows[1] then
      local r = rows[1]
      r.t = now()
      r.rows = r.transitions + r.outbox + r.numbers
      dbs[#dbs + 1] = r
    end
  end

  local reloads, broken_reloads = 0, 0
  local next_patch, next_reload, next_poll, next_db, next_note = 1, RELOAD_EVERY_S, POLL_EVERY_S, 2, 60
  local ok, why = xpcall(function()
    while now() < seconds do
      assert(E.alive(w.pid), "the watcher died: " .. w.err():sub(-3000))
      local ended, d = new_cycles()
      if ended > 0 then
        E.sleep_ms(SETTLE_MS)
        local st = proc_status(w.pid)
        local f = fds(w.pid)
        st.t, st.fds, st.sockets, st.other, st.socks, st.cycle = now(), f.total, f.sockets, f.other, f.socks,
          cycles_seen
        -- between cycles: the next starts EVERY_S after this one started
        st.between = d ~= nil and d < BETWEEN_MAX_S
        if st.rss then readings[#readings + 1] = st end
      end
      local t = now()
      if t >= next_patch then
        patch()
        next_patch = next_patch + 1
      end
      if t >= next_reload then
        reloads = reloads + 1
        if reloads % 4 == 0 then
          broken_reloads = broken_reloads + 1
          write_policy(BROKEN)
        else
          version = version + 1
          write_policy(policy_src(sink, version))
        end
        w.kill("HUP")
        next_reload = next_reload + RELOAD_EVERY_S
      end
      if t >= next_poll then
        poll()
        next_poll = next_poll + POLL_EVERY_S
      end
      if t >= next_db then
        read_db()
        next_db = next_db + DB_EVERY_S
      end
      if t >= next_note then
        local r = readings[#readings]
        io.stderr:write(("soak: %.0f s, %d cycles (%d failed), %d changes, %d deliveries, RSS %s KiB, %s fds\n")
          :format(t, cycles_ok + cycles_failed, cycles_failed, patched, #deliveries, r and r.rss or "?",
            r and r.fds or "?"))
        next_note = next_note + 60
      end
      E.sleep_ms(50)
    end
  end, debug.traceback)
  if not ok then
    w.kill("KILL")
    emu:stop()
    io.stderr:write("soak: " .. tostring(why) .. "\n")
    E.cleanup()
    return 1
  end

  -- Stop it.
  w.kill("TERM")
  local rc = w.wait(30000)
  local err = w.err()
  new_cycles()
  poll()
  local elapsed = now()
  local emu_stats = emu:stats()
  local emu_log = emu:log_lines()
  emu:stop()
  read_db()

  T.eq(rc, 0, "the watcher exits 0 on SIGTERM: " .. err:sub(-3000))
  T.check(err:find("stopped by SIGTERM after", 1, true), "it says it stopped: " .. err:sub(-1000))
  for _, pat in ipairs { "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "runtime error:",
                         "ThreadSanitizer" } do
    T.check(not err:find(pat, 1, true), "no sanitizer report (" .. pat .. ") on the watcher's stderr: "
      .. (err:match("[^\n]*" .. pat:gsub("%p", "%%%0") .. "[^\n]*") or ""))
  end
  -- The reloads: every good one was loaded, every broken one refused, and the
  -- last good version is the one that ran last.
  local loaded = select(2, err:gsub("SIGHUP: reloaded 1 policy file", ""))
  local refused = select(2, err:gsub("SIGHUP: the policy files do not load", ""))
  T.eq(refused, broken_reloads, ("the broken reloads were refused (%d)"):format(broken_reloads))
  T.check(loaded >= reloads - broken_reloads - 1 and loaded <= reloads - broken_reloads,
    ("the good reloads were loaded: %d of %d (the last may come with SIGTERM)"):format(loaded,
      reloads - broken_reloads))

  -- Memory and descriptors after warm-up, read between cycles.
  local first, last, after, mid, warm_sockets = {}, {}, {}, 0, 0
  for _, r in ipairs(readings) do
    if not r.between then
      mid = mid + 1
    elseif r.t < WARM then
      warm_sockets = math.max(warm_sockets, r.sockets)
    else
      after[#after + 1] = r
      if r.t < WARM + WINDOW then first[#first + 1] = r.rss end
      if r.t >= elapsed - WINDOW then last[#last + 1] = r.rss end
    end
  end
  T.check(#first >= MIN_READINGS and #last >= MIN_READINGS, ("readings between cycles in the windows: %d and %d "
    .. "(cycles: %d ok, %d failed; %d readings of %d after a cycle of %.1f s or more)"):format(#first, #last,
    cycles_ok, cycles_failed, mid, #readings, BETWEEN_MAX_S))
  local m_first, m_last = median(first) or 0, median(last) or 0
  local growth = m_first > 0 and m_last / m_first - 1 or 0
  local lo, hi, hwm = math.huge, 0, 0
  for _, r in ipairs(after) do
    lo, hi, hwm = math.min(lo, r.rss), math.max(hi, r.rss), math.max(hwm, r.hwm or 0)
  end
  if asan then
    io.stderr:write("soak: ASan build: RSS growth printed, not checked (the allocator quarantines freed memory)\n")
  else
    T.check(growth < 0.05, ("RSS growth after warm-up < 5%%: %.1f%% (%d -> %d KiB)"):format(growth * 100, m_first,
      m_last))
  end
  local base
  local fd_lo, fd_hi, sock_hi, other_bad = math.huge, 0, 0, 0
  for _, r in ipairs(after) do
    base = base or r
    fd_lo, fd_hi, sock_hi = math.min(fd_lo, r.fds), math.max(fd_hi, r.fds), math.max(sock_hi, r.sockets)
    if r.other ~= base.other then
      other_bad = other_bad + 1
      if other_bad <= 3 then
        io.stderr:write(("soak: descriptors at %.0f s: %s; first after warm-up: %s\n"):format(r.t, r.other,
          base.other))
      end
    end
  end
  T.eq(other_bad, 0, "the non-socket descriptors after warm-up are the same at every reading: "
    .. tostring(base and base.other))
  T.check(sock_hi <= 1 + MAX_IN_FLIGHT, ("TCP sockets after warm-up: the listening one and at most the API "
    .. "client's pool (--max-in-flight %d): at most %d"):format(MAX_IN_FLIGHT, sock_hi))

  -- SQLite pages.
  local db_first, db_last
  for _, d in ipairs(dbs) do
    if d.t >= WARM and not db_first then db_first = d end
    db_last = d
  end
  local bpr_first = db_first and db_first.pages * db_first.page_size / db_first.rows
  local bpr_last = db_last and db_last.pages * db_last.page_size / db_last.rows
  T.check(db_first and db_last and bpr_last <= bpr_first * 1.10, ("state file bytes per kept row: %.0f after "
    .. "warm-up, %.0f at the end"):format(bpr_first or -1, bpr_last or -1))
  T.check(db_last and db_last.free <= 16, ("free pages at the end: %s"):format(db_last and db_last.free))

  -- Every planned action accounted for.
  local reported = {}
  local _, by = E.json_lines(w.out())
  for _, a in ipairs(by.action or {}) do
    if a.kind == "webhook" or a.kind == "call" then
      local r = reported[a.id] or { kind = a.kind, statuses = {} }
      r.statuses[#r.statuses + 1] = a.status
      reported[a.id] = r
    end
  end
  local summaries = by.summary and #by.summary or 0
  local outbox = E.db_rows(state, "SELECT id, policy, kind, number, status, attempts, error, record, created, "
    .. "updated FROM outbox")
  local qt = E.db_rows(state, "SELECT count(*) AS n FROM transitions WHERE field = 'quality_rating'")[1].n
  local rows, counts, n_reported, missing, unreported = {}, {}, 0, 0, 0
  for _ in pairs(reported) do n_reported = n_reported + 1 end
  for _, o in ipairs(outbox) do
    rows[o.id] = o
    o.req = json.decode(o.record).request
    counts[o.kind .. " " .. o.status] = (counts[o.kind .. " " .. o.status] or 0) + 1
    if not reported[o.id] then unreported = unreported + 1 end
  end
  for id in pairs(reported) do if not rows[id] then missing = missing + 1 end end
  T.eq(missing, 0, "every action a cycle reported is in the outbox")
  T.eq(unreported, 0, "every outbox entry was reported by a cycle")
  local n_webhooks, n_calls = 0, 0
  for _, o in ipairs(outbox) do
    if o.kind == "webhook" then n_webhooks = n_webhooks + 1 elseif o.kind == "call" then n_calls = n_calls + 1 end
  end
  T.eq(n_webhooks, qt, "one webhook per quality-rating transition in the state")
  T.eq(n_calls, qt, "one call per quality-rating transition in the state")

  -- Webhooks against the sink.
  local got, unplanned = {}, 0
  for _, d in ipairs(deliveries) do
    local key = d.idempotency_key
    local o = key and rows[key]
    if not o or o.kind ~= "webhook" then
      unplanned = unplanned + 1
    else
      got[key] = got[key] or { ok = 0, flaky = 0 }
      if d.path == "sink/ok" then got[key].ok = got[key].ok + 1 else got[key].flaky = got[key].flaky + 1 end
    end
  end
  T.eq(gaps, 0, "the sink's deliveries were all collected (no gap in their numbers)")
  T.eq(unplanned, 0, "the sink received nothing that was not planned")
  local reasons, bad = {}, {}
  local function reason(what) reasons[what] = (reasons[what] or 0) + 1 end
  local function defect(what, o)
    bad[#bad + 1] = ("%s: %s %s %s attempts %s, error %s"):format(what, o.kind, o.id, o.status, o.attempts,
      tostring(o.error))
  end
  for _, o in ipairs(outbox) do
    if o.kind == "webhook" then
      local flaky = o.req.url:find("status=503", 1, true) ~= nil
      local g = got[o.id] or { ok = 0, flaky = 0 }
      local received = g.ok + g.flaky
      if received ~= o.attempts then defect(("%d deliveries for %d attempts"):format(received, o.attempts), o) end
      if o.status == "done" then
        if flaky or g.ok ~= 1 then defect("done, delivered " .. g.ok .. " times", o) else reason("webhook done") end
      elseif o.status == "expired" and flaky then
        if o.updated - o.created < MAX_AGE_S then defect("expired early", o) else
          reason("webhook expired (the sink answered 503 until --outbox-max-age)") end
      elseif o.status == "pending" and flaky and o.updated - o.created < MAX_AGE_S then
        reason("webhook pending (the sink answers 503; younger than --outbox-max-age)")
      elseif o.status == "pending" and o.attempts == 0 then
        reason("webhook pending (not tried yet when SIGTERM came)")
      else
        defect("unexpected", o)
      end
    elseif o.kind == "call" then
      if o.status == "done" then
        reason("call done")
      elseif o.status == "failed" and o.error and o.error ~= "" then
        local code = o.error:find("outcome unknown", 1, true) and "outcome unknown"
          or o.error:match("(ServiceUnavailable)") or o.error:match("(Throttling%.User)")
          or o.error:match("(ETRANSPORT)") or o.error:match("(ETIMEDOUT)") or "other"
        reason("call failed (" .. code .. ")")
        if code == "other" then io.stderr:write("soak: call failed: " .. o.error .. "\n") end
      elseif o.status == "pending" and o.attempts == 0 then
        reason("call pending (not tried yet when SIGTERM came)")
      else
        defect("unexpected", o)
      end
    end
  end
  -- Calls against the emulator's log.
  local calls_ok, calls_seen, calls_unplanned = {}, 0, 0
  local by_params = {}
  for _, o in ipairs(outbox) do
    if o.kind == "call" then
      by_params[o.req.params.PhoneNumber .. " " .. tostring(o.req.params.StatusCallbackUrl)] = o
    end
  end
  for _, l in ipairs(emu_log) do
    if l.op == "UpdatePhoneWebhook" then
      calls_seen = calls_seen + 1
      local key = (l.params.PhoneNumber or "") .. " " .. tostring(l.params.StatusCallbackUrl)
      local o = by_params[key]
      if not o then
        calls_unplanned = calls_unplanned + 1
      elseif l.verdict == "accepted" and l.code == "OK" then
        calls_ok[o.id] = (calls_ok[o.id] or 0) + 1
      end
    end
  end
  T.eq(calls_unplanned, 0, "the emulator received no UpdatePhoneWebhook that was not planned")
  for _, o in ipairs(outbox) do
    if o.kind == "call" and o.status == "done" and (calls_ok[o.id] or 0) < 1 then
      defect("done, but no OK answer in the emulator's log", o)
    end
  end
  for i = 1, math.min(#bad, 20) do io.stderr:write("soak: not accounted for: " .. bad[i] .. "\n") end
  T.eq(#bad, 0, "every outbox entry is accounted for:\n  " .. table.concat(bad, "\n  ", 1, math.min(#bad, 20)))

  -- Figures.
  local faulted = emu_stats.faulted or 0
  local latency = 0
  for _, l in ipairs(emu_log) do if (l.delay_ms or 0) > 0 then latency = latency + 1 end end
  local rkeys = {}
  for k, v in pairs(reasons) do rkeys[#rkeys + 1] = ("%6d  %s"):format(v, k) end
  table.sort(rkeys, function(a, b) return a:sub(9) < b:sub(9) end)
  local out = {}
  local function say(fmt, ...) out[#out + 1] = fmt:format(...) end
  say("chatapp-run soak (issue 19, B13), %s: %.0f s, %s", os.date("!%Y-%m-%d %H:%M UTC", t_begin), elapsed,
    asan and "ASan build" or "no sanitizer")
  say("machine: %s cores, load average at the end %s", io.popen("nproc"):read("l"),
    (E.read("/proc/loadavg") or "?"):match("^(%S+ %S+ %S+)"))
  local fc = {}
  for k, v in pairs(fail_codes) do fc[#fc + 1] = ("%s %d"):format(k, v) end
  table.sort(fc)
  say("watcher: --every %ds, %d numbers in %d spaces; %d cycles ok, %d failed (%s); exit %s on SIGTERM", EVERY_S, N, NSPACES,
    cycles_ok, cycles_failed, table.concat(fc, ", "), tostring(rc))
  say("emulator: %d API calls, %d faulted (%.1f%%) and %d delayed (%.1f%%): %s", emu_stats.requests or 0, faulted,
    100 * faulted / math.max(1, emu_stats.requests or 0), latency, 100 * latency / math.max(1, #emu_log),
    (function()
      local t = {}
      for k, v in pairs(emu_stats.faults_by_kind or {}) do t[#t + 1] = k .. " " .. v end
      table.sort(t)
      return table.concat(t, ", ")
    end)())
  say("changes: %d (PATCH), %d quality-rating transitions recorded; reloads: %d (%d broken, refused; %d loaded); "
    .. "%d summaries", patched, qt, reloads, broken_reloads, loaded, summaries)
  say("RSS after warm-up (%d s): median %d KiB in the first %d s, %d KiB in the last %d s: growth %+.1f%%; "
    .. "range %d-%d KiB; VmHWM %d KiB", WARM, m_first, WINDOW, m_last, WINDOW, growth * 100, lo, hi, hwm)
  say("descriptors after warm-up, between cycles: %d-%d (sockets at most %d; during warm-up at most %d; at the "
    .. "last reading: %s); others, at every reading: %s", fd_lo, fd_hi, sock_hi, warm_sockets,
    after[#after] and after[#after].socks or "?", base and base.other or "?")
  if db_first and db_last then
    say("state file: %d pages (%d KiB) after warm-up, %d pages (%d KiB) at the end; rows kept %d -> %d; "
      .. "%.0f -> %.0f bytes per row; %d free pages", db_first.pages, db_first.pages * db_first.page_size // 1024,
      db_last.pages, db_last.pages * db_last.page_size // 1024, db_first.rows, db_last.rows, bpr_first, bpr_last,
      db_last.free)
  end
  say("actions: %d reported, %d in the outbox (%d webhooks, %d calls); %d deliveries to the sink, %d "
    .. "UpdatePhoneWebhook calls reached the emulator", n_reported, #outbox, n_webhooks, n_calls, #deliveries,
    calls_seen)
  for _, l in ipairs(rkeys) do say("  %s", l) end
  local timeline = {}
  local step = math.max(1, #readings // 10)
  for i = 1, #readings, step do
    local r = readings[i]
    timeline[#timeline + 1] = ("%4.0fs %6d KiB %3d fds"):format(r.t, r.rss, r.fds)
  end
  say("readings (time, VmRSS, fds): %s", table.concat(timeline, "; "))
  print(table.concat(out, "\n"))
  if T.failures > 0 then
    -- the watcher's stdout/stderr, the state file, the emulator's log
    io.stderr:write(("soak: the files are kept for a look: %s\n"):format(dir:match("^(.*)/[^/]+$")))
  else
    E.cleanup()
  end
  return T.done()
end

-- Run as a script (make soak); tests/reliability/B13.lua requires it.
if arg[0]:match("soak%.lua$") then
  local seconds = tonumber(os.getenv("SOAK_SECONDS") or "") or 600
  for i = 3, #arg do
    if arg[i] == "--seconds" then seconds = assert(tonumber(arg[i + 1]), "--seconds takes a number") end
  end
  os.exit(S.run(seconds))
end

return S
