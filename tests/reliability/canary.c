/* One deliberate defect per mode, for the cases that check the memory
 * tools themselves (G1: the sanitizer build, G2: valgrind): a pass that
 * is meant to fail on a defect must fail on this one.
 *
 *   canary clean | leak | overflow | signed-overflow
 *
 * volatile keeps the optimizer from removing the defects. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int leak(void)
{
  char *volatile p = malloc(64);

  if (!p)
    return 1;
  p[0] = 1;
  p = NULL; /* the only pointer is gone: definitely lost */
  return 0;
}

static int overflow(void)
{
  char *p = malloc(8);
  volatile size_t i = 8;
  volatile char c;

  if (!p)
    return 1;
  memset(p, 0, 8);
  c = p[i]; /* one past the end */
  free(p);
  (void)c;
  return 0;
}

static int signed_overflow(void)
{
  volatile int x = INT_MAX;
  int y = x + 1;

  return y == 0;
}

int main(int argc, char **argv)
{
  const char *mode = argc > 1 ? argv[1] : "";

  if (strcmp(mode, "clean") == 0)
    return 0;
  if (strcmp(mode, "leak") == 0)
    return leak();
  if (strcmp(mode, "overflow") == 0)
    return overflow();
  if (strcmp(mode, "signed-overflow") == 0)
    return signed_overflow();
  fprintf(
    stderr,
    "canary: unknown mode '%s' (clean, leak, overflow, signed-overflow)\n",
    mode);
  return 2;
}
