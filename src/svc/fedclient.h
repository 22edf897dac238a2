/*
 * Outbound federation requests (spec: Server-Server API). Requests go out
 * on libcurl's multi interface from one thread of their own, with
 * connection reuse and HTTP/2 where the peer offers it, signed with the
 * X-Matrix Authorization header (core/xmatrix). Destinations are resolved
 * with the spec's discovery rules (svc/fedresolve: well-known delegation,
 * SRV, port 8448) on a resolver thread and cached, so a slow DNS answer
 * or well-known fetch never holds up transfers to other servers.
 *
 * TLS is verified against the system CAs plus federation.extra_ca_file;
 * federation.verify_tls: false turns checks off (test setups only).
 *
 * Two ways to call: fedclient_send completes on the client's thread
 * through a callback (keep it short: hand the work to a worker, e.g. with
 * req_continue); fedclient_call blocks the calling thread until the answer
 * or the timeout.
 */
#ifndef MYELIN_SVC_FEDCLIENT_H
#define MYELIN_SVC_FEDCLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/keys.h"
#include "svc/fedresolve.h"

struct fedclient;

struct fed_resp {
    long status; /* HTTP status, 0 when there was no answer */
    int err;     /* 0, or -ERR_UNAVAILABLE (unreachable, TLS failure, timeout),
                    -ERR_TOO_LARGE (answer over the limit), -ERR_INVALID_PARAM
                    (not a server name) */
    char *body;  /* the answer (NUL-terminated), NULL when none */
    size_t len;
};

/* Called once per request on the client's thread; resp is freed after it
 * returns (take body by setting resp->body = NULL). */
typedef void fed_done_fn(void *ctx, struct fed_resp *resp);

/*
 * Starts the client for `server_name` signing with `key` (both must
 * outlive it). NULL when the threads cannot start.
 */
struct fedclient *fedclient_new(const char *server_name, const struct signing_key *key,
                                bool verify_tls, const char *extra_ca_file);
/* Stops the threads: pending and later requests complete with
 * -ERR_UNAVAILABLE (at once), so nothing waits on a client shutting down.
 * fedclient_free stops it too and frees it. NULL is ignored. */
void fedclient_stop(struct fedclient *fc);
void fedclient_free(struct fedclient *fc);

/* Optional knobs: the largest answer kept (default 64 MiB). */
void fedclient_set_max_response(struct fedclient *fc, size_t bytes);

/*
 * Queues `method` `uri` (the path with its query string, already
 * percent-encoded) to `destination` with an optional JSON body, signed
 * when `sign`. timeout_ms bounds the whole exchange (0: 60 s). `done`
 * runs exactly once, also on failure.
 */
void fedclient_send(struct fedclient *fc, const char *destination, const char *method,
                    const char *uri, const json_t *body, bool sign, int timeout_ms,
                    fed_done_fn *done, void *ctx);

/* As fedclient_send, waiting for the answer. Returns resp->err; release
 * resp with fed_resp_release. */
int fedclient_call(struct fedclient *fc, const char *destination, const char *method,
                   const char *uri, const json_t *body, bool sign, int timeout_ms,
                   struct fed_resp *resp);
void fed_resp_release(struct fed_resp *resp);

/* The answer's JSON object, or NULL when it is not one (new reference). */
json_t *fed_resp_json(const struct fed_resp *resp);

/*
 * For handlers: parks `r`, sends the signed request, and when the answer
 * is in runs `cont` on a worker as the handler, with r->cont_data
 * pointing at a struct fed_resp whose body lives in r's arena. Returns
 * REQ_PARKED (return it from the handler).
 */
struct req;
int fedclient_park(struct req *r, const char *destination, const char *method,
                   const char *uri, const json_t *body, int timeout_ms,
                   int (*cont)(struct req *r));

/* Where `destination` resolves to now (cached or looked up; blocks). */
int fedclient_resolve(struct fedclient *fc, const char *destination, struct fed_target *out);

#endif
