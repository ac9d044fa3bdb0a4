--- A small test helper for Lua tests run by `chatapp-run --lua`.
--
--   local T = require "testlib"
--   T.eq(got, want, "what")          T.check(cond, "what")
--   T.raises(fn, "pattern", "what")  return T.done()
--
-- A failure prints file:line and carries on; T.done() returns the exit
-- status (non-zero when a check failed or none ran).

local T = { checks = 0, failures = 0 }

local function where()
  local info = debug.getinfo(4, "Sl")
  return ("%s:%d"):format(info.short_src, info.currentline)
end

local function fail(what, detail)
  T.failures = T.failures + 1
  io.stderr:write(("%s: FAILED %s%s\n"):format(where(), what or "", detail and ("\n  " .. detail) or ""))
end

function T.check(cond, what)
  T.checks = T.checks + 1
  if not cond then fail(what) end
  return cond
end

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  return tostring(v)
end

function T.eq(got, want, what)
  T.checks = T.checks + 1
  if got ~= want then
    fail(what, ("got %s, want %s"):format(show(got), show(want)))
    return false
  end
  return true
end

--- fn must raise an error whose message contains pattern (plain text).
function T.raises(fn, pattern, what)
  T.checks = T.checks + 1
  local ok, err = pcall(fn)
  if ok then
    fail(what, "did not raise")
    return false
  end
  if pattern and not tostring(err):find(pattern, 1, true) then
    fail(what, ("error %q does not contain %q"):format(tostring(err), pattern))
    return false
  end
  return true
end

--- Run named cases: { {name, fn}, ... }; an error in one is a failure.
function T.cases(list)
  for _, c in ipairs(list) do
    local ok, err = xpcall(c[2], debug.traceback)
    if not ok then
      T.failures = T.failures + 1
      io.stderr:write(("case %s raised: %s\n"):format(c[1], tostring(err)))
    end
  end
end

function T.done()
  collectgarbage()
  collectgarbage()
  local name = arg and arg[0] or "test"
  io.stderr:write(("%s: %d checks, %d failed\n"):format(name, T.checks, T.failures))
  if T.checks == 0 then return 1 end
  return T.failures == 0 and 0 or 1
end

--- The directory of the running test, for data files.
function T.dir()
  return (arg[0]:match("^(.*)/[^/]*$") or ".")
end

function T.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

return T
