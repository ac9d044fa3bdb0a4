#include "ca_config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ca_cred.h"
#include "ca_cred_provider.h"
#include "ca_crypto.h"

enum kind {
  K_STR,
  K_SECRET,
  K_LONG,
  K_DOUBLE,
  K_BOOL,
  K_CHOICE,
  K_FORMAT,
  K_DURATION /* "90s", "15m", "24h", "7d" or seconds: stored in seconds */
};

typedef ca_config_key option;

#define OFF(f)   offsetof(struct chatapp_config, f)
#define FIELD(f) OFF(f), sizeof(((struct chatapp_config *)0)->f)

static const option options[] = {
  {"endpoint", K_STR, FIELD(endpoint), 0, 0, NULL, "URL",
   "API endpoint (default https://cams.<region>.aliyuncs.com)"},
  {"region", K_STR, FIELD(region), 0, 0, NULL, "ID",
   "region id (default: the profile's, else ap-southeast-1)"},
  {"access_key_id", K_STR, FIELD(access_key_id), 0, 0, NULL, "ID",
   "explicit AccessKey id (embedding only; the CLI uses the chain)"},
  {"access_key_secret", K_SECRET, FIELD(access_key_secret), 0, 0, NULL,
   "SECRET", "explicit AccessKey secret (embedding only)"},
  {"security_token", K_SECRET, FIELD(security_token), 0, 0, NULL, "TOKEN",
   "explicit STS token (embedding only)"},
  {"profile", K_STR, FIELD(profile), 0, 0, NULL, "NAME",
   "credentials profile in ~/.aliyun/config.json or "
   "~/.alibabacloud/credentials"},
  {"sts_endpoint", K_STR, FIELD(sts_endpoint), 0, 0, NULL, "HOST|URL",
   "STS endpoint for role credentials (default: the profile's, "
   "ALIBABA_CLOUD_STS_ENDPOINT, else sts[-vpc].REGION.aliyuncs.com or "
   "sts.aliyuncs.com); http only to loopback"},
  {"ca_file", K_STR, FIELD(ca_file), 0, 0, NULL, "FILE",
   "PEM file of CA certificates trusted for every HTTPS connection (API, "
   "STS and credential services, webhooks) instead of the system store; "
   "certificate and host name are always verified"},
  {"account", K_STR, FIELD(account), 0, 0, NULL, "NAME",
   "quota account name: processes with the same name share one limiter "
   "(default: the AccessKey id)"},
  {"signature_version", K_CHOICE, FIELD(signature_version), 0, 0, "v2|v3",
   "v3|v2",
   "request signing: v3 (ACS3-HMAC-SHA256, default) or v2 (legacy "
   "HMAC-SHA1)"},
  {"qps", K_DOUBLE, FIELD(qps), 1, 1000, NULL, "N",
   "calls per second per operation (default: each operation's documented "
   "limit, 10 for QueryChatappPhoneNumbers)"},
  {"limiter", K_STR, FIELD(limiter), 0, 0, NULL,
   "shared|process|FILE|redis://HOST:PORT",
   "share the rate limit with other processes on this host (default "
   "shared), keep it to this process, use this state file, or share it "
   "with every host through this Redis server"},
  {"window_margin_ms", K_LONG, FIELD(window_margin_ms), 0, 1000, NULL, "MS",
   "limiter window beyond 1 s: how much the arrival of a request at the "
   "server can vary (default 50)"},
  {"connect_timeout_ms", K_LONG, FIELD(connect_timeout_ms), 1, 600000, NULL,
   "MS", "connect timeout (default 5000)"},
  {"timeout_ms", K_LONG, FIELD(timeout_ms), 1, 3600000, NULL, "MS",
   "one attempt's total time (default 15000)"},
  {"call_timeout_ms", K_LONG, FIELD(call_timeout_ms), 1, 86400000, NULL, "MS",
   "one call, all attempts (default 60000)"},
  {"low_speed_time_s", K_LONG, FIELD(low_speed_time_s), 1, 3600, NULL, "S",
   "abort an answer slower than 100 bytes/s for this long (default 10)"},
  {"max_retry_after_ms", K_LONG, FIELD(max_retry_after_ms), 0, 3600000, NULL,
   "MS", "cap on a server's Retry-After (default 20000)"},
  {"max_response_bytes", K_LONG, FIELD(max_response_bytes), 1024, 1 << 30, NULL,
   "BYTES", "largest answer accepted (default 64 MiB)"},
  {"max_attempts", K_LONG, FIELD(max_attempts), 1, 10, NULL, "N",
   "attempts per call (default 3)"},
  {"max_in_flight", K_LONG, FIELD(max_in_flight), 1, 256, NULL, "N",
   "requests in flight at once (default 16)"},
  {"verbose", K_LONG, FIELD(verbose), 0, 3, NULL, "0-3",
   "log detail: 1 what happens, 2 retries, 3 canonical requests"},
  {"output", K_FORMAT, FIELD(output), 0, 0, NULL, "FORMAT",
   "report format on stdout: text, json or none (docs/cli.md)"},
  {"color", K_CHOICE, FIELD(color), 0, 0, "never|always|auto",
   "auto|always|never", "colours in the text report (default auto)"},
  {"spaces", K_STR, FIELD(spaces), 0, 0, NULL, "FILE",
   "JSON list of ISV sub-customer spaces to run over"},
  {"record", K_STR, FIELD(record), 0, 0, NULL, "FILE",
   "save what the API answered"},
  {"replay", K_STR, FIELD(replay), 0, 0, NULL, "FILE",
   "run on a recording instead of the network, over the spaces it "
   "recorded (a dry run unless --apply)"},
  {"check_data", K_STR, FIELD(check_data), 0, 0, NULL, "FILE",
   "with --check: the fixture (the emulator's format) the policies are "
   "checked against, instead of the built-in sample"},
  {"apply", K_BOOL, FIELD(apply), 0, 0, NULL, NULL,
   "with --replay: carry the planned actions out (webhooks, API calls, "
   "commands) instead of only showing them"},
  {"metrics", K_STR, FIELD(metrics), 0, 0, NULL, "FILE",
   "write Prometheus text metrics"},
  {"allow_exec", K_BOOL, FIELD(allow_exec), 0, 0, NULL, NULL,
   "let policies run commands (exec actions)"},
  {"allow_credential_process", K_BOOL, FIELD(allow_credential_process), 0, 0,
   NULL, NULL,
   "let a profile of mode External run its process_command (argv split "
   "without a shell) to get credentials"},
  {"memory_limit_mb", K_LONG, FIELD(memory_limit_mb), 1, 65536, NULL, "MB",
   "memory cap per policy (default 64)"},
  {"fetch_memory_mb", K_LONG, FIELD(fetch_memory_mb), 1, 65536, NULL, "MB",
   "memory for the fetched numbers of all spaces together; a space that "
   "does not fit is an error for that space (default 512)"},
  {"state", K_STR, FIELD(state), 0, 0, NULL, "FILE|URL",
   "keep what each run saw and planned in this SQLite file, or in Redis "
   "(redis://[user@]host[:port][/db]): transitions, reminders, the outbox "
   "(docs/state.md)"},
  {"outbox_max_age", K_DURATION, FIELD(outbox_max_age_s), 1, 365 * 86400.0,
   NULL, "DURATION",
   "a pending action older than this is reported as expired, not sent "
   "(default 1h)"},
  {"lease", K_DURATION, FIELD(lease_s), 3, 3600, NULL, "DURATION",
   "with --state redis://...: the leader lease that lets one watcher or "
   "run of all hosts work on the state at a time; a standby takes over "
   "within this time of the leader's end (default 15s, at least 3s; "
   "docs/watch.md)"},
  {"instruction_limit", K_LONG, FIELD(instruction_limit), 1000, 1e12, NULL, "N",
   "Lua instructions per policy and run (default 200 million)"},
  {NULL, 0, 0, 0, 0, 0, NULL, NULL, NULL},
};

long ca_parse_duration(const char *s)
{
  long n = 0, unit = 1;
  size_t i;

  for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
    if (n > 100000000L)
      return -1;
    n = n * 10 + (s[i] - '0');
  }
  if (i == 0 || i > 9)
    return -1;
  switch (s[i]) {
  case '\0':
  case 's':
    break;
  case 'm':
    unit = 60;
    break;
  case 'h':
    unit = 3600;
    break;
  case 'd':
    unit = 86400;
    break;
  default:
    return -1;
  }
  if (s[i] && s[i + 1])
    return -1;
  if (n > 10L * 365 * 86400 / unit)
    return -1;
  return n * unit;
}

int ca_default_state_path(char *out, size_t size)
{
  const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  const char *base, *tail;
  size_t n;
  int w;

  if (xdg && xdg[0] == '/') {
    base = xdg;
    tail = "/chatapp-run/state.db";
  } else if (home && home[0] == '/') {
    base = home;
    tail = "/.local/state/chatapp-run/state.db";
  } else {
    snprintf(out, size,
             "no default state file: neither XDG_STATE_HOME nor HOME is an "
             "absolute path; give --state FILE");
    return -1;
  }
  for (n = strlen(base); n > 1 && base[n - 1] == '/'; n--)
    ;
  w = snprintf(out, size, "%.*s%s", (int)n, base, tail);
  if (w < 0 || (size_t)w >= size) {
    snprintf(out, size,
             "the default state file's path is too long; give "
             "--state FILE");
    return -1;
  }
  return 0;
}

const ca_config_key *ca_config_keys(void)
{
  return options;
}

chatapp_config *chatapp_config_new(void)
{
  chatapp_config *cfg = calloc(1, sizeof *cfg);

  if (!cfg)
    return NULL;
  cfg->signature_version = 3;
  cfg->window_margin_ms = -1;
  cfg->color = -1;
  memcpy(cfg->output, "none", sizeof "none");
  return cfg;
}

static char **str_field(chatapp_config *cfg, const option *o)
{
  return (char **)(void *)((char *)cfg + o->offset);
}

void chatapp_config_free(chatapp_config *cfg)
{
  size_t i;

  if (!cfg)
    return;
  for (i = 0; options[i].name; i++) {
    char **p;
    if (options[i].kind != K_STR && options[i].kind != K_SECRET)
      continue;
    p = str_field(cfg, &options[i]);
    if (*p && options[i].kind == K_SECRET)
      ca_wipe(*p, strlen(*p));
    free(*p);
  }
  free(cfg);
}

chatapp_config *ca_config_dup(const chatapp_config *cfg)
{
  chatapp_config *d = malloc(sizeof *d);
  size_t i;

  if (!d)
    return NULL;
  memcpy(d, cfg, sizeof *d);
  for (i = 0; options[i].name; i++) {
    char **p;
    if (options[i].kind != K_STR && options[i].kind != K_SECRET)
      continue;
    p = str_field(d, &options[i]);
    if (*p && !(*p = strdup(*p))) {
      /* free what was copied so far, and null the rest */
      size_t j;
      for (j = i + 1; options[j].name; j++)
        if (options[j].kind == K_STR || options[j].kind == K_SECRET)
          *str_field(d, &options[j]) = NULL;
      chatapp_config_free(d);
      return NULL;
    }
  }
  return d;
}

const char *chatapp_config_errmsg(const chatapp_config *cfg)
{
  return cfg ? cfg->errmsg : "out of memory";
}

void chatapp_config_set_log(chatapp_config *cfg, chatapp_log_fn fn, void *ud)
{
  if (!cfg)
    return;
  cfg->log = fn;
  cfg->log_ud = ud;
}

/* Check that url is scheme://host[:port] with an optional trailing '/':
 * https or http, a host (a name, an IPv4 address or [IPv6]) and a port
 * from 1 to 65535.  0, or -1 with the reason in err. */
int ca_config_check_endpoint(const char *url, char *err, size_t errlen)
{
  const char *h, *end, *p, *port = NULL;
  size_t n = strlen(url);

#define ENDPOINT_BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)
  if (n == 0)
    return ENDPOINT_BAD("the endpoint is empty (an unset shell variable?); "
                        "give https://HOST, or leave the option out for "
                        "the region's endpoint");
  if (n > 2048)
    return ENDPOINT_BAD("the endpoint is %zu characters long; at most 2048", n);
  for (p = url; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f)
      return ENDPOINT_BAD("the endpoint '%.200s' holds a space or a control "
                          "character",
                          url);
  if (strncmp(url, "https://", 8) == 0)
    h = url + 8;
  else if (strncmp(url, "http://", 7) == 0)
    h = url + 7;
  else
    return ENDPOINT_BAD("the endpoint '%.200s' must start with https:// (or "
                        "http:// for a local emulator)",
                        url);
  end = url + n;
  if (end > h && end[-1] == '/')
    end--;
  for (p = h; p < end; p++)
    if (*p == '/' || *p == '?' || *p == '#' || *p == '@' || *p == '\\')
      return ENDPOINT_BAD("the endpoint '%.200s' must be scheme://host[:port] "
                          "with no path, query or user",
                          url);
  if (h == end)
    return ENDPOINT_BAD("the endpoint '%.200s' has no host", url);
  if (*h == '[') {
    const char *close = memchr(h, ']', (size_t)(end - h));
    if (!close)
      return ENDPOINT_BAD("the endpoint '%.200s' opens '[' for an IPv6 "
                          "address but does not close it",
                          url);
    if (close == h + 1)
      return ENDPOINT_BAD("the endpoint '%.200s' has an empty IPv6 address",
                          url);
    for (p = h + 1; p < close; p++)
      if (!strchr("0123456789abcdefABCDEF:.", *p))
        return ENDPOINT_BAD("the endpoint '%.200s' has a malformed IPv6 "
                            "address",
                            url);
    if (close + 1 < end && close[1] != ':')
      return ENDPOINT_BAD("the endpoint '%.200s' has text after the IPv6 "
                          "address",
                          url);
    if (close + 1 < end)
      port = close + 2;
  } else {
    for (p = h; p < end && *p != ':'; p++)
      if (!(((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
        return ENDPOINT_BAD("the endpoint '%.200s' has a malformed host "
                            "name",
                            url);
    if (p == h)
      return ENDPOINT_BAD("the endpoint '%.200s' has no host", url);
    if (p < end)
      port = p + 1;
  }
  if (port) {
    long v = 0;
    if (port == end || end - port > 5)
      return ENDPOINT_BAD("the endpoint '%.200s' has a malformed port; a port "
                          "is 1 to 65535",
                          url);
    for (p = port; p < end; p++) {
      if (*p < '0' || *p > '9')
        return ENDPOINT_BAD("the endpoint '%.200s' has a malformed port; a "
                            "port is 1 to 65535",
                            url);
      v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
      return ENDPOINT_BAD("the endpoint '%.200s' has port %ld; a port is 1 "
                          "to 65535",
                          url, v);
  }
#undef ENDPOINT_BAD
  return 0;
}

/* Record why a value was refused. */
#define BAD(...)                                                               \
  (snprintf(cfg->errmsg, sizeof cfg->errmsg, __VA_ARGS__), CHATAPP_EINVAL)

chatapp_status chatapp_config_set(chatapp_config *cfg, const char *key,
                                  const char *value)
{
  char name[64];
  const option *o;
  size_t i;

  if (!cfg || !key)
    return CHATAPP_EINVAL;
  cfg->errmsg[0] = '\0';
  /* "max-attempts" and "max_attempts" are the same key. */
  for (i = 0; key[i] && i < sizeof name - 1; i++)
    name[i] = key[i] == '-' ? '_' : key[i];
  name[i] = '\0';
  for (o = options; o->name; o++)
    if (strcmp(o->name, name) == 0)
      break;
  if (!o->name)
    return BAD("unknown option '%s'%s", key,
               " (see docs/embedding.md for the list)");
  if (!value)
    return BAD("option '%s' needs a value%s", key, "");

  switch (o->kind) {
  case K_STR:
  case K_SECRET: {
    char **p = str_field(cfg, o);
    char *copy;
    /* An empty endpoint is a mistake (an unset shell variable), never
     * "the default": the default is the production service. */
    if (o->offset == OFF(endpoint) &&
        ca_config_check_endpoint(value, cfg->errmsg, sizeof cfg->errmsg))
      return CHATAPP_EINVAL;
    if (o->offset == OFF(ca_file) &&
        ca_config_check_ca_file(value, cfg->errmsg, sizeof cfg->errmsg))
      return CHATAPP_EINVAL;
    copy = strdup(value);
    if (!copy)
      return CHATAPP_ENOMEM;
    if (*p && o->kind == K_SECRET)
      ca_wipe(*p, strlen(*p));
    free(*p);
    *p = *value ? copy : NULL;
    if (!*value)
      free(copy);
    return CHATAPP_OK;
  }
  case K_LONG:
  case K_DOUBLE: {
    char *end;
    double x;
    errno = 0;
    x = strtod(value, &end);
    if (end == value || *end || errno || !isfinite(x) || x < o->min ||
        x > o->max || (o->kind == K_LONG && x != floor(x))) {
      snprintf(cfg->errmsg, sizeof cfg->errmsg,
               "option '%s' must be a%s number from %g to %g, not '%s'", key,
               o->kind == K_LONG ? " whole" : "", o->min, o->max, value);
      return CHATAPP_EINVAL;
    }
    if (o->kind == K_LONG && o->size == sizeof(long))
      *(long *)(void *)((char *)cfg + o->offset) = (long)x;
    else if (o->kind == K_DOUBLE && o->size == sizeof(double))
      *(double *)(void *)((char *)cfg + o->offset) = x;
    else
      return BAD("option '%s': internal error (field size)", key);
    return CHATAPP_OK;
  }
  case K_DURATION: {
    long secs = ca_parse_duration(value);
    if (o->offset == OFF(lease_s) &&
        (secs < (long)o->min || secs > (long)o->max))
      return BAD("option '%s' must be a duration from 3s to 1h, like 15s or "
                 "1m, not '%.64s' (the lease is renewed every third of it)",
                 key, value);
    if (secs < (long)o->min || secs > (long)o->max)
      return BAD("option '%s' must be a duration like 90s, 15m, 24h or 7d "
                 "(up to 365d), not '%.64s'",
                 key, value);
    if (o->size != sizeof(long))
      return BAD("option '%s': internal error (field size)", key);
    *(long *)(void *)((char *)cfg + o->offset) = secs;
    return CHATAPP_OK;
  }
  case K_BOOL: {
    int v;
    if (!strcmp(value, "1") || !strcasecmp(value, "true") ||
        !strcasecmp(value, "yes") || !strcasecmp(value, "on"))
      v = 1;
    else if (!strcmp(value, "0") || !strcasecmp(value, "false") ||
             !strcasecmp(value, "no") || !strcasecmp(value, "off"))
      v = 0;
    else
      return BAD("option '%s' must be true or false, not '%s'", key, value);
    if (o->size != sizeof(int))
      return BAD("option '%s': internal error (field size)", key);
    *(int *)(void *)((char *)cfg + o->offset) = v;
    return CHATAPP_OK;
  }
  case K_CHOICE: {
    const char *c = o->choices;
    int idx = 0;
    size_t n = strlen(value);
    while (c) {
      const char *bar = strchr(c, '|');
      size_t len = bar ? (size_t)(bar - c) : strlen(c);
      if (len == n && strncmp(c, value, n) == 0)
        break;
      c = bar ? bar + 1 : NULL;
      idx++;
    }
    /* "3" / "2" are accepted for the signature version as well. */
    if (!c && o->offset == OFF(signature_version) &&
        (!strcmp(value, "2") || !strcmp(value, "3"))) {
      c = value;
      idx = value[0] == '2' ? 0 : 1;
    }
    if (!c) {
      snprintf(cfg->errmsg, sizeof cfg->errmsg,
               "option '%s' must be one of %s, not '%s'", key, o->choices,
               value);
      return CHATAPP_EINVAL;
    }
    if (o->offset == OFF(signature_version))
      cfg->signature_version = idx == 0 ? 2 : 3;
    else if (o->offset == OFF(color))
      cfg->color = idx == 2 ? -1 : idx;
    else if (o->size == sizeof(int))
      *(int *)(void *)((char *)cfg + o->offset) = idx;
    else
      return BAD("option '%s': internal error (field size)", key);
    return CHATAPP_OK;
  }
  case K_FORMAT: {
    /* A name: which names exist is report.formats' to say (the runtime
     * checks when it starts). */
    size_t n = strlen(value), k;
    int ok = n > 0 && n < CA_FORMAT_MAX && o->size == CA_FORMAT_MAX;
    for (k = 0; ok && k < n; k++)
      ok = (value[k] >= 'a' && value[k] <= 'z') ||
           (k > 0 && ((value[k] >= '0' && value[k] <= '9') || value[k] == '_' ||
                      value[k] == '-'));
    if (!ok)
      return BAD("option '%s': '%.64s' is not a report format name "
                 "(docs/cli.md lists them)",
                 key, value);
    memcpy((char *)cfg + o->offset, value, n + 1);
    return CHATAPP_OK;
  }
  }
  return CHATAPP_EINVAL;
}

/* What both clients take from the configuration: timeouts, caps, logs. */
static void transport_settings(const chatapp_config *cfg, ca_client_config *cc)
{
  memset(cc, 0, sizeof *cc);
  cc->connect_timeout_ms = cfg->connect_timeout_ms;
  cc->attempt_timeout_ms = cfg->timeout_ms;
  cc->call_timeout_ms = cfg->call_timeout_ms;
  cc->max_retry_after_ms = cfg->max_retry_after_ms;
  cc->low_speed_time_s = cfg->low_speed_time_s;
  cc->max_response_bytes = (size_t)cfg->max_response_bytes;
  cc->max_attempts = (int)cfg->max_attempts;
  cc->max_in_flight = (int)cfg->max_in_flight;
  cc->log = cfg->log;
  cc->log_ud = cfg->log_ud;
  cc->verbose = (int)cfg->verbose;
  cc->ca_file = cfg->ca_file;
}

chatapp_status ca_config_new_client(const chatapp_config *cfg, ca_client **out,
                                    ca_buf *err, ca_buf *source)
{
  ca_cred_options co;
  ca_credentials cred;
  ca_client_config cc;
  ca_cred_net net;
  ca_cred_provider *prov = NULL;
  ca_buf endpoint = CA_BUF_INIT(4096), lpath = CA_BUF_INIT(4096);
  const char *region, *identity;
  chatapp_status st;

  *out = NULL;
  memset(&co, 0, sizeof co);
  memset(&cred, 0, sizeof cred);
  co.profile = cfg->profile;
  co.access_key_id = cfg->access_key_id;
  co.access_key_secret = cfg->access_key_secret;
  co.security_token = cfg->security_token;
  co.roles = 1;
  st = ca_cred_resolve(&co, &cred, err);
  if (st)
    goto out;
  /* A real AccessKey id is about 24 characters; a huge one is a mistake
   * (a file pasted into the variable) and would not fit the limiter key
   * or the messages.  Say so without printing it. */
  if (!cred.role) {
    size_t idlen = cred.access_key_id ? strlen(cred.access_key_id) : 0;
    const char *c;
    int bad = 0;
    for (c = cred.access_key_id; c && *c; c++)
      bad |= (unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f;
    if (idlen > CA_CONFIG_MAX_KEY_ID || bad) {
      char masked[CA_CRED_MASK_LEN];
      ca_cred_mask_id(cred.access_key_id, masked);
      ca_buf_reset(err);
      ca_buf_printf(err,
                    "the AccessKey id %s from %s is %s; an AccessKey id is "
                    "at most %d printable characters: check the variable "
                    "or the profile",
                    masked, cred.source ? cred.source : "the credentials",
                    bad ? "not printable text" : "too long",
                    CA_CONFIG_MAX_KEY_ID);
      st = CHATAPP_ECREDENTIALS;
      goto out;
    }
  }
  if (cfg->account && strlen(cfg->account) > CA_CONFIG_MAX_KEY_ID) {
    ca_buf_reset(err);
    ca_buf_printf(err, "the account name is %zu characters long; at most %d",
                  strlen(cfg->account), CA_CONFIG_MAX_KEY_ID);
    st = CHATAPP_ECONFIG;
    goto out;
  }
  if (cred.warning && cfg->log)
    cfg->log(cfg->log_ud, CA_LOG_ERROR, cred.warning);

  /* The provider: static credentials, or a role fetched (once, now) and
   * refreshed before it expires; through the configuration's transport. */
  transport_settings(cfg, &cc);
  memset(&net, 0, sizeof net);
  net.transport = &cc;
  net.sts_endpoint = cfg->sts_endpoint;
  net.allow_process = cfg->allow_credential_process;
  st = ca_cred_provider_new(&cred, &net, &prov, err);
  if (st)
    goto out;
  if (source)
    ca_cred_provider_describe(prov, source);
  identity = ca_cred_provider_identity(prov);
  if (strlen(identity) > 4 * CA_CONFIG_MAX_KEY_ID) {
    ca_buf_reset(err);
    ca_buf_printf(err, "the credentials' identity (a role ARN or name) is "
                       "too long; set the account key");
    st = CHATAPP_ECREDENTIALS;
    goto out;
  }

  region = cfg->region                     ? cfg->region
           : ca_cred_provider_region(prov) ? ca_cred_provider_region(prov)
                                           : CA_DEFAULT_REGION;
  if (cfg->endpoint)
    st = ca_buf_adds(&endpoint, cfg->endpoint);
  else
    st = ca_buf_printf(&endpoint, "https://cams.%s.aliyuncs.com", region);
  if (st)
    goto out;

  if (!cfg->limiter || strcmp(cfg->limiter, "shared") == 0) {
    /* One limiter per account and endpoint host on this machine. */
    ca_buf key = CA_BUF_INIT(4096);
    st = ca_buf_printf(&key, "%s@%s", cfg->account ? cfg->account : identity,
                       endpoint.ptr);
    if (!st)
      st = ca_limiter_default_path(key.ptr, &lpath, err);
    ca_buf_free(&key);
    if (st)
      goto out;
  } else if (strcmp(cfg->limiter, "process") != 0) {
    /* A state file, or a redis:// URL (ca_limiter_new tells them apart). */
    st = ca_buf_adds(&lpath, cfg->limiter);
    if (st)
      goto out;
  }

  cc.endpoint = endpoint.ptr;
  cc.provider = prov;
  prov = NULL; /* the client's now */
  cc.signature_version = cfg->signature_version;
  cc.account_key = cfg->account;
  cc.limiter_path = lpath.len ? lpath.ptr : NULL;
  cc.qps = cfg->qps;
  /* 0 means "the default" to the client; an explicit 0 becomes 1 us. */
  cc.window_margin_us = cfg->window_margin_ms < 0 ? 0
                        : cfg->window_margin_ms == 0
                          ? 1
                          : (int64_t)cfg->window_margin_ms * 1000;
  st = ca_client_new(&cc, out, err);
out:
  ca_cred_provider_free(prov);
  ca_cred_free(&cred);
  ca_buf_free(&endpoint);
  ca_buf_free(&lpath);
  return st;
}

chatapp_status ca_config_new_http_client(const chatapp_config *cfg,
                                         ca_client **out, ca_buf *err)
{
  ca_client_config cc;

  transport_settings(cfg, &cc);
  cc.http_only = 1;
  return ca_client_new(&cc, out, err);
}

/* ---- files the run reads or writes -------------------------------------- */

const char *ca_config_file_kind(mode_t mode)
{
  if (S_ISDIR(mode))
    return "a directory";
  if (S_ISCHR(mode))
    return "a character device";
  if (S_ISBLK(mode))
    return "a block device";
  if (S_ISFIFO(mode))
    return "a FIFO";
  if (S_ISSOCK(mode))
    return "a socket";
  if (S_ISREG(mode))
    return "a regular file";
  return "not a regular file";
}

int ca_config_check_output_file(const char *what, const char *path, char *err,
                                size_t errlen)
{
  struct stat st;

  if (!path)
    return 0;
  if (!*path) {
    snprintf(err, errlen, "%s: the file name is empty", what);
    return -1;
  }
  if (stat(path, &st) != 0) {
    if (errno != ENOENT) {
      snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
      return -1;
    }
  } else if (!S_ISREG(st.st_mode)) {
    snprintf(err, errlen,
             "%s %s is %s; it must be a regular file or a new path (it "
             "is replaced as a whole)",
             what, path, ca_config_file_kind(st.st_mode));
    return -1;
  }
  /* It is written as a temporary file in the same folder, then renamed:
   * the folder must exist and take new files. */
  {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    if (n >= sizeof dir) {
      snprintf(err, errlen, "%s %s: the path is too long", what, path);
      return -1;
    }
    if (!slash)
      memcpy(dir, ".", 2);
    else if (n == 0)
      memcpy(dir, "/", 2);
    else {
      memcpy(dir, path, n);
      dir[n] = '\0';
    }
    if (stat(dir, &st) != 0) {
      snprintf(err, errlen, "%s %s: the folder %s: %s%s", what, path, dir,
               strerror(errno), errno == ENOENT ? " (create it first)" : "");
      return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
      snprintf(err, errlen, "%s %s: %s is not a folder", what, path, dir);
      return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
      snprintf(err, errlen,
               "%s %s: cannot create files in the folder %s (%s); the file "
               "is written there, then renamed into place",
               what, path, dir, strerror(errno));
      return -1;
    }
  }
  return 0;
}

int ca_config_check_ca_file(const char *path, char *err, size_t errlen)
{
  static const char pem[] = "-----BEGIN CERTIFICATE-----";
  struct stat st;
  char *data = NULL;
  size_t got = 0;
  int fd, found;

#define CAFILE_BAD(...) (snprintf(err, errlen, __VA_ARGS__), -1)
  if (!*path)
    return CAFILE_BAD("the CA file name (--ca-file, ca_file) is empty (an "
                      "unset shell variable?); leave the option out to "
                      "trust the system's certificate store");
  /* stat first: opening a FIFO would wait for a writer. */
  if (stat(path, &st) != 0)
    return CAFILE_BAD(
      "the CA file %.512s (--ca-file, ca_file): %s; give a PEM file "
      "of CA certificates",
      path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return CAFILE_BAD(
      "the CA file %.512s (--ca-file, ca_file) is %s; it must be a "
      "regular file of PEM CA certificates",
      path, ca_config_file_kind(st.st_mode));
  if (st.st_size > CA_CONFIG_MAX_CA_FILE)
    return CAFILE_BAD(
      "the CA file %.512s (--ca-file, ca_file) is %lld bytes; at most "
      "%ld (a bundle of CA certificates, not a data file)",
      path, (long long)st.st_size, CA_CONFIG_MAX_CA_FILE);
  fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return CAFILE_BAD(
      "the CA file %.512s (--ca-file, ca_file) cannot be read: %s", path,
      strerror(errno));
  /* It may have been replaced between stat and open. */
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      st.st_size > CA_CONFIG_MAX_CA_FILE) {
    close(fd);
    return CAFILE_BAD(
      "the CA file %.512s (--ca-file, ca_file) changed while it was "
      "checked; it must be a regular file of at most %ld "
      "bytes",
      path, CA_CONFIG_MAX_CA_FILE);
  }
  data = malloc((size_t)st.st_size + 1);
  if (!data) {
    close(fd);
    return CAFILE_BAD("the CA file %.512s (--ca-file, ca_file): out of memory",
                      path);
  }
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      free(data);
      close(fd);
      return CAFILE_BAD(
        "the CA file %.512s (--ca-file, ca_file) cannot be read: %s", path,
        strerror(e));
    }
    if (n == 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  data[got] = '\0';
  found = got >= sizeof pem - 1 && memmem(data, got, pem, sizeof pem - 1);
  free(data);
  if (!found)
    return CAFILE_BAD("the CA file %.512s (--ca-file, ca_file) holds no PEM "
                      "certificate (\"%s\"); give the CA certificates in "
                      "PEM form",
                      path, pem);
  return 0;
#undef CAFILE_BAD
}

/* ---- interruption (SIGINT / SIGTERM) ------------------------------------ */

static volatile sig_atomic_t interrupt_signal;

void ca_interrupt_set(int sig)
{
  interrupt_signal = sig;
}

int ca_interrupted(void)
{
  return (int)interrupt_signal;
}
