/*
 * Memberships that go through other servers, as the user's server (spec:
 * Server-Server API "Inviting to a room", "Leaving Rooms (Rejecting
 * Invites)", "Knocking upon a room"):
 *
 *   - inviting a user of another server: the invite is built from the
 *     room's state and signed here, then PUT /v2/invite gives it to the
 *     invitee's server with the room's stripped state; only the event
 *     that comes back with that server's signature (and otherwise
 *     unchanged: same reference hash) is stored and sent to the room,
 *     accepted like a received event (room_receive). POST /invite parks
 *     meanwhile (fedclient_park); createRoom's invites wait on the worker;
 *   - leaving a room known here only out of band (rejecting an invite,
 *     rescinding a knock): make_leave and send_leave v2 on the room's
 *     servers (the inviter's, the stripped state's senders', `via`), then
 *     the leave is stored out of band. When no server answers, the invite
 *     is rejected locally, as Synapse does: a leave built on our own
 *     membership event, stored but sent nowhere;
 *   - knocking on a room this server is not in: make_knock and send_knock
 *     through the `via` / `server_name` servers and the room ID's server;
 *     the knock is stored out of band with knock_room_state.
 *
 * Out-of-band memberships (svc/room room_outofband_store) are the local
 * user's membership events in a room without other state here; /sync
 * shows them with the stripped state kept in their `unsigned`. The
 * requests to other servers block the worker, each with a timeout, as
 * remote joins do (remote_join.c), except the parked /invite.
 */
#include <string.h>

#include "api/client/client.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "core/canonjson.h"
#include "core/event.h"
#include "core/id.h"
#include "core/pdu.h"
#include "core/roomver.h"
#include "svc/fedclient.h"
#include "svc/room.h"
#include "svc/srv.h"

#define INVITE_TIMEOUT_MS 30000
#define MEMBER_TIMEOUT_MS 15000

void client__add_server(struct req *r, const char **list, size_t *n, const char *s)
{
    if (!s || !*s || *n >= CLIENT_MAX_SERVERS || !id_server_name_valid(s, strlen(s)) ||
        strcmp(s, r->srv->cfg->server_name) == 0) {
        return;
    }
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(list[i], s) == 0) {
            return;
        }
    }
    list[(*n)++] = arena_strdup(&r->arena, s);
}

bool client__room_outofband(struct req *r, const char *room_id)
{
    json_t *create = NULL;
    if (!room_version_of(r, room_id) ||
        room_state_event(r, room_id, "m.room.create", "", &create) != 0) {
        return false;
    }
    json_decref(create);
    return create == NULL;
}

size_t client__outofband_servers(struct req *r, const char *room_id, const char ***out)
{
    *out = NULL;
    json_t *mine = NULL;
    if (room_state_event(r, room_id, "m.room.member", r->auth.user_id, &mine) != 0 || !mine) {
        return 0;
    }
    json_arena(&r->arena, mine);
    const char **list = ARENA_ARRAY(&r->arena, const char *, CLIENT_MAX_SERVERS + 1);
    size_t n = 0;
    client__add_server(r, list, &n, id_server_part(json_get_str(mine, "sender")));
    const json_t *uns = json_object_get(mine, "unsigned");
    static const char *const keys[] = {"invite_room_state", "knock_room_state"};
    for (size_t k = 0; k < 2; k++) {
        size_t i;
        const json_t *e;
        json_array_foreach(json_object_get(uns, keys[k]), i, e)
        {
            client__add_server(r, list, &n, id_server_part(json_get_str(e, "sender")));
        }
    }
    *out = list;
    return n;
}

size_t client__servers_to_ask(struct req *r, const char *room_id, const char **list)
{
    size_t n = 0;
    for (int i = 0; i < r->n_query; i++) {
        if (str_eq_cstr(r->query[i].key, "via") || str_eq_cstr(r->query[i].key, "server_name")) {
            client__add_server(r, list, &n, arena_strndup(&r->arena, r->query[i].value.p,
                                                  r->query[i].value.len));
        }
    }
    const char **extra = NULL;
    size_t n_extra = client__outofband_servers(r, room_id, &extra);
    for (size_t i = 0; i < n_extra; i++) {
        client__add_server(r, list, &n, extra[i]);
    }
    client__add_server(r, list, &n, id_server_part(room_id));
    return n;
}


/* The `reason` of the client's body, put into a template's content. */
static json_t *with_reason(struct req *r, const json_t *tmpl)
{
    json_t *copy = json_arena(&r->arena, json_deep_copy(tmpl));
    const char *reason = json_get_str(r->json, "reason");
    json_t *content = json_object_get(copy, "content");
    if (reason && json_is_object(content)) {
        json_object_set_new(content, "reason", json_string(reason));
    }
    return copy;
}

/* ---- inviting users of other servers ---- */

static int answer_empty(struct req *r) { return req_json(r, 200, json_object()); }

/*
 * Takes the invitee's server's answer: the event must be ours (same
 * reference hash) with that server's signatures, which are added to our
 * copy; the result is accepted into the room and sent to its other
 * servers. Returns 0 (queued) or fails the request.
 */
static int invite_accept(struct req *r, const struct room_version *rv, json_t *ours,
                         const char *target, const struct fed_resp *resp)
{
    const char *tserver = id_server_part(target);
    json_t *answer = resp->status == 200 ? json_arena(&r->arena, fed_resp_json(resp)) : NULL;
    if (!answer) {
        json_t *err = resp->body ? json_arena(&r->arena, json_loads(resp->body, 0, NULL)) : NULL;
        const char *msg = json_get_str(err, "error");
        LOG_INFO("invite", "invite of %s refused by %s: HTTP %ld %.200s", target, tserver,
                 resp->status, resp->body ? resp->body : err_message(resp->err));
        if (resp->status == 403) {
            return req_fail(r, -ERR_FORBIDDEN, "%s's server refused the invite%s%s", target,
                            msg ? ": " : "", msg ? msg : "");
        }
        return req_fail(r, -ERR_BAD_GATEWAY, "Could not reach %s's server to invite them",
                        target);
    }
    const json_t *theirs = json_object_get(answer, "event");
    unsigned char h1[PDU_HASH_BYTES], h2[PDU_HASH_BYTES];
    if (!json_is_object(theirs) || pdu_reference_hash(rv, ours, h1) != 0 ||
        pdu_reference_hash(rv, theirs, h2) != 0 || memcmp(h1, h2, sizeof(h1)) != 0) {
        return req_fail(r, -ERR_BAD_GATEWAY, "%s's server answered with another event", target);
    }
    const json_t *sigs = json_object_get(json_object_get(theirs, "signatures"), tserver);
    if (!json_is_object(sigs) || json_object_size(sigs) == 0) {
        return req_fail(r, -ERR_BAD_GATEWAY, "%s's server did not sign the invite", target);
    }
    json_object_set_new(json_object_get(ours, "signatures"), tserver, json_deep_copy(sigs));
    const char *event_id = NULL, *why = NULL;
    struct event *ev = NULL;
    if (event_compute_id(rv, ours, &r->arena, &event_id) != 0 ||
        event_parse(&r->arena, rv, ours, event_id, &ev, &why) != 0) {
        return req_fail(r, -ERR_UNKNOWN, "The signed invite does not parse: %s",
                        why ? why : "no ID");
    }
    const char *error = NULL;
    int rc = room_receive(r, ev, tserver, true, &error);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (error) {
        return req_fail(r, -ERR_FORBIDDEN, "%s", error);
    }
    return 0;
}

/* The continuation of a parked /invite: the remote answer is in. */
static int invite_answer(struct req *r)
{
    const char *room_id = r->param[0].p;
    const char *target = json_get_str(r->json, "user_id");
    const struct room_version *rv = room_version_of(r, room_id);
    json_t *ours = json_arena(&r->arena, json_loads(r->result, 0, NULL));
    if (!rv || !ours || !target) {
        return req_fail(r, -ERR_UNKNOWN, "The invite was lost");
    }
    int rc = invite_accept(r, rv, ours, target, r->cont_data);
    return rc ? rc : room_wait_durable(r, answer_empty);
}

int client__invite_remote(struct req *r, const char *room_id, const char *target,
                          const json_t *content, bool park)
{
    const struct room_version *rv = room_version_of(r, room_id);
    if (!rv || client__room_outofband(r, room_id)) {
        return req_fail(r, -ERR_FORBIDDEN, "Unknown room %s, or you are not in it", room_id);
    }
    if (!r->srv->fed) {
        return req_fail(r, -ERR_FORBIDDEN, "Federation is off: cannot invite %s", target);
    }
    json_t *tmpl = NULL;
    const char *reason = NULL;
    int rc = room_template(r, room_id, r->auth.user_id, "m.room.member", target, content, &tmpl,
                           &reason);
    if (rc == -ERR_FORBIDDEN || rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_FORBIDDEN, "%s", reason ? reason : "You cannot invite here");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *pdu = json_arena(&r->arena, tmpl);
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "origin", json_string(r->srv->cfg->server_name));
        json_object_set_new(pdu, "event_id", json_string(room_v1_event_id(r)));
    }
    const char *event_id = NULL;
    struct buf b = BUF_INIT;
    rc = pdu_sign(rv, pdu, &r->srv->key, r->srv->cfg->server_name);
    if (rc == 0) {
        rc = event_compute_id(rv, pdu, &r->arena, &event_id);
    }
    if (rc == 0) {
        rc = canonjson_write(&b, pdu, canonjson_mode_for(rv));
    }
    if (rc == 0 && b.len > EVENT_MAX_BYTES) {
        buf_release(&b);
        return req_fail(r, -ERR_TOO_LARGE, "Event is larger than %d bytes", EVENT_MAX_BYTES);
    }
    char *canonical = rc == 0 ? arena_strndup(&r->arena, b.p ? b.p : "", b.len) : NULL;
    buf_release(&b);
    if (rc != 0) {
        return req_fail(r, -ERR_BAD_JSON, "The invite cannot be encoded");
    }
    json_t *state = NULL;
    rc = room_stripped_pdus(r, room_id, &state);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *body = json_arena(&r->arena, json_pack("{s:s,s:O,s:o}", "room_version", rv->id,
                                                   "event", pdu, "invite_room_state", state));
    const char *uri = arena_printf(&r->arena, "/_matrix/federation/v2/invite/%s/%s",
                                   str_percent_encode(&r->arena, room_id),
                                   str_percent_encode(&r->arena, event_id));
    if (park) {
        r->result = canonical;
        return fedclient_park(r, id_server_part(target), "PUT", uri, body, INVITE_TIMEOUT_MS,
                              invite_answer);
    }
    struct fed_resp resp;
    fedclient_call(r->srv->fed, id_server_part(target), "PUT", uri, body, true, INVITE_TIMEOUT_MS,
                   &resp);
    rc = invite_accept(r, rv, pdu, target, &resp);
    fed_resp_release(&resp);
    return rc;
}

/* ---- leaving rooms known out of band ---- */

/*
 * Our leave built on our own out-of-band membership event (its only prev
 * and auth event), for rejecting an invite when no server of the room
 * answers. It is stored here only. NULL when it cannot be built.
 */
static json_t *local_leave(struct req *r, const struct room_version *rv, const char *room_id)
{
    json_t *mine = NULL;
    if (room_state_event(r, room_id, "m.room.member", r->auth.user_id, &mine) != 0 || !mine) {
        return NULL;
    }
    json_arena(&r->arena, mine);
    const char *mine_id = json_get_str(mine, "event_id");
    long long depth = 0;
    json_get_int(mine, "depth", &depth);
    json_t *ref;
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_t *bare = json_arena(&r->arena, json_deep_copy(mine));
        json_object_del(bare, "unsigned");
        unsigned char h[PDU_HASH_BYTES];
        char b64[64];
        if (!mine_id || pdu_reference_hash(rv, bare, h) != 0) {
            return NULL;
        }
        keys_b64_encode(h, sizeof(h), b64);
        ref = json_pack("[s,{s:s}]", mine_id, "sha256", b64);
    } else {
        ref = mine_id ? json_string(mine_id) : NULL;
    }
    if (!ref) {
        return NULL;
    }
    json_t *pdu = json_arena(
        &r->arena,
        json_pack("{s:s,s:s,s:s,s:s,s:{s:s},s:I,s:I,s:[O],s:[o]}", "room_id", room_id, "sender",
                  r->auth.user_id, "type", "m.room.member", "state_key", r->auth.user_id,
                  "content", "membership", "leave", "origin_server_ts",
                  (json_int_t)req_now_ms(), "depth", (json_int_t)(depth + 1), "prev_events", ref,
                  "auth_events", ref));
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "origin", json_string(r->srv->cfg->server_name));
        json_object_set_new(pdu, "event_id", json_string(room_v1_event_id(r)));
    }
    const char *reason = json_get_str(r->json, "reason");
    if (reason) {
        json_object_set_new(json_object_get(pdu, "content"), "reason", json_string(reason));
    }
    return pdu_sign(rv, pdu, &r->srv->key, r->srv->cfg->server_name) == 0 ? pdu : NULL;
}

/* Stores our membership event out of band and answers with done(r). */
static int store_and_answer(struct req *r, const struct room_version *rv, const char *room_id,
                            json_t *pdu, int (*done)(struct req *r))
{
    const char *why = NULL;
    int rc = room_outofband_store(r, rv, pdu, &why);
    if (rc < 0) {
        return req_fail(r, rc == -ERR_CONFLICT ? -ERR_FORBIDDEN : rc, "%s",
                        why ? why : "The membership could not be stored");
    }
    r->result = room_id;
    return room_wait_durable(r, done);
}

int client__leave_remote(struct req *r, const char *room_id, int (*done)(struct req *r))
{
    const struct room_version *rv = room_version_of(r, room_id);
    if (!rv) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown room %s", room_id);
    }
    const char *servers[CLIENT_MAX_SERVERS];
    size_t n = r->srv->fed ? client__servers_to_ask(r, room_id, servers) : 0;
    const char *user_id = r->auth.user_id;
    for (size_t i = 0; i < n; i++) {
        long status = 0;
        json_t *made = client__fed_ask(
            r, servers[i], "GET", client__make_member_uri(r, "make_leave", room_id, user_id, false),
            NULL, MEMBER_TIMEOUT_MS, &status);
        const char *ver = json_get_str(made, "room_version");
        const json_t *tmpl = json_object_get(made, "event");
        if (!made || (ver && strcmp(ver, rv->id) != 0) || !json_is_object(tmpl)) {
            continue;
        }
        const char *event_id = NULL;
        json_t *pdu =
            client__sign_membership(r, rv, with_reason(r, tmpl), user_id, "leave", &event_id);
        if (!pdu) {
            continue;
        }
        const char *uri = arena_printf(&r->arena, "/_matrix/federation/v2/send_leave/%s/%s",
                                       str_percent_encode(&r->arena, room_id),
                                       str_percent_encode(&r->arena, event_id));
        if (client__fed_ask(r, servers[i], "PUT", uri, pdu, MEMBER_TIMEOUT_MS, &status)) {
            return store_and_answer(r, rv, room_id, pdu, done);
        }
    }
    /* Nobody answered: reject the invite here only. */
    json_t *pdu = local_leave(r, rv, room_id);
    if (!pdu) {
        return req_fail(r, -ERR_BAD_GATEWAY, "No server of the room let you leave");
    }
    LOG_INFO("leave", "no server of %s answered; %s leaves it locally", room_id, user_id);
    return store_and_answer(r, rv, room_id, pdu, done);
}

/* ---- knocking on rooms of other servers ---- */

int client__knock_remote(struct req *r, const char *room_id, int (*done)(struct req *r))
{
    if (!r->srv->fed) {
        return req_fail(r, -ERR_NOT_FOUND, "Room %s is not known here", room_id);
    }
    const char *servers[CLIENT_MAX_SERVERS];
    size_t n = client__servers_to_ask(r, room_id, servers);
    if (n == 0) {
        return req_fail(r, -ERR_NOT_FOUND,
                        "No known servers to knock on %s through; give one in 'via'", room_id);
    }
    const struct room_version *known = room_version_of(r, room_id);
    const char *user_id = r->auth.user_id;
    const char *last_error = "No server let you knock";
    int last_rc = -ERR_NOT_FOUND;
    for (size_t i = 0; i < n; i++) {
        long status = 0;
        json_t *made = client__fed_ask(
            r, servers[i], "GET", client__make_member_uri(r, "make_knock", room_id, user_id, true),
            NULL, MEMBER_TIMEOUT_MS, &status);
        if (!made) {
            if (status == 403) {
                last_error = "You are not allowed to knock on this room";
                last_rc = -ERR_FORBIDDEN;
            }
            continue;
        }
        const char *ver = json_get_str(made, "room_version");
        const struct room_version *rv = roomver_get(ver ? ver : "1");
        const json_t *tmpl = json_object_get(made, "event");
        if (!rv || !rv->knock || (known && known != rv) || !json_is_object(tmpl)) {
            last_error = "The room's version does not allow knocking here";
            last_rc = -ERR_FORBIDDEN;
            continue;
        }
        const char *event_id = NULL;
        json_t *pdu =
            client__sign_membership(r, rv, with_reason(r, tmpl), user_id, "knock", &event_id);
        if (!pdu) {
            continue;
        }
        const char *uri = arena_printf(&r->arena, "/_matrix/federation/v1/send_knock/%s/%s",
                                       str_percent_encode(&r->arena, room_id),
                                       str_percent_encode(&r->arena, event_id));
        json_t *sent = client__fed_ask(r, servers[i], "PUT", uri, pdu, MEMBER_TIMEOUT_MS, &status);
        if (!sent) {
            if (status == 403) {
                last_error = "You are not allowed to knock on this room";
                last_rc = -ERR_FORBIDDEN;
            }
            continue;
        }
        json_t *stored = json_arena(&r->arena, json_deep_copy(pdu));
        json_object_set_new(stored, "unsigned",
                            json_pack("{s:o}", "knock_room_state",
                                      room_strip_state(json_object_get(sent, "knock_room_state"))));
        return store_and_answer(r, rv, room_id, stored, done);
    }
    return req_fail(r, last_rc, "%s", last_error);
}
