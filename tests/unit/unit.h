/*
 * Shared declarations of the unit test binary. Each tests/unit/test_<module>.c
 * defines one `int test_<module>(void)` that runs its cmocka group and
 * returns the number of failed tests; main.c lists them all in one table.
 */
#ifndef MYELIN_TESTS_UNIT_H
#define MYELIN_TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define UNIT_GROUPS(X) \
    X(test_base)       \
    X(test_id)         \
    X(test_config)     \
    X(test_store)      \
    X(test_router)     \
    X(test_json)       \
    X(test_event)      \
    X(test_canonjson)  \
    X(test_sign)       \
    X(test_redact)     \
    X(test_authrules)  \
    X(test_stateres)   \
    X(test_nonce)      \
    X(test_notify)     \
    X(test_pushrules)  \
    X(test_xmatrix)    \
    X(test_acl)        \
    X(test_fedqueue)   \
    X(test_fedresolve)

#define UNIT_DECLARE(name) int name(void);
UNIT_GROUPS(UNIT_DECLARE)
#undef UNIT_DECLARE

#endif
