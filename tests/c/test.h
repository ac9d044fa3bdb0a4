/*
 * A tiny unit-test helper: CHECK(cond) records a failure with file:line and
 * carries on; the test's main returns test_report() as its exit status.
 */
#ifndef CHATAPP_TEST_H
#define CHATAPP_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                            \
  do {                                                                         \
    test_checks++;                                                             \
    if (!(cond)) {                                                             \
      test_failures++;                                                         \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_STR(a, b)                                                        \
  do {                                                                         \
    const char *a_ = (a), *b_ = (b);                                           \
    test_checks++;                                                             \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                   \
      test_failures++;                                                         \
      fprintf(stderr,                                                          \
              "%s:%d: CHECK_STR failed: %s\n  got:      %s\n"                  \
              "  expected: %s\n",                                              \
              __FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
    }                                                                          \
  } while (0)

/* Print a summary; 0 when every check passed (and at least one ran). */
static inline int test_report(const char *name)
{
  if (test_checks == 0) {
    fprintf(stderr, "%s: no checks ran\n", name);
    return 1;
  }
  fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks,
          test_failures);
  return test_failures ? 1 : 0;
}

/* Read a whole file into a NUL-terminated malloc'd buffer, or exit. */
static inline char *test_slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;

  if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET)) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(2);
  }
  buf = malloc((size_t)n + 1);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fprintf(stderr, "cannot read %s\n", path);
    exit(2);
  }
  buf[n] = '\0';
  fclose(f);
  if (len)
    *len = (size_t)n;
  return buf;
}

#endif
