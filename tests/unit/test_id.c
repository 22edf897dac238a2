/*
 * Unit tests for core/id: the identifier grammar with the spec's examples
 * and the edges around them.
 */
#include <string.h>

#include "core/id.h"
#include "unit.h"

#define OK(fn, s) assert_true(fn(s, strlen(s)))
#define BAD(fn, s) assert_false(fn(s, strlen(s)))

static void test_server_names(void **state)
{
    /* The spec's examples. */
    OK(id_server_name_valid, "matrix.org");
    OK(id_server_name_valid, "matrix.org:8888");
    OK(id_server_name_valid, "1.2.3.4");
    OK(id_server_name_valid, "1.2.3.4:1234");
    OK(id_server_name_valid, "[1234:5678::abcd]");
    OK(id_server_name_valid, "[1234:5678::abcd]:5678");
    OK(id_server_name_valid, "localhost");
    OK(id_server_name_valid, "127.0.0.1:8448");
    OK(id_server_name_valid, "[::1]:8448");
    OK(id_server_name_valid, "[::ffff:1.2.3.4]");
    OK(id_server_name_valid, "[1:2:3:4:5:6:7:8]");
    OK(id_server_name_valid, "MATRIX.ORG");
    BAD(id_server_name_valid, "");
    BAD(id_server_name_valid, "matrix.org:");
    BAD(id_server_name_valid, "matrix.org:123456");
    BAD(id_server_name_valid, "matrix.org:65536");
    BAD(id_server_name_valid, "matrix.org:80a");
    BAD(id_server_name_valid, "1.2.3.256");
    BAD(id_server_name_valid, "1.2.3");
    BAD(id_server_name_valid, "[1234:5678::abcd");
    BAD(id_server_name_valid, "[1:2:3:4:5:6:7:8:9]");
    BAD(id_server_name_valid, "[1::2::3]");
    BAD(id_server_name_valid, "[g::1]");
    BAD(id_server_name_valid, "[]");
    BAD(id_server_name_valid, "exa mple.org");
    BAD(id_server_name_valid, "example_org");
    BAD(id_server_name_valid, "ex\xc3\xa4mple.org");
}

static void test_user_ids(void **state)
{
    assert_true(id_user_valid("@alice:example.org", 18, true));
    assert_true(id_user_valid("@a.b_c=d-e/f+g:example.org:8448", 31, true));
    assert_false(id_user_valid("@Alice:example.org", 18, true));
    assert_false(id_user_valid("@:example.org", 13, true));
    assert_false(id_user_valid("alice:example.org", 17, true));
    assert_false(id_user_valid("@alice", 6, true));
    assert_false(id_user_valid("@alice:bad server", 17, true));
    /* Historical user IDs: accepted when not strict. */
    assert_true(id_user_valid("@Alice:example.org", 18, false));
    assert_true(id_user_valid("@:example.org", 13, false));
    assert_true(id_user_valid("@\xc3\xa9t\xc3\xa9:example.org", 18, false));
    assert_false(id_user_valid("@a\xed\xa0\x80:example.org", 17, false)); /* surrogate */
    assert_false(id_user_valid("@a\0b:example.org", 16, false));
    /* 255 bytes is the limit. */
    char big[300] = "@";
    memset(big + 1, 'a', 243);
    memcpy(big + 244, ":example.org", 12); /* total 256 */
    assert_false(id_user_valid(big, 256, true));
    big[243] = ':';
    memcpy(big + 244, "example.org", 11); /* "@" + 242 a + ":example.org" = 255 */
    assert_true(id_user_valid(big, 255, true));
}

static void test_room_alias_event_ids(void **state)
{
    OK(id_room_valid, "!abc:example.org");
    OK(id_room_valid, "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"); /* v12 form */
    BAD(id_room_valid, "!:example.org");
    BAD(id_room_valid, "!");
    BAD(id_room_valid, "abc:example.org");
    BAD(id_room_valid, "!abc:bad server");
    BAD(id_room_valid, "!has space");

    OK(id_alias_valid, "#room:example.org");
    OK(id_alias_valid, "#r\xc3\xb6\xc3\xb6m:example.org");
    BAD(id_alias_valid, "#room");
    BAD(id_alias_valid, "room:example.org");

    OK(id_event_valid, "$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk");
    OK(id_event_valid, "$acR1l0raoZnm60CBwAVgqbZqoO_mYU81xysh1u7XcJk");
    OK(id_event_valid, "$143273582443PhrSn:example.org");
    BAD(id_event_valid, "$");
    BAD(id_event_valid, "acR1l0raoZnm60CBwAVgqbZqoO");
    BAD(id_event_valid, "$:example.org");

    assert_string_equal(id_server_part("@a:example.org:8448"), "example.org:8448");
    assert_null(id_server_part("$abc"));
}

static void test_namespaced(void **state)
{
    OK(id_namespaced_valid, "m.login.password");
    OK(id_namespaced_valid, "com.example.my_thing-2");
    BAD(id_namespaced_valid, "M.login");
    BAD(id_namespaced_valid, "1abc");
    BAD(id_namespaced_valid, "");
    BAD(id_namespaced_valid, "a b");
}

static void test_utf8(void **state)
{
    OK(id_utf8_valid, "plain");
    OK(id_utf8_valid, "\xf0\x9f\x98\x80"); /* U+1F600 */
    BAD(id_utf8_valid, "\xc0\xaf");         /* overlong '/' */
    BAD(id_utf8_valid, "\xe0\x80\xaf");     /* overlong */
    BAD(id_utf8_valid, "\xf4\x90\x80\x80"); /* > U+10FFFF */
    BAD(id_utf8_valid, "\xc3");             /* truncated */
    BAD(id_utf8_valid, "\xff");
}

int test_id(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_names),
        cmocka_unit_test(test_user_ids),
        cmocka_unit_test(test_room_alias_event_ids),
        cmocka_unit_test(test_namespaced),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests_name("id", tests, NULL, NULL);
}
