/*
 * A main() for fuzz targets in builds without libFuzzer: runs the target
 * once on each file named on the command line (the corpus), so ctest can
 * replay the corpus under ASan, UBSan and valgrind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
  int i, n = 0;

  for (i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    unsigned char *buf;
    long len;
    if (!f || fseek(f, 0, SEEK_END) || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET)) {
      fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len) {
      fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    free(buf);
    n++;
  }
  fprintf(stderr, "%d inputs replayed\n", n);
  return n > 0 ? 0 : 1;
}
