/*
 * Unit tests for the redaction algorithm. tests/vectors/redaction.json
 * holds one case per difference between room versions (aliases in v6,
 * join_rules allow in v8, join_authorised_via_users_server in v9, the v11
 * changes to top-level keys, create, power_levels invite, redacts and
 * third_party_invite), each with the exact result for every version 1-12;
 * each case runs as its own test so a failure names the difference.
 */
#include <string.h>

#include "base/err.h"
#include "core/redact.h"
#include "core/roomver.h"
#include "unit.h"
#include "vectors.h"

static json_t *vectors;

static int setup(void **state)
{
    vectors = vectors_load("redaction.json");
    return vectors ? 0 : -1;
}

static int teardown(void **state)
{
    json_decref(vectors);
    vectors = NULL;
    return 0;
}

/* Runs the named vector case against every room version it lists. */
static void run_case(const char *name)
{
    const json_t *c = NULL;
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(vectors, "cases"), i, item) {
        if (strcmp(json_string_value(json_object_get(item, "name")), name) == 0) {
            c = item;
        }
    }
    if (!c) {
        fail_msg("no redaction vector named %s", name);
    }
    const json_t *input = json_object_get(c, "input");
    char *before = json_dumps(input, JSON_SORT_KEYS | JSON_COMPACT);
    int versions = 0;
    size_t g;
    json_t *group;
    json_array_foreach(json_object_get(c, "expect"), g, group) {
        const json_t *want = json_object_get(group, "output");
        size_t k;
        json_t *v;
        json_array_foreach(json_object_get(group, "room_versions"), k, v) {
            const struct room_version *rv = roomver_get(json_string_value(v));
            assert_non_null(rv);
            json_t *got = NULL;
            assert_int_equal(redact_event(rv, input, &got), 0);
            if (!json_equal(got, (json_t *)want)) {
                char *gs = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
                char *ws = json_dumps(want, JSON_SORT_KEYS | JSON_COMPACT);
                print_error("%s, room version %s:\ngot  %s\nwant %s\n", name, rv->id, gs, ws);
                free(gs);
                free(ws);
                json_decref(got);
                fail();
            }
            json_decref(got);
            versions++;
        }
    }
    assert_int_equal(versions, 12); /* every version has an expectation */
    /* The input is never modified. */
    char *after = json_dumps(input, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

#define REDACT_CASE(name)                                                                          \
    static void test_##name(void **state) { run_case(#name); }
REDACT_CASE(message)
REDACT_CASE(top_level_v11)
REDACT_CASE(content_missing)
REDACT_CASE(aliases)
REDACT_CASE(join_rules_allow)
REDACT_CASE(member_join_authorised)
REDACT_CASE(member_third_party_invite)
REDACT_CASE(member_third_party_invite_unsigned)
REDACT_CASE(create)
REDACT_CASE(power_levels_invite)
REDACT_CASE(history_visibility)
REDACT_CASE(redaction_redacts)

static void test_vector_count(void **state)
{
    /* A case added to the file must also be listed above. */
    assert_int_equal(json_array_size(json_object_get(vectors, "cases")), 12);
}

static void test_not_object(void **state)
{
    json_t *out = NULL;
    json_t *arr = json_array();
    assert_int_equal(redact_event(roomver_get("10"), arr, &out), -ERR_BAD_JSON);
    assert_null(out);
    json_decref(arr);
}

static void test_result_is_a_copy(void **state)
{
    /* Signing the redacted copy must not touch the original's objects. */
    json_t *ev = json_pack("{s:s,s:{s:s},s:{s:{s:s}},s:[s]}", "type", "m.room.member", "content",
                           "membership", "join", "signatures", "a.org", "ed25519:1", "x",
                           "prev_events", "$p");
    json_t *out;
    assert_int_equal(redact_event(roomver_get("12"), ev, &out), 0);
    json_object_set_new(json_object_get(out, "signatures"), "b.org", json_object());
    json_array_append_new(json_object_get(out, "prev_events"), json_string("$q"));
    json_object_set_new(json_object_get(out, "content"), "membership", json_string("leave"));
    assert_null(json_object_get(json_object_get(ev, "signatures"), "b.org"));
    assert_int_equal(json_array_size(json_object_get(ev, "prev_events")), 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "content"),
                                                          "membership")),
                        "join");
    json_decref(out);
    json_decref(ev);
}

static void test_type_not_string(void **state)
{
    /* A malformed type keeps nothing of the content (and does not crash). */
    json_t *ev = json_pack("{s:i,s:{s:s}}", "type", 5, "content", "membership", "join");
    json_t *out;
    assert_int_equal(redact_event(roomver_get("1"), ev, &out), 0);
    assert_int_equal(json_object_size(json_object_get(out, "content")), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "type")), 5);
    json_decref(out);
    json_decref(ev);
}

int test_redact(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_count),
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_top_level_v11),
        cmocka_unit_test(test_content_missing),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_join_rules_allow),
        cmocka_unit_test(test_member_join_authorised),
        cmocka_unit_test(test_member_third_party_invite),
        cmocka_unit_test(test_member_third_party_invite_unsigned),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_power_levels_invite),
        cmocka_unit_test(test_history_visibility),
        cmocka_unit_test(test_redaction_redacts),
        cmocka_unit_test(test_not_object),
        cmocka_unit_test(test_result_is_a_copy),
        cmocka_unit_test(test_type_not_string),
    };
    return cmocka_run_group_tests_name("redact", tests, setup, teardown);
}
