/*
 * Inbound PDUs of federation transactions (spec: Server-Server API
 * "PDUs", "Checks performed on receipt of a PDU"): each is named, the
 * room's server ACL applied, then checked by svc/fedevent (shape, event
 * ID, signatures, content hash) and accepted by svc/room's room_receive
 * (auth events, previous events, auth rules against its auth events and
 * the current state). Events of rooms unknown here, and events whose
 * auth or previous events are unknown (fetching them is gap handling,
 * not done yet), are answered with an error.
 *
 * Naming: the event ID of a v3+ event is its reference hash under the
 * room version (core/pdu.h), known only when the room is known here; a
 * v1/v2 event carries its own "event_id".
 */
#include <string.h>

#include "api/federation/federation.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "core/pdu.h"
#include "svc/fedevent.h"
#include "svc/room.h"

int fed__process_pdu(struct req *r, const char *origin, json_t *pdu, char **event_id,
                     const char **error)
{
    const char *room_id = json_get_str(pdu, "room_id");
    const struct room_version *rv =
        room_id && id_room_valid(room_id, strlen(room_id)) ? room_version_of(r, room_id) : NULL;
    const char *id = NULL;
    if (rv) {
        if (event_compute_id(rv, pdu, &r->arena, &id) < 0) {
            return -ERR_BAD_JSON;
        }
    } else {
        /* Unknown room: only a v1/v2 event names itself. */
        id = json_get_str(pdu, "event_id");
        if (!id || !id_event_valid(id, strlen(id))) {
            return -ERR_BAD_JSON;
        }
        id = arena_strdup(&r->arena, id);
    }
    *event_id = (char *)id;
    if (rv && !fed__acl_allows(r, room_id, origin)) {
        *error = "Server is denied by the room's server ACL";
        return 0;
    }
    if (!rv) {
        *error = "Unknown room";
        return 0;
    }
    struct event *ev;
    const char *why = NULL;
    if (fedevent_check(r, rv, pdu, &ev, &why) != 0) {
        *error = why ? why : "Invalid event";
        return 0;
    }
    int rc = room_receive(r, ev, origin, false, error);
    if (rc < 0) {
        *error = "Could not be stored here; send it again";
    }
    return 0;
}
