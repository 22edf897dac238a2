/*
 * svc/notify and svc/streams: a change that landed before a long poll
 * registers is reported as NOTIFY_MISSED (never confused with parking),
 * a change on another stream or for another user is not, a parked waiter
 * wakes once for the stream it is behind on, and sync tokens round-trip.
 */
#include <string.h>

#include "http/req.h"
#include "svc/notify.h"
#include "svc/streams.h"
#include "unit.h"

static int fired;
static enum notify_why fired_why;

static void on_fire(struct req *r, enum notify_why why, const struct stream_token *pos)
{
    (void)r;
    (void)pos;
    fired++;
    fired_why = why;
}

static void missed_change_is_not_parking(void **state)
{
    struct notify *n = notify_new();
    struct req r;
    req_init(&r, NULL);
    struct stream_token tok = {0};
    tok.pos[STREAM_PRESENCE] = 4;
    char *rooms[] = {"!a:x"};
    /* The user's presence moved to 5 after the token: missed, not parked. */
    notify_stream(n, STREAM_PRESENCE, 5, "@u:x", NULL, 0);
    int rc = notify_wait(n, &r, "@u:x", rooms, 1, &tok, req_now_ns() + 1000000000LL, on_fire);
    assert_int_equal(rc, NOTIFY_MISSED);
    assert_int_not_equal(rc, REQ_PARKED);
    assert_int_equal(notify_waiting(n), 0);
    /* Caught up on that stream; a change for another user does not count. */
    tok.pos[STREAM_PRESENCE] = 5;
    notify_stream(n, STREAM_RECEIPTS, 3, "@other:x", NULL, 0);
    fired = 0;
    rc = notify_wait(n, &r, "@u:x", rooms, 1, &tok, req_now_ns() + 1000000000LL, on_fire);
    assert_int_equal(rc, REQ_PARKED);
    assert_int_equal(notify_waiting(n), 1);
    /* A receipt in one of its rooms wakes it, once. */
    notify_stream(n, STREAM_RECEIPTS, 1, NULL, rooms, 1);
    assert_int_equal(fired, 1);
    assert_int_equal(fired_why, NOTIFY_EVENT);
    notify_stream(n, STREAM_RECEIPTS, 2, NULL, rooms, 1);
    assert_int_equal(fired, 1);
    assert_int_equal(notify_waiting(n), 0);
    notify_free(n);
    req_release(&r);
}

static void token_round_trip(void **state)
{
    struct stream_token t = {0}, back;
    for (int i = 0; i < STREAM_N; i++) {
        t.pos[i] = 1000 * i + 7;
    }
    char buf[STREAM_TOKEN_MAX];
    stream_token_format(&t, buf);
    assert_true(stream_token_parse(buf, &back));
    assert_memory_equal(&t, &back, sizeof(t));
    /* Old single-part tokens read the other streams as 0. */
    assert_true(stream_token_parse("s42", &back));
    assert_int_equal(back.pos[STREAM_EVENTS], 42);
    assert_int_equal(back.pos[STREAM_RECEIPTS], 0);
    assert_false(stream_token_parse("s", &back));
    assert_false(stream_token_parse("s1_", &back));
    assert_false(stream_token_parse("s1_x", &back));
    assert_false(stream_token_parse("t1", &back));
    assert_false(stream_token_parse("s-1", &back));
    assert_false(stream_token_parse("s99999999999999999999", &back));
}

int test_notify(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missed_change_is_not_parking),
        cmocka_unit_test(token_round_trip),
    };
    return cmocka_run_group_tests_name("notify", tests, NULL, NULL);
}
