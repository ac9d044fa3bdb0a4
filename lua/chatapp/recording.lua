--- --record and --replay: what the API answered, saved and played back.
--
-- A recording is one JSON document:
--   { "format": "chatapp-run recording", "version": 1,
--     "recorded_at": "2026-11-29T03:00:00Z",
--     "answers": [ { "cust_space_id": "C1" | "", "label": "...",
--                    "operation": "QueryChatappPhoneNumbers",
--                    "body": "<the answer's JSON text>" }
--                | { ..., "error": { "code": ..., "message": ..., ... } } ] }
-- It holds no signature, key, token or IsvCode; it is written atomically
-- with mode 0600.

local chatapp = require "chatapp"
local core = chatapp.core
local spaces_mod = require "chatapp.spaces"

local M = { FORMAT = "chatapp-run recording", VERSION = 1 }

--- The largest recording --replay reads.
M.MAX_BYTES = 256 * 1024 * 1024

local error_fields = { "status", "operation", "code", "message", "request_id", "http_status", "attempts" }

--- entries: { {space = {...}, body = text} | {space = {...}, error = ApiError} }
function M.save(path, entries)
  local answers = {}
  for i, e in ipairs(entries) do
    local a = {
      cust_space_id = e.space.cust_space_id or "",
      label = e.space.label,
      operation = "QueryChatappPhoneNumbers",
      body = e.body,
    }
    if e.error then
      a.error = {}
      for _, k in ipairs(error_fields) do a.error[k] = e.error[k] end
    end
    answers[i] = a
  end
  local text, err = core.json_encode {
    format = M.FORMAT, version = M.VERSION,
    recorded_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    answers = chatapp.json.array(answers),
  }
  if not text then return nil, "cannot encode the recording: " .. err end
  local ok, werr = core.write_file_atomic(path, text, tonumber("600", 8))
  if not ok then return nil, werr end
  return true
end

--- Load a recording: returns a table cust_space_id ("" for own numbers)
--- -> answer and the list of spaces it recorded, in order (the spaces a
--- --replay runs over: cust_space_id, label), or nil, message.
function M.load(path)
  local text, err = core.read_file(path, M.MAX_BYTES, "the recording")
  if not text then return nil, err end
  local doc, derr = chatapp.json.decode(text)
  if type(doc) ~= "table" or doc.format ~= M.FORMAT then
    return nil, ("%s is not a chatapp-run recording (%s)"):format(path, derr or "wrong format")
  end
  if doc.version ~= M.VERSION then
    return nil, ("%s is a recording of version %s; this chatapp-run reads version %d")
      :format(path, tostring(doc.version), M.VERSION)
  end
  if doc.answers ~= nil and type(doc.answers) ~= "table" then
    return nil, ("%s: \"answers\" is not an array"):format(path)
  end
  local by_space, spaces = {}, {}
  for i, a in ipairs(doc.answers or {}) do
    if type(a) ~= "table" or type(a.cust_space_id) ~= "string" or
       (type(a.body) ~= "string" and type(a.error) ~= "table") or
       (a.label ~= nil and type(a.label) ~= "string") then
      return nil, ("%s: answer %d is malformed"):format(path, i)
    end
    if not by_space[a.cust_space_id] then
      spaces[#spaces + 1] = a.cust_space_id == "" and spaces_mod.OWN
        or { cust_space_id = a.cust_space_id, label = a.label }
    end
    by_space[a.cust_space_id] = a
  end
  return by_space, spaces
end

--- The recorded answer for a space: list, or nil and an ApiError.
function M.answer(rec, space, path)
  local a = rec[space.cust_space_id or ""]
  if not a then
    return nil, setmetatable({ status = "EIO", operation = "QueryChatappPhoneNumbers",
      message = ("space %s is not in the recording %s"):format(space.cust_space_id or "(own numbers)", path) },
      chatapp.ApiError)
  end
  if a.error then
    return nil, setmetatable(a.error, chatapp.ApiError)
  end
  local list, err, status = core.decode_phone_numbers(a.body, space)
  if not list then
    return nil, setmetatable({ status = status, operation = "QueryChatappPhoneNumbers",
      message = ("recorded answer for %s: %s"):format(space.cust_space_id or "own numbers", err) },
      chatapp.ApiError)
  end
  return list
end

return M
