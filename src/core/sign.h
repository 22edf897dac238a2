/*
 * Signing JSON objects (spec appendix "Signing JSON": "Signing Details" and
 * "Checking for a Signature"). A signature covers the canonical JSON of the
 * object without its `signatures` and `unsigned` members; it is stored as
 * unpadded base64 under signatures[entity][key_id], where key_id is
 * "ed25519:<version>" (the only algorithm the spec defines).
 *
 * Objects that are not events (key responses, federation request bodies)
 * are always canonicalised strictly; events pass the mode of their room
 * version (canonjson_mode_for). Event hashing and redaction live in pdu.h.
 */
#ifndef MYELIN_CORE_SIGN_H
#define MYELIN_CORE_SIGN_H

#include <jansson.h>
#include <stddef.h>

#include "base/arena.h"
#include "core/canonjson.h"
#include "core/keys.h"

/*
 * Signs `obj` (an object) with `key` as `entity` (a server name) and adds
 * the signature to obj["signatures"][entity][key->key_id], keeping every
 * signature already there and `unsigned` untouched. Returns 0, or
 * -ERR_BAD_JSON when obj is not an object, has a `signatures` member that
 * is not an object of objects, or has no canonical encoding in `mode`
 * (obj is then unchanged).
 */
int sign_json_add(json_t *obj, const struct signing_key *key, const char *entity,
                  enum canonjson_mode mode);

/*
 * Checks the signature obj["signatures"][entity][key_id] against the
 * 32-byte ed25519 public key `pk`. Returns 0 when it verifies;
 * -ERR_NOT_FOUND when there is no such signature (or key_id is not an
 * ed25519 key); -ERR_UNAUTHORIZED when the signature is not valid base64
 * of 64 bytes or does not verify; -ERR_BAD_JSON when obj has no canonical
 * encoding in `mode`.
 */
int sign_json_verify(const json_t *obj, const char *entity, const char *key_id,
                     const unsigned char pk[KEYS_PUBLIC_BYTES], enum canonjson_mode mode);

/*
 * As sign_json_verify, over canonical bytes the caller already computed
 * (the object without signatures and unsigned), so several signatures on
 * one object cost one encoding. `sigs` is obj["signatures"].
 */
int sign_json_verify_bytes(const json_t *sigs, const char *entity, const char *key_id,
                           const unsigned char pk[KEYS_PUBLIC_BYTES], const char *canon,
                           size_t canon_len);

/*
 * Lists the key IDs `entity` signed `obj` with, keeping only algorithms we
 * understand ("ed25519:"; step 2 of "Checking for a Signature"). The array
 * and strings are allocated in `arena`. Returns the count (0 when entity
 * has not signed), with *ids set (never NULL).
 */
size_t sign_json_key_ids(const json_t *obj, const char *entity, struct arena *arena,
                         const char ***ids);

#endif
