/*
 * JSON intake with limits. jansson parses recursively with its own depth
 * cap of 2048, far beyond what any Matrix object needs, so a cheap linear
 * pre-scan enforces our tighter bound before jansson sees the text.
 */
#include "base/json.h"

#include "base/err.h"

int json_depth(const char *text, size_t len, int limit)
{
    int depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                max = depth;
                if (max > limit) {
                    return max;
                }
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return max;
}

int json_parse_input(const char *text, size_t len, int max_depth, json_t **out,
                     const char **why)
{
    const char *dummy;
    if (!why) {
        why = &dummy;
    }
    if (json_depth(text, len, max_depth) > max_depth) {
        *why = "JSON nested too deeply";
        return -ERR_BAD_JSON;
    }
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
    if (!j) {
        switch (json_error_code(&e)) {
        case json_error_duplicate_key:
            *why = "duplicate key in JSON object";
            return -ERR_BAD_JSON;
        case json_error_numeric_overflow:
            *why = "number out of range";
            return -ERR_BAD_JSON;
        case json_error_null_character:
            *why = "NUL character in JSON string";
            return -ERR_BAD_JSON;
        case json_error_invalid_utf8:
            *why = "invalid UTF-8 in JSON";
            return -ERR_NOT_JSON;
        default:
            *why = "content not JSON";
            return -ERR_NOT_JSON;
        }
    }
    *out = j;
    return 0;
}

static void decref(void *p) { json_decref(p); }

json_t *json_arena(struct arena *a, json_t *j)
{
    if (j) {
        arena_defer(a, decref, j);
    }
    return j;
}

const char *json_get_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

bool json_get_int(const json_t *obj, const char *key, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v)) {
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

bool json_get_bool(const json_t *obj, const char *key, bool *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_boolean(v)) {
        return false;
    }
    *out = json_is_true(v);
    return true;
}

const json_t *json_get_obj(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_object(v) ? v : NULL;
}

const json_t *json_get_arr(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_array(v) ? v : NULL;
}
