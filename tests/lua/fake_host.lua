--- A host for chatapp.runner without the network: its client answers
--- every request of a batch with the same list of numbers (decoded as a
--- QueryChatappPhoneNumbers answer for the request's space), it has no
--- HTTP client, and log lines go to opts.log (dropped by default).
--
--   local host = require("fake_host").new { { PhoneNumber = "1", Status = "CONNECTED" } }
--   local r = require("chatapp.runner").new({ output = "none" }, host)
--
-- opts.space: the space every answer is decoded for (the request's own
-- by default); opts.http_error: the error host.http gives.
local chatapp = require "chatapp"
local core = chatapp.core

local M = {}

function M.new(numbers, opts)
  opts = opts or {}
  local fixture = assert(chatapp.json.encode { Code = "OK", RequestId = "R", PhoneNumbers = numbers })
  local client = {
    batch = function(_, reqs)
      local res = {}
      for i, r in ipairs(reqs) do res[i] = core.decode_phone_numbers(fixture, opts.space or r.space) end
      return res, {}
    end,
    stats = function() return { calls = 1, attempts = 1, retries = 0, throttled = 0, failed = 0 } end,
  }
  return {
    client = function() return client, "fake" end,
    http = function() return nil, opts.http_error or "no http here" end,
    log = opts.log or function() end,
  }
end

return M
