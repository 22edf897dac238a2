/*
 * The nonce set: a map from nonce to its expiry under one mutex. Entries
 * are heap-allocated records whose key points into the record.
 */
#include "svc/nonce.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/xmalloc.h"

struct nonce_rec {
    char hex[NONCE_HEX_LEN + 1];
    int64_t expires_ms;
};

struct nonces {
    pthread_mutex_t mu;
    struct map by_hex; /* hex -> struct nonce_rec * */
};

struct nonces *nonces_new(void)
{
    struct nonces *n = xcalloc(1, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
    map_init(&n->by_hex);
    return n;
}

void nonces_free(struct nonces *n)
{
    if (!n) {
        return;
    }
    size_t i = 0;
    const struct map_entry *e;
    while (map_next(&n->by_hex, &i, &e)) {
        free(e->value);
    }
    map_release(&n->by_hex);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* Rebuilds the map without expired records; with `drop_oldest` also
 * without the one expiring first. Caller holds the lock. */
static void prune_locked(struct nonces *n, int64_t now_ms, bool drop_oldest)
{
    struct nonce_rec *oldest = NULL;
    size_t i = 0;
    const struct map_entry *e;
    if (drop_oldest) {
        while (map_next(&n->by_hex, &i, &e)) {
            struct nonce_rec *rec = e->value;
            if (!oldest || rec->expires_ms < oldest->expires_ms) {
                oldest = rec;
            }
        }
    }
    struct map keep;
    map_init(&keep);
    i = 0;
    while (map_next(&n->by_hex, &i, &e)) {
        struct nonce_rec *rec = e->value;
        if (rec->expires_ms <= now_ms || rec == oldest) {
            free(rec);
        } else {
            map_put(&keep, str_from(rec->hex), rec);
        }
    }
    map_release(&n->by_hex);
    n->by_hex = keep;
}

void nonces_issue(struct nonces *n, int64_t now_ms, char out[NONCE_HEX_LEN + 1])
{
    struct nonce_rec *rec = xcalloc(1, sizeof(*rec));
    rec->expires_ms = now_ms + NONCE_TTL_MS;
    pthread_mutex_lock(&n->mu);
    if (n->by_hex.count >= NONCE_MAX_OUTSTANDING / 2) {
        prune_locked(n, now_ms, n->by_hex.count >= NONCE_MAX_OUTSTANDING);
    }
    do { /* 128 random bits never repeat in practice; the loop makes sure */
        unsigned char raw[NONCE_HEX_LEN / 2];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(rec->hex, sizeof(rec->hex), raw, sizeof(raw));
    } while (map_has(&n->by_hex, str_from(rec->hex)));
    map_put(&n->by_hex, str_from(rec->hex), rec);
    memcpy(out, rec->hex, sizeof(rec->hex));
    pthread_mutex_unlock(&n->mu);
}

bool nonces_take(struct nonces *n, const char *nonce, int64_t now_ms)
{
    pthread_mutex_lock(&n->mu);
    struct nonce_rec *rec = map_del(&n->by_hex, str_from(nonce));
    pthread_mutex_unlock(&n->mu);
    bool ok = rec && rec->expires_ms > now_ms;
    free(rec);
    return ok;
}
