--- The run: load policies, fetch every space once, evaluate, report.
--
-- Created by the C runtime (ca_runtime.c) with the options of the
-- configuration and the host functions:
--   host.client() -> Client, credential source | nil, message, code
--   host.log(level, line)
-- Policies decide; the runner carries out.  See docs/policies.md.

local chatapp = require "chatapp"
local sandbox = require "chatapp.sandbox"
local report = require "chatapp.report"

local QUERY = "QueryChatappPhoneNumbers"

local Runner = {}
Runner.__index = Runner

local M = {}

function M.new(options, host)
  return setmetatable({
    options = options or {},
    host = host,
    policies = {},
  }, Runner)
end

function Runner:log(level, line)
  self.host.log(level, line)
end

--- Turn what a policy file returned into a list of policies.
local function policies_of(value, name)
  if getmetatable(value) == chatapp.Policy then return { value } end
  if type(value) == "table" and #value > 0 then
    for i, p in ipairs(value) do
      if getmetatable(p) ~= chatapp.Policy then
        return nil, ("%s: item %d of the returned list is not a chatapp.policy{...}"):format(name, i)
      end
    end
    return value
  end
  return nil, ("%s must return chatapp.policy{...} or a list of them (it returned a %s)")
    :format(name, type(value))
end

function Runner:load_string(name, src)
  if src:sub(1, 1) == "\27" then
    return nil, name .. ": precompiled chunks are refused; give Lua source text"
  end
  local env = sandbox.env(function(line) self:log(0, name .. ": " .. line) end)
  local chunk, err = load(src, "@" .. name, "t", env)
  if not chunk then return nil, err end
  local ok, value = pcall(chunk)
  if not ok then return nil, tostring(value) end
  local list, perr = policies_of(value, name)
  if not list then return nil, perr end
  for _, p in ipairs(list) do
    p.file = name
    for _, w in ipairs(p.warnings) do self:log(0, ("%s: policy %s: %s"):format(name, p.name, w)) end
    self.policies[#self.policies + 1] = p
  end
  return true
end

function Runner:load_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, ("cannot read policy file %s"):format(err) end
  local src = f:read("a")
  f:close()
  return self:load_string(path, src)
end

--- The spaces to run over: the caller's own numbers by default.
function Runner:spaces()
  return { { label = "own numbers" } }
end

--- Evaluate one policy over one space's numbers.
local function evaluate(rep, policy, space, list)
  for _, n in ipairs(list) do
    rep:seen(policy)
    local ok, hit = true, policy:matches_where(n)
    if hit and policy.filter then
      ok, hit = xpcall(policy.filter, debug.traceback, n)
    end
    if not ok then
      rep:policy_error(policy, space, n, hit)
    elseif hit then
      rep:matched(policy, space, n)
    end
  end
end

function Runner:run(flags)
  flags = flags or {}
  local rep = report.new(self.options, self.policies)
  if flags.check then
    return rep:finish_check()
  end
  local client, source, code = self.host.client()
  if not client then
    return rep:abort(code == "ECREDENTIALS" and "credentials" or "config", source)
  end
  self:log(1, "credentials: " .. source)

  local spaces = self:spaces()
  local requests = {}
  for i, space in ipairs(spaces) do
    requests[i] = { operation = QUERY, space = space }
  end
  local lists, errors = client:batch(requests)
  for i, space in ipairs(spaces) do
    rep:space(space, lists[i], errors[i])
  end
  for _, policy in ipairs(self.policies) do
    for i, space in ipairs(spaces) do
      if lists[i] then evaluate(rep, policy, space, lists[i]) end
    end
  end
  rep:calls(client:stats())
  return rep:finish()
end

return M
