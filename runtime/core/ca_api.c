#include "ca_api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca_json.h"

/*
 * Phone-number operations of CAMS 2020-06-06 (docs/internals/operations.md,
 * from the SDK metadata).  qps 0 means the documentation does not say.
 */
static const ca_operation operations[] = {
  /* reads */
  {"QueryChatappPhoneNumbers", 0, 10},
  {"ChatappSyncPhoneNumber", 0, 10},
  {"GetWhatsappHealthStatus", 0, 5},
  {"GetChatappPhoneNumberMetric", 0, 50},
  {"GetChatappPhoneNumberSetting", 0, 0},
  {"GetPhoneNumberVerificationStatus", 0, 10},
  {"QueryPhoneBusinessProfile", 0, 10},
  {"GetPhoneEncryptionPublicKey", 0, 5},
  {"GetConversationalAutomation", 0, 5},
  {"GetCommerceSetting", 0, 10},
  {"ListPhoneMessageQrdl", 0, 5},
  {"GetWhatsappUserName", 0, 0},
  {"GetWhatsappUserNameSuggestions", 0, 0},
  {"QueryChatappBindWaba", 0, 10},
  {"QueryWabaBusinessInfo", 0, 10},
  {"ListChatappMessage", 0, 0},
  {"GetPreValidatePhoneId", 0, 10},
  /* writes */
  {"UpdatePhoneWebhook", 1, 10},
  {"UpdateAccountWebhook", 1, 10},
  {"EnableWhatsappROIMetric", 1, 5},
  {"ModifyPhoneBusinessProfile", 1, 10},
  {"UpdatePhoneEncryptionPublicKey", 1, 5},
  {"UpdateConversationalAutomation", 1, 5},
  {"UpdateCommerceSetting", 1, 10},
  {"CreatePhoneMessageQrdl", 1, 5},
  {"UpdatePhoneMessageQrdl", 1, 5},
  {"DeletePhoneMessageQrdl", 1, 5},
  {"UpdateWhatsappUserName", 1, 0},
  {"DeleteWhatsappUserName", 1, 0},
  {"FlowBindPhone", 1, 0},
  {"FlowUnbindPhone", 1, 0},
  {"FlowRebindPhone", 1, 0},
  {"AddChatappPhoneNumber", 1, 10},
  {"GetChatappVerifyCode", 1, 10},
  {"ChatappVerifyAndRegister", 1, 10},
  {"ChatappPhoneNumberRegister", 1, 10},
  {"ChatappPhoneNumberDeregister", 1, 10},
  {"CreateChatappMigrationInitiate", 1, 10},
  {"GetMigrationVerifyCode", 1, 10},
  {"ChatappMigrationVerified", 1, 10},
  {"ChatappMigrationRegister", 1, 10},
  {"SubmitVerifyCodeResult", 1, 0},
  {NULL, 0, 0},
};

const ca_operation *ca_operation_table(void)
{
  return operations;
}

const ca_operation *ca_operation_find(const char *name)
{
  const ca_operation *op;

  for (op = operations; op->name; op++)
    if (strcmp(op->name, name) == 0)
      return op;
  return NULL;
}

int ca_operation_qps(const char *name)
{
  const ca_operation *op = ca_operation_find(name);
  return op && op->qps ? op->qps : CA_QPS_UNSTATED;
}

int ca_operation_is_write(const char *name)
{
  const ca_operation *op = ca_operation_find(name);
  return op ? op->is_write : 1;
}

static char *dup_member(const ca_json *o, const char *key, const char *alt)
{
  const char *s = ca_json_get_str(o, key);

  if (!s && alt)
    s = ca_json_get_str(o, alt);
  return s ? strdup(s) : NULL;
}

chatapp_status ca_envelope_parse(const char *body, size_t len, ca_envelope *env,
                                 char *err, size_t errlen)
{
  ca_json_doc *doc;
  const ca_json *root;

  memset(env, 0, sizeof *env);
  doc = ca_json_parse(body, len, 512, CA_JSON_SHALLOW, err, errlen);
  if (!doc)
    return CHATAPP_EPARSE;
  root = ca_json_root(doc);
  if (root->type != CA_JSON_OBJECT) {
    snprintf(err, errlen, "the answer is JSON but not an object");
    ca_json_free(doc);
    return CHATAPP_EPARSE;
  }
  /* Alibaba gateways write Code; some SDK paths read code as well. */
  env->code = dup_member(root, "Code", "code");
  env->message = dup_member(root, "Message", "message");
  env->request_id = dup_member(root, "RequestId", "requestId");
  env->host_id = dup_member(root, "HostId", NULL);
  env->recommend = dup_member(root, "Recommend", NULL);
  env->access_denied_detail = dup_member(root, "AccessDeniedDetail", NULL);
  ca_json_free(doc);
  return CHATAPP_OK;
}

void ca_envelope_free(ca_envelope *env)
{
  if (!env)
    return;
  free(env->code);
  free(env->message);
  free(env->request_id);
  free(env->host_id);
  free(env->recommend);
  free(env->access_denied_detail);
  memset(env, 0, sizeof *env);
}

int ca_is_throttle_code(const char *code)
{
  return code && (strncmp(code, "Throttling", 10) == 0 ||
                  strcmp(code, "System.LimitControl") == 0);
}

ca_answer_class ca_classify_answer(long http_status, const char *code)
{
  if (code) {
    if (strcmp(code, "OK") == 0)
      return http_status >= 200 && http_status < 300 ? CA_ANSWER_OK
                                                     : CA_ANSWER_TRANSIENT;
    if (ca_is_throttle_code(code))
      return CA_ANSWER_THROTTLED;
    if (strcmp(code, "SignatureNonceUsed") == 0)
      return CA_ANSWER_NONCE;
    if (strcmp(code, "ServiceUnavailable") == 0 ||
        strcmp(code, "InternalError") == 0 ||
        strcmp(code, "InternalError.System") == 0)
      return CA_ANSWER_TRANSIENT;
    return CA_ANSWER_FINAL;
  }
  /* No Code in the body: go by the HTTP status. */
  if (http_status == 429)
    return CA_ANSWER_THROTTLED;
  if (http_status >= 500)
    return CA_ANSWER_TRANSIENT;
  return CA_ANSWER_FINAL;
}

const char *ca_error_hint(const char *code)
{
  static const struct {
    const char *prefix;
    const char *hint;
  } hints[] = {
    {"SignatureDoesNotMatch",
     "check the AccessKey secret; run with -vvv to compare the string to "
     "sign with the server's"},
    {"IncompleteSignature", "this is a bug in chatapp-run; please report it"},
    {"InvalidAccessKeyId", "check the AccessKey id and that it is enabled"},
    {"InvalidTimeStamp", "the system clock is off; sync it (e.g. with NTP)"},
    {"InvalidSecurityToken", "the STS token expired or does not match the "
                             "AccessKey; get fresh STS credentials"},
    {"MissingSecurityToken", "STS AccessKeys need their security token"},
    {"Forbidden.RAM", "grant the RAM user the cams action it needs"},
    {"Ram.PermissionDeny", "grant the RAM user the cams action it needs"},
    {"Product.Unsubscript", "activate Chat App Message Service first"},
    {"Unknown.ResourceOwnerId",
     "the CustSpaceId does not belong to this account (check the spaces "
     "file)"},
    {"InvalidAction.NotFound", "check the operation name"},
    {"MissingParameter", "add the required parameter"},
    {"InvalidParameter", "check the parameter values"},
    {NULL, NULL},
  };
  size_t i;

  if (!code)
    return NULL;
  for (i = 0; hints[i].prefix; i++)
    if (strncmp(code, hints[i].prefix, strlen(hints[i].prefix)) == 0)
      return hints[i].hint;
  return NULL;
}
