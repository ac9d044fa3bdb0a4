-- G2: valgrind memcheck on the unit subset: zero defects, and the job
-- fails if there are any.
--
-- scripts/test-all.sh reconfigures the gcc build with CHATAPP_VALGRIND=ON
-- and runs `ctest -L unit` (the `ci:valgrind` pass): each unit test runs
-- under the launcher of tests/CMakeLists.txt (UNIT_VALGRIND), which makes
-- any memcheck error or definite leak exit 99, so the test and the job
-- fail.  (ctest's own `-T memcheck` mode reports success even when
-- valgrind finds defects, which is why the launcher is used instead.)
-- This case runs that same launcher, flags and all, on the canary: the
-- clean run passes, the leak and the read past a buffer each exit 99.
-- Skipped (exit 77) in a sanitizer build, whose allocator valgrind cannot
-- follow, and where valgrind is missing.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"

local launcher = os.getenv("CHATAPP_VALGRIND_CMD") or ""
if os.getenv("CHATAPP_SANITIZE") == "ON" then
  print("skipped: a sanitizer build (valgrind cannot run ASan binaries)")
  os.exit(77)
end
if not os.execute("command -v valgrind >/dev/null 2>&1") then
  print("skipped: valgrind is not installed (scripts/setup.sh installs it)")
  os.exit(77)
end
T.check(launcher:find("--error-exitcode=99", 1, true), "the launcher fails on an error")
T.check(launcher:find("--errors-for-leak-kinds=definite", 1, true),
        "and counts a definite leak as an error")
local canary = assert(os.getenv("CHATAPP_CANARY"), "CHATAPP_CANARY")
local dir = E.tmpdir()

local function run(mode)
  local errf = dir .. "/" .. mode .. ".err"
  local ok, _, code = os.execute(("%s %s %s 2>%s"):format(launcher, E.quote(canary), mode,
                                                          E.quote(errf)))
  return ok and 0 or code, E.read(errf) or ""
end

local code, err = run("clean")
T.eq(code, 0, "the clean canary passes under the launcher")
code, err = run("leak")
T.eq(code, 99, "a definite leak fails (" .. err:sub(1, 200) .. ")")
T.check(err:find("definitely lost", 1, true), "valgrind names the leak")
code, err = run("overflow")
T.eq(code, 99, "a read past a buffer fails")
T.check(err:find("Invalid read", 1, true), "valgrind names the invalid read")

E.cleanup()
os.exit(T.done())
