/*
 * emu_main.c: chatapp-emulator's command line, start-up and shutdown.
 *
 * SIGINT and SIGTERM are blocked in every thread and taken by sigwait() in
 * the main thread, which then sets the stop flag (every wait in a
 * connection thread checks it), stops the daemon, flushes the log and
 * exits 0.
 */
#include "emu.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <microhttpd.h>

#include "ca_crypto.h"

#define EXIT_USAGE 2

static const char usage_text[] =
  "Usage: chatapp-emulator [options]\n"
  "\n"
  "A local Alibaba Cloud Chat App Message Service (CAMS, 2020-06-06) for\n"
  "trying policies without an account and for testing clients: it checks\n"
  "V3 (ACS3-HMAC-SHA256) and legacy (HMAC-SHA1) signatures, timestamps,\n"
  "nonces and STS tokens, enforces the per-account quota, serves fixture\n"
  "data and injects faults on request.  Listens on 127.0.0.1 only.\n"
  "\n"
  "Options:\n"
  "  --port N             port to listen on (default 8080; 0 = any free one)\n"
  "  --port-file FILE     write the port to FILE (atomically) once listening\n"
  "  --data PATH          fixture file, or a directory of *.json fixtures\n"
  "                       (default: the built-in sample data)\n"
  "  --print-sample       print the built-in sample data and exit\n"
  "  --keys FILE          credentials file, replacing the built-in keys\n"
  "  --quota N            accepted calls per operation per account in any\n"
  "                       1 s window (default 10)\n"
  "  --quota-op OP=N      the same for one operation (repeatable)\n"
  "  --throttle-retry-after  throttled answers carry x-acs-retry-after (ms)\n"
  "                       and Retry-After (s): when a slot frees\n"
  "  --skew SECONDS       allowed clock difference of x-acs-date/Timestamp\n"
  "                       (default 900 = 15 min)\n"
  "  --nonce-max N        nonces kept per generation (default 1000000)\n"
  "  --fault SPEC         a fault rule (repeatable): JSON or key=value,...\n"
  "  --latency MS[:J]     shorthand for --fault "
  "kind=latency,ms=MS,jitter_ms=J\n"
  "  --log FILE           request log, JSON Lines, flushed per line (- =\n"
  "                       standard output)\n"
  "  --sts-lifetime S     lifetime of issued temporary keys, seconds (1..\n"
  "                       43200; default: DurationSeconds, else 3600)\n"
  "  --oidc-token VALUE   the OIDC token AssumeRoleWithOIDC accepts\n"
  "                       (default emulator-oidc-token-not-real)\n"
  "  --metadata-port N    serve the ECS metadata service on 127.0.0.1:N\n"
  "                       (0 = any free port; default: not served)\n"
  "  --metadata-port-file FILE  write its port to FILE once listening\n"
  "  --ecs-role NAME      the instance's role name (default chatapp-ecs-role)\n"
  "  --imds-require-token metadata requests need a token (IMDSv2 only)\n"
  "  --tls-cert FILE      serve HTTPS: the server certificate (PEM, a chain\n"
  "                       may follow it); needs --tls-key\n"
  "  --tls-key FILE       its private key (PEM, unencrypted)\n"
  "  --stall-port-file FILE  also listen on a port whose connects never\n"
  "                       complete (a full accept queue), its port to FILE\n"
  "  --exit-with-parent   stop (as on SIGTERM) when the process that started\n"
  "                       it dies, even by SIGKILL (chatapp-run --emulator)\n"
  "  -q, --quiet          no banner on standard error\n"
  "  -h, --help           this text\n"
  "  --version            the version\n"
  "\n"
  "Once listening it prints http://127.0.0.1:PORT (https:// with\n"
  "--tls-cert) on standard output.\n"
  "\n";

/* More of --help (one string literal would be over C99's 4095). */
static const char usage_keys[] =
  "Built-in credentials (throwaway, valid only here):\n"
  "  LTAIemulatorTestKey01 / emulator-secret-not-real  account "
  "1000000000000001\n"
  "  STS.emulatorTemporaryKey / emulator-sts-secret, token emulator-sts-token\n"
  "                                                    account "
  "1000000000000001\n"
  "  LTAIemulatorOtherAcct / emulator-other-secret     account "
  "1000000000000002\n"
  "--keys FILE: {\"keys\":[{\"access_key_id\":..., \"access_key_secret\":...,\n"
  "  \"account\":..., \"security_token\": (STS), \"expiration\": (ISO 8601),\n"
  "  \"disabled\": bool}]}\n"
  "\n"
  "Operations: QueryChatappPhoneNumbers (CustSpaceId, IsvCode, Status),\n"
  "ChatappSyncPhoneNumber, UpdatePhoneWebhook, "
  "GetPhoneNumberVerificationStatus;\n"
  "others answer InvalidAction.NotFound (404).\n"
  "\n"
  "Fixture: {\"spaces\":[{\"cust_space_id\":\"C1\", \"default\":bool,\n"
  "  \"isv_code\":..., \"account\":..., \"label\":..., "
  "\"phone_numbers\":[...]}]}\n"
  "  number objects are served as they are, unknown fields included.\n"
  "\n"
  "Fault rules: kind = latency {ms, jitter_ms} | error {code, status, "
  "message}\n"
  "  | reset {after_bytes} | truncate {after_bytes} | malformed {body, "
  "status}\n"
  "  | drip {interval_ms} | oversize {bytes, ms} | chunked {bytes, 0 = "
  "endless,\n"
  "  ms} | gzip {bytes, 0 = endless, ms} (a gzip bomb; ms: the body starts\n"
  "  ms after the headers)\n"
  "  | redirect {location, status} | hang {ms, 0 = until the client leaves}\n"
  "  | quota {quota} | drop (reset new connections: mid-handshake over\n"
  "  TLS; op connection); any rule: op, p (probability), every (Nth call),\n"
  "  next (K calls), for_ms, retry_after, x_acs_retry_after (headers).\n"
  "  e.g. --fault kind=error,code=ServiceUnavailable,p=0.2\n"
  "       --fault '{\"kind\":\"quota\",\"quota\":5,\"for_ms\":10000}'\n"
  "\n";

/* More of --help (one string literal would be over C99's 4095). */
static const char usage_roles[] =
  "Roles (temporary keys act for account 1000000000000001, prefix STS.):\n"
  "  STS on this port: POST / Action=AssumeRole (signed, HMAC-SHA1) or\n"
  "    AssumeRoleWithOIDC (anonymous), Version=2015-04-01\n"
  "  role acs:ram::1000000000000001:role/chatapp-test (assumable by\n"
  "    LTAIemulatorTestKey01 and keys issued for that account)\n"
  "  OIDC provider acs:ram::1000000000000001:oidc-provider/ack-test\n"
  "  GET /_emulator/credentials  the credentials URI\n"
  "  metadata port: PUT /latest/api/token (x-aliyun-ecs-metadata-token-\n"
  "    ttl-seconds 1..21600), GET /latest/meta-data/ram/security-\n"
  "    credentials/[ROLE] (x-aliyun-ecs-metadata-token checked if sent)\n"
  "  fault rules reach them only with op=AssumeRole, AssumeRoleWithOIDC,\n"
  "    credentials, metadata (or metadata.token, metadata.role,\n"
  "    metadata.credentials)\n"
  "\n";

/* The rest of --help. */
static const char usage_more[] =
  "Control endpoint (unsigned, same port):\n"
  "  GET /_emulator/health | /_emulator/stats | /_emulator/faults\n"
  "  POST /_emulator/faults (rule, array or {\"faults\":[...]})\n"
  "  DELETE /_emulator/faults[/ID]   POST /_emulator/quota {\"quota\":N,...}\n"
  "  POST /_emulator/reset (rules, quota logs, statistics, data)\n"
  "  ANY /_emulator/sink[/NAME][?status=N&delay_ms=M]  a webhook receiver;\n"
  "  GET|DELETE /_emulator/deliveries  what it received\n"
  "  GET /_emulator/numbers[?space=ID]  the live data (fixture format)\n"
  "  POST /_emulator/numbers[?space=ID]  add numbers (object or array)\n"
  "  PATCH /_emulator/numbers/PHONE[?space=ID]  set members (null removes)\n"
  "  DELETE /_emulator/numbers/PHONE[?space=ID]   POST /_emulator/spaces\n"
  "\n"
  "Log lines: t_us (monotonic arrival), time, remote, conn, method, scheme,\n"
  "  op, params (no Signature; SecurityToken redacted), signed_headers, "
  "nonce,\n"
  "  access_key_id, account, verdict (accepted|rejected|throttled|fault),\n"
  "  fault, code, status, request_id, delay_ms.\n"
  "\n"
  "Exit status: 0 after SIGINT/SIGTERM, 1 start-up failure, 2 usage error.\n"
  "More: docs/emulator.md.\n";

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
  char *end;
  unsigned long v;

  errno = 0;
  v = strtoul(s, &end, 10);
  if (!*s || *end || errno || v > max || *s == '-')
    return -1;
  *out = (unsigned)v;
  return 0;
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
                                                             ...)
{
  va_list ap;

  fprintf(stderr, "chatapp-emulator: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry 'chatapp-emulator --help'.\n");
  return EXIT_USAGE;
}

enum {
  OPT_PORT = 256,
  OPT_PORT_FILE,
  OPT_DATA,
  OPT_KEYS,
  OPT_QUOTA,
  OPT_QUOTA_OP,
  OPT_FAULT,
  OPT_LATENCY,
  OPT_LOG,
  OPT_SKEW,
  OPT_NONCE_MAX,
  OPT_VERSION,
  OPT_PRINT_SAMPLE,
  OPT_RETRY_AFTER,
  OPT_STS_LIFETIME,
  OPT_OIDC_TOKEN,
  OPT_META_PORT,
  OPT_META_PORT_FILE,
  OPT_ECS_ROLE,
  OPT_IMDS_REQUIRE,
  OPT_EXIT_WITH_PARENT,
  OPT_TLS_CERT,
  OPT_TLS_KEY,
  OPT_STALL_PORT_FILE,
};

static const struct option long_opts[] = {
  {"port", required_argument, NULL, OPT_PORT},
  {"port-file", required_argument, NULL, OPT_PORT_FILE},
  {"data", required_argument, NULL, OPT_DATA},
  {"keys", required_argument, NULL, OPT_KEYS},
  {"quota", required_argument, NULL, OPT_QUOTA},
  {"quota-op", required_argument, NULL, OPT_QUOTA_OP},
  {"fault", required_argument, NULL, OPT_FAULT},
  {"latency", required_argument, NULL, OPT_LATENCY},
  {"log", required_argument, NULL, OPT_LOG},
  {"skew", required_argument, NULL, OPT_SKEW},
  {"nonce-max", required_argument, NULL, OPT_NONCE_MAX},
  {"throttle-retry-after", no_argument, NULL, OPT_RETRY_AFTER},
  {"sts-lifetime", required_argument, NULL, OPT_STS_LIFETIME},
  {"oidc-token", required_argument, NULL, OPT_OIDC_TOKEN},
  {"metadata-port", required_argument, NULL, OPT_META_PORT},
  {"metadata-port-file", required_argument, NULL, OPT_META_PORT_FILE},
  {"ecs-role", required_argument, NULL, OPT_ECS_ROLE},
  {"imds-require-token", no_argument, NULL, OPT_IMDS_REQUIRE},
  {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
  {"tls-key", required_argument, NULL, OPT_TLS_KEY},
  {"exit-with-parent", no_argument, NULL, OPT_EXIT_WITH_PARENT},
  {"stall-port-file", required_argument, NULL, OPT_STALL_PORT_FILE},
  {"print-sample", no_argument, NULL, OPT_PRINT_SAMPLE},
  {"quiet", no_argument, NULL, 'q'},
  {"help", no_argument, NULL, 'h'},
  {"version", no_argument, NULL, OPT_VERSION},
  {NULL, 0, NULL, 0},
};

/* Add one --fault/--latency rule; 0 or a usage error status. */
static int add_fault(emu *e, const char *spec)
{
  emu_fault *f = NULL;
  char err[256];

  if (emu_fault_parse(spec, strlen(spec), emu_mono_us(), &f, err, sizeof err) !=
      CHATAPP_OK)
    return usage_error("--fault: %s", err);
  emu_faults_add(&e->faults, f);
  return 0;
}

int main(int argc, char **argv)
{
  emu e;
  struct MHD_Daemon *d = NULL, *md = NULL;
  const char *port_file = NULL, *data_path = NULL, *keys_path = NULL;
  const char *log_path = NULL, *oidc_token = NULL, *ecs_role = NULL;
  const char *meta_port_file = NULL, *tls_cert = NULL, *tls_key = NULL;
  const char *stall_port_file = NULL;
  int stall[2] = {-1, -1};
  unsigned port = 8080, quota = 10, nonce_max = 1000000, skew = 900;
  unsigned sts_lifetime = 0, meta_port = 0;
  int meta = 0, imds_require = 0;
  int quiet = 0, rc = 1, opt, sig = 0;
  char err[512];
  sigset_t sigs;
  emu_kvs quota_ops = {0};
  size_t i;

  memset(&e, 0, sizeof e);
  atomic_init(&e.stopping, 0);
  emu_faults_clear(&e.faults);
  while ((opt = getopt_long(argc, argv, "qh", long_opts, NULL)) != -1) {
    switch (opt) {
    case OPT_PORT:
      if (parse_uint(optarg, 65535, &port))
        return usage_error("--port: expected 0..65535, got \"%s\"", optarg);
      break;
    case OPT_PORT_FILE:
      port_file = optarg;
      break;
    case OPT_DATA:
      data_path = optarg;
      break;
    case OPT_KEYS:
      keys_path = optarg;
      break;
    case OPT_QUOTA:
      if (parse_uint(optarg, 1000000, &quota))
        return usage_error("--quota: expected a count, got \"%s\"", optarg);
      break;
    case OPT_QUOTA_OP: {
      const char *eq = strchr(optarg, '=');
      unsigned n;
      if (!eq || eq == optarg || parse_uint(eq + 1, 1000000, &n))
        return usage_error("--quota-op: expected Operation=N, got \"%s\"",
                           optarg);
      if (emu_kvs_add(&quota_ops, optarg, (size_t)(eq - optarg), eq + 1,
                      strlen(eq + 1)) != CHATAPP_OK)
        return 1;
      break;
    }
    case OPT_FAULT:
      if ((rc = add_fault(&e, optarg)) != 0)
        return rc;
      rc = 1;
      break;
    case OPT_LATENCY: {
      char spec[128];
      unsigned ms, jit = 0;
      char *colon = strchr(optarg, ':');
      if (colon)
        *colon = '\0';
      if (parse_uint(optarg, 3600000, &ms) ||
          (colon && parse_uint(colon + 1, 3600000, &jit)))
        return usage_error("--latency: expected MS or MS:JITTER, got \"%s\"",
                           optarg);
      snprintf(spec, sizeof spec, "kind=latency,ms=%u,jitter_ms=%u", ms, jit);
      if ((rc = add_fault(&e, spec)) != 0)
        return rc;
      rc = 1;
      break;
    }
    case OPT_LOG:
      log_path = optarg;
      break;
    case OPT_SKEW:
      if (parse_uint(optarg, 20u * 366 * 86400, &skew))
        return usage_error("--skew: expected seconds, got \"%s\"", optarg);
      break;
    case OPT_NONCE_MAX:
      if (parse_uint(optarg, 100000000, &nonce_max) || nonce_max == 0)
        return usage_error("--nonce-max: expected a count, got \"%s\"", optarg);
      break;
    case OPT_RETRY_AFTER:
      e.throttle_retry_after = 1;
      break;
    case OPT_STS_LIFETIME:
      if (parse_uint(optarg, EMU_STS_MAX_LIFE, &sts_lifetime) ||
          sts_lifetime == 0)
        return usage_error("--sts-lifetime: expected seconds from 1 to %d, "
                           "got \"%s\"",
                           EMU_STS_MAX_LIFE, optarg);
      break;
    case OPT_OIDC_TOKEN:
      if (!*optarg || strlen(optarg) > 20000)
        return usage_error("--oidc-token: expected 1 to 20000 characters");
      oidc_token = optarg;
      break;
    case OPT_META_PORT:
      if (parse_uint(optarg, 65535, &meta_port))
        return usage_error("--metadata-port: expected 0..65535, got \"%s\"",
                           optarg);
      meta = 1;
      break;
    case OPT_META_PORT_FILE:
      meta_port_file = optarg;
      break;
    case OPT_ECS_ROLE: {
      const char *c;
      for (c = optarg; *c && *c != '/' && *c != '?' && (unsigned char)*c > ' ';
           c++)
        ;
      if (!*optarg || *c || strlen(optarg) > 64)
        return usage_error("--ecs-role: expected a role name (1 to 64 "
                           "characters, no '/', '?' or space), got \"%s\"",
                           optarg);
      ecs_role = optarg;
      break;
    }
    case OPT_TLS_CERT:
      tls_cert = optarg;
      break;
    case OPT_TLS_KEY:
      tls_key = optarg;
      break;
    case OPT_STALL_PORT_FILE:
      stall_port_file = optarg;
      break;
    case OPT_IMDS_REQUIRE:
      imds_require = 1;
      break;
    case OPT_EXIT_WITH_PARENT: {
      /* The kernel sends SIGTERM (taken by the sigwait below) when the
       * parent dies; a parent already gone before the call is seen by
       * getppid changing. */
      pid_t parent = getppid();
      if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
        fprintf(stderr, "chatapp-emulator: --exit-with-parent: %s\n",
                strerror(errno));
        return 1;
      }
      if (getppid() != parent)
        return 0;
      break;
    }
    case OPT_PRINT_SAMPLE: {
      size_t len;
      const char *s = emu_sample_json(&len);
      if (!s || fwrite(s, 1, len, stdout) != len || fflush(stdout) != 0)
        return 1;
      return 0;
    }
    case 'q':
      quiet = 1;
      break;
    case 'h':
      fputs(usage_text, stdout);
      fputs(usage_keys, stdout);
      fputs(usage_roles, stdout);
      fputs(usage_more, stdout);
      return 0;
    case OPT_VERSION:
      printf("chatapp-emulator %s\n", EMU_VERSION);
      return 0;
    default:
      fprintf(stderr, "Try 'chatapp-emulator --help'.\n");
      return EXIT_USAGE;
    }
  }
  if (optind < argc)
    return usage_error("unexpected argument \"%s\"", argv[optind]);
  if (meta_port_file && !meta)
    return usage_error("--metadata-port-file needs --metadata-port");
  if (!tls_cert != !tls_key)
    return usage_error("%s", tls_cert ? "--tls-cert needs --tls-key"
                                      : "--tls-key needs --tls-cert");

  if (pthread_mutex_init(&e.lock, NULL) != 0)
    return 1;
  if (emu_sts_init(&e.sts, oidc_token, ecs_role, sts_lifetime, imds_require) !=
      CHATAPP_OK) {
    fprintf(stderr, "chatapp-emulator: out of memory\n");
    pthread_mutex_destroy(&e.lock);
    return 1;
  }
  emu_quota_init(&e.quota, quota);
  emu_nonces_init(&e.nonces, 2 * (int64_t)skew * 1000000 + 60000000, nonce_max);
  emu_stats_reset(&e.stats, emu_mono_us());
  e.skew_s = skew;
  for (i = 0; i < quota_ops.n; i++) {
    unsigned n = (unsigned)strtoul(quota_ops.v[i].value, NULL, 10);
    if (emu_quota_set_op(&e.quota, quota_ops.v[i].key, n) != CHATAPP_OK)
      goto out;
  }
  if (keys_path ? emu_keys_load(&e.keys, keys_path, err, sizeof err)
                : emu_keys_builtin(&e.keys)) {
    fprintf(stderr, "chatapp-emulator: %s\n",
            keys_path ? err : "out of memory");
    goto out;
  }
  if (emu_data_load(&e.pristine, data_path, err, sizeof err) != CHATAPP_OK) {
    fprintf(stderr, "chatapp-emulator: %s\n", err);
    goto out;
  }
  if (emu_data_copy(&e.data, &e.pristine) != CHATAPP_OK)
    goto out;
  if (tls_cert &&
      emu_tls_load(&e, tls_cert, tls_key, err, sizeof err) != CHATAPP_OK) {
    fprintf(stderr, "chatapp-emulator: %s\n", err);
    goto out;
  }
  if (log_path && !(e.log = emu_log_open(log_path))) {
    fprintf(stderr, "chatapp-emulator: %s: %s\n", log_path, strerror(errno));
    goto out;
  }

  /* Signals: taken here by sigwait, never delivered to other threads. */
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0 ||
      signal(SIGPIPE, SIG_IGN) == SIG_ERR)
    goto out;
  d = emu_http_start(&e, port, err, sizeof err);
  if (!d) {
    fprintf(stderr, "chatapp-emulator: %s\n", err);
    goto out;
  }
  if (meta) {
    md = emu_imds_start(&e, meta_port, err, sizeof err);
    if (!md) {
      fprintf(stderr, "chatapp-emulator: metadata service: %s\n", err);
      goto out;
    }
  }
  if (stall_port_file) { /* before the API port file, as the metadata's */
    char text[16];
    unsigned sp = 0;
    int n;
    if (emu_stall_listen(stall, &sp, err, sizeof err) != 0) {
      fprintf(stderr, "chatapp-emulator: %s\n", err);
      goto out;
    }
    n = snprintf(text, sizeof text, "%u\n", sp);
    if (emu_write_file_atomic(stall_port_file, text, (size_t)n) != 0) {
      fprintf(stderr, "chatapp-emulator: %s: %s\n", stall_port_file,
              strerror(errno));
      goto out;
    }
  }
  /* The metadata port first: once the API port file exists, both serve. */
  if (meta_port_file) {
    char text[16];
    int n = snprintf(text, sizeof text, "%u\n", e.imds_port);
    if (emu_write_file_atomic(meta_port_file, text, (size_t)n) != 0) {
      fprintf(stderr, "chatapp-emulator: %s: %s\n", meta_port_file,
              strerror(errno));
      goto out;
    }
  }
  if (port_file) {
    char text[16];
    int n = snprintf(text, sizeof text, "%u\n", e.port);
    if (emu_write_file_atomic(port_file, text, (size_t)n) != 0) {
      fprintf(stderr, "chatapp-emulator: %s: %s\n", port_file, strerror(errno));
      goto out;
    }
  }
  if (!quiet) {
    size_t nn = 0;
    for (i = 0; i < e.data.nspaces; i++)
      nn += e.data.spaces[i].nnumbers;
    fprintf(stderr,
            "chatapp-emulator %s: listening on 127.0.0.1:%u%s; %zu spaces, "
            "%zu numbers from %s; %zu keys (%s); quota %u/s\n",
            EMU_VERSION, e.port, e.tls ? " (HTTPS)" : "", e.data.nspaces, nn,
            e.data.source, e.keys.n, keys_path ? keys_path : "built-in", quota);
    if (md)
      fprintf(stderr,
              "chatapp-emulator: metadata service on 127.0.0.1:%u (role "
              "%s%s)\n",
              e.imds_port, e.sts.ecs_role,
              imds_require ? ", tokens required" : "");
  }
  printf("%s://127.0.0.1:%u\n", e.tls ? "https" : "http", e.port);
  if (fflush(stdout) != 0)
    goto out;
  while (sigwait(&sigs, &sig) != 0 || (sig != SIGINT && sig != SIGTERM))
    ;
  if (!quiet)
    fprintf(stderr, "chatapp-emulator: %s, stopping\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
  rc = 0;
out:
  atomic_store(&e.stopping, 1);
  if (md)
    MHD_stop_daemon(md);
  if (d)
    MHD_stop_daemon(d);
  for (i = 0; i < 2; i++)
    if (stall[i] >= 0)
      close(stall[i]);
  emu_log_close(e.log);
  emu_kvs_free(&quota_ops);
  emu_faults_clear(&e.faults);
  emu_data_free(&e.data);
  emu_data_free(&e.pristine);
  emu_sink_clear(&e.sink);
  emu_keys_free(&e.keys);
  emu_sts_free(&e.sts);
  emu_nonces_free(&e.nonces);
  emu_quota_free(&e.quota);
  emu_stats_reset(&e.stats, 0);
  emu_tls_free(&e);
  pthread_mutex_destroy(&e.lock);
  return rc;
}
