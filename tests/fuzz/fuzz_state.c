/*
 * Fuzz target: the values of a --state file (lua/chatapp/state/), read as
 * a run reads them.  The state file is untrusted input: a user may edit
 * it with the sqlite3 CLI, a disk may damage it.  Runs in the runtime's
 * Lua state (fuzz_lua.h: capped allocator, protected calls).
 *
 * One state file per process: a temporary file (in /dev/shm when there is
 * one, so commits cost no disk sync; else /tmp) created by the first
 * input and removed at exit.  The script keeps its own connection (the
 * store's M.open, then PRAGMA synchronous=OFF) in a global.
 *
 * The input is cut at each "\n--\n" into up to 13 parts, each the text of
 * one stored column (bound as a parameter, never written into SQL; SQLite's
 * column affinity turns "12" into an integer, "1.5" into a real, as when a
 * user edits the file):
 *    1 numbers.snapshot   of 8613800000001 (in the current list)
 *    2 numbers.since      of it
 *    3 numbers.first_seen of it
 *    4 numbers.snapshot   of 8613800000009 (not in the list: gone)
 *    5 numbers.since      of it
 *    6 numbers.first_seen of it
 *    7 numbers.snapshot   of 8613800000002 (in the list; since "{}",
 *                         first_seen 1)
 *    8 reminders.last_fired   (policy p, space cs-1, number ...0001)
 *    9 outbox.record
 *   10 outbox.kind
 *   11 outbox.created
 *   12 outbox.id          (default "a1")
 *   13 outbox.attempts    (default 0)
 * A part left out leaves its row out (a snapshot) or takes a default.
 * Per input, one transaction deletes every row and inserts these; then
 * chatapp.state runs as the runner runs it, with CHATAPP_RUN_NOW fixed:
 * open -> observe("acct", {cs-1}, {a fixed list of ...0001 and ...0002,
 * decoded with core.decode_phone_numbers}) -> load_reminders -> quiet and
 * fired / unmatched for a policy with remind -> commit -> resume({}) ->
 * settle -> close.
 *
 * Properties: no crash, no leak, no undefined behaviour; none of these
 * raises (each returns true / a list, or nil and a message); every
 * message is a string naming the state file; the numbers' history
 * (previous, first_seen, changed, since, held) and the gone numbers read
 * fine; every resumed action is planned, failed with an error string, or
 * skipped with a reason, keeps the id of its outbox row, and prints in the
 * text report (Report:print_action) without a control character.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two literals (C99 allows 4095 characters in one), joined at start. */
static const char script_fill[] =
  "local text, path = ...\n"
  "local chatapp = require 'chatapp'\n"
  "local core = chatapp.core\n"
  "local state = require 'chatapp.state'\n"
  "local backend = require 'chatapp.state.sqlite'\n"
  "if not FUZZ_DB then\n"
  "  local store = assert(backend.open(path))\n"
  "  FUZZ_DB = store.db\n"
  "  assert(FUZZ_DB:exec('PRAGMA synchronous=OFF'))\n"
  "end\n"
  "local db = FUZZ_DB\n"
  "local parts, pos = {}, 1\n"
  "while #parts < 13 do\n"
  "  local at = text:find('\\n--\\n', pos, true)\n"
  "  parts[#parts + 1] = text:sub(pos, (at or #text + 1) - 1)\n"
  "  if not at then break end\n"
  "  pos = at + 4\n"
  "end\n"
  "local function fill()\n"
  "  for _, t in ipairs { 'numbers', 'transitions', 'reminders', 'outbox' } "
  "do\n"
  "    assert(db:run('DELETE FROM ' .. t))\n"
  "  end\n"
  "  local function number(i, num, since, first)\n"
  "    if parts[i] == nil then return true end\n"
  "    return db:run('INSERT INTO numbers (account, space, number, snapshot, "
  "'\n"
  "      .. 'first_seen, last_seen, since) VALUES (?1, ?2, ?3, ?4, ?5, ?5, "
  "?6)',\n"
  "      'acct', 'cs-1', num, parts[i], first or '1', since or '{}')\n"
  "  end\n"
  "  if not number(1, '8613800000001', parts[2], parts[3]) then return end\n"
  "  if not number(4, '8613800000009', parts[5], parts[6]) then return end\n"
  "  if not number(7, '8613800000002') then return end\n"
  "  if parts[8] and not db:run('INSERT INTO reminders (account, policy, "
  "space, '\n"
  "      .. 'number, last_fired) VALUES (?1, ?2, ?3, ?4, ?5)', 'acct', 'p', "
  "'cs-1',\n"
  "      '8613800000001', parts[8]) then return end\n"
  "  if parts[9] and not db:run('INSERT INTO outbox (account, id, policy, "
  "kind, '\n"
  "      .. 'space, number, target, record, status, created, updated, "
  "attempts) '\n"
  "      .. 'VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)',\n"
  "      'acct', parts[12] or 'a1', 'p', parts[10] or 'webhook', 'cs-1',\n"
  "      '8613800000001', 'POST https://hooks.example/a', parts[9], "
  "'pending',\n"
  "      parts[11] or '1700000000', parts[13] or '0') then return end\n"
  "  return true\n"
  "end\n"
  "assert(db:exec('BEGIN IMMEDIATE'))\n"
  "if not fill() then assert(db:exec('ROLLBACK')) return end\n"
  "assert(db:exec('COMMIT'))\n";

static const char script_run[] =
  "local report = require 'chatapp.report'\n"
  "local function failed(what, ok, err)\n"
  "  if ok then return false end\n"
  "  assert(type(err) == 'string', what .. ' failed without a message')\n"
  "  assert(err:find(path, 1, true), what .. ': the message does not name "
  "the file: ' .. err)\n"
  "  return true\n"
  "end\n"
  "local st, err = state.open(path, { max_age = 3600 })\n"
  "if failed('open', st, err) then return end\n"
  "local space = { cust_space_id = 'cs-1', label = 'one' }\n"
  "local list = assert(core.decode_phone_numbers('{\"PhoneNumbers\":['\n"
  "  .. '{\"PhoneNumber\":\"8613800000001\",\"QualityRating\":\"GREEN\",'\n"
  "  .. '\"Status\":\"CONNECTED\",\"MessagingLimitTier\":\"TIER_1K\"},'\n"
  "  .. '{\"PhoneNumber\":\"8613800000002\",\"QualityRating\":\"RED\"}]}', "
  "space))\n"
  "local function run()\n"
  "  local ok, e = st:observe('acct', { space }, { list })\n"
  "  if failed('observe', ok, e) then return end\n"
  "  for _, n in ipairs(list) do\n"
  "    local p = n.previous\n"
  "    if p ~= nil then\n"
  "      for _, f in ipairs(chatapp.fields) do local _ = p[f] end\n"
  "      assert(p.previous == nil)\n"
  "      assert(type(tostring(p)) == 'string')\n"
  "    end\n"
  "    assert(math.type(n.first_seen) == 'integer')\n"
  "    local c = n:changed()\n"
  "    assert(type(c) == 'boolean')\n"
  "    for _, f in ipairs(core.phone_tracked()) do\n"
  "      local ch = n:changed(f)\n"
  "      assert(type(ch) == 'boolean')\n"
  "      local s, h = n:since(f), n:held(f)\n"
  "      assert(s == nil or math.type(s) == 'integer')\n"
  "      assert(h == nil or (math.type(h) == 'integer' and h >= 0))\n"
  "    end\n"
  "  end\n"
  "  for _, n in ipairs(st.gone[1] or {}) do\n"
  "    for _, f in ipairs(chatapp.fields) do local _ = n[f] end\n"
  "  end\n"
  "  ok, e = st:load_reminders()\n"
  "  if failed('load_reminders', ok, e) then return end\n"
  "  local policy = { name = 'p', remind = 86400 }\n"
  "  for i, n in ipairs(list) do\n"
  "    local q = st:quiet(policy, space, n)\n"
  "    assert(q == nil or math.type(q) == 'integer', 'quiet: ' .. "
  "tostring(q))\n"
  "    if i == 1 and not q then st:fired(policy, space, n) end\n"
  "    if i == 2 then st:unmatched(policy, space, n) end\n"
  "  end\n"
  "  ok, e = st:commit()\n"
  "  if failed('commit', ok, e) then return end\n"
  "  local todo\n"
  "  todo, e = st:resume({})\n"
  "  if failed('resume', todo, e) then return end\n"
  "  local id = parts[12] or 'a1'\n"
  "  local rep = report.new({ output = 'text' }, {}, function() end)\n"
  "  for _, a in ipairs(todo) do\n"
  "    assert(a.id == id, 'a resumed action took id ' .. tostring(a.id))\n"
  "    if a.status == 'failed' then\n"
  "      assert(type(a.error) == 'string', 'failed without an error')\n"
  "    elseif a.status == 'skipped' then\n"
  "      assert(type(a.reason) == 'string', 'skipped without a reason')\n"
  "    else\n"
  "      assert(a.status == 'planned', 'status ' .. tostring(a.status))\n"
  "      a.status, a.error = 'failed', 'not sent by the fuzzer'\n"
  "    end\n"
  "    assert(math.type(a.outbox_age) == 'integer' and a.outbox_age >= 0)\n"
  "    local out = {}\n"
  "    rep:print_action(a, { write = function(self, ...)\n"
  "      for _, x in ipairs { ... } do out[#out + 1] = x end\n"
  "      return self\n"
  "    end })\n"
  "    assert(not table.concat(out):find('[%z\\1-\\9\\11-\\31\\127]'),\n"
  "           'a control character in the report')\n"
  "  end\n"
  "  ok, e = st:settle(todo)\n"
  "  if failed('settle', ok, e) then return end\n"
  "end\n"
  "local ok, e = pcall(run)\n"
  "st:close()\n"
  "if not ok then error(e, 0) end\n";

static char script[sizeof script_fill + sizeof script_run];
static char path[64];
static int made;

static void cleanup(void)
{
  char side[96];

  if (!made)
    return;
  unlink(path);
  snprintf(side, sizeof side, "%s-journal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!made) {
    int fd;

    snprintf(path, sizeof path, "%s/fuzz_state.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    fd = mkstemp(path);
    if (fd < 0) {
      perror("mkstemp");
      abort();
    }
    close(fd);
    made = 1;
    atexit(cleanup);
    if (setenv("CHATAPP_RUN_NOW", "1700003600", 1) != 0)
      abort();
    memcpy(script, script_fill, sizeof script_fill - 1);
    memcpy(script + sizeof script_fill - 1, script_run, sizeof script_run);
  }
  fuzz_lua_run(script, (const char *)data, size, path);
  return 0;
}
