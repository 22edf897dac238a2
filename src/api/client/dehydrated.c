/*
 * Dehydrated devices (MSC3814 "Dehydrated Devices with SSSS", served under
 * its unstable prefix /_matrix/client/unstable/org.matrix.msc3814.v1 and
 * advertised as org.matrix.msc3814 in /versions): a device a client
 * leaves in the user's account, encrypted with a key kept in secret
 * storage, so that room keys sent while no client of the user is online
 * can be collected at the next login.
 *
 *   PUT    /dehydrated_device                replaces the user's dehydrated
 *                                            device and uploads its keys
 *   GET    /dehydrated_device                {device_id, device_data}
 *   DELETE /dehydrated_device                deletes it
 *   POST   /dehydrated_device/{id}/events    its to-device messages, paged
 *   GET    /dehydrated_device/{id}/events    the same with ?from= (newer
 *                                            drafts, as Synapse serves)
 *
 * The device is a row of `devices` marked dehydrated (schema 018), so
 * /keys/query, /keys/claim, /sendToDevice ("*" included), GET /devices
 * (as Synapse lists it) and every deletion path treat it like any other
 * device; it never has an access token. Its keys go through the checks of
 * POST /keys/upload (client_keys_upload run as the new device), before the
 * device row exists, so a refused upload leaves the old dehydrated device
 * in place (unless it had the same ID: it goes first, so that old and new
 * keys never mix). Creating and deleting it are device-list changes.
 *
 * Reading its messages does not delete them: the MSC asks servers to keep
 * earlier batches so an interrupted rehydration can start over (Synapse
 * does the same). They go when the device is replaced or deleted.
 */
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "store/store.h"
#include "svc/auth.h"
#include "svc/srv.h"
#include "svc/streams.h"

#define EVENTS_DEFAULT_LIMIT 100 /* as Synapse */
#define EVENTS_MAX_LIMIT 1000

/* Deletes the caller's device `device_id` with its keys and to-device
 * queue in a transaction of its own, as a device-list change. 0,
 * -ERR_NOT_FOUND when it is gone already, or a negative ERR_*. */
static int delete_device(struct req *r, const char *device_id)
{
    const char *user_id = r->auth.user_id;
    int64_t dl = client__device_lists_reserve(r);
    int rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_device_delete(r->db, user_id, device_id);
        if (rc == 0) {
            rc = store_keys_prune_devices(r->db, user_id);
        }
        if (rc == 0) {
            rc = store_to_device_prune(r->db, user_id);
        }
        if (rc == 0) {
            rc = client__device_lists_mark_devices(r, dl, user_id, &device_id, 1);
        }
        rc = store_end(r->db, rc);
    }
    client__device_lists_publish(r, dl, &user_id, 1);
    /* It has no tokens, unless someone logged in with its ID. */
    auth_cache_evict_device(r->srv->auth, user_id, device_id);
    return rc;
}

/* ---- PUT /dehydrated_device ---- */

/* Checks the body's own fields (the key fields are client_keys_upload's).
 * 0 or the failure set on r. */
static int check_put_body(struct req *r, const char **device_id, const json_t **device_data,
                          const char **display_name)
{
    const json_t *id = json_object_get(r->json, "device_id");
    if (!id) {
        return req_fail(r, -ERR_MISSING_PARAM, "'device_id' is required");
    }
    if (!json_is_string(id) || json_string_length(id) == 0 ||
        json_string_length(id) > CLIENT_DEVICE_ID_MAX_BYTES ||
        strlen(json_string_value(id)) != json_string_length(id)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'device_id' must be a device ID string");
    }
    const json_t *data = json_object_get(r->json, "device_data");
    if (!data) {
        return req_fail(r, -ERR_MISSING_PARAM, "'device_data' is required");
    }
    if (!json_is_object(data) || !json_is_string(json_object_get(data, "algorithm"))) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "'device_data' must be an object with a string 'algorithm'");
    }
    const json_t *dk = json_object_get(r->json, "device_keys");
    if (!dk || json_is_null(dk)) {
        /* The MSC uploads device and keys together, so a dehydrated
         * device can always be encrypted to. */
        return req_fail(r, -ERR_MISSING_PARAM, "'device_keys' is required");
    }
    *device_id = json_string_value(id);
    *device_data = data;
    return client__opt_string(r, "initial_device_display_name", CLIENT_DISPLAY_NAME_MAX_BYTES,
                              display_name);
}

/* Deletes the keys a PUT uploaded for a device it then failed to create. */
static void drop_stray_keys(struct req *r)
{
    if (store_begin(r->db) == 0) {
        store_end(r->db, store_keys_prune_devices(r->db, r->auth.user_id));
    }
}

int client_dehydrated_device_put(struct req *r)
{
    const char *device_id, *display_name;
    const json_t *device_data;
    int rc = check_put_body(r, &device_id, &device_data, &display_name);
    if (rc) {
        return rc;
    }
    char *data_json = json_dumps(device_data, JSON_COMPACT);
    if (!data_json) {
        return -ERR_NOMEM;
    }
    char *data = arena_strdup(&r->arena, data_json);
    free(data_json);

    const char *user_id = r->auth.user_id;
    char *old_id = NULL, *old_data;
    rc = store_dehydrated_get(r->db, &r->arena, user_id, &old_id, &old_data);
    if (rc == -ERR_NOT_FOUND) {
        old_id = NULL;
    } else if (rc < 0) {
        return rc;
    }
    bool same = old_id && strcmp(old_id, device_id) == 0;
    struct store_device existing;
    rc = store_device_get(r->db, &r->arena, user_id, device_id, &existing);
    if (rc == 0 && !same) {
        /* The ID is the device's Curve25519 key, so this is a mistake,
         * and taking over a device that logs in would be worse. */
        return req_fail(r, -ERR_INVALID_PARAM, "Device ID %s is already in use", device_id);
    }
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    if (same) {
        /* The new keys must not mix with the old device's. */
        rc = delete_device(r, old_id);
        if (rc < 0 && rc != -ERR_NOT_FOUND) {
            return rc;
        }
        old_id = NULL;
    }

    /* Its keys, with every check of POST /keys/upload (device_keys,
     * one_time_keys, fallback_keys of the body), as that device. */
    const char *caller_device = r->auth.device_id;
    r->auth.device_id = device_id;
    rc = client_keys_upload(r); /* one transaction: all or nothing */
    r->auth.device_id = caller_device;
    if (rc) {
        return rc;
    }

    /* Then the device itself, replacing the old one with its keys and
     * to-device queue. */
    int64_t dl = client__device_lists_reserve(r);
    rc = store_begin(r->db);
    if (rc == 0) {
        if (old_id) {
            rc = store_device_delete(r->db, user_id, old_id);
            if (rc == -ERR_NOT_FOUND) {
                rc = 0;
            }
        }
        if (rc == 0) {
            rc = store_dehydrated_create(r->db, user_id, device_id, display_name, data,
                                         req_now_ms());
        }
        if (rc == 0) {
            rc = store_keys_prune_devices(r->db, user_id);
        }
        if (rc == 0) {
            rc = store_to_device_prune(r->db, user_id);
        }
        if (rc == 0) {
            const char *changed[2] = {device_id, old_id};
            rc = client__device_lists_mark_devices(r, dl, user_id, changed, old_id ? 2 : 1);
        }
        rc = store_end(r->db, rc);
    }
    client__device_lists_publish(r, dl, &user_id, 1);
    if (old_id) {
        auth_cache_evict_device(r->srv->auth, user_id, old_id);
    }
    if (rc < 0) {
        drop_stray_keys(r);
        if (rc == -ERR_CONFLICT) {
            return req_fail(r, -ERR_CONFLICT,
                            "A concurrent request changed the devices; try again");
        }
        return rc;
    }
    return req_json(r, 200, json_pack("{s:s}", "device_id", device_id));
}

/* ---- GET and DELETE /dehydrated_device ---- */

int client_dehydrated_device_get(struct req *r)
{
    char *device_id, *data;
    int rc = store_dehydrated_get(r->db, &r->arena, r->auth.user_id, &device_id, &data);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "No dehydrated device available");
    }
    if (rc < 0) {
        return rc;
    }
    json_t *obj = json_loads(data, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    return req_json(r, 200, json_pack("{s:s,s:o}", "device_id", device_id, "device_data", obj));
}

int client_dehydrated_device_delete(struct req *r)
{
    char *device_id, *data;
    int rc = store_dehydrated_get(r->db, &r->arena, r->auth.user_id, &device_id, &data);
    if (rc == 0) {
        rc = delete_device(r, device_id);
    }
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "No dehydrated device available");
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:s}", "device_id", device_id));
}

/* ---- /dehydrated_device/{deviceId}/events ---- */

/* Parses a batch token "d<to-device position>" (the form Synapse uses);
 * NULL or empty means from the start. False when malformed. */
static bool parse_batch(const char *s, int64_t *out)
{
    *out = 0;
    if (!s || !*s) {
        return true;
    }
    if (s[0] != 'd' || s[1] < '0' || s[1] > '9') {
        return false;
    }
    char *end;
    long long v = strtoll(s + 1, &end, 10);
    if (*end || v < 0 || v == LLONG_MAX) {
        return false;
    }
    *out = v;
    return true;
}

/*
 * Answers with the dehydrated device's to-device messages after the
 * batch token `from`: at most `limit`, ending at a position boundary, as
 * {events, next_batch}. next_batch is left out when nothing is left and
 * !always_next (the GET form); the POST form always carries one, and its
 * last batch is empty. Nothing is deleted.
 */
static int events(struct req *r, const char *from, bool always_next)
{
    int64_t limit = EVENTS_DEFAULT_LIMIT;
    if (!client__query_int(r, "limit", &limit) || limit < 1) {
        return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a positive integer");
    }
    if (limit > EVENTS_MAX_LIMIT) {
        limit = EVENTS_MAX_LIMIT;
    }
    const char *user_id = r->auth.user_id;
    char *device_id, *data;
    int rc = store_dehydrated_get(r->db, &r->arena, user_id, &device_id, &data);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_FORBIDDEN, "No dehydrated device exists");
    }
    if (rc < 0) {
        return rc;
    }
    if (strcmp(device_id, r->param[0].p) != 0) {
        return req_fail(r, -ERR_FORBIDDEN,
                        "You may only fetch messages for your dehydrated device");
    }
    int64_t after;
    if (!parse_batch(from, &after)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid batch token");
    }

    /* Only published positions: a request still storing its messages
     * will be complete when a later batch reaches it. */
    int64_t upto = streams_current(r->srv->streams, STREAM_TO_DEVICE);
    int64_t next = after > upto ? after : upto;
    struct store_to_device *ms = NULL;
    size_t n = 0;
    if (after < upto) {
        rc = store_to_device_between(r->db, &r->arena, user_id, device_id, after, upto,
                                     limit + 1, &ms, &n);
        if (rc < 0) {
            return rc;
        }
    }
    if (n > (size_t)limit) {
        /* Stop before the first position left out, so the token says
         * exactly where the next batch starts. */
        int64_t cut = ms[limit].stream_pos;
        if (ms[0].stream_pos == cut) {
            /* More than a batch at one position: deliver it whole. */
            rc = store_to_device_between(r->db, &r->arena, user_id, device_id, after, cut, 0,
                                         &ms, &n);
            if (rc < 0) {
                return rc;
            }
            next = cut;
        } else {
            while (n > 0 && ms[n - 1].stream_pos >= cut) {
                n--;
            }
            next = cut - 1;
        }
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *content = json_loads(ms[i].content, JSON_DECODE_ANY, NULL);
        if (!content) {
            content = json_object();
        }
        json_array_append_new(arr, json_pack("{s:s,s:s,s:o}", "sender", ms[i].sender, "type",
                                             ms[i].type, "content", content));
    }
    json_t *body = json_pack("{s:o}", "events", arr);
    if (always_next || next < upto) {
        json_object_set_new(body, "next_batch",
                            json_string(arena_printf(&r->arena, "d%lld", (long long)next)));
    }
    return req_json(r, 200, body);
}

/* POST .../dehydrated_device/{deviceId}/events {next_batch?} (the MSC). */
int client_dehydrated_device_events(struct req *r)
{
    const char *next_batch;
    int rc = client__opt_string(r, "next_batch", 64, &next_batch);
    if (rc) {
        return rc;
    }
    return events(r, next_batch, true);
}

/* GET .../dehydrated_device/{deviceId}/events?from=&limit= (Synapse's
 * newer form: next_batch only while more is left). */
int client_dehydrated_device_events_get(struct req *r)
{
    return events(r, req_query(r, "from"), false);
}
