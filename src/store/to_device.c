/*
 * Send-to-device messages and their transaction IDs (schema
 * 014_to_device). Positions come from svc/streams (STREAM_TO_DEVICE); the
 * caller records them with store_stream_bump in the same transaction.
 */
#include <stdint.h>
#include <string.h>

#include "store/store_int.h"

int store_to_device_txn_put(struct store_conn *c, const char *user_id, const char *device_id,
                            const char *event_type, const char *txn_id, int64_t ts)
{
    int rc = store__exec(c,
                         "INSERT INTO to_device_txns (user_id, device_id, event_type, txn_id, ts) "
                         "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         "tttti", user_id, device_id ? device_id : "", event_type, txn_id,
                         ts);
    if (rc < 0 || rc == DB_UNIQUE) {
        return rc == DB_UNIQUE ? 0 : rc;
    }
    return rc > 0;
}

int store_to_device_add(struct store_conn *c, const char *user_id, const char *device_id,
                        int64_t stream_pos, int64_t seq, const char *sender, const char *type,
                        const char *content)
{
    /* Only devices that exist get the message: the SELECT finds them. */
#define TO_DEVICE_INSERT                                                                       \
    "INSERT INTO to_device_messages (user_id, device_id, stream_pos, seq, sender, type, "      \
    "content) SELECT user_id, device_id, CAST(? AS BIGINT), CAST(? AS INTEGER), "              \
    "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT) FROM devices WHERE user_id = ?"
    int rc;
    if (strcmp(device_id, "*") == 0) {
        rc = store__exec(c, TO_DEVICE_INSERT, "iitttt", stream_pos, seq, sender, type, content,
                         user_id);
    } else {
        rc = store__exec(c, TO_DEVICE_INSERT " AND device_id = ?", "iittttt", stream_pos, seq,
                         sender, type, content, user_id, device_id);
    }
#undef TO_DEVICE_INSERT
    return rc == DB_UNIQUE ? store__ok(rc) : rc;
}

static void message_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_to_device *m = row;
    m->stream_pos = db_column_int64(st, 0);
    m->sender = store__col_str(st, 1, arena);
    m->type = store__col_str(st, 2, arena);
    m->content = store__col_str(st, 3, arena);
}

int store_to_device_between(struct store_conn *c, struct arena *arena, const char *user_id,
                            const char *device_id, int64_t after, int64_t upto, int64_t limit,
                            struct store_to_device **out, size_t *n)
{
#define TO_DEVICE_SELECT                                                                       \
    "SELECT stream_pos, sender, type, content FROM to_device_messages "                        \
    "WHERE user_id = ? AND device_id = ? AND stream_pos > ? AND stream_pos <= ? "              \
    "ORDER BY stream_pos, seq"
    struct db_stmt *st;
    int rc = limit > 0 ? store__query(c, &st, TO_DEVICE_SELECT " LIMIT ?", "ttiii", user_id,
                                      device_id, after, upto, limit)
                       : store__query(c, &st, TO_DEVICE_SELECT, "ttii", user_id, device_id,
                                      after, upto);
#undef TO_DEVICE_SELECT
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), message_row, out, n);
}

int store_to_device_ack(struct store_conn *c, const char *user_id, const char *device_id,
                        int64_t upto)
{
    return store__ok(store__exec(c,
                                 "DELETE FROM to_device_messages WHERE user_id = ? "
                                 "AND device_id = ? AND stream_pos <= ?",
                                 "tti", user_id, device_id, upto));
}

int store_to_device_prune(struct store_conn *c, const char *user_id)
{
    return store__ok(store__exec(c,
                                 "DELETE FROM to_device_messages WHERE user_id = ? "
                                 "AND NOT EXISTS (SELECT 1 FROM devices d WHERE "
                                 "d.user_id = to_device_messages.user_id "
                                 "AND d.device_id = to_device_messages.device_id)",
                                 "t", user_id));
}
