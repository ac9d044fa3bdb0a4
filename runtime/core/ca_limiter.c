#include "ca_limiter.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ca_crypto.h"
#include "ca_limiter_redis.h"
#include "ca_redis.h"

#define MAGIC              0x4d4c4143u /* "CALM" */
#define VERSION            2u
#define NSLOTS             64
#define LOCK_BUSY_RETRY_US 2000 /* the shared lock is held: ask again then */
#define KEYLEN             96

/* One key's state.  All fields are plain data so the struct can live in a
 * shared mapping; every reader validates what it finds. */
typedef struct slot {
  char key[KEYLEN]; /* "" = free */
  uint32_t count;   /* valid entries in times (<= CA_LIMITER_MAX_N) */
  uint32_t head;    /* next position to write */
  double factor;    /* adaptive multiplier at factor_at_us */
  double threshold; /* the factor at the last throttle answer */
  int64_t factor_at_us;
  int64_t last_throttle_us;
  int64_t last_use_us;
  int64_t times[CA_LIMITER_MAX_N]; /* start times, a ring */
} slot;

typedef struct state {
  uint32_t magic, version;
  char boot_id[40];
  slot slots[NSLOTS];
} state;

struct ca_limiter {
  state *st;      /* the state in use: the mapping, or `local` */
  state *map;     /* the mapping of the shared file, or NULL */
  state *local;   /* private state: in-process, or the file's fallback */
  int fd;         /* the shared file, -1: in-process only */
  int64_t window; /* microseconds */
  char *path;     /* the shared file, for messages */
  char note[512]; /* what went wrong with the file, "" when nothing */
  ca_limiter_redis *redis; /* shared through Redis: everything goes there */
};

/* ---- clocks ------------------------------------------------------------- */

#define CLOCK_OFFSET_ENV "CHATAPP_TEST_CLOCK_OFFSET_MS"
#define CLOCK_OFFSET_MAX (86400LL * 1000) /* a day, in ms */

static pthread_once_t offset_once = PTHREAD_ONCE_INIT;
static int64_t offset_us;

/* Read once: a whole number of milliseconds within a day either way;
 * anything else is no offset (a test variable, never a user's). */
static void read_offset(void)
{
  const char *v = getenv(CLOCK_OFFSET_ENV);
  char *end = NULL;
  long long ms;

  if (!v || !*v)
    return;
  errno = 0;
  ms = strtoll(v, &end, 10);
  if (errno || !end || *end || ms < -CLOCK_OFFSET_MAX || ms > CLOCK_OFFSET_MAX)
    return;
  offset_us = (int64_t)ms * 1000;
}

int64_t ca_clock_offset_us(void)
{
  (void)pthread_once(&offset_once, read_offset);
  return offset_us;
}

int64_t ca_now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 +
         ca_clock_offset_us();
}

int64_t ca_wall_s(void)
{
  return (int64_t)time(NULL) + ca_clock_offset_us() / 1000000;
}

/* ---- the host-local limiter --------------------------------------------- */

static void read_boot_id(char out[40])
{
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
  size_t n = 0;

  memset(out, 0, 40);
  if (f) {
    n = fread(out, 1, 39, f);
    fclose(f);
  }
  while (n && (out[n - 1] == '\n' || out[n - 1] == '\0'))
    out[--n] = '\0';
}

/*
 * Take the file's lock.  busy NULL: wait for it, and *waited_us (may be
 * NULL) says how long another process kept this one waiting (0 when it
 * was free).  busy not NULL: do not wait; *busy = 1 and 0 returned when
 * another process holds it.
 */
static int take_lock(ca_limiter *l, int64_t *waited_us, int *busy)
{
  int64_t t0;
  int rc;

  if (waited_us)
    *waited_us = 0;
  if (busy)
    *busy = 0;
  while ((rc = flock(l->fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
    ;
  if (rc == 0)
    return 0;
  if (errno != EWOULDBLOCK)
    return -1;
  if (busy) {
    *busy = 1;
    return 0;
  }
  t0 = ca_now_us();
  while ((rc = flock(l->fd, LOCK_EX)) != 0 && errno == EINTR)
    ;
  if (rc == 0 && waited_us)
    *waited_us = ca_now_us() - t0;
  return rc;
}

/* CHATAPP_TEST_LIMITER_HOLD_AFTER=N (tests only, docs/internals/testing.md):
 * the N-th time this process takes the shared file's lock, it says so on
 * standard error and keeps the lock for 30 s, so a test can kill -9 a
 * process that holds it (reliability case A3).  Anything but a whole
 * number from 1 to 1000000 is no hold. */
#define HOLD_ENV "CHATAPP_TEST_LIMITER_HOLD_AFTER"
static pthread_once_t hold_once = PTHREAD_ONCE_INIT;
static long hold_after;
static atomic_long locks_taken;

static void read_hold(void)
{
  const char *v = getenv(HOLD_ENV);
  char *end = NULL;
  long n;

  if (!v || !*v)
    return;
  errno = 0;
  n = strtol(v, &end, 10);
  if (!errno && end && !*end && n >= 1 && n <= 1000000)
    hold_after = n;
}

static void test_hold(void)
{
  struct timespec ts = {30, 0};

  (void)pthread_once(&hold_once, read_hold);
  if (!hold_after || atomic_fetch_add(&locks_taken, 1) + 1 != hold_after)
    return;
  fprintf(stderr, "chatapp-run: test: holding the limiter lock (%s)\n",
          HOLD_ENV);
  fflush(stderr);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void unlock(ca_limiter *l)
{
  if (l->st == l->map)
    flock(l->fd, LOCK_UN);
}

/*
 * Called under the lock: make a state written by another process (maybe
 * one that died mid-update, or before a reboot) safe to use.  Errors are
 * always on the conservative side: unknown times become "now".
 */
static void sanitize(state *s, int64_t now)
{
  char boot[40];
  int reboot;
  size_t i, j;

  read_boot_id(boot);
  reboot = s->magic != MAGIC || s->version != VERSION ||
           memcmp(s->boot_id, boot, sizeof boot) != 0;
  if (s->magic != MAGIC || s->version != VERSION)
    memset(s, 0, sizeof *s);
  s->magic = MAGIC;
  s->version = VERSION;
  memcpy(s->boot_id, boot, sizeof boot);
  for (i = 0; i < NSLOTS; i++) {
    slot *sl = &s->slots[i];
    sl->key[KEYLEN - 1] = '\0';
    if (sl->count > CA_LIMITER_MAX_N || sl->head >= CA_LIMITER_MAX_N) {
      sl->count = CA_LIMITER_MAX_N;
      sl->head = 0;
      reboot = 1;
    }
    if (!(sl->factor >= CA_LIMITER_MIN_FACTOR && sl->factor <= 1.0))
      sl->factor = 1.0;
    if (!(sl->threshold >= 0.0 && sl->threshold <= 1.0))
      sl->threshold = 0.0;
    for (j = 0; j < CA_LIMITER_MAX_N; j++)
      if (reboot || sl->times[j] > now)
        sl->times[j] = now;
    if (sl->factor_at_us > now)
      sl->factor_at_us = now;
    if (sl->last_throttle_us > now)
      sl->last_throttle_us = now;
  }
}

/*
 * Stop using the shared file for the rest of the limiter's life: this
 * process goes on with its private state (sanitized, so nothing from the
 * file is trusted) and ca_limiter_note says why.
 */
static void fall_back(ca_limiter *l, const char *what, int err, int64_t now)
{
  snprintf(l->note, sizeof l->note,
           "the shared limiter state file %s %s (%s); this process now limits "
           "its own calls only, without the other processes on this host",
           l->path, what, strerror(err));
  if (l->st == l->map)
    flock(l->fd, LOCK_UN);
  memset(l->local, 0, sizeof *l->local);
  sanitize(l->local, now);
  l->st = l->local;
}

/*
 * Take the lock and make the shared state safe to touch: the file is
 * checked with fstat under the lock before the mapping is read, because a
 * file shorter than the mapping gives SIGBUS on access.  A truncated file
 * (truncate -s 0, a full disk, a careless cleanup) is grown back and
 * started afresh; a header that is not ours is reset.  Every slot is then
 * validated where it is used (fix_slot).
 *
 * busy NULL: wait for the lock (and move *nowp on by the wait).  busy not
 * NULL (ca_limiter_acquire): when another process holds it, *busy = 1 and
 * nothing is locked: a caller must not stop in the middle of starting its
 * calls, or the calls it was granted just before would be sent late,
 * after their start was recorded (a holder that is stopped or dies
 * holding it would have them go out with the next window's: a burst).
 */
static void lock(ca_limiter *l, int64_t *nowp, int *busy)
{
  struct stat sb;
  int64_t waited, now;

  if (l->st != l->map)
    return; /* in-process: nothing shared */
  if (take_lock(l, &waited, busy) != 0) {
    fall_back(l, "cannot be locked", errno, *nowp);
    return;
  }
  if (busy && *busy)
    return;
  test_hold();
  /* The caller's now was read before the wait: what it records under the
   * lock (a throttle's time) is not dated before it. */
  *nowp += waited;
  now = *nowp;
  if (fstat(l->fd, &sb) != 0) {
    fall_back(l, "cannot be checked", errno, now);
    return;
  }
  if (sb.st_size < (off_t)sizeof(state)) {
    if (ftruncate(l->fd, (off_t)sizeof(state)) != 0) {
      fall_back(l, "was truncated and cannot be grown back", errno, now);
      return;
    }
    snprintf(l->note, sizeof l->note,
             "the shared limiter state file %s was truncated by something "
             "else (%lld bytes); it was re-created, and the calls started "
             "before were forgotten",
             l->path, (long long)sb.st_size);
  }
  if (sb.st_nlink == 0 && !l->note[0])
    snprintf(l->note, sizeof l->note,
             "the shared limiter state file %s was removed during the run; "
             "this process no longer shares its rate with new processes",
             l->path);
  if (l->st->magic != MAGIC || l->st->version != VERSION)
    sanitize(l->st, now);
}

const char *ca_limiter_note(const ca_limiter *l)
{
  return l && l->note[0] ? l->note : NULL;
}

/*
 * A slot as read from the shared file, made safe where it is used:
 * indices and counts in range, the key terminated, factors in range,
 * times from the future (written by a broken or hostile process) pulled
 * back to now.  Cheap enough for every access.
 */
static void fix_slot(slot *sl, int64_t now, int64_t window)
{
  size_t i;

  sl->key[KEYLEN - 1] = '\0';
  for (i = 0; i < CA_LIMITER_MAX_N; i++)
    if (sl->times[i] > now + window)
      sl->times[i] = now;
  if (sl->count > CA_LIMITER_MAX_N)
    sl->count = CA_LIMITER_MAX_N;
  if (sl->head >= CA_LIMITER_MAX_N)
    sl->head = 0;
  if (!(sl->factor >= CA_LIMITER_MIN_FACTOR && sl->factor <= 1.0))
    sl->factor = 1.0;
  if (!(sl->threshold >= 0.0 && sl->threshold <= 1.0))
    sl->threshold = 0.0;
  if (sl->factor_at_us > now || sl->factor_at_us < 0)
    sl->factor_at_us = now; /* (monotonic times are never negative) */
  if (sl->last_throttle_us > now + window || sl->last_throttle_us < 0)
    sl->last_throttle_us = now;
}

chatapp_status ca_limiter_new(const char *path, int64_t margin_us,
                              ca_limiter **out, ca_buf *err)
{
  ca_limiter *l = calloc(1, sizeof *l);
  struct stat sb;
  void *map;

  *out = NULL;
  if (!l)
    return CHATAPP_ENOMEM;
  l->fd = -1;
  l->window = 1000000 + (margin_us > 0 ? margin_us : CA_LIMITER_MARGIN_US);
  if (path && (ca_redis_is_url(path) || strncmp(path, "rediss://", 9) == 0)) {
    /* Shared through Redis; the URL is not kept (ca_redis_where names the
     * server in messages). */
    chatapp_status st = ca_limiter_redis_new(path, l->window, &l->redis, err);
    if (st) {
      free(l);
      return st;
    }
    *out = l;
    return CHATAPP_OK;
  }
  l->local = calloc(1, sizeof *l->local);
  if (!l->local || (path && !(l->path = strdup(path)))) {
    free(l->local);
    free(l);
    return CHATAPP_ENOMEM;
  }
  l->st = l->local;
  sanitize(l->local, ca_now_us());
  if (!path) {
    *out = l;
    return CHATAPP_OK;
  }
  l->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (l->fd < 0) {
    ca_buf_printf(err, "cannot open the limiter state file %s: %s", path,
                  strerror(errno));
    goto fail;
  }
  if (fstat(l->fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      sb.st_uid != geteuid() || (sb.st_mode & 077) != 0) {
    ca_buf_printf(err,
                  "the limiter state file %s must be a regular file owned by "
                  "you with mode 0600; remove it and run again",
                  path);
    goto fail;
  }
  if (take_lock(l, NULL, NULL) != 0) {
    ca_buf_printf(err, "cannot lock the limiter state file %s: %s", path,
                  strerror(errno));
    goto fail;
  }
  if ((size_t)sb.st_size < sizeof(state) &&
      ftruncate(l->fd, (off_t)sizeof(state)) != 0) {
    ca_buf_printf(err, "cannot size the limiter state file %s: %s", path,
                  strerror(errno));
    flock(l->fd, LOCK_UN);
    goto fail;
  }
  map = mmap(NULL, sizeof(state), PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);
  if (map == MAP_FAILED) {
    ca_buf_printf(err, "cannot map the limiter state file %s: %s", path,
                  strerror(errno));
    flock(l->fd, LOCK_UN);
    goto fail;
  }
  l->st = l->map = map;
  sanitize(l->st, ca_now_us());
  unlock(l);
  *out = l;
  return CHATAPP_OK;
fail:
  if (l->fd >= 0)
    close(l->fd);
  free(l->local);
  free(l->path);
  free(l);
  return CHATAPP_EIO;
}

void ca_limiter_free(ca_limiter *l)
{
  if (!l)
    return;
  ca_limiter_redis_free(l->redis);
  if (l->map)
    munmap(l->map, sizeof(state));
  if (l->fd >= 0)
    close(l->fd);
  free(l->local);
  free(l->path);
  free(l);
}

/* The slot for key, taking a free or the least recently used one; fixed
 * (fix_slot) before it is returned. */
/* The key as a slot holds it: as it is when it fits, else its head and a
 * hash of the whole, so two long keys that share a head never share a
 * slot (a slot is one account's operation: sharing would halve both). */
static void slot_key(const char *key, char out[KEYLEN])
{
  size_t n = strlen(key);
  char hex[65];

  if (n < KEYLEN || ca_sha256_hex(key, n, hex) != CHATAPP_OK) {
    snprintf(out, KEYLEN, "%s", key); /* (a failed hash: cut, as before) */
    return;
  }
  snprintf(out, KEYLEN, "%.*s#%.16s", KEYLEN - 18, key, hex);
}

static slot *find_slot(state *s, const char *full_key, int64_t now,
                       int64_t window)
{
  slot *victim = &s->slots[0];
  char key[KEYLEN];
  size_t i;

  slot_key(full_key, key);
  for (i = 0; i < NSLOTS; i++) {
    slot *sl = &s->slots[i];
    if (strncmp(sl->key, key, KEYLEN - 1) == 0 && sl->key[0]) {
      fix_slot(sl, now, window);
      return sl;
    }
    if (!victim->key[0])
      continue;
    if (!sl->key[0] || sl->last_use_us < victim->last_use_us)
      victim = sl;
  }
  /* A reused slot keeps its times: conservative for the newcomer. */
  memset(victim->key, 0, KEYLEN);
  memcpy(victim->key, key, strlen(key)); /* under KEYLEN (slot_key) */
  victim->factor = 1.0;
  victim->threshold = 0.0;
  victim->factor_at_us = now;
  victim->last_throttle_us = 0;
  fix_slot(victim, now, window);
  return victim;
}

/*
 * The factor at now: piecewise linear from (factor, factor_at_us) --
 * quickly up to just under the level of the last throttle answer
 * (APPROACH of it: that level was too much), slowly above it while the
 * last throttle is recent, quickly again after a quiet spell.
 */
static double factor_at(const slot *sl, int64_t now)
{
  double f = sl->factor;
  double target = sl->threshold * CA_LIMITER_APPROACH;
  int64_t t = sl->factor_at_us;
  int64_t quiet_end =
    sl->last_throttle_us ? sl->last_throttle_us + CA_LIMITER_QUIET_US : 0;
  int i;

  for (i = 0; i < 3 && t < now && f < 1.0; i++) {
    if (f < target) {
      double need_s = (target - f) / CA_LIMITER_FAST;
      int64_t reach = t + (int64_t)(need_s * 1e6);
      if (reach >= now) {
        f += CA_LIMITER_FAST * (double)(now - t) / 1e6;
        t = now;
      } else {
        f = target;
        t = reach;
      }
    } else if (t < quiet_end) {
      int64_t end = quiet_end < now ? quiet_end : now;
      f += CA_LIMITER_SLOW * (double)(end - t) / 1e6;
      t = end;
    } else {
      f += CA_LIMITER_FAST * (double)(now - t) / 1e6;
      t = now;
    }
  }
  return f > 1.0 ? 1.0 : f;
}

int ca_limiter_acquire(ca_limiter *l, const char *key, int n, int64_t now,
                       int64_t *retry_at, double *factor)
{
  slot *sl;
  int64_t oldest;
  uint32_t k, head, count;
  double f;
  int granted, busy = 0;

  if (l->redis)
    return ca_limiter_redis_acquire(l->redis, key, n, now, retry_at, factor);
  lock(l, &now, &busy);
  if (busy) {
    /* another process is in its (short) critical section, or stopped or
     * dying in it: ask again soon */
    *retry_at = now + LOCK_BUSY_RETRY_US;
    return 0;
  }
  sl = find_slot(l->st, key, now, l->window);
  sl->last_use_us = now;
  f = factor_at(sl, now);
  if (factor)
    *factor = f;
  k = (uint32_t)floor((double)n * f + 1e-9);
  if (k < 1)
    k = 1;
  if (k > CA_LIMITER_MAX_N)
    k = CA_LIMITER_MAX_N;
  /* Read once and bound: the shared file may change under a process that
   * ignores the lock, and an index is never trusted. */
  head = sl->head % CA_LIMITER_MAX_N;
  count = sl->count < CA_LIMITER_MAX_N ? sl->count : CA_LIMITER_MAX_N;
  if (count < k) {
    granted = 1;
  } else {
    /* The k-th most recent start. */
    oldest = sl->times[(head + CA_LIMITER_MAX_N - k) % CA_LIMITER_MAX_N];
    granted = oldest + l->window <= now;
    if (!granted)
      *retry_at = oldest + l->window;
  }
  if (granted) {
    sl->times[head] = now;
    sl->head = (head + 1) % CA_LIMITER_MAX_N;
    if (count < CA_LIMITER_MAX_N)
      sl->count = count + 1;
  }
  unlock(l);
  return granted;
}

void ca_limiter_throttled(ca_limiter *l, const char *key, int64_t now)
{
  slot *sl;
  double f;

  if (l->redis) {
    ca_limiter_redis_throttled(l->redis, key, now);
    return;
  }
  lock(l, &now, NULL);
  sl = find_slot(l->st, key, now, l->window);
  if (sl->last_throttle_us == 0 || now - sl->last_throttle_us >= l->window) {
    sl->threshold = factor_at(sl, now);
    f = sl->threshold * CA_LIMITER_DECREASE;
    sl->factor = f < CA_LIMITER_MIN_FACTOR ? CA_LIMITER_MIN_FACTOR : f;
    sl->factor_at_us = now;
    sl->last_throttle_us = now;
  }
  unlock(l);
}

double ca_limiter_factor(ca_limiter *l, const char *full_key, int64_t now)
{
  double f = 1.0;
  char key[KEYLEN];
  size_t i;

  if (l->redis)
    return ca_limiter_redis_factor(l->redis, full_key, now);
  slot_key(full_key, key);
  lock(l, &now, NULL);
  for (i = 0; i < NSLOTS; i++) {
    slot *sl = &l->st->slots[i];
    if (sl->key[0] && strncmp(sl->key, key, KEYLEN - 1) == 0) {
      fix_slot(sl, now, l->window);
      f = factor_at(sl, now);
    }
  }
  unlock(l);
  return f;
}

const char *ca_limiter_error(const ca_limiter *l)
{
  return l && l->redis ? ca_limiter_redis_error(l->redis) : NULL;
}

const char *ca_limiter_where(const ca_limiter *l)
{
  return l && l->redis ? ca_limiter_redis_where(l->redis) : NULL;
}

void ca_limiter_stats_get(const ca_limiter *l, int64_t now,
                          ca_limiter_stats *out)
{
  if (l && l->redis)
    ca_limiter_redis_stats(l->redis, now, out);
  else
    memset(out, 0, sizeof *out);
}

chatapp_status ca_limiter_default_path(const char *account_key, ca_buf *b,
                                       ca_buf *err)
{
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  const unsigned char *p;
  ca_buf dir = CA_BUF_INIT(4096);
  chatapp_status st;
  struct stat sb;

  for (p = (const unsigned char *)account_key; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  if (xdg && *xdg == '/')
    st = ca_buf_printf(&dir, "%s/chatapp-run", xdg);
  else
    st = ca_buf_printf(&dir, "/tmp/chatapp-run-%u", (unsigned)geteuid());
  if (st)
    goto out;
  if (mkdir(dir.ptr, 0700) != 0 && errno != EEXIST) {
    ca_buf_printf(err, "cannot create %s: %s", dir.ptr, strerror(errno));
    st = CHATAPP_EIO;
    goto out;
  }
  if (lstat(dir.ptr, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
      sb.st_uid != geteuid() || (sb.st_mode & 077) != 0) {
    ca_buf_printf(err,
                  "%s must be a directory owned by you with mode 0700 (it "
                  "holds the shared rate-limiter state)",
                  dir.ptr);
    st = CHATAPP_EIO;
    goto out;
  }
  st = ca_buf_printf(b, "%s/limiter-%016llx.state", dir.ptr,
                     (unsigned long long)h);
out:
  ca_buf_free(&dir);
  return st;
}
