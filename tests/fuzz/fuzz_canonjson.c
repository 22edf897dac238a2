/*
 * Fuzz target: canonical JSON. Whatever parses must canonicalise in
 * lenient mode (strict mode may refuse floats and big integers), and the
 * canonical text must be a fixed point: parsing it again and writing it
 * again gives the same bytes, in both modes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/canonjson.h"

static void round_trip(const json_t *j, enum canonjson_mode mode)
{
    struct buf first = BUF_INIT, second = BUF_INIT;
    int rc = canonjson_write(&first, j, mode);
    if (rc != 0) {
        if (rc != -ERR_BAD_JSON || mode == CANONJSON_LENIENT || first.len != 0) {
            abort(); /* only strict mode may refuse, and it leaves no output */
        }
        buf_release(&first);
        return;
    }
    json_t *again = NULL;
    if (canonjson_parse(first.p, first.len, &again, NULL) != 0) {
        abort(); /* canonical output must be valid JSON */
    }
    if (canonjson_write(&second, again, mode) != 0) {
        abort();
    }
    if (first.len != second.len || memcmp(first.p, second.p, first.len) != 0) {
        abort(); /* not a fixed point */
    }
    json_decref(again);
    buf_release(&first);
    buf_release(&second);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = NULL;
    if (canonjson_parse((const char *)data, size, &j, NULL) != 0) {
        return 0;
    }
    round_trip(j, CANONJSON_STRICT);
    round_trip(j, CANONJSON_LENIENT);
    json_decref(j);
    return 0;
}
