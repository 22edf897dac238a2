/*
 * Unit tests for the router: template matching (parameters, optional
 * final parameter, trailing slashes), the legacy r0 prefix, percent
 * decoding of parameters, resource classes, and the route table itself.
 */
#include <string.h>

#include "config.h"
#include "http/router.h"
#include "unit.h"

static bool m(const char *tmpl, const char *path, int *n, struct str *raw)
{
    return router__match_template(str_from(tmpl), str_from(path), raw, n);
}

static void test_templates(void **state)
{
    struct str raw[REQ_MAX_PARAMS];
    int n = -1;
    assert_true(m("/a/b", "/a/b", &n, raw));
    assert_int_equal(n, 0);
    assert_false(m("/a/b", "/a/b/c", &n, raw));
    assert_false(m("/a/b/c", "/a/b", &n, raw));
    assert_false(m("/a/b", "/a/bc", &n, raw));
    assert_false(m("/a/b", "/a//b", &n, raw));

    assert_true(m("/rooms/{roomId}/send/{type}/{txn}", "/rooms/%21r%3Ax/send/m.room.message/t1",
                  &n, raw));
    assert_int_equal(n, 3);
    assert_true(str_eq_cstr(raw[0], "%21r%3Ax"));
    assert_true(str_eq_cstr(raw[1], "m.room.message"));
    assert_true(str_eq_cstr(raw[2], "t1"));
    /* A required parameter may not be empty. */
    assert_false(m("/rooms/{roomId}/x", "/rooms//x", &n, raw));

    /* Optional final parameter: state key absent, empty or present. */
    const char *t = "/rooms/{roomId}/state/{type}/{stateKey?}";
    assert_true(m(t, "/rooms/r/state/m.room.topic", &n, raw));
    assert_int_equal(n, 3);
    assert_int_equal(raw[2].len, 0);
    assert_true(m(t, "/rooms/r/state/m.room.topic/", &n, raw));
    assert_int_equal(n, 3);
    assert_int_equal(raw[2].len, 0);
    assert_true(m(t, "/rooms/r/state/m.room.member/%40u%3Ahs", &n, raw));
    assert_true(str_eq_cstr(raw[2], "%40u%3Ahs"));
    assert_false(m(t, "/rooms/r/state/m.room.member/a/b", &n, raw));
    assert_false(m("/a", "", &n, raw));
    assert_false(m("/a", "a", &n, raw));
}

static void test_table_matching(void **state)
{
    struct arena a;
    arena_init(&a);
    const struct route *rt = NULL;
    struct str params[REQ_MAX_PARAMS];
    int n = 0;
    unsigned all = RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA | RESOURCE_KEYS;

    assert_int_equal(router_match(HTTP_GET, STR_LIT("/_matrix/client/versions"), all, &a, &rt,
                                  params, &n),
                     ROUTER_MATCH);
    assert_string_equal(rt->name, "client_versions");
    /* HEAD is served wherever GET is. */
    assert_int_equal(router_match(HTTP_HEAD, STR_LIT("/_matrix/client/versions"), all, &a, &rt,
                                  params, &n),
                     ROUTER_MATCH);
    assert_int_equal(router_match(HTTP_POST, STR_LIT("/_matrix/client/versions"), all, &a, &rt,
                                  params, &n),
                     ROUTER_NO_METHOD);
    assert_int_equal(router_match(HTTP_GET, STR_LIT("/_matrix/client/nonsense"), all, &a, &rt,
                                  params, &n),
                     ROUTER_NO_PATH);
    /* A trailing slash is tolerated where the exact path has none. */
    assert_int_equal(router_match(HTTP_GET, STR_LIT("/_matrix/client/versions/"), all, &a, &rt,
                                  params, &n),
                     ROUTER_MATCH);
    /* Resources: a federation-only listener does not serve client paths. */
    assert_int_equal(router_match(HTTP_GET, STR_LIT("/_matrix/client/versions"),
                                  RESOURCE_FEDERATION, &a, &rt, params, &n),
                     ROUTER_NO_PATH);
    assert_int_equal(router_match(HTTP_GET, STR_LIT("/_matrix/federation/v1/version"),
                                  RESOURCE_FEDERATION, &a, &rt, params, &n),
                     ROUTER_MATCH);
    /* Health is served on every listener. */
    assert_int_equal(router_match(HTTP_GET, STR_LIT("/health"), RESOURCE_KEYS, &a, &rt, params,
                                  &n),
                     ROUTER_MATCH);
    arena_release(&a);
}

static void test_resources(void **state)
{
    assert_int_equal(router_resource_of(STR_LIT("/_matrix/client/v3/sync")), RESOURCE_CLIENT);
    assert_int_equal(router_resource_of(STR_LIT("/_matrix/client/v1/media/config")),
                     RESOURCE_MEDIA);
    assert_int_equal(router_resource_of(STR_LIT("/_matrix/media/v3/upload")), RESOURCE_MEDIA);
    assert_int_equal(router_resource_of(STR_LIT("/_matrix/federation/v1/send/1")),
                     RESOURCE_FEDERATION);
    assert_int_equal(router_resource_of(STR_LIT("/_matrix/key/v2/server")), RESOURCE_KEYS);
    assert_int_equal(router_resource_of(STR_LIT("/_synapse/admin/v1/register")),
                     RESOURCE_CLIENT);
    assert_int_equal(router_resource_of(STR_LIT("/elsewhere")), 0);
}

/* Every line of routes.def is well formed: absolute template, balanced
 * braces, a handler, a method, and r0 only on v3 client paths. */
static void test_route_table_sane(void **state)
{
    size_t count;
    const struct route *rts = router_routes(&count);
    assert_true(count > 0);
    for (size_t i = 0; i < count; i++) {
        const struct route *rt = &rts[i];
        assert_non_null(rt->handler);
        assert_true(rt->method != 0);
        assert_int_equal(rt->path[0], '/');
        int depth = 0;
        for (const char *p = rt->path; *p; p++) {
            depth += *p == '{';
            depth -= *p == '}';
            assert_true(depth == 0 || depth == 1);
        }
        assert_int_equal(depth, 0);
        if (rt->flags & F_R0) {
            assert_true(strncmp(rt->path, "/_matrix/client/v3/", 19) == 0);
        }
        assert_true(router_resource_of(str_from(rt->path)) != 0);
    }
}

static void test_methods(void **state)
{
    assert_int_equal(router_method("GET"), HTTP_GET);
    assert_int_equal(router_method("OPTIONS"), HTTP_OPTIONS);
    assert_int_equal(router_method("get"), HTTP_OTHER);
    assert_int_equal(router_method("BREW"), HTTP_OTHER);
}

int test_router(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_table_matching),
        cmocka_unit_test(test_resources),
        cmocka_unit_test(test_route_table_sane),
        cmocka_unit_test(test_methods),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
