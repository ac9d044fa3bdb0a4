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
 *   - strings passed in are copied; strings returned are owned by the handle
 *     and stay valid until the next call on that handle or its free.
 *
 * Threads: there is no global state.  Different handles may be used from
 * different threads at the same time; one handle must not be used from two
 * threads at once.  chatapp_global_init() is called implicitly by the first
 * chatapp_runtime_new(); call it yourself first if your program starts
 * threads that use libcurl or OpenSSL before that.
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
  CHATAPP_EIO = 13          /* a local file or process could not be used */
} chatapp_status;

/* A sentence describing st, e.g. "network or HTTP failure". */
CHATAPP_API const char *chatapp_strerror(chatapp_status st);
/* A stable short name for st, e.g. "ETRANSPORT". */
CHATAPP_API const char *chatapp_codename(chatapp_status st);
/* The library version, e.g. "0.1.0". */
CHATAPP_API const char *chatapp_version(void);

/* Initialise libcurl and OpenSSL once per process.  Safe to call again. */
CHATAPP_API chatapp_status chatapp_global_init(void);

/*
 * Configuration: string keys and values, the same names as chatapp-run's
 * long options (docs/embedding.md lists them all), e.g.
 *   endpoint            "http://127.0.0.1:8080" or "https://cams...com"
 *   region              "ap-southeast-1"
 *   access_key_id, access_key_secret, security_token
 *                       explicit credentials (skip the default chain)
 *   profile             profile name in ~/.aliyun/config.json etc.
 *   qps                 calls per second per operation (default: documented)
 *   signature_version   "v3" (default) or "v2" (legacy HMAC-SHA1)
 *   output              "none" (default for embedders), "text" or "json"
 *   verbose             "0".."3"
 * An unknown key or a malformed value is CHATAPP_EINVAL, with the reason in
 * chatapp_config_errmsg().  Secrets are copied and wiped on free.
 */
typedef struct chatapp_config chatapp_config;

CHATAPP_API chatapp_config *chatapp_config_new(void); /* NULL: out of memory */
CHATAPP_API void chatapp_config_free(chatapp_config *cfg);
CHATAPP_API chatapp_status chatapp_config_set(chatapp_config *cfg,
                                              const char *key,
                                              const char *value);
CHATAPP_API const char *chatapp_config_errmsg(const chatapp_config *cfg);

/* Log lines (never containing a secret) go to fn; level 0 = error .. 3. */
typedef void (*chatapp_log_fn)(void *ud, int level, const char *line);
CHATAPP_API void chatapp_config_set_log(chatapp_config *cfg, chatapp_log_fn fn,
                                        void *ud);

/*
 * A runtime: one Lua state, one API client and its limiter, the loaded
 * policies and the report of the last run.
 *
 * chatapp_runtime_new() stores a new runtime in *out even when it fails
 * (except on CHATAPP_ENOMEM, where *out is NULL), so the reason can be read
 * with chatapp_runtime_errmsg(); free it in both cases.
 */
typedef struct chatapp_runtime chatapp_runtime;

CHATAPP_API chatapp_status chatapp_runtime_new(const chatapp_config *cfg,
                                               chatapp_runtime **out);
CHATAPP_API void chatapp_runtime_free(chatapp_runtime *rt);
/* The message of the last failure on rt, or "" if none. */
CHATAPP_API const char *chatapp_runtime_errmsg(const chatapp_runtime *rt);

/* Load the policies of one file (a Lua text chunk; bytecode is refused). */
CHATAPP_API chatapp_status chatapp_runtime_load_file(chatapp_runtime *rt,
                                                     const char *path);
/* Same from memory; name appears in messages ("=name" style not needed). */
CHATAPP_API chatapp_status chatapp_runtime_load_string(chatapp_runtime *rt,
                                                       const char *name,
                                                       const char *src,
                                                       size_t len);

#define CHATAPP_RUN_DRY   0x1 /* plan only: send and execute nothing */
#define CHATAPP_RUN_CHECK 0x2 /* validate policies; no API call at all */

/*
 * Run every loaded policy: fetch numbers, evaluate, carry out (or, with
 * CHATAPP_RUN_DRY, only plan) the actions, and build the report.
 * Returns CHATAPP_OK when everything went well; otherwise the most serious
 * failure (CHATAPP_EPOLICY, CHATAPP_EAPI, CHATAPP_EACTION, ...) while the
 * report still holds everything that did work.
 */
CHATAPP_API chatapp_status chatapp_runtime_run(chatapp_runtime *rt, int flags);

/* The report of the last run; valid until the next run or free. */
typedef struct chatapp_policy_report {
  const char *name;
  size_t numbers_seen;    /* numbers the policy looked at */
  size_t numbers_matched; /* numbers that passed where + filter */
  size_t actions_planned;
  size_t actions_done;
  size_t actions_failed;
  size_t errors; /* filter/decide errors (one per number) */
} chatapp_policy_report;

CHATAPP_API size_t chatapp_runtime_policy_count(const chatapp_runtime *rt);
/* Copies report i into *out; CHATAPP_EINVAL if i is out of range. */
CHATAPP_API chatapp_status chatapp_runtime_policy_report(
  const chatapp_runtime *rt, size_t i, chatapp_policy_report *out);

/*
 * For hosts that own a lua_State: the "chatapp.core" module (client, typed
 * results, JSON).  Use with luaL_requiref(L, "chatapp.core", ..., 0).
 */
struct lua_State;
CHATAPP_API int luaopen_chatapp_core(struct lua_State *L);
/* The "chatapp" Lua module (core + policy helpers, from embedded sources). */
CHATAPP_API int luaopen_chatapp(struct lua_State *L);

#ifdef __cplusplus
}
#endif

#endif
