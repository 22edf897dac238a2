/*
 * Joining, leaving and knocking on rooms through this server (spec:
 * Server-Server API "Joining Rooms", "Leaving Rooms (Rejecting Invites)",
 * "Knocking upon a room"), as the resident server:
 *
 *   GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=...
 *       an unsigned join event template for a user of the requesting
 *       server, built from the room's current state, refused when the
 *       room's version is not among `ver` (M_INCOMPATIBLE_ROOM_VERSION)
 *       or when the room's rules would not let the user join now;
 *   PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}
 *       the signed join event: checked (signatures, hash, shape: a join
 *       of a user of the origin for itself) and accepted into the room
 *       like any received event; the answer is the room's state before
 *       the join and the auth chain of that state and the join;
 *   GET /v1/make_leave, PUT /v2/send_leave (answer {}): the same for a
 *       leave (an invited user rejecting, a knocking one giving up);
 *   GET /v1/make_knock?ver=..., PUT /v1/send_knock: the same for a knock
 *       (room versions 7+), answered with knock_room_state, the room's
 *       stripped-state events as full PDUs.
 *
 * Accepting the event (auth against its auth events and the current
 * state, persistence, sending it on to the other servers in the room) is
 * svc/room's room_receive.
 */
#include <string.h>

#include "api/federation/federation.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "core/pdu.h"
#include "store/store.h"
#include "svc/fedevent.h"
#include "svc/room.h"
#include "svc/srv.h"

/* Whether the requesting server supports room version `id`: the `ver`
 * query arguments; none means version 1 only (spec). */
static bool supports(struct req *r, const char *id)
{
    bool any = false;
    for (int i = 0; i < r->n_query; i++) {
        if (str_eq_cstr(r->query[i].key, "ver")) {
            any = true;
            if (str_eq_cstr(r->query[i].value, id)) {
                return true;
            }
        }
    }
    return !any && strcmp(id, "1") == 0;
}

/* The room's version when this server is in it: known with its state,
 * not only by out-of-band memberships (no create event); else NULL. */
static const struct room_version *resident_version(struct req *r, const char *room_id)
{
    const struct room_version *rv = room_version_of(r, room_id);
    json_t *create = NULL;
    if (!rv || room_state_event(r, room_id, "m.room.create", "", &create) != 0 || !create) {
        return NULL;
    }
    json_decref(create);
    return rv;
}

/* make_join, make_leave, make_knock: a template of `membership` for a
 * user of the requesting server; `ver` is checked when with_ver. */
static int make_membership(struct req *r, const char *membership, bool with_ver)
{
    const char *room_id = r->param[0].p, *user_id = r->param[1].p;
    if (!id_user_valid(user_id, strlen(user_id), false) ||
        strcmp(id_server_part(user_id), r->auth.server) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "The user does not belong to the requesting server");
    }
    const struct room_version *rv = resident_version(r, room_id);
    if (!rv) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown room");
    }
    if (!fed__acl_allows(r, room_id, r->auth.server)) {
        return req_fail(r, -ERR_FORBIDDEN, "Server is denied by the room's server ACL");
    }
    if (with_ver && !supports(r, rv->id)) {
        return req_fail_json(r, -ERR_INCOMPATIBLE_ROOM_VERSION,
                             json_pack("{s:s}", "room_version", rv->id),
                             "Your server does not support room version %s", rv->id);
    }
    json_t *content = json_arena(&r->arena, json_pack("{s:s}", "membership", membership));
    json_t *tmpl = NULL;
    const char *reason = NULL;
    int rc = room_template(r, room_id, user_id, "m.room.member", user_id, content, &tmpl,
                           &reason);
    if (rc == -ERR_FORBIDDEN) {
        return req_fail(r, rc, "%s", reason ? reason : "Not allowed by the room's rules");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:s,s:o}", "room_version", rv->id, "event", tmpl));
}

int fed_make_join(struct req *r) { return make_membership(r, "join", true); }
int fed_make_leave(struct req *r) { return make_membership(r, "leave", false); }
int fed_make_knock(struct req *r) { return make_membership(r, "knock", true); }

/* The answer of send_join once the join is stored: the state before it,
 * the auth chain, the servers in the room and the event. */
static int send_join_answer(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    json_t *state = NULL, *auth_chain = NULL;
    char **servers = NULL;
    size_t n_servers = 0;
    int rc = room_state_before(r, event_id, &state, &auth_chain);
    if (rc == 0) {
        rc = room_servers(r, room_id, &servers, &n_servers);
    }
    struct store_event stored;
    if (rc == 0) {
        rc = store_event_get(r->db, &r->arena, event_id, &stored);
    }
    json_t *event = rc == 0 ? json_loads(stored.json, 0, NULL) : NULL;
    if (rc < 0 || !event) {
        json_decref(state);
        json_decref(auth_chain);
        return req_fail(r, rc < 0 ? rc : -ERR_UNKNOWN, NULL);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n_servers; i++) {
        json_array_append_new(list, json_string(servers[i]));
    }
    return req_json(r, 200,
                    json_pack("{s:o,s:o,s:o,s:b,s:o,s:s}", "state", state, "auth_chain",
                              auth_chain, "event", event, "members_omitted", 0,
                              "servers_in_room", list, "origin", r->srv->cfg->server_name));
}

/*
 * send_join, send_leave, send_knock: checks the signed event (a
 * `membership` of a user of the origin for itself) and accepts it into the
 * room, relayed to the room's other servers. Returns 0 when queued (the
 * caller answers once it is durable) or fails the request.
 */
static int receive_membership(struct req *r, const char *membership)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    const struct room_version *rv = resident_version(r, room_id);
    if (!rv) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown room");
    }
    if (!fed__acl_allows(r, room_id, r->auth.server)) {
        return req_fail(r, -ERR_FORBIDDEN, "Server is denied by the room's server ACL");
    }
    struct event *ev;
    const char *why = NULL;
    int rc = fedevent_check(r, rv, r->json, &ev, &why);
    if (rc < 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid %s event: %s", membership,
                        why ? why : "bad");
    }
    const char *m = event_membership(ev);
    if (strcmp(ev->event_id, event_id) != 0 || !ev->room_id ||
        strcmp(ev->room_id, room_id) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "The event does not match the path");
    }
    if (strcmp(ev->type, "m.room.member") != 0 || !m || strcmp(m, membership) != 0 ||
        !ev->state_key || strcmp(ev->state_key, ev->sender) != 0 ||
        strcmp(id_server_part(ev->sender), r->auth.server) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "Not a %s event of a user of the requesting server for itself",
                        membership);
    }
    const char *error = NULL;
    rc = room_receive(r, ev, r->auth.server, true, &error);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (error) {
        return req_fail(r, -ERR_FORBIDDEN, "%s", error);
    }
    return 0;
}

int fed_send_join(struct req *r)
{
    int rc = receive_membership(r, "join");
    /* Answered once the join is stored (and queued for the others). */
    return rc ? rc : room_wait_durable(r, send_join_answer);
}

static int answer_empty(struct req *r) { return req_json(r, 200, json_object()); }

int fed_send_leave(struct req *r)
{
    int rc = receive_membership(r, "leave");
    return rc ? rc : room_wait_durable(r, answer_empty);
}

/* send_knock's answer: the room's stripped state, as full PDUs. */
static int send_knock_answer(struct req *r)
{
    json_t *state = NULL;
    int rc = room_stripped_pdus(r, r->param[0].p, &state);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:o}", "knock_room_state", state));
}

int fed_send_knock(struct req *r)
{
    int rc = receive_membership(r, "knock");
    return rc ? rc : room_wait_durable(r, send_knock_answer);
}
