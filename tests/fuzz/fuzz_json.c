/*
 * Fuzz target: JSON intake. Any byte string must either parse or be
 * classified as M_NOT_JSON / M_BAD_JSON, within the depth bound, without
 * crashing, leaking or recursing without limit.
 */
#include <stdint.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    const char *why = NULL;
    int rc = json_parse_input((const char *)data, size, JSON_MAX_DEPTH, &j, &why);
    if (rc == 0) {
        if (json_depth((const char *)data, size, JSON_MAX_DEPTH + 1) > JSON_MAX_DEPTH) {
            abort(); /* accepted something deeper than the bound */
        }
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        free(s);
        json_decref(j);
    } else if (rc != -ERR_NOT_JSON && rc != -ERR_BAD_JSON) {
        abort();
    } else if (!why) {
        abort();
    }
    return 0;
}
