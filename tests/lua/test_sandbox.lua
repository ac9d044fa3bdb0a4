-- The policy sandbox (docs/internals/sandbox.md, testing.md): what the
-- reliability cases D1-D7 (tests/reliability/D*.lua) do not check: the
-- forbidden functions' messages, secrets, load-time limits, and issue
-- 11's holes (the runner, error values, searches, shared tables, plans).  Policies run through
-- the real runner with a fake host that serves fixture numbers.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local runner_mod = require "chatapp.runner"

local logged = {}
local host = require("fake_host").new({
  { PhoneNumber = "1", Status = "CONNECTED", QualityRating = "GREEN" },
  { PhoneNumber = "2", Status = "FLAGGED", QualityRating = "RED" },
  { PhoneNumber = "3", Status = "BANNED", QualityRating = "RED" },
}, { http_error = "no http in tests", log = function(_, line) logged[#logged + 1] = line end })

local function new_runner(opts)
  local o = { output = "none", memory_limit_mb = 8, instruction_limit = 2000000 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return runner_mod.new(o, host)
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
  { "forbidden functions: their messages; what policies may still use", function()
    -- (Out of reach or raising, the host running on: reliability/D4.)
    -- Each of these raises, for every number, with its own message.
    for _, c in ipairs {
      { "require 'os'", 'require("os"): policies can only require "chatapp"' },
      { "require 'io'", 'require("io"): policies can only require "chatapp"' },
      { "collectgarbage('stop')", 'collectgarbage("stop") is not available to policies' },
      { "return load(string.dump(function() end))", "attempt to call a nil value (field 'dump')" },
    } do
      local rep = assert(run_policy(policy_with(c[1])))
      T.eq(errors_of(rep, "victim").errors, 3, c[1])
      T.eq(errors_of(rep, "victim").matched, 0, c[1])
      T.check(first_error(rep):find(c[2], 1, true), c[1] .. ": " .. first_error(rep))
    end
    -- What policies may ask the collector still works.
    local rep = assert(run_policy(policy_with("return collectgarbage('count') > 0")))
    T.eq(errors_of(rep, "victim").matched, 3, first_error(rep))
    rep = assert(run_policy(policy_with("local f, e = load('\\27Lua', 'x', 'b') return f == nil and e ~= nil")))
    T.eq(errors_of(rep, "victim").matched, 3, "binary load refused with a message")
    -- The chatapp module policies see has no host side.
    rep = assert(run_policy(policy_with(
      "local c = require 'chatapp' return c.core == nil and c.client == nil and c.http_client == nil")))
    T.eq(errors_of(rep, "victim").matched, 3)
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

  -- Issue 11: the sandbox holds.

  { "11.1: the runner calls nothing the policy can still reach", function()
    -- Replacing the shared Policy metatable's methods used to reach every
    -- other file's policies.
    local rep = assert(run_policy([[
local chatapp = require "chatapp"
local p = chatapp.policy { name = "victim", where = { status = "CONNECTED" } }
pcall(function() getmetatable(p).uses_space = function() return false end end)
pcall(function() getmetatable(p).matches_where = function() return false end end)
p.matches_where = function() error("called outside the sandbox") end
p.uses_space = function() error("called outside the sandbox") end
p.filter = function() error("changed after declaring") end
p.where.status = "BANNED"
return p]]))
    T.eq(errors_of(rep, "victim").matched, 1, "the where clause as declared")
    T.eq(errors_of(rep, "victim").errors, 0)
    T.eq(errors_of(rep, "bystander").matched, 3, "the other file's policy is untouched")
    T.check(getmetatable(chatapp.policy { name = "x" }) == chatapp.Policy, "getmetatable(p) == chatapp.Policy")
    -- Returned values are data: no metamethod runs.
    local ok, err = new_runner():load_string("p.lua", [[
return setmetatable({}, { __len = function() error("__len ran") end,
                          __index = function() error("__index ran") end })]])
    T.eq(ok, nil)
    T.check(err:find("must return chatapp.policy", 1, true), err)
    ok, err = new_runner():load_string("p.lua", [[
local p = require("chatapp").policy { name = "meta" }
return setmetatable({ p }, { __index = function() error("__index ran") end })]])
    T.eq(ok, true, err)
    -- where lists and spaces are copied raw.
    rep = assert(run_policy([[
local chatapp = require "chatapp"
local trap = { __index = function() error("trap") end, __len = function() error("trap") end,
               __pairs = function() error("trap") end, __eq = function() error("trap") end }
return chatapp.policy { name = "victim", where = { status = setmetatable({ "CONNECTED", "FLAGGED" }, trap) },
  filter = function() return setmetatable({}, trap) end }]]))
    T.eq(errors_of(rep, "victim").matched, 2)
    T.eq(errors_of(rep, "victim").errors, 0)
  end },

  { "11.1: error values and finalizers run under the budget", function()
    -- __tostring of an error value used to run in the runner, unbounded.
    local rep = assert(run_policy(policy_with(
      "error(setmetatable({}, { __tostring = function() for i = 1, 1e8 do end return 'custom' end }))"),
      { instruction_limit = 100000 }))
    local msg = first_error(rep)
    T.check(not msg:find("custom", 1, true), "not run outside the budget: " .. msg)
    T.eq(errors_of(rep, "bystander").matched, 3)
    rep = assert(run_policy(policy_with(
      "error(setmetatable({}, { __tostring = function() return 'custom' end }))")))
    T.check(first_error(rep):find("custom", 1, true), "a cheap __tostring still names the error")
    -- __gc finalizers run with hooks off: refused.
    rep = assert(run_policy(policy_with("setmetatable({}, { __gc = function() end }) return true")))
    T.check(first_error(rep):find("__gc finalizers are not available", 1, true), first_error(rep))
    local ok, err = new_runner():load_string("p.lua", "setmetatable({}, { __gc = true })")
    T.check(not ok and err:find("__gc", 1, true), err)
    -- A message handler and a coroutine's __close run after the budget error.
    for _, body in ipairs {
      "xpcall(function() while true do end end, function() while true do end end)",
      "local c = setmetatable({}, { __close = function() while true do end end }) "
        .. "coroutine.wrap(function() local x <close> = c while true do end end)()",
      "local c = setmetatable({}, { __close = function() while true do end end }) "
        .. "local co = coroutine.create(function() local x <close> = c while true do end end) "
        .. "coroutine.resume(co) coroutine.close(co)",
    } do
      local t0 = os.clock()
      rep = assert(run_policy(policy_with(body), { instruction_limit = 100000 }))
      T.check(os.clock() - t0 < 5, "bounded: " .. body)
      T.check(first_error(rep):find("instruction budget exceeded", 1, true), body .. ": " .. first_error(rep))
      T.eq(errors_of(rep, "bystander").matched, 3)
    end
  end },

  { "11.2: every string search is bounded", function()
    local t0 = os.clock()
    local rep = assert(run_policy(policy_with(
      "local hay = ('a'):rep(2e6) return hay:find(('a'):rep(5e5) .. 'b', 1, true) == nil "
        .. "and hay:find(('a'):rep(5e5) .. 'b') == nil and hay:find(('a'):rep(10), 1999990, true) == 1999990 "
        .. "and ('abc'):find('', 10, true) == nil and ('abc'):find('c', -1, true) == 3 "
        .. "and (')'):rep(1e6):find((')'):rep(2e5) .. ']') == nil and ('a)]b'):find(')]') == 2"),
      -- (time: C work that instructions do not see; under valgrind it
      -- takes more than the 10 s a small instruction budget gives)
      { memory_limit_mb = 32, time_limit_ms = 600000 }))
    T.eq(errors_of(rep, "victim").matched, 3, first_error(rep))
    -- (Lua's own search takes about 17 s here, and some minutes under
    -- valgrind; linear, well under a second, and 5-12 s under valgrind,
    -- which preloads its vgpreload library into the process it runs.)
    local bound = (os.getenv("LD_PRELOAD") or ""):find("vgpreload", 1, true) and 60 or 10
    T.check(os.clock() - t0 < bound, ("plain finds are linear: %.1f s (at most %d)"):format(os.clock() - t0, bound))
    for _, body in ipairs {
      "return ('a'):rep(1e6):find('(' .. ('a'):rep(1e5) .. 'b)')",
      "return ('b'):rep(1e4):find('[' .. ('b'):rep(1e5) .. 'a]*c')",
      "return ('b'):rep(1e5):match('[' .. ('b'):rep(1e4) .. ']c')",
      "for w in ('ab'):rep(1e5):gmatch('(ab)%1%1c') do end",
    } do
      t0 = os.clock()
      rep = assert(run_policy(policy_with(body), { memory_limit_mb = 32 }))
      T.check(first_error(rep):find("can take hours", 1, true), body .. ": " .. first_error(rep))
      T.check(os.clock() - t0 < 5, "refused quickly: " .. body)
    end
    -- ("").rep("", 1e18) used to loop in C for ever.
    t0 = os.clock()
    rep = assert(run_policy(policy_with("return (''):rep(1e18) == '' and ('').rep('', 1e18, '') == ''")))
    T.eq(errors_of(rep, "victim").matched, 3)
    T.check(os.clock() - t0 < 5, "empty rep is quick")
    rep = assert(run_policy(policy_with("local s = ('x'):rep(1e4) for _ = 1, 20 do s = s:gsub('x', 'xx') end")))
    T.check(first_error(rep):find("memory cap", 1, true) or first_error(rep):find("not enough memory", 1, true),
      first_error(rep))
    rep = assert(run_policy(policy_with("table.insert(setmetatable({}, { __len = function() return 1 << 40 end }), 1, 'x')")))
    T.check(first_error(rep):find("more than a policy may shift", 1, true), first_error(rep))
    -- core.find_plain is string.find(s, p, init, true), init rules included.
    math.randomseed(11)
    local mismatches = 0
    for _ = 1, 20000 do
      local function rs(len)
        local t = {}
        for i = 1, len do t[i] = string.char(96 + math.random(3)) end
        return table.concat(t)
      end
      local s, p = rs(math.random(0, 12)), rs(math.random(0, 4))
      local init = math.random(0, 3) > 0 and math.random(-15, 15) or nil
      local a1, a2 = ("").find(s, p, init, true) -- not in a policy: Lua's own
      local b1, b2 = core.find_plain(s, p, init)
      if a1 ~= b1 or a2 ~= b2 then mismatches = mismatches + 1 end
    end
    T.eq(mismatches, 0, "find_plain agrees with string.find")
    -- Everyday patterns still work.
    rep = assert(run_policy(policy_with([[
local name = "Chatapp Demo Support Line"
return n.phone_number:match("^%d+$") ~= nil and name:match("^(%w+)%s+(%w+)") == "Chatapp"
  and ("+86 138-0000-0001"):gsub("[^%d]", "") == "8613800000001"
  and select(2, name:gsub("%w+", "")) == 4 and ("a,b,c"):find(",", 1, true) == 2]])))
    T.eq(errors_of(rep, "victim").matched, 3, first_error(rep))
  end },

  { "11.3: one file cannot break another's shared tables", function()
    local r = new_runner()
    assert(r:load_string("a.lua", [[
local chatapp = require "chatapp"
local function try(f) pcall(f) end
try(function() chatapp.json.array(math) end)
try(function() chatapp.json.array(string) end)
try(function() chatapp.json.array(chatapp.json) end)
try(function() chatapp.enums.Status = nil end)
try(function() chatapp.enums.Status.values[1] = "X" end)
try(function() chatapp.fields[1] = "x" end)
try(function() chatapp.enum_for_field("status").values[1] = "X" end)
try(function() getmetatable(chatapp.json.array {}).__index = function() error("x") end end)
for _, lib in ipairs { math, string, table, os, chatapp, chatapp.json, chatapp.enums, chatapp.fields } do
  local _, inner = pairs(lib)
  try(function() inner.floor = nil inner.upper = nil inner.json = nil inner[1] = nil end)
end
return chatapp.policy { name = "a", filter = function() return pcall(chatapp.json.array, math) == false end }]]))
    assert(r:load_string("b.lua", [[
local chatapp = require "chatapp"
return chatapp.policy { name = "b", filter = function()
  return math.floor(1.5) == 1 and ("a"):upper() == "A" and chatapp.enums.Status.values[1] ~= "X"
    and chatapp.enum_for_field("status").values[1] ~= "X"
    and chatapp.fields[1] == "phone_number" and chatapp.json.encode(chatapp.json.array {}) == "[]"
end }]]))
    local rep = r:run { dry_run = true }
    T.eq(errors_of(rep, "a").matched, 3, first_error(rep))
    T.eq(errors_of(rep, "b").matched, 3, first_error(rep))
    T.eq(errors_of(rep, "b").errors, 0)
    T.eq(math.floor(1.5), 1, "the host's math is intact")
    T.eq(chatapp.fields[1], "phone_number")
  end },

  { "11.4: plan internals are out of reach; actions are validated", function()
    local rep = assert(run_policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "victim", decide = function(n, plan)
  plan._add(plan, { kind = "bogus", request = {} })
end }]]))
    T.eq(errors_of(rep, "victim").errors, 3, "a policy error, not an abort")
    T.eq(#rep.actions, 0)
    T.eq(errors_of(rep, "bystander").matched, 3)
    rep = assert(run_policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "victim", decide = function(n, plan)
  plan:webhook { url = "http://127.0.0.1:9/h", headers = { ["X-A"] = "a\r\nInjected: 1" } }
end }]]))
    T.check(first_error(rep):find("p.lua:3:", 1, true), "file:line: " .. first_error(rep))
    T.eq(#rep.actions, 0)
    rep = assert(run_policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "victim", decide = function(n, plan)
  assert(getmetatable(plan) == "chatapp.Plan")
  assert(next(plan) == nil and plan._add == nil and plan._policy == nil)
  assert(not pcall(function() plan.log = nil end))
  plan:exec { argv = { "/bin/echo", "a\0b" } }
end }]]))
    T.check(first_error(rep):find("p.lua:6:", 1, true) and first_error(rep):find("NUL", 1, true), first_error(rep))
    -- The action a plan method returns is the policy's copy.
    rep = assert(run_policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "victim", decide = function(n, plan)
  local a = plan:log("note %s", n.phone_number)
  a.kind = "bogus"
  a.request.message = nil
end }]]))
    T.eq(errors_of(rep, "victim").errors, 0, first_error(rep))
    T.eq(#rep.actions, 3)
    for _, a in ipairs(rep.actions) do
      T.eq(a.kind, "log")
      T.eq(type(a.request.message), "string")
    end
    local plans = require "chatapp.plan"
    T.check(plans.validate { kind = "bogus", request = {} }:find("unknown action kind", 1, true), "kind")
    local err = plans.validate { kind = "webhook", request = { method = "POST", url = "http://127.0.0.1/x",
      headers = { ["X"] = "a\nb" }, timeout_ms = 1, attempts = 1 } }
    T.check(type(err) == "string" and err:find("a header cannot carry", 1, true), "header with LF: " .. tostring(err))
    T.eq(plans.validate { kind = "webhook", request = { method = "POST", url = "http://127.0.0.1/x",
      headers = { ["X"] = "a b" }, timeout_ms = 1, attempts = 1 } }, nil, "the same request without the LF")
    T.eq(plans.validate { kind = "log", request = { message = "m" } }, nil)
  end },

  { "11.5: one file's policies share one budget; the run has a total", function()
    local src = [[
local chatapp = require "chatapp"
local keep, list = {}, {}
for i = 1, 10 do
  list[i] = chatapp.policy { name = "many-" .. i, filter = function()
    keep[#keep + 1] = ("x"):rep(1024 * 1024) return true end }
end
return list]]
    local r = new_runner { memory_limit_mb = 8 }
    assert(r:load_string("many.lua", src))
    assert(r:load_string("bystander.lua", BYSTANDER))
    local rep = r:run { dry_run = true }
    local joined = {}
    for _, e in ipairs(rep.errors) do joined[#joined + 1] = e.message end
    joined = table.concat(joined, "\n")
    T.check(joined:find("shared by every policy of many.lua", 1, true), joined)
    local matched = 0
    for i = 1, 10 do matched = matched + errors_of(rep, "many-" .. i).matched end
    T.check(matched < 8, "8 MB for the whole file, not per policy: " .. matched .. " MB kept")
    T.eq(errors_of(rep, "bystander").matched, 3)
    -- The run's total: four times one file's.
    r = new_runner { memory_limit_mb = 8 }
    for i = 1, 9 do
      assert(r:load_string(("f%d.lua"):format(i), ([[
local keep = {}
return require("chatapp").policy { name = "f%d", filter = function()
  keep[#keep + 1] = ("x"):rep(1536 * 1024) return true end }]]):format(i)))
    end
    rep = r:run { dry_run = true }
    joined = {}
    for _, e in ipairs(rep.errors) do joined[#joined + 1] = e.message end
    joined = table.concat(joined, "\n")
    T.check(joined:find("all policy files of the run together", 1, true), joined)
    T.eq(errors_of(rep, "f1").errors, 0, "the first files ran")
    T.check(errors_of(rep, "f9").errors > 0, "the last one met the run's cap")
  end },

  { "11.6: string.dump is out of reach", function()
    local rep = assert(run_policy(policy_with(
      "return ('').dump == nil and string.dump == nil and getmetatable('') == 'string'")))
    T.eq(errors_of(rep, "victim").matched, 3, first_error(rep))
    T.eq(type(string.dump), "function", "the host keeps it")
  end },

  { "11.7: past the action cap, one line with the count", function()
    logged = {}
    local rep = assert(run_policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "flood", decide = function(n, plan)
  for i = 1, 6000 do plan:log("line %d", i) end
end }]], { instruction_limit = 1e9, memory_limit_mb = 256 }))
    T.eq(#rep.actions, 10000)
    local same, count = 0, 0
    for _, line in ipairs(logged) do
      if line:find("the same error", 1, true) then same = same + 1 end
      if line:find("1 more numbers not decided after the cap of 10000 actions", 1, true) then count = count + 1 end
    end
    T.eq(same, 0, "no line per number")
    T.eq(count, 1, table.concat(logged, "\n"))
  end },
}

return T.done()
