/*
 * The X-Matrix Authorization header: parsing, signing and checking (see
 * xmatrix.h and the spec's "Request Authentication").
 */
#include "core/xmatrix.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/canonjson.h"
#include "core/sign.h"

/* Longest header value accepted (four short values and their names). */
#define XMATRIX_MAX_BYTES 8192

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

/* Reads one value at *p (quoted with escapes, or bare up to a comma or
 * whitespace) into an arena string; advances *p. NULL when malformed. */
static char *read_value(struct arena *a, const char **p)
{
    const char *s = *p;
    struct buf b = BUF_INIT;
    char *out = NULL;
    if (*s == '"') {
        s++;
        for (;;) {
            if (*s == '\0') {
                goto done; /* unterminated */
            }
            if (*s == '"') {
                s++;
                break;
            }
            if (*s == '\\') {
                s++;
                if (*s == '\0') {
                    goto done;
                }
            }
            buf_append(&b, s, 1);
            s++;
        }
    } else {
        const char *start = s;
        while (*s && *s != ',' && !is_ws(*s)) {
            if (*s == '"' || *s == '\\') {
                goto done;
            }
            s++;
        }
        if (s == start) {
            goto done;
        }
        buf_append(&b, start, (size_t)(s - start));
    }
    out = arena_strndup(a, b.p ? b.p : "", b.len);
    *p = s;
done:
    buf_release(&b);
    return out;
}

int xmatrix_parse(struct arena *a, const char *header, struct xmatrix *out)
{
    *out = (struct xmatrix){0};
    if (!header || strlen(header) > XMATRIX_MAX_BYTES || strncasecmp(header, "X-Matrix", 8) != 0 ||
        !is_ws(header[8])) {
        return -ERR_UNAUTHORIZED;
    }
    const char *p = header + 8;
    for (;;) {
        while (is_ws(*p)) {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        const char *name = p;
        while (*p && *p != '=' && *p != ',' && !is_ws(*p)) {
            p++;
        }
        size_t name_len = (size_t)(p - name);
        if (*p != '=' || name_len == 0) {
            return -ERR_UNAUTHORIZED;
        }
        p++;
        char *value = read_value(a, &p);
        if (!value) {
            return -ERR_UNAUTHORIZED;
        }
        char **slot = NULL;
        if (name_len == 6 && strncasecmp(name, "origin", 6) == 0) {
            slot = &out->origin;
        } else if (name_len == 11 && strncasecmp(name, "destination", 11) == 0) {
            slot = &out->destination;
        } else if (name_len == 3 && strncasecmp(name, "key", 3) == 0) {
            slot = &out->key;
        } else if (name_len == 3 && strncasecmp(name, "sig", 3) == 0) {
            slot = &out->sig;
        }
        if (slot) {
            if (*slot) {
                return -ERR_UNAUTHORIZED; /* a parameter given twice */
            }
            *slot = value;
        }
        while (is_ws(*p)) {
            p++;
        }
        if (*p == ',') {
            p++;
        } else if (*p != '\0') {
            return -ERR_UNAUTHORIZED;
        }
    }
    if (!out->origin || !*out->origin || !out->key || !*out->key || !out->sig || !*out->sig) {
        return -ERR_UNAUTHORIZED;
    }
    return 0;
}

/* The object a request signature covers. */
static json_t *signable(const char *origin, const char *destination, const char *method,
                        const char *uri, const json_t *content)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "method", method, "uri", uri, "origin", origin);
    if (o && destination) {
        json_object_set_new(o, "destination", json_string(destination));
    }
    if (o && content) {
        json_object_set(o, "content", (json_t *)content);
    }
    return o;
}

char *xmatrix_sign(struct arena *a, const struct signing_key *key, const char *origin,
                   const char *destination, const char *method, const char *uri,
                   const json_t *content)
{
    json_t *o = signable(origin, destination, method, uri, content);
    if (!o || sign_json_add(o, key, origin, CANONJSON_STRICT) != 0) {
        json_decref(o);
        return NULL;
    }
    const char *sig = json_string_value(
        json_object_get(json_object_get(json_object_get(o, "signatures"), origin), key->key_id));
    /* Server names, key IDs and base64 need no quoting or escapes. */
    char *h = sig ? arena_printf(a, "X-Matrix origin=\"%s\",destination=\"%s\",key=\"%s\",sig=\"%s\"",
                                 origin, destination, key->key_id, sig)
                  : NULL;
    json_decref(o);
    return h;
}

int xmatrix_verify(const struct xmatrix *x, const char *destination, const char *method,
                   const char *uri, const json_t *content,
                   const unsigned char pk[KEYS_PUBLIC_BYTES])
{
    if (x->destination && strcmp(x->destination, destination) != 0) {
        return -ERR_UNAUTHORIZED; /* meant for another server */
    }
    /* Old senders leave destination out of the header, but it was part of
     * what they signed only if they knew it: try the spec's form. */
    json_t *o = signable(x->origin, destination, method, uri, content);
    if (!o) {
        return -ERR_UNAUTHORIZED;
    }
    json_object_set_new(o, "signatures",
                        json_pack("{s:{s:s}}", x->origin, x->key, x->sig));
    int rc = o ? sign_json_verify(o, x->origin, x->key, pk, CANONJSON_STRICT) : -1;
    json_decref(o);
    return rc == 0 ? 0 : -ERR_UNAUTHORIZED;
}
