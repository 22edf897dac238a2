/*
 * Other servers' signing keys: memory cache, database, fetch (see
 * keyring.h).
 */
#include "svc/keyring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/log.h"
#include "base/map.h"
#include "base/str.h"
#include "base/xmalloc.h"
#include "core/canonjson.h"
#include "core/sign.h"
#include "http/req.h"
#include "store/store.h"
#include "svc/fedclient.h"

/* Longest a fetched key is trusted ahead (spec: 7 days). */
#define KEY_VALIDITY_CAP_MS (7LL * 24 * 3600 * 1000)
/* Least time between two fetches of one server's keys. */
#define FETCH_INTERVAL_MS (60LL * 1000)
#define FETCH_TIMEOUT_MS 15000
#define KEY_ID_MAX 128

struct key_entry {
    unsigned char pk[KEYS_PUBLIC_BYTES];
    int64_t valid_until_ts;
    int64_t expired_ts;
    char name[]; /* "server\nkey_id", the map key */
};

struct fetch_entry {
    int64_t last_ms;
    char name[];
};

struct keyring {
    struct fedclient *fc;
    const char *own_name;
    const struct signing_key *own;
    pthread_mutex_t mu;
    struct map keys;    /* "server\nkey_id" -> struct key_entry */
    struct map fetches; /* server -> struct fetch_entry */
};

struct keyring *keyring_new(struct fedclient *fc, const char *own_name,
                            const struct signing_key *own)
{
    struct keyring *kr = xcalloc(1, sizeof(*kr));
    kr->fc = fc;
    kr->own_name = own_name;
    kr->own = own;
    pthread_mutex_init(&kr->mu, NULL);
    map_init(&kr->keys);
    map_init(&kr->fetches);
    return kr;
}

static void free_values(struct map *m)
{
    const struct map_entry *e;
    for (size_t i = 0; map_next(m, &i, &e);) {
        free(e->value);
    }
    map_release(m);
}

void keyring_free(struct keyring *kr)
{
    if (!kr) {
        return;
    }
    free_values(&kr->keys);
    free_values(&kr->fetches);
    pthread_mutex_destroy(&kr->mu);
    free(kr);
}

/* ---- memory cache ---- */

static void cache_name(char *out, size_t cap, const char *server, const char *key_id)
{
    snprintf(out, cap, "%s\n%s", server, key_id);
}

static bool trusted_at(int64_t valid_until, int64_t expired, int64_t at_ms)
{
    return expired ? at_ms < expired : at_ms <= valid_until;
}

static bool cache_get(struct keyring *kr, const char *server, const char *key_id, int64_t at_ms,
                      unsigned char pk[KEYS_PUBLIC_BYTES])
{
    char name[FED_NAME_MAX + KEY_ID_MAX + 2];
    cache_name(name, sizeof(name), server, key_id);
    bool hit = false;
    pthread_mutex_lock(&kr->mu);
    struct key_entry *e = map_get(&kr->keys, str_from(name));
    if (e && trusted_at(e->valid_until_ts, e->expired_ts, at_ms)) {
        memcpy(pk, e->pk, KEYS_PUBLIC_BYTES);
        hit = true;
    }
    pthread_mutex_unlock(&kr->mu);
    return hit;
}

static void cache_put(struct keyring *kr, const char *server, const char *key_id,
                      const unsigned char pk[KEYS_PUBLIC_BYTES], int64_t valid_until,
                      int64_t expired)
{
    char name[FED_NAME_MAX + KEY_ID_MAX + 2];
    cache_name(name, sizeof(name), server, key_id);
    size_t n = strlen(name);
    struct key_entry *e = xmalloc(sizeof(*e) + n + 1);
    memcpy(e->pk, pk, KEYS_PUBLIC_BYTES);
    e->valid_until_ts = valid_until;
    e->expired_ts = expired;
    memcpy(e->name, name, n + 1);
    pthread_mutex_lock(&kr->mu);
    free(map_put(&kr->keys, str_from(e->name), e));
    pthread_mutex_unlock(&kr->mu);
}

/* Whether a fetch of `server` may start now (and notes it). */
static bool may_fetch(struct keyring *kr, const char *server)
{
    int64_t now = req_now_ms();
    bool ok = true;
    pthread_mutex_lock(&kr->mu);
    struct fetch_entry *f = map_get(&kr->fetches, str_from(server));
    if (f && now - f->last_ms < FETCH_INTERVAL_MS) {
        ok = false;
    } else if (f) {
        f->last_ms = now;
    } else {
        size_t n = strlen(server);
        f = xmalloc(sizeof(*f) + n + 1);
        f->last_ms = now;
        memcpy(f->name, server, n + 1);
        map_put(&kr->fetches, str_from(f->name), f);
    }
    pthread_mutex_unlock(&kr->mu);
    return ok;
}

static bool decode_key(const char *b64, unsigned char pk[KEYS_PUBLIC_BYTES])
{
    unsigned char buf[64 * 3 / 4 + 1]; /* what 64 characters decode to */
    size_t len = b64 ? strlen(b64) : 0;
    if (len == 0 || len > 64) {
        return false;
    }
    if (keys_b64_decode(b64, len, buf) != KEYS_PUBLIC_BYTES) {
        return false;
    }
    memcpy(pk, buf, KEYS_PUBLIC_BYTES);
    return true;
}

/* ---- responses ---- */

int keyring_check_response(const json_t *resp, const char *server)
{
    const char *name = json_string_value(json_object_get(resp, "server_name"));
    const json_t *verify = json_object_get(resp, "verify_keys");
    const json_t *vu = json_object_get(resp, "valid_until_ts");
    if (!json_is_object(resp) || !name || strcmp(name, server) != 0 || !json_is_object(verify) ||
        json_object_size(verify) == 0 || !json_is_integer(vu)) {
        return -ERR_UNAUTHORIZED;
    }
    const char *key_id;
    const json_t *v;
    json_object_foreach((json_t *)verify, key_id, v)
    {
        unsigned char pk[KEYS_PUBLIC_BYTES];
        if (strncmp(key_id, "ed25519:", 8) != 0 || strlen(key_id) >= KEY_ID_MAX) {
            continue; /* algorithms we do not know are skipped */
        }
        if (!decode_key(json_string_value(json_object_get(v, "key")), pk) ||
            sign_json_verify(resp, server, key_id, pk, CANONJSON_STRICT) != 0) {
            return -ERR_UNAUTHORIZED; /* every verify key must have signed it */
        }
    }
    return 0;
}

/* Stores (database and memory) every key of a checked response. */
static int store_response(struct keyring *kr, struct store_conn *db, const char *server,
                          const json_t *resp)
{
    int64_t now = req_now_ms();
    int64_t valid_until = json_integer_value(json_object_get(resp, "valid_until_ts"));
    if (valid_until > now + KEY_VALIDITY_CAP_MS) {
        valid_until = now + KEY_VALIDITY_CAP_MS;
    }
    char *text = json_dumps(resp, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        return -ERR_NOMEM;
    }
    int rc = store_begin(db);
    static const char *const sections[] = {"verify_keys", "old_verify_keys"};
    for (int s = 0; s < 2 && rc == 0; s++) {
        const char *key_id;
        const json_t *v;
        json_object_foreach(json_object_get(resp, sections[s]), key_id, v)
        {
            unsigned char pk[KEYS_PUBLIC_BYTES];
            const char *b64 = json_string_value(json_object_get(v, "key"));
            if (strncmp(key_id, "ed25519:", 8) != 0 || strlen(key_id) >= KEY_ID_MAX ||
                !decode_key(b64, pk)) {
                continue;
            }
            int64_t expired = 0;
            if (s == 1) {
                const json_t *e = json_object_get(v, "expired_ts");
                expired = json_is_integer(e) ? json_integer_value(e) : 0;
                if (expired <= 0) {
                    continue; /* an old key must say when it expired */
                }
            }
            struct store_server_key k = {(char *)key_id, (char *)b64, valid_until, expired,
                                         now};
            rc = store_server_key_put(db, server, &k, text);
            if (rc < 0) {
                break;
            }
            cache_put(kr, server, key_id, pk, valid_until, expired);
        }
    }
    rc = store_end(db, rc);
    free(text);
    return rc;
}

/* Fetches /_matrix/key/v2/server from `server`, checks and stores it;
 * *out (may be NULL) gets the response. */
static int fetch(struct keyring *kr, struct store_conn *db, const char *server, json_t **out)
{
    if (out) {
        *out = NULL;
    }
    if (!kr->fc) {
        return -ERR_NOT_FOUND;
    }
    struct fed_resp resp;
    int rc = fedclient_call(kr->fc, server, "GET", "/_matrix/key/v2/server", NULL, false,
                            FETCH_TIMEOUT_MS, &resp);
    json_t *j = rc == 0 && resp.status == 200 ? fed_resp_json(&resp) : NULL;
    fed_resp_release(&resp);
    if (!j) {
        LOG_INFO("keyring", "no keys from %s (%s, HTTP %ld)", server,
                 rc ? err_message(rc) : "answer", resp.status);
        return -ERR_NOT_FOUND;
    }
    if (keyring_check_response(j, server) != 0) {
        LOG_WARN("keyring", "%s served keys that do not check out", server);
        json_decref(j);
        return -ERR_NOT_FOUND;
    }
    rc = store_response(kr, db, server, j);
    if (rc == 0 && out) {
        *out = j;
    } else {
        json_decref(j);
    }
    return rc;
}

int keyring_get(struct keyring *kr, struct store_conn *db, const char *server,
                const char *key_id, int64_t at_ms, unsigned char pk[KEYS_PUBLIC_BYTES])
{
    if (strlen(key_id) >= KEY_ID_MAX || strlen(server) >= FED_NAME_MAX) {
        return -ERR_NOT_FOUND;
    }
    if (strcmp(server, kr->own_name) == 0) {
        if (strcmp(key_id, kr->own->key_id) != 0) {
            return -ERR_NOT_FOUND;
        }
        memcpy(pk, kr->own->pk, KEYS_PUBLIC_BYTES);
        return 0;
    }
    if (cache_get(kr, server, key_id, at_ms, pk)) {
        return 0;
    }
    struct arena a;
    arena_init(&a);
    struct store_server_key k;
    int rc = store_server_key_get(db, &a, server, key_id, &k);
    bool ok = rc == 0 && decode_key(k.public_key, pk);
    if (ok) {
        cache_put(kr, server, key_id, pk, k.valid_until_ts, k.expired_ts);
        ok = trusted_at(k.valid_until_ts, k.expired_ts, at_ms);
    }
    arena_release(&a);
    if (ok) {
        return 0;
    }
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return rc;
    }
    if (!may_fetch(kr, server)) {
        return -ERR_NOT_FOUND;
    }
    rc = fetch(kr, db, server, NULL);
    if (rc < 0) {
        return rc == -ERR_NOT_FOUND ? rc : -ERR_NOT_FOUND;
    }
    return cache_get(kr, server, key_id, at_ms, pk) ? 0 : -ERR_NOT_FOUND;
}

int keyring_responses(struct keyring *kr, struct store_conn *db, const char *server,
                      int64_t min_valid_ms, json_t *out)
{
    struct arena a;
    arena_init(&a);
    char **jsons = NULL;
    size_t n = 0;
    int rc = store_server_keys_json(db, &a, server, &jsons, &n);
    size_t added = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *j = json_loads(jsons[i], 0, NULL);
        const json_t *vu = json_object_get(j, "valid_until_ts");
        if (j && json_is_integer(vu) && json_integer_value(vu) >= min_valid_ms) {
            json_array_append_new(out, j);
            added++;
        } else {
            json_decref(j);
        }
    }
    arena_release(&a);
    if (rc < 0 || added > 0) {
        return rc;
    }
    /* Nothing fresh enough: ask the server itself. */
    json_t *fresh = NULL;
    if (may_fetch(kr, server) && fetch(kr, db, server, &fresh) == 0 && fresh) {
        json_array_append_new(out, fresh);
    }
    return 0;
}
