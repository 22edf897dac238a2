/*
 * Room queries behind the smaller room endpoints (schema 004_room_extras):
 * finding the event closest to a timestamp, and the per-user record of
 * forgotten rooms. Paging around an event reuses store_room_events.
 */
#include <stdint.h>

#include "store/store_int.h"

/* ---- timestamp_to_event ---- */

int store_event_at_ts(struct store_conn *c, struct arena *arena, int64_t room_nid, int64_t ts,
                      bool forwards, char **event_id, int64_t *event_ts)
{
    struct db_stmt *st;
    int rc = store__query(
        c, &st,
        forwards ? "SELECT event_id, origin_server_ts FROM events WHERE room_nid = ? AND "
                   "origin_server_ts >= ? AND stream_ordering IS NOT NULL AND rejected = 0 "
                   "ORDER BY origin_server_ts ASC, stream_ordering ASC LIMIT 1"
                 : "SELECT event_id, origin_server_ts FROM events WHERE room_nid = ? AND "
                   "origin_server_ts <= ? AND stream_ordering IS NOT NULL AND rejected = 0 "
                   "ORDER BY origin_server_ts DESC, stream_ordering DESC LIMIT 1",
        "ii", room_nid, ts);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *event_id = store__col_str(st, 0, arena);
        *event_ts = db_column_int64(st, 1);
    }
    db_finalize(st);
    return rc;
}

/* ---- forgotten rooms ---- */

int store_room_forget(struct store_conn *c, const char *user_id, int64_t room_nid, int64_t now)
{
    /* The membership column is set only on m.room.member rows, so it
     * picks the user's member event among state keys equal to the ID.
     * SQLite needs the WHERE clause to parse an upsert after a SELECT;
     * the casts give PostgreSQL the types of the selected parameters. */
    int rc = store__exec(c,
                         "INSERT INTO room_forgotten (user_id, room_nid, member_event_nid, "
                         "forgotten_ts) "
                         "SELECT CAST(? AS TEXT), s.room_nid, s.event_nid, CAST(? AS BIGINT) "
                         "FROM room_current_state s "
                         "JOIN state_keys k ON k.state_key_nid = s.state_key_nid "
                         "WHERE s.room_nid = ? AND k.state_key = ? AND s.membership IS NOT NULL "
                         "ON CONFLICT (user_id, room_nid) DO UPDATE SET "
                         "member_event_nid = excluded.member_event_nid, "
                         "forgotten_ts = excluded.forgotten_ts",
                         "tiit", user_id, now, room_nid, user_id);
    return store__ok(rc);
}

int store_user_forgotten_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                               char ***room_ids, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT r.room_id FROM room_forgotten f "
                          "JOIN room_current_state s ON s.room_nid = f.room_nid "
                          "AND s.event_nid = f.member_event_nid "
                          "JOIN rooms r ON r.room_nid = f.room_nid "
                          "WHERE f.user_id = ? ORDER BY f.room_nid",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**room_ids), store__str_row, room_ids, n);
}
