--- A strict parser of the Prometheus text exposition format (0.0.4), for
--- tests: what chatapp-run writes for --metrics and serves on /metrics must
--- be accepted by Prometheus, and the values in it must read back.
--
--   local prom = require "prom"
--   local doc, err = prom.parse(text)    -- nil, "line N: why" on an error
--   doc.families[name] = { name, help, type, samples = { {name, labels, value}, ... } }
--   doc.order = { name, ... }            -- families in the order seen
--   prom.find(doc, name, { label = value, ... })  -- the samples whose labels include these
--
-- Checked: every line ends with "\n" (the last too); "# HELP name text"
-- and "# TYPE name type" at most once per family, TYPE before the
-- family's first sample; a family's samples are not split by another's;
-- metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*
-- not starting with "__", no label twice in a sample; label values quoted,
-- with only \\, \" and \n as escapes, valid UTF-8; no two samples with the
-- same name and labels; values Go floats (1, -1.5, 1e3, +Inf, -Inf, NaN);
-- an optional integer timestamp.  Other comments are ignored.

local M = {}

local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }
-- sample names a family of each type may carry, from its name
local SUFFIXES = {
  histogram = { "_bucket", "_sum", "_count" },
  summary = { "_sum", "_count", "" },
}

local function metric_name(s)
  return s:match("^[a-zA-Z_:][a-zA-Z0-9_:]*$") ~= nil
end

local function label_name(s)
  return s:match("^[a-zA-Z_][a-zA-Z0-9_]*$") ~= nil and s:sub(1, 2) ~= "__"
end

--- A value as Go's strconv.ParseFloat reads the text format: decimal
--- numbers with an optional exponent, Inf and NaN with their signs.
function M.value(s)
  if s == "+Inf" or s == "Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if s == "NaN" then return 0 / 0 end
  if not (s:match("^[+-]?%d+%.?%d*$") or s:match("^[+-]?%d*%.%d+$")
      or s:match("^[+-]?%d+%.?%d*[eE][+-]?%d+$") or s:match("^[+-]?%d*%.%d+[eE][+-]?%d+$")) then
    return nil
  end
  return tonumber(s)
end

-- "# HELP" text: \\ and \n are the escapes; a lone backslash is an error.
local function unescape_help(s)
  local bad
  local out = s:gsub("\\(.?)", function(c)
    if c == "\\" then return "\\" end
    if c == "n" then return "\n" end
    bad = c
    return ""
  end)
  if bad then return nil, ("bad escape \\%s in HELP"):format(bad) end
  return out
end

-- The label set at s[i] (just after "{"): labels, the index after "}".
local function parse_labels(s, i)
  local labels, order = {}, {}
  while true do
    i = s:find("[^ \t]", i) or #s + 1
    if s:sub(i, i) == "}" then return labels, i + 1, order end
    local name = s:match("^[^=%s}]*", i)
    if not label_name(name) then return nil, ("bad label name %q"):format(name) end
    if labels[name] ~= nil then return nil, ("label %s twice"):format(name) end
    i = i + #name
    i = s:find("[^ \t]", i) or #s + 1
    if s:sub(i, i) ~= "=" then return nil, ("no = after label %s"):format(name) end
    i = s:find("[^ \t]", i + 1) or #s + 1
    if s:sub(i, i) ~= '"' then return nil, ("label %s: the value is not quoted"):format(name) end
    i = i + 1
    local buf = {}
    while true do
      local c = s:sub(i, i)
      if c == "" then return nil, ("label %s: the value is not closed"):format(name) end
      if c == '"' then break end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        if e == "\\" then buf[#buf + 1] = "\\"
        elseif e == '"' then buf[#buf + 1] = '"'
        elseif e == "n" then buf[#buf + 1] = "\n"
        else return nil, ("label %s: bad escape \\%s"):format(name, e) end
        i = i + 2
      else
        buf[#buf + 1] = c
        i = i + 1
      end
    end
    local v = table.concat(buf)
    if not utf8.len(v) then return nil, ("label %s: the value is not UTF-8"):format(name) end
    labels[name] = v
    order[#order + 1] = name
    i = s:find("[^ \t]", i + 1) or #s + 1
    local c = s:sub(i, i)
    if c == "," then
      i = i + 1
    elseif c ~= "}" then
      return nil, ("label %s: expected , or } after the value"):format(name)
    end
  end
end

-- The family a sample name belongs to: itself, or a histogram's or
-- summary's name without its suffix.
local function family_of(doc, name)
  local f = doc.families[name]
  if f and (f.type ~= "histogram") then return f end
  for fname, fam in pairs(doc.families) do
    for _, suffix in ipairs(SUFFIXES[fam.type] or {}) do
      if suffix ~= "" and name == fname .. suffix then return fam end
    end
  end
  return f
end

local function series_key(name, labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = k .. "\0" .. labels[k] end
  return name .. "\0" .. table.concat(keys, "\0")
end

function M.parse(text)
  if type(text) ~= "string" then return nil, "not a string" end
  if not utf8.len(text) then return nil, "not UTF-8" end
  if text ~= "" and text:sub(-1) ~= "\n" then return nil, "the last line has no newline" end
  local doc = { families = {}, order = {} }
  local series, closed, current = {}, {}, nil
  local function family(name, lineno)
    local f = doc.families[name]
    if not f then
      f = { name = name, samples = {} }
      doc.families[name] = f
      doc.order[#doc.order + 1] = name
    end
    if current ~= f then
      if closed[f] then return nil, ("line %d: %s continues after another family"):format(lineno, name) end
      if current then closed[current] = true end
      current = f
    end
    return f
  end
  local lineno = 0
  for line in text:gmatch("([^\n]*)\n") do
    lineno = lineno + 1
    local function fail(msg) return nil, ("line %d: %s"):format(lineno, msg) end
    if line:find("^%s*$") then
      -- blank lines are allowed
    elseif line:sub(1, 1) == "#" then
      local kw, name, rest = line:match("^#[ \t]+(%S+)[ \t]+(%S+)[ \t]?(.*)$")
      if kw == "HELP" or kw == "TYPE" then
        if not metric_name(name) then return fail(("bad metric name %q"):format(name)) end
        local f, err = family(name, lineno)
        if not f then return nil, err end
        if kw == "HELP" then
          if f.help then return fail("a second HELP for " .. name) end
          local h, herr = unescape_help(rest)
          if not h then return fail(herr) end
          f.help = h
        else
          if f.type then return fail("a second TYPE for " .. name) end
          if #f.samples > 0 then return fail("TYPE for " .. name .. " after its samples") end
          if not TYPES[rest] then return fail(("unknown type %q"):format(rest)) end
          f.type = rest
        end
      end
    else
      local name = line:match("^[^{%s]*")
      if not metric_name(name) then return fail(("bad metric name %q"):format(name)) end
      local i = #name + 1
      local labels, order = {}, {}
      if line:sub(i, i) == "{" then
        local nexti
        labels, nexti, order = parse_labels(line, i + 1)
        if not labels then return fail(nexti) end
        i = nexti
      end
      local rest = line:sub(i)
      local value_s, ts = rest:match("^[ \t]+(%S+)[ \t]*(%S*)[ \t]*$")
      if not value_s then return fail("no value") end
      local value = M.value(value_s)
      if value == nil then return fail(("bad value %q"):format(value_s)) end
      if ts ~= "" and not ts:match("^%-?%d+$") then return fail(("bad timestamp %q"):format(ts)) end
      local f = family_of(doc, name)
      local ferr
      if f then
        if f.type == "counter" or f.type == "gauge" or f.type == "untyped" then
          if f.name ~= name then f = nil end
        end
      end
      f, ferr = family(f and f.name or name, lineno)
      if not f then return nil, ferr end
      local key = series_key(name, labels)
      if series[key] then return fail("a second sample of " .. name .. " with the same labels") end
      series[key] = true
      f.samples[#f.samples + 1] = { name = name, labels = labels, label_order = order,
        value = value, raw = value_s, timestamp = ts ~= "" and tonumber(ts) or nil }
    end
  end
  return doc
end

--- The samples of name whose labels include every pair of want.
function M.find(doc, name, want)
  local f = doc.families[name]
  local list = {}
  for _, fam in pairs(doc.families) do
    for _, s in ipairs(fam.samples) do
      if s.name == name then
        local ok = true
        for k, v in pairs(want or {}) do
          if s.labels[k] ~= v then ok = false end
        end
        if ok then list[#list + 1] = s end
      end
    end
  end
  return list, f
end

return M
