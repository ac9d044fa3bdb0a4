/*
 * ca_cred: the Alibaba Cloud default credential chain, in C.
 *
 * The C core signs requests and never hands a secret to Lua, so the chain
 * that finds the AccessKey lives here.  Sources, first match wins (the
 * official SDKs' order; docs/credentials.md is the user-facing description):
 *
 *   1. explicit configuration: access_key_id / access_key_secret
 *      [/ security_token] passed by the embedder.  An explicit profile name
 *      also counts as explicit: it skips the environment (2).
 *   2. environment: ALIBABA_CLOUD_ACCESS_KEY_ID + _SECRET [+ _SECURITY_TOKEN]
 *      and the aliases the aliyun CLI accepts (first non-empty wins).
 *   3. the aliyun CLI file ~/.aliyun/config.json (modes AK, StsToken),
 *      unless ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true.
 *   4. the SDK INI file ~/.alibabacloud/credentials, or the path in
 *      ALIBABA_CLOUD_CREDENTIALS_FILE (types access_key, sts).
 *
 * With options.roles, roles are sources too (ca_credentials.role, fetched
 * and refreshed by ca_cred_provider.h): the OIDC variables after the
 * environment, the role modes of both files (RamRoleArn,
 * ChainableRamRoleArn, EcsRamRole, OIDC, CredentialsURI, External;
 * ram_role_arn, ecs_ram_role, oidc_role_arn), and last, when nothing is
 * configured, the ECS instance role then ALIBABA_CLOUD_CREDENTIALS_URI.
 *
 * Profile: the explicit option, else ALIBABA_CLOUD_PROFILE (then the CLI's
 * ALIBABACLOUD_PROFILE, ALICLOUD_PROFILE); without one, config.json uses its
 * "current" profile and the INI file its [default] section.
 *
 * Credential files are opened without following a symbolic link and must be
 * regular files owned by the effective uid (or root), not accessible by
 * group or others (mode & 077 == 0), in a directory not writable by group or
 * others (unless sticky), and at most CA_CRED_FILE_MAX bytes.
 *
 * No message, source or warning produced here ever contains a secret, a
 * token or any other content of a credential file except profile/section
 * names; file buffers and parse trees that held secrets are wiped.
 */
#ifndef CA_CRED_H
#define CA_CRED_H

#include <stddef.h>

#include "ca_buf.h"
#include "chatapp.h"

#define CA_CRED_FILE_MAX (1024 * 1024) /* bytes; a larger file is refused */
#define CA_CRED_MASK_LEN 16            /* size of ca_cred_mask_id's out */

/*
 * A role the chain found (options.roles set): the credentials come from a
 * service and are refreshed by a ca_cred_provider (ca_cred_provider.h).
 * Every string is owned (the secrets wiped on free).
 */
typedef enum ca_cred_kind {
  CA_CRED_STATIC = 0, /* no role: the AccessKey of ca_credentials */
  CA_CRED_RAM_ROLE,   /* STS AssumeRole, signed with `source` */
  CA_CRED_OIDC,       /* STS AssumeRoleWithOIDC (ACK RRSA) */
  CA_CRED_ECS,        /* the ECS instance's RAM role (metadata service) */
  CA_CRED_URI,        /* a credentials URI */
  CA_CRED_PROCESS,    /* an external command (allow_credential_process) */
  CA_CRED_TAIL        /* nothing configured: the ECS role, else the URI of
                         ALIBABA_CLOUD_CREDENTIALS_URI (ecs_ok / uri) */
} ca_cred_kind;

struct ca_credentials;

typedef struct ca_cred_role {
  ca_cred_kind kind;
  char *role_arn, *session_name, *policy, *external_id;
  long duration_s; /* 0: 3600 */
  char *oidc_provider_arn, *oidc_token_file;
  char *sts_endpoint; /* the profile's sts_endpoint, or NULL */
  char *sts_region;   /* the profile's sts_region, or NULL */
  int vpc;            /* the profile's enable_vpc */
  char *ecs_role;     /* the ECS role name, or NULL: asked of the service */
  int ecs_ok;         /* CA_CRED_TAIL: the ECS step may be tried */
  int imdsv1_off;     /* ALIBABA_CLOUD_IMDSV1_DISABLED=true */
  char *uri;          /* CA_CRED_URI (and CA_CRED_TAIL: NULL if unset) */
  char *process;      /* CA_CRED_PROCESS: the command line */
  /* CA_CRED_RAM_ROLE: the credentials that sign AssumeRole (static, or a
   * role of its own for ChainableRamRoleArn). */
  struct ca_credentials *source;
  char *nothing; /* CA_CRED_TAIL: the "nothing found" message so far */
} ca_cred_role;

/*
 * Resolved credentials.  Every string is owned by the struct and freed (the
 * secrets wiped first) by ca_cred_free().
 */
typedef struct ca_credentials {
  char *access_key_id;
  char *access_key_secret;
  char *security_token; /* STS token, or NULL for a long-term AccessKey */
  char *region;         /* region_id of the config.json profile, or NULL */
  /* Where they came from, for -v and the run report; never a secret. E.g.
   *   "explicit configuration"
   *   "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)"
   *   "profile 'prod' (mode StsToken) of /home/u/.aliyun/config.json,
   *    selected by ALIBABA_CLOUD_PROFILE"
   *   "section [default] (type access_key) of
   *    /home/u/.alibabacloud/credentials"
   */
  char *source;
  /* Something the chain skipped that the user should hear about, e.g. a
   * half-set environment pair; NULL when there is nothing to say. */
  char *warning;
  /* A role (options.roles only): then access_key_id and access_key_secret
   * are NULL and a ca_cred_provider fetches the credentials. */
  ca_cred_role *role;
} ca_credentials;

/* Reads variable name from the environment; NULL when unset. */
typedef const char *(*ca_getenv_fn)(void *ud, const char *name);

typedef struct ca_cred_options {
  const char *profile;           /* explicit profile name, or NULL */
  const char *access_key_id;     /* explicit credentials, or NULL */
  const char *access_key_secret; /* (both or neither) */
  const char *security_token;    /* optional with the two above */
  ca_getenv_fn getenv;           /* NULL: the process environment */
  void *getenv_ud;
  const char *home; /* NULL: $HOME (through getenv), else the passwd entry */
  /* 1: the role modes (RamRoleArn, EcsRamRole, OIDC, ...), the OIDC
   * variables, the ECS role and the credentials URI are sources too
   * (ca_credentials.role); 0: static credentials only, as before. */
  int roles;
} ca_cred_options;

/*
 * Run the chain.  opt may be NULL (all defaults).  *out is overwritten on
 * entry, not freed: ca_cred_free() a previous result first.  On success
 * fills *out (ca_cred_free() it) and returns CHATAPP_OK.  On failure *out is
 * left zeroed (ca_cred_free() is harmless) and err (may be NULL) is reset and
 * holds one message saying what is wrong and how to fix it:
 *   CHATAPP_ECREDENTIALS  no credentials anywhere (the message lists every
 *                         place looked at), a profile not found, a profile
 *                         mode / section type not supported, an incomplete
 *                         profile or explicit pair
 *   CHATAPP_EIO           a credentials file refused (permissions, owner,
 *                         symlink, not a regular file) or unreadable
 *   CHATAPP_EPARSE        a malformed config.json or INI file (file + line)
 *   CHATAPP_ETOOBIG       a credentials file over CA_CRED_FILE_MAX
 *   CHATAPP_ENOMEM        out of memory
 */
chatapp_status ca_cred_resolve(const ca_cred_options *opt, ca_credentials *out,
                               ca_buf *err);

/* Free a role (and its source, recursively); NULL-safe. */
void ca_cred_role_free(ca_cred_role *role);

/* Wipe and free every string in c and zero it; NULL-safe, idempotent. */
void ca_cred_free(ca_credentials *c);

/* The AccessKey id for messages: a short prefix + "****", e.g.
 * "LTAI5t****" (at most 6 characters and a quarter of the id are shown;
 * "****" for NULL or a short id). */
void ca_cred_mask_id(const char *id, char out[CA_CRED_MASK_LEN]);

/*
 * Environment variables whose value is a secret or a token: the secret and
 * token names of the chain (source 2 above), ALICLOUD_SECRET_KEY (the
 * Terraform provider's name) and CHATAPP_REDIS_PASSWORD (ca_redis.h).  The one
 * list: the sandbox refuses them to os.getenv, exec children never see them,
 * and their values are redacted. ca_cred_secret_env_name(i) is the i-th name,
 * NULL past the end.
 */
const char *ca_cred_secret_env_name(size_t i);
/* 1 when name (exactly, case-sensitive) is one of them. */
int ca_cred_is_secret_env(const char *name, size_t len);
/*
 * The environment a child process gets: the entries of env (NULL-ended)
 * but the secret variables and those whose value keep(ud, value) refuses
 * (keep may be NULL), into out (room for every entry of env and the NULL);
 * the strings stay env's.  Returns the count kept.
 */
size_t ca_cred_child_env(char *const *env, char **out,
                         int (*keep)(void *ud, const char *value), void *ud);

#endif
