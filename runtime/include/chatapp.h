/*
 * chatapp.h: the one public header of the chatapp-run runtime.
 *
 * chatapp-run makes signed, throttled, retried calls to Alibaba Cloud's Chat
 * App Message Service (CAMS) and runs Lua policies over the results.  This
 * header is all a C host needs; it does not require <lua.h>.
 *
 * Shape (SQLite/curl style):
 *   - every object is an opaque handle created by a *_new function and freed
 *     by the matching *_free function; *_free accepts NULL;
 *   - functions that can fail return a chatapp_status (CHATAPP_OK is 0) and
 *     keep a human-readable message in the handle (chatapp_runtime_errmsg);
 *     messages never contain a secret;
 *   - strings passed in are copied (the caller keeps ownership); strings
 *     returned are owned by the library: static ones say so, the others
 *     belong to the handle and stay valid until the next call on that
 *     handle or its free.
 *
 * Threads: there is no global state apart from libcurl's and OpenSSL's
 * process-wide initialisation (chatapp_global_init) and the rate limiter,
 * which by design is shared by every runtime and process on the host that
 * uses the same account (config key "limiter").  Different handles may be
 * used from different threads at the same time; one handle must not be
 * used from two threads at once (serialise calls on it yourself).  Each
 * function below says so where it differs.  Callbacks run in the thread
 * that called into the library, during that call.
 *
 * Linking: libchatapp.so (SONAME libchatapp.so.0) or libchatapp.a;
 * pkg-config --cflags --libs chatapp, or find_package(chatapp) and the
 * target chatapp::chatapp.  docs/embedding.md has a complete example.
 */
#ifndef CHATAPP_H
#define CHATAPP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CHATAPP_API __attribute__((visibility("default")))
#else
#define CHATAPP_API
#endif

#define CHATAPP_VERSION_MAJOR 0
#define CHATAPP_VERSION_MINOR 1
#define CHATAPP_VERSION_PATCH 0
#define CHATAPP_VERSION       "0.1.0"

/* Status codes.  The numeric values are stable. */
typedef enum chatapp_status {
  CHATAPP_OK = 0,
  CHATAPP_EINVAL = 1,       /* a bad argument or option value */
  CHATAPP_ENOMEM = 2,       /* out of memory */
  CHATAPP_ECONFIG = 3,      /* configuration or usage error */
  CHATAPP_ECREDENTIALS = 4, /* no usable credentials */
  CHATAPP_EPOLICY = 5,      /* a policy failed to load or to run */
  CHATAPP_EAPI = 6,         /* the API answered with an error Code */
  CHATAPP_ETRANSPORT = 7,   /* network or HTTP failure */
  CHATAPP_ETIMEDOUT = 8,    /* a deadline passed */
  CHATAPP_ETOOBIG = 9,      /* a response or value over its size cap */
  CHATAPP_EPARSE = 10,      /* a malformed response or file */
  CHATAPP_EACTION = 11,     /* one or more actions failed */
  CHATAPP_EUNKNOWN = 12,    /* outcome unknown: a write may have happened */
  CHATAPP_EIO = 13,         /* a local file or process could not be used */
  CHATAPP_EINTERNAL = 14    /* a bug in chatapp-run: please report it */
} chatapp_status;

/* A sentence describing st, e.g. "network or HTTP failure".  Static
 * string; any thread. */
CHATAPP_API const char *chatapp_strerror(chatapp_status st);
/* A stable short name for st, e.g. "ETRANSPORT".  Static; any thread. */
CHATAPP_API const char *chatapp_codename(chatapp_status st);
/* The library version, e.g. "0.1.0" (compare CHATAPP_VERSION, the version
 * of this header).  Static; any thread. */
CHATAPP_API const char *chatapp_version(void);

/*
 * Initialise libcurl and OpenSSL once per process (curl_global_init).
 * Any thread, any number of times: the first call does the work, the
 * others wait for it and return its result.  chatapp_runtime_new() and
 * luaopen_chatapp_core() call it; call it yourself early if other threads
 * of your program may initialise libcurl at the same time.  There is no
 * cleanup function: the state lives until the process exits.
 */
CHATAPP_API chatapp_status chatapp_global_init(void);

/*
 * Configuration: string keys and values, the same names as chatapp-run's
 * long options ("max-attempts" and "max_attempts" are the same key;
 * docs/embedding.md lists them all), e.g.
 *   endpoint            "http://127.0.0.1:8080" or "https://cams...com"
 *   region              "ap-southeast-1"
 *   access_key_id, access_key_secret, security_token
 *                       explicit credentials; without them the default
 *                       chain is used (environment, profiles)
 *   profile             profile name in ~/.aliyun/config.json etc.
 *   qps                 calls per second per operation (default: documented)
 *   limiter             "shared" (default), "process" or a state file
 *   connect_timeout_ms, timeout_ms, call_timeout_ms, max_attempts
 *   signature_version   "v3" (default) or "v2" (legacy HMAC-SHA1)
 *   memory_limit_mb, instruction_limit   sandbox limits per policy
 *   output              "none" (default for embedders), "text" or "json"
 *   verbose             "0".."3": the highest level passed to the log
 *
 * A config is a plain value: chatapp_runtime_new() copies it, so it can be
 * changed or freed afterwards and used for several runtimes.  It may be
 * read by several threads at once (chatapp_runtime_new), but not changed
 * while it is read.
 */
typedef struct chatapp_config chatapp_config;

/* A config with every key at its default.  NULL: out of memory.  Free
 * with chatapp_config_free(). */
CHATAPP_API chatapp_config *chatapp_config_new(void);
/* Free cfg, wiping the secrets it holds.  NULL: no-op. */
CHATAPP_API void chatapp_config_free(chatapp_config *cfg);
/*
 * Set key to value (both copied; "" resets a string key to its default).
 * An unknown key or a malformed value is CHATAPP_EINVAL, with the reason in
 * chatapp_config_errmsg(), and leaves cfg as it was; CHATAPP_ENOMEM when a
 * copy fails.  Secrets (access_key_secret, security_token) are wiped from
 * memory when replaced or freed.
 */
CHATAPP_API chatapp_status chatapp_config_set(chatapp_config *cfg,
                                              const char *key,
                                              const char *value);
/* Why the last chatapp_config_set() on cfg failed, or "".  Owned by cfg:
 * valid until the next call on cfg.  NULL cfg: "out of memory". */
CHATAPP_API const char *chatapp_config_errmsg(const chatapp_config *cfg);

/*
 * Log lines go to fn(ud, level, line), level 0 (errors) to 3 (canonical
 * requests), up to the "verbose" key; secrets are redacted from them.
 * fn is called in the thread that called into the runtime, during that
 * call; line is valid only during the call.  Runtimes made from one config
 * share fn and ud: if they run in different threads, fn must be
 * thread-safe.  fn NULL (the default): no logging.  cfg NULL: no-op.
 */
typedef void (*chatapp_log_fn)(void *ud, int level, const char *line);
CHATAPP_API void chatapp_config_set_log(chatapp_config *cfg, chatapp_log_fn fn,
                                        void *ud);

/*
 * A runtime: one Lua state, one API client and its limiter, the loaded
 * policies and the report of the last run.  Runtimes share nothing but the
 * limiter state (see "limiter"): several may live in one process, each
 * used by one thread at a time.
 *
 * chatapp_runtime_new() copies cfg (NULL: every default) and stores a new
 * runtime in *out even when it fails, so the reason can be read with
 * chatapp_runtime_errmsg(); free it in both cases.  Only when even that
 * cannot be allocated is *out NULL (CHATAPP_ENOMEM).  A runtime whose
 * set-up failed refuses later calls with CHATAPP_EINVAL.  Credentials are not
 * resolved here but on the first run that needs the API, so a bad key
 * shows as CHATAPP_ECREDENTIALS from chatapp_runtime_run().
 */
typedef struct chatapp_runtime chatapp_runtime;

CHATAPP_API chatapp_status chatapp_runtime_new(const chatapp_config *cfg,
                                               chatapp_runtime **out);
/* Free rt and everything it owns (policies, client, reports, messages).
 * NULL: no-op.  Not while another thread uses rt. */
CHATAPP_API void chatapp_runtime_free(chatapp_runtime *rt);
/* The message of the last failure on rt, or "" if none; never "" after a
 * failure.  Over 64 KiB it is cut and ends with "[... message truncated:
 * N bytes in all]".  Owned by rt: valid until the next call on rt.  NULL
 * rt: "out of memory".
 *
 * Out of memory in the runtime's Lua state (set-up, loading, a run,
 * copying its report) is CHATAPP_ENOMEM with a message, never an abort;
 * the runtime stays usable. */
CHATAPP_API const char *chatapp_runtime_errmsg(const chatapp_runtime *rt);

/*
 * Load the policies of one file: a Lua text chunk (bytecode is refused)
 * returning chatapp.policy{...} or a list of them, run in a fresh sandbox.
 * CHATAPP_EPOLICY when it does not load, with the file and line in
 * chatapp_runtime_errmsg(); the policies loaded before stay loaded.
 */
CHATAPP_API chatapp_status chatapp_runtime_load_file(chatapp_runtime *rt,
                                                     const char *path);
/* The same from memory: len bytes of src (copied); name (copied) stands
 * for the file in messages. */
CHATAPP_API chatapp_status chatapp_runtime_load_string(chatapp_runtime *rt,
                                                       const char *name,
                                                       const char *src,
                                                       size_t len);

#define CHATAPP_RUN_APPLY 0x0 /* carry the actions out */
#define CHATAPP_RUN_DRY   0x1 /* plan only: send and execute nothing */
#define CHATAPP_RUN_CHECK 0x2 /* validate policies; no API call at all */

/*
 * Run every loaded policy: fetch numbers, evaluate, carry out (or, with
 * CHATAPP_RUN_DRY, only plan) the actions, and build the report.  Blocks
 * until done; the API calls of the run go out concurrently, under the
 * limiter.  Returns CHATAPP_OK when everything went well; otherwise the
 * most serious failure (CHATAPP_ECONFIG, CHATAPP_ECREDENTIALS,
 * CHATAPP_EPOLICY, CHATAPP_EAPI, CHATAPP_EACTION, ...) with its message in
 * chatapp_runtime_errmsg(), while the report still holds everything that
 * did work.  A runtime can run again (the policies stay loaded).
 */
CHATAPP_API chatapp_status chatapp_runtime_run(chatapp_runtime *rt, int flags);

/* The report of one policy in the last run.  name is owned by rt: valid
 * until the next run or free. */
typedef struct chatapp_policy_report {
  const char *name;
  size_t numbers_seen;    /* numbers the policy looked at */
  size_t numbers_matched; /* numbers that passed where + filter */
  size_t actions_planned;
  size_t actions_done;
  size_t actions_failed;
  size_t errors;          /* filter/decide errors (one per number) */
  size_t actions_skipped; /* exec without --allow-exec */
} chatapp_policy_report;

/* Policies in the last run's report, in load order (0 before any run;
 * NULL rt: 0). */
CHATAPP_API size_t chatapp_runtime_policy_count(const chatapp_runtime *rt);
/* Copies report i into *out; CHATAPP_EINVAL if i is out of range. */
CHATAPP_API chatapp_status chatapp_runtime_policy_report(
  const chatapp_runtime *rt, size_t i, chatapp_policy_report *out);

/* One action of the last run: a webhook, API call, command, Lua function
 * or log line a policy planned, with its outcome.  Strings are owned by rt
 * (valid until the next run or free); NULL where they do not apply. */
typedef struct chatapp_action_report {
  const char *policy;       /* the policy that planned it */
  const char *kind;         /* "webhook", "call", "exec", "lua" or "log" */
  const char *id;           /* deterministic id, sent as Idempotency-Key */
  const char *phone_number; /* the number it is for (NULL from finish) */
  const char *space;        /* its CustSpaceId (NULL: own numbers) */
  const char *target;       /* "POST https://...", "UpdatePhoneWebhook",
                               the command line, the log message ... */
  const char *status;       /* "planned" (dry run), "done", "failed",
                               "skipped" */
  const char *error;        /* why it failed or was skipped */
} chatapp_action_report;

/* Actions in the last run's report, in plan order (NULL rt: 0). */
CHATAPP_API size_t chatapp_runtime_action_count(const chatapp_runtime *rt);
/* Copies action i into *out; CHATAPP_EINVAL if i is out of range. */
CHATAPP_API chatapp_status chatapp_runtime_action_report(
  const chatapp_runtime *rt, size_t i, chatapp_action_report *out);

/*
 * For hosts that own a lua_State (these need <lua.h> only to be called).
 * The state must have the standard libraries open (luaL_openlibs), the
 * package library at least.  Raise a Lua error on failure, so call them
 * through luaL_requiref or lua_pcall.  Each state is independent: the
 * rule "one thread at a time" applies per lua_State.
 *
 * luaopen_chatapp_core: the "chatapp.core" module in C (client, typed
 * results, JSON), for
 *   luaL_requiref(L, "chatapp.core", luaopen_chatapp_core, 0);
 * luaopen_chatapp: the whole "chatapp" module: makes require find
 * "chatapp.core" and the module's Lua files compiled into the library
 * (ahead of package.path), then returns require "chatapp":
 *   luaL_requiref(L, "chatapp", luaopen_chatapp, 1);
 */
struct lua_State;
CHATAPP_API int luaopen_chatapp_core(struct lua_State *L);
CHATAPP_API int luaopen_chatapp(struct lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
