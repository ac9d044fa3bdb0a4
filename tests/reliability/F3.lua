-- ctest: timeout=120
-- F3. Lua probes for secrets (globals, registry via API, error messages).
-- Criterion: nothing found.
--
-- How: chatapp-run runs a probing policy (policies are the untrusted Lua;
-- a --lua script is the operator's own program) with canary credentials,
-- once from the environment (an AccessKey secret and an STS token, plus a
-- copy of the token under an innocent-looking name) and once from a 0600
-- credentials file.  In the file's load, in filter, decide and finish, the
-- policy walks everything it can reach: its globals and _G, every table
-- and view (pairs and next), every metatable getmetatable gives (strings,
-- the number, the plan, PhoneNumber values, json.null, views), what
-- require gives, and the results and error messages of every function it
-- reaches called with a few argument lists (nil, a string, a table, a
-- number; --dry-run, so nothing is carried out), to a bounded depth; it
-- also tries the debug library, package.loaded, the registry
-- (debug.getregistry), load with a custom environment, os.getenv of the
-- secret names (the error messages), io.open / loadfile / dofile of the
-- credentials file, string.dump and error values with __tostring.  Every
-- string it meets is searched for the canaries (the needles are built at
-- run time from reversed text, outside everything walked).
--   * nothing found: the policy reports 0 matches in every phase, and no
--     canary is in stdout or stderr;
--   * the walk is real: it reports how many values it visited (at least
--     1000) and it finds a control string put where a policy may see it
--     (a space label) the same way it looks for the canaries.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local SECRET, TOKEN = "F3CanarySecret-51ce7b", "F3CanaryToken-9d02aa/Q=="
local CONTROL = "F3Control-label-3e11"
local KEY_ID = "STS.f3canaryKey"
local dir = E.tmpdir()
local keys = E.write(dir .. "/keys.json", assert(chatapp.json.encode {
  keys = { { access_key_id = KEY_ID, access_key_secret = SECRET, security_token = TOKEN,
             account = "2000000000000001" } },
}))
local emu = E.emulator { "--keys", keys }
local spaces = E.write(dir .. "/spaces.json",
  ('[{"cust_space_id": "C20230115000001", "isv_code": "isv-acme-7f3k9q2m", "label": "%s"}]'):format(CONTROL))

local PROBE = [==[
local chatapp = require "chatapp"
local NEEDLES = { ("@SECRET@"):reverse(), ("@TOKEN@"):reverse() }
local CONTROL = ("@CONTROL@"):reverse()
local CRED_FILE = "@CRED_FILE@"
local ENV = _ENV

local function probe(phase, extra)
  local seen, queue, head = {}, {}, 1
  local visited, found, control, calls = 0, {}, false, 0
  local function look(s, where)
    for _, n in ipairs(NEEDLES) do
      if s:find(n, 1, true) then found[#found + 1] = where end
    end
    if s:find(CONTROL, 1, true) then control = true end
  end
  local function push(v, where, depth)
    local ty = type(v)
    if ty == "string" then visited = visited + 1 look(v, where) return end
    if ty == "number" or ty == "boolean" or ty == "nil" then return end
    if seen[v] then return end
    seen[v] = true
    queue[#queue + 1] = { v, where, depth }
  end
  local function try(where, depth, f, ...)
    calls = calls + 1
    local r = table.pack(pcall(f, ...))
    for i = 1, r.n do push(r[i], where .. "()#" .. i, depth + 1) end
    if not r[1] then push(tostring(r[2]), where .. "():error", depth + 1) end
  end
  push(ENV, "_ENV", 0)
  push(_G, "_G", 0)
  push(extra, phase, 0)
  push(getmetatable(""), "getmetatable('')", 0)
  push(chatapp.json.null, "json.null", 0)
  for _, name in ipairs { "debug", "io", "package", "require", "load", "loadfile", "dofile", "rawget",
                          "collectgarbage", "string", "os" } do
    push(ENV[name], name, 0)
  end
  -- the debug library and the registry, if any
  local dbg = ENV.debug
  if dbg and dbg.getregistry then try("debug.getregistry", 0, dbg.getregistry) end
  for _, m in ipairs { "debug", "io", "os", "package", "chatapp.core", "chatapp" } do
    try("require(" .. m .. ")", 0, require, m)
  end
  -- load with an environment of our own, and what a chunk sees
  try("load", 0, function() return load("return _ENV, ...", "x", "t", {})() end)
  try("load2", 0, function() return load("return _ENV")() end)
  -- the secret variables: the error messages
  for _, name in ipairs { "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
                         "ALIBABA_CLOUD_ACCESS_KEY_ID", "MY_INNOCENT_COPY", "SECURITY_TOKEN",
                         "ALIBABA_CLOUD_CREDENTIALS_FILE", "HOME" } do
    try("os.getenv(" .. name .. ")", 0, os.getenv, name)
  end
  -- files
  for _, f in ipairs { "io.open", "loadfile", "dofile" } do
    local fn = (f == "io.open") and (ENV.io and ENV.io.open) or ENV[f]
    if fn then try(f, 0, fn, CRED_FILE) end
  end
  try("string.dump", 0, function() return string.dump(probe) end)
  try("error __tostring", 0, function()
    error(setmetatable({}, { __tostring = function() return "x" end }))
  end)
  -- the walk; then every object with a metatable is indexed with every
  -- key name met anywhere (fields behind an __index function), and the
  -- walk goes on with what that gives
  local args = { {}, { "x" }, { {} }, { 1 }, { "x", "y", {} } }
  local names, objects, round = { raw = true, secret = true, token = true, credentials = true }, {}, 0
  ::again::
  while head <= #queue and visited < 200000 do
    local v, where, depth = table.unpack(queue[head])
    head = head + 1
    visited = visited + 1
    local ty = type(v)
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" then look(s, where .. ":tostring") end
    local mt = getmetatable(v)
    if mt ~= nil then
      push(mt, where .. ":mt", depth)
      objects[#objects + 1] = { v, where, depth }
    end
    if ty == "table" then
      local okp = pcall(function()
        for k, x in pairs(v) do
          if type(k) == "string" then names[k] = true end
          if type(x) == "string" and #x < 64 and x:find("^[%a_][%w_]*$") then names[x] = true end
          push(k, where .. ".key", depth)
          push(x, where .. "." .. tostring(k), depth)
        end
      end)
      pcall(function()
        for k, x in next, v do
          push(k, where .. ".key", depth)
          push(x, where .. "." .. tostring(k), depth)
        end
      end)
      if not okp then push("pairs failed", where, depth) end
    elseif ty == "function" and depth < 3 and v ~= print then
      for _, a in ipairs(args) do try(where, depth, v, table.unpack(a)) end
    end
  end
  round = round + 1
  if round <= 2 then
    local list = objects
    objects = {}
    for _, o in ipairs(list) do
      local v, where, depth = o[1], o[2], o[3]
      for k in pairs(names) do
        local okk, x = pcall(function() return v[k] end)
        if okk then push(x, where .. "[" .. k .. "]", depth) end
      end
      try(where .. ":raw", depth, function() return v:raw() end)
    end
    goto again
  end
  return ("probe %s: visited %d, calls %d, found %d%s, control %s"):format(phase, visited, calls, #found,
    #found > 0 and (" at " .. table.concat(found, ", "):sub(1, 300)) or "", tostring(control))
end

local loaded = probe("load", nil)
local reports = {}
return chatapp.policy { name = "f3-probe", where = { phone_number = "6591234567" },
  filter = function(n)
    reports[#reports + 1] = probe("filter", n)
    return true
  end,
  decide = function(n, plan)
    plan:log(loaded)
    plan:log(reports[#reports] or "no filter report")
    plan:log(probe("decide", { n = n, plan = plan, raw = n.phone_number }))
  end,
  finish = function(plan, numbers)
    plan:log(probe("finish", { numbers = numbers, plan = plan }))
  end }
]==]

local function policy_for(cred_file)
  local src = PROBE:gsub("@SECRET@", (SECRET:reverse():gsub("%%", "%%%%")))
                   :gsub("@TOKEN@", (TOKEN:reverse():gsub("%%", "%%%%")))
                   :gsub("@CONTROL@", CONTROL:reverse())
                   :gsub("@CRED_FILE@", cred_file)
  return E.policy(src)
end

local function check(r, what)
  T.eq(r.code, 0, what .. ": the probe ran: " .. r.err:sub(1, 2000))
  local text = r.out .. r.err
  local phases = 0
  for phase, visited, found, control in text:gmatch("probe (%a+): visited (%d+), calls %d+, found (%d+)[^,]*, control (%a+)") do
    phases = phases + 1
    print(("# %s, %s: visited %s values, found %s, control %s"):format(what, phase, visited, found, control))
    T.eq(tonumber(found), 0, what .. ": " .. phase .. " found a canary: " .. text:match("probe " .. phase .. "[^\n\"]*"))
    T.check(tonumber(visited) >= 1000, what .. ": " .. phase .. " walked " .. visited .. " values")
    if phase == "filter" or phase == "decide" then
      T.eq(control, "true", what .. ": " .. phase .. " finds the control string where it is")
    end
  end
  T.eq(phases, 4, what .. ": load, filter, decide and finish reported: " .. text:sub(1, 1500))
  for _, c in ipairs { SECRET, TOKEN } do
    T.check(not text:find(c, 1, true), what .. ": a canary in the output")
  end
end

T.cases {
  { "credentials in the environment", function()
    local r = E.run({ "--endpoint", emu.url, "--dry-run", "--spaces", spaces, "-v", policy_for("/nonexistent") }, {
      ALIBABA_CLOUD_ACCESS_KEY_ID = KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET,
      ALIBABA_CLOUD_SECURITY_TOKEN = TOKEN, MY_INNOCENT_COPY = TOKEN })
    check(r, "environment")
  end },
  { "credentials in a file", function()
    local home = E.tmpdir()
    local creds = home .. "/.alibabacloud/credentials"
    os.execute("mkdir -p " .. E.quote(home .. "/.alibabacloud"))
    E.write(creds, ("[default]\ntype = sts\naccess_key_id = %s\naccess_key_secret = %s\nsecurity_token = %s\n")
      :format(KEY_ID, SECRET, TOKEN))
    os.execute("chmod 600 " .. E.quote(creds))
    local r = E.run({ "--endpoint", emu.url, "--dry-run", "--spaces", spaces, "-v", policy_for(creds) },
      { HOME = home, ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false })
    check(r, "file")
  end },
}

emu:stop()
E.cleanup()
return T.done()
