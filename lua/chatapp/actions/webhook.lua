--- The webhook action: an HTTP request to a URL the policy gives.
--
--   plan:webhook{url=, method="POST", json=tbl | body=s, headers={},
--                timeout_ms=10000, attempts=3}
--
-- https://, or plain http:// to this machine only.  Webhooks go out
-- concurrently (core.http_client():batch), each with an Idempotency-Key:
-- the action's id, the same in every run for the same request.

local chatapp = require "chatapp"
local core = chatapp.core
local lib = require "chatapp.actions.lib"

local K = { kind = "webhook", concurrent = true }

local METHODS = { GET = true, POST = true, PUT = true, PATCH = true, DELETE = true }

-- The scheme and host of an http(s) URL, or nil.
local function url_host(url)
  local scheme, rest = url:match("^(https?)://(.+)$")
  if not scheme then return nil end
  local host = rest:match("^(%[[^%]]+%])") or rest:match("^([^/:?#]+)")
  return scheme, host
end

-- The one rule lives in C (core.loopback_host, the transport's own), so
-- a URL planned here is never refused later by the transport.
local function is_loopback(host)
  return core.loopback_host(host) == true
end

--- Checked the same way the transport checks: https, or http to this machine.
function K.check_url(url)
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

local function check_headers(h)
  if h == nil then return {} end
  lib.check_table(h, "webhook headers", 1)
  local copy = {}
  for k, v in pairs(h) do
    if type(k) ~= "string" or type(v) ~= "string" then
      lib.fail("webhook headers must map names to strings", 1)
    end
    if not k:find(lib.TOKEN) or v:find(lib.BREAKS) then
      lib.fail(("webhook header %q: names are letters, digits and !#$%%&'*+-.^_`|~; values hold no CR, LF or NUL")
        :format(k), 1)
    end
    copy[k] = v
  end
  return copy
end

K.methods = {}

function K.methods.webhook(P, spec)
  lib.check_table(spec, "plan:webhook")
  lib.check_keys(spec, "plan:webhook", { "url", "method", "json", "body", "headers", "timeout_ms", "attempts" })
  local ok, why = K.check_url(spec.url)
  if not ok then lib.fail("plan:webhook: " .. why) end
  local method = spec.method or "POST"
  if type(method) ~= "string" then lib.fail("plan:webhook: method must be a string") end
  method = method:upper()
  if not METHODS[method] then
    lib.fail(("plan:webhook: method %s is not one of GET, POST, PUT, PATCH, DELETE"):format(tostring(spec.method)))
  end
  if spec.json ~= nil and spec.body ~= nil then lib.fail("plan:webhook: give json or body, not both") end
  local headers = check_headers(spec.headers)
  local body = spec.body
  if spec.json ~= nil then
    local err
    body, err = core.json_encode(spec.json)
    if not body then lib.fail("plan:webhook: json cannot be encoded: " .. err) end
    headers["Content-Type"] = headers["Content-Type"] or "application/json"
  elseif body ~= nil and type(body) ~= "string" then
    lib.fail("plan:webhook: body must be a string (or use json = {...})")
  end
  local timeout = spec.timeout_ms or 10000
  if not lib.is_int(timeout, 1, 600000) then
    lib.fail("plan:webhook: timeout_ms must be a whole number from 1 to 600000")
  end
  local attempts = spec.attempts or 3
  if not lib.is_int(attempts, 1, 10) then
    lib.fail("plan:webhook: attempts must be a whole number from 1 to 10")
  end
  local action = P.add {
    kind = "webhook",
    request = { method = method, url = spec.url, headers = headers, body = body,
                timeout_ms = timeout, attempts = attempts },
  }
  return action
end

--- nil when the action can be carried out, else why not (whatever built it).
function K.validate(a)
  local r = a.request
  if not METHODS[r.method] then return "webhook method is not one of GET, POST, PUT, PATCH, DELETE" end
  local ok, why = K.check_url(r.url)
  if not ok then return "webhook " .. why end
  if not lib.str_map(r.headers) then return "webhook headers must map names to strings" end
  for k, v in next, r.headers do
    if not k:find(lib.TOKEN) or v:find(lib.BREAKS) then
      return ("webhook header %q has a character a header cannot carry (CR, LF, NUL, space, colon)"):format(k)
    end
  end
  if r.body ~= nil and type(r.body) ~= "string" then return "webhook body must be a string" end
  if not lib.is_int(r.timeout_ms, 1, 600000) then return "webhook timeout_ms out of range" end
  if not lib.is_int(r.attempts, 1, 10) then return "webhook attempts out of range" end
end

--- What the id (the Idempotency-Key) is made of: the request, not how
--- patiently it is sent.
function K.identity(r)
  return lib.without(r, { "timeout_ms", "attempts" })
end

local function http_request(a)
  local r = a.request
  local headers = {}
  for k, v in pairs(r.headers) do headers[k] = v end
  headers["Idempotency-Key"] = headers["Idempotency-Key"] or a.id
  headers["User-Agent"] = headers["User-Agent"] or ("chatapp-run/" .. chatapp.version)
  return {
    url = r.url, method = r.method, headers = headers, body = r.body,
    timeout_ms = r.timeout_ms, max_attempts = r.attempts, idempotent = true,
  }
end

--- Send a group of webhooks at once (the executor hands at most one
--- slice); one that never went out because of a signal is not started.
function K.run(actions, ctx, x)
  local http, err = ctx.http()
  if not http then
    for _, a in ipairs(actions) do x.failed(a, err) end
    return
  end
  local reqs = {}
  for i, a in ipairs(actions) do reqs[i] = http_request(a) end
  local results, errors = http:batch(reqs, { progress = ctx.progress and "sending webhooks" })
  for i, a in ipairs(actions) do
    if results[i] then
      a.status = "done"
      a.result = { http_status = results[i].status }
    elseif (errors[i].attempts or 0) == 0 and x.interrupted() then
      x.not_started(a, x.interrupted())
    else
      x.failed(a, errors[i])
      a.result = { http_status = errors[i].http_status, attempts = errors[i].attempts }
    end
  end
end

--- Whether a failed webhook is worth another try by the next run (the
--- outbox keeps it pending): no answer, a server error, 408 or 429.
function K.retry_later(a)
  local s = a.result and a.result.http_status
  return not s or s == 0 or s >= 500 or s == 408 or s == 429
end

function K.describe(a)
  return ("%s %s"):format(a.request.method, a.request.url)
end

--- The request as data, secrets redacted (JSON output, dry run).
function K.request_view(a)
  local r = a.request
  local headers = lib.redact_headers(r.headers)
  headers["Idempotency-Key"] = headers["Idempotency-Key"] or a.id
  return { method = r.method, url = r.url, headers = headers, body = r.body }
end

--- After the status in the text report.
function K.outcome(a)
  local s = a.result and a.result.http_status
  if s and s > 0 then return ("HTTP %d"):format(s) end
end

--- The dry run's lines under the action: headers (redacted) and body.
function K.dry_run_lines(_, view)
  local lines, names = {}, {}
  for k in pairs(view.headers) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do lines[#lines + 1] = ("%s: %s"):format(k, view.headers[k]) end
  if view.body then lines[#lines + 1] = view.body end
  return lines
end

--- Storage: the request as it is (secret headers included: the store
--- must be kept like the credentials).
function K.to_record(a)
  return { request = lib.copy(a.request) }
end

function K.from_record(rec)
  return { kind = "webhook", request = lib.copy(rec.request) }
end

return K
