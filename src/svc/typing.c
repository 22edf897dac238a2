/*
 * Typing notifications (see typing.h). One mutex guards a map of rooms;
 * a room holds its typists (user ID and expiry) and the stream position
 * of its last change. Rooms nobody types in keep only that position, so
 * a quiet room costs one small entry. The timer thread sleeps until the
 * earliest expiry (or a change) and removes the typists whose time is up.
 *
 * typing_event reports the typists as of now with the change position
 * compared against (since, upto]: a change after `upto` (newer than the
 * answer's token) is still reported now and, being above the token, again
 * by the next sync, which is harmless for a "current state" event.
 */
#include "svc/typing.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/map.h"
#include "base/xmalloc.h"
#include "http/req.h"
#include "svc/notify.h"
#include "svc/streams.h"

#define TYPING_MAX_TIMEOUT_MS 120000
#define TYPING_DEFAULT_TIMEOUT_MS 30000

struct typist {
    char *user_id;
    int64_t expires_ns; /* req_now_ns clock */
};

struct typing_room {
    char *room_id;
    struct typist *typists;
    size_t n, cap;
    int64_t changed; /* STREAM_TYPING position of the last change */
};

struct typing {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    struct map rooms;  /* room ID -> struct typing_room * */
    struct streams *streams;
    struct notify *notify;
    bool stopped, running;
    pthread_t thread;
};

static struct typing_room *room_get(struct typing *t, const char *room_id)
{
    struct typing_room *tr = map_get(&t->rooms, str_from(room_id));
    if (!tr) {
        tr = xcalloc(1, sizeof(*tr));
        tr->room_id = xstrdup(room_id);
        map_put(&t->rooms, str_from(tr->room_id), tr);
    }
    return tr;
}

static void room_drop(struct typing_room *tr, size_t i)
{
    free(tr->typists[i].user_id);
    tr->typists[i] = tr->typists[--tr->n];
}

/* Records a change of tr (lock held) and returns the new position. */
static int64_t changed(struct typing *t, struct typing_room *tr)
{
    tr->changed = streams_advance(t->streams, STREAM_TYPING);
    return tr->changed;
}

static void wake(struct typing *t, const char *room_id, int64_t pos)
{
    char *room = (char *)room_id;
    if (t->notify) {
        notify_stream(t->notify, STREAM_TYPING, pos, NULL, &room, 1);
    }
}

void typing_set(struct typing *t, const char *room_id, const char *user_id, bool typing,
                int64_t timeout_ms)
{
    if (timeout_ms <= 0) {
        timeout_ms = TYPING_DEFAULT_TIMEOUT_MS;
    }
    if (timeout_ms > TYPING_MAX_TIMEOUT_MS) {
        timeout_ms = TYPING_MAX_TIMEOUT_MS;
    }
    int64_t expires = req_now_ns() + timeout_ms * 1000000;
    pthread_mutex_lock(&t->mu);
    struct typing_room *tr = room_get(t, room_id);
    size_t i = 0;
    while (i < tr->n && strcmp(tr->typists[i].user_id, user_id) != 0) {
        i++;
    }
    int64_t pos = 0;
    if (typing) {
        if (i == tr->n) {
            if (tr->n == tr->cap) {
                tr->cap = tr->cap ? tr->cap * 2 : 4;
                tr->typists = xrealloc(tr->typists, tr->cap * sizeof(*tr->typists));
            }
            tr->typists[tr->n++] = (struct typist){xstrdup(user_id), expires};
            pos = changed(t, tr);
        } else {
            tr->typists[i].expires_ns = expires; /* still typing: no change */
        }
        pthread_cond_signal(&t->cv);
    } else if (i < tr->n) {
        room_drop(tr, i);
        pos = changed(t, tr);
    }
    char *room = pos ? xstrdup(room_id) : NULL;
    pthread_mutex_unlock(&t->mu);
    if (pos) {
        wake(t, room, pos);
        free(room);
    }
}

json_t *typing_event(struct typing *t, const char *room_id, int64_t since, int64_t upto)
{
    (void)upto;
    json_t *ev = NULL;
    pthread_mutex_lock(&t->mu);
    struct typing_room *tr = map_get(&t->rooms, str_from(room_id));
    if (tr && (since < 0 ? tr->n > 0 : tr->changed > since)) {
        json_t *ids = json_array();
        for (size_t i = 0; i < tr->n; i++) {
            json_array_append_new(ids, json_string(tr->typists[i].user_id));
        }
        ev = json_pack("{s:s,s:{s:o}}", "type", "m.typing", "content", "user_ids", ids);
    }
    pthread_mutex_unlock(&t->mu);
    return ev;
}

/* ---- expiry ---- */

struct expired {
    char *room_id;
    int64_t pos;
};

static void *timer_main(void *arg)
{
    struct typing *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopped) {
        int64_t now = req_now_ns();
        int64_t next = 0;
        struct expired *ex = NULL;
        size_t n_ex = 0, cap_ex = 0;
        size_t it = 0;
        const struct map_entry *e;
        while (map_next(&t->rooms, &it, &e)) {
            struct typing_room *tr = e->value;
            bool dropped = false;
            for (size_t i = 0; i < tr->n;) {
                if (tr->typists[i].expires_ns <= now) {
                    room_drop(tr, i);
                    dropped = true;
                } else {
                    if (!next || tr->typists[i].expires_ns < next) {
                        next = tr->typists[i].expires_ns;
                    }
                    i++;
                }
            }
            if (dropped) {
                if (n_ex == cap_ex) {
                    cap_ex = cap_ex ? cap_ex * 2 : 8;
                    ex = xrealloc(ex, cap_ex * sizeof(*ex));
                }
                ex[n_ex++] = (struct expired){xstrdup(tr->room_id), changed(t, tr)};
            }
        }
        if (n_ex) {
            pthread_mutex_unlock(&t->mu);
            for (size_t i = 0; i < n_ex; i++) {
                wake(t, ex[i].room_id, ex[i].pos);
                free(ex[i].room_id);
            }
            free(ex);
            pthread_mutex_lock(&t->mu);
            continue;
        }
        if (!next) {
            pthread_cond_wait(&t->cv, &t->mu);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(next / 1000000000LL),
                                  .tv_nsec = (long)(next % 1000000000LL)};
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ---- lifecycle ---- */

struct typing *typing_new(struct streams *st, struct notify *n)
{
    struct typing *t = xcalloc(1, sizeof(*t));
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &attr);
    pthread_condattr_destroy(&attr);
    map_init(&t->rooms);
    t->streams = st;
    t->notify = n;
    return t;
}

int typing_start(struct typing *t)
{
    if (pthread_create(&t->thread, NULL, timer_main, t) != 0) {
        return -1;
    }
    t->running = true;
    return 0;
}

void typing_stop(struct typing *t)
{
    if (!t || !t->running) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->stopped = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    t->running = false;
}

void typing_free(struct typing *t)
{
    if (!t) {
        return;
    }
    typing_stop(t);
    size_t it = 0;
    const struct map_entry *e;
    while (map_next(&t->rooms, &it, &e)) {
        struct typing_room *tr = e->value;
        for (size_t i = 0; i < tr->n; i++) {
            free(tr->typists[i].user_id);
        }
        free(tr->typists);
        free(tr->room_id);
        free(tr);
    }
    map_release(&t->rooms);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
