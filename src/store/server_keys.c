/*
 * Other servers' signing keys (schema 019_server_keys). svc/keyring
 * checks responses before they get here and keeps the memory cache.
 */
#include <stdint.h>

#include "store/store_int.h"

static void server_key_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_server_key *k = row;
    k->key_id = store__col_str(st, 0, arena);
    k->public_key = store__col_str(st, 1, arena);
    k->valid_until_ts = db_column_int64(st, 2);
    k->expired_ts = db_column_int64(st, 3);
    k->fetched_ts = db_column_int64(st, 4);
}

int store_server_key_get(struct store_conn *c, struct arena *arena, const char *server,
                         const char *key_id, struct store_server_key *out)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT key_id, public_key, valid_until_ts, expired_ts, fetched_ts "
                          "FROM server_keys WHERE server_name = ? AND key_id = ?",
                          "tt", server, key_id);
    if (rc < 0) {
        return rc;
    }
    struct store_server_key *list = NULL;
    size_t n = 0;
    rc = store__collect(st, arena, sizeof(*list), server_key_row, &list, &n);
    if (rc == 0 && n == 0) {
        rc = -ERR_NOT_FOUND;
    }
    if (rc == 0) {
        *out = list[0];
    }
    return rc;
}

int store_server_key_put(struct store_conn *c, const char *server, const struct store_server_key *k,
                         const char *key_json)
{
    return store__ok(store__exec(
        c,
        "INSERT INTO server_keys (server_name, key_id, public_key, valid_until_ts, expired_ts, "
        "fetched_ts, key_json) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (server_name, key_id) DO UPDATE SET public_key = excluded.public_key, "
        "valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts, "
        "fetched_ts = excluded.fetched_ts, key_json = excluded.key_json",
        "tttiiit", server, k->key_id, k->public_key, k->valid_until_ts, k->expired_ts,
        k->fetched_ts, key_json));
}

int store_server_keys_json(struct store_conn *c, struct arena *arena, const char *server,
                           char ***jsons, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT DISTINCT key_json FROM server_keys WHERE server_name = ?", "t",
                          server);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**jsons), store__str_row, jsons, n);
}
