/*
 * ca_cred_provider: the credentials a client signs with, kept current.
 *
 * Static credentials (explicit, environment, AK / StsToken profiles) never
 * change.  A role (ca_cred_role, found by ca_cred_resolve with
 * options.roles) is fetched from a service and refreshed before it
 * expires (docs/credentials.md, "Refresh"):
 *
 *   RAM role      STS AssumeRole (RPC v1 HMAC-SHA1, query + form body),
 *                 signed with the source credentials (a provider too)
 *   OIDC role     STS AssumeRoleWithOIDC, anonymous; the token file is
 *                 read anew at each refresh
 *   ECS role      the metadata service (IMDSv2 token first, v1 fallback)
 *   URI           GET of a credentials URI
 *   process       an external command (allow_credential_process only)
 *
 * Every fetch goes through a ca_client (plain HTTP calls) with the
 * configuration's transport rules; the metadata calls alone may reach the
 * metadata address (ca_call.allow_metadata).
 *
 * Refresh: when now >= Expiration - 900 s (the ECS role also from one hour
 * before), one caller fetches while the others keep using the credentials
 * still valid, or wait for that one fetch when there are none.  A failed
 * refresh keeps the valid credentials and tries again after
 * U[1, M-1] s, M = max(10, 2^(failures-1)) (at most an hour); once they
 * expire, ca_cred_provider_sync fails with CHATAPP_ECREDENTIALS naming the
 * provider and the cause, and the next sync after the backoff tries again.
 * Thread-safe: one mutex, one fetch in flight.
 *
 * Secrets: every AccessKey secret, STS token, OIDC token and metadata
 * token the provider handles is added to its ca_secrets as it arrives;
 * ca_cred_provider_sync merges them into the caller's set.  Messages and
 * descriptions never contain one.
 */
#ifndef CA_CRED_PROVIDER_H
#define CA_CRED_PROVIDER_H

#include <stdint.h>

#include "ca_buf.h"
#include "ca_cred.h"
#include "ca_secrets.h"

struct ca_client_config;

typedef struct ca_cred_provider ca_cred_provider;

/* How providers reach their services. */
typedef struct ca_cred_net {
  /* the transport rules (timeouts, caps, log); NULL: the defaults */
  const struct ca_client_config *transport;
  const char *sts_endpoint; /* the sts_endpoint key, or NULL */
  int allow_process;        /* the allow_credential_process key */
  ca_getenv_fn getenv;      /* NULL: the process environment */
  void *getenv_ud;
} ca_cred_net;

/* The copy of the current credentials a client signs with. */
typedef struct ca_cred_copy {
  uint64_t gen; /* the provider's generation these are */
  char *id, *secret, *token;
  size_t secrets_seen; /* the provider's secrets merged so far */
} ca_cred_copy;

/* Wipe and free the strings of a copy; zeroes it. */
void ca_cred_copy_free(ca_cred_copy *c);

/*
 * A provider for cred, which it takes over (cred is zeroed).  A role is
 * fetched once here, so a wrong setting fails at once: CHATAPP_ECREDENTIALS
 * (or ECONFIG for a refused endpoint) with a message in err naming the
 * provider and the cause.
 */
chatapp_status ca_cred_provider_new(ca_credentials *cred,
                                    const ca_cred_net *net,
                                    ca_cred_provider **out, ca_buf *err);
void ca_cred_provider_free(ca_cred_provider *p);

/*
 * Make cur the current credentials (refreshing them first when due).  When
 * they changed since cur->gen, cur's strings are replaced (the old ones
 * wiped).  Every secret the provider knows is merged into redact (may be
 * NULL).  On failure (expired and not refreshed) returns
 * CHATAPP_ECREDENTIALS with the reason in err; cur is left as it was.
 */
chatapp_status ca_cred_provider_sync(ca_cred_provider *p, ca_cred_copy *cur,
                                     ca_secrets *redact, char *err,
                                     size_t errlen);

/* The server refused the credentials of generation gen as expired: the
 * next sync refreshes them (a no-op for static credentials or an older
 * generation). */
void ca_cred_provider_expired(ca_cred_provider *p, uint64_t gen);

/* "where it was configured: what it is, AccessKey LTAI****[, expires
 * 2026-11-30T01:00:00Z]": never a secret (for -v and the report). */
chatapp_status ca_cred_provider_describe(ca_cred_provider *p, ca_buf *out);
/* A stable name for the account (limiter and state keys): the AccessKey
 * id of static credentials, the role ARN, "ecs-role:NAME", ... */
const char *ca_cred_provider_identity(const ca_cred_provider *p);
/* The region of the profile that configured it, or NULL. */
const char *ca_cred_provider_region(const ca_cred_provider *p);
/* Expiry of the current credentials (epoch s), 0 when they do not. */
int64_t ca_cred_provider_expiry(ca_cred_provider *p);

typedef struct ca_cred_stats {
  unsigned long fetches, failures; /* refreshes tried, failed */
  int in_flight_max;               /* most fetches at once (always 1) */
} ca_cred_stats;
void ca_cred_provider_stats(ca_cred_provider *p, ca_cred_stats *out);

/* Tests: the clock (epoch seconds) the refresh rules read. */
void ca_cred_provider_set_clock(ca_cred_provider *p, int64_t (*now)(void *ud),
                                void *ud);

/*
 * The answers' parser (for the fuzz target too): kind is CA_CRED_RAM_ROLE
 * or CA_CRED_OIDC (STS: {"Credentials": {...}}), CA_CRED_ECS (metadata:
 * Code "Success"), CA_CRED_URI (Code, when present, "Success") or
 * CA_CRED_PROCESS ({"access_key_id", ...}).  On success id, secret and
 * token (NULL for a process answer in mode AK) are malloc'd and *exp is the
 * Expiration (0: none, process answers only).  On failure the reason,
 * without any value of the answer, is in err.
 */
chatapp_status ca_cred_parse_answer(ca_cred_kind kind, const char *text,
                                    size_t len, char **id, char **secret,
                                    char **token, int64_t *exp, char *err,
                                    size_t errlen);

/* "YYYY-MM-DDTHH:MM:SSZ" or "YYYY-MM-DDTHH:MM:SS.mmmZ" to epoch seconds;
 * -1 for anything else. */
int64_t ca_cred_parse_time(const char *s);

/* Split a command line into argv the POSIX shell's way for words: blanks
 * separate, '...' is literal, "..." keeps blanks and takes \" \\ \$ \`,
 * a backslash outside quotes escapes the next character.  No expansion.
 * Returns a NULL-ended malloc'd array (free with ca_cred_argv_free), or
 * NULL (unbalanced quotes, empty, out of memory). */
char **ca_cred_split_argv(const char *cmd);
void ca_cred_argv_free(char **argv);

#endif
