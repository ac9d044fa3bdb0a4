-- chatapp.json: the decoder (memory, integers, NUL, depth) and the encoder
-- (valid UTF-8 always, NUL-safe keys, the same depth limit), json.array.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local json = chatapp.json

local function rss_kb()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

local function nested(depth, inner)
  return ("["):rep(depth) .. (inner or "") .. ("]"):rep(depth)
end

-- Is s valid UTF-8 (strict: no surrogates, no overlong forms)?
local function valid_utf8(s)
  return utf8.len(s) ~= nil
end

T.cases {
  { "a failed decode frees its memory (lua-cjson leaked an input-sized buffer)", function()
    -- lua-cjson copied each string into a malloc'd buffer the size of the
    -- input, outside the cap, and leaked it when pushing the string failed
    -- at the cap (125 MB of RSS over these 60 calls).
    local big = '["' .. ("x"):rep(2 * 1024 * 1024) .. '"]'
    local bad = '["' .. ("x"):rep(2 * 1024 * 1024) .. '", tru'
    collectgarbage()
    local before = rss_kb()
    for _ = 1, 60 do
      local v, err = json.decode(bad)
      T.eq(v, nil)
      assert(err and err:find("malformed JSON", 1, true), err)
      collectgarbage()
      local budget = { instructions = 1e9, memory = 3 * 1024 * 1024, retained = 0 }
      T.check(core.sandbox_call(budget, json.decode, big), "the call returns")
      budget = { instructions = 1e9, memory = 1024 * 1024, retained = 0 }
      T.check(core.sandbox_call(budget, json.decode, big), "the call returns")
    end
    collectgarbage()
    local after = rss_kb()
    -- (Under AddressSanitizer freed memory sits in its quarantine, so RSS
    -- says nothing there; LeakSanitizer checks the same at exit.)
    if before and after and not os.getenv("ASAN_OPTIONS") then
      T.check(after - before < 40 * 1024, ("RSS grew by %d kB over 180 decodes"):format(after - before))
    end
  end },

  { "decoding counts against the memory cap and a failure inside it frees", function()
    local big = '["' .. ("\\n"):rep(600 * 1024) .. '"]' -- 600 kB once decoded
    collectgarbage() -- no garbage an emergency collection could free to make room
    local budget = { instructions = 1e9, memory = 256 * 1024, retained = 0 }
    local ok, v, err = core.sandbox_call(budget, function() return json.decode(big) end)
    T.check(ok, "the call itself returns")
    T.eq(v, nil, "over the cap: nil")
    T.check(type(err) == "string" and err:find("memory", 1, true), tostring(err))
    T.check(budget.retained < 64 * 1024, "nothing held after the failure: " .. budget.retained)
    budget = { instructions = 1e9, memory = 4 * 1024 * 1024, retained = 0 }
    ok, v = core.sandbox_call(budget, function() return json.decode(big) end)
    T.check(ok and type(v) == "table" and #v[1] == 600 * 1024, "under the cap: decoded")
  end },

  -- (1e400, NaN, 0x10, 2^53+1, duplicates, invalid UTF-8, \u0000, null,
  -- [] vs {}: reliability/C3, through the API and chatapp.json.)
  { "integers are exact at the 64-bit edges; number grammar", function()
    local v = assert(json.decode("[12345678901234567, -9223372036854775808, 9223372036854775807, 1.0, 1e3, 0.5, -0]"))
    T.eq(math.type(v[1]), "integer")
    T.eq(v[1], 12345678901234567)
    T.eq(v[2], math.mininteger)
    T.eq(v[3], math.maxinteger)
    T.eq(math.type(v[4]), "integer", "1.0 is integral")
    T.eq(v[5], 1000)
    T.eq(v[6], 0.5)
    T.eq(math.type(v[7]), "integer")
    T.eq(json.encode(v), "[12345678901234567,-9223372036854775808,9223372036854775807,1,1000,0.5,0]")
    -- beyond 64 bits: a float (the typed PhoneNumber keeps the digits),
    -- never an integer rounded to the nearest one
    T.eq(math.type(json.decode("99999999999999999999")), "float")
    T.eq(math.type(json.decode("-9223372036854775809")), "float")
    T.eq(math.type(json.decode("-9.223372036854776e+18")), "float", "-2^63 as a float stays one")
    local once = assert(json.encode(json.decode("[-9223372036854775809]")))
    T.eq(json.encode(json.decode(once)), once, "stable (fuzz_json found it)")
    for _, s in ipairs { "01", "1.", ".5", "+1", "-", "1e", "--1" } do
      local x, err = json.decode(s)
      T.eq(x, nil, s)
      T.check(type(err) == "string", "a message for " .. s)
    end
  end },

  { "strings with NUL round-trip, keys too", function()
    local s = assert(json.encode { ["a\0b"] = "c\0d" })
    T.eq(s, '{"a\\u0000b":"c\\u0000d"}')
    local back = assert(json.decode(s))
    T.eq(back["a\0b"], "c\0d")
    T.eq(back.a, nil)
    T.eq(json.encode { ["a\0"] = 1, a = 2 }, '{"a":2,"a\\u0000":1}', "sorted by bytes, NUL included")
    T.eq(json.decode('"\\u0000"'), "\0")
    -- names with bytes that are not UTF-8 are sorted as written (fuzz_json)
    local once = assert(json.encode { ["\0\x85[["] = 1, ["\0\xef\xbf\xbd["] = 2 })
    T.eq(once, '{"\\u0000\xef\xbf\xbd[":2,"\\u0000\xef\xbf\xbd[[":1}')
    T.eq(json.encode(json.decode(once)), once, "stable")
    local k, err = json.encode { ["\xff"] = 1, ["\xfe"] = 2 }
    T.eq(k, nil, "two names that are the same once written")
    T.check(err and err:find("twice", 1, true), err)
    k, err = json.encode { [1] = "x", ["1"] = "y", z = 1 }
    T.eq(k, nil, "an integer key and a string key with the same name")
    T.check(err and err:find("twice", 1, true), err)
  end },

  { "the encoder always writes valid UTF-8", function()
    local cases = {
      { "\xff", '"\xEF\xBF\xBD"' },
      { "a\xc3", '"a\xEF\xBF\xBD"' },            -- truncated sequence
      { "\xc0\xaf", '"\xEF\xBF\xBD\xEF\xBF\xBD"' }, -- overlong
      { "\xed\xa0\x80", '"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"' }, -- a surrogate
      { "é😀", '"é😀"' },
      { "\27[31m\7\r\n", '"\\u001b[31m\\u0007\\r\\n"' },
    }
    for _, c in ipairs(cases) do
      local s = assert(json.encode(c[1]))
      T.eq(s, c[2])
      T.check(valid_utf8(s), "valid: " .. s)
    end
    -- keys too, and nested values
    local s = assert(json.encode { ["k\xfe"] = { "v\x80" } })
    T.check(valid_utf8(s), s)
    T.check(json.decode(s), "and it decodes")
  end },

  { "one depth limit for decode and encode", function()
    local max = json.max_depth
    T.eq(max, 128)
    local deep = assert(json.decode(nested(max, "1")), "decoding accepts max_depth")
    local s, err = json.encode(deep)
    T.eq(s, nested(max, "1"), "what was decoded encodes again")
    T.eq(err, nil)
    local v
    v, err = json.decode(nested(max + 1, "1"))
    T.eq(v, nil)
    T.check(err and err:find("nesting deeper than " .. max, 1, true), err)
    s, err = json.encode { deep }
    T.eq(s, nil)
    T.check(err and err:find("deeper than " .. max, 1, true), err)
    -- a cycle is a depth error, not a hang
    local t = {}
    t.t = t
    s, err = json.encode(t)
    T.eq(s, nil)
    T.check(err and err:find("deeper", 1, true), err)
  end },

  { "null at the top, surrogate pairs, trailing text", function()
    T.eq(json.decode("null"), json.null)
    T.eq(json.decode(' "\\ud83d\\ude00" '), "😀")
    local x, err = json.decode('"\\ud800"')
    T.eq(x, nil, "lone surrogate")
    T.check(err and err:find("line 1, column", 1, true), err)
    T.eq(json.decode("[1] x"), nil, "trailing characters")
    T.eq(json.decode(""), nil)
  end },

  { "json.array refuses a table that has a metatable", function()
    local view = setmetatable({}, { __index = math, __newindex = function() error("read-only") end })
    T.raises(function() json.array(view) end, "already has a metatable")
    T.check(getmetatable(view).__index == math, "its metatable is untouched")
    local a = json.array()
    T.eq(json.array(a), a, "marking twice is fine")
    T.eq(json.encode(a), "[]")
    T.eq(json.encode(json.array { 1, 2 }), "[1,2]")
  end },
}

return T.done()
