/*
 * Joining a room this server is not in yet, through a server that is
 * (spec: Server-Server API "Joining Rooms", as the joining server).
 *
 * The candidates are the `via` and `server_name` query arguments of the
 * client's request, then the server of the room ID (rooms before v12
 * carry one). For each in turn: make_join (advertising every room version
 * we support) gives a template, which we complete (membership join,
 * origin_server_ts, v1/v2 event ID), hash and sign; send_join v2 gives the
 * room's state before the join and the auth chain, which room_import_join
 * checks event by event (signatures, hashes, auth rules) before storing
 * the room and our join. The worker blocks on these requests (each with a
 * timeout); a failing server is logged and the next one is tried.
 *
 * A room known here only by an out-of-band invite or knock
 * (remote_membership.c) is joined the same way; the servers that invite
 * or knock named come after `via`. The helpers asking servers and signing
 * membership templates are shared with remote_membership.c (client.h).
 */
#include <string.h>

#include "api/client/client.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "core/id.h"
#include "core/pdu.h"
#include "core/roomver.h"
#include "store/store.h"
#include "svc/fedclient.h"
#include "svc/room.h"
#include "svc/srv.h"

#define MAKE_JOIN_TIMEOUT_MS 15000
/* A big room's state and auth chain take a while to send. */
#define SEND_JOIN_TIMEOUT_MS 120000

const char *client__make_member_uri(struct req *r, const char *kind, const char *room_id,
                                    const char *user_id, bool with_ver)
{
    const char *uri = arena_printf(&r->arena, "/_matrix/federation/v1/%s/%s/%s", kind,
                                   str_percent_encode(&r->arena, room_id),
                                   str_percent_encode(&r->arena, user_id));
    if (!with_ver) {
        return uri;
    }
    char sep = '?';
    size_t count = 0;
    const struct room_version *all = roomver_all(&count);
    for (size_t i = 0; i < count; i++) {
        uri = arena_printf(&r->arena, "%s%cver=%s", uri, sep, all[i].id);
        sep = '&';
    }
    return uri;
}

json_t *client__fed_ask(struct req *r, const char *server, const char *method, const char *uri,
                        const json_t *body, int timeout_ms, long *status)
{
    struct fed_resp resp;
    fedclient_call(r->srv->fed, server, method, uri, body, true, timeout_ms, &resp);
    *status = resp.status;
    json_t *j = resp.status == 200 ? fed_resp_json(&resp) : NULL;
    if (!j) {
        LOG_INFO("join", "%s %s on %s: HTTP %ld %.200s", method, uri, server, resp.status,
                 resp.body ? resp.body : err_message(resp.err));
    }
    fed_resp_release(&resp);
    return json_arena(&r->arena, j);
}

json_t *client__sign_membership(struct req *r, const struct room_version *rv, const json_t *tmpl,
                                const char *user_id, const char *membership,
                                const char **event_id)
{
    json_t *pdu = json_arena(&r->arena, json_deep_copy(tmpl));
    const char *type = json_get_str(pdu, "type");
    const char *sk = json_get_str(pdu, "state_key");
    const char *sender = json_get_str(pdu, "sender");
    json_t *content = json_object_get(pdu, "content");
    if (!type || strcmp(type, "m.room.member") != 0 || !sk || strcmp(sk, user_id) != 0 ||
        !sender || strcmp(sender, user_id) != 0 || !json_is_object(content)) {
        return NULL; /* not the template we asked for */
    }
    json_object_set_new(content, "membership", json_string(membership));
    struct store_profile prof;
    if (strcmp(membership, "join") == 0 &&
        store_profile_get(r->db, &r->arena, user_id, &prof) == 0) {
        /* The member's profile goes with the join, as for local joins. */
        if (prof.displayname) {
            json_object_set_new(content, "displayname", json_string(prof.displayname));
        }
        if (prof.avatar_url) {
            json_object_set_new(content, "avatar_url", json_string(prof.avatar_url));
        }
    }
    json_object_set_new(pdu, "origin_server_ts", json_integer(req_now_ms()));
    json_object_del(pdu, "signatures");
    json_object_del(pdu, "hashes");
    json_object_del(pdu, "unsigned");
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "origin", json_string(r->srv->cfg->server_name));
        json_object_set_new(pdu, "event_id", json_string(room_v1_event_id(r)));
    }
    if (pdu_sign(rv, pdu, &r->srv->key, r->srv->cfg->server_name) != 0 ||
        event_compute_id(rv, pdu, &r->arena, event_id) != 0) {
        return NULL;
    }
    return pdu;
}

int client__join_remote(struct req *r, const char *room_id, int (*done)(struct req *r))
{
    if (!r->srv->fed) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown room %s", room_id);
    }
    const char *servers[CLIENT_MAX_SERVERS];
    size_t n = client__servers_to_ask(r, room_id, servers);
    if (n == 0) {
        return req_fail(r, -ERR_NOT_FOUND,
                        "No known servers to join %s through; give one in 'via'", room_id);
    }
    const char *user_id = r->auth.user_id;
    const char *last_error = "No server could let you join";
    int last_rc = -ERR_BAD_GATEWAY;
    for (size_t i = 0; i < n; i++) {
        long status = 0;
        json_t *made = client__fed_ask(r, servers[i], "GET",
                                       client__make_member_uri(r, "make_join", room_id, user_id,
                                                               true),
                                       NULL, MAKE_JOIN_TIMEOUT_MS, &status);
        if (!made) {
            if (status == 403) {
                last_error = "You are not allowed to join this room";
                last_rc = -ERR_FORBIDDEN;
            }
            continue;
        }
        const char *ver = json_get_str(made, "room_version");
        const struct room_version *rv = roomver_get(ver ? ver : "1");
        const json_t *tmpl = json_object_get(made, "event");
        if (!rv || !json_is_object(tmpl)) {
            last_error = "The room's version is not supported here";
            last_rc = -ERR_INCOMPATIBLE_ROOM_VERSION;
            continue;
        }
        const char *event_id = NULL;
        json_t *pdu = client__sign_membership(r, rv, tmpl, user_id, "join", &event_id);
        if (!pdu) {
            continue;
        }
        const char *uri = arena_printf(&r->arena, "/_matrix/federation/v2/send_join/%s/%s",
                                       str_percent_encode(&r->arena, room_id),
                                       str_percent_encode(&r->arena, event_id));
        json_t *joined =
            client__fed_ask(r, servers[i], "PUT", uri, pdu, SEND_JOIN_TIMEOUT_MS, &status);
        if (!joined) {
            if (status == 403) {
                last_error = "You are not allowed to join this room";
                last_rc = -ERR_FORBIDDEN;
            }
            continue;
        }
        /* The resident server's copy carries its signature too (restricted
         * joins need it); it must be the same event. */
        const json_t *theirs = json_object_get(joined, "event");
        const char *their_id = NULL;
        if (json_is_object(theirs) && event_compute_id(rv, theirs, &r->arena, &their_id) == 0 &&
            strcmp(their_id, event_id) == 0) {
            pdu = (json_t *)theirs;
        }
        const char *why = NULL;
        int rc = room_import_join(r, rv, room_id, pdu, json_object_get(joined, "state"),
                                  json_object_get(joined, "auth_chain"), servers[i], &why);
        if (rc == 0) {
            r->result = room_id;
            return room_wait_durable(r, done);
        }
        LOG_WARN("join", "joining %s through %s failed: %s", room_id, servers[i],
                 why ? why : err_message(rc));
        last_error = why ? why : "The room's state from that server did not check out";
        last_rc = rc == -ERR_FORBIDDEN ? rc : -ERR_BAD_GATEWAY;
    }
    return req_fail(r, last_rc, "%s", last_error);
}
