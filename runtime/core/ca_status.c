/* Status names and process-wide initialisation. */
#include <pthread.h>

#include <curl/curl.h>

#include "chatapp.h"

static const struct {
  const char *name;
  const char *text;
} statuses[] = {
  {"OK", "success"},
  {"EINVAL", "invalid argument or option value"},
  {"ENOMEM", "out of memory"},
  {"ECONFIG", "configuration or usage error"},
  {"ECREDENTIALS", "no usable credentials"},
  {"EPOLICY", "a policy failed to load or run"},
  {"EAPI", "the API answered with an error"},
  {"ETRANSPORT", "network or HTTP failure"},
  {"ETIMEDOUT", "timed out"},
  {"ETOOBIG", "over a size cap"},
  {"EPARSE", "malformed data"},
  {"EACTION", "an action failed"},
  {"EUNKNOWN", "outcome unknown: a change may have been made"},
  {"EIO", "a local file or process could not be used"},
  {"EINTERNAL", "internal error (a bug in chatapp-run; please report it)"},
};

#define NSTATUS (sizeof statuses / sizeof statuses[0])

const char *chatapp_strerror(chatapp_status st)
{
  return (unsigned)st < NSTATUS ? statuses[st].text : "unknown status";
}

const char *chatapp_codename(chatapp_status st)
{
  return (unsigned)st < NSTATUS ? statuses[st].name : "EUNKNOWNSTATUS";
}

const char *chatapp_version(void)
{
  return CHATAPP_VERSION;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CURLcode init_result = CURLE_FAILED_INIT;

/* The library never changes signal dispositions: libcurl writes to sockets
 * with MSG_NOSIGNAL on Linux, TLS included (its own BIO since 7.87). */
static void init_once(void)
{
  init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

chatapp_status chatapp_global_init(void)
{
  pthread_once(&once, init_once);
  return init_result == CURLE_OK ? CHATAPP_OK : CHATAPP_ENOMEM;
}
