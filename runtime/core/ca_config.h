/*
 * ca_config: chatapp_config, the one set of options shared by the CLI
 * (long options), the C embedding API (chatapp_config_set) and the Lua
 * module (chatapp.client{...}).  Every key is parsed and checked here, once.
 */
#ifndef CA_CONFIG_H
#define CA_CONFIG_H

#include <stddef.h>
#include <sys/types.h>

#include "ca_buf.h"
#include "ca_client.h"
#include "chatapp.h"

/* The longest report format name, NUL included.  The formats themselves
 * are the writers of report.formats (lua/chatapp/report.lua), the one
 * table of them: the option parser checks only that a value is a name, and
 * the runtime checks it against that table when it starts
 * (docs/internals/formats.md). */
#define CA_FORMAT_MAX 32

struct chatapp_config {
  /* where and who */
  char *endpoint;
  char *region;
  char *access_key_id;
  char *access_key_secret; /* wiped on free */
  char *security_token;    /* wiped on free */
  char *profile;
  char *account;
  char *sts_endpoint; /* STS host or URL for the role providers */
  char *ca_file;      /* PEM CA bundle for every HTTPS client; NULL: system's */
  int allow_credential_process; /* a profile's External mode may run */
  /* the client */
  int signature_version; /* 3 or 2 */
  double qps;            /* 0: documented per operation */
  char *limiter;         /* "shared" (default), "process", or a file path */
  long window_margin_ms;
  long connect_timeout_ms, timeout_ms, call_timeout_ms, max_retry_after_ms;
  long low_speed_time_s;
  long max_response_bytes;
  long max_attempts, max_in_flight;
  /* the run */
  long verbose;
  char output[CA_FORMAT_MAX]; /* a report format name ("none" by default) */
  int color;                  /* -1 auto, 0 never, 1 always */
  char *spaces;
  char *record;
  char *replay;
  char *check_data; /* --check: the fixture to check against */
  char *metrics;
  int allow_exec;
  int apply; /* with replay: carry the actions out */
  long memory_limit_mb;
  long fetch_memory_mb; /* 0: the default (512) */
  long instruction_limit;
  char *state;           /* the state store's file, or NULL */
  long outbox_max_age_s; /* 0: the default (1 h) */
  long lease_s; /* a Redis state's leader lease (ca_lease.h); 0: 15 s */
  /* host */
  chatapp_log_fn log;
  void *log_ud;
  char errmsg[512];
};

/* Seconds in "90", "90s", "15m", "24h" or "7d" (at most ten years);
 * -1 when s is not one. */
long ca_parse_duration(const char *s);

/* The state file used when --state is not given (watch mode, `chatapp-run
 * state`): $XDG_STATE_HOME/chatapp-run/state.db when XDG_STATE_HOME is
 * absolute (the XDG spec ignores a relative one), else
 * $HOME/.local/state/chatapp-run/state.db.  0, or -1 with the message in
 * out. */
int ca_default_state_path(char *out, size_t size);

/* A deep copy (NULL on out of memory); free with chatapp_config_free. */
chatapp_config *ca_config_dup(const chatapp_config *cfg);

/* Every key, for the parser, --help and docs: name, kind, meaning.  The
 * table is const (shared by every thread; nothing is rewritten on a
 * call) and ends with a NULL name. */
typedef struct ca_config_key {
  const char *name;
  int kind;            /* the parser's (ca_config.c) */
  size_t offset, size; /* of the field: checked against the kind */
  double min, max;     /* numbers */
  const char *choices; /* choices: "a|b|c", index stored as int */
  const char *arg;     /* "URL", "N", ... or NULL for booleans */
  const char *help;
} ca_config_key;
const ca_config_key *ca_config_keys(void);

/*
 * Make the API client the configuration describes: credentials from the
 * explicit keys or the default chain, endpoint from endpoint / region,
 * limiter state shared per account.  source (may be NULL) receives where
 * the credentials came from, never the secret.
 */
chatapp_status ca_config_new_client(const chatapp_config *cfg, ca_client **out,
                                    ca_buf *err, ca_buf *source);

/* A client without credentials for plain HTTP requests (webhooks), with
 * the configuration's timeouts and caps. */
chatapp_status ca_config_new_http_client(const chatapp_config *cfg,
                                         ca_client **out, ca_buf *err);

/* The longest AccessKey id (and account name) accepted. */
#define CA_CONFIG_MAX_KEY_ID 128

/* 0 when url is a well-formed endpoint (http(s)://host[:port], port 1 to
 * 65535); else -1 with the reason in err.  chatapp_config_set("endpoint")
 * uses it, so the CLI, the embedding API and the Lua client agree. */
int ca_config_check_endpoint(const char *url, char *err, size_t errlen);

/* The largest CA bundle accepted (the system's is about 200 KiB). */
#define CA_CONFIG_MAX_CA_FILE (16L << 20)

/* 0 when path is a readable regular file of at most CA_CONFIG_MAX_CA_FILE
 * bytes holding at least one PEM certificate; else -1 with the reason and
 * what to do in err.  Never blocks (a FIFO is refused, not opened).
 * chatapp_config_set("ca_file") and ca_client_new use it. */
int ca_config_check_ca_file(const char *path, char *err, size_t errlen);

/* "a directory", "a FIFO", ... for a stat mode, for messages. */
const char *ca_config_file_kind(mode_t mode);

/* 0 when path (may be NULL) is a regular file or does not exist yet;
 * else -1 with "<what> <path> is a FIFO; ..." in err.  For the files the
 * run replaces (--record, --metrics): checked before any API call. */
int ca_config_check_output_file(const char *what, const char *path, char *err,
                                size_t errlen);

/* Interruption: set by the host's signal handler (async-signal-safe), read
 * by the runner between actions and by the client before starting a
 * request.  0 when not interrupted, else the signal number. */
void ca_interrupt_set(int sig);
int ca_interrupted(void);

#endif
