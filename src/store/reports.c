/*
 * Content reports (spec "Reporting content"; the reports table): storing
 * what users report and listing it for administrators. The request layer
 * decides what may be reported; this file only records and pages.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "store/store_int.h"

/* Two concurrent inserts can pick the same max+1; a few retries settle it. */
#define REPORT_INSERT_TRIES 5

int store_report_add(struct store_conn *c, const struct store_report *rep)
{
    /* The score binds as text so that an absent one is NULL; the casts give
     * PostgreSQL the types of the selected parameters. */
    char score[24];
    if (rep->has_score) {
        snprintf(score, sizeof(score), "%lld", (long long)rep->score);
    }
    for (int i = 0; i < REPORT_INSERT_TRIES; i++) {
        int rc = store__exec(c,
                             "INSERT INTO reports (id, kind, received_ts, reporter, room_id, "
                             "event_id, target_user_id, reason, score) "
                             "SELECT COALESCE(MAX(id), 0) + 1, CAST(? AS TEXT), "
                             "CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS TEXT), "
                             "CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), "
                             "CAST(? AS BIGINT) FROM reports",
                             "titttttt", rep->kind, rep->received_ts, rep->reporter,
                             rep->room_id, rep->event_id, rep->target_user_id, rep->reason,
                             rep->has_score ? score : NULL);
        if (rc != DB_UNIQUE) {
            return rc < 0 ? rc : 0;
        }
    }
    return -ERR_CONFLICT;
}

int store_reports_list(struct store_conn *c, struct arena *arena, const char *kind,
                       int64_t offset, int limit, bool newest_first, struct store_report **out,
                       size_t *n, int64_t *total)
{
    struct db_stmt *st;
    int rc = store__query(c, &st, "SELECT COUNT(*) FROM reports WHERE kind = ?", "t", kind);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    *total = rc == DB_ROW ? db_column_int64(st, 0) : 0;
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    rc = store__query(c, &st,
                      newest_first
                          ? "SELECT id, kind, received_ts, reporter, room_id, event_id, "
                            "target_user_id, reason, score FROM reports WHERE kind = ? "
                            "ORDER BY id DESC LIMIT ? OFFSET ?"
                          : "SELECT id, kind, received_ts, reporter, room_id, event_id, "
                            "target_user_id, reason, score FROM reports WHERE kind = ? "
                            "ORDER BY id ASC LIMIT ? OFFSET ?",
                      "tii", kind, (int64_t)limit, offset);
    if (rc < 0) {
        return rc;
    }
    struct store_report *list =
        limit > 0 ? arena_alloc(arena, sizeof(*list) * (size_t)limit) : NULL;
    size_t count = 0;
    while ((rc = db_step(st)) == DB_ROW && count < (size_t)limit) {
        struct store_report *rep = &list[count++];
        memset(rep, 0, sizeof(*rep));
        rep->id = db_column_int64(st, 0);
        rep->kind = store__col_str(st, 1, arena);
        rep->received_ts = db_column_int64(st, 2);
        rep->reporter = store__col_str(st, 3, arena);
        rep->room_id = store__col_str(st, 4, arena);
        rep->event_id = store__col_str(st, 5, arena);
        rep->target_user_id = store__col_str(st, 6, arena);
        rep->reason = store__col_str(st, 7, arena);
        rep->has_score = !db_column_is_null(st, 8);
        rep->score = rep->has_score ? db_column_int64(st, 8) : 0;
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

/* ---- room summaries ---- */

int store_room_joined_count(struct store_conn *c, int64_t room_nid, int64_t *count)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT COUNT(*) FROM room_current_state WHERE room_nid = ? "
                          "AND membership = 'join'",
                          "i", room_nid);
    if (rc < 0) {
        return rc;
    }
    rc = db_step(st);
    *count = rc == DB_ROW ? db_column_int64(st, 0) : 0;
    db_finalize(st);
    return rc < 0 ? rc : 0;
}
