/*
 * The limiter's guarantee with synthetic time: never more than N starts in
 * any window W, as close to N/W as possible, adaptive decrease and
 * recovery, sharing through a state file, and a dead lock holder.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca_limiter.h"
#include "test.h"

#define SEC 1000000LL
#define W   (SEC + 50000LL) /* 1 s + the default margin */

/* Max number of starts in any window of length w (starts sorted). */
static int max_in_window(const int64_t *t, int n, int64_t w)
{
  int best = 0, lo = 0, hi;

  for (hi = 0; hi < n; hi++) {
    while (t[hi] - t[lo] >= w)
      lo++;
    if (hi - lo + 1 > best)
      best = hi - lo + 1;
  }
  return best;
}

/* Drive a limiter as fast as it allows for `calls` starts; record them. */
static int64_t drive(ca_limiter *l, const char *key, int n, int calls,
                     int64_t start, int64_t *starts)
{
  int64_t now = start, retry = 0;
  int done = 0, guard = 0;

  while (done < calls && guard++ < 100000) {
    if (ca_limiter_acquire(l, key, n, now, &retry, NULL)) {
      starts[done++] = now;
    } else {
      CHECK(retry > now);
      now = retry;
    }
  }
  return now;
}

static void test_window(void)
{
  ca_limiter *l = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t starts[300], end;
  double rate;

  CHECK(ca_limiter_new(NULL, 50000, &l, &err) == CHATAPP_OK);
  end = drive(l, "acct/Query", 10, 300, 5 * SEC, starts);
  CHECK(max_in_window(starts, 300, W) == 10);
  CHECK(max_in_window(starts, 300, SEC) <= 10);
  rate = 300.0 / ((double)(end - 5 * SEC) / 1e6);
  fprintf(stderr, "  300 starts at %.2f/s (limit 10 per 1.05 s)\n", rate);
  CHECK(rate > 9.4 && rate <= 10.0);
  /* Another key is independent. */
  CHECK(drive(l, "acct/Update", 10, 10, end, starts) == end);
  /* So are two keys longer than a slot holds that differ only at the end
   * (a long account's operations): each has a slot of its own. */
  {
    char a[160], b[160];
    int64_t t;
    memset(a, 'k', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    memcpy(a + sizeof a - 8, "/Query", 7);
    memcpy(b + sizeof b - 8, "/Other", 7);
    t = drive(l, a, 10, 10, end, starts);
    CHECK(drive(l, a, 10, 1, t, starts) > t);   /* a's window is full */
    CHECK(drive(l, b, 10, 10, t, starts) == t); /* b's is not */
  }
  ca_limiter_free(l);
  ca_buf_free(&err);
}

static void test_adaptive(void)
{
  ca_limiter *l = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t starts[100], t = 100 * SEC;

  CHECK(ca_limiter_new(NULL, 50000, &l, &err) == CHATAPP_OK);
  CHECK(ca_limiter_factor(l, "k", t) == 1.0);
  ca_limiter_throttled(l, "k", t);
  CHECK(ca_limiter_factor(l, "k", t) < 0.71);
  /* A burst of throttle answers in one window counts once. */
  ca_limiter_throttled(l, "k", t + 1000);
  CHECK(ca_limiter_factor(l, "k", t + 1000) > 0.69);
  /* Slower now: 7 per window (within the first second). */
  drive(l, "k", 10, 7, t, starts);
  CHECK(!ca_limiter_acquire(l, "k", 10, t + 1000, &starts[0], NULL));
  /* Back quickly (0.05/s) to 0.9 of the throttle level (after 4 s),
   * slowly (0.005/s) until 10 s after the throttle, then quickly: 1.0
   * after 11.4 s. */
  CHECK(ca_limiter_factor(l, "k", t + 3 * SEC) > 0.84);
  CHECK(ca_limiter_factor(l, "k", t + 3 * SEC) < 0.86);
  {
    double f = ca_limiter_factor(l, "k", t + 7 * SEC);
    CHECK(f > 0.914 && f < 0.916);
  }
  CHECK(ca_limiter_factor(l, "k", t + 12 * SEC) == 1.0);

  /* Throttled again at 0.8 (a lowered quota): quick to 0.72, slow above
   * it while throttles are recent, quick again after 10 quiet seconds. */
  t += 100 * SEC;
  ca_limiter_throttled(l, "k", t);           /* 1.0 -> 0.7 */
  ca_limiter_throttled(l, "k", t + 2 * SEC); /* 0.8 -> 0.56 */
  CHECK(ca_limiter_factor(l, "k", t + 2 * SEC) > 0.55);
  CHECK(ca_limiter_factor(l, "k", t + 2 * SEC) < 0.57);
  /* 0.56 -> 0.72 in 3.2 s, then 0.005/s until 10 s after the throttle
   * (0.754), then 0.05/s */
  {
    double f = ca_limiter_factor(l, "k", t + 7 * SEC);
    CHECK(f > 0.728 && f < 0.730);
  }
  CHECK(ca_limiter_factor(l, "k", t + 16 * SEC) < 0.96);
  CHECK(ca_limiter_factor(l, "k", t + 17 * SEC) > 0.99);
  ca_limiter_free(l);
  ca_buf_free(&err);
}

static void test_shared_file(void)
{
  char dir[] = "/tmp/chatapp-limiter-XXXXXX", path[128];
  ca_limiter *a = NULL, *b = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t now = ca_now_us(), retry = 0;
  int granted = 0, i, hs[2];
  pid_t pid;
  int status = 0;

  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/state", dir);
  CHECK(ca_limiter_new(path, 50000, &a, &err) == CHATAPP_OK);
  CHECK(ca_limiter_new(path, 50000, &b, &err) == CHATAPP_OK);
  /* Two handles (as two processes would) share one budget. */
  for (i = 0; i < 10; i++)
    granted +=
      ca_limiter_acquire(i % 2 ? a : b, "acct/Q", 10, now, &retry, NULL);
  CHECK(granted == 10);
  CHECK(!ca_limiter_acquire(a, "acct/Q", 10, now, &retry, NULL));
  CHECK(!ca_limiter_acquire(b, "acct/Q", 10, now, &retry, NULL));
  CHECK(retry == now + W);

  /* A process killed while holding the lock does not stall the others.
   * Handshake: the child writes one byte once it holds the lock, so the
   * test cannot pass with a child that never took it. */
  CHECK(pipe(hs) == 0);
  pid = fork();
  if (pid == 0) {
    int fd = open(path, O_RDWR);
    close(hs[0]);
    if (fd < 0 || flock(fd, LOCK_EX) != 0)
      _exit(1); /* no byte: the parent sees EOF */
    if (write(hs[1], "L", 1) != 1)
      _exit(1);
    pause(); /* killed below */
    _exit(0);
  }
  CHECK(pid > 0);
  close(hs[1]);
  {
    struct pollfd p = {hs[0], POLLIN, 0};
    char c = 0;
    CHECK(poll(&p, 1, 10000) == 1); /* bounded: 10 s */
    CHECK(read(hs[0], &c, 1) == 1 && c == 'L');
  }
  close(hs[0]);
  {
    /* the child really holds it */
    int probe = open(path, O_RDWR);
    CHECK(probe >= 0 && flock(probe, LOCK_EX | LOCK_NB) != 0);
    if (probe >= 0)
      close(probe);
  }
  /* While another process holds the lock, acquire does not wait for it:
   * not granted, ask again in 2 ms (a caller stopped between granting a
   * call and sending it would send it late: see ca_limiter.c, lock). */
  retry = 0;
  CHECK(!ca_limiter_acquire(a, "acct/Q", 10, now + W, &retry, NULL));
  CHECK(retry == now + W + 2000);
  if (pid > 0) { /* never kill(-1, ...) */
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  }
  CHECK(ca_limiter_acquire(a, "acct/Q", 10, now + W, &retry, NULL));
  ca_limiter_free(a);
  ca_limiter_free(b);

  /* A state file with a bad mode is refused with a clear message. */
  chmod(path, 0644);
  CHECK(ca_limiter_new(path, 50000, &a, &err) == CHATAPP_EIO);
  CHECK(strstr(ca_buf_str(&err), "mode 0600") != NULL);
  unlink(path);
  rmdir(dir);
  ca_buf_free(&err);
}

static void test_corrupt_state(void)
{
  char dir[] = "/tmp/chatapp-limiter-XXXXXX", path[128];
  ca_limiter *l = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t retry = 0, now = ca_now_us();
  char junk[4096];
  int fd, granted = 0, i;

  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/state", dir);
  fd = open(path, O_RDWR | O_CREAT, 0600);
  memset(junk, 0xff, sizeof junk);
  CHECK(write(fd, junk, sizeof junk) == (ssize_t)sizeof junk);
  close(fd);
  /* Garbage is replaced by a fresh state, never trusted. */
  CHECK(ca_limiter_new(path, 50000, &l, &err) == CHATAPP_OK);
  for (i = 0; i < 12; i++)
    granted += ca_limiter_acquire(l, "k", 10, now, &retry, NULL);
  CHECK(granted == 10);
  ca_limiter_free(l);
  unlink(path);
  rmdir(dir);
  ca_buf_free(&err);
}

/*
 * Run fn in a child process, so that a crash (SIGBUS from a truncated
 * mapping, SIGSEGV from a corrupt index) is a clear failure here rather
 * than the end of the test binary.  The child has 30 s.
 */
static void isolated(const char *name, void (*fn)(const char *),
                     const char *arg)
{
  pid_t pid = fork();
  int status = 0;

  CHECK(pid >= 0);
  if (pid == 0) {
    /* Only this body's checks decide the child's status: not the parent's
     * earlier failures, and a body that checked nothing fails. */
    test_failures = 0;
    test_checks = 0;
    alarm(30);
    fn(arg);
    _exit(test_failures || test_checks == 0 ? 1 : 0);
  }
  CHECK(waitpid(pid, &status, 0) == pid);
  if (WIFSIGNALED(status))
    fprintf(stderr, "  %s: killed by signal %d\n", name, WTERMSIG(status));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    fprintf(stderr, "  %s: failed checks (above)\n", name);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static off_t file_size(const char *path)
{
  struct stat sb;
  return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* Grants for key at now out of `tries` asks. */
static int grants(ca_limiter *l, const char *key, int tries, int64_t now)
{
  int64_t retry = 0;
  int g = 0, i;

  for (i = 0; i < tries; i++) {
    retry = 0;
    if (ca_limiter_acquire(l, key, 10, now, &retry, NULL))
      g++;
    else
      CHECK(retry > now && retry <= now + W);
  }
  return g;
}

/* truncate -s 0 (and to a few bytes) while two handles use the file. */
static void truncated_body(const char *path)
{
  ca_limiter *a = NULL, *b = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t now;
  off_t full;

  CHECK(ca_limiter_new(path, 50000, &a, &err) == CHATAPP_OK);
  CHECK(ca_limiter_new(path, 50000, &b, &err) == CHATAPP_OK);
  if (!a || !b)
    return;
  now = ca_now_us(); /* after the opening, which stamps the file */
  CHECK(grants(a, "acct/Q", 5, now) == 5);
  CHECK(ca_limiter_note(a) == NULL);
  full = file_size(path);
  CHECK(full > 0);

  CHECK(truncate(path, 0) == 0);
  /* No SIGBUS: the file is grown back and started afresh, and said so. */
  CHECK(grants(a, "acct/Q", 1, now) == 1);
  CHECK(file_size(path) == full);
  CHECK(ca_limiter_note(a) != NULL &&
        strstr(ca_limiter_note(a), "truncated") != NULL &&
        strstr(ca_limiter_note(a), path) != NULL);
  /* Both handles share the re-created state: 10 in all, then no more. */
  CHECK(grants(b, "acct/Q", 12, now) == 9);
  CHECK(grants(a, "acct/Q", 2, now) == 0);

  /* Cut inside the first slot, then all other entry points. */
  CHECK(truncate(path, 100) == 0);
  ca_limiter_throttled(b, "acct/Q", now);
  CHECK(truncate(path, 0) == 0);
  CHECK(ca_limiter_factor(a, "acct/Q", now) == 1.0);
  CHECK(truncate(path, 7) == 0);
  CHECK(grants(a, "acct/Q", 12, now + 10 * SEC) == 10);
  CHECK(file_size(path) == full);
  ca_limiter_free(a);
  ca_limiter_free(b);
  ca_buf_free(&err);
}

static void test_truncated(void)
{
  char dir[] = "/tmp/chatapp-limiter-XXXXXX", path[128];

  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/state", dir);
  isolated("truncated", truncated_body, path);
  unlink(path);
  rmdir(dir);
}

/* Overwrite len bytes at off with byte c (or random bytes when c < 0). */
static void scribble(const char *path, off_t off, size_t len, int c)
{
  unsigned char buf[4096];
  int fd = open(path, O_RDWR);
  size_t done = 0, i;

  CHECK(fd >= 0);
  if (fd < 0)
    return;
  while (done < len) {
    size_t n = len - done < sizeof buf ? len - done : sizeof buf;
    for (i = 0; i < n; i++)
      buf[i] = (unsigned char)(c >= 0 ? c : rand());
    CHECK(pwrite(fd, buf, n, off + (off_t)done) == (ssize_t)n);
    done += n;
  }
  close(fd);
}

/* The offset of a key's slot in the file (the key is its first field). */
static off_t key_offset(const char *path, const char *key)
{
  static char data[1 << 20];
  int fd = open(path, O_RDONLY);
  ssize_t n = fd >= 0 ? read(fd, data, sizeof data) : -1;
  char *p;

  if (fd >= 0)
    close(fd);
  if (n <= 0)
    return -1;
  p = memmem(data, (size_t)n, key, strlen(key) + 1);
  return p ? p - data : -1;
}

/* Corrupt counters, indices, factors and times under a running limiter:
 * never a crash, never more than N grants in a window, never stuck. */
static void corrupt_body(const char *path)
{
  ca_limiter *l = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t now, retry = 0;
  off_t key, size;
  int c;

  CHECK(ca_limiter_new(path, 50000, &l, &err) == CHATAPP_OK);
  if (!l)
    return;
  now = ca_now_us(); /* after the opening, which stamps the file */
  size = file_size(path);
  CHECK(grants(l, "acct/Q", 3, now) == 3);
  key = key_offset(path, "acct/Q");
  CHECK(key > 0);
  /* count and head (right after the 96-byte key) out of range */
  for (c = 0; key > 0 && c < 2; c++) {
    scribble(path, key + 96, 8, c ? 0x7f : 0xff);
    CHECK(grants(l, "acct/Q", 12, now) <= 10);
    ca_limiter_throttled(l, "acct/Q", now);
    CHECK(ca_limiter_factor(l, "acct/Q", now) <= 1.0);
  }
  /* Fields after the key (count, head, factor, threshold, factor_at_us,
   * last_throttle_us, ...): a factor time from before the clock started
   * must not overflow the factor's arithmetic (UBSan). */
  if (key > 0) {
    struct {
      uint32_t count, head;
      double factor, threshold;
      int64_t factor_at, last_throttle;
    } f = {3, 3, 0.5, 0.0, INT64_MIN, 0};
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0 && pwrite(fd, &f, sizeof f, key + 96) == (ssize_t)sizeof f);
    if (fd >= 0)
      close(fd);
    CHECK(ca_limiter_factor(l, "acct/Q", now) == 0.5);
    f.last_throttle = INT64_MAX;
    fd = open(path, O_RDWR);
    CHECK(fd >= 0 && pwrite(fd, &f, sizeof f, key + 96) == (ssize_t)sizeof f);
    if (fd >= 0)
      close(fd);
    CHECK(ca_limiter_factor(l, "acct/Q", now) <= 1.0);
    CHECK(grants(l, "acct/Q", 12, now + W) <= 10);
  }
  /* Every slot garbage, header intact: times from the far future (0x7f)
   * and from the far past (0xff), keys without a terminator. */
  for (c = 0; c < 2; c++) {
    scribble(path, 48, (size_t)size - 48, c ? 0xff : 0x7f);
    now += 10 * SEC;
    CHECK(grants(l, "acct/Q", 12, now) <= 10);
    /* not stuck: a window later the key can start calls again */
    CHECK(ca_limiter_acquire(l, "acct/Q", 10, now + W, &retry, NULL));
    CHECK(grants(l, "other", 12, now) <= 10);
    ca_limiter_throttled(l, "other", now);
    CHECK(ca_limiter_factor(l, "other", now) > 0.0);
  }
  /* Random garbage everywhere, header included: a fresh state. */
  for (c = 0; c < 20; c++) {
    scribble(path, 0, (size_t)size, -1);
    now += 10 * SEC;
    CHECK(grants(l, "acct/Q", 12, now) == 10);
  }
  /* Random garbage after the header. */
  for (c = 0; c < 20; c++) {
    scribble(path, 48, (size_t)size - 48, -1);
    now += 10 * SEC;
    CHECK(grants(l, "acct/Q", 12, now) <= 10);
    ca_limiter_throttled(l, "acct/Q", now);
    CHECK(ca_limiter_factor(l, "acct/Q", now) <= 1.0);
  }
  CHECK(ca_limiter_note(l) == NULL); /* garbage is repaired silently */
  ca_limiter_free(l);
  ca_buf_free(&err);
}

static void test_corrupt_mid_use(void)
{
  char dir[] = "/tmp/chatapp-limiter-XXXXXX", path[128];

  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/state", dir);
  srand(11);
  isolated("corrupt mid-use", corrupt_body, path);
  unlink(path);
  rmdir(dir);
}

/* margin 0 means the default margin (ca_limiter.h), 50 ms. */
static void test_default_margin(void)
{
  ca_limiter *l = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t starts[20];

  CHECK(CA_LIMITER_MARGIN_US == 50000);
  CHECK(ca_limiter_new(NULL, 0, &l, &err) == CHATAPP_OK);
  drive(l, "k", 10, 20, 5 * SEC, starts);
  CHECK(starts[10] - starts[0] == W);
  ca_limiter_free(l);
  ca_buf_free(&err);
}

int main(void)
{
  test_window();
  test_adaptive();
  test_shared_file();
  test_corrupt_state();
  test_truncated();
  test_corrupt_mid_use();
  test_default_margin();
  return test_report("test_limiter");
}
