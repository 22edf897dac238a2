/*
 * End-to-end encryption keys and device lists for other servers (spec:
 * Server-Server API "End-to-End Encryption" and "Device Management"):
 * POST /_matrix/federation/v1/user/keys/query, POST /user/keys/claim and
 * GET /user/devices/{userId}. Every route is AUTH_SERVER (a verified
 * X-Matrix signature).
 *
 * Only users of this server are answered: a query or claim naming others
 * simply leaves them out, and /user/devices refuses them (403). The local
 * work is the client API's (api/client/keys.c, client__keys_*_local), with
 * the view of another server: device keys and the master and
 * self-signing keys with the signatures users made of their own keys,
 * never a user-signing key nor the signatures one user made of another's
 * keys. Claims hand out each one-time key once, then the fallback key,
 * exactly as for local clients.
 */
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/srv.h"
#include "svc/streams.h"

int fed_user_keys_query(struct req *r)
{
    const json_t *wanted = json_object_get(r->json, "device_keys");
    int rc = client__keys_check_query(r, wanted);
    if (rc) {
        return rc;
    }
    json_t *body = json_arena(&r->arena, json_pack("{s:{},s:{},s:{}}", "device_keys",
                                                   "master_keys", "self_signing_keys"));
    rc = client__keys_query_local(r, wanted, NULL, body);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_incref(body));
}

int fed_user_keys_claim(struct req *r)
{
    const json_t *wanted = json_object_get(r->json, "one_time_keys");
    int rc = client__keys_check_claim(r, wanted);
    if (rc) {
        return rc;
    }
    json_t *body = json_arena(&r->arena, json_pack("{s:{}}", "one_time_keys"));
    rc = client__keys_claim_local(r, wanted, json_object_get(body, "one_time_keys"));
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_incref(body));
}

/*
 * GET /user/devices/{userId}: the devices of a local user that have
 * identity keys, with their display names, and the user's master and
 * self-signing keys. stream_id is the device-list stream's current
 * position: at or above the position of every change of this list, so an
 * m.device_list_update with a stream_id up to it is already included.
 */
int fed_user_devices(struct req *r)
{
    const char *user_id = r->param[0].p;
    if (!id_user_valid(user_id, strlen(user_id), false)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid user ID");
    }
    if (!client__local_part(r, user_id)) {
        return req_fail(r, -ERR_FORBIDDEN, "%s is not a user of this server", user_id);
    }
    struct store_user user;
    int rc = store_user_get(r->db, &r->arena, user_id, &user);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown user %s", user_id);
    }
    if (rc < 0) {
        return rc;
    }
    int64_t stream_id = streams_current(r->srv->streams, STREAM_DEVICE_LISTS);
    json_t *wanted = json_arena(&r->arena, json_pack("{s:[]}", user_id));
    json_t *keys = json_arena(&r->arena, json_pack("{s:{},s:{},s:{}}", "device_keys",
                                                   "master_keys", "self_signing_keys"));
    rc = client__keys_query_local(r, wanted, NULL, keys);
    if (rc < 0) {
        return rc;
    }
    json_t *devices = json_array();
    const char *device_id;
    json_t *dk;
    json_object_foreach(json_object_get(json_object_get(keys, "device_keys"), user_id),
                        device_id, dk)
    {
        json_t *dev = json_pack("{s:s,s:O}", "device_id", device_id, "keys", dk);
        const char *name = json_get_str(json_object_get(dk, "unsigned"), "device_display_name");
        if (name) {
            json_object_set_new(dev, "device_display_name", json_string(name));
        }
        json_object_del(dk, "unsigned");
        json_array_append_new(devices, dev);
    }
    json_t *body = json_pack("{s:s,s:I,s:o}", "user_id", user_id, "stream_id",
                             (json_int_t)stream_id, "devices", devices);
    json_t *master = json_object_get(json_object_get(keys, "master_keys"), user_id);
    json_t *ssk = json_object_get(json_object_get(keys, "self_signing_keys"), user_id);
    if (master) {
        json_object_set(body, "master_key", master);
    }
    if (ssk) {
        json_object_set(body, "self_signing_key", ssk);
    }
    return req_json(r, 200, body);
}
