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

--- A short name for messages.
function M.name(space)
  if space.label and space.cust_space_id then
    return ("%s (%s)"):format(space.label, space.cust_space_id)
  end
  return space.label or space.cust_space_id or "?"
end

return M
