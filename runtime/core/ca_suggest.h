/* Did-you-mean: the nearest valid name to a misspelt one. */
#ifndef CA_SUGGEST_H
#define CA_SUGGEST_H

#include <stddef.h>

/* Edit distance of two short strings (insertions, deletions,
 * substitutions, a swap of neighbours: one edit each); strings of 63 bytes
 * or more are CA_SUGGEST_FAR apart. */
#define CA_SUGGEST_FAR 99
size_t ca_edit_distance(const char *a, const char *b);

/* The nearer of cand (NULL: skipped) and best to key: cand when it is
 * closer than *bestd (then *bestd is its distance), else best.  A key of 4
 * or more characters is also near a part of cand before a '_' or '-'
 * (one more than its distance to it: "qualty" for quality_rating).  Start with
 * best NULL and *bestd the largest distance worth suggesting plus one. */
const char *ca_suggest_nearer(const char *key, const char *cand,
                              const char *best, size_t *bestd);

#endif
