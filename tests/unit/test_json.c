/*
 * Unit tests for JSON intake (depth bound, error classes) and for the
 * request pipeline driven in-process through dispatch_local: OPTIONS,
 * 404/405, body limits and the discovery endpoints' bodies.
 */
#include <string.h>

#include "base/err.h"
#include "base/json.h"
#include "config.h"
#include "http/dispatch.h"
#include "svc/srv.h"
#include "unit.h"

static void test_depth(void **state)
{
    assert_int_equal(json_depth("{}", 2, 64), 1);
    assert_int_equal(json_depth("[[[]]]", 6, 64), 3);
    assert_int_equal(json_depth("{\"a\":\"[[[[\"}", 12, 64), 1); /* brackets in strings */
    assert_int_equal(json_depth("{\"a\\\"[[\":1}", 11, 64), 1);  /* escaped quote */
    assert_int_equal(json_depth("1", 1, 64), 0);
    char deep[200];
    memset(deep, '[', sizeof(deep));
    assert_true(json_depth(deep, sizeof(deep), 64) > 64);
}

static int parse(const char *s)
{
    json_t *j = NULL;
    int rc = json_parse_input(s, strlen(s), JSON_MAX_DEPTH, &j, NULL);
    if (rc == 0) {
        json_decref(j);
    }
    return rc;
}

static void test_parse_classes(void **state)
{
    assert_int_equal(parse("{\"a\":1}"), 0);
    assert_int_equal(parse("[1,2]"), 0);
    assert_int_equal(parse("{\"a\":"), -ERR_NOT_JSON);
    assert_int_equal(parse("hello"), -ERR_NOT_JSON);
    /* Scalars are JSON (the pipeline then says M_BAD_JSON: not an object). */
    assert_int_equal(parse("123"), 0);
    assert_int_equal(parse("\"str\""), 0);
    assert_int_equal(parse("{\"a\":1}{"), -ERR_NOT_JSON);
    assert_int_equal(parse("\"\xff\xfe\""), -ERR_NOT_JSON);
    assert_int_equal(parse("{\"a\":1,\"a\":2}"), -ERR_BAD_JSON);
    assert_int_equal(parse("{\"a\":123456789012345678901234567890}"), -ERR_BAD_JSON);
    assert_int_equal(parse("{\"a\":\"x\\u0000y\"}"), -ERR_BAD_JSON);
    char deep[300];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = '\0';
    assert_int_equal(parse(deep), -ERR_BAD_JSON);
    deep[64] = '\0';
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    assert_int_equal(parse(deep), 0);
}

/* ---- dispatch ---- */

static struct config cfg;
static struct srv srv;

static int setup(void **state)
{
    config_defaults(&cfg, "example.org", "/tmp");
    srv.cfg = &cfg;
    return 0;
}

static int teardown(void **state)
{
    config_release(&cfg);
    return 0;
}

#define ALL (RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA | RESOURCE_KEYS)

static json_t *run(struct req *r, const char *method, const char *path, const char *body)
{
    req_init(r, &srv);
    dispatch_local(r, method, path, NULL, NULL, body, body ? strlen(body) : 0, ALL);
    json_error_t e;
    return json_loadb(r->resp.p, r->resp.len, 0, &e);
}

static void expect_error(const char *method, const char *path, const char *body, int status,
                         const char *errcode)
{
    struct req r;
    json_t *j = run(&r, method, path, body);
    assert_non_null(j);
    assert_int_equal(r.status, status);
    assert_string_equal(json_get_str(j, "errcode"), errcode);
    assert_non_null(json_get_str(j, "error"));
    json_decref(j);
    req_release(&r);
}

static void test_dispatch_errors(void **state)
{
    expect_error("GET", "/_matrix/client/v3/nonsense", NULL, 404, "M_UNRECOGNIZED");
    expect_error("GET", "/", NULL, 404, "M_UNRECOGNIZED");
    expect_error("DELETE", "/_matrix/client/versions", NULL, 405, "M_UNRECOGNIZED");
    expect_error("BREW", "/_matrix/client/versions", NULL, 405, "M_UNRECOGNIZED");
}

static void test_dispatch_options(void **state)
{
    struct req r;
    json_t *j = run(&r, "OPTIONS", "/_matrix/client/v3/anything/at/all", NULL);
    assert_int_equal(r.status, 200);
    assert_true(json_is_object(j));
    json_decref(j);
    req_release(&r);
}

static void test_dispatch_discovery(void **state)
{
    struct req r;
    json_t *j = run(&r, "GET", "/_matrix/client/versions", NULL);
    assert_int_equal(r.status, 200);
    const json_t *versions = json_get_arr(j, "versions");
    assert_non_null(versions);
    bool has_v1_1 = false;
    size_t i;
    json_t *v;
    json_array_foreach(versions, i, v) { has_v1_1 |= strcmp(json_string_value(v), "v1.1") == 0; }
    assert_true(has_v1_1);
    assert_non_null(json_get_obj(j, "unstable_features"));
    json_decref(j);
    req_release(&r);

    j = run(&r, "GET", "/.well-known/matrix/client", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(json_get_obj(j, "m.homeserver"), "base_url"),
                        cfg.public_baseurl);
    json_decref(j);
    req_release(&r);

    j = run(&r, "GET", "/.well-known/matrix/server", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_get_str(j, "m.server"), "example.org");
    json_decref(j);
    req_release(&r);

    j = run(&r, "GET", "/_matrix/federation/v1/version", NULL);
    assert_string_equal(json_get_str(json_get_obj(j, "server"), "name"), "Myelin");
    json_decref(j);
    req_release(&r);

    req_init(&r, &srv);
    dispatch_local(&r, "GET", "/health", NULL, NULL, NULL, 0, ALL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.resp.p, "OK");
    req_release(&r);
}

static void test_dispatch_content_length(void **state)
{
    static const char *const headers[] = {"Content-Length", "99999999999", NULL};
    struct req r;
    req_init(&r, &srv);
    dispatch_local(&r, "GET", "/_matrix/client/versions", NULL, headers, NULL, 0, ALL);
    assert_int_equal(r.status, 413);
    assert_non_null(strstr(r.resp.p, "M_TOO_LARGE"));
    req_release(&r);
}

int test_json(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_parse_classes),
        cmocka_unit_test(test_dispatch_errors),
        cmocka_unit_test(test_dispatch_options),
        cmocka_unit_test(test_dispatch_discovery),
        cmocka_unit_test(test_dispatch_content_length),
    };
    return cmocka_run_group_tests_name("json", tests, setup, teardown);
}
