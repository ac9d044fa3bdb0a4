/* Answer classification, the envelope reader and the operation table. */
#include <string.h>

#include "ca_api.h"
#include "test.h"

int main(void)
{
  ca_envelope env;
  char err[128];
  const char *body =
    "{\"RequestId\":\"R1\",\"HostId\":\"cams.ap-southeast-1.aliyuncs.com\","
    "\"Code\":\"Throttling.User\",\"Message\":\"Request was denied due to "
    "user flow control.\",\"Recommend\":\"https://x\",\"PhoneNumbers\":"
    "[{\"a\":1}]}";

  /* classification: Code first, then HTTP status */
  CHECK(ca_classify_answer(200, "OK") == CA_ANSWER_OK);
  CHECK(ca_classify_answer(500, "OK") == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(400, "Throttling.User") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(400, "Throttling.Api") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(400, "Throttling") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(400, "System.LimitControl") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(200, "Throttling.User") == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(503, "ServiceUnavailable") == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(500, "InternalError") == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(400, "SignatureNonceUsed") == CA_ANSWER_NONCE);
  CHECK(ca_classify_answer(400, "SignatureDoesNotMatch") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(404, "InvalidAccessKeyId.NotFound") ==
        CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(400, "InvalidParameter") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(403, "Forbidden.RAM") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(200, "Ram.PermissionDeny") == CA_ANSWER_FINAL);
  CHECK(ca_classify_answer(502, NULL) == CA_ANSWER_TRANSIENT);
  CHECK(ca_classify_answer(429, NULL) == CA_ANSWER_THROTTLED);
  CHECK(ca_classify_answer(404, NULL) == CA_ANSWER_FINAL);

  /* the envelope */
  CHECK(ca_envelope_parse(body, strlen(body), &env, err, sizeof err) ==
        CHATAPP_OK);
  CHECK_STR(env.code, "Throttling.User");
  CHECK_STR(env.request_id, "R1");
  CHECK_STR(env.recommend, "https://x");
  CHECK(env.access_denied_detail == NULL);
  ca_envelope_free(&env);
  CHECK(ca_envelope_parse("[1]", 3, &env, err, sizeof err) == CHATAPP_EPARSE);
  CHECK(ca_envelope_parse("{\"Code\":", 8, &env, err, sizeof err) ==
        CHATAPP_EPARSE);
  CHECK(strstr(err, "line 1") != NULL);
  CHECK(ca_envelope_parse("{\"code\":\"OK\"}", 13, &env, err, sizeof err) ==
        CHATAPP_OK);
  CHECK_STR(env.code, "OK");
  ca_envelope_free(&env);

  /* operations */
  CHECK(ca_operation_qps("QueryChatappPhoneNumbers") == 10);
  CHECK(ca_operation_qps("GetWhatsappHealthStatus") == 5);
  CHECK(ca_operation_qps("GetChatappPhoneNumberMetric") == 50);
  CHECK(ca_operation_qps("NoSuchOperation") == CA_QPS_UNSTATED);
  CHECK(ca_operation_qps("GetWhatsappUserName") == CA_QPS_UNSTATED);
  CHECK(!ca_operation_is_write("QueryChatappPhoneNumbers"));
  CHECK(ca_operation_is_write("UpdatePhoneWebhook"));
  CHECK(ca_operation_is_write("NoSuchOperation"));
  CHECK(ca_error_hint("SignatureDoesNotMatch") != NULL);
  CHECK(ca_error_hint("InvalidTimeStamp.Expired") != NULL);
  CHECK(ca_error_hint("Whatever") == NULL);
  return test_report("test_api");
}
