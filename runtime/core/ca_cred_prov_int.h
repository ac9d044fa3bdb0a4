/*
 * Internals shared by ca_cred_provider.c (the provider, its refresh rules),
 * ca_cred_fetch.c (the protocols: STS, metadata service, URI),
 * ca_cred_process.c (the external command) and ca_cred_answer.c (the
 * answers' parser).
 */
#ifndef CA_CRED_PROV_INT_H
#define CA_CRED_PROV_INT_H

#include <pthread.h>

#include "ca_client.h"
#include "ca_cred_provider.h"

#define CRED_ERR_MAX    512
#define CRED_ANSWER_MAX (256 * 1024) /* bytes of a provider's answer */

/* What one fetch brought. */
typedef struct cred_fetched {
  char *id, *secret, *token;
  int64_t exp; /* epoch s; 0: does not expire */
} cred_fetched;

struct ca_cred_provider {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  ca_cred_kind kind;
  ca_cred_role *role;       /* owned; NULL for static credentials */
  ca_cred_provider *source; /* RAM role: what signs AssumeRole */
  ca_cred_copy src_cur;     /* the source's credentials last used */
  ca_client *http;          /* the fetches' client (plain HTTP calls) */
  long timeout_ms;          /* per fetch attempt */
  char *origin;             /* where it was configured (the chain's words) */
  char *name;               /* what it is, e.g. "ECS instance role 'x'" */
  char *identity;
  char *region;
  char *sts_url;   /* "https://host[:port]" (RAM role, OIDC) */
  char *md_url;    /* the metadata service, without a trailing '/' */
  char *ecs_found; /* the ECS role name the service gave */
  int allow_process;
  /* the current credentials */
  int have;
  char *id, *secret, *token;
  int64_t exp, refresh_at, next_try;
  uint64_t gen;
  int failures, refreshing;
  char last_error[CRED_ERR_MAX];
  ca_secrets secrets;
  ca_cred_stats stats;
  long window_s, prefetch_s; /* 900, 3600 (tests: CHATAPP_TEST_CRED_STALE_S) */
  int64_t (*now)(void *ud);
  void *now_ud;
};

/* One fetch of p's kind (p->mu not held; one at a time).  On failure the
 * reason is in err (never a secret). */
chatapp_status cred_fetch(ca_cred_provider *p, cred_fetched *out, char *err,
                          size_t errlen);
/* The external command's fetch (ca_cred_process.c), as cred_fetch. */
chatapp_status cred_fetch_process(ca_cred_provider *p, cred_fetched *out,
                                  char *err, size_t errlen);
void cred_fetched_free(cred_fetched *f);
/* A credential string: printable ASCII without blanks (ca_cred_answer.c). */
int cred_usable(const char *v);
/* Wipe b's contents (an answer, a request that held a secret). */
void cred_wipe_buf(ca_buf *b);
/* Note a secret of p (under p->mu or before any sharing). */
void cred_note_secret(ca_cred_provider *p, const char *v);

#endif
