/*
 * Unit tests for the X-Matrix Authorization header (spec "Request
 * Authentication"): parsing the spec's example and the RFC 9110 variants
 * it allows (case-insensitive names, any order, spaces and tabs around
 * commas, bare values with colons, backslash escapes, unknown parameters),
 * refusing malformed headers, and a signed request that verifies only for
 * the same method, URI, destination, content and key.
 */
#include <string.h>

#include "base/arena.h"
#include "base/err.h"
#include "core/keys.h"
#include "core/xmatrix.h"
#include "unit.h"

static void parses_the_spec_example(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a);
    struct xmatrix x;
    assert_int_equal(xmatrix_parse(&a,
                                   "X-Matrix origin=\"origin.hs.example.com\",destination="
                                   "\"destination.hs.example.com\",key=\"ed25519:key1\","
                                   "sig=\"ABCDEF...\"",
                                   &x),
                     0);
    assert_string_equal(x.origin, "origin.hs.example.com");
    assert_string_equal(x.destination, "destination.hs.example.com");
    assert_string_equal(x.key, "ed25519:key1");
    assert_string_equal(x.sig, "ABCDEF...");
    arena_release(&a);
}

static void parses_rfc9110_variants(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a);
    struct xmatrix x;
    /* Scheme and names in any case, any order, whitespace around commas,
     * bare values (with colons), escapes, an unknown parameter. */
    assert_int_equal(xmatrix_parse(&a,
                                   "x-matrix   SIG=abc+/d , \tKey=ed25519:k1,extra=\"x,y\","
                                   "Origin=\"a\\\"b:8448\",destination=hs.example:443",
                                   &x),
                     0);
    assert_string_equal(x.origin, "a\"b:8448");
    assert_string_equal(x.destination, "hs.example:443");
    assert_string_equal(x.key, "ed25519:k1");
    assert_string_equal(x.sig, "abc+/d");
    /* destination is optional (servers before v1.3). */
    assert_int_equal(xmatrix_parse(&a, "X-Matrix origin=o,key=ed25519:k,sig=s", &x), 0);
    assert_null(x.destination);
    arena_release(&a);
}

static void refuses_malformed_headers(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a);
    struct xmatrix x;
    const char *bad[] = {
        NULL,
        "",
        "Bearer abc",
        "X-Matrixorigin=o,key=k,sig=s",
        "X-Matrix key=ed25519:k,sig=s",             /* no origin */
        "X-Matrix origin=o,sig=s",                  /* no key */
        "X-Matrix origin=o,key=ed25519:k",          /* no sig */
        "X-Matrix origin=\"o,key=ed25519:k,sig=s",  /* unterminated quote */
        "X-Matrix origin=o key=ed25519:k,sig=s",    /* no comma */
        "X-Matrix origin=,key=ed25519:k,sig=s",     /* empty value */
        "X-Matrix =o,key=ed25519:k,sig=s",          /* empty name */
        "X-Matrix origin=o,origin=p,key=k,sig=s",   /* repeated */
        "X-Matrix origin=o,key=ed25519:k,sig=\"s\\", /* dangling escape */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (xmatrix_parse(&a, bad[i], &x) != -ERR_UNAUTHORIZED) {
            fail_msg("accepted: %s", bad[i] ? bad[i] : "(null)");
        }
    }
    arena_release(&a);
}

static void signs_and_verifies(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a);
    struct signing_key key, other;
    const char *line = "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    assert_int_equal(keys_parse(line, strlen(line), &key), 0);
    const char *line2 = "ed25519 1 ZJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1";
    assert_int_equal(keys_parse(line2, strlen(line2), &other), 0);
    json_t *content = json_pack("{s:s,s:[i]}", "a", "b", "n", 1);
    char *h = xmatrix_sign(&a, &key, "origin.example", "dest.example:8448", "PUT",
                           "/_matrix/federation/v1/send/1?x=y", content);
    assert_non_null(h);
    assert_int_equal(strncmp(h, "X-Matrix origin=\"origin.example\",destination=", 45), 0);
    struct xmatrix x;
    assert_int_equal(xmatrix_parse(&a, h, &x), 0);
    assert_string_equal(x.key, "ed25519:1");
    assert_int_equal(xmatrix_verify(&x, "dest.example:8448", "PUT",
                                    "/_matrix/federation/v1/send/1?x=y", content, key.pk),
                     0);
    /* Anything else changed: refused. */
    json_t *changed = json_pack("{s:s,s:[i]}", "a", "c", "n", 1);
    assert_int_equal(xmatrix_verify(&x, "dest.example:8448", "PUT",
                                    "/_matrix/federation/v1/send/1?x=y", changed, key.pk),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(xmatrix_verify(&x, "dest.example:8448", "PUT",
                                    "/_matrix/federation/v1/send/1?x=y", NULL, key.pk),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(xmatrix_verify(&x, "dest.example:8448", "POST",
                                    "/_matrix/federation/v1/send/1?x=y", content, key.pk),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(xmatrix_verify(&x, "dest.example:8448", "PUT",
                                    "/_matrix/federation/v1/send/2?x=y", content, key.pk),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(xmatrix_verify(&x, "other.example", "PUT",
                                    "/_matrix/federation/v1/send/1?x=y", content, key.pk),
                     -ERR_UNAUTHORIZED);
    assert_int_equal(xmatrix_verify(&x, "dest.example:8448", "PUT",
                                    "/_matrix/federation/v1/send/1?x=y", content, other.pk),
                     -ERR_UNAUTHORIZED);
    /* A GET without content. */
    h = xmatrix_sign(&a, &key, "origin.example", "dest.example", "GET", "/_matrix/key/v2/server",
                     NULL);
    assert_int_equal(xmatrix_parse(&a, h, &x), 0);
    assert_int_equal(
        xmatrix_verify(&x, "dest.example", "GET", "/_matrix/key/v2/server", NULL, key.pk), 0);
    json_decref(content);
    json_decref(changed);
    arena_release(&a);
}

int test_xmatrix(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_spec_example),
        cmocka_unit_test(parses_rfc9110_variants),
        cmocka_unit_test(refuses_malformed_headers),
        cmocka_unit_test(signs_and_verifies),
    };
    return cmocka_run_group_tests_name("xmatrix", tests, NULL, NULL);
}
