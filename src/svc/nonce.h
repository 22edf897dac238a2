/*
 * Single-use nonces with a short lifetime, for shared-secret registration
 * (the admin API's GET/POST /_synapse/admin/v1/register). The set lives in
 * memory on struct srv: a restart forgets outstanding nonces, which only
 * costs a client one more GET.
 */
#ifndef MYELIN_SVC_NONCE_H
#define MYELIN_SVC_NONCE_H

#include <stdbool.h>
#include <stdint.h>

#define NONCE_TTL_MS (60 * 1000)
#define NONCE_MAX_OUTSTANDING 10000
#define NONCE_HEX_LEN 32

struct nonces;

struct nonces *nonces_new(void);
void nonces_free(struct nonces *n);

/*
 * Issues a fresh random nonce valid until now_ms + NONCE_TTL_MS and writes
 * it into `out` (NONCE_HEX_LEN hex digits and a NUL). Expired nonces are
 * dropped first; past NONCE_MAX_OUTSTANDING the oldest is forgotten.
 */
void nonces_issue(struct nonces *n, int64_t now_ms, char out[NONCE_HEX_LEN + 1]);

/*
 * Consumes `nonce`: true when it was issued and has not expired or been
 * taken before. Either way it can never be taken again.
 */
bool nonces_take(struct nonces *n, const char *nonce, int64_t now_ms);

#endif
