-- C4: an oversize response (over the cap).
-- Criterion: rejected before cjson.decode is called.
--
-- chatapp-run decodes with its own decoder (lua-cjson is not used:
-- runtime/lua/lca_json.c says why), and every decode of a state, API
-- answers typed or not and chatapp.json.decode alike, goes through one
-- function that counts them: core.json_decodes() -> decodes, bytes.  So
-- the proof is that count, read around each call in this process:
--   * first the counter is shown to see API answers: an answer under the
--     cap adds one decode of the answer's length, typed
--     (query_phone_numbers) and untyped (batch with typed = false);
--   * then answers over the cap (chatapp.client's max_response_bytes,
--     --max-response-bytes; 1 MiB here): a Content-Length of 100 MB
--     (`oversize`), of the cap + 1 byte, an endless chunked body and one
--     of the cap + 1 byte without a length (`chunked`): each fails with
--     ETOOBIG, in one attempt (not retried), and the decode count does not
--     move; nor does the Lua heap grow by the body (core.memory());
--   * the same at the default cap (64 MiB) with the 100 MB Content-Length.
package.path = arg[0]:match("^(.*)/") .. "/../lua/?.lua;" .. package.path
local T = require "testlib"
local E = require "e2e"
local chatapp = require "chatapp"
local core = chatapp.core

local CAP = 1024 * 1024
local emu = E.emulator()

local function client(cap)
  return emu:client { max_response_bytes = cap }
end
local small = client(CAP)

local function typed() return small:query_phone_numbers() end
local function untyped()
  local res, err = small:batch { { operation = "QueryChatappPhoneNumbers", typed = false } }
  return res[1], err[1]
end

T.cases {
  { "the counter sees API answers under the cap", function()
    for _, c in ipairs { { "typed", typed }, { "untyped", untyped } } do
      local n0, b0 = core.json_decodes()
      local r, err = c[2]()
      T.check(r, c[1] .. ": answered: " .. tostring(err))
      local n1, b1 = core.json_decodes()
      T.eq(n1 - n0, 1, c[1] .. ": one decode")
      T.check(b1 - b0 > 1000, c[1] .. ": of the answer's bytes: " .. (b1 - b0))
    end
    -- just under the cap, as a chunked body without a length
    emu:fault { kind = "chunked", bytes = CAP - 4096, next = 1 }
    local n0 = core.json_decodes()
    local _, err = typed()
    T.eq(core.json_decodes() - n0, 1, "an answer under the cap reaches the decoder (" .. tostring(err) .. ")")
  end },

  { "over the cap: refused before any decoding", function()
    for _, c in ipairs {
      { "Content-Length 100 MB", { kind = "oversize", bytes = 104857600, next = 1 } },
      { "Content-Length cap + 1", { kind = "oversize", bytes = CAP + 1, next = 1 } },
      { "endless chunked", { kind = "chunked", next = 1 } },
      { "chunked, cap + 1 bytes", { kind = "chunked", bytes = CAP + 1, next = 1 } },
    } do
      for _, call in ipairs { { "typed", typed }, { "untyped", untyped } } do
        local what = c[1] .. ", " .. call[1]
        emu:fault(c[2])
        collectgarbage()
        local used0 = core.memory()
        local n0, b0 = core.json_decodes()
        local r, err = call[2]()
        local n1, b1 = core.json_decodes()
        T.eq(r, nil, what .. ": no result")
        T.eq(err and err.status, "ETOOBIG", what .. ": ETOOBIG: " .. tostring(err))
        T.eq(err and err.attempts, 1, what .. ": not retried")
        T.eq(n1 - n0, 0, what .. ": the decoder was never called")
        T.eq(b1 - b0, 0, what .. ": no byte decoded")
        local used1 = core.memory()
        if used0 and used1 then
          T.check(used1 - used0 < CAP // 4, what .. ": the Lua heap did not take the body: " .. (used1 - used0))
        end
      end
    end
  end },

  { "the default cap (64 MiB): a 100 MB Content-Length", function()
    emu:fault { kind = "oversize", bytes = 104857600, next = 1 }
    local n0 = core.json_decodes()
    local r, err = client(nil):query_phone_numbers()
    T.eq(r, nil)
    T.eq(err and err.status, "ETOOBIG", tostring(err))
    T.eq(core.json_decodes() - n0, 0, "the decoder was never called")
  end },
}

emu:stop()
E.cleanup()
return T.done()
