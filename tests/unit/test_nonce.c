/*
 * svc/nonce: nonces are single-use, expire after NONCE_TTL_MS, and the set
 * stays bounded.
 */
#include <string.h>

#include "svc/nonce.h"
#include "unit.h"

static void issue_then_take_once(void **state)
{
    struct nonces *n = nonces_new();
    char a[NONCE_HEX_LEN + 1], b[NONCE_HEX_LEN + 1];
    nonces_issue(n, 1000, a);
    nonces_issue(n, 1000, b);
    assert_int_equal(strlen(a), NONCE_HEX_LEN);
    assert_string_not_equal(a, b);
    assert_true(nonces_take(n, a, 1001));
    assert_false(nonces_take(n, a, 1002)); /* replay */
    assert_false(nonces_take(n, "not-issued", 1002));
    assert_true(nonces_take(n, b, 1002));
    nonces_free(n);
}

static void expired_nonce_is_refused_and_spent(void **state)
{
    struct nonces *n = nonces_new();
    char a[NONCE_HEX_LEN + 1];
    nonces_issue(n, 0, a);
    assert_false(nonces_take(n, a, NONCE_TTL_MS));
    assert_false(nonces_take(n, a, 1));
    nonces_free(n);
}

static void outstanding_nonces_are_bounded(void **state)
{
    struct nonces *n = nonces_new();
    char first[NONCE_HEX_LEN + 1], last[NONCE_HEX_LEN + 1];
    nonces_issue(n, 0, first);
    for (int i = 1; i <= NONCE_MAX_OUTSTANDING + 10; i++) {
        nonces_issue(n, i, last);
    }
    /* The oldest made room for newer ones; the newest is still good. */
    assert_false(nonces_take(n, first, 20000));
    assert_true(nonces_take(n, last, 20000));
    nonces_free(n);
}

int test_nonce(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(issue_then_take_once),
        cmocka_unit_test(expired_nonce_is_refused_and_spent),
        cmocka_unit_test(outstanding_nonces_are_bounded),
    };
    return cmocka_run_group_tests_name("nonce", tests, NULL, NULL);
}
