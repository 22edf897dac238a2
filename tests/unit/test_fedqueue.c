/*
 * The outbound federation queue's storage (svc/fedqueue, store/fedqueue.c,
 * schema 020) on an in-memory SQLite database: PDUs for several
 * destinations and EDUs keep their per-destination order, a transaction
 * takes the items it is given and only those, acknowledging deletes just
 * them, transaction counters never repeat, and this server is never a
 * destination. Sending is covered by tests/integration/test_fedqueue.py.
 */
#include <stdlib.h>
#include <string.h>

#include "unit.h"

#include "base/arena.h"
#include "base/err.h"
#include "store/store.h"
#include "svc/fedqueue.h"

static void queue_order_and_ack(void **state)
{
    (void)state;
    struct config_db cfg = {.engine = DB_ENGINE_SQLITE, .path = ":memory:"};
    struct store *s = NULL;
    struct store_conn *c = NULL;
    assert_int_equal(store_open(&cfg, &s), 0);
    assert_int_equal(store_conn_open(s, &c), 0);
    struct fedqueue *q = fedqueue_new(s, NULL, "me.test", 100, 50);
    struct arena a;
    arena_init(&a);

    const char *both[] = {"a.test", "b.test"};
    const char *self[] = {"b.test", "me.test"};
    assert_int_equal(store_begin(c), 0);
    assert_int_equal(fedqueue_add_pdu(q, c, both, 2, "$e1", "{\"type\":\"m.room.message\"}"), 0);
    assert_int_equal(fedqueue_add_edu(q, c, "a.test", "m.typing", "{\"n\":1}"), 0);
    assert_int_equal(fedqueue_add_pdu(q, c, both, 1, "$e2", "{\"type\":\"x\"}"), 0);
    assert_int_equal(fedqueue_add_edu(q, c, "me.test", "m.typing", "{}"), -ERR_INVALID_PARAM);
    assert_int_equal(fedqueue_add_pdu(q, c, self, 2, "$e3", "{}"), -ERR_INVALID_PARAM);
    assert_int_equal(store_end(c, 0), 0);

    struct store_fedqueue_item *it = NULL;
    size_t n = 0;
    assert_int_equal(store_fedqueue_head(c, &a, "a.test", 10, &it, &n), 0);
    assert_int_equal(n, 3);
    assert_true(it[0].is_pdu && !it[1].is_pdu && it[2].is_pdu);
    assert_string_equal(it[0].event_id, "$e1");
    assert_string_equal(it[1].edu_type, "m.typing");
    assert_string_equal(it[1].json, "{\"n\":1}");
    assert_string_equal(it[2].event_id, "$e2");
    assert_true(it[0].seq < it[1].seq && it[1].seq < it[2].seq);
    assert_null(it[0].txn_id);
    /* $e3 went nowhere: the call failed before b.test's row. */
    assert_int_equal(store_fedqueue_head(c, &a, "b.test", 10, &it, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(it[0].event_id, "$e1");

    struct store_fedqueue_dest *d = NULL;
    assert_int_equal(store_fedqueue_dests(c, &a, &d, &n), 0);
    assert_int_equal(n, 2);

    /* A transaction of the first two items of a.test. */
    int64_t t1 = 0, t2 = 0;
    assert_int_equal(store_fedqueue_next_txn(c, "a.test", &t1), 0);
    assert_int_equal(store_fedqueue_next_txn(c, "a.test", &t2), 0);
    assert_true(t2 > t1);
    assert_int_equal(store_fedqueue_head(c, &a, "a.test", 10, &it, &n), 0);
    assert_int_equal(store_fedqueue_assign(c, "a.test", it[1].seq, "tx1"), 0);
    assert_int_equal(store_fedqueue_head(c, &a, "a.test", 10, &it, &n), 0);
    assert_string_equal(it[0].txn_id, "tx1");
    assert_string_equal(it[1].txn_id, "tx1");
    assert_null(it[2].txn_id);
    /* Assigning again leaves formed transactions alone. */
    assert_int_equal(store_fedqueue_assign(c, "a.test", it[2].seq, "tx2"), 0);
    assert_int_equal(store_fedqueue_head(c, &a, "a.test", 10, &it, &n), 0);
    assert_string_equal(it[1].txn_id, "tx1");
    assert_string_equal(it[2].txn_id, "tx2");
    /* Acknowledging tx1 deletes its two items only. */
    assert_int_equal(store_fedqueue_ack(c, "a.test", "tx1"), 0);
    assert_int_equal(store_fedqueue_head(c, &a, "a.test", 10, &it, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(it[0].event_id, "$e2");
    assert_int_equal(store_fedqueue_head(c, &a, "b.test", 10, &it, &n), 0);
    assert_int_equal(n, 1);

    /* Backoff state, and a destination without items is not listed. */
    assert_int_equal(store_fedqueue_retry_set(c, "a.test", 500, 1234), 0);
    assert_int_equal(store_fedqueue_ack(c, "b.test", "none"), 0);
    assert_int_equal(store_fedqueue_assign(c, "b.test", 1000, "tb"), 0);
    assert_int_equal(store_fedqueue_ack(c, "b.test", "tb"), 0);
    assert_int_equal(store_fedqueue_dests(c, &a, &d, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(d[0].destination, "a.test");
    assert_int_equal(d[0].retry_ms, 500);
    assert_int_equal(d[0].retry_at, 1234);

    arena_release(&a);
    fedqueue_free(q);
    store_conn_close(c);
    store_close(s);
}

int test_fedqueue(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(queue_order_and_ack),
    };
    return cmocka_run_group_tests_name("fedqueue", tests, NULL, NULL);
}
