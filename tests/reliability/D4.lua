-- D4: io, os.execute, os.exit, require, load of a binary chunk, debug,
-- string.dump, collectgarbage("stop").
-- Criterion: nil or error; the host keeps running.
--
-- End to end: chatapp-run --emulator --dry-run --output json with a policy
-- file of probes and the well-behaved file (tests/policies/) after it.
-- Each thing gets two policies:
--   * "nil-or-error:THING" reaches it under pcall and matches a number
--     only when it is nil or raised (so a probe that never ran fails);
--   * "call:THING" calls it unprotected, as a script would: it must fail
--     on every number with an error, never act (os.exit would end the
--     host, collectgarbage("stop") would stop its collector, io.open
--     would write a file the test then looks for).
-- Then the host kept running: the run ends by itself with a summary (exit
-- 1: policies failed), the well-behaved file matched all 7 numbers, no
-- file was written, and the policies after the unprotected calls ran.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local dir = E.tmpdir()
local marker = dir .. "/written-by-a-policy"

-- name, an expression reaching the thing (nil or raising = out of reach),
-- and a statement using it unprotected
local PROBES = {
  { "io", "io", "io.open(%q, 'w'):write('x')" },
  { "io.popen", "io.popen", "io.popen('touch ' .. %q)" },
  { "os.execute", "os.execute", "os.execute('touch ' .. %q)" },
  { "os.exit", "os.exit", "os.exit(0)" },
  { "os.remove", "os.remove", "os.remove(%q)" },
  { "require io", "require('io')", "require('io').open(%q, 'w')" },
  { "require os", "require('os')", "require('os').exit(0)" },
  { "require debug", "require('debug')", "require('debug').sethook()" },
  { "package", "package", "package.loadlib('libc.so.6', 'system')" },
  { "load binary, mode b", "load('\\27Lua', 'x', 'b')", "load('\\27LuaT', 'x', 'b')()" },
  { "load binary, default mode", "load('\\27LuaT\\0')", "load('\\27LuaT\\0')()" },
  { "load of string.dump", "load(string.dump(function() end))", "load(string.dump(function() end))()" },
  { "loadfile", "loadfile", "loadfile(%q)" },
  { "dofile", "dofile", "dofile(%q)" },
  { "debug", "debug", "debug.sethook()" },
  { "debug via getmetatable", "getmetatable('').__index.dump", "getmetatable('').__index.dump(print)" },
  { "string.dump", "string.dump", "string.dump(print)" },
  { "(''):dump", "('').dump", "(''):dump()" },
  { "collectgarbage stop", "collectgarbage('stop')", "collectgarbage('stop')" },
  { "collectgarbage generational", "collectgarbage('generational')", "collectgarbage('generational')" },
  { "collectgarbage setpause", "collectgarbage('setpause', 1000)", "collectgarbage('setpause', 1000)" },
}

local src = { 'local chatapp = require "chatapp"', "local list = {}" }
for _, p in ipairs(PROBES) do
  src[#src + 1] = ([[
list[#list + 1] = chatapp.policy { name = %q, filter = function()
  local ok, v = pcall(function() return %s end)
  return not ok or v == nil
end }
list[#list + 1] = chatapp.policy { name = %q, filter = function() %s return true end }]]):format(
    "nil-or-error:" .. p[1], p[2], "call:" .. p[1], p[3]:gsub("%%q", ("%q"):format(marker)))
end
src[#src + 1] = 'list[#list + 1] = chatapp.policy { name = "after", filter = function() return true end }'
src[#src + 1] = "return list"
local probe = E.write(dir .. "/probes.lua", table.concat(src, "\n"))

local r = E.dry_run { "--instruction-limit", "1000000000", probe }
local by = r.by
T.eq(r.code, 1, "the run ended by itself, policies failing: " .. r.blurb)
T.check(r.summary, "a summary was printed: " .. r.blurb)
for _, p in ipairs(PROBES) do
  local a, b = by["nil-or-error:" .. p[1]], by["call:" .. p[1]]
  T.eq(a and a.matched, 7, p[1] .. ": nil or an error")
  T.eq(b and b.errors, 7, p[1] .. ": used unprotected, an error on every number")
  T.eq(b and b.matched, 0, p[1] .. ": and nothing matched")
end
T.eq(by.after and by.after.matched, 7, "the policy after the unprotected calls ran")
T.eq(by["well-behaved"] and by["well-behaved"].matched, 7, "the well-behaved file ran")
T.eq(E.read(marker), nil, "no policy wrote a file")
E.cleanup()
return T.done()
