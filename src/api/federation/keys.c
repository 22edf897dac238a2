/*
 * GET /_matrix/key/v2/server (Server-Server API "Retrieving server keys",
 * "Publishing Keys"): this server's signing keys, signed by itself. The
 * older /_matrix/key/v2/server/{keyId} form left the spec in v1.7 and is
 * not served. As a notary ("Querying Keys Through Another Server"),
 * GET /_matrix/key/v2/query/{serverName} and POST /_matrix/key/v2/query
 * answer the responses svc/keyring holds (or fetches) for other servers,
 * countersigned by this server.
 *
 * The body is written as canonical JSON, so what peers receive is exactly
 * the bytes the signature covers (plus the signatures member).
 */
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "base/buf.h"
#include "base/err.h"
#include "config.h"
#include "core/canonjson.h"
#include "core/keys.h"
#include "core/sign.h"
#include "core/id.h"
#include "svc/keyring.h"
#include "svc/srv.h"

/*
 * How long peers may cache the response. Readers cap it at 7 days anyway;
 * a day keeps a replaced key file from lingering in caches for long, and is
 * well above the hour the spec asks responses not to go below.
 */
#define KEYS_VALIDITY_MS (24LL * 3600 * 1000)

/* This server's own key response, signed (a new reference), or NULL. */
static json_t *own_response(struct req *r)
{
    const struct signing_key *key = &r->srv->key;
    const char *server_name = r->srv->cfg->server_name;
    char pk64[64];
    keys_b64_encode(key->pk, KEYS_PUBLIC_BYTES, pk64);

    json_t *body = json_pack("{s:s, s:{s:{s:s}}, s:{}, s:I}", "server_name", server_name,
                             "verify_keys", key->key_id, "key", pk64, "old_verify_keys",
                             "valid_until_ts", (json_int_t)(req_now_ms() + KEYS_VALIDITY_MS));
    if (!body) {
        return NULL;
    }
    /* Keys we signed with before (config old_signing_keys), so events and
     * requests signed with them still verify. */
    json_t *old = json_object_get(body, "old_verify_keys");
    const struct config *cfg = r->srv->cfg;
    for (size_t i = 0; i < cfg->n_old_keys; i++) {
        json_object_set_new(old, cfg->old_keys[i].key_id,
                            json_pack("{s:s,s:I}", "key", cfg->old_keys[i].key, "expired_ts",
                                      (json_int_t)cfg->old_keys[i].expired_ts));
    }
    /* Non-event objects are always signed with strict canonical JSON. */
    if (sign_json_add(body, key, server_name, CANONJSON_STRICT) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Sends `body` as canonical JSON, so what peers receive is exactly the
 * bytes the signatures cover (plus the signatures member). */
static int send_canonical(struct req *r, json_t *body)
{
    struct buf out = BUF_INIT;
    int rc = body ? canonjson_write(&out, body, CANONJSON_STRICT) : -1;
    json_decref(body);
    if (rc) {
        buf_release(&out);
        return req_fail(r, -ERR_UNKNOWN, "cannot sign the key response");
    }
    req_bytes(r, 200, "application/json", out.p, out.len);
    buf_release(&out);
    return 0;
}

int keys_server(struct req *r) { return send_canonical(r, own_response(r)); }

/* ---- notary (spec "Querying Keys Through Another Server") ---- */

/* Most servers one notary request may ask about. */
#define NOTARY_MAX_SERVERS 100

/* Appends the key responses of `server` valid until min_valid_ms, each
 * countersigned by this server, to `list`. */
static int notary_add(struct req *r, const char *server, int64_t min_valid_ms, json_t *list)
{
    if (strcmp(server, r->srv->cfg->server_name) == 0) {
        json_t *own = own_response(r);
        if (own) {
            json_array_append_new(list, own);
        }
        return 0;
    }
    if (!id_server_name_valid(server, strlen(server))) {
        return 0; /* nothing to say about a name that cannot exist */
    }
    json_t *found = json_array();
    int rc = keyring_responses(r->srv->keyring, r->db, server, min_valid_ms, found);
    size_t i;
    json_t *resp;
    json_array_foreach(found, i, resp)
    {
        if (sign_json_add(resp, &r->srv->key, r->srv->cfg->server_name, CANONJSON_STRICT) ==
            0) {
            json_array_append(list, resp);
        }
    }
    json_decref(found);
    return rc;
}

/* GET /_matrix/key/v2/query/{serverName}?minimum_valid_until_ts= */
int keys_query_get(struct req *r)
{
    int64_t min_valid = req_now_ms();
    const char *mv = req_query(r, "minimum_valid_until_ts");
    if (mv) {
        char *end;
        long long v = strtoll(mv, &end, 10);
        if (*end || v < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "Invalid minimum_valid_until_ts");
        }
        min_valid = v;
    }
    json_t *list = json_array();
    int rc = notary_add(r, r->param[0].p, min_valid, list);
    if (rc < 0) {
        json_decref(list);
        return req_fail(r, rc, NULL);
    }
    return send_canonical(r, json_pack("{s:o}", "server_keys", list));
}

/* POST /_matrix/key/v2/query {server_keys: {server: {key_id: {minimum_valid_until_ts}}}} */
int keys_query_post(struct req *r)
{
    const json_t *want = json_object_get(r->json, "server_keys");
    if (!json_is_object(want)) {
        return req_fail(r, -ERR_BAD_JSON, "'server_keys' must be an object");
    }
    if (json_object_size(want) > NOTARY_MAX_SERVERS) {
        return req_fail(r, -ERR_TOO_LARGE, "At most %d servers per request", NOTARY_MAX_SERVERS);
    }
    json_t *list = json_array();
    const char *server;
    const json_t *keys;
    int rc = 0;
    json_object_foreach((json_t *)want, server, keys)
    {
        if (!json_is_object(keys)) {
            json_decref(list);
            return req_fail(r, -ERR_BAD_JSON, "The keys of '%s' must be an object", server);
        }
        /* The strictest criterion asked for any of its keys; now when none. */
        int64_t min_valid = 0;
        const char *key_id;
        const json_t *crit;
        json_object_foreach((json_t *)keys, key_id, crit)
        {
            const json_t *mv = json_object_get(crit, "minimum_valid_until_ts");
            if (json_is_integer(mv) && json_integer_value(mv) > min_valid) {
                min_valid = json_integer_value(mv);
            }
        }
        rc = notary_add(r, server, min_valid ? min_valid : req_now_ms(), list);
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        json_decref(list);
        return req_fail(r, rc, NULL);
    }
    return send_canonical(r, json_pack("{s:o}", "server_keys", list));
}
