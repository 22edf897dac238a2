/*
 * Access-token authentication with an in-memory cache.
 *
 * The cache maps a token's hex SHA-256 to who it belongs to. It is filled
 * on a miss from the database and is bounded: past AUTH_CACHE_MAX entries
 * it is emptied and refills with the tokens actually in use. Every path
 * that revokes tokens evicts them here before answering, so the cache
 * never serves a revoked token.
 */
#include "svc/auth.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "core/id.h"
#include "core/xmatrix.h"
#include "http/router.h"
#include "store/store.h"
#include "svc/fedqueue.h"
#include "svc/keyring.h"
#include "svc/srv.h"

#define AUTH_CACHE_MAX 65536
#define AUTH_TOUCH_INTERVAL_MS (5 * 60 * 1000)

struct auth_entry {
    char hash[65];
    char *user_id;
    char *device_id;
    int64_t expires_ts;
    int64_t last_touch_ms;
    bool is_guest;
    bool is_admin;
};

struct auth_cache {
    pthread_mutex_t mu;
    struct map by_hash; /* hash -> struct auth_entry * (key points into the entry) */
    /* Bumped by every eviction. A lookup that read the database before an
     * eviction must not cache what it read: the token may be revoked. */
    uint64_t generation;
};

struct auth_cache *auth_cache_new(void)
{
    struct auth_cache *c = xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    map_init(&c->by_hash);
    return c;
}

static void entry_free(struct auth_entry *e)
{
    free(e->user_id);
    free(e->device_id);
    free(e);
}

static void clear_locked(struct auth_cache *c)
{
    size_t i = 0;
    const struct map_entry *me;
    while (map_next(&c->by_hash, &i, &me)) {
        entry_free(me->value);
    }
    map_release(&c->by_hash);
    map_init(&c->by_hash);
}

void auth_cache_free(struct auth_cache *c)
{
    if (!c) {
        return;
    }
    clear_locked(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void auth_cache_evict_hash(struct auth_cache *c, const char *token_hash)
{
    pthread_mutex_lock(&c->mu);
    c->generation++;
    struct auth_entry *e = map_del(&c->by_hash, str_from(token_hash));
    pthread_mutex_unlock(&c->mu);
    if (e) {
        entry_free(e);
    }
}

/* Evicts entries matching user (and device, unless NULL): one pass to
 * collect them, then deletions, since deleting moves entries. Linear, but
 * revocations are rare next to lookups. */
static void evict_matching(struct auth_cache *c, const char *user_id, const char *device_id)
{
    pthread_mutex_lock(&c->mu);
    c->generation++;
    size_t n = 0;
    struct auth_entry **victims = xcalloc(c->by_hash.count + 1, sizeof(*victims));
    size_t i = 0;
    const struct map_entry *me;
    while (map_next(&c->by_hash, &i, &me)) {
        struct auth_entry *e = me->value;
        if (strcmp(e->user_id, user_id) == 0 &&
            (!device_id || strcmp(e->device_id, device_id) == 0)) {
            victims[n++] = e;
        }
    }
    for (size_t k = 0; k < n; k++) {
        map_del(&c->by_hash, str_from(victims[k]->hash));
        entry_free(victims[k]);
    }
    pthread_mutex_unlock(&c->mu);
    free(victims);
}

void auth_cache_evict_device(struct auth_cache *c, const char *user_id, const char *device_id)
{
    evict_matching(c, user_id, device_id);
}

void auth_cache_evict_user(struct auth_cache *c, const char *user_id)
{
    evict_matching(c, user_id, NULL);
}

void auth_token_hash(const char *token, char out[65])
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), digest);
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

/* "myt_" + 43 URL-safe base64 characters of 32 random bytes. */
static char *new_token(struct arena *a, const char *prefix)
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    char b64[64];
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    return arena_printf(a, "%s%s", prefix, b64);
}

char *auth_new_device_id(struct arena *arena)
{
    char *id = arena_alloc(arena, 11);
    for (int i = 0; i < 10; i++) {
        id[i] = (char)('A' + randombytes_uniform(26));
    }
    id[10] = '\0';
    return id;
}

int auth_issue_tokens(struct req *r, const char *user_id, const char *device_id, bool refresh,
                      char **access_token, char **refresh_token, int64_t *expires_in_ms)
{
    int64_t now = req_now_ms();
    char *access = new_token(&r->arena, "myt_");
    char access_hash[65];
    auth_token_hash(access, access_hash);
    char *rtoken = NULL;
    char rhash[65] = "";
    int rc = 0;
    if (refresh) {
        rtoken = new_token(&r->arena, "myr_");
        auth_token_hash(rtoken, rhash);
        rc = store_refresh_add(r->db, rhash, user_id, device_id, now);
    }
    if (rc == 0) {
        rc = store_token_add(r->db, access_hash, user_id, device_id, now,
                             refresh ? now + AUTH_REFRESHABLE_LIFETIME_MS : 0,
                             refresh ? rhash : NULL);
    }
    if (rc < 0) {
        return rc;
    }
    *access_token = access;
    if (refresh_token) {
        *refresh_token = rtoken;
    }
    if (expires_in_ms) {
        *expires_in_ms = refresh ? AUTH_REFRESHABLE_LIFETIME_MS : 0;
    }
    return 0;
}

/* The bearer token of the request, or NULL. */
static const char *request_token(struct req *r)
{
    const char *h = req_header(r, "Authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) == 0) {
            h += 7;
            while (*h == ' ') {
                h++;
            }
            return *h ? h : NULL;
        }
        return NULL;
    }
    /* Deprecated in v1.11 but still accepted (spec "Using access tokens"). */
    const char *q = req_query(r, "access_token");
    return q && *q ? q : NULL;
}

static int unknown_token(struct req *r, bool soft_logout)
{
    return req_fail_json(r, -ERR_UNKNOWN_TOKEN,
                         json_pack("{s:b}", "soft_logout", soft_logout),
                         soft_logout ? "Access token has expired" : "Unknown access token");
}

/* Copies the cached identity into the request arena. Caller holds the lock. */
static void fill_auth(struct req *r, const struct auth_entry *e)
{
    r->auth.user_id = arena_strdup(&r->arena, e->user_id);
    r->auth.device_id = arena_strdup(&r->arena, e->device_id);
    r->auth.token_hash = arena_strdup(&r->arena, e->hash);
    r->auth.is_guest = e->is_guest;
    r->auth.is_admin = e->is_admin;
}

static int resolve(struct req *r, const char *token)
{
    struct auth_cache *c = r->srv->auth;
    char hash[65];
    auth_token_hash(token, hash);
    int64_t now = req_now_ms();
    int64_t expires = 0;
    bool touch = false;

    pthread_mutex_lock(&c->mu);
    uint64_t generation = c->generation;
    struct auth_entry *e = map_get(&c->by_hash, str_from(hash));
    if (e) {
        fill_auth(r, e);
        expires = e->expires_ts;
        if (now - e->last_touch_ms > AUTH_TOUCH_INTERVAL_MS) {
            e->last_touch_ms = now;
            touch = true;
        }
    }
    pthread_mutex_unlock(&c->mu);

    if (!e) {
        if (!r->db) {
            return req_fail(r, -ERR_UNKNOWN, "Authentication needs the database");
        }
        struct store_token t;
        int rc = store_token_lookup(r->db, &r->arena, hash, &t);
        if (rc == -ERR_NOT_FOUND) {
            return unknown_token(r, false);
        }
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        if (t.deactivated) {
            return unknown_token(r, false);
        }
        struct auth_entry *n = xcalloc(1, sizeof(*n));
        memcpy(n->hash, hash, sizeof(n->hash));
        n->user_id = xstrdup(t.user_id);
        n->device_id = xstrdup(t.device_id);
        n->expires_ts = t.expires_ts;
        n->is_guest = t.is_guest;
        n->is_admin = t.is_admin;
        n->last_touch_ms = now;
        touch = true;
        fill_auth(r, n);
        pthread_mutex_lock(&c->mu);
        struct auth_entry *old = NULL;
        if (c->generation == generation) {
            if (c->by_hash.count >= AUTH_CACHE_MAX) {
                clear_locked(c);
            }
            old = map_put(&c->by_hash, str_from(n->hash), n);
            n = NULL;
        }
        pthread_mutex_unlock(&c->mu);
        if (old) {
            entry_free(old);
        }
        if (n) {
            entry_free(n); /* an eviction raced with this lookup: do not cache */
        }
        expires = t.expires_ts;
    }
    if (expires && now >= expires) {
        r->auth.user_id = NULL;
        r->auth.device_id = NULL;
        return unknown_token(r, true);
    }
    if (touch && r->db) {
        /* Best effort: a failed last-seen update must not fail the request. */
        store_device_touch(r->db, r->auth.user_id, r->auth.device_id, now, r->remote_addr);
    }
    return 0;
}

/*
 * Federation requests (spec: Server-Server API "Request Authentication"):
 * the X-Matrix header names the origin and its key; the signature must
 * cover this method, the path and query as sent, this server as the
 * destination and the JSON body. The origin's key comes from the keyring
 * (which may fetch it). Every failure is 401 M_UNAUTHORIZED.
 */
static int server_request(struct req *r)
{
    const char *own = r->srv->cfg->server_name;
    struct xmatrix x;
    if (xmatrix_parse(&r->arena, req_header(r, "Authorization"), &x) != 0) {
        return req_fail(r, -ERR_UNAUTHORIZED, "Missing or malformed X-Matrix Authorization");
    }
    if (!id_server_name_valid(x.origin, strlen(x.origin))) {
        return req_fail(r, -ERR_UNAUTHORIZED, "Invalid origin server name");
    }
    if (x.destination && strcmp(x.destination, own) != 0) {
        return req_fail(r, -ERR_UNAUTHORIZED, "This request is meant for another server");
    }
    unsigned char pk[KEYS_PUBLIC_BYTES];
    if (!r->srv->keyring ||
        keyring_get(r->srv->keyring, r->db, x.origin, x.key, req_now_ms(), pk) != 0) {
        return req_fail(r, -ERR_UNAUTHORIZED, "Unknown key %s of %s", x.key, x.origin);
    }
    const char *uri = r->raw_query.len ? arena_printf(&r->arena, "%.*s?%.*s", (int)r->path.len,
                                                      r->path.p, (int)r->raw_query.len,
                                                      r->raw_query.p)
                                       : arena_strndup(&r->arena, r->path.p, r->path.len);
    json_t *content = r->json;
    if (!content && r->body.len) {
        content = json_arena(&r->arena, json_loadb(r->body.p, r->body.len, 0, NULL));
        if (!content) {
            return req_fail(r, -ERR_UNAUTHORIZED, "The signed body is not JSON");
        }
    }
    if (xmatrix_verify(&x, own, router_method_name(r->method), uri, content, pk) != 0) {
        return req_fail(r, -ERR_UNAUTHORIZED, "Invalid X-Matrix signature");
    }
    r->auth.server = x.origin;
    if (r->srv->fedqueue) {
        /* It is up: what waits for it in a backoff goes now. */
        fedqueue_destination_up(r->srv->fedqueue, x.origin);
    }
    return 0;
}

int auth_request(struct req *r)
{
    enum route_auth kind = r->route->auth;
    if (kind == AUTH_NONE) {
        return 0;
    }
    if (kind == AUTH_SERVER) {
        return server_request(r);
    }
    if (kind == AUTH_APPSERVICE) {
        return req_fail(r, -ERR_UNAUTHORIZED, "This kind of authentication is not supported yet");
    }
    const char *token = request_token(r);
    if (!token) {
        if (kind == AUTH_OPTIONAL) {
            return 0;
        }
        return req_fail(r, -ERR_MISSING_TOKEN, "Missing access token");
    }
    int rc = resolve(r, token);
    if (rc) {
        return rc;
    }
    if (kind == AUTH_USER && r->auth.is_guest) {
        return req_fail(r, -ERR_GUEST_ACCESS_FORBIDDEN, "Guest access is not allowed here");
    }
    if (kind == AUTH_ADMIN && !r->auth.is_admin) {
        return req_fail(r, -ERR_FORBIDDEN, "You are not a server admin");
    }
    return 0;
}
