/* Did-you-mean: one edit distance for every "no such name" message (CLI
 * options, PhoneNumber fields and methods). */
#include <string.h>

#include "ca_suggest.h"

size_t ca_edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), i, j;
  size_t row[64], prev, tmp;

  if (la >= 63 || lb >= 63)
    return CA_SUGGEST_FAR;
  for (j = 0; j <= lb; j++)
    row[j] = j;
  for (i = 1; i <= la; i++) {
    prev = row[0];
    row[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = row[j] + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      if (prev + cost < best)
        best = prev + cost;
      tmp = row[j];
      row[j] = best;
      prev = tmp;
    }
  }
  return row[lb];
}

const char *ca_suggest_nearer(const char *key, const char *cand,
                              const char *best, size_t *bestd)
{
  size_t d;

  if (!cand)
    return best;
  d = ca_edit_distance(key, cand);
  if (d < *bestd) {
    *bestd = d;
    return cand;
  }
  return best;
}
