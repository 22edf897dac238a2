/*
 * Server name resolution: the spec's steps over injected lookups (see
 * fedresolve.h).
 */
#include "svc/fedresolve.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "core/id.h"

bool fed_is_ip_literal(const char *host)
{
    unsigned char buf[16];
    size_t n = strlen(host);
    if (n > 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < 64) {
        char inner[64];
        memcpy(inner, host + 1, n - 2);
        inner[n - 2] = '\0';
        return inet_pton(AF_INET6, inner, buf) == 1;
    }
    return inet_pton(AF_INET, host, buf) == 1;
}

bool fed_split_name(const char *name, char host[FED_NAME_MAX], int *port)
{
    *port = 0;
    if (!name || !id_server_name_valid(name, strlen(name))) {
        return false;
    }
    const char *colon = NULL;
    if (name[0] == '[') {
        const char *close = strchr(name, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(name, ':');
    }
    size_t host_len = colon ? (size_t)(colon - name) : strlen(name);
    if (host_len == 0 || host_len >= FED_NAME_MAX) {
        return false;
    }
    memcpy(host, name, host_len);
    host[host_len] = '\0';
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535) {
            return false;
        }
        *port = (int)p;
    }
    return true;
}

static void set(struct fed_target *t, const char *tls_name, int port, const char *host_header,
                int64_t expires_ms)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->tls_name, sizeof(t->tls_name), "%s", tls_name);
    t->port = port;
    snprintf(t->host_header, sizeof(t->host_header), "%s", host_header);
    t->expires_ms = expires_ms;
}

/* An SRV answer for `host` under each service name, newest first. */
static bool try_srv(const struct fed_lookups *lk, const char *host, struct fed_target *t,
                    int64_t expires_ms)
{
    static const char *const services[] = {"_matrix-fed._tcp.", "_matrix._tcp."};
    for (size_t i = 0; i < 2 && lk->srv; i++) {
        char name[FED_NAME_MAX + 32], target[FED_NAME_MAX];
        int port = 0;
        snprintf(name, sizeof(name), "%s%s", services[i], host);
        if (lk->srv(lk->ctx, name, target, &port) == 1 && port > 0 && target[0]) {
            /* The certificate and Host header stay those of `host`. */
            set(t, host, port, host, expires_ms);
            snprintf(t->connect_host, sizeof(t->connect_host), "%s", target);
            t->connect_port = port;
            return true;
        }
    }
    return false;
}

int fed_resolve(const char *server_name, const struct fed_lookups *lk, int64_t now_ms,
                struct fed_target *out)
{
    char host[FED_NAME_MAX];
    int port;
    if (!fed_split_name(server_name, host, &port)) {
        return -ERR_INVALID_PARAM;
    }
    /* 1. An IP literal; 2. a hostname with an explicit port. */
    if (fed_is_ip_literal(host) || port) {
        set(out, host, port ? port : FED_DEFAULT_PORT, server_name, now_ms + FED_STATIC_MS);
        return 0;
    }
    /* 3. Delegation through /.well-known/matrix/server. */
    char delegated[FED_NAME_MAX] = "";
    int64_t cache_ms = FED_WELLKNOWN_ERROR_MS;
    int wk = lk->wellknown ? lk->wellknown(lk->ctx, host, delegated, &cache_ms) : 0;
    if (cache_ms < 0) {
        cache_ms = 0;
    }
    if (cache_ms > FED_WELLKNOWN_MAX_MS) {
        cache_ms = FED_WELLKNOWN_MAX_MS;
    }
    char dhost[FED_NAME_MAX];
    int dport;
    if (wk == 1 && fed_split_name(delegated, dhost, &dport)) {
        int64_t until = now_ms + cache_ms;
        if (fed_is_ip_literal(dhost) || dport) {
            /* 3.1 and 3.2: the delegated name as given. */
            set(out, dhost, dport ? dport : FED_DEFAULT_PORT, delegated, until);
            return 0;
        }
        /* 3.3, 3.4: SRV of the delegated host; 3.5: its port 8448. */
        int64_t srv_until = until < now_ms + FED_SRV_MS ? until : now_ms + FED_SRV_MS;
        if (try_srv(lk, dhost, out, srv_until)) {
            return 0;
        }
        set(out, dhost, FED_DEFAULT_PORT, dhost, until);
        return 0;
    }
    /* 4, 5: SRV of the server name's host; 6: its port 8448. */
    int64_t until = now_ms + (cache_ms < FED_SRV_MS ? cache_ms : FED_SRV_MS);
    if (try_srv(lk, host, out, until)) {
        return 0;
    }
    set(out, host, FED_DEFAULT_PORT, host, until);
    return 0;
}
