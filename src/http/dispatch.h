/*
 * The request pipeline, independent of the transport: route lookup,
 * OPTIONS and CORS, body limits, JSON intake, authentication, the handler
 * and error rendering. server.c drives it from libmicrohttpd; tests and
 * fuzzers drive it directly with dispatch_local.
 */
#ifndef MYELIN_HTTP_DISPATCH_H
#define MYELIN_HTTP_DISPATCH_H

#include <stdbool.h>

#include "http/req.h"

enum req_state {
    REQ_STATE_NEW = 0,
    REQ_STATE_BODY,    /* receiving the body */
    REQ_STATE_QUEUED,  /* waiting for or running on a worker */
    REQ_STATE_PARKED,  /* long poll: waiting for an event, no thread held */
    REQ_STATE_DONE,    /* response ready to send */
};

/*
 * Starts a request once the method, raw path, headers and query are known.
 * Returns true when the request needs its body and then dispatch_run;
 * false when the response is already set (OPTIONS, unknown path, wrong
 * method, malformed path parameter, declared body too large).
 */
bool dispatch_begin(struct req *r, const char *method, struct str path, unsigned resources);

/* The largest body the matched route accepts. */
size_t dispatch_body_limit(const struct req *r);

/* True when the matched route runs on the I/O thread (no database). */
bool dispatch_is_inline(const struct req *r);

/*
 * Runs the request: body checks and JSON parsing, authentication, the
 * handler, error rendering. Returns 0 when the response is set, or
 * REQ_PARKED when the handler parked it (req_complete comes later).
 */
int dispatch_run(struct req *r);

/* Runs a continuation queued by req_continue, with the same error
 * handling as dispatch_run. */
int dispatch_continue(struct req *r, int (*fn)(struct req *r));

/* Called through req_complete: hands a finished parked request back. */
void dispatch_complete(struct req *r);

/*
 * Runs a whole request in-process (tests, fuzzing): `query` may be NULL,
 * headers is a NULL-terminated name/value list. The response is in
 * r->status, r->resp. Parked requests are not supported here.
 */
void dispatch_local(struct req *r, const char *method, const char *path, const char *query,
                    const char *const *headers, const void *body, size_t body_len,
                    unsigned resources);

#endif
