--- The spaces a run covers.
--
-- By default, the caller's own numbers.  With --spaces FILE, every ISV
-- sub-customer listed in FILE: a JSON array (or {"spaces": [...]}) of
--   {"cust_space_id": "C2023...", "isv_code": "...", "label": "Acme"}
-- with cust_space_id required, isv_code and label optional.

local chatapp = require "chatapp"

local M = {}

M.OWN = { label = "own numbers" }

--- The largest spaces file read (a list of thousands of spaces is well
--- under a megabyte).
M.MAX_BYTES = 16 * 1024 * 1024

local allowed = { cust_space_id = true, isv_code = true, label = true }

--- Parse the text of a spaces file; returns the list or nil, message.
function M.parse(text, name)
  local doc, err = chatapp.json.decode(text)
  if doc == nil then
    return nil, ("%s: %s"):format(name, err)
  end
  if type(doc) == "table" and doc.spaces ~= nil then doc = doc.spaces end
  if type(doc) ~= "table" or (next(doc) ~= nil and #doc == 0) then
    return nil, ("%s: expected a JSON array of spaces, like "
      .. '[{"cust_space_id": "C2023...", "label": "Acme"}]'):format(name)
  end
  local list, seen = {}, {}
  for i, s in ipairs(doc) do
    local where = ("%s: item %d"):format(name, i)
    if type(s) ~= "table" then
      return nil, ("%s is a %s, expected an object"):format(where, type(s))
    end
    for k in pairs(s) do
      if not allowed[k] then
        return nil, ("%s has unknown key %q (allowed: cust_space_id, isv_code, label)"):format(where, tostring(k))
      end
    end
    if type(s.cust_space_id) ~= "string" or s.cust_space_id == "" then
      return nil, ("%s: cust_space_id must be a non-empty string"):format(where)
    end
    for _, k in ipairs { "isv_code", "label" } do
      if s[k] ~= nil and type(s[k]) ~= "string" then
        return nil, ("%s: %s must be a string"):format(where, k)
      end
    end
    if seen[s.cust_space_id] then
      return nil, ("%s: cust_space_id %s is listed twice (also item %d)"):format(where, s.cust_space_id, seen[s.cust_space_id])
    end
    seen[s.cust_space_id] = i
    list[i] = { cust_space_id = s.cust_space_id, isv_code = s.isv_code, label = s.label }
  end
  if #list == 0 then
    return nil, ("%s: the list of spaces is empty"):format(name)
  end
  return list
end

function M.load(path)
  local text, err = chatapp.core.read_file(path, M.MAX_BYTES, "the spaces file")
  if not text then return nil, err end
  return M.parse(text, path)
end

---------------------------------------------------------------------------
-- Fetching under a total memory cap
--
-- The numbers of every space stay in memory for the whole run (policies
-- see them all), so the run caps what they hold together: fetch_memory_mb
-- (default 512 MiB) of the Lua state's memory, counted by its allocator
-- (core.memory).  Each batch of spaces is decoded under what is left of
-- the cap (core.memory_call); a batch that does not fit is fetched again
-- one space at a time, and a space that alone does not fit is an error for
-- that space (ETOOBIG, naming it), while the others carry on.  Answers
-- being read are held in C before decoding: at most one per max_response
-- bytes of the cap are requested at a time, so those are bounded too.

local MB = 1024 * 1024
M.DEFAULT_FETCH_MB = 512
local QUERY = "QueryChatappPhoneNumbers"

--- The cap in bytes from the runner's options.
function M.fetch_cap(options)
  local mb = options.fetch_memory_mb
  return (mb and mb > 0 and mb or M.DEFAULT_FETCH_MB) * MB
end

local function too_big(space, cap, held)
  return setmetatable({
    status = "ETOOBIG", operation = QUERY,
    message = ("the numbers of space %s do not fit in the memory left for fetched numbers: "
      .. "%d MiB of the run's %d MiB (--fetch-memory-mb) are held by the spaces before it, and "
      .. "decoding this answer needs more than the rest; raise --fetch-memory-mb, or run this "
      .. "space on its own"):format(M.name(space), held // MB, cap // MB),
  }, chatapp.ApiError)
end

-- Bytes the state holds now; nil when not our allocator (no cap then).
local function used()
  return (chatapp.core.memory())
end

-- The starting point: live data only (garbage counted in it would be
-- freed later and let the spaces grow past the cap).
local function baseline()
  collectgarbage()
  return used() or 0
end

--- Make the numbers of spaces[i] for each i in list with get(list) ->
--- results, errors (indexed like list); under the cap, starting from
--- base bytes.  Fills lists and errors.
local function fit(spaces, list, get, cap, base, lists, errors)
  local now = used()
  if not now then
    local res, errs = get(list)
    for k, i in ipairs(list) do lists[i], errors[i] = res[k], errs[k] end
    return
  end
  local left = cap - (now - base)
  if left <= 0 then
    collectgarbage()
    left = cap - (used() - base)
  end
  local ok, res, errs = chatapp.core.memory_call(left > 0 and left or 1, get, list)
  local again = {}
  if ok then
    for k, i in ipairs(list) do
      -- a decode that ran out of memory comes back as a failed answer
      local e = errs[k]
      if not res[k] and type(e) == "table" and e.status == "ENOMEM" then
        again[#again + 1] = i
      else
        lists[i], errors[i] = res[k], e
      end
    end
  elseif errs == "memory" then
    again = list
  else
    error(res, 0)
  end
  if #again == 0 then return end
  res, errs = nil, nil
  collectgarbage()
  if #list == 1 then
    errors[list[1]] = too_big(spaces[list[1]], cap, math.max(0, used() - base))
    return
  end
  for _, i in ipairs(again) do fit(spaces, { i }, get, cap, base, lists, errors) end
end

--- Fetch the numbers of every space with client:batch under the cap:
--- returns lists, errors (by space index).  opts: cap, max_response
--- (bytes), keep_body, progress.
function M.fetch(client, spaces, opts)
  local lists, errors = {}, {}
  local cap = opts.cap
  local per = opts.max_response and opts.max_response > 0 and opts.max_response or 64 * MB
  local slice = math.max(1, math.min(#spaces, cap // per))
  local base = baseline()
  local function get(list)
    local reqs = {}
    for k, i in ipairs(list) do
      reqs[k] = { operation = QUERY, space = spaces[i], keep_body = opts.keep_body }
    end
    return client:batch(reqs, { progress = opts.progress })
  end
  local from = 1
  while from <= #spaces do
    local list = {}
    for i = from, math.min(#spaces, from + slice - 1) do list[#list + 1] = i end
    fit(spaces, list, get, cap, base, lists, errors)
    from = from + slice
  end
  return lists, errors
end

--- The same for a recording: answer(space) -> list | nil, error.
function M.replay(spaces, answer, cap)
  local lists, errors = {}, {}
  local base = baseline()
  local function get(list)
    local res, errs = {}, {}
    for k, i in ipairs(list) do res[k], errs[k] = answer(spaces[i]) end
    return res, errs
  end
  for i = 1, #spaces do fit(spaces, { i }, get, cap, base, lists, errors) end
  return lists, errors
end

--- A short name for messages.
function M.name(space)
  if space.label and space.cust_space_id then
    return ("%s (%s)"):format(space.label, space.cust_space_id)
  end
  return space.label or space.cust_space_id or "?"
end

return M
