/* The emulator tests' shared helpers; see harness.h. */
#include "harness.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ca_crypto.h"

extern const char *emu_exe; /* set by each test's main from argv */
const char *emu_exe;
int emu_stderr_to_file;

double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* Remove a temp dir and what is in it. */
static void rm_tree(const char *dir)
{
  if (dir[0])
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char scratch[256];

static void rm_scratch(void)
{
  rm_tree(scratch);
}

const char *scratch_dir(void)
{
  if (!scratch[0]) {
    snprintf(scratch, sizeof scratch, "/tmp/emu-test-XXXXXX");
    if (!mkdtemp(scratch)) {
      perror("mkdtemp");
      exit(2);
    }
    atexit(rm_scratch);
  }
  return scratch;
}

static void remember_run_dir(const char *dir);

int emu_start(emu_proc *p, const char *const *args)
{
  char portfile[320];
  const char *argv[64];
  size_t n = 0;
  double deadline;

  memset(p, 0, sizeof p[0]);
  snprintf(p->dir, sizeof p->dir, "/tmp/emu-run-XXXXXX");
  if (!mkdtemp(p->dir))
    return -1;
  remember_run_dir(p->dir);
  snprintf(portfile, sizeof portfile, "%s/port", p->dir);
  snprintf(p->log_path, sizeof p->log_path, "%s/log.jsonl", p->dir);
  snprintf(p->stderr_path, sizeof p->stderr_path, "%s/stderr.txt", p->dir);
  argv[n++] = emu_exe;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--port-file";
  argv[n++] = portfile;
  argv[n++] = "--log";
  argv[n++] = p->log_path;
  if (!emu_stderr_to_file)
    argv[n++] = "-q";
  while (args && *args && n < 62)
    argv[n++] = *args++;
  argv[n] = NULL;
  fflush(NULL);
  p->pid = fork();
  if (p->pid < 0)
    return -1;
  if (p->pid == 0) {
    if (!freopen("/dev/null", "w", stdout))
      _exit(127);
    if (emu_stderr_to_file && !freopen(p->stderr_path, "w", stderr))
      _exit(127);
    execv(emu_exe, (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  deadline = now_ms() + 10000;
  while (now_ms() < deadline) {
    FILE *f = fopen(portfile, "r");
    int status;
    if (f) {
      unsigned port = 0;
      int ok = fscanf(f, "%u", &port) == 1;
      fclose(f);
      if (ok && port) {
        p->port = port;
        return 0;
      }
    }
    if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
      p->pid = 0;
      return -1;
    }
    sleep_ms(10);
  }
  emu_stop(p);
  return -1;
}

/* Run dirs are removed at exit (tests read a log after the stop). */
static char run_dirs[32][256];
static size_t nrun_dirs;

static void rm_run_dirs(void)
{
  size_t i;
  for (i = 0; i < nrun_dirs; i++)
    rm_tree(run_dirs[i]);
}

static void remember_run_dir(const char *dir)
{
  if (nrun_dirs == 0)
    atexit(rm_run_dirs);
  if (nrun_dirs < sizeof run_dirs / sizeof run_dirs[0])
    snprintf(run_dirs[nrun_dirs++], sizeof run_dirs[0], "%s", dir);
}

int emu_stop(emu_proc *p)
{
  double deadline = now_ms() + 10000;
  int status = 0;

  if (p->pid <= 0)
    return -1;
  kill(p->pid, SIGTERM);
  while (now_ms() < deadline) {
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
      p->pid = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    sleep_ms(10);
  }
  kill(p->pid, SIGKILL);
  waitpid(p->pid, &status, 0);
  p->pid = 0;
  return -1;
}

void http_resp_free(http_resp *r)
{
  free(r->body);
  free(r->headers);
  memset(r, 0, sizeof *r);
}

ca_json_doc *resp_json(const http_resp *r)
{
  return r->body ? ca_json_parse(r->body, r->len, 64, 0, NULL, 0) : NULL;
}

const char *resp_code(const http_resp *r)
{
  /* per thread: test_emu_faults and test_emu_quota call it from 30 threads
   * at once (a shared buffer gave one of them another's half-written or
   * empty code) */
  static _Thread_local char code[128];
  ca_json_doc *d = resp_json(r);
  const char *c = d ? ca_json_get_str(ca_json_root(d), "Code") : NULL;

  snprintf(code, sizeof code, "%s", c ? c : "");
  ca_json_free(d);
  return code;
}

char *resp_header(const http_resp *r, const char *name)
{
  size_t n = strlen(name);
  const char *p = r->headers;

  while (p && *p) {
    const char *eol = strstr(p, "\r\n");
    size_t l = eol ? (size_t)(eol - p) : strlen(p);
    if (l > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
      const char *v = p + n + 1;
      char *out;
      while (*v == ' ')
        v++;
      out = malloc(l - (size_t)(v - p) + 1);
      memcpy(out, v, l - (size_t)(v - p));
      out[l - (size_t)(v - p)] = '\0';
      return out;
    }
    p += l;
    if (*p)
      p += 2;
  }
  return NULL;
}

typedef struct sink {
  ca_buf b;
  size_t max;
} sink;

static size_t on_data(char *d, size_t sz, size_t n, void *ud)
{
  sink *s = ud;
  if (s->b.len + n * sz > s->max)
    return 0; /* abort: over the cap */
  if (ca_buf_add(&s->b, d, n * sz) != CHATAPP_OK)
    return 0;
  return n * sz;
}

static size_t on_header(char *d, size_t sz, size_t n, void *ud)
{
  ca_buf *b = ud;
  (void)ca_buf_add(b, d, n * sz);
  return n * sz;
}

/* Perform a request; fills r. */
static int perform(const char *method, const char *url, struct curl_slist *hdrs,
                   const char *body, size_t body_len, long timeout_ms,
                   size_t max_body, http_resp *r)
{
  CURL *c = curl_easy_init();
  sink s;
  ca_buf h = CA_BUF_INIT(1024 * 1024);
  double t0 = now_ms();

  memset(r, 0, sizeof *r);
  s.max = max_body ? max_body : 16 * 1024 * 1024;
  ca_buf_init(&s.b, 64 * 1024 * 1024);
  if (!c)
    return -1;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms ? timeout_ms : 10000L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    if (strcmp(method, "POST") != 0)
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  }
  r->curl_code = (int)curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  r->seconds = (now_ms() - t0) / 1000.0;
  r->len = s.b.len;
  r->body = s.b.ptr ? ca_buf_steal(&s.b) : calloc(1, 1);
  r->headers = h.ptr ? ca_buf_steal(&h) : calloc(1, 1);
  curl_easy_cleanup(c);
  return 0;
}

int emu_http(const emu_proc *p, const char *method, const char *path,
             const char *body, http_resp *r)
{
  char url[512];
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type:");
  int rc;

  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", p->port, path);
  rc = perform(method, url, h, body, body ? strlen(body) : 0, 10000, 0, r);
  curl_slist_free_all(h);
  return rc;
}

int emu_raw(const emu_proc *p, const char *method, const char *url_path,
            const char *const *headers, const char *body, size_t body_len,
            http_resp *r)
{
  char url[4096];
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type:");
  int rc;

  h = curl_slist_append(h, "Expect:");
  h = curl_slist_append(h, "Accept:");
  while (headers && *headers)
    h = curl_slist_append(h, *headers++);
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", p->port, url_path);
  rc = perform(method, url, h, body, body_len, 10000, 0, r);
  curl_slist_free_all(h);
  return rc;
}

int http_port(unsigned port, const char *method, const char *url_path,
              const char *const *headers, const char *body, size_t body_len,
              long timeout_ms, http_resp *r)
{
  char url[8192];
  struct curl_slist *h = curl_slist_append(NULL, "Expect:");
  int rc;

  h = curl_slist_append(h, "Accept:");
  if (!body)
    h = curl_slist_append(h, "Content-Type:");
  while (headers && *headers)
    h = curl_slist_append(h, *headers++);
  snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, url_path);
  rc = perform(method, url, h, body, body_len, timeout_ms, 0, r);
  curl_slist_free_all(h);
  return rc;
}

/* name=encode(value)&... of kv (wire order = given order). */
static void encode_pairs(ca_buf *b, const ca_kv *kv, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    if (b->len)
      ca_buf_addc(b, '&');
    ca_pct_encode(b, kv[i].key, strlen(kv[i].key));
    ca_buf_addc(b, '=');
    ca_pct_encode(b, kv[i].value, strlen(kv[i].value));
  }
}

int emu_call(const emu_proc *p, const call_opts *o, http_resp *r)
{
  const char *action = o->action ? o->action : QUERY;
  const char *akid = o->akid ? o->akid : KEY_ID;
  const char *secret = o->secret ? o->secret : KEY_SECRET;
  const char *version = o->version ? o->version : "2020-06-06";
  const char *method = o->method ? o->method : "POST";
  char date[21], nonce[33], host[64], url[8192], line[8192];
  ca_buf query = CA_BUF_INIT(1 << 20), body = CA_BUF_INIT(1 << 20);
  struct curl_slist *h = NULL;
  int rc;

  ca_iso8601((long long)time(NULL) + o->ts_offset_s, date);
  if (o->nonce)
    snprintf(nonce, sizeof nonce, "%s", o->nonce);
  else
    ca_nonce(nonce);
  snprintf(host, sizeof host, "127.0.0.1:%u", p->port);
  if (o->form)
    encode_pairs(&body, o->params, o->nparams);
  else
    encode_pairs(&query, o->params, o->nparams);
  h = curl_slist_append(h, "Expect:");
  h = curl_slist_append(h, "Accept: application/json");
  h = curl_slist_append(h, "User-Agent: chatapp-emulator-test/1");
  if (!o->legacy) {
    ca_kv hv[12], *q = calloc(o->nparams + 1, sizeof *q);
    char hash[65];
    ca_v3_input in;
    ca_v3_output out;
    size_t nh = 0, i;

    ca_sha256_hex(body.ptr ? body.ptr : "", body.len, hash);
    hv[nh++] = (ca_kv){"host", o->sign_host ? o->sign_host : host};
    hv[nh++] = (ca_kv){"x-acs-action", action};
    hv[nh++] = (ca_kv){"x-acs-version", version};
    hv[nh++] = (ca_kv){"x-acs-date", date};
    hv[nh++] = (ca_kv){"x-acs-signature-nonce", nonce};
    hv[nh++] = (ca_kv){"x-acs-content-sha256", hash};
    if (o->token) {
      hv[nh++] = (ca_kv){"x-acs-accesskey-id", akid};
      hv[nh++] = (ca_kv){"x-acs-security-token", o->token};
    }
    if (o->form)
      hv[nh++] = (ca_kv){"content-type", "application/x-www-form-urlencoded"};
    for (i = 0; !o->form && i < o->nparams; i++)
      q[i] = o->params[i];
    memset(&in, 0, sizeof in);
    in.method = method;
    in.pathname = "/";
    in.query = q;
    in.nquery = o->form ? 0 : o->nparams;
    in.headers = hv;
    in.nheaders = nh;
    in.body = body.ptr;
    in.body_len = body.len;
    in.access_key_id = akid;
    in.access_key_secret = secret;
    ca_v3_output_init(&out);
    ca_sign_v3(&in, &out);
    if (o->tamper)
      out.authorization.ptr[out.authorization.len - 1] ^= 1;
    for (i = 0; i < nh; i++) {
      snprintf(line, sizeof line, "%s: %s", hv[i].key, hv[i].value);
      h = curl_slist_append(h, line);
    }
    if (!o->form)
      h = curl_slist_append(h, "Content-Type:");
    if (o->unsigned_acs_header)
      h = curl_slist_append(h, "x-acs-extra: not-signed");
    snprintf(line, sizeof line, "Authorization: %s",
             ca_buf_str(&out.authorization));
    h = curl_slist_append(h, line);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/%s%s", p->port,
             query.len ? "?" : "", ca_buf_str(&query));
    ca_v3_output_free(&out);
    free(q);
  } else {
    ca_kv common[10], *all = calloc(o->nparams + 10, sizeof *all);
    ca_rpc_output out;
    ca_buf wire = CA_BUF_INIT(1 << 20);
    size_t nc = 0, i, na = 0;
    char sig[40];

    common[nc++] = (ca_kv){"Action", action};
    common[nc++] = (ca_kv){"Format", "JSON"};
    common[nc++] = (ca_kv){"Version", version};
    common[nc++] = (ca_kv){"Timestamp", date};
    common[nc++] = (ca_kv){"SignatureNonce", nonce};
    common[nc++] = (ca_kv){"SignatureMethod", "HMAC-SHA1"};
    common[nc++] = (ca_kv){"SignatureVersion", "1.0"};
    common[nc++] = (ca_kv){"AccessKeyId", akid};
    if (o->token)
      common[nc++] = (ca_kv){"SecurityToken", o->token};
    for (i = 0; i < nc; i++)
      all[na++] = common[i];
    for (i = 0; i < o->nparams; i++)
      all[na++] = o->params[i];
    ca_rpc_output_init(&out);
    ca_sign_rpc(method, all, na, secret, &out);
    snprintf(sig, sizeof sig, "%s", out.signature);
    if (o->tamper)
      sig[0] = sig[0] == 'A' ? 'B' : 'A';
    encode_pairs(&wire, common, nc);
    if (!o->form && o->nparams) {
      ca_buf_addc(&wire, '&');
      ca_buf_adds(&wire, ca_buf_str(&query));
    }
    ca_buf_adds(&wire, "&Signature=");
    ca_pct_encode(&wire, sig, strlen(sig));
    snprintf(url, sizeof url, "http://127.0.0.1:%u/?%s", p->port,
             ca_buf_str(&wire));
    h = curl_slist_append(h, o->form ? "Content-Type: "
                                       "application/x-www-form-urlencoded"
                                     : "Content-Type:");
    snprintf(line, sizeof line, "x-acs-action: %s", action);
    h = curl_slist_append(h, line);
    ca_rpc_output_free(&out);
    ca_buf_free(&wire);
    free(all);
  }
  if (o->sign_host && !o->legacy) {
    snprintf(line, sizeof line, "Host: %s", o->sign_host);
    h = curl_slist_append(h, line);
  }
  rc =
    perform(method, url, h, body.ptr, body.len, o->timeout_ms, o->max_body, r);
  curl_slist_free_all(h);
  ca_buf_free(&query);
  ca_buf_free(&body);
  return rc;
}

char **read_log(const emu_proc *p, size_t *n)
{
  FILE *f = fopen(p->log_path, "r");
  char **v = NULL, *line = NULL;
  size_t cap = 0, len = 0;
  ssize_t got;

  *n = 0;
  if (!f)
    return NULL;
  while ((got = getline(&line, &len, f)) > 0) {
    if (line[got - 1] == '\n')
      line[got - 1] = '\0';
    if (*n == cap) {
      cap = cap ? 2 * cap : 64;
      v = realloc(v, cap * sizeof *v);
    }
    v[(*n)++] = strdup(line);
  }
  free(line);
  fclose(f);
  return v;
}

void free_lines(char **l, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    free(l[i]);
  free(l);
}

const char *write_temp(const emu_proc *p, const char *name, const char *text)
{
  static char path[512];
  FILE *f;

  snprintf(path, sizeof path, "%s/%s", p ? p->dir : scratch_dir(), name);
  f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
    perror(path);
    exit(2);
  }
  return path;
}

int harness_main(int argc, char **argv, int need, const char *usage,
                 const char *const *args, emu_proc *p)
{
  if (argc < need) {
    fprintf(stderr, "usage: %s %s\n", argv[0], usage);
    return 2;
  }
  emu_exe = argv[1];
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (emu_start(p, args) != 0) {
    fprintf(stderr, "the emulator did not start\n");
    return 1;
  }
  return 0;
}
