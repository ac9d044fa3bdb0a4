/*
 * ca_listen: the watcher's HTTP endpoint (`chatapp-run --every ...
 * --listen ADDR:PORT`, docs/watch.md): GET /metrics serves the text the
 * watch loop last published, GET /healthz says whether the last good cycle
 * is recent enough.  libmicrohttpd, one internal polling thread, bounded
 * against hostile clients (connections, time, request size); the watch
 * loop only ever takes a short mutex to publish.
 */
#ifndef CA_LISTEN_H
#define CA_LISTEN_H

#include <stddef.h>
#include <stdint.h>

#include "chatapp.h"

/* The bounds on clients (docs/watch.md). */
#define CA_LISTEN_MAX_CONNECTIONS 32
#define CA_LISTEN_TIMEOUT_S       10
#define CA_LISTEN_MAX_REQUEST     16384 /* request line and headers */
#define CA_LISTEN_MAX_ERROR       512   /* bytes of last_error kept */

typedef struct ca_listen ca_listen;

/*
 * Start serving on addr: "PORT" or ":PORT" (127.0.0.1), "HOST:PORT" with
 * HOST a dotted IPv4 address or "localhost" (127.0.0.1), "[V6]:PORT".  No
 * name lookups.  Port 0 = any free port (ca_listen_port tells which).  A
 * non-loopback address is served (the user asked for it):
 * ca_listen_is_loopback tells the caller to warn.  On failure *out is NULL
 * and err says what failed and what to do (bad address, port in use).
 */
chatapp_status ca_listen_start(const char *addr, ca_listen **out, char *err,
                               size_t errlen);
/* The port it listens on. */
int ca_listen_port(const ca_listen *l);
/* 1 when the address is a loopback one (127.0.0.0/8, ::1). */
int ca_listen_is_loopback(const ca_listen *l);
/* "127.0.0.1:9464", "[::1]:9464": the address as bound, for logs. */
const char *ca_listen_address(const ca_listen *l);
/* Connections open now (at most CA_LISTEN_MAX_CONNECTIONS), -1 if
 * unknown: for tests and logs. */
int ca_listen_connections(const ca_listen *l);

/*
 * Replace what /metrics serves with a copy of metrics[0..len) (Prometheus
 * text format, ending with a newline).  The copy is made before the mutex is
 * taken; the mutex only swaps a pointer.  Before the first publish /metrics
 * is an empty 200.  CHATAPP_ENOMEM leaves the previous text served.
 */
chatapp_status ca_listen_publish(ca_listen *l, const char *metrics, size_t len);

/*
 * What /healthz reports from now on.  Healthy when a good cycle ended at
 * most max_age_s ago (now - last_good_unix <= max_age_s).  last_good_unix 0
 * = no good cycle yet: healthy while the watcher is younger than max_age_s
 * and no cycle has failed (last_error NULL); once one failed, unhealthy at
 * once (a watcher that never worked is usually misconfigured).  last_error
 * (may be NULL): one line, already redacted by the caller; it is escaped
 * here again (control characters, invalid UTF-8) and cut at
 * CA_LISTEN_MAX_ERROR bytes.  Until the first call /healthz is 200
 * "ok: starting".
 */
void ca_listen_health(ca_listen *l, int64_t last_good_unix, int64_t max_age_s,
                      const char *last_error);

/* Stop the daemon (closes clients' connections, joins its thread) and free.
 * NULL: no-op. */
void ca_listen_stop(ca_listen *l);

#endif
