/*
 * Server ACL evaluation (see acl.h): the spec's four steps over an
 * m.room.server_acl content, a glob matcher without backtracking blow-up
 * (one remembered `*`, the classic greedy scheme, so a hostile pattern
 * costs at most pattern x name steps), and the IP literal test.
 */
#include "core/acl.h"

#include <stdint.h>
#include <string.h>

static unsigned char fold(unsigned char c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* The length of the UTF-8 sequence starting at s[i] (1 for a stray or
 * truncated byte), never past len. */
static size_t cp_len(const char *s, size_t i, size_t len)
{
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    return i + n > len ? len - i : n;
}

bool acl_glob_match(const char *pattern, const char *s, size_t len)
{
    size_t pi = 0, si = 0;
    size_t star_p = SIZE_MAX, star_s = 0; /* after the last `*`, and where it resumes */
    while (si < len) {
        char pc = pattern[pi];
        if (pc == '*') {
            star_p = ++pi;
            star_s = si;
        } else if (pc == '?') {
            pi++;
            si += cp_len(s, si, len);
        } else if (pc && fold((unsigned char)pc) == fold((unsigned char)s[si])) {
            pi++;
            si++;
        } else if (star_p != SIZE_MAX) {
            /* Let the last `*` take one more character and retry. */
            star_s += cp_len(s, star_s, len);
            si = star_s;
            pi = star_p;
        } else {
            return false;
        }
    }
    while (pattern[pi] == '*') {
        pi++;
    }
    return pattern[pi] == '\0';
}

bool acl_is_ip_literal(const char *s, size_t len)
{
    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        return true; /* IPv6: the grammar of server names brackets it */
    }
    /* IPv4: four decimal parts of 1-3 digits, each at most 255. */
    int parts = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        int v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
            v = v * 10 + (s[i] - '0');
            i++;
        }
        if (i == start || v > 255) {
            return false;
        }
        parts++;
        if (i == len) {
            break;
        }
        if (s[i] != '.' || parts == 4) {
            return false;
        }
        i++;
        if (i == len) {
            return false; /* a trailing dot */
        }
    }
    return parts == 4;
}

/* Whether any string entry of content[key] (an array) matches the host. */
static bool list_matches(const json_t *content, const char *key, const char *host, size_t len)
{
    const json_t *list = json_object_get(content, key);
    if (!json_is_array(list)) {
        return false;
    }
    size_t i;
    const json_t *entry;
    json_array_foreach(list, i, entry)
    {
        if (json_is_string(entry) && acl_glob_match(json_string_value(entry), host, len)) {
            return true;
        }
    }
    return false;
}

bool acl_server_allowed(const json_t *content, const char *server_name)
{
    if (!content) {
        return true; /* 1. no m.room.server_acl event: allow */
    }
    /* The port is never considered: "evil.com:8448" is "evil.com". */
    size_t len;
    if (server_name[0] == '[') {
        const char *close = strchr(server_name, ']');
        len = close ? (size_t)(close - server_name) + 1 : strlen(server_name);
    } else {
        const char *colon = strchr(server_name, ':');
        len = colon ? (size_t)(colon - server_name) : strlen(server_name);
    }
    const json_t *ip = json_object_get(content, "allow_ip_literals");
    if (json_is_false(ip) && acl_is_ip_literal(server_name, len)) {
        return false; /* 2. */
    }
    if (list_matches(content, "deny", server_name, len)) {
        return false; /* 3. */
    }
    return list_matches(content, "allow", server_name, len); /* 4. and 5. */
}
