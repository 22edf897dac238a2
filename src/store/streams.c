/*
 * Stream positions and read receipts (schema 008_streams). Positions are
 * handed out by svc/streams.c; this file only records and reads them.
 */
#include <stdint.h>

#include "store/store_int.h"

int store_stream_positions(struct store_conn *c, int64_t *pos, size_t n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT stream, pos FROM stream_positions", "");
    if (rc < 0) {
        return rc;
    }
    while ((rc = db_step(st)) == DB_ROW) {
        int64_t s = db_column_int64(st, 0);
        if (s >= 0 && (size_t)s < n) {
            pos[s] = db_column_int64(st, 1);
        }
    }
    db_finalize(st);
    return rc < 0 ? rc : 0;
}

int store_stream_bump(struct store_conn *c, int stream, int64_t pos)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO stream_positions (stream, pos) VALUES (?, ?) "
                                 "ON CONFLICT (stream) DO UPDATE SET pos = excluded.pos "
                                 "WHERE stream_positions.pos < excluded.pos",
                                 "ii", (int64_t)stream, pos));
}

/* ---- receipts ---- */

#define RECEIPT_COLS                                                                           \
    "room_id, receipt_type, user_id, thread_id, event_id, event_stream, ts, stream_pos"

static void receipt_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_receipt *r = row;
    r->room_id = store__col_str(st, 0, arena);
    r->type = store__col_str(st, 1, arena);
    r->user_id = store__col_str(st, 2, arena);
    r->thread_id = store__col_str(st, 3, arena);
    r->event_id = store__col_str(st, 4, arena);
    r->event_stream = db_column_int64(st, 5);
    r->ts = db_column_int64(st, 6);
    r->stream_pos = db_column_int64(st, 7);
}

int store_receipt_put(struct store_conn *c, const struct store_receipt *r)
{
    int rc = store__exec(c,
                         "INSERT INTO receipts (" RECEIPT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                         "ON CONFLICT (room_id, receipt_type, user_id, thread_id) DO UPDATE SET "
                         "event_id = excluded.event_id, event_stream = excluded.event_stream, "
                         "ts = excluded.ts, stream_pos = excluded.stream_pos "
                         "WHERE receipts.event_stream < excluded.event_stream",
                         "tttttiii", r->room_id, r->type, r->user_id, r->thread_id, r->event_id,
                         r->event_stream, r->ts, r->stream_pos);
    if (rc < 0 || rc == DB_UNIQUE) {
        return store__ok(rc);
    }
    return rc > 0;
}

int store_receipts_between(struct store_conn *c, struct arena *arena, int64_t after,
                           int64_t upto, struct store_receipt **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " RECEIPT_COLS " FROM receipts WHERE stream_pos > ? "
                          "AND stream_pos <= ? ORDER BY stream_pos",
                          "ii", after, upto);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), receipt_row, out, n);
}

int store_receipts_user_room(struct store_conn *c, struct arena *arena, const char *user_id,
                             const char *room_id, struct store_receipt **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " RECEIPT_COLS " FROM receipts WHERE user_id = ? "
                          "AND room_id = ?",
                          "tt", user_id, room_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), receipt_row, out, n);
}

int store_receipts_of_room(struct store_conn *c, struct arena *arena, const char *room_id,
                           int64_t upto, struct store_receipt **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " RECEIPT_COLS " FROM receipts WHERE room_id = ? "
                          "AND stream_pos <= ? ORDER BY stream_pos",
                          "ti", room_id, upto);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), receipt_row, out, n);
}

int store_receipt_read_upto(struct store_conn *c, const char *user_id, const char *room_id,
                            const char *thread_id, int64_t *event_stream)
{
    *event_stream = 0;
    int rc = store__get_int(c, event_stream,
                            "SELECT COALESCE(MAX(event_stream), 0) FROM receipts "
                            "WHERE user_id = ? AND room_id = ? "
                            "AND receipt_type IN ('m.read', 'm.read.private') "
                            "AND (thread_id = '' OR thread_id = ?)",
                            "ttt", user_id, room_id, thread_id ? thread_id : "main");
    return rc == -ERR_NOT_FOUND ? 0 : rc;
}
