#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ca_client.h"

static ca_kv *copy_kv(const ca_kv *kv, size_t n)
{
  ca_kv *r = calloc(n ? n : 1, sizeof *r);
  size_t i;

  if (!r)
    return NULL;
  for (i = 0; i < n; i++) {
    r[i].key = strdup(kv[i].key);
    r[i].value = strdup(kv[i].value);
    if (!r[i].key || !r[i].value) {
      for (;; i--) {
        free((char *)(uintptr_t)r[i].key);
        free((char *)(uintptr_t)r[i].value);
        if (i == 0)
          break;
      }
      free(r);
      return NULL;
    }
  }
  return r;
}

static void free_kv(ca_kv *kv, size_t n)
{
  size_t i;

  for (i = 0; kv && i < n; i++) {
    free((char *)(uintptr_t)kv[i].key);
    free((char *)(uintptr_t)kv[i].value);
  }
  free(kv);
}

static void call_init_out(ca_call *call)
{
  ca_buf_init(&call->body, 0);
  ca_buf_init(&call->url_buf, 1 << 20);
  call->status = CHATAPP_OK;
}

ca_call *ca_call_new_api(const char *operation, const ca_kv *params, size_t n)
{
  ca_call *call = calloc(1, sizeof *call);

  if (!call)
    return NULL;
  call->kind = CA_CALL_API;
  call->operation = strdup(operation);
  call->params = copy_kv(params, n);
  call->nparams = n;
  call->is_write = ca_operation_is_write(operation);
  ca_buf_init(&call->req_body, 0);
  call_init_out(call);
  if (!call->operation || !call->params) {
    ca_call_free(call);
    return NULL;
  }
  return call;
}

ca_call *ca_call_new_http(const char *method, const char *url,
                          const ca_kv *headers, size_t nheaders,
                          const void *body, size_t body_len)
{
  ca_call *call = calloc(1, sizeof *call);

  if (!call)
    return NULL;
  call->kind = CA_CALL_HTTP;
  call->method = strdup(method);
  call->url = strdup(url);
  call->headers = copy_kv(headers, nheaders);
  call->nheaders = nheaders;
  call->is_write = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
  ca_buf_init(&call->req_body, body_len + 1);
  call_init_out(call);
  if (!call->method || !call->url || !call->headers ||
      (body_len && ca_buf_add(&call->req_body, body, body_len))) {
    ca_call_free(call);
    return NULL;
  }
  return call;
}

void ca_call_free(ca_call *call)
{
  if (!call)
    return;
  free(call->operation);
  free_kv(call->params, call->nparams);
  free(call->method);
  free(call->url);
  free_kv(call->headers, call->nheaders);
  ca_buf_free(&call->req_body);
  ca_envelope_free(&call->env);
  ca_buf_free(&call->body);
  ca_buf_free(&call->url_buf);
  if (call->easy)
    curl_easy_cleanup(call->easy);
  curl_slist_free_all(call->slist);
  free(call);
}
