-- G1: the whole ctest suite under ASan + UBSan (clang 14): zero reports.
--
-- The suite itself is the check: scripts/test-all.sh runs every test in a
-- clang build with -fsanitize=address,undefined and
-- -fno-sanitize-recover=undefined (the `ci:asan` pass), and any report
-- aborts the process that made it, so its test fails.  This case proves
-- the second half: that a report does fail.  In the sanitizer build, the
-- canary's heap overflow, leak and signed overflow each end the process
-- with a non-zero status and the sanitizer's report; the clean run exits
-- 0.  In another build it is skipped (exit 77).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

if os.getenv("CHATAPP_SANITIZE") ~= "ON" then
  print("skipped: not a sanitizer build (CHATAPP_SANITIZE=ON runs this case)")
  os.exit(77)
end
local canary = assert(os.getenv("CHATAPP_CANARY"), "CHATAPP_CANARY")
local dir = E.tmpdir()

local function run(mode)
  local errf = dir .. "/" .. mode .. ".err"
  local ok, _, code = os.execute(("%s %s 2>%s"):format(E.quote(canary), mode, E.quote(errf)))
  return ok and 0 or code, E.read(errf) or ""
end

local code, err = run("clean")
T.eq(code, 0, "the clean canary exits 0")
T.eq(err, "", "and reports nothing")

for _, c in ipairs {
  { "overflow", "AddressSanitizer: heap%-buffer%-overflow" },
  { "leak", "LeakSanitizer: detected memory leaks" },
  { "signed-overflow", "runtime error: signed integer overflow" },
} do
  code, err = run(c[1])
  T.check(code ~= 0, c[1] .. ": the process fails (status " .. tostring(code) .. ")")
  T.check(err:find(c[2]), c[1] .. ": the sanitizer's report names it")
end

E.cleanup()
os.exit(T.done())
