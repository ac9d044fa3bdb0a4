-- The CLI keeps its promises (issue 15): output paths checked before the
-- first API call and no exit 2 after actions ran; --output json prints its
-- summary in every case; --replay restores the recorded spaces and
-- --replay --apply carries actions out; boolean options and unknown
-- options; text and JSON agree; the README's sample output is the real
-- output; Meta's tiers are known values; a failure is printed once.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local emu = E.emulator()
local SPACES = E.path("scripts/spaces/sample-spaces.json")
local function policy(name) return E.path("scripts/policies/" .. name .. ".lua") end
local function base(...) return { "--endpoint", emu.url, ... } end

local function count(s, needle)
  local n, from = 0, 1
  while true do
    local i, j = s:find(needle, from, true)
    if not i then return n end
    n, from = n + 1, j + 1
  end
end

-- A policy that plans one exec action in finish (no number, no space).
local function exec_policy(argv)
  local quoted = {}
  for i, a in ipairs(argv) do quoted[i] = ("%q"):format(a) end
  return E.policy(([[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "run-once",
  where = { status = chatapp.Status.CONNECTED },
  finish = function(plan, matched)
    plan:exec { argv = { %s } }
  end,
}]]):format(table.concat(quoted, ", ")))
end

T.cases {
  { "an output folder that does not exist is refused before any API call (exit 2)", function()
    local before = emu:stats().requests
    local dir = E.tmpdir()
    for _, opt in ipairs { "--metrics", "--record" } do
      local r = E.run(base(opt, dir .. "/no/such/folder/out", policy("quality-alert")))
      T.eq(r.code, 2, opt .. ": " .. r.err)
      T.check(r.err:find(opt .. " " .. dir .. "/no/such/folder/out: the folder", 1, true), r.err)
      T.check(r.err:find("create it first", 1, true), r.err)
    end
    T.eq(emu:stats().requests, before, "no request")
  end },

  { "a metrics write failing after the actions ran: exit 1, status output, said once", function()
    local dir = E.tmpdir() .. "/metrics"
    assert(os.execute("mkdir " .. E.quote(dir)))
    -- the action removes the folder: the metrics cannot be written after it
    local p = exec_policy { "/bin/rm", "-rf", dir }
    local r = E.run(base("--allow-exec", "--output", "json", "--metrics", dir .. "/m.prom", p))
    T.eq(r.code, 1, "something ran: never 2; " .. r.err)
    local _, by = E.json_lines(r.out)
    T.eq(by.action[1].status, "done", "the action ran")
    T.eq(by.summary[1].status, "output")
    T.check(by.summary[1].message:find("cannot write the metrics", 1, true), by.summary[1].message)
    T.eq(count(r.err, "cannot write the metrics"), 1, "printed once: " .. r.err)
    -- text output, the same
    assert(os.execute("mkdir " .. E.quote(dir)))
    r = E.run(base("--allow-exec", "--metrics", dir .. "/m.prom", p))
    T.eq(r.code, 1, r.err)
    T.eq(count(r.err, "cannot write the metrics"), 1, "printed once: " .. r.err)
  end },

  { "--output json prints the summary when the credentials are missing", function()
    local r = E.run({ "--endpoint", emu.url, "--output", "json", policy("quality-alert") },
      { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false })
    T.eq(r.code, 2, r.err)
    local all, by = E.json_lines(r.out)
    T.eq(#all, 1, "the summary alone: " .. r.out)
    T.eq(by.summary[1].status, "credentials")
    T.check(by.summary[1].message:find("no Alibaba Cloud credentials", 1, true), r.out)
    T.eq(count(r.err, "no Alibaba Cloud credentials"), 1, "said once on stderr: " .. r.err)
  end },

  { "--output json prints the summary when a policy does not load", function()
    local p = E.policy("return 42")
    local r = E.run(base("--output", "json", policy("quality-alert"), p))
    T.eq(r.code, 3, r.err)
    local all, by = E.json_lines(r.out)
    T.eq(#all, 1, r.out)
    T.eq(by.summary[1].status, "load")
    T.check(by.summary[1].message:find(p, 1, true), "names the file: " .. r.out)
    T.eq(count(r.err, p), 1, "said once on stderr: " .. r.err)
    -- and a spaces file that is not there: status config, the summary too
    r = E.run(base("--output", "json", "--spaces", "/nonexistent/spaces.json", policy("quality-alert")))
    T.eq(r.code, 2, r.err)
    _, by = E.json_lines(r.out)
    T.eq(by.summary[1].status, "config", r.out)
  end },

  { "--replay restores the recorded spaces; --replay --apply carries actions out", function()
    local rec = E.tmpdir() .. "/run.rec"
    local r = E.run(base("--spaces", SPACES, "--record", rec, "--dry-run", "--output", "json",
      policy("quality-alert")))
    T.eq(r.code, 0, r.err)
    local _, recorded = E.json_lines(r.out)
    T.check(#recorded.space > 1, "several spaces recorded")
    -- no --spaces, no network, no credentials
    r = E.run({ "--endpoint", "http://127.0.0.1:1", "--replay", rec, "--output", "json", policy("quality-alert") },
      { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false })
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(#by.space, #recorded.space, "every recorded space")
    for i, s in ipairs(recorded.space) do
      T.eq(by.space[i].space, s.space)
      T.eq(by.space[i].space_label, s.space_label)
      T.eq(by.space[i].numbers, s.numbers)
    end
    T.eq(#by.match, #recorded.match, "the same matches")
    T.eq(by.summary[1].dry_run, true, "a replay is a dry run")
    -- with a webhook: planned only, then carried out with --apply
    emu:control("DELETE", "deliveries")
    local env = { OPS_HOOK = emu.url .. "/_emulator/sink/replay",
                  ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
    r = E.run({ "--replay", rec, "--output", "json", policy("quality-alert") }, env)
    T.eq(r.code, 0, r.err)
    _, by = E.json_lines(r.out)
    T.check(#by.action > 0, "webhooks planned")
    T.eq(#emu:deliveries(), 0, "nothing sent without --apply")
    r = E.run({ "--replay", rec, "--apply", "--output", "json", policy("quality-alert") }, env)
    T.eq(r.code, 0, r.err)
    _, by = E.json_lines(r.out)
    T.eq(by.summary[1].dry_run, false)
    for _, a in ipairs(by.action) do T.eq(a.status, "done", a.kind) end
    T.eq(#emu:deliveries(), #by.action, "every webhook delivered")
    -- --apply alone, or with --dry-run: usage errors
    r = E.run(base("--apply", policy("quality-alert")))
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("--apply goes with --replay", 1, true), r.err)
    r = E.run({ "--replay", rec, "--apply", "--dry-run", policy("quality-alert") })
    T.eq(r.code, 2, r.err)
  end },

  { "boolean options: bare, =true|false, or followed by true|false; never eat a file name", function()
    local out = E.tmpdir() .. "/ran"
    local p = exec_policy { "/bin/touch", out }
    local function ran(...)
      os.remove(out)
      local r = E.run(base("--output", "json", ...))
      local f = io.open(out)
      if f then f:close() end
      return r, f ~= nil
    end
    local cases = {
      { { "--allow-exec", p }, true },
      { { "--allow-exec", "true", p }, true },
      { { "--allow-exec", "false", p }, false },
      { { "--allow-exec=false", p }, false },
      { { "--allow-exec=true", p }, true },
      { { p }, false },
    }
    for _, c in ipairs(cases) do
      local r, did = ran(table.unpack(c[1]))
      local what = table.concat(c[1], " ")
      T.eq(r.code, 0, what .. ": " .. r.err)
      T.eq(did, c[2], what)
    end
    local r = E.run(base("--allow-exec=maybe", p))
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("must be true or false", 1, true), r.err)
  end },

  { "unknown options get a did-you-mean and point at --help", function()
    for _, c in ipairs {
      { "--alow-exec", "--allow-exec" }, { "--dry-rn", "--dry-run" }, { "--metrcs", "--metrics" },
      { "--emulater", "--emulator" }, { "--max_atempts", "--max-attempts" },
      -- a swap of two letters is one edit; a part before "-" counts too
      { "--dyr-run", "--dry-run" }, { "--allow", "--allow-exec" }, { "--fetch-memroy", "--fetch-memory-mb" },
    } do
      local r = E.run(base(c[1], policy("quality-alert")))
      T.eq(r.code, 2, c[1])
      T.check(r.err:find(("unknown option '%s'"):format(c[1]:gsub("_", "-")), 1, true), r.err)
      T.check(r.err:find(("did you mean '%s'?"):format(c[2]), 1, true), r.err)
      T.check(r.err:find("chatapp-run --help", 1, true), r.err)
      T.check(not r.err:find("embedding.md", 1, true), "not the embedding docs: " .. r.err)
    end
    local r = E.run(base("--zzzzzzzz", policy("quality-alert")))
    T.eq(r.code, 2)
    T.check(not r.err:find("did you mean", 1, true), "nothing near: " .. r.err)
    T.check(r.err:find("chatapp-run --help", 1, true), r.err)
    r = E.run(base("--check=yes", policy("quality-alert")))
    T.eq(r.code, 2)
    T.check(r.err:find("option '--check' takes no value", 1, true), r.err)
  end },

  { "text and JSON agree on the counts", function()
    local p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy {
  name = "two-hooks",
  where = { quality_rating = chatapp.QualityRating.RED },
  decide = function(n, plan)
    plan:webhook { url = os.getenv("HOOK") .. "/a", json = { n = n.phone_number } }
    plan:webhook { url = os.getenv("HOOK") .. "/b", json = { n = n.phone_number } }
  end,
}]])
    local env = { HOOK = emu.url .. "/_emulator/sink" }
    for _, dry in ipairs { true, false } do
      local extra = dry and "--dry-run" or "--state"
      local args = dry and base(extra, "--output", "json", p) or base("--output", "json", p)
      local r = E.run(args, env)
      T.eq(r.code, 0, r.err)
      local _, by = E.json_lines(r.out)
      local s = by.summary[1].policies[1]
      T.check(s.matched > 0, "numbers matched")
      T.eq(s.planned, 2 * s.matched, "two webhooks per number")
      args = dry and base(extra, p) or base(p)
      r = E.run(args, env)
      T.eq(r.code, 0, r.err)
      if dry then
        T.check(r.out:find(("%d planned (dry run: none carried out)"):format(s.planned), 1, true), r.out)
      else
        T.eq(s.done, s.planned)
        T.check(r.out:find(("%d planned: %d done, %d failed"):format(s.planned, s.done, s.failed), 1, true), r.out)
      end
    end
  end },

  { "command output shows in the text report", function()
    local p = exec_policy { "/bin/echo", "hello from the command" }
    local r = E.run(base("--allow-exec", p))
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("      output: hello from the command", 1, true), r.out)
    r = E.run(base("--allow-exec", "--output", "json", p))
    local _, by = E.json_lines(r.out)
    T.eq(by.action[1].result.output, "hello from the command\n")
  end },

  { "absent keys are absent in JSON, not empty strings", function()
    local p = exec_policy { "/bin/true" }
    local r = E.run(base("--dry-run", "--output", "json", p))
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(by.action[1].space, nil, "an action of finish has no space")
    T.eq(by.action[1].phone_number, nil)
    T.eq(by.space[1].space, "", "own numbers: \"\" as docs/cli.md says")
  end },

  { "Meta's tiers and the documented statuses are known: -v raises no false alarm", function()
    local r = E.run(base("-v", "--output", "json", "--spaces", SPACES, policy("tier-report")))
    T.eq(r.code, 0, r.err)
    local _, by = E.json_lines(r.out)
    T.eq(by.summary[1].unknown_values, nil, "no unknown value in the sample data")
    T.check(not r.err:find("is not one chatapp-run knows", 1, true), r.err)
    local chatapp = require "chatapp"
    T.eq(chatapp.MessagingLimitTier.TIER_2K, "TIER_2K")
    T.eq(chatapp.MessagingLimitTier.TIER_NOT_SET, "TIER_NOT_SET")
    T.eq(chatapp.Status.OFFLINE, "OFFLINE")
    local body = '{"Code":"OK","PhoneNumbers":[{"PhoneNumber":"1","MessagingLimitTier":"TIER_2K"},'
      .. '{"PhoneNumber":"2","MessagingLimitTier":"TIER_NOT_SET"}]}'
    local list = assert(chatapp.core.decode_phone_numbers(body, {}))
    T.eq(list[1].messaging_limit, 2000)
    T.eq(list[2].messaging_limit, nil)
  end },

  { "the README's sample output is the real output", function()
    local readme = assert(E.read(E.path("README.md")))
    local blocks = 0
    for block in readme:gmatch("```\n(%$ %./build/chatapp%-run [^\n]*\n.-)```") do
      blocks = blocks + 1
      local cmd, expected = block:match("^%$ %./build/chatapp%-run ([^\n]*)\n(.*)$")
      local dir = E.tmpdir()
      local line = ("cd %s && env -i PATH=%s HOME=%s NO_COLOR= CHATAPP_EMULATOR=%s %s --limiter process %s >%s 2>%s"):format(
        E.quote(E.root), E.quote(os.getenv("PATH") or "/usr/bin:/bin"), E.quote(dir), E.quote(E.emu_bin),
        E.quote(E.run_bin), cmd, E.quote(dir .. "/out"), E.quote(dir .. "/err"))
      local ok = os.execute(line)
      local out = E.read(dir .. "/out") or ""
      T.check(ok, cmd .. ": " .. (E.read(dir .. "/err") or ""))
      -- every README line in order; "..." stands for any lines; the
      -- duration is the one thing that varies
      local real = {}
      for l in out:gmatch("([^\n]*)\n") do real[#real + 1] = (l:gsub(" in %d+%.%d s", " in 0.0 s")) end
      local i = 1
      local skipping = false
      for want in expected:gmatch("([^\n]*)\n") do
        if want:match("^%s*%.%.%.$") then
          skipping = true
        else
          if skipping then
            while real[i] and real[i] ~= want do i = i + 1 end
            skipping = false
          end
          T.eq(real[i], want, ("README, $ chatapp-run %s, line %d; the real output:\n%s"):format(cmd, i, out))
          i = i + 1
        end
      end
      if not skipping then T.eq(#real, i - 1, "README shows the whole output of: " .. cmd .. "\n" .. out) end
    end
    T.check(blocks >= 2, "the README's sample blocks were found: " .. blocks)
  end },
}

emu:stop()
E.cleanup()
return T.done()
