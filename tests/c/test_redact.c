/*
 * What an embedding program gets back holds no known secret: the message
 * of a failed load or run (chatapp_runtime_errmsg) and the log lines
 * (print in a policy), even when the secret reached them under another
 * variable's name.  The secret is known to the runtime as the value of a
 * secret variable (SECURITY_TOKEN) in the process environment.
 */
#include <stdlib.h>
#include <string.h>

#include "chatapp.h"
#include "test.h"

#define CANARY "emb-token-canary-7fd1"

static char logged[1 << 16];
static size_t logged_len;

static void collect(void *ud, int level, const char *line)
{
  size_t n = strlen(line);

  (void)ud;
  (void)level;
  if (logged_len + n + 2 < sizeof logged) {
    memcpy(logged + logged_len, line, n);
    logged_len += n;
    logged[logged_len++] = '\n';
    logged[logged_len] = '\0';
  }
}

static void test_errmsg_and_log(void)
{
  /* The policy cannot read the secret (os.getenv refuses MY_COPY, whose
   * value is a known secret), so it spells it out itself. */
  static const char leak[] = "assert(not pcall(os.getenv, 'MY_COPY'))\n"
                             "local v = 'emb-token-' .. 'canary-7fd1'\n"
                             "print('hello ' .. v)\n"
                             "error('leak ' .. v)\n";
  chatapp_config *cfg = chatapp_config_new();
  chatapp_runtime *rt = NULL;

  CHECK(cfg != NULL);
  if (!cfg)
    return;
  chatapp_config_set_log(cfg, collect, NULL);
  CHECK(chatapp_config_set(cfg, "verbose", "3") == CHATAPP_OK);
  CHECK(chatapp_runtime_new(cfg, &rt) == CHATAPP_OK);
  CHECK(chatapp_runtime_load_string(rt, "leaky.lua", leak, strlen(leak)) ==
        CHATAPP_EPOLICY);
  CHECK(strstr(chatapp_runtime_errmsg(rt), "leaky.lua") != NULL);
  CHECK(strstr(chatapp_runtime_errmsg(rt), CANARY) == NULL);
  CHECK(strstr(logged, "hello") != NULL);
  CHECK(strstr(logged, CANARY) == NULL);
  CHECK(strstr(logged, "hello <redacted>") != NULL);
  chatapp_runtime_free(rt);
  chatapp_config_free(cfg);
}

int main(void)
{
  setenv("SECURITY_TOKEN", CANARY, 1);
  setenv("MY_COPY", CANARY, 1); /* not a secret name, but a secret value */
  test_errmsg_and_log();
  return test_report("test_redact");
}
