/*
 * Identifier grammar checks, kept free of I/O so they can be tested and
 * fuzzed on plain strings.
 */
#include "core/id.h"

bool id_localpart_valid(const char *s, size_t len)
{
    if (len == 0 || len > ID_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '=' || c == '-' || c == '/' || c == '+';
        if (!ok) {
            return false;
        }
    }
    return true;
}
