/*
 * Token buckets in a hash map under one mutex. The map is swept of full
 * (idle) buckets when it grows past RL_SWEEP_AT entries, so memory follows
 * the number of active callers, not of callers ever seen.
 */
#include "svc/ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "config.h"
#include "http/router.h"
#include "svc/srv.h"

#define RL_SWEEP_AT 100000

struct rl_params {
    double per_second;
    double burst;
};

/* Defaults per class, in line with what deployed servers use. */
static const struct rl_params params[] = {
    [RL_NONE] = {0, 0},
    [RL_LOGIN] = {0.17, 3},
    [RL_REGISTER] = {0.17, 3},
    [RL_MESSAGE] = {0.2, 10},
    [RL_JOIN] = {0.1, 10},
    [RL_MEDIA] = {1, 20},
    [RL_FEDERATION] = {0, 0},
};

struct bucket {
    char *key;
    double tokens;
    int64_t last_ms;
    int klass;
};

struct ratelimit {
    pthread_mutex_t mu;
    struct map buckets;
};

struct ratelimit *ratelimit_new(void)
{
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));
    pthread_mutex_init(&rl->mu, NULL);
    map_init(&rl->buckets);
    return rl;
}

static void clear(struct ratelimit *rl)
{
    size_t i = 0;
    const struct map_entry *e;
    while (map_next(&rl->buckets, &i, &e)) {
        struct bucket *b = e->value;
        free(b->key);
        free(b);
    }
    map_release(&rl->buckets);
    map_init(&rl->buckets);
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl) {
        return;
    }
    clear(rl);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

/* The tokens b holds at now_ms, before capping at the burst. */
static double refilled(const struct bucket *b, int64_t now_ms)
{
    return b->tokens + (double)(now_ms - b->last_ms) / 1000.0 * params[b->klass].per_second;
}

/* Drops buckets that have refilled completely: they carry no state. */
static void sweep(struct ratelimit *rl, int64_t now_ms)
{
    struct map keep;
    map_init(&keep);
    size_t i = 0;
    const struct map_entry *e;
    while (map_next(&rl->buckets, &i, &e)) {
        struct bucket *b = e->value;
        if (refilled(b, now_ms) >= params[b->klass].burst) {
            free(b->key);
            free(b);
        } else {
            map_put(&keep, str_from(b->key), b);
        }
    }
    map_release(&rl->buckets);
    rl->buckets = keep;
}

int64_t ratelimit_take(struct ratelimit *rl, int klass, const char *key, int64_t now_ms)
{
    const struct rl_params *p = &params[klass];
    if (p->per_second <= 0) {
        return 0;
    }
    char full[600];
    snprintf(full, sizeof(full), "%d:%s", klass, key);
    pthread_mutex_lock(&rl->mu);
    struct bucket *b = map_get(&rl->buckets, str_from(full));
    if (!b) {
        if (rl->buckets.count >= RL_SWEEP_AT) {
            sweep(rl, now_ms);
        }
        b = xcalloc(1, sizeof(*b));
        b->key = xstrdup(full);
        b->tokens = p->burst;
        b->last_ms = now_ms;
        b->klass = klass;
        map_put(&rl->buckets, str_from(b->key), b);
    }
    double t = refilled(b, now_ms);
    if (t > p->burst) {
        t = p->burst;
    }
    b->last_ms = now_ms;
    int64_t wait = 0;
    if (t >= 1.0) {
        b->tokens = t - 1.0;
    } else {
        b->tokens = t;
        wait = (int64_t)((1.0 - t) / p->per_second * 1000.0) + 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return wait;
}

int ratelimit_check(struct req *r)
{
    if (!r->srv || !r->srv->rl || !r->srv->cfg->rate_limits.enabled ||
        r->route->ratelimit == RL_NONE || r->auth.is_admin) {
        return 0;
    }
    const char *key = r->auth.user_id ? r->auth.user_id : r->remote_addr ? r->remote_addr : "?";
    int64_t wait = ratelimit_take(r->srv->rl, r->route->ratelimit, key, req_now_ms());
    if (wait <= 0) {
        return 0;
    }
    req_fail_json(r, -ERR_LIMIT_EXCEEDED, json_pack("{s:I}", "retry_after_ms", (json_int_t)wait),
                  "Too many requests");
    req_add_header(r, "Retry-After", arena_printf(&r->arena, "%lld", (long long)(wait + 999) / 1000));
    return -ERR_LIMIT_EXCEEDED;
}
