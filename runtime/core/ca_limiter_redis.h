/*
 * The Redis back end of ca_limiter (ca_limiter_redis.c): the same windows
 * and adaptive factors as the host-local limiter, kept in one Redis server
 * for every host of an account.  Used through ca_limiter.h only.
 */
#ifndef CA_LIMITER_REDIS_H
#define CA_LIMITER_REDIS_H

#include <stdint.h>

#include "ca_buf.h"
#include "ca_limiter.h"

typedef struct ca_limiter_redis ca_limiter_redis;

/* Connect to url now (ca_redis_open); window_us is W.  On failure err
 * names the server and says what to do. */
chatapp_status ca_limiter_redis_new(const char *url, int64_t window_us,
                                    ca_limiter_redis **out, ca_buf *err);
void ca_limiter_redis_free(ca_limiter_redis *r);

/* 1 granted, 0 wait until *retry_at_us, -1 no answer from Redis (retry at
 * *retry_at_us; ca_limiter_redis_error says why). */
int ca_limiter_redis_acquire(ca_limiter_redis *r, const char *key, int n,
                             int64_t now_us, int64_t *retry_at_us,
                             double *factor);
void ca_limiter_redis_throttled(ca_limiter_redis *r, const char *key,
                                int64_t now_us);
double ca_limiter_redis_factor(ca_limiter_redis *r, const char *key,
                               int64_t now_us);
const char *ca_limiter_redis_error(const ca_limiter_redis *r);
const char *ca_limiter_redis_where(const ca_limiter_redis *r);
void ca_limiter_redis_stats(const ca_limiter_redis *r, int64_t now_us,
                            ca_limiter_stats *out);

#endif
