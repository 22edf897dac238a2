/*
 * Hashes, identifiers and signatures of PDUs (Server-Server API "Signing
 * Events": "Calculating the content hash", "Calculating the reference
 * hash", "Adding hashes and signatures to outgoing events", "Validating
 * hashes and signatures on received events"; room version pages "Event
 * IDs"; room version 12 "Event format" for room IDs).
 *
 * Everything here works on the PDU's JSON (not struct event) because it
 * runs before an event can be parsed: a v3+ event's ID, which event_parse
 * needs, is its reference hash. Canonical JSON is strict or lenient as the
 * room version says (canonjson_mode_for). Nothing here does I/O: keys come
 * from the caller through a lookup callback.
 */
#ifndef MYELIN_CORE_PDU_H
#define MYELIN_CORE_PDU_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "core/keys.h"
#include "core/roomver.h"

#define PDU_HASH_BYTES 32 /* SHA-256 */

/*
 * The content hash: SHA-256 of the canonical JSON of the PDU without
 * `unsigned`, `signatures` and `hashes`. Returns 0, or -ERR_BAD_JSON when
 * `pdu` is not an object or has no canonical encoding for `rv`.
 */
int pdu_content_hash(const struct room_version *rv, const json_t *pdu,
                     unsigned char out[PDU_HASH_BYTES]);

/*
 * Sets pdu["hashes"] to {"sha256": <unpadded base64 content hash>}, as the
 * spec's "Adding hashes" does (any other algorithms there are replaced).
 * Returns 0 or -ERR_BAD_JSON (pdu unchanged).
 */
int pdu_hash_add(const struct room_version *rv, json_t *pdu);

/*
 * Compares pdu["hashes"]["sha256"] with the content hash. Returns 0 when
 * they match; -ERR_FORBIDDEN when they differ (per the spec the receiver
 * then keeps only the redacted event); -ERR_BAD_JSON when the hash is
 * missing, not a string or not base64 of 32 bytes, or the PDU has no
 * canonical encoding.
 */
int pdu_check_hash(const struct room_version *rv, const json_t *pdu);

/*
 * The reference hash: SHA-256 of the canonical JSON of the redacted PDU
 * (redact_event under `rv`) without `signatures` and `unsigned`.
 * Returns 0 or -ERR_BAD_JSON.
 */
int pdu_reference_hash(const struct room_version *rv, const json_t *pdu,
                       unsigned char out[PDU_HASH_BYTES]);

/*
 * The event ID of `pdu` in room version `rv`, allocated in `arena`:
 *   EVENT_FORMAT_V1 (v1, v2): the PDU's own "event_id" (fragment
 *     v1-event-ids); -ERR_BAD_JSON if it has none;
 *   EVENT_FORMAT_V2 (v3): "$" + unpadded standard base64 of the reference
 *     hash (room version 3 "Event IDs");
 *   EVENT_FORMAT_V3 (v4+): "$" + URL-safe unpadded base64 of the reference
 *     hash (fragment v4-event-ids).
 * Returns 0 and *out, or -ERR_BAD_JSON.
 */
int event_compute_id(const struct room_version *rv, const json_t *pdu, struct arena *arena,
                     const char **out);

/*
 * The room ID a v12 m.room.create event creates (rv->room_id_is_create_hash;
 * appendix "Room IDs"): the create event's event ID with "!" for "$", i.e.
 * "!" + URL-safe unpadded base64 of its reference hash. Returns 0 and *out
 * (in `arena`), or -ERR_BAD_JSON when `rv` does not derive room IDs from
 * the create event or `create` is not an m.room.create event.
 */
int event_compute_room_id(const struct room_version *rv, const json_t *create,
                          struct arena *arena, const char **out);

/*
 * Hashes and signs an outgoing PDU as `server_name` ("Adding hashes and
 * signatures to outgoing events"): sets the content hash, signs the
 * redacted event and adds that signature to the full event's
 * signatures[server_name][key->key_id], keeping other signatures and
 * `unsigned`. Returns 0, or -ERR_BAD_JSON (pdu not an object, `signatures`
 * not an object of objects, no canonical encoding); pdu is then unchanged.
 */
int pdu_sign(const struct room_version *rv, json_t *pdu, const struct signing_key *key,
             const char *server_name);

/*
 * Looks up the public key `key_id` of `server_name` for checking an event
 * sent at `origin_server_ts`. When `enforce_valid_until` is set (room
 * versions 5+, fragment v5-signing-requirements) the key's valid_until_ts
 * (capped at 7 days after it was fetched) must be >= origin_server_ts.
 * Expired keys (old_verify_keys with expired_ts before origin_server_ts)
 * count as unknown in every version.
 *
 * Returns 0 with the key in `pk`, -ERR_NOT_FOUND when the key is unknown,
 * expired or not valid then (the signature is skipped), or another
 * negative ERR_* that aborts the check and is returned as is.
 */
typedef int pdu_key_lookup_fn(void *ctx, const char *server_name, const char *key_id,
                              int64_t origin_server_ts, bool enforce_valid_until,
                              unsigned char pk[KEYS_PUBLIC_BYTES]);

/*
 * The servers whose signatures `pdu` must carry ("Validating hashes and
 * signatures on received events" and the auth rules), in `arena`:
 *   - the sender's server, except for an invite made from a third-party
 *     invite (content.third_party_invite present), which may come from
 *     another server and is vouched for by the `signed` block instead;
 *   - v1/v2 (EVENT_FORMAT_V1): the event_id's domain, if it differs;
 *   - v8+ (rv->restricted_join): for m.room.member events with
 *     content.join_authorised_via_users_server, that user's server (auth
 *     rule "If the event is not validly signed by the homeserver of the
 *     user ID denoted by the key, reject").
 * Duplicates are removed. Returns the count with *out set, or
 * -ERR_BAD_JSON when the sender (or v1/v2 event_id, or the authorising
 * user) is not an identifier with a server name.
 */
long pdu_signing_servers(const struct room_version *rv, const json_t *pdu, struct arena *arena,
                         const char ***out);

/*
 * Checks the signatures of a received PDU: the event is redacted and, for
 * every server from pdu_signing_servers, each of that server's ed25519
 * signatures whose key `lookup` knows must verify over the canonical JSON
 * of the redacted event, and at least one must. Signatures by unknown or
 * expired keys and by other servers are ignored. Hashes are not checked
 * here (pdu_check_hash).
 *
 * Returns 0 when the event is validly signed; -ERR_UNAUTHORIZED when a
 * required server has no verifiable signature or a known key's signature
 * fails; -ERR_BAD_JSON for a malformed PDU; or the lookup's own error.
 */
int pdu_verify_signatures(const struct room_version *rv, const json_t *pdu,
                          pdu_key_lookup_fn *lookup, void *ctx);

#endif
