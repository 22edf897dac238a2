/*
 * String slices: a pointer and a length, not necessarily NUL-terminated.
 * Slices never own their bytes; the arena or struct they point into does.
 */
#ifndef MYELIN_BASE_STR_H
#define MYELIN_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct str {
    const char *p;
    size_t len;
};

#define STR_LIT(s) ((struct str){(s), sizeof(s) - 1})
#define STR_NULL ((struct str){NULL, 0})
#define STR_FMT "%.*s"
#define STR_ARG(s) (int)(s).len, (s).p

static inline struct str str_from(const char *s)
{
    return (struct str){s, s ? strlen(s) : 0};
}

static inline bool str_eq(struct str a, struct str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool str_eq_cstr(struct str a, const char *b)
{
    return str_eq(a, str_from(b));
}

static inline bool str_starts_with(struct str s, struct str prefix)
{
    return s.len >= prefix.len && memcmp(s.p, prefix.p, prefix.len) == 0;
}

/* Case-insensitive ASCII comparison, for HTTP header names and tokens. */
bool str_eq_nocase(struct str a, struct str b);

/*
 * Decodes %XX escapes of `in` into `out`, which must hold in.len bytes.
 * Returns the decoded length, or -1 for a malformed escape or a decoded
 * NUL byte (neither is allowed in a Matrix path parameter).
 */
long str_percent_decode(struct str in, char *out);
/* Percent-encodes everything but RFC 3986 unreserved characters (for a
 * path segment or query value) into an arena string. */
struct arena;
char *str_percent_encode(struct arena *a, const char *s);

#endif
