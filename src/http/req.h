/*
 * One HTTP request as handlers see it: the matched route, decoded path
 * parameters, query arguments, selected headers, the body (raw and parsed
 * JSON) and the response being built. Everything hangs off r->arena and is
 * released when the connection finishes the request.
 *
 * A handler is `int h(struct req *r)`. It returns 0 after setting a
 * response (req_json, req_text, ...), a negative ERR_* via req_fail, or
 * REQ_PARKED after req_park when the answer comes later (long polls).
 */
#ifndef MYELIN_HTTP_REQ_H
#define MYELIN_HTTP_REQ_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "base/buf.h"
#include "base/str.h"

struct srv;
struct route;
struct store_conn;

enum http_method {
    HTTP_GET = 1 << 0,
    HTTP_HEAD = 1 << 1,
    HTTP_POST = 1 << 2,
    HTTP_PUT = 1 << 3,
    HTTP_DELETE = 1 << 4,
    HTTP_OPTIONS = 1 << 5,
    HTTP_PATCH = 1 << 6,
    HTTP_OTHER = 1 << 7,
};

#define REQ_MAX_PARAMS 8

enum pw_state {
    PW_NONE = 0, /* nothing started */
    PW_HASHED,   /* r->pw.hash holds the new hash */
    PW_OK,       /* the password matched */
    PW_BAD,      /* the password did not match */
    PW_FAILED,   /* hashing failed (memory) */
};
#define REQ_PARKED 1

struct req_arg {
    struct str key;
    struct str value;
};

struct req_header {
    const char *name;
    const char *value;
};

struct req {
    struct arena arena;
    struct srv *srv;
    struct store_conn *db;      /* the worker thread's connection; NULL inline */
    const struct route *route;
    enum http_method method;
    struct str path;            /* raw (still percent-encoded) path */
    struct str param[REQ_MAX_PARAMS]; /* decoded path parameters, in order */
    int n_params;
    struct req_arg *query;      /* decoded query arguments, in order */
    int n_query;
    struct buf raw_query;       /* the query string as sent, without '?' (X-Matrix signs it) */
    struct req_header *headers; /* request headers copied at arrival */
    int n_headers;
    const char *remote_addr;    /* "ip" of the peer */
    unsigned listener_resources;
    struct buf body;            /* raw body bytes */
    bool body_too_large;
    json_t *json;               /* parsed body when the route takes JSON */
    int64_t start_ns;

    /* Who is calling, filled by authentication (NULLs when anonymous). */
    struct {
        const char *server;     /* AUTH_SERVER: the verified origin server */
        const char *user_id;
        const char *device_id;
        const char *token_hash; /* hex SHA-256 of the access token used */
        bool is_guest;
        bool is_admin;
    } auth;

    /* The response. */
    int status;
    const char *content_type;
    struct buf resp;
    struct req_header *resp_headers;
    int n_resp_headers;
    int cap_resp_headers;
    int err;                    /* ERR_* code of a failed request, for the log */

    /* Outcome of svc/password's asynchronous hashing, for re-entered handlers. */
    struct {
        int state;  /* enum pw_state */
        char *hash; /* PW_HASHED: the argon2id string (arena) */
    } pw;

    void *room_job;      /* the last event this request queued (svc/room) */
    const char *result;  /* a value a continuation answers with */
    void *cont_data;     /* what a continuation picks up (e.g. a remote server's answer) */

    /* Owned by the HTTP layer. */
    void *conn;                 /* the MHD connection, NULL when dispatched locally */
    void *listener;
    void (*on_complete)(struct req *r); /* resumes the connection */
    void (*on_continue)(struct req *r); /* requeues to a worker (req_continue) */
    int (*cont)(struct req *r);         /* the continuation to run there */
    int state;                  /* enum req_state (dispatch.h) */
    struct req *next_job;       /* worker queue link */
};

/* Initialises a request for `srv` (arena, buffers, start time). */
void req_init(struct req *r, struct srv *srv);
/* Releases everything the request owns (arena cleanups, buffers). */
void req_release(struct req *r);
/* Parses "a=b&c=d" (percent- and plus-decoded) into r->query. */
void req_parse_query(struct req *r, struct str query);
/* Appends one query argument (raw, still percent-encoded). */
void req_add_query_raw(struct req *r, const char *key, const char *value);

/* ---- reading the request ---- */

/* The first query argument called `key`, or NULL. */
const char *req_query(const struct req *r, const char *key);
/* A request header by case-insensitive name, or NULL. */
const char *req_header(const struct req *r, const char *name);

/* ---- building the response ---- */

/* Sets a JSON response; steals the reference to `body`. Returns 0. */
int req_json(struct req *r, int status, json_t *body);
/*
 * Starts a JSON response the handler serialises itself (large bodies
 * assembled from cached JSON text): sets the status and the JSON content
 * type and returns the emptied response buffer, which the handler fills
 * with one complete JSON value.
 */
struct buf *req_json_raw(struct req *r, int status);
/* Sets a response of raw bytes with a content type (copied). Returns 0. */
int req_bytes(struct req *r, int status, const char *content_type, const void *data, size_t len);
/* Adds a response header; both strings must live as long as the request
 * (literals or arena copies). */
void req_add_header(struct req *r, const char *name, const char *value);

/*
 * Sets the Matrix error response for `code` (negative ERR_*) with a
 * printf-style message (NULL for the default) and returns `code`, so a
 * handler can `return req_fail(r, -ERR_FORBIDDEN, "not in room %s", id);`.
 */
int req_fail(struct req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* As req_fail, with extra fields merged into the error object (stolen). */
int req_fail_json(struct req *r, int code, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- parked requests ---- */

/*
 * Parks the request: the handler returns REQ_PARKED and the connection
 * waits without a thread. Later, any thread fills the response and calls
 * req_complete(r) exactly once.
 */
int req_park(struct req *r);
void req_complete(struct req *r);
/*
 * Hands a parked request back to a worker, which runs fn(r) with the
 * worker's database connection as if it were the handler (it may answer,
 * fail, or park again). Callable from any thread.
 */
void req_continue(struct req *r, int (*fn)(struct req *r));

/* Monotonic nanoseconds, for timings. */
int64_t req_now_ns(void);
/* Wall-clock milliseconds since the epoch. */
int64_t req_now_ms(void);

#endif
