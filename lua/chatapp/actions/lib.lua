--- Helpers shared by the action kinds (not a kind itself): checks of
--- plain data, errors at the policy's line, header redaction.
--
-- Frames: plan.lua calls a kind's plan method from the public method
-- (plan:webhook -> the kind's methods.webhook), never as a tail call, so
-- from inside a kind's method the policy line is 3 levels up, and from a
-- helper the method calls, 4.  fail and check_table count from a kind's
-- method; `extra` adds the frames of the kind's own helpers in between.

local chatapp = require "chatapp"

local M = {}

--- Raise msg at the policy line that called the plan method.
function M.fail(msg, extra)
  error(msg, 4 + (extra or 0))
end

function M.check_table(v, what, extra)
  if type(v) ~= "table" then
    error(("%s expects a table, not a %s"):format(what, type(v)), 4 + (extra or 0))
  end
end

--- Every key of spec is one of names (a list), else raise with the
--- nearest (chatapp.suggest): plan:webhook{jsno = ...} would otherwise
--- send no body without a word.
function M.check_keys(spec, what, names, extra)
  for k in next, spec do
    local known = false
    for _, n in ipairs(names) do known = known or n == k end
    if not known then
      error(("%s: unknown key %s%s (keys: %s)"):format(what, tostring(k),
        chatapp.did_you_mean(tostring(k), names), table.concat(names, ", ")), 4 + (extra or 0))
    end
  end
end

--- v is an integer from lo to hi.
function M.is_int(v, lo, hi)
  return math.type(v) == "integer" and v >= lo and v <= hi
end

--- t maps strings to strings.
function M.str_map(t)
  if type(t) ~= "table" then return false end
  for k, v in next, t do
    if type(k) ~= "string" or type(v) ~= "string" then return false end
  end
  return true
end

--- A deep copy of plain data.
function M.copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in next, v do c[k] = M.copy(x) end
  return c
end

--- A copy of t without the keys listed.
function M.without(t, keys)
  local skip = {}
  for _, k in ipairs(keys) do skip[k] = true end
  local r = {}
  for k, v in pairs(t) do
    if not skip[k] then r[k] = v end
  end
  return r
end

-- A header name: an HTTP token (RFC 9110 5.6.2); a value without line
-- breaks or NUL.
M.TOKEN = "^[%w!#$%%&'*+%-.^_`|~]+$"
M.BREAKS = "[\r\n\0]"

local secret_header = { authorization = true, cookie = true, ["proxy-authorization"] = true }

--- Whether a header of this name may carry a secret.
function M.secret_header(name)
  local l = name:lower()
  return l ~= "idempotency-key" and (secret_header[l] or l:find("token", 1, true) or
    l:find("secret", 1, true) or l:find("key", 1, true) or l:find("password", 1, true) or
    l:find("signature", 1, true)) and true or false
end

--- Header values that may carry secrets are shown as <redacted>.
function M.redact_headers(h)
  local r = {}
  for k, v in pairs(h or {}) do
    r[k] = M.secret_header(k) and "<redacted>" or v
  end
  return r
end

return M
