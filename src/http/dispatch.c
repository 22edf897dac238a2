/*
 * The request pipeline shared by the libmicrohttpd front end (server.c)
 * and in-process callers. Order of checks, which decides which error a
 * client sees first: OPTIONS -> route (404/405) -> path parameters ->
 * declared body size -> [body arrives] -> body size -> JSON -> auth ->
 * handler. Body checks precede authentication so an oversized or broken
 * body costs no database work.
 */
#include "http/dispatch.h"

#include <stdlib.h>

#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "config.h"
#include "http/router.h"
#include "svc/auth.h"
#include "svc/ratelimit.h"
#include "svc/room.h"
#include "svc/srv.h"

size_t dispatch_body_limit(const struct req *r)
{
    if (r->route && r->route->body_limit) {
        return r->route->body_limit;
    }
    if (r->srv && r->srv->cfg && r->srv->cfg->max_request_bytes) {
        return r->srv->cfg->max_request_bytes;
    }
    return 1024 * 1024;
}

bool dispatch_is_inline(const struct req *r)
{
    return r->route && (r->route->flags & F_INLINE);
}

bool dispatch_begin(struct req *r, const char *method, struct str path, unsigned resources)
{
    r->method = router_method(method);
    r->path = arena_str(&r->arena, path);
    r->listener_resources = resources;
    if (r->method == HTTP_OPTIONS) {
        /* CORS preflight (spec "Web Browser Clients"): any path, no auth. */
        req_json(r, 200, json_object());
        return false;
    }
    enum router_result res = router_match(r->method, r->path, resources, &r->arena, &r->route,
                                          r->param, &r->n_params);
    switch (res) {
    case ROUTER_MATCH:
        break;
    case ROUTER_NO_METHOD:
        req_fail(r, -ERR_BAD_METHOD, NULL);
        return false;
    case ROUTER_BAD_PARAM:
        req_fail(r, -ERR_INVALID_PARAM, "Malformed percent-encoding in the path");
        return false;
    case ROUTER_NO_PATH:
    default:
        req_fail(r, -ERR_UNRECOGNIZED, NULL);
        return false;
    }
    const char *cl = req_header(r, "Content-Length");
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (*end == '\0' && n > dispatch_body_limit(r)) {
            req_fail(r, -ERR_TOO_LARGE, "Request body too large (limit %zu bytes)",
                     dispatch_body_limit(r));
            return false;
        }
    }
    r->state = REQ_STATE_BODY;
    return true;
}

static int parse_body(struct req *r)
{
    if (r->body_too_large) {
        return req_fail(r, -ERR_TOO_LARGE, "Request body too large (limit %zu bytes)",
                        dispatch_body_limit(r));
    }
    if (!(r->route->flags & F_JSON)) {
        return 0;
    }
    if (r->body.len == 0) {
        r->json = json_arena(&r->arena, json_object());
        return 0;
    }
    const char *why = NULL;
    json_t *j = NULL;
    int rc = json_parse_input(r->body.p, r->body.len, JSON_MAX_DEPTH, &j, &why);
    if (rc) {
        return req_fail(r, rc, "%s", why);
    }
    json_arena(&r->arena, j);
    if (!json_is_object(j)) {
        return req_fail(r, -ERR_BAD_JSON, "The request body must be a JSON object");
    }
    r->json = j;
    return 0;
}

/* Continuation that keeps the response the handler already set. */
static int keep_response(struct req *r) { return r->status ? 0 : -ERR_UNKNOWN; }

/* Renders the outcome of a handler or continuation. */
static int finish(struct req *r, int rc)
{
    if (rc == REQ_PARKED) {
        return REQ_PARKED;
    }
    if (r->room_job) {
        /* Events this request queued point into its arena: it may not
         * answer (and be freed) before they are written, even on error. */
        rc = room_wait_durable(r, keep_response);
        if (rc == REQ_PARKED) {
            return REQ_PARKED;
        }
    }
    if (rc < 0 && r->status == 0) {
        req_fail(r, rc, NULL);
    }
    if (r->status == 0) {
        LOG_ERROR("http", "%s set no response", r->route->name);
        req_fail(r, -ERR_UNKNOWN, NULL);
    }
    if (r->status >= 500) {
        LOG_WARN("http", "%s failed: %d %s", r->route->name, r->status, err_errcode(r->err));
    }
    r->state = REQ_STATE_DONE;
    return 0;
}

int dispatch_run(struct req *r)
{
    int rc = parse_body(r);
    if (rc == 0) {
        rc = auth_request(r);
    }
    if (rc == 0) {
        rc = ratelimit_check(r);
    }
    if (rc == 0) {
        rc = r->route->handler(r);
    }
    return finish(r, rc);
}

int dispatch_continue(struct req *r, int (*fn)(struct req *r))
{
    return finish(r, fn(r));
}

void dispatch_complete(struct req *r)
{
    r->state = REQ_STATE_DONE;
    if (r->on_complete) {
        r->on_complete(r);
    }
}

void dispatch_local(struct req *r, const char *method, const char *path, const char *query,
                    const char *const *headers, const void *body, size_t body_len,
                    unsigned resources)
{
    int n = 0;
    while (headers && headers[n * 2]) {
        n++;
    }
    r->headers = ARENA_ARRAY(&r->arena, struct req_header, (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        r->headers[i].name = arena_strdup(&r->arena, headers[i * 2]);
        r->headers[i].value = arena_strdup(&r->arena, headers[i * 2 + 1]);
    }
    r->n_headers = n;
    if (query) {
        req_parse_query(r, str_from(query));
        buf_append(&r->raw_query, query, strlen(query));
    }
    if (!dispatch_begin(r, method, str_from(path), resources)) {
        return;
    }
    if (body_len > dispatch_body_limit(r)) {
        r->body_too_large = true;
    } else {
        buf_append(&r->body, body, body_len);
    }
    dispatch_run(r);
}
