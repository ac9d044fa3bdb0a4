-- Role credentials end to end against chatapp-emulator (docs/credentials.md):
-- a RAM role assumed from a profile, the OIDC role of ACK RRSA, the ECS
-- instance role through the metadata service, the credentials URI, the
-- chain's order (the first source that yields wins and is named), malformed
-- answers and timeouts, a run that outlives three credential lifetimes with
-- one refresh per expiry and never two at once, and canaries: role-derived
-- secrets and tokens and the OIDC token reach no output, log, recording,
-- error or exec child.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local ROLE = "acs:ram::1000000000000001:role/chatapp-test"
local OIDC_PROVIDER = "acs:ram::1000000000000001:oidc-provider/ack-test"
local OIDC_TOKEN = "CANARY-OIDC-eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.c2ln"
local SPACES = E.path("scripts/spaces/sample-spaces.json")
local policy = E.path("scripts/policies/quality-alert.lua")

local dir = E.tmpdir()
local mdfile = dir .. "/md-port"
local emu = E.emulator { "--oidc-token", OIDC_TOKEN, "--metadata-port", "0", "--metadata-port-file", mdfile }
local md_url = "http://127.0.0.1:" .. assert(tonumber((E.read(mdfile) or ""):match("%d+")), "metadata port")

-- No credentials from the environment or home unless a case gives them;
-- the metadata service is the emulator's or none.
local function env_with(t)
  local e = { ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false,
              CHATAPP_ECS_METADATA_URL = "http://127.0.0.1:1" }
  for k, v in pairs(t or {}) do e[k] = v end
  return e
end

local function run(args, env)
  local full = { "--endpoint", emu.url, "--spaces", SPACES, "--output", "json" }
  for _, a in ipairs(args) do full[#full + 1] = a end
  full[#full + 1] = policy
  return E.run(full, env)
end

local function summary(r)
  local last
  for line in r.out:gmatch("[^\n]+") do
    if line:sub(1, 1) == "{" then last = line end
  end
  return last and chatapp.json.decode(last) or {}
end

local function cred_stats(name)
  local s = emu:stats()
  return (s.credentials or {})[name] or {}
end

-- A home with ~/.aliyun/config.json holding the given profiles.
local function home_with(profiles, current)
  local home = E.tmpdir()
  os.execute("mkdir -p " .. E.quote(home .. "/.aliyun") .. " && chmod 700 " .. E.quote(home .. "/.aliyun"))
  local p = E.write(home .. "/.aliyun/config.json",
    assert(chatapp.json.encode { current = current or profiles[1].name, profiles = profiles }))
  os.execute("chmod 600 " .. E.quote(p))
  return home
end

local role_profile = { name = "role", mode = "RamRoleArn", access_key_id = E.KEY_ID,
                       access_key_secret = E.KEY_SECRET, ram_role_arn = ROLE, ram_session_name = "e2e" }

local function token_file(text)
  local p = E.write(E.tmpdir() .. "/token", text or OIDC_TOKEN)
  return p
end

local oidc_env = { ALIBABA_CLOUD_ROLE_ARN = ROLE, ALIBABA_CLOUD_OIDC_PROVIDER_ARN = OIDC_PROVIDER }

T.cases {
  { "a RAM role assumed from a profile: summary and -v name it and its expiry", function()
    emu:reset()
    local home = home_with { role_profile }
    local r = run({ "-v", "--sts-endpoint", emu.url }, env_with { HOME = home })
    T.eq(r.code, 0, r.err)
    local s = summary(r)
    T.check(type(s.credentials) == "string" and s.credentials:find("mode RamRoleArn", 1, true), s.credentials)
    T.check(s.credentials:find("RAM role " .. ROLE .. " by STS AssumeRole at " .. emu.url, 1, true), s.credentials)
    T.check(s.credentials:find("expires %d%d%d%d%-%d%d%-%d%dT"), s.credentials)
    T.check(r.err:find("credentials: profile 'role' (mode RamRoleArn)", 1, true), r.err)
    T.eq(cred_stats("AssumeRole").ok, 1, "one AssumeRole")
    T.eq(cred_stats("AssumeRole").rejected or 0, 0, "its signature was accepted")
  end },

  { "a chained role (ChainableRamRoleArn): the outer role signed with the inner one's key", function()
    emu:reset()
    local home = home_with({ role_profile, { name = "chain", mode = "ChainableRamRoleArn",
      source_profile = "role", ram_role_arn = ROLE, ram_session_name = "chained" } }, "chain")
    local r = run({ "--sts-endpoint", emu.url }, env_with { HOME = home })
    T.eq(r.code, 0, r.err)
    T.eq(cred_stats("AssumeRole").ok, 2, "two AssumeRole: inner, outer")
  end },

  { "the OIDC role (ACK RRSA) through ALIBABA_CLOUD_STS_ENDPOINT", function()
    emu:reset()
    local e = env_with(oidc_env)
    e.ALIBABA_CLOUD_OIDC_TOKEN_FILE = token_file()
    e.ALIBABA_CLOUD_STS_ENDPOINT = emu.url
    local r = run({ "-vvv" }, e)
    T.eq(r.code, 0, r.err)
    T.check(summary(r).credentials:find("OIDC role " .. ROLE, 1, true), summary(r).credentials)
    T.eq(cred_stats("AssumeRoleWithOIDC").ok, 1)
    T.check(not (r.out .. r.err):find(OIDC_TOKEN, 1, true), "the OIDC token is not shown")
    -- a wrong token: exit 2, the provider and STS's code named
    e.ALIBABA_CLOUD_OIDC_TOKEN_FILE = token_file("not-the-token")
    r = run({}, e)
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("AuthenticationFail.OIDCToken.Invalid", 1, true), r.err)
    T.check(r.err:find("OIDC role", 1, true), r.err)
  end },

  { "the ECS instance role when nothing else is configured (IMDSv2 token)", function()
    emu:reset()
    local r = run({}, env_with { CHATAPP_ECS_METADATA_URL = md_url })
    T.eq(r.code, 0, r.err)
    local c = summary(r).credentials
    T.check(c and c:find("ECS instance role 'chatapp-ecs-role' from the metadata service", 1, true), c)
    T.eq(cred_stats("metadata.token").ok, 1)
    T.eq(cred_stats("metadata.credentials").ok, 1)
  end },

  { "the credentials URI; the chain's order: environment, OIDC, profile, ECS, URI", function()
    emu:reset()
    local uri = emu.url .. "/_emulator/credentials"
    local r = run({}, env_with { ALIBABA_CLOUD_ECS_METADATA_DISABLED = "true", ALIBABA_CLOUD_CREDENTIALS_URI = uri })
    T.eq(r.code, 0, r.err)
    T.check(summary(r).credentials:find("ALIBABA_CLOUD_CREDENTIALS_URI: credentials URI", 1, true),
      summary(r).credentials)
    -- ECS answers: it comes before the URI
    r = run({}, env_with { CHATAPP_ECS_METADATA_URL = md_url, ALIBABA_CLOUD_CREDENTIALS_URI = uri })
    T.eq(r.code, 0, r.err)
    T.check(summary(r).credentials:find("ECS instance role", 1, true), summary(r).credentials)
    -- a profile comes before ECS
    local home = home_with { role_profile }
    r = run({ "--sts-endpoint", emu.url }, env_with { HOME = home, CHATAPP_ECS_METADATA_URL = md_url })
    T.check(summary(r).credentials:find("mode RamRoleArn", 1, true), summary(r).credentials)
    -- OIDC comes before the profile
    local e = env_with(oidc_env)
    e.HOME = home
    e.ALIBABA_CLOUD_OIDC_TOKEN_FILE = token_file()
    e.ALIBABA_CLOUD_STS_ENDPOINT = emu.url
    r = run({}, e)
    T.check(summary(r).credentials:find("OIDC role", 1, true), summary(r).credentials)
    -- the environment comes first
    e.ALIBABA_CLOUD_ACCESS_KEY_ID = E.KEY_ID
    e.ALIBABA_CLOUD_ACCESS_KEY_SECRET = E.KEY_SECRET
    r = run({}, e)
    T.eq(r.code, 0, r.err)
    T.check(summary(r).credentials:find("environment (ALIBABA_CLOUD_ACCESS_KEY_ID", 1, true),
      summary(r).credentials)
  end },

  { "malformed answers and timeouts: exit 2, the provider and the cause named", function()
    local uri = emu.url .. "/_emulator/credentials"
    local e = env_with { ALIBABA_CLOUD_ECS_METADATA_DISABLED = "true", ALIBABA_CLOUD_CREDENTIALS_URI = uri }
    emu:fault { kind = "malformed", op = "credentials", next = 5 }
    local r = run({}, e)
    emu:clear_faults()
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("credentials URI", 1, true) and r.err:find("not JSON", 1, true), r.err)
    emu:fault { kind = "latency", op = "AssumeRole", ms = 2500 }
    local home = home_with { role_profile }
    r = run({ "--sts-endpoint", emu.url, "--timeout-ms", "800", "--max-attempts", "1" }, env_with { HOME = home })
    emu:clear_faults()
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("STS AssumeRole at", 1, true), r.err)
    T.check(r.err:lower():find("timeout", 1, true) or r.err:find("timed out", 1, true), r.err)
    -- the metadata service answering garbage
    emu:fault { kind = "malformed", op = "metadata.credentials", next = 5 }
    r = run({}, env_with { CHATAPP_ECS_METADATA_URL = md_url })
    emu:clear_faults()
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("metadata service", 1, true), r.err)
  end },

  { "keys the server expires early: the call refreshes and is re-signed, no failure", function()
    emu:reset()
    local home = home_with { role_profile }
    local pol = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "noop", decide = function() end }]])
    -- one run, two batches of calls: the keys expire between them
    local script = E.write(E.tmpdir() .. "/twice.lua", ([[
local chatapp = require "chatapp"
local c = assert(chatapp.client { endpoint = %q, sts_endpoint = %q, limiter = "process" })
local function call()
  local res, errs = c:batch { { operation = "QueryChatappPhoneNumbers", params = { CustSpaceId = "C20230220000002" } } }
  return res[1] ~= nil, errs[1] and tostring(errs[1].message or errs[1])
end
local ok1, e1 = call()
local h = assert(chatapp.core.http_client { timeout_ms = 5000, max_attempts = 1 })
h:batch { { url = %q, method = "POST" } }
local ok2, e2 = call()
io.write(tostring(ok1), " ", tostring(ok2), " ", tostring(e1), " ", tostring(e2), "\n")
]]):format(emu.url, emu.url, emu.url .. "/_emulator/credentials/expire"))
    local r = E.run({ "--lua", script }, env_with { HOME = home }, { no_limiter = true })
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("^true true"), "both calls succeed: " .. r.out .. r.err)
    T.eq(cred_stats("AssumeRole").ok, 2, "the second call refreshed once")
    local expired = 0
    for _, l in ipairs(emu:log_lines()) do
      if tostring(l.code):find("InvalidSecurityToken.Expired", 1, true) then expired = expired + 1 end
    end
    T.eq(expired, 1, "one answer said Expired, then the retry passed")
  end },

  { "a watcher outlives three credential lifetimes: no call fails from expiry, one refresh per expiry", function()
    local short = E.emulator { "--sts-lifetime", "4" }
    local home = home_with { role_profile }
    local p = E.start({ "--endpoint", short.url, "--limiter", "process", "--sts-endpoint", short.url,
      "--every", "1s", "--state", E.tmpdir() .. "/state.db", "--spaces", SPACES, policy },
      env_with { HOME = home, CHATAPP_TEST_CRED_STALE_S = "2" })
    local t0 = os.time()
    E.sleep_ms(14000)
    os.execute("kill -TERM " .. p.pid)
    E.wait_for(function() return not E.alive(p.pid) end, 10000)
    local elapsed = os.time() - t0
    local expired, cams = 0, 0
    for _, l in ipairs(short:log_lines()) do
      if l.endpoint == nil or l.endpoint == "cams" then
        cams = cams + 1
        if tostring(l.code):find("Expired", 1, true) then expired = expired + 1 end
      end
    end
    local ar = (short:stats().credentials or {}).AssumeRole or {}
    io.stderr:write(("three lifetimes: %d s, %d CAMS calls, %d expired, %s AssumeRole, in_flight_max %s\n")
      :format(elapsed, cams, expired, tostring(ar.ok), tostring(ar.in_flight_max)))
    T.check(cams >= 10, "the watcher made calls: " .. cams .. "\n" .. p.err())
    T.eq(expired, 0, "no call used an expired key")
    -- a refresh every lifetime - window = 2 s: about elapsed / 2, never many more
    T.check((ar.ok or 0) >= 3 and (ar.ok or 0) <= elapsed / 2 + 3, "refreshes: " .. tostring(ar.ok))
    T.eq(ar.in_flight_max, 1, "never two refreshes at once")
    T.check(not p.err():find("ECREDENTIALS", 1, true), p.err())
    short:stop()
  end },

  { "expired and not refreshed: calls fail naming the provider; the watcher goes on and recovers", function()
    local short = E.emulator { "--sts-lifetime", "3" }
    local home = home_with { role_profile }
    local p = E.start({ "--endpoint", short.url, "--limiter", "process", "--sts-endpoint", short.url, "-v",
      "--every", "1s", "--state", E.tmpdir() .. "/state.db", "--spaces", SPACES, policy },
      env_with { HOME = home, CHATAPP_TEST_CRED_STALE_S = "1" })
    T.check(p.wait_err("cycle 1: ok", 15000), "the first cycle: " .. p.err())
    short:fault { kind = "error", op = "AssumeRole", code = "InternalError", status = 500 }
    local failed = E.wait_for(function() return p.err():find("could not be refreshed", 1, true) end, 15000)
    T.check(failed, "the calls fail once the key expired: " .. p.err())
    local err = p.err()
    T.check(err:find("RAM role " .. ROLE, 1, true), "the provider is named: " .. err)
    T.check(err:find("InternalError", 1, true), "the cause is named: " .. err)
    local before = #err
    short:clear_faults()
    local back = E.wait_for(function()
      local tail = p.err():sub(before + 1)
      return tail:find("ok again after", 1, true) or tail:find("cycle %d+: ok")
    end, 40000)
    T.check(back, "the watcher recovers: " .. p.err():sub(before + 1))
    T.check(E.alive(p.pid), "the watcher is still running")
    os.execute("kill -TERM " .. p.pid)
    E.wait_for(function() return not E.alive(p.pid) end, 10000)
    short:stop()
  end },

  { "canaries: role-derived secrets and the OIDC token reach no output, log, recording or exec child", function()
    local CANARY_SECRET = "CANARY-ROLE-SECRET/9f8e7d"
    local CANARY_TOKEN = "CANARY-ROLE-TOKEN+a1b2c3=="
    local keys = E.write(dir .. "/keys.json", assert(chatapp.json.encode {
      keys = { { access_key_id = "STS.canaryRoleKey", access_key_secret = CANARY_SECRET,
                 security_token = CANARY_TOKEN, account = "2000000000000001" } } }))
    local cemu = E.emulator { "--keys", keys }
    -- the external command provider hands out the canary key
    local answer = E.write(dir .. "/answer.json", assert(chatapp.json.encode {
      mode = "StsToken", access_key_id = "STS.canaryRoleKey", access_key_secret = CANARY_SECRET,
      sts_token = CANARY_TOKEN, expiration = "2099-01-01T00:00:00Z" }))
    local home = home_with { { name = "ext", mode = "External", process_command = "/bin/cat " .. answer } }
    local pol = E.policy([[
local chatapp = require "chatapp"
return chatapp.policy { name = "env", where = { status = chatapp.Status.CONNECTED },
  decide = function(n, plan) plan:exec { argv = { "/usr/bin/printenv" } } end }]])
    local rec = dir .. "/rec"
    -- not allowed: refused, the command not run
    local r = E.run({ "--endpoint", cemu.url, "--spaces", SPACES, pol }, env_with { HOME = home })
    T.eq(r.code, 2, r.err)
    T.check(r.err:find("allow_credential_process", 1, true), r.err)
    r = E.run({ "--endpoint", cemu.url, "-vvv", "--allow-credential-process", "--allow-exec", "--output", "json",
      "--record", rec, "--spaces", SPACES, pol }, env_with { HOME = home, CANARY_COPY = CANARY_TOKEN })
    T.eq(r.code, 0, r.err)
    T.check(r.out:find("PATH=", 1, true), "printenv ran")
    local texts = { stdout = r.out, stderr = r.err, recording = E.read(rec) or "",
                    ["emulator log"] = E.read(cemu.log) or "" }
    for where, text in pairs(texts) do
      for _, c in ipairs { CANARY_SECRET, CANARY_TOKEN } do
        local once = c:gsub("[^%w%-_.~]", function(ch) return ("%%%02X"):format(ch:byte()) end)
        for _, form in ipairs { c, once, (once:gsub("%%", "%%25")) } do
          T.check(not text:find(form, 1, true), where .. " holds a canary: " .. form)
        end
      end
    end
    T.check(#texts.recording > 0, "a recording was written")
    cemu:stop()
    -- the OIDC token: -vvv and a failing run
    local e = env_with(oidc_env)
    e.ALIBABA_CLOUD_OIDC_TOKEN_FILE = token_file()
    e.ALIBABA_CLOUD_STS_ENDPOINT = emu.url
    emu:fault { kind = "error", op = "AssumeRoleWithOIDC", code = "InternalError", status = 500, next = 5 }
    r = run({ "-vvv" }, e)
    emu:clear_faults()
    T.eq(r.code, 2, r.err)
    T.check(not (r.out .. r.err):find(OIDC_TOKEN, 1, true), "the OIDC token is not shown: " .. r.err)
    T.check(r.err:find("InternalError", 1, true), r.err)
  end },
}

emu:stop()
E.cleanup()
T.done()
