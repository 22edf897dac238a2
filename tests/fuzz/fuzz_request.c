/*
 * Fuzz target: the request pipeline without sockets. The input is split
 * into method, path, query, one header value and body at newlines, then
 * dispatched in-process. Every request must end with a response whose
 * status is set and, for errors, whose body is a Matrix error object.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "config.h"
#include "http/dispatch.h"
#include "svc/srv.h"

static struct config cfg;
static struct srv srv;
static int ready;

/* Splits the next line off [*p, end) into a NUL-terminated copy. */
static char *take_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    const uint8_t *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        config_defaults(&cfg, "fuzz.example", "/tmp");
        srv.cfg = &cfg;
        ready = 1;
    }
    const uint8_t *p = data, *end = data + size;
    char *method = take_line(&p, end);
    char *path = take_line(&p, end);
    char *query = take_line(&p, end);
    char *clen = take_line(&p, end);
    const char *headers[] = {"Content-Length", clen, NULL};

    struct req r;
    req_init(&r, &srv);
    dispatch_local(&r, method, path, query[0] ? query : NULL, clen[0] ? headers : NULL, p,
                   (size_t)(end - p),
                   RESOURCE_CLIENT | RESOURCE_FEDERATION | RESOURCE_MEDIA | RESOURCE_KEYS);
    if (r.status < 100 || r.status > 599) {
        abort();
    }
    if (r.status >= 400) {
        json_error_t e;
        json_t *j = json_loadb(r.resp.p, r.resp.len, 0, &e);
        if (!j || !json_is_string(json_object_get(j, "errcode")) ||
            !json_is_string(json_object_get(j, "error"))) {
            abort();
        }
        json_decref(j);
    }
    req_release(&r);
    free(method);
    free(path);
    free(query);
    free(clen);
    return 0;
}
