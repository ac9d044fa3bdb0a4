/*
 * A wall-clock jump for one process, for reliability case E6 (E6.lua
 * compiles this at test time and preloads it: LD_PRELOAD).  Every read of
 * the wall clock -- time(), gettimeofday(), clock_gettime() of
 * CLOCK_REALTIME and CLOCK_REALTIME_COARSE -- gets the offset, in
 * milliseconds, written in the file CHATAPP_CLOCKJUMP_FILE (read on every
 * call, so a test moves the clock while the process runs; no file or
 * anything but a number: no offset).  The monotonic clocks are left
 * alone, as a real clock step (NTP, date -s) leaves them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long offset_ms(void)
{
  const char *path = getenv("CHATAPP_CLOCKJUMP_FILE");
  char buf[32];
  ssize_t n;
  char *end;
  long long ms;
  int fd;

  if (!path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return 0;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  ms = strtoll(buf, &end, 10);
  return end == buf ? 0 : ms;
}

typedef int (*cg_fn)(clockid_t, struct timespec *);

int clock_gettime(clockid_t id, struct timespec *ts)
{
  static cg_fn real;
  int rc;

  if (!real)
    real = (cg_fn)dlsym(RTLD_NEXT, "clock_gettime");
  rc = real(id, ts);
  if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) {
    long long ns = (long long)ts->tv_nsec + offset_ms() * 1000000LL;
    long long s = ns / 1000000000LL;
    ns %= 1000000000LL;
    if (ns < 0) {
      ns += 1000000000LL;
      s--;
    }
    ts->tv_sec += (time_t)s;
    ts->tv_nsec = (long)ns;
  }
  return rc;
}

int gettimeofday(struct timeval *tv, void *tz)
{
  struct timespec ts;

  (void)tz;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
    return -1;
  if (tv) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return 0;
}

time_t time(time_t *t)
{
  struct timespec ts;
  time_t now;

  if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
    return (time_t)-1;
  now = ts.tv_sec;
  if (t)
    *t = now;
  return now;
}
