/*
 * Reads of the event graph for the federation read endpoints
 * (api/federation/reads.c): the previous events of one event, which
 * /backfill and /get_missing_events walk from the newest event back.
 */
#include "store/store_int.h"

int store_event_prevs(struct store_conn *c, struct arena *arena, int64_t event_nid,
                      struct store_event **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " STORE__EVENT_COLS " FROM event_edges x "
                          "JOIN events e ON e.event_nid = x.prev_nid "
                          "WHERE x.event_nid = ? ORDER BY e.event_nid",
                          "i", event_nid);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), store__event_row, out, n);
}
