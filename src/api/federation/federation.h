/*
 * Helpers shared by the server-server handlers in src/api/federation:
 * server ACL checks of a room against a requesting server, and the seam
 * where inbound PDUs enter room processing.
 */
#ifndef MYELIN_API_FEDERATION_FEDERATION_H
#define MYELIN_API_FEDERATION_FEDERATION_H

#include <jansson.h>
#include <stdbool.h>

#include "http/req.h"

/*
 * Whether server `origin` may take part in room `room_id` by the room's
 * current m.room.server_acl (spec "Server Access Control Lists (ACLs)"),
 * in send.c. A room unknown here or without the event allows everyone; a
 * failure to read the state denies (and is logged).
 */
bool fed__acl_allows(struct req *r, const char *room_id, const char *origin);

/*
 * Handles one PDU of an inbound transaction from `origin` (pdu.c): names
 * it, checks the room's server ACL and hands it to room processing. On 0,
 * *event_id (arena) is the ID the answer's `pdus` object lists it under
 * and *error is NULL when the PDU was accepted or a reason it was not.
 * Returns -ERR_BAD_JSON when no event ID can be given (a v3+ event of a
 * room unknown here, whose ID depends on the room version, or a malformed
 * PDU); the answer then leaves it out.
 */
int fed__process_pdu(struct req *r, const char *origin, json_t *pdu, char **event_id,
                     const char **error);

#endif
