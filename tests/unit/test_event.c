/*
 * Unit tests for event_parse: a well-formed PDU of each event format
 * (v1 with its own event_id and [id, hashes] references; v3 and v4+ with a
 * computed ID and string references; v12 create events without room_id),
 * then one malformed field at a time, each of which must be -ERR_BAD_JSON
 * with a reason.
 */
#include <string.h>

#include "base/arena.h"
#include "base/err.h"
#include "core/event.h"
#include "core/pdu.h"
#include "core/roomver.h"
#include "unit.h"

static struct arena arena;

static int setup(void **state)
{
    arena_init(&arena);
    return 0;
}

static int teardown(void **state)
{
    arena_release(&arena);
    return 0;
}

/* A well-formed message PDU for `rv`'s event format. */
static json_t *good_pdu(const struct room_version *rv)
{
    json_t *pdu = json_pack(
        "{s:s,s:s,s:s,s:i,s:I,s:{s:s},s:{s:s},s:{s:{s:s}},s:{s:i}}", "type", "m.room.message",
        "room_id", "!r:example.org", "sender", "@a:example.org", "depth", 4, "origin_server_ts",
        (json_int_t)1700000000000LL, "content", "body", "hi", "hashes", "sha256", "aGFzaA",
        "signatures", "example.org", "ed25519:1", "c2ln", "unsigned", "age", 3);
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "event_id", json_string("$ev1:example.org"));
        json_object_set_new(pdu, "prev_events",
                            json_pack("[[s,{s:s}]]", "$p:example.org", "sha256", "aGFzaA"));
        json_object_set_new(pdu, "auth_events",
                            json_pack("[[s,{s:s}],[s,{}]]", "$c:example.org", "sha256", "aGFzaA",
                                      "$pl:example.org"));
    } else {
        json_object_set_new(pdu, "prev_events", json_pack("[s]", "$prevhash"));
        json_object_set_new(pdu, "auth_events", json_pack("[s,s]", "$create", "$pl"));
    }
    return pdu;
}

/* Parses `pdu` (stolen) for `rv`, computing the ID for v3+. */
static int parse(const struct room_version *rv, json_t *pdu, struct event **ev, const char **why)
{
    const char *id = NULL;
    if (rv->event_format != EVENT_FORMAT_V1 && event_compute_id(rv, pdu, &arena, &id) != 0) {
        id = "$unhashable";
    }
    int rc = event_parse(&arena, rv, pdu, id, ev, why);
    json_decref(pdu);
    return rc;
}

/* Applies `mutate` to a good PDU of version `v` and expects rejection. */
static void expect_bad(const char *v, void (*mutate)(json_t *), const char *what)
{
    const struct room_version *rv = roomver_get(v);
    json_t *pdu = good_pdu(rv);
    mutate(pdu);
    struct event *ev = NULL;
    const char *why = NULL;
    int rc = parse(rv, pdu, &ev, &why);
    if (rc != -ERR_BAD_JSON) {
        fail_msg("%s (room version %s): rc %d, expected %d", what, v, rc, -ERR_BAD_JSON);
    }
    assert_non_null(why);
}

/* ---- good events ---- */

static void test_v1_format(void **state)
{
    const struct room_version *rv = roomver_get("1");
    struct event *ev;
    const char *why = NULL;
    assert_int_equal(parse(rv, good_pdu(rv), &ev, &why), 0);
    assert_string_equal(ev->event_id, "$ev1:example.org");
    assert_string_equal(ev->room_id, "!r:example.org");
    assert_string_equal(ev->sender, "@a:example.org");
    assert_string_equal(ev->type, "m.room.message");
    assert_null(ev->state_key);
    assert_false(event_is_state(ev));
    assert_int_equal(ev->depth, 4);
    assert_int_equal(ev->origin_server_ts, 1700000000000LL);
    assert_int_equal(ev->n_prev_events, 1);
    assert_string_equal(ev->prev_events[0], "$p:example.org");
    assert_int_equal(ev->n_auth_events, 2);
    assert_string_equal(ev->auth_events[1], "$pl:example.org");
    assert_string_equal(json_string_value(json_object_get(ev->content, "body")), "hi");
    assert_non_null(ev->unsigned_);
    assert_ptr_equal(ev->rv, rv);
}

static void test_v3_v4_format(void **state)
{
    static const char *const versions[] = {"3", "4", "10", "11", "12"};
    for (size_t i = 0; i < 5; i++) {
        const struct room_version *rv = roomver_get(versions[i]);
        json_t *pdu = good_pdu(rv);
        const char *id;
        assert_int_equal(event_compute_id(rv, pdu, &arena, &id), 0);
        struct event *ev;
        assert_int_equal(event_parse(&arena, rv, pdu, id, &ev, NULL), 0);
        json_decref(pdu); /* the event holds its own reference */
        assert_string_equal(ev->event_id, id);
        assert_int_equal(ev->n_prev_events, 1);
        assert_string_equal(ev->prev_events[0], "$prevhash");
        assert_int_equal(ev->n_auth_events, 2);
        assert_string_equal(json_string_value(json_object_get(ev->content, "body")), "hi");
    }
}

static void test_state_and_membership(void **state)
{
    const struct room_version *rv = roomver_get("10");
    json_t *pdu = good_pdu(rv);
    json_object_set_new(pdu, "type", json_string("m.room.member"));
    json_object_set_new(pdu, "state_key", json_string("@a:example.org"));
    json_object_set_new(pdu, "content", json_pack("{s:s}", "membership", "join"));
    struct event *ev;
    assert_int_equal(parse(rv, pdu, &ev, NULL), 0);
    assert_true(event_is_state(ev));
    assert_string_equal(event_membership(ev), "join");

    /* An empty state_key is still a state event. */
    pdu = good_pdu(rv);
    json_object_set_new(pdu, "type", json_string("m.room.name"));
    json_object_set_new(pdu, "state_key", json_string(""));
    assert_int_equal(parse(rv, pdu, &ev, NULL), 0);
    assert_true(event_is_state(ev));
    assert_null(event_membership(ev));
}

static void test_v12_create(void **state)
{
    const struct room_version *rv = roomver_get("12");
    json_t *pdu = good_pdu(rv);
    json_object_set_new(pdu, "type", json_string("m.room.create"));
    json_object_set_new(pdu, "state_key", json_string(""));
    json_object_set_new(pdu, "content", json_pack("{s:s}", "room_version", "12"));
    json_object_set_new(pdu, "prev_events", json_array());
    json_object_set_new(pdu, "auth_events", json_array());
    json_object_del(pdu, "room_id");
    json_t *with_room = json_deep_copy(pdu);
    const char *room_id;
    assert_int_equal(event_compute_room_id(rv, pdu, &arena, &room_id), 0);
    assert_int_equal(room_id[0], '!');
    struct event *ev;
    assert_int_equal(parse(rv, pdu, &ev, NULL), 0);
    assert_null(ev->room_id);
    /* The create event's ID and the room ID share the hash. */
    assert_string_equal(ev->event_id + 1, room_id + 1);

    /* A v12 create event must not carry a room_id. */
    json_object_set_new(with_room, "room_id", json_string(room_id));
    const char *why = NULL;
    assert_int_equal(parse(rv, with_room, &ev, &why), -ERR_BAD_JSON);
    assert_non_null(why);

    /* Before v12, create events have a room_id like all others. */
    const struct room_version *v11 = roomver_get("11");
    pdu = good_pdu(v11);
    json_object_set_new(pdu, "type", json_string("m.room.create"));
    json_object_set_new(pdu, "state_key", json_string(""));
    json_object_del(pdu, "room_id");
    assert_int_equal(parse(v11, pdu, &ev, &why), -ERR_BAD_JSON);
}

static void test_redacts_location(void **state)
{
    /* v1-v10: top level; v11+: content (MSC2174). */
    const struct room_version *v10 = roomver_get("10"), *v11 = roomver_get("11");
    json_t *pdu = good_pdu(v10);
    json_object_set_new(pdu, "type", json_string("m.room.redaction"));
    json_object_set_new(pdu, "redacts", json_string("$top"));
    json_object_set_new(pdu, "content", json_pack("{s:s}", "redacts", "$inner"));
    json_t *copy = json_deep_copy(pdu);
    struct event *ev;
    assert_int_equal(parse(v10, pdu, &ev, NULL), 0);
    assert_string_equal(ev->redacts, "$top");
    assert_int_equal(parse(v11, copy, &ev, NULL), 0);
    assert_string_equal(ev->redacts, "$inner");
}

/* ---- bad events ---- */

static void no_type(json_t *p) { json_object_del(p, "type"); }
static void type_int(json_t *p) { json_object_set_new(p, "type", json_integer(1)); }
static void type_long(json_t *p)
{
    char s[300];
    memset(s, 'x', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    json_object_set_new(p, "type", json_string(s));
}
static void no_sender(json_t *p) { json_object_del(p, "sender"); }
static void sender_sigil(json_t *p) { json_object_set_new(p, "sender", json_string("a:example.org")); }
static void room_sigil(json_t *p) { json_object_set_new(p, "room_id", json_string("#r:example.org")); }
static void no_room(json_t *p) { json_object_del(p, "room_id"); }
static void state_key_int(json_t *p) { json_object_set_new(p, "state_key", json_integer(0)); }
static void depth_negative(json_t *p) { json_object_set_new(p, "depth", json_integer(-1)); }
static void depth_real(json_t *p) { json_object_set_new(p, "depth", json_real(4.0)); }
static void depth_string(json_t *p) { json_object_set_new(p, "depth", json_string("4")); }
static void depth_huge(json_t *p)
{
    json_object_set_new(p, "depth", json_integer(9007199254740992LL));
}
static void no_ts(json_t *p) { json_object_del(p, "origin_server_ts"); }
static void content_array(json_t *p) { json_object_set_new(p, "content", json_array()); }
static void no_content(json_t *p) { json_object_del(p, "content"); }
static void no_hashes(json_t *p) { json_object_del(p, "hashes"); }
static void hashes_no_sha(json_t *p) { json_object_set_new(p, "hashes", json_object()); }
static void no_signatures(json_t *p) { json_object_del(p, "signatures"); }
static void no_prev(json_t *p) { json_object_del(p, "prev_events"); }
static void prev_object(json_t *p) { json_object_set_new(p, "prev_events", json_object()); }
static void prev_strings(json_t *p)
{
    json_object_set_new(p, "prev_events", json_pack("[s]", "$p:example.org"));
}
static void prev_pairs(json_t *p)
{
    json_object_set_new(p, "prev_events", json_pack("[[s,{}]]", "$p"));
}
static void prev_sigil(json_t *p) { json_object_set_new(p, "prev_events", json_pack("[s]", "p")); }
static void too_many_prev(json_t *p)
{
    json_t *a = json_array();
    for (int i = 0; i <= EVENT_MAX_PREV_EVENTS; i++) {
        json_array_append_new(a, json_string("$p"));
    }
    json_object_set_new(p, "prev_events", a);
}
static void too_many_auth(json_t *p)
{
    json_t *a = json_array();
    for (int i = 0; i <= EVENT_MAX_AUTH_EVENTS; i++) {
        json_array_append_new(a, json_string("$a"));
    }
    json_object_set_new(p, "auth_events", a);
}
static void v1_no_event_id(json_t *p) { json_object_del(p, "event_id"); }
static void v1_event_id_sigil(json_t *p) { json_object_set_new(p, "event_id", json_string("ev")); }
static void bad_redacts(json_t *p)
{
    json_object_set_new(p, "type", json_string("m.room.redaction"));
    json_object_set_new(p, "redacts", json_string("not-an-id"));
}

static void test_bad_common(void **state)
{
    static const char *const versions[] = {"1", "3", "6", "12"};
    for (size_t i = 0; i < 4; i++) {
        const char *v = versions[i];
        expect_bad(v, no_type, "no type");
        expect_bad(v, type_int, "type not a string");
        expect_bad(v, type_long, "type over 255 bytes");
        expect_bad(v, no_sender, "no sender");
        expect_bad(v, sender_sigil, "sender without @");
        expect_bad(v, room_sigil, "room_id without !");
        expect_bad(v, no_room, "no room_id");
        expect_bad(v, state_key_int, "state_key not a string");
        expect_bad(v, depth_negative, "negative depth");
        expect_bad(v, depth_real, "depth not an integer");
        expect_bad(v, depth_string, "depth a string");
        expect_bad(v, no_ts, "no origin_server_ts");
        expect_bad(v, content_array, "content not an object");
        expect_bad(v, no_content, "no content");
        expect_bad(v, no_hashes, "no hashes");
        expect_bad(v, hashes_no_sha, "hashes without sha256");
        expect_bad(v, no_signatures, "no signatures");
        expect_bad(v, no_prev, "no prev_events");
        expect_bad(v, prev_object, "prev_events an object");
        expect_bad(v, prev_sigil, "prev_events entry without $");
        expect_bad(v, too_many_prev, "21 prev_events");
        expect_bad(v, too_many_auth, "11 auth_events");
    }
    expect_bad("10", bad_redacts, "redacts not an event ID");
    /* v6+ (pdu_v6 "depth"): below 2^53 - 1. */
    expect_bad("6", depth_huge, "depth beyond 2^53-1");
    expect_bad("12", depth_huge, "depth beyond 2^53-1");
}

static void test_bad_per_format(void **state)
{
    /* v1/v2: references are [id, hashes] pairs and the PDU names itself. */
    expect_bad("1", prev_strings, "v1 string reference");
    expect_bad("2", v1_no_event_id, "v1 without event_id");
    expect_bad("2", v1_event_id_sigil, "v1 event_id without $");
    /* v3+: references are plain strings, and the ID must be supplied. */
    expect_bad("3", prev_pairs, "v3 pair reference");
    expect_bad("4", prev_pairs, "v4 pair reference");
    const struct room_version *rv = roomver_get("4");
    json_t *pdu = good_pdu(rv);
    struct event *ev;
    const char *why = NULL;
    assert_int_equal(event_parse(&arena, rv, pdu, NULL, &ev, &why), -ERR_BAD_JSON);
    assert_non_null(why);
    json_decref(pdu);
    /* Not an object at all. */
    json_t *arr = json_array();
    assert_int_equal(event_parse(&arena, rv, arr, "$x", &ev, NULL), -ERR_BAD_JSON);
    json_decref(arr);
}

int test_event(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v3_v4_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_and_membership, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v12_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redacts_location, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_common, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_per_format, setup, teardown),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
