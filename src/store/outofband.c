/*
 * Rooms known here only by out-of-band memberships (svc/room.c
 * room_outofband_store: a local user's invite, knock or leave in a room
 * this server is not in). Joining such a room replaces what little state
 * it had: its current state and forward extremities are dropped before
 * the joined room's state is written, in the writer's transaction.
 */
#include <stdint.h>

#include "store/store_int.h"

int store_room_outofband_clear(struct store_conn *c, int64_t room_nid)
{
    int rc = store__ok(
        store__exec(c, "DELETE FROM room_current_state WHERE room_nid = ?", "i", room_nid));
    if (rc == 0) {
        rc = store__ok(
            store__exec(c, "DELETE FROM forward_extremities WHERE room_nid = ?", "i", room_nid));
    }
    return rc;
}
