/*
 * Request authentication between servers (spec: Server-Server API
 * "Request Authentication"): the `Authorization: X-Matrix ...` header.
 * A request is signed by signing the JSON object {method, uri, origin,
 * destination, content?} with the origin's key; the header carries the
 * origin, destination, key ID and signature. Parsing follows RFC 9110
 * section 11.4 as the spec asks (case-insensitive names, any order,
 * quoted or token values, backslash escapes, spaces and tabs around
 * commas, unknown parameters ignored, colons allowed unquoted).
 *
 * Pure: no I/O. svc/fedclient signs outbound requests; http/dispatch
 * checks inbound ones with the key svc/keyring fetched.
 */
#ifndef MYELIN_CORE_XMATRIX_H
#define MYELIN_CORE_XMATRIX_H

#include <jansson.h>

#include "base/arena.h"
#include "core/keys.h"

struct xmatrix {
    char *origin;
    char *destination; /* NULL when the sender left it out (pre-v1.3) */
    char *key;         /* "ed25519:..." */
    char *sig;         /* unpadded base64 */
};

/* Parses an Authorization header value into arena copies. Returns 0, or
 * -ERR_UNAUTHORIZED when it is not X-Matrix or lacks origin, key or sig. */
int xmatrix_parse(struct arena *a, const char *header, struct xmatrix *out);

/*
 * The Authorization header value for a request from `origin` to
 * `destination` (`uri`: the path with its query string, as sent),
 * signed with `key`; `content` is the JSON body or NULL when there is
 * none. Returns an arena string, or NULL when the content has no
 * canonical encoding.
 */
char *xmatrix_sign(struct arena *a, const struct signing_key *key, const char *origin,
                   const char *destination, const char *method, const char *uri,
                   const json_t *content);

/*
 * Checks a parsed header against the request: the signature of x->origin
 * with public key `pk` over {method, uri, origin, destination, content}.
 * `destination` is this server's name (what the signer must have named).
 * Returns 0, or -ERR_UNAUTHORIZED.
 */
int xmatrix_verify(const struct xmatrix *x, const char *destination, const char *method,
                   const char *uri, const json_t *content,
                   const unsigned char pk[KEYS_PUBLIC_BYTES]);

#endif
