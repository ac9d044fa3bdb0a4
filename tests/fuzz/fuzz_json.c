/*
 * Fuzz target: the C JSON reader (full and shallow) and the answer
 * envelope, which read bytes from the network and from credential files.
 * Properties: no crash, no leak, no undefined behaviour; a document that
 * parses in full also parses shallow; shallow keeps the same top level.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ca_api.h"
#include "ca_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *text = (const char *)data;
  char err[160];
  ca_json_doc *full = ca_json_parse(text, size, 64, 0, err, sizeof err);
  ca_json_doc *shallow =
    ca_json_parse(text, size, 64, CA_JSON_SHALLOW, err, sizeof err);
  ca_envelope env;

  if (full && !shallow)
    abort(); /* shallow must accept what full accepts */
  if (full && shallow &&
      (ca_json_root(full)->type != ca_json_root(shallow)->type ||
       ca_json_root(full)->count != ca_json_root(shallow)->count))
    abort();
  if (full) {
    const ca_json *r = ca_json_root(full);
    (void)ca_json_get_str(r, "Code");
    (void)ca_json_get(r, "PhoneNumbers");
  }
  ca_json_free(full);
  ca_json_free(shallow);
  if (ca_envelope_parse(text, size, &env, err, sizeof err) == CHATAPP_OK) {
    (void)ca_classify_answer(400, env.code);
    ca_envelope_free(&env);
  }
  return 0;
}
