/*
 * ca_cred_provider: the current credentials, refreshed before they expire
 * (ca_cred_provider.h; the protocols are in ca_cred_fetch.c and
 * ca_cred_process.c, the answers' parser in ca_cred_answer.c).
 */
#include "ca_cred_int.h"
#include "ca_cred_prov_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "ca_client_int.h"
#include "ca_config.h"
#include "ca_crypto.h"
#include "ca_sign.h"

#define STALE_S      900  /* refresh this long before Expiration */
#define PREFETCH_S   3600 /* the ECS role: from an hour before */
#define MIN_GAP_S    60   /* prefetches at most this often */
#define BACKOFF_MAX  3600 /* the longest wait between failed refreshes */
#define DEFAULT_MD   "http://100.100.100.200"
#define DEFAULT_STS  "sts.aliyuncs.com"
#define IMDS_CONNECT 1000 /* ms: off ECS the address does not answer */
#define IMDS_TIMEOUT 2000

static void wipe_free(char *s)
{
  if (s) {
    ca_wipe(s, strlen(s));
    free(s);
  }
}

void ca_cred_copy_free(ca_cred_copy *c)
{
  wipe_free(c->id);
  wipe_free(c->secret);
  wipe_free(c->token);
  memset(c, 0, sizeof *c);
}

void cred_fetched_free(cred_fetched *f)
{
  wipe_free(f->id);
  wipe_free(f->secret);
  wipe_free(f->token);
  memset(f, 0, sizeof *f);
}

void cred_note_secret(ca_cred_provider *p, const char *v)
{
  if (!v)
    return;
  pthread_mutex_lock(&p->mu);
  /* Out of memory here only means a value is not redacted: the calls that
   * would show it fail first for the same reason. */
  (void)ca_secrets_add(&p->secrets, v, strlen(v));
  if (p->http)
    (void)ca_secrets_add(&p->http->secrets, v, strlen(v));
  pthread_mutex_unlock(&p->mu);
}

static int64_t real_now(void *ud)
{
  (void)ud;
  return (int64_t)time(NULL);
}

static const char *env_get(const ca_cred_net *net, const char *name)
{
  const char *v =
    net && net->getenv ? net->getenv(net->getenv_ud, name) : getenv(name);
  return v && *v ? v : NULL;
}

/* The iso form of an epoch time, for messages. */
static void iso(int64_t t, char out[21])
{
  ca_iso8601((long long)t, out);
}

/* ---- set-up ------------------------------------------------------------- */

/* url made "scheme://host[:port]": a bare host gets https://; plain http
 * only to loopback (the CAMS endpoints' rule). */
static chatapp_status endpoint_url(const char *what, const char *v, char **out,
                                   ca_buf *err)
{
  ca_buf b = CA_BUF_INIT(4096);
  char why[512];
  size_t n;

  if (strstr(v, "://"))
    ca_buf_adds(&b, v);
  else
    ca_buf_printf(&b, "https://%s", v);
  n = b.len;
  while (n > 8 && b.ptr[n - 1] == '/')
    b.ptr[--n] = '\0';
  b.len = n;
  if (!b.ptr) {
    ca_buf_free(&b);
    return CHATAPP_ENOMEM;
  }
  if (ca_config_check_endpoint(b.ptr, why, sizeof why) != 0) {
    ca_buf_printf(err, "%s: %s", what, why);
    ca_buf_free(&b);
    return CHATAPP_ECONFIG;
  }
  if (strncmp(b.ptr, "http://", 7) == 0) {
    const char *h = b.ptr + 7, *q;
    size_t hl = strlen(h);
    if (h[0] == '[' && (q = strchr(h, ']')))
      hl = (size_t)(q - h) + 1;
    else if (h[0] != '[' && (q = strchr(h, ':')))
      hl = (size_t)(q - h);
    if (!ca_loopback_host(h, hl)) {
      ca_buf_printf(err,
                    "%s: refusing plain http to '%.*s'; use https:// (http "
                    "is allowed only to 127.0.0.1, ::1 or localhost)",
                    what, (int)hl, h);
      ca_buf_free(&b);
      return CHATAPP_ECONFIG;
    }
  }
  *out = ca_buf_steal(&b);
  return *out ? CHATAPP_OK : CHATAPP_ENOMEM;
}

/* The STS host (credentials-roles.md section 1): the sts_endpoint key,
 * ALIBABA_CLOUD_STS_ENDPOINT, the profile's sts_endpoint, else by region
 * (profile sts_region / ALIBABA_CLOUD_STS_REGION) and VPC. */
static chatapp_status choose_sts(ca_cred_provider *p, const ca_cred_net *net,
                                 ca_buf *err)
{
  const ca_cred_role *r = p->role;
  const char *ep = net && net->sts_endpoint && *net->sts_endpoint
                     ? net->sts_endpoint
                     : env_get(net, "ALIBABA_CLOUD_STS_ENDPOINT");
  const char *what = net && net->sts_endpoint && *net->sts_endpoint
                       ? "the sts_endpoint setting"
                       : "ALIBABA_CLOUD_STS_ENDPOINT";
  const char *region, *vpcv;
  char host[512];
  int vpc;

  if (!ep && r->sts_endpoint) {
    ep = r->sts_endpoint;
    what = "the profile's sts_endpoint";
  }
  if (ep)
    return endpoint_url(what, ep, &p->sts_url, err);
  region =
    r->sts_region ? r->sts_region : env_get(net, "ALIBABA_CLOUD_STS_REGION");
  vpcv = env_get(net, "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED");
  vpc = r->vpc || (vpcv && strcasecmp(vpcv, "true") == 0);
  if (region) {
    size_t i;
    for (i = 0; region[i]; i++)
      if (!((region[i] >= 'a' && region[i] <= 'z') ||
            (region[i] >= '0' && region[i] <= '9') || region[i] == '-') ||
          i > 64) {
        ca_buf_adds(err, "the STS region is not a region id (letters, "
                         "digits and '-'): check sts_region or "
                         "ALIBABA_CLOUD_STS_REGION");
        return CHATAPP_ECONFIG;
      }
    snprintf(host, sizeof host, "sts%s.%s.aliyuncs.com", vpc ? "-vpc" : "",
             region);
  } else {
    snprintf(host, sizeof host, "%s", DEFAULT_STS);
  }
  return endpoint_url("the STS endpoint", host, &p->sts_url, err);
}

/* The metadata service: CHATAPP_ECS_METADATA_URL (tests; loopback only). */
static chatapp_status choose_metadata(ca_cred_provider *p,
                                      const ca_cred_net *net, ca_buf *err)
{
  const char *v = env_get(net, "CHATAPP_ECS_METADATA_URL");
  chatapp_status st;

  if (!v) {
    p->md_url = strdup(DEFAULT_MD);
    return p->md_url ? CHATAPP_OK : CHATAPP_ENOMEM;
  }
  st = endpoint_url("CHATAPP_ECS_METADATA_URL", v, &p->md_url, err);
  if (!st && strncmp(p->md_url, "http://", 7) != 0) {
    ca_buf_adds(err, "CHATAPP_ECS_METADATA_URL is a test override: it must be "
                     "http://127.0.0.1:PORT (loopback)");
    st = CHATAPP_ECONFIG;
  }
  return st;
}

/* A URL for messages: scheme, host and path, never the query. */
static void url_shown(ca_buf *b, const char *url)
{
  size_t n = strcspn(url, "?#");
  size_t i;

  for (i = 0; i < n && i < 256; i++) {
    unsigned char c = (unsigned char)url[i];
    ca_buf_addc(b, c > 0x20 && c < 0x7f ? (char)c : '?');
  }
  if (url[n])
    ca_buf_adds(b, "?...");
}

static chatapp_status make_http(ca_cred_provider *p, const ca_cred_net *net,
                                int metadata, ca_buf *err)
{
  static const ca_client_config defaults;
  const ca_client_config *t =
    net && net->transport ? net->transport : &defaults;
  ca_client_config cc = *t;
  chatapp_status st;

  if (p->http)
    ca_client_free(p->http);
  p->http = NULL;
  cc.endpoint = NULL;
  cc.access_key_id = cc.access_key_secret = cc.security_token = NULL;
  cc.provider = NULL;
  cc.http_only = 1;
  cc.limiter_path = NULL;
  if (metadata) {
    cc.connect_timeout_ms = IMDS_CONNECT;
    cc.max_attempts = 1;
    p->timeout_ms = IMDS_TIMEOUT;
  } else {
    p->timeout_ms = 0; /* the configuration's */
  }
  st = ca_client_new(&cc, &p->http, err);
  if (!st)
    st = ca_secrets_merge(&p->http->secrets, &p->secrets);
  return st;
}

/* The words naming the provider, its identity (the account key). */
static chatapp_status describe_kind(ca_cred_provider *p)
{
  ca_buf n = CA_BUF_INIT(8192), id = CA_BUF_INIT(4096);
  const ca_cred_role *r = p->role;
  char shown[256];

  switch (p->kind) {
  case CA_CRED_RAM_ROLE:
    ca_buf_printf(&n, "RAM role %s by STS AssumeRole at %s, signed with %s",
                  cred_shown(shown, sizeof shown, r->role_arn), p->sts_url,
                  p->source && p->source->origin ? p->source->origin
                                                 : "an AccessKey");
    ca_buf_adds(&id, r->role_arn);
    break;
  case CA_CRED_OIDC:
    ca_buf_printf(&n, "OIDC role %s by STS AssumeRoleWithOIDC at %s",
                  cred_shown(shown, sizeof shown, r->role_arn), p->sts_url);
    ca_buf_adds(&id, r->role_arn);
    break;
  case CA_CRED_ECS:
    if (r->ecs_role || p->ecs_found)
      ca_buf_printf(&n, "ECS instance role '%s' from the metadata service %s",
                    cred_shown(shown, sizeof shown,
                               r->ecs_role ? r->ecs_role : p->ecs_found),
                    p->md_url);
    else
      ca_buf_printf(&n, "ECS instance role from the metadata service %s",
                    p->md_url);
    ca_buf_printf(&id, "ecs-role:%s",
                  r->ecs_role    ? r->ecs_role
                  : p->ecs_found ? p->ecs_found
                                 : "");
    break;
  case CA_CRED_URI:
    ca_buf_adds(&n, "credentials URI ");
    url_shown(&n, r->uri);
    ca_buf_adds(&id, "credentials-uri:");
    url_shown(&id, r->uri);
    break;
  case CA_CRED_PROCESS:
    ca_buf_adds(&n, "the external command of process_command");
    ca_buf_adds(&id, "credential-process");
    break;
  default:
    ca_buf_adds(&n, "static AccessKey");
    break;
  }
  if (p->kind == CA_CRED_STATIC) {
    ca_buf_free(&id);
    free(p->name);
    p->name = ca_buf_steal(&n);
    return p->name ? CHATAPP_OK : CHATAPP_ENOMEM;
  }
  free(p->name);
  free(p->identity);
  p->name = ca_buf_steal(&n);
  p->identity = ca_buf_steal(&id);
  return p->name && p->identity ? CHATAPP_OK : CHATAPP_ENOMEM;
}

static ca_cred_provider *alloc_provider(ca_credentials *cred,
                                        const ca_cred_net *net)
{
  ca_cred_provider *p = calloc(1, sizeof *p);
  const char *w;

  if (!p)
    return NULL;
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    free(p);
    return NULL;
  }
  if (pthread_cond_init(&p->cv, NULL) != 0) {
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  p->now = real_now;
  p->window_s = STALE_S;
  p->prefetch_s = PREFETCH_S;
  /* Tests: a short stale window (and prefetch), so a run can outlive
   * several short credential lifetimes (docs/credentials.md). */
  if ((w = env_get(net, "CHATAPP_TEST_CRED_STALE_S")) != NULL) {
    char *end;
    long v = strtol(w, &end, 10);
    if (*end == '\0' && v >= 0 && v <= STALE_S)
      p->window_s = p->prefetch_s = v;
  }
  p->allow_process = net ? net->allow_process : 0;
  p->origin = cred->source;
  cred->source = NULL;
  p->region = cred->region;
  cred->region = NULL;
  return p;
}

static chatapp_status provider_init(ca_cred_provider *p, ca_credentials *cred,
                                    const ca_cred_net *net, ca_buf *err);

chatapp_status ca_cred_provider_new(ca_credentials *cred,
                                    const ca_cred_net *net,
                                    ca_cred_provider **out, ca_buf *err)
{
  ca_cred_provider *p = alloc_provider(cred, net);
  chatapp_status st;

  *out = NULL;
  if (!p) {
    ca_cred_free(cred);
    return CHATAPP_ENOMEM;
  }
  st = provider_init(p, cred, net, err);
  ca_cred_free(cred);
  if (st) {
    ca_cred_provider_free(p);
    return st;
  }
  *out = p;
  return CHATAPP_OK;
}

/* The first fetch: its failure is the provider's error. */
static chatapp_status first_fetch(ca_cred_provider *p, ca_buf *err)
{
  ca_cred_copy tmp;
  char e[CRED_ERR_MAX];
  chatapp_status st;

  memset(&tmp, 0, sizeof tmp);
  st = ca_cred_provider_sync(p, &tmp, NULL, e, sizeof e);
  ca_cred_copy_free(&tmp);
  if (!st && p->ecs_found)
    st = describe_kind(p); /* the role name the service gave */
  if (st) {
    ca_buf_reset(err);
    ca_buf_adds(err, e);
  }
  return st;
}

static chatapp_status provider_init(ca_cred_provider *p, ca_credentials *cred,
                                    const ca_cred_net *net, ca_buf *err)
{
  ca_cred_role *r = cred->role;
  chatapp_status st;

  if (!r) {
    p->kind = CA_CRED_STATIC;
    p->have = 1;
    p->gen = 1;
    p->id = cred->access_key_id;
    p->secret = cred->access_key_secret;
    p->token = cred->security_token;
    cred->access_key_id = cred->access_key_secret = cred->security_token = NULL;
    if (!p->id || !p->secret)
      return CHATAPP_ECREDENTIALS;
    p->identity = strdup(p->id);
    if (!p->identity ||
        ca_secrets_add(&p->secrets, p->secret, strlen(p->secret)) ||
        (p->token && ca_secrets_add(&p->secrets, p->token, strlen(p->token))))
      return CHATAPP_ENOMEM;
    return describe_kind(p);
  }
  cred->role = NULL;
  p->role = r;
  p->kind = r->kind;
  switch (r->kind) {
  case CA_CRED_RAM_ROLE:
    if (!r->source) {
      ca_buf_adds(err, "a RAM role without source credentials");
      return CHATAPP_ECREDENTIALS;
    }
    st = ca_cred_provider_new(r->source, net, &p->source, err);
    free(r->source);
    r->source = NULL;
    if (st)
      return st;
    pthread_mutex_lock(&p->source->mu);
    st = ca_secrets_merge(&p->secrets, &p->source->secrets);
    pthread_mutex_unlock(&p->source->mu);
    if (!st)
      st = choose_sts(p, net, err);
    if (!st)
      st = make_http(p, net, 0, err);
    break;
  case CA_CRED_OIDC:
    st = choose_sts(p, net, err);
    if (!st)
      st = make_http(p, net, 0, err);
    break;
  case CA_CRED_ECS:
    st = choose_metadata(p, net, err);
    if (!st)
      st = make_http(p, net, 1, err);
    break;
  case CA_CRED_URI:
    st = make_http(p, net, 0, err);
    break;
  case CA_CRED_PROCESS:
    if (!p->allow_process) {
      ca_buf_printf(err,
                    "%s uses mode External, which runs the command of its "
                    "process_command; chatapp-run runs it only when "
                    "allowed: set allow_credential_process (the "
                    "--allow-credential-process option)",
                    p->origin ? p->origin : "the profile");
      return CHATAPP_ECREDENTIALS;
    }
    st = make_http(p, net, 0, err);
    break;
  case CA_CRED_TAIL: {
    /* The ECS role if the metadata service answers, else the URI. */
    ca_buf e1 = CA_BUF_INIT(4096);
    if (r->ecs_ok) {
      p->kind = CA_CRED_ECS;
      st = choose_metadata(p, net, err);
      if (!st)
        st = make_http(p, net, 1, err);
      if (!st)
        st = describe_kind(p);
      if (!st) {
        st = first_fetch(p, &e1);
        if (!st || st == CHATAPP_ENOMEM) {
          ca_buf_free(&e1);
          return st;
        }
      }
      if (st != CHATAPP_ECREDENTIALS) {
        ca_buf_free(&e1);
        return st;
      }
      p->failures = 0;
      p->next_try = 0;
      p->last_error[0] = '\0';
    }
    if (!r->uri) {
      ca_buf_printf(err, "%s\n  (the ECS instance role: %s)",
                    r->nothing ? r->nothing : "no credentials found",
                    r->ecs_ok ? ca_buf_str(&e1) : "skipped");
      ca_buf_free(&e1);
      return CHATAPP_ECREDENTIALS;
    }
    ca_buf_free(&e1);
    p->kind = CA_CRED_URI;
    free(p->origin);
    p->origin = strdup("ALIBABA_CLOUD_CREDENTIALS_URI");
    if (!p->origin)
      return CHATAPP_ENOMEM;
    st = make_http(p, net, 0, err);
    break;
  }
  default:
    ca_buf_adds(err, "an unknown kind of credentials");
    return CHATAPP_ECREDENTIALS;
  }
  if (!st)
    st = describe_kind(p);
  if (!st)
    st = first_fetch(p, err);
  return st;
}

void ca_cred_provider_free(ca_cred_provider *p)
{
  if (!p)
    return;
  ca_cred_provider_free(p->source);
  ca_cred_copy_free(&p->src_cur);
  ca_client_free(p->http);
  ca_cred_role_free(p->role);
  free(p->origin);
  free(p->name);
  free(p->identity);
  free(p->region);
  free(p->sts_url);
  free(p->md_url);
  free(p->ecs_found);
  wipe_free(p->id);
  wipe_free(p->secret);
  wipe_free(p->token);
  ca_secrets_free(&p->secrets);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* ---- refresh ------------------------------------------------------------ */

/* When to refresh credentials expiring at exp, fetched at now. */
static int64_t refresh_time(const ca_cred_provider *p, int64_t exp, int64_t now)
{
  int64_t stale = exp - p->window_s, at = stale;

  if (exp == 0)
    return INT64_MAX;
  if (p->kind == CA_CRED_ECS && exp - p->prefetch_s < stale) {
    /* The ECS prefetch, but not more often than every minute while the
     * service still hands out the same credentials. */
    at = exp - p->prefetch_s;
    if (at < now + MIN_GAP_S)
      at = now + MIN_GAP_S < stale ? now + MIN_GAP_S : stale;
  }
  if (at <= now)
    at = now + 1; /* fetched already stale: at most once a second */
  return at;
}

/* The wait after the k-th failure in a row: U[1, M-1] s. */
static int64_t backoff_s(int k)
{
  int64_t m = 10;
  uint32_t r = 0;

  if (k > 1 && k < 40) {
    int64_t b = (int64_t)1 << (k - 1);
    if (b > m)
      m = b;
  } else if (k >= 40) {
    m = BACKOFF_MAX;
  }
  if (m > BACKOFF_MAX)
    m = BACKOFF_MAX;
  ca_random(&r, sizeof r);
  return 1 + (int64_t)(r % (uint32_t)(m - 1));
}

/* Log through the fetch client (secrets redacted), if any. */
#define PLOG(p, level, ...)                                                    \
  do {                                                                         \
    if ((p)->http)                                                             \
      ca_client_log((p)->http, level, __VA_ARGS__);                            \
  } while (0)

/* Fetch with p->mu not held; then install the answer under it. */
static void refresh_locked(ca_cred_provider *p)
{
  cred_fetched f;
  char e[CRED_ERR_MAX], when[21];
  chatapp_status st;
  int64_t now;

  p->refreshing = 1;
  p->stats.fetches++;
  if (p->stats.in_flight_max < 1)
    p->stats.in_flight_max = 1;
  pthread_mutex_unlock(&p->mu);
  memset(&f, 0, sizeof f);
  e[0] = '\0';
  st = cred_fetch(p, &f, e, sizeof e);
  pthread_mutex_lock(&p->mu);
  now = p->now(p->now_ud);
  if (!st && f.exp != 0 && f.exp <= now) {
    iso(f.exp, when);
    snprintf(e, sizeof e,
             "the answer's credentials expired already (Expiration %s); "
             "check this machine's clock",
             when);
    st = CHATAPP_ECREDENTIALS;
  }
  if (!st) {
    if (f.secret)
      (void)ca_secrets_add(&p->secrets, f.secret, strlen(f.secret));
    if (f.token)
      (void)ca_secrets_add(&p->secrets, f.token, strlen(f.token));
    if (p->http)
      (void)ca_secrets_merge(&p->http->secrets, &p->secrets);
    wipe_free(p->id);
    wipe_free(p->secret);
    wipe_free(p->token);
    p->id = f.id;
    p->secret = f.secret;
    p->token = f.token;
    p->exp = f.exp;
    p->refresh_at = refresh_time(p, f.exp, now);
    memset(&f, 0, sizeof f);
    p->have = 1;
    p->gen++;
    p->failures = 0;
    p->next_try = 0;
    p->last_error[0] = '\0';
  } else {
    p->failures++;
    p->stats.failures++;
    p->next_try = now + backoff_s(p->failures);
    snprintf(p->last_error, sizeof p->last_error, "%s",
             e[0] ? e : chatapp_strerror(st));
  }
  p->refreshing = 0;
  pthread_cond_broadcast(&p->cv);
  cred_fetched_free(&f);
}

chatapp_status ca_cred_provider_sync(ca_cred_provider *p, ca_cred_copy *cur,
                                     ca_secrets *redact, char *err,
                                     size_t errlen)
{
  chatapp_status st = CHATAPP_OK;
  char when[21];
  int64_t now;

  pthread_mutex_lock(&p->mu);
  for (;;) {
    now = p->now(p->now_ud);
    if (p->kind == CA_CRED_STATIC || (p->have && now < p->refresh_at))
      break;
    if (p->have && now < p->exp && (p->refreshing || now < p->next_try))
      break; /* still valid: someone refreshes, or the backoff runs */
    if (p->refreshing) {
      pthread_cond_wait(&p->cv, &p->mu); /* one fetch, bounded by its
                                            timeouts */
      continue;
    }
    if (now < p->next_try)
      break; /* expired (or never had any) and the backoff runs */
    refresh_locked(p);
    if (p->last_error[0] == '\0') {
      iso(p->exp, when);
      PLOG(p, CA_LOG_INFO, "credentials: %s: new credentials, valid until %s",
           p->name, p->exp ? when : "(no expiry)");
    } else {
      PLOG(p, CA_LOG_ERROR,
           "credentials: refreshing %s failed: %s; next try in %lld s", p->name,
           p->last_error, (long long)(p->next_try - now));
    }
    break;
  }
  now = p->now(p->now_ud);
  if (!p->have || (p->exp && now >= p->exp)) {
    if (!p->have) {
      snprintf(err, errlen, "%s: %s gave no credentials: %s",
               p->origin ? p->origin : "credentials", p->name,
               p->last_error[0] ? p->last_error : "no answer yet");
    } else {
      iso(p->exp, when);
      snprintf(err, errlen,
               "%s: the credentials of %s expired at %s and could not be "
               "refreshed: %s; trying again in %lld s",
               p->origin ? p->origin : "credentials", p->name, when,
               p->last_error[0] ? p->last_error : "no answer yet",
               (long long)(p->next_try > now ? p->next_try - now : 0));
    }
    st = CHATAPP_ECREDENTIALS;
  } else if (cur && cur->gen != p->gen) {
    ca_cred_copy n;
    memset(&n, 0, sizeof n);
    n.id = strdup(p->id);
    n.secret = strdup(p->secret);
    n.token = p->token ? strdup(p->token) : NULL;
    n.gen = p->gen;
    if (!n.id || !n.secret || (p->token && !n.token)) {
      ca_cred_copy_free(&n);
      snprintf(err, errlen, "out of memory while copying the credentials");
      st = CHATAPP_ENOMEM;
    } else {
      n.secrets_seen = cur->secrets_seen;
      ca_cred_copy_free(cur);
      *cur = n;
    }
  }
  /* The set only grows: merge when it did (not at every attempt). */
  if (redact && (!cur || cur->secrets_seen != p->secrets.n)) {
    if (ca_secrets_merge(redact, &p->secrets) != CHATAPP_OK) {
      if (st == CHATAPP_OK) {
        snprintf(err, errlen,
                 "out of memory while noting the secrets to redact");
        st = CHATAPP_ENOMEM;
      }
    } else if (cur) {
      cur->secrets_seen = p->secrets.n;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return st;
}

void ca_cred_provider_expired(ca_cred_provider *p, uint64_t gen)
{
  pthread_mutex_lock(&p->mu);
  if (p->kind != CA_CRED_STATIC && gen == p->gen)
    p->refresh_at = 0;
  pthread_mutex_unlock(&p->mu);
}

chatapp_status ca_cred_provider_describe(ca_cred_provider *p, ca_buf *out)
{
  char masked[CA_CRED_MASK_LEN], when[21];
  chatapp_status st;

  pthread_mutex_lock(&p->mu);
  ca_cred_mask_id(p->id, masked);
  if (p->kind == CA_CRED_STATIC)
    st = ca_buf_printf(out, "%s, AccessKey %s", p->origin ? p->origin : "",
                       masked);
  else
    st = ca_buf_printf(out, "%s: %s, AccessKey %s", p->origin ? p->origin : "",
                       p->name, masked);
  if (!st && p->exp) {
    iso(p->exp, when);
    st = ca_buf_printf(out, ", expires %s", when);
  }
  pthread_mutex_unlock(&p->mu);
  return st;
}

const char *ca_cred_provider_identity(const ca_cred_provider *p)
{
  return p->identity;
}

const char *ca_cred_provider_region(const ca_cred_provider *p)
{
  return p->region;
}

int64_t ca_cred_provider_expiry(ca_cred_provider *p)
{
  int64_t e;

  pthread_mutex_lock(&p->mu);
  e = p->exp;
  pthread_mutex_unlock(&p->mu);
  return e;
}

void ca_cred_provider_stats(ca_cred_provider *p, ca_cred_stats *out)
{
  pthread_mutex_lock(&p->mu);
  *out = p->stats;
  pthread_mutex_unlock(&p->mu);
}

void ca_cred_provider_set_clock(ca_cred_provider *p, int64_t (*now)(void *ud),
                                void *ud)
{
  pthread_mutex_lock(&p->mu);
  p->now = now ? now : real_now;
  p->now_ud = ud;
  pthread_mutex_unlock(&p->mu);
}
