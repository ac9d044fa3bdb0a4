/*
 * ca_cred_files: what the two credential files of the default chain share
 * (the formats: ca_cred_cli.c for the aliyun CLI's ~/.aliyun/config.json,
 * ca_cred_ini.c for the SDKs' INI file ~/.alibabacloud/credentials; see
 * ca_cred.c for the chain and docs/credentials.md):
 *
 *   cred_read_file    a credential file read safely (owner, mode 0600, no
 *                     links, size cap) into a cfile, wiped when freed
 *   cred_list_names   profile or section names for a message
 *   cred_say_selected how the profile was chosen
 *   cred_bom_len      a UTF-8 byte order mark to skip
 */
#include "ca_cred_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_crypto.h"

/* Append "'a', 'b', ..." (at most LIST_MAX) or "none". */
void cred_list_names(resolver *r, ca_buf *b, const char *const *names, size_t n,
                     const char *open, const char *close)
{
  char sn[NAME_SHOW];
  size_t i;

  if (n == 0) {
    cred_say(r, b, "none");
    return;
  }
  for (i = 0; i < n && i < LIST_MAX; i++)
    cred_say(r, b, "%s%s%s%s", i ? ", " : "", open,
             cred_shown(sn, sizeof sn, names[i]), close);
  if (n > LIST_MAX)
    cred_say(r, b, " and %zu more", n - LIST_MAX);
}

/* How the profile was chosen, for source strings and messages. */
void cred_say_selected(resolver *r, ca_buf *b, const char *by)
{
  if (by)
    cred_say(r, b, ", selected by %s", by);
}

/* A UTF-8 byte order mark is skipped (RFC 8259 allows ignoring it). */
size_t cred_bom_len(const char *s, size_t n)
{
  return n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

void cred_cfile_free(cfile *f)
{
  if (f->data) {
    ca_wipe(f->data, f->len + 1);
    free(f->data);
  }
  f->data = NULL;
  f->len = 0;
}

static const char *errstr(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
  return strerror_r(e, buf, n);
#else
  return strerror_r(e, buf, n) == 0 ? buf : "unknown error";
#endif
}

/* Refuse a file or directory not owned by us (or root). */
static chatapp_status check_owner(resolver *r, const char *what,
                                  const char *path, const struct stat *st)
{
  char sp[PATH_SHOW];

  if (st->st_uid == geteuid() || st->st_uid == 0)
    return CHATAPP_OK;
  cred_say(
    r, &r->msg,
    "refusing to use %s %s: it is owned by uid %lu, not by you (uid %lu) "
    "or root",
    what, cred_shown(sp, sizeof sp, path), (unsigned long)st->st_uid,
    (unsigned long)geteuid());
  return CHATAPP_EIO;
}

/*
 * Open a credentials file without a check-then-open race and read it whole
 * into f.  The directory is opened first, the file relative to it with
 * O_NOFOLLOW; then both are checked on their descriptors: the directory's
 * owner, and that group or others cannot write it unless it is sticky
 * (or someone else could swap the file); the file's type, owner, mode and
 * size.  O_NONBLOCK keeps a FIFO from hanging the open; it is
 * then refused as not a regular file.  A missing file (or directory) is
 * not an error: f->exists stays 0.
 */
chatapp_status cred_read_file(resolver *r, const char *path, cfile *f)
{
  chatapp_status st = CHATAPP_OK;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  char *dir = NULL;
  int dfd = -1, fd = -1;
  struct stat sd, sf;
  char sp[PATH_SHOW], sdir[PATH_SHOW], eb[128];
  size_t got = 0;

  memset(f, 0, sizeof *f);
  if (!slash)
    dir = strdup(".");
  else
    dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
  if (!dir)
    return CHATAPP_ENOMEM;
  cred_shown(sp, sizeof sp, path);
  cred_shown(sdir, sizeof sdir, dir);

  dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 && (errno == ENOENT || errno == ENOTDIR))
    goto out; /* absent */
  if (dfd < 0 || fstat(dfd, &sd) != 0) {
    cred_say(r, &r->msg, "cannot use the directory %s of %s: %s", sdir, sp,
             errstr(errno, eb, sizeof eb));
    st = CHATAPP_EIO;
    goto out;
  }

  fd = openat(dfd, base,
              O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT)
      goto out; /* absent */
    if (errno == ELOOP) {
      cred_say(
        r, &r->msg,
        "refusing to use %s: it is a symbolic link, and credential files "
        "are not followed through links; replace the link with the file "
        "itself (mode 0600)",
        sp);
    } else {
      cred_say(r, &r->msg, "cannot open %s: %s", sp,
               errstr(errno, eb, sizeof eb));
    }
    st = CHATAPP_EIO;
    goto out;
  }
  f->exists = 1;
  st = check_owner(r, "the directory", dir, &sd);
  if (st)
    goto out;
  if ((sd.st_mode & 022) && !(sd.st_mode & S_ISVTX)) {
    cred_say(r, &r->msg,
             "refusing to use %s: its directory %s is writable by group or "
             "others (mode %04lo), so someone else could replace the file; run "
             "`chmod go-w %s`",
             sp, sdir, (unsigned long)(sd.st_mode & 07777), sdir);
    st = CHATAPP_EIO;
    goto out;
  }
  if (fstat(fd, &sf) != 0) {
    cred_say(r, &r->msg, "cannot use %s: %s", sp, errstr(errno, eb, sizeof eb));
    st = CHATAPP_EIO;
    goto out;
  }
  if (!S_ISREG(sf.st_mode)) {
    cred_say(r, &r->msg, "refusing to use %s: it is not a regular file", sp);
    st = CHATAPP_EIO;
    goto out;
  }
  st = check_owner(r, "the file", path, &sf);
  if (st)
    goto out;
  if (sf.st_mode & 077) {
    cred_say(r, &r->msg,
             "refusing to use %s: its permissions %04lo give group or others "
             "access to it, and it holds secrets (like an unprotected SSH "
             "private key); run `chmod 600 %s`",
             sp, (unsigned long)(sf.st_mode & 07777), sp);
    st = CHATAPP_EIO;
    goto out;
  }
  if (sf.st_size < 0 || (unsigned long long)sf.st_size > CA_CRED_FILE_MAX) {
    cred_say(r, &r->msg,
             "refusing to use %s: it is %lld bytes, over the %d-byte limit for "
             "a credentials file",
             sp, (long long)sf.st_size, CA_CRED_FILE_MAX);
    st = CHATAPP_ETOOBIG;
    goto out;
  }
  /* One exact-size buffer: a file that grows meanwhile is read truncated
   * (and then fails to parse) rather than realloc'd, which would leave an
   * unwiped copy of the secrets behind. */
  f->data = malloc((size_t)sf.st_size + 1);
  if (!f->data) {
    st = CHATAPP_ENOMEM;
    goto out;
  }
  while (got < (size_t)sf.st_size) {
    ssize_t n = read(fd, f->data + got, (size_t)sf.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      cred_say(r, &r->msg, "cannot read %s: %s", sp,
               errstr(errno, eb, sizeof eb));
      st = CHATAPP_EIO;
      break;
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  f->len = got;
  f->data[got] = '\0';
out:
  if (st)
    cred_cfile_free(f);
  if (fd >= 0)
    close(fd);
  if (dfd >= 0)
    close(dfd);
  free(dir);
  return st;
}
