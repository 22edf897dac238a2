/*
 * Device management (spec: Client-Server API "Device management"): list,
 * read and rename devices, and delete them behind user-interactive auth.
 * Deleting a device revokes its access and refresh tokens and evicts them
 * from the token cache before answering, so they fail at once; its
 * end-to-end encryption keys are deleted with it.
 * Its queue of undelivered to-device messages is dropped too.
 */
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "store/store.h"
#include "svc/auth.h"
#include "svc/srv.h"
#include "svc/uia.h"

#define DELETE_DEVICES_MAX 1000

static const struct uia_flow flow_password[] = {{{"m.login.password"}, 1}};

/* The spec's Device object; unset fields are left out. */
static json_t *device_json(const struct store_device *d)
{
    json_t *o = json_pack("{s:s}", "device_id", d->device_id);
    if (d->display_name) {
        json_object_set_new(o, "display_name", json_string(d->display_name));
    }
    if (d->last_seen_ip) {
        json_object_set_new(o, "last_seen_ip", json_string(d->last_seen_ip));
    }
    if (d->last_seen_ts > 0) {
        json_object_set_new(o, "last_seen_ts", json_integer(d->last_seen_ts));
    }
    return o;
}

int client_devices_list(struct req *r)
{
    struct store_device *list;
    size_t n;
    int rc = store_device_list(r->db, &r->arena, r->auth.user_id, &list, &n);
    if (rc < 0) {
        return rc;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, device_json(&list[i]));
    }
    return req_json(r, 200, json_pack("{s:o}", "devices", arr));
}

int client_device_get(struct req *r)
{
    struct store_device d;
    int rc = store_device_get(r->db, &r->arena, r->auth.user_id, r->param[0].p, &d);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown device");
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, device_json(&d));
}

/* PUT /devices/{deviceId}: an absent display_name changes nothing, null
 * clears it. */
int client_device_put(struct req *r)
{
    json_t *v = json_object_get(r->json, "display_name");
    const char *name = NULL;
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'display_name' must be a string");
        }
        if (json_string_length(v) > CLIENT_DISPLAY_NAME_MAX_BYTES) {
            return req_fail(r, -ERR_INVALID_PARAM, "'display_name' is too long");
        }
        name = json_string_value(v);
    }
    int rc;
    if (v) {
        rc = store_device_set_name(r->db, r->auth.user_id, r->param[0].p, name);
    } else {
        struct store_device d;
        rc = store_device_get(r->db, &r->arena, r->auth.user_id, r->param[0].p, &d);
    }
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown device");
    }
    if (rc == 0 && v) {
        /* The name is part of what other users' clients show. */
        rc = client__device_lists_changed(r, r->auth.user_id, r->param[0].p);
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

/* Deletes the devices (unknown ones are skipped: deletion is idempotent)
 * and evicts their tokens. */
static int delete_devices(struct req *r, const char *const *ids, size_t n)
{
    int64_t dl = client__device_lists_reserve(r);
    int rc = store_begin(r->db);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = store_device_delete(r->db, r->auth.user_id, ids[i]);
        if (rc == -ERR_NOT_FOUND) {
            rc = 0;
        }
    }
    if (rc == 0) {
        rc = store_keys_prune_devices(r->db, r->auth.user_id); /* their E2EE keys go too */
    }
    if (rc == 0) {
        rc = store_to_device_prune(r->db, r->auth.user_id); /* and their to-device queues */
    }
    if (rc == 0) {
        /* others forget them */
        rc = client__device_lists_mark_devices(r, dl, r->auth.user_id, ids, n);
    }
    rc = store_end(r->db, rc);
    client__device_lists_publish(r, dl, &r->auth.user_id, 1);
    for (size_t i = 0; i < n; i++) {
        auth_cache_evict_device(r->srv->auth, r->auth.user_id, ids[i]);
    }
    return rc;
}

/*
 * DELETE /devices/{deviceId}, behind UIA (m.login.password). Answers 200
 * for a device that does not exist (as after a repeated request), once
 * UIA has passed.
 */
int client_device_delete(struct req *r)
{
    const char *session;
    int rc = uia_check(r, "delete_devices", flow_password, 1, r->auth.user_id, NULL, &session);
    if (rc) {
        return rc;
    }
    const char *id = r->param[0].p;
    rc = delete_devices(r, &id, 1);
    if (rc < 0) {
        return rc;
    }
    uia_session_end(r->srv->uia, session);
    return req_json(r, 200, json_object());
}

/* POST /delete_devices {"devices": [...]}, behind UIA. */
int client_delete_devices(struct req *r)
{
    json_t *arr = json_object_get(r->json, "devices");
    if (!arr) {
        return req_fail(r, -ERR_MISSING_PARAM, "'devices' is required");
    }
    if (!json_is_array(arr)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'devices' must be an array");
    }
    size_t n = json_array_size(arr);
    if (n > DELETE_DEVICES_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "At most %d devices per request",
                        DELETE_DEVICES_MAX);
    }
    const char **ids = ARENA_ARRAY(&r->arena, const char *, n + 1);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'devices' must hold device ID strings");
        }
        ids[i] = json_string_value(v);
    }
    const char *session;
    int rc = uia_check(r, "delete_devices", flow_password, 1, r->auth.user_id, NULL, &session);
    if (rc) {
        return rc;
    }
    rc = delete_devices(r, ids, n);
    if (rc < 0) {
        return rc;
    }
    uia_session_end(r->srv->uia, session);
    return req_json(r, 200, json_object());
}
