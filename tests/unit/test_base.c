/*
 * Unit tests for src/base (arena, buf, str, err) and src/core/keys
 * (unpadded base64 with the spec's examples, the key file format).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/str.h"
#include "core/id.h"
#include "core/keys.h"
#include "unit.h"

static void test_arena_many_and_large(void **state)
{
    struct arena a;
    arena_init(&a);
    char *prev = NULL;
    for (int i = 0; i < 10000; i++) {
        char *p = arena_printf(&a, "item-%d", i);
        assert_non_null(p);
        assert_true(((uintptr_t)p % 16) == 0);
        if (prev) {
            assert_ptr_not_equal(p, prev);
        }
        prev = p;
    }
    char *big = arena_alloc(&a, 1 << 20);
    memset(big, 0xab, 1 << 20);
    char *after = arena_strdup(&a, "still works");
    assert_string_equal(after, "still works");
    assert_true(a.total >= (1 << 20));
    arena_release(&a);
    assert_null(a.head);
    assert_int_equal(a.total, 0);
}

static int order[4];
static int n_order;
static void record(void *p) { order[n_order++] = *(int *)p; }

static void test_arena_cleanups_reverse(void **state)
{
    struct arena a;
    arena_init(&a);
    static int one = 1, two = 2, three = 3;
    n_order = 0;
    arena_defer(&a, record, &one);
    arena_defer(&a, record, &two);
    arena_defer(&a, record, &three);
    arena_release(&a);
    assert_int_equal(n_order, 3);
    assert_int_equal(order[0], 3);
    assert_int_equal(order[1], 2);
    assert_int_equal(order[2], 1);
}

static void test_buf(void **state)
{
    struct buf b = BUF_INIT;
    buf_append_cstr(&b, "abc");
    buf_printf(&b, "-%d-%s", 42, "x");
    assert_int_equal(b.len, 8);
    assert_string_equal(b.p, "abc-42-x");
    for (int i = 0; i < 1000; i++) {
        buf_append_char(&b, 'z');
    }
    assert_int_equal(b.len, 1008);
    assert_int_equal(b.p[b.len], '\0');
    size_t len;
    char *p = buf_detach(&b, &len);
    assert_int_equal(len, 1008);
    assert_null(b.p);
    free(p);
}

static void test_percent_decode(void **state)
{
    char out[64];
    assert_int_equal(str_percent_decode(STR_LIT("%21room%3Aexample.org"), out), 17);
    assert_memory_equal(out, "!room:example.org", 17);
    assert_int_equal(str_percent_decode(STR_LIT("a%2Fb"), out), 3);
    assert_memory_equal(out, "a/b", 3);
    assert_int_equal(str_percent_decode(STR_LIT("%e2%9c%93"), out), 3);
    assert_memory_equal(out, "\xe2\x9c\x93", 3);
    assert_int_equal(str_percent_decode(STR_LIT("bad%2"), out), -1);
    assert_int_equal(str_percent_decode(STR_LIT("bad%"), out), -1);
    assert_int_equal(str_percent_decode(STR_LIT("bad%zz"), out), -1);
    assert_int_equal(str_percent_decode(STR_LIT("nul%00"), out), -1);
    assert_int_equal(str_percent_decode(STR_LIT(""), out), 0);
}

static void test_err_table(void **state)
{
    assert_string_equal(err_errcode(-ERR_FORBIDDEN), "M_FORBIDDEN");
    assert_int_equal(err_status(-ERR_FORBIDDEN), 403);
    assert_string_equal(err_errcode(-ERR_UNRECOGNIZED), "M_UNRECOGNIZED");
    assert_int_equal(err_status(-ERR_BAD_METHOD), 405);
    assert_int_equal(err_status(-ERR_TOO_LARGE), 413);
    assert_string_equal(err_errcode(-ERR_NOT_JSON), "M_NOT_JSON");
    /* Out-of-range codes degrade to M_UNKNOWN / 500, never crash. */
    assert_string_equal(err_errcode(-100000), "M_UNKNOWN");
    assert_int_equal(err_status(123456), 500);
}

/* Spec appendix "Unpadded Base64" examples. */
static void test_b64_spec_examples(void **state)
{
    static const char *const cases[][2] = {
        {"", ""},         {"f", "Zg"},         {"fo", "Zm8"},       {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char enc[32];
        keys_b64_encode((const unsigned char *)cases[i][0], strlen(cases[i][0]), enc);
        assert_string_equal(enc, cases[i][1]);
        unsigned char dec[32];
        long n = keys_b64_decode(cases[i][1], strlen(cases[i][1]), dec);
        assert_int_equal(n, (long)strlen(cases[i][0]));
        assert_memory_equal(dec, cases[i][0], (size_t)n);
    }
    unsigned char dec[32];
    /* Padded input is accepted too; junk is not. */
    assert_int_equal(keys_b64_decode("Zg==", 4, dec), 1);
    assert_int_equal(keys_b64_decode("Z!==", 4, dec), -1);
    assert_int_equal(keys_b64_decode("Z", 1, dec), -1); /* 6 bits make no byte */
    /* Non-zero trailing bits are tolerated: the spec's own example seed
     * ends in such a character. */
    assert_int_equal(keys_b64_decode("Zh", 2, dec), 1);
    assert_int_equal(dec[0], 'f');
}

static void test_keys_file_roundtrip(void **state)
{
    char path[] = "/tmp/myelin-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    struct signing_key k1, k2;
    assert_int_equal(keys_generate_file(path, &k1), 0);
    assert_int_not_equal(keys_generate_file(path, &k2), 0); /* never overwrites */
    assert_int_equal(keys_load(path, &k2), 0);
    assert_string_equal(k1.key_id, k2.key_id);
    assert_memory_equal(k1.pk, k2.pk, sizeof(k1.pk));
    assert_true(strncmp(k1.key_id, "ed25519:a_", 10) == 0);
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)"x", 1, k2.sk);
    assert_int_equal(crypto_sign_verify_detached(sig, (const unsigned char *)"x", 1, k1.pk), 0);
    unlink(path);
}

/* The seed of the spec's signing examples ("Signing Details" appendix). */
static void test_keys_parse(void **state)
{
    const char *line = "ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n";
    struct signing_key k;
    assert_int_equal(keys_parse(line, strlen(line), &k), 0);
    assert_string_equal(k.key_id, "ed25519:1");
    assert_int_not_equal(keys_parse("rsa 1 abc", 9, &k), 0);
    assert_int_not_equal(keys_parse("ed25519 1 c2hvcnQ", 17, &k), 0);
    assert_int_not_equal(keys_parse("ed25519 b@d YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1", 54,
                                    &k),
                         0);
}

static void test_localpart(void **state)
{
    assert_true(id_localpart_valid("alice", 5));
    assert_true(id_localpart_valid("a.b_c=d-e/f+g", 13));
    assert_false(id_localpart_valid("Alice", 5));
    assert_false(id_localpart_valid("", 0));
    assert_false(id_localpart_valid("al ice", 6));
    assert_false(id_localpart_valid("al:ice", 6));
}

int test_base(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena_many_and_large),
        cmocka_unit_test(test_arena_cleanups_reverse),
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_b64_spec_examples),
        cmocka_unit_test(test_keys_file_roundtrip),
        cmocka_unit_test(test_keys_parse),
        cmocka_unit_test(test_localpart),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
