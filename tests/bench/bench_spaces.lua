-- Memory per space (issue 14): what a run holds per space of an ISV, with
-- one number per space so the per-space overhead dominates.  Runs
-- chatapp-run over COUNTS spaces (and 1, the baseline) against one local
-- emulator at a high quota, three ways (text output; with a new --state
-- file; with --max-response-bytes 65536, so that thousands of spaces are
-- fetched in one batch); prints peak RSS (/usr/bin/time) and the Lua
-- memory held (core.memory, by step of the run), minus the 1-space
-- baseline, per space.  With BEFORE_RUN, the same for that binary (an
-- older build), side by side in the same run.
--   chatapp-run --lua tests/bench/bench_spaces.lua CHATAPP_RUN CHATAPP_EMULATOR [COUNTS] [BEFORE_RUN]
-- COUNTS: comma-separated, default 1000,10000.  The limiter starts at most
-- 128 calls per window (CA_LIMITER_MAX_N): 10,000 spaces take about 85 s
-- a run, four runs per count and build.
--
-- Internal: chatapp-run --lua bench_spaces.lua --probe ENDPOINT SPACES STATE
-- drives one run like the CLI (chatapp.runner) and prints one JSON line:
-- core.memory after a full collection at each step.

local chatapp = require "chatapp"
local core = chatapp.core

---------------------------------------------------------------------------
-- The probe: one run, Lua memory held after each step.

if arg[1] == "--probe" then
  local endpoint, spaces_path, state_path = arg[2], arg[3], arg[4]
  local runner_mod = require "chatapp.runner"
  local report = require "chatapp.report"
  local marks = {}
  local function mark(name)
    collectgarbage()
    collectgarbage()
    marks[name] = core.memory()
  end
  mark("start")
  local client = assert(chatapp.client { endpoint = endpoint, access_key_id = "LTAIemulatorTestKey01",
    access_key_secret = "emulator-secret-not-real", limiter = "process", qps = 1000 })
  local options = { spaces = spaces_path, output = "none", state = state_path ~= "" and state_path or nil,
    fetch_memory_mb = 512, max_response_bytes = 64 * 1024 * 1024, memory_limit_mb = 64 }
  local host = { client = function() return client, "bench" end, log = function() end,
    http = function() return nil, "no webhooks in the bench" end }
  local r = runner_mod.new(options, host)
  assert(r:load_string("count.lua", [[
local chatapp = require "chatapp"
return chatapp.policy { name = "count", where = { quality_rating = "RED" } }]]))
  -- Hooks at the ends of the steps (the same in older builds).
  local Runner = getmetatable(r).__index
  local spaces_fn, fetch_fn = Runner.spaces, Runner.fetch
  Runner.spaces = function(self, ...)
    local a, b = spaces_fn(self, ...)
    mark("spaces")
    return a, b
  end
  Runner.fetch = function(self, ...)
    local a, b, c = fetch_fn(self, ...)
    mark("fetch")
    return a, b, c
  end
  local new = report.new
  report.new = function(...)
    local rep = new(...)
    local count, space_fn, transitions_fn = 0, rep.space, rep.transitions
    rep.space = function(self, ...)
      space_fn(self, ...)
      count = count + 1
      if count == r.nspaces then mark("report") end
    end
    rep.transitions = function(self, ...)
      mark("state")
      return transitions_fn(self, ...)
    end
    return rep
  end
  local load = require("chatapp.spaces").load
  r.nspaces = #assert(load(spaces_path))
  local rep = r:run {}
  mark("end")
  assert(rep.status == "ok", rep.message)
  local fetched = 0
  for _, s in ipairs(rep.spaces) do fetched = fetched + (s.numbers or 0) end
  marks.numbers = fetched
  print(assert(chatapp.json.encode(marks)))
  rep = nil
  os.exit(0)
end

---------------------------------------------------------------------------
-- The benchmark

package.path = arg[0]:match("^(.*)/bench/") .. "/lua/?.lua;" .. package.path
local E = require "e2e"
local counts = {}
for c in (arg[3] or "1000,10000"):gmatch("%d+") do counts[#counts + 1] = tonumber(c) end
local before = arg[4]
local max = 1
for _, c in ipairs(counts) do max = math.max(max, c) end
local TIME = "/usr/bin/time"
if not os.execute("test -x " .. TIME) then
  io.stderr:write("bench_spaces: needs GNU time at /usr/bin/time (Debian: apt-get install time)\n")
  os.exit(2)
end

local dir = E.tmpdir()
-- One fixture of max spaces, one number each; spaces files of the first N.
local function id(s) return ("C2099%010d"):format(s) end
do
  local spaces = { { cust_space_id = "", default = true, account = "1000000000000001", label = "own",
    phone_numbers = chatapp.json.array {} } }
  for s = 1, max do
    spaces[#spaces + 1] = { cust_space_id = id(s), label = "Space " .. s, phone_numbers = { {
      PhoneNumber = ("86%011d"):format(s), VerifiedName = "Shop " .. s, Status = "CONNECTED",
      QualityRating = "GREEN", MessagingLimitTier = "TIER_1K", CodeVerificationStatus = "VERIFIED" } } }
  end
  E.write(dir .. "/fixture.json", assert(chatapp.json.encode { spaces = spaces }))
end
local function spaces_file(n)
  local list = {}
  for s = 1, n do list[s] = { cust_space_id = id(s), label = "Space " .. s } end
  return E.write(("%s/spaces-%d.json"):format(dir, n), assert(chatapp.json.encode(chatapp.json.array(list))))
end
local policy = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "count", where = { quality_rating = "RED" } }]])

local emu = E.emulator { "--data", dir .. "/fixture.json", "--quota", "1000000" }

-- Peak RSS (KB) of one chatapp-run over n spaces.
local function cli(bin, n, mode)
  local args = { "--endpoint", emu.url, "--limiter", "process", "--spaces", spaces_file(n), "--qps", "1000", policy }
  if mode == "state" then
    table.insert(args, 1, E.tmpdir() .. "/state.db")
    table.insert(args, 1, "--state")
  elseif mode == "batch" then
    -- answers of at most 64 KiB: 8,192 spaces fetched at a time
    -- (fetch-memory-mb / max-response-bytes) instead of 8
    table.insert(args, 1, "65536")
    table.insert(args, 1, "--max-response-bytes")
  end
  local out = E.tmpdir() .. "/rss"
  local r = E.run(args, nil, { bin = bin, wrap = TIME .. " -f %M -o " .. E.quote(out) })
  if r.code ~= 0 then error(("%s over %d spaces (%s): exit %s: %s"):format(bin, n, mode, r.code, r.err)) end
  return tonumber((E.read(out) or ""):match("(%d+)%s*$")) or error("no peak RSS from " .. TIME)
end

-- Lua memory by step (bytes) of one run driven by the probe.
local function probe(bin, n)
  local state = E.tmpdir() .. "/state.db"
  local r = E.run({ "--lua", arg[0], "--probe", emu.url, spaces_file(n), state }, nil, { bin = bin })
  if r.code ~= 0 then error(("probe of %s over %d spaces: exit %s: %s"):format(bin, n, r.code, r.err)) end
  local m = assert(chatapp.json.decode(r.out:match("[^\n]+")), r.out)
  assert(m.numbers == n, ("%d numbers fetched of %d"):format(m.numbers, n))
  return m
end

local builds = { { before and "after" or "this", arg[1] } }
if before then table.insert(builds, 1, { "before", before }) end

io.write(("chatapp-run memory per space, %s, 1 number per space; per space = (N spaces - 1 space) / (N - 1)\n")
  :format(os.date("!%Y-%m-%d %H:%M UTC")))
local steps = { "spaces", "fetch", "report", "state", "end" }
local results = {}
for _, b in ipairs(builds) do
  local name, bin = b[1], b[2]
  local base = { text = cli(bin, 1, "text"), state = cli(bin, 1, "state"), batch = cli(bin, 1, "batch"),
    probe = probe(bin, 1) }
  io.write(("%-7s %6d space   peak RSS %6.1f MB                    with --state %6.1f MB"
    .. "                    in one batch %6.1f MB\n"):format(name, 1, base.text / 1024, base.state / 1024,
    base.batch / 1024))
  for _, n in ipairs(counts) do
    local row = { text = cli(bin, n, "text"), state = cli(bin, n, "state"), batch = cli(bin, n, "batch"),
      probe = probe(bin, n) }
    results[#results + 1] = { name = name, n = n, row = row, base = base }
    local per = function(k) return (row[k] - base[k]) * 1024 / (n - 1) end
    io.write(("%-7s %6d spaces  peak RSS %6.1f MB (%5.2f KB/space)  with --state %6.1f MB (%5.2f KB/space)"
      .. "  in one batch %6.1f MB (%5.2f KB/space)\n"):format(name, n, row.text / 1024, per("text") / 1024,
      row.state / 1024, per("state") / 1024, row.batch / 1024, per("batch") / 1024))
    local cells, prev, prev_base = {}, row.probe.start, base.probe.start
    for _, s in ipairs(steps) do
      local v, bv = row.probe[s] or prev, base.probe[s] or prev_base
      cells[#cells + 1] = ("%s %+d"):format(s, math.floor(((v - prev) - (bv - prev_base)) / (n - 1) + 0.5))
      prev, prev_base = v, bv
    end
    io.write(("        Lua held at the end %6.1f MB (%d B/space); by step, B/space: %s\n"):format(
      row.probe["end"] / 1048576, math.floor((row.probe["end"] - base.probe["end"]) / (n - 1) + 0.5),
      table.concat(cells, ", ")))
    io.flush()
  end
end
emu:stop()
E.cleanup()
