-- The action kinds (lua/chatapp/actions): the registry, each kind's plan
-- method, checks at the policy's line, id, runner, report view, and its
-- record round trip (to_record -> JSON -> from_record).  Policies run
-- through the real runner with a fake host, in a dry run.
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local chatapp = require "chatapp"
local core = chatapp.core
local runner_mod = require "chatapp.runner"
local actions = require "chatapp.actions"
local plans = require "chatapp.plan"
local executor = require "chatapp.executor"
local report = require "chatapp.report"

local host = require("fake_host").new({
  { PhoneNumber = "8613800000001", Status = "CONNECTED", QualityRating = "GREEN",
    UpCallbackUrl = "https://old.example/up" },
}, { space = { cust_space_id = "cs-1", label = "one" }, http_error = "no http in tests" })

local function run_policy(body, flags)
  local r = runner_mod.new({ output = "none", memory_limit_mb = 8, instruction_limit = 2000000 }, host)
  assert(r:load_string("p.lua", ([[
local chatapp = require "chatapp"
return chatapp.policy { name = "p", decide = function(n, plan)
%s
end }]]):format(body)))
  return r:run(flags or { dry_run = true })
end

local function first_error(rep)
  return rep.errors[1] and rep.errors[1].message or ""
end

-- One policy line per kind (and per plan method), for the cases below.
local SAMPLES = {
  webhook = [[plan:webhook { url = "https://hooks.example/a", json = { n = n.phone_number },
    headers = { Authorization = "Bearer s3cret" } }]],
  call = [[plan:call("SendChatappMessage", { To = n.phone_number, Nested = { A = 1 } })]],
  update_phone_webhook = [[plan:update_phone_webhook { up_callback_url = "https://new.example/up", http_flag = "Y" }]],
  exec = [[plan:exec { argv = { "/bin/echo", n.phone_number }, stdin = "in\255put", timeout_ms = 500 }]],
  lua = [[plan:lua(function(num) end, "noop")]],
  run = [[plan:run(function(num) end)]],
  log = [[plan:log("note %s", n.phone_number)]],
}

local function planned(method)
  local rep = run_policy(SAMPLES[method])
  T.eq(#rep.errors, 0, method .. ": " .. first_error(rep))
  T.eq(#rep.actions, 1, method .. " planned one action")
  return rep.actions[1], rep
end

-- A record through JSON and back.
local function via_json(rec)
  local s = assert(core.json_encode(rec))
  return assert(core.json_decode(s)), s
end

T.cases {
  { "the registry: every kind complete, every plan method known", function()
    T.check(#actions.KINDS >= 5, "kinds listed")
    for _, name in ipairs(actions.KINDS) do
      local K = actions.get(name)
      T.check(K, name)
      T.eq(K.kind, name)
      for _, f in ipairs { "validate", "identity", "run", "describe", "request_view", "dry_run_lines",
                           "to_record", "from_record" } do
        T.eq(type(K[f]), "function", name .. "." .. f)
      end
      T.eq(type(K.concurrent), "boolean", name .. ".concurrent")
      T.check(next(K.methods), name .. " has a plan method")
    end
    local names = table.concat(actions.method_names(), ",")
    T.eq(names, "call,exec,log,lua,run,update_phone_webhook,webhook")
    for method in pairs(SAMPLES) do T.check(actions.methods[method], method) end
    T.eq(actions.get("bogus"), nil)
    T.eq(actions.get(nil), nil)
    T.eq(plans.validate { kind = "bogus", request = {} }:find("known: webhook, call, exec, lua, log", 1, true) ~= nil,
      true, "unknown kinds listed")
  end },

  { "an unknown plan method raises at the policy's line with the methods and a suggestion", function()
    local rep = run_policy([[  plan:page_oncall { n = n.phone_number }]])
    local e = first_error(rep)
    T.check(e:find("p.lua:3:", 1, true), "file:line: " .. e)
    T.check(e:find("plan has no method page_oncall", 1, true), e)
    T.check(e:find("call, exec, log, lua, run, update_phone_webhook, webhook", 1, true), "methods listed: " .. e)
    T.check(e:find("action kinds: webhook, call, exec, lua, log", 1, true), "kinds listed: " .. e)
    -- no name is near page_oncall; what it is for is (issue 15)
    T.check(e:find("did you mean plan:webhook? (alerts and notifications go out as webhooks)", 1, true), e)
    rep = run_policy([[  plan:webhok { url = "https://x.example" }]])
    e = first_error(rep)
    T.check(e:find("did you mean plan:webhook?", 1, true), e)
    rep = run_policy([[  plan:Log("x")]])
    T.check(first_error(rep):find("did you mean plan:log?", 1, true), first_error(rep))
    rep = run_policy([[  plan:update_phone_webhooks { http_flag = "Y" }]])
    T.check(first_error(rep):find("did you mean plan:update_phone_webhook?", 1, true), first_error(rep))
    -- reading a missing name raises too (no silent nil); "_" names read nil
    rep = run_policy([[  assert(plan._anything == nil) local ok = pcall(function() return plan.nope end) assert(not ok)]])
    T.eq(#rep.errors, 0, first_error(rep))
  end },

  { "edit distance", function()
    T.eq(actions.distance("", ""), 0)
    T.eq(actions.distance("log", "log"), 0)
    T.eq(actions.distance("webhok", "webhook"), 1)
    T.eq(actions.distance("exce", "exec"), 1, "a swap counts one")
    T.eq(actions.distance("kitten", "sitting"), 3)
    T.eq(actions.distance("", "abc"), 3)
    T.eq(actions.suggest("cal"), "call")
    T.eq(actions.suggest("page_oncall"), nil)
    T.eq(actions.suggest(42), nil)
  end },

  { "each plan method: its action, its id, checks at the policy's line", function()
    local a = planned("webhook")
    T.eq(a.kind, "webhook")
    T.eq(a.request.method, "POST")
    T.eq(a.request.headers["Content-Type"], "application/json")
    T.eq(#a.id, 32)
    a = planned("call")
    T.eq(a.kind, "call")
    T.eq(a.request.params["Nested.A"], "1", "flattened")
    T.eq(a.write, true)
    a = planned("update_phone_webhook")
    T.eq(a.kind, "call")
    T.eq(a.request.operation, "UpdatePhoneWebhook")
    T.eq(a.request.params.CustSpaceId, "cs-1")
    T.eq(a.current.UpCallbackUrl, "https://old.example/up")
    a = planned("exec")
    T.eq(a.request.argv[2], "8613800000001")
    a = planned("lua")
    T.eq(a.request.name, "noop")
    a = planned("run")
    T.check(a.request.name:find("^function at p.lua:3"), a.request.name)
    a = planned("log")
    T.eq(a.request.message, "note 8613800000001")
    -- the same request in another run: the same id; the timeout is not part of it
    local id1 = run_policy([[  plan:webhook { url = "https://h.example/", timeout_ms = 5 }]]).actions[1].id
    local id2 = run_policy([[  plan:webhook { url = "https://h.example/", timeout_ms = 9 }]]).actions[1].id
    local id3 = run_policy([[  plan:webhook { url = "https://h.example/2" }]]).actions[1].id
    T.eq(id1, id2)
    T.check(id1 ~= id3, "another request, another id")
    for _, c in ipairs {
      { [[  plan:webhook { url = "http://example.com/" }]], "plain http is only allowed" },
      { [[  plan:webhook { url = "https://x.example/", headers = { ["X"] = "a\nb" } }]], "values hold no CR" },
      { [[  plan:webhook { url = "https://x.example/", attempts = 11 }]], "attempts must be" },
      { [[  plan:webhook "https://x.example/"]], "plan:webhook expects a table" },
      { [[  plan:call("lowercase", {})]], "operation must be a CAMS operation" },
      { [[  plan:call("SendX", { f = function() end })]], "plan:call:" },
      { [[  plan:update_phone_webhook { http_flag = "maybe" }]], 'must be "Y" or "N"' },
      { [[  plan:update_phone_webhook { colour = "red" }]], 'unknown key "colour"' },
      { [[  plan:exec { argv = {} }]], "argv must be a non-empty list" },
      { [[  plan:exec { argv = { "/bin/true" }, timeout_ms = 0 }]], "timeout_ms must be" },
      { [[  plan:lua("not a function")]], "plan:lua expects a function" },
      { [[  plan:log({})]], "plan:log expects a message string" },
      { [[  plan.log("x")]], "a plan method was called without the plan" },
    } do
      local rep = run_policy(c[1])
      local e = first_error(rep)
      T.check(e:find("p.lua:3:", 1, true) and e:find(c[2], 1, true), c[1] .. " -> " .. e)
      T.eq(#rep.actions, 0, c[1])
    end
  end },

  { "the webhook's loopback rule: the C rule when the core has it, else the Lua one", function()
    local W = actions.get("webhook")
    for _, url in ipairs { "http://127.0.0.1:8080/x", "http://127.1.2.3/", "http://localhost/x",
                           "http://[::1]:9/x", "https://example.com/x" } do
      T.check(W.check_url(url), url)
    end
    for _, url in ipairs { "http://example.com/", "http://127.0.0.1.example.com/", "ftp://127.0.0.1/",
                           "http://[::2]/", "https://exa mple.com/" } do
      T.check(not W.check_url(url), url)
    end
    -- the transport's own rule (core.loopback_host), brackets kept: what
    -- is planned here is never refused later by the transport
    T.check(W.check_url("http://[::ffff:127.0.0.1]:9/x"), "IPv4-mapped loopback")
    for _, url in ipairs { "http://[127.0.0.1]/", "http://0.0.0.0/", "http://127.1/", "http://localhost.evil.com/" } do
      T.check(not W.check_url(url), url)
    end
  end },

  { "every kind: to_record, JSON and from_record give the same action back", function()
    for _, method in ipairs { "webhook", "call", "update_phone_webhook", "exec", "log" } do
      local a = planned(method)
      local rec = assert(actions.to_record(a))
      local back_json, s = via_json(rec)
      T.check(not s:find("function", 1, true), method .. ": no function in the record")
      local b, err = actions.from_record(back_json)
      T.check(b, method .. ": " .. tostring(err))
      if b then
        T.eq(b.kind, a.kind, method)
        T.eq(b.id, a.id, method .. " id")
        T.eq(b.policy, "p")
        T.eq(b.phone_number, a.phone_number)
        T.eq(b.status, a.status)
        T.eq(core.json_encode(b.request), core.json_encode(a.request), method .. " request")
        T.eq(core.json_encode(b.current or {}), core.json_encode(a.current or {}), method .. " current")
        T.eq(b.write, a.write, method .. " write")
        T.eq(report.describe(b), report.describe(a), method .. " describe")
        T.eq(plans.validate(b), nil)
        -- and again: a record of a record is the same record
        T.eq(core.json_encode(actions.to_record(b)), core.json_encode(actions.to_record(a)), method .. " stable")
      end
    end
    -- bytes that are not UTF-8 survive (the encoder would replace them)
    local a = planned("exec")
    local rec = via_json(assert(actions.to_record(a)))
    T.eq(type(rec.request.stdin), "table", "stdin kept as hex")
    T.eq(actions.from_record(rec).request.stdin, "in\255put")
    a = run_policy([[  plan:webhook { url = "https://x.example/", body = "\0\200\255" }]]).actions[1]
    T.eq(actions.from_record(via_json(actions.to_record(a))).request.body, "\0\200\255")
    -- a lua action is recorded (its name) but cannot be read back
    a = planned("lua")
    rec = via_json(assert(actions.to_record(a)))
    T.eq(rec.request.name, "noop")
    local b, err = actions.from_record(rec)
    T.eq(b, nil)
    T.check(err:find("lua action noop cannot be read back", 1, true), err)
  end },

  { "a record is checked again when read back", function()
    local a = planned("webhook")
    local good = via_json(actions.to_record(a))
    local function broken(change)
      local rec = via_json(actions.to_record(a))
      change(rec)
      local b, err = actions.from_record(rec)
      T.eq(b, nil)
      return err or ""
    end
    T.check(actions.from_record(good), "the untouched record reads")
    T.check(broken(function(r) r.request.url = "http://example.com/" end):find("plain http", 1, true), "url rule")
    T.check(broken(function(r) r.request.url = "https://other.example/" end):find("does not match its content", 1, true),
      "id checked")
    T.check(broken(function(r) r.request.headers.X = "a\r\nb: c" end):find("cannot carry", 1, true), "header rule")
    T.check(broken(function(r) r.kind = "page" end):find("unknown action kind page", 1, true), "kind")
    T.check(broken(function(r) r.v = 99 end):find("version 99", 1, true), "version")
    T.check(broken(function(r) r.policy = nil end):find("policy must be a string", 1, true), "policy")
    T.check(broken(function(r) r.request = "x" end):find("request", 1, true), "request")
    local b, err = actions.from_record("x")
    T.eq(b, nil)
    T.check(err:find("must be a table", 1, true), err)
    -- a call's write flag comes from this version's operations, not the record
    local c = planned("call")
    local rec = via_json(actions.to_record(c))
    rec.write = false
    T.eq(actions.from_record(rec).write, true)
  end },

  { "the report: each kind described, viewed (secrets redacted) and shown in a dry run", function()
    local rep = report.new({ output = "none" }, {}, function() end)
    rep.dry_run = true
    local function shown(a)
      local buf = {}
      rep:print_action(a, { write = function(_, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end end })
      return table.concat(buf)
    end
    local a = planned("webhook")
    T.eq(report.describe(a), "POST https://hooks.example/a")
    local v = report.request_view(a)
    T.eq(v.headers.Authorization, "<redacted>")
    T.eq(v.headers["Idempotency-Key"], a.id)
    local out = shown(a)
    T.check(out:find("Authorization: <redacted>", 1, true) and not out:find("s3cret", 1, true), out)
    T.check(out:find('{"n":"8613800000001"}', 1, true), out)
    a = planned("update_phone_webhook")
    out = shown(a)
    T.check(out:find('UpCallbackUrl: "https://old.example/up" -> "https://new.example/up"', 1, true), out)
    T.check(out:find("HttpFlag=Y", 1, true), out)
    a = planned("exec")
    T.eq(report.describe(a), "/bin/echo 8613800000001")
    T.check(shown(a):find("stdin: 6 bytes", 1, true), shown(a))
    a = planned("lua")
    T.eq(report.request_view(a)["function"], "noop")
    a = planned("log")
    T.eq(shown(a), "    log: note 8613800000001\n")
    -- every line escaped
    a = run_policy([[  plan:log("a\27[31mred\nb")]]).actions[1]
    T.eq(shown(a), "    log: a\\e[31mred\\nb\n")
    -- outcome after the status
    a = planned("call")
    a.status, a.result = "done", { request_id = "RID-1" }
    rep.dry_run = false
    T.check(shown(a):find("done (RequestId RID-1)", 1, true), shown(a))
    a = planned("webhook")
    a.status, a.result = "failed", { http_status = 503 }
    T.check(shown(a):find("failed (HTTP 503)", 1, true), shown(a))
    -- a log is a line, not an action: not counted
    rep = run_policy(SAMPLES.log)
    T.eq(rep.policies[1].planned, 0)
    T.eq(rep.actions[1].status, "done", "done in a dry run")
    rep = run_policy(SAMPLES.exec)
    T.eq(rep.policies[1].planned, 1)
    T.eq(rep.actions[1].status, "planned")
  end },

  { "a new kind is one module: registered, it plans, checks, runs, shows and stores", function()
    local ran = {}
    local K = {
      kind = "page", concurrent = false, methods = {},
      validate = function(a)
        if type(a.request.who) ~= "string" then return "page who must be a string" end
      end,
      identity = function(r) return { who = r.who } end,
      run = function(list, _, x)
        for _, a in ipairs(list) do
          if x.interrupted() then x.not_started(a, x.interrupted())
          elseif a.request.who == "nobody" then x.failed(a, "nobody to page")
          else ran[#ran + 1] = a.request.who; a.status = "done" end
        end
      end,
      describe = function(a) return "page " .. a.request.who end,
      request_view = function(a) return { who = a.request.who } end,
      dry_run_lines = function(_, v) return { "to: " .. v.who } end,
      to_record = function(a) return { request = { who = a.request.who } } end,
      from_record = function(rec) return { kind = "page", request = { who = rec.request.who } } end,
    }
    function K.methods.page(P, who)
      if type(who) ~= "string" then require("chatapp.actions.lib").fail("plan:page: who must be a string") end
      local a = P.add { kind = "page", request = { who = who } }
      return a
    end
    T.raises(function() actions.register { kind = "broken", methods = {} } end, "action kind broken has no validate")
    T.raises(function() actions.register(setmetatable({ kind = "dup", methods = { log = K.methods.page } },
      { __index = K })) end, "plan method log is defined by kinds log and dup")
    T.raises(function() actions.register { kind = "Bad Name" } end, "lowercase")
    actions.register(K)
    T.eq(actions.get("page"), K)
    T.eq(actions.suggest("pgae"), "page")
    local rep = run_policy([[  plan:page(n.phone_number) plan:page("nobody")]])
    T.eq(#rep.errors, 0, first_error(rep))
    T.eq(#rep.actions, 2)
    T.eq(rep.policies[1].planned, 2)
    local a = rep.actions[1]
    T.eq(a.kind, "page")
    T.eq(#a.id, 32)
    T.eq(report.describe(a), "page 8613800000001")
    rep = run_policy([[  plan:page(42)]])
    T.check(first_error(rep):find("p.lua:3: plan:page: who must be a string", 1, true), first_error(rep))
    rep = run_policy([[  plan:page(n.phone_number) plan:page("nobody")]], {})
    T.eq(rep.actions[1].status, "done")
    T.eq(rep.actions[2].status, "failed")
    T.eq(rep.actions[2].error, "nobody to page")
    T.eq(rep.status, "action")
    T.eq(ran[1], "8613800000001")
    local b = assert(actions.from_record(via_json(actions.to_record(a))))
    T.eq(b.id, a.id)
    T.eq(b.request.who, a.request.who)
    -- out of the registry again, for the cases after this one
    actions.kinds.page, actions.methods.page = nil, nil
    table.remove(actions.KINDS)
    rep = run_policy([[  plan:page("x")]])
    T.check(first_error(rep):find("plan has no method page", 1, true), "gone: " .. first_error(rep))
  end },

  { "the executor hands each kind its actions: concurrent kinds in slices, others whole", function()
    local batches = {}
    local http = {
      batch = function(_, reqs)
        batches[#batches + 1] = #reqs
        local res = {}
        for i, r in ipairs(reqs) do
          T.eq(r.headers["Idempotency-Key"] ~= nil, true, "idempotency key sent")
          res[i] = { status = 204 }
        end
        return res, {}
      end,
    }
    local list = {}
    local n = executor.SLICE * 2 + 3
    for i = 1, n do
      local rep = run_policy(([[  plan:webhook { url = "https://h.example/%d" }]]):format(i))
      list[i] = rep.actions[1]
    end
    list[#list + 1] = run_policy(SAMPLES.exec).actions[1]
    list[#list + 1] = run_policy((SAMPLES.exec:gsub("500", "600"))).actions[1]
    list[#list + 1] = run_policy(SAMPLES.log).actions[1]
    executor.run(list, { http = function() return http end, allow_exec = false })
    T.eq(table.concat(batches, ","), ("%d,%d,3"):format(executor.SLICE, executor.SLICE))
    for i = 1, n do T.eq(list[i].status, "done") end
    T.eq(list[1].result.http_status, 204)
    T.eq(list[n + 1].status, "skipped")
    T.check(list[n + 1].reason:find("--allow-exec", 1, true), list[n + 1].reason)
    T.eq(list[n + 3].status, "done", "log")
  end },
}

return T.done()
