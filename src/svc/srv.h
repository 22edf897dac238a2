/*
 * The running server: everything a request may need that outlives it.
 * One `struct srv` exists per process, created by `myelin serve` and passed
 * down explicitly (no global mutable state). Handlers reach it as r->srv.
 */
#ifndef MYELIN_SVC_SRV_H
#define MYELIN_SVC_SRV_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "core/keys.h"

struct store;
struct http_server;
struct auth_cache;
struct cpupool;
struct uia;
struct ratelimit;
struct rooms;
struct nonces;
struct notify;
struct push;
struct streams;
struct presence;
struct typing;
struct lazy_members;
struct fedclient;
struct keyring;
struct fedqueue;

struct srv {
    struct config *cfg;
    struct store *store;
    struct http_server *http;
    struct signing_key key;   /* this server's ed25519 signing key */
    struct auth_cache *auth;  /* access token cache (svc/auth.h) */
    struct cpupool *cpu;      /* CPU-heavy work off the request workers (svc/cpupool.h) */
    struct uia *uia;          /* user-interactive auth sessions (svc/uia.h) */
    struct ratelimit *rl;     /* request rate limiting (svc/ratelimit.h) */
    struct rooms *rooms;      /* room cache and event persistence (svc/room.h) */
    struct nonces *nonces;    /* shared-secret registration nonces (svc/nonce.h) */
    struct notify *notify;    /* wake-ups of parked long polls (svc/notify.h) */
    struct push *push;        /* push rules and push actions (svc/push.h) */
    struct streams *streams;  /* /sync stream positions (svc/streams.h) */
    struct presence *presence; /* presence of local users (svc/presence.h) */
    struct typing *typing;    /* typing notifications (svc/typing.h) */
    struct lazy_members *lazy_members; /* lazy-loaded members sent per device */
    struct fedclient *fed;    /* outbound federation requests (svc/fedclient.h) */
    struct keyring *keyring;  /* other servers' signing keys (svc/keyring.h) */
    struct fedqueue *fedqueue; /* outbound federation transactions (svc/fedqueue.h) */
    int64_t start_ts;         /* ms since the epoch */
    atomic_bool stopping;     /* set once shutdown begins */
};

#endif
