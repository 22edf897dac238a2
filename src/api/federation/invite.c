/*
 * Invites of local users by other servers (spec: Server-Server API
 * "Inviting to a room", PUT /_matrix/federation/v2/invite/{roomId}/{eventId}
 * with {room_version, event, invite_room_state}).
 *
 * The event must be an m.room.member invite whose sender belongs to the
 * requesting server and whose target is a user of this server, signed by
 * the sender's server with a matching content hash (svc/fedevent), for a
 * room version we support (else 400 M_INCOMPATIBLE_ROOM_VERSION); the
 * other refusals are 400 M_INVALID_PARAM as the spec suggests. From room
 * version 12 the invite_room_state must carry the room's create event and
 * every entry must be a validly signed event of the room (the spec's
 * SHOULD; it is not checked before v12, where older servers send stripped
 * events).
 *
 * We add our signature and answer with the event. Unless this server is
 * in the room, the invite is stored as an out-of-band membership (svc/room
 * room_outofband_store) with the stripped state in its `unsigned`, so the
 * invitee's /sync lists it under rooms.invite with invite_state; in a room
 * we are in, it is accepted like any received event (room_receive), and
 * a refusal there is 403.
 */
#include <string.h>

#include "api/federation/federation.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "core/id.h"
#include "core/pdu.h"
#include "core/roomver.h"
#include "store/store.h"
#include "svc/fedevent.h"
#include "svc/room.h"
#include "svc/srv.h"

static const char *server_of(const char *user_id)
{
    const char *c = user_id ? strchr(user_id, ':') : NULL;
    return c ? c + 1 : NULL;
}

/* From v12 (spec v1.16): the create event must be there and every entry
 * must be a signed event of this room. 0, or the reason it is not. */
static const char *check_room_state(struct req *r, const struct room_version *rv,
                                    const char *room_id, const json_t *state)
{
    if (!rv->room_id_is_create_hash) {
        return NULL;
    }
    bool have_create = false;
    size_t i;
    const json_t *pdu;
    json_array_foreach(state, i, pdu)
    {
        struct event *ev;
        const char *why = NULL;
        if (fedevent_check(r, rv, pdu, &ev, &why) != 0) {
            return "an event of invite_room_state fails its checks";
        }
        const char *in_room = ev->room_id;
        if (!in_room && strcmp(ev->type, "m.room.create") == 0 &&
            event_compute_room_id(rv, ev->json, &r->arena, &in_room) == 0) {
            have_create |= strcmp(in_room, room_id) == 0;
        }
        if (!in_room || strcmp(in_room, room_id) != 0) {
            return "an event of invite_room_state is not of this room";
        }
    }
    return have_create ? NULL : "invite_room_state has no create event";
}

static int answer_signed(struct req *r)
{
    return req_json(r, 200, json_pack("{s:O}", "event", (json_t *)r->cont_data));
}

int fed_invite(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    const char *ver = json_get_str(r->json, "room_version");
    const json_t *pdu = json_object_get(r->json, "event");
    const json_t *state = json_object_get(r->json, "invite_room_state");
    if (!ver || !json_is_object(pdu)) {
        return req_fail(r, -ERR_BAD_JSON, "'room_version' and 'event' are required");
    }
    if (state && !json_is_array(state)) {
        return req_fail(r, -ERR_BAD_JSON, "'invite_room_state' must be a list");
    }
    const struct room_version *rv = roomver_get(ver);
    if (!rv) {
        return req_fail_json(r, -ERR_INCOMPATIBLE_ROOM_VERSION,
                             json_pack("{s:s}", "room_version", ver),
                             "Room version %s is not supported here", ver);
    }
    if (pdu_check_hash(rv, pdu) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "The invite's content hash does not match");
    }
    struct event *ev;
    const char *why = NULL;
    if (fedevent_check(r, rv, pdu, &ev, &why) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid invite event: %s", why ? why : "bad");
    }
    const char *m = event_membership(ev);
    if (strcmp(ev->event_id, event_id) != 0 || !ev->room_id || strcmp(ev->room_id, room_id) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "The event does not match the path");
    }
    if (strcmp(ev->type, "m.room.member") != 0 || !m || strcmp(m, "invite") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Not an invite");
    }
    if (strcmp(server_of(ev->sender), r->auth.server) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "The sender is not a user of your server");
    }
    const char *target = ev->state_key;
    if (!target || !id_user_valid(target, strlen(target), true) ||
        strcmp(server_of(target), r->srv->cfg->server_name) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "The invitee is not a user of this server");
    }
    struct store_user user;
    int rc = store_user_get(r->db, &r->arena, target, &user);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && user.deactivated)) {
        return req_fail(r, -ERR_NOT_FOUND, "No such user here");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (!fed__acl_allows(r, room_id, r->auth.server)) {
        return req_fail(r, -ERR_FORBIDDEN, "Server is denied by the room's server ACL");
    }
    const char *bad = state ? check_room_state(r, rv, room_id, state)
                            : (rv->room_id_is_create_hash ? "invite_room_state is missing" : NULL);
    if (bad) {
        return req_fail(r, -ERR_INVALID_PARAM, "%s", bad);
    }

    /* Our signature on the event as received (spec: other fields untouched). */
    json_t *signed_ = json_arena(&r->arena, json_deep_copy(pdu));
    if (pdu_sign(rv, signed_, &r->srv->key, r->srv->cfg->server_name) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "The invite cannot be signed");
    }
    r->cont_data = signed_;
    /* What we keep: the signed event with the stripped state for clients. */
    json_t *kept = json_arena(&r->arena, json_deep_copy(signed_));
    json_object_set_new(kept, "unsigned",
                        json_pack("{s:o}", "invite_room_state",
                                  state ? room_strip_state(state) : json_array()));
    rc = room_outofband_store(r, rv, kept, &why);
    if (rc == -ERR_CONFLICT && room_version_of(r, room_id) == rv) {
        /* A room we are in: accepted like any event of it. */
        json_object_del(kept, "unsigned");
        struct event *mine;
        const char *error = NULL;
        rc = event_parse(&r->arena, rv, kept, ev->event_id, &mine, &why);
        if (rc == 0) {
            rc = room_receive(r, mine, r->auth.server, false, &error);
        }
        if (rc == 0 && error) {
            return req_fail(r, -ERR_FORBIDDEN, "%s", error);
        }
    } else if (rc == -ERR_CONFLICT) {
        return req_fail(r, -ERR_FORBIDDEN, "%s", why ? why : "The room is known here otherwise");
    }
    if (rc < 0) {
        LOG_WARN("invite", "storing the invite %s of %s failed: %s", event_id, target,
                 why ? why : err_message(rc));
        return req_fail(r, rc == -ERR_BAD_JSON ? -ERR_INVALID_PARAM : rc, NULL);
    }
    return room_wait_durable(r, answer_signed);
}
