/*
 * Account data and room tags (schema 009_account_data): one row per user,
 * room ('' for global account data) and type, with the JSON content and
 * the STREAM_ACCOUNT_DATA position of its last change. Tags are the
 * room's m.tag row; api/client/account_data.c edits it. The index on
 * (user_id, stream_pos) serves every /sync read; the primary key serves
 * single reads and writes.
 */
#include <stdint.h>

#include "store/store_int.h"

int store_account_data_put(struct store_conn *c, const char *user_id, const char *room_id,
                           const char *type, const char *content, int64_t stream_pos)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO account_data (user_id, room_id, type, content, "
                                 "stream_pos) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (user_id, room_id, type) DO UPDATE SET "
                                 "content = excluded.content, stream_pos = excluded.stream_pos",
                                 "tttti", user_id, room_id, type, content, stream_pos));
}

int store_account_data_get(struct store_conn *c, struct arena *arena, const char *user_id,
                           const char *room_id, const char *type, char **content)
{
    return store__get_str(c, arena, content,
                          "SELECT content FROM account_data "
                          "WHERE user_id = ? AND room_id = ? AND type = ?",
                          "ttt", user_id, room_id, type);
}

static void entry_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_account_data *e = row;
    e->room_id = store__col_str(st, 0, arena);
    e->type = store__col_str(st, 1, arena);
    e->content = store__col_str(st, 2, arena);
    e->stream_pos = db_column_int64(st, 3);
}

#define ENTRY_SELECT                                                                           \
    "SELECT room_id, type, content, stream_pos FROM account_data "                             \
    "WHERE user_id = ? AND stream_pos > ? AND stream_pos <= ? "

int store_account_data_between(struct store_conn *c, struct arena *arena, const char *user_id,
                               const char *room_id, int64_t after, int64_t upto,
                               struct store_account_data **out, size_t *n)
{
    /* Positions start at 1, so any negative `after` selects everything. */
    struct db_stmt *st;
    int rc;
    if (room_id) {
        rc = store__query(c, &st, ENTRY_SELECT "AND room_id = ? ORDER BY type", "tiit",
                          user_id, after, upto, room_id);
    } else {
        rc = store__query(c, &st, ENTRY_SELECT "AND room_id <> '' ORDER BY room_id, type",
                          "tii", user_id, after, upto);
    }
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), entry_row, out, n);
}

int store_account_data_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                             int64_t after, int64_t upto, char ***room_ids, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT room_id FROM account_data WHERE user_id = ? "
                          "AND stream_pos > ? AND stream_pos <= ? AND room_id <> ''",
                          "tii", user_id, after, upto);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**room_ids), store__str_row, room_ids, n);
}
