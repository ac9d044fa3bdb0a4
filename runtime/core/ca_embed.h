/* Files embedded into a binary at build time (cmake/ChatappEmbed.cmake). */
#ifndef CA_EMBED_H
#define CA_EMBED_H

#include <stddef.h>

typedef struct ca_embedded {
  const char *name; /* path relative to its base folder; NULL ends a table */
  const char *data; /* NUL-terminated */
  size_t len;       /* without the NUL */
} ca_embedded;

/* The Lua sources of lua/ ("chatapp/init.lua", ...). */
extern const ca_embedded ca_lua_sources[];

/* The emulator's sample data ("sample.json"), for --check. */
extern const ca_embedded ca_sample_data[];

/* Find a file by name in a table; NULL if absent. */
const ca_embedded *ca_embedded_find(const ca_embedded *table, const char *name);

#endif
