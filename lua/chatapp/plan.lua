--- Plans: what a policy wants done, as data.
--
-- decide(n, plan) and finish(plan, numbers) add actions to a plan; the
-- runner carries them out afterwards (or, in a dry run, only shows them).
-- Every action is checked here, when it is planned, so a bad URL or a
-- missing argument fails in the policy with its file:line.
--
--   plan:webhook{url=, method="POST", json=tbl | body=s, headers={}, timeout_ms=, attempts=}
--   plan:call(operation, params)               any CAMS operation
--   plan:update_phone_webhook{up_callback_url=, status_callback_url=,
--                             http_flag=, queue_flag=}
--   plan:exec{argv={...}, stdin=s, timeout_ms=}  only with --allow-exec
--   plan:lua(function(n) ... end)               only when applying
--   plan:log(message)                           a line in the report

local core = require "chatapp.core"

local M = {}

-- The plan object a policy gets is an empty table whose locked metatable
-- reaches the public methods only; its state (the policy, the runner's
-- `add`, the number in focus) lives here, out of the policy's reach.
local Plan = {}
local plan_mt = {
  __index = Plan,
  __newindex = function(_, k)
    error(("the plan is read-only (tried to set %s)"):format(tostring(k)), 2)
  end,
  __name = "chatapp.Plan",
  __metatable = "chatapp.Plan",
}
local states = setmetatable({}, { __mode = "k" })

M.MAX_ACTIONS = 10000 -- per policy and run

local operations = core.operations()

--- A plan for one policy; add(plan, action) receives each action and
--- returns it, or nil and a message (raised at the policy's line).
function M.new(policy, add)
  local plan = setmetatable({}, plan_mt)
  states[plan] = { policy = policy, add = add }
  return plan
end

--- Point the plan at the number being decided (nil for finish).
function M.focus(plan, n, space)
  local st = states[plan]
  st.n, st.space = n, space
end

local function fail(msg)
  error(msg, 3) -- the policy line that called the plan method
end

local function state_of(plan)
  local st = type(plan) == "table" and states[plan] or nil
  if not st then error("a plan method was called without the plan (use plan:method(...), not plan.method(...))", 3) end
  return st
end

local function check_table(v, what)
  if type(v) ~= "table" then fail(("%s expects a table, not a %s"):format(what, type(v))) end
end

-- The host of an http(s) URL, or nil.
local function url_host(url)
  local scheme, rest = url:match("^(https?)://(.+)$")
  if not scheme then return nil end
  local host = rest:match("^%[([^%]]+)%]") or rest:match("^([^/:?#]+)")
  return scheme, host
end

local function is_loopback(host)
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

--- Checked the same way the transport checks: https, or http to this machine.
function M.check_url(url)
  if type(url) ~= "string" or url == "" then
    return nil, "url must be a non-empty string (is the environment variable set?)"
  end
  local scheme, host = url_host(url)
  if not scheme or not host then
    return nil, ("url %q must be https://host/... (or http:// to 127.0.0.1)"):format(url)
  end
  if url:find("[%s%c]") then
    return nil, ("url %q has a space or control character"):format(url)
  end
  if scheme == "http" and not is_loopback(host) then
    return nil, ("url %q: plain http is only allowed to 127.0.0.1, ::1 or localhost; use https"):format(url)
  end
  return true
end

local methods = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }

-- A header name: an HTTP token (RFC 9110 5.6.2).
local TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"
local BREAKS = "[\r\n\0]"

local function check_headers(h)
  if h == nil then return {} end
  check_table(h, "webhook headers")
  local copy = {}
  for k, v in pairs(h) do
    if type(k) ~= "string" or type(v) ~= "string" then
      fail("webhook headers must map names to strings")
    end
    if not k:find(TOKEN) or v:find(BREAKS) then
      fail(("webhook header %q: names are letters, digits and !#$%%&'*+-.^_`|~; values hold no CR, LF or NUL")
        :format(k))
    end
    copy[k] = v
  end
  return copy
end

-- Every action is checked again as a whole when it is added, whatever
-- built it: a kind the executor knows, and requests that cannot smuggle
-- a header, a second request or a truncated argument.
local function is_int(v, lo, hi) return math.type(v) == "integer" and v >= lo and v <= hi end

local function str_map(t)
  if type(t) ~= "table" then return false end
  for k, v in next, t do
    if type(k) ~= "string" or type(v) ~= "string" then return false end
  end
  return true
end

local validators = {
  webhook = function(r)
    if not methods[r.method] then return "webhook method is not one of GET, POST, PUT, PATCH, DELETE" end
    local ok, why = M.check_url(r.url)
    if not ok then return "webhook " .. why end
    if not str_map(r.headers) then return "webhook headers must map names to strings" end
    for k, v in next, r.headers do
      if not k:find(TOKEN) or v:find(BREAKS) then
        return ("webhook header %q has a character a header cannot carry (CR, LF, NUL, space, colon)"):format(k)
      end
    end
    if r.body ~= nil and type(r.body) ~= "string" then return "webhook body must be a string" end
    if not is_int(r.timeout_ms, 1, 600000) then return "webhook timeout_ms out of range" end
    if not is_int(r.attempts, 1, 10) then return "webhook attempts out of range" end
  end,
  call = function(r)
    if type(r.operation) ~= "string" or not r.operation:find("^[A-Z][A-Za-z0-9]+$") then
      return "call operation must be a CAMS operation name"
    end
    if not str_map(r.params) then return "call parameters must be flattened strings" end
  end,
  exec = function(r)
    if type(r.argv) ~= "table" or #r.argv == 0 then return "exec argv must be a non-empty list" end
    for i, a in ipairs(r.argv) do
      if type(a) ~= "string" or a:find("\0", 1, true) then
        return ("exec argv[%d] must be a string without NUL"):format(i)
      end
    end
    if r.stdin ~= nil and type(r.stdin) ~= "string" then return "exec stdin must be a string" end
    if not is_int(r.timeout_ms, 1, 3600000) then return "exec timeout_ms out of range" end
  end,
  lua = function(r, a)
    if type(a.fn) ~= "function" then return "lua action needs a function" end
    if type(r.name) ~= "string" then return "lua action name must be a string" end
  end,
  log = function(r)
    if type(r.message) ~= "string" then return "log message must be a string" end
  end,
}

--- nil when action is one the executor can carry out, else why not.
function M.validate(action)
  if type(action) ~= "table" then return "an action must be a table" end
  local check = type(action.kind) == "string" and validators[action.kind]
  if not check then return ("unknown action kind %s"):format(tostring(action.kind)) end
  if type(action.request) ~= "table" then return "an action needs a request table" end
  return check(action.request, action)
end

-- A copy of plain data (what a policy may keep and change freely).
local function copy_data(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in next, v do c[k] = copy_data(x) end
  return c
end

-- Check an action and hand it to the runner; errors name the policy line
-- `depth` levels up (3: the caller of the plan method calling add; the
-- methods keep their frames: no tail calls).  The policy gets a copy: the
-- action the runner carries out stays as checked.
local function add(plan, action, depth)
  local st = states[plan]
  local why = M.validate(action)
  if why then error("plan: " .. why, depth or 3) end
  local a, err = st.add(plan, action)
  if not a then error(err, depth or 3) end
  return {
    id = a.id, kind = a.kind, policy = a.policy, phone_number = a.phone_number,
    status = a.status, request = copy_data(a.request), write = a.write, known = a.known,
    current = copy_data(a.current),
  }
end

-- Subject of an action: the number, or the policy itself in finish().
local function subject(plan)
  local n = states[plan].n
  return n and n.phone_number or nil
end

function Plan:webhook(spec)
  state_of(self)
  check_table(spec, "plan:webhook")
  local ok, why = M.check_url(spec.url)
  if not ok then fail("plan:webhook: " .. why) end
  local method = spec.method or "POST"
  if type(method) ~= "string" then fail("plan:webhook: method must be a string") end
  method = method:upper()
  if not methods[method] then fail(("plan:webhook: method %s is not one of GET, POST, PUT, PATCH, DELETE"):format(tostring(spec.method))) end
  if spec.json ~= nil and spec.body ~= nil then fail("plan:webhook: give json or body, not both") end
  local headers = check_headers(spec.headers)
  local body = spec.body
  if spec.json ~= nil then
    local err
    body, err = core.json_encode(spec.json)
    if not body then fail("plan:webhook: json cannot be encoded: " .. err) end
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  elseif body ~= nil and type(body) ~= "string" then
    fail("plan:webhook: body must be a string (or use json = {...})")
  end
  local timeout = spec.timeout_ms or 10000
  if math.type(timeout) ~= "integer" or timeout < 1 or timeout > 600000 then
    fail("plan:webhook: timeout_ms must be a whole number from 1 to 600000")
  end
  local attempts = spec.attempts or 3
  if math.type(attempts) ~= "integer" or attempts < 1 or attempts > 10 then
    fail("plan:webhook: attempts must be a whole number from 1 to 10")
  end
  local action = add(self, {
    kind = "webhook",
    request = { method = method, url = spec.url, headers = headers, body = body,
                timeout_ms = timeout, attempts = attempts },
  })
  return action
end

local function call_action(self, operation, params, depth, current)
  local flat_ok, flat = pcall(core.flatten_params, params)
  if not flat_ok then error("plan:call: " .. tostring(flat), depth) end
  local info = operations[operation]
  local action = add(self, {
    kind = "call",
    request = { operation = operation, params = flat },
    write = not info or info.write,
    known = info ~= nil,
    current = current,
  }, depth)
  return action
end

function Plan:call(operation, params)
  state_of(self)
  if type(operation) == "table" and params == nil then
    operation, params = operation.operation, operation.params
  end
  if type(operation) ~= "string" or not operation:match("^[A-Z][A-Za-z0-9]+$") then
    fail(("plan:call: operation must be a CAMS operation name such as UpdatePhoneWebhook, not %s")
      :format(tostring(operation)))
  end
  params = params or {}
  check_table(params, "plan:call parameters")
  local action = call_action(self, operation, params, 4)
  return action
end

local flags = { Y = true, N = true }

--- UpdatePhoneWebhook for the number being decided; in a dry run the
--- report shows the current value beside each new one.
function Plan:update_phone_webhook(spec)
  local st = state_of(self)
  check_table(spec, "plan:update_phone_webhook")
  local n = st.n
  if not n then fail("plan:update_phone_webhook needs a number (use it in decide)") end
  local params = { PhoneNumber = n.phone_number, CustSpaceId = n.cust_space_id }
  local current = {}
  local fields = {
    up_callback_url = { "UpCallbackUrl", n.up_callback_url },
    status_callback_url = { "StatusCallbackUrl", n.status_callback_url },
    http_flag = { "HttpFlag" },
    queue_flag = { "QueueFlag" },
  }
  local any = false
  for k, v in pairs(spec) do
    local f = fields[k]
    if not f then
      fail(("plan:update_phone_webhook: unknown key %q (up_callback_url, status_callback_url, http_flag, queue_flag)"):format(tostring(k)))
    end
    if type(v) ~= "string" then fail(("plan:update_phone_webhook: %s must be a string"):format(k)) end
    if (k == "http_flag" or k == "queue_flag") and not flags[v] then
      fail(("plan:update_phone_webhook: %s must be \"Y\" or \"N\""):format(k))
    end
    params[f[1]] = v
    if k:match("url$") then current[f[1]] = f[2] or "" end
    any = true
  end
  if not any then fail("plan:update_phone_webhook: nothing to update") end
  if not params.CustSpaceId then
    fail(("plan:update_phone_webhook: the space of number %s is not known; run with --spaces and "
      .. "give your own numbers' space id (your instance id) there"):format(n.phone_number))
  end
  local action = call_action(self, "UpdatePhoneWebhook", params, 4, current)
  return action
end

function Plan:exec(spec)
  state_of(self)
  check_table(spec, "plan:exec")
  local argv = spec.argv
  if type(argv) ~= "table" or #argv == 0 then fail("plan:exec: argv must be a non-empty list of strings") end
  local copy = {}
  for i, a in ipairs(argv) do
    if type(a) ~= "string" or a:find("\0", 1, true) then
      fail(("plan:exec: argv[%d] must be a string without NUL"):format(i))
    end
    copy[i] = a
  end
  if spec.stdin ~= nil and type(spec.stdin) ~= "string" then fail("plan:exec: stdin must be a string") end
  local timeout = spec.timeout_ms or 10000
  if math.type(timeout) ~= "integer" or timeout < 1 or timeout > 3600000 then
    fail("plan:exec: timeout_ms must be a whole number from 1 to 3600000")
  end
  local action = add(self, { kind = "exec", request = { argv = copy, stdin = spec.stdin, timeout_ms = timeout } })
  return action
end

function Plan:lua(fn, name)
  state_of(self)
  if type(fn) ~= "function" then fail("plan:lua expects a function") end
  if name ~= nil and type(name) ~= "string" then fail("plan:lua: the name must be a string") end
  local info = debug.getinfo(fn, "S")
  local action = add(self, {
    kind = "lua", fn = fn,
    request = { name = name or ("function at %s:%d"):format(info.short_src, info.linedefined) },
  })
  return action
end
Plan.run = Plan.lua

function Plan:log(message, ...)
  state_of(self)
  if select("#", ...) > 0 then message = string.format(message, ...) end
  if type(message) ~= "string" then fail("plan:log expects a message string") end
  local action = add(self, { kind = "log", request = { message = message } })
  return action
end

--- The deterministic id of an action: the same policy, subject and request
--- give the same id in every run (the webhook's Idempotency-Key).
function M.action_id(policy, space_id, phone, kind, request)
  local r = {}
  for k, v in pairs(request) do
    if k ~= "timeout_ms" and k ~= "attempts" then r[k] = v end
  end
  local canonical = core.json_encode { policy = policy, space = space_id or "", number = phone or "",
                                       kind = kind, request = r }
  return core.sha256_hex(canonical):sub(1, 32)
end

--- Finish an action planned for plan: subject, id.  Used by the runner's
--- `add`.
function M.complete(plan, action)
  local st = states[plan]
  local policy = st.policy
  local space = st.space
  action.policy = policy.name
  action.number = st.n
  action.space = space
  action.phone_number = subject(plan)
  local req = action.request
  if action.kind == "lua" then req = { name = req.name } end
  action.id = M.action_id(policy.name, space and space.cust_space_id, action.phone_number,
                          action.kind, req)
  action.status = "planned"
  return action
end

return M
