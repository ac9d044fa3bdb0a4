/* chatapp_config: every key parses into its own field, bad values are
 * refused with a message, secrets are refused nowhere but copied. */
#include <string.h>

#include "ca_config.h"
#include "test.h"

int main(void)
{
  chatapp_config *cfg = chatapp_config_new(), *dup;
  const ca_config_key *k;
  int n = 0;

  CHECK(cfg != NULL);
  /* Setting one key never disturbs its neighbours. */
  CHECK(chatapp_config_set(cfg, "output", "json") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "verbose", "3") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "color", "always") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "max-attempts", "5") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "max_in_flight", "7") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "allow_exec", "yes") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "memory_limit_mb", "32") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "instruction_limit", "5000000") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "qps", "2.5") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "signature-version", "v2") == CHATAPP_OK);
  CHECK(cfg->output == CA_OUTPUT_JSON);
  CHECK(cfg->verbose == 3);
  CHECK(cfg->color == 1);
  CHECK(cfg->max_attempts == 5);
  CHECK(cfg->max_in_flight == 7);
  CHECK(cfg->allow_exec == 1);
  CHECK(cfg->memory_limit_mb == 32);
  CHECK(cfg->instruction_limit == 5000000);
  CHECK(cfg->qps == 2.5);
  CHECK(cfg->signature_version == 2);
  CHECK(chatapp_config_set(cfg, "signature_version", "3") == CHATAPP_OK);
  CHECK(cfg->signature_version == 3);
  CHECK(chatapp_config_set(cfg, "color", "auto") == CHATAPP_OK);
  CHECK(cfg->color == -1);

  /* Bad values: refused, with a message naming the key and the value. */
  CHECK(chatapp_config_set(cfg, "qps", "0") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "'qps'") != NULL);
  CHECK(chatapp_config_set(cfg, "qps", "ten") == CHATAPP_EINVAL);
  CHECK(chatapp_config_set(cfg, "max_attempts", "2.5") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "whole number") != NULL);
  CHECK(chatapp_config_set(cfg, "output", "xml") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "none|text|json") != NULL);
  CHECK(chatapp_config_set(cfg, "allow_exec", "maybe") == CHATAPP_EINVAL);
  CHECK(chatapp_config_set(cfg, "no_such_key", "1") == CHATAPP_EINVAL);
  CHECK(strstr(chatapp_config_errmsg(cfg), "unknown option") != NULL);
  CHECK(chatapp_config_set(cfg, "endpoint", NULL) == CHATAPP_EINVAL);
  CHECK(cfg->qps == 2.5); /* unchanged by the refusals */

  /* Strings are copied; an empty string unsets. */
  CHECK(chatapp_config_set(cfg, "access_key_secret", "CANARY-S") == CHATAPP_OK);
  CHECK(chatapp_config_set(cfg, "endpoint", "https://x") == CHATAPP_OK);
  dup = ca_config_dup(cfg);
  CHECK(dup && dup->endpoint != cfg->endpoint);
  CHECK_STR(dup->endpoint, "https://x");
  CHECK_STR(dup->access_key_secret, "CANARY-S");
  CHECK(chatapp_config_set(cfg, "endpoint", "") == CHATAPP_OK);
  CHECK(cfg->endpoint == NULL);
  chatapp_config_free(dup);

  /* Every documented key is accepted by the setter. */
  for (k = ca_config_keys(); k->name; k++, n++)
    CHECK(k->help && *k->help);
  CHECK(n >= 25);
  chatapp_config_free(cfg);
  chatapp_config_free(NULL);
  return test_report("test_config");
}
