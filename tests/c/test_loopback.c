/* ca_loopback_host: the one "plain http only to this machine" rule, used
 * for endpoints, connected addresses and webhooks (core.loopback_host). */
#include <string.h>

#include "ca_client.h"
#include "test.h"

static int loopback(const char *host)
{
  return ca_loopback_host(host, strlen(host));
}

int main(void)
{
  static const char *const yes[] = {"localhost",
                                    "LocalHost",
                                    "127.0.0.1",
                                    "127.255.255.254",
                                    "127.1.2.3",
                                    "::1",
                                    "[::1]",
                                    "0:0:0:0:0:0:0:1",
                                    "[0:0:0:0:0:0:0:1]",
                                    "::ffff:127.0.0.1",
                                    "[::ffff:127.0.0.1]",
                                    "::FFFF:127.9.8.7",
                                    "[::ffff:7f00:1]",
                                    NULL};
  static const char *const no[] = {"",
                                   "0.0.0.0",
                                   "127.1",
                                   "127.0.1",
                                   "0x7f.0.0.1",
                                   "2130706433",
                                   "127.0.0.1.",
                                   "127.0.0.256",
                                   " 127.0.0.1",
                                   "127.0.0.1 ",
                                   "128.0.0.1",
                                   "10.0.0.1",
                                   "169.254.169.254",
                                   "[127.0.0.1]",
                                   "[::1",
                                   "::1]",
                                   "[]",
                                   "[",
                                   "::",
                                   "[::]",
                                   "::2",
                                   "::127.0.0.1",
                                   "::ffff:128.0.0.1",
                                   "[::ffff:10.0.0.1]",
                                   "::1%lo",
                                   "[::1%25lo]",
                                   "fe80::1",
                                   "localhost.",
                                   "localhost.evil.com",
                                   "evil-localhost",
                                   "localhostx",
                                   "127.0.0.1.evil.com",
                                   "127.0.0.1.nip.io",
                                   "example.com",
                                   NULL};
  size_t i;

  for (i = 0; yes[i]; i++)
    if (!loopback(yes[i])) {
      fprintf(stderr, "not loopback, but should be: '%s'\n", yes[i]);
      CHECK(0);
    }
  for (i = 0; no[i]; i++)
    if (loopback(no[i])) {
      fprintf(stderr, "loopback, but should not be: '%s'\n", no[i]);
      CHECK(0);
    }
  CHECK(i > 30);

  /* The length is what counts: a host inside a longer URL, a NUL within
   * it, an absurd length. */
  CHECK(ca_loopback_host("127.0.0.1:8080/x", 9) == 1);
  CHECK(ca_loopback_host("[::1]:8080", 5) == 1);
  CHECK(ca_loopback_host("[::1]:8080", 4) == 0);
  CHECK(ca_loopback_host("localhost.evil.com", 9) == 1); /* "localhost" */
  CHECK(ca_loopback_host("127.0.0.1\0.evil", 15) == 0);
  CHECK(ca_loopback_host("localhost", 0) == 0);
  CHECK(ca_loopback_host(NULL, 3) == 0);
  {
    char big[300];
    memset(big, '1', sizeof big);
    memcpy(big, "127.0.0.1", 9);
    CHECK(ca_loopback_host(big, sizeof big) == 0);
  }
  return test_report("test_loopback");
}
