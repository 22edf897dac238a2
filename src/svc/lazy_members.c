/*
 * The lazy-loaded members record (see lazy_members.h): one map under one
 * mutex, key "user\0device\0room\0member", value an entry holding the
 * member event ID and the key's bytes (the map's key points into it).
 */
#include "svc/lazy_members.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/xmalloc.h"

struct sent {
    char *event_id;
    size_t key_len;
    char key[];
};

struct lazy_members {
    pthread_mutex_t mu;
    struct map sent; /* key (in the entry) -> struct sent * */
    size_t max;
};

struct lazy_members *lazy_members_new(size_t max_entries)
{
    struct lazy_members *lm = xcalloc(1, sizeof(*lm));
    pthread_mutex_init(&lm->mu, NULL);
    map_init(&lm->sent);
    lm->max = max_entries;
    return lm;
}

static void sent_free(struct sent *e)
{
    free(e->event_id);
    free(e);
}

static void clear(struct lazy_members *lm)
{
    const struct map_entry *e;
    for (size_t i = 0; map_next(&lm->sent, &i, &e);) {
        sent_free(e->value);
    }
    map_release(&lm->sent);
    map_init(&lm->sent);
}

void lazy_members_free(struct lazy_members *lm)
{
    if (!lm) {
        return;
    }
    clear(lm);
    map_release(&lm->sent);
    pthread_mutex_destroy(&lm->mu);
    free(lm);
}

bool lazy_members_sent(struct lazy_members *lm, const char *user_id, const char *device_id,
                       const char *room_id, const char *member, const char *event_id)
{
    const char *parts[] = {user_id, device_id, room_id, member};
    size_t len = 0;
    for (size_t i = 0; i < 4; i++) {
        len += strlen(parts[i]) + 1;
    }
    struct sent *e = xmalloc(sizeof(*e) + len);
    e->key_len = len;
    size_t off = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t n = strlen(parts[i]) + 1;
        memcpy(e->key + off, parts[i], n);
        off += n;
    }
    struct str k = {e->key, len};
    pthread_mutex_lock(&lm->mu);
    struct sent *old = map_get(&lm->sent, k);
    bool had = old && strcmp(old->event_id, event_id) == 0;
    if (had) {
        free(e);
    } else {
        if (!old && lm->sent.count >= lm->max) {
            clear(lm);
        }
        e->event_id = xstrdup(event_id);
        map_put(&lm->sent, k, e); /* takes e's key for the slot */
        if (old) {
            sent_free(old);
        }
    }
    pthread_mutex_unlock(&lm->mu);
    return had;
}
