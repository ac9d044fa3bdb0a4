/*
 * Fuzz target: a --replay recording (lua/chatapp/recording.lua), read as
 * the runner reads it: the input is written to a file, recording.load()
 * parses it, and recording.answer() turns each recorded space into a typed
 * list of numbers or an ApiError, which is then shown as the report shows
 * it (tostring) and its fields read.  Runs in the runtime's Lua state
 * (fuzz_lua.h: capped allocator, protected calls).
 *
 * Properties: no crash, no leak, no undefined behaviour; load and answer
 * never raise, they return nil and a message; every list holds
 * PhoneNumbers whose fields can be read and encoded (messaging_limit is
 * nil or not negative); every error converts to a string.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_lua.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char script[] =
  "local text, path = ...\n"
  "local chatapp = require 'chatapp'\n"
  "local recording = require 'chatapp.recording'\n"
  "local rec, err = recording.load(path)\n"
  "if rec == nil then\n"
  "  assert(type(err) == 'string', 'load failed without a message')\n"
  "  return\n"
  "end\n"
  "assert(type(rec) == 'table', 'load returned a ' .. type(rec))\n"
  "local function check(space)\n"
  "  local list, e = recording.answer(rec, space, path)\n"
  "  if list then\n"
  "    for _, n in ipairs(list) do\n"
  "      for _, f in ipairs(chatapp.fields) do local _ = n[f] end\n"
  "      local lim = n.messaging_limit\n"
  "      assert(lim == nil or lim >= 0, 'messaging_limit ' .. tostring(lim))\n"
  "      assert(chatapp.core.json_encode(n))\n"
  "      assert(type(tostring(n)) == 'string')\n"
  "    end\n"
  "  else\n"
  "    assert(e ~= nil, 'answer failed without an error')\n"
  "    assert(type(tostring(e)) == 'string')\n"
  "    local _ = e.code, e.message, e.status, e.operation\n"
  "  end\n"
  "end\n"
  "for id in pairs(rec) do\n"
  "  assert(type(id) == 'string', 'a space id that is not a string')\n"
  "  check(id == '' and { label = 'own numbers' } or\n"
  "        { cust_space_id = id, label = 'L' })\n"
  "end\n"
  "check({ cust_space_id = 'not-recorded' })\n";

static char path[] = "/tmp/fuzz_recording.XXXXXX";
static int fd = -1;

static void cleanup(void)
{
  if (fd >= 0) {
    close(fd);
    unlink(path);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  size_t done = 0;

  if (fd < 0) {
    fd = mkstemp(path);
    if (fd < 0) {
      perror("mkstemp");
      abort();
    }
    atexit(cleanup);
  }
  if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0)
    abort();
  while (done < size) {
    ssize_t w = write(fd, data + done, size - done);
    if (w <= 0)
      abort();
    done += (size_t)w;
  }
  fuzz_lua_run(script, (const char *)data, size, path);
  return 0;
}
