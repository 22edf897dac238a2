/*
 * Route table built from api/routes.def and the path matcher. Matching
 * walks the template and the raw path segment by segment without
 * allocating; only captured parameters are decoded into the arena. The
 * table is small (hundreds of lines) and the prefix test rejects most
 * routes after a few bytes, so a linear scan stays well under a
 * microsecond per request.
 */
#include "http/router.h"

#include <string.h>

#include "api/handlers.h"
#include "config.h"

#define ROUTE(m, p, h, a, rl, lim, fl) {(m), (p), h, (a), (rl), (lim), (fl), 0, #h},
static const struct route routes[] = {
#include "api/routes.def"
};
#undef ROUTE

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static const struct str client_v3 = STR_LIT("/_matrix/client/v3/");
static const struct str client_r0 = STR_LIT("/_matrix/client/r0/");

const struct route *router_routes(size_t *count)
{
    *count = N_ROUTES;
    return routes;
}

static const struct {
    const char *name;
    enum http_method m;
} method_names[] = {
    {"GET", HTTP_GET},       {"HEAD", HTTP_HEAD},       {"POST", HTTP_POST},
    {"PUT", HTTP_PUT},       {"DELETE", HTTP_DELETE},   {"OPTIONS", HTTP_OPTIONS},
    {"PATCH", HTTP_PATCH},
};

enum http_method router_method(const char *name)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (strcmp(name, method_names[i].name) == 0) {
            return method_names[i].m;
        }
    }
    return HTTP_OTHER;
}

const char *router_method_name(enum http_method m)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (method_names[i].m == m) {
            return method_names[i].name;
        }
    }
    return "OTHER";
}

unsigned router_resource_of(struct str path)
{
    if (str_starts_with(path, STR_LIT("/_matrix/client/v1/media/")) ||
        str_starts_with(path, STR_LIT("/_matrix/media/"))) {
        return RESOURCE_MEDIA;
    }
    if (str_starts_with(path, STR_LIT("/_matrix/client/")) ||
        str_starts_with(path, STR_LIT("/_synapse/")) ||
        str_eq(path, STR_LIT("/.well-known/matrix/client"))) {
        return RESOURCE_CLIENT;
    }
    if (str_starts_with(path, STR_LIT("/_matrix/federation/")) ||
        str_eq(path, STR_LIT("/.well-known/matrix/server"))) {
        return RESOURCE_FEDERATION;
    }
    if (str_starts_with(path, STR_LIT("/_matrix/key/"))) {
        return RESOURCE_KEYS;
    }
    if (str_eq(path, STR_LIT("/health"))) {
        return RESOURCE_HEALTH;
    }
    return 0;
}

/* Splits off the next '/'-separated segment of s starting at *pos (which
 * points just past a '/'). Returns false when s is exhausted. */
static bool next_segment(struct str s, size_t *pos, bool *done, struct str *seg)
{
    if (*done) {
        return false;
    }
    size_t start = *pos;
    size_t end = start;
    while (end < s.len && s.p[end] != '/') {
        end++;
    }
    *seg = (struct str){s.p + start, end - start};
    if (end >= s.len) {
        *done = true;
    } else {
        *pos = end + 1;
    }
    return true;
}

/*
 * Matches a template against a path, both starting with '/'. Captured raw
 * segments go to raw[]; returns true on a match.
 */
bool router__match_template(struct str tmpl, struct str path, struct str *raw, int *n_raw)
{
    if (tmpl.len == 0 || path.len == 0 || tmpl.p[0] != '/' || path.p[0] != '/') {
        return false;
    }
    size_t tp = 1, pp = 1;
    bool tdone = false, pdone = false;
    int n = 0;
    struct str ts, ps;
    while (next_segment(tmpl, &tp, &tdone, &ts)) {
        bool is_param = ts.len >= 2 && ts.p[0] == '{' && ts.p[ts.len - 1] == '}';
        bool optional = is_param && ts.len >= 3 && ts.p[ts.len - 2] == '?';
        if (!next_segment(path, &pp, &pdone, &ps)) {
            /* The path ended: only an optional final parameter may remain. */
            if (optional && tdone && n < REQ_MAX_PARAMS) {
                raw[n++] = (struct str){"", 0};
                *n_raw = n;
                return true;
            }
            return false;
        }
        if (is_param) {
            if (n >= REQ_MAX_PARAMS || (ps.len == 0 && !optional)) {
                return false;
            }
            raw[n++] = ps;
        } else if (!str_eq(ts, ps)) {
            return false;
        }
    }
    if (!pdone) {
        return false; /* the path has more segments than the template */
    }
    *n_raw = n;
    return true;
}

static bool match_route(const struct route *rt, struct str path, struct str *raw, int *n_raw)
{
    struct str tmpl = str_from(rt->path);
    if ((rt->flags & F_R0) && str_starts_with(path, client_r0) &&
        str_starts_with(tmpl, client_v3)) {
        /* Legacy prefix: compare what follows "/_matrix/client/{v3,r0}". */
        size_t cut = client_v3.len - 1;
        return router__match_template((struct str){tmpl.p + cut, tmpl.len - cut},
                              (struct str){path.p + cut, path.len - cut}, raw, n_raw);
    }
    return router__match_template(tmpl, path, raw, n_raw);
}

static enum router_result find(unsigned method, struct str path, unsigned resources,
                               const struct route **out, struct str *raw, int *n_raw)
{
    bool path_seen = false;
    unsigned want = method == HTTP_HEAD ? (HTTP_HEAD | HTTP_GET) : method;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const struct route *rt = &routes[i];
        unsigned res = router_resource_of(str_from(rt->path));
        if (res != RESOURCE_HEALTH && !(res & resources)) {
            continue;
        }
        int n = 0;
        struct str tmp[REQ_MAX_PARAMS];
        if (!match_route(rt, path, tmp, &n)) {
            continue;
        }
        if (!(rt->method & want)) {
            path_seen = true;
            continue;
        }
        memcpy(raw, tmp, sizeof(struct str) * (size_t)n);
        *n_raw = n;
        *out = rt;
        return ROUTER_MATCH;
    }
    return path_seen ? ROUTER_NO_METHOD : ROUTER_NO_PATH;
}

enum router_result router_match(unsigned method, struct str path, unsigned resources,
                                struct arena *arena, const struct route **out,
                                struct str *params, int *n_params)
{
    struct str raw[REQ_MAX_PARAMS];
    int n = 0;
    enum router_result res = find(method, path, resources, out, raw, &n);
    if (res == ROUTER_NO_PATH && path.len > 1 && path.p[path.len - 1] == '/') {
        /* Clients add a trailing slash to some paths ("/pushrules/"). */
        res = find(method, (struct str){path.p, path.len - 1}, resources, out, raw, &n);
    }
    if (res != ROUTER_MATCH) {
        return res;
    }
    for (int i = 0; i < n; i++) {
        char *dst = arena_alloc(arena, raw[i].len + 1);
        long len = str_percent_decode(raw[i], dst);
        if (len < 0) {
            return ROUTER_BAD_PARAM;
        }
        dst[len] = '\0';
        params[i] = (struct str){dst, (size_t)len};
    }
    *n_params = n;
    return ROUTER_MATCH;
}
