/*
 * PDU field extraction and shape validation per event format.
 */
#include "core/event.h"

#include <string.h>

#include "base/err.h"
#include "base/json.h"
#include "core/id.h"

static bool id_ok(const char *s) { return s && strlen(s) <= EVENT_MAX_ID_BYTES; }

/* Reads a reference list: strings (V2/V3 formats) or [id, {hashes}] pairs (V1). */
static int parse_refs(struct arena *a, const struct room_version *rv, const json_t *arr,
                      size_t max, const char ***out, size_t *n, const char **why,
                      const char *name)
{
    if (!json_is_array(arr)) {
        *why = name;
        return -ERR_BAD_JSON;
    }
    size_t count = json_array_size(arr);
    if (count > max) {
        *why = name;
        return -ERR_BAD_JSON;
    }
    const char **ids = ARENA_ARRAY(a, const char *, count ? count : 1);
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_array_get(arr, i);
        const char *id = NULL;
        if (rv->event_format == EVENT_FORMAT_V1) {
            if (json_is_array(item) && json_array_size(item) == 2 &&
                json_is_object(json_array_get(item, 1))) {
                id = json_string_value(json_array_get(item, 0));
            }
        } else {
            id = json_string_value(item);
        }
        if (!id || !id_event_valid(id, strlen(id))) {
            *why = name;
            return -ERR_BAD_JSON;
        }
        ids[i] = id;
    }
    *out = ids;
    *n = count;
    return 0;
}

int event_parse(struct arena *arena, const struct room_version *rv, json_t *pdu,
                const char *event_id, struct event **out, const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    if (!json_is_object(pdu)) {
        *why = "PDU is not an object";
        return -ERR_BAD_JSON;
    }
    struct event *ev = ARENA_NEW(arena, struct event);
    ev->json = json_arena(arena, json_incref(pdu));
    ev->rv = rv;

    if (!event_id) {
        if (rv->event_format != EVENT_FORMAT_V1) {
            *why = "event ID must be computed for this room version";
            return -ERR_BAD_JSON;
        }
        event_id = json_get_str(pdu, "event_id");
    }
    if (!event_id || !id_event_valid(event_id, strlen(event_id))) {
        *why = "bad event_id";
        return -ERR_BAD_JSON;
    }
    ev->event_id = event_id;

    ev->type = json_get_str(pdu, "type");
    if (!ev->type || !id_ok(ev->type)) {
        *why = "bad type";
        return -ERR_BAD_JSON;
    }
    ev->sender = json_get_str(pdu, "sender");
    /* Historical user IDs are accepted over federation (spec appendix
     * "Historical User IDs"). */
    if (!ev->sender || !id_user_valid(ev->sender, strlen(ev->sender), false)) {
        *why = "bad sender";
        return -ERR_BAD_JSON;
    }
    json_t *rid = json_object_get(pdu, "room_id");
    bool v12_create = rv->room_id_is_create_hash && strcmp(ev->type, "m.room.create") == 0;
    if (rid || !v12_create) {
        ev->room_id = json_string_value(rid);
        if (!ev->room_id || !id_room_valid(ev->room_id, strlen(ev->room_id))) {
            *why = "bad room_id";
            return -ERR_BAD_JSON;
        }
        if (v12_create) {
            *why = "a v12 create event has no room_id";
            return -ERR_BAD_JSON;
        }
    }
    json_t *sk = json_object_get(pdu, "state_key");
    if (sk) {
        ev->state_key = json_string_value(sk);
        if (!ev->state_key || !id_ok(ev->state_key)) {
            *why = "bad state_key";
            return -ERR_BAD_JSON;
        }
    }
    long long n;
    /* Room versions with strict canonical JSON (v6+) bound every integer,
     * depth included, to 2^53-1; older versions only by the parser. */
    if (!json_get_int(pdu, "depth", &n) || n < 0 ||
        (rv->strict_canonical_json && n > JSON_MAX_SAFE_INT)) {
        *why = "bad depth";
        return -ERR_BAD_JSON;
    }
    ev->depth = n;
    if (!json_get_int(pdu, "origin_server_ts", &n)) {
        *why = "bad origin_server_ts";
        return -ERR_BAD_JSON;
    }
    ev->origin_server_ts = n;
    ev->content = json_get_obj(pdu, "content");
    if (!ev->content) {
        *why = "content is not an object";
        return -ERR_BAD_JSON;
    }
    json_t *hashes = json_object_get(pdu, "hashes");
    if (!json_is_object(hashes) || !json_is_string(json_object_get(hashes, "sha256"))) {
        *why = "bad hashes";
        return -ERR_BAD_JSON;
    }
    if (!json_is_object(json_object_get(pdu, "signatures"))) {
        *why = "bad signatures";
        return -ERR_BAD_JSON;
    }
    int rc = parse_refs(arena, rv, json_object_get(pdu, "prev_events"), EVENT_MAX_PREV_EVENTS,
                        &ev->prev_events, &ev->n_prev_events, why, "bad prev_events");
    if (rc) {
        return rc;
    }
    rc = parse_refs(arena, rv, json_object_get(pdu, "auth_events"), EVENT_MAX_AUTH_EVENTS,
                    &ev->auth_events, &ev->n_auth_events, why, "bad auth_events");
    if (rc) {
        return rc;
    }
    ev->origin = json_get_str(pdu, "origin");
    /* v11 (MSC2174) moved "redacts" into content; older versions keep it at
     * the top level. */
    ev->redacts = rv->redaction >= REDACTION_V11 ? json_get_str(ev->content, "redacts")
                                                 : json_get_str(pdu, "redacts");
    if (strcmp(ev->type, "m.room.redaction") == 0 && ev->redacts &&
        !id_event_valid(ev->redacts, strlen(ev->redacts))) {
        *why = "bad redacts";
        return -ERR_BAD_JSON;
    }
    ev->unsigned_ = json_get_obj(pdu, "unsigned");
    *out = ev;
    return 0;
}

const char *event_membership(const struct event *ev)
{
    if (strcmp(ev->type, "m.room.member") != 0) {
        return NULL;
    }
    return json_get_str(ev->content, "membership");
}
