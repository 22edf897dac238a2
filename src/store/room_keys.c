/*
 * Queries behind server-side key backups (schema 017_room_keys): each
 * user's backup versions and the encrypted session keys stored in them.
 * api/client/room_keys.c checks shapes and which version may be written;
 * this file stores, compares and lists. The rule that decides between two
 * uploads of one session (spec "Server-side key backups") is a condition
 * of the upsert in store_room_keys_put, so the comparison and the write
 * are one statement.
 */
#include <stdint.h>

#include "base/err.h"
#include "store/store_int.h"

/* Two concurrent creations can pick the same max+1; a few retries settle
 * it (PostgreSQL; SQLite serialises writers). */
#define VERSION_INSERT_TRIES 5

/* ---- versions ---- */

int store_room_keys_version_create(struct store_conn *c, const char *user_id,
                                   const char *algorithm, const char *auth_data,
                                   int64_t *version)
{
    /* Deleted versions keep their rows, so MAX covers them and a number is
     * never handed out twice. The casts give PostgreSQL the types of the
     * selected parameters. */
    for (int i = 0; i < VERSION_INSERT_TRIES; i++) {
        int rc = store__get_int(c, version,
                                "INSERT INTO e2e_room_keys_versions (user_id, version, "
                                "algorithm, auth_data, etag, deleted) "
                                "SELECT CAST(? AS TEXT), COALESCE(MAX(version), 0) + 1, "
                                "CAST(? AS TEXT), CAST(? AS TEXT), 0, 0 "
                                "FROM e2e_room_keys_versions WHERE user_id = ? "
                                "RETURNING version",
                                "tttt", user_id, algorithm, auth_data, user_id);
        if (rc != DB_UNIQUE) {
            return rc;
        }
    }
    return -ERR_CONFLICT;
}

#define VERSION_COLS                                                                           \
    "v.version, v.algorithm, v.auth_data, v.etag, "                                             \
    "(SELECT COUNT(*) FROM e2e_room_keys k WHERE k.user_id = v.user_id AND "                    \
    "k.version = v.version)"

int store_room_keys_version_get(struct store_conn *c, struct arena *arena, const char *user_id,
                                int64_t version, struct store_backup_version *out)
{
    struct db_stmt *st;
    int rc = version > 0
                 ? store__query(c, &st,
                                "SELECT " VERSION_COLS " FROM e2e_room_keys_versions v "
                                "WHERE v.user_id = ? AND v.version = ? AND v.deleted = 0",
                                "ti", user_id, version)
                 : store__query(c, &st,
                                "SELECT " VERSION_COLS " FROM e2e_room_keys_versions v "
                                "WHERE v.user_id = ? AND v.deleted = 0 "
                                "ORDER BY v.version DESC LIMIT 1",
                                "t", user_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        out->version = db_column_int64(st, 0);
        out->algorithm = store__col_str(st, 1, arena);
        out->auth_data = store__col_str(st, 2, arena);
        out->etag = db_column_int64(st, 3);
        out->count = db_column_int64(st, 4);
    }
    db_finalize(st);
    return rc;
}

int store_room_keys_version_update(struct store_conn *c, const char *user_id, int64_t version,
                                   const char *auth_data)
{
    return store__changed_one(store__exec(c,
                                          "UPDATE e2e_room_keys_versions SET auth_data = ? "
                                          "WHERE user_id = ? AND version = ? AND deleted = 0",
                                          "tti", auth_data, user_id, version));
}

int store_room_keys_version_delete(struct store_conn *c, const char *user_id, int64_t version)
{
    /* A version deleted before still matches, so deleting it again is a
     * success (spec: "or the specified backup was previously deleted"). */
    int rc = store__changed_one(store__exec(c,
                                            "UPDATE e2e_room_keys_versions SET deleted = 1 "
                                            "WHERE user_id = ? AND version = ?",
                                            "ti", user_id, version));
    if (rc == 0) {
        rc = store__ok(store__exec(c,
                                   "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?",
                                   "ti", user_id, version));
    }
    return rc;
}

int store_room_keys_version_hold(struct store_conn *c, const char *user_id, int64_t version)
{
    return store__changed_one(store__exec(c,
                                          "UPDATE e2e_room_keys_versions SET etag = etag "
                                          "WHERE user_id = ? AND version = ? AND deleted = 0",
                                          "ti", user_id, version));
}

int store_room_keys_bump_etag(struct store_conn *c, const char *user_id, int64_t version)
{
    return store__changed_one(store__exec(c,
                                          "UPDATE e2e_room_keys_versions SET etag = etag + 1 "
                                          "WHERE user_id = ? AND version = ?",
                                          "ti", user_id, version));
}

/* ---- keys ---- */

int store_room_keys_put(struct store_conn *c, const char *user_id, int64_t version,
                        const struct store_room_key *k)
{
    /*
     * The spec's order of preference, as the condition under which the
     * upload replaces the stored key: a verified key beats an unverified
     * one; between equally verified keys the lower first_message_index
     * wins, then the lower forwarded_count. An equal key keeps the stored
     * one, so a repeated upload changes nothing (and no etag).
     */
    int rc = store__exec(
        c,
        "INSERT INTO e2e_room_keys (user_id, version, room_id, session_id, "
        "first_message_index, forwarded_count, is_verified, session_data) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET "
        "first_message_index = excluded.first_message_index, "
        "forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, "
        "session_data = excluded.session_data "
        "WHERE excluded.is_verified > e2e_room_keys.is_verified OR "
        "(excluded.is_verified = e2e_room_keys.is_verified AND "
        "(excluded.first_message_index < e2e_room_keys.first_message_index OR "
        "(excluded.first_message_index = e2e_room_keys.first_message_index AND "
        "excluded.forwarded_count < e2e_room_keys.forwarded_count)))",
        "tittiibt", user_id, version, k->room_id, k->session_id, k->first_message_index,
        k->forwarded_count, (int)k->is_verified, k->session_data);
    if (rc < 0) {
        return store__ok(rc);
    }
    return rc > 0 ? 1 : 0;
}

static void room_key_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_room_key *k = row;
    k->room_id = store__col_str(st, 0, arena);
    k->session_id = store__col_str(st, 1, arena);
    k->first_message_index = db_column_int64(st, 2);
    k->forwarded_count = db_column_int64(st, 3);
    k->is_verified = db_column_int64(st, 4) != 0;
    k->session_data = store__col_str(st, 5, arena);
}

#define KEY_COLS                                                                               \
    "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, "          \
    "session_data FROM e2e_room_keys WHERE user_id = ? AND version = ?"

int store_room_keys_list(struct store_conn *c, struct arena *arena, const char *user_id,
                         int64_t version, const char *room_id, const char *session_id,
                         struct store_room_key **out, size_t *n)
{
    struct db_stmt *st;
    int rc;
    if (session_id) {
        rc = store__query(c, &st, KEY_COLS " AND room_id = ? AND session_id = ?", "titt",
                          user_id, version, room_id, session_id);
    } else if (room_id) {
        rc = store__query(c, &st, KEY_COLS " AND room_id = ? ORDER BY session_id", "tit",
                          user_id, version, room_id);
    } else {
        rc = store__query(c, &st, KEY_COLS " ORDER BY room_id, session_id", "ti", user_id,
                          version);
    }
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return store__collect(st, arena, sizeof(**out), room_key_row, out, n);
}

int store_room_keys_delete(struct store_conn *c, const char *user_id, int64_t version,
                           const char *room_id, const char *session_id)
{
    int rc;
    if (session_id) {
        rc = store__exec(c,
                         "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ? AND "
                         "room_id = ? AND session_id = ?",
                         "titt", user_id, version, room_id, session_id);
    } else if (room_id) {
        rc = store__exec(c,
                         "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ? AND "
                         "room_id = ?",
                         "tit", user_id, version, room_id);
    } else {
        rc = store__exec(c, "DELETE FROM e2e_room_keys WHERE user_id = ? AND version = ?", "ti",
                         user_id, version);
    }
    return rc < 0 ? store__ok(rc) : rc;
}

int store_room_keys_delete_user(struct store_conn *c, const char *user_id)
{
    int rc = store__ok(store__exec(c, "DELETE FROM e2e_room_keys WHERE user_id = ?", "t",
                                   user_id));
    if (rc == 0) {
        rc = store__ok(store__exec(c, "DELETE FROM e2e_room_keys_versions WHERE user_id = ?",
                                   "t", user_id));
    }
    return rc;
}
