/*
 * What other servers may learn of this server's public rooms (spec:
 * Server-Server API "Public Room Directory" and "Spaces"):
 *
 *   GET  /publicRooms?limit=&since=&include_all_networks=&third_party_instance_id=
 *   POST /publicRooms {limit, since, filter, include_all_networks, ...}
 *        this server's published room directory, the same listing and
 *        paging tokens as the client /publicRooms (directory.c,
 *        client__public_rooms_local); no application service networks
 *        exist, so a third_party_instance_id lists nothing
 *   GET  /hierarchy/{roomId}?suggested_only=
 *        the space and its direct children, unpaginated:
 *        {room (with children_state), children, inaccessible_children}
 *
 * Hierarchy rules (as Synapse's get_federation_hierarchy; who may see a
 * room is spaces.c's client__space_room_for_server): a space unknown here
 * or one the requesting server could neither peek nor join is 404
 * M_NOT_FOUND, and one whose server ACL denies the server 403
 * M_FORBIDDEN. Children this server is not in are left out; children the
 * server may not see, or is denied by their ACL, are listed in
 * inaccessible_children. Children carry their own children_state, so the
 * requesting server can walk further without asking for the child
 * spaces it already has.
 */
#include <string.h>

#include "api/client/client.h"
#include "api/federation/federation.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"

/* ---- GET/POST /publicRooms ---- */

int fed_public_rooms_get(struct req *r) { return client__public_rooms_local(r, NULL, true); }

int fed_public_rooms_post(struct req *r) { return client__public_rooms_local(r, r->json, true); }

/* ---- GET /hierarchy/{roomId} ---- */

int fed_space_hierarchy(struct req *r)
{
    const char *room_id = r->param[0].p;
    const char *origin = r->auth.server;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    const char *so = req_query(r, "suggested_only");
    if (so && strcmp(so, "true") != 0 && strcmp(so, "false") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'suggested_only' must be true or false");
    }
    bool suggested_only = so && strcmp(so, "true") == 0;
    if (!fed__acl_allows(r, room_id, origin)) {
        return req_fail(r, -ERR_FORBIDDEN, "Server is denied by the room's server ACL");
    }
    json_t *room = NULL;
    rc = client__space_room_for_server(r, room_id, origin, suggested_only, &room);
    if (rc == -ERR_NOT_FOUND || rc == -ERR_FORBIDDEN) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown room: %s", room_id);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_arena(&r->arena, room);
    json_t *children = json_array();
    json_t *inaccessible = json_array();
    json_t *body = json_pack("{s:O,s:o,s:o}", "room", room, "children", children,
                             "inaccessible_children", inaccessible);
    struct map seen;
    map_init(&seen);
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(room, "children_state"), i, ev)
    {
        const char *child_id = json_get_str(ev, "state_key");
        if (!child_id || map_get(&seen, str_from(child_id))) {
            continue;
        }
        map_put(&seen, str_from(child_id), (void *)child_id);
        json_t *child = NULL;
        rc = client__space_room_for_server(r, child_id, origin, suggested_only, &child);
        if (rc == 0 && !fed__acl_allows(r, child_id, origin)) {
            json_decref(child);
            rc = -ERR_FORBIDDEN;
        }
        if (rc == 0) {
            json_array_append_new(children, child);
        } else if (rc == -ERR_FORBIDDEN) {
            json_array_append_new(inaccessible, json_string(child_id));
        }
        /* Rooms this server is not in are left out (spec: "Rooms which the
         * responding server cannot provide details on"). */
    }
    map_release(&seen);
    return req_json(r, 200, body);
}
