/*
 * Identifier grammar checks, kept free of I/O so they can be tested and
 * fuzzed on plain strings (spec appendix "Identifier Grammar").
 */
#include "core/id.h"

#include <string.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool id_localpart_valid(const char *s, size_t len)
{
    if (len == 0 || len > ID_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '.' || c == '_' || c == '=' ||
                  c == '-' || c == '/' || c == '+';
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool id_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp;
        if ((c & 0xe0) == 0xc0) {
            n = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n > len) {
            return false;
        }
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* Overlong forms, surrogates and code points past U+10FFFF. */
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return false;
        }
        i += n;
    }
    return true;
}

static bool ipv4_valid(const char *s, size_t len)
{
    int parts = 0;
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        unsigned v = 0;
        while (i < len && is_digit(s[i])) {
            v = v * 10 + (unsigned)(s[i] - '0');
            i++;
            if (i - start > 3) {
                return false;
            }
        }
        if (i == start || v > 255) {
            return false;
        }
        parts++;
        if (i == len) {
            break;
        }
        if (s[i] != '.') {
            return false;
        }
        i++;
    }
    return parts == 4;
}

/* True when every character could belong to an IPv4 literal, so a DNS
 * name check must not accept it (e.g. "1.2.3.999"). */
static bool looks_numeric(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]) && s[i] != '.') {
            return false;
        }
    }
    return true;
}

/* RFC 3513 section 2.2 textual forms, checked structurally: up to eight
 * 1-4 digit hex groups, at most one "::", an optional trailing IPv4. */
static bool ipv6_valid(const char *s, size_t len)
{
    if (len < 2 || len > 45) {
        return false;
    }
    int groups = 0;
    bool compressed = false;
    size_t i = 0;
    if (s[0] == ':') {
        if (len < 2 || s[1] != ':') {
            return false;
        }
        compressed = true;
        i = 2;
        if (i == len) {
            return true; /* "::" */
        }
    }
    while (i < len) {
        size_t start = i;
        while (i < len && is_hex(s[i])) {
            i++;
        }
        if (i < len && s[i] == '.') {
            /* Embedded IPv4 in the last 32 bits. */
            if (!ipv4_valid(s + start, len - start)) {
                return false;
            }
            groups += 2;
            i = len;
            break;
        }
        if (i == start || i - start > 4) {
            return false;
        }
        groups++;
        if (i == len) {
            break;
        }
        if (s[i] != ':') {
            return false;
        }
        i++;
        if (i < len && s[i] == ':') {
            if (compressed) {
                return false;
            }
            compressed = true;
            i++;
            if (i == len) {
                break;
            }
        } else if (i == len) {
            return false; /* trailing single ':' */
        }
    }
    return compressed ? groups <= 7 : groups == 8;
}

static bool dns_valid(const char *s, size_t len)
{
    if (len == 0 || len > 255) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-' && s[i] != '.') {
            return false;
        }
    }
    return true;
}

bool id_server_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > ID_MAX_LEN) {
        return false;
    }
    size_t host_end;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close || !ipv6_valid(s + 1, (size_t)(close - s) - 1)) {
            return false;
        }
        host_end = (size_t)(close - s) + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        host_end = colon ? (size_t)(colon - s) : len;
        bool ok = looks_numeric(s, host_end) ? ipv4_valid(s, host_end) : dns_valid(s, host_end);
        if (!ok) {
            return false;
        }
    }
    if (host_end == len) {
        return true;
    }
    if (s[host_end] != ':') {
        return false;
    }
    size_t digits = len - host_end - 1;
    if (digits < 1 || digits > 5) {
        return false;
    }
    unsigned long port = 0;
    for (size_t i = host_end + 1; i < len; i++) {
        if (!is_digit(s[i])) {
            return false;
        }
        port = port * 10 + (unsigned long)(s[i] - '0');
    }
    return port <= 65535;
}

/* Splits "&local:server": checks sigil, length, the server part, and
 * returns the localpart through lp/lp_len. */
static bool split(const char *s, size_t len, char sigil, const char **lp, size_t *lp_len)
{
    if (len < 3 || len > ID_MAX_LEN || s[0] != sigil) {
        return false;
    }
    const char *colon = memchr(s + 1, ':', len - 1);
    if (!colon) {
        return false;
    }
    *lp = s + 1;
    *lp_len = (size_t)(colon - s) - 1;
    size_t server_len = len - (size_t)(colon - s) - 1;
    return id_server_name_valid(colon + 1, server_len);
}

bool id_user_valid(const char *s, size_t len, bool strict)
{
    const char *lp;
    size_t lp_len;
    if (!split(s, len, '@', &lp, &lp_len)) {
        return false;
    }
    return strict ? id_localpart_valid(lp, lp_len) : id_utf8_valid(lp, lp_len);
}

bool id_room_valid(const char *s, size_t len)
{
    if (len < 2 || len > ID_MAX_LEN || s[0] != '!') {
        return false;
    }
    const char *colon = memchr(s + 1, ':', len - 1);
    if (!colon) {
        /* v12: the create event's reference hash, URL-safe base64. */
        for (size_t i = 1; i < len; i++) {
            char c = s[i];
            if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_') {
                return false;
            }
        }
        return true;
    }
    const char *lp;
    size_t lp_len;
    return split(s, len, '!', &lp, &lp_len) && lp_len > 0 && id_utf8_valid(lp, lp_len);
}

bool id_alias_valid(const char *s, size_t len)
{
    const char *lp;
    size_t lp_len;
    return split(s, len, '#', &lp, &lp_len) && id_utf8_valid(lp, lp_len);
}

bool id_event_valid(const char *s, size_t len)
{
    if (len < 2 || len > ID_MAX_LEN || s[0] != '$') {
        return false;
    }
    const char *colon = memchr(s + 1, ':', len - 1);
    if (colon) {
        /* v1-v2: "$opaque:server". */
        const char *lp;
        size_t lp_len;
        return split(s, len, '$', &lp, &lp_len) && lp_len > 0 && id_utf8_valid(lp, lp_len);
    }
    return id_utf8_valid(s + 1, len - 1);
}

bool id_namespaced_valid(const char *s, size_t len)
{
    if (len == 0 || len > ID_MAX_LEN || !(s[0] >= 'a' && s[0] <= 'z')) {
        return false;
    }
    for (size_t i = 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

const char *id_server_part(const char *id)
{
    const char *colon = id ? strchr(id, ':') : NULL;
    return colon ? colon + 1 : NULL;
}
