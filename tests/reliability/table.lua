-- docs/reliability.md stays true: every case of the list (A1 ... G2) has
-- exactly one row; a row's test exists (tests/reliability/<ID>.lua for
-- `reliability/<ID>`, a pass of scripts/test-all.sh for `ci:<pass>`); a
-- row marked open names no test; and every case file has its row.
-- arg[1]: the source tree.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"

local root = assert(arg[1], "arg[1]: the source tree")

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- The cases of the list, by group and count.
local GROUPS = { A = 8, B = 13, C = 4, D = 7, E = 6, F = 4, G = 2 }
local want = {}
for g, n in pairs(GROUPS) do
  for i = 1, n do want[g .. i] = true end
end

-- The passes of scripts/test-all.sh a row may name, and what shows it.
local script = assert(read(root .. "/scripts/test-all.sh"), "scripts/test-all.sh")
local CI = {
  asan = 'pass "clang, ASan + UBSan"',
  valgrind = "CHATAPP_VALGRIND=ON",
  fuzz = "scripts/fuzz.sh",
}
local STATUS = { ["passes"] = true, ["passes, loosened"] = true, ["adapted"] = true,
                 ["not testable here"] = true, ["open"] = true }

local doc = assert(read(root .. "/docs/reliability.md"), "docs/reliability.md")
local seen = {}
for line in doc:gmatch("[^\n]+") do
  local cells = {}
  for c in (line .. ""):gmatch("|%s*([^|]-)%s*%f[|]") do cells[#cells + 1] = c end
  local id = cells[1]
  if id and id:match("^[A-G]%d+$") then
    T.check(want[id], "a row for a case of the list: " .. id)
    T.check(not seen[id], "one row for " .. id)
    seen[id] = true
    local test, status = cells[4] or "", cells[5] or ""
    T.check(STATUS[status], ("%s: a known status (%q)"):format(id, status))
    if status == "open" then
      T.eq(test, "–", id .. ": an open case names no test")
    else
      for name in test:gmatch("`([^`]+)`") do
        local ci = name:match("^ci:(.+)$")
        if ci then
          T.check(CI[ci] and script:find(CI[ci], 1, true),
               ("%s: the CI pass %s is in scripts/test-all.sh"):format(id, name))
        else
          T.eq(name, "reliability/" .. id, id .. ": its test is named by its ID")
          T.check(read(root .. "/tests/reliability/" .. id .. ".lua"),
               ("%s: tests/reliability/%s.lua exists"):format(id, id))
        end
      end
      T.check(test:find("`", 1, true), id .. ": a row that is not open names its test")
    end
  end
end
for id in pairs(want) do T.check(seen[id], "docs/reliability.md has a row for " .. id) end

-- Every case file has its row (and so is listed).
local p = assert(io.popen("ls '" .. root .. "/tests/reliability'"))
for f in p:lines() do
  local id = f:match("^([A-G]%d+)%.lua$")
  if id then
    T.check(seen[id] and doc:find("`reliability/" .. id .. "`", 1, true),
         ("tests/reliability/%s.lua has its row in docs/reliability.md"):format(id))
  end
end
p:close()
T.done()
