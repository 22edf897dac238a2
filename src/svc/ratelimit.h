/*
 * Request rate limiting: a token bucket per (route class, caller), the
 * caller being the user when authenticated and the client address
 * otherwise. Exceeding a bucket answers 429 M_LIMIT_EXCEEDED with
 * retry_after_ms (and a Retry-After header). Server admins are exempt;
 * `rate_limits.enabled: false` turns it all off.
 */
#ifndef MYELIN_SVC_RATELIMIT_H
#define MYELIN_SVC_RATELIMIT_H

#include <stdint.h>

#include "http/req.h"

struct ratelimit;

struct ratelimit *ratelimit_new(void);
void ratelimit_free(struct ratelimit *rl);

/* Dispatcher use: 0 when the request may proceed, else the 429 error. */
int ratelimit_check(struct req *r);

/*
 * Takes one token from the bucket (klass, key) at time now_ms. Returns 0,
 * or the milliseconds until a token is available. Exposed for tests.
 */
int64_t ratelimit_take(struct ratelimit *rl, int klass, const char *key, int64_t now_ms);

#endif
