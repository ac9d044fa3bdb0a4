-- The Prometheus metrics (--metrics FILE, /metrics of --listen): they parse
-- as the text format (tests/lua/prom.lua, a strict parser, tested here
-- first), carry one series per number (chatapp_number_info,
-- chatapp_number_quality_level, chatapp_number_messaging_limit,
-- chatapp_number_status) with the right values, and hostile label values
-- are escaped so that they parse back to what they were.
--
--   chatapp-run --lua test_metrics.lua [CHATAPP_RUN]
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local prom = require "prom"
local chatapp = require "chatapp"
local core = chatapp.core
local report = require "chatapp.report"

local function numbers(space, list)
  local body = assert(chatapp.json.encode { RequestId = "R1", PhoneNumbers = list })
  return assert(core.decode_phone_numbers(body, space))
end

local function one(doc, name, want, what)
  local list = prom.find(doc, name, want)
  T.eq(#list, 1, (what or name) .. ": one series")
  return list[1]
end

local function metrics_of(spaces)
  local r = report.new({ output = "none" }, {}, function() end)
  for _, s in ipairs(spaces) do r:space(s.space, s.list, s.err) end
  local text = r:metrics_text()
  local doc, err = prom.parse(text)
  T.check(doc, "parses: " .. tostring(err) .. "\n" .. text)
  return doc or { families = {}, order = {} }, text
end

T.cases {
  { "the parser: valid documents", function()
    local doc = assert(prom.parse(table.concat({
      "# HELP a_total Things\\n done \\\\ here.",
      "# TYPE a_total counter",
      'a_total{x="1",y="a\\"b\\\\c\\nd"} 3',
      'a_total{x="2",} 1.5e3 1700000000000',
      "# a comment",
      "",
      "# TYPE b gauge",
      "b +Inf",
      "b{k=\"v\"} -Inf",
      "b{k=\"w\"} NaN",
      "b{k=\"é😀\27\"} -0.25",
      "c:d 1",
      "# TYPE h histogram",
      'h_bucket{le="1"} 0',
      'h_bucket{le="+Inf"} 2',
      "h_sum 3",
      "h_count 2",
      "" }, "\n")))
    T.eq(doc.families.a_total.help, "Things\n done \\ here.")
    T.eq(doc.families.a_total.type, "counter")
    T.eq(one(doc, "a_total", { x = "1" }).labels.y, 'a"b\\c\nd')
    T.eq(one(doc, "a_total", { x = "2" }).value, 1500.0)
    T.eq(one(doc, "a_total", { x = "2" }).timestamp, 1700000000000)
    T.eq(#prom.find(doc, "b"), 4)
    T.eq(prom.find(doc, "b", { k = "v" })[1].value, -math.huge)
    local nan = prom.find(doc, "b", { k = "w" })[1].value
    T.check(nan ~= nan, "NaN")
    T.eq(prom.find(doc, "b", { k = "é😀\27" })[1].value, -0.25)
    T.eq(#prom.find(doc, "h_bucket"), 2)
    T.eq(doc.families.h.type, "histogram")
    T.eq(#doc.families.h.samples, 4)
    T.eq(prom.parse("").order and #prom.parse("").order, 0, "empty")
  end },
  { "the parser: what Prometheus refuses", function()
    local bad = {
      { "x 1", "no newline" },
      { "1x 1\n", "bad metric name" },
      { "x-y 1\n", "bad metric name" },
      { 'x{1a="b"} 1\n', "bad label name" },
      { 'x{__name__="b"} 1\n', "bad label name" },
      { 'x{a="b",a="c"} 1\n', "twice" },
      { 'x{a=b} 1\n', "not quoted" },
      { 'x{a="b} 1\n', "not closed" },
      { 'x{a="\\t"} 1\n', "bad escape" },
      { 'x{a="b" c="d"} 1\n', "expected , or }" },
      { "x\n", "no value" },
      { "x one\n", "bad value" },
      { "x 0x10\n", "bad value" },
      { "x inf\n", "bad value" },
      { "x 1 2.5\n", "bad timestamp" },
      { "x 1\nx 2\n", "same labels" },
      { 'x{a="1",b="2"} 1\nx{b="2",a="1"} 2\n', "same labels" },
      { "# TYPE x gauge\n# TYPE x gauge\nx 1\n", "second TYPE" },
      { "# HELP x a\n# HELP x b\nx 1\n", "second HELP" },
      { "x 1\n# TYPE x gauge\n", "after its samples" },
      { "# TYPE x gauges\nx 1\n", "unknown type" },
      { "# HELP x a \\t\nx 1\n", "bad escape" },
      { "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx{a=\"b\"} 2\n", "continues after" },
      { 'x{a="\xff"} 1\n', "UTF-8" },
    }
    for _, case in ipairs(bad) do
      local doc, err = prom.parse(case[1])
      T.check(doc == nil and err and err:find(case[2], 1, true),
        ("%q: want an error with %q, got %s"):format(case[1], case[2], tostring(err)))
    end
  end },
  { "per-number gauges: the right values", function()
    local s1 = { cust_space_id = "C1", label = "Shop" }
    local s2 = { cust_space_id = "C2", label = "Bank" }
    local doc = metrics_of {
      { space = s1, list = numbers(s1, {
        { PhoneNumber = "8613800000001", Status = "CONNECTED", QualityRating = "GREEN", MessagingLimitTier = "TIER_1K" },
        { PhoneNumber = "8613800000002", Status = "FLAGGED", QualityRating = "YELLOW",
          MessagingLimitTier = "TIER_UNLIMITED" },
        { PhoneNumber = "8613800000003", Status = "CONNECTED", QualityRating = "RED", MessagingLimitTier = "TIER_2M" },
        { PhoneNumber = "8613800000004", Status = "BANNED", QualityRating = "UNKNOWN", MessagingLimitTier = "TIER_X" },
        { PhoneNumber = "8613800000005" },
      }) },
      { space = s2, list = numbers(s2, {
        { PhoneNumber = "8613800000001", Status = "RESTRICTED", QualityRating = "RED", MessagingLimitTier = "TIER_250" },
      }) },
      { space = { cust_space_id = "C3", label = "Down" }, err = "Throttling" },
    }
    for _, name in ipairs { "chatapp_number_info", "chatapp_number_quality_level",
      "chatapp_number_messaging_limit", "chatapp_number_status" } do
      local f = doc.families[name]
      T.check(f and f.type == "gauge" and f.help and #f.help > 0, name .. ": TYPE gauge and HELP")
    end
    local info = one(doc, "chatapp_number_info", { space = "C1", number = "8613800000002" })
    if info then
      T.eq(info.value, 1)
      T.eq(info.labels.space_label, "Shop")
      T.eq(info.labels.status, "FLAGGED")
      T.eq(info.labels.quality, "YELLOW")
      T.eq(info.labels.tier, "TIER_UNLIMITED")
    end
    local none = one(doc, "chatapp_number_info", { space = "C1", number = "8613800000005" })
    T.eq(none and none.labels.status, "", "absent fields are empty labels")
    T.eq(#prom.find(doc, "chatapp_number_info"), 6, "every number once, by space")
    T.eq(#prom.find(doc, "chatapp_number_info", { space = "C3" }), 0, "a failed space has none")
    local function level(space, number) return prom.find(doc, "chatapp_number_quality_level",
      { space = space, number = number })[1] end
    T.eq(level("C1", "8613800000001").value, 3, "GREEN")
    T.eq(level("C1", "8613800000002").value, 2, "YELLOW")
    T.eq(level("C1", "8613800000003").value, 1, "RED")
    T.eq(level("C2", "8613800000001").value, 1, "RED, the other space")
    T.eq(level("C1", "8613800000004"), nil, "UNKNOWN: absent")
    T.eq(level("C1", "8613800000005"), nil, "no rating: absent")
    local function limit(number) return prom.find(doc, "chatapp_number_messaging_limit",
      { space = "C1", number = number })[1] end
    T.eq(limit("8613800000001").value, 1000)
    T.eq(limit("8613800000001").raw, "1000")
    T.eq(limit("8613800000002").value, math.huge)
    T.eq(limit("8613800000002").raw, "+Inf")
    T.eq(limit("8613800000003").raw, "2000000")
    T.eq(limit("8613800000004"), nil, "TIER_X: absent")
    T.eq(limit("8613800000005"), nil, "no tier: absent")
    T.eq(#prom.find(doc, "chatapp_number_status"), 6, "one status series a number")
    T.eq(one(doc, "chatapp_number_status", { space = "C1", number = "8613800000004" }).labels.status, "BANNED")
    T.eq(one(doc, "chatapp_number_status", { space = "C2", number = "8613800000001" }).labels.status, "RESTRICTED")
    for _, s in ipairs(prom.find(doc, "chatapp_number_status")) do T.eq(s.value, 1) end
    -- the run metrics are still there
    T.eq(one(doc, "chatapp_space_up", { space = "C3" }).value, 0)
    T.eq(one(doc, "chatapp_space_up", { space = "C1" }).value, 1)
    T.eq(one(doc, "chatapp_numbers", { space = "C1", status = "CONNECTED", quality = "GREEN" }).value, 1)
    T.check(doc.families.chatapp_run_success, "chatapp_run_success")
  end },
  { "hostile label values parse back to what they were", function()
    local label = 'L"b\\c\nd\27[31m\27]0;t\7\r\0end'
    local id = 'C"\\1\n'
    local space = { cust_space_id = id, label = label }
    local number = '86\n"\\1\27[2J'
    local status = 'CONNECTED"}\nchatapp_run_success 1\n#'
    local doc, text = metrics_of {
      { space = space, list = numbers(space, {
        { PhoneNumber = number, Status = status, QualityRating = "GREEN\\", MessagingLimitTier = "TIER_1K\n" },
      }) },
    }
    local info = one(doc, "chatapp_number_info", { space = id, number = number })
    T.eq(info and info.labels.space_label, label)
    T.eq(info and info.labels.status, status)
    T.eq(info and info.labels.quality, "GREEN\\")
    T.eq(info and info.labels.tier, "TIER_1K\n")
    T.eq(one(doc, "chatapp_number_status", { space = id, number = number }).labels.status, status)
    T.eq(#prom.find(doc, "chatapp_run_success"), 1, "no forged sample")
    T.eq(one(doc, "chatapp_space_up", { space = id }).labels.space_label, label)
    -- each sample is one line: no raw newline inside a label
    for line in text:gmatch("([^\n]*)\n") do
      T.check(line == "" or line:find("^#") or line:find("^[a-zA-Z_:][a-zA-Z0-9_:]*[{ ]"), "a line: " .. line)
    end
  end },
  { "bytes that are not UTF-8 become U+FFFD (Prometheus refuses them)", function()
    local space = { cust_space_id = "C\xff1", label = "a\xc3(b\xed\xa0\x80" }
    local doc = metrics_of { { space = space, list = numbers({ cust_space_id = "C\xff1" }, {
      { PhoneNumber = "1", Status = "CONNECTED" } }) } }
    local up = prom.find(doc, "chatapp_space_up")[1]
    T.eq(up and up.labels.space, "C\u{FFFD}1")
    T.eq(up and up.labels.space_label, "a\u{FFFD}(b\u{FFFD}\u{FFFD}\u{FFFD}")
  end },
  { "a number or space listed twice: one series each", function()
    local space = { cust_space_id = "C1", label = "x" }
    local list = numbers(space, {
      { PhoneNumber = "1", Status = "CONNECTED", QualityRating = "GREEN" },
      { PhoneNumber = "1", Status = "FLAGGED", QualityRating = "RED" },
    })
    local doc = metrics_of { { space = space, list = list }, { space = space, list = list },
      { space = space, err = "later failure" } }
    T.eq(#prom.find(doc, "chatapp_number_info"), 1)
    T.eq(one(doc, "chatapp_number_status", { number = "1" }).labels.status, "CONNECTED", "the first")
    T.eq(one(doc, "chatapp_space_up", { space = "C1" }).value, 0, "down if one fetch failed")
  end },
  { "chatapp-run --emulator --metrics FILE: the file parses, a series a number", function()
    local bin = arg[1]
    if not T.check(bin, "usage: test_metrics.lua CHATAPP_RUN") then return end
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
    local file = dir .. "/chatapp.prom"
    local policy = T.dir() .. "/../../scripts/policies/tier-report.lua"
    local cmd = ("%s --emulator --output none --metrics %s %s 2>%s/err"):format(bin, file, policy, dir)
    local ok = os.execute(cmd)
    local err = T.read(dir .. "/err")
    T.check(ok, "ran: " .. err)
    local f = io.open(file, "rb")
    if T.check(f, "the metrics file was written: " .. err) then
      local text = f:read("a")
      f:close()
      local doc, perr = prom.parse(text)
      if T.check(doc, "parses: " .. tostring(perr)) then
        local infos = prom.find(doc, "chatapp_number_info")
        T.check(#infos > 0, "numbers of the emulator's sample data")
        local total = 0
        for _, s in ipairs(prom.find(doc, "chatapp_numbers")) do total = total + s.value end
        T.eq(#infos, total, "one info series a number")
        T.eq(#prom.find(doc, "chatapp_number_status"), total, "one status series a number")
        for _, s in ipairs(infos) do
          T.eq(#prom.find(doc, "chatapp_number_status",
            { space = s.labels.space, number = s.labels.number, status = s.labels.status }), 1,
            "status of " .. s.labels.number)
        end
      end
      os.remove(file)
    end
    os.remove(dir .. "/err")
    os.remove(dir)
  end },
}

return T.done()
