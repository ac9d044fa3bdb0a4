/*
 * harness.h: what the emulator tests share: start and stop a
 * chatapp-emulator on 127.0.0.1 (--port 0 --port-file in a temp dir, always
 * stopped, every wait bounded), signed calls with libcurl (the runtime's own
 * signer), unsigned control calls, raw sockets, log reading.
 */
#ifndef CHATAPP_EMU_HARNESS_H
#define CHATAPP_EMU_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include "ca_json.h"
#include "ca_sign.h"

#define KEY_ID      "LTAIemulatorTestKey01"
#define KEY_SECRET  "emulator-secret-not-real"
#define STS_ID      "STS.emulatorTemporaryKey"
#define STS_SECRET  "emulator-sts-secret"
#define STS_TOKEN   "emulator-sts-token"
#define KEY2_ID     "LTAIemulatorOtherAcct"
#define KEY2_SECRET "emulator-other-secret"
#define QUERY       "QueryChatappPhoneNumbers"

typedef struct emu_proc {
  pid_t pid;
  unsigned port;
  char dir[256];
  char log_path[320];
  char stderr_path[320]; /* its standard error, when emu_stderr_to_file */
} emu_proc;

/* Set to 1 before emu_start: the emulator's standard error goes to
 * dir/stderr.txt (stderr_path) instead of the test's, banner included
 * (no -q). */
extern int emu_stderr_to_file;

/* Start the emulator with extra args (NULL-terminated; may be NULL).  The
 * log goes to dir/log.jsonl.  0 on success. */
int emu_start(emu_proc *p, const char *const *args);
/* SIGTERM, wait (bounded; SIGKILL after 10 s).  The exit status, or -1 if
 * it had to be killed or died of a signal. */
int emu_stop(emu_proc *p);

typedef struct http_resp {
  long status;
  int curl_code; /* CURLE_* */
  char *body;    /* NUL-terminated */
  size_t len;
  char *headers;  /* raw response headers */
  double seconds; /* total time */
} http_resp;

void http_resp_free(http_resp *r);
/* The Code of a JSON body, in a buffer of the calling thread ("" if none). */
const char *resp_code(const http_resp *r);
/* The value of response header name (case-insensitive), malloc'd or NULL. */
char *resp_header(const http_resp *r, const char *name);

typedef struct call_opts {
  const char *action;        /* default QueryChatappPhoneNumbers */
  const char *akid, *secret; /* default KEY_ID / KEY_SECRET */
  const char *token;         /* STS token to send */
  const ca_kv *params;
  size_t nparams;
  int legacy;              /* legacy HMAC-SHA1 instead of V3 */
  int form;                /* operation params in a form body */
  long long ts_offset_s;   /* added to the signing time */
  const char *nonce;       /* fixed nonce (default: fresh) */
  const char *version;     /* default 2020-06-06 */
  const char *sign_host;   /* host to sign (default 127.0.0.1:PORT) */
  int tamper;              /* flip the signature */
  int unsigned_acs_header; /* send x-acs-extra unsigned */
  const char *method;      /* default POST */
  long timeout_ms;         /* default 10000 */
  size_t max_body;         /* abort the transfer past this (0: 16 MB) */
} call_opts;

/* One signed call.  0 when a response (of any status) arrived. */
int emu_call(const emu_proc *p, const call_opts *o, http_resp *r);
/* An unsigned request to path ("/_emulator/stats"); body may be NULL. */
int emu_http(const emu_proc *p, const char *method, const char *path,
             const char *body, http_resp *r);
/* A raw request with the given headers (each "Name: value"), curl-sent. */
int emu_raw(const emu_proc *p, const char *method, const char *url_path,
            const char *const *headers, const char *body, size_t body_len,
            http_resp *r);

/* A raw request to any port of 127.0.0.1 (the metadata service), with
 * headers ("Name: value"), a body (may be NULL) and a timeout (0: 10 s). */
int http_port(unsigned port, const char *method, const char *url_path,
              const char *const *headers, const char *body, size_t body_len,
              long timeout_ms, http_resp *r);

/* Parsed JSON of a response body (free with ca_json_free), or NULL. */
ca_json_doc *resp_json(const http_resp *r);

/* Read the log: lines into a malloc'd array of malloc'd strings. */
char **read_log(const emu_proc *p, size_t *n);
void free_lines(char **l, size_t n);

/* Write text to dir/name; returns the full path in a static buffer. */
const char *write_temp(const emu_proc *p, const char *name, const char *text);
/* A scratch dir for files needed before start (keys, fixtures). */
const char *scratch_dir(void);

/* Monotonic milliseconds. */
double now_ms(void);

/*
 * The start of every test's main: argv[1] is the emulator binary (and
 * need more arguments in all).  Starts the emulator with args into *p.
 * Returns 0, or the exit status main should return (usage: 2; the
 * emulator did not start: 1).
 */
int harness_main(int argc, char **argv, int need, const char *usage,
                 const char *const *args, emu_proc *p);

#endif
