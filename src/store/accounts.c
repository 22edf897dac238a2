/*
 * Account queries: passwords, deactivation, devices, access and refresh
 * tokens, profiles and registration tokens (schema 002_accounts).
 */
#include <stdint.h>

#include "store/store_int.h"

/* ---- users ---- */

int store_user_set_password(struct store_conn *c, const char *user_id, const char *password_hash)
{
    return store__changed_one(store__exec(
        c, "UPDATE users SET password_hash = ? WHERE user_id = ?", "tt", password_hash, user_id));
}

int store_user_deactivate(struct store_conn *c, const char *user_id, bool erase)
{
    int rc = store__changed_one(store__exec(
        c, "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?", "t",
        user_id));
    if (rc == 0) {
        rc = store_devices_delete_all(c, user_id, NULL);
    }
    if (rc == 0) {
        rc = store_room_keys_delete_user(c, user_id); /* key backups go with the account */
    }
    if (rc == 0) {
        rc = store_keys_cs_delete_user(c, user_id); /* cross-signing keys */
    }
    if (rc == 0 && erase) {
        rc = store__ok(store__exec(c, "DELETE FROM profiles WHERE user_id = ?", "t", user_id));
    }
    return rc;
}

/* ---- devices ---- */

int store_device_ensure(struct store_conn *c, const char *user_id, const char *device_id,
                        const char *display_name, int64_t ts)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO devices (user_id, device_id, display_name, "
                                 "created_ts) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (user_id, device_id) DO NOTHING",
                                 "ttti", user_id, device_id, display_name, ts));
}

static void read_device(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_device *d = row;
    d->device_id = store__col_str(st, 0, arena);
    d->display_name = store__col_str(st, 1, arena);
    d->created_ts = db_column_int64(st, 2);
    d->last_seen_ts = db_column_int64(st, 3);
    d->last_seen_ip = store__col_str(st, 4, arena);
}

#define DEVICE_COLS "device_id, display_name, created_ts, last_seen_ts, last_seen_ip"

int store_device_get(struct store_conn *c, struct arena *arena, const char *user_id,
                     const char *device_id, struct store_device *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " DEVICE_COLS " FROM devices WHERE user_id = ? AND device_id = ?",
                          "tt", user_id, device_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        read_device(st, arena, out);
    }
    db_finalize(st);
    return rc;
}

int store_device_list(struct store_conn *c, struct arena *arena, const char *user_id,
                      struct store_device **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " DEVICE_COLS " FROM devices WHERE user_id = ? "
                          "ORDER BY created_ts, device_id",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), read_device, out, n);
}

int store_device_set_name(struct store_conn *c, const char *user_id, const char *device_id,
                          const char *display_name)
{
    return store__changed_one(store__exec(
        c, "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?", "ttt",
        display_name, user_id, device_id));
}

int store_device_touch(struct store_conn *c, const char *user_id, const char *device_id,
                       int64_t ts, const char *ip)
{
    return store__ok(store__exec(c,
                                 "UPDATE devices SET last_seen_ts = ?, last_seen_ip = ? "
                                 "WHERE user_id = ? AND device_id = ?",
                                 "ittt", ts, ip, user_id, device_id));
}

int store_device_delete(struct store_conn *c, const char *user_id, const char *device_id)
{
    int rc = store__ok(store__exec(
        c, "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?", "tt", user_id,
        device_id));
    if (rc == 0) {
        rc = store__ok(store__exec(
            c, "DELETE FROM refresh_tokens WHERE user_id = ? AND device_id = ?", "tt", user_id,
            device_id));
    }
    if (rc == 0) {
        rc = store__changed_one(store__exec(
            c, "DELETE FROM devices WHERE user_id = ? AND device_id = ?", "tt", user_id,
            device_id));
    }
    return rc;
}

int store_devices_delete_all(struct store_conn *c, const char *user_id, const char *keep_device)
{
    /* With keep_device NULL, "device_id <> NULL" is never true, so the
     * COALESCE turns it into "keep nothing". */
    static const char *const sql[] = {
        "DELETE FROM access_tokens WHERE user_id = ? AND device_id <> COALESCE(?, '')",
        "DELETE FROM refresh_tokens WHERE user_id = ? AND device_id <> COALESCE(?, '')",
        "DELETE FROM devices WHERE user_id = ? AND device_id <> COALESCE(?, '')",
    };
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        int rc = store__ok(store__exec(c, sql[i], "tt", user_id, keep_device));
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- access and refresh tokens ---- */

int store_token_add(struct store_conn *c, const char *token_hash, const char *user_id,
                    const char *device_id, int64_t created_ts, int64_t expires_ts,
                    const char *refresh_hash)
{
    if (expires_ts > 0) {
        return store__ok(store__exec(c,
                                     "INSERT INTO access_tokens (token_hash, user_id, device_id, "
                                     "created_ts, expires_ts, refresh_hash) VALUES (?, ?, ?, ?, ?, ?)",
                                     "tttiit", token_hash, user_id, device_id, created_ts,
                                     expires_ts, refresh_hash));
    }
    return store__ok(store__exec(c,
                                 "INSERT INTO access_tokens (token_hash, user_id, device_id, "
                                 "created_ts, expires_ts, refresh_hash) VALUES (?, ?, ?, ?, NULL, ?)",
                                 "tttit", token_hash, user_id, device_id, created_ts,
                                 refresh_hash));
}

int store_token_lookup(struct store_conn *c, struct arena *arena, const char *token_hash,
                       struct store_token *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT t.user_id, t.device_id, t.expires_ts, u.is_guest, u.is_admin, "
                          "u.deactivated FROM access_tokens t JOIN users u ON u.user_id = t.user_id "
                          "WHERE t.token_hash = ?",
                          "t", token_hash);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        out->user_id = store__col_str(st, 0, arena);
        out->device_id = store__col_str(st, 1, arena);
        out->expires_ts = db_column_int64(st, 2);
        out->is_guest = db_column_int64(st, 3) != 0;
        out->is_admin = db_column_int64(st, 4) != 0;
        out->deactivated = db_column_int64(st, 5) != 0;
    }
    db_finalize(st);
    return rc;
}

int store_token_delete(struct store_conn *c, const char *token_hash)
{
    return store__changed_one(
        store__exec(c, "DELETE FROM access_tokens WHERE token_hash = ?", "t", token_hash));
}

int store_refresh_add(struct store_conn *c, const char *token_hash, const char *user_id,
                      const char *device_id, int64_t created_ts)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO refresh_tokens (token_hash, user_id, device_id, "
                                 "created_ts) VALUES (?, ?, ?, ?)",
                                 "ttti", token_hash, user_id, device_id, created_ts));
}

int store_refresh_take(struct store_conn *c, struct arena *arena, const char *token_hash,
                       char **user_id, char **device_id)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT user_id, device_id FROM refresh_tokens WHERE token_hash = ?", "t",
                          token_hash);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        *user_id = store__col_str(st, 0, arena);
        *device_id = store__col_str(st, 1, arena);
    }
    db_finalize(st);
    if (rc < 0) {
        return rc;
    }
    rc = store__changed_one(
        store__exec(c, "DELETE FROM refresh_tokens WHERE token_hash = ?", "t", token_hash));
    if (rc == 0) {
        rc = store__ok(store__exec(c, "DELETE FROM access_tokens WHERE refresh_hash = ?", "t",
                                   token_hash));
    }
    return rc;
}

/* ---- profiles ---- */

int store_profile_get(struct store_conn *c, struct arena *arena, const char *user_id,
                      struct store_profile *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT displayname, avatar_url, fields FROM profiles WHERE user_id = ?",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        out->displayname = store__col_str(st, 0, arena);
        out->avatar_url = store__col_str(st, 1, arena);
        out->fields = store__col_str(st, 2, arena);
        if (!out->fields) {
            out->fields = arena_strdup(arena, "{}");
        }
    }
    db_finalize(st);
    return rc;
}

int store_profile_set(struct store_conn *c, const char *user_id, const struct store_profile *p)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO profiles (user_id, displayname, avatar_url, fields) "
                                 "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                                 "displayname = excluded.displayname, "
                                 "avatar_url = excluded.avatar_url, fields = excluded.fields",
                                 "tttt", user_id, p->displayname, p->avatar_url,
                                 p->fields ? p->fields : "{}"));
}

/* ---- registration tokens ---- */

int store_regtoken_create(struct store_conn *c, const char *token, int64_t uses_allowed,
                          int64_t expiry_time)
{
    /* NULL columns mean "unlimited" and "never"; bind them through NULLIF
     * so one statement serves every combination. */
    return store__ok(store__exec(c,
                                 "INSERT INTO registration_tokens (token, uses_allowed, "
                                 "expiry_time) VALUES (?, NULLIF(CAST(? AS BIGINT), -1), "
                                 "NULLIF(CAST(? AS BIGINT), 0))",
                                 "tii", token, uses_allowed, expiry_time));
}

static void read_regtoken(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_regtoken *t = row;
    t->token = store__col_str(st, 0, arena);
    t->uses_allowed = db_column_is_null(st, 1) ? -1 : db_column_int64(st, 1);
    t->pending = db_column_int64(st, 2);
    t->completed = db_column_int64(st, 3);
    t->expiry_time = db_column_is_null(st, 4) ? 0 : db_column_int64(st, 4);
}

#define REGTOKEN_COLS "token, uses_allowed, pending, completed, expiry_time"

int store_regtoken_get(struct store_conn *c, struct arena *arena, const char *token,
                       struct store_regtoken *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " REGTOKEN_COLS " FROM registration_tokens WHERE token = ?", "t",
                          token);
    if (rc < 0) {
        return rc;
    }
    rc = store__step_one(st);
    if (rc == 0) {
        read_regtoken(st, arena, out);
    }
    db_finalize(st);
    return rc;
}

int store_regtoken_list(struct store_conn *c, struct arena *arena, struct store_regtoken **out,
                        size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT " REGTOKEN_COLS " FROM registration_tokens ORDER BY token", "");
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), read_regtoken, out, n);
}

int store_regtoken_delete(struct store_conn *c, const char *token)
{
    return store__changed_one(
        store__exec(c, "DELETE FROM registration_tokens WHERE token = ?", "t", token));
}

int store_regtoken_update(struct store_conn *c, const char *token, bool set_uses,
                          int64_t uses_allowed, bool set_expiry, int64_t expiry_time)
{
    /* A flag of 0 keeps the column; NULLIF maps -1 and 0 to NULL as in
     * store_regtoken_create. */
    return store__changed_one(store__exec(
        c,
        "UPDATE registration_tokens SET "
        "uses_allowed = CASE WHEN ? = 1 THEN NULLIF(CAST(? AS BIGINT), -1) ELSE uses_allowed END, "
        "expiry_time = CASE WHEN ? = 1 THEN NULLIF(CAST(? AS BIGINT), 0) ELSE expiry_time END "
        "WHERE token = ?",
        "iiiit", (int64_t)set_uses, uses_allowed, (int64_t)set_expiry, expiry_time, token));
}

int store_regtoken_reserve(struct store_conn *c, const char *token, int64_t now)
{
    /* One statement, so two concurrent registrations cannot both take the
     * last use. */
    return store__changed_one(store__exec(
        c,
        "UPDATE registration_tokens SET pending = pending + 1 "
        "WHERE token = ? AND (expiry_time IS NULL OR expiry_time > ?) "
        "AND (uses_allowed IS NULL OR pending + completed < uses_allowed)",
        "ti", token, now));
}

int store_regtoken_finish(struct store_conn *c, const char *token, bool done)
{
    if (done) {
        return store__changed_one(store__exec(
            c,
            "UPDATE registration_tokens SET pending = pending - 1, "
            "completed = completed + 1 WHERE token = ? AND pending > 0",
            "t", token));
    }
    return store__changed_one(store__exec(
        c, "UPDATE registration_tokens SET pending = pending - 1 WHERE token = ? AND pending > 0",
        "t", token));
}
