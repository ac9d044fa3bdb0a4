--- chatapp-run state show | forget: look inside a state file (--state)
--- without SQL, and forget a number or a space in it.  Run by the C
--- program (ca_runtime_run_module) with the arguments after "state";
--- main returns the exit status: 0 ok, 1 nothing matched, 2 usage or file
--- errors.  docs/state.md ("Looking inside") and docs/cli.md describe it.
--
-- Everything read from the file is untrusted: every value printed as
-- text goes through report.safe (control characters, ANSI escapes and
-- newlines shown escaped); JSON Lines are encoded by core.json_encode.

local chatapp = require "chatapp"
local core = chatapp.core
local report = require "chatapp.report"
local state = require "chatapp.state"

local safe, ago = report.safe, report.ago

local M = {}

M.USAGE = [[
Usage: chatapp-run state show [--state FILE] [--number N] [--space S]
                              [--account A] [--limit N] [--output text|json]
       chatapp-run state forget [--state FILE] (--number N | --space S | --all)
                              [--account A] [--yes]

Look inside the state that runs keep with --state FILE (or --state
redis://[user@]host[:port][/db]), or forget part of it.  FILE is --state,
else $XDG_STATE_HOME/chatapp-run/state.db, else
~/.local/state/chatapp-run/state.db.

show     without --number: every number (status, quality, tier, last seen),
         the last transitions, the outbox by status and its pending
         entries; with --number: that number's snapshot, transitions,
         reminders and outbox entries.  Opens the file read-only.
           --number N      one number
           --space S       the numbers of one space ('' for your own numbers)
           --account A     one account (default: all in the file)
           --limit N       transitions and outbox entries shown (default 50)
           --output text|json   text (default) or JSON Lines
forget   remove the snapshots, transitions, reminders and outbox entries of
         a number, a space, or everything (--all) of the account(s).
           --yes           also drop pending actions (never sent then)

Exit status: 0 done; 1 nothing matched; 2 usage error, or the file is
missing, not a state file, newer or damaged.
]]

local OPTIONS = {
  show = { state = "value", number = "value", space = "value", account = "value", limit = "value",
           output = "value", help = "flag" },
  forget = { state = "value", number = "value", space = "value", account = "value", all = "flag",
             yes = "flag", help = "flag" },
}
local COMMANDS = { "show", "forget" }
local DEFAULT_LIMIT = 50
local MAX_LIMIT = 1000000

-- A usage error: raised, caught by main (exit 2).
local Usage = {}
local function usage(fmt, ...)
  error(setmetatable({ message = fmt:format(...) }, Usage), 0)
end

-- The nearest of names to word, when near enough to be a typo: the
-- product's one rule (chatapp.suggest).
local nearest = chatapp.suggest

local function sorted_keys(t)
  local list = {}
  for k in pairs(t) do list[#list + 1] = k end
  table.sort(list)
  return list
end

--- Parse args (a list) for command: the options table, or raises a usage
--- error.  --opt VALUE and --opt=VALUE; -h for --help.
function M.parse(command, args)
  local known = OPTIONS[command]
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" then a = "--help" end
    local name, value = a:match("^%-%-([^=]+)=(.*)$")
    name = name or a:match("^%-%-(.+)$")
    if not name then
      usage("state %s: unexpected argument '%s' (options start with --)", command, safe(a))
    end
    local kind = known[name]
    if not kind then
      local other = command == "show" and "forget" or "show"
      if OPTIONS[other][name] then
        usage("state %s: --%s is an option of 'state %s'", command, name, other)
      end
      local near = nearest(name, sorted_keys(known))
      usage("state %s: unknown option '--%s'%s", command, safe(name), near and ("; did you mean --" .. near .. "?") or "")
    end
    if kind == "flag" then
      if value then usage("state %s: --%s takes no value", command, name) end
      o[name] = true
    else
      if not value then
        i = i + 1
        value = args[i]
        if value == nil or value:sub(1, 2) == "--" then
          usage("state %s: --%s needs a value", command, name)
        end
      end
      if o[name] ~= nil then usage("state %s: --%s given twice", command, name) end
      if value == "" and name ~= "space" then usage("state %s: --%s needs a value (it is empty)", command, name) end
      o[name] = value
    end
    i = i + 1
  end
  if o.help then return o end
  if o.limit then
    local n = o.limit:find("^%d+$") and #o.limit <= 7 and math.tointeger(tonumber(o.limit))
    if not n or n < 1 or n > MAX_LIMIT then
      usage("state %s: --limit must be a whole number from 1 to %d, not '%s'", command, MAX_LIMIT, safe(o.limit))
    end
    o.limit = n
  end
  if o.output and o.output ~= "text" and o.output ~= "json" then
    usage("state %s: --output must be text or json, not '%s'", command, safe(o.output))
  end
  if command == "forget" then
    if o.all and (o.number or o.space) then
      usage("state forget: --all forgets everything; give it without --number and --space")
    end
    if not (o.all or o.number or o.space) then
      usage("state forget: say what to forget: --number N, --space S, or --all")
    end
  end
  return o
end

local function iso(t)
  t = math.tointeger(t)
  if not t then return "?" end
  local ok, s = pcall(os.date, "!%Y-%m-%dT%H:%M:%SZ", t)
  return ok and s or tostring(t)
end

-- "2026-11-29T19:57:26Z (3 h ago)"
local function when(t, now)
  t = math.tointeger(t)
  if not t then return "?" end
  local d = now - t
  return ("%s (%s)"):format(iso(t), d >= 0 and (ago(d) .. " ago") or ("in " .. ago(-d)))
end

local function space_name(s)
  if s == "" or s == nil then return "own numbers" end
  return safe(s)
end

local function plural(n, one, many)
  return ("%d %s"):format(n, n == 1 and one or (many or one .. "s"))
end

-- Rows printed as columns (values already escaped), two spaces apart.
local function columns(out, indent, rows)
  local widths = {}
  for _, r in ipairs(rows) do
    for j, v in ipairs(r) do
      local w = utf8.len(v) or #v
      if j < #r and (widths[j] or 0) < w then widths[j] = w end
    end
  end
  for _, r in ipairs(rows) do
    local parts = {}
    for j, v in ipairs(r) do
      if j < #r then
        parts[j] = v .. (" "):rep(widths[j] - (utf8.len(v) or #v))
      else
        parts[j] = v
      end
    end
    out(indent .. table.concat(parts, "  "):gsub("%s+$", "") .. "\n")
  end
end

-- The tracked fields of a snapshot as the runs compare them (the decoded
-- PhoneNumber), else as the API named them (a snapshot the decoder
-- refuses is still shown).
local TRACKED = core.phone_tracked()
local function pascal(f)
  return (f:gsub("^%l", string.upper):gsub("_(%l)", string.upper))
end
local function fields_of(snapshot_text)
  local list = core.decode_phone_numbers('{"PhoneNumbers":[' .. snapshot_text .. "]}")
  local n = list and list[1]
  local raw = core.json_decode(snapshot_text)
  local values = {}
  for _, f in ipairs(TRACKED) do
    local v
    if n then
      v = n[f]
    elseif type(raw) == "table" then
      v = raw[pascal(f)]
    end
    if v ~= nil and v ~= core.json_null then values[f] = v end
  end
  return values, type(raw) == "table" and raw or nil
end

local function decode_since(text)
  local t = core.json_decode(text or "")
  return type(t) == "table" and t or {}
end

local function transition_text(t)
  local old = t.old == nil and "(none)" or safe(t.old)
  local new = t.new == nil and "(none)" or safe(t.new)
  if t.field == "presence" then
    if t.new == "present" then return "presence", "new" end
    if t.new == "gone" then return "presence", "gone" end
  end
  return safe(t.field), ("%s -> %s"):format(old, new)
end

local function key(r) return r.account .. "\0" .. r.space .. "\0" .. r.number end

---------------------------------------------------------------------------
-- show, text

local function show_number(out, r, got, now, limit)
  out(("%s  %s  account %s\n"):format(safe(r.number), space_name(r.space), safe(r.account)))
  if r.snapshot then
    out(("  first seen  %s\n  last seen   %s\n"):format(when(r.first_seen, now), when(r.last_seen, now)))
    local values = fields_of(r.snapshot)
    local since = decode_since(r.since)
    local rows = {}
    for _, f in ipairs(TRACKED) do
      if values[f] ~= nil then
        rows[#rows + 1] = { f, safe(values[f]), since[f] and ("since " .. when(since[f], now)) or "" }
      end
    end
    if #rows > 0 then columns(out, "  ", rows) end
  else
    out("  no snapshot: gone at the last fetch of its space, or never seen\n")
  end
  local tr = {}
  for _, t in ipairs(got.transitions) do
    if key(t) == key(r) then
      local field, change = transition_text(t)
      tr[#tr + 1] = { when(t.time, now), field, change }
    end
  end
  out(("  transitions (most recent first%s):%s\n"):format(#got.transitions >= limit and (", up to " .. limit) or "",
    #tr == 0 and " none" or ""))
  if #tr > 0 then columns(out, "    ", tr) end
  local rem = {}
  for _, x in ipairs(got.reminders) do
    if key(x) == key(r) then rem[#rem + 1] = { "policy " .. safe(x.policy), "last fired " .. when(x.last_fired, now) } end
  end
  out(("  reminders:%s\n"):format(#rem == 0 and " none" or ""))
  if #rem > 0 then columns(out, "    ", rem) end
  local ob = {}
  for _, o in ipairs(got.outbox) do
    if key(o) == key(r) then
      ob[#ob + 1] = { safe(o.status), safe(o.policy), safe(o.kind), safe(o.target),
                      ("%s old"):format(ago(math.max(0, now - (math.tointeger(o.created) or now)))),
                      plural(math.tointeger(o.attempts) or 0, "attempt"),
                      o.error and ("error: " .. safe(o.error)) or "" }
    end
  end
  out(("  outbox:%s\n"):format(#ob == 0 and " none" or ""))
  if #ob > 0 then columns(out, "    ", ob) end
end

local function show_text(out, o, name, got, now, limit)
  if o.number then
    -- one block per (account, space) the number is known in: its
    -- snapshot, or only its history when it is gone
    local seen, blocks = {}, {}
    local function add(r)
      local k = key(r)
      if not seen[k] then
        seen[k] = { account = r.account, space = r.space, number = r.number }
        blocks[#blocks + 1] = seen[k]
      end
      return seen[k]
    end
    for _, r in ipairs(got.numbers) do
      local b = add(r)
      for k, v in pairs(r) do b[k] = v end
    end
    for _, list in ipairs { got.transitions, got.reminders, got.outbox } do
      for _, r in ipairs(list) do add(r) end
    end
    for i, b in ipairs(blocks) do
      if i > 1 then out("\n") end
      show_number(out, b, got, now, limit)
    end
    return
  end
  out(("%s\n"):format(safe(name)))
  if #got.numbers == 0 then
    out("numbers: none\n")
  else
    local rows = { { "NUMBER", "SPACE", "STATUS", "QUALITY", "TIER", "LAST SEEN", "ACCOUNT" } }
    for _, r in ipairs(got.numbers) do
      local v = fields_of(r.snapshot)
      rows[#rows + 1] = { safe(r.number), space_name(r.space), safe(v.status or "?"), safe(v.quality_rating or "?"),
                          safe(v.messaging_limit_tier or "?"), when(r.last_seen, now), safe(r.account) }
    end
    out(("numbers: %d\n"):format(#got.numbers))
    columns(out, "  ", rows)
  end
  if #got.transitions == 0 then
    out("transitions: none\n")
  else
    out(("last transitions (most recent first, up to %d):\n"):format(limit))
    local rows = {}
    for _, t in ipairs(got.transitions) do
      local field, change = transition_text(t)
      rows[#rows + 1] = { when(t.time, now), safe(t.number), space_name(t.space), field, change }
    end
    columns(out, "  ", rows)
  end
  local counts = {}
  for _, c in ipairs(got.outbox_counts) do counts[#counts + 1] = ("%d %s"):format(c.n, safe(c.status)) end
  out(("outbox: %s\n"):format(#counts == 0 and "empty" or table.concat(counts, ", ")))
  if #got.pending > 0 then
    out(("pending actions (oldest first, up to %d):\n"):format(limit))
    local rows = {}
    for _, p in ipairs(got.pending) do
      rows[#rows + 1] = { safe(p.number), safe(p.policy), safe(p.kind), safe(p.target),
                          ("%s old"):format(ago(math.max(0, now - (math.tointeger(p.created) or now)))),
                          plural(math.tointeger(p.attempts) or 0, "attempt"),
                          p.error and ("error: " .. safe(p.error)) or "" }
    end
    columns(out, "  ", rows)
  end
end

---------------------------------------------------------------------------
-- show, JSON Lines

local function show_json(out, got)
  local function emit(t) out(assert(core.json_encode(t)) .. "\n") end
  for _, r in ipairs(got.numbers) do
    local _, raw = fields_of(r.snapshot)
    emit { type = "number", account = r.account, space = r.space, number = r.number, first_seen = r.first_seen,
           last_seen = r.last_seen, since = decode_since(r.since), snapshot = raw,
           snapshot_error = raw == nil and "the snapshot is not a JSON object" or nil }
  end
  for _, t in ipairs(got.transitions) do
    emit { type = "transition", time = t.time, account = t.account, space = t.space, number = t.number,
           field = t.field, old = t.old, new = t.new }
  end
  for _, x in ipairs(got.reminders) do
    emit { type = "reminder", account = x.account, policy = x.policy, space = x.space, number = x.number,
           last_fired = x.last_fired }
  end
  local listed = {}
  local function outbox(o)
    if listed[o.account .. "\0" .. o.id] then return end
    listed[o.account .. "\0" .. o.id] = true
    emit { type = "outbox", account = o.account, id = o.id, policy = o.policy, kind = o.kind, space = o.space,
           number = o.number, target = o.target, status = o.status, created = o.created, updated = o.updated,
           attempts = o.attempts, error = o.error }
  end
  for _, o in ipairs(got.pending) do outbox(o) end
  for _, o in ipairs(got.outbox) do outbox(o) end
end

---------------------------------------------------------------------------
-- The file

-- The path to use, or nil and a message.
local function file_of(o)
  if o.state then return o.state end
  return state.default_path()
end

local function what_of(o)
  local parts = {}
  if o.number then parts[#parts + 1] = "number " .. safe(o.number) end
  if o.space then parts[#parts + 1] = "space " .. (o.space == "" and "'' (own numbers)" or safe(o.space)) end
  if o.account then parts[#parts + 1] = "account " .. safe(o.account) end
  return table.concat(parts, ", ")
end

local function filter_of(o)
  return { account = o.account, space = o.space, number = o.number }
end

-- The store at path (the one rule: chatapp.state.store_of), which must
-- exist; nil after printing why.
local function open(path, readonly, err)
  local backend, berr = state.store_of(path)
  if not backend then err(safe(berr)); return nil end
  local store, msg = backend.open(path, { readonly = readonly, must_exist = true })
  if not store then err(safe(msg)); return nil end
  return store
end

local function show(o, path, out, err)
  local store = open(path, true, err)
  if not store then return 2 end
  local name = store:describe()
  local limit = o.limit or DEFAULT_LIMIT
  local got, serr = store:show(filter_of(o), limit)
  store:close()
  if not got then err(safe(serr)); return 2 end
  local now = state.now()
  local any = #got.numbers + #got.transitions + #got.outbox + #got.reminders > 0
  if (o.number or o.space or o.account) and not any then
    err(("nothing in %s for %s (chatapp-run state show --state %s lists what it holds)")
      :format(safe(name), what_of(o), safe(path)))
    return 1
  end
  if o.output == "json" then
    show_json(out, got)
  else
    show_text(out, o, name, got, now, limit)
  end
  return 0
end

local function forget(o, path, out, err)
  local store = open(path, false, err)
  if not store then return 2 end
  local name = store:describe()
  local counts, ferr = store:forget(filter_of(o), not o.yes)
  store:close()
  if not counts then
    err(safe(ferr))
    return 2
  end
  local n = {}
  local total = 0
  for _, t in ipairs { "numbers", "transitions", "reminders", "outbox" } do
    n[t] = math.tointeger(counts[t]) or 0
    total = total + n[t]
  end
  local what = o.all and ("everything" .. (o.account and (" of account " .. safe(o.account)) or "")) or what_of(o)
  if total == 0 then
    err(("nothing to forget: %s holds nothing for %s"):format(safe(name), what))
    return 1
  end
  out(("forgot %s: %s, %s, %s, %s\n"):format(what, plural(n.numbers, "snapshot"), plural(n.transitions, "transition"),
    plural(n.reminders, "reminder"), plural(n.outbox, "outbox entry", "outbox entries")))
  return 0
end

--- chatapp-run state ARGS...: the exit status.
function M.main(args)
  local stdout = core.redacting(io.stdout)
  local function out(s) stdout:write(s) end
  local function err(s) io.stderr:write("chatapp-run: ", s, "\n") end
  local command = args[1]
  if command == nil then
    io.stderr:write(M.USAGE)
    return 2
  end
  if command == "--help" or command == "-h" or command == "help" then
    out(M.USAGE)
    return 0
  end
  if not OPTIONS[command] then
    local near = nearest(command, COMMANDS)
    err(("state: unknown command '%s' (commands: show, forget)%s\nTry 'chatapp-run state --help'.")
      :format(safe(command), near and ("; did you mean 'state " .. near .. "'?") or ""))
    return 2
  end
  local rest = table.move(args, 2, #args, 1, {})
  local ok, o = pcall(M.parse, command, rest)
  if not ok then
    if getmetatable(o) == Usage then
      err(o.message .. "\nTry 'chatapp-run state --help'.")
      return 2
    end
    error(o, 0)
  end
  if o.help then
    out(M.USAGE)
    return 0
  end
  local path, perr = file_of(o)
  if not path then err(perr); return 2 end
  if command == "show" then return show(o, path, out, err) end
  return forget(o, path, out, err)
end

return M
