/*
 * Inbound PDUs of federation transactions (spec: Server-Server API
 * "PDUs", "Checks performed on receipt of a PDU"). For now this only
 * names each PDU and applies the room's server ACL; accepting events from
 * other servers into rooms (signature and hash checks, auth rules, state
 * resolution, persistence) is not implemented yet, so every PDU is
 * answered with an error and the sender keeps it for later.
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
    *error = "Not supported yet";
    return 0;
}
