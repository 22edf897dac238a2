/*
 * Request accessors and response builders shared by every handler, and
 * the rendering of Matrix errors from the err.def table.
 */
#include "http/req.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "base/err.h"
#include "base/json.h"
#include "base/xmalloc.h"
#include "http/dispatch.h"

int64_t req_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t req_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void req_init(struct req *r, struct srv *srv)
{
    memset(r, 0, sizeof(*r));
    arena_init(&r->arena);
    buf_init(&r->body);
    buf_init(&r->resp);
    buf_init(&r->raw_query);
    r->srv = srv;
    r->start_ns = req_now_ns();
}

void req_release(struct req *r)
{
    arena_release(&r->arena);
    buf_release(&r->body);
    buf_release(&r->resp);
    buf_release(&r->raw_query);
}

const char *req_query(const struct req *r, const char *key)
{
    struct str k = str_from(key);
    for (int i = 0; i < r->n_query; i++) {
        if (str_eq(r->query[i].key, k)) {
            return r->query[i].value.p;
        }
    }
    return NULL;
}

const char *req_header(const struct req *r, const char *name)
{
    for (int i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0) {
            return r->headers[i].value;
        }
    }
    return NULL;
}

/* Decodes a query component: '+' is a space, %XX an escape. A malformed
 * escape is kept literally rather than failing the whole request. */
static struct str decode_component(struct arena *a, const char *s, size_t len)
{
    char *out = arena_alloc(a, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%' && i + 2 < len) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == '\0' && v > 0) {
                c = (char)v;
                i += 2;
            }
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return (struct str){out, o};
}

static void add_query(struct req *r, struct str k, struct str v)
{
    if (r->n_query % 8 == 0) {
        struct req_arg *n = ARENA_ARRAY(&r->arena, struct req_arg, (size_t)r->n_query + 8);
        if (r->n_query) {
            memcpy(n, r->query, sizeof(*n) * (size_t)r->n_query);
        }
        r->query = n;
    }
    r->query[r->n_query].key = k;
    r->query[r->n_query].value = v;
    r->n_query++;
}

void req_add_query_raw(struct req *r, const char *key, const char *value)
{
    if (r->n_query >= 256) {
        return; /* bound the work a hostile query string can cause */
    }
    struct str k = decode_component(&r->arena, key, strlen(key));
    struct str v = value ? decode_component(&r->arena, value, strlen(value)) : (struct str){"", 0};
    add_query(r, k, v);
}

void req_parse_query(struct req *r, struct str q)
{
    size_t i = 0;
    while (i < q.len && r->n_query < 256) {
        size_t end = i;
        while (end < q.len && q.p[end] != '&') {
            end++;
        }
        size_t eq = i;
        while (eq < end && q.p[eq] != '=') {
            eq++;
        }
        if (end > i) {
            struct str k = decode_component(&r->arena, q.p + i, eq - i);
            struct str v = eq < end ? decode_component(&r->arena, q.p + eq + 1, end - eq - 1)
                                    : (struct str){"", 0};
            add_query(r, k, v);
        }
        i = end + 1;
    }
}

int req_bytes(struct req *r, int status, const char *content_type, const void *data, size_t len)
{
    r->status = status;
    r->content_type = content_type;
    buf_reset(&r->resp);
    buf_append(&r->resp, data, len);
    return 0;
}

struct buf *req_json_raw(struct req *r, int status)
{
    r->status = status;
    r->content_type = "application/json";
    buf_reset(&r->resp);
    return &r->resp;
}

int req_json(struct req *r, int status, json_t *body)
{
    r->status = status;
    r->content_type = "application/json";
    buf_reset(&r->resp);
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) {
        r->status = 500;
        buf_append_cstr(&r->resp, "{\"errcode\":\"M_UNKNOWN\",\"error\":\"Internal error\"}");
        return 0;
    }
    buf_append_cstr(&r->resp, s);
    free(s);
    return 0;
}

void req_add_header(struct req *r, const char *name, const char *value)
{
    if (r->n_resp_headers == r->cap_resp_headers) {
        int cap = r->cap_resp_headers ? r->cap_resp_headers * 2 : 8;
        struct req_header *n = ARENA_ARRAY(&r->arena, struct req_header, (size_t)cap);
        if (r->n_resp_headers) {
            memcpy(n, r->resp_headers, sizeof(*n) * (size_t)r->n_resp_headers);
        }
        r->resp_headers = n;
        r->cap_resp_headers = cap;
    }
    r->resp_headers[r->n_resp_headers].name = name;
    r->resp_headers[r->n_resp_headers].value = value;
    r->n_resp_headers++;
}

static int fail_v(struct req *r, int code, json_t *extra, const char *fmt, va_list ap)
{
    if (code > 0) {
        code = -code;
    }
    if (code == 0) {
        code = -ERR_UNKNOWN;
    }
    const char *msg = fmt ? arena_vprintf(&r->arena, fmt, ap) : err_message(code);
    json_t *body = extra && json_is_object(extra) ? extra : json_object();
    if (extra && body != extra) {
        json_decref(extra);
    }
    json_object_set_new(body, "errcode", json_string(err_errcode(code)));
    json_t *m = json_string(msg); /* NULL when msg echoes invalid UTF-8 */
    json_object_set_new(body, "error", m ? m : json_string(err_message(code)));
    req_json(r, err_status(code), body);
    r->err = code;
    return code;
}

int req_fail(struct req *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_v(r, code, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int req_fail_json(struct req *r, int code, json_t *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = fail_v(r, code, extra, fmt, ap);
    va_end(ap);
    return rc;
}

int req_park(struct req *r)
{
    r->state = REQ_STATE_PARKED;
    return REQ_PARKED;
}

void req_complete(struct req *r) { dispatch_complete(r); }

void req_continue(struct req *r, int (*fn)(struct req *r))
{
    r->cont = fn;
    r->state = REQ_STATE_QUEUED;
    r->on_continue(r);
}
