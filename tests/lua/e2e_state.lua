-- chatapp-run --state end to end against chatapp-emulator: transitions
-- (became, changed, new, gone), reminders on the state's clock
-- (CHATAPP_RUN_NOW), a failing space keeps its snapshots, the outbox
-- (resumed, retried, expired, no secrets kept), dry runs record nothing,
-- and the files refused before any API call.  Against the SQLite store,
-- or with the argument "redis" (ctest e2e_state_redis) against the Redis
-- store (tests/lua/state_store.lua): the same cases, the file-only ones
-- replaced by their Redis equivalents.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local S = require "state_store"

local chatapp = require "chatapp"
local core = chatapp.core
local emu = E.emulator()
local X = "8613800000001" -- GREEN in the sample data
local T0 = 1800000000

local function run(state, policy_file, now, ...)
  local args = { "--endpoint", emu.url, "--state", state, "--output", "json", ... }
  args[#args + 1] = policy_file
  local r = E.run(args, { CHATAPP_RUN_NOW = tostring(now) })
  r.all, r.by = E.json_lines(r.out)
  return r
end

local function patch(number, fields, space)
  local path = "numbers/" .. number .. (space and ("?space=" .. space) or "")
  local body, status = emu:control("PATCH", path, fields)
  assert(status == 200, "PATCH " .. path .. ": " .. tostring(status) .. " " .. tostring(body and body.error))
end

-- Deliveries to the sink under name, for the number (body {"n": number}).
local function delivered(name, number)
  local count, keys = 0, {}
  for _, d in ipairs(emu:deliveries() or {}) do
    if d.path == "sink/" .. name and (not number or (d.body or ""):find(number, 1, true)) then
      count = count + 1
      keys[#keys + 1] = d.idempotency_key
    end
  end
  return count, keys
end

local sha = S.digest

local function actions_of(r, policy)
  local list = {}
  for _, a in ipairs(r.by.action or {}) do
    if a.policy == policy then list[#list + 1] = a end
  end
  return list
end

T.cases {
  { "transitions: became fires once, reminders on the clock, fires again after RED-GREEN-RED", function()
    emu:reset()
    emu:control("DELETE", "deliveries")
    local state = S.fresh()
    local sink = emu.url .. "/_emulator/sink/"
    local pol = E.policy(([[
      local chatapp = require "chatapp"
      local sink = %q
      return {
        chatapp.policy {
          name = "became-red",
          where = { became = { quality_rating = "RED" } },
          decide = function(n, plan) plan:webhook { url = sink .. "became", json = { n = n.phone_number } } end,
        },
        chatapp.policy {
          name = "red-remind",
          where = { quality_rating = "RED" },
          remind = "24h",
          decide = function(n, plan) plan:webhook { url = sink .. "remind", json = { n = n.phone_number } } end,
        },
        chatapp.policy {
          name = "quality-changed",
          where = { changed = "quality_rating" },
          decide = function(n, plan)
            local changed, old, new = n:changed("quality_rating")
            plan:log(("%%s %%s %%s->%%s held %%d prev %%s"):format(n.phone_number, tostring(changed),
              tostring(old), tostring(new), n:held("quality_rating"), n.previous.quality_rating))
          end,
        },
      }
    ]]):format(sink))
    local r = run(state, pol, T0)
    T.eq(r.code, 0, "first run: " .. r.err)
    T.eq(delivered("became", X), 0, "GREEN: nothing")
    T.check(delivered("became") > 0, "numbers RED when first seen fire became")
    local news = 0
    for _, t in ipairs(r.by.transition or {}) do
      if t.field == "presence" and t.new == "present" then news = news + 1 end
      T.eq(t.recorded, true, "recorded")
    end
    T.check(news >= 7, "every number is new on the first run: " .. news)

    patch(X, { QualityRating = "RED" })
    r = run(state, pol, T0 + 60)
    T.eq(r.code, 0, "GREEN->RED run: " .. r.err)
    T.eq(delivered("became", X), 1, "GREEN->RED fires became once")
    T.eq(delivered("remind", X), 1, "and the reminder policy")
    local logs = actions_of(r, "quality-changed")
    T.eq(#logs, 1, "one number changed quality")
    T.check(logs[1] and logs[1].request.message:find(X .. " true GREEN->RED held 0 prev GREEN", 1, true),
      "n:changed, n:held, n.previous: " .. tostring(logs[1] and logs[1].request.message))
    local seen
    for _, t in ipairs(r.by.transition or {}) do
      if t.phone_number == X and t.field == "quality_rating" then seen = t end
    end
    T.check(seen and seen.old == "GREEN" and seen.new == "RED", "the transition is in the report")

    r = run(state, pol, T0 + 120)
    T.eq(r.code, 0, "still RED: " .. r.err)
    T.eq(delivered("became", X), 1, "stays quiet while RED")
    T.eq(delivered("remind", X), 1, "the reminder is quiet within 24 h")
    local s
    for _, p in ipairs(r.by.summary[1].policies) do if p.name == "red-remind" then s = p end end
    T.check(s and s.quiet >= 1, "the summary counts the quiet numbers")

    r = run(state, pol, T0 + 60 + 86400)
    T.eq(delivered("remind", X), 1 + 1, "reminds after the interval")
    T.eq(delivered("became", X), 1, "became does not repeat")

    patch(X, { QualityRating = "GREEN" })
    r = run(state, pol, T0 + 60 + 86400 + 60)
    T.eq(r.code, 0, "back to GREEN: " .. r.err)
    patch(X, { QualityRating = "RED" })
    r = run(state, pol, T0 + 60 + 86400 + 120)
    T.eq(delivered("became", X), 2, "RED->GREEN->RED fires became again")
    T.eq(delivered("remind", X), 3, "and the reminder at once (it stopped matching in between)")

    local rows = S.transitions(state, { number = X, field = "quality_rating" })
    T.eq(#rows, 3, "three quality transitions recorded")
    T.eq(rows[1] and rows[1].new, "RED", "first GREEN->RED")
    T.eq(rows[2] and rows[2].new, "GREEN", "then RED->GREEN")
    local since = S.numbers(state, { number = X })[1]
    T.eq(since.first_seen, T0, "first seen at the first run")
    T.eq(chatapp.json.decode(since.since).quality_rating, T0 + 60 + 86400 + 120, "since: the last change")
  end },

  { "new and gone numbers; the gone hook gets the last snapshot", function()
    emu:reset()
    local state = S.fresh()
    local pol = E.policy [[
      local chatapp = require "chatapp"
      return chatapp.policy {
        name = "presence",
        where = { new = true },
        decide = function(n, plan) plan:log("new " .. n.phone_number) end,
        gone = function(n, plan) plan:log("gone " .. n.phone_number .. " " .. tostring(n.quality_rating)) end,
      }
    ]]
    local r = run(state, pol, T0)
    T.eq(#actions_of(r, "presence"), 7, "every number is new at first: " .. r.err)
    local _, status = emu:control("POST", "numbers", { PhoneNumber = "8613800000999", Status = "CONNECTED",
                                                       QualityRating = "YELLOW", Extra = { kept = true } })
    T.eq(status, 200, "number added")
    r = run(state, pol, T0 + 60)
    local acts = actions_of(r, "presence")
    T.eq(#acts, 1, "only the added number is new")
    T.eq(acts[1] and acts[1].request.message, "new 8613800000999", "new")
    local snap = S.numbers(state, { number = "8613800000999" })[1]
    T.check(snap and snap.snapshot:find('"Extra":{"kept":true}', 1, true), "the snapshot keeps unknown fields")
    _, status = emu:control("DELETE", "numbers/8613800000999")
    T.eq(status, 200, "number removed")
    r = run(state, pol, T0 + 120)
    acts = actions_of(r, "presence")
    T.eq(#acts, 1, "the gone hook ran once: " .. r.err)
    T.eq(acts[1] and acts[1].request.message, "gone 8613800000999 YELLOW", "with the last snapshot")
    T.eq(#S.numbers(state, { number = "8613800000999" }), 0, "its snapshot is dropped")
    T.eq(#S.transitions(state, { number = "8613800000999", new = "gone" }), 1, "a gone transition")
  end },

  { "a space whose fetch failed keeps its snapshots", function()
    emu:reset()
    local state = S.fresh()
    local spaces = E.path("scripts/spaces/sample-spaces.json")
    local pol = E.policy [[
      return require("chatapp").policy { name = "all", gone = function(n, plan) plan:log("gone") end }
    ]]
    local r = run(state, pol, T0, "--spaces", spaces)
    T.eq(r.code, 0, "first run: " .. r.err)
    local before = S.spaces(state)
    T.check(#before >= 2, "several spaces recorded")
    emu:fault { kind = "error", code = "InternalError", op = "QueryChatappPhoneNumbers", next = 1 }
    r = run(state, pol, T0 + 60, "--spaces", spaces, "--max-attempts", "1")
    T.eq(r.code, 1, "one space failed: exit 1")
    local failed
    for _, s in ipairs(r.by.space or {}) do if s.error then failed = s.space end end
    T.check(failed, "a space record with its error")
    T.eq(#actions_of(r, "all"), 0, "no number of the failed space is gone")
    for _, b in ipairs(before) do
      local now = { n = 0 }
      for _, x in ipairs(S.spaces(state)) do if x.space == b.space then now = x end end
      T.eq(now.n, b.n, "space " .. b.space .. " keeps its numbers")
      T.eq(now.seen, b.space == failed and T0 or T0 + 60, "last seen moves only where the fetch worked")
    end
    emu:clear_faults()
  end },

  { "the outbox: a failed webhook is retried by the next run, then expires; no secret is kept", function()
    emu:reset()
    emu:control("DELETE", "deliveries")
    local state = S.fresh()
    local canary = "routing-key-canary-7f3k9q2m"
    local down = E.policy [[
      return require("chatapp").policy {
        name = "pager",
        where = { phone_number = "8613800000001" },
        decide = function(n, plan)
          plan:webhook { url = "http://127.0.0.1:9/down", attempts = 1,
                         headers = { Authorization = "Bearer hard-coded-token-4242" },
                         json = { routing_key = os.getenv("PAGER_ROUTING_KEY"), n = n.phone_number } }
        end,
      }
    ]]
    local r = E.run({ "--endpoint", emu.url, "--state", state, "--output", "json", down },
      { CHATAPP_RUN_NOW = tostring(T0), PAGER_ROUTING_KEY = canary })
    local _, by = E.json_lines(r.out)
    T.eq(r.code, 1, "the webhook failed: " .. r.err)
    T.eq(by.action and by.action[1].retry, true, "kept for the next run")
    local file = S.raw(state)
    T.check(not file:find(canary, 1, true), "the environment value is not in the state file")
    T.check(not file:find("hard-coded-token-4242", 1, true), "nor the secret header")
    local row = S.outbox(state)[1]
    T.eq(row and row.status, "pending", "pending in the outbox")
    T.check(row and row.record:find('"PAGER_ROUTING_KEY"', 1, true), "a reference to the variable")

    -- The next run does not plan it again: it comes from the outbox, and
    -- still fails (its secret header was not kept).
    local quiet = E.policy [[ return require("chatapp").policy { name = "pager" } ]]
    r = E.run({ "--endpoint", emu.url, "--state", state, "--output", "json", quiet },
      { CHATAPP_RUN_NOW = tostring(T0 + 60), PAGER_ROUTING_KEY = canary })
    _, by = E.json_lines(r.out)
    local a = by.action and by.action[1]
    T.check(a and a.outbox and a.outbox.age_s == 60, "resumed from the outbox, with its age")
    T.check(a and a.status == "failed" and a.error:find("secret header", 1, true), "cannot be resumed: "
      .. tostring(a and a.error))
    T.eq(S.outbox(state)[1].status, "failed", "recorded as failed")
  end },

  { "the outbox: resumed with the environment's value, and expiry", function()
    emu:reset()
    emu:control("DELETE", "deliveries")
    local state = S.fresh()
    local canary = "routing-key-canary-9x8y7z6w"
    -- The sink answers 503 first: the webhook stays pending.
    local pol = E.policy(([[
      return require("chatapp").policy {
        name = "pager",
        where = { phone_number = "8613800000001" },
        decide = function(n, plan)
          plan:webhook { url = %q .. os.getenv("SINK_QUERY"), attempts = 1,
                         json = { routing_key = os.getenv("PAGER_ROUTING_KEY") } }
        end,
      }
    ]]):format(emu.url .. "/_emulator/sink/pager"))
    local env = { CHATAPP_RUN_NOW = tostring(T0), PAGER_ROUTING_KEY = canary, SINK_QUERY = "?status=503" }
    local r = E.run({ "--endpoint", emu.url, "--state", state, "--output", "json", pol }, env)
    T.eq(r.code, 1, "503: failed: " .. r.err)
    T.check(not S.raw(state):find(canary, 1, true), "no value kept")
    local quiet = E.policy [[ return require("chatapp").policy { name = "other" } ]]
    env.CHATAPP_RUN_NOW, env.SINK_QUERY = tostring(T0 + 30), "?status=200"
    r = E.run({ "--endpoint", emu.url, "--state", state, "--output", "json", quiet }, env)
    T.eq(r.code, 0, "resumed and delivered: " .. r.err)
    local n, keys = delivered("pager")
    T.eq(n, 2, "two deliveries (503, then 200)")
    T.eq(keys[1], keys[2], "with the same Idempotency-Key")
    local last = emu:deliveries()[#emu:deliveries()]
    T.check(last.body:find(canary, 1, true), "the resumed request has the environment's value")
    local _, by = E.json_lines(r.out)
    T.check(by.action and by.action[1].outbox, "the report says it came from the outbox")
    T.eq(S.outbox(state)[1].status, "done", "done")

    -- A pending action older than --outbox-max-age expires.
    env.CHATAPP_RUN_NOW, env.SINK_QUERY = tostring(T0 + 100), "?status=503"
    E.run({ "--endpoint", emu.url, "--state", state, pol }, env)
    env.CHATAPP_RUN_NOW = tostring(T0 + 100 + 7200)
    r = E.run({ "--endpoint", emu.url, "--state", state, "--output", "json", "--outbox-max-age", "1h", quiet }, env)
    _, by = E.json_lines(r.out)
    local a = by.action and by.action[1]
    T.check(a and a.status == "skipped" and a.reason:find("expired", 1, true), "expired: "
      .. tostring(a and a.reason))
    T.eq(S.outbox(state)[1].status, "expired", "recorded as expired")
    T.eq(delivered("pager"), 3, "the expired one was not sent")
  end },

  { "a dry run reads the state and records nothing", function()
    emu:reset()
    local state = S.fresh()
    local pol = E.policy [[ return require("chatapp").policy { name = "p", where = { new = true },
      decide = function(n, plan) plan:webhook { url = "http://127.0.0.1:9/x" } end } ]]
    run(state, pol, T0)
    local before = sha(state)
    patch(X, { Status = "FLAGGED" })
    local r = run(state, pol, T0 + 60, "--dry-run")
    T.eq(r.code, 0, "dry run: " .. r.err)
    local t
    for _, x in ipairs(r.by.transition or {}) do if x.phone_number == X then t = x end end
    T.check(t and t.field == "status" and t.recorded == false, "shows the transition it would record")
    T.eq(sha(state), before, "the file is unchanged")
    local none = S.redis and S.fresh() or E.tmpdir() .. "/none.db"
    r = E.run({ "--endpoint", emu.url, "--state", none, "--dry-run", pol })
    T.eq(r.code, 0, "a dry run on a missing file reads it as empty: " .. r.err)
    T.eq(sha(none), S.redis and sha(S.fresh()) or core.sha256_hex(""), "and does not create it")
  end },

  { "files refused before any API call, left as they were", function()
    if S.redis then io.stderr:write("skipped: the file cases (Redis: the next case)\n") return end
    emu:reset()
    local dir = E.tmpdir()
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    local good = dir .. "/good.db"
    run(good, pol, T0)
    local newer = dir .. "/newer.db"
    E.write(newer, E.read(good))
    local db = assert(core.sqlite_open(newer))
    assert(db:exec("PRAGMA user_version = 99"))
    db:close()
    local foreign = dir .. "/foreign.db"
    db = assert(core.sqlite_open(foreign))
    assert(db:exec("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('mine')"))
    db:close()
    local corrupt = dir .. "/corrupt.db"
    local bytes = E.read(good)
    E.write(corrupt, bytes:sub(1, 100) .. ("\255"):rep(#bytes - 100))
    local text = E.write(dir .. "/notes.txt", "my notes\n")
    local fifo = dir .. "/fifo"
    os.execute("mkfifo " .. E.quote(fifo))
    local cases = {
      { newer, "newer chatapp-run" }, { foreign, "another program" }, { corrupt, "" },
      { text, "not a SQLite database" }, { fifo, "FIFO" }, { dir, "directory" },
      { dir .. "/missing/state.db", "does not exist" },
    }
    for _, c in ipairs(cases) do
      local path, want = c[1], c[2]
      local calls = emu:stats().requests
      local hash = path ~= fifo and path ~= dir and sha(path)
      local r = E.run({ "--endpoint", emu.url, "--state", path, pol })
      T.eq(r.code, 2, path .. ": exit 2")
      T.check(r.err:find(want, 1, true) and r.err:find(path, 1, true), path .. ": says why: " .. r.err)
      T.eq(emu:stats().requests, calls, path .. ": no API call")
      if hash then T.eq(sha(path), hash, path .. ": left as it was") end
    end
    -- A file this user cannot write (as root: run as nobody).
    local ro = dir .. "/ro"
    os.execute("mkdir -p " .. E.quote(ro))
    local rofile = ro .. "/state.db"
    E.write(rofile, E.read(good))
    pol = E.write(ro .. "/policy.lua", E.read(pol))
    local wrap
    local uid = io.popen("id -u"):read("l")
    if uid == "0" and os.execute("command -v setpriv >/dev/null") then
      os.execute("chmod 755 " .. E.quote(dir:match("^(.*)/")) .. " " .. E.quote(dir) .. " " .. E.quote(ro) .. "; chmod 644 " .. E.quote(rofile) .. " "
        .. E.quote(pol))
      wrap = "setpriv --reuid=65534 --regid=65534 --clear-groups"
    else
      os.execute("chmod 555 " .. E.quote(ro) .. "; chmod 444 " .. E.quote(rofile))
    end
    local hash = sha(rofile)
    local calls = emu:stats().requests
    local r = E.run({ "--endpoint", emu.url, "--state", rofile, pol }, { HOME = "/tmp" }, { wrap = wrap })
    T.eq(r.code, 2, "read-only: exit 2: " .. r.err)
    T.check(r.err:find(rofile, 1, true), "names the file: " .. r.err)
    T.eq(emu:stats().requests, calls, "read-only: no API call")
    T.eq(sha(rofile), hash, "read-only: left as it was")
    os.execute("chmod -R u+w " .. E.quote(ro))
  end },

  { "two processes share the Redis state: one is killed after its commit, the other resumes with the same key",
    function()
    if not S.redis then io.stderr:write("skipped: the shared-state case (Redis only)\n") return end
    emu:reset()
    emu:control("DELETE", "deliveries")
    local state = S.fresh()
    local pol = E.policy(([[
      return require("chatapp").policy {
        name = "handover",
        where = { phone_number = "8613800000001" },
        decide = function(n, plan)
          plan:webhook { url = %q .. os.getenv("SINK_QUERY"), attempts = 1, json = { n = n.phone_number } }
        end,
      }
    ]]):format(emu.url .. "/_emulator/sink/handover"))
    -- A: its webhook hangs (the sink answers after 30 s); killed once its
    -- commit is in Redis.
    local a = E.start({ "--limiter", "process", "--endpoint", emu.url, "--state", state, pol },
      { CHATAPP_RUN_NOW = tostring(T0), SINK_QUERY = "?delay_ms=30000" })
    T.check(E.wait_for(function() return #S.outbox(state) == 1 end, 15000), "A committed its outbox entry")
    a.kill("KILL")
    T.eq(a.wait(10000), 137, "A was killed")
    local entry = S.outbox(state)[1]
    T.eq(entry and entry.status, "pending", "pending after the kill")
    -- A's leader lease would end by itself within --lease (15 s); end it
    -- now (the takeover itself: tests/lua/e2e_lease.lua)
    S.call(state, "DEL", "chatapp:lease:{" .. E.KEY_ID .. "}")
    -- B: another process (another host), the same state, a policy that
    -- plans nothing: it finishes A's action.
    local quiet = E.policy [[ return require("chatapp").policy { name = "other" } ]]
    local r = E.run({ "--endpoint", emu.url, "--state", state, "--output", "json", quiet },
      { CHATAPP_RUN_NOW = tostring(T0 + 30), SINK_QUERY = "?status=200" })
    T.eq(r.code, 0, "B: " .. r.err)
    local _, by = E.json_lines(r.out)
    local act = by.action and by.action[1]
    T.check(act and act.outbox and act.status == "done", "B carried out A's action from the outbox")
    local n, keys = delivered("handover")
    T.check(n >= 1, "delivered")
    T.eq(keys[#keys], entry and entry.id, "with A's idempotency key")
    for _, k in ipairs(keys) do T.eq(k, entry and entry.id, "every delivery carries the same key") end
    T.eq(S.outbox(state)[1].status, "done", "done in the shared state")
  end },

  { "Redis lost at the commit (a stopped server): a clear error, nothing half-written, the next run carries on",
    function()
    if not S.redis then io.stderr:write("skipped: the Redis-lost case (Redis only)\n") return end
    emu:reset()
    emu:control("DELETE", "deliveries")
    local R = S.R
    local own = R.start {}
    local state = own.url .. "/0"
    local sink = emu.url .. "/_emulator/sink/lost"
    local pol = E.policy(([[
      return require("chatapp").policy {
        name = "slow",
        where = { became = { status = "FLAGGED" } },
        decide = function(n, plan)
          local t0 = os.time()
          while os.time() - t0 < 3 do end -- Redis is stopped meanwhile
          plan:webhook { url = %q, attempts = 1, json = { n = n.phone_number } }
        end,
      }
    ]]):format(sink))
    local r = run(state, pol, T0, "--instruction-limit", "100000000000")
    T.eq(r.code, 0, "first run: " .. r.err)
    patch(X, { Status = "FLAGGED" })
    local before = sha(state)
    local requests = emu:stats().requests
    local p = E.start({ "--limiter", "process", "--endpoint", emu.url, "--state", state, "--instruction-limit",
                        "100000000000", pol }, { CHATAPP_RUN_NOW = tostring(T0 + 60) })
    -- the fetch done, the policy in its 3 s: the server stops answering
    T.check(E.wait_for(function() return emu:stats().requests > requests end, 10000), "the run fetched")
    E.sleep_ms(800)
    os.execute("kill -STOP " .. own.pid)
    local code = p.wait(20000)
    os.execute("kill -CONT " .. own.pid)
    -- Lost at the outbox's read (just before the commit): the run stops,
    -- exit 2, nothing sent; lost at the commit itself (test_state_redis
    -- times that one exactly): exit 1, the action goes out unrecorded.
    T.check(code == 1 or code == 2, "the run fails: " .. tostring(code))
    T.check((p.err():find("cannot read the outbox", 1, true) or p.err():find("cannot record the run", 1, true))
      and p.err():find(own.url, 1, true) and p.err():find("no answer within", 1, true),
      "says what failed and names the server: " .. p.err())
    T.eq(delivered("lost", X), code == 1 and 1 or 0, "the action went out only if it was past the commit")
    T.eq(sha(state), before, "nothing half-written")
    -- the server back: the next run sees the same change, records it and
    -- plans the same action (the same key).  (The failed run could not
    -- release its leader lease, Redis being stopped: it would end by
    -- itself within --lease; end it now.)
    S.call(state, "DEL", "chatapp:lease:{" .. E.KEY_ID .. "}")
    r = run(state, pol, T0 + 120, "--instruction-limit", "100000000000")
    T.eq(r.code, 0, "the next run: " .. r.err)
    T.eq(#S.transitions(state, { number = X, field = "status" }), 1, "the change is recorded once")
    local n, keys = delivered("lost", X)
    T.check(n >= 1, "delivered")
    for _, k in ipairs(keys) do T.eq(k, keys[1], "one key for the one action") end
    T.eq(S.outbox(state)[1] and S.outbox(state)[1].status, "done", "done in the state")
    own:stop()
    patch(X, { Status = "CONNECTED" })
  end },

  { "Redis stores refused before any API call, left as they were", function()
    if not S.redis then io.stderr:write("skipped: the Redis cases (SQLite: the case before)\n") return end
    emu:reset()
    local pol = E.policy [[ return require("chatapp").policy { name = "p" } ]]
    local good = S.fresh()
    T.eq(run(good, pol, T0).code, 0, "a good state")
    local newer = S.copy(good)
    S.make_newer(newer)
    local wrong = S.copy(good)
    S.call(wrong, "DEL", S.prefix(E.KEY_ID) .. "transitions")
    S.call(wrong, "RPUSH", S.prefix(E.KEY_ID) .. "transitions", "another program's list")
    local wrong_meta = S.fresh()
    S.call(wrong_meta, "SET", S.prefix(E.KEY_ID) .. "meta", "not a hash")
    local secret = "redis-password-canary-5u7w"
    local locked = S.R.start { password = secret }
    local unreachable = "redis://127.0.0.1:1/0"
    local cases = {
      { newer, "newer chatapp-run (schema version 99" },
      { wrong, "holds a list, not a zset: this database is used by another program" },
      { wrong_meta, "holds a string, not a hash" },
      { locked.url, "the server wants a password: put it in CHATAPP_REDIS_PASSWORD" },
      { unreachable, "cannot connect" },
    }
    for _, c in ipairs(cases) do
      local url, want = c[1], c[2]
      local calls = emu:stats().requests
      local hash = url ~= unreachable and url ~= locked.url and sha(url)
      local r = E.run({ "--endpoint", emu.url, "--state", url, pol })
      T.eq(r.code, 2, url .. ": exit 2")
      T.check(r.err:find(want, 1, true) or (c[3] and r.err:lower():find(c[3], 1, true)), url .. ": says why: " .. r.err)
      T.check(r.err:find(url:match("^redis://[^/]+"), 1, true), url .. ": names the server: " .. r.err)
      T.eq(emu:stats().requests, calls, url .. ": no API call")
      if hash then T.eq(sha(url), hash, url .. ": left as it was") end
    end
    -- The password from the environment: accepted, never printed.
    local r = E.run({ "--endpoint", emu.url, "--state", locked.url, "--output", "json", pol },
      { CHATAPP_REDIS_PASSWORD = secret })
    T.eq(r.code, 0, "with the password: " .. r.err)
    T.check(not (r.out .. r.err):find(secret, 1, true), "the password is never printed")
    r = E.run({ "--endpoint", emu.url, "--state", locked.url, pol }, { CHATAPP_REDIS_PASSWORD = "wrong-" .. secret })
    T.eq(r.code, 2, "a wrong password: exit 2")
    T.check(not (r.out .. r.err):find(secret, 1, true), "not printed either: " .. r.err)
    locked:stop()
    -- Keys of another program next to ours are left alone.
    local shared = S.fresh()
    S.call(shared, "SET", "someone:else", "mine")
    r = run(shared, pol, T0)
    T.eq(r.code, 0, "a database shared with other keys: " .. r.err)
    T.eq(S.call(shared, "GET", "someone:else"), "mine", "their key is untouched")
  end },
}

emu:stop()
S.cleanup()
E.cleanup()
return T.done()
