/*
 * host.c: a small C program that embeds the chatapp runtime
 * (docs/embedding.md shows this file; tests/install builds and runs it).
 *
 *   host [ENDPOINT]
 *
 * With ENDPOINT (e.g. http://127.0.0.1:8080, a chatapp-emulator) it runs a
 * policy there as a dry run, in two runtimes at once, one per thread.
 * Without, it only checks the policy and makes no API call.  The AccessKey
 * comes from HOST_ACCESS_KEY_ID / HOST_ACCESS_KEY_SECRET when they are set
 * (passed to the library explicitly), else from the default credential
 * chain (ALIBABA_CLOUD_ACCESS_KEY_ID..., profiles).  Secrets are never put
 * on a command line.
 *
 * Build:  cc host.c $(pkg-config --cflags --libs chatapp) -pthread
 *    or:  find_package(chatapp) and target_link_libraries(... chatapp::chatapp)
 * Exit status: 0 when every check and run went well.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chatapp.h>

/* A policy, as it could be in a file: connected numbers whose quality
 * rating is not GREEN. */
static const char policy_src[] =
  "local chatapp = require 'chatapp'\n"
  "return chatapp.policy {\n"
  "  name = 'quality-watch',\n"
  "  where = { status = chatapp.Status.CONNECTED },\n"
  "  filter = function(n) return n.quality_rating ~= 'GREEN' end,\n"
  "}\n";

/* A policy with a mistake on line 3: there is no field qualty_rating. */
static const char broken_src[] = "local chatapp = require 'chatapp'\n"
                                 "return chatapp.policy { name = 'broken',\n"
                                 "  where = { qualty_rating = 'RED' } }\n";

/* One runtime and what happened to it. */
typedef struct job {
  char tag[8];           /* "A", "B": prefixes its lines */
  const char *endpoint;  /* NULL: check only */
  const char *signature; /* "v3" or "v2" */
  chatapp_runtime *rt;
  chatapp_status status; /* of load + run */
  char message[1024];    /* chatapp_runtime_errmsg(), copied */
} job;

/* The log callback: called in the thread that called into the runtime;
 * ud is the job's tag.  Lines never contain a secret. */
static void log_line(void *ud, int level, const char *line)
{
  fprintf(stderr, "[%s] log %d: %s\n", (const char *)ud, level, line);
}

static int set(chatapp_config *cfg, const char *key, const char *value)
{
  if (chatapp_config_set(cfg, key, value) == CHATAPP_OK)
    return 0;
  fprintf(stderr, "host: %s\n", chatapp_config_errmsg(cfg));
  return -1;
}

/* Create j->rt from a config of its own.  The config is copied by
 * chatapp_runtime_new, so it is freed right after. */
static chatapp_status make_runtime(job *j)
{
  const char *id = getenv("HOST_ACCESS_KEY_ID");
  const char *secret = getenv("HOST_ACCESS_KEY_SECRET");
  chatapp_config *cfg = chatapp_config_new();
  chatapp_status st = CHATAPP_EINVAL;

  if (!cfg)
    return CHATAPP_ENOMEM;
  if ((j->endpoint && set(cfg, "endpoint", j->endpoint)) ||
      (id && set(cfg, "access_key_id", id)) ||
      (secret && set(cfg, "access_key_secret", secret)) ||
      set(cfg, "signature_version", j->signature) ||
      set(cfg, "qps", "5") ||                      /* below the quota of 10 */
      set(cfg, "connect_timeout_ms", "2000") ||    /* timeouts */
      set(cfg, "timeout_ms", "10000") ||           /* one attempt */
      set(cfg, "call_timeout_ms", "30000") ||      /* one call, all attempts */
      set(cfg, "memory_limit_mb", "32") ||         /* sandbox limits */
      set(cfg, "instruction_limit", "10000000") || /* per policy and run */
      set(cfg, "verbose", "1"))
    goto out;
  chatapp_config_set_log(cfg, log_line, j->tag);
  st = chatapp_runtime_new(cfg, &j->rt);
  if (st)
    fprintf(stderr, "host: %s: %s\n", j->tag, chatapp_runtime_errmsg(j->rt));
out:
  chatapp_config_free(cfg);
  return st;
}

/* Load the policy and run it: a dry run with an endpoint, else a check.
 * A pthread start routine, so that two jobs can run at once. */
static void *run_job(void *arg)
{
  job *j = arg;
  int flags = j->endpoint ? CHATAPP_RUN_DRY : CHATAPP_RUN_CHECK;

  j->status = chatapp_runtime_load_string(j->rt, "quality-watch.lua",
                                          policy_src, strlen(policy_src));
  if (j->status == CHATAPP_OK)
    j->status = chatapp_runtime_run(j->rt, flags);
  if (j->status != CHATAPP_OK)
    snprintf(j->message, sizeof j->message, "%s",
             chatapp_runtime_errmsg(j->rt));
  return NULL;
}

static void print_report(const job *j)
{
  size_t i, n = chatapp_runtime_policy_count(j->rt);

  for (i = 0; i < n; i++) {
    chatapp_policy_report r;
    if (chatapp_runtime_policy_report(j->rt, i, &r) != CHATAPP_OK)
      continue;
    printf("%s: policy %s: %zu seen, %zu matched, %zu planned, %zu done, "
           "%zu failed, %zu errors\n",
           j->tag, r.name, r.numbers_seen, r.numbers_matched, r.actions_planned,
           r.actions_done, r.actions_failed, r.errors);
  }
  if (j->status != CHATAPP_OK)
    printf("%s: failed: %s: %s\n", j->tag, chatapp_codename(j->status),
           j->message);
}

int main(int argc, char **argv)
{
  job jobs[2] = {
    {"A", NULL, "v3", NULL, CHATAPP_OK, ""},
    {"B", NULL, "v2", NULL, CHATAPP_OK, ""},
  };
  pthread_t thread;
  chatapp_status st;
  int rc = 0, i;

  /* Destructors accept NULL. */
  chatapp_runtime_free(NULL);
  chatapp_config_free(NULL);

  printf("chatapp %s (header %s)\n", chatapp_version(), CHATAPP_VERSION);
  /* Once, before starting threads that use the library. */
  if (chatapp_global_init() != CHATAPP_OK)
    return 1;
  for (i = 0; i < 2; i++) {
    jobs[i].endpoint = argc > 1 ? argv[1] : NULL;
    if (make_runtime(&jobs[i]) != CHATAPP_OK) {
      rc = 1;
      goto out;
    }
  }

  /* A policy that does not load: the message says where and why. */
  st = chatapp_runtime_load_string(jobs[0].rt, "broken.lua", broken_src,
                                   strlen(broken_src));
  printf("broken.lua: %s: %s\n", chatapp_codename(st),
         chatapp_runtime_errmsg(jobs[0].rt));
  if (st != CHATAPP_EPOLICY)
    rc = 1;

  /* Two runtimes at once: B in a second thread, A in this one.  Each
   * runtime is used by one thread; they share only the rate limit. */
  if (pthread_create(&thread, NULL, run_job, &jobs[1]) != 0) {
    fprintf(stderr, "host: cannot start a thread\n");
    rc = 1;
    goto out;
  }
  run_job(&jobs[0]);
  pthread_join(thread, NULL);

  for (i = 0; i < 2; i++) {
    print_report(&jobs[i]);
    if (jobs[i].status != CHATAPP_OK)
      rc = 1;
  }
out:
  for (i = 0; i < 2; i++)
    chatapp_runtime_free(jobs[i].rt);
  return rc;
}
