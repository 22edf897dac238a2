/*
 * End-to-end encryption keys (spec: Client-Server API "End-to-End
 * Encryption", "Key management API"): POST /keys/upload (device identity
 * keys, one-time keys, fallback keys), POST /keys/query and POST
 * /keys/claim, and the one-time key counts /sync reports.
 *
 * The server never sees private keys, but it is what other devices trust
 * to hand out the right public ones, so uploads are checked: device keys
 * must name the caller's user and device and carry a valid ed25519
 * self-signature by the device's own ed25519 key (appendix "Signing
 * JSON"), and signed one-time and fallback keys must be signed by that
 * key whenever it is known.
 *
 * Users of other servers (spec: Server-Server API "End-to-End
 * Encryption"): /keys/query and /keys/claim answer local users, then ask
 * each other server named, all in parallel, within the request's
 * `timeout`, and check what comes back (section "keys of users on other
 * servers"); servers without a usable answer go into `failures`. The
 * local halves (client__keys_query_local, client__keys_claim_local) also
 * serve other servers' requests (api/federation/user_keys.c).
 *
 * Cross-signing (spec "Cross-signing"): POST /keys/device_signing/upload
 * takes a user's master, self-signing and user-signing keys (the latter
 * two signed by the master key; UIA only to replace keys once a master
 * key exists, v1.11), POST /keys/signatures/upload takes signatures of
 * the caller's devices by their self-signing key, of their master key by
 * their devices, and of other users' master keys by their user-signing
 * key, each verified against the stored key before it is kept.
 * /keys/query serves the master and self-signing keys of every queried
 * local user, the user-signing key only to its owner, and merges the
 * uploaded signatures the caller may see into master and device keys.
 * Every change marks the caller's device list (client__device_lists_*),
 * which also tells the servers sharing a room with the caller what they
 * may see: new device keys and signatures of them (m.device_list_update),
 * new master or self-signing keys and signatures of the master key
 * (m.signing_key_update).
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/xmalloc.h"
#include "config.h"
#include "core/canonjson.h"
#include "core/id.h"
#include "core/keys.h"
#include "core/sign.h"
#include "store/store.h"
#include "svc/fedclient.h"
#include "svc/srv.h"
#include "svc/uia.h"

/* Longest algorithm name or key ID accepted in a key name. */
#define KEY_NAME_MAX_BYTES 255
/* Longest unpadded base64 accepted for a 32-byte public key. */
#define KEY_B64_MAX_BYTES 64
/* Most users or devices one /keys/query or /keys/claim may name. */
#define KEYS_REQUEST_MAX 10000

/* The algorithm that always appears in one_time_key_counts, even at
 * zero, as Synapse does: clients key their upload logic on it. */
#define OTK_ALGORITHM_DEFAULT "signed_curve25519"

/* ---- helpers ---- */

/* The canonical JSON of `v` (skipping the top-level members in `skip`
 * when v is an object) as an arena string, or NULL when it has none. */
static char *canonical(struct req *r, const json_t *v, const char *const *skip)
{
    struct buf b;
    buf_init(&b);
    int rc = json_is_object(v) ? canonjson_write_except(&b, v, CANONJSON_STRICT, skip)
                               : canonjson_write(&b, v, CANONJSON_STRICT);
    char *out = rc == 0 ? arena_strndup(&r->arena, b.p ? b.p : "", b.len) : NULL;
    buf_release(&b);
    return out;
}

/* Splits "<algorithm>:<rest>" into arena copies; false when malformed. */
static bool split_key_name(struct req *r, const char *name, char **algorithm, char **rest)
{
    const char *colon = strchr(name, ':');
    if (!colon || colon == name || !colon[1]) {
        return false;
    }
    size_t alen = (size_t)(colon - name);
    if (alen > KEY_NAME_MAX_BYTES || strlen(colon + 1) > KEY_NAME_MAX_BYTES) {
        return false;
    }
    *algorithm = arena_strndup(&r->arena, name, alen);
    *rest = arena_strdup(&r->arena, colon + 1);
    return true;
}

/* Decodes an unpadded base64 ed25519 public key; false unless 32 bytes. */
static bool decode_ed25519(const char *b64, unsigned char pk[KEYS_PUBLIC_BYTES])
{
    size_t len = strlen(b64);
    if (len == 0 || len > KEY_B64_MAX_BYTES) {
        return false;
    }
    unsigned char tmp[KEY_B64_MAX_BYTES];
    long n = keys_b64_decode(b64, len, tmp);
    if (n != KEYS_PUBLIC_BYTES) {
        return false;
    }
    memcpy(pk, tmp, KEYS_PUBLIC_BYTES);
    return true;
}

/* Whether `user_id` is one of ours (already known to be well formed). */
static bool is_local(struct req *r, const char *user_id)
{
    const char *server = id_server_part(user_id);
    return server && strcmp(server, r->srv->cfg->server_name) == 0;
}

/* Records {"status", "message"} for `server` in a /keys/query or
 * /keys/claim `failures` object (the first failure of a server stays). */
static void add_failure(json_t *failures, const char *server, int status, const char *message)
{
    if (!json_object_get(failures, server)) {
        json_object_set_new(failures, server,
                            json_pack("{s:i,s:s}", "status", status, "message", message));
    }
}

/*
 * Checks that the signed object `obj` carries a valid signature by the
 * device's ed25519 key (signatures[user_id]["ed25519:<device_id>"]).
 * `what` names the object in errors. 0 or the 400 failure set on r.
 */
static int check_device_signature(struct req *r, const json_t *obj, const char *what,
                                  const unsigned char pk[KEYS_PUBLIC_BYTES])
{
    const char *key_id = arena_printf(&r->arena, "ed25519:%s", r->auth.device_id);
    const json_t *sigs = json_object_get(obj, "signatures");
    if (!json_is_object(sigs)) {
        return req_fail(r, -ERR_INVALID_PARAM, "%s: 'signatures' must be an object", what);
    }
    int rc = sign_json_verify(obj, r->auth.user_id, key_id, pk, CANONJSON_STRICT);
    switch (rc) {
    case 0:
        return 0;
    case -ERR_NOT_FOUND:
        return req_fail(r, -ERR_INVALID_PARAM, "%s is not signed by %s", what, key_id);
    case -ERR_BAD_JSON:
        return req_fail(r, -ERR_BAD_JSON, "%s has no canonical JSON form", what);
    default:
        return req_fail(r, -ERR_INVALID_PARAM, "%s: invalid signature by %s", what, key_id);
    }
}

/* ---- POST /keys/upload ---- */

/*
 * Validates the upload's device_keys (spec "DeviceKeys"): the caller's
 * user and device, an algorithms list, keys named "<algorithm>:<device
 * ID>" with the device's ed25519 key among them, and a valid signature by
 * that key. Sets pk to the key and *json to the canonical JSON to store
 * (without `unsigned`). 0 or the failure set on r.
 */
static int check_device_keys(struct req *r, const json_t *dk, unsigned char pk[KEYS_PUBLIC_BYTES],
                             char **json)
{
    if (!json_is_object(dk)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys' must be an object");
    }
    const char *user_id = json_get_str(dk, "user_id");
    const char *device_id = json_get_str(dk, "device_id");
    if (!user_id || !device_id) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "'device_keys' needs string 'user_id' and 'device_id'");
    }
    if (strcmp(user_id, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys.user_id' must be %s",
                        r->auth.user_id);
    }
    if (strcmp(device_id, r->auth.device_id) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys.device_id' must be %s",
                        r->auth.device_id);
    }
    const json_t *algs = json_object_get(dk, "algorithms");
    if (!json_is_array(algs)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys.algorithms' must be an array");
    }
    for (size_t i = 0; i < json_array_size(algs); i++) {
        if (!json_is_string(json_array_get(algs, i))) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'device_keys.algorithms' must hold strings");
        }
    }
    const json_t *keys = json_object_get(dk, "keys");
    if (!json_is_object(keys)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys.keys' must be an object");
    }
    const char *name;
    const json_t *v;
    bool have_ed25519 = false;
    json_object_foreach((json_t *)keys, name, v)
    {
        char *alg, *id;
        if (!json_is_string(v)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'device_keys.keys' values must be strings");
        }
        if (!split_key_name(r, name, &alg, &id) || strcmp(id, r->auth.device_id) != 0) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "Device key names must be '<algorithm>:%s', not '%s'",
                            r->auth.device_id, name);
        }
        if (strcmp(alg, "ed25519") == 0) {
            if (!decode_ed25519(json_string_value(v), pk)) {
                return req_fail(r, -ERR_INVALID_PARAM,
                                "'%s' is not an unpadded base64 ed25519 key", name);
            }
            have_ed25519 = true;
        }
    }
    if (!have_ed25519) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys.keys' needs 'ed25519:%s'",
                        r->auth.device_id);
    }
    int rc = check_device_signature(r, dk, "'device_keys'", pk);
    if (rc) {
        return rc;
    }
    static const char *const skip[] = {"unsigned", NULL};
    *json = canonical(r, dk, skip);
    if (!*json) {
        return req_fail(r, -ERR_BAD_JSON, "'device_keys' has no canonical JSON form");
    }
    return 0;
}

/*
 * Validates one one-time or fallback key `name` -> `v`: a name
 * "<algorithm>:<key ID>", and a value that is a key string or a key
 * object with a string "key" and, when the device's ed25519 key is known
 * (pk not NULL), a valid signature by it. Sets the parts and *json (the
 * canonical JSON to store). 0 or the failure set on r.
 */
static int check_key(struct req *r, const char *field, const char *name, const json_t *v,
                     const unsigned char *pk, char **algorithm, char **key_id, char **json)
{
    if (!split_key_name(r, name, algorithm, key_id)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' key names must be '<algorithm>:<key ID>'",
                        field);
    }
    if (json_is_object(v)) {
        if (!json_is_string(json_object_get(v, "key"))) {
            return req_fail(r, -ERR_INVALID_PARAM, "'%s' key '%s' needs a string 'key'", field,
                            name);
        }
        if (pk) {
            const char *what = arena_printf(&r->arena, "'%s' key '%s'", field, name);
            int rc = check_device_signature(r, v, what, pk);
            if (rc) {
                return rc;
            }
        }
    } else if (!json_is_string(v)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' values must be strings or key objects",
                        field);
    }
    *json = canonical(r, v, NULL);
    if (!*json) {
        return req_fail(r, -ERR_BAD_JSON, "'%s' key '%s' has no canonical JSON form", field,
                        name);
    }
    return 0;
}

/* Whether two key JSON texts are the same key, signatures aside (a client
 * may re-sign a key it uploads again, as Synapse allows). */
static bool same_key(struct req *r, const char *stored, const json_t *v)
{
    json_t *old = json_arena(&r->arena, json_loads(stored, JSON_DECODE_ANY, NULL));
    if (!old || json_is_object(old) != json_is_object(v)) {
        return false;
    }
    static const char *const skip[] = {"signatures", NULL};
    char *a = canonical(r, old, skip);
    char *b = canonical(r, v, skip);
    return a && b && strcmp(a, b) == 0;
}

/* The device's one_time_key_counts object (new reference). */
static int otk_counts_json(struct req *r, const char *user_id, const char *device_id,
                           json_t **out)
{
    struct store_key_count *counts;
    size_t n;
    int rc = store_keys_otk_counts(r->db, &r->arena, user_id, device_id, &counts, &n);
    if (rc < 0) {
        return rc;
    }
    json_t *o = json_pack("{s:i}", OTK_ALGORITHM_DEFAULT, 0);
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(o, counts[i].algorithm, json_integer(counts[i].count));
    }
    *out = o;
    return 0;
}

/* The optional object field `key` of the body (NULL when absent or
 * null); 0 or M_INVALID_PARAM. */
static int opt_object(struct req *r, const char *key, const json_t **out)
{
    const json_t *v = json_object_get(r->json, key);
    *out = NULL;
    if (v && !json_is_null(v)) {
        if (!json_is_object(v)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'%s' must be an object", key);
        }
        *out = v;
    }
    return 0;
}

/* Stores the upload's one-time keys; in the caller's transaction. */
static int store_one_time_keys(struct req *r, const json_t *otks, const unsigned char *pk)
{
    int64_t seq;
    int rc = store_keys_otk_next_seq(r->db, r->auth.user_id, r->auth.device_id, &seq);
    if (rc < 0) {
        return rc;
    }
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)otks, name, v)
    {
        char *alg, *id, *json, *stored;
        rc = check_key(r, "one_time_keys", name, v, pk, &alg, &id, &json);
        if (rc) {
            return rc;
        }
        rc = store_keys_otk_get(r->db, &r->arena, r->auth.user_id, r->auth.device_id, alg, id,
                                &stored);
        if (rc == 0) {
            /* Spec leaves it open; as Synapse: the same key again is a
             * no-op, a different key under a held key ID is refused. */
            if (!same_key(r, stored, v)) {
                return req_fail(r, -ERR_INVALID_PARAM,
                                "One-time key %s already exists with different content", name);
            }
            continue;
        }
        if (rc != -ERR_NOT_FOUND) {
            return rc;
        }
        rc = store_keys_otk_add(r->db, r->auth.user_id, r->auth.device_id, alg, id, json, seq);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Stores the upload's fallback keys (at most one per algorithm). */
static int store_fallback_keys(struct req *r, const json_t *fks, const unsigned char *pk)
{
    json_t *seen = json_arena(&r->arena, json_object());
    const char *name;
    const json_t *v;
    json_object_foreach((json_t *)fks, name, v)
    {
        char *alg, *id, *json;
        int rc = check_key(r, "fallback_keys", name, v, pk, &alg, &id, &json);
        if (rc) {
            return rc;
        }
        if (json_object_get(seen, alg)) {
            return req_fail(r, -ERR_INVALID_PARAM, "At most one fallback key per algorithm (%s)",
                            alg);
        }
        json_object_set_new(seen, alg, json_true());
        rc = store_keys_fallback_put(r->db, r->auth.user_id, r->auth.device_id, alg, id, json);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* When the upload gives the caller's device other identity keys than
 * those stored (signatures aside), deletes the cross-signing signatures
 * of the old ones, which no longer hold. In the caller's transaction. */
static int drop_replaced_identity_signatures(struct req *r, const json_t *dk)
{
    char *stored;
    int rc = store_keys_device_get(r->db, &r->arena, r->auth.user_id, r->auth.device_id,
                                   &stored);
    if (rc == -ERR_NOT_FOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    static const char *const skip[] = {"signatures", "unsigned", NULL};
    json_t *old = json_arena(&r->arena, json_loads(stored, 0, NULL));
    const char *a = old ? canonical(r, old, skip) : NULL;
    const char *b = canonical(r, dk, skip);
    if (a && b && strcmp(a, b) == 0) {
        return 0;
    }
    return store_keys_cs_signatures_drop_target(r->db, r->auth.user_id, r->auth.device_id);
}

int client_keys_upload(struct req *r)
{
    if (!r->auth.device_id) {
        return req_fail(r, -ERR_INVALID_PARAM, "This access token has no device");
    }
    const json_t *dk, *otks, *fks;
    int rc = opt_object(r, "device_keys", &dk);
    if (!rc) {
        rc = opt_object(r, "one_time_keys", &otks);
    }
    if (!rc) {
        rc = opt_object(r, "fallback_keys", &fks);
    }
    if (!rc && !fks) {
        /* The unstable name of MSC2732, still sent by older clients. */
        rc = opt_object(r, "org.matrix.msc2732.fallback_keys", &fks);
    }
    if (rc) {
        return rc;
    }

    unsigned char pk_buf[KEYS_PUBLIC_BYTES];
    const unsigned char *pk = NULL;
    char *dk_json = NULL;
    if (dk) {
        rc = check_device_keys(r, dk, pk_buf, &dk_json);
        if (rc) {
            return rc;
        }
        pk = pk_buf;
    }

    /* New identity keys are a device-list change for everyone sharing a
     * room (the stream lock is taken only then). */
    int64_t dl = dk_json ? client__device_lists_reserve(r) : 0;
    rc = store_begin(r->db);
    if (rc == 0 && !pk && (otks || fks)) {
        /* Signed keys are checked against the device key stored earlier. */
        char *stored;
        rc = store_keys_device_get(r->db, &r->arena, r->auth.user_id, r->auth.device_id,
                                   &stored);
        if (rc == 0) {
            json_t *obj = json_arena(&r->arena, json_loads(stored, 0, NULL));
            const json_t *keys = obj ? json_object_get(obj, "keys") : NULL;
            const char *name = arena_printf(&r->arena, "ed25519:%s", r->auth.device_id);
            const char *b64 = keys ? json_get_str(keys, name) : NULL;
            if (b64 && decode_ed25519(b64, pk_buf)) {
                pk = pk_buf;
            }
        } else if (rc == -ERR_NOT_FOUND) {
            rc = 0;
        }
    }
    if (rc == 0 && dk_json) {
        rc = drop_replaced_identity_signatures(r, dk);
    }
    if (rc == 0 && dk_json) {
        rc = store_keys_device_put(r->db, r->auth.user_id, r->auth.device_id, dk_json,
                                   req_now_ms());
    }
    if (rc == 0 && dk_json) {
        rc = client__device_lists_mark_devices(r, dl, r->auth.user_id, &r->auth.device_id, 1);
    }
    if (rc == 0 && otks) {
        rc = store_one_time_keys(r, otks, pk);
    }
    if (rc == 0 && fks) {
        rc = store_fallback_keys(r, fks, pk);
    }
    rc = store_end(r->db, rc);
    if (dk_json) {
        client__device_lists_publish(r, dl, &r->auth.user_id, 1);
    }
    if (rc < 0) {
        return rc;
    }
    json_t *counts;
    rc = otk_counts_json(r, r->auth.user_id, r->auth.device_id, &counts);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:o}", "one_time_key_counts", counts));
}

/* ---- POST /keys/query ---- */

/* A user ID key of a request map: 0 when well formed, else the failure. */
static int check_user_key(struct req *r, const char *user_id)
{
    if (!id_user_valid(user_id, strlen(user_id), false)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid user ID '%s'", user_id);
    }
    return 0;
}

/* Whether the string array `ids` (empty: all) names `device_id`. */
static bool wanted(const json_t *ids, const char *device_id)
{
    if (json_array_size(ids) == 0) {
        return true;
    }
    for (size_t i = 0; i < json_array_size(ids); i++) {
        if (strcmp(json_string_value(json_array_get(ids, i)), device_id) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds the uploaded signatures of `target_id` among sigs[0..n) to obj's
 * `signatures`. */
static void merge_signatures(json_t *obj, const struct store_cs_signature *sigs, size_t n,
                             const char *target_id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(sigs[i].target_id, target_id) != 0) {
            continue;
        }
        json_t *all = json_object_get(obj, "signatures");
        if (!json_is_object(all)) {
            all = json_object();
            json_object_set_new(obj, "signatures", all);
        }
        json_t *by = json_object_get(all, sigs[i].signer_id);
        if (!json_is_object(by)) {
            by = json_object();
            json_object_set_new(all, sigs[i].signer_id, by);
        }
        json_object_set_new(by, sigs[i].signing_key_id, json_string(sigs[i].signature));
    }
}

/* The local user's devices with keys, as /keys/query serves them, with
 * the uploaded signatures sigs[0..n_sigs) merged in. */
static int query_user(struct req *r, const char *user_id, const json_t *ids,
                      const struct store_cs_signature *sigs, size_t n_sigs, json_t **out)
{
    struct store_device_keys *list;
    size_t n;
    int rc = store_keys_device_list(r->db, &r->arena, user_id, &list, &n);
    if (rc < 0) {
        return rc;
    }
    json_t *devices = json_object();
    for (size_t i = 0; i < n; i++) {
        if (!wanted(ids, list[i].device_id)) {
            continue;
        }
        json_t *keys = json_loads(list[i].key_json, 0, NULL);
        if (!json_is_object(keys)) {
            json_decref(keys);
            continue;
        }
        /* Spec "DeviceInformation": what was uploaded plus `unsigned`. */
        json_t *uns = json_object();
        if (list[i].display_name) {
            json_object_set_new(uns, "device_display_name", json_string(list[i].display_name));
        }
        json_object_set_new(keys, "unsigned", uns);
        merge_signatures(keys, sigs, n_sigs, list[i].device_id);
        json_object_set_new(devices, list[i].device_id, keys);
    }
    *out = devices;
    return 0;
}

/* Adds the user's cross-signing keys to the /keys/query answer `body`:
 * master (with the uploaded signatures in sigs merged in) and
 * self-signing keys for anyone, the user-signing key only for its owner
 * (spec "POST /keys/query"; `viewer` NULL: another server, which never
 * gets it). Fields missing from body are skipped. */
static int query_cross_signing(struct req *r, const char *user_id, const char *viewer,
                               const struct store_cs_signature *sigs, size_t n_sigs,
                               json_t *body)
{
    struct store_cs_key *list;
    size_t n;
    int rc = store_keys_cs_list(r->db, &r->arena, user_id, &list, &n);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        const char *field;
        if (strcmp(list[i].key_type, "master") == 0) {
            field = "master_keys";
        } else if (strcmp(list[i].key_type, "self_signing") == 0) {
            field = "self_signing_keys";
        } else if (viewer && strcmp(user_id, viewer) == 0) {
            field = "user_signing_keys";
        } else {
            continue;
        }
        json_t *dest = json_object_get(body, field);
        if (!dest) {
            continue;
        }
        json_t *key = json_loads(list[i].key_json, 0, NULL);
        if (!json_is_object(key)) {
            json_decref(key);
            continue;
        }
        if (strcmp(field, "master_keys") == 0) {
            merge_signatures(key, sigs, n_sigs, list[i].public_key);
        }
        json_object_set_new(dest, user_id, key);
    }
    return 0;
}

int client__keys_check_query(struct req *r, const json_t *device_keys)
{
    if (!device_keys) {
        return req_fail(r, -ERR_MISSING_PARAM, "'device_keys' is required");
    }
    if (!json_is_object(device_keys)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys' must be an object");
    }
    if (json_object_size(device_keys) > KEYS_REQUEST_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "At most %d users per query", KEYS_REQUEST_MAX);
    }
    const char *user_id;
    const json_t *ids;
    json_object_foreach((json_t *)device_keys, user_id, ids)
    {
        int rc = check_user_key(r, user_id);
        if (rc) {
            return rc;
        }
        if (json_is_null(ids)) {
            continue; /* treated as [] (all devices) */
        }
        if (!json_is_array(ids)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'device_keys' values must be arrays");
        }
        for (size_t i = 0; i < json_array_size(ids); i++) {
            if (!json_is_string(json_array_get(ids, i))) {
                return req_fail(r, -ERR_INVALID_PARAM, "Device IDs must be strings");
            }
        }
    }
    return 0;
}

int client__keys_query_local(struct req *r, const json_t *device_keys, const char *viewer,
                             json_t *body)
{
    json_t *out_keys = json_object_get(body, "device_keys");
    const char *user_id;
    const json_t *ids;
    json_object_foreach((json_t *)device_keys, user_id, ids)
    {
        if (!is_local(r, user_id)) {
            continue;
        }
        /* Signatures the viewer may see (spec "Key and signature
         * security"): the user's own, and the viewer's. */
        struct store_cs_signature *sigs;
        size_t n_sigs;
        int rc = store_keys_cs_signatures(r->db, &r->arena, user_id, viewer ? viewer : user_id,
                                          &sigs, &n_sigs);
        json_t *devices;
        if (rc == 0) {
            rc = query_user(r, user_id, json_is_array(ids) ? ids : NULL, sigs, n_sigs,
                            &devices);
        }
        if (rc < 0) {
            return rc;
        }
        /* Every queried local user appears, as Synapse answers. */
        json_object_set_new(out_keys, user_id, devices);
        rc = query_cross_signing(r, user_id, viewer, sigs, n_sigs, body);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- POST /keys/claim ---- */

int client__keys_check_claim(struct req *r, const json_t *one_time_keys)
{
    if (!one_time_keys) {
        return req_fail(r, -ERR_MISSING_PARAM, "'one_time_keys' is required");
    }
    if (!json_is_object(one_time_keys)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'one_time_keys' must be an object");
    }
    size_t total = 0;
    const char *user_id;
    const json_t *devs;
    json_object_foreach((json_t *)one_time_keys, user_id, devs)
    {
        int rc = check_user_key(r, user_id);
        if (rc) {
            return rc;
        }
        if (!json_is_object(devs)) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'one_time_keys' values must map device IDs to algorithms");
        }
        const char *device_id;
        const json_t *alg;
        json_object_foreach((json_t *)devs, device_id, alg)
        {
            if (!json_is_string(alg)) {
                return req_fail(r, -ERR_INVALID_PARAM, "Algorithms must be strings");
            }
        }
        total += json_object_size(devs);
    }
    if (total > KEYS_REQUEST_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "At most %d devices per claim", KEYS_REQUEST_MAX);
    }
    return 0;
}

/* Adds key `name` -> `key` (stolen) of user_id's device_id to the
 * one_time_keys map `out`. */
static void claimed_add(json_t *out, const char *user_id, const char *device_id,
                        const char *name, json_t *key)
{
    json_t *user = json_object_get(out, user_id);
    if (!user) {
        user = json_object();
        json_object_set_new(out, user_id, user);
    }
    json_t *dev = json_object_get(user, device_id);
    if (!dev) {
        dev = json_object();
        json_object_set_new(user, device_id, dev);
    }
    json_object_set_new(dev, name, key);
}

int client__keys_claim_local(struct req *r, const json_t *one_time_keys, json_t *out)
{
    int rc = store_begin(r->db);
    const char *user_id;
    const json_t *devs;
    json_object_foreach((json_t *)one_time_keys, user_id, devs)
    {
        if (rc < 0) {
            break;
        }
        if (!is_local(r, user_id)) {
            continue;
        }
        const char *device_id;
        const json_t *alg;
        json_object_foreach((json_t *)devs, device_id, alg)
        {
            const char *algorithm = json_string_value(alg);
            char *key_id, *key_json;
            bool fallback;
            rc = store_keys_claim(r->db, &r->arena, user_id, device_id, algorithm, &key_id,
                                  &key_json, &fallback);
            if (rc == -ERR_NOT_FOUND) {
                rc = 0;
                continue;
            }
            if (rc < 0) {
                break;
            }
            json_t *key = json_loads(key_json, JSON_DECODE_ANY, NULL);
            if (key) {
                claimed_add(out, user_id, device_id,
                            arena_printf(&r->arena, "%s:%s", algorithm, key_id), key);
            }
        }
    }
    return store_end(r->db, rc);
}

/* ---- cross-signing (spec "Cross-signing") ---- */

enum cs_type { CS_MASTER, CS_SELF, CS_USER, CS_TYPES };

static const char *const cs_usage[CS_TYPES] = {"master", "self_signing", "user_signing"};
static const char *const cs_field[CS_TYPES] = {"master_key", "self_signing_key",
                                               "user_signing_key"};

static const struct uia_flow flow_password[] = {{{"m.login.password"}, 1}};

/* One cross-signing key of a request or of the store; pub is NULL when
 * there is none. */
struct cs_key {
    const char *pub;    /* unpadded base64 public key */
    const char *key_id; /* "ed25519:" + pub */
    unsigned char pk[KEYS_PUBLIC_BYTES];
    const char *json; /* canonical JSON without `unsigned` */
    const json_t *obj;
};

static const char *const skip_unsigned[] = {"unsigned", NULL};
static const char *const skip_signed[] = {"signatures", "unsigned", NULL};

/* Reads the `keys` of a CrossSigningKey: exactly one property, named
 * "ed25519:<public key>" with the public key (32 bytes) as its value. */
static bool cs_public_key(struct req *r, const json_t *obj, struct cs_key *k)
{
    const json_t *keys = json_object_get(obj, "keys");
    if (!json_is_object(keys) || json_object_size(keys) != 1) {
        return false;
    }
    void *it = json_object_iter((json_t *)keys);
    const char *name = json_object_iter_key(it);
    const json_t *v = json_object_iter_value(it);
    if (!json_is_string(v) || strncmp(name, "ed25519:", 8) != 0 ||
        strcmp(name + 8, json_string_value(v)) != 0 || !decode_ed25519(name + 8, k->pk)) {
        return false;
    }
    k->pub = arena_strdup(&r->arena, name + 8);
    k->key_id = arena_strdup(&r->arena, name);
    return true;
}

/* Validates the request's key of type t (spec "CrossSigningKey"): the
 * caller's user ID, the usage of its field, one ed25519 key. Fills k;
 * 0 or the 400 failure set on r. */
static int cs_parse(struct req *r, enum cs_type t, const json_t *obj, struct cs_key *k)
{
    const char *field = cs_field[t];
    const char *user_id = json_get_str(obj, "user_id");
    if (!user_id || strcmp(user_id, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s.user_id' must be %s", field,
                        r->auth.user_id);
    }
    const json_t *usage = json_object_get(obj, "usage");
    if (!json_is_array(usage)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s.usage' must be an array", field);
    }
    bool found = false;
    for (size_t i = 0; i < json_array_size(usage); i++) {
        const json_t *u = json_array_get(usage, i);
        if (!json_is_string(u)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'%s.usage' must hold strings", field);
        }
        found = found || strcmp(json_string_value(u), cs_usage[t]) == 0;
    }
    if (!found) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s.usage' must contain \"%s\"", field,
                        cs_usage[t]);
    }
    if (!cs_public_key(r, obj, k)) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "'%s.keys' must hold exactly one key 'ed25519:<public key>' whose "
                        "value is that unpadded base64 ed25519 public key",
                        field);
    }
    const json_t *sigs = json_object_get(obj, "signatures");
    if (sigs && !json_is_object(sigs)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s.signatures' must be an object", field);
    }
    k->json = canonical(r, obj, skip_unsigned);
    if (!k->json) {
        return req_fail(r, -ERR_BAD_JSON, "'%s' has no canonical JSON form", field);
    }
    k->obj = obj;
    return 0;
}

/* The user's stored cross-signing keys by type. */
static int cs_load(struct req *r, const char *user_id, struct cs_key out[CS_TYPES])
{
    memset(out, 0, sizeof(struct cs_key) * CS_TYPES);
    struct store_cs_key *list;
    size_t n;
    int rc = store_keys_cs_list(r->db, &r->arena, user_id, &list, &n);
    if (rc < 0) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < CS_TYPES; t++) {
            if (strcmp(list[i].key_type, cs_usage[t]) != 0) {
                continue;
            }
            json_t *obj = json_arena(&r->arena, json_loads(list[i].key_json, 0, NULL));
            if (!json_is_object(obj) || !decode_ed25519(list[i].public_key, out[t].pk)) {
                return -ERR_DB; /* we stored it checked: the row is damaged */
            }
            out[t].pub = list[i].public_key;
            out[t].key_id = arena_printf(&r->arena, "ed25519:%s", list[i].public_key);
            out[t].json = list[i].key_json;
            out[t].obj = obj;
        }
    }
    return 0;
}

/* Checks that the request's key `field` is signed by `master`; 0 or the
 * failure (M_INVALID_SIGNATURE) set on r. */
static int cs_check_signed(struct req *r, const struct cs_key *k, const struct cs_key *master,
                           const char *field)
{
    int rc = sign_json_verify(k->obj, r->auth.user_id, master->key_id, master->pk,
                              CANONJSON_STRICT);
    switch (rc) {
    case 0:
        return 0;
    case -ERR_NOT_FOUND:
        return req_fail(r, -ERR_INVALID_SIGNATURE, "'%s' is not signed by the master key %s",
                        field, master->key_id);
    case -ERR_BAD_JSON:
        return req_fail(r, -ERR_BAD_JSON, "'%s' has no canonical JSON form", field);
    default:
        return req_fail(r, -ERR_INVALID_SIGNATURE,
                        "'%s' has an invalid signature by the master key %s", field,
                        master->key_id);
    }
}

/* Nullable string equality. */
static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/*
 * POST /keys/device_signing/upload (also under /unstable, which Element
 * probes). Each key given must name the caller, carry its usage and one
 * ed25519 key; the self-signing and user-signing keys must be signed by
 * the master key of the request, else by the stored one (400
 * M_INVALID_SIGNATURE; M_MISSING_PARAM without any). Since v1.11
 * (MSC3967) UIA is needed only to change keys once a master key exists:
 * the first upload goes through without it, and so does a request that
 * repeats the stored master key and holds no other new key (idempotent
 * retries). Changed keys mark the caller's device list.
 */
int client_keys_device_signing_upload(struct req *r)
{
    const char *me = r->auth.user_id;
    struct cs_key given[CS_TYPES];
    memset(given, 0, sizeof(given));
    for (int t = 0; t < CS_TYPES; t++) {
        const json_t *v;
        int rc = opt_object(r, cs_field[t], &v);
        if (rc == 0 && v) {
            rc = cs_parse(r, t, v, &given[t]);
        }
        if (rc) {
            return rc;
        }
    }
    struct cs_key old[CS_TYPES];
    int rc = cs_load(r, me, old);
    if (rc < 0) {
        return rc;
    }
    const struct cs_key *master = given[CS_MASTER].pub ? &given[CS_MASTER] : &old[CS_MASTER];
    for (int t = CS_SELF; t < CS_TYPES; t++) {
        if (!given[t].pub) {
            continue;
        }
        if (!master->pub) {
            return req_fail(r, -ERR_MISSING_PARAM,
                            "No master key available to check '%s'; upload 'master_key'",
                            cs_field[t]);
        }
        rc = cs_check_signed(r, &given[t], master, cs_field[t]);
        if (rc) {
            return rc;
        }
    }

    /* Which keys are new, and whether the request only repeats keys. */
    bool is_new[CS_TYPES] = {false};
    bool any_new = false;
    for (int t = 0; t < CS_TYPES; t++) {
        is_new[t] = given[t].pub && !same_str(given[t].json, old[t].json);
        any_new = any_new || is_new[t];
    }
    const char *session = NULL;
    if (old[CS_MASTER].pub && (!given[CS_MASTER].pub || any_new)) {
        rc = uia_check(r, "device_signing", flow_password, 1, me, NULL, &session);
        if (rc) {
            return rc;
        }
    }
    if (!any_new) {
        if (session) {
            uia_session_end(r->srv->uia, session);
        }
        return req_json(r, 200, json_object());
    }
    /* Spec: 403 when a public key is one of the user's device IDs (the
     * two share the "ed25519:" key ID namespace). */
    for (int t = 0; t < CS_TYPES; t++) {
        struct store_device dev;
        rc = is_new[t] ? store_device_get(r->db, &r->arena, me, given[t].pub, &dev)
                       : -ERR_NOT_FOUND;
        if (rc == 0) {
            return req_fail(r, -ERR_FORBIDDEN, "The key of '%s' is the ID of one of your devices",
                            cs_field[t]);
        }
        if (rc != -ERR_NOT_FOUND) {
            return rc;
        }
    }

    bool raced = false;
    int64_t pos = client__device_lists_reserve(r);
    rc = store_begin(r->db);
    if (rc == 0) {
        /* The UIA decision and the signature checks used the master key
         * read above; a concurrent upload must not slip past them. */
        struct cs_key now[CS_TYPES];
        rc = cs_load(r, me, now);
        if (rc == 0 && !same_str(now[CS_MASTER].json, old[CS_MASTER].json)) {
            raced = true;
            rc = -ERR_CONFLICT;
        }
    }
    for (int t = 0; t < CS_TYPES && rc == 0; t++) {
        if (!is_new[t]) {
            continue;
        }
        rc = store_keys_cs_put(r->db, me, cs_usage[t], given[t].pub, given[t].json,
                               req_now_ms());
        if (rc == 0 && old[t].pub && strcmp(old[t].pub, given[t].pub) != 0) {
            /* Signatures of a replaced master key, and those made by a
             * replaced self- or user-signing key, are no longer true. */
            rc = t == CS_MASTER ? store_keys_cs_signatures_drop_target(r->db, me, old[t].pub)
                                : store_keys_cs_signatures_drop_by(r->db, me, old[t].key_id);
        }
    }
    if (rc == 0) {
        /* Other servers see the master and self-signing keys only. */
        rc = client__device_lists_mark_signing(r, pos, me, is_new[CS_MASTER], is_new[CS_SELF]);
    }
    rc = store_end(r->db, rc);
    client__device_lists_publish(r, pos, &me, rc == 0 ? 1 : 0);
    if (raced) {
        return req_fail(r, -ERR_CONFLICT, "The cross-signing keys changed meanwhile; try again");
    }
    if (rc < 0) {
        return rc;
    }
    if (session) {
        uia_session_end(r->srv->uia, session);
    }
    return req_json(r, 200, json_object());
}

/* ---- POST /keys/signatures/upload ---- */

/* Whether a and b are the same key, signatures and `unsigned` aside. */
static bool same_signable(struct req *r, const json_t *a, const json_t *b)
{
    const char *ca = canonical(r, a, skip_signed);
    const char *cb = canonical(r, b, skip_signed);
    return ca && cb && strcmp(ca, cb) == 0;
}

/* Adds the failure {errcode, error} of user_id's key_id to `failures`. */
static void sig_failure(json_t *failures, const char *user_id, const char *key_id, int code,
                        const char *msg)
{
    json_t *u = json_object_get(failures, user_id);
    if (!u) {
        u = json_object();
        json_object_set_new(failures, user_id, u);
    }
    json_object_set_new(u, key_id, json_pack("{s:s,s:s}", "errcode", err_errcode(code), "error",
                                             msg ? msg : err_message(code)));
}

/* Queues a verified signature to store. */
static void sig_pending(json_t *pending, const char *user_id, const char *target_id,
                        const char *signer_id, const char *key_id, const char *signature)
{
    json_array_append_new(pending, json_pack("{s:s,s:s,s:s,s:s,s:s}", "u", user_id, "t",
                                             target_id, "s", signer_id, "k", key_id, "v",
                                             signature));
}

/* The signature signer made with key_id on obj, or NULL. */
static const char *sig_of(const json_t *obj, const char *signer, const char *key_id)
{
    const json_t *by = json_object_get(json_object_get(obj, "signatures"), signer);
    return json_is_object(by) ? json_get_str(by, key_id) : NULL;
}

/* The verdict of sign_json_verify as a failure code (0: valid). */
static int verify_code(int rc)
{
    return rc == 0 ? 0 : rc == -ERR_BAD_JSON ? -ERR_BAD_JSON : -ERR_INVALID_SIGNATURE;
}

/*
 * One of the caller's devices signed by their self-signing key. Returns
 * 0 with the signature queued, or a failure code with *msg set.
 */
static int sig_own_device(struct req *r, const char *device_id, const json_t *obj,
                          const struct cs_key *ssk, const struct store_device_keys *devs,
                          size_t n_devs, json_t *pending, const char **msg)
{
    const char *me = r->auth.user_id;
    if (!ssk->pub) {
        *msg = "You have no self-signing key";
        return -ERR_NOT_FOUND;
    }
    const struct store_device_keys *dev = NULL;
    for (size_t i = 0; i < n_devs && !dev; i++) {
        dev = strcmp(devs[i].device_id, device_id) == 0 ? &devs[i] : NULL;
    }
    if (!dev) {
        *msg = arena_printf(&r->arena, "Unknown device or key %s", device_id);
        return -ERR_NOT_FOUND;
    }
    const char *sig = sig_of(obj, me, ssk->key_id);
    if (!sig) {
        *msg = arena_printf(&r->arena, "Not signed by your self-signing key %s", ssk->key_id);
        return -ERR_INVALID_SIGNATURE;
    }
    json_t *stored = json_arena(&r->arena, json_loads(dev->key_json, 0, NULL));
    if (!stored || !same_signable(r, obj, stored)) {
        *msg = arena_printf(&r->arena, "The signed object is not the stored keys of device %s",
                            device_id);
        return -ERR_INVALID_PARAM;
    }
    int rc = verify_code(sign_json_verify(obj, me, ssk->key_id, ssk->pk, CANONJSON_STRICT));
    if (rc) {
        *msg = "Invalid signature by your self-signing key";
        return rc;
    }
    sig_pending(pending, me, device_id, me, ssk->key_id, sig);
    return 0;
}

/*
 * The caller's master key signed by some of their devices: every
 * signature of the caller not already part of the uploaded key must be
 * valid and by one of their devices (or by the master key itself, which
 * is checked but not stored). Returns 0 with the signatures queued, or a
 * failure code with *msg set (nothing queued).
 */
static int sig_own_master(struct req *r, const json_t *obj, const struct cs_key *master,
                          const struct store_device_keys *devs, size_t n_devs, json_t *pending,
                          const char **msg)
{
    const char *me = r->auth.user_id;
    const json_t *mine = json_object_get(json_object_get(obj, "signatures"), me);
    if (!json_is_object(mine)) {
        *msg = "The master key carries no signature of yours";
        return -ERR_INVALID_SIGNATURE;
    }
    if (!same_signable(r, obj, master->obj)) {
        *msg = "The signed object is not your master key";
        return -ERR_INVALID_PARAM;
    }
    const char *canon = canonical(r, obj, skip_signed);
    if (!canon) {
        *msg = "The master key has no canonical JSON form";
        return -ERR_BAD_JSON;
    }
    json_t *batch = json_arena(&r->arena, json_array());
    const char *key_id;
    const json_t *v;
    json_object_foreach((json_t *)mine, key_id, v)
    {
        if (!json_is_string(v)) {
            *msg = "Signatures must be strings";
            return -ERR_INVALID_SIGNATURE;
        }
        if (same_str(sig_of(master->obj, me, key_id), json_string_value(v))) {
            continue; /* uploaded with the key */
        }
        if (strcmp(key_id, master->key_id) == 0) {
            /* A self-signature: nothing to store, but it must be true. */
            if (sign_json_verify_bytes(json_object_get(obj, "signatures"), me, key_id,
                                       master->pk, canon, strlen(canon)) != 0) {
                *msg = "Invalid signature by the master key itself";
                return -ERR_INVALID_SIGNATURE;
            }
            continue;
        }
        unsigned char pk[KEYS_PUBLIC_BYTES];
        const char *b64 = NULL;
        for (size_t i = 0; i < n_devs && !b64 && strncmp(key_id, "ed25519:", 8) == 0; i++) {
            if (strcmp(devs[i].device_id, key_id + 8) == 0) {
                json_t *dk = json_arena(&r->arena, json_loads(devs[i].key_json, 0, NULL));
                b64 = dk ? json_get_str(json_object_get(dk, "keys"), key_id) : NULL;
            }
        }
        if (!b64 || !decode_ed25519(b64, pk)) {
            *msg = arena_printf(&r->arena, "%s is not a key of one of your devices", key_id);
            return -ERR_INVALID_SIGNATURE;
        }
        if (sign_json_verify_bytes(json_object_get(obj, "signatures"), me, key_id, pk, canon,
                                   strlen(canon)) != 0) {
            *msg = arena_printf(&r->arena, "Invalid signature by %s", key_id);
            return -ERR_INVALID_SIGNATURE;
        }
        sig_pending(batch, me, master->pub, me, key_id, json_string_value(v));
    }
    json_array_extend(pending, batch);
    return 0;
}

/* Signatures of the caller's own keys: devices by the self-signing key,
 * the master key by devices. */
static int sigs_own(struct req *r, const json_t *map, json_t *failures, json_t *pending)
{
    const char *me = r->auth.user_id;
    struct cs_key cs[CS_TYPES];
    int rc = cs_load(r, me, cs);
    struct store_device_keys *devs = NULL;
    size_t n_devs = 0;
    if (rc == 0) {
        rc = store_keys_device_list(r->db, &r->arena, me, &devs, &n_devs);
    }
    if (rc < 0) {
        return rc;
    }
    const char *key_id;
    const json_t *obj;
    json_object_foreach((json_t *)map, key_id, obj)
    {
        const char *msg = NULL;
        if (cs[CS_MASTER].pub && strcmp(key_id, cs[CS_MASTER].pub) == 0) {
            rc = sig_own_master(r, obj, &cs[CS_MASTER], devs, n_devs, pending, &msg);
        } else {
            rc = sig_own_device(r, key_id, obj, &cs[CS_SELF], devs, n_devs, pending, &msg);
        }
        if (rc) {
            sig_failure(failures, me, key_id, rc, msg);
        }
    }
    return 0;
}

/* Signatures of another user's master key by the caller's user-signing
 * key `usk`. */
static int sigs_other(struct req *r, const char *user_id, const json_t *map,
                      const struct cs_key *usk, json_t *failures, json_t *pending)
{
    const char *me = r->auth.user_id;
    struct cs_key cs[CS_TYPES];
    memset(cs, 0, sizeof(cs));
    const char *none = NULL;
    if (!usk->pub) {
        none = "You have no user-signing key";
    } else if (!is_local(r, user_id)) {
        none = "Keys of users on other servers are not supported yet";
    } else {
        int rc = cs_load(r, user_id, cs);
        if (rc < 0) {
            return rc;
        }
        if (!cs[CS_MASTER].pub) {
            none = arena_printf(&r->arena, "%s has no master key", user_id);
        }
    }
    const struct cs_key *master = &cs[CS_MASTER];
    const char *key_id;
    const json_t *obj;
    json_object_foreach((json_t *)map, key_id, obj)
    {
        if (none) {
            sig_failure(failures, user_id, key_id, -ERR_NOT_FOUND, none);
            continue;
        }
        if (strcmp(key_id, master->pub) != 0) {
            sig_failure(failures, user_id, key_id, -ERR_NOT_FOUND,
                        "Only the master key of another user can be signed");
            continue;
        }
        const char *sig = sig_of(obj, me, usk->key_id);
        if (!sig) {
            sig_failure(failures, user_id, key_id, -ERR_INVALID_SIGNATURE,
                        arena_printf(&r->arena, "Not signed by your user-signing key %s",
                                     usk->key_id));
            continue;
        }
        if (!same_signable(r, obj, master->obj)) {
            sig_failure(failures, user_id, key_id, -ERR_INVALID_PARAM,
                        "The signed object is not the user's master key");
            continue;
        }
        int rc = verify_code(sign_json_verify(obj, me, usk->key_id, usk->pk, CANONJSON_STRICT));
        if (rc) {
            sig_failure(failures, user_id, key_id, rc,
                        "Invalid signature by your user-signing key");
            continue;
        }
        sig_pending(pending, user_id, master->pub, me, usk->key_id, sig);
    }
    return 0;
}

/*
 * POST /keys/signatures/upload: {user ID: {key ID: signed object}}. Each
 * object must be the stored key (signatures aside) and its new signature
 * valid: one of the caller's devices signed by their self-signing key,
 * the caller's master key signed by their devices, or another user's
 * master key signed by the caller's user-signing key. Failures are
 * reported per key in `failures` and store nothing; the rest is stored
 * in one transaction that marks the caller's device list (also for a
 * signature of someone else's key, which only the signer can see).
 */
int client_keys_signatures_upload(struct req *r)
{
    const char *me = r->auth.user_id;
    size_t total = 0;
    const char *user_id;
    const json_t *map;
    json_object_foreach(r->json, user_id, map)
    {
        int rc = check_user_key(r, user_id);
        if (rc) {
            return rc;
        }
        if (!json_is_object(map)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'%s' must map key IDs to signed objects",
                            user_id);
        }
        const char *key_id;
        const json_t *obj;
        json_object_foreach((json_t *)map, key_id, obj)
        {
            if (!json_is_object(obj)) {
                return req_fail(r, -ERR_INVALID_PARAM, "'%s' / '%s' must be a signed object",
                                user_id, key_id);
            }
        }
        total += json_object_size(map);
    }
    if (total > KEYS_REQUEST_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "At most %d keys per request", KEYS_REQUEST_MAX);
    }

    json_t *failures = json_arena(&r->arena, json_object());
    json_t *pending = json_arena(&r->arena, json_array());
    struct cs_key mine[CS_TYPES];
    int rc = cs_load(r, me, mine);
    json_object_foreach(r->json, user_id, map)
    {
        if (rc < 0) {
            break;
        }
        rc = strcmp(user_id, me) == 0
                 ? sigs_own(r, map, failures, pending)
                 : sigs_other(r, user_id, map, &mine[CS_USER], failures, pending);
    }
    if (rc < 0) {
        return rc;
    }
    if (json_array_size(pending) > 0) {
        int64_t pos = client__device_lists_reserve(r);
        rc = store_begin(r->db);
        for (size_t i = 0; i < json_array_size(pending) && rc == 0; i++) {
            const json_t *p = json_array_get(pending, i);
            rc = store_keys_cs_signature_put(r->db, json_get_str(p, "u"), json_get_str(p, "t"),
                                             json_get_str(p, "s"), json_get_str(p, "k"),
                                             json_get_str(p, "v"));
        }
        /* Other servers see the signatures of the caller's own keys:
         * their devices' (by the self-signing key) and their master key's
         * (by their devices); signatures of other users' keys are the
         * caller's business only. */
        const char **devices = ARENA_ARRAY(&r->arena, const char *, json_array_size(pending));
        size_t n_devices = 0;
        bool master = false;
        for (size_t i = 0; i < json_array_size(pending); i++) {
            const json_t *p = json_array_get(pending, i);
            const char *target = json_get_str(p, "t");
            if (strcmp(json_get_str(p, "u"), me) != 0) {
                continue;
            }
            if (mine[CS_MASTER].pub && strcmp(target, mine[CS_MASTER].pub) == 0) {
                master = true;
            } else {
                bool have = false;
                for (size_t k = 0; k < n_devices && !have; k++) {
                    have = strcmp(devices[k], target) == 0;
                }
                if (!have) {
                    devices[n_devices++] = target;
                }
            }
        }
        if (rc == 0) {
            rc = client__device_lists_mark_devices(r, pos, me, devices, n_devices);
        }
        if (rc == 0 && master) {
            rc = client__device_lists_mark_signing(r, pos, me, true, false);
        }
        rc = store_end(r->db, rc);
        client__device_lists_publish(r, pos, &me, rc == 0 ? 1 : 0);
        if (rc < 0) {
            return rc;
        }
    }
    return req_json(r, 200, json_pack("{s:O}", "failures", failures));
}

/* ---- keys of users on other servers ---- */

/*
 * /keys/query and /keys/claim naming users of other servers ask each of
 * those servers once (Server-Server API POST /user/keys/query and
 * /user/keys/claim), all in parallel, after the local users are answered.
 *
 * The request parks while the answers come in. The federation client's
 * callbacks only record answers in a `struct gather` (heap: a callback may
 * come after the request is gone) and never touch the request; one
 * waiter thread per remote request sleeps until every answer is in or
 * the request's `timeout` passed, whichever is first, then hands what
 * arrived to a worker (req_continue) and closes the gather, so a late
 * answer is dropped. The federation client's own timeout covers only the
 * transfer, not server discovery, so the waiter's deadline is what
 * bounds the answer time. Servers without a usable answer go into
 * `failures`.
 *
 * Answers are checked as an untrusted peer's: only users we asked that
 * server about (so only its users), device keys listed under their own
 * user and device ID with a valid self-signature, cross-signing keys of
 * the right user and usage (self-signing ones signed by the master key of
 * the same answer), claimed keys of the requested devices and algorithms
 * (one per device). Anything else is dropped without failing the rest.
 */

#define REMOTE_TIMEOUT_DEFAULT_MS 10000 /* spec: the recommended default */
#define REMOTE_TIMEOUT_MAX_MS 60000

#define FED_USER_KEYS_QUERY "/_matrix/federation/v1/user/keys/query"
#define FED_USER_KEYS_CLAIM "/_matrix/federation/v1/user/keys/claim"

/* One server asked during a request (request arena). */
struct remote_ask {
    const char *server;
    json_t *wanted;       /* {user: [device...]} or {user: {device: algorithm}} */
    json_t *request;      /* the body sent */
    bool answered;        /* resp is set */
    struct fed_resp resp; /* body in the request arena */
};

/* What the continuation picks up (request arena, r->cont_data). */
struct remote_job {
    struct remote_ask *asks;
    size_t n;
    const char *uri;
    json_t *body; /* the answer being built, local users already in */
};

/* One call's slot in a gather. */
struct gather_call {
    struct gather *g;
    bool answered;
    struct fed_resp resp; /* body malloc'd, taken from the client */
};

/* Shared by the federation callbacks, the waiter and the request. */
struct gather {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    size_t pending;    /* calls not answered yet */
    size_t refs;       /* the waiter plus one per call not completed */
    bool closed;       /* the waiter took the answers; later ones are dropped */
    int64_t deadline_ns;
    struct req *r;
    struct remote_job *job; /* in r's arena: only until closed */
    int (*finish)(struct req *r);
    size_t n;
    struct gather_call *calls;
};

static void gather_free(struct gather *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->calls[i].resp.body);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->calls);
    free(g);
}

/* Drops one reference (lock held on entry, released here). */
static void gather_unref_unlock(struct gather *g)
{
    bool last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) {
        gather_free(g);
    }
}

/* fed_done_fn: records the answer unless the waiter is done already. */
static void gather_done(void *ctx, struct fed_resp *resp)
{
    struct gather_call *c = ctx;
    struct gather *g = c->g;
    pthread_mutex_lock(&g->mu);
    if (!g->closed) {
        c->answered = true;
        c->resp = *resp;
        resp->body = NULL; /* ours now */
        if (--g->pending == 0) {
            pthread_cond_signal(&g->cv);
        }
    }
    gather_unref_unlock(g);
}

/* The waiter: until every answer is in or the deadline, then hands the
 * request (parked, so no other thread touches it) back to a worker. */
static void *gather_wait(void *arg)
{
    struct gather *g = arg;
    pthread_mutex_lock(&g->mu);
    while (g->pending > 0 && req_now_ns() < g->deadline_ns) {
        struct timespec ts = {.tv_sec = (time_t)(g->deadline_ns / 1000000000LL),
                              .tv_nsec = (long)(g->deadline_ns % 1000000000LL)};
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
    }
    g->closed = true;
    struct req *r = g->r;
    struct remote_job *job = g->job;
    int (*finish)(struct req *r) = g->finish;
    for (size_t i = 0; i < job->n; i++) {
        struct gather_call *c = &g->calls[i];
        if (!c->answered) {
            continue;
        }
        struct remote_ask *a = &job->asks[i];
        a->answered = true;
        a->resp = c->resp;
        a->resp.body = c->resp.body ? arena_strndup(&r->arena, c->resp.body, c->resp.len) : NULL;
        free(c->resp.body);
        c->resp.body = NULL;
    }
    gather_unref_unlock(g);
    r->cont_data = job;
    req_continue(r, finish);
    return NULL;
}

/*
 * Sends job's requests and parks r until the answers are in or
 * timeout_ms passed; then `finish` runs on a worker with r->cont_data =
 * job. Everything the sends read is prepared by the caller, as the
 * request must not be touched once it is parked. Returns REQ_PARKED.
 */
static int remote_start(struct req *r, struct remote_job *job, int timeout_ms,
                        int (*finish)(struct req *r))
{
    struct gather *g = xcalloc(1, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &attr);
    pthread_condattr_destroy(&attr);
    g->pending = job->n;
    g->refs = job->n + 1;
    g->deadline_ns = req_now_ns() + (int64_t)timeout_ms * 1000000LL;
    g->r = r;
    g->job = job;
    g->finish = finish;
    g->n = job->n;
    g->calls = xcalloc(job->n, sizeof(*g->calls));
    for (size_t i = 0; i < job->n; i++) {
        g->calls[i].g = g;
    }
    struct fedclient *fed = r->srv->fed;
    req_park(r);
    /* Callbacks only touch the gather, so r stays ours until the waiter
     * starts below. */
    for (size_t i = 0; i < job->n; i++) {
        fedclient_send(fed, job->asks[i].server, "POST", job->uri, job->asks[i].request, true,
                       timeout_ms > 0 ? timeout_ms : 1, gather_done, &g->calls[i]);
    }
    pthread_t t;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &ta, gather_wait, g) != 0) {
        LOG_WARN("keys", "no waiter thread for a remote key request; waiting on the worker");
        gather_wait(g);
    }
    pthread_attr_destroy(&ta);
    return REQ_PARKED;
}

/* The request's `timeout` in milliseconds (spec: default 10 s), bounded;
 * 0 or the M_INVALID_PARAM failure. */
static int remote_timeout(struct req *r, int *out)
{
    const json_t *t = json_object_get(r->json, "timeout");
    *out = REMOTE_TIMEOUT_DEFAULT_MS;
    if (!t || json_is_null(t)) {
        return 0;
    }
    if (!json_is_number(t)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'timeout' must be a number of milliseconds");
    }
    double ms = json_number_value(t);
    *out = ms <= 0 ? 0 : ms >= REMOTE_TIMEOUT_MAX_MS ? REMOTE_TIMEOUT_MAX_MS : (int)ms;
    return 0;
}

/*
 * Groups the remote users of the request map `wanted` (validated) by
 * server into a job whose requests are {field: {user: ...}}; null device
 * lists become []. *job is NULL when every user is local.
 */
static struct remote_job *remote_group(struct req *r, const json_t *wanted, const char *field,
                                       const char *uri)
{
    json_t *by_server = json_arena(&r->arena, json_object());
    const char *user_id;
    const json_t *v;
    json_object_foreach((json_t *)wanted, user_id, v)
    {
        if (is_local(r, user_id)) {
            continue;
        }
        const char *server = id_server_part(user_id);
        json_t *users = json_object_get(by_server, server);
        if (!users) {
            users = json_object();
            json_object_set_new(by_server, server, users);
        }
        json_object_set_new(users, user_id,
                            json_is_null(v) ? json_array() : json_incref((json_t *)v));
    }
    size_t n = json_object_size(by_server);
    if (n == 0) {
        return NULL;
    }
    struct remote_job *job = ARENA_NEW(&r->arena, struct remote_job);
    job->asks = ARENA_ARRAY(&r->arena, struct remote_ask, n);
    job->uri = uri;
    const char *server;
    json_t *users;
    json_object_foreach(by_server, server, users)
    {
        struct remote_ask *a = &job->asks[job->n++];
        a->server = arena_strdup(&r->arena, server);
        a->wanted = users;
        a->request = json_arena(&r->arena, json_pack("{s:O}", field, users));
    }
    return job;
}

/* When there is no federation client: every remote server fails. */
static void remote_unavailable(struct remote_job *job, json_t *failures)
{
    for (size_t i = 0; i < job->n; i++) {
        add_failure(failures, job->asks[i].server, 503, "Federation is not available");
    }
}

/* The JSON answer of one asked server (arena-owned), or NULL with its
 * failure recorded. */
static json_t *remote_answer(struct req *r, const struct remote_ask *a, json_t *failures)
{
    if (!a->answered) {
        add_failure(failures, a->server, 504, "Timed out waiting for the server");
        return NULL;
    }
    if (a->resp.err) {
        add_failure(failures, a->server, 503, "Could not reach the server");
        return NULL;
    }
    if (a->resp.status != 200) {
        add_failure(failures, a->server, (int)a->resp.status,
                    arena_printf(&r->arena, "The server answered with status %ld",
                                 a->resp.status));
        return NULL;
    }
    json_t *ans = json_arena(&r->arena, fed_resp_json(&a->resp));
    if (!ans) {
        add_failure(failures, a->server, 502, "The server's answer is not a JSON object");
    }
    return ans;
}

/* A remote device's keys (spec "DeviceKeys"): listed under its own user
 * and device ID, with the device's ed25519 key and a valid signature by
 * it. Returns the object to serve (a new reference; only
 * unsigned.device_display_name kept of `unsigned`), or NULL. */
static json_t *remote_device_keys(const char *user_id, const char *device_id, const json_t *dk)
{
    const json_t *keys = json_object_get(dk, "keys");
    if (!json_is_object(dk) || !same_str(json_get_str(dk, "user_id"), user_id) ||
        !same_str(json_get_str(dk, "device_id"), device_id) || !json_is_object(keys) ||
        !json_is_array(json_object_get(dk, "algorithms"))) {
        return NULL;
    }
    char key_id[KEY_NAME_MAX_BYTES + 16];
    if (snprintf(key_id, sizeof(key_id), "ed25519:%s", device_id) >= (int)sizeof(key_id)) {
        return NULL;
    }
    const char *b64 = json_get_str(keys, key_id);
    unsigned char pk[KEYS_PUBLIC_BYTES];
    if (!b64 || !decode_ed25519(b64, pk) ||
        sign_json_verify(dk, user_id, key_id, pk, CANONJSON_STRICT) != 0) {
        return NULL;
    }
    json_t *out = json_deep_copy(dk);
    const char *name = json_get_str(json_object_get(dk, "unsigned"), "device_display_name");
    json_object_set_new(out, "unsigned",
                        name ? json_pack("{s:s}", "device_display_name", name) : json_object());
    return out;
}

/* A remote cross-signing key of `user_id` with `usage` (spec
 * "CrossSigningKey"); fills k. */
static bool remote_cs_key(struct req *r, const char *user_id, const json_t *obj,
                          const char *usage, struct cs_key *k)
{
    memset(k, 0, sizeof(*k));
    if (!json_is_object(obj) || !same_str(json_get_str(obj, "user_id"), user_id)) {
        return false;
    }
    const json_t *uses = json_object_get(obj, "usage");
    bool found = false;
    for (size_t i = 0; json_is_array(uses) && i < json_array_size(uses); i++) {
        found = found || same_str(json_string_value(json_array_get(uses, i)), usage);
    }
    if (!found || !cs_public_key(r, obj, k)) {
        return false;
    }
    k->obj = obj;
    return true;
}

/* Merges server a's checked /user/keys/query answer into body. */
static void query_merge(struct req *r, const struct remote_ask *a, const json_t *ans,
                        json_t *body)
{
    json_t *out_keys = json_object_get(body, "device_keys");
    const json_t *dk = json_object_get(ans, "device_keys");
    const char *user_id;
    const json_t *devices;
    json_object_foreach((json_t *)dk, user_id, devices)
    {
        const json_t *ids = json_object_get(a->wanted, user_id);
        if (!ids || !json_is_object(devices)) {
            continue; /* not asked (nor, then, of that server) */
        }
        json_t *out = json_object();
        const char *device_id;
        const json_t *keys;
        json_object_foreach((json_t *)devices, device_id, keys)
        {
            json_t *ok = wanted(ids, device_id) ? remote_device_keys(user_id, device_id, keys)
                                                : NULL;
            if (ok) {
                json_object_set_new(out, device_id, ok);
            }
        }
        json_object_set_new(out_keys, user_id, out);
    }
    const json_t *masters = json_object_get(ans, "master_keys");
    const json_t *selfs = json_object_get(ans, "self_signing_keys");
    const json_t *obj;
    json_object_foreach((json_t *)masters, user_id, obj)
    {
        struct cs_key master, ssk;
        if (!json_object_get(a->wanted, user_id) ||
            !remote_cs_key(r, user_id, obj, "master", &master)) {
            continue;
        }
        json_object_set_new(json_object_get(body, "master_keys"), user_id, json_deep_copy(obj));
        const json_t *s = json_object_get(selfs, user_id);
        if (s && remote_cs_key(r, user_id, s, "self_signing", &ssk) &&
            sign_json_verify(s, user_id, master.key_id, master.pk, CANONJSON_STRICT) == 0) {
            json_object_set_new(json_object_get(body, "self_signing_keys"), user_id,
                                json_deep_copy(s));
        }
    }
}

/* Continuation of /keys/query: the remote answers merged in. */
static int query_finish(struct req *r)
{
    struct remote_job *job = r->cont_data;
    json_t *failures = json_object_get(job->body, "failures");
    for (size_t i = 0; i < job->n; i++) {
        json_t *ans = remote_answer(r, &job->asks[i], failures);
        if (ans) {
            query_merge(r, &job->asks[i], ans, job->body);
        }
    }
    return req_json(r, 200, json_incref(job->body));
}

/* Merges server a's checked /user/keys/claim answer into `out`: for each
 * device asked, one key of the asked algorithm. */
static void claim_merge(struct req *r, const struct remote_ask *a, const json_t *ans,
                        json_t *out)
{
    const json_t *otks = json_object_get(ans, "one_time_keys");
    const char *user_id;
    const json_t *devices;
    json_object_foreach((json_t *)otks, user_id, devices)
    {
        const json_t *asked = json_object_get(a->wanted, user_id);
        const char *device_id;
        const json_t *keys;
        json_object_foreach((json_t *)devices, device_id, keys)
        {
            const char *alg = json_get_str(asked, device_id);
            if (!alg || !json_is_object(keys)) {
                continue;
            }
            const char *name;
            const json_t *key;
            json_object_foreach((json_t *)keys, name, key)
            {
                char *k_alg, *k_id;
                bool shaped = json_is_string(key) ||
                              (json_is_object(key) && json_is_string(json_object_get(key, "key")));
                if (shaped && split_key_name(r, name, &k_alg, &k_id) && strcmp(k_alg, alg) == 0) {
                    claimed_add(out, user_id, device_id, name, json_deep_copy(key));
                    break;
                }
            }
        }
    }
}

/* Continuation of /keys/claim: the remote answers merged in. */
static int claim_finish(struct req *r)
{
    struct remote_job *job = r->cont_data;
    json_t *failures = json_object_get(job->body, "failures");
    json_t *out = json_object_get(job->body, "one_time_keys");
    for (size_t i = 0; i < job->n; i++) {
        json_t *ans = remote_answer(r, &job->asks[i], failures);
        if (ans) {
            claim_merge(r, &job->asks[i], ans, out);
        }
    }
    return req_json(r, 200, json_incref(job->body));
}

/* ---- POST /keys/query and /keys/claim ---- */

/*
 * The users of other servers in `wanted[field]`, asked with `uri`: none
 * answers `body` now; without a federation client they all go into its
 * failures; otherwise the request parks and finish(r) answers.
 */
static int remote_run(struct req *r, const json_t *wanted, const char *field, const char *uri,
                      json_t *body, int timeout_ms, int (*finish)(struct req *r))
{
    struct remote_job *job = remote_group(r, wanted, field, uri);
    if (!job) {
        return req_json(r, 200, json_incref(body));
    }
    job->body = body;
    if (!r->srv->fed) {
        remote_unavailable(job, json_object_get(body, "failures"));
        return req_json(r, 200, json_incref(body));
    }
    return remote_start(r, job, timeout_ms, finish);
}

int client_keys_query(struct req *r)
{
    const json_t *req_keys = json_object_get(r->json, "device_keys");
    int timeout_ms;
    int rc = client__keys_check_query(r, req_keys);
    if (!rc) {
        rc = remote_timeout(r, &timeout_ms);
    }
    if (rc) {
        return rc;
    }
    json_t *body = json_arena(&r->arena, json_pack("{s:{},s:{},s:{},s:{},s:{}}", "device_keys",
                                                   "failures", "master_keys",
                                                   "self_signing_keys", "user_signing_keys"));
    rc = client__keys_query_local(r, req_keys, r->auth.user_id, body);
    if (rc < 0) {
        return rc;
    }
    return remote_run(r, req_keys, "device_keys", FED_USER_KEYS_QUERY, body, timeout_ms,
                      query_finish);
}

int client_keys_claim(struct req *r)
{
    const json_t *req_keys = json_object_get(r->json, "one_time_keys");
    int timeout_ms;
    int rc = client__keys_check_claim(r, req_keys);
    if (!rc) {
        rc = remote_timeout(r, &timeout_ms);
    }
    if (rc) {
        return rc;
    }
    json_t *body = json_arena(&r->arena,
                              json_pack("{s:{},s:{}}", "one_time_keys", "failures"));
    rc = client__keys_claim_local(r, req_keys, json_object_get(body, "one_time_keys"));
    if (rc < 0) {
        return rc;
    }
    return remote_run(r, req_keys, "one_time_keys", FED_USER_KEYS_CLAIM, body, timeout_ms,
                      claim_finish);
}

/* ---- for /sync ---- */

int client__keys_sync_counts(struct req *r, const char *user_id, const char *device_id,
                             json_t **otk_counts, json_t **unused_fallback)
{
    *otk_counts = NULL;
    *unused_fallback = NULL;
    if (!device_id) {
        *otk_counts = json_pack("{s:i}", OTK_ALGORITHM_DEFAULT, 0);
        *unused_fallback = json_array();
        return 0;
    }
    char **algs;
    size_t n;
    int rc = store_keys_fallback_unused(r->db, &r->arena, user_id, device_id, &algs, &n);
    if (rc < 0) {
        return rc;
    }
    rc = otk_counts_json(r, user_id, device_id, otk_counts);
    if (rc < 0) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(algs[i]));
    }
    *unused_fallback = arr;
    return 0;
}
