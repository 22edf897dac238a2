/*
 * Queries behind presence (schema 012_presence): the stored presence rows
 * of local users, and the room-sharing questions presence visibility
 * needs (who shares a joined room with whom). svc/presence owns the live
 * state; this file only records and reads it.
 */
#include <stdint.h>

#include "store/store_int.h"

static void presence_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_presence *p = row;
    p->user_id = store__col_str(st, 0, arena);
    p->state = store__col_str(st, 1, arena);
    p->status_msg = store__col_str(st, 2, arena);
    p->last_active_ts = db_column_int64(st, 3);
    p->stream_pos = db_column_int64(st, 4);
}

int store_presence_all(struct store_conn *c, struct arena *arena, struct store_presence **out,
                       size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT user_id, state, status_msg, last_active_ts, stream_pos "
                          "FROM presence ORDER BY stream_pos",
                          "");
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), presence_row, out, n);
}

int store_presence_put(struct store_conn *c, const struct store_presence *p)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO presence (user_id, state, status_msg, "
                                 "last_active_ts, stream_pos) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (user_id) DO UPDATE SET state = excluded.state, "
                                 "status_msg = excluded.status_msg, "
                                 "last_active_ts = excluded.last_active_ts, "
                                 "stream_pos = excluded.stream_pos",
                                 "tttii", p->user_id, p->state, p->status_msg, p->last_active_ts,
                                 p->stream_pos));
}

/* The m.room.member rows of joined users; membership is set on those only. */
int store_presence_co_members(struct store_conn *c, struct arena *arena, const char *user_id,
                              char ***user_ids, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT k2.state_key FROM state_keys k1 "
                          "JOIN room_current_state s1 ON s1.state_key_nid = k1.state_key_nid "
                          "AND s1.membership = 'join' "
                          "JOIN room_current_state s2 ON s2.room_nid = s1.room_nid "
                          "AND s2.membership = 'join' "
                          "JOIN state_keys k2 ON k2.state_key_nid = s2.state_key_nid "
                          "WHERE k1.state_key = ?",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**user_ids), store__str_row, user_ids, n);
}

int store_presence_share_room(struct store_conn *c, const char *a, const char *b, bool *out)
{
    int64_t one = 0;
    int rc = store__get_int(c, &one,
                            "SELECT 1 FROM state_keys ka "
                            "JOIN room_current_state sa ON sa.state_key_nid = ka.state_key_nid "
                            "AND sa.membership = 'join' "
                            "JOIN state_keys kb ON kb.state_key = ? "
                            "JOIN room_current_state sb ON sb.room_nid = sa.room_nid "
                            "AND sb.state_key_nid = kb.state_key_nid AND sb.membership = 'join' "
                            "WHERE ka.state_key = ? LIMIT 1",
                            "tt", b, a);
    *out = rc == 0;
    return rc == -ERR_NOT_FOUND ? 0 : rc;
}
