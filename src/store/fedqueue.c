/*
 * The outbound federation queue (schema 020_fedqueue): queued PDUs and
 * EDUs per destination, the transaction they went out in, and each
 * destination's sequence, transaction counter and backoff. svc/fedqueue
 * is the only user.
 */
#include <stdint.h>

#include "store/store_int.h"

int store_fedqueue_add(struct store_conn *c, const char *destination, const char *edu_type,
                       const char *event_id, const char *json, int64_t ts)
{
    /* The upsert takes the destination row's lock until the caller
     * commits, so adders to one destination commit in seq order. */
    int64_t seq = 0;
    int rc = store__get_int(c, &seq,
                            "INSERT INTO fed_destinations (destination, last_seq) VALUES (?, 1) "
                            "ON CONFLICT (destination) DO UPDATE SET "
                            "last_seq = fed_destinations.last_seq + 1 RETURNING last_seq",
                            "t", destination);
    if (rc < 0) {
        return rc;
    }
    return store__ok(store__exec(c,
                                 "INSERT INTO fed_queue (destination, seq, kind, edu_type, "
                                 "event_id, json, added_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 "titttti", destination, seq, edu_type ? "edu" : "pdu", edu_type,
                                 event_id, json, ts));
}

static void dest_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_fedqueue_dest *d = row;
    d->destination = store__col_str(st, 0, arena);
    d->retry_ms = db_column_int64(st, 1);
    d->retry_at = db_column_int64(st, 2);
}

int store_fedqueue_dests(struct store_conn *c, struct arena *arena,
                         struct store_fedqueue_dest **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT d.destination, d.retry_ms, d.retry_at FROM fed_destinations d "
                          "WHERE EXISTS (SELECT 1 FROM fed_queue q "
                          "WHERE q.destination = d.destination)",
                          "");
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), dest_row, out, n);
}

static void item_row(struct db_stmt *st, struct arena *arena, void *row)
{
    struct store_fedqueue_item *it = row;
    it->seq = db_column_int64(st, 0);
    it->edu_type = store__col_str(st, 1, arena);
    it->is_pdu = it->edu_type == NULL;
    it->event_id = store__col_str(st, 2, arena);
    it->json = store__col_str(st, 3, arena);
    it->txn_id = store__col_str(st, 4, arena);
}

int store_fedqueue_head(struct store_conn *c, struct arena *arena, const char *destination,
                        int64_t limit, struct store_fedqueue_item **out, size_t *n)
{
    struct db_stmt *st;
    int rc = store__query(c, &st,
                          "SELECT seq, CASE WHEN kind = 'edu' THEN edu_type END, event_id, json, "
                          "txn_id FROM fed_queue WHERE destination = ? ORDER BY seq LIMIT ?",
                          "ti", destination, limit);
    if (rc < 0) {
        return rc;
    }
    return store__collect(st, arena, sizeof(**out), item_row, out, n);
}

int store_fedqueue_next_txn(struct store_conn *c, const char *destination, int64_t *out)
{
    return store__get_int(c, out,
                          "INSERT INTO fed_destinations (destination, last_txn) VALUES (?, 1) "
                          "ON CONFLICT (destination) DO UPDATE SET "
                          "last_txn = fed_destinations.last_txn + 1 RETURNING last_txn",
                          "t", destination);
}

int store_fedqueue_assign(struct store_conn *c, const char *destination, int64_t last_seq,
                          const char *txn_id)
{
    return store__ok(store__exec(c,
                                 "UPDATE fed_queue SET txn_id = ? WHERE destination = ? "
                                 "AND seq <= ? AND txn_id IS NULL",
                                 "tti", txn_id, destination, last_seq));
}

int store_fedqueue_ack(struct store_conn *c, const char *destination, const char *txn_id)
{
    return store__ok(store__exec(c, "DELETE FROM fed_queue WHERE destination = ? AND txn_id = ?",
                                 "tt", destination, txn_id));
}

int store_fedqueue_retry_set(struct store_conn *c, const char *destination, int64_t retry_ms,
                             int64_t retry_at)
{
    return store__ok(store__exec(c,
                                 "INSERT INTO fed_destinations (destination, retry_ms, retry_at) "
                                 "VALUES (?, ?, ?) ON CONFLICT (destination) DO UPDATE SET "
                                 "retry_ms = excluded.retry_ms, retry_at = excluded.retry_at",
                                 "tii", destination, retry_ms, retry_at));
}
