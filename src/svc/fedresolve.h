/*
 * Server discovery for outbound federation (spec: Server-Server API
 * "Resolving server names"): turns a server name into where to connect,
 * which name the TLS certificate must carry (and SNI), and the Host
 * header. The decision follows the spec's steps in order: IP literal,
 * explicit port, /.well-known/matrix/server delegation (then within it
 * IP literal, explicit port, SRV _matrix-fed._tcp, SRV _matrix._tcp,
 * port 8448), SRV _matrix-fed._tcp, SRV _matrix._tcp, port 8448.
 *
 * The lookups (the well-known fetch and SRV queries) are passed in, so
 * the steps are tested with fakes; svc/fedclient supplies the real ones
 * and caches the result until `expires_ms`.
 */
#ifndef MYELIN_SVC_FEDRESOLVE_H
#define MYELIN_SVC_FEDRESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#define FED_NAME_MAX 256
#define FED_DEFAULT_PORT 8448

struct fed_target {
    char tls_name[FED_NAME_MAX];     /* host in the URL: certificate name and SNI
                                        (an IP literal, IPv6 in brackets) */
    int port;                        /* port in the URL */
    char connect_host[FED_NAME_MAX]; /* where to connect instead ("" = tls_name) */
    int connect_port;                /* with connect_host */
    char host_header[FED_NAME_MAX + 8];
    int64_t expires_ms;              /* cache until (wall clock) */
};

/* The m.server of a well-known answer: 1 with *delegated filled, 0 when
 * there is none (error, bad JSON, invalid name), *cache_ms how long
 * either answer may be kept. */
typedef int fed_wellknown_fn(void *ctx, const char *hostname, char delegated[FED_NAME_MAX],
                             int64_t *cache_ms);
/* An SRV lookup of `name` (e.g. "_matrix-fed._tcp.example.org"): 1 with
 * the chosen target host and port, 0 when there is no record. */
typedef int fed_srv_fn(void *ctx, const char *name, char target[FED_NAME_MAX], int *port);

struct fed_lookups {
    fed_wellknown_fn *wellknown;
    fed_srv_fn *srv;
    void *ctx;
};

/*
 * Splits a server name "host[:port]" (host a DNS name, IPv4 literal or
 * bracketed IPv6 literal) into host (brackets kept) and port (0 when
 * absent). False when it is not a valid server name.
 */
bool fed_split_name(const char *name, char host[FED_NAME_MAX], int *port);
/* Whether a host part is an IP literal (IPv4, or IPv6 in brackets). */
bool fed_is_ip_literal(const char *host);

/*
 * Resolves `server_name` at wall-clock time now_ms. Returns 0 with *out
 * filled, or -ERR_INVALID_PARAM when the name is not a server name.
 */
int fed_resolve(const char *server_name, const struct fed_lookups *lk, int64_t now_ms,
                struct fed_target *out);

/* Default and bounds of caching (spec: 24 h default, 48 h at most, errors
 * up to an hour). */
#define FED_WELLKNOWN_DEFAULT_MS (24LL * 3600 * 1000)
#define FED_WELLKNOWN_MAX_MS (48LL * 3600 * 1000)
#define FED_WELLKNOWN_ERROR_MS (3600LL * 1000)
/* An IP literal or explicit port needs no lookup; keep it a day anyway. */
#define FED_STATIC_MS (24LL * 3600 * 1000)
/* SRV results: an hour (the TTL is not read). */
#define FED_SRV_MS (3600LL * 1000)

#endif
