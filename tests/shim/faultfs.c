/*
 * faultfs: an LD_PRELOAD shim for the reliability tests (E2, F4) that
 * fails one chosen file-system call and writes down the calls it sees.
 * Tests only: never linked into chatapp-run, built by tests/shim.
 *
 *   FAULTFS_PATH   a substring: only calls on a path holding it count (the
 *                  path of an fd is read from /proc/self/fd; a rename
 *                  counts when either name holds it)
 *   FAULTFS_OP     the operation to fail: write (write, writev), pwrite
 *                  (pwrite, pwrite64), fsync, fdatasync, rename (rename,
 *                  renameat), open (open, open64, openat, openat64 with
 * O_CREAT), ftruncate (ftruncate, ftruncate64) FAULTFS_NTH    fail the Nth
 * counted call of FAULTFS_OP (1-based); 0 or unset: fail nothing FAULTFS_ERRNO
 * ENOSPC (default), EIO, EDQUOT or a number FAULTFS_LOG    append "OP N PATH"
 * for every counted call (N: its number among the calls of OP; "FAIL OP N PATH"
 * for the one failed), so a test first lists the call sites, then fails each in
 * turn FAULTFS_STOP   "OP N": end the process (_exit(99)) just before the Nth
 *                  counted call of OP, as a crash would (the E2 test takes
 *                  the state each committed transaction leaves this way)
 *   FAULTFS_NET_LOG  append "socket FAMILY TYPE" for every IPv4/IPv6
 *                  socket the process opens and "connect ADDR PORT" for
 *                  every connect of one (F4: no socket is opened for a
 *                  refused address)
 *
 * The log is written with the real write(2), O_APPEND, one write a line.
 * A failed call does nothing: the file is left as it was.  Counting is per
 * process; calls through glibc's own internals (stdio's buffered writes)
 * do not pass through here, so a test lists what it covers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
  OP_WRITE,
  OP_PWRITE,
  OP_FSYNC,
  OP_FDATASYNC,
  OP_RENAME,
  OP_OPEN,
  OP_FTRUNCATE,
  OP_COUNT
};
static const char *const op_names[OP_COUNT] = {
  "write", "pwrite", "fsync", "fdatasync", "rename", "open", "ftruncate"};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counts[OP_COUNT];
static int configured;
static const char *pattern;
static int fail_op = -1;
static long fail_nth;
static int fail_errno = ENOSPC;
static const char *log_path, *net_log_path;
static int stop_op = -1;
static long stop_nth;

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off64_t);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_socket)(int, int, int);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);

static void *next(const char *name)
{
  void *f = dlsym(RTLD_NEXT, name);
  if (!f)
    abort(); /* a libc without it: nothing sensible to do */
  return f;
}

static void setup(void)
{
  const char *e;

  real_write = next("write");
  real_writev = next("writev");
  real_pwrite = next("pwrite");
  real_pwrite64 = next("pwrite64");
  real_fsync = next("fsync");
  real_fdatasync = next("fdatasync");
  real_rename = next("rename");
  real_renameat = next("renameat");
  real_open = next("open");
  real_open64 = next("open64");
  real_openat = next("openat");
  real_ftruncate = next("ftruncate");
  real_ftruncate64 = next("ftruncate64");
  real_openat64 = next("openat64");
  real_socket = next("socket");
  real_connect = next("connect");
  pattern = getenv("FAULTFS_PATH");
  if (pattern && !*pattern)
    pattern = NULL;
  if ((e = getenv("FAULTFS_OP")) != NULL)
    for (int i = 0; i < OP_COUNT; i++)
      if (strcmp(e, op_names[i]) == 0)
        fail_op = i;
  if ((e = getenv("FAULTFS_NTH")) != NULL)
    fail_nth = strtol(e, NULL, 10);
  if ((e = getenv("FAULTFS_ERRNO")) != NULL) {
    if (strcmp(e, "EIO") == 0)
      fail_errno = EIO;
    else if (strcmp(e, "EDQUOT") == 0)
      fail_errno = EDQUOT;
    else if (strcmp(e, "ENOSPC") != 0 && atoi(e) > 0)
      fail_errno = atoi(e);
  }
  if ((e = getenv("FAULTFS_STOP")) != NULL) {
    /* "OP N": end the process (exit status 99) just before that call */
    char name[16];
    long n;
    if (sscanf(e, "%15s %ld", name, &n) == 2)
      for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(name, op_names[i]) == 0) {
          stop_op = i;
          stop_nth = n;
        }
  }
  log_path = getenv("FAULTFS_LOG");
  net_log_path = getenv("FAULTFS_NET_LOG");
  configured = 1;
}

__attribute__((constructor)) static void faultfs_init(void)
{
  pthread_mutex_lock(&lock);
  if (!configured)
    setup();
  pthread_mutex_unlock(&lock);
}

static void ensure(void)
{
  if (!configured)
    faultfs_init();
}

static void log_line(const char *file, const char *line)
{
  int fd;
  size_t n = strlen(line);

  if (!file)
    return;
  fd = real_open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  if (real_write(fd, line, n) != (ssize_t)n) {
    /* a short log line: the test sees a malformed line and fails */
  }
  close(fd);
}

static int fd_path(int fd, char *buf, size_t size)
{
  char link[64];
  ssize_t n;

  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  n = readlink(link, buf, size - 1);
  if (n < 0)
    return -1;
  buf[n] = '\0';
  return 0;
}

static int matches(const char *path)
{
  return pattern && path && strstr(path, pattern) != NULL;
}

/* Count a call of op on path (or on the pair of a rename); nonzero when
 * this one is to fail, with errno set. */
static int should_fail(int op, const char *path, const char *path2)
{
  char line[8400];
  long n;
  int fail;

  ensure();
  if (!matches(path) && !matches(path2))
    return 0;
  pthread_mutex_lock(&lock);
  n = ++counts[op];
  fail = op == fail_op && n == fail_nth;
  snprintf(line, sizeof line, "%s%s %ld %s%s%s\n", fail ? "FAIL " : "",
           op_names[op], n, path ? path : "-", path2 ? " -> " : "",
           path2 ? path2 : "");
  log_line(log_path, line);
  if (op == stop_op && n == stop_nth)
    _exit(99); /* like a crash just before the call: nothing flushed */
  pthread_mutex_unlock(&lock);
  if (fail)
    errno = fail_errno;
  return fail;
}

static int fd_fails(int op, int fd)
{
  char path[4096];

  ensure();
  if (!pattern || fd_path(fd, path, sizeof path) != 0)
    return 0;
  return should_fail(op, path, NULL);
}

ssize_t write(int fd, const void *buf, size_t n)
{
  if (fd_fails(OP_WRITE, fd))
    return -1;
  return real_write(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
  if (fd_fails(OP_WRITE, fd))
    return -1;
  return real_writev(fd, iov, cnt);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
  if (fd_fails(OP_PWRITE, fd))
    return -1;
  return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
  if (fd_fails(OP_PWRITE, fd))
    return -1;
  return real_pwrite64(fd, buf, n, off);
}

int fsync(int fd)
{
  if (fd_fails(OP_FSYNC, fd))
    return -1;
  return real_fsync(fd);
}

int fdatasync(int fd)
{
  if (fd_fails(OP_FDATASYNC, fd))
    return -1;
  return real_fdatasync(fd);
}

int ftruncate(int fd, off_t len)
{
  if (fd_fails(OP_FTRUNCATE, fd))
    return -1;
  return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
  if (fd_fails(OP_FTRUNCATE, fd))
    return -1;
  return real_ftruncate64(fd, len);
}

int rename(const char *from, const char *to)
{
  if (should_fail(OP_RENAME, from, to))
    return -1;
  return real_rename(from, to);
}

int renameat(int dfrom, const char *from, int dto, const char *to)
{
  if (should_fail(OP_RENAME, from, to))
    return -1;
  return real_renameat(dfrom, from, dto, to);
}

/* open with O_CREAT: a file being made (or opened for writing). */
static int open_fails(const char *path, int flags)
{
  return (flags & O_CREAT) && should_fail(OP_OPEN, path, NULL);
}

/* The body of open, open64, openat and openat64 (path, flags and a mode
 * that is there only when the flags make a file): a counted O_CREAT call
 * may fail; else real_call, with the mode read. */
#define OPEN_BODY(real_call)                                                   \
  mode_t mode = 0;                                                             \
  va_list ap;                                                                  \
                                                                               \
  va_start(ap, flags);                                                         \
  if (flags & (O_CREAT | O_TMPFILE))                                           \
    mode = (mode_t)va_arg(ap, int);                                            \
  va_end(ap);                                                                  \
  ensure();                                                                    \
  if (open_fails(path, flags))                                                 \
    return -1;                                                                 \
  return real_call

int open(const char *path, int flags, ...)
{
  OPEN_BODY(real_open(path, flags, mode));
}

int open64(const char *path, int flags, ...)
{
  OPEN_BODY(real_open64(path, flags, mode));
}

int openat(int dfd, const char *path, int flags, ...)
{
  OPEN_BODY(real_openat(dfd, path, flags, mode));
}

int openat64(int dfd, const char *path, int flags, ...)
{
  OPEN_BODY(real_openat64(dfd, path, flags, mode));
}

int socket(int family, int type, int protocol)
{
  char line[96];

  ensure();
  if (net_log_path && (family == AF_INET || family == AF_INET6)) {
    snprintf(line, sizeof line, "socket %s %d\n",
             family == AF_INET ? "inet" : "inet6", type & 0xf);
    pthread_mutex_lock(&lock);
    log_line(net_log_path, line);
    pthread_mutex_unlock(&lock);
  }
  return real_socket(family, type, protocol);
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  char line[128], ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;

  ensure();
  if (net_log_path && sa &&
      (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)) {
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
      const struct sockaddr_in *a = (const void *)sa;
      inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
      port = ntohs(a->sin_port);
    } else if (len >= sizeof(struct sockaddr_in6)) {
      const struct sockaddr_in6 *a = (const void *)sa;
      inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
      port = ntohs(a->sin6_port);
    }
    snprintf(line, sizeof line, "connect %s %d\n", ip, port);
    pthread_mutex_lock(&lock);
    log_line(net_log_path, line);
    pthread_mutex_unlock(&lock);
  }
  return real_connect(fd, sa, len);
}
