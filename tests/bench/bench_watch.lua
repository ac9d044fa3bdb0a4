-- Watch-mode benchmark (issue 14): a watcher (chatapp-run --every 1s) over
-- 1,000 numbers in 100 spaces of 10 for 200 cycles against
-- chatapp-emulator at a high quota, with a state file, /metrics served
-- and two policies that read every number (a filter reading its fields
-- and n:changed(); a where.became that sends a webhook to the emulator's
-- sink).  Every 5 cycles 10 numbers change their QualityRating through
-- the emulator's control route, so the cycles record transitions.
--   - resident memory (VmRSS, RssAnon) after cycle 10 and after the last,
--     and their ratio (target: at most 5% growth); VmHWM;
--   - CPU (user + system) per cycle between cycle 10 and the last, and
--     the wall time of a cycle as the watcher logs it;
--   - SIGTERM at the end: exit 0.
-- Memory is read 0.15 s after the watcher logs a cycle's end, between
-- cycles (a cycle takes well under the 1 s interval here).
--
--   chatapp-run --lua tests/bench/bench_watch.lua CHATAPP_RUN CHATAPP_EMULATOR
--       [--cycles N] [--spaces N] [--per N] [--timeout S]
--       [--leaks [--no-valgrind] | --memory]
--
-- --leaks: the leak check (a ctest, e2e/watch_leaks): a short watch
-- (default 20 cycles of 10 spaces) under valgrind memcheck
-- --leak-check=full; fails unless valgrind reports no error, nothing
-- definitely or indirectly lost, and the watcher exits 0 on SIGTERM.
-- --no-valgrind for a sanitizer build, where LeakSanitizer checks at exit
-- (a leak is a non-zero exit status).
-- --memory: a ctest (e2e/watch_memory): 12 cycles; between cycles the
-- watcher keeps at most half of a cycle's peak anonymous memory, and its
-- resident size stays within 5%.
-- --timeout: seconds for all the cycles (default 90 for the ctests).
-- MALLOC_ARENA_MAX and GLIBC_TUNABLES are passed on to the watcher.
local dir0 = arg[0]:match("^(.*)/") or "."
package.path = dir0 .. "/?.lua;" .. dir0 .. "/../lua/?.lua;" .. package.path
local E = require "e2e"
local fleet = require "fleet"
local prom = require "prom"
local chatapp = require "chatapp"
local core = chatapp.core

local opt = { cycles = nil, spaces = nil, per = 10 }
do
  local i = 3
  while arg[i] do
    local a = arg[i]
    if a == "--leaks" or a == "--no-valgrind" or a == "--memory" then
      opt[a:sub(3):gsub("-", "_")] = true
      i = i + 1
    elseif a == "--cycles" or a == "--spaces" or a == "--per" or a == "--timeout" then
      opt[a:sub(3)] = assert(tonumber(arg[i + 1]), a .. " takes a number")
      i = i + 2
    else
      error("unknown argument " .. a)
    end
  end
end
local CYCLES = opt.cycles or (opt.leaks and 20 or opt.memory and 12 or 200)
local NSPACES = opt.spaces or (opt.leaks and 10 or 100)
local PER = opt.per
local N = NSPACES * PER
local EARLY = math.min(10, CYCLES // 2) -- the first memory reading
local PATCH_EVERY, PATCH_N = 5, math.min(10, N)
local SETTLE_MS = 150 -- from a cycle's log line to the reading
local valgrind = opt.leaks and not opt.no_valgrind
local checking = opt.leaks or opt.memory -- a ctest, not the benchmark

local dir = E.tmpdir()
local fixture = E.write(dir .. "/fixture.json", fleet.fixture(NSPACES, PER))
local spaces_file = E.write(dir .. "/spaces.json", fleet.spaces_json(NSPACES))
local emu = E.emulator { "--data", fixture, "--quota", "100000" }
local http = assert(core.http_client { timeout_ms = 10000, max_attempts = 1 })

local touch = E.write(dir .. "/touch-all.lua", [[
local chatapp = require "chatapp"
-- Reads every number's fields and what changed; logs the changes.
return chatapp.policy {
  name = "touch-all",
  filter = function(n)
    local weight = #n.phone_number + #(n.verified_name or "") + #(n.status or "")
      + (n.quality_level or 0) + (n.messaging_limit or 0) + #(n.up_callback_url or "")
      + #(n.status_callback_url or "") + #(n.cust_space_id or "")
    local changed, fields = n:changed()
    return weight > 0 and changed and #fields > 0
  end,
  decide = function(n, plan)
    local _, old, new = n:changed("quality_rating")
    plan:log("%s: %s -> %s", n.phone_number, tostring(old), tostring(new))
  end,
}]])
local pager = E.write(dir .. "/pager.lua", ([[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "page-on-red",
  where = { became = { quality_rating = "RED" } },
  decide = function(n, plan)
    plan:webhook { url = %q, json = { number = n.phone_number, space = n.cust_space_id } }
  end,
}]]):format(emu.url .. "/_emulator/sink/pager"))

-- The numbers' ratings as the emulator serves them now.
local rating, red0 = {}, 0
for i = 1, N do
  rating[i] = fleet.rating(i)
  if rating[i] == "RED" then red0 = red0 + 1 end
end
local next_rating = { GREEN = "YELLOW", YELLOW = "RED", RED = "GREEN" }
local patched, to_red = 0, 0

-- Round r: PATCH_N numbers spread over the spaces take their next rating.
local function patch(r)
  local reqs, list = {}, {}
  for j = 1, PATCH_N do
    local i = (r * 37 + j * 101) % N + 1
    if not list[i] then
      list[i] = next_rating[rating[i]]
      local s = (i - 1) // PER + 1
      reqs[#reqs + 1] = { method = "PATCH",
        url = ("%s/_emulator/numbers/%s?space=%s"):format(emu.url, fleet.phone(i), fleet.space_id(s)),
        body = ('{"QualityRating":"%s"}'):format(list[i]) }
    end
  end
  local res, errs = http:batch(reqs)
  for k = 1, #reqs do
    assert(res[k] and res[k].status == 200, "PATCH failed: " .. tostring(errs and errs[k]))
  end
  for i, v in pairs(list) do
    rating[i] = v
    patched = patched + 1
    if v == "RED" then to_red = to_red + 1 end
  end
end

local function proc_status(pid)
  local s = E.read("/proc/" .. pid .. "/status") or ""
  local function kb(name) return tonumber(s:match(name .. ":%s*(%d+)")) end
  return { rss = kb("VmRSS"), anon = kb("RssAnon"), hwm = kb("VmHWM"), threads = kb("Threads") }
end

local p = io.popen("getconf CLK_TCK")
local TICK = tonumber(p:read("l")) or 100
p:close()
local function cpu_s(pid)
  local s = E.read("/proc/" .. pid .. "/stat") or ""
  local f = {}
  for x in s:gsub("^.-%) ", ""):gmatch("%S+") do f[#f + 1] = x end
  return ((tonumber(f[12]) or 0) + (tonumber(f[13]) or 0)) / TICK
end

local args = { "--endpoint", emu.url, "--limiter", "process", "--qps", "1000", "--max-in-flight", "16",
               "--every", "1s", "--state", dir .. "/state.db", "--listen", "127.0.0.1:0", "-v",
               "--spaces", spaces_file, touch, pager }
local env = { MALLOC_ARENA_MAX = os.getenv("MALLOC_ARENA_MAX") or false,
              GLIBC_TUNABLES = os.getenv("GLIBC_TUNABLES") or false }
local vglog = dir .. "/valgrind.log"
local wrap = valgrind and { "valgrind", "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite,indirect",
  "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99", "--track-fds=no",
  "--log-file=" .. vglog } or nil
local t_start = core.monotonic()
local w = E.start(args, env, { wrap = wrap })

-- Cycle lines: "cycle N: ok (X s)", "cycle N: ok again after ...  (X s)",
-- "cycle N failed (...)".
local function cycles(text)
  local done, failed, wall = 0, 0, {}
  for line in text:gmatch("[^\n]+") do
    local n, rest = line:match("cycle (%d+)(.*)$")
    n = tonumber(n)
    if n and rest:match("^: ok") then
      done = math.max(done, n)
      wall[n] = tonumber(rest:match("%(([%d.]+) s%)$"))
    elseif n and rest:match("^ failed") then
      done = math.max(done, n)
      -- the cycle SIGTERM cut short (when it came during one) fails
      if n <= CYCLES then failed = failed + 1 end
    end
  end
  return done, failed, wall
end

-- Follow the cycles: a reading of memory and CPU SETTLE_MS after each
-- cycle's line, a patch round every PATCH_EVERY cycles.
local readings, seen, limit = {}, 0, opt.timeout or checking and 90 or 10 * CYCLES + 60
local deadline = core.monotonic() + limit
-- On a failure, stop the watcher and the emulator before raising.
local ok, why = xpcall(function()
  while seen < CYCLES do
    assert(core.monotonic() < deadline, ("the watcher did %d of %d cycles in %d s: %s"):format(seen, CYCLES,
      limit, w.err():sub(-2000)))
    assert(E.alive(w.pid), "the watcher died: " .. w.err():sub(-2000))
    local done = cycles(w.err())
    if done > seen then
      E.sleep_ms(SETTLE_MS)
      local st = proc_status(w.pid)
      st.cpu, st.t, st.n = cpu_s(w.pid), core.monotonic(), done
      readings[done] = st
      for c = seen + 1, done do
        if c % PATCH_EVERY == 0 and c < CYCLES then patch(c // PATCH_EVERY) end
      end
      seen = done
    else
      E.sleep_ms(20)
    end
  end
end, debug.traceback)
if not ok then
  w.kill("KILL")
  emu:stop()
  E.cleanup()
  error(why, 0)
end
local url = w.err():match("serving /metrics and /healthz on (http://[%d.:]+)")
local metrics_body
if url then
  local res = http:batch { { url = url .. "/metrics", method = "GET" } }
  metrics_body = res[1] and res[1].body
end
w.kill("TERM")
local rc = w.wait(30000)
local err = w.err()
local total, failed, wall = cycles(err)
local deliveries = #(emu:deliveries() or {})
emu:stop()
local db = assert(core.sqlite_open(dir .. "/state.db", { readonly = true }))
local transitions = assert(db:query("SELECT count(*) AS n FROM transitions"))[1].n
db:close()

local parsed = metrics_body and prom.parse(metrics_body)
local ok_metric = parsed and prom.find(parsed, "chatapp_watch_cycles_total", { result = "ok" })[1]
local gauges = parsed and #prom.find(parsed, "chatapp_number_quality_level", {}) or 0

-- The reading of cycle c, or the first after it.
local function at(c)
  for k = c, total do if readings[k] then return readings[k], k end end
  return nil
end

if opt.memory then
  -- Between cycles the watcher gives back what the cycle's Lua state
  -- used: its anonymous memory then is well under the peak of a cycle
  -- (VmHWM less the file-backed pages).  Without malloc_trim it kept most
  -- of the peak, and the resident size swung by some 15% from cycle to
  -- cycle (20.9-24.4 MiB), looking like growth.
  local T = require "testlib"
  T.eq(rc, 0, "the watcher exits 0 on SIGTERM: " .. err:sub(-2000))
  T.check(total >= CYCLES and failed == 0, ("%d cycles, %d failed: %s"):format(total, failed, err:sub(-2000)))
  local first, checked, lo, hi = nil, 0, math.huge, 0
  for c = 3, CYCLES do
    local r = readings[c]
    if r then
      local peak_anon = r.hwm - (r.rss - r.anon)
      first = first or r
      checked = checked + 1
      lo, hi = math.min(lo, r.rss), math.max(hi, r.rss)
      T.check(r.anon <= peak_anon / 2, ("after cycle %d: %d KiB anonymous between cycles, the cycle's peak %d KiB: "
        .. "at most half is kept"):format(c, r.anon, peak_anon))
    end
  end
  T.check(checked >= CYCLES - 4, ("memory read after %d of cycles 3 to %d"):format(checked, CYCLES))
  T.check(hi <= lo * 1.05, ("between cycles RSS stays within 5%%: %d to %d KiB"):format(lo, hi))
  io.stderr:write(("watch memory: %d cycles of %d numbers; between cycles RSS %d-%d KiB, RssAnon %d KiB; "
    .. "VmHWM %d KiB\n"):format(total, N, lo, hi, first and first.anon or -1, first and first.hwm or -1))
  E.cleanup()
  os.exit(T.done())
end

if opt.leaks then
  local T = require "testlib"
  local vg = E.read(vglog) or ""
  T.eq(rc, 0, "the watcher exits 0 on SIGTERM" .. (valgrind and " (valgrind: 99 = errors or leaks)" or "")
    .. ":\n" .. err:sub(-3000) .. "\n" .. vg:sub(-6000))
  T.check(total >= CYCLES and failed == 0, ("%d cycles, %d failed: %s"):format(total, failed, err:sub(-2000)))
  T.check(err:find("stopped by SIGTERM after", 1, true), "says it stopped: " .. err:sub(-1000))
  T.check(transitions > N, ("transitions recorded beyond the first cycle's: %d"):format(transitions))
  if valgrind then
    local definite = tonumber((vg:match("definitely lost: ([%d,]+) bytes") or "0"):gsub(",", ""), 10)
    local indirect = tonumber((vg:match("indirectly lost: ([%d,]+) bytes") or "0"):gsub(",", ""), 10)
    local errors = tonumber(vg:match("ERROR SUMMARY: (%d+) errors"))
    T.check(vg:find("LEAK SUMMARY", 1, true) or vg:find("no leaks are possible", 1, true),
      "valgrind checked for leaks: " .. vg:sub(-2000))
    T.eq(definite, 0, "definitely lost bytes:\n" .. vg:sub(-6000))
    T.eq(indirect, 0, "indirectly lost bytes")
    T.eq(errors, 0, "valgrind errors:\n" .. vg:sub(-6000))
    local summary = {}
    for l in vg:gmatch("[^\n]+") do
      if l:find("in use at exit", 1, true) or l:find("lost:", 1, true) or l:find("ERROR SUMMARY", 1, true)
          or l:find("All heap blocks", 1, true) then
        summary[#summary + 1] = l:gsub("^==%d+== *", "")
      end
    end
    io.stderr:write(("watch under valgrind: %d cycles of %d numbers in %.0f s\n  %s\n"):format(total, N,
      core.monotonic() - t_start, table.concat(summary, "\n  ")))
  end
  E.cleanup()
  os.exit(T.done())
end

assert(rc == 0, ("the watcher exited %s on SIGTERM, not 0: %s"):format(tostring(rc), err:sub(-2000)))
assert(err:find("stopped by SIGTERM after", 1, true), "it says it stopped: " .. err:sub(-1000))
E.cleanup()

local early, early_n = at(EARLY)
local last, last_n = at(CYCLES)
assert(early and last, "no memory reading after cycle " .. EARLY .. " or " .. CYCLES)
local span = last_n - early_n
local cpu_per = (last.cpu - early.cpu) / span
local wall_per = (last.t - early.t) / span
local walls = {}
for c = early_n + 1, last_n do if wall[c] then walls[#walls + 1] = wall[c] end end
table.sort(walls)
local sum = 0
for _, v in ipairs(walls) do sum = sum + v end
local growth = last.rss / early.rss
local anon_growth = last.anon / early.anon

print(("chatapp-run watch benchmark, %s: %d numbers in %d spaces of %d, --every 1s, %d cycles"):format(
  os.date("!%Y-%m-%d %H:%M UTC"), N, NSPACES, PER, total))
print(("%d cycles ok, %d failed; /metrics says %s ok; %d per-number gauges; exit %d on SIGTERM"):format(
  total - failed, failed, ok_metric and ("%d"):format(ok_metric.value) or "?", gauges, rc))
print(("%d numbers patched in %d rounds (%d to RED); %d transitions recorded (%d at the first cycle); "
  .. "%d pages delivered (want %d: %d RED at the first cycle, %d turned RED)"):format(patched,
  (CYCLES - 1) // PATCH_EVERY, to_red, transitions, N, deliveries, red0 + to_red, red0, to_red))
if os.getenv("MALLOC_ARENA_MAX") then print("MALLOC_ARENA_MAX=" .. os.getenv("MALLOC_ARENA_MAX")) end
print("memory, read 0.15 s after a cycle's log line (KiB):")
print("  after cycle    VmRSS  RssAnon   VmHWM  threads")
local marks, shown = { 1, 2, 5, EARLY, 25, 50, 100, 150, CYCLES }, {}
table.sort(marks)
for _, c in ipairs(marks) do
  local r, k = at(c)
  if r and not shown[k] and k <= CYCLES then
    shown[k] = true
    print(("  %11d %8d %8d %7d %8d"):format(k, r.rss, r.anon, r.hwm, r.threads))
  end
end
print(("RSS after cycle %d: %.1f MiB; after cycle %d: %.1f MiB; growth %.3f (%+.1f%%), anonymous %.3f (%+.1f%%)")
  :format(early_n, early.rss / 1024, last_n, last.rss / 1024, growth, (growth - 1) * 100, anon_growth,
    (anon_growth - 1) * 100))
-- One reading can fall into a dip (glibc gave pages back): medians of
-- ten readings around cycle EARLY and of the last ten, the range between.
local function median_rss(from, to)
  local v = {}
  for c = math.max(1, from), to do if readings[c] then v[#v + 1] = readings[c].rss end end
  table.sort(v)
  return v[(#v + 1) // 2], #v
end
local m_early = median_rss(EARLY - 4, EARLY + 5)
local m_last = median_rss(last_n - 9, last_n)
local lo, hi, peak_anon = math.huge, 0, 0
for c = early_n, last_n do
  local r = readings[c]
  if r then
    lo, hi, peak_anon = math.min(lo, r.rss), math.max(hi, r.rss), math.max(peak_anon, r.anon)
  end
end
print(("medians of 10 readings: cycles %d-%d %.1f MiB, cycles %d-%d %.1f MiB: growth %.3f; from cycle %d on, "
  .. "RSS ranged %.1f-%.1f MiB (RssAnon peak %.1f MiB)"):format(math.max(1, EARLY - 4), EARLY + 5, m_early / 1024,
  last_n - 9, last_n, m_last / 1024, m_last / m_early, early_n, lo / 1024, hi / 1024, peak_anon / 1024))
print(("CPU per cycle (user + system, cycles %d to %d): %.1f ms; wall per cycle (logged): median %.0f ms, "
  .. "mean %.0f ms, max %.0f ms; %.3f s between cycle starts"):format(early_n + 1, last_n, cpu_per * 1e3,
    walls[(#walls + 1) // 2] * 1e3, sum / #walls * 1e3, walls[#walls] * 1e3, wall_per))
if walls[#walls] * 1e3 + SETTLE_MS > 1000 then
  print("note: some cycles took longer than 0.85 s: some readings fell into the next cycle")
end
print(("verdict: RSS growth %+.1f%% from cycle %d to %d: %s the 5%% target"):format((growth - 1) * 100, early_n,
  last_n, growth <= 1.05 and "within" or "OVER"))
