/*
 * Matrix identifiers (spec appendix "Identifier Grammar"). Pure functions.
 */
#ifndef MYELIN_CORE_ID_H
#define MYELIN_CORE_ID_H

#include <stdbool.h>
#include <stddef.h>

#define ID_MAX_LEN 255

/* A localpart allowed for new users: [a-z0-9._=\-/+]+ */
bool id_localpart_valid(const char *s, size_t len);

#endif
