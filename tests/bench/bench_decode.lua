-- Typed results benchmark (issue 6): an answer of 100,000 numbers (about
-- 49 MB of JSON) decoded into PhoneNumber values, against plain
-- cjson.decode of the same bytes into tables, side by side in one run:
-- decode + typing time, memory held, and a filter reading two fields.
--   chatapp-run --lua tests/bench/bench_decode.lua [N]
--   chatapp-run --lua tests/bench/bench_decode.lua N once MODE   (callgrind)
local chatapp = require "chatapp"
local core = chatapp.core
-- lua-cjson is only the baseline here; chatapp does not link it.
local have_cjson, cjson = pcall(require, "cjson")
if not have_cjson then
  error("bench_decode.lua compares against lua-cjson's cjson.decode, which is not installed:\n"
    .. "  apt-get install lua-cjson   (scripts/setup.sh does)\n" .. tostring(cjson), 0)
end
local N = tonumber(arg[1] or "100000")

-- A realistic answer: 100 sub-customers' worth of numbers sharing their
-- callback URLs and queues, varied statuses, ratings and tiers.
local statuses = { "CONNECTED", "CONNECTED", "CONNECTED", "FLAGGED", "RESTRICTED", "BANNED", "OFFLINE" }
local ratings = { "GREEN", "GREEN", "YELLOW", "RED", "UNKNOWN" }
local tiers = { "TIER_1K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED", "TIER_250", "TIER_2K" }
local parts = {}
for i = 1, N do
  local s = i % 100
  parts[i] = ('{"PhoneNumber":"86138%08d","VerifiedName":"Customer %d Support","Status":"%s",'
    .. '"QualityRating":"%s","MessagingLimitTier":"%s","CodeVerificationStatus":"VERIFIED",'
    .. '"NameStatus":"Approval","NewNameStatus":"Approval",'
    .. '"UpCallbackUrl":"https://hooks.example.com/cams/C2023%06d/inbound",'
    .. '"StatusCallbackUrl":"https://hooks.example.com/cams/C2023%06d/status",'
    .. '"UpQueue":"Alicom-Queue-%d-ChatAppInbound","StatusQueue":"Alicom-Queue-%d-ChatAppStatus",'
    .. '"IsOfficial":"N"}')
    :format(i, s, statuses[i % #statuses + 1], ratings[i % #ratings + 1], tiers[i % #tiers + 1],
            s, s, 1000000 + s, 1000000 + s)
end
local body = '{"RequestId":"B","Code":"OK","Message":"SUCCESS","PhoneNumbers":[' ..
  table.concat(parts, ",") .. ']}'
parts = nil

-- `bench_decode.lua N once MODE`: one decode of the answer (MODE none,
-- cjson, json for chatapp.json.decode, typed) and exit without closing
-- the state, for instruction counts under callgrind: MODE's count minus
-- none's is the decode (docs/benchmarks.md).
if arg[2] == "once" then
  local decode = {
    none = function() return true end,
    cjson = function() return cjson.decode(body) end,
    json = function() return assert(chatapp.json.decode(body)) end,
    typed = function() return assert(core.decode_phone_numbers(body)) end,
  }
  local fn = assert(decode[arg[3]], "MODE: none, cjson, json or typed")
  collectgarbage()
  collectgarbage()
  assert(fn() ~= nil)
  io.stdout:flush()
  os.exit(0, false)
end

local function gc()
  collectgarbage()
  collectgarbage()
end

-- Median of 5 timed runs (CPU seconds).
local function timed(fn)
  local t = {}
  for i = 1, 5 do
    gc()
    local c0 = os.clock()
    local v = fn()
    t[i] = os.clock() - c0
    v = nil
  end
  table.sort(t)
  return t[3]
end

-- Bytes the value returned by fn holds, after collection.
local function held(fn)
  gc()
  local before = collectgarbage("count")
  local v = fn()
  gc()
  local after = collectgarbage("count")
  return (after - before) * 1024, v
end

-- Side by side: plain and typed alternate, 7 pairs; the medians of the
-- times and of the per-pair ratios (robust to load from other programs).
local function side_by_side(a, b)
  local ta, tb, ratio = {}, {}, {}
  for i = 1, 7 do
    gc()
    local c0 = os.clock()
    local v = a()
    ta[i] = os.clock() - c0
    v = nil
    gc()
    c0 = os.clock()
    v = b()
    tb[i] = os.clock() - c0
    v = nil
    ratio[i] = tb[i] / ta[i]
  end
  table.sort(ta)
  table.sort(tb)
  table.sort(ratio)
  return ta[4], tb[4], ratio[4]
end

local t_plain, t_typed, t_ratio = side_by_side(
  function() return cjson.decode(body) end,
  function() return assert(core.decode_phone_numbers(body)) end)
-- The same with a full collection inside the timed part: the typed path
-- decodes into tables with the collector paused and leaves them as
-- garbage, which the figure above does not count.
local g_plain, g_typed, g_ratio = side_by_side(
  function() local v = cjson.decode(body); gc(); return v end,
  function() local v = assert(core.decode_phone_numbers(body)); gc(); return v end)
local m_plain, plain = held(function() return cjson.decode(body) end)
local m_typed, typed = held(function() return assert(core.decode_phone_numbers(body)) end)

local arr = plain.PhoneNumbers
local function plain_filter(n) return n.Status == "CONNECTED" and n.QualityRating == "RED" end
local function typed_filter(n) return n.status == "CONNECTED" and n.quality_rating == "RED" end
local hits_p, hits_t = 0, 0
local f_plain = timed(function()
  local c = 0
  for _ = 1, 5 do for _, n in ipairs(arr) do if plain_filter(n) then c = c + 1 end end end
  hits_p = c
end)
local f_typed = timed(function()
  local c = 0
  for _ = 1, 5 do for _, n in ipairs(typed) do if typed_filter(n) then c = c + 1 end end end
  hits_t = c
end)
assert(hits_p == hits_t and hits_p > 0, "both filters agree")

print(("chatapp-run typed results benchmark, %s"):format(os.date("!%Y-%m-%d %H:%M UTC")))
print(("answer: %d numbers, %.1f MB of JSON"):format(N, #body / 1e6))
print(("decode:  cjson.decode %.3f s   typed %.3f s   ratio %.2f (target <= 1.5)"):format(t_plain, t_typed, t_ratio))
print(("decode + full collection:  cjson.decode %.3f s   typed %.3f s   ratio %.2f"):format(g_plain, g_typed, g_ratio))
print(("memory:  plain tables %.1f MiB   typed list %.1f MiB   ratio %.2f (target <= 0.40)")
  :format(m_plain / 1048576, m_typed / 1048576, m_typed / m_plain))
print(("filter (2 fields, 5 passes): plain %.3f s   typed %.3f s   ratio %.2f (target <= 2)")
  :format(f_plain, f_typed, f_typed / f_plain))
print(("per number: typed decode %.2f us, filter %.0f ns, held %.0f bytes")
  :format(t_typed / N * 1e6, f_typed / (5 * N) * 1e9, m_typed / N))

-- History (core.phone_attach, with --state): what attaching a previous
-- snapshot to every number adds, the previous list not counted.
local previous = assert(core.decode_phone_numbers(body))
local since = {}
for i, f in ipairs(core.phone_tracked()) do since[f] = 1700000000 + i end
local m_hist = held(function()
  for i = 1, #typed do core.phone_attach(typed[i], previous[i], 1700000000, since, 1700000100) end
  return true
end)
print(("history: %.0f bytes per number with history (previous snapshot not counted)"):format(m_hist / N))
