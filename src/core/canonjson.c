/*
 * The canonical JSON writer (spec appendix "Canonical JSON") over jansson
 * values. See canonjson.h for the encoding and the two modes. The writer
 * recurses once per nesting level, bounded by CANONJSON_MAX_DEPTH; object
 * keys are sorted into a small stack array, or a heap one for big objects.
 */
#include "core/canonjson.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/json.h"
#include "base/xmalloc.h"

enum canonjson_mode canonjson_mode_for(const struct room_version *rv)
{
    return rv->strict_canonical_json ? CANONJSON_STRICT : CANONJSON_LENIENT;
}

/* ---- strings ---- */

/*
 * jansson holds strings as valid UTF-8 without NUL (json_parse_input and
 * json_string both insist), so bytes >= 0x80 are copied through: UTF-8 byte
 * order is code point order and the spec wants UTF-8, not \u escapes.
 */
static void write_string(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    buf_reserve(out, len + 2);
    buf_append_char(out, '"');
    size_t run = 0; /* start of the pending run of bytes needing no escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        buf_append(out, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            /* Grammar: u000X / u001X with lowercase hex digits. */
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
            break;
        }
        buf_append(out, esc, n);
    }
    buf_append(out, s + run, len - run);
    buf_append_char(out, '"');
}

/* ---- numbers ---- */

static void write_integer(struct buf *out, long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", v);
    buf_append(out, tmp, (size_t)n);
}

/*
 * A non-integral (or out-of-range) double in lenient mode: the shortest
 * decimal digit string that reads back as the same double, laid out in
 * fixed notation when the decimal exponent allows, else as d.ddde+XX.
 */
static void write_real_lenient(struct buf *out, double d)
{
    char tmp[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    if (prec == 17) {
        snprintf(tmp, sizeof(tmp), "%.16e", d);
    }
    /* tmp is "[-]d[.ddd]e(+|-)XX"; split it into sign, digits, exponent. */
    const char *p = tmp;
    bool neg = false;
    if (*p == '-') {
        neg = true;
        p++;
    }
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++) {
        if (*p != '.' && nd < sizeof(digits) - 1) {
            digits[nd++] = *p;
        }
    }
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    digits[nd] = '\0';
    int decpt = exp10 + 1; /* value = 0.DIGITS x 10^decpt */

    if (neg) {
        buf_append_char(out, '-');
    }
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            buf_append(out, "0.", 2);
            for (int i = 0; i < -decpt; i++) {
                buf_append_char(out, '0');
            }
            buf_append(out, digits, nd);
        } else if ((size_t)decpt >= nd) {
            buf_append(out, digits, nd);
            for (size_t i = nd; i < (size_t)decpt; i++) {
                buf_append_char(out, '0');
            }
            buf_append(out, ".0", 2);
        } else {
            buf_append(out, digits, (size_t)decpt);
            buf_append_char(out, '.');
            buf_append(out, digits + decpt, nd - (size_t)decpt);
        }
        return;
    }
    buf_append_char(out, digits[0]);
    if (nd > 1) {
        buf_append_char(out, '.');
        buf_append(out, digits + 1, nd - 1);
    }
    int e = decpt - 1;
    buf_printf(out, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
}

static int write_number(struct buf *out, const json_t *v, enum canonjson_mode mode)
{
    if (json_is_integer(v)) {
        long long i = json_integer_value(v);
        if (mode == CANONJSON_STRICT && (i > JSON_MAX_SAFE_INT || i < -JSON_MAX_SAFE_INT)) {
            return -ERR_BAD_JSON;
        }
        write_integer(out, i);
        return 0;
    }
    double d = json_real_value(v);
    if (!isfinite(d)) {
        return -ERR_BAD_JSON;
    }
    /* 2^53 - 1 is exactly representable, so the range test is exact. */
    if (d == floor(d) && d <= (double)JSON_MAX_SAFE_INT && d >= -(double)JSON_MAX_SAFE_INT) {
        write_integer(out, (long long)d); /* also turns -0.0 into 0 */
        return 0;
    }
    if (mode == CANONJSON_STRICT) {
        return -ERR_BAD_JSON;
    }
    write_real_lenient(out, d);
    return 0;
}

/* ---- containers ---- */

static int cmp_keys(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: UTF-8 byte order = code point order. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool skipped(const char *key, const char *const *skip)
{
    for (; skip && *skip; skip++) {
        if (strcmp(key, *skip) == 0) {
            return true;
        }
    }
    return false;
}

static int write_value(struct buf *out, const json_t *v, enum canonjson_mode mode, int depth);

static int write_object(struct buf *out, const json_t *obj, enum canonjson_mode mode, int depth,
                        const char *const *skip)
{
    const char *small[32];
    size_t n = json_object_size(obj);
    const char **keys = n <= 32 ? small : xmalloc(n * sizeof(*keys));
    size_t k = 0;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        if (k < n && !skipped(key, skip)) {
            keys[k++] = key;
        }
    }
    qsort(keys, k, sizeof(*keys), cmp_keys);
    int rc = 0;
    buf_append_char(out, '{');
    for (size_t i = 0; i < k && rc == 0; i++) {
        if (i > 0) {
            buf_append_char(out, ',');
        }
        write_string(out, keys[i], strlen(keys[i]));
        buf_append_char(out, ':');
        rc = write_value(out, json_object_get(obj, keys[i]), mode, depth + 1);
    }
    buf_append_char(out, '}');
    if (keys != small) {
        free(keys);
    }
    return rc;
}

static int write_value(struct buf *out, const json_t *v, enum canonjson_mode mode, int depth)
{
    if (depth > CANONJSON_MAX_DEPTH) {
        return -ERR_BAD_JSON;
    }
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return write_object(out, v, mode, depth, NULL);
    case JSON_ARRAY: {
        buf_append_char(out, '[');
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i > 0) {
                buf_append_char(out, ',');
            }
            int rc = write_value(out, json_array_get(v, i), mode, depth + 1);
            if (rc) {
                return rc;
            }
        }
        buf_append_char(out, ']');
        return 0;
    }
    case JSON_STRING:
        write_string(out, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER:
    case JSON_REAL:
        return write_number(out, v, mode);
    case JSON_TRUE:
        buf_append(out, "true", 4);
        return 0;
    case JSON_FALSE:
        buf_append(out, "false", 5);
        return 0;
    case JSON_NULL:
        buf_append(out, "null", 4);
        return 0;
    }
    return -ERR_BAD_JSON;
}

/* ---- entry points ---- */

int canonjson_write(struct buf *out, const json_t *v, enum canonjson_mode mode)
{
    if (!v) {
        return -ERR_BAD_JSON;
    }
    size_t mark = out->len;
    int rc = write_value(out, v, mode, 1);
    if (rc) {
        out->len = mark;
        if (out->p) {
            out->p[mark] = '\0';
        }
    }
    return rc;
}

int canonjson_write_except(struct buf *out, const json_t *obj, enum canonjson_mode mode,
                           const char *const *skip)
{
    if (!json_is_object(obj)) {
        return -ERR_BAD_JSON;
    }
    size_t mark = out->len;
    int rc = write_object(out, obj, mode, 1, skip);
    if (rc) {
        out->len = mark;
        if (out->p) {
            out->p[mark] = '\0';
        }
    }
    return rc;
}

int canonjson_parse(const char *text, size_t len, json_t **out, const char **why)
{
    return json_parse_input(text, len, JSON_MAX_DEPTH, out, why);
}
