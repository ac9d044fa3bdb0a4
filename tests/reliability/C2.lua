-- C2: corpus and crash replay in ctest.
-- Criterion: all pass under ASan.
--
-- Every fuzz target of tests/fuzz/CMakeLists.txt (FUZZ_TARGETS, the list
-- scripts/fuzz.sh runs too) must have:
--   * a corpus, tests/fuzz/corpus/NAME/, of at least 8 inputs (seeds and
--     every input a fuzzer ever failed on, named after what it found);
--   * a ctest test fuzz/TARGET (ctest --show-only=json-v1 of this build)
--     whose command runs the target's replay binary over every file of
--     that corpus, none left out;
-- and the replay itself passes here: each binary run over its corpus
-- exits 0 having replayed every input ("N inputs replayed").  In CI's
-- ASan pass (scripts/test-all.sh) this test, and the fuzz/* tests, run in
-- the clang build with AddressSanitizer + UBSan (halt on error, leaks
-- checked at exit): "all pass under ASan" is that pass being green.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local build = assert(E.run_bin:match("^(.*)/[^/]+$"), "the build folder")
local src = E.root

local function lines(cmd)
  local p = io.popen(cmd)
  local t = {}
  for l in p:lines() do t[#t + 1] = l end
  p:close()
  return t
end

-- FUZZ_TARGETS: target:corpus[:library]
local cm = assert(E.read(src .. "/tests/fuzz/CMakeLists.txt"))
local list = assert(cm:match("set%(FUZZ_TARGETS(.-)%)"), "FUZZ_TARGETS")
local targets = {}
for target, corpus in list:gmatch("(fuzz_[%w_]+):([%w_]+)") do
  targets[#targets + 1] = { target = target, corpus = corpus }
end
T.check(#targets >= 10, "the fuzz targets are listed: " .. #targets)

-- the registered tests and their commands
local p = io.popen(("ctest --test-dir %s --show-only=json-v1 2>/dev/null"):format(E.quote(build)))
local doc = chatapp.json.decode(p:read("a"))
p:close()
T.check(doc and doc.tests, "ctest lists this build's tests")
local tests = {}
for _, t in ipairs(doc and doc.tests or {}) do tests[t.name] = t.command end

local cases = {}
for _, f in ipairs(targets) do
  cases[#cases + 1] = { f.target, function()
    local dir = src .. "/tests/fuzz/corpus/" .. f.corpus
    local files = lines("ls -A " .. E.quote(dir) .. " 2>/dev/null")
    T.check(#files >= 8, f.target .. ": a corpus of at least 8 inputs in " .. dir .. ": " .. #files)
    local cmd = tests["fuzz/" .. f.target]
    if not T.check(cmd, "fuzz/" .. f.target .. " is a ctest test") then return end
    local named = {}
    for _, a in ipairs(cmd) do named[a] = true end
    local missing = {}
    for _, name in ipairs(files) do
      local found = false
      for a in pairs(named) do
        local tail = "/corpus/" .. f.corpus .. "/" .. name
        if a:sub(-#tail) == tail then found = true break end
      end
      if not found then missing[#missing + 1] = name end
    end
    T.eq(#missing, 0, f.target .. ": every corpus file is replayed; missing: " .. table.concat(missing, ", "))
    -- the replay, here (the binary the test runs, without a launcher)
    local bin
    for _, a in ipairs(cmd) do
      if a:match("/" .. f.target .. "$") then bin = a end
    end
    if not T.check(bin, f.target .. ": the replay binary in the command") then return end
    local args = { E.quote(bin) }
    for _, name in ipairs(files) do args[#args + 1] = E.quote(dir .. "/" .. name) end
    local out = E.tmpdir() .. "/out"
    local ok = os.execute(table.concat(args, " ") .. " >" .. out .. " 2>&1")
    local text = E.read(out) or ""
    T.check(ok, f.target .. ": the replay passes: " .. text:sub(-1500))
    T.check(text:find(("%d inputs replayed"):format(#files), 1, true),
      f.target .. ": every input replayed: " .. text:sub(-300))
  end }
end
T.cases(cases)
E.cleanup()
return T.done()
