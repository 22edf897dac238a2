/*
 * Parked long polls and their wake-ups (see notify.h).
 *
 * One mutex guards everything here. Waiters live in their request's arena
 * and are linked into two indexes of buckets: one bucket per user and one
 * per room, each a circular list of links (a waiter has one link for its
 * user and one per room). A bucket also remembers the last stream position
 * committed under it, so a request registering after an event it should
 * have seen (the event committed while its answer was being computed)
 * learns so at once instead of sleeping through it. Buckets are never
 * freed before the notifier: there is one per room and per user that ever
 * had an event, which is bounded by the server's rooms and users.
 *
 * Deadlines are a binary min-heap of waiters with their heap index, so a
 * waiter woken by an event leaves the heap in O(log n).
 */
#include "svc/notify.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "svc/room.h"
#include "svc/streams.h"

struct waiter;

struct link {
    struct link *prev, *next;
    struct waiter *w; /* NULL for a bucket's list head */
};

struct bucket {
    struct link head;
    int64_t last[STREAM_N]; /* the newest position per stream seen under this key */
    char *key;
};

struct waiter {
    struct req *r;
    notify_fn *fn;
    struct stream_token pos;
    int64_t deadline_ns;
    size_t heap_idx;
    bool fired;    /* its callback is queued */
    bool unlinked; /* out of the indexes and the heap */
    struct link *links; /* [0] the user's bucket, then one per room */
    size_t n_links;
};

/* What is needed to call a waiter's fn once it is unlinked. */
struct firing {
    struct req *r;
    notify_fn *fn;
    struct stream_token pos;
};

struct notify {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the timer thread waits on it (CLOCK_MONOTONIC) */
    struct map users;  /* user ID -> struct bucket * */
    struct map rooms;  /* room ID -> struct bucket * */
    struct waiter **heap;
    size_t n_heap, cap_heap;
    bool stopped;
    bool running;
    pthread_t thread;
};

/* ---- buckets ---- */

static struct bucket *bucket_get(struct map *m, const char *key, bool create)
{
    struct bucket *b = map_get(m, str_from(key));
    if (b || !create) {
        return b;
    }
    b = xcalloc(1, sizeof(*b));
    b->key = xstrdup(key);
    b->head.prev = b->head.next = &b->head;
    map_put(m, str_from(b->key), b);
    return b;
}

static void buckets_free(struct map *m)
{
    size_t i = 0;
    const struct map_entry *e;
    while (map_next(m, &i, &e)) {
        struct bucket *b = e->value;
        free(b->key);
        free(b);
    }
    map_release(m);
}

static void link_insert(struct bucket *b, struct link *l, struct waiter *w)
{
    l->w = w;
    l->next = b->head.next;
    l->prev = &b->head;
    b->head.next->prev = l;
    b->head.next = l;
}

static void link_remove(struct link *l)
{
    if (l->next) {
        l->prev->next = l->next;
        l->next->prev = l->prev;
        l->prev = l->next = NULL;
    }
}

/* ---- the deadline heap ---- */

static void heap_swap(struct notify *n, size_t a, size_t b)
{
    struct waiter *t = n->heap[a];
    n->heap[a] = n->heap[b];
    n->heap[b] = t;
    n->heap[a]->heap_idx = a;
    n->heap[b]->heap_idx = b;
}

static void heap_up(struct notify *n, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (n->heap[p]->deadline_ns <= n->heap[i]->deadline_ns) {
            break;
        }
        heap_swap(n, i, p);
        i = p;
    }
}

static void heap_down(struct notify *n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n->n_heap && n->heap[l]->deadline_ns < n->heap[m]->deadline_ns) {
            m = l;
        }
        if (r < n->n_heap && n->heap[r]->deadline_ns < n->heap[m]->deadline_ns) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(n, i, m);
        i = m;
    }
}

static void heap_push(struct notify *n, struct waiter *w)
{
    if (n->n_heap == n->cap_heap) {
        n->cap_heap = n->cap_heap ? n->cap_heap * 2 : 64;
        n->heap = xrealloc(n->heap, n->cap_heap * sizeof(*n->heap));
    }
    w->heap_idx = n->n_heap;
    n->heap[n->n_heap++] = w;
    heap_up(n, w->heap_idx);
}

static void heap_remove(struct notify *n, struct waiter *w)
{
    size_t i = w->heap_idx;
    n->n_heap--;
    if (i != n->n_heap) {
        n->heap[i] = n->heap[n->n_heap];
        n->heap[i]->heap_idx = i;
        heap_down(n, i);
        heap_up(n, i);
    }
}

/* ---- firing ---- */

struct fire_list {
    struct firing *items;
    struct waiter **w;
    size_t n, cap;
};

/* Queues w's callback (once). Lock held. The caller unlinks the queued
 * waiters afterwards with unlink_all, so a bucket walk never loses its
 * place. */
static void take(struct waiter *w, struct fire_list *fl)
{
    if (w->fired) {
        return;
    }
    w->fired = true;
    if (fl->n == fl->cap) {
        fl->cap = fl->cap ? fl->cap * 2 : 16;
        fl->items = xrealloc(fl->items, fl->cap * sizeof(*fl->items));
        fl->w = xrealloc(fl->w, fl->cap * sizeof(*fl->w));
    }
    fl->w[fl->n] = w;
    fl->items[fl->n++] = (struct firing){w->r, w->fn, w->pos};
}

/* Removes the queued waiters from every index and the heap. Lock held;
 * after this nothing here points into their requests. */
static void unlink_waiter(struct notify *n, struct waiter *w)
{
    if (w->unlinked) {
        return;
    }
    w->unlinked = true;
    for (size_t i = 0; i < w->n_links; i++) {
        link_remove(&w->links[i]);
    }
    heap_remove(n, w);
}

static void unlink_all(struct notify *n, struct fire_list *fl)
{
    for (size_t k = 0; k < fl->n; k++) {
        unlink_waiter(n, fl->w[k]);
    }
}

/* Records position `pos` of stream s under bucket b and queues the
 * waiters there whose token is below it. */
static void take_bucket(struct bucket *b, enum stream s, int64_t pos, struct fire_list *fl)
{
    if (b->last[s] < pos) {
        b->last[s] = pos;
    }
    for (struct link *l = b->head.next; l != &b->head; l = l->next) {
        if (l->w->pos.pos[s] < pos) {
            take(l->w, fl);
        }
    }
}

/* Calls the queued callbacks; no lock held. */
static void fire(struct fire_list *fl, enum notify_why why)
{
    for (size_t i = 0; i < fl->n; i++) {
        fl->items[i].fn(fl->items[i].r, why, &fl->items[i].pos);
    }
    free(fl->items);
    free(fl->w);
    *fl = (struct fire_list){0};
}

void notify_on_commit(void *ctx, const struct room_commit *c)
{
    struct notify *n = ctx;
    const char *target =
        c->state_key && strcmp(c->type, "m.room.member") == 0 ? c->state_key : NULL;
    char *room = (char *)c->room_id;
    notify_stream(n, STREAM_EVENTS, c->stream, target, &room, 1);
}

void notify_stream(struct notify *n, enum stream s, int64_t pos, const char *user_id,
                   char *const *room_ids, size_t n_rooms)
{
    struct fire_list fl = {0};
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n_rooms; i++) {
        take_bucket(bucket_get(&n->rooms, room_ids[i], true), s, pos, &fl);
    }
    if (user_id) {
        take_bucket(bucket_get(&n->users, user_id, true), s, pos, &fl);
    }
    unlink_all(n, &fl);
    pthread_mutex_unlock(&n->mu);
    fire(&fl, NOTIFY_EVENT);
}

/* ---- the timer thread ---- */

static void *timer_main(void *arg)
{
    struct notify *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->stopped) {
        if (n->n_heap == 0) {
            pthread_cond_wait(&n->cv, &n->mu);
            continue;
        }
        int64_t now = req_now_ns();
        int64_t first = n->heap[0]->deadline_ns;
        if (first > now) {
            struct timespec ts = {.tv_sec = (time_t)(first / 1000000000LL),
                                  .tv_nsec = (long)(first % 1000000000LL)};
            pthread_cond_timedwait(&n->cv, &n->mu, &ts);
            continue;
        }
        struct fire_list fl = {0};
        while (n->n_heap > 0 && n->heap[0]->deadline_ns <= now) {
            struct waiter *w = n->heap[0];
            take(w, &fl);
            unlink_waiter(n, w);
        }
        pthread_mutex_unlock(&n->mu);
        fire(&fl, NOTIFY_TIMEOUT);
        pthread_mutex_lock(&n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- lifecycle ---- */

struct notify *notify_new(void)
{
    struct notify *n = xcalloc(1, sizeof(*n));
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &attr);
    pthread_condattr_destroy(&attr);
    map_init(&n->users);
    map_init(&n->rooms);
    return n;
}

int notify_start(struct notify *n)
{
    if (pthread_create(&n->thread, NULL, timer_main, n) != 0) {
        return -ERR_UNKNOWN;
    }
    n->running = true;
    return 0;
}

void notify_stop(struct notify *n)
{
    if (!n) {
        return;
    }
    struct fire_list fl = {0};
    pthread_mutex_lock(&n->mu);
    n->stopped = true;
    for (size_t i = 0; i < n->n_heap; i++) {
        take(n->heap[i], &fl);
    }
    unlink_all(n, &fl);
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    fire(&fl, NOTIFY_STOP);
    if (n->running) {
        pthread_join(n->thread, NULL);
        n->running = false;
    }
}

void notify_free(struct notify *n)
{
    if (!n) {
        return;
    }
    notify_stop(n);
    buckets_free(&n->users);
    buckets_free(&n->rooms);
    free(n->heap);
    pthread_cond_destroy(&n->cv);
    pthread_mutex_destroy(&n->mu);
    free(n);
}

/* ---- waiting ---- */

_Static_assert(NOTIFY_MISSED != REQ_PARKED, "callers tell a missed change from parking");

/* Whether bucket b saw a position above the token in any stream. */
static bool missed_in(const struct bucket *b, const struct stream_token *pos)
{
    for (int i = 0; b && i < STREAM_N; i++) {
        if (b->last[i] > pos->pos[i]) {
            return true;
        }
    }
    return false;
}

int notify_wait(struct notify *n, struct req *r, const char *user_id, char *const *room_ids,
                size_t n_rooms, const struct stream_token *pos, int64_t deadline_ns,
                notify_fn *fn)
{
    struct waiter *w = ARENA_NEW(&r->arena, struct waiter);
    w->r = r;
    w->fn = fn;
    w->pos = *pos;
    w->deadline_ns = deadline_ns;
    w->n_links = n_rooms + 1;
    w->links = ARENA_ARRAY(&r->arena, struct link, w->n_links);
    pthread_mutex_lock(&n->mu);
    if (n->stopped) {
        pthread_mutex_unlock(&n->mu);
        return -ERR_UNAVAILABLE;
    }
    /* Something relevant committed after `pos` but before we got here. */
    bool missed = missed_in(bucket_get(&n->users, user_id, false), pos);
    for (size_t i = 0; i < n_rooms && !missed; i++) {
        missed = missed_in(bucket_get(&n->rooms, room_ids[i], false), pos);
    }
    if (missed) {
        pthread_mutex_unlock(&n->mu);
        return NOTIFY_MISSED;
    }
    /* Parked before anyone can see the waiter: a commit may fire it (and
     * continue the request elsewhere) as soon as the lock is released. */
    req_park(r);
    link_insert(bucket_get(&n->users, user_id, true), &w->links[0], w);
    for (size_t i = 0; i < n_rooms; i++) {
        link_insert(bucket_get(&n->rooms, room_ids[i], true), &w->links[i + 1], w);
    }
    heap_push(n, w);
    if (w->heap_idx == 0) {
        pthread_cond_signal(&n->cv);
    }
    pthread_mutex_unlock(&n->mu);
    return REQ_PARKED;
}

size_t notify_waiting(struct notify *n)
{
    pthread_mutex_lock(&n->mu);
    size_t k = n->n_heap;
    pthread_mutex_unlock(&n->mu);
    return k;
}
