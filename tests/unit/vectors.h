/*
 * Test vectors for the unit tests: the JSON files in tests/vectors/
 * (MYELIN_VECTORS, set by tests/unit/meson.build).
 */
#ifndef MYELIN_TESTS_VECTORS_H
#define MYELIN_TESTS_VECTORS_H

#include <jansson.h>

/* Loads tests/vectors/<name>, refusing duplicate keys; fails the running
 * test if the file cannot be read or parsed. The caller releases it. */
json_t *vectors_load(const char *name);

#endif
