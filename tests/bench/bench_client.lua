-- Client benchmarks (issue 5): calls per second against a quota of 10,
-- throttles, the emulator's busiest 1 s window, several processes sharing
-- the limit, a quota lowered by someone else, CPU per call, peak memory.
--   chatapp-run --lua tests/bench/bench_client.lua CHATAPP_RUN CHATAPP_EMULATOR [N]
package.path = arg[0]:match("^(.*)/bench/") .. "/lua/?.lua;" .. package.path
local E = require "e2e"
local chatapp = require "chatapp"
local N = tonumber(arg[3] or "300")
local worker = arg[0]:match("^(.*)/") .. "/worker.lua"

local function spawn(emu, state, n, out)
  local p = io.popen(("%s --lua %s %s %s %d >%s 2>&1 & echo $!"):format(E.quote(E.run_bin),
    E.quote(worker), emu.url, E.quote(state), n, E.quote(out)))
  local pid = p:read("l")
  p:close()
  return pid
end

-- Accepted arrivals (seconds since the first) from the emulator's log.
local function arrivals(emu, since)
  local t, first = {}, nil
  for _, l in ipairs(emu:log_lines()) do
    if l.t_us >= since and l.verdict == "accepted" then
      first = first or l.t_us
      t[#t + 1] = (l.t_us - first) / 1e6
    end
  end
  return t
end

local function rate(t) return #t > 1 and (#t - 1) / (t[#t] - t[1]) or 0 end

local function report(name, fields)
  io.write(("%-34s"):format(name))
  for _, f in ipairs(fields) do io.write(("  %s"):format(f)) end
  io.write("\n")
  io.flush()
end

local function scenario_one()
  local emu = E.emulator { "--latency", "300:50" }
  local dir = E.tmpdir()
  local mark = chatapp.core.monotonic()
  local pid = spawn(emu, dir .. "/state", N, dir .. "/out")
  assert(E.wait_pid(pid), "a worker did not end")
  local r = E.last_json(dir .. "/out")
  local st = emu:stats()
  local t = arrivals(emu, 0)
  report(("1 process, %d calls, 300+-50 ms"):format(N), {
    ("%.2f calls/s"):format(rate(t)), ("throttled %d"):format(st.throttled),
    ("busiest 1 s: %d"):format(st.operations.QueryChatappPhoneNumbers.busiest_1s),
    ("CPU %.2f ms/call"):format(r.cpu_s * 1000 / N), ("peak RSS %.1f MB"):format(r.peak_rss_kb / 1024),
    ("ok %d/%d"):format(r.ok, N) })
  emu:stop()
  return mark
end

local function scenario_three()
  local emu = E.emulator { "--latency", "300:50" }
  local dir = E.tmpdir()
  local per = math.floor(N / 3)
  local pids = {}
  for i = 1, 3 do pids[i] = spawn(emu, dir .. "/state", per, dir .. "/out" .. i) end
  for i = 1, 3 do assert(E.wait_pid(pids[i]), "a worker did not end") end
  local ok, cpu = 0, 0
  for i = 1, 3 do
    local r = E.last_json(dir .. "/out" .. i)
    ok, cpu = ok + r.ok, cpu + r.cpu_s
  end
  local st = emu:stats()
  local t = arrivals(emu, 0)
  report(("3 processes x %d calls, shared"):format(per), {
    ("%.2f calls/s"):format(rate(t)), ("throttled %d"):format(st.throttled),
    ("busiest 1 s: %d"):format(st.operations.QueryChatappPhoneNumbers.busiest_1s),
    ("CPU %.2f ms/call"):format(cpu * 1000 / (3 * per)), ("ok %d/%d"):format(ok, 3 * per) })
  emu:stop()
end

local function scenario_lowered()
  local emu = E.emulator { "--latency", "300:50" }
  local dir = E.tmpdir()
  local pid = spawn(emu, dir .. "/state", N, dir .. "/out")
  E.sleep_ms(5000)
  emu:control("POST", "quota", { quota = 5, for_ms = 10000 })
  local restored_after = 15.0 -- seconds after the start, roughly
  assert(E.wait_pid(pid), "a worker did not end")
  local r = E.last_json(dir .. "/out")
  local st = emu:stats()
  -- Per-second accepted counts; recovery = first second after the quota
  -- came back from which 3 consecutive seconds average >= 8.5.
  local t = arrivals(emu, 0)
  local buckets = {}
  for _, x in ipairs(t) do
    local b = math.floor(x) + 1
    buckets[b] = (buckets[b] or 0) + 1
  end
  local recovery
  for s = math.floor(restored_after) + 1, #buckets - 2 do
    if ((buckets[s] or 0) + (buckets[s + 1] or 0) + (buckets[s + 2] or 0)) / 3 >= 8.5 then
      recovery = s - restored_after
      break
    end
  end
  local series = {}
  for s = 1, #buckets do series[s] = tostring(buckets[s] or 0) end
  report("quota 5/s for 10 s mid-run", {
    ("throttled %d of %d attempts (%.1f%%)"):format(st.throttled, r.attempts, 100 * st.throttled / r.attempts),
    ("retries/calls %.2f"):format(r.retries / N),
    recovery and ("back to >= 8.5/s %.0f s after the quota returned"):format(recovery) or "did not recover",
    ("ok %d/%d"):format(r.ok, N) })
  report("  accepted per second", { table.concat(series, " ") })
  emu:stop()
end

io.write(("chatapp-run client benchmark, %s, %d calls\n"):format(os.date("!%Y-%m-%d %H:%M UTC"), N))
scenario_one()
scenario_three()
scenario_lowered()
E.cleanup()
