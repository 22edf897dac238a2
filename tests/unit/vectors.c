/* Loading the JSON test vectors in tests/vectors/; see vectors.h. */
#include "vectors.h"

#include <stdio.h>

#include "unit.h"

json_t *vectors_load(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", MYELIN_VECTORS, name);
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        fail_msg("cannot load %s: %s (line %d)", path, e.text, e.line);
    }
    return j;
}
