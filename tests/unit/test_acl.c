/*
 * Unit tests for server ACLs (core/acl): the glob matching of the
 * appendix "Glob-style matching", IP literals, and the spec's
 * m.room.server_acl example and evaluation order (no event, IP literals,
 * deny, allow, default deny), ports ignored, malformed lists.
 */
#include <string.h>

#include "core/acl.h"
#include "unit.h"

static bool glob(const char *pattern, const char *s)
{
    return acl_glob_match(pattern, s, strlen(s));
}

static void glob_matching(void **state)
{
    (void)state;
    assert_true(glob("evil.com", "evil.com"));
    assert_true(glob("EVIL.com", "evil.COM"));
    assert_false(glob("evil.com", "evil.co"));
    assert_false(glob("evil.com", "evil.comm"));
    assert_true(glob("*", ""));
    assert_true(glob("*", "anything.example"));
    assert_true(glob("*.evil.com", "a.evil.com"));
    assert_true(glob("*.evil.com", "a.b.evil.com"));
    assert_false(glob("*.evil.com", "evil.com"));
    assert_false(glob("*.evil.com", "notevil.com"));
    assert_true(glob("ev?l.com", "evil.com"));
    assert_true(glob("ev?l.com", "ev\xc3\xa9l.com")); /* ? is one code point, not one byte */
    assert_false(glob("ev?l.com", "evl.com"));
    assert_false(glob("ev?l.com", "eviil.com"));
    assert_true(glob("*a*b*c", "xxaxxbxxc"));
    assert_false(glob("*a*b*c", "xxaxxcxxb"));
    assert_true(glob("**", "x"));
    assert_true(glob("a*", "a"));
    assert_false(glob("", "a"));
    assert_true(glob("", ""));
    /* A pathological pattern stays fast (no exponential backtracking). */
    char name[4097];
    memset(name, 'a', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    assert_false(glob("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", name));
}

static void ip_literals(void **state)
{
    (void)state;
    assert_true(acl_is_ip_literal("1.2.3.4", 7));
    assert_true(acl_is_ip_literal("127.0.0.1", 9));
    assert_true(acl_is_ip_literal("[::1]", 5));
    assert_true(acl_is_ip_literal("[1234:5678::abcd]", 17));
    assert_false(acl_is_ip_literal("1.2.3", 5));
    assert_false(acl_is_ip_literal("1.2.3.4.5", 9));
    assert_false(acl_is_ip_literal("1.2.3.256", 9));
    assert_false(acl_is_ip_literal("1.2.3.", 6));
    assert_false(acl_is_ip_literal("1.2.3.4a", 8));
    assert_false(acl_is_ip_literal("1234.2.3.4", 10));
    assert_false(acl_is_ip_literal("example.com", 11));
    assert_false(acl_is_ip_literal("1.2.3.com", 9));
    assert_false(acl_is_ip_literal("", 0));
}

static void spec_example(void **state)
{
    (void)state;
    /* The spec's m.room.server_acl example. */
    json_t *c = json_pack("{s:b,s:[s],s:[s,s]}", "allow_ip_literals", 0, "allow", "*", "deny",
                          "*.evil.com", "evil.com");
    assert_true(acl_server_allowed(c, "good.example"));
    assert_true(acl_server_allowed(c, "good.example:8448"));
    assert_false(acl_server_allowed(c, "evil.com"));
    assert_false(acl_server_allowed(c, "EVIL.com"));
    /* "evil.com, evil.com:8448 and evil.com:1234 would all match". */
    assert_false(acl_server_allowed(c, "evil.com:8448"));
    assert_false(acl_server_allowed(c, "evil.com:1234"));
    assert_false(acl_server_allowed(c, "sub.evil.com"));
    assert_true(acl_server_allowed(c, "notevil.com"));
    assert_false(acl_server_allowed(c, "1.2.3.4"));
    assert_false(acl_server_allowed(c, "127.0.0.1:8448"));
    assert_false(acl_server_allowed(c, "[::1]"));
    assert_false(acl_server_allowed(c, "[::1]:8448"));
    json_decref(c);
    /* No event: everyone. */
    assert_true(acl_server_allowed(NULL, "evil.com"));
}

static void evaluation_order(void **state)
{
    (void)state;
    /* IP literals default to allowed; non-boolean values count as true. */
    json_t *c = json_pack("{s:[s]}", "allow", "*");
    assert_true(acl_server_allowed(c, "127.0.0.1:8448"));
    assert_true(acl_server_allowed(c, "[::1]:8448"));
    json_object_set_new(c, "allow_ip_literals", json_string("false"));
    assert_true(acl_server_allowed(c, "127.0.0.1"));
    json_object_set_new(c, "allow_ip_literals", json_true());
    assert_true(acl_server_allowed(c, "127.0.0.1"));
    json_decref(c);

    /* Deny wins over allow. */
    c = json_pack("{s:[s],s:[s]}", "allow", "good.example", "deny", "good.example");
    assert_false(acl_server_allowed(c, "good.example"));
    json_decref(c);

    /* No allow list (or an empty one, or not a list): nobody, the sender
     * included. */
    c = json_pack("{s:[s]}", "deny", "evil.com");
    assert_false(acl_server_allowed(c, "good.example"));
    json_decref(c);
    c = json_pack("{s:[]}", "allow");
    assert_false(acl_server_allowed(c, "good.example"));
    json_decref(c);
    c = json_pack("{s:s}", "allow", "*");
    assert_false(acl_server_allowed(c, "good.example"));
    json_decref(c);

    /* Only the listed servers; non-string entries match nothing; a deny
     * list that is not a list is empty. */
    c = json_pack("{s:[i,s,s],s:s}", "allow", 5, "a.example", "*.b.example", "deny", "*");
    assert_true(acl_server_allowed(c, "a.example"));
    assert_true(acl_server_allowed(c, "A.EXAMPLE:1234"));
    assert_true(acl_server_allowed(c, "x.b.example"));
    assert_false(acl_server_allowed(c, "b.example"));
    assert_false(acl_server_allowed(c, "c.example"));
    json_decref(c);

    /* A matching IP literal pattern allows it when literals are allowed. */
    c = json_pack("{s:[s]}", "allow", "127.0.0.?");
    assert_true(acl_server_allowed(c, "127.0.0.1:5555"));
    assert_false(acl_server_allowed(c, "127.0.0.10"));
    json_decref(c);
}

int test_acl(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glob_matching),
        cmocka_unit_test(ip_literals),
        cmocka_unit_test(spec_example),
        cmocka_unit_test(evaluation_order),
    };
    return cmocka_run_group_tests_name("acl", tests, NULL, NULL);
}
