/* Did-you-mean: one edit distance for every "no such name" message (CLI
 * options, PhoneNumber fields and methods). */
#include <string.h>

#include "ca_suggest.h"

/* Optimal string alignment: insertions, deletions, substitutions, and a
 * swap of two neighbours counting as one edit (like chatapp.distance in
 * lua/chatapp/init.lua). */
size_t ca_edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), i, j;
  size_t prev2[64], prev[64], cur[64];

  if (la >= 63 || lb >= 63)
    return CA_SUGGEST_FAR;
  for (j = 0; j <= lb; j++)
    prev[j] = j;
  prev2[0] = 0;
  for (i = 1; i <= la; i++) {
    cur[0] = i;
    for (j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t d = prev[j] + 1;
      if (cur[j - 1] + 1 < d)
        d = cur[j - 1] + 1;
      if (prev[j - 1] + cost < d)
        d = prev[j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          prev2[j - 2] + 1 < d)
        d = prev2[j - 2] + 1;
      cur[j] = d;
    }
    memcpy(prev2, prev, (lb + 1) * sizeof prev[0]);
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

/* How far key is from cand: the edit distance, or, for a key of 4 or more
 * characters, one more than its distance to a part of cand before a '_'
 * or '-' ("qualty" for quality_rating, "allow" for allow-exec). */
static size_t nearness(const char *key, const char *cand)
{
  size_t d = ca_edit_distance(key, cand), n;
  char pre[64];

  if (strlen(key) < 4)
    return d;
  for (n = 1; cand[n] && n < sizeof pre; n++) {
    size_t dp;
    if (cand[n] != '_' && cand[n] != '-')
      continue;
    memcpy(pre, cand, n);
    pre[n] = '\0';
    dp = ca_edit_distance(key, pre) + 1;
    if (dp < d)
      d = dp;
  }
  return d;
}

const char *ca_suggest_nearer(const char *key, const char *cand,
                              const char *best, size_t *bestd)
{
  size_t d;

  if (!cand)
    return best;
  d = nearness(key, cand);
  if (d < *bestd) {
    *bestd = d;
    return cand;
  }
  return best;
}
