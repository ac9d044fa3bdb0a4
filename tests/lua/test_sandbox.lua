-- The policy sandbox (reliability.md 7D, 7F3): budgets, memory caps,
-- pattern bombs, forbidden functions, read-only shared tables, caps on
-- plans, odd error values, and secrets out of reach.  Policies run through
-- the real runner with a fake host that serves fixture numbers.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local runner_mod = require "chatapp.runner"

local fixture = assert(chatapp.json.encode {
  Code = "OK", RequestId = "R",
  PhoneNumbers = {
    { PhoneNumber = "1", Status = "CONNECTED", QualityRating = "GREEN" },
    { PhoneNumber = "2", Status = "FLAGGED", QualityRating = "RED" },
    { PhoneNumber = "3", Status = "BANNED", QualityRating = "RED" },
  },
})

local fake_client = {
  batch = function(_, reqs)
    local res = {}
    for i, r in ipairs(reqs) do res[i] = core.decode_phone_numbers(fixture, r.space) end
    return res, {}
  end,
  stats = function() return { calls = 1, attempts = 1, retries = 0, throttled = 0, failed = 0 } end,
}

local logged = {}
local function new_runner(opts)
  local o = { output = "none", memory_limit_mb = 8, instruction_limit = 2000000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return runner_mod.new(o, {
    client = function() return fake_client, "fake" end,
    http = function() return nil, "no http in tests" end,
    log = function(_, line) logged[#logged + 1] = line end,
  })
end

local BYSTANDER = [[
local chatapp = require "chatapp"
return chatapp.policy { name = "bystander", filter = function(n) return math.floor(1.5) == 1 end }]]

-- Load src as one policy file and a well-behaved file after it, run,
-- return the report.
local function run_policy(src, opts)
  local r = new_runner(opts)
  local ok, err = r:load_string("p.lua", src)
  if not ok then return nil, err end
  assert(r:load_string("bystander.lua", BYSTANDER))
  return r:run { dry_run = true }
end

local function policy_with(filter_body, extra)
  return ([[
local chatapp = require "chatapp"
return chatapp.policy { name = "victim", filter = function(n) %s end %s }]]):format(filter_body, extra or "")
end

local function errors_of(rep, name)
  for _, e in ipairs(rep.policies) do if e.name == name then return e end end
end

local function first_error(rep)
  return rep.errors[1] and rep.errors[1].message or ""
end

T.cases {
  { "D1: endless loops end with the budget; others carry on", function()
    for _, body in ipairs {
      "while true do end",
      "while true do pcall(function() while true do end end) end",
      "local co = coroutine.wrap(function() while true do end end) co()",
      "local function f() return f() end return f()",
    } do
      local t0 = os.clock()
      local rep = assert(run_policy(policy_with(body)))
      T.check(first_error(rep):find("instruction budget exceeded", 1, true), body .. ": " .. first_error(rep))
      T.check(os.clock() - t0 < 5, "bounded: " .. body)
      T.eq(errors_of(rep, "victim").matched, 0)
      T.eq(errors_of(rep, "bystander").matched, 3, "the other policy ran")
      T.eq(rep.status, "policy")
    end
  end },

  { "D2: memory bombs stop at the cap", function()
    for _, body in ipairs {
      "local s = string.rep('x', 1 << 30) return #s > 0",
      "local t = {} for i = 1, 1e8 do t[i] = i end",
      "local s = 'x' for i = 1, 40 do s = s .. s end",
    } do
      local rep = assert(run_policy(policy_with(body)))
      local msg = first_error(rep)
      T.check(msg:find("memory cap of 8 MB exceeded", 1, true) or msg:find("not enough memory", 1, true),
        body .. ": " .. msg)
      T.eq(errors_of(rep, "bystander").matched, 3)
    end
    local used = core.memory()
    T.check(used < 64 * 1024 * 1024, "the host's heap stays small: " .. used)
  end },

  { "D3: backtracking patterns are refused", function()
    for _, body in ipairs {
      "return (('a'):rep(22)):find(('a-'):rep(14) .. 'b')",
      "return (('a'):rep(24)):gsub(('a?'):rep(24) .. ('a'):rep(24), '') ~= nil",
      "return (n.phone_number:rep(50)):match(('.-'):rep(9) .. 'x') ~= nil",
    } do
      local t0 = os.clock()
      local rep = assert(run_policy(policy_with(body)))
      T.check(first_error(rep):find("can take hours", 1, true), body .. ": " .. first_error(rep))
      T.check(os.clock() - t0 < 2, "refused quickly")
    end
    -- ordinary patterns and plain searches are fine
    local rep = assert(run_policy(policy_with(
      "return n.phone_number:find('^%d+$') ~= nil and ('a.b'):find('.', 1, true) == 2")))
    T.eq(errors_of(rep, "victim").matched, 3)
  end },

  { "D4: no io, processes, debug, binary chunks or GC control", function()
    local probes = {
      "return io ~= nil", "return os.execute ~= nil", "return os.exit ~= nil", "return os.remove ~= nil",
      "return debug ~= nil", "return package ~= nil", "return string.dump ~= nil", "return dofile ~= nil",
      "return loadfile ~= nil", "return rawset ~= nil", "return rawget ~= nil",
      "return chatapp_core ~= nil",
    }
    for _, body in ipairs(probes) do
      local rep = assert(run_policy(policy_with(body)))
      T.eq(errors_of(rep, "victim").matched, 0, body)
    end
    for _, body in ipairs {
      "require 'os'", "require 'io'", "collectgarbage('stop')",
      "return load(string.dump(function() end))",
    } do
      local rep = assert(run_policy(policy_with(body)))
      T.check(#rep.errors > 0 or errors_of(rep, "victim").matched == 0, body)
    end
    local rep = assert(run_policy(policy_with("local f, e = load('\\27Lua', 'x', 'b') return f == nil and e ~= nil")))
    T.eq(errors_of(rep, "victim").matched, 3, "binary load refused with a message")
    -- The chatapp module policies see has no host side.
    rep = assert(run_policy(policy_with(
      "local c = require 'chatapp' return c.core == nil and c.client == nil and c.http_client == nil")))
    T.eq(errors_of(rep, "victim").matched, 3)
  end },

  { "D5: shared tables and metatables cannot be changed", function()
    for _, body in ipairs {
      "getmetatable('').__index = {}",
      "string.upper = nil",
      "require('chatapp').policy = nil",
      "require('chatapp').Status.CONNECTED = 'x'",
      "setmetatable(require('chatapp'), {})",
      "math.pi = 3",
      "getmetatable(n).__index = nil",
      "require('chatapp').json.encode = nil",
    } do
      local rep = assert(run_policy(policy_with(body)))
      T.eq(errors_of(rep, "victim").errors, 3, body .. " raises")
    end
    T.eq(("x"):upper(), "X", "the host's string library is intact")
    T.eq(math.pi > 3.14, true)
    T.eq(type(chatapp.policy), "function")
  end },

  { "D6: a policy planning too much is stopped", function()
    local rep = assert(run_policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "flood", decide = function(n, plan)
  for i = 1, 1e6 do plan:log("line %d for %s", i, n.phone_number) end
end }]], { instruction_limit = 1e9, memory_limit_mb = 256 }))
    T.check(first_error(rep):find("more than 10000 actions", 1, true), first_error(rep))
    T.check(#rep.actions <= 10000, "capped")
  end },

  { "D7: odd error values are reported, not fatal", function()
    for _, body in ipairs {
      "error({ code = 1 })",
      "error(setmetatable({}, { __tostring = function() error('nested') end }))",
      "error(nil)",
      "error(n)",
      "error(setmetatable({}, { __tostring = function() return 'custom' end }))",
    } do
      local rep = assert(run_policy(policy_with(body)))
      T.eq(errors_of(rep, "victim").errors, 3, body)
      T.eq(errors_of(rep, "bystander").matched, 3)
    end
  end },

  { "F3: policies cannot read credentials", function()
    for _, var in ipairs { "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
                           "ALICLOUD_ACCESS_KEY_SECRET", "ACCESS_KEY_SECRET" } do
      local rep = assert(run_policy(policy_with(("return os.getenv(%q)"):format(var))))
      T.check(first_error(rep):find("policies cannot read credentials", 1, true), var)
    end
    local rep = assert(run_policy(policy_with("return os.getenv('HOME') ~= nil")))
    T.eq(errors_of(rep, "victim").matched, 3, "other variables are fine")
  end },

  { "load-time limits and errors", function()
    local ok, err = new_runner():load_string("p.lua", "while true do end")
    T.eq(ok, nil)
    T.check(err:find("instruction budget exceeded", 1, true), err)
    ok, err = new_runner():load_string("p.lua", "return 42")
    T.check(err:find("must return chatapp.policy", 1, true), err)
    ok, err = new_runner():load_string("p.lua", "\27Lua")
    T.check(err:find("precompiled chunks are refused", 1, true), err)
    local r = new_runner()
    assert(r:load_string("a.lua", 'return require("chatapp").policy { name = "same" }'))
    ok, err = r:load_string("b.lua", 'return require("chatapp").policy { name = "same" }')
    T.check(err and err:find("already used by a.lua", 1, true), err)
    ok, err = new_runner():load_string("p.lua", 'return require("chatapp").policy { name = "x", colour = 1 }')
    T.check(err and err:find('p.lua:1: policy has unknown key "colour"', 1, true), err)
  end },

  { "globals of one file do not leak into another", function()
    local r = new_runner()
    assert(r:load_string("a.lua", 'leak = 1 return require("chatapp").policy { name = "a" }'))
    assert(r:load_string("b.lua", [[
return require("chatapp").policy { name = "b", filter = function() return leak == nil end }]]))
    local rep = r:run { dry_run = true }
    T.eq(errors_of(rep, "b").matched, 3)
  end },
}

return T.done()
