-- chatapp-run --emulator with the user's own data and the emulator's
-- webhook sink: --data FILE or folder is what the run sees; a missing or
-- broken fixture, and --data without --emulator, are exit 2 before any
-- run; CHATAPP_EMULATOR_SINK takes a policy's webhook to the emulator's
-- sink, where the delivery is seen; --check loads such a policy too.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local chatapp = require "chatapp"
local core = chatapp.core

-- The emulator is found through CHATAPP_EMULATOR; no account is needed.
local ENV = { CHATAPP_EMULATOR = E.emu_bin, ALIBABA_CLOUD_ACCESS_KEY_ID = false,
              ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }

local FIXTURE = [[
{"spaces": [
  {"cust_space_id": "", "label": "Mine",
   "phone_numbers": [
     {"PhoneNumber": "4915100000001", "Status": "CONNECTED", "QualityRating": "RED",
      "MessagingLimitTier": "TIER_1K", "OnlyInMyFixture": {"n": 1}},
     {"PhoneNumber": "4915100000002", "Status": "CONNECTED", "QualityRating": "GREEN"}]}
]}]]

local ALL = [[
local chatapp = require "chatapp"
return chatapp.policy { name = "all", filter = function(n) return true end }]]

local PAGER = [[
local chatapp = require "chatapp"
local url = os.getenv("CHATAPP_EMULATOR_SINK") .. "%s"
return chatapp.policy {
  name = "pager",
  where = { quality_rating = "RED" },
  decide = function(n, plan)
    plan:webhook { url = url, json = { number = n.phone_number } }
  end,
}]]

--- chatapp-run in the background; p.wait(ms) gives its exit status.
local function start(args)
  local dir = E.tmpdir()
  local cmd = { "env", "-i", "PATH=" .. E.quote(os.getenv("PATH") or "/usr/bin:/bin"),
                "HOME=" .. E.quote(dir), "NO_COLOR=", "CHATAPP_EMULATOR=" .. E.quote(E.emu_bin),
                E.quote(E.run_bin) }
  for _, a in ipairs(args) do cmd[#cmd + 1] = E.quote(a) end
  local q = E.quote
  os.execute(("(%s >%s 2>%s </dev/null; echo $? >%s) >/dev/null 2>&1 &")
    :format(table.concat(cmd, " "), q(dir .. "/stdout"), q(dir .. "/stderr"), q(dir .. "/rc")))
  local p = { dir = dir }
  function p.err() return E.read(dir .. "/stderr") or "" end
  function p.out() return E.read(dir .. "/stdout") or "" end
  function p.wait(ms)
    for _ = 1, (ms or 30000) // 20 do
      local rc = tonumber(E.read(dir .. "/rc") or "")
      if rc then return rc end
      E.sleep_ms(20)
    end
    return nil
  end
  return p
end

T.cases {
  { "--emulator --data FILE: the run sees the fixture's numbers", function()
    local dir = E.tmpdir()
    local fixture = E.write(dir .. "/mine.json", FIXTURE)
    local r = E.run({ "--emulator", "--data", fixture, "--output", "json", E.policy(ALL) }, ENV)
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(#by.match, 2, "the fixture's two numbers")
    T.eq(by.match[1].number.PhoneNumber, "4915100000001")
    T.eq(by.match[1].number.OnlyInMyFixture.n, 1, "its own fields pass through")
    T.check(not r.out:find("8613800000001", 1, true), "no sample number")
    -- Without --data: the sample, as before.
    r = E.run({ "--emulator", E.policy(ALL) }, ENV)
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("8613800000001", 1, true) and not r.out:find("4915100000001", 1, true),
            r.out)
  end },

  { "--data FOLDER of *.json fixtures", function()
    local dir = E.tmpdir()
    E.write(dir .. "/a.json", FIXTURE)
    E.write(dir .. "/b.json", [[{"cust_space_id": "C1", "label": "Other",
      "phone_numbers": [{"PhoneNumber": "33600000001", "Status": "CONNECTED"}]}]])
    local spaces = E.write(E.tmpdir() .. "/spaces.json", [=[[{"cust_space_id": "C1"}]]=])
    local r = E.run({ "--emulator", "--data", dir, "--spaces", spaces, E.policy(ALL) }, ENV)
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("33600000001", 1, true), r.out)
  end },

  { "a missing or broken --data fixture: exit 2 before any run, naming it", function()
    local missing = E.tmpdir() .. "/no-such-fixture.json"
    local r = E.run({ "--emulator", "--data", missing, E.policy(ALL) }, ENV)
    T.eq(r.code, 2, r.err)
    T.check(r.err:find(missing, 1, true), r.err)
    T.check(r.err:find("No such file", 1, true), r.err)
    T.eq(r.out, "", "nothing ran")
    local broken = E.write(E.tmpdir() .. "/broken.json",
      [[{"spaces": [{"cust_space_id": "C1", "phone_numbers": [{"Status": "CONNECTED"}]}]}]])
    r = E.run({ "--emulator", "--data", broken, E.policy(ALL) }, ENV)
    T.eq(r.code, 2, r.err)
    T.check(r.err:find(broken, 1, true) and r.err:find("PhoneNumber", 1, true), r.err)
    T.eq(r.out, "", "nothing ran")
  end },

  { "--data without --emulator is a usage error", function()
    local fixture = E.write(E.tmpdir() .. "/mine.json", FIXTURE)
    local r = E.run({ "--data", fixture, E.policy(ALL) })
    T.eq(r.code, 2)
    T.check(r.err:find("--data needs --emulator", 1, true), r.err)
    r = E.run({ "--emulator", "--data" }, ENV)
    T.eq(r.code, 2)
    T.check(r.err:find("needs a value", 1, true), r.err)
  end },

  { "CHATAPP_EMULATOR_SINK: a policy's webhook reaches the emulator's sink", function()
    local fixture = E.write(E.tmpdir() .. "/mine.json", FIXTURE)
    local r = E.run({ "--emulator", "--data", fixture, "--output", "json",
                      E.policy(PAGER:format("/x")) }, ENV)
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(#by.action, 1, r.out)
    T.eq(by.action[1].status, "done", r.out)
    local req = by.action[1].request or {}
    T.check(tostring(req.url):find("^http://127%.0%.0%.1:%d+/_emulator/sink/x$"), req.url)
    T.eq((by.action[1].result or {}).http_status, 200)
    -- The sink chooses the answer: a 418 can only come from it.
    r = E.run({ "--emulator", "--data", fixture, E.policy(PAGER:format("/x?status=418")) }, ENV)
    T.eq(r.code, 1, r.err)
    T.check((r.out .. r.err):find("418", 1, true), r.out .. r.err)
  end },

  { "the delivery is in GET /_emulator/deliveries while the run waits", function()
    local fixture = E.write(E.tmpdir() .. "/mine.json", FIXTURE)
    -- The sink holds its answer 3 s: time to ask the emulator what arrived.
    local p = start({ "-v", "--emulator", "--data", fixture,
                      E.policy(PAGER:format("/pager?delay_ms=3000")) })
    local url
    for _ = 1, 500 do
      url = p.err():match("emulator listening on (http://127%.0%.0%.1:%d+)")
      if url then break end
      E.sleep_ms(20)
    end
    T.check(url, "the emulator's address on stderr: " .. p.err())
    local seen
    if url then
      local http = assert(core.http_client { timeout_ms = 5000, max_attempts = 1 })
      for _ = 1, 250 do
        local res = http:batch { { url = url .. "/_emulator/deliveries", method = "GET" } }
        local d = res[1] and chatapp.json.decode(res[1].body)
        seen = d and d.deliveries and d.deliveries[1]
        if seen then break end
        E.sleep_ms(20)
      end
    end
    T.check(seen, "a delivery arrived")
    if seen then
      T.eq(seen.path, "sink/pager")
      T.eq(seen.method, "POST")
      T.check(seen.idempotency_key and #seen.idempotency_key > 0, "an Idempotency-Key")
      local body = chatapp.json.decode(seen.body)
      T.eq(body and body.number, "4915100000001", seen.body)
    end
    T.eq(p.wait(30000), 0, p.err())
    T.check(p.out():find("done", 1, true), p.out())
  end },

  { "--emulator --check loads a policy that reads CHATAPP_EMULATOR_SINK", function()
    local r = E.run({ "--emulator", "--check", E.policy(PAGER:format("/x")) }, ENV)
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("pager: ok", 1, true), r.out)
    -- Without --emulator the variable is not set by chatapp-run.
    r = E.run({ "--check", E.policy(PAGER:format("/x")) })
    T.eq(r.code, 3, "sink is nil: the policy fails to load")
  end },
}

E.cleanup()
return T.done()
