/* Files embedded into a binary at build time (ca_embed.h). */
#include "ca_embed.h"

#include <string.h>

const ca_embedded *ca_embedded_find(const ca_embedded *table, const char *name)
{
  for (; table->name; table++)
    if (strcmp(table->name, name) == 0)
      return table;
  return NULL;
}
