/*
 * Access tokens: minting, hashing, and authenticating requests.
 *
 * Tokens are 32 random bytes (URL-safe base64, prefixed "myt_"); only
 * their SHA-256 is stored. Every authenticated request looks its token up,
 * so lookups are served from an in-memory cache keyed by the hash and
 * filled from the database on a miss; logout, device deletion and
 * deactivation evict entries before they return, so a revoked token is
 * refused on the very next request.
 */
#ifndef MYELIN_SVC_AUTH_H
#define MYELIN_SVC_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "http/req.h"

struct auth_cache;

struct auth_cache *auth_cache_new(void);
void auth_cache_free(struct auth_cache *c);

/* Evicts one token by hash, every token of a device, or of a user. */
void auth_cache_evict_hash(struct auth_cache *c, const char *token_hash);
void auth_cache_evict_device(struct auth_cache *c, const char *user_id, const char *device_id);
void auth_cache_evict_user(struct auth_cache *c, const char *user_id);

/* Hex SHA-256 of a token into `out` (65 bytes). */
void auth_token_hash(const char *token, char out[65]);

/*
 * Mints an access token for (user, device) and stores it; with `refresh`,
 * also a refresh token, and the access token then expires after
 * AUTH_REFRESHABLE_LIFETIME_MS. Strings are allocated in `arena`;
 * *refresh_token is NULL without `refresh`. *expires_in_ms is 0 when the
 * token does not expire.
 */
int auth_issue_tokens(struct req *r, const char *user_id, const char *device_id, bool refresh,
                      char **access_token, char **refresh_token, int64_t *expires_in_ms);

#define AUTH_REFRESHABLE_LIFETIME_MS (5 * 60 * 1000)

/*
 * Authenticates `r` for its route's auth kind (dispatcher use): reads the
 * token from "Authorization: Bearer" or the access_token query parameter,
 * resolves it, and fills r->auth. Returns 0, or the negative ERR_* after
 * setting the Matrix error (M_MISSING_TOKEN, M_UNKNOWN_TOKEN with
 * soft_logout for expired tokens, M_FORBIDDEN for guests or non-admins).
 */
int auth_request(struct req *r);

/* A new random device ID (10 upper-case letters), in the arena. */
char *auth_new_device_id(struct arena *arena);

#endif
