/*
 * GET /_matrix/key/v2/server (Server-Server API "Retrieving server keys",
 * "Publishing Keys"): this server's signing keys, signed by itself. The
 * older /_matrix/key/v2/server/{keyId} form left the spec in v1.7 and is
 * not served.
 *
 * The body is written as canonical JSON, so what peers receive is exactly
 * the bytes the signature covers (plus the signatures member).
 */
#include "api/handlers.h"
#include "base/buf.h"
#include "base/err.h"
#include "config.h"
#include "core/canonjson.h"
#include "core/keys.h"
#include "core/sign.h"
#include "svc/srv.h"

/*
 * How long peers may cache the response. Readers cap it at 7 days anyway;
 * a day keeps a replaced key file from lingering in caches for long, and is
 * well above the hour the spec asks responses not to go below.
 */
#define KEYS_VALIDITY_MS (24LL * 3600 * 1000)

int keys_server(struct req *r)
{
    const struct signing_key *key = &r->srv->key;
    const char *server_name = r->srv->cfg->server_name;
    char pk64[64];
    keys_b64_encode(key->pk, KEYS_PUBLIC_BYTES, pk64);

    json_t *body = json_pack("{s:s, s:{s:{s:s}}, s:{}, s:I}", "server_name", server_name,
                             "verify_keys", key->key_id, "key", pk64, "old_verify_keys",
                             "valid_until_ts", (json_int_t)(req_now_ms() + KEYS_VALIDITY_MS));
    if (!body) {
        return req_fail(r, -ERR_UNKNOWN, NULL);
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
    int rc = sign_json_add(body, key, server_name, CANONJSON_STRICT);
    struct buf out = BUF_INIT;
    if (rc == 0) {
        rc = canonjson_write(&out, body, CANONJSON_STRICT);
    }
    json_decref(body);
    if (rc) {
        buf_release(&out);
        return req_fail(r, -ERR_UNKNOWN, "cannot sign the key response");
    }
    req_bytes(r, 200, "application/json", out.p, out.len);
    buf_release(&out);
    return 0;
}
