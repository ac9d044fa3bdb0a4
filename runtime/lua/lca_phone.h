/*
 * PhoneNumber internals shared by lca_phone.c (the type: access, methods,
 * registration) and lca_phone_decode.c (building a list from an answer).
 */
#ifndef LCA_PHONE_H
#define LCA_PHONE_H

#include <stdint.h>

#include "lca.h"

enum {
  F_PHONE_NUMBER,
  F_VERIFIED_NAME,
  F_STATUS,
  F_QUALITY_RATING,
  F_MESSAGING_LIMIT_TIER,
  F_CODE_VERIFICATION_STATUS,
  F_NAME_STATUS,
  F_NEW_NAME_STATUS,
  F_UP_CALLBACK_URL,
  F_STATUS_CALLBACK_URL,
  F_UP_QUEUE,
  F_STATUS_QUEUE,
  F_IS_OFFICIAL,
  N_API, /* fields above come from the API; below, from the space */
  F_CUST_SPACE_ID = N_API,
  F_ISV_CODE,
  F_SPACE_LABEL,
  N_STORED, /* fields above are stored; below, derived */
  F_MESSAGING_LIMIT = N_STORED,
  F_QUALITY_LEVEL,
  N_FIELDS, /* fields above are lca_phone_fields (core.phone_fields) */
  /* History (core.phone_attach): names a policy reads like fields, kept
   * outside the number, nil until a history is attached. */
  F_PREVIOUS = N_FIELDS,
  F_FIRST_SEEN,
  N_NAMES
};

/* Tracked fields (core.phone_tracked): the API's fields but the number
 * itself, F_VERIFIED_NAME .. F_IS_OFFICIAL. */
#define F_TRACKED_FIRST F_VERIFIED_NAME
#define N_TRACKED       (N_API - F_TRACKED_FIRST)

/* Field names: fields[F_*].name as policies spell it, .api as the API does
 * (NULL for fields that do not come from the API). */
typedef struct lca_phone_field {
  const char *name;
  const char *api;
} lca_phone_field;
extern const lca_phone_field lca_phone_fields[N_FIELDS];

typedef struct phone {
  uint32_t v[N_STORED]; /* pool index of each field; 0: absent */
  uint32_t extra;       /* pool index of a table of unknown fields; 0 */
} phone;

/* Registry keys. */
#define NAMES_KEY "chatapp.phone.names"   /* name -> field id or method */
#define API_KEY   "chatapp.phone.api"     /* API name -> field id */
#define HIST_KEY  "chatapp.phone.history" /* number -> history (weak keys) */

#endif
