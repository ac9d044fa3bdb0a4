/* Did-you-mean: the nearest valid name to a misspelt one. */
#ifndef CA_SUGGEST_H
#define CA_SUGGEST_H

#include <stddef.h>

/* Levenshtein distance of two short strings (under 63 bytes each; longer
 * ones are CA_SUGGEST_FAR apart). */
#define CA_SUGGEST_FAR 99
size_t ca_edit_distance(const char *a, const char *b);

/* The nearer of cand (NULL: skipped) and best to key: cand when it is
 * closer than *bestd (then *bestd is its distance), else best.  Start with
 * best NULL and *bestd the largest distance worth suggesting plus one. */
const char *ca_suggest_nearer(const char *key, const char *cand,
                              const char *best, size_t *bestd);

#endif
