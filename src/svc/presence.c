/*
 * Presence (see presence.h for the rules). One mutex guards a map of
 * users (user ID -> struct puser, kept for the process's lifetime), the
 * list of users who are not offline (the only ones the timer looks at),
 * the list of users with an unwritten visible change, and a ring of the
 * last PRESENCE_LOG_SIZE written changes ordered by stream position.
 *
 * Writing ("flushing") follows streams.h: reserve one STREAM_PRESENCE
 * position, give it to every pending change, store their rows and the
 * position in one transaction, publish, then wake the parked /syncs of
 * each changed user and of their joined rooms. A PUT flushes on its own
 * connection before answering; changes made by syncs and activity bumps
 * are flushed by the timer thread, which the change wakes at once.
 *
 * /sync asks for the changes in (since, upto]: the ring answers that when
 * it reaches back to `since`, and each user's own position tells whether
 * a ring entry is still its latest change (so a user appears once).
 * Older tokens (and tokens from before a restart) fall back to checking
 * the position of every user sharing a room. Events carry the current
 * presence, which may be newer than `upto`; the next sync then sends it
 * again, which is harmless for a "current state" event.
 *
 * Remote users live in the same map, flagged `remote`, never in the
 * timer's list, and also in a list ordered by last update, so the one
 * updated longest ago is dropped past PRESENCE_REMOTE_MAX (its ring
 * entries are cleared). Their rows are not stored. A flush also queues an
 * m.presence EDU per changed local user for the other servers sharing a
 * room with them (one transaction after the presence rows, wake-ups after
 * its commit; no transaction when there is nobody to tell).
 */
#include "svc/presence.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "core/id.h"
#include "http/req.h"
#include "store/store.h"
#include "svc/fedqueue.h"
#include "svc/notify.h"
#include "svc/streams.h"

#define PRESENCE_ACTIVE_MS 60000          /* currently_active lasts this long */
#define PRESENCE_TICK_MAX_MS 5000         /* the timer wakes at most this often */
#define PRESENCE_TICK_MIN_MS 50
#define PRESENCE_LOG_SIZE 1024            /* changes /sync can ask about cheaply */
#define PRESENCE_FEW 8                    /* up to this many: one share-room query each */

struct puser {
    char *user_id;
    enum presence_state state;
    char *status_msg;       /* NULL when none */
    int64_t last_active_ts; /* ms since the epoch, 0 = never */
    int64_t last_seen_ts;   /* last sync or request, for the offline timeout */
    struct req **syncs;     /* its /syncs in flight that affect presence */
    size_t n_syncs, cap_syncs;
    bool currently_active;  /* meaningful when online */
    bool dirty;             /* in p->dirty */
    int64_t pos;            /* STREAM_PRESENCE position of the last written change */
    size_t active_idx;      /* index in p->active, or SIZE_MAX */
    bool remote;            /* another server's user: no timeouts, not stored */
    struct puser *older, *newer; /* remote users, by last update */
};

struct log_entry {
    int64_t pos;
    struct puser *u;
};

struct presence {
    bool enabled;
    int64_t idle_ms, offline_ms, tick_ms;
    struct streams *streams;
    struct notify *notify;
    pthread_mutex_t mu;
    pthread_mutex_t flush_mu; /* one flush at a time (before mu) */
    pthread_cond_t cv;     /* CLOCK_MONOTONIC */
    struct map users;      /* user ID -> struct puser * */
    struct puser **active; /* users not offline */
    size_t n_active, cap_active;
    struct puser **dirty;  /* users with an unwritten visible change */
    size_t n_dirty, cap_dirty;
    struct log_entry log[PRESENCE_LOG_SIZE];
    size_t log_head, log_n; /* next slot, entries held */
    int64_t log_floor;      /* changes at or below this may be missing from the log */
    struct store_conn *db;  /* the timer thread's */
    struct fedqueue *fedqueue; /* borrowed; NULL: nothing is sent */
    struct puser *remote_oldest, *remote_newest;
    size_t n_remote;
    bool stopped, running;
    pthread_t thread;
};

static const char *const state_names[] = {"offline", "unavailable", "online"};

int presence_state_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++) {
        if (strcmp(s, state_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *presence_state_name(enum presence_state s) { return state_names[s]; }

bool presence_enabled(const struct presence *p) { return p && p->enabled; }

void presence_set_fedqueue(struct presence *p, struct fedqueue *q)
{
    if (p) {
        p->fedqueue = q;
    }
}

/* ---- users (lock held) ---- */

static struct puser *user_get(struct presence *p, const char *user_id, bool create)
{
    struct puser *u = map_get(&p->users, str_from(user_id));
    if (!u && create) {
        u = xcalloc(1, sizeof(*u));
        u->user_id = xstrdup(user_id);
        u->active_idx = SIZE_MAX;
        map_put(&p->users, str_from(u->user_id), u);
    }
    return u;
}

/* Keeps u in p->active exactly when it is not offline. The first user
 * listed wakes the timer, which waits without a deadline while the list
 * is empty. */
static void track(struct presence *p, struct puser *u)
{
    bool listed = u->active_idx != SIZE_MAX;
    if (u->state != PRESENCE_OFFLINE && !listed) {
        if (!p->n_active) {
            pthread_cond_signal(&p->cv);
        }
        if (p->n_active == p->cap_active) {
            p->cap_active = p->cap_active ? p->cap_active * 2 : 16;
            p->active = xrealloc(p->active, p->cap_active * sizeof(*p->active));
        }
        u->active_idx = p->n_active;
        p->active[p->n_active++] = u;
    } else if (u->state == PRESENCE_OFFLINE && listed) {
        struct puser *last = p->active[--p->n_active];
        p->active[u->active_idx] = last;
        last->active_idx = u->active_idx;
        u->active_idx = SIZE_MAX;
    }
}

/* Queues u's visible change for writing; `wake` signals the timer thread. */
static void mark_dirty(struct presence *p, struct puser *u, bool wake)
{
    if (!u->dirty) {
        if (p->n_dirty == p->cap_dirty) {
            p->cap_dirty = p->cap_dirty ? p->cap_dirty * 2 : 16;
            p->dirty = xrealloc(p->dirty, p->cap_dirty * sizeof(*p->dirty));
        }
        p->dirty[p->n_dirty++] = u;
        u->dirty = true;
    }
    if (wake) {
        pthread_cond_signal(&p->cv);
    }
}

/* Activity: online, last active now, currently active. True when that
 * is a visible change. */
static bool bump_active(struct puser *u, int64_t now)
{
    bool changed = u->state != PRESENCE_ONLINE || !u->currently_active;
    u->state = PRESENCE_ONLINE;
    u->currently_active = true;
    u->last_active_ts = now;
    u->last_seen_ts = now;
    return changed;
}

static void log_append(struct presence *p, int64_t pos, struct puser *u)
{
    if (p->log_n == PRESENCE_LOG_SIZE) {
        if (p->log[p->log_head].pos > p->log_floor) {
            p->log_floor = p->log[p->log_head].pos;
        }
    } else {
        p->log_n++;
    }
    p->log[p->log_head] = (struct log_entry){pos, u};
    p->log_head = (p->log_head + 1) % PRESENCE_LOG_SIZE;
}

/* ---- writing ---- */

static json_t *content_of_user(const struct puser *u, int64_t now);

/* The m.presence EDU content telling other servers about local user u
 * (lock held): JSON text in `a`. */
static char *edu_of(struct arena *a, const struct puser *u, int64_t now)
{
    json_t *entry = content_of_user(u, now);
    json_object_set_new(entry, "user_id", json_string(u->user_id));
    if (!json_object_get(entry, "last_active_ago")) {
        json_object_set_new(entry, "last_active_ago", json_integer(0)); /* required */
    }
    json_object_set_new(entry, "currently_active",
                        json_boolean(u->currently_active && u->state == PRESENCE_ONLINE));
    json_t *content = json_pack("{s:[o]}", "push", entry);
    char *text = json_dumps(content, JSON_COMPACT);
    json_decref(content);
    char *copy = arena_strdup(a, text ? text : "{\"push\":[]}");
    free(text);
    return copy;
}

/*
 * Queues edus[i] (NULL: a remote user, skipped) for every server other
 * than the user's own with a member in one of rows[i].user_id's joined
 * rooms, in one transaction on `db`, then wakes those servers. Failures
 * are logged: presence is not worth more.
 */
static void send_out(struct presence *p, struct store_conn *db, struct arena *a,
                     const struct store_presence *rows, char *const *edus, size_t n)
{
    if (!p->fedqueue) {
        return;
    }
    const char ***dests = ARENA_ARRAY(a, const char **, n ? n : 1);
    size_t *n_dests = ARENA_ARRAY(a, size_t, n ? n : 1);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        n_dests[i] = 0;
        char **users = NULL;
        size_t n_users = 0;
        const char *own = id_server_part(rows[i].user_id);
        if (!edus[i] || !own ||
            store_users_sharing_rooms(db, a, rows[i].user_id, &users, &n_users) < 0) {
            continue;
        }
        dests[i] = ARENA_ARRAY(a, const char *, n_users ? n_users : 1);
        struct map seen;
        map_init(&seen);
        for (size_t k = 0; k < n_users; k++) {
            const char *server = id_server_part(users[k]);
            if (!server || strcmp(server, own) == 0 || map_has(&seen, str_from(server))) {
                continue;
            }
            map_put(&seen, str_from(server), (void *)1);
            dests[i][n_dests[i]++] = server;
        }
        map_release(&seen);
        total += n_dests[i];
    }
    if (!total) {
        return; /* nobody elsewhere to tell: no transaction */
    }
    int rc = store_begin(db);
    if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            for (size_t k = 0; rc == 0 && k < n_dests[i]; k++) {
                rc = fedqueue_add_edu(p->fedqueue, db, dests[i][k], "m.presence", edus[i]);
            }
        }
        rc = store_end(db, rc);
    }
    if (rc < 0) {
        LOG_ERROR("presence", "cannot queue presence for other servers");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < n_dests[i]; k++) {
            fedqueue_wake(p->fedqueue, dests[i][k]);
        }
    }
}

/*
 * Writes every pending change under one new stream position on `db` (no
 * transaction open), publishes it and wakes the interested /syncs.
 * Returns 0 or the store's error (the changes stay in memory). Flushes
 * run one at a time, so when one finds nothing pending, every change
 * made before it started is already published (a PUT answers only then).
 */
static int flush(struct presence *p, struct store_conn *db)
{
    pthread_mutex_lock(&p->flush_mu);
    pthread_mutex_lock(&p->mu);
    bool pending = p->n_dirty > 0;
    pthread_mutex_unlock(&p->mu);
    if (!pending) {
        pthread_mutex_unlock(&p->flush_mu);
        return 0;
    }
    int64_t pos = streams_reserve(p->streams, STREAM_PRESENCE);
    struct arena a;
    arena_init(&a);
    pthread_mutex_lock(&p->mu);
    size_t n = p->n_dirty;
    struct store_presence *rows = ARENA_ARRAY(&a, struct store_presence, n ? n : 1);
    char **edus = ARENA_ARRAY(&a, char *, n ? n : 1); /* NULL for remote users */
    int64_t now = req_now_ms();
    for (size_t i = 0; i < n; i++) {
        struct puser *u = p->dirty[i];
        edus[i] = u->remote ? NULL : edu_of(&a, u, now);
        u->dirty = false;
        u->pos = pos;
        rows[i] = (struct store_presence){
            .user_id = arena_strdup(&a, u->user_id),
            .state = (char *)state_names[u->state],
            .status_msg = u->status_msg ? arena_strdup(&a, u->status_msg) : NULL,
            .last_active_ts = u->last_active_ts,
            .stream_pos = pos,
        };
        log_append(p, pos, u);
    }
    p->n_dirty = 0;
    pthread_mutex_unlock(&p->mu);

    int rc = store_begin(db);
    if (rc == 0) {
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (edus[i]) { /* remote users' rows are not stored */
                rc = store_presence_put(db, &rows[i]);
            }
        }
        if (rc == 0) {
            rc = store_stream_bump(db, STREAM_PRESENCE, pos);
        }
        rc = store_end(db, rc);
    }
    streams_publish(p->streams, STREAM_PRESENCE, pos);
    if (rc < 0) {
        LOG_ERROR("presence", "cannot store %zu presence change(s) at position %lld", n,
                  (long long)pos);
    }
    for (size_t i = 0; i < n && p->notify; i++) {
        char **rooms = NULL;
        size_t n_rooms = 0;
        if (store_user_rooms(db, &a, rows[i].user_id, "join", &rooms, &n_rooms) < 0) {
            n_rooms = 0; /* still wake the user's own syncs */
        }
        notify_stream(p->notify, STREAM_PRESENCE, pos, rows[i].user_id, rooms, n_rooms);
    }
    send_out(p, db, &a, rows, edus, n);
    arena_release(&a);
    pthread_mutex_unlock(&p->flush_mu);
    return rc;
}

/* ---- the timer thread ---- */

/* Applies the timeouts to u (lock held); true when visibly changed. */
static bool time_out(struct presence *p, struct puser *u, int64_t now)
{
    bool changed = false;
    if (u->state == PRESENCE_ONLINE && now - u->last_active_ts > p->idle_ms) {
        u->state = PRESENCE_UNAVAILABLE;
        changed = true;
    }
    if (u->state == PRESENCE_ONLINE && u->currently_active &&
        now - u->last_active_ts > PRESENCE_ACTIVE_MS) {
        u->currently_active = false;
        changed = true;
    }
    int64_t seen = u->last_seen_ts > u->last_active_ts ? u->last_seen_ts : u->last_active_ts;
    if (!u->n_syncs && now - seen > p->offline_ms) {
        u->state = PRESENCE_OFFLINE;
        changed = true;
    }
    if (u->state != PRESENCE_ONLINE) {
        u->currently_active = false;
    }
    return changed;
}

static void *timer_main(void *arg)
{
    struct presence *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopped) {
        int64_t now = req_now_ms();
        for (size_t i = 0; i < p->n_active;) {
            struct puser *u = p->active[i];
            if (time_out(p, u, now)) {
                mark_dirty(p, u, false);
            }
            track(p, u); /* an offline user leaves the list: slot i is refilled */
            if (u->active_idx != SIZE_MAX) {
                i++;
            }
        }
        if (p->n_dirty) {
            pthread_mutex_unlock(&p->mu);
            flush(p, p->db);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (!p->n_active) {
            pthread_cond_wait(&p->cv, &p->mu);
        } else {
            int64_t at = req_now_ns() + p->tick_ms * 1000000;
            struct timespec ts = {.tv_sec = (time_t)(at / 1000000000LL),
                                  .tv_nsec = (long)(at % 1000000000LL)};
            pthread_cond_timedwait(&p->cv, &p->mu, &ts);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- lifecycle ---- */

struct presence *presence_new(bool enabled, int64_t idle_timeout_ms, int64_t offline_timeout_ms,
                              struct streams *st, struct notify *n)
{
    struct presence *p = xcalloc(1, sizeof(*p));
    p->enabled = enabled;
    p->idle_ms = idle_timeout_ms;
    p->offline_ms = offline_timeout_ms;
    int64_t shortest = idle_timeout_ms < offline_timeout_ms ? idle_timeout_ms : offline_timeout_ms;
    p->tick_ms = shortest / 4;
    if (p->tick_ms > PRESENCE_TICK_MAX_MS) {
        p->tick_ms = PRESENCE_TICK_MAX_MS;
    }
    if (p->tick_ms < PRESENCE_TICK_MIN_MS) {
        p->tick_ms = PRESENCE_TICK_MIN_MS;
    }
    p->streams = st;
    p->notify = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->flush_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &attr);
    pthread_condattr_destroy(&attr);
    map_init(&p->users);
    return p;
}

/* Reads the stored rows into memory (before the thread starts). */
static int load(struct presence *p, struct store_conn *db)
{
    struct arena a;
    arena_init(&a);
    struct store_presence *rows = NULL;
    size_t n = 0;
    int rc = store_presence_all(db, &a, &rows, &n);
    int64_t now = req_now_ms();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct puser *u = user_get(p, rows[i].user_id, true);
        int st = presence_state_parse(rows[i].state);
        u->state = st < 0 ? PRESENCE_OFFLINE : (enum presence_state)st;
        free(u->status_msg);
        u->status_msg = rows[i].status_msg ? xstrdup(rows[i].status_msg) : NULL;
        u->last_active_ts = rows[i].last_active_ts;
        u->last_seen_ts = now; /* one offline timeout of grace to sync again */
        u->pos = rows[i].stream_pos;
        track(p, u);
    }
    arena_release(&a);
    /* Tokens from before this start predate the (empty) log. */
    p->log_floor = streams_current(p->streams, STREAM_PRESENCE);
    return rc;
}

int presence_start(struct presence *p, struct store *store)
{
    if (!p->enabled) {
        return 0;
    }
    int rc = store_conn_open(store, &p->db);
    if (rc == 0 && load(p, p->db) < 0) {
        /* Presence is not worth refusing to serve for: start with
         * everyone offline. */
        LOG_WARN("presence", "cannot read the stored presence; everyone starts offline");
        p->log_floor = streams_current(p->streams, STREAM_PRESENCE);
    }
    if (rc == 0 && pthread_create(&p->thread, NULL, timer_main, p) != 0) {
        rc = -ERR_UNKNOWN;
    }
    if (rc) {
        LOG_ERROR("presence", "cannot start the presence service");
        if (p->db) {
            store_conn_close(p->db);
            p->db = NULL;
        }
        return rc;
    }
    p->running = true;
    return 0;
}

void presence_stop(struct presence *p)
{
    if (!p || !p->running) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stopped = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    flush(p, p->db);
    store_conn_close(p->db);
    p->db = NULL;
    p->running = false;
}

void presence_free(struct presence *p)
{
    if (!p) {
        return;
    }
    presence_stop(p);
    size_t it = 0;
    const struct map_entry *e;
    while (map_next(&p->users, &it, &e)) {
        struct puser *u = e->value;
        free(u->status_msg);
        free(u->syncs);
        free(u->user_id);
        free(u);
    }
    map_release(&p->users);
    free(p->active);
    free(p->dirty);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->flush_mu);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- changes ---- */

int presence_set(struct presence *p, struct store_conn *db, const char *user_id,
                 enum presence_state state, const char *status_msg)
{
    if (!p || !p->enabled) {
        return 0;
    }
    if (status_msg && !*status_msg) {
        status_msg = NULL;
    }
    int64_t now = req_now_ms();
    pthread_mutex_lock(&p->mu);
    struct puser *u = user_get(p, user_id, true);
    bool changed = u->state != state ||
                   (u->status_msg ? !status_msg || strcmp(u->status_msg, status_msg) != 0
                                  : status_msg != NULL);
    if (state == PRESENCE_ONLINE) {
        changed |= bump_active(u, now);
    } else {
        u->state = state;
        u->currently_active = false;
        u->last_seen_ts = now;
    }
    free(u->status_msg);
    u->status_msg = status_msg ? xstrdup(status_msg) : NULL;
    if (changed) {
        mark_dirty(p, u, false);
    }
    track(p, u);
    pthread_mutex_unlock(&p->mu);
    return changed ? flush(p, db) : 0;
}

/* ---- remote users (lock held) ---- */

static void remote_unlink(struct presence *p, struct puser *u)
{
    if (u->older) {
        u->older->newer = u->newer;
    } else {
        p->remote_oldest = u->newer;
    }
    if (u->newer) {
        u->newer->older = u->older;
    } else {
        p->remote_newest = u->older;
    }
    u->older = u->newer = NULL;
}

static void remote_link_newest(struct presence *p, struct puser *u)
{
    u->older = p->remote_newest;
    u->newer = NULL;
    if (p->remote_newest) {
        p->remote_newest->newer = u;
    } else {
        p->remote_oldest = u;
    }
    p->remote_newest = u;
}

/* Forgets the remote user updated longest ago: out of the map, the list,
 * the pending changes and the ring, then freed. */
static void remote_drop_oldest(struct presence *p)
{
    struct puser *u = p->remote_oldest;
    if (!u) {
        return;
    }
    remote_unlink(p, u);
    p->n_remote--;
    map_del(&p->users, str_from(u->user_id));
    for (size_t i = 0; u->dirty && i < p->n_dirty; i++) {
        if (p->dirty[i] == u) {
            p->dirty[i] = p->dirty[--p->n_dirty];
            break;
        }
    }
    for (size_t i = 0; i < PRESENCE_LOG_SIZE; i++) {
        if (p->log[i].u == u) {
            p->log[i].u = NULL;
        }
    }
    free(u->status_msg);
    free(u->syncs);
    free(u->user_id);
    free(u);
}

void presence_remote_update(struct presence *p, const char *user_id, enum presence_state state,
                            const char *status_msg, int64_t last_active_ago,
                            bool currently_active)
{
    if (!p || !p->enabled) {
        return;
    }
    if (status_msg && !*status_msg) {
        status_msg = NULL;
    }
    currently_active = currently_active && state == PRESENCE_ONLINE;
    int64_t now = req_now_ms();
    pthread_mutex_lock(&p->mu);
    struct puser *u = user_get(p, user_id, false);
    if (u && !u->remote) {
        pthread_mutex_unlock(&p->mu); /* one of ours: only we decide */
        return;
    }
    bool changed = true;
    if (u) {
        changed = u->state != state || u->currently_active != currently_active ||
                  (u->status_msg ? !status_msg || strcmp(u->status_msg, status_msg) != 0
                                 : status_msg != NULL);
        remote_unlink(p, u);
    } else {
        if (p->n_remote >= PRESENCE_REMOTE_MAX) {
            remote_drop_oldest(p);
        }
        u = user_get(p, user_id, true);
        u->remote = true;
        p->n_remote++;
    }
    remote_link_newest(p, u);
    u->state = state;
    u->currently_active = currently_active;
    free(u->status_msg);
    u->status_msg = status_msg ? xstrdup(status_msg) : NULL;
    if (last_active_ago >= 0) {
        u->last_active_ts = last_active_ago < now ? now - last_active_ago : 1;
    }
    u->last_seen_ts = now;
    if (changed) {
        mark_dirty(p, u, true);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The state a /sync's set_presence asks for, or -1 for "leave it alone". */
static int sync_state(const char *set_presence)
{
    if (!set_presence || !*set_presence) {
        return PRESENCE_ONLINE;
    }
    int st = presence_state_parse(set_presence);
    return st == PRESENCE_OFFLINE ? -1 : st < 0 ? PRESENCE_ONLINE : st;
}

/* A /sync in flight: ended by its request's arena cleanup. */
struct sync_ref {
    struct presence *p;
    struct req *r;
    const char *user_id; /* the request's arena */
};

static void sync_ended(void *data)
{
    struct sync_ref *ref = data;
    struct presence *p = ref->p;
    pthread_mutex_lock(&p->mu);
    struct puser *u = user_get(p, ref->user_id, false);
    for (size_t i = 0; u && i < u->n_syncs; i++) {
        if (u->syncs[i] == ref->r) {
            u->syncs[i] = u->syncs[--u->n_syncs];
            u->last_seen_ts = req_now_ms(); /* the offline timeout counts from here */
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

void presence_on_sync(struct presence *p, struct req *r, const char *user_id,
                      const char *set_presence)
{
    int st = sync_state(set_presence);
    if (!p || !p->enabled || st < 0) {
        return;
    }
    int64_t now = req_now_ms();
    pthread_mutex_lock(&p->mu);
    struct puser *u = user_get(p, user_id, true);
    bool known = false;
    for (size_t i = 0; i < u->n_syncs && !known; i++) {
        known = u->syncs[i] == r;
    }
    if (!known) {
        if (u->n_syncs == u->cap_syncs) {
            u->cap_syncs = u->cap_syncs ? u->cap_syncs * 2 : 2;
            u->syncs = xrealloc(u->syncs, u->cap_syncs * sizeof(*u->syncs));
        }
        u->syncs[u->n_syncs++] = r;
        struct sync_ref *ref = ARENA_NEW(&r->arena, struct sync_ref);
        *ref = (struct sync_ref){p, r, arena_strdup(&r->arena, user_id)};
        arena_defer(&r->arena, sync_ended, ref);
    }
    u->last_seen_ts = now;
    bool changed;
    if (st == PRESENCE_ONLINE) {
        changed = bump_active(u, now);
    } else {
        changed = u->state != PRESENCE_UNAVAILABLE;
        u->state = PRESENCE_UNAVAILABLE;
        u->currently_active = false;
    }
    track(p, u);
    if (changed) {
        mark_dirty(p, u, true);
    }
    pthread_mutex_unlock(&p->mu);
}

void presence_on_activity(struct presence *p, const char *user_id)
{
    if (!p || !p->enabled) {
        return;
    }
    int64_t now = req_now_ms();
    pthread_mutex_lock(&p->mu);
    struct puser *u = user_get(p, user_id, true);
    if (bump_active(u, now)) {
        mark_dirty(p, u, true);
    }
    track(p, u);
    pthread_mutex_unlock(&p->mu);
}

/* ---- reading ---- */

/* A copy of what a client sees of one user. */
struct snap {
    const char *user_id;
    enum presence_state state;
    const char *status_msg;
    int64_t last_active_ts;
    bool currently_active;
};

static void snap_of(struct arena *a, const struct puser *u, struct snap *s)
{
    s->user_id = arena_strdup(a, u->user_id);
    s->state = u->state;
    s->status_msg = u->status_msg ? arena_strdup(a, u->status_msg) : NULL;
    s->last_active_ts = u->last_active_ts;
    s->currently_active = u->currently_active && u->state == PRESENCE_ONLINE;
}

/* The presence content of a snapshot (spec m.presence), a new reference. */
static json_t *content_of(const struct snap *s, int64_t now)
{
    json_t *c = json_object();
    json_object_set_new(c, "presence", json_string(state_names[s->state]));
    if (s->last_active_ts > 0) {
        int64_t ago = now - s->last_active_ts;
        json_object_set_new(c, "last_active_ago", json_integer(ago > 0 ? ago : 0));
    }
    if (s->status_msg) {
        json_object_set_new(c, "status_msg", json_string(s->status_msg));
    }
    if (s->state == PRESENCE_ONLINE) {
        json_object_set_new(c, "currently_active", json_boolean(s->currently_active));
    }
    return c;
}

static json_t *content_of_user(const struct puser *u, int64_t now)
{
    struct snap s = {
        .user_id = u->user_id,
        .state = u->state,
        .status_msg = u->status_msg,
        .last_active_ts = u->last_active_ts,
        .currently_active = u->currently_active && u->state == PRESENCE_ONLINE,
    };
    return content_of(&s, now);
}

json_t *presence_lookup(struct presence *p, const char *user_id)
{
    json_t *c = NULL;
    if (p && p->enabled) {
        pthread_mutex_lock(&p->mu);
        struct puser *u = user_get(p, user_id, false);
        if (u) {
            c = content_of_user(u, req_now_ms());
        }
        pthread_mutex_unlock(&p->mu);
    }
    return c;
}

json_t *presence_get(struct presence *p, const char *user_id)
{
    struct snap s = {.user_id = user_id, .state = PRESENCE_OFFLINE};
    struct arena a;
    arena_init(&a);
    if (p && p->enabled) {
        pthread_mutex_lock(&p->mu);
        struct puser *u = user_get(p, user_id, false);
        if (u) {
            snap_of(&a, u, &s);
        }
        pthread_mutex_unlock(&p->mu);
    }
    json_t *c = content_of(&s, req_now_ms());
    arena_release(&a);
    return c;
}

/* Appends s to *list (arena array with capacity *cap). */
static void push_snap(struct arena *a, struct snap **list, size_t *n, size_t *cap,
                      const struct puser *u)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct snap *bigger = ARENA_ARRAY(a, struct snap, ncap);
        if (*n) {
            memcpy(bigger, *list, *n * sizeof(**list));
        }
        *list = bigger;
        *cap = ncap;
    }
    snap_of(a, u, &(*list)[(*n)++]);
}

/*
 * Keeps the snapshots of users who share a room with `user_id` (and the
 * user), compacting list[0..*n). A few are checked one query each; more
 * are matched against the user's co-members in one query.
 */
static int keep_visible(struct req *r, const char *user_id, struct snap *list, size_t *n)
{
    size_t others = 0;
    for (size_t i = 0; i < *n; i++) {
        others += strcmp(list[i].user_id, user_id) != 0;
    }
    if (!others) {
        return 0;
    }
    struct map co;
    map_init(&co);
    int rc = 0;
    if (others > PRESENCE_FEW) {
        char **ids = NULL;
        size_t n_ids = 0;
        rc = store_presence_co_members(r->db, &r->arena, user_id, &ids, &n_ids);
        for (size_t i = 0; rc == 0 && i < n_ids; i++) {
            map_put(&co, str_from(ids[i]), ids[i]);
        }
    }
    size_t kept = 0;
    for (size_t i = 0; rc == 0 && i < *n; i++) {
        bool visible = strcmp(list[i].user_id, user_id) == 0;
        if (!visible && others > PRESENCE_FEW) {
            visible = map_has(&co, str_from(list[i].user_id));
        } else if (!visible) {
            rc = store_presence_share_room(r->db, user_id, list[i].user_id, &visible);
        }
        if (visible) {
            list[kept++] = list[i];
        }
    }
    map_release(&co);
    if (rc == 0) {
        *n = kept;
    }
    return rc;
}

int presence_sync_events(struct presence *p, struct req *r, const char *user_id, int64_t since,
                         int64_t upto, json_t *events)
{
    if (!p || !p->enabled) {
        return 0;
    }
    struct snap *list = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&p->mu);
    bool from_log = since >= 0 && since >= p->log_floor;
    if (from_log) {
        /* Newest first, back to `since`; an entry counts only while it is
         * its user's latest change, so each user appears once. */
        for (size_t k = 0; k < p->log_n; k++) {
            size_t idx = (p->log_head + PRESENCE_LOG_SIZE - 1 - k) % PRESENCE_LOG_SIZE;
            const struct log_entry *e = &p->log[idx];
            if (e->pos <= since) {
                break;
            }
            if (e->u && e->pos <= upto && e->u->pos == e->pos) { /* NULL: dropped */
                push_snap(&r->arena, &list, &n, &cap, e->u);
            }
        }
    }
    pthread_mutex_unlock(&p->mu);

    int rc;
    if (from_log) {
        if (!n) {
            return 0;
        }
        rc = keep_visible(r, user_id, list, &n);
    } else {
        /* Initial sync or a token older than the log: everyone sharing a
         * room, by their own change position. */
        char **ids = NULL;
        size_t n_ids = 0;
        rc = store_presence_co_members(r->db, &r->arena, user_id, &ids, &n_ids);
        if (rc == 0) {
            pthread_mutex_lock(&p->mu);
            for (size_t i = 0; i <= n_ids; i++) {
                const char *id = i == n_ids ? user_id : ids[i];
                if (i < n_ids && strcmp(id, user_id) == 0) {
                    continue; /* the user comes last, once */
                }
                struct puser *u = user_get(p, id, false);
                if (u && (since < 0 ? u->state != PRESENCE_OFFLINE : u->pos > since)) {
                    push_snap(&r->arena, &list, &n, &cap, u);
                }
            }
            pthread_mutex_unlock(&p->mu);
        }
    }
    if (rc < 0) {
        return rc;
    }
    int64_t now = req_now_ms();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(events, json_pack("{s:s,s:s,s:o}", "type", "m.presence", "sender",
                                                list[i].user_id, "content",
                                                content_of(&list[i], now)));
    }
    return 0;
}
