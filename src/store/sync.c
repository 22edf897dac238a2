/*
 * Queries behind GET /sync and the filter endpoints (schema 007_sync):
 * a user's memberships with the stream position of each membership
 * event, the rooms that had events in a stream range, the state events of
 * a room in a range, the transaction ID an event was sent with, and
 * stored filters. Timelines are paged with
 * store_room_events.
 */
#include <stdint.h>
#include <string.h>

#include "base/err.h"
#include "store/store_int.h"

/* Grows an arena array by doubling; returns the (possibly new) array. */
static void *grow(struct arena *a, void *arr, size_t elem, size_t count, size_t *cap)
{
    if (count < *cap) {
        return arr;
    }
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = arena_alloc(a, elem * ncap);
    if (count) {
        memcpy(n, arr, elem * count);
    }
    *cap = ncap;
    return n;
}

/* ---- memberships and changed rooms ---- */

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
    size_t cap = 0, count = 0;
    struct store_sync_membership *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        struct store_sync_membership *m = &list[count++];
        m->room_id = store__col_str(st, 0, arena);
        m->room_nid = db_column_int64(st, 1);
        m->membership = store__col_str(st, 2, arena);
        m->stream_ordering = db_column_int64(st, 3);
        m->event_id = store__col_str(st, 4, arena);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
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
    size_t cap = 0, count = 0;
    int64_t *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        list[count++] = db_column_int64(st, 0);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *room_nids = list;
    *n = count;
    return 0;
}

int store_sync_state_between(struct store_conn *c, struct arena *arena, int64_t room_nid,
                             int64_t after, int64_t before, struct store_event **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT event_nid, event_id, room_nid, stream_ordering, depth, "
                          "COALESCE(state_before_nid, 0), redacted_by, json FROM events "
                          "WHERE room_nid = ? AND stream_ordering > ? AND stream_ordering < ? "
                          "AND state_key_nid IS NOT NULL AND rejected = 0 "
                          "ORDER BY stream_ordering",
                          "iii", room_nid, after, before);
    if (rc < 0) {
        return rc;
    }
    size_t cap = 0, count = 0;
    struct store_event *list = NULL;
    while ((rc = db_step(st)) == DB_ROW) {
        list = grow(arena, list, sizeof(*list), count, &cap);
        struct store_event *e = &list[count++];
        e->nid = db_column_int64(st, 0);
        e->event_id = store__col_str(st, 1, arena);
        e->room_nid = db_column_int64(st, 2);
        e->stream_ordering = db_column_int64(st, 3);
        e->depth = db_column_int64(st, 4);
        e->state_before_nid = db_column_int64(st, 5);
        e->rejected = false;
        e->redacted_by = store__col_str(st, 6, arena);
        e->json = store__col_str(st, 7, arena);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

/* ---- transaction IDs ---- */

int store_sync_txn_of(struct store_conn *c, struct arena *arena, const char *event_id,
                      const char *user_id, const char *device_id, char **txn_key)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT txn_id FROM event_txns WHERE event_id = ? AND user_id = ? "
                          "AND device_id = ?",
                          "ttt", event_id, user_id, device_id);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    if (rc == DB_ROW) {
        *txn_key = store__col_str(st, 0, arena);
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ERR_NOT_FOUND;
    }
    db_finalize(st);
    return rc;
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
    rc = store__exec(c, "INSERT INTO user_filters (user_id, filter_id, json) VALUES (?, ?, ?)",
                     "tit", user_id, id, json);
    if (rc == DB_UNIQUE) {
        return -ERR_CONFLICT;
    }
    if (rc < 0) {
        return rc;
    }
    *filter_id = id;
    return 0;
}

int store_filter_get(struct store_conn *c, struct arena *arena, const char *user_id,
                     int64_t filter_id, char **json)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT json FROM user_filters WHERE user_id = ? AND filter_id = ?",
                          "ti", user_id, filter_id);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    if (rc == DB_ROW) {
        *json = store__col_str(st, 0, arena);
        rc = 0;
    } else if (rc == DB_DONE) {
        rc = -ERR_NOT_FOUND;
    }
    db_finalize(st);
    return rc;
}
