/*
 * emu_ops.c: the CAMS operations the emulator answers, over emu_data.
 *
 *   QueryChatappPhoneNumbers   CustSpaceId, IsvCode, Status (filter)
 *   ChatappSyncPhoneNumber     CustSpaceId*            same list as Query
 *   UpdatePhoneWebhook         CustSpaceId*, PhoneNumber*, UpCallbackUrl,
 *                              StatusCallbackUrl, HttpFlag, QueueFlag
 *   GetPhoneNumberVerificationStatus  CustSpaceId*, PhoneNumber*
 *
 * Other documented phone operations answer InvalidAction.NotFound with a
 * message saying the emulator does not implement them.  Called with
 * emu.lock held, after the call passed verification and the quota.
 */
#include "emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const documented[] = {
  "QueryChatappPhoneNumbers",
  "ChatappSyncPhoneNumber",
  "UpdatePhoneWebhook",
  "GetPhoneNumberVerificationStatus",
  "GetWhatsappHealthStatus",
  "GetChatappPhoneNumberMetric",
  "EnableWhatsappROIMetric",
  "GetChatappPhoneNumberSetting",
  "QueryPhoneBusinessProfile",
  "GetPhoneEncryptionPublicKey",
  "GetConversationalAutomation",
  "GetCommerceSetting",
  "ListPhoneMessageQrdl",
  "GetWhatsappUserName",
  "GetWhatsappUserNameSuggestions",
  "QueryChatappBindWaba",
  "QueryWabaBusinessInfo",
  "ListChatappMessage",
  "UpdateAccountWebhook",
  "ModifyPhoneBusinessProfile",
  "UpdatePhoneEncryptionPublicKey",
  "UpdateConversationalAutomation",
  "UpdateCommerceSetting",
  "CreatePhoneMessageQrdl",
  "UpdatePhoneMessageQrdl",
  "DeletePhoneMessageQrdl",
  "UpdateWhatsappUserName",
  "DeleteWhatsappUserName",
  "FlowBindPhone",
  "FlowUnbindPhone",
  "FlowRebindPhone",
  "AddChatappPhoneNumber",
  "GetChatappVerifyCode",
  "ChatappVerifyAndRegister",
  "ChatappPhoneNumberRegister",
  "ChatappPhoneNumberDeregister",
  "GetPreValidatePhoneId",
  "CreateChatappMigrationInitiate",
  "GetMigrationVerifyCode",
  "ChatappMigrationVerified",
  "ChatappMigrationRegister",
  "SubmitVerifyCodeResult",
  NULL,
};

typedef void (*op_fn)(emu *e, const emu_kvs *p, const char *account,
                      const char *rid, emu_answer *a);

static void op_query(emu *, const emu_kvs *, const char *, const char *,
                     emu_answer *);
static void op_sync(emu *, const emu_kvs *, const char *, const char *,
                    emu_answer *);
static void op_update_webhook(emu *, const emu_kvs *, const char *,
                              const char *, emu_answer *);
static void op_verification(emu *, const emu_kvs *, const char *, const char *,
                            emu_answer *);

static const struct {
  const char *name;
  op_fn fn;
} ops[] = {
  {"QueryChatappPhoneNumbers", op_query},
  {"ChatappSyncPhoneNumber", op_sync},
  {"UpdatePhoneWebhook", op_update_webhook},
  {"GetPhoneNumberVerificationStatus", op_verification},
  {NULL, NULL},
};

int emu_ops_known(const char *op)
{
  size_t i;

  for (i = 0; op && ops[i].name; i++)
    if (strcmp(ops[i].name, op) == 0)
      return 1;
  return 0;
}

int emu_ops_documented(const char *op)
{
  size_t i;

  for (i = 0; op && documented[i]; i++)
    if (strcmp(documented[i], op) == 0)
      return 1;
  return 0;
}

void emu_ops_run(emu *e, const char *op, const emu_kvs *params,
                 const char *account, const char *rid, emu_answer *a)
{
  size_t i;

  for (i = 0; ops[i].name; i++) {
    if (strcmp(ops[i].name, op) == 0) {
      ops[i].fn(e, params, account, rid, a);
      return;
    }
  }
  emu_answer_error(a, 404, "InvalidAction.NotFound",
                   "Specified api is not found, please check your url and "
                   "method.",
                   rid);
}

/* The envelope's start: {"RequestId":...,"Code":"OK","Message":"SUCCESS" */
static chatapp_status ok_begin(emu_answer *a, const char *rid)
{
  a->status = 200;
  snprintf(a->code, sizeof a->code, "OK");
  ca_buf_reset(&a->body);
  return ca_buf_printf(&a->body,
                       "{\"RequestId\":\"%s\",\"Code\":\"OK\","
                       "\"Message\":\"SUCCESS\"",
                       rid);
}

static void oom(emu_answer *a, const char *rid)
{
  emu_answer_error(a, 500, "InternalError",
                   "The request processing has failed due to some unknown "
                   "error (the answer is too large or memory ran out).",
                   rid);
}

/* A required, non-empty parameter; NULL after answering MissingParameter. */
static const char *need(const emu_kvs *p, const char *name, emu_answer *a,
                        const char *rid)
{
  const char *v = emu_kvs_get(p, name);
  char msg[200];

  if (v && *v)
    return v;
  snprintf(msg, sizeof msg,
           "The input parameter \"%s\" that is mandatory for processing "
           "this request is not supplied.",
           name);
  emu_answer_error(a, 400, "MissingParameter", msg, rid);
  return NULL;
}

/* The space of a call, or NULL after answering the error. */
static emu_space *space_of(emu *e, const char *id, const char *account,
                           emu_answer *a, const char *rid)
{
  emu_space *s = emu_data_space(&e->data, id, account);

  if (!s && id && *id)
    emu_answer_error(a, 400, "Unknown.ResourceOwnerId",
                     "The resource does not belong to the current user.", rid);
  return s;
}

static void list_numbers(emu_space *s, const char *status, emu_answer *a,
                         const char *rid)
{
  chatapp_status st = ok_begin(a, rid);
  size_t i, k = 0;

  if (!st)
    st = ca_buf_adds(&a->body, ",\"PhoneNumbers\":[");
  for (i = 0; s && i < s->nnumbers && !st; i++) {
    const emu_number *n = &s->numbers[i];
    if (status && *status && !(n->status && strcmp(n->status, status) == 0))
      continue;
    if (k++)
      st = ca_buf_addc(&a->body, ',');
    if (!st)
      st = emu_number_json(n, &a->body);
  }
  if (!st)
    st = ca_buf_adds(&a->body, "],\"AccessDeniedDetail\":\"None\"}");
  if (st)
    oom(a, rid);
}

static void op_query(emu *e, const emu_kvs *p, const char *account,
                     const char *rid, emu_answer *a)
{
  const char *id = emu_kvs_get(p, "CustSpaceId");
  const char *isv = emu_kvs_get(p, "IsvCode");
  emu_space *s = space_of(e, id, account, a, rid);

  if (!s && id && *id)
    return;
  if (s && s->isv_code && !(isv && strcmp(isv, s->isv_code) == 0)) {
    emu_answer_error(a, 400, "Ram.PermissionDeny",
                     "You are not authorized to perform the operation.", rid);
    return;
  }
  list_numbers(s, emu_kvs_get(p, "Status"), a, rid);
}

static void op_sync(emu *e, const emu_kvs *p, const char *account,
                    const char *rid, emu_answer *a)
{
  const char *id = need(p, "CustSpaceId", a, rid);
  emu_space *s = id ? space_of(e, id, account, a, rid) : NULL;

  if (s)
    list_numbers(s, NULL, a, rid);
}

static int is_flag(const char *v)
{
  return !v || strcmp(v, "Y") == 0 || strcmp(v, "N") == 0;
}

static int is_url(const char *v)
{
  return !v || !*v || strncmp(v, "http://", 7) == 0 ||
         strncmp(v, "https://", 8) == 0;
}

/* The number a call names, or NULL after answering the error. */
static emu_number *number_of(emu *e, const emu_kvs *p, const char *account,
                             const char *rid, emu_answer *a)
{
  const char *id = need(p, "CustSpaceId", a, rid);
  const char *phone = id ? need(p, "PhoneNumber", a, rid) : NULL;
  emu_space *s = phone ? space_of(e, id, account, a, rid) : NULL;
  emu_number *n = s ? emu_space_number(s, phone) : NULL;
  char msg[300];

  if (s && !n) {
    snprintf(msg, sizeof msg,
             "The specified PhoneNumber \"%.64s\" does not exist in space "
             "\"%.64s\".",
             phone, id);
    emu_answer_error(a, 400, "InvalidParameter", msg, rid);
  }
  return n;
}

static void op_update_webhook(emu *e, const emu_kvs *p, const char *account,
                              const char *rid, emu_answer *a)
{
  const char *up = emu_kvs_get(p, "UpCallbackUrl");
  const char *stu = emu_kvs_get(p, "StatusCallbackUrl");
  const char *http = emu_kvs_get(p, "HttpFlag");
  const char *queue = emu_kvs_get(p, "QueueFlag");
  emu_number *n = number_of(e, p, account, rid, a);
  chatapp_status st = CHATAPP_OK;
  char q[128], buf[256];

  if (!n)
    return;
  if (!is_flag(http) || !is_flag(queue)) {
    emu_answer_error(a, 400, "InvalidParameter",
                     "HttpFlag and QueueFlag are \"Y\" or \"N\".", rid);
    return;
  }
  if (!is_url(up) || !is_url(stu)) {
    emu_answer_error(a, 400, "InvalidParameter",
                     "UpCallbackUrl and StatusCallbackUrl are http:// or "
                     "https:// URLs.",
                     rid);
    return;
  }
  if (http && strcmp(http, "N") == 0) {
    st = emu_number_set_str(n, "UpCallbackUrl", "");
    if (!st)
      st = emu_number_set_str(n, "StatusCallbackUrl", "");
  } else {
    if (up)
      st = emu_number_set_str(n, "UpCallbackUrl", up);
    if (!st && stu)
      st = emu_number_set_str(n, "StatusCallbackUrl", stu);
  }
  if (!st && queue && strcmp(queue, "N") == 0) {
    st = emu_number_set_str(n, "UpQueue", "");
    if (!st)
      st = emu_number_set_str(n, "StatusQueue", "");
  } else if (!st && queue) {
    const char *cur = emu_number_str(n, "UpQueue", buf, sizeof buf);
    if (!cur || !*cur) {
      snprintf(q, sizeof q, "Alicom-Queue-%s-ChatAppInbound", account);
      st = emu_number_set_str(n, "UpQueue", q);
    }
    cur = st ? NULL : emu_number_str(n, "StatusQueue", buf, sizeof buf);
    if (!st && (!cur || !*cur)) {
      snprintf(q, sizeof q, "Alicom-Queue-%s-ChatAppStatus", account);
      st = emu_number_set_str(n, "StatusQueue", q);
    }
  }
  if (!st)
    st = ok_begin(a, rid);
  if (!st)
    st = ca_buf_addc(&a->body, '}');
  if (st)
    oom(a, rid);
}

static void op_verification(emu *e, const emu_kvs *p, const char *account,
                            const char *rid, emu_answer *a)
{
  emu_number *n = number_of(e, p, account, rid, a);
  char cvs[128];
  const char *v;
  chatapp_status st;

  if (!n)
    return;
  v = emu_number_str(n, "CodeVerificationStatus", cvs, sizeof cvs);
  st = ok_begin(a, rid);
  if (!st)
    st = ca_buf_adds(&a->body, ",\"Data\":{\"Id\":");
  if (!st)
    st = emu_json_strz(&a->body, n->phone);
  if (!st)
    st = ca_buf_adds(&a->body, ",\"PhoneNumber\":");
  if (!st)
    st = emu_json_strz(&a->body, n->phone);
  if (!st)
    st = ca_buf_adds(&a->body, ",\"CodeVerificationStatus\":");
  if (!st)
    st = emu_json_strz(&a->body, v);
  if (!st)
    st = ca_buf_adds(&a->body, "}}");
  if (st)
    oom(a, rid);
}
