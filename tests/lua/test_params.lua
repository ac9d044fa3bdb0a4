-- Parameter flattening as the official SDK does it (OpenApiUtil.query),
-- against the vector v3-sorting-many-params-flattened of
-- tests/data/signing.json; and the values that cannot be sent.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core

local vectors = assert(chatapp.json.decode(T.read(T.dir() .. "/../data/signing.json")))
local checked = 0
for _, v in ipairs(vectors.vectors) do
  local nested = v.input.nested_query_input
  if nested then
    local flat = core.flatten_params(nested)
    local n = 0
    for k, want in pairs(v.input.query) do
      T.eq(flat[k], want, v.id .. " " .. k)
      n = n + 1
    end
    for k in pairs(flat) do n = n - 1 end
    T.eq(n, 0, "no extra parameters")
    checked = checked + 1
  end
end
T.check(checked >= 1, "a vector with nested input")

T.cases {
  { "scalars and nesting", function()
    local flat = core.flatten_params {
      A = "x", B = 42, C = 1.5, D = true, E = false, F = 3.0,
      G = { 1, chatapp.json.null, 3 }, H = { I = { J = "deep" } }, K = "",
    }
    T.eq(flat.A, "x")
    T.eq(flat.B, "42")
    T.eq(flat.C, "1.5")
    T.eq(flat.D, "true")
    T.eq(flat.E, "false")
    T.eq(flat.F, "3", "no .0")
    T.eq(flat["G.1"], "1")
    T.eq(flat["G.2"], nil, "null is skipped")
    T.eq(flat["G.3"], "3", "without renumbering")
    T.eq(flat["H.I.J"], "deep")
    T.eq(flat.K, "", "empty strings stay")
  end },
  { "values that cannot be sent", function()
    T.raises(function() core.flatten_params { A = function() end } end, "cannot be sent")
    T.raises(function() core.flatten_params { A = 0 / 0 } end, "not a finite number")
    T.raises(function() core.flatten_params { A = math.huge } end, "not a finite number")
    T.raises(function() core.flatten_params { [true] = 1 } end, "key of type boolean")
    local deep = {}
    local t = deep
    for _ = 1, 40 do t.x = {} t = t.x end
    T.raises(function() core.flatten_params(deep) end, "nested too deep")
  end },

  { "numbers are written one way: parameters and phone fields agree", function()
    local cases = { { 42, "42" }, { -7, "-7" }, { 2.0, "2" }, { 1e15, "1000000000000000" }, { 1.5, "1.5" },
      { 0.1, "0.1" }, { 8613800000001, "8613800000001" }, { math.maxinteger, tostring(math.maxinteger) } }
    for _, c in ipairs(cases) do
      T.eq(core.flatten_params({ A = c[1] }).A, c[2], "parameter " .. tostring(c[1]))
      local body = assert(chatapp.json.encode { PhoneNumbers = { { PhoneNumber = c[1] } } })
      local list = assert(core.decode_phone_numbers(body))
      T.eq(list[1].phone_number, c[2], "phone field " .. tostring(c[1]))
    end
    T.raises(function() core.flatten_params({ A = 0 / 0 }) end, "not a finite number")
  end },
}

return T.done()
