-- ctest: timeout=240
-- F1. Canary secret and token in env or file; run A, B, C, E with debug
-- logging on.  Criterion: zero matches of either canary in stdout,
-- stderr, logs, state, journal, webhook bodies, or error buffers.
--
-- tests/lua/e2e_secrets.lua already runs the success paths, a throttle, a
-- wrong signature, a dead endpoint, a failed write, exec children and a
-- server echoing the secret.  This case adds what it lacks, each run at
-- -vvv with --output json, --record, --metrics and a --state whose policy
-- sends webhooks (the outbox) to the emulator's sink, with the canaries
-- (an STS AccessKey secret and token, both with characters that get
-- percent-encoded) in the environment or in a 0600 credentials file, with
-- both signature versions (v2 puts the token in the query string):
--   A  the server's quota lowered (throttled answers, Retry-After waits);
--   B  every HTTP fault the emulator injects: latency past the attempt
--      timeout, reset, truncation, a dropped connection, a hang, an
--      oversize and a chunked body, a redirect to another port (with the
--      signed URL as the request), 5xx errors;
--   C  bad answers: malformed, non-UTF-8, deep JSON, a 502 HTML page;
--   E  the state and outbox: webhooks failing (500 from the sink: pending
--      and failed outbox entries), a watcher killed with SIGKILL mid-cycle
--      and the next run finishing its outbox, a state write that fails
--      (tests/shim/faultfs.c: the COMMIT's error message).
-- Checked after each run: stdout and stderr; the --record, --metrics and
-- state files and the state's journal and any other file beside them;
-- and, at the end, every webhook delivery the sink got (bodies and
-- headers) and the emulator's request log.  Each canary is searched as
-- is, percent-encoded and percent-encoded twice.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local SHIM = os.getenv("CHATAPP_FAULTFS") or (E.run_bin:match("^(.*)/[^/]*$") or ".") ..
  "/tests/shim/libchatapp_faultfs.so"
local ASAN = ((os.getenv("ASAN_OPTIONS") or "") .. ":verify_asan_link_order=0"):gsub("^:", "")

local KEY_ID = "STS.f1CanaryTemporary"
local SECRET = "F1-CANARY-SECRET+8e2/c4="
local TOKEN = "F1-CANARY-TOKEN/a9+f0e=="
local CANARIES = { SECRET, TOKEN }

local dir = E.tmpdir()
local keys = E.write(dir .. "/keys.json", assert(chatapp.json.encode {
  keys = { { access_key_id = KEY_ID, access_key_secret = SECRET, security_token = TOKEN,
             account = "2000000000000001" } },
}))
-- A high quota: the quota of case A is lowered by a fault rule, and the
-- other runs, back to back, are not to be throttled by their neighbours.
local emu = E.emulator { "--keys", keys, "--quota", "1000" }
local SPACES = E.path("scripts/spaces/sample-spaces.json")
local hook = emu.url .. "/_emulator/sink/f1"
-- F1_SINK: the sink's query (status=500, delay_ms=1500: docs/emulator.md)
local POLICY = E.policy(([[
local chatapp = require "chatapp"
local url = %q .. (os.getenv("F1_SINK") or "")
return chatapp.policy { name = "f1", where = { status = chatapp.Status.CONNECTED },
  decide = function(n, plan)
    plan:webhook { url = url, json = { n = n.phone_number, space = n.space_label }, attempts = 2,
                   timeout_ms = 2000 }
  end }]]):format(hook))

local env_creds = { ALIBABA_CLOUD_ACCESS_KEY_ID = KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET = SECRET,
                    ALIBABA_CLOUD_SECURITY_TOKEN = TOKEN }
local file_home = E.tmpdir()
os.execute("mkdir -p " .. E.quote(file_home .. "/.alibabacloud"))
local cred_file = E.write(file_home .. "/.alibabacloud/credentials",
  ("[default]\ntype = sts\naccess_key_id = %s\naccess_key_secret = %s\nsecurity_token = %s\n")
    :format(KEY_ID, SECRET, TOKEN))
os.execute("chmod 600 " .. E.quote(cred_file))
local file_creds = { HOME = file_home, ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }

local checked = 0
local function no_canary(where, text)
  text = text or ""
  for _, c in ipairs(CANARIES) do
    local once = c:gsub("[^%w%-_.~]", function(ch) return ("%%%02X"):format(ch:byte()) end)
    local twice = once:gsub("%%", "%%25")
    for _, form in ipairs { c, once, twice, once:lower() } do
      T.check(not text:find(form, 1, true), ("%s holds a canary (%s)"):format(where, form))
    end
  end
  checked = checked + 1
end

-- Every file in a folder (the state, its journal, recordings, metrics,
-- temporary files left).
local function files_in(d)
  local list = {}
  local p = io.popen("find " .. E.quote(d) .. " -type f 2>/dev/null")
  for f in p:lines() do list[#list + 1] = f end
  p:close()
  return list
end

local function check_dir(what, d)
  local n = 0
  for _, f in ipairs(files_in(d)) do
    no_canary(what .. " " .. f:match("[^/]*$"), E.read(f))
    n = n + 1
  end
  return n
end

local n_run = 0
-- One run: creds (env or file), signature version, extra args; returns r
-- and its folder.
local function run(what, creds, sig, extra, opts)
  n_run = n_run + 1
  local d = ("%s/run%d"):format(dir, n_run)
  os.execute("mkdir -p " .. E.quote(d))
  local args = { "--endpoint", emu.url, "-vvv", "--signature-version", sig, "--output", "json",
                 "--record", d .. "/rec.json", "--metrics", d .. "/met.prom", "--state", d .. "/state.db",
                 "--spaces", SPACES, "--timeout-ms", "1500", "--low-speed-time-s", "1", "--call-timeout-ms", "5000",
                 "--max-response-bytes", "1000000" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  args[#args + 1] = POLICY
  local env = {}
  for k, v in pairs(creds) do env[k] = v end
  for k, v in pairs(opts and opts.env or {}) do env[k] = v end
  local t0 = chatapp.core.monotonic()
  local r = E.run(args, env)
  if os.getenv("F1_TIMES") then
    print(("# %s: %.2f s"):format(what, chatapp.core.monotonic() - t0))
  end
  T.check(#r.err > 0, what .. ": -vvv logged something")
  no_canary(what .. " stdout", r.out)
  no_canary(what .. " stderr", r.err)
  check_dir(what, d)
  return r, d
end

local CREDS = { env = env_creds, file = file_creds }

-- A fault, in one credential source and signature version: the four
-- combinations take turns, so each fault kind runs once and every
-- combination meets several kinds (full: the first `full` combinations).
local COMBOS = { { "env", "v2" }, { "file", "v3" }, { "env", "v3" }, { "file", "v2" } }
local turn = 0
local function each(label, setup, extra, check, full)
  for i = 1, full or 1 do
    turn = turn + 1
    local cname, sig = table.unpack(COMBOS[full and i or ((turn - 1) % #COMBOS + 1)])
    emu:clear_faults()
    setup()
    local what = ("%s (%s, %s)"):format(label, cname, sig)
    local r = run(what, CREDS[cname], sig, extra)
    -- the fault was hit
    local rules = emu:control("GET", "faults").faults or {}
    for _, rule in ipairs(rules) do
      T.check((rule.fired or 0) > 0, what .. ": the " .. tostring(rule.kind) .. " fault fired")
    end
    if check then check(r, what) end
  end
  emu:clear_faults()
end

local function fault(rule) return function() emu:fault(rule) end end
local function faults(list) return function() for _, f in ipairs(list) do emu:fault(f) end end end

T.cases {
  { "A: throttled by the server, Retry-After waits", function()
    each("quota", faults {
      { kind = "error", code = "Throttling.User", next = 3, x_acs_retry_after = "300" },
      { kind = "quota", quota = 2, for_ms = 1500 },
    }, nil, function(r, what)
      T.check(r.err:find("Throttling", 1, true), what .. ": throttled: " .. r.err:sub(1, 300))
    end, 2)
  end },

  { "B: HTTP faults", function()
    local list = {
      { kind = "latency", ms = 2500, next = 2 },
      { kind = "reset", after_bytes = 20, next = 2 },
      { kind = "truncate", after_bytes = 30, next = 2 },
      { kind = "drop", next = 2 },
      { kind = "hang", next = 1 },
      { kind = "oversize", bytes = 5000000, next = 2 },
      { kind = "chunked", next = 2 },
      { kind = "redirect", location = "http://127.0.0.1:9/steal", next = 4 },
      { kind = "error", code = "InternalError", status = 500, next = 3 },
      { kind = "error", code = "ServiceUnavailable", status = 503, every = 2 },
    }
    for _, f in ipairs(list) do each("fault " .. f.kind, fault(f)) end
  end },

  { "C: bad answers", function()
    local deep = ("["):rep(2000) .. ("]"):rep(2000)
    for _, body in ipairs { "{\"Code\":\"OK\",\"Data\":[{\"PhoneNumber\":1e400}]", "\255\254{\"Code\":\"OK\"}",
                            deep, "<html>502 Bad Gateway</html>", "{\"Code\":\"OK\",\"Data\":\"x\"}", "" } do
      each("malformed " .. #body, fault { kind = "malformed", body = body, status = body:find("html") and 502 or 200,
        next = 4 })
    end
  end },

  { "E: the outbox with failing webhooks, a killed watcher, a failed state write", function()
    -- webhooks answered 500: failed entries (their errors are in the state)
    for i, c in ipairs(COMBOS) do
      local r = run(("sink 500 (%s, %s)"):format(c[1], c[2]), CREDS[c[1]], c[2], nil, { env = { F1_SINK = "?status=500" } })
      T.eq(r.code, 1, "the webhooks failed: " .. r.err:sub(1, 300))
      T.check(r.err:find("HTTP 500", 1, true), "the failure is reported: " .. r.err:sub(1, 300))
      T.check(i > 0)
    end
    for cname, creds in pairs(CREDS) do
      -- a watcher killed mid-cycle (webhooks slowed down so some are in
      -- flight), then a run that finishes the outbox
      n_run = n_run + 1
      local d = ("%s/run%d"):format(dir, n_run)
      os.execute("mkdir -p " .. E.quote(d))
      emu:clear_faults()
      local env = { F1_SINK = "?delay_ms=1500" }
      for k, v in pairs(creds) do env[k] = v end
      local p = E.start({ "--endpoint", emu.url, "-vvv", "--limiter", "process", "--every", "1s", "--state",
                          d .. "/state.db", "--spaces", SPACES, POLICY }, env)
      T.check(E.wait_for(function() return E.db_rows and (E.read(d .. "/state.db") or ""):find("f1", 1, true) end,
        15000), cname .. ": the watcher wrote its outbox")
      p.kill("KILL")
      p.wait(5000)
      no_canary("killed watcher stderr (" .. cname .. ")", p.err())
      no_canary("killed watcher stdout (" .. cname .. ")", p.out())
      check_dir("after kill -9 (" .. cname .. ")", d)
      -- (F1_SINK stays: the outbox resumes the webhooks with the variable)
      local r = E.run({ "--endpoint", emu.url, "-vvv", "--output", "json", "--state", d .. "/state.db",
                        "--spaces", SPACES, POLICY }, env)
      T.eq(r.code, 0, cname .. ": the next run finishes the outbox: " .. r.err:gsub("\n[^\n]*canonical[^\0]-x%-acs%-signature[^\n]*", ""):sub(-1500) .. r.out:sub(-600))
      no_canary("recovery stdout (" .. cname .. ")", r.out)
      no_canary("recovery stderr (" .. cname .. ")", r.err)
      check_dir("after recovery (" .. cname .. ")", d)
      -- a state write that fails: the COMMIT's error message
      local r2 = run("failed state write (" .. cname .. ")", creds, "v3", nil, {
        env = { LD_PRELOAD = SHIM, FAULTFS_PATH = "state.db-journal", FAULTFS_OP = "fdatasync", FAULTFS_NTH = "3",
                FAULTFS_ERRNO = "EIO", ASAN_OPTIONS = ASAN } })
      T.check(r2.code ~= 0 and r2.err:find("disk I/O error", 1, true),
        cname .. ": the state write failed and said so: " .. r2.err:sub(1, 300))
    end
  end },

  { "webhook bodies and the emulator's log", function()
    local deliveries = emu:deliveries()
    T.check(#deliveries > 0, "webhooks were delivered")
    no_canary("webhook deliveries", assert(chatapp.json.encode(deliveries)))
    no_canary("the emulator's request log", E.read(emu.log))
    print(("# F1: %d runs, %d outputs and files checked, %d webhook deliveries"):format(n_run, checked, #deliveries))
    T.check(checked >= 100, "checked " .. checked .. " outputs and files")
  end },
}

emu:stop()
E.cleanup()
return T.done()
