/*
 * Queries behind GET /sync and the filter endpoints (schema 007_sync):
 * a user's memberships with the stream position of each membership
 * event, the rooms that had events in a stream range, the state events of
 * a room in a range, the transaction ID an event was sent with, and
 * stored filters. Timelines are paged with
 * store_room_events.
 */
#include <stdint.h>

#include "store/store_int.h"

/* ---- memberships and changed rooms ---- */

static void membership_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_sync_membership *m = row;
    m->room_id = store__col_str(st, 0, arena);
    m->room_nid = db_column_int64(st, 1);
    m->membership = store__col_str(st, 2, arena);
    m->stream_ordering = db_column_int64(st, 3);
    m->event_id = store__col_str(st, 4, arena);
}

int store_sync_memberships(struct store_conn *c, struct arena *arena, const char *user_id,
                           struct store_sync_membership **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT r.room_id, r.room_nid, s.membership, "
                          "COALESCE(e.stream_ordering, 0), e.event_id FROM state_keys k "
                          "JOIN room_current_state s ON s.state_key_nid = k.state_key_nid "
                          "JOIN rooms r ON r.room_nid = s.room_nid "
                          "JOIN events e ON e.event_nid = s.event_nid "
                          "WHERE k.state_key = ? AND s.membership IS NOT NULL "
                          "ORDER BY r.room_nid",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), membership_row, out, n);
}

static void nid_row(struct db_stmt *st, struct arena *arena, void *row)
{
    (void)arena;
    int64_t *nid = row;
    *nid = db_column_int64(st, 0);
}

int store_sync_changed_rooms(struct store_conn *c, struct arena *arena, int64_t after,
                             int64_t upto, int64_t **room_nids, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT room_nid FROM events WHERE stream_ordering > ? "
                          "AND stream_ordering <= ? AND rejected = 0",
                          "ii", after, upto);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**room_nids), nid_row, room_nids, n);
}

int store_sync_state_between(struct store_conn *c, struct arena *arena, int64_t room_nid,
                             int64_t after, int64_t before, struct store_event **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " STORE__EVENT_COLS " FROM events e "
                          "WHERE room_nid = ? AND stream_ordering > ? AND stream_ordering < ? "
                          "AND state_key_nid IS NOT NULL AND rejected = 0 "
                          "ORDER BY stream_ordering",
                          "iii", room_nid, after, before);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), store__event_row, out, n);
}

/* ---- transaction IDs ---- */

int store_sync_txn_of(struct store_conn *c, struct arena *arena, const char *event_id,
                      const char *user_id, const char *device_id, char **txn_key)
{
    return store__get_str(c, arena, txn_key,
                          "SELECT txn_id FROM event_txns WHERE event_id = ? AND user_id = ? "
                          "AND device_id = ?",
                          "ttt", event_id, user_id, device_id);
}

/* ---- filters ---- */

int store_filter_put(struct store_conn *c, const char *user_id, const char *json,
                     int64_t *filter_id)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT filter_id FROM user_filters WHERE user_id = ? AND json = ?",
                          "tt", user_id, json);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    if (rc == DB_ROW) {
        *filter_id = db_column_int64(st, 0);
        db_finalize(st);
        return 0;
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    rc = store__query(c, &st,
                      "SELECT COALESCE(MAX(filter_id) + 1, 0) FROM user_filters WHERE user_id = ?",
                      "t", user_id);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    int64_t id = rc == DB_ROW ? db_column_int64(st, 0) : 0;
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    rc = store__ok(store__exec(
        c, "INSERT INTO user_filters (user_id, filter_id, json) VALUES (?, ?, ?)", "tit", user_id,
        id, json));
    if (rc < 0) {
        return rc;
    }
    *filter_id = id;
    return 0;
}

int store_filter_get(struct store_conn *c, struct arena *arena, const char *user_id,
                     int64_t filter_id, char **json)
{
    return store__get_str(c, arena, json,
                          "SELECT json FROM user_filters WHERE user_id = ? AND filter_id = ?",
                          "ti", user_id, filter_id);
}
