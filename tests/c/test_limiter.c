/*
 * The limiter's guarantee with synthetic time: never more than N starts in
 * any window W, as close to N/W as possible, adaptive decrease and
 * recovery, sharing through a state file, and a dead lock holder.
 */
#include <fcntl.h>
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
  /* Back quickly to the throttle level (0.05/s): 1.0 after 6 s. */
  CHECK(ca_limiter_factor(l, "k", t + 3 * SEC) > 0.84);
  CHECK(ca_limiter_factor(l, "k", t + 3 * SEC) < 0.86);
  CHECK(ca_limiter_factor(l, "k", t + 7 * SEC) == 1.0);

  /* Throttled again at 0.5 (a lowered quota): quick to 0.5, slow above it
   * while throttles are recent, quick again after 5 quiet seconds. */
  t += 100 * SEC;
  ca_limiter_throttled(l, "k", t);           /* 1.0 -> 0.7 */
  ca_limiter_throttled(l, "k", t + 2 * SEC); /* 0.8 -> 0.56 */
  CHECK(ca_limiter_factor(l, "k", t + 2 * SEC) > 0.55);
  CHECK(ca_limiter_factor(l, "k", t + 2 * SEC) < 0.57);
  /* 0.56 -> 0.8 in 4.8 s, then 0.01/s until 5 s after the throttle */
  {
    double f = ca_limiter_factor(l, "k", t + 7 * SEC);
    CHECK(f > 0.80 && f < 0.8021);
  }
  CHECK(ca_limiter_factor(l, "k", t + 11 * SEC) > 0.99);
  ca_limiter_free(l);
  ca_buf_free(&err);
}

static void test_shared_file(void)
{
  char dir[] = "/tmp/chatapp-limiter-XXXXXX", path[128];
  ca_limiter *a = NULL, *b = NULL;
  ca_buf err = CA_BUF_INIT(1024);
  int64_t now = ca_now_us(), retry = 0;
  int granted = 0, i;
  pid_t pid;
  int status;

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

  /* A process killed while holding the lock does not stall the others. */
  pid = fork();
  if (pid == 0) {
    int fd = open(path, O_RDWR);
    flock(fd, LOCK_EX);
    pause(); /* killed below */
    _exit(0);
  }
  usleep(100000);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
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

int main(void)
{
  test_window();
  test_adaptive();
  test_shared_file();
  test_corrupt_state();
  return test_report("test_limiter");
}
