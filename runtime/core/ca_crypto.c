#include "ca_crypto.h"

#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

static void to_hex(const unsigned char *in, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

chatapp_status ca_sha256_hex(const void *data, size_t len, char out[65])
{
  unsigned char md[SHA256_DIGEST_LENGTH];

  if (!SHA256(data, len, md))
    return CHATAPP_ENOMEM;
  to_hex(md, sizeof md, out);
  return CHATAPP_OK;
}

chatapp_status ca_sha1_hex(const void *data, size_t len, char out[41])
{
  unsigned char md[SHA_DIGEST_LENGTH];

  if (!SHA1(data, len, md))
    return CHATAPP_ENOMEM;
  to_hex(md, sizeof md, out);
  return CHATAPP_OK;
}

chatapp_status ca_hmac_sha256_hex(const void *key, size_t keylen,
                                  const void *data, size_t len, char out[65])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;

  if (keylen > (size_t)INT_MAX ||
      !HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) ||
      mdlen != SHA256_DIGEST_LENGTH)
    return CHATAPP_ENOMEM;
  to_hex(md, mdlen, out);
  OPENSSL_cleanse(md, sizeof md);
  return CHATAPP_OK;
}

chatapp_status ca_hmac_sha1_b64(const void *key, size_t keylen,
                                const void *data, size_t len, char out[29])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;

  if (keylen > (size_t)INT_MAX ||
      !HMAC(EVP_sha1(), key, (int)keylen, data, len, md, &mdlen) || mdlen != 20)
    return CHATAPP_ENOMEM;
  if (EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen) != 28)
    return CHATAPP_ENOMEM;
  OPENSSL_cleanse(md, sizeof md);
  return CHATAPP_OK;
}

chatapp_status ca_random(void *out, size_t n)
{
  if (n > (size_t)INT_MAX || RAND_bytes(out, (int)n) != 1)
    return CHATAPP_ENOMEM;
  return CHATAPP_OK;
}

chatapp_status ca_nonce(char out[33])
{
  unsigned char r[16];
  chatapp_status st = ca_random(r, sizeof r);

  if (st)
    return st;
  to_hex(r, sizeof r, out);
  return CHATAPP_OK;
}

void ca_wipe(void *p, size_t n)
{
  if (p && n)
    OPENSSL_cleanse(p, n);
}

const char *ca_crypto_version(void)
{
  return OpenSSL_version(OPENSSL_VERSION);
}
