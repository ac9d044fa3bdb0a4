-- ctest: timeout=120
-- F2. Credential file mode 0644 / 0640 / symlink / other owner.
-- Criterion: refused; message names the path and mode only; 0600 accepted.
--
-- How: the two credential files chatapp-run reads (the Alibaba Cloud
-- credentials INI file, at ~/.alibabacloud/credentials or where
-- ALIBABA_CLOUD_CREDENTIALS_FILE points, and the aliyun CLI's
-- ~/.aliyun/config.json) hold canary secrets and are made, one at a time,
-- mode 0644, 0640 (and 0604, 0660, 0606 for the other group/other bits),
-- a symbolic link to a 0600 file, a file of another owner (as root only:
-- chown to uid 12345; otherwise skipped, saying so), and 0600 / 0400.
-- chatapp-run runs a policy against the emulator at -vvv each time:
--   * refused: exit 2, and the emulator got no request (refused before any
--     call, no fallback to another source);
--   * the message names the path and the mode (for a link: that it is a
--     symbolic link; for another owner: the uid), and only that: no line
--     of stderr holds the secret, the token, the key id or any other
--     content of the file;
--   * 0600 (and 0400) accepted: exit 0, the calls signed with the file's
--     key.
-- The C unit test tests/c/test_cred.c (test_permissions) checks the reader
-- itself; this is the program end to end.  The OIDC token file is not a
-- credential file in this sense: Kubernetes projects it through symbolic
-- links with mode 0644, and it is a short-lived token (docs/credentials.md).
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"

local SECRET, TOKEN = "F2-CANARY-SECRET-4c1d9e", "F2-CANARY-TOKEN-77ab/x=="
local KEY_ID = "LTAIf2CanaryKeyId0001"
local dir = E.tmpdir()
local keys = E.write(dir .. "/keys.json", assert(chatapp.json.encode {
  keys = { { access_key_id = KEY_ID, access_key_secret = SECRET, account = "2000000000000001" } },
}))
local emu = E.emulator { "--keys", keys }
local policy = E.path("scripts/policies/quality-alert.lua")

local INI = ("[default]\ntype = access_key\naccess_key_id = %s\naccess_key_secret = %s\n# note %s\n")
  :format(KEY_ID, SECRET, TOKEN)
local CLI = assert(chatapp.json.encode {
  current = "main",
  profiles = { { name = "main", mode = "AK", access_key_id = KEY_ID, access_key_secret = SECRET,
                 region_id = "ap-southeast-1", note = TOKEN } },
})

local function sh(cmd) assert(os.execute(cmd), cmd) end

-- The three places, each in a fresh HOME: {path, env}.
local function places(home)
  return {
    { name = "INI file", path = home .. "/.alibabacloud/credentials", text = INI, env = {} },
    { name = "ALIBABA_CLOUD_CREDENTIALS_FILE", path = home .. "/elsewhere/creds.ini", text = INI,
      env = { ALIBABA_CLOUD_CREDENTIALS_FILE = home .. "/elsewhere/creds.ini" } },
    { name = "aliyun CLI config", path = home .. "/.aliyun/config.json", text = CLI, env = {} },
  }
end

local function requests()
  local n = 0
  for _, l in ipairs(emu:log_lines()) do
    if l.op then n = n + 1 end
  end
  return n
end

local function run(home, place)
  local env = { HOME = home, ALIBABA_CLOUD_ACCESS_KEY_ID = false, ALIBABA_CLOUD_ACCESS_KEY_SECRET = false }
  for k, v in pairs(place.env) do env[k] = v end
  local before = requests()
  local r = E.run({ "--endpoint", emu.url, "-vvv", policy }, env)
  r.sent = requests() - before
  return r
end

-- The message names the path and what is wrong, nothing of the contents.
local function only_path_and_mode(r, what)
  for _, bad in ipairs { SECRET, TOKEN, KEY_ID, "LTAIf2", "note", "access_key_secret =", "profiles" } do
    T.check(not (r.out .. r.err):find(bad, 1, true), what .. ": the output holds " .. bad .. ": " .. r.err)
  end
end

local function make(place, mode, how)
  local d = place.path:match("^(.*)/")
  sh(("mkdir -p %s && chmod 700 %s"):format(E.quote(d), E.quote(d)))
  if how == "symlink" then
    local target = d .. "/real-" .. place.path:match("[^/]*$")
    E.write(target, place.text)
    sh("chmod 600 " .. E.quote(target))
    sh(("ln -s %s %s"):format(E.quote(target), E.quote(place.path)))
  else
    E.write(place.path, place.text)
    sh(("chmod %s %s"):format(mode, E.quote(place.path)))
    if how == "owner" then return os.execute("chown 12345:12345 " .. E.quote(place.path)) end
  end
end

local is_root = io.popen("id -u"):read("l") == "0"

-- Each of the three places in a fresh HOME, made (mode, how) and run:
-- fn(place, r, what).  False, with nothing run, when a file of another
-- owner cannot be made.
local function each_place(mode, how, fn)
  for i = 1, 3 do
    local home = E.tmpdir()
    local place = places(home)[i]
    local made = make(place, mode, how)
    if how == "owner" and not made then return false end
    fn(place, run(home, place), place.name .. " " .. (how == "owner" and "owner 12345" or how or mode))
  end
  return true
end

-- Refused: exit 2, no request, the message (expected) on stderr, nothing
-- of the file's contents.
local function refused(place, r, what, expected, names)
  T.eq(r.code, 2, what .. ": refused: " .. r.err)
  T.eq(r.sent, 0, what .. ": no request reached the server")
  T.check(r.err:find(expected:format(place.path), 1, true), what .. ": " .. names .. ": " .. r.err)
  only_path_and_mode(r, what)
end

T.cases {
  { "group or other access: refused, naming path and mode", function()
    for _, mode in ipairs { "0644", "0640", "0604", "0660", "0606" } do
      each_place(mode, nil, function(place, r, what)
        refused(place, r, what, "refusing to use %s: its permissions " .. mode, "names the path and the mode")
      end)
    end
  end },

  { "a symbolic link (to a 0600 file): refused", function()
    each_place(nil, "symlink", function(place, r, what)
      refused(place, r, what, "refusing to use %s: it is a symbolic link", "names the path")
    end)
  end },

  { "another owner: refused", function()
    if not is_root then
      print("# skipped: a file of another owner needs root to make (chown)")
      return
    end
    local made = each_place("0600", "owner", function(place, r, what)
      refused(place, r, what, "refusing to use the file %s: it is owned by uid 12345", "names the path and the owner")
    end)
    if not made then print("# skipped: chown to uid 12345 fails here (a user namespace without that uid?)") end
  end },

  { "0600 and 0400: accepted", function()
    for _, mode in ipairs { "0600", "0400" } do
      each_place(mode, nil, function(place, r, what)
        T.eq(r.code, 0, what .. ": accepted: " .. r.err)
        T.check(r.sent > 0, what .. ": the calls went out, signed with the file's key")
        T.check(r.err:find(place.path, 1, true), what .. ": -v names the source file")
        for _, bad in ipairs { SECRET, TOKEN } do
          T.check(not (r.out .. r.err):find(bad, 1, true), what .. ": no secret in the output")
        end
      end)
    end
  end },
}

emu:stop()
E.cleanup()
return T.done()
