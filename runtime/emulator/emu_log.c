/*
 * emu_log.c: the request log, one JSON object per line (JSON Lines).
 *
 * Each line is written with one fwrite and flushed at once, under a lock,
 * so a test can read the file while the emulator runs and never sees half
 * a line.  What goes into a line is decided by emu_api.c, which leaves out
 * signatures, secrets and tokens.
 */
#include "emu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct emu_log {
  FILE *f;
  int owned; /* close on free (not stdout) */
  pthread_mutex_t lock;
};

emu_log *emu_log_open(const char *path)
{
  emu_log *l = calloc(1, sizeof *l);

  if (!l)
    return NULL;
  if (strcmp(path, "-") == 0) {
    l->f = stdout;
  } else {
    l->f = fopen(path, "ae");
    l->owned = 1;
  }
  if (!l->f || setvbuf(l->f, NULL, _IOLBF, 0) != 0 ||
      pthread_mutex_init(&l->lock, NULL) != 0) {
    int saved = errno;
    if (l->f && l->owned)
      fclose(l->f);
    free(l);
    errno = saved;
    return NULL;
  }
  return l;
}

void emu_log_close(emu_log *l)
{
  if (!l)
    return;
  fflush(l->f);
  if (l->owned)
    fclose(l->f);
  pthread_mutex_destroy(&l->lock);
  free(l);
}

void emu_log_line(emu_log *l, const char *json, size_t len)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->lock);
  if (fwrite(json, 1, len, l->f) == len)
    (void)fputc('\n', l->f);
  (void)fflush(l->f);
  pthread_mutex_unlock(&l->lock);
}
