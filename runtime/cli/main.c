/*
 * chatapp-run: run Lua policies over Alibaba Cloud CAMS sender numbers.
 *
 * Options map onto chatapp_config keys (ca_config.c), so the CLI and the
 * embedding API cannot drift apart; this file adds the CLI-only parts:
 * argument parsing, --emulator, the log sink and exit statuses.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lua.h>

#include "ca_config.h"
#include "ca_crypto.h"
#include "ca_emulator.h"
#include "ca_redis.h"
#include "ca_suggest.h"
#include "ca_watch.h"
#include "chatapp.h"
#include "lca_runtime.h"

/* Exit statuses (documented in --help and docs/cli.md). */
enum {
  EXIT_ALL_WELL = 0,
  EXIT_RUN_FAILED = 1, /* an API call, action or policy evaluation failed */
  EXIT_USAGE = 2,      /* usage, configuration or credentials */
  EXIT_LOAD = 3,       /* a policy failed to load; nothing ran */
  /* 128 + the signal: interrupted by SIGINT (130) or SIGTERM (143) */
};

/* After the first SIGINT / SIGTERM: how long the requests in flight get
 * before chatapp-run exits at once, as after a second signal. */
#define GRACE_S 10

static const char usage_text[] =
  "Usage: chatapp-run [OPTIONS] POLICY.lua...\n"
  "\n"
  "Run Lua policies over the WhatsApp / Viber sender numbers of an Alibaba\n"
  "Cloud Chat App Message Service (CAMS) account: fetch the numbers with\n"
  "signed, throttled calls, let each policy filter them and plan actions,\n"
  "then carry the plan out (or only show it, with --dry-run).\n"
  "\n"
  "       chatapp-run [OPTIONS] --lua SCRIPT.lua [ARGS...]\n"
  "       chatapp-run state show|forget [OPTIONS]\n"
  "                          look inside a --state file, or forget a number\n"
  "                          or a space in it (chatapp-run state --help)\n"
  "       chatapp-run test [--output text|json] [FILE|FOLDER...]\n"
  "                          run policy tests (*_test.lua), offline\n"
  "                          (chatapp-run test --help)\n"
  "\n"
  "Modes:\n"
  "      --emulator         run against a built-in local CAMS emulator with\n"
  "                         sample data (no account needed)\n"
  "      --data PATH        with --emulator: serve this fixture (a JSON\n"
  "                         file or a folder of them) instead; with\n"
  "                         --check: check the policies on its numbers\n"
  "      --emulator-tls-cert FILE, --emulator-tls-key FILE\n"
  "                         with --emulator: serve HTTPS with this\n"
  "                         certificate (for 127.0.0.1) and key; give its\n"
  "                         CA with --ca-file (docs/emulator.md, HTTPS)\n"
  "  -n, --dry-run          plan only: change nothing, execute nothing\n"
  "      --check            validate the policies; make no API call\n"
  "      --lua SCRIPT       run a plain Lua script with the chatapp module\n"
  "                         (no sandbox; for tools and tests)\n"
  "      --every DURATION   watch: a cycle every 60s, 5m, ... until SIGTERM;\n"
  "                         SIGHUP reloads the policy files (docs/watch.md)\n"
  "      --listen ADDR:PORT with --every: serve /metrics and /healthz\n"
  "                         (a bare PORT listens on 127.0.0.1)\n"
  "      --healthz-max-age DURATION\n"
  "                         /healthz fails when the last good cycle is\n"
  "                         older (default 3 intervals, at least 60s)\n"
  "\n"
  "Where and who:\n"
  "      --profile NAME     credentials profile (~/.aliyun/config.json or\n"
  "                         ~/.alibabacloud/credentials); otherwise the\n"
  "                         ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET environment\n"
  "      --region ID        region (default ap-southeast-1)\n"
  "      --endpoint URL     API endpoint (default https://cams.REGION."
  "aliyuncs.com)\n"
  "      --spaces FILE      JSON list of ISV sub-customer spaces to run over\n"
  "\n"
  "Calls:\n"
  "      --qps N            calls per second per operation (default: the\n"
  "                         documented limit, 10 for the phone-number query)\n"
  "      --signature-version v3|v2\n"
  "                         ACS3-HMAC-SHA256 (default) or legacy HMAC-SHA1\n"
  "      --account NAME     share one rate limit with every process using\n"
  "                         this name (default: the AccessKey id)\n"
  "\n"
  "Output:\n"
  "      --output text|json text table (default) or JSON Lines\n"
  "      --color auto|always|never\n"
  "  -v, --verbose          more detail on stderr (repeat: -vv retries,\n"
  "                         -vvv canonical requests for signature problems)\n"
  "\n"
  "  -h, --help             this help\n"
  "      --version          versions of chatapp-run, Lua, libcurl, OpenSSL\n"
  "\n"
  "More options (--KEY VALUE or --KEY=VALUE; details in docs/cli.md; a\n"
  "[true|false] option is true when bare, and takes a next argument only\n"
  "when it is exactly true or false):\n";

static const char usage_tail[] =
  "\n"
  "Exit status: 0 all went well; 1 an API call, action or policy evaluation\n"
  "failed (the rest of the run went on); 2 usage, configuration or\n"
  "credentials error; 3 a policy failed to load (nothing ran); 130 / 143\n"
  "interrupted by SIGINT / SIGTERM (no new action started; the report lists\n"
  "what was done; a second signal exits at once).\n";

/* "  --flag ARG    help text" with the help wrapped at 79 columns. */
static void print_wrapped(const char *flag, const char *help)
{
  const int indent = 29, width = 79;
  int col = printf("  %s", flag);
  const char *p = help;

  if (col >= indent - 1) {
    putchar('\n');
    col = 0;
  }
  printf("%*s", indent - col, "");
  col = indent;
  while (*p) {
    size_t w = strcspn(p, " ");
    if (col > indent && col + 1 + (int)w > width) {
      printf("\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      putchar(' ');
      col++;
    }
    printf("%.*s", (int)w, p);
    col += (int)w;
    p += w;
    while (*p == ' ')
      p++;
  }
  putchar('\n');
}

/* --help: the text above, then every configuration key not described in
 * it, from the one option table (ca_config.c), then the exit statuses. */
static void print_usage(void)
{
  static const char *const described[] = {"profile",
                                          "region",
                                          "endpoint",
                                          "spaces",
                                          "qps",
                                          "signature_version",
                                          "account",
                                          "output",
                                          "color",
                                          "verbose",
                                          "access_key_id",
                                          "access_key_secret",
                                          "security_token",
                                          NULL};
  const ca_config_key *k;
  size_t i;

  fputs(usage_text, stdout);
  for (k = ca_config_keys(); k->name; k++) {
    char flag[64];
    int skip = 0;
    for (i = 0; described[i]; i++)
      skip |= strcmp(k->name, described[i]) == 0;
    if (skip)
      continue;
    snprintf(flag, sizeof flag, "--%s %s", k->name,
             k->arg ? k->arg : "[true|false]");
    for (i = 2; flag[i]; i++)
      if (flag[i] == '_')
        flag[i] = '-';
    print_wrapped(flag, k->help);
  }
  fputs(usage_tail, stdout);
}

static int verbosity;

static void log_stderr(void *ud, int level, const char *line)
{
  (void)ud;
  if (level > verbosity)
    return;
  fprintf(stderr, "chatapp-run: %s\n", line);
}

/* ---- signals ------------------------------------------------------------
 * The first SIGINT / SIGTERM sets the interrupt flag (ca_interrupt_set):
 * no new action or request starts, the ones in flight finish, the report
 * is printed and written, and the exit status is 128 + the signal.  A
 * second signal, or GRACE_S seconds without finishing, exits at once,
 * stopping the --emulator child and removing its folder first. */
static const ca_emulator *volatile signal_emu;
static volatile sig_atomic_t signal_count;

static void say(const char *s)
{
  ssize_t w = write(2, s, strlen(s));
  (void)w;
}

static void exit_now(int sig, const char *why)
{
  say(why);
  if (signal_emu)
    ca_emulator_abandon(signal_emu);
  _exit(128 + sig);
}

static void on_signal(int sig)
{
  if (sig == SIGALRM) {
    exit_now(ca_interrupted() ? ca_interrupted() : SIGTERM,
             "chatapp-run: the requests in flight did not finish within "
             "the grace period; exiting without a report (their outcome is "
             "unknown)\n");
  }
  if (signal_count++ > 0)
    exit_now(sig, "chatapp-run: second signal: exiting at once; actions in "
                  "flight may or may not have happened\n");
  ca_interrupt_set(sig);
  say(sig == SIGINT ? "chatapp-run: SIGINT: " : "chatapp-run: SIGTERM: ");
  say("no new action starts; finishing the ones in flight, then the report "
      "(send the signal again to exit at once)\n");
  alarm(GRACE_S);
}

static int install_signals(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* one handler at a time: a SIGTERM cannot cut into the SIGINT one */
  if (sigemptyset(&sa.sa_mask) || sigaddset(&sa.sa_mask, SIGINT) ||
      sigaddset(&sa.sa_mask, SIGTERM) || sigaddset(&sa.sa_mask, SIGALRM)) {
    fprintf(stderr, "chatapp-run: cannot set up signals: %s\n",
            strerror(errno));
    return -1;
  }
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
      sigaction(SIGALRM, &sa, NULL)) {
    fprintf(stderr, "chatapp-run: cannot install signal handlers: %s\n",
            strerror(errno));
    return -1;
  }
  return 0;
}

/* After the run: the status an interruption gives, and what it says. */
static int interrupted_status(void)
{
  int sig = ca_interrupted();
  if (!sig)
    return 0;
  alarm(0);
  fprintf(stderr,
          "chatapp-run: interrupted by %s: nothing new started after the "
          "signal; the report lists what was done (actions not started are "
          "skipped: not started: interrupted)\n",
          sig == SIGINT    ? "SIGINT"
          : sig == SIGTERM ? "SIGTERM"
                           : "a signal");
  return 128 + sig;
}

/* Report a usage error; evaluates to the exit status. */
#define USAGE_ERROR(...)                                                       \
  (fprintf(stderr, "chatapp-run: "), fprintf(stderr, __VA_ARGS__),             \
   fprintf(stderr, "\nTry 'chatapp-run --help'.\n"), EXIT_USAGE)

static int set(chatapp_config *cfg, const char *key, const char *value)
{
  if (chatapp_config_set(cfg, key, value) != CHATAPP_OK) {
    fprintf(stderr, "chatapp-run: %s\n", chatapp_config_errmsg(cfg));
    return -1;
  }
  return 0;
}

/* The configuration key named by an option ("max-attempts" or
 * "max_attempts"), or NULL. */
static const ca_config_key *config_key(const char *key)
{
  const ca_config_key *k;
  char name[64];
  size_t i;

  for (i = 0; key[i] && i < sizeof name - 1; i++)
    name[i] = key[i] == '-' ? '_' : key[i];
  name[i] = '\0';
  for (k = ca_config_keys(); k->name; k++)
    if (strcmp(k->name, name) == 0)
      return k;
  return NULL;
}

/* A boolean configuration key (--allow-exec, --apply): one rule for all of
 * them.  Bare, it means true; --KEY=true|false sets it; so does a next
 * argument that is exactly "true" or "false" (anything else, a policy file
 * name among them, is left alone). */
static int is_flag(const char *key)
{
  const ca_config_key *k = config_key(key);
  return k && k->arg == NULL;
}

static int is_bool_word(const char *s)
{
  return strcmp(s, "true") == 0 || strcmp(s, "false") == 0;
}

/* An unknown option: what it is, the nearest valid option (every option:
 * the configuration keys and chatapp-run's own), and where the list is. */
static int unknown_option(const char *arg, const struct option *longopts)
{
  const ca_config_key *k;
  const char *best = NULL;
  char names[96][64], given[64];
  size_t bestd = 4, n = 0, i;

  if (strncmp(arg, "--", 2) != 0)
    return USAGE_ERROR("unknown option '%s'", arg);
  snprintf(given, sizeof given, "%.*s", (int)strcspn(arg + 2, "="), arg + 2);
  for (i = 0; given[i]; i++)
    if (given[i] == '_')
      given[i] = '-';
  for (k = ca_config_keys(); k->name && n < 96; k++, n++) {
    snprintf(names[n], sizeof names[n], "%s", k->name);
    for (i = 0; names[n][i]; i++)
      if (names[n][i] == '_')
        names[n][i] = '-';
  }
  for (; longopts->name && n < 96; longopts++, n++)
    snprintf(names[n], sizeof names[n], "%s", longopts->name);
  for (i = 0; i < n; i++)
    best = ca_suggest_nearer(given, names[i], best, &bestd);
  if (best)
    return USAGE_ERROR("unknown option '--%s' (did you mean '--%s'?)", given,
                       best);
  return USAGE_ERROR("unknown option '--%s'", given);
}

/* --emulator-tls-cert / -key: a readable regular file (the emulator
 * checks what it holds); 0, or -1 with the reason in err. */
static int check_tls_file(const char *opt, const char *path, char *err,
                          size_t errlen)
{
  struct stat sb;

  if (stat(path, &sb) != 0 || access(path, R_OK) != 0) {
    snprintf(err, errlen, "%s %s: %s", opt, path, strerror(errno));
    return -1;
  }
  if (!S_ISREG(sb.st_mode)) {
    snprintf(err, errlen, "%s %s: not a regular file (give a PEM file)", opt,
             path);
    return -1;
  }
  return 0;
}

static void print_version(void)
{
  printf("chatapp-run %s\n%s\nlibcurl %s\n%s\nSQLite %s\n", chatapp_version(),
         LUA_RELEASE, ca_curl_version(), ca_crypto_version(),
         sqlite3_libversion());
}

int main(int argc, char **argv)
{
  enum {
    O_EMULATOR = 256,
    O_CHECK,
    O_VERSION,
    O_LUA,
    O_DATA,
    O_EVERY,
    O_LISTEN,
    O_HEALTHZ,
    O_EMU_CERT,
    O_EMU_KEY
  };
  static const struct option longopts[] = {
    {"emulator", no_argument, NULL, O_EMULATOR},
    {"dry-run", no_argument, NULL, 'n'},
    {"check", no_argument, NULL, O_CHECK},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, O_VERSION},
    {"lua", no_argument, NULL, O_LUA},
    {"data", required_argument, NULL, O_DATA},
    {"every", required_argument, NULL, O_EVERY},
    {"listen", required_argument, NULL, O_LISTEN},
    {"healthz-max-age", required_argument, NULL, O_HEALTHZ},
    {"emulator-tls-cert", required_argument, NULL, O_EMU_CERT},
    {"emulator-tls-key", required_argument, NULL, O_EMU_KEY},
    {NULL, 0, NULL, 0},
  };
  chatapp_config *cfg = chatapp_config_new();
  chatapp_runtime *rt = NULL;
  ca_emulator *emu = NULL;
  const char *emu_data = NULL; /* --data: the emulator's fixture */
  /* --emulator-tls-cert / -key: the emulator serves HTTPS */
  const char *emu_cert = NULL, *emu_key = NULL;
  ca_watch_opts watch = {0, NULL, 0, 0, EXIT_LOAD};
  int use_emulator = 0, flags = 0, output_set = 0, limiter_set = 0;
  int script = 0;
  int rc = EXIT_USAGE, c, i;
  chatapp_status st;

  if (!cfg) {
    fprintf(stderr, "chatapp-run: out of memory\n");
    return EXIT_USAGE;
  }
  /* chatapp-run state ...: the state file's own tool, in Lua. */
  if (argc > 1 && strcmp(argv[1], "state") == 0) {
    if (set(cfg, "output", "text"))
      goto out;
    if (chatapp_runtime_new(cfg, &rt) != CHATAPP_OK)
      fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    else
      rc = ca_runtime_run_module(rt, "chatapp.state.cli", argc - 2, argv + 2);
    goto out;
  }
  /* chatapp-run test ...: policy tests, offline (docs/testing-policies.md). */
  if (argc > 1 && strcmp(argv[1], "test") == 0) {
    if (set(cfg, "output", "text"))
      goto out;
    if (chatapp_runtime_new(cfg, &rt) != CHATAPP_OK)
      fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    else
      rc = ca_runtime_run_module(rt, "chatapp.testing", argc - 2, argv + 2);
    goto out;
  }
  /* Generic --KEY VALUE options: turn them into config keys first. */
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+nvh", longopts, NULL)) != -1) {
    switch (c) {
    case O_EMULATOR:
      use_emulator = 1;
      break;
    case 'n':
      flags |= CHATAPP_RUN_DRY;
      break;
    case O_CHECK:
      flags |= CHATAPP_RUN_CHECK;
      break;
    case 'v':
      verbosity++;
      break;
    case O_LUA:
      script = 1;
      break;
    case O_DATA:
      emu_data = optarg;
      break;
    case O_EMU_CERT:
      emu_cert = optarg;
      break;
    case O_EMU_KEY:
      emu_key = optarg;
      break;
    case O_EVERY:
    case O_HEALTHZ: {
      long secs = ca_parse_duration(optarg);
      if (secs <= 0) {
        rc = USAGE_ERROR("--%s needs a duration like 60s, 5m or 1h, not '%s'",
                         c == O_EVERY ? "every" : "healthz-max-age", optarg);
        goto out;
      }
      if (c == O_EVERY)
        watch.every_s = secs;
      else
        watch.healthz_max_age_s = secs;
      break;
    }
    case O_LISTEN:
      watch.listen = optarg;
      break;
    case 'h':
      print_usage();
      chatapp_config_free(cfg);
      return EXIT_ALL_WELL;
    case O_VERSION:
      print_version();
      rc = EXIT_ALL_WELL;
      goto out;
    case '?': {
      /* Not one of chatapp-run's own options: a config key (--KEY VALUE,
       * --KEY=VALUE, a boolean key bare or with true|false). */
      const char *arg = argv[optind - 1];
      const char *eq;
      char key[64];
      if (optopt) {
        /* one of chatapp-run's own, misused */
        const struct option *o;
        for (o = longopts; o->name && o->val != optopt; o++)
          ;
        if (!o->name || strncmp(arg, "--", 2) != 0)
          rc = unknown_option(arg, longopts);
        else if (o->has_arg == required_argument)
          rc = USAGE_ERROR("option '--%s' needs a value", o->name);
        else
          rc = USAGE_ERROR("option '--%s' takes no value", o->name);
        goto out;
      }
      if (strncmp(arg, "--", 2) != 0) {
        rc = unknown_option(arg, longopts);
        goto out;
      }
      eq = strchr(arg, '=');
      snprintf(key, sizeof key, "%.*s",
               (int)(eq ? (size_t)(eq - arg - 2) : strlen(arg + 2)), arg + 2);
      if (!config_key(key)) {
        rc = unknown_option(arg, longopts);
        goto out;
      }
      if (!eq && is_flag(key)) {
        int explicit = optind < argc && is_bool_word(argv[optind]);
        if (set(cfg, key, explicit ? argv[optind++] : "true"))
          goto out;
        break;
      }
      if (!eq && optind >= argc) {
        rc = USAGE_ERROR("option '%s' needs a value", arg);
        goto out;
      }
      if (set(cfg, key, eq ? eq + 1 : argv[optind++]))
        goto out;
      output_set |= strcmp(key, "output") == 0;
      limiter_set |= strcmp(key, "limiter") == 0;
      if (strcmp(key, "access-key-secret") == 0 ||
          strcmp(key, "access_key_secret") == 0 ||
          strcmp(key, "security-token") == 0 ||
          strcmp(key, "security_token") == 0) {
        rc = USAGE_ERROR("%s", "secrets are never taken on the command line "
                               "(they would show in ps and shell history); "
                               "use the environment or a profile");
        goto out;
      }
      break;
    }
    default:
      rc = USAGE_ERROR("bad option '%s'", argv[optind - 1]);
      goto out;
    }
  }
  if (optind >= argc) {
    rc = USAGE_ERROR("%s",
                     script ? "--lua needs a script" : "no policy file given");
    goto out;
  }
  if ((watch.listen || watch.healthz_max_age_s) && !watch.every_s) {
    rc = USAGE_ERROR("%s", "--listen and --healthz-max-age need --every "
                           "(they serve a watcher)");
    goto out;
  }
  if (watch.every_s && (script || cfg->replay)) {
    rc = USAGE_ERROR("--every runs policies cycle after cycle: not with %s",
                     script ? "--lua" : "--replay (a recording never changes)");
    goto out;
  }
  if (cfg->lease_s && !ca_redis_is_url(cfg->state)) {
    rc = USAGE_ERROR("%s", "--lease is the leader lease of a state kept in "
                           "Redis: it goes with --state redis://... "
                           "(docs/watch.md)");
    goto out;
  }
  if (cfg->apply && (!cfg->replay || (flags & CHATAPP_RUN_DRY))) {
    rc = USAGE_ERROR("%s", cfg->replay
                             ? "--apply and --dry-run contradict each other"
                             : "--apply goes with --replay FILE (a run "
                               "without --dry-run applies anyway)");
    goto out;
  }
  if (emu_data && !use_emulator && !(flags & CHATAPP_RUN_CHECK)) {
    rc = USAGE_ERROR("%s", "--data needs --emulator or --check (it is the "
                           "emulator's fixture: a JSON file or a folder of "
                           "them; --check runs the policies on its numbers)");
    goto out;
  }
  if ((emu_cert || emu_key) && !use_emulator) {
    rc = USAGE_ERROR("%s", "--emulator-tls-cert and --emulator-tls-key go "
                           "with --emulator (they make the emulator it "
                           "starts serve HTTPS)");
    goto out;
  }
  if (!emu_cert != !emu_key) {
    rc = USAGE_ERROR("%s needs %s too (the emulator serves HTTPS with the "
                     "certificate and its private key)",
                     emu_cert ? "--emulator-tls-cert" : "--emulator-tls-key",
                     emu_cert ? "--emulator-tls-key KEY.pem"
                              : "--emulator-tls-cert CERT.pem");
    goto out;
  }
  if (emu_cert && !(flags & CHATAPP_RUN_CHECK)) {
    char err[600];
    if (check_tls_file("--emulator-tls-cert", emu_cert, err, sizeof err) ||
        check_tls_file("--emulator-tls-key", emu_key, err, sizeof err)) {
      rc = USAGE_ERROR("%s (docs/emulator.md, HTTPS: how to make a "
                       "throwaway CA and certificate)",
                       err);
      goto out;
    }
  }
  if (emu_cert && !cfg->ca_file && !(flags & CHATAPP_RUN_CHECK)) {
    rc = USAGE_ERROR("--emulator-tls-cert %s: the run verifies the "
                     "emulator's certificate like any other: give the CA "
                     "that signed it with --ca-file CA.pem (docs/emulator.md, "
                     "HTTPS, shows how to make a throwaway one)",
                     emu_cert);
    goto out;
  }
  /* --check --data FILE: check the policies against these numbers. */
  if (emu_data && (flags & CHATAPP_RUN_CHECK) &&
      set(cfg, "check_data", emu_data))
    goto out;
  {
    char v[16];
    snprintf(v, sizeof v, "%d", verbosity > 3 ? 3 : verbosity);
    if (set(cfg, "verbose", v))
      goto out;
  }
  /* A watcher logs a line per cycle; the full report only when asked. */
  if (!output_set && set(cfg, "output", watch.every_s ? "none" : "text"))
    goto out;
  chatapp_config_set_log(cfg, log_stderr, NULL);
  {
    /* Files the run replaces: refused now, before any API call. */
    char err[1024];
    if (!script && !(flags & CHATAPP_RUN_CHECK) &&
        (ca_config_check_output_file("--record", cfg->record, err,
                                     sizeof err) ||
         ca_config_check_output_file("--metrics", cfg->metrics, err,
                                     sizeof err))) {
      rc = USAGE_ERROR("%s", err);
      goto out;
    }
  }
  if (!script && install_signals())
    goto out;

  if (use_emulator && !(flags & CHATAPP_RUN_CHECK)) {
    char err[512];
    const char *args[8] = {NULL};
    size_t na = 0;
    sigset_t block, old;
    chatapp_status est;
    /* Signals wait until the handler knows the emulator (it starts one in
     * its own process group, which a signal would otherwise orphan). */
    if (sigemptyset(&block) || sigaddset(&block, SIGINT) ||
        sigaddset(&block, SIGTERM) || sigprocmask(SIG_BLOCK, &block, &old)) {
      fprintf(stderr, "chatapp-run: cannot block signals: %s\n",
              strerror(errno));
      goto out;
    }
    if (verbosity < 2)
      args[na++] = "--quiet";
    if (emu_data) {
      args[na++] = "--data";
      args[na++] = emu_data;
    }
    if (emu_cert) {
      args[na++] = "--tls-cert";
      args[na++] = emu_cert;
      args[na++] = "--tls-key";
      args[na++] = emu_key;
    }
    est = ca_emulator_start(args, &emu, err, sizeof err);
    signal_emu = emu;
    if (sigprocmask(SIG_SETMASK, &old, NULL))
      perror("chatapp-run: cannot unblock signals");
    if (est != CHATAPP_OK) {
      fprintf(stderr, "chatapp-run: --emulator: %s\n", err);
      goto out;
    }
    if (set(cfg, "endpoint", ca_emulator_endpoint(emu)) ||
        set(cfg, "access_key_id", CA_EMULATOR_KEY_ID) ||
        set(cfg, "access_key_secret", CA_EMULATOR_KEY_SECRET) ||
        (!limiter_set && set(cfg, "limiter", "process")))
      goto out;
    if (ca_emulator_export_sink(emu) != 0) {
      perror("chatapp-run: --emulator: " CA_EMULATOR_SINK_ENV);
      goto out;
    }
    if (verbosity)
      fprintf(stderr, "chatapp-run: emulator listening on %s\n",
              ca_emulator_endpoint(emu));
  } else if (use_emulator && ca_emulator_export_sink(NULL) != 0) {
    perror("chatapp-run: --emulator: " CA_EMULATOR_SINK_ENV);
    goto out;
  }

  if (watch.every_s && !(flags & CHATAPP_RUN_CHECK)) {
    watch.flags = flags;
    if (ca_watch_signals() == 0)
      rc = ca_watch(cfg, argv + optind, argc - optind, &watch);
    alarm(0);
    goto out;
  }
  st = chatapp_runtime_new(cfg, &rt);
  if (st) {
    fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
    goto out;
  }
  if (script) {
    rc = ca_runtime_run_script(rt, argv[optind], argc - optind - 1,
                               argv + optind + 1);
    goto out;
  }
  for (i = optind; i < argc; i++) {
    if (chatapp_runtime_load_file(rt, argv[i]) != CHATAPP_OK) {
      fprintf(stderr, "chatapp-run: %s\n", chatapp_runtime_errmsg(rt));
      /* the report of the run that did not happen (--output json: its
       * summary, status "load") */
      ca_runtime_report_failure(rt, "load");
      rc = EXIT_LOAD;
      goto out;
    }
  }
  st = chatapp_runtime_run(rt, flags);
  /* Every failure says what failed, once: the report has logged most (a
   * failing space, action, policy or file) and says so; anything else is
   * printed here. */
  if (st != CHATAPP_OK && !ca_runtime_failure_shown(rt)) {
    const char *msg = chatapp_runtime_errmsg(rt);
    if (!msg || !*msg)
      msg = chatapp_strerror(st);
    fprintf(stderr, "chatapp-run: %s\n", msg);
  }
  switch (st) {
  case CHATAPP_OK:
    rc = EXIT_ALL_WELL;
    break;
  case CHATAPP_EPOLICY:
    /* --check: a policy that fails on the sample numbers is broken like
     * one that does not load (docs/cli.md, "Exit status") */
    rc = (flags & CHATAPP_RUN_CHECK) ? EXIT_LOAD : EXIT_RUN_FAILED;
    break;
  case CHATAPP_ECONFIG:
  case CHATAPP_ECREDENTIALS:
    rc = EXIT_USAGE;
    break;
  default:
    rc = EXIT_RUN_FAILED;
    break;
  }
  {
    int irc = interrupted_status();
    if (irc)
      rc = irc;
  }
out:
  chatapp_runtime_free(rt);
  signal_emu = NULL;
  ca_emulator_stop(emu);
  chatapp_config_free(cfg);
  /* The report on stdout: a full disk is a failure of the run, not a
   * report silently lost (docs/cli.md, "Files"). */
  errno = 0;
  if (fflush(stdout) != 0 || ferror(stdout)) {
    int e = errno; /* 0: an earlier write failed */
    fprintf(stderr,
            "chatapp-run: cannot write the report to standard output: %s\n",
            e ? strerror(e) : "a write failed (a full disk?)");
    if (rc == EXIT_ALL_WELL)
      rc = EXIT_RUN_FAILED;
  }
  return rc;
}
