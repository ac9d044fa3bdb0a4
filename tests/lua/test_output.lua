-- The run report as shown: text output and log lines escape every control
-- character that came from a server or a policy (no ESC sequence, BEL, CR
-- or NUL reaches the terminal, no value forges a line), and a JSON Lines
-- record that cannot be encoded becomes a clear message while the rest of
-- the report (the summary included) still prints.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local report = require "chatapp.report"

local function sink()
  local buf = {}
  return {
    write = function(self, ...)
      for _, s in ipairs { ... } do buf[#buf + 1] = tostring(s) end
      return self
    end,
    flush = function() end,
    text = function() return table.concat(buf) end,
  }
end

local function lines_of(s)
  local list = {}
  for line in s:gmatch("([^\n]*)\n") do list[#list + 1] = line end
  return list
end

-- Hostile values, as a server or a policy could send them.
local ESC_TITLE = "\27]0;owned\7"
local hostile = {
  PhoneNumber = "8613800000001\r\nchatapp-run: forged line",
  VerifiedName = "Acme\27[2J\27[31m\0\7" .. ESC_TITLE,
  Status = "CONNECTED\rBANNED",
  QualityRating = "GREEN\xc2\x9b31m", -- U+009B CSI
  MessagingLimitTier = "TIER_1K\xe2\x80\xae", -- U+202E RIGHT-TO-LEFT OVERRIDE
}

local function make_report(output, log_lines)
  local policy = { name = "p\27[1mname\n", file = "/tmp/x\r.lua", description = "d\0esc\7" }
  local r = report.new({ output = output, color = 0, verbose = 1 }, { policy }, function(level, line)
    log_lines[#log_lines + 1] = line
  end)
  r.out = sink()
  local body = assert(chatapp.json.encode { RequestId = "R\27[0m", PhoneNumbers = { hostile } })
  local list = assert(core.decode_phone_numbers(body, { cust_space_id = "C1", label = "L\27[5m" }))
  local space = { cust_space_id = "C1", label = "L\27[5m\n" }
  r:space(space, list)
  r:seen(policy)
  r:matched(policy, space, list[1])
  r:policy_error(policy, space, list[1], "boom\r\nchatapp-run: all good\27[0m")
  r:action { policy_ref = policy, policy = policy.name, kind = "log", space = space,
    request = { message = "log\nforged\27[H" } }
  r:action { policy_ref = policy, policy = policy.name, kind = "call", space = space,
    phone_number = "1\n2", status = "failed", error = "Server said:\r\n\27[31mforged",
    request = { operation = "Op\27[2J", params = { A = "1\n2" } },
    current = { A = "x\ny" }, result = { request_id = "REQ\r\n" } }
  return r, policy, list
end

T.cases {
  { "one escaping function", function()
    T.eq(report.safe("a\27[31mb\7c\r\nd\0e"), "a\\e[31mb\\ac\\r\\nd\\x00e")
    T.eq(report.safe("é😀 ok"), "é😀 ok", "printable UTF-8 is kept")
    T.eq(report.safe("\xff\xc3"), "\\xff\\xc3", "bytes that are not UTF-8")
    T.eq(report.safe("a\xc2\x9bb"), "a\\u{9b}b", "C1 controls")
    T.eq(report.safe("\xe2\x80\xaeevil"), "\\u{202e}evil", "bidirectional overrides")
    T.eq(report.safe(42), "42")
    T.eq(report.safe_lines("a\nb\r\27"), "a\n  b\\r\\e", "continuation lines are indented")
    T.eq(report.safe_lines(report.safe_lines("a\nb\n\tc\27")), report.safe_lines("a\nb\n\tc\27"), "once")
    local r = report.new({ output = "none" }, {}, function() end)
    r:fail("api", "space C1: server says\r\nchatapp-run: all good\27[0m")
    T.eq(r.message, "space C1: server says\\r\n  chatapp-run: all good\\e[0m", "the message the host prints")
  end },

  { "text output shows no control character and no forged line", function()
    local logged = {}
    local r = make_report("text", logged)
    r:settle(true)
    r:finish()
    local out = r.out.text()
    T.check(not out:find("[%z\1-\9\11-\31\127]"), "no control character but line ends:\n" .. out)
    T.check(not out:find("\xc2\x9b", 1, true) and not out:find("\xe2\x80\xae", 1, true), "no C1, no override")
    for _, line in ipairs(lines_of(out)) do
      T.check(not line:find("^%s*chatapp%-run:") and not line:find("^%s*forged"), "forged line: " .. line)
    end
    T.check(out:find("8613800000001\\r\\nchatapp-run: forged line", 1, true), "the value is shown, escaped")
    T.check(out:find("Acme\\e[2J\\e[31m\\x00\\a\\e]0;owned\\a", 1, true), "the name, escaped")
    T.check(#logged > 0, "lines were logged")
    for _, line in ipairs(logged) do
      T.check(not line:find("[%z\1-\8\11-\31\127]"), "log line has no control character: " .. line)
      for l in (line .. "\n"):gmatch("([^\n]*)\n") do
        T.check(not l:find("^chatapp%-run:") and not l:find("^forged"), "forged log line: " .. l)
      end
    end
  end },

  { "check mode escapes too", function()
    local r = make_report("text", {})
    r:finish_check()
    T.check(not r.out.text():find("[%z\1-\9\11-\31\127]"), r.out.text())
    -- and it printed the policy's name and file, escaped (an empty output
    -- would pass the line above)
    T.check(r.out.text():find("p\\e[1mname\\n: FAILED, 1 error (/tmp/x\\r.lua)", 1, true), r.out.text())
  end },

  { "a record that cannot be encoded is a message; the rest still prints", function()
    local logged = {}
    local r, policy = make_report("json", logged)
    local deep = {}
    local t = deep
    for _ = 1, chatapp.json.max_depth + 5 do
      t[1] = {}
      t = t[1]
    end
    r:action { policy_ref = policy, policy = policy.name, kind = "lua", id = "A1", status = "done",
      request = { name = "f" }, result = deep }
    r:settle(false)
    local ok, err = pcall(r.finish, r)
    T.check(ok, "finish does not raise: " .. tostring(err))
    local records = {}
    for _, line in ipairs(lines_of(r.out.text())) do
      local v, derr = chatapp.json.decode(line)
      T.check(v, "every line is JSON: " .. tostring(derr))
      records[#records + 1] = v or {}
    end
    T.eq(records[#records].type, "summary", "the summary still prints")
    local bad
    for _, v in ipairs(records) do
      if v.encode_error then bad = v end
    end
    T.check(bad and bad.type == "action" and bad.id == "A1", "a record in place of the one that failed")
    T.check(bad and bad.encode_error:find("deeper than", 1, true), bad and bad.encode_error)
    local said = false
    for _, line in ipairs(logged) do
      if line:find("cannot write the action record", 1, true) then said = true end
    end
    T.check(said, "and a message says so")
    -- hostile values went into valid JSON: the phone number as sent
    local match
    for _, v in ipairs(records) do
      if v.type == "match" then match = v end
    end
    T.eq(match and match.number.PhoneNumber, hostile.PhoneNumber)
  end },
  { "chatapp-run --replay: hostile answers, text and JSON Lines", function()
    local bin = arg[1]
    -- tests/CMakeLists.txt passes it; without it the case fails rather
    -- than passing having run nothing.
    if not T.check(bin, "usage: test_output.lua CHATAPP_RUN") then return end
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -m 700 " .. dir))
    local deep = ("["):rep(chatapp.json.max_depth - 3) .. "1" .. ("]"):rep(chatapp.json.max_depth - 3)
    local body = '{"RequestId":"R1","Code":"OK","PhoneNumbers":[{"PhoneNumber":"8613800000001\\r\\n'
      .. 'chatapp-run: all fine","VerifiedName":"Acme\\u001b[2J\\u001b]0;pwn\\u0007\\u0000",'
      .. '"Status":"CONNECTED","QualityRating":"RED","MessagingLimitTier":"TIER_1e400K","Deep":' .. deep
      .. '},{"PhoneNumber":12345678901234567,"Status":"CONNECTED","QualityRating":"RED"}]}'
    local rec = dir .. "/rec.json"
    local f = assert(io.open(rec, "w"))
    f:write(assert(chatapp.json.encode { format = "chatapp-run recording", version = 1,
      recorded_at = "2026-11-29T03:00:00Z",
      answers = { { cust_space_id = "", operation = "QueryChatappPhoneNumbers", body = body } } }))
    f:close()
    local policy = T.dir() .. "/../../scripts/policies/quality-alert.lua"
    local function run(output)
      local cmd = ("%s --replay %s --output %s %s 2>%s/err"):format(bin, rec, output, policy, dir)
      local p = assert(io.popen(cmd, "r"))
      local out = p:read("a")
      local _, _, code = p:close()
      local e = assert(io.open(dir .. "/err"))
      local err = e:read("a")
      e:close()
      return out, err, code
    end
    local out, err, code = run("text")
    T.eq(code, 0, err)
    T.check(not (out .. err):find("[%z\1-\9\11-\31\127]"), "no control character:\n" .. out .. err)
    T.check(out:find("8613800000001\\r\\nchatapp-run: all fine", 1, true), out)
    T.check(out:find("12345678901234567", 1, true), "the numeric phone number, every digit")
    for _, line in ipairs(lines_of(out .. err)) do
      T.check(not line:find("^chatapp%-run: all fine"), "forged line: " .. line)
    end
    out, err, code = run("json")
    T.eq(code, 0, err)
    local records = {}
    for _, line in ipairs(lines_of(out)) do
      T.check(utf8.len(line), "valid UTF-8")
      records[#records + 1] = chatapp.json.decode(line) or {}
    end
    T.eq(#records, 4, "space, two matches, summary:\n" .. out .. err)
    T.eq(records[#records].type, "summary")
    T.eq(records[2].number.PhoneNumber, "8613800000001\r\nchatapp-run: all fine")
    T.eq(records[3].number.PhoneNumber, "12345678901234567")
    os.remove(dir .. "/err")
    os.remove(rec)
    os.remove(dir)
  end },

  { "one table of output formats: report.formats, checked by check_format", function()
    local names = {}
    for name, f in pairs(report.formats) do
      names[#names + 1] = name
      T.check(type(f.run) == "function" and type(f.check) == "function", "writers for " .. name)
      T.eq(report.check_format(name), true, name)
    end
    table.sort(names)
    T.eq(table.concat(names, ","), "json,none,text")
    local ok, err = report.check_format("xml")
    T.eq(ok, nil)
    T.eq(err, 'unknown output format "xml": use one of json, none, text')
    T.eq(select(2, report.check_format("jsno")),
      'unknown output format "jsno": use one of json, none, text; did you mean json?', "a near name is offered")
    local pok, perr = pcall(report.new, { output = "xml" }, {}, function() end)
    T.check(not pok and tostring(perr):find("unknown output format \"xml\"", 1, true), tostring(perr))
    -- Every format writes a run and a check; none writes nothing.
    for _, name in ipairs(names) do
      local r = make_report(name, {})
      r:settle(true)
      r:finish()
      local c = make_report(name, {})
      c:finish_check()
      local run_out, check_out = r.out.text(), c.out.text()
      if name == "none" then
        T.eq(run_out .. check_out, "", "none writes nothing")
      else
        T.check(#run_out > 0 and #check_out > 0, name .. " writes a run and a check")
      end
    end
  end },

  { "core.loopback_host: the transport's rule, for webhooks", function()
    for _, h in ipairs { "localhost", "127.0.0.1", "127.3.2.1", "::1", "[::1]", "::ffff:127.0.0.1",
      "[::ffff:127.0.0.1]" } do
      T.eq(core.loopback_host(h), true, h)
    end
    for _, h in ipairs { "", "0.0.0.0", "127.1", "[127.0.0.1]", "localhost.evil.com", "127.0.0.1.evil.com",
      "::", "10.0.0.1", "localhost\0" } do
      T.eq(core.loopback_host(h), false, h)
    end
    T.check(not pcall(core.loopback_host, nil), "a string is required")
  end },

  { "a fetched space costs the report one small record (an ISV run has thousands)", function()
    local N = 2000
    local body = assert(chatapp.json.encode { RequestId = "R1", PhoneNumbers = { { PhoneNumber = "8613800000001",
      Status = "CONNECTED", QualityRating = "GREEN" } } })
    local spaces, lists = {}, {}
    for s = 1, N do
      spaces[s] = { cust_space_id = ("C%09d"):format(s), label = "Space " .. s }
      lists[s] = assert(core.decode_phone_numbers(body, spaces[s]))
    end
    local r = report.new({ output = "none" }, {}, function() end)
    r.out = sink()
    collectgarbage()
    collectgarbage()
    local before = core.memory()
    for s = 1, N do r:space(spaces[s], lists[s]) end
    collectgarbage()
    collectgarbage()
    local per = (core.memory() - before) / N
    -- two tables per space made it about 290 bytes; one record, about 185
    T.check(per < 240, ("the report holds %.0f bytes per space"):format(per))
    T.eq(#r.spaces, N)
    T.eq(#r.numbers, N)
    T.check(r.numbers[N].list == lists[N] and r.numbers[N].space == spaces[N], "numbers: {space, list}")
    local m = r:metrics_text()
    T.check(m:find('chatapp_numbers{[^\n]*space="C000002000"'), "metrics count the numbers by space")
  end },
}

return T.done()
