/*
 * Internals of the credential chain shared by ca_cred.c (the chain, the
 * explicit and environment sources), ca_cred_files.c (what both files
 * share: the safe reader, names in messages), ca_cred_cli.c (the aliyun
 * CLI's config.json) and ca_cred_ini.c (the SDK's INI file).
 */
#ifndef CA_CRED_INT_H
#define CA_CRED_INT_H

#include "ca_cred.h"

#define MSG_MAX   (16 * 1024) /* each message buffer */
#define PATH_SHOW 1024        /* bytes of a path shown in a message */
#define NAME_SHOW 128         /* bytes of a profile name shown */
#define LIST_MAX  20          /* profile names listed in a message */

#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

typedef struct resolver {
  const ca_cred_options *opt;
  char *home;                /* owned; NULL when unknown */
  const char *profile;       /* requested profile name, or NULL */
  const char *profile_by;    /* "the profile option" or the variable's name */
  char ini_shown[PATH_SHOW]; /* the INI file's path, once known */
  ca_buf looked;             /* "  - place: what was found\n" per place */
  ca_buf msg;                /* the failure message */
  ca_buf warn;               /* notes for ca_credentials.warning */
  int nomem;                 /* a message could not be built */
} resolver;

typedef struct cfile {
  char *data; /* NUL-terminated contents, len + 1 bytes; wiped on free */
  size_t len;
  int exists;
} cfile;

/* Append a message to b (escaped parts via cred_shown). */
void cred_say(resolver *r, ca_buf *b, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* s, escaped (control bytes as \xNN) and capped to n - 1 bytes, in out. */
const char *cred_shown(char *out, size_t n, const char *s);
/* A mode or type value, shown only when it cannot be a secret. */
const char *cred_shown_mode(char *out, size_t n, const char *v);
/* The variable name's value in the (injectable) environment, or NULL. */
const char *cred_env_get(const resolver *r, const char *name);
/* dir + "/" + rel, malloc'd; NULL on out of memory. */
char *cred_join(const char *dir, const char *rel);
/* ca_cred_files.c: read a credential file safely (owner, mode 0600, no
 * links, size cap). */
chatapp_status cred_read_file(resolver *r, const char *path, cfile *f);
void cred_cfile_free(cfile *f);
/* Append "'a', 'b', ..." (at most LIST_MAX) or "none". */
void cred_list_names(resolver *r, ca_buf *b, const char *const *names, size_t n,
                     const char *open, const char *close);
/* How the profile was chosen, for source strings and messages. */
void cred_say_selected(resolver *r, ca_buf *b, const char *by);
/* The length of a UTF-8 byte order mark at s (0 when none). */
size_t cred_bom_len(const char *s, size_t n);
/* Copy the credentials into out and describe where they came from. */
chatapp_status cred_fill(resolver *r, ca_credentials *out, const char *id,
                         const char *secret, const char *token,
                         const char *region, ca_buf *source);

/* Roles (ca_cred_role): a new one (its strings set by cred_role_set, which
 * notes out of memory in r->nomem), and out filled with it. */
int cred_env_true(const resolver *r, const char *name);
ca_cred_role *cred_role_new(resolver *r, ca_cred_kind kind);
int cred_role_set(resolver *r, char **dst, const char *v);
chatapp_status cred_fill_role(resolver *r, ca_credentials *out,
                              ca_cred_role *role, const char *region,
                              ca_buf *source);

/* The file sources (ca_cred_cli.c, ca_cred_ini.c): *done set when they
 * supplied the credentials. */
chatapp_status cred_from_cli_file(resolver *r, ca_credentials *out, int *done);
chatapp_status cred_from_ini_file(resolver *r, ca_credentials *out, int *done);

#endif
