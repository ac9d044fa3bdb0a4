/*
 * The embedding documentation and packaging files in step with the code:
 *
 *   - docs/embedding.md shows tests/install/host/host.c, host/CMakeLists.txt
 *     and tests/install/lua_host.lua verbatim (the files the tests build
 *     and run), names every function of chatapp.h and every configuration
 *     key of runtime/core/ca_config.c;
 *   - docs/chatapp-run.1 lists every key as an option (--key-name);
 *   - the LuaLS stubs describe every key as a client option.
 *
 *   test_docs SOURCE_DIR      check
 *   test_docs --print-keys    the key table for docs/embedding.md
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_config.h"
#include "test.h"

static char *slurp(const char *dir, const char *rel)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  return test_slurp(path, NULL);
}

/* needle occurs in hay; otherwise a failure naming what is missing. */
static void must_contain(const char *hay, const char *hay_name,
                         const char *needle, const char *what)
{
  test_checks++;
  if (!strstr(hay, needle)) {
    test_failures++;
    fprintf(stderr, "%s does not contain %s\n", hay_name, what);
  }
}

/* A file must appear whole in the document. */
static void verbatim(const char *doc, const char *src, const char *rel)
{
  char *text = slurp(src, rel);
  char what[512];
  snprintf(what, sizeof what, "%s verbatim (copy the file into it)", rel);
  must_contain(doc, "docs/embedding.md", text, what);
  free(text);
}

/* s with "|" escaped for a Markdown table cell. */
static void put_cell(const char *s)
{
  for (; *s; s++) {
    if (*s == '|')
      putchar('\\');
    putchar(*s);
  }
}

static void print_keys(void)
{
  const ca_config_key *k;
  for (k = ca_config_keys(); k->name; k++) {
    printf("| `%s` | ", k->name);
    put_cell(k->arg ? k->arg : "true|false");
    printf(" | ");
    put_cell(k->help);
    printf(" |\n");
  }
}

/* The configuration keys chatapp-run does not take as options. */
static int cli_refuses(const char *key)
{
  static const char *const refused[] = {"access_key_id", "access_key_secret",
                                        "security_token", NULL};
  size_t i;
  for (i = 0; refused[i]; i++)
    if (strcmp(key, refused[i]) == 0)
      return 1;
  return 0;
}

/* Every "CHATAPP_API type name(" of the header is named in the doc; the
 * number of functions found. */
static int check_functions(const char *doc, const char *header)
{
  const char *p = header;
  int found = 0;
  while ((p = strstr(p, "CHATAPP_API ")) != NULL) {
    const char *paren = strchr(p, '('), *end, *start;
    char name[128], needle[160];
    p += 12;
    if (!paren)
      break;
    end = paren;
    start = end;
    while (start > p &&
           (start[-1] == '_' || (start[-1] >= 'a' && start[-1] <= 'z')))
      start--;
    if (end - start <= 0 || (size_t)(end - start) >= sizeof name)
      continue;
    memcpy(name, start, (size_t)(end - start));
    name[end - start] = '\0';
    if (strncmp(name, "chatapp_", 8) != 0 && strncmp(name, "luaopen_", 8) != 0)
      continue; /* the #define of CHATAPP_API itself */
    snprintf(needle, sizeof needle, "%s(", name);
    must_contain(doc, "docs/embedding.md", needle, name);
    found++;
  }
  return found;
}

int main(int argc, char **argv)
{
  const char *src = argc > 1 ? argv[1] : ".";
  char *doc, *man, *stubs, *header;
  const ca_config_key *k;

  if (argc > 1 && strcmp(argv[1], "--print-keys") == 0) {
    print_keys();
    return 0;
  }
  doc = slurp(src, "docs/embedding.md");
  man = slurp(src, "docs/chatapp-run.1");
  stubs = slurp(src, "lua/types/chatapp.lua");
  header = slurp(src, "runtime/include/chatapp.h");

  verbatim(doc, src, "tests/install/host/host.c");
  verbatim(doc, src, "tests/install/host/CMakeLists.txt");
  verbatim(doc, src, "tests/install/lua_host.lua");
  /* the scan above found the API (a header it cannot read checks nothing) */
  CHECK(check_functions(doc, header) >= 20);

  CHECK(ca_config_keys()[0].name != NULL);
  for (k = ca_config_keys(); k->name; k++) {
    char needle[160], option[160];
    size_t i, j = 0;
    snprintf(needle, sizeof needle, "| `%s` |", k->name);
    must_contain(doc, "docs/embedding.md (key table)", needle, k->name);
    /* roff: --max-attempts is written \-\-max\-attempts */
    j = (size_t)snprintf(option, sizeof option, "\\-\\-");
    for (i = 0; k->name[i] && j + 3 < sizeof option; i++) {
      if (k->name[i] == '_') {
        option[j++] = '\\';
        option[j++] = '-';
      } else {
        option[j++] = k->name[i];
      }
    }
    option[j] = '\0';
    /* an option; the keys the command line refuses (credentials: main.c
     * says "never taken on the command line") are named as themselves.
     * Any other key without an option is a failure, not a fallback. */
    must_contain(man, "docs/chatapp-run.1",
                 cli_refuses(k->name) ? k->name : option, k->name);
    snprintf(needle, sizeof needle, "---@field %s? ", k->name);
    must_contain(stubs, "lua/types/chatapp.lua (ClientOptions)", needle,
                 k->name);
  }

  free(doc);
  free(man);
  free(stubs);
  free(header);
  return test_report("test_docs");
}
