/*
 * Stream positions and sync tokens (see streams.h for the rules).
 */
#include "svc/streams.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/xmalloc.h"
#include "svc/push.h"
#include "svc/room.h"

struct stream_state {
    pthread_mutex_t write_mu; /* held from reserve to publish */
    int64_t next;             /* last reserved position (write_mu) */
    _Atomic int64_t current;  /* newest published position */
};

struct streams {
    struct rooms *rooms; /* STREAM_EVENTS comes from the room service */
    struct push *push;   /* STREAM_UNREAD comes from the push service */
    struct stream_state s[STREAM_N];
};

struct streams *streams_new(struct rooms *rooms)
{
    struct streams *st = xcalloc(1, sizeof(*st));
    st->rooms = rooms;
    for (int i = 0; i < STREAM_N; i++) {
        pthread_mutex_init(&st->s[i].write_mu, NULL);
        atomic_init(&st->s[i].current, 0);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t boot_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    st->s[STREAM_TYPING].next = boot_ms;
    atomic_store(&st->s[STREAM_TYPING].current, boot_ms);
    return st;
}

void streams_set_push(struct streams *st, struct push *push) { st->push = push; }

void streams_free(struct streams *st)
{
    if (!st) {
        return;
    }
    for (int i = 0; i < STREAM_N; i++) {
        pthread_mutex_destroy(&st->s[i].write_mu);
    }
    free(st);
}

void streams_set(struct streams *st, enum stream s, int64_t pos)
{
    st->s[s].next = pos;
    atomic_store(&st->s[s].current, pos);
}

int64_t streams_reserve(struct streams *st, enum stream s)
{
    pthread_mutex_lock(&st->s[s].write_mu);
    return ++st->s[s].next;
}

void streams_publish(struct streams *st, enum stream s, int64_t pos)
{
    atomic_store(&st->s[s].current, pos);
    pthread_mutex_unlock(&st->s[s].write_mu);
}

int64_t streams_advance(struct streams *st, enum stream s)
{
    pthread_mutex_lock(&st->s[s].write_mu);
    int64_t pos = ++st->s[s].next;
    atomic_store(&st->s[s].current, pos);
    pthread_mutex_unlock(&st->s[s].write_mu);
    return pos;
}

int64_t streams_current(struct streams *st, enum stream s)
{
    if (s == STREAM_EVENTS && st->rooms) {
        return rooms_stream_pos(st->rooms);
    }
    if (s == STREAM_UNREAD && st->push) {
        return push_stream_pos(st->push);
    }
    return atomic_load(&st->s[s].current);
}

void streams_now(struct streams *st, struct stream_token *t)
{
    for (int i = 0; i < STREAM_N; i++) {
        t->pos[i] = streams_current(st, (enum stream)i);
    }
}

void stream_token_format(const struct stream_token *t, char *buf)
{
    size_t off = 0;
    for (int i = 0; i < STREAM_N; i++) {
        off += (size_t)snprintf(buf + off, STREAM_TOKEN_MAX - off, "%s%" PRId64,
                                i == 0 ? "s" : "_", t->pos[i]);
    }
}

bool stream_token_parse(const char *s, struct stream_token *t)
{
    memset(t, 0, sizeof(*t));
    if (!s || s[0] != 's') {
        return false;
    }
    const char *p = s + 1;
    for (int i = 0;; i++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        char *end;
        long long v = strtoll(p, &end, 10);
        if (v < 0 || (v == LLONG_MAX)) {
            return false;
        }
        if (i < STREAM_N) {
            t->pos[i] = v;
        }
        if (*end == '\0') {
            return true;
        }
        if (*end != '_') {
            return false;
        }
        p = end + 1;
    }
}
