/*
 * The route table and path matching. Every endpoint is one line of
 * src/api/routes.def: method, path template, handler, auth kind, rate-limit
 * class, body limit and flags. Templates are literal segments and
 * `{name}` captures of one segment; a final `{name?}` may be absent or
 * empty (an empty state key with or without the trailing slash).
 * Captured segments are percent-decoded into the request arena.
 */
#ifndef MYELIN_HTTP_ROUTER_H
#define MYELIN_HTTP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/arena.h"
#include "base/str.h"
#include "http/req.h"

enum route_auth {
    AUTH_NONE,      /* no credentials looked at */
    AUTH_OPTIONAL,  /* a user token is used when present */
    AUTH_USER,      /* a registered user's access token (not guests) */
    AUTH_GUEST,     /* a user or guest access token */
    AUTH_ADMIN,     /* a server admin's access token */
    AUTH_SERVER,    /* federation: a verified X-Matrix signature */
    AUTH_APPSERVICE /* an application service's as_token */
};

enum route_ratelimit {
    RL_NONE,
    RL_LOGIN,
    RL_REGISTER,
    RL_MESSAGE,
    RL_JOIN,
    RL_MEDIA,
    RL_FEDERATION,
};

enum route_flags {
    F_INLINE = 1 << 0, /* cheap, touches no database: run on the I/O thread */
    F_R0 = 1 << 1,     /* also served under the legacy /_matrix/client/r0 prefix */
    F_JSON = 1 << 2,   /* the body must be a JSON object (empty means {}) */
    F_RAW = 1 << 3,    /* the body is raw bytes (media uploads) */
};

typedef int route_handler_fn(struct req *r);

struct route {
    unsigned method;       /* enum http_method bits */
    const char *path;      /* template */
    route_handler_fn *handler;
    enum route_auth auth;
    enum route_ratelimit ratelimit;
    size_t body_limit;     /* bytes; 0 = the configured default */
    unsigned flags;
    unsigned resource;     /* enum config_resource the route belongs to */
    const char *name;      /* handler name, for the access log */
};

enum router_result {
    ROUTER_MATCH = 0,
    ROUTER_NO_PATH = 1,    /* no template matches: 404 M_UNRECOGNIZED */
    ROUTER_NO_METHOD = 2,  /* a template matches, the method does not: 405 */
    ROUTER_BAD_PARAM = 3,  /* a path parameter has a malformed %-escape */
};

/*
 * Finds the route for `method` and the raw `path`, restricted to routes
 * whose resource is in `resources`. On ROUTER_MATCH sets *out and fills
 * params/n_params (decoded into `arena`).
 */
enum router_result router_match(unsigned method, struct str path, unsigned resources,
                                struct arena *arena, const struct route **out,
                                struct str *params, int *n_params);

/* The resource bit a path belongs to (client, federation, media, keys, health). */
unsigned router_resource_of(struct str path);

/* Parses an HTTP method name. */
enum http_method router_method(const char *name);
/* The name of a method ("GET"...), "OTHER" for HTTP_OTHER. */
const char *router_method_name(enum http_method m);

/*
 * Module-internal, exposed for tests: matches one template against a raw
 * path, storing the raw captured segments in raw[] (REQ_MAX_PARAMS).
 */
bool router__match_template(struct str tmpl, struct str path, struct str *raw, int *n_raw);

/* Every route, for introspection and tests. */
const struct route *router_routes(size_t *count);

#endif
