-- ctest: timeout=180
-- C3: JSON: depth 65 and 1001, a 10 MB string, 1e400, NaN, 0x10, 2^53+1,
-- duplicate keys, invalid UTF-8, \u0000, null where an object is expected,
-- a string where an array is expected, [] vs {}.
-- Criterion: each gives the documented typed result or a clean error; no
-- float 1.0 leaks into IDs; no inf accepted.
--
-- Two paths, each case through both:
--   * the API: the emulator answers QueryChatappPhoneNumbers with the case
--     (a `malformed` fault serving the body as given; the 10 MB string
--     from a --data fixture, past the 1 MiB a fault body may be; invalid
--     UTF-8, which the emulator refuses to be given, straight into the
--     client's decoder, core.decode_phone_numbers), read by
--     chatapp.client (one attempt) into the typed PhoneNumber list.  The
--     documented result is docs/lua-api.md, "Bad answers"; a clean error
--     is nil plus an error of status EPARSE with a message saying what
--     was wrong, after which the same client's next call succeeds;
--   * chatapp.json.decode, as policies and scripts use it (docs/lua-api.md,
--     "JSON"): the value, or nil and "malformed JSON: line L, column C:
--     what".
-- IDs: a phone number sent as 8613800000001.0, 8.613800000001e12 or
-- 9007199254740993 is the string of its digits; decoded integral floats
-- are integers (tostring without ".0").  Inf: 1e400, -1e400, 1e309,
-- Infinity anywhere is an error on both paths, and no decoded value in any
-- case is infinite or NaN.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local json = chatapp.json

local MB = 1024 * 1024

local emu = E.emulator()
local client = emu:client { max_attempts = 1 }

-- The answer as the emulator serves it: body, status 200.
local function served(body)
  local _, status = emu:fault { kind = "malformed", body = body, status = 200, next = 1 }
  assert(status == 200, "the fault was taken")
  local list, err = client:query_phone_numbers()
  return list, err
end

-- An answer with one number whose members are the JSON text given.
local function one(members)
  return '{"Code":"OK","RequestId":"R","PhoneNumbers":[{' .. members .. '}]}'
end

local function nested(depth, inner)
  return ("["):rep(depth) .. inner .. ("]"):rep(depth)
end

-- No value anywhere in v is infinite or NaN, or a float with an integral
-- value (those are integers).
local function finite(v, seen)
  seen = seen or {}
  if type(v) == "number" then
    return v == v and v ~= math.huge and v ~= -math.huge and
      not (math.type(v) == "float" and v == math.floor(v) and v >= math.mininteger and v < -math.mininteger)
  end
  if type(v) ~= "table" or seen[v] then return true end
  seen[v] = true
  for k, x in pairs(v) do
    if not finite(k, seen) or not finite(x, seen) then return false end
  end
  return true
end

local function clean_error(what, text, list, err)
  T.eq(list, nil, what .. ": no list")
  T.eq(err and err.status, "EPARSE", what .. ": EPARSE")
  T.check(err and type(err.message) == "string" and err.message:find(text, 1, true),
    what .. ": the message says " .. text .. ": " .. tostring(err and err.message))
  local again = client:query_phone_numbers()
  T.check(again and #again == 7, what .. ": the next call is fine")
end

local function decode_error(what, text, want)
  local v, err = json.decode(text)
  T.eq(v, nil, what .. ": chatapp.json.decode gives nil")
  T.check(type(err) == "string" and err:find("malformed JSON: line", 1, true) and err:find(want, 1, true),
    what .. ": and says " .. want .. ": " .. tostring(err))
end

T.cases {
  { "depth 65: decoded", function()
    local list, err = served(one('"PhoneNumber":"1","VerifiedName":' .. nested(65, '"deep"')))
    T.check(list and #list == 1, "the answer is typed: " .. tostring(err and err.message))
    local n = list and list[1]
    if n then
      T.eq(n.verified_name, nil, "an array where a string belongs: the field is nil")
      local v, d = n:raw().VerifiedName, 0
      while type(v) == "table" do v, d = v[1], d + 1 end
      T.eq(d, 65, "raw() keeps the 65 levels")
      T.eq(v, "deep")
    end
    local v = json.decode(nested(65, "1"))
    T.eq(type(v), "table", "chatapp.json.decode: 65 levels decode")
  end },

  { "depth 1001: a clean error", function()
    clean_error("depth 1001",
      "HTTP 200 with a malformed body (line 1, column 589: nesting too deep)", served(one('"PhoneNumber":"1","VerifiedName":' .. nested(1001, "1"))))
    decode_error("depth 1001", nested(1001, "1"), "nesting deeper than 128 levels")
    -- between the decoder's 128 and the envelope's 512: the decoder says it
    clean_error("depth 200", "malformed JSON: line 1, column 205: nesting deeper than 128 levels",
      served(one('"PhoneNumber":"1","VerifiedName":' .. nested(200, "1"))))
  end },

  { "a 10 MB string", function()
    local big = ("0123456789abcdef"):rep(10 * MB // 16)
    local dir = E.tmpdir()
    local data = E.write(dir .. "/big.json", assert(json.encode {
      spaces = { { cust_space_id = "instance-1000000000000001", default = true, account = "1000000000000001",
                   phone_numbers = { { PhoneNumber = "8613800000001", VerifiedName = big, Status = "CONNECTED" } } } },
    }))
    local emu2 = E.emulator { "--data", data }
    local c2 = emu2:client { max_attempts = 1 }
    local list, err = c2:query_phone_numbers()
    T.check(list and #list == 1, "the answer is typed: " .. tostring(err and err.message))
    if list and list[1] then
      T.eq(#list[1].verified_name, #big, "the 10 MB string, whole")
      T.check(list[1].verified_name == big, "byte for byte")
      T.eq(list[1].status, "CONNECTED")
    end
    emu2:stop()
    T.check(json.decode('["' .. big .. '"]')[1] == big, "chatapp.json.decode: the 10 MB string")
  end },

  { "1e400 and every other infinity: refused", function()
    for _, x in ipairs { "1e400", "-1e400", "1e309", "1E+999" } do
      clean_error(x, "not a finite number", served(one('"PhoneNumber":"1","MaxTalkTime":' .. x)))
      clean_error(x .. " as the phone number", "not a finite number", served(one('"PhoneNumber":' .. x)))
      decode_error(x, "[" .. x .. "]", "not a finite number")
    end
    for _, x in ipairs { "Infinity", "-Infinity", "inf" } do
      clean_error(x, "HTTP 200 with a malformed body (line 1, column", served(one('"PhoneNumber":"1","MaxTalkTime":' .. x)))
      decode_error(x, "[" .. x .. "]", "")
    end
  end },

  { "NaN and 0x10: refused", function()
    for _, x in ipairs { "NaN", "-NaN", "nan", "0x10", "0X10", "-0x1p3" } do
      clean_error(x, "HTTP 200 with a malformed body (line 1, column", served(one('"PhoneNumber":"1","MaxTalkTime":' .. x)))
      clean_error(x .. " as the phone number", "HTTP 200 with a malformed body (line 1, column",
        served(one('"PhoneNumber":' .. x)))
      decode_error(x, "[" .. x .. "]", "")
    end
  end },

  { "2^53+1 and IDs sent as floats: exact digits, no .0", function()
    local list, err = served('{"Code":"OK","RequestId":"R","PhoneNumbers":['
      .. '{"PhoneNumber":9007199254740993,"MaxTalkTime":9007199254740993},'
      .. '{"PhoneNumber":8613800000001.0},{"PhoneNumber":8.613800000001e12},'
      .. '{"PhoneNumber":123456789012345678901234567890},{"PhoneNumber":1.0,"Status":"CONNECTED"}]}')
    T.check(list and #list == 5, tostring(err and err.message))
    if list and #list == 5 then
      T.eq(list[1].phone_number, "9007199254740993", "2^53+1, exact")
      T.eq(list[1]:raw().MaxTalkTime, 9007199254740993, "raw(): the integer, exact")
      T.eq(math.type(list[1]:raw().MaxTalkTime), "integer")
      T.eq(list[2].phone_number, "8613800000001", "8613800000001.0")
      T.eq(list[3].phone_number, "8613800000001", "8.613800000001e12")
      T.eq(list[4].phone_number, "123456789012345678901234567890", "30 digits kept")
      T.eq(list[5].phone_number, "1", "1.0 is \"1\"")
      for i = 1, 5 do
        T.check(not list[i].phone_number:find("[.eE+]"), "no float leaks into the ID: " .. list[i].phone_number)
        T.check(finite(list[i]:raw()), "raw(): integral values are integers")
      end
    end
    local v = assert(json.decode("[9007199254740993, 1.0, 8613800000001.0, 1e3]"))
    T.eq(v[1], 9007199254740993, "chatapp.json.decode: 2^53+1 exact")
    T.eq(math.type(v[1]), "integer")
    T.eq(tostring(v[2]), "1", "1.0 decodes as the integer 1")
    T.eq(tostring(v[3]), "8613800000001")
    T.eq(tostring(v[4]), "1000")
    T.eq(json.encode(v), "[9007199254740993,1,8613800000001,1000]", "and encodes back without .0")
  end },

  { "duplicate keys: the last one wins", function()
    local list = served(one('"PhoneNumber":"1","Status":"BANNED","Status":"CONNECTED"'))
    T.eq(list and list[1] and list[1].status, "CONNECTED")
    T.eq(json.decode('{"a":1,"a":2}').a, 2)
  end },

  { "invalid UTF-8: kept as sent", function()
    -- (The emulator refuses invalid UTF-8 in what it is given, so the answer
    -- goes to the client's decoder directly: core.decode_phone_numbers is
    -- the function the client calls on an answer's body.)
    local list, err = chatapp.core.decode_phone_numbers(one('"PhoneNumber":"1","VerifiedName":"bad \xff\xfe \xc0\xaf end"'))
    T.eq(list and list[1] and list[1].verified_name, "bad \xff\xfe \xc0\xaf end", tostring(err and err.message))
    T.eq(json.decode('"\xff\xfe"'), "\xff\xfe")
    -- and what goes out again is valid UTF-8
    local out = assert(json.encode(list and list[1] or "\xff"))
    T.check(utf8.len(out) ~= nil, "encoded again: valid UTF-8")
  end },

  { "\\u0000: kept, with its length", function()
    local list, err = served(one('"PhoneNumber":"1","VerifiedName":"a\\u0000b","Status":"\\u0000"'))
    T.eq(list and list[1] and list[1].verified_name, "a\0b", tostring(err and err.message))
    T.eq(list and list[1] and #list[1].verified_name, 3)
    T.eq(list and list[1] and list[1].status, "\0")
    T.eq(json.decode('"a\\u0000b"'), "a\0b")
  end },

  { "null where an object is expected", function()
    local list, err = served(one('"PhoneNumber":"1","CallingConfigure":null,"VerifiedName":null'))
    T.check(list and #list == 1, tostring(err and err.message))
    if list and list[1] then
      T.eq(list[1].verified_name, nil, "a null field is nil")
      T.eq(list[1]:raw().CallingConfigure, nil, "a null member is absent")
    end
    clean_error("a null element",
      "PhoneNumbers[1] is a null, expected an object", served('{"Code":"OK","PhoneNumbers":[null]}'))
    clean_error("a null answer", "not an object", served("null"))
    list, err = served('{"Code":"OK","PhoneNumbers":null}')
    T.eq(list and #list, 0, "PhoneNumbers null: an empty list " .. tostring(err and err.message))
    T.eq(json.decode('{"a":null}').a, nil)
    T.eq(json.decode("[null]")[1], json.null)
  end },

  { "a string where an array is expected", function()
    clean_error("PhoneNumbers a string",
      "PhoneNumbers is a string, expected an array", served('{"Code":"OK","PhoneNumbers":"8613800000001"}'))
    clean_error("PhoneNumbers a number",
      "PhoneNumbers is a number, expected an array", served('{"Code":"OK","PhoneNumbers":12}'))
    clean_error("an element a string",
      "PhoneNumbers[2] is a string, expected an object", served('{"Code":"OK","PhoneNumbers":[{"PhoneNumber":"1"},"x"]}'))
    T.eq(type(json.decode('{"a":"[]"}').a), "string", "chatapp.json: a string stays a string")
  end },

  { "[] vs {}", function()
    for _, b in ipairs { '{"Code":"OK","PhoneNumbers":[]}', '{"Code":"OK","PhoneNumbers":{}}',
                         '{"Code":"OK","PhoneNumbers":{"PhoneNumber":[]}}' } do
      local list, err = served(b)
      T.eq(list and #list, 0, b .. ": an empty list " .. tostring(err and err.message))
    end
    clean_error("the answer []", "", served("[]"))
    clean_error("the answer [1]", "", served("[1]"))
    local list = served(one('"PhoneNumber":"1","VerifiedName":[],"Status":{}'))
    if T.check(list and list[1], "typed") then
      T.eq(list[1].verified_name, nil, "[] where a string belongs: nil")
      T.eq(list[1].status, nil, "{} where a string belongs: nil")
      T.eq(json.encode(list[1]:raw().VerifiedName), "[]", "raw(): [] stays an array")
      T.eq(json.encode(list[1]:raw().Status), "{}", "raw(): {} stays an object")
    end
    T.eq(json.encode(json.decode("[]")), "[]", "chatapp.json: [] encodes as []")
    T.eq(json.encode(json.decode("{}")), "{}", "and {} as {}")
    T.eq(json.encode(json.decode('{"a":[],"b":{},"c":[[]]}')), '{"a":[],"b":{},"c":[[]]}')
  end },
}

emu:stop()
E.cleanup()
return T.done()
