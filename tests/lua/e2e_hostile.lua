-- The hostile policy corpus (tests/policies/hostile/*.lua) end to end:
-- each file runs with chatapp-run --emulator beside a well-behaved policy
-- file, under small limits, and must be stopped within its budget and
-- reported with its file name, while the well-behaved policy completes.
-- Then all of them run together, the well-behaved file first, to show the
-- run-wide cap stops the rest without starving what already ran.
--
-- Each corpus file's first line says what to expect:
--   -- expect: load      loading fails (exit 3) with the file's name
--   -- expect: error     the run completes; the file's policies are
--                        reported failing, with its name (exit 1)
--   -- expect: harmless  the trick has no effect; the run completes
package.path = arg[0]:match("^(.*)/") .. "/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local DIR = E.path("tests/policies/hostile")
local GOOD = E.path("tests/policies/well-behaved.lua")
local LIMITS = { "--memory-limit-mb", "16", "--instruction-limit", "20000000" }
local SECONDS = 20 -- per run; each file's budget is a fraction of a second

local files = {}
do
  local p = io.popen("ls " .. E.quote(DIR))
  for name in p:lines() do
    if name:match("%.lua$") then files[#files + 1] = name end
  end
  p:close()
end
table.sort(files)

local function expectation(path)
  local first = (E.read(path) or ""):match("^[^\n]*")
  return first:match("^%-%- expect: (%a+)")
end

local function run(list)
  local args = { "--emulator", "--dry-run", "--output", "json" }
  for _, a in ipairs(LIMITS) do args[#args + 1] = a end
  for _, f in ipairs(list) do args[#args + 1] = f end
  local t0 = os.time()
  local r = E.run(args, { CHATAPP_EMULATOR = E.emu_bin, ALIBABA_CLOUD_ACCESS_KEY_ID = false,
                          ALIBABA_CLOUD_ACCESS_KEY_SECRET = false },
                  { wrap = "timeout -s KILL " .. SECONDS })
  r.seconds = os.time() - t0
  return r
end

-- The summary's policy entries by name (nil when there is no summary).
local function summary(r)
  local ok, all = pcall(E.json_lines, r.out)
  if not ok then return nil end
  local last = all[#all]
  if not last or last.type ~= "summary" then return nil end
  local by = {}
  for _, p in ipairs(last.policies or {}) do by[p.name] = p end
  return by, last
end

local function good_completed(by, what)
  local g = by and by["well-behaved"]
  T.check(g ~= nil, what .. ": the well-behaved policy is in the summary")
  if g then
    T.eq(g.matched, 7, what .. ": the well-behaved policy matched every number")
    T.eq(g.errors, 0, what .. ": the well-behaved policy had no error")
  end
end

local cases = {}
T.check(#files >= 20, "the corpus is there: " .. #files .. " files")
for _, name in ipairs(files) do
  local path = DIR .. "/" .. name
  local want = expectation(path)
  cases[#cases + 1] = { name .. " (" .. tostring(want) .. ")", function()
    T.check(want == "load" or want == "error" or want == "harmless", name .. ": expect line")
    local r = run { path, GOOD }
    local blurb = ("%s: exit %s\nstderr: %s"):format(name, tostring(r.code), r.err:sub(1, 1500))
    T.check(r.code ~= 137 and r.seconds < SECONDS, name .. ": finished in time")
    T.check(r.err ~= "" or r.code == 0, blurb)
    if want == "load" then
      T.eq(r.code, 3, blurb)
      T.check(r.err:find(name, 1, true), name .. ": the error names the file\n" .. blurb)
      return
    end
    local by = summary(r)
    T.check(by ~= nil, name .. ": a summary was printed\n" .. blurb)
    good_completed(by, name)
    if want == "error" then
      T.eq(r.code, 1, blurb)
      T.check(r.err:find(name, 1, true), name .. ": stderr names the file\n" .. blurb)
      local failed = 0
      for pname, p in pairs(by or {}) do
        if pname ~= "well-behaved" then failed = failed + (p.errors or 0) end
      end
      T.check(failed > 0, name .. ": its policy is reported failing")
    else
      -- harmless: the run is clean and the file's policies ran without error
      T.eq(r.code, 0, blurb)
      local ran = 0
      for pname, p in pairs(by or {}) do
        if pname ~= "well-behaved" then
          ran = ran + 1
          T.eq(p.errors, 0, name .. ": policy " .. pname .. " had no error")
          T.eq(p.seen, 7, name .. ": policy " .. pname .. " saw every number")
        end
      end
      T.check(ran > 0, name .. ": its policies are in the summary")
    end
  end }
end

cases[#cases + 1] = { "all together: the run's total cap, the good file first", function()
  local list = { GOOD }
  for _, name in ipairs(files) do
    if expectation(DIR .. "/" .. name) ~= "load" then list[#list + 1] = DIR .. "/" .. name end
  end
  local r = run(list)
  T.check(r.code ~= 137, "finished in time")
  T.eq(r.code, 1, r.err:sub(1, 2000))
  local by = summary(r)
  good_completed(by, "all together")
  T.check(r.err:find("for all policy files of the run together", 1, true),
    "the run-wide cap stopped the later files: " .. r.err:sub(-1500))
end }

cases[#cases + 1] = { "the action cap is said once, with a count", function()
  local r = run { DIR .. "/action-flood.lua", GOOD }
  local _, lines = r.err:gsub("the same error", "")
  T.check(lines <= 1, "no line per number: " .. lines)
  T.check(r.err:find("6 more numbers not decided after the cap of 10000 actions", 1, true), r.err:sub(1, 1500))
end }

T.cases(cases)
E.cleanup()
return T.done()
