/*
 * JSON intake and small accessors on top of jansson. Parsing from outside
 * input always goes through json_parse_input, which bounds nesting depth
 * (before jansson recurses), rejects duplicate keys and invalid UTF-8, and
 * classifies failures as the Matrix errors M_NOT_JSON or M_BAD_JSON.
 */
#ifndef MYELIN_BASE_JSON_H
#define MYELIN_BASE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "base/str.h"

#define JSON_MAX_DEPTH 64

/* Largest integer allowed in canonical JSON: 2^53 - 1. */
#define JSON_MAX_SAFE_INT 9007199254740991LL

/*
 * Returns the maximum nesting depth of the JSON text (arrays and objects),
 * stopping early once it exceeds `limit`. Strings are skipped correctly.
 */
int json_depth(const char *text, size_t len, int limit);

/*
 * Parses untrusted JSON. Returns 0 and a new reference in *out, or
 * -ERR_NOT_JSON (not JSON at all: syntax, encoding) or -ERR_BAD_JSON (too
 * deep, duplicate keys, integer out of range, NUL in a string). `why`, if
 * not NULL, receives a short static description.
 */
int json_parse_input(const char *text, size_t len, int max_depth, json_t **out,
                     const char **why);

/* Registers json_decref(j) as a cleanup of the arena; returns j. */
json_t *json_arena(struct arena *a, json_t *j);

/* Typed getters: NULL / false when absent or of another type. */
const char *json_get_str(const json_t *obj, const char *key);
bool json_get_int(const json_t *obj, const char *key, long long *out);
bool json_get_bool(const json_t *obj, const char *key, bool *out);
const json_t *json_get_obj(const json_t *obj, const char *key);
const json_t *json_get_arr(const json_t *obj, const char *key);

#endif
