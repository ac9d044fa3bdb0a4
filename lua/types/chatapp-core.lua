---@meta chatapp.core
-- LuaLS annotations for `require "chatapp.core"`, the C part of the
-- chatapp module (lua/types/chatapp.lua describes the types).  Scripts
-- normally use `require "chatapp"`, which re-exports what they need.

---@class chatapp.core
local core = {}

---@type string
core.version = nil

--- JSON null (a light userdata).
---@type lightuserdata
core.json_null = nil

---@type table the ApiError metatable
core.ApiError = nil

---@type string[] PhoneNumber field names
core.phone_fields = nil

---@type table<string, chatapp.EnumInfo>
core.enums = nil

--- The fields whose history is kept: PhoneNumber fields from the API but
--- phone_number.  A fresh list.
---@return string[]
function core.phone_tracked() end

--- Attach the history of n (replacing any; for the state store).  Times are
--- integer Unix seconds (0 to 2^32-1); since maps a tracked field to when it
--- took its current value (a field left out is unknown).  Raises on wrong
--- types, on a previous with a history of its own or another number.
---@param n chatapp.PhoneNumber
---@param previous chatapp.PhoneNumber?
---@param first_seen integer
---@param since table<string, integer>
---@param now integer
function core.phone_attach(n, previous, first_seen, since, now) end

--- Seconds in "90", "90s", "15m", "24h" or "7d" (at most ten years), or nil.
---@param s string
---@return integer?
function core.parse_duration(s) end

--- Open the state store's SQLite file (runner only; docs/internals/state-engine.md).
---@param path string
---@param opts? { readonly?: boolean, create?: boolean, busy_timeout_ms?: integer }
---@return table? db
---@return string? message
---@return string? code ENOTREG ENOENT EOPEN ENOTADB ECORRUPT EREADONLY EBUSY EFULL EIO ENOMEM ESQL
function core.sqlite_open(path, opts) end

---@class chatapp.Redis
--- One command: a status or bulk string is a string, an integer an integer,
--- a nil reply false, an array a table.  An error reply: nil, message, "EREDIS".
---@field call fun(self: chatapp.Redis, cmd: string, ...: string|number): any, string?, string?
--- EVALSHA of source (loaded when the server does not know it): nkeys keys, then args.
---@field eval fun(self: chatapp.Redis, source: string, nkeys: integer, ...: string|number): any, string?, string?
---@field where fun(self: chatapp.Redis): string  "redis://host:port/db", never the password
---@field round_trips fun(self: chatapp.Redis): integer
---@field close fun(self: chatapp.Redis)

--- Connect to a Redis server (runner only: the Redis state store; the
--- password from CHATAPP_REDIS_PASSWORD or CHATAPP_REDIS_PASSWORD_FILE).
---@param url string redis://[user@]host[:port][/db]
---@return chatapp.Redis? conn
---@return string? message
---@return string? code EINVAL ECREDENTIALS ETRANSPORT ETIMEDOUT ...
function core.redis_connect(url) end

--- The fencing token of the leader lease this runtime holds (watch mode
--- with --state redis://...), or nil; absent in runtimes without leases.
---@type (fun(): integer?)?
core.lease_token = nil

---@param options? chatapp.ClientOptions
---@return chatapp.Client? client
---@return chatapp.ApiError? err
function core.client(options) end

---@param text string
---@return any value
---@return string? err
function core.json_decode(text) end

--- Plain values only (no PhoneNumber); see chatapp.json.encode.
---@param value any
---@return string? text
---@return string? err
function core.json_encode(value) end

--- A deep copy of plain tables.
---@generic T
---@param value T
---@return T
function core.deepcopy(value) end

--- Flatten parameters the way the API expects: { A = { 1, 2 } } becomes
--- { ["A.1"] = "1", ["A.2"] = "2" }.  Raises on values that cannot be sent.
---@param params table
---@return table<string, string>
function core.flatten_params(params) end

--- The operations the client knows: name -> { write, qps, qps_documented }.
---@return table<string, { write: boolean, qps: integer, qps_documented: boolean }>
function core.operations() end

--- Versions of chatapp, Lua, libcurl and OpenSSL.
---@return { chatapp: string, lua: string, libcurl: string, openssl: string }
function core.versions() end

--- The one "plain http only to this machine" rule of the transport
--- (ca_loopback_host): true for localhost, 127.0.0.0/8 in four decimal
--- parts, ::1 and ::ffff:127.x.y.z (with or without brackets); false for
--- anything else (0.0.0.0, 127.1, localhost.example.com).
---@param host string a URL host
---@return boolean
function core.loopback_host(host) end

--- The environment variables that hold a secret or a token (one list, in
--- C): policies cannot read them, commands never get them, and their
--- values are redacted (docs/credentials.md).
---@return string[]
function core.secret_env_names() end

--- s with every known secret (secret variables, the credentials in use)
--- replaced by "<redacted>".
---@param s string
---@return string
function core.redact(s) end

--- A writer over file (write, flush) that redacts before writing.
---@param file file*
---@return { write: fun(self, ...: string|number): any, flush: fun(self): any, file: file* }
function core.redacting(file) end

--- Decode a QueryChatappPhoneNumbers answer into a PhoneList.
---@param text string JSON
---@param space? chatapp.QueryOptions
---@return chatapp.PhoneList? numbers
---@return string? err
---@return ("EPARSE"|"ENOMEM")? status
function core.decode_phone_numbers(text, space) end

return core
