/*
 * Fuzz target: identifier grammar. Every checker must terminate without
 * reading past the input, and the grammars must nest: a strict user ID is
 * also a valid historical one, and any ID with a domain has a valid
 * server name after its first ':'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    bool strict = id_user_valid(s, size, true);
    bool historical = id_user_valid(s, size, false);
    if (strict && !historical) {
        abort();
    }
    bool server = id_server_name_valid(s, size);
    if (server && size > ID_MAX_LEN) {
        abort();
    }
    if (historical) {
        const char *colon = memchr(s, ':', size);
        if (!colon || !id_server_name_valid(colon + 1, size - (size_t)(colon - s) - 1)) {
            abort();
        }
    }
    (void)id_room_valid(s, size);
    (void)id_alias_valid(s, size);
    (void)id_event_valid(s, size);
    (void)id_namespaced_valid(s, size);
    (void)id_utf8_valid(s, size);
    return 0;
}
