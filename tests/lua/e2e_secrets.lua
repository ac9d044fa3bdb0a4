-- Secrets never leak (docs/internals/testing.md, Secrets): canary AccessKey secrets and STS
-- tokens go through every main path at full verbosity, failures included,
-- and must appear in no output, log, recording, metrics file or webhook.
-- Also: which credential source won is named by -v, never the secret.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local CANARY_SECRET = "CANARY-SECRET-9b1e4f7a"
local CANARY_STS_SECRET = "CANARY-STS+SECRET/77aa="
local CANARY_TOKEN = "CANARY-TOKEN+c3d2/e1=="
local CANARIES = { CANARY_SECRET, CANARY_STS_SECRET, CANARY_TOKEN }

local dir = E.tmpdir()
local keys = E.write(dir .. "/keys.json", assert(chatapp.json.encode {
  keys = {
    { access_key_id = "LTAIcanaryKey0001", access_key_secret = CANARY_SECRET, account = "2000000000000001" },
    { access_key_id = "STS.canaryTemporary", access_key_secret = CANARY_STS_SECRET,
      security_token = CANARY_TOKEN, account = "2000000000000001" },
  },
}))
local emu = E.emulator { "--keys", keys }
local SPACES = E.path("scripts/spaces/sample-spaces.json")
local policy = E.path("scripts/policies/quality-alert.lua")
local drift = E.path("scripts/policies/webhook-drift.lua")

local checked = {}
local function no_canary(where, text, may_be_empty)
  -- a file that was never written holds no canary: that is no pass
  if may_be_empty then
    text = text or ""
  elseif not T.check(type(text) == "string" and #text > 0, where .. ": there is something to check") then
    text = ""
  end
  for _, c in ipairs(CANARIES) do
    -- the secret itself, and its percent-encoded forms
    local once = c:gsub("[^%w%-_.~]", function(ch) return ("%%%02X"):format(ch:byte()) end)
    local twice = once:gsub("%%", "%%25")
    for _, form in ipairs { c, once, twice } do
      T.check(not text:find(form, 1, true), ("%s contains a canary (%s)"):format(where, form))
    end
  end
  checked[#checked + 1] = where
end

local ak_env = { ALIBABA_CLOUD_ACCESS_KEY_ID = "LTAIcanaryKey0001", ALIBABA_CLOUD_ACCESS_KEY_SECRET = CANARY_SECRET }
local sts_env = { ALIBABA_CLOUD_ACCESS_KEY_ID = "STS.canaryTemporary",
                  ALIBABA_CLOUD_ACCESS_KEY_SECRET = CANARY_STS_SECRET,
                  ALIBABA_CLOUD_SECURITY_TOKEN = CANARY_TOKEN }

local function check_run(name, r)
  no_canary(name .. " stdout", r.out, true)
  no_canary(name .. " stderr", r.err, true)
  T.check(#r.out + #r.err > 0, name .. ": the run printed something to check")
end

local function run(name, args, env, expect)
  local full = { "--endpoint", emu.url, "-vvv" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  local r = E.run(full, env)
  if expect then T.eq(r.code, expect, name .. ": " .. r.err) end
  check_run(name, r)
  return r
end

T.cases {
  { "success paths, both signatures, STS, record, metrics, webhooks", function()
    local hook = emu.url .. "/_emulator/sink/ops"
    for _, sig in ipairs { "v3", "v2" } do
      for name, env in pairs { ak = ak_env, sts = sts_env } do
        local e = {}
        for k, v in pairs(env) do e[k] = v end
        e.OPS_HOOK = hook
        local rec, met = dir .. "/rec-" .. sig .. name, dir .. "/met-" .. sig .. name
        local r = run(sig .. "/" .. name, { "--signature-version", sig, "--record", rec, "--metrics", met,
          "--output", "json", "--spaces", SPACES, policy }, e, 0)
        T.check(r.err:find("canonical request", 1, true) or r.err:find("string to sign", 1, true),
          "-vvv shows the signing intermediates")
        no_canary("recording", E.read(rec))
        no_canary("metrics", E.read(met))
      end
    end
    T.check(#emu:deliveries() > 0, "webhooks were sent")
    no_canary("webhook deliveries", assert(chatapp.json.encode(emu:deliveries())))
  end },

  { "the state file and a watcher's /metrics hold no secret", function()
    for name, env in pairs { ak = ak_env, sts = sts_env } do
      local state = dir .. "/state-" .. name .. ".db"
      local e = {}
      for k, v in pairs(env) do e[k] = v end
      e.OPS_HOOK = emu.url .. "/_emulator/sink/ops"
      -- an outbox entry that stays pending (a webhook to a dead port)
      local pending = E.policy [[
        return require("chatapp").policy { name = "dead-hook", where = { quality_rating = "RED" },
          decide = function(n, plan) plan:webhook { url = "http://127.0.0.1:9/x", attempts = 1 } end }
      ]]
      run("state/" .. name, { "--state", state, "--spaces", SPACES, policy, pending }, e)
      local file = E.read(state)
      no_canary("state file (" .. name .. ")", file)
      T.check(file:find("dead-hook", 1, true), "the state file holds the outbox entry")
      local full = { "--endpoint", emu.url, "--limiter", "process", "-vvv", "--every", "1s", "--listen",
                     "127.0.0.1:0", "--state", state, "--spaces", SPACES, policy }
      local p = E.start(full, e)
      T.check(p.wait_err("cycle 1", 15000), "the watcher ran a cycle")
      local url = p.err():match("(http://127%.0%.0%.1:%d+)")
      local http = assert(chatapp.core.http_client { timeout_ms = 5000, max_attempts = 1 })
      local res = url and http:batch { { url = url .. "/metrics", method = "GET" } } or {}
      no_canary("/metrics (" .. name .. ")", res[1] and res[1].body)
      p.kill("TERM")
      T.eq(p.wait(20000), 0, "the watcher stops")
      no_canary("watcher stderr (" .. name .. ")", p.err())
      no_canary("watcher stdout (" .. name .. ")", p.out(), true)
    end
  end },

  { "failure paths", function()
    -- a wrong secret: SignatureDoesNotMatch (the server's string to sign is shown)
    local wrong = { ALIBABA_CLOUD_ACCESS_KEY_ID = "LTAIcanaryKey0001",
                    ALIBABA_CLOUD_ACCESS_KEY_SECRET = CANARY_SECRET .. "x" }
    CANARIES[#CANARIES + 1] = CANARY_SECRET .. "x"
    local r = run("bad signature", { policy }, wrong, 1)
    T.check(r.err:find("SignatureDoesNotMatch", 1, true), r.err)
    -- throttling with retries, then a dead endpoint
    emu:fault { kind = "error", code = "Throttling.User", next = 2 }
    run("throttled", { policy }, sts_env, 0)
    local dead = E.run({ "--endpoint", "http://127.0.0.1:1", "-vvv", policy }, sts_env)
    T.eq(dead.code, 1)
    check_run("network error", dead)
    -- writes failing with an unknown outcome
    emu:fault { kind = "error", code = "InternalError", op = "UpdatePhoneWebhook" }
    run("write failure", { "--spaces", SPACES, drift }, sts_env, 1)
    emu:clear_faults()
    -- a policy that fails and one that tries to read the secret
    local p = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "nosy", filter = function(n)
  print("token:", os.getenv("ALIBABA_CLOUD_SECURITY_TOKEN"))
end }]])
    r = run("policy error", { "--spaces", SPACES, p }, sts_env, 1)
    T.check(r.err:find("policies cannot read credentials", 1, true), r.err)
    run("dry run", { "--dry-run", "--spaces", SPACES, drift }, sts_env, 0)
    run("check", { "--check", policy }, sts_env, 0)
  end },

  { "credential files: the source is named, the secret never", function()
    local home = E.tmpdir()
    os.execute("mkdir -p " .. E.quote(home .. "/.alibabacloud"))
    local creds = E.write(home .. "/.alibabacloud/credentials", ([[
[default]
type = sts
access_key_id = STS.canaryTemporary
access_key_secret = %s
security_token = %s
]]):format(CANARY_STS_SECRET, CANARY_TOKEN))
    os.execute("chmod 600 " .. E.quote(creds))
    local env = { HOME = home, ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
    local r = run("INI file", { "-v", policy }, env, 0)
    T.check(r.err:find("section [default] (type sts) of " .. creds, 1, true), r.err)
    -- (an unprotected file is refused: reliability/F2 checks that, for
    -- every mode, link and owner; the file stays 0644 for what follows)
    os.execute("chmod 644 " .. E.quote(creds))
    os.execute("mkdir -p " .. E.quote(home .. "/.aliyun"))
    local cfg = E.write(home .. "/.aliyun/config.json", assert(chatapp.json.encode {
      current = "main",
      profiles = {
        { name = "main", mode = "StsToken", access_key_id = "STS.canaryTemporary",
          access_key_secret = CANARY_STS_SECRET, sts_token = CANARY_TOKEN, region_id = "ap-southeast-1" },
        { name = "role", mode = "RamRoleArn", access_key_id = "LTAIcanaryKey0001",
          access_key_secret = CANARY_SECRET, ram_role_arn = "acs:ram::1:role/x" },
      },
    }))
    os.execute("chmod 600 " .. E.quote(cfg))
    r = run("aliyun profile", { "-v", policy }, env, 0)
    T.check(r.err:find("profile 'main' (mode StsToken) of " .. cfg, 1, true), r.err)
    r = run("unsupported mode", { "--profile", "role", policy }, env, 2)
    T.check(r.err:find("RamRoleArn", 1, true), r.err)
    os.execute("chmod 600 " .. E.quote(creds))
    r = run("missing profile", { "--profile", "nope", policy }, env, 2)
    T.check(r.err:find("nope", 1, true), r.err)
  end },

  { "exec children get no secret, and their output is redacted", function()
    -- a copy of the token under another name is scrubbed too
    local secret_file = E.write(dir .. "/secret.txt", "the secret is " .. CANARY_STS_SECRET .. "\n")
    local e = { MY_TOKEN_COPY = CANARY_TOKEN, CANARY_FILE = secret_file, ALICLOUD_SECRET_KEY = CANARY_SECRET }
    for k, v in pairs(sts_env) do e[k] = v end
    local p = E.policy([[
local chatapp = require "chatapp"
local file = os.getenv("CANARY_FILE")
return chatapp.policy { name = "env", where = { status = chatapp.Status.CONNECTED },
  decide = function(n, plan)
    plan:exec { argv = { "/usr/bin/printenv" } }
    plan:exec { argv = { "/bin/cat", file } }
  end }]])
    local rec = dir .. "/rec-exec"
    local r = run("exec printenv", { "--allow-exec", "--output", "json", "--record", rec, "--spaces", SPACES, p },
      e, 0)
    T.check(r.out:find("PATH=", 1, true), "printenv ran: " .. r.out:sub(1, 300))
    for _, name in ipairs { "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN", "MY_TOKEN_COPY",
                            "ALICLOUD_SECRET_KEY" } do
      T.check(not r.out:find(name .. "=", 1, true), name .. " reached the exec child")
    end
    T.check(r.out:find("the secret is <redacted>", 1, true), "exec output is redacted: " .. r.out:sub(1, 300))
    no_canary("exec recording", E.read(rec))
    -- the same in the text report
    run("exec printenv, text", { "--allow-exec", "--output", "text", "--spaces", SPACES, p }, e, 0)
  end },

  { "a server echoing the secret and the token: redacted in every sink", function()
    local echo = "token " .. CANARY_TOKEN .. " secret " .. CANARY_STS_SECRET
    for _, out in ipairs { "json", "text" } do
      emu:fault { kind = "error", code = "Forbidden.Echo", status = 403, message = echo }
      local rec, met = dir .. "/rec-echo-" .. out, dir .. "/met-echo-" .. out
      local r = run("echo " .. out, { "--output", out, "--record", rec, "--metrics", met, "--spaces", SPACES, policy },
        sts_env, 1)
      emu:clear_faults()
      T.check(r.out:find("Forbidden.Echo", 1, true) or r.err:find("Forbidden.Echo", 1, true), r.out .. r.err)
      T.check((r.out .. r.err):find("token <redacted> secret <redacted>", 1, true),
        "the echo reached the report, redacted: " .. r.out .. r.err)
      local recorded = E.read(rec)
      no_canary("echo recording " .. out, recorded)
      T.check(recorded and recorded:find("<redacted>", 1, true), "the recording holds the redacted echo")
      no_canary("echo metrics " .. out, E.read(met))
    end
    -- credentials from a file (no secret in the environment): the same
    local home = E.tmpdir()
    os.execute("mkdir -p " .. E.quote(home .. "/.alibabacloud"))
    local creds = E.write(home .. "/.alibabacloud/credentials", ([[
[default]
type = sts
access_key_id = STS.canaryTemporary
access_key_secret = %s
security_token = %s
]]):format(CANARY_STS_SECRET, CANARY_TOKEN))
    os.execute("chmod 600 " .. E.quote(creds))
    local env = { HOME = home, ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
    emu:fault { kind = "error", code = "Forbidden.Echo", status = 403, message = echo }
    local rec = dir .. "/rec-echo-file"
    local r = run("echo, file credentials", { "--output", "json", "--record", rec, "--spaces", SPACES, policy }, env, 1)
    emu:clear_faults()
    T.check(r.out:find("token <redacted> secret <redacted>", 1, true), "redacted in the JSON report: " .. r.out)
    no_canary("echo recording, file credentials", E.read(rec))
  end },

  { "one list of secret variables: the sandbox, exec and redaction share it", function()
    local names = chatapp.core.secret_env_names()
    T.eq(#names, 10, "ten secret variables")
    local set = {}
    for _, n in ipairs(names) do set[n] = true end
    for _, n in ipairs { "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN", "SECURITY_TOKEN",
                         "ACCESS_KEY_SECRET", "ALICLOUD_SECRET_KEY", "CHATAPP_REDIS_PASSWORD" } do
      T.check(set[n], n .. " is a secret variable")
    end
    T.check(not set.ALIBABA_CLOUD_ACCESS_KEY_ID, "an AccessKey id is not a secret")
    -- every name is refused to policies, and its value is redacted and
    -- kept from exec children
    local env, src = {}, { "local chatapp = require 'chatapp'", "local refused = {}" }
    for i, n in ipairs(names) do
      env[n] = sts_env[n] or ("CANARY-VAR-%02d-secret"):format(i) -- the chain takes the first names
      src[#src + 1] = ("refused[#refused + 1] = not pcall(os.getenv, %q) or nil"):format(n)
    end
    src[#src + 1] = [[
return chatapp.policy { name = "vars", where = { status = chatapp.Status.CONNECTED },
  decide = function(n, plan)
    plan:log("refused " .. #refused)
    plan:exec { argv = { "/usr/bin/printenv" } }
  end }]]
    env.ALIBABA_CLOUD_ACCESS_KEY_ID = sts_env.ALIBABA_CLOUD_ACCESS_KEY_ID
    local r = run("every secret variable", { "--allow-exec", "--output", "json", "--spaces", SPACES,
      E.policy(table.concat(src, "\n")) }, env)
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("refused " .. #names, 1, true) or r.err:find("refused " .. #names, 1, true),
      "the sandbox refuses all " .. #names .. ": " .. r.out:sub(1, 400) .. r.err)
    T.check(r.out:find("PATH=", 1, true), "printenv ran")
    for i, n in ipairs(names) do
      T.check(not r.out:find(n .. "=", 1, true), n .. " reached the exec child")
      T.check(not (r.out .. r.err):find(("CANARY-VAR-%02d"):format(i), 1, true), n .. "'s value leaked")
    end
    -- core.redact and core.redacting in a script's own state
    local script = E.write(dir .. "/redact.lua", [[
local core = require("chatapp").core
local w = core.redacting(io.stdout)
assert(w:write("a ", os.getenv("SECURITY_TOKEN"), " b", 1, "\n") == w)
assert(w:flush())
io.stdout:write(core.redact("x=" .. os.getenv("SECURITY_TOKEN") .. ";"), "\n")
io.stdout:write(core.redact("nothing secret"), "\n")
]])
    r = E.run({ "--lua", script }, { SECURITY_TOKEN = CANARY_TOKEN })
    T.eq(r.code, 0, r.err)
    T.eq(r.out, "a <redacted> b1\nx=<redacted>;\nnothing secret\n")
    -- a script that raises with a secret in its message: stderr redacted
    local raising = E.write(dir .. "/raise.lua", 'error("token " .. os.getenv("SECURITY_TOKEN"))\n')
    r = E.run({ "--lua", raising }, { SECURITY_TOKEN = CANARY_TOKEN })
    T.eq(r.code, 1, r.err)
    T.check(r.err:find("token <redacted>", 1, true), r.err)
    no_canary("a raising script's stderr", r.err)
  end },

  { "--emulator starts its emulator without the secret variables", function()
    -- A stand-in emulator that writes down its environment, then runs the
    -- real one.
    local env_file = dir .. "/emulator-env"
    local wrapper = E.write(dir .. "/emulator-wrapper.sh", ("#!/bin/sh\nenv > %s\nexec %s \"$@\"\n")
      :format(E.quote(env_file), E.quote(E.emu_bin)))
    os.execute("chmod +x " .. E.quote(wrapper))
    local r = E.run({ "--emulator", policy }, {
      CHATAPP_EMULATOR = wrapper, ALIBABA_CLOUD_ACCESS_KEY_ID = "STS.canaryTemporary",
      ALIBABA_CLOUD_ACCESS_KEY_SECRET = CANARY_STS_SECRET, ALIBABA_CLOUD_SECURITY_TOKEN = CANARY_TOKEN,
      SECURITY_TOKEN = CANARY_TOKEN })
    T.eq(r.code, 0, r.err)
    local seen = E.read(env_file) or ""
    T.check(seen:find("PATH=", 1, true), "the wrapper ran and wrote its environment")
    T.check(seen:find("ALIBABA_CLOUD_ACCESS_KEY_ID=STS.canaryTemporary", 1, true), "non-secret variables pass")
    no_canary("the emulator's environment", seen)
    T.check(not seen:find("SECURITY_TOKEN=", 1, true), "no token variable at all")
  end },

  { "the emulator's log holds no secret either", function()
    no_canary("emulator log", E.read(emu.log))
    T.check(#checked >= 30, "checked " .. #checked .. " outputs")
  end },
}

emu:stop()
E.cleanup()
return T.done()
