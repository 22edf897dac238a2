/*
 * Queries behind end-to-end encryption keys (schema 013_keys): the
 * identity keys of each device, its one-time keys and its fallback key
 * per algorithm; and cross-signing (schema 016_cross_signing): each
 * user's master, self-signing and user-signing keys and the signatures
 * uploaded for keys. api/client/keys.c checks signatures and shapes; this
 * file only stores, counts and hands out. A claim deletes the one-time
 * key it returns in the same statement, so each key goes to one claimer.
 */
#include <stdint.h>

#include "base/err.h"
#include "store/store_int.h"

/* Bounded retries of a one-time key claim that lost a race (PostgreSQL). */
#define CLAIM_TRIES 50

/* ---- device keys ---- */

int store_keys_device_put(struct store_conn *c, const char *user_id, const char *device_id,
                          const char *key_json, int64_t ts)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO e2e_device_keys (user_id, device_id, key_json, "
                                 "updated_ts) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT (user_id, device_id) DO UPDATE SET "
                                 "key_json = excluded.key_json, updated_ts = excluded.updated_ts",
                                 "ttti", user_id, device_id, key_json, ts));
}

int store_keys_device_get(struct store_conn *c, struct arena *arena, const char *user_id,
                          const char *device_id, char **key_json)
{
    return store__get_str(c, arena, key_json,
                          "SELECT key_json FROM e2e_device_keys "
                          "WHERE user_id = ? AND device_id = ?",
                          "tt", user_id, device_id);
}

static void device_keys_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_device_keys *d = row;
    d->device_id = store__col_str(st, 0, arena);
    d->key_json = store__col_str(st, 1, arena);
    d->display_name = store__col_str(st, 2, arena);
}

int store_keys_device_list(struct store_conn *c, struct arena *arena, const char *user_id,
                           struct store_device_keys **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT k.device_id, k.key_json, d.display_name "
                          "FROM e2e_device_keys k JOIN devices d "
                          "ON d.user_id = k.user_id AND d.device_id = k.device_id "
                          "WHERE k.user_id = ? ORDER BY k.device_id",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return store__collect(st, arena, sizeof(**out), device_keys_row, out, n);
}

/* ---- one-time keys ---- */

int store_keys_otk_next_seq(struct store_conn *c, const char *user_id, const char *device_id,
                            int64_t *seq)
{
    return store__get_int(c, seq,
                          "SELECT COALESCE(MAX(upload_seq), 0) + 1 FROM e2e_one_time_keys "
                          "WHERE user_id = ? AND device_id = ?",
                          "tt", user_id, device_id);
}

int store_keys_otk_get(struct store_conn *c, struct arena *arena, const char *user_id,
                       const char *device_id, const char *algorithm, const char *key_id,
                       char **key_json)
{
    return store__get_str(c, arena, key_json,
                          "SELECT key_json FROM e2e_one_time_keys WHERE user_id = ? AND "
                          "device_id = ? AND algorithm = ? AND key_id = ?",
                          "tttt", user_id, device_id, algorithm, key_id);
}

int store_keys_otk_add(struct store_conn *c, const char *user_id, const char *device_id,
                       const char *algorithm, const char *key_id, const char *key_json,
                       int64_t seq)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, "
                                 "key_id, key_json, upload_seq) VALUES (?, ?, ?, ?, ?, ?) "
                                 "ON CONFLICT (user_id, device_id, algorithm, key_id) DO NOTHING",
                                 "ttttti", user_id, device_id, algorithm, key_id, key_json, seq));
}

static void count_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_key_count *k = row;
    k->algorithm = store__col_str(st, 0, arena);
    k->count = db_column_int64(st, 1);
}

int store_keys_otk_counts(struct store_conn *c, struct arena *arena, const char *user_id,
                          const char *device_id, struct store_key_count **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys "
                          "WHERE user_id = ? AND device_id = ? GROUP BY algorithm "
                          "ORDER BY algorithm",
                          "tt", user_id, device_id);
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return store__collect(st, arena, sizeof(**out), count_row, out, n);
}

/* ---- fallback keys ---- */

int store_keys_fallback_put(struct store_conn *c, const char *user_id, const char *device_id,
                            const char *algorithm, const char *key_id, const char *key_json)
{
    /* Re-uploading the key already stored must not make a used key look
     * fresh again; any other key starts unused. */
    return store__ok(store__exec(
        c,
        "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) "
        "VALUES (?, ?, ?, ?, ?, 0) "
        "ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET "
        "used = CASE WHEN e2e_fallback_keys.key_id = excluded.key_id AND "
        "e2e_fallback_keys.key_json = excluded.key_json THEN e2e_fallback_keys.used ELSE 0 END, "
        "key_id = excluded.key_id, key_json = excluded.key_json",
        "ttttt", user_id, device_id, algorithm, key_id, key_json));
}

int store_keys_fallback_unused(struct store_conn *c, struct arena *arena, const char *user_id,
                               const char *device_id, char ***algorithms, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT algorithm FROM e2e_fallback_keys "
                          "WHERE user_id = ? AND device_id = ? AND used = 0 ORDER BY algorithm",
                          "tt", user_id, device_id);
    if (rc < 0) {
        return rc;
    }
    *algorithms = NULL;
    *n = 0;
    return store__collect(st, arena, sizeof(**algorithms), store__str_row, algorithms, n);
}

/* ---- claiming ---- */

/* Runs a statement returning (key_id, key_json) for at most one row. */
static int take_row(struct db_stmt *st, struct arena *arena, char **key_id, char **key_json)
{
    int rc = store__step_one(st);
    if (rc == 0) {
        *key_id = store__col_str(st, 0, arena);
        *key_json = store__col_str(st, 1, arena);
    }
    db_finalize(st);
    return rc;
}

int store_keys_claim(struct store_conn *c, struct arena *arena, const char *user_id,
                     const char *device_id, const char *algorithm, char **key_id,
                     char **key_json, bool *fallback)
{
    /*
     * The oldest key is chosen and deleted in one statement. On SQLite the
     * write transaction already excludes other claims. On PostgreSQL (read
     * committed) two claims can choose the same key: the second waits for
     * the first's row lock, then finds the row gone and deletes nothing.
     * It then retries with a fresh snapshot while keys remain, so the loser
     * takes the next key rather than falling back early.
     */
    for (int attempt = 0; attempt < CLAIM_TRIES; attempt++) {
        struct db_stmt *st;
        int rc = store__query(c, &st,
                              "DELETE FROM e2e_one_time_keys WHERE user_id = ? AND "
                              "device_id = ? AND algorithm = ? AND key_id = ("
                              "SELECT key_id FROM e2e_one_time_keys WHERE user_id = ? AND "
                              "device_id = ? AND algorithm = ? "
                              "ORDER BY upload_seq, key_id LIMIT 1) "
                              "RETURNING key_id, key_json",
                              "tttttt", user_id, device_id, algorithm, user_id, device_id,
                              algorithm);
        if (rc < 0) {
            return rc;
        }
        rc = take_row(st, arena, key_id, key_json);
        if (rc == 0) {
            *fallback = false;
            return 0;
        }
        if (rc != -ERR_NOT_FOUND) {
            return rc;
        }
        int64_t left;
        rc = store__get_int(c, &left,
                            "SELECT COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND "
                            "device_id = ? AND algorithm = ?",
                            "ttt", user_id, device_id, algorithm);
        if (rc < 0) {
            return rc;
        }
        if (left == 0) {
            break;
        }
    }
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "UPDATE e2e_fallback_keys SET used = 1 WHERE user_id = ? AND "
                          "device_id = ? AND algorithm = ? RETURNING key_id, key_json",
                          "ttt", user_id, device_id, algorithm);
    if (rc < 0) {
        return rc;
    }
    rc = take_row(st, arena, key_id, key_json);
    if (rc == 0) {
        *fallback = true;
    }
    return rc;
}

/* ---- device deletion ---- */

int store_keys_prune_devices(struct store_conn *c, const char *user_id)
{
    static const char *const sql[] = {
        "DELETE FROM e2e_device_keys WHERE user_id = ? AND device_id NOT IN "
        "(SELECT device_id FROM devices WHERE user_id = ?)",
        "DELETE FROM e2e_one_time_keys WHERE user_id = ? AND device_id NOT IN "
        "(SELECT device_id FROM devices WHERE user_id = ?)",
        "DELETE FROM e2e_fallback_keys WHERE user_id = ? AND device_id NOT IN "
        "(SELECT device_id FROM devices WHERE user_id = ?)",
    };
    for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
        int rc = store__ok(store__exec(c, sql[i], "tt", user_id, user_id));
        if (rc < 0) {
            return rc;
        }
    }
    /* Cross-signing signatures of the deleted devices (targets other
     * than the master key are devices), and those the deleted devices
     * made of the user's own master key. */
    int rc = store__ok(store__exec(
        c,
        "DELETE FROM e2e_cross_signing_signatures WHERE user_id = ? AND target_id NOT IN "
        "(SELECT device_id FROM devices WHERE user_id = ?) AND target_id NOT IN "
        "(SELECT public_key FROM e2e_cross_signing_keys WHERE user_id = ? AND "
        "key_type = 'master')",
        "ttt", user_id, user_id, user_id));
    if (rc == 0) {
        rc = store__ok(store__exec(
            c,
            "DELETE FROM e2e_cross_signing_signatures WHERE user_id = ? AND signer_id = ? AND "
            "target_id IN (SELECT public_key FROM e2e_cross_signing_keys WHERE user_id = ? AND "
            "key_type = 'master') AND signing_key_id NOT IN "
            "(SELECT 'ed25519:' || device_id FROM devices WHERE user_id = ?)",
            "tttt", user_id, user_id, user_id, user_id));
    }
    return rc;
}

/* ---- cross-signing ---- */

static void cs_key_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_cs_key *k = row;
    k->key_type = store__col_str(st, 0, arena);
    k->public_key = store__col_str(st, 1, arena);
    k->key_json = store__col_str(st, 2, arena);
}

int store_keys_cs_list(struct store_conn *c, struct arena *arena, const char *user_id,
                       struct store_cs_key **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT key_type, public_key, key_json FROM e2e_cross_signing_keys "
                          "WHERE user_id = ? ORDER BY key_type",
                          "t", user_id);
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return store__collect(st, arena, sizeof(**out), cs_key_row, out, n);
}

int store_keys_cs_put(struct store_conn *c, const char *user_id, const char *key_type,
                      const char *public_key, const char *key_json, int64_t ts)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO e2e_cross_signing_keys (user_id, key_type, "
                                 "public_key, key_json, updated_ts) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (user_id, key_type) DO UPDATE SET "
                                 "public_key = excluded.public_key, "
                                 "key_json = excluded.key_json, updated_ts = excluded.updated_ts",
                                 "tttti", user_id, key_type, public_key, key_json, ts));
}

static void cs_sig_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_cs_signature *g = row;
    g->target_id = store__col_str(st, 0, arena);
    g->signer_id = store__col_str(st, 1, arena);
    g->signing_key_id = store__col_str(st, 2, arena);
    g->signature = store__col_str(st, 3, arena);
}

int store_keys_cs_signatures(struct store_conn *c, struct arena *arena, const char *user_id,
                             const char *viewer_id, struct store_cs_signature **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT target_id, signer_id, signing_key_id, signature "
                          "FROM e2e_cross_signing_signatures WHERE user_id = ? AND "
                          "(signer_id = ? OR signer_id = ?) "
                          "ORDER BY target_id, signer_id, signing_key_id",
                          "ttt", user_id, user_id, viewer_id);
    if (rc < 0) {
        return rc;
    }
    *out = NULL;
    *n = 0;
    return store__collect(st, arena, sizeof(**out), cs_sig_row, out, n);
}

int store_keys_cs_signature_put(struct store_conn *c, const char *user_id, const char *target_id,
                                const char *signer_id, const char *signing_key_id,
                                const char *signature)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO e2e_cross_signing_signatures (user_id, target_id, "
                                 "signer_id, signing_key_id, signature) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (user_id, target_id, signer_id, signing_key_id) "
                                 "DO UPDATE SET signature = excluded.signature",
                                 "ttttt", user_id, target_id, signer_id, signing_key_id,
                                 signature));
}

int store_keys_cs_signatures_drop_target(struct store_conn *c, const char *user_id,
                                         const char *target_id)
{
    return store__ok(store__exec(c,
                                 "DELETE FROM e2e_cross_signing_signatures "
                                 "WHERE user_id = ? AND target_id = ?",
                                 "tt", user_id, target_id));
}

int store_keys_cs_signatures_drop_by(struct store_conn *c, const char *signer_id,
                                     const char *signing_key_id)
{
    return store__ok(store__exec(c,
                                 "DELETE FROM e2e_cross_signing_signatures "
                                 "WHERE signer_id = ? AND signing_key_id = ?",
                                 "tt", signer_id, signing_key_id));
}

int store_keys_cs_delete_user(struct store_conn *c, const char *user_id)
{
    int rc = store__ok(store__exec(c, "DELETE FROM e2e_cross_signing_keys WHERE user_id = ?",
                                   "t", user_id));
    if (rc == 0) {
        rc = store__ok(store__exec(c,
                                   "DELETE FROM e2e_cross_signing_signatures "
                                   "WHERE user_id = ? OR signer_id = ?",
                                   "tt", user_id, user_id));
    }
    return rc;
}

