/*
 * Device-list changes (schema 015_device_lists) and the membership facts
 * the device_lists part of /sync needs: which users share a joined room
 * with a user now, and the membership events of a user's rooms in a
 * window of the event stream. Positions come from svc/streams
 * (STREAM_DEVICE_LISTS); the caller records them with store_stream_bump
 * in the same transaction. api/client/device_lists.c decides what the
 * rows mean.
 */
#include <stdint.h>

#include "store/store_int.h"

int store_device_lists_add(struct store_conn *c, int64_t pos, const char *user_id)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO device_list_changes (stream_pos, user_id) "
                                 "VALUES (?, ?) ON CONFLICT DO NOTHING",
                                 "it", pos, user_id));
}

int store_device_lists_changed(struct store_conn *c, struct arena *arena, int64_t after,
                               int64_t upto, char ***users, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT user_id FROM device_list_changes "
                          "WHERE stream_pos > ? AND stream_pos <= ?",
                          "ii", after, upto);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**users), store__str_row, users, n);
}

/* The m.room.member type and the user's state-key nid, in SQL. */
#define MEMBER_TYPE "(SELECT type_nid FROM event_types WHERE type = 'm.room.member')"
#define USER_KEY "(SELECT state_key_nid FROM state_keys WHERE state_key = ?)"

int store_users_sharing_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                              char ***users, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT k.state_key FROM room_current_state mine "
                          "JOIN room_current_state o ON o.room_nid = mine.room_nid "
                          "AND o.type_nid = mine.type_nid AND o.membership = 'join' "
                          "JOIN state_keys k ON k.state_key_nid = o.state_key_nid "
                          "WHERE mine.state_key_nid = " USER_KEY " "
                          "AND mine.type_nid = " MEMBER_TYPE " AND mine.membership = 'join'",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**users), store__str_row, users, n);
}

int store_room_joined_users(struct store_conn *c, struct arena *arena, int64_t room_nid,
                            char ***users, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT k.state_key FROM room_current_state s "
                          "JOIN state_keys k ON k.state_key_nid = s.state_key_nid "
                          "WHERE s.room_nid = ? AND s.type_nid = " MEMBER_TYPE " "
                          "AND s.membership = 'join'",
                          "i", room_nid);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**users), store__str_row, users, n);
}

static void member_change_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_member_change *m = row;
    m->room_nid = db_column_int64(st, 0);
    m->user_id = store__col_str(st, 1, arena);
    m->json = store__col_str(st, 2, arena);
    m->state_before_nid = db_column_int64(st, 3);
    m->type_nid = db_column_int64(st, 4);
    m->state_key_nid = db_column_int64(st, 5);
    m->current = store__col_str(st, 6, arena);
}

int store_member_changes(struct store_conn *c, struct arena *arena, const char *user_id,
                         int64_t after, int64_t upto, size_t max,
                         struct store_member_change **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT e.room_nid, k.state_key, e.json, "
                          "COALESCE(e.state_before_nid, 0), e.type_nid, e.state_key_nid, "
                          "cur.membership FROM events e "
                          "JOIN state_keys k ON k.state_key_nid = e.state_key_nid "
                          "LEFT JOIN room_current_state cur ON cur.room_nid = e.room_nid "
                          "AND cur.type_nid = e.type_nid AND cur.state_key_nid = e.state_key_nid "
                          "WHERE e.stream_ordering > ? AND e.stream_ordering <= ? "
                          "AND e.rejected = 0 AND e.type_nid = " MEMBER_TYPE " "
                          "AND e.room_nid IN (SELECT room_nid FROM room_current_state "
                          "WHERE state_key_nid = " USER_KEY " AND type_nid = " MEMBER_TYPE " "
                          "AND membership = 'join' "
                          "UNION SELECT room_nid FROM events WHERE stream_ordering > ? "
                          "AND stream_ordering <= ? AND type_nid = " MEMBER_TYPE " "
                          "AND state_key_nid = " USER_KEY ") "
                          "ORDER BY e.stream_ordering LIMIT ?",
                          "iitiiti", after, upto, user_id, after, upto, user_id, (int64_t)max);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), member_change_row, out, n);
}
