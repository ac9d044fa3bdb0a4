/*
 * ca_emulator: start and stop a local chatapp-emulator for
 * `chatapp-run --emulator` (zero-setup runs on sample data).
 */
#ifndef CA_EMULATOR_H
#define CA_EMULATOR_H

#include <stddef.h>

#include "chatapp.h"

/* The emulator's built-in throwaway key pair (docs/emulator.md). */
#define CA_EMULATOR_KEY_ID     "LTAIemulatorTestKey01"
#define CA_EMULATOR_KEY_SECRET "emulator-secret-not-real"

typedef struct ca_emulator ca_emulator;

/*
 * Start chatapp-emulator on 127.0.0.1 with a free port and its bundled
 * data (or extra_args' --data).  The binary is $CHATAPP_EMULATOR, else the one
 * beside this program, else chatapp-emulator on PATH.  Waits (at most 10 s)
 * until it listens.  Extra arguments (NULL-terminated, may be NULL) are passed
 * on.
 */
chatapp_status ca_emulator_start(const char *const *extra_args,
                                 ca_emulator **out, char *err, size_t errlen);
/* "http://127.0.0.1:PORT", or "https://..." when extra_args had
 * --tls-cert (the emulator serves HTTPS) */
const char *ca_emulator_endpoint(const ca_emulator *e);
/*
 * Set CA_EMULATOR_SINK_ENV in this process to the emulator's webhook sink,
 * "http(s)://127.0.0.1:PORT/_emulator/sink", so policies can send webhooks to
 * it (docs/emulator.md).  e NULL (--check: no emulator runs): a URL of
 * port 0, so policies that read it load the same.  0, or -1 with errno.
 */
#define CA_EMULATOR_SINK_ENV "CHATAPP_EMULATOR_SINK"
int ca_emulator_export_sink(const ca_emulator *e);
/* SIGTERM, then SIGKILL after 3 s; removes its files.  NULL: no-op. */
void ca_emulator_stop(ca_emulator *e);
/* For a signal handler (async-signal-safe, frees nothing): SIGKILL the
 * emulator, reap it, remove its port file and temporary folder. */
void ca_emulator_abandon(const ca_emulator *e);

#endif
