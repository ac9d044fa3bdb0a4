-- PhoneNumber: every field, enums known and unknown, strict access, raw(),
-- JSON round trip, malformed answers, and garbage collection.
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
}

return T.done()
