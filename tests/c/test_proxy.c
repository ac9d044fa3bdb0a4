/* Proxies from the environment (runtime/core/ca_client.c): which variable
 * libcurl takes, the note a failure at the proxy gets, and the proxy's
 * credentials counted as secrets. */
#include <stdlib.h>
#include <string.h>

#include "ca_client_int.h"
#include "ca_secrets.h"
#include "test.h"

static const char *const vars[] = {"http_proxy",  "HTTP_PROXY", "https_proxy",
                                   "HTTPS_PROXY", "all_proxy",  "ALL_PROXY",
                                   "no_proxy",    "NO_PROXY"};

static void clear(void)
{
  size_t i;

  for (i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
}

static void test_env_proxy(void)
{
  const char *var = "x";

  clear();
  CHECK(ca_client_env_proxy(0, &var) == NULL && var == NULL);
  setenv("HTTP_PROXY", "http://upper:1", 1); /* never read for http */
  CHECK(ca_client_env_proxy(0, &var) == NULL);
  setenv("ALL_PROXY", "http://all-upper:1", 1);
  CHECK_STR(ca_client_env_proxy(0, &var), "http://all-upper:1");
  CHECK_STR(var, "ALL_PROXY");
  setenv("all_proxy", "http://all:1", 1);
  CHECK_STR(ca_client_env_proxy(0, &var), "http://all:1");
  setenv("http_proxy", "http://lower:1", 1);
  CHECK_STR(ca_client_env_proxy(0, &var), "http://lower:1");
  CHECK_STR(var, "http_proxy");
  CHECK_STR(ca_client_env_proxy(1, &var), "http://all:1"); /* https */
  setenv("HTTPS_PROXY", "http://s-upper:1", 1);
  CHECK_STR(ca_client_env_proxy(1, &var), "http://s-upper:1");
  setenv("https_proxy", "", 1); /* set and empty: no proxy, no fallback */
  CHECK_STR(ca_client_env_proxy(1, &var), "");
  CHECK_STR(var, "https_proxy");
  clear();
}

static void test_note(void)
{
  char note[256];

  clear();
  ca_client_proxy_note("http://127.0.0.1:8080", 1, "x", note, sizeof note);
  CHECK_STR(note, ""); /* no proxy */
  setenv("http_proxy", "http://user:pa55-word@127.0.0.1:1/", 1);
  ca_client_proxy_note("http://127.0.0.1:8080", 0,
                       "Failed to connect to 127.0.0.1 port 1 after 0 ms: "
                       "Couldn't connect to server",
                       note, sizeof note);
  CHECK(strstr(note, "that is the proxy from http_proxy "
                     "(http://<redacted>@127.0.0.1:1)") != NULL);
  CHECK(strstr(note, "no_proxy") != NULL);
  CHECK(strstr(note, "pa55-word") == NULL && strstr(note, "user") == NULL);
  /* another host or port failed: not the proxy */
  ca_client_proxy_note("http://127.0.0.1:8080", 0,
                       "Failed to connect to 127.0.0.1 port 10 after 0 ms: x",
                       note, sizeof note);
  CHECK_STR(note, "");
  ca_client_proxy_note("http://127.0.0.1:8080", 0,
                       "Failed to connect to 127.0.0.1 port 8080 after 0 ms: x",
                       note, sizeof note);
  CHECK_STR(note, "");
  /* the https variable for https URLs; libcurl's default ports */
  ca_client_proxy_note("https://cams.example", 1, "x", note, sizeof note);
  CHECK_STR(note, ""); /* http_proxy is not for https */
  setenv("https_proxy", "proxy.example", 1);
  ca_client_proxy_note("https://cams.example", 0,
                       "Failed to connect to proxy.example port 1080 after "
                       "3 ms: x",
                       note, sizeof note);
  CHECK(strstr(note, "from https_proxy (proxy.example)") != NULL);
  setenv("https_proxy", "https://[::1]", 1);
  ca_client_proxy_note("https://cams.example", 0,
                       "Failed to connect to ::1 port 443 after 3 ms: x", note,
                       sizeof note);
  CHECK(strstr(note, "(https://[::1])") != NULL);
  setenv("https_proxy", "http://[::1]:3128", 1);
  ca_client_proxy_note("https://cams.example", 0,
                       "Failed to connect to ::1 port 3128 after 3 ms: x", note,
                       sizeof note);
  CHECK(strstr(note, "(http://[::1]:3128)") != NULL);
  /* certain: the proxy could not be resolved */
  setenv("https_proxy", "http://u:p@@nowhere.invalid:3128", 1);
  ca_client_proxy_note("https://cams.example", 1,
                       "Could not resolve proxy: nowhere.invalid", note,
                       sizeof note);
  CHECK(strstr(note, "(http://<redacted>@nowhere.invalid:3128)") != NULL);
  /* a small buffer is cut, not overrun */
  ca_client_proxy_note("https://cams.example", 1, "x", note, 8);
  CHECK(strlen(note) == 7);
  clear();
}

static void test_secrets(void)
{
  ca_client_config cfg;
  ca_buf err = CA_BUF_INIT(4096);
  ca_client *c = NULL;
  const ca_secrets *s;

  clear();
  setenv("https_proxy", "http://proxyuser:S3cret%21pass@10.0.0.5:3128", 1);
  setenv("ALL_PROXY", "socks5://other:an0ther-one@h:1", 1);
  setenv("HTTP_PROXY", "http://upper:upper-pass@h:1", 1);
  memset(&cfg, 0, sizeof cfg);
  cfg.http_only = 1;
  CHECK(ca_client_new(&cfg, &c, &err) == CHATAPP_OK);
  if (c) {
    s = ca_client_secrets(c);
    CHECK(ca_secrets_found(s, "proxyuser:S3cret%21pass", 23));
    CHECK(ca_secrets_found(s, "S3cret%21pass", 13));
    CHECK(ca_secrets_found(s, "S3cret!pass", 11)); /* decoded */
    CHECK(ca_secrets_found(s, "an0ther-one", 11));
    CHECK(ca_secrets_found(s, "upper-pass", 10));
    CHECK(!ca_secrets_found(s, "10.0.0.5:3128", 13)); /* the host is not */
    {
      ca_buf b = CA_BUF_INIT(4096);
      CHECK(ca_buf_adds(&b, "Unsupported proxy syntax in "
                            "'http://proxyuser:S3cret%21pass@10.0.0.5:3128'") ==
            CHATAPP_OK);
      ca_client_redact(c, &b);
      CHECK_STR(ca_buf_str(&b), "Unsupported proxy syntax in "
                                "'http://<redacted>@10.0.0.5:3128'");
      ca_buf_free(&b);
    }
  }
  ca_client_free(c);
  ca_buf_free(&err);
  clear();
}

int main(void)
{
  test_env_proxy();
  test_note();
  test_secrets();
  return test_report("test_proxy");
}
