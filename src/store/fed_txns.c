/*
 * Inbound federation transactions (schema 021_fed_txns): the stored
 * answer of each (origin, txn ID), the message IDs of m.direct_to_device
 * EDUs already queued, and their pruning. api/federation/send.c decides
 * what they mean.
 */
#include <stdint.h>

#include "store/store_int.h"

int store_fed_txn_get(struct store_conn *c, struct arena *arena, const char *origin,
                      const char *txn_id, char **response)
{
    return store__get_str(c, arena, response,
                          "SELECT response FROM fed_txns WHERE origin = ? AND txn_id = ?", "tt",
                          origin, txn_id);
}

int store_fed_txn_put(struct store_conn *c, const char *origin, const char *txn_id,
                      const char *response, int64_t ts)
{
    int rc = store__exec(c,
                         "INSERT INTO fed_txns (origin, txn_id, response, ts) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT DO NOTHING",
                         "ttti", origin, txn_id, response, ts);
    if (rc == DB_UNIQUE) {
        return 0;
    }
    return rc < 0 ? rc : rc > 0;
}

int store_fed_to_device_seen(struct store_conn *c, const char *origin, const char *message_id,
                             int64_t ts)
{
    int rc = store__exec(c,
                         "INSERT INTO fed_to_device_ids (origin, message_id, ts) VALUES (?, ?, ?) "
                         "ON CONFLICT DO NOTHING",
                         "tti", origin, message_id, ts);
    if (rc == DB_UNIQUE) {
        return 0;
    }
    return rc < 0 ? rc : rc > 0;
}

int store_fed_txns_prune(struct store_conn *c, int64_t before)
{
    int rc = store__ok(store__exec(c, "DELETE FROM fed_txns WHERE ts < ?", "i", before));
    if (rc == 0) {
        rc = store__ok(
            store__exec(c, "DELETE FROM fed_to_device_ids WHERE ts < ?", "i", before));
    }
    return rc;
}
