/*
 * Unit tests for canonical JSON: the spec's examples (tests/vectors/
 * canonical_json.json, appendix "Canonical JSON"), then the edges the
 * examples do not reach: escapes of control characters, non-BMP text, key
 * order by code point, the integer range and floats in strict and lenient
 * mode, duplicate keys on input and the depth bound.
 */
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/canonjson.h"
#include "core/roomver.h"
#include "unit.h"
#include "vectors.h"

/* Parses `in`, writes it canonically in `mode`; returns the rc and leaves
 * the text in *out (caller releases). */
static int canon(const char *in, enum canonjson_mode mode, struct buf *out)
{
    json_t *j = NULL;
    int rc = canonjson_parse(in, strlen(in), &j, NULL);
    if (rc) {
        return rc;
    }
    rc = canonjson_write(out, j, mode);
    json_decref(j);
    return rc;
}

static void assert_canon(const char *in, enum canonjson_mode mode, const char *want)
{
    struct buf out = BUF_INIT;
    int rc = canon(in, mode, &out);
    assert_int_equal(rc, 0);
    assert_string_equal(buf_str(&out).p, want);
    buf_release(&out);
}

static void assert_canon_fails(const char *in, enum canonjson_mode mode, int want_rc)
{
    struct buf out = BUF_INIT;
    assert_int_equal(canon(in, mode, &out), want_rc);
    assert_int_equal(out.len, 0);
    buf_release(&out);
}

/* ---- spec vectors ---- */

static void test_spec_examples(void **state)
{
    json_t *doc = vectors_load("canonical_json.json");
    json_t *cases = json_object_get(doc, "cases");
    assert_true(json_array_size(cases) >= 10);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) {
        const char *in = json_string_value(json_object_get(c, "input"));
        const char *want = json_string_value(json_object_get(c, "output"));
        /* The examples hold in both modes. */
        assert_canon(in, CANONJSON_STRICT, want);
        assert_canon(in, CANONJSON_LENIENT, want);
    }
    json_decref(doc);
}

/* ---- strings ---- */

static void test_control_escapes(void **state)
{
    /* Dedicated short escapes, and lowercase \u00XX for the rest. */
    assert_canon("[\"\\b\\t\\n\\f\\r\\\"\\\\\"]", CANONJSON_STRICT, "[\"\\b\\t\\n\\f\\r\\\"\\\\\"]");
    assert_canon("[\"\\u001F\"]", CANONJSON_STRICT, "[\"\\u001f\"]");
    assert_canon("[\"\\u0001\\u000B\\u000e\\u001A\"]", CANONJSON_STRICT,
                 "[\"\\u0001\\u000b\\u000e\\u001a\"]");
    /* Every control character: 0x08-0x0a, 0x0c, 0x0d short; others long. */
    for (int c = 1; c < 0x20; c++) {
        char in[32], want[32];
        snprintf(in, sizeof(in), "[\"\\u%04X\"]", c);
        const char *shortesc = c == '\b'   ? "\\b"
                               : c == '\t' ? "\\t"
                               : c == '\n' ? "\\n"
                               : c == '\f' ? "\\f"
                               : c == '\r' ? "\\r"
                                           : NULL;
        if (shortesc) {
            snprintf(want, sizeof(want), "[\"%s\"]", shortesc);
        } else {
            snprintf(want, sizeof(want), "[\"\\u%04x\"]", c);
        }
        assert_canon(in, CANONJSON_STRICT, want);
    }
    /* Not escaped: solidus, DEL, U+2028, U+2029 and escaped ASCII letters. */
    assert_canon("[\"\\/\\u007f\\u2028\\u2029\\u0041\"]", CANONJSON_STRICT,
                 "[\"/\x7f\xe2\x80\xa8\xe2\x80\xa9" "A\"]");
    /* NUL cannot be carried (rejected on input). */
    assert_canon_fails("[\"a\\u0000b\"]", CANONJSON_STRICT, -ERR_BAD_JSON);
}

static void test_non_bmp(void **state)
{
    /* A surrogate pair comes out as the 4-byte UTF-8 sequence. */
    assert_canon("{\"a\":\"\\ud83d\\ude00\"}", CANONJSON_STRICT, "{\"a\":\"\xf0\x9f\x98\x80\"}");
    assert_canon("{\"a\":\"\xf0\x9f\x98\x80\"}", CANONJSON_STRICT, "{\"a\":\"\xf0\x9f\x98\x80\"}");
    /* A lone surrogate is not text. */
    assert_canon_fails("{\"a\":\"\\ud83d\"}", CANONJSON_STRICT, -ERR_NOT_JSON);
}

static void test_key_order_code_points(void **state)
{
    /*
     * U+FFFF sorts before U+1F600 by code point (and by UTF-8 bytes), but
     * after it in UTF-16 order (0xD83D < 0xFFFF): this catches sorting by
     * UTF-16 units. "é" (U+00E9) sorts after "z"; upper case before lower.
     */
    assert_canon("{\"\xf0\x9f\x98\x80\":1,\"\xef\xbf\xbf\":2,\"z\":3,\"\xc3\xa9\":4,\"Z\":5,\"\":6}",
                 CANONJSON_STRICT,
                 "{\"\":6,\"Z\":5,\"z\":3,\"\xc3\xa9\":4,\"\xef\xbf\xbf\":2,\"\xf0\x9f\x98\x80\":1}");
    /* A key that is a prefix of another sorts first. */
    assert_canon("{\"ab\":1,\"a\":2,\"a\\u0001\":3}", CANONJSON_STRICT,
                 "{\"a\":2,\"a\\u0001\":3,\"ab\":1}");
    /* Nested objects are sorted too; arrays keep their order. */
    assert_canon("{\"b\":[{\"y\":1,\"x\":2},3,1],\"a\":{\"d\":true,\"c\":false}}",
                 CANONJSON_STRICT,
                 "{\"a\":{\"c\":false,\"d\":true},\"b\":[{\"x\":2,\"y\":1},3,1]}");
}

/* ---- numbers ---- */

static void test_integer_range(void **state)
{
    assert_canon("[9007199254740991,-9007199254740991,0,-1]", CANONJSON_STRICT,
                 "[9007199254740991,-9007199254740991,0,-1]");
    assert_canon_fails("[9007199254740992]", CANONJSON_STRICT, -ERR_BAD_JSON);
    assert_canon_fails("[-9007199254740992]", CANONJSON_STRICT, -ERR_BAD_JSON);
    assert_canon_fails("{\"depth\":9223372036854775807}", CANONJSON_STRICT, -ERR_BAD_JSON);
    /* Lenient (room versions 1-5): big integers are carried as they are. */
    assert_canon("[9007199254740992,-9223372036854775808]", CANONJSON_LENIENT,
                 "[9007199254740992,-9223372036854775808]");
    /* Beyond 64 bits nothing can hold them: rejected on input. */
    assert_canon_fails("[18446744073709551616]", CANONJSON_LENIENT, -ERR_BAD_JSON);
}

static void test_floats(void **state)
{
    /* Integral values are integers however they are spelled (spec example). */
    assert_canon("[1.0,-0.0,1e10,2.5E1,-3e0]", CANONJSON_STRICT, "[1,0,10000000000,25,-3]");
    assert_canon("[9007199254740991.0]", CANONJSON_STRICT, "[9007199254740991]");
    /* Strict: fractions and integral values beyond 2^53-1 are rejected. */
    assert_canon_fails("[1.5]", CANONJSON_STRICT, -ERR_BAD_JSON);
    assert_canon_fails("{\"a\":{\"b\":[0.1]}}", CANONJSON_STRICT, -ERR_BAD_JSON);
    assert_canon_fails("[1e16]", CANONJSON_STRICT, -ERR_BAD_JSON);
    assert_canon_fails("[-1e300]", CANONJSON_STRICT, -ERR_BAD_JSON);
    /* Lenient: shortest round-trip form, fixed or exponent notation. */
    assert_canon("[50.57,0.1,-2.5,0.0001,1e-05,1.5e-07]", CANONJSON_LENIENT,
                 "[50.57,0.1,-2.5,0.0001,1e-05,1.5e-07]");
    assert_canon("[1e16,1.5e300,123456789012345680000.0,9007199254740992.0]", CANONJSON_LENIENT,
                 "[1e+16,1.5e+300,1.2345678901234568e+20,9007199254740992.0]");
    assert_canon("[0.30000000000000004,5.114698E4]", CANONJSON_LENIENT,
                 "[0.30000000000000004,51146.98]");
}

/* ---- input, skipping, limits ---- */

static void test_duplicate_keys(void **state)
{
    json_t *j = NULL;
    const char *why = NULL;
    assert_int_equal(canonjson_parse("{\"a\":1,\"a\":2}", 13, &j, &why), -ERR_BAD_JSON);
    assert_non_null(why);
    assert_int_equal(canonjson_parse("{\"x\":{\"a\":1,\"b\":2,\"a\":1}}", 25, &j, NULL),
                     -ERR_BAD_JSON);
    /* Same key written two ways ("a" and "\u0061") is still a duplicate. */
    const char *esc = "{\"a\":1,\"\\u0061\":2}";
    assert_int_equal(canonjson_parse(esc, strlen(esc), &j, NULL), -ERR_BAD_JSON);
    assert_int_equal(canonjson_parse("{\"a\":1}", 7, &j, NULL), 0);
    json_decref(j);
}

static void test_write_except(void **state)
{
    json_t *j = json_pack("{s:i,s:{},s:{s:i},s:s}", "z", 1, "signatures", "unsigned", "age", 5,
                          "a", "x");
    static const char *const skip[] = {"signatures", "unsigned", NULL};
    struct buf out = BUF_INIT;
    assert_int_equal(canonjson_write_except(&out, j, CANONJSON_STRICT, skip), 0);
    assert_string_equal(out.p, "{\"a\":\"x\",\"z\":1}");
    buf_reset(&out);
    assert_int_equal(canonjson_write_except(&out, j, CANONJSON_STRICT, NULL), 0);
    assert_string_equal(out.p, "{\"a\":\"x\",\"signatures\":{},\"unsigned\":{\"age\":5},\"z\":1}");
    buf_reset(&out);
    json_t *arr = json_array();
    assert_int_equal(canonjson_write_except(&out, arr, CANONJSON_STRICT, skip), -ERR_BAD_JSON);
    json_decref(arr);
    json_decref(j);
    buf_release(&out);
}

static void test_failure_keeps_buffer(void **state)
{
    struct buf out = BUF_INIT;
    buf_append_cstr(&out, "prefix");
    json_t *j = json_pack("{s:i,s:f}", "a", 1, "b", 0.5);
    assert_int_equal(canonjson_write(&out, j, CANONJSON_STRICT), -ERR_BAD_JSON);
    assert_string_equal(out.p, "prefix");
    assert_int_equal(canonjson_write(&out, j, CANONJSON_LENIENT), 0);
    assert_string_equal(out.p, "prefix{\"a\":1,\"b\":0.5}");
    json_decref(j);
    buf_release(&out);
}

static void test_depth_bound(void **state)
{
    json_t *root = json_array();
    json_t *cur = root;
    for (int i = 0; i < CANONJSON_MAX_DEPTH + 5; i++) {
        json_t *next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    struct buf out = BUF_INIT;
    assert_int_equal(canonjson_write(&out, root, CANONJSON_LENIENT), -ERR_BAD_JSON);
    assert_int_equal(out.len, 0);
    json_decref(root);
    buf_release(&out);
}

static void test_large_object(void **state)
{
    /* More keys than the writer's stack array: the heap path sorts too. */
    json_t *j = json_object();
    for (int i = 99; i >= 0; i--) {
        char key[8];
        snprintf(key, sizeof(key), "k%02d", i);
        json_object_set_new(j, key, json_integer(i));
    }
    struct buf out = BUF_INIT;
    assert_int_equal(canonjson_write(&out, j, CANONJSON_STRICT), 0);
    assert_true(strncmp(out.p, "{\"k00\":0,\"k01\":1,", 17) == 0);
    assert_non_null(strstr(out.p, "\"k98\":98,\"k99\":99}"));
    json_decref(j);
    buf_release(&out);
}

static void test_mode_for_version(void **state)
{
    assert_int_equal(canonjson_mode_for(roomver_get("1")), CANONJSON_LENIENT);
    assert_int_equal(canonjson_mode_for(roomver_get("5")), CANONJSON_LENIENT);
    assert_int_equal(canonjson_mode_for(roomver_get("6")), CANONJSON_STRICT);
    assert_int_equal(canonjson_mode_for(roomver_get("12")), CANONJSON_STRICT);
}

int test_canonjson(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_control_escapes),
        cmocka_unit_test(test_non_bmp),
        cmocka_unit_test(test_key_order_code_points),
        cmocka_unit_test(test_integer_range),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_write_except),
        cmocka_unit_test(test_failure_keeps_buffer),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_large_object),
        cmocka_unit_test(test_mode_for_version),
    };
    return cmocka_run_group_tests_name("canonjson", tests, NULL, NULL);
}
