-- PhoneNumber: every field, enums known and unknown, strict access, raw(),
-- JSON round trip, malformed answers, garbage collection, and the history
-- the state store attaches (core.phone_attach: previous, first_seen,
-- changed, since, held).
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core

local full = {
  PhoneNumber = "8613800000001", VerifiedName = "Acme Support",
  Status = "CONNECTED", QualityRating = "GREEN", MessagingLimitTier = "TIER_10K",
  CodeVerificationStatus = "VERIFIED", NameStatus = "Approval",
  NewNameStatus = "Pending_Review",
  UpCallbackUrl = "https://hooks.example.com/cams/inbound",
  StatusCallbackUrl = "https://hooks.example.com/cams/status",
  UpQueue = "Alicom-Queue-1234567-ChatAppInbound",
  StatusQueue = "Alicom-Queue-1234567-ChatAppStatus",
  IsOfficial = "Y",
  CallingConfigure = { CallingCallbackUrl = "https://c.example.com", MaxTalkTime = 300,
                       Calling = { Status = "ENABLED", CallHours = { WeeklyOperatingHours = {
                         { DayOfWeek = "MONDAY", OpenTime = "0900", CloseTime = "1800" } } } } },
}

local function answer(numbers, extra)
  local t = { RequestId = "REQ-1", Code = "OK", Message = "SUCCESS", PhoneNumbers = numbers }
  for k, v in pairs(extra or {}) do t[k] = v end
  return assert(chatapp.json.encode(t))
end

local function decode(body, space)
  return core.decode_phone_numbers(body, space)
end

T.cases {
  { "every documented field", function()
    local list = assert(decode(answer { full }, { cust_space_id = "C1", isv_code = "ISV", label = "Acme" }))
    T.eq(#list, 1)
    T.eq(list.request_id, "REQ-1")
    local n = list[1]
    T.eq(n.phone_number, "8613800000001")
    T.eq(n.verified_name, "Acme Support")
    T.eq(n.status, "CONNECTED")
    T.eq(n.quality_rating, "GREEN")
    T.eq(n.messaging_limit_tier, "TIER_10K")
    T.eq(n.code_verification_status, "VERIFIED")
    T.eq(n.name_status, "Approval")
    T.eq(n.new_name_status, "Pending_Review")
    T.eq(n.up_callback_url, full.UpCallbackUrl)
    T.eq(n.status_callback_url, full.StatusCallbackUrl)
    T.eq(n.up_queue, full.UpQueue)
    T.eq(n.status_queue, full.StatusQueue)
    T.eq(n.is_official, "Y")
    T.eq(n.cust_space_id, "C1")
    T.eq(n.isv_code, "ISV")
    T.eq(n.space_label, "Acme")
    T.eq(n.messaging_limit, 10000)
    T.eq(n.quality_level, 3)
    T.eq(tostring(n), "PhoneNumber 8613800000001 (CONNECTED, GREEN, TIER_10K)")
  end },

  { "every field name is listed", function()
    local list = assert(decode(answer { full }))
    for _, f in ipairs(chatapp.fields) do
      T.check(pcall(function() return list[1][f] end), "field " .. f)
    end
    T.eq(#chatapp.fields, 18)
  end },

  { "enums: every known value, and unknown ones kept", function()
    local enums, values = 0, 0
    for name, e in pairs(chatapp.enums) do
      enums = enums + 1
      T.check(#e.values > 0, name .. " has values")
      for _, v in ipairs(e.values) do
        local obj = { PhoneNumber = "1" }
        local api = ({ status = "Status", quality_rating = "QualityRating",
          messaging_limit_tier = "MessagingLimitTier",
          code_verification_status = "CodeVerificationStatus",
          name_status = "NameStatus", new_name_status = "NewNameStatus" })[e.field]
        obj[api] = v
        local n = assert(decode(answer { obj }))[1]
        T.eq(n[e.field], v, name .. " " .. v)
        T.eq(chatapp[name][v], v, "constant " .. name .. "." .. v)
        values = values + 1
      end
    end
    T.eq(enums, 6, "every enum was checked")
    T.check(values >= 31, "every enum value was checked: " .. values)
    local n = assert(decode(answer { { PhoneNumber = "1", Status = "OFFLINE",
      MessagingLimitTier = "TIER_2K", QualityRating = "PURPLE" } }))[1]
    T.eq(n.status, "OFFLINE")
    T.eq(n.messaging_limit_tier, "TIER_2K")
    T.eq(n.messaging_limit, 2000)
    T.eq(n.quality_rating, "PURPLE")
    T.eq(n.quality_level, nil)
  end },

  { "enum constants raise on a typo", function()
    T.eq(chatapp.Status.FLAGGED, "FLAGGED")
    T.raises(function() return chatapp.Status.FLAGED end, "has no member \"FLAGED\"")
    T.raises(function() chatapp.Status.X = 1 end, "read-only")
    T.raises(function() return chatapp.QualityRating.PINK end, "GREEN")
  end },

  { "derived values", function()
    -- Rows are { input, want } pairs: a nil want in a table constructor
    -- would be no entry at all, and the row would never run.
    local tiers = { { "TIER_50", 50 }, { "TIER_250", 250 }, { "TIER_1K", 1000 }, { "TIER_10K", 10000 },
      { "TIER_100K", 100000 }, { "TIER_UNLIMITED", math.huge }, { "TIER_NOT_SET", nil }, { "WEIRD", nil } }
    local ran = 0
    for _, row in ipairs(tiers) do
      local n = assert(decode(answer { { PhoneNumber = "1", MessagingLimitTier = row[1] } }))[1]
      T.eq(n.messaging_limit_tier, row[1])
      T.eq(n.messaging_limit, row[2], row[1])
      ran = ran + 1
    end
    T.eq(ran, 8, "every tier row ran")
    local levels = { { "GREEN", 3 }, { "YELLOW", 2 }, { "RED", 1 }, { "UNKNOWN", nil } }
    ran = 0
    for _, row in ipairs(levels) do
      local n = assert(decode(answer { { PhoneNumber = "1", QualityRating = row[1] } }))[1]
      T.eq(n.quality_rating, row[1])
      T.eq(n.quality_level, row[2], row[1])
      ran = ran + 1
    end
    T.eq(ran, 4, "every level row ran")
    local red = assert(decode(answer { { QualityRating = "RED" } }))[1]
    local green = assert(decode(answer { { QualityRating = "GREEN" } }))[1]
    T.check(red.quality_level < green.quality_level, "RED is worse than GREEN")
  end },

  { "strict access", function()
    local n = assert(decode(answer { full }))[1]
    T.raises(function() return n.qualty_rating end, "did you mean 'quality_rating'")
    T.raises(function() return n.nope end, "valid fields: phone_number")
    T.raises(function() return n[1] end, "named by strings")
    T.raises(function() n.status = "BANNED" end, "read-only")
    T.raises(function() return n.qualty_rating end, "test_phone.lua:")
    T.eq(getmetatable(n), "PhoneNumber")
    local missing = assert(decode(answer { { PhoneNumber = "2" } }))[1]
    T.eq(missing.status, nil, "absent field reads nil")
    T.eq(missing.messaging_limit, nil)
  end },

  { "raw() passes everything through", function()
    local n = assert(decode(answer { full }))[1]
    local raw = n:raw()
    for k, v in pairs(full) do
      if type(v) ~= "table" then T.eq(raw[k], v, "raw " .. k) end
    end
    T.eq(raw.IsOfficial, "Y")
    T.eq(raw.CallingConfigure.MaxTalkTime, 300)
    T.eq(math.type(raw.CallingConfigure.MaxTalkTime), "integer")
    T.eq(raw.CallingConfigure.Calling.CallHours.WeeklyOperatingHours[1].OpenTime, "0900")
    raw.CallingConfigure.MaxTalkTime = 1 -- a copy: the number is unchanged
    T.eq(n:raw().CallingConfigure.MaxTalkTime, 300)
  end },

  { "JSON round trip", function()
    local n = assert(decode(answer { full }))[1]
    local again = assert(decode(answer { chatapp.json.decode(chatapp.json.encode(n)) }))[1]
    for _, f in ipairs(chatapp.fields) do
      if f ~= "cust_space_id" and f ~= "isv_code" and f ~= "space_label" then
        T.eq(again[f], n[f], "round trip " .. f)
      end
    end
    T.eq(again:raw().CallingConfigure.Calling.Status, "ENABLED")
  end },

  { "types the docs do not promise", function()
    local body = [[{"Code":"OK","PhoneNumbers":[{"PhoneNumber":8613800000001,
      "Status":null,"QualityRating":true,"VerifiedName":1.5,"UpQueue":{"x":1},
      "Extra":null,"Score":2.0}]}]]
    local n = assert(decode(body))[1]
    T.eq(n.phone_number, "8613800000001", "number becomes its digits, no .0")
    T.eq(n.status, nil, "null is absent")
    T.eq(n.quality_rating, "true")
    T.eq(n.verified_name, "1.5")
    T.eq(n.up_queue, nil, "an object where a string belongs is only in raw()")
    T.eq(n:raw().UpQueue.x, 1)
    T.eq(n:raw().Extra, nil)
    T.eq(math.type(n:raw().Score), "integer")
  end },

  { "answer shapes", function()
    T.eq(#assert(decode('{"Code":"OK"}')), 0, "no PhoneNumbers: empty")
    T.eq(#assert(decode('{"Code":"OK","PhoneNumbers":null}')), 0, "null: empty")
    T.eq(#assert(decode('{"Code":"OK","PhoneNumbers":[]}')), 0)
    T.eq(#assert(decode('{"Code":"OK","PhoneNumbers":{}}')), 0)
    T.eq(#assert(decode('{"PhoneNumbers":{"PhoneNumber":[{"PhoneNumber":"1"}]}}')), 1, "XML-style wrapper")
    local list, err = decode('{"PhoneNumbers":"none"}')
    T.eq(list, nil)
    T.check(err:find("PhoneNumbers is a string, expected an array", 1, true), err)
    list, err = decode('{"PhoneNumbers":{"a":1}}')
    T.check(err and err:find("is an object, expected an array", 1, true), err)
    list, err = decode('{"PhoneNumbers":["x"]}')
    T.check(err and err:find("PhoneNumbers[1] is a string", 1, true), err)
    list, err = decode('[1,2]')
    T.check(err and err:find("expected an object", 1, true), err)
  end },

  { "malformed JSON and its traps", function()
    local cases = {
      { '{"PhoneNumbers":[', "malformed" },
      { '{"PhoneNumbers":[{"PhoneNumber":1e400}]}', "not a finite number" },
      { '{"PhoneNumbers":[{"X":NaN}]}', nil },
      { '{"PhoneNumbers":[{"X":0x10}]}', nil },
      { ("["):rep(200) .. ("]"):rep(200), nil },
    }
    for _, c in ipairs(cases) do
      local list, err = decode(c[1])
      T.eq(list, nil, c[1]:sub(1, 30))
      T.check(type(err) == "string" and #err > 0, "a message for " .. c[1]:sub(1, 30))
      if c[2] then T.check(err:find(c[2], 1, true), err) end
    end
    -- invalid UTF-8 is passed through as bytes (documented)
    local n = assert(decode('{"PhoneNumbers":[{"VerifiedName":"\xff\xfe"}]}'))[1]
    T.eq(n.verified_name, "\xff\xfe")
    -- embedded NUL survives
    n = assert(decode('{"PhoneNumbers":[{"VerifiedName":"a\\u0000b"}]}'))[1]
    T.eq(#n.verified_name, 3)
  end },

  { "repeated strings are shared", function()
    local many = {}
    for i = 1, 50 do
      many[i] = { PhoneNumber = tostring(i), UpCallbackUrl = full.UpCallbackUrl .. "/long/enough/to/be/a/long/string",
        Status = "CONNECTED" }
    end
    local list = assert(decode(answer(many)))
    T.eq(#list, 50)
    T.eq(list[50].phone_number, "50")
    T.eq(list[1].up_callback_url, list[50].up_callback_url)
    local seen = 0
    for i, n in ipairs(list) do seen = seen + 1 end
    T.eq(seen, 50, "ipairs")
    T.eq(tostring(list), "PhoneList (50 numbers)")
  end },

  { "pairs lists the fields with values", function()
    local n = assert(decode(answer { { PhoneNumber = "1", Status = "BANNED" } }))[1]
    local got = {}
    for k, v in pairs(n) do got[k] = v end
    T.eq(got.phone_number, "1")
    T.eq(got.status, "BANNED")
    T.eq(got.quality_rating, nil)
  end },

  { "messaging_limit: out-of-range and malformed tiers are nil", function()
    local want = {
      TIER_50 = 50, TIER_1K = 1000, TIER_2M = 2000000, TIER_999999999K = 999999999000,
      TIER_UNLIMITED = math.huge,
      TIER_99999999999999999999K = false, TIER_1e400K = false, TIER_1e3 = false,
      TIER_0x10 = false, ["TIER_-1K"] = false, ["TIER_+1K"] = false, TIER_050 = false,
      TIER_1000000000K = false, ["TIER_1.5K"] = false, TIER_K = false, TIER_ = false,
      TIER_1KK = false, TIER_1k = false, ["TIER_1K "] = false, TIER_inf = false, TIER_nan = false,
    }
    for tier, limit in pairs(want) do
      local n = assert(decode(answer { { PhoneNumber = "1", MessagingLimitTier = tier } }))[1]
      if limit then
        T.eq(n.messaging_limit, limit, tier)
        if limit ~= math.huge then T.eq(math.type(n.messaging_limit), "integer", tier) end
      else
        T.eq(n.messaging_limit, nil, tier)
      end
      T.eq(n.messaging_limit_tier, tier, "the tier itself is kept")
    end
  end },

  { "a PhoneNumber sent as a JSON number keeps every digit", function()
    local body = '{"PhoneNumbers":[{"PhoneNumber":12345678901234567},{"PhoneNumber":8613800000001},'
      .. '{"PhoneNumber":1234567890123456789012345},{"PhoneNumber":-5},{"PhoneNumber":1.5e3}]}'
    local list = assert(decode(body))
    T.eq(list[1].phone_number, "12345678901234567")
    T.eq(list[2].phone_number, "8613800000001")
    T.eq(list[3].phone_number, "1234567890123456789012345", "beyond 64 bits: the digits as sent")
    T.eq(list[4].phone_number, "-5")
    T.eq(list[5].phone_number, "1500")
    T.eq(chatapp.json.encode(list[1]), '{"PhoneNumber":"12345678901234567"}')
  end },

  { "a failed decode leaves the collector running", function()
    local body = answer { { PhoneNumber = "1", Pad = ("x"):rep(1024 * 1024) } }
    T.check(collectgarbage("isrunning"), "running before")
    collectgarbage() -- no garbage an emergency collection could free to make room
    local budget = { instructions = 1e9, memory = 256 * 1024, retained = 0 }
    local ok, list, err = core.sandbox_call(budget, decode, body)
    local running = collectgarbage("isrunning")
    collectgarbage("restart")
    T.check(running, "the collector still runs after a decode that ran out of memory")
    T.check(ok, "decode returned rather than raised: " .. tostring(list))
    T.eq(list, nil)
    T.check(type(err) == "string" and err:find("memory", 1, true), tostring(err))
    -- and a malformed answer
    list, err = decode('{"PhoneNumbers":[{"PhoneNumber":"1"}')
    T.eq(list, nil)
    T.check(collectgarbage("isrunning"), "running after a malformed answer")
  end },

  { "nested fields up to the depth limit encode again", function()
    -- answer (1) > PhoneNumbers (2) > number (3) > Deep: the rest up to the limit
    local deep = ("["):rep(chatapp.json.max_depth - 3) .. "1" .. ("]"):rep(chatapp.json.max_depth - 3)
    local body = '{"PhoneNumbers":[{"PhoneNumber":"1","Deep":' .. deep .. '}]}'
    local n = assert(decode(body))[1]
    local s, err = chatapp.json.encode(n)
    T.check(s, err)
    T.eq(decode('{"PhoneNumbers":[{"PhoneNumber":"1","Deep":[' .. deep .. ']}]}'), nil, "one more is refused")
  end },

  { "garbage collection", function()
    for _ = 1, 20 do
      local list = decode(answer { full, full, full })
      T.eq(#list, 3)
    end
    collectgarbage()
    local before = collectgarbage("count")
    for _ = 1, 200 do decode(answer { full, full, full }) end
    collectgarbage()
    collectgarbage()
    T.check(collectgarbage("count") < before + 64, "memory returns after collection")
  end },

  { "a one-number list holds little beyond its number (an ISV run keeps thousands)", function()
    local function body(first, n)
      local list = {}
      for i = 1, n do
        list[i] = { PhoneNumber = ("86%011d"):format(first + i), VerifiedName = "Shop " .. (first + i),
          Status = "CONNECTED", QualityRating = "GREEN", MessagingLimitTier = "TIER_1K" }
      end
      return answer(list, { RequestId = "7F3A2C1D-AAAA-BBBB-CCCC-" .. ("%012d"):format(first) })
    end
    local function held(fn)
      collectgarbage()
      collectgarbage()
      local before = core.memory()
      local keep = fn()
      collectgarbage()
      collectgarbage()
      local after = core.memory()
      T.check(keep, "kept")
      return after - before
    end
    local N = 2000
    local big = body(0, N)
    local per_number = held(function() return decode(big, { cust_space_id = "C1", label = "L" }) end) / N
    local bodies, spaces = {}, {}
    for s = 1, N do
      bodies[s] = body(s, 1)
      spaces[s] = { cust_space_id = ("C2099%010d"):format(s), label = "Space " .. s }
    end
    local per_list = held(function()
      local lists = {}
      for s = 1, N do lists[s] = decode(bodies[s], spaces[s]) end
      return lists
    end) / N
    -- the list, its string pool and the request id: 64 spare pool slots
    -- made it about 1,160 bytes; now about 280
    T.check(per_list - per_number < 450, ("a one-number list holds %.0f bytes beyond its number (%.0f)")
      :format(per_list - per_number, per_number))
  end },

  { "decoding a one-number answer allocates little (a batch decodes thousands)", function()
    local body = answer { { PhoneNumber = "8613800000001", VerifiedName = "Shop", Status = "CONNECTED" } }
    local space = { cust_space_id = "C1", label = "L" }
    collectgarbage()
    collectgarbage("stop")
    local before = core.memory()
    for _ = 1, 100 do T.check(decode(body, space), "decoded") end
    local per = (core.memory() - before) / 100
    collectgarbage("restart")
    T.check(collectgarbage("isrunning"), "the collector runs again")
    -- the string table started at 256 entries (6 KB) whatever the size
    -- of the answer; now at 32
    T.check(per < 3000, ("one decode allocates %.0f bytes, garbage included"):format(per))
  end },

  -- ---- history (core.phone_attach) ----------------------------------------

  { "history: previous, first_seen, changed, since, held", function()
    local was = { PhoneNumber = "8613800000001", Status = "CONNECTED", QualityRating = "GREEN",
      MessagingLimitTier = "TIER_1K", UpQueue = "Q1", IsOfficial = "N" }
    local is = { PhoneNumber = "8613800000001", Status = "CONNECTED", QualityRating = "RED",
      MessagingLimitTier = "TIER_10K", StatusQueue = "Q2", IsOfficial = "N" }
    local old = assert(decode(answer { was }))[1]
    local n = assert(decode(answer { is }, { cust_space_id = "C1" }))[1]
    core.phone_attach(n, old, 1000, { quality_rating = 5000, status = 1000, up_queue = 5000,
      status_queue = 5000, messaging_limit_tier = 4000 }, 5000)
    T.eq(rawequal(n.previous, old), true, "previous is the number given")
    T.eq(n.previous.quality_rating, "GREEN")
    T.eq(n.previous.previous, nil, "previous.previous is nil")
    T.eq(n.previous.first_seen, nil)
    T.eq(n.first_seen, 1000)
    T.eq(math.type(n.first_seen), "integer")
    -- changed(field): changed, old, new
    local c, o, v = n:changed("quality_rating")
    T.eq(c, true); T.eq(o, "GREEN"); T.eq(v, "RED")
    c, o, v = n:changed("status")
    T.eq(c, false); T.eq(o, "CONNECTED"); T.eq(v, "CONNECTED")
    c, o, v = n:changed("up_queue") -- a member removed: present -> absent
    T.eq(c, true); T.eq(o, "Q1"); T.eq(v, nil)
    c, o, v = n:changed("status_queue") -- a member added: absent -> present
    T.eq(c, true); T.eq(o, nil); T.eq(v, "Q2")
    c, o, v = n:changed("verified_name") -- absent both times
    T.eq(c, false); T.eq(o, nil); T.eq(v, nil)
    T.eq(select("#", n:changed("verified_name")), 3, "three results, nil ones included")
    -- derived fields compare their derived values
    c, o, v = n:changed("messaging_limit")
    T.eq(c, true); T.eq(o, 1000); T.eq(v, 10000)
    c, o, v = n:changed("quality_level")
    T.eq(c, true); T.eq(o, 3); T.eq(v, 1)
    T.check(v < o, "got worse")
    -- changed(): anything tracked, in field order
    local any, list = n:changed()
    T.eq(any, true)
    T.eq(table.concat(list, ","), "quality_rating,messaging_limit_tier,up_queue,status_queue")
    T.eq(#list, 4)
    -- since and held: the caller's times, no clock
    T.eq(n:since("quality_rating"), 5000)
    T.eq(n:held("quality_rating"), 0, "a value new this run has held 0 s")
    T.eq(n:since("status"), 1000)
    T.eq(n:held("status"), 4000)
    T.eq(math.type(n:held("status")), "integer")
    T.eq(n:since("messaging_limit"), 4000, "a derived field has its source's time")
    T.eq(n:held("messaging_limit"), 1000)
    T.eq(n:since("quality_level"), 5000)
    T.eq(n:since("verified_name"), nil, "a time not given is unknown")
    T.eq(n:held("verified_name"), nil)
    -- the number itself is untouched
    T.eq(n.quality_rating, "RED")
    T.eq(n.cust_space_id, "C1")
    T.eq(tostring(n), "PhoneNumber 8613800000001 (CONNECTED, RED, TIER_10K)")
    T.eq(tostring(n.previous), "PhoneNumber 8613800000001 (CONNECTED, GREEN, TIER_1K)")
  end },

  { "history: a number seen for the first time", function()
    local n = assert(decode(answer { full }))[1]
    core.phone_attach(n, nil, 7000, { quality_rating = 7000, status = 7000 }, 7000)
    T.eq(n.previous, nil)
    T.eq(n.first_seen, 7000)
    local c, o, v = n:changed("quality_rating")
    T.eq(c, false, "a new number has not changed"); T.eq(o, nil); T.eq(v, "GREEN")
    T.eq(select("#", n:changed("quality_rating")), 3)
    c, o, v = n:changed("quality_level")
    T.eq(c, false); T.eq(o, nil); T.eq(v, 3)
    local any, list = n:changed()
    T.eq(any, false)
    T.eq(type(list), "table"); T.eq(#list, 0); T.eq(next(list), nil)
    T.eq(n:since("status"), 7000)
    T.eq(n:held("status"), 0)
    T.eq(n:since("up_queue"), nil)
  end },

  { "history: without state every answer is 'unknown'", function()
    local n = assert(decode(answer { full }))[1]
    T.eq(n.previous, nil)
    T.eq(n.first_seen, nil)
    local c, o, v = n:changed("status")
    T.eq(c, false); T.eq(o, nil); T.eq(v, "CONNECTED")
    local any, list = n:changed()
    T.eq(any, false); T.eq(#list, 0)
    T.eq(n:since("status"), nil)
    T.eq(n:held("status"), nil)
    -- and in the sandbox, under a budget
    local budget = { instructions = 1e6, memory = 64 * 1024, retained = 0 }
    local ok, changed, any2 = core.sandbox_call(budget, function() return n:changed("status"), n:changed() end)
    T.check(ok, tostring(changed))
    T.eq(changed, false); T.eq(any2, false)
  end },

  { "history: strict like the number", function()
    local old = assert(decode(answer { full }))[1]
    local n = assert(decode(answer { full }))[1]
    core.phone_attach(n, old, 1, {}, 2)
    T.raises(function() return n:changed("qualty_rating") end, "test_phone.lua:")
    T.raises(function() return n:changed("qualty_rating") end,
      "PhoneNumber:changed(field): 'qualty_rating' is not a field (did you mean 'quality_rating'?); "
        .. "tracked fields: verified_name, status, quality_rating,")
    T.raises(function() return n:changed("phone_number") end, "'phone_number' is not a tracked field")
    T.raises(function() return n:changed("cust_space_id") end, "and the derived messaging_limit, quality_level")
    T.raises(function() return n:changed("previous") end, "not a tracked field")
    T.raises(function() return n:changed(nil) end, "the field is a nil, expected a field name")
    T.raises(function() return n:changed(3) end, "the field is a number")
    T.raises(function() return n:since("statsu") end, "PhoneNumber:since(field): 'statsu' is not a field (did you mean 'status'?)")
    T.raises(function() return n:held("x") end, "PhoneNumber:held(field): 'x' is not a field")
    T.raises(function() return n:held() end, "PhoneNumber:held(field): the field is missing, expected a field name")
    T.raises(function() return n.changed("status") end, "PhoneNumber expected")
    -- previous is a PhoneNumber, as strict
    T.raises(function() return n.previous.nonexistent end, "PhoneNumber has no field 'nonexistent'")
    T.raises(function() n.previous.status = "BANNED" end, "read-only")
    T.raises(function() n.previous = nil end, "read-only")
    T.raises(function() n.first_seen = 0 end, "read-only")
    T.eq(getmetatable(n.previous), "PhoneNumber")
    -- the field list of errors names the history and every method
    T.raises(function() return n.nope end, ", quality_level, previous, first_seen; methods: raw, changed, since, held")
    T.raises(function() return n.first_seeen end, "did you mean 'first_seen'?")
    T.raises(function() return n.previos end, "did you mean 'previous'?")
    T.raises(function() return n.chnaged end, "did you mean 'changed'?")
    -- methods do not collide with fields: each name is one or the other
    for _, m in ipairs { "raw", "changed", "since", "held" } do
      T.eq(type(n[m]), "function", m)
      for _, f in ipairs(chatapp.fields) do T.check(f ~= m, m .. " is not a field") end
    end
  end },

  { "history: pairs, raw(), JSON and tostring", function()
    local old = assert(decode(answer { { PhoneNumber = "1", Status = "CONNECTED" } }))[1]
    local n = assert(decode(answer { { PhoneNumber = "1", Status = "BANNED" } }))[1]
    local function keys(v)
      local got = {}
      for k, x in pairs(v) do got[k] = x end
      return got
    end
    T.eq(keys(n).first_seen, nil, "no first_seen before attach")
    local json_before = assert(chatapp.json.encode(n))
    core.phone_attach(n, old, 42, { status = 43 }, 44)
    local got = keys(n)
    T.eq(got.first_seen, 42, "pairs has first_seen once attached")
    T.eq(got.previous, nil, "pairs leaves previous out")
    T.eq(got.status, "BANNED")
    local raw = n:raw()
    T.eq(raw.first_seen, nil); T.eq(raw.previous, nil); T.eq(raw.FirstSeen, nil); T.eq(raw.Previous, nil)
    T.eq(raw.Status, "BANNED")
    T.eq(assert(chatapp.json.encode(n)), json_before, "JSON without the history")
    T.eq(assert(chatapp.json.encode(n)), '{"PhoneNumber":"1","Status":"BANNED"}')
    T.eq(assert(chatapp.json.encode { n }), '[{"PhoneNumber":"1","Status":"BANNED"}]')
    T.eq(tostring(n), "PhoneNumber 1 (BANNED, -, -)")
    -- a number without history is listed without first_seen
    T.eq(keys(old).first_seen, nil)
  end },

  { "history: attaching again replaces", function()
    local a = assert(decode(answer { { PhoneNumber = "1", Status = "CONNECTED" } }))[1]
    local b = assert(decode(answer { { PhoneNumber = "1", Status = "FLAGGED" } }))[1]
    local n = assert(decode(answer { { PhoneNumber = "1", Status = "BANNED" } }))[1]
    core.phone_attach(n, a, 10, { status = 20, quality_rating = 10 }, 30)
    T.eq(n.previous.status, "CONNECTED")
    core.phone_attach(n, b, 11, { status = 25 }, 31)
    T.eq(n.previous.status, "FLAGGED")
    T.eq(n.first_seen, 11)
    T.eq(n:since("status"), 25)
    T.eq(n:held("status"), 6)
    T.eq(n:since("quality_rating"), nil, "nothing of the first history is left")
    core.phone_attach(n, nil, 12, {}, 32)
    T.eq(n.previous, nil)
    T.eq(n:changed("status"), false)
    -- the one snapshot may be the previous of a number decoded again
    local again = assert(decode(answer { { PhoneNumber = "1", Status = "BANNED" } }))[1]
    core.phone_attach(again, b, 1, {}, 2)
    T.check(rawequal(again.previous, n.previous) == false and rawequal(again.previous, b), "shared previous")
  end },

  { "history: held is never negative (a clock that went back)", function()
    local n = assert(decode(answer { { PhoneNumber = "1", Status = "BANNED" } }))[1]
    core.phone_attach(n, nil, 100, { status = 200 }, 150)
    T.eq(n:held("status"), 0)
    T.eq(n:since("status"), 200)
    core.phone_attach(n, nil, 0, { status = 0 }, 4294967295)
    T.eq(n:held("status"), 4294967295, "the widest span fits")
    T.raises(function() core.phone_attach(n, nil, 0, {}, 4294967296) end, "4294967296 is not a Unix time")
  end },

  { "history: core.phone_attach checks its arguments", function()
    local old = assert(decode(answer { { PhoneNumber = "1" } }))[1]
    local n = assert(decode(answer { { PhoneNumber = "1" } }))[1]
    local other = assert(decode(answer { { PhoneNumber = "2" } }))[1]
    local attach = core.phone_attach
    T.raises(function() attach({}, old, 1, {}, 2) end, "bad argument #1")
    T.raises(function() attach(nil, old, 1, {}, 2) end, "bad argument #1")
    T.raises(function() attach(n, { status = "x" }, 1, {}, 2) end, "bad argument #2")
    T.raises(function() attach(n, "1", 1, {}, 2) end, "bad argument #2")
    T.raises(function() attach(n, old, 1.5, {}, 2) end, "first_seen: an integer Unix time (seconds) expected, got number (not an integer)")
    T.raises(function() attach(n, old, "1", {}, 2) end, "got string")
    T.raises(function() attach(n, old, nil, {}, 2) end, "bad argument #3")
    T.raises(function() attach(n, old, -1, {}, 2) end, "-1 is not a Unix time in seconds")
    T.raises(function() attach(n, old, 1, {}, 1732900000000) end, "now: 1732900000000 is not a Unix time in seconds (0 to 4294967295, in 2106; milliseconds?)")
    T.raises(function() attach(n, old, 1, nil, 2) end, "bad argument #4")
    T.raises(function() attach(n, old, 1, {}, nil) end, "bad argument #5")
    T.raises(function() attach(n, old, 1, {}) end, "bad argument #5")
    T.raises(function() attach(n, old, 1, { qualityrating = 1 }, 2) end, "since: qualityrating is not a tracked field (core.phone_tracked() lists them)")
    T.raises(function() attach(n, old, 1, { quality_level = 1 }, 2) end, "quality_level is not a tracked field")
    T.raises(function() attach(n, old, 1, { phone_number = 1 }, 2) end, "phone_number is not a tracked field")
    T.raises(function() attach(n, old, 1, { 5 }, 2) end, "1 is not a tracked field")
    T.raises(function() attach(n, old, 1, { status = "5" }, 2) end, "status: an integer Unix time (seconds) expected, got string")
    T.raises(function() attach(n, old, 1, { status = 5.5 }, 2) end, "bad argument #4")
    T.raises(function() attach(n, n, 1, {}, 2) end, "a number cannot be its own previous")
    T.raises(function() attach(n, other, 1, {}, 2) end, "previous is number 2, not 1")
    -- a previous must be a plain snapshot: previous.previous stays nil
    attach(n, old, 1, {}, 2)
    local newer = assert(decode(answer { { PhoneNumber = "1" } }))[1]
    T.raises(function() attach(newer, n, 1, {}, 2) end, "previous has a history of its own")
    -- a failed attach leaves the history as it was
    T.raises(function() attach(n, nil, 9, { status = "x" }, 9) end, "bad argument #4")
    T.check(rawequal(n.previous, old), "history kept")
    T.eq(n.first_seen, 1)
    -- strict: a float is refused even with an integral value
    T.raises(function() attach(n, old, 1.0, {}, 2) end, "not an integer")
    -- numbers without PhoneNumber may pair
    local a = assert(decode(answer { { Status = "X" } }))[1]
    local b = assert(decode(answer { { Status = "Y" } }))[1]
    attach(b, a, 1, {}, 2)
    T.eq(b:changed("status"), true)
  end },

  { "history: core.phone_tracked", function()
    local t = core.phone_tracked()
    T.eq(table.concat(t, ","), "verified_name,status,quality_rating,messaging_limit_tier,"
      .. "code_verification_status,name_status,new_name_status,up_callback_url,status_callback_url,"
      .. "up_queue,status_queue,is_official")
    T.eq(#t, 12)
    t[1] = "x"
    T.eq(core.phone_tracked()[1], "verified_name", "a fresh list each call")
    -- every tracked field is accepted by the methods and by phone_attach
    local n = assert(decode(answer { full }))[1]
    local since = {}
    for i, f in ipairs(core.phone_tracked()) do since[f] = 100 + i end
    core.phone_attach(n, nil, 1, since, 200)
    for i, f in ipairs(core.phone_tracked()) do
      T.eq(n:since(f), 100 + i, f)
      T.eq(n:held(f), 100 - i, f)
      T.eq(n:changed(f), false, f)
    end
  end },

  { "history: collected with the number", function()
    local many = {}
    for i = 1, 100 do many[i] = { PhoneNumber = tostring(i), Status = "CONNECTED", QualityRating = "GREEN" } end
    local body = answer(many)
    local function round()
      local old = assert(decode(body))
      local new = assert(decode(body))
      for i = 1, #new do core.phone_attach(new[i], old[i], 1, { status = 1 }, 2) end
      T.eq(new[100].previous.phone_number, "100")
    end
    for _ = 1, 5 do round() end
    collectgarbage(); collectgarbage()
    local before = collectgarbage("count")
    for _ = 1, 100 do round() end -- 10,000 numbers with history, 10,000 previous
    collectgarbage(); collectgarbage()
    local after = collectgarbage("count")
    T.check(after < before + 64, ("memory returns after collection: %.0f KiB -> %.0f KiB"):format(before, after))
    -- a previous lives as long as its number, and no longer
    local weak = setmetatable({}, { __mode = "v" })
    local n = assert(decode(body))[1]
    do
      local old = assert(decode(body))[1]
      weak.old = old
      core.phone_attach(n, old, 1, {}, 2)
    end
    collectgarbage(); collectgarbage()
    T.check(weak.old ~= nil, "the previous is kept by its number")
    T.eq(n.previous.phone_number, "1")
    n = nil
    collectgarbage(); collectgarbage()
    T.eq(weak.old, nil, "and collected with it")
    -- a number that is its own list's previous's twin: a cycle through the
    -- previous's pool does not keep either alive
    local list = assert(decode(body))
    local copy = assert(decode(body))
    for i = 1, #list do core.phone_attach(list[i], copy[i], 1, {}, 2) end
    weak.list, weak.copy = list, copy
    list, copy = nil, nil
    collectgarbage(); collectgarbage()
    T.eq(weak.list, nil); T.eq(weak.copy, nil)
  end },

  { "history: reads allocate nothing", function()
    local old = assert(decode(answer { full }))[1]
    local n = assert(decode(answer { full }))[1]
    core.phone_attach(n, old, 1, { status = 1 }, 2)
    collectgarbage(); collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    local x
    for _ = 1, 1000 do
      x = n.previous; x = n.first_seen; x = n:since("status"); x = n:held("status")
      x = n:changed("status"); x = n:changed("messaging_limit"); x = n.previous.status
    end
    local after = collectgarbage("count")
    collectgarbage("restart")
    T.eq(after, before, "field reads and changed(field) allocate nothing")
  end },

  { "history: the module opened again keeps the histories", function()
    local old = assert(decode(answer { { PhoneNumber = "1", Status = "CONNECTED" } }))[1]
    local n = assert(decode(answer { { PhoneNumber = "1", Status = "BANNED" } }))[1]
    core.phone_attach(n, old, 1, {}, 2)
    local saved = package.loaded["chatapp.core"]
    package.loaded["chatapp.core"] = nil
    local again = require "chatapp.core"
    package.loaded["chatapp.core"] = saved
    T.check(again ~= saved, "a second module table")
    T.check(rawequal(n.previous, old), "the history attached before is still seen")
    local m = assert(again.decode_phone_numbers(answer { { PhoneNumber = "1" } }))[1]
    again.phone_attach(m, nil, 5, {}, 6)
    T.eq(m.first_seen, 5)
    T.eq(n:changed("status"), true)
  end },
}

return T.done()
