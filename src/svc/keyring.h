/*
 * Other servers' signing keys (spec: Server-Server API "Retrieving server
 * keys"): what federation request signatures and event signatures are
 * checked against. A key is looked up in memory, then in the database
 * (store/server_keys.c), then fetched from the server's own
 * /_matrix/key/v2/server through svc/fedclient. A fetched response is
 * trusted only when it names the server and is signed by every key in its
 * verify_keys; its valid_until_ts is capped at 7 days ahead (spec, for
 * room versions 5 and up; applied to all). Fetches of one server are
 * spaced by at least a minute, so requests with unknown key IDs cannot
 * make us hammer it.
 */
#ifndef MYELIN_SVC_KEYRING_H
#define MYELIN_SVC_KEYRING_H

#include <jansson.h>
#include <stdint.h>

#include "core/keys.h"

struct keyring;
struct fedclient;
struct store_conn;

struct keyring *keyring_new(struct fedclient *fc, const char *own_name,
                            const struct signing_key *own);
void keyring_free(struct keyring *kr);

/*
 * The public key `key_id` of `server` as trusted at `at_ms` (a current key
 * valid until then or later, or an old key that expired after it). Our
 * own key answers from memory. May block on a fetch. Returns 0, or
 * -ERR_NOT_FOUND when no trusted key can be had.
 */
int keyring_get(struct keyring *kr, struct store_conn *db, const char *server,
                const char *key_id, int64_t at_ms, unsigned char pk[KEYS_PUBLIC_BYTES]);

/*
 * Checks a /_matrix/key/v2/server response for `server` (its name, and
 * a valid signature by each of its verify_keys). Returns 0 or
 * -ERR_UNAUTHORIZED.
 */
int keyring_check_response(const json_t *resp, const char *server);

/*
 * The signed key responses known for `server` that are valid until at
 * least `min_valid_ms` (fetching a fresh one when none is), appended to
 * `out` (new references). For notary answers. Returns 0 or a negative
 * ERR_*.
 */
int keyring_responses(struct keyring *kr, struct store_conn *db, const char *server,
                      int64_t min_valid_ms, json_t *out);

#endif
