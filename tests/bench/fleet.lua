--- A synthetic ISV fleet for the benchmarks: spaces of numbers shaped as
--- the API sends them (about 600 bytes of JSON a number, with a nested
--- CallingConfigure), as an API answer (for core.decode_phone_numbers), as
--- an emulator fixture (chatapp-emulator --data) and as a --spaces file.
--- Number i (1-based, across all spaces) lives in space (i - 1) // per + 1.
--
--   local fleet = require "fleet"
--   fleet.fixture(100, 10)      -- emulator fixture text, 100 spaces of 10
--   fleet.spaces_json(100)      -- the matching --spaces file text
--   fleet.answer(s, 10, rating) -- space s's QueryChatappPhoneNumbers answer

local F = {}

F.RATINGS = { "GREEN", "YELLOW", "RED" }
F.STATUSES = { "CONNECTED", "CONNECTED", "CONNECTED", "FLAGGED", "RESTRICTED" }
F.TIERS = { "TIER_1K", "TIER_10K", "TIER_100K", "TIER_UNLIMITED" }

function F.space_id(s) return ("C2023%010d"):format(s) end
function F.phone(i) return ("86138%08d"):format(i) end

--- Number i's starting rating (a name of F.RATINGS).
function F.rating(i) return F.RATINGS[i % #F.RATINGS + 1] end

--- The spaces, as chatapp.state and --spaces take them.
function F.spaces(nspaces)
  local list = {}
  for s = 1, nspaces do
    list[s] = { cust_space_id = F.space_id(s), label = ("Customer %d"):format(s) }
  end
  return list
end

--- Number i of space s, API-shaped JSON text; rating: a name (default F.rating(i)).
function F.number_json(i, s, rating)
  return ('{"PhoneNumber":"%s","VerifiedName":"Customer %d Support","Status":"%s",'
    .. '"QualityRating":"%s","MessagingLimitTier":"%s","CodeVerificationStatus":"VERIFIED",'
    .. '"NameStatus":"Approval","NewNameStatus":"Approval",'
    .. '"UpCallbackUrl":"https://hooks.example.com/cams/C2023%06d/inbound",'
    .. '"StatusCallbackUrl":"https://hooks.example.com/cams/C2023%06d/status",'
    .. '"UpQueue":"Alicom-Queue-%d-ChatAppInbound","StatusQueue":"Alicom-Queue-%d-ChatAppStatus",'
    .. '"IsOfficial":"N","CallingConfigure":{"Calling":{"Status":"DISABLED"}}}')
    :format(F.phone(i), s, F.STATUSES[i % #F.STATUSES + 1], rating or F.rating(i),
            F.TIERS[i % #F.TIERS + 1], s, s, 1000000 + s, 1000000 + s)
end

-- The numbers of space s (per a space), JSON texts joined by commas.
local function numbers(s, per, rating)
  local parts = {}
  for k = 1, per do
    local i = (s - 1) * per + k
    parts[k] = F.number_json(i, s, rating and rating(i))
  end
  return table.concat(parts, ",")
end

--- Space s's answer as the API sends it; rating(i) names number i's
--- rating (default F.rating).
function F.answer(s, per, rating)
  return '{"RequestId":"B","Code":"OK","Message":"SUCCESS","PhoneNumbers":[' .. numbers(s, per, rating) .. "]}"
end

--- An emulator fixture (emu_data.c's format): nspaces spaces of per numbers.
function F.fixture(nspaces, per)
  local parts = {}
  for s = 1, nspaces do
    parts[s] = ('{"cust_space_id":"%s","label":"Customer %d","phone_numbers":[%s]}')
      :format(F.space_id(s), s, numbers(s, per))
  end
  return '{"spaces":[\n' .. table.concat(parts, ",\n") .. "\n]}\n"
end

--- The matching --spaces file.
function F.spaces_json(nspaces)
  local parts = {}
  for s = 1, nspaces do
    parts[s] = ('{"cust_space_id":"%s","label":"Customer %d"}'):format(F.space_id(s), s)
  end
  return "[\n" .. table.concat(parts, ",\n") .. "\n]\n"
end

return F
