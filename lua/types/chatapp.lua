---@meta chatapp
-- LuaLS (lua-language-server) annotations for `require "chatapp"`:
-- completion, hover and type checks in editors.  Not loaded at run time.
--
-- Installed to <prefix>/share/chatapp/types/; point LuaLS at that folder:
--   .luarc.json:  { "runtime.version": "Lua 5.4",
--                   "workspace.library": ["/usr/local/share/chatapp/types"] }
-- docs/embedding.md has the details.  tests/install/lua_host.lua checks
-- that every module member, PhoneNumber field, Client method and config
-- key is described here.

---@class chatapp
local chatapp = {}

--- Version of the library, e.g. "0.1.0".
---@type string
chatapp.version = nil

--- The C part of the module (`require "chatapp.core"`).
---@type chatapp.core
chatapp.core = nil

--- Names of every PhoneNumber field, in the order of the API's answer.
---@type string[]
chatapp.fields = nil

--- Description of each enum, by name: its known values, the PhoneNumber
--- field it applies to and whether the documentation closes the set.
---@type table<string, chatapp.EnumInfo>
chatapp.enums = nil

---@class chatapp.EnumInfo
---@field values string[] the values the runtime knows
---@field field string the PhoneNumber field, e.g. "quality_rating"
---@field closed boolean true when no other value is valid (QualityRating)
---@field name? string the enum's name (from chatapp.enum_for_field)

------------------------------------------------------------------------------
-- Enums.  Read-only tables whose members are their own names:
-- chatapp.Status.FLAGGED == "FLAGGED".  A misspelt member raises.  The sets
-- are open: the API may send values not listed, which reach policies as
-- plain strings.

---@enum chatapp.Status
chatapp.Status = {
  CONNECTED = "CONNECTED",
  FLAGGED = "FLAGGED",
  RESTRICTED = "RESTRICTED",
  BANNED = "BANNED",
  RATE_LIMITED = "RATE_LIMITED",
  PENDING = "PENDING",
  MIGRATED = "MIGRATED",
  DISCONNECTED = "DISCONNECTED",
  UNVERIFIED = "UNVERIFIED",
  DELETED = "DELETED",
  UNKNOWN = "UNKNOWN",
  OFFLINE = "OFFLINE",
  PAUSED = "PAUSED",
}

---@enum chatapp.QualityRating
chatapp.QualityRating = {
  GREEN = "GREEN",
  YELLOW = "YELLOW",
  RED = "RED",
  UNKNOWN = "UNKNOWN",
}

---@enum chatapp.MessagingLimitTier
chatapp.MessagingLimitTier = {
  TIER_50 = "TIER_50",
  TIER_250 = "TIER_250",
  TIER_1K = "TIER_1K",
  TIER_2K = "TIER_2K",
  TIER_10K = "TIER_10K",
  TIER_100K = "TIER_100K",
  TIER_UNLIMITED = "TIER_UNLIMITED",
  TIER_NOT_SET = "TIER_NOT_SET",
}

---@enum chatapp.CodeVerificationStatus
chatapp.CodeVerificationStatus = {
  VERIFIED = "VERIFIED",
  REVOKED = "REVOKED",
  MORE_INFORMATION_REQUESTED = "MORE_INFORMATION_REQUESTED",
  REJECTED = "REJECTED",
}

---@enum chatapp.NameStatus
chatapp.NameStatus = {
  Approval = "Approval",
  Pending_Review = "Pending_Review",
  Rejected = "Rejected",
}

---@enum chatapp.NewNameStatus
chatapp.NewNameStatus = {
  Approval = "Approval",
  Pending_Review = "Pending_Review",
  Rejected = "Rejected",
}

--- The enum description for a PhoneNumber field, or nil when the field is
--- not an enum.
---@param field string e.g. "status"
---@return chatapp.EnumInfo?
function chatapp.enum_for_field(field) end

--- Edit distance of two strings (a swap of neighbours counts one).
---@param a string
---@param b string
---@return integer
function chatapp.distance(a, b) end

--- The name of names nearest to word (a typo, a case slip, a "_" prefix),
--- or nil when none is near: the one did-you-mean rule of the product.
---@param word string
---@param names string[]
---@return string?
function chatapp.suggest(word, names) end

--- "; did you mean PREFIXname?" for word among names, or "".
---@param word string
---@param names string[]
---@param prefix? string
---@return string
function chatapp.did_you_mean(word, names, prefix) end

--- A where value this version does not know yet, expected on purpose:
--- where = { status = chatapp.unknown_value "NEW_STATE" }.
---@param value string
---@return any
function chatapp.unknown_value(value) end

--- A read-only view of t that raises on a key t does not have.
---@generic T: table
---@param name string shown in the error, e.g. "chatapp.Status"
---@param t T
---@param known string|string[] the valid keys, for the error message (and its did-you-mean)
---@return T
function chatapp.strict(name, t, known) end

------------------------------------------------------------------------------
-- PhoneNumber

--- One sender number.  Read-only; reading a field that does not exist
--- raises an error naming the valid ones.  Enum fields hold the API's
--- string as is (a value the runtime does not know is kept, not an error).
--- Absent fields are nil.
---@class chatapp.PhoneNumber
---@field phone_number string the number, e.g. "8613800000001" (PhoneNumber)
---@field verified_name? string display name Meta approved (VerifiedName)
---@field status? chatapp.Status|string CONNECTED, FLAGGED, BANNED, ... (Status)
---@field quality_rating? chatapp.QualityRating|string GREEN, YELLOW, RED, UNKNOWN (QualityRating)
---@field messaging_limit_tier? chatapp.MessagingLimitTier|string TIER_1K, ... (MessagingLimitTier)
---@field code_verification_status? chatapp.CodeVerificationStatus|string (CodeVerificationStatus)
---@field name_status? chatapp.NameStatus|string review of the display name (NameStatus)
---@field new_name_status? chatapp.NewNameStatus|string review of a requested new name (NewNameStatus)
---@field up_callback_url? string where inbound messages are posted (UpCallbackUrl)
---@field status_callback_url? string where delivery receipts are posted (StatusCallbackUrl)
---@field up_queue? string MNS queue of inbound messages (UpQueue)
---@field status_queue? string MNS queue of delivery receipts (StatusQueue)
---@field is_official? string "Y" for an official business account, else "N" (IsOfficial)
---@field cust_space_id? string the space the number came from (ISV sub-customer)
---@field isv_code? string the ISV code of that space
---@field space_label? string the space's label in the spaces file, or "own numbers"
---@field messaging_limit? integer|number derived from the tier: 1000 for TIER_1K, math.huge for TIER_UNLIMITED, nil if unknown
---@field quality_level? integer derived: GREEN 3, YELLOW 2, RED 1, else nil
---@field previous? chatapp.PhoneNumber the number at the last successful fetch of its space (--state); nil when seen for the first time or without state.  previous.previous is nil
---@field first_seen? integer Unix time the number was first seen (--state); nil without state
local PhoneNumber = {}

--- Every field as the API sent it (API spelling: "QualityRating"),
--- including fields the runtime does not know yet.  A fresh table.
---@return table<string, any>
function PhoneNumber:raw() end

--- With a field: whether it changed since `previous`, the old value and
--- the new one (false, nil, current for a number without previous).  The
--- field is a tracked one (chatapp.core.phone_tracked()) or
--- messaging_limit / quality_level.  Without a field: whether any tracked
--- field changed, and the list of those that did, in field order.
---@param field? string
---@return boolean changed
---@return any old_or_list
---@return any new
function PhoneNumber:changed(field) end

--- Unix time the field took its current value; nil when unknown.
---@param field string
---@return integer?
function PhoneNumber:since(field) end

--- Seconds the field has held its current value at this run's time (0 for
--- a value new this run); nil when unknown.
---@param field string
---@return integer?
function PhoneNumber:held(field) end

--- The answer of a phone-number query: a list of numbers.
---@class chatapp.PhoneList: { [integer]: chatapp.PhoneNumber }
---@field request_id? string RequestId of the answer

------------------------------------------------------------------------------
-- ApiError

--- The failure of one API call or HTTP request, as data.  Returned as the
--- second value (`nil, err`) by every call that can fail for reasons
--- outside the program; tostring(err) is a one-line description.  Never
--- holds a secret.
---@class chatapp.ApiError
---@field status string "EAPI", "ETRANSPORT", "ETIMEDOUT", "ECREDENTIALS", "EPARSE", "EUNKNOWN", ...
---@field operation? string the operation (or URL, or "chatapp.client")
---@field code? string the API's Code, e.g. "Throttling.User"
---@field message? string the API's Message, or what failed
---@field request_id? string RequestId, for Alibaba Cloud support
---@field http_status? integer the last answer's HTTP status
---@field attempts? integer attempts made
---@field throttled? integer throttle answers seen
---@field retryable boolean a later call may succeed
---@field outcome_unknown? boolean a write may have happened (EUNKNOWN)
---@field host_id? string HostId of the answer
---@field recommend? string Recommend URL of the answer
---@field access_denied_detail? string AccessDeniedDetail of the answer
---@field hint? string what to do about this Code
---@field context? table where it happened (policy, space, number), set by the runner

--- The ApiError metatable: getmetatable(err) == chatapp.ApiError.
---@type table
chatapp.ApiError = nil

------------------------------------------------------------------------------
-- Client

--- Options of chatapp.client{...}: the configuration keys of
--- chatapp_config_set (docs/embedding.md), as strings, numbers or
--- booleans.  An unknown key or a bad value raises.
---@class chatapp.ClientOptions
---@field endpoint? string API endpoint, default https://cams.<region>.aliyuncs.com; http only to loopback
---@field region? string region id, default the profile's, else ap-southeast-1
---@field access_key_id? string explicit AccessKey id (else the default credential chain)
---@field access_key_secret? string explicit AccessKey secret
---@field security_token? string explicit STS token
---@field profile? string credentials profile
---@field sts_endpoint? string STS endpoint for role credentials (host or URL; http only to loopback)
---@field ca_file? string PEM file of CA certificates trusted instead of the system store (certificates are always verified)
---@field allow_credential_process? boolean let a profile of mode External run its process_command
---@field account? string quota account name shared by processes (default: the AccessKey id)
---@field signature_version? "v3"|"v2" request signing, default v3
---@field qps? number calls per second per operation (default: documented limit)
---@field limiter? "shared"|"process"|string share the rate limit on this host (default), keep it to this process, a state file, or "redis://host:port" to share it with every host
---@field window_margin_ms? integer limiter window beyond 1 s (default 50)
---@field connect_timeout_ms? integer default 5000
---@field timeout_ms? integer one attempt, default 15000
---@field call_timeout_ms? integer one call with its retries, default 60000
---@field low_speed_time_s? integer abort an answer slower than 100 bytes/s for this long, default 10
---@field max_retry_after_ms? integer cap on a server's Retry-After, default 20000
---@field max_response_bytes? integer largest answer, default 64 MiB
---@field max_attempts? integer attempts per call, default 3
---@field max_in_flight? integer requests in flight at once, default 16
---@field verbose? integer 0-3
---@field output? "none"|"text"|"json" (runtime only)
---@field color? "auto"|"always"|"never" (runtime only)
---@field spaces? string (runtime only) JSON file of ISV spaces
---@field record? string (runtime only)
---@field replay? string (runtime only) over the spaces it recorded; a dry run unless apply
---@field check_data? string (runtime only) with --check: the fixture the policies are checked on
---@field apply? boolean (runtime only) with replay: carry the actions out
---@field metrics? string (runtime only)
---@field allow_exec? boolean (runtime only)
---@field memory_limit_mb? integer (runtime only) sandbox memory per policy
---@field instruction_limit? integer (runtime only) sandbox instructions per policy
---@field fetch_memory_mb? integer (runtime only) memory for the fetched numbers of all spaces (default 512)
---@field state? string (runtime only) the state store's SQLite file (docs/state.md)
---@field outbox_max_age? string (runtime only) a pending action older than this expires, not sent: "1h" (default)
---@field lease? string (runtime only) with a Redis state: the leader lease's length, "3s" to "1h" ("15s" default)

--- A CAMS client: signed, throttled, retried calls.  Close it with
--- :close() or a `<close>` variable; the garbage collector does it too.
---@class chatapp.Client
local Client = {}

--- Create a client.  Credentials come from the options or the default
--- chain (environment, ~/.aliyun/config.json, ~/.alibabacloud/credentials).
---@param options? chatapp.ClientOptions
---@return chatapp.Client? client
---@return chatapp.ApiError? err status "ECREDENTIALS" when none are found
function chatapp.client(options) end

---@class chatapp.QueryOptions
---@field cust_space_id? string an ISV sub-customer's space (CustSpaceId)
---@field isv_code? string its ISV code (IsvCode)
---@field status? chatapp.Status|string only numbers in this status (Status)
---@field label? string a name for the space, shown as n.space_label

--- QueryChatappPhoneNumbers, decoded into typed numbers.
---@param options? chatapp.QueryOptions
---@return chatapp.PhoneList? numbers
---@return chatapp.ApiError? err
function Client:query_phone_numbers(options) end

--- Any CAMS operation; params are flattened the way the API expects
--- (nested tables become "Key.1.Sub").  Writes are retried only when safe.
---@param operation string e.g. "UpdatePhoneWebhook"
---@param params? table<string, any>
---@return table? answer the decoded JSON answer (Code == "OK")
---@return chatapp.ApiError? err
function Client:call(operation, params) end

---@class chatapp.Request
---@field operation? string the operation (or [1])
---@field params? table its parameters (or [2])
---@field space? chatapp.QueryOptions for QueryChatappPhoneNumbers: the space
---@field typed? boolean decode QueryChatappPhoneNumbers into a PhoneList (default true)
---@field [1] string? the operation, positional form
---@field [2] table? its parameters, positional form

--- Many calls at once, all under the limiter.  results[i] or errors[i] is
--- set for every request i.
---@param requests chatapp.Request[]
---@return table<integer, chatapp.PhoneList|table> results
---@return table<integer, chatapp.ApiError> errors
function Client:batch(requests) end

---@class chatapp.ClientStats
---@field calls integer
---@field attempts integer
---@field retries integer
---@field throttled integer throttle answers seen
---@field failed integer
---@field limiter_waits integer starts the limiter delayed
---@field min_factor number lowest adaptive rate factor seen (1.0 = never slowed)
---@field limiter? string the Redis server of a shared limiter ("redis://host:port/db"); the fields below only with it
---@field limiter_round_trips? integer commands sent to Redis
---@field limiter_outages? integer times Redis stopped answering
---@field limiter_down_ms? integer how long it did not answer
---@field limiter_failed? integer calls that failed, not sent, waiting for it past their deadline

--- Counters since the client was created.
---@return chatapp.ClientStats
function Client:stats() end

--- Close the client (further calls raise).  Safe to call twice.
function Client:close() end

--- The account its calls count against: the "account" key, else the
--- AccessKey id (the limiter's and the state store's key).
---@return string
function Client:account() end

------------------------------------------------------------------------------
-- Policies

--- What chatapp.policy{...} takes.  Checked when the file loads: an
--- unknown key, a where clause naming an unknown field or a value outside
--- a closed enum raises, with the policy file's line.
---@class chatapp.PolicySpec
---@field name string unique, non-empty
---@field description? string
---@field where? table<string, any> field = value or list of values, e.g. { status = "CONNECTED" }; with state also new = true|false, changed = field or fields, became = { field = value(s) } (docs/state.md)
---@field remind? string|integer with state: act on a number that keeps matching at most once per this duration ("24h", or seconds)
---@field gone? fun(n: chatapp.PhoneNumber, plan: chatapp.Plan) with state: a number of a fetched space that is no longer there (n: its last snapshot)
---@field filter? fun(n: chatapp.PhoneNumber): boolean? numbers for which it returns true match
---@field decide? fun(n: chatapp.PhoneNumber, plan: chatapp.Plan) plan actions for a matching number
---@field finish? fun(plan: chatapp.Plan, numbers: chatapp.PhoneNumber[]) once after all numbers: totals, summaries
---@field spaces? table which spaces the policy runs over

--- The plan decide and finish add actions to.  Actions are data: a dry
--- run shows them, a run carries them out (docs/policies.md).
---@class chatapp.Plan
local Plan = {}

---@class chatapp.WebhookSpec
---@field url string https (http only to loopback)
---@field method? "GET"|"POST"|"PUT"|"PATCH"|"DELETE" default POST
---@field json? any body, encoded as JSON (or body)
---@field body? string body as is (or json)
---@field headers? table<string, string>
---@field timeout_ms? integer default 10000
---@field attempts? integer default 3

--- An HTTP request (notify a chat, a pager, your own service).
---@param spec chatapp.WebhookSpec
---@return table action
function Plan:webhook(spec) end

--- A CAMS operation; writes happen only when applying.
---@param operation string e.g. "UpdatePhoneWebhook"
---@param params? table<string, any>
---@return table action
function Plan:call(operation, params) end

---@class chatapp.PhoneWebhookSpec
---@field up_callback_url? string
---@field status_callback_url? string
---@field http_flag? "Y"|"N"
---@field queue_flag? "Y"|"N"

--- UpdatePhoneWebhook for the number being decided; a dry run shows the
--- current value beside each new one.
---@param spec chatapp.PhoneWebhookSpec
---@return table action
function Plan:update_phone_webhook(spec) end

---@class chatapp.ExecSpec
---@field argv string[] the command and its arguments (no shell)
---@field stdin? string
---@field timeout_ms? integer default 10000

--- Run a command; only with allow_exec.
---@param spec chatapp.ExecSpec
---@return table action
function Plan:exec(spec) end

--- Call a Lua function when applying (not in a dry run).
---@param fn function
---@param name? string shown in the report
---@return table action
function Plan:lua(fn, name) end

--- A line in the report (string.format arguments).
---@param message string
---@param ... any
---@return table action
function Plan:log(message, ...) end

--- A loaded policy.
---@class chatapp.Policy
---@field name string
---@field description? string
---@field where? table
---@field filter? function
---@field decide? function
---@field finish? function
---@field gone? function
---@field remind? integer seconds
---@field spaces? table
---@field warnings string[] where-clause values kept although unknown
---@field file? string the policy file (set by the runner)
local Policy = {}

--- True when n satisfies the policy's where clause.
---@param n chatapp.PhoneNumber
---@return boolean
function Policy:matches_where(n) end

--- True when the policy runs over this space (its spaces list, if any).
---@param space table a space: { cust_space_id =, isv_code =, label = }
---@return boolean
function Policy:uses_space(space) end

--- The metatable of policies: getmetatable(p) == chatapp.Policy (a
--- read-only stand-in; the real metatable is not reachable).
---@type table
chatapp.Policy = nil

--- The runner's own copy of a policy object (made when it was declared;
--- later changes to the object or its spec do not reach it), or nil.
---@param p any
---@return chatapp.Policy|nil
function chatapp.policy_record(p) end

--- policy:matches_where(n) as a plain function (for a policy record).
---@param policy chatapp.Policy
---@param n chatapp.PhoneNumber
---@return boolean
function chatapp.matches_where(policy, n) end

--- policy:uses_space(space) as a plain function (for a policy record).
---@param policy chatapp.Policy
---@param space table
---@return boolean
function chatapp.uses_space(policy, space) end

--- True when the policy looks at the previous run (where.new, .changed,
--- .became, remind or gone): it needs a run with state.
---@param policy chatapp.Policy
---@return boolean
function chatapp.uses_history(policy) end

--- Seconds in a duration: a whole number of seconds, or "90s", "15m",
--- "24h", "7d".
---@param v string|integer
---@return integer|nil seconds
---@return string|nil message when v is not a duration
function chatapp.parse_duration(v) end

--- What a PolicyError value said when it was raised ({ message, token,
--- where }), or nil when e is not one.
---@param e any
---@return chatapp.PolicyErrorValue|nil
function chatapp.policy_error_info(e) end

--- A mistake in a policy's declaration, raised by chatapp.policy{...}:
--- getmetatable(e) == chatapp.PolicyError; tostring(e) is the message.
---@class chatapp.PolicyErrorValue
---@field message string
---@field token? string the text to look for in the source (a field, a value)
---@field where? string "file:line: " when known

--- The PolicyError metatable.
---@type table
chatapp.PolicyError = nil

--- Declare a policy; policy files return one (or a list).
---@param spec chatapp.PolicySpec
---@return chatapp.Policy
function chatapp.policy(spec) end

------------------------------------------------------------------------------
-- JSON

---@class chatapp.json
---@field null lightuserdata JSON null inside arrays
---@field max_depth integer 128: the nesting limit of decode and encode
local json = {}

--- Encode a value as JSON; PhoneNumber values encode as the API shapes
--- them.
---@param value any
---@return string? text
---@return string? err
function json.encode(value) end

--- Decode JSON text: integers stay integers, null members are absent, null
--- array elements are chatapp.json.null.
---@param text string
---@return any value
---@return string? err
function json.decode(text) end

--- Mark a table to encode as an array even when empty; a table that
--- already has a metatable is refused (error).
---@generic T: table
---@param t T
---@return T
function json.array(t) end

---@type chatapp.json
chatapp.json = nil

return chatapp
