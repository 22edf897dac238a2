/*
 * End-to-end encryption keys (spec: Client-Server API "End-to-End
 * Encryption", "Key management API"): POST /keys/upload (device identity
 * keys, one-time keys, fallback keys), POST /keys/query and POST
 * /keys/claim for local users, and the one-time key counts /sync reports.
 *
 * The server never sees private keys, but it is what other devices trust
 * to hand out the right public ones, so uploads are checked: device keys
 * must name the caller's user and device and carry a valid ed25519
 * self-signature by the device's own ed25519 key (appendix "Signing
 * JSON"), and signed one-time and fallback keys must be signed by that
 * key whenever it is known. Users of other servers go into `failures`
 * until federation of keys exists; cross-signing keys (master,
 * self-signing, user-signing) are answered as empty maps until
 * cross-signing lands.
 */
#include <jansson.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "config.h"
#include "core/canonjson.h"
#include "core/id.h"
#include "core/keys.h"
#include "core/sign.h"
#include "store/store.h"
#include "svc/srv.h"

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

/* The server name of a user ID (after the first ':'), or NULL. */
static const char *user_server(const char *user_id)
{
    const char *colon = strchr(user_id, ':');
    return colon ? colon + 1 : NULL;
}

/* Whether `user_id` is one of ours (already known to be well formed). */
static bool is_local(struct req *r, const char *user_id)
{
    const char *server = user_server(user_id);
    return server && strcmp(server, r->srv->cfg->server_name) == 0;
}

/* Adds {"status": 503, "message": ...} for `server` to `failures`. */
static void add_failure(json_t *failures, const char *server)
{
    if (!json_object_get(failures, server)) {
        json_object_set_new(failures, server,
                            json_pack("{s:i,s:s}", "status", 503, "message",
                                      "Federation of keys is not supported yet"));
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
        rc = store_keys_device_put(r->db, r->auth.user_id, r->auth.device_id, dk_json,
                                   req_now_ms());
    }
    if (rc == 0 && otks) {
        rc = store_one_time_keys(r, otks, pk);
    }
    if (rc == 0 && fks) {
        rc = store_fallback_keys(r, fks, pk);
    }
    rc = store_end(r->db, rc);
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

/* The local user's devices with keys, as /keys/query serves them. */
static int query_user(struct req *r, const char *user_id, const json_t *ids, json_t **out)
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
        json_object_set_new(devices, list[i].device_id, keys);
    }
    *out = devices;
    return 0;
}

int client_keys_query(struct req *r)
{
    const json_t *req_keys = json_object_get(r->json, "device_keys");
    if (!req_keys) {
        return req_fail(r, -ERR_MISSING_PARAM, "'device_keys' is required");
    }
    if (!json_is_object(req_keys)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_keys' must be an object");
    }
    if (json_object_size(req_keys) > KEYS_REQUEST_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "At most %d users per query", KEYS_REQUEST_MAX);
    }
    const char *user_id;
    const json_t *ids;
    json_object_foreach((json_t *)req_keys, user_id, ids)
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

    json_t *body = json_arena(&r->arena, json_pack("{s:{},s:{},s:{},s:{},s:{}}", "device_keys",
                                                   "failures", "master_keys",
                                                   "self_signing_keys", "user_signing_keys"));
    json_t *out_keys = json_object_get(body, "device_keys");
    json_t *failures = json_object_get(body, "failures");
    json_object_foreach((json_t *)req_keys, user_id, ids)
    {
        if (!is_local(r, user_id)) {
            add_failure(failures, user_server(user_id));
            continue;
        }
        json_t *devices;
        int rc = query_user(r, user_id, json_is_array(ids) ? ids : NULL, &devices);
        if (rc < 0) {
            return rc;
        }
        /* Every queried local user appears, as Synapse answers. */
        json_object_set_new(out_keys, user_id, devices);
    }
    return req_json(r, 200, json_incref(body));
}

/* ---- POST /keys/claim ---- */

int client_keys_claim(struct req *r)
{
    const json_t *req_keys = json_object_get(r->json, "one_time_keys");
    if (!req_keys) {
        return req_fail(r, -ERR_MISSING_PARAM, "'one_time_keys' is required");
    }
    if (!json_is_object(req_keys)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'one_time_keys' must be an object");
    }
    size_t total = 0;
    const char *user_id;
    const json_t *devs;
    json_object_foreach((json_t *)req_keys, user_id, devs)
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

    json_t *body = json_arena(&r->arena,
                              json_pack("{s:{},s:{}}", "one_time_keys", "failures"));
    json_t *out_keys = json_object_get(body, "one_time_keys");
    json_t *failures = json_object_get(body, "failures");
    int rc = store_begin(r->db);
    json_object_foreach((json_t *)req_keys, user_id, devs)
    {
        if (rc < 0) {
            break;
        }
        if (!is_local(r, user_id)) {
            add_failure(failures, user_server(user_id));
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
            if (!key) {
                continue;
            }
            json_t *user = json_object_get(out_keys, user_id);
            if (!user) {
                user = json_object();
                json_object_set_new(out_keys, user_id, user);
            }
            json_t *dev = json_object_get(user, device_id);
            if (!dev) {
                dev = json_object();
                json_object_set_new(user, device_id, dev);
            }
            json_object_set_new(dev, arena_printf(&r->arena, "%s:%s", algorithm, key_id), key);
        }
    }
    rc = store_end(r->db, rc);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_incref(body));
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
