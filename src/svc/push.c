/*
 * The push service: merged push rule sets read from the store, and the
 * push thread that turns committed events into push actions (see push.h
 * for the contract and the ordering with the notifier).
 *
 * Threads: push_on_commit runs on the room writer thread and only copies
 * the commit into the queue. Everything else here runs on the push thread
 * (its own store_conn), except push_rules_changed (any worker: it records
 * the user in a list the push thread drains before each batch) and
 * push_rules_load/push_rules_account_data (the caller's connection).
 */
#include "svc/push.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "core/authrules.h"
#include "core/event.h"
#include "core/pushrules.h"
#include "core/roomver.h"
#include "store/store.h"
#include "svc/notify.h"
#include "svc/streams.h"

#define PUSH_MAX_BATCH 256
/* Rule sets kept in memory; past this the cache starts over. */
#define PUSH_CACHE_MAX 10000
/* Relations followed to find an event's thread (spec: at most 3 hops). */
#define PUSH_THREAD_HOPS 3
/* Rooms whose members and levels are kept between batches; past this the
 * room cache starts over. */
#define PUSH_ROOMS_MAX 1000

/* One queued commit: a deep copy of the writer's struct room_commit. */
struct entry {
    struct entry *next;
    struct room_commit c;
};

struct cached_rules {
    char *user_id; /* the map key */
    json_t *rules; /* merged rule set */
    bool needs_display_name;
    bool is_default; /* exactly the server defaults (no own rules or edits) */
};

/*
 * One evaluation shared by every member whose rules are the defaults: they
 * differ between users only in .m.rule.invite_for_me (state_key) and
 * .m.rule.is_user_mention (m.mentions.user_ids), so for an event that
 * names none of them in those places the outcome is the same for all.
 */
struct shared_eval {
    bool known;
    struct pushrules_result res;
};

/* A joined member as the push thread knows it. */
struct room_member {
    char *user_id;
    int64_t stream_ordering; /* of their current m.room.member event */
    char *display_name;      /* when dn_known (NULL: none) */
    bool dn_known;
};

/*
 * What the push thread knows about one room: read from the database on
 * first use, then kept up to date from the commits it processes (they come
 * in stream order): a member event updates the member list in place; a
 * power levels or create event, or a redaction in the room, drops the entry
 * so the next event reads it again.
 */
struct room_info {
    char *room_id;  /* the map key */
    struct arena a; /* create and power levels events */
    int64_t room_nid;
    const struct room_version *rv;
    struct room_member *members;
    size_t n_members, cap_members;
    const json_t *pl_content; /* NULL without a power levels event */
    struct event *create, *pl;
};

struct push {
    char *server_name;
    room_commit_fn *next_fn;
    void *next_ctx;
    struct notify *notify; /* told of stored push actions (STREAM_UNREAD) */

    pthread_mutex_t mu; /* guards the queue, stop and the changed list */
    pthread_cond_t cv;
    pthread_cond_t done_cv; /* broadcast when pos advances (push_wait) */
    struct entry *head, *tail;
    char **changed; /* users whose rules changed, drained by the thread */
    size_t n_changed, cap_changed;
    bool stop;
    bool running;
    pthread_t thread;

    struct store_conn *db; /* push thread only */
    struct map cache;      /* user_id -> struct cached_rules *; push thread only */
    struct map rooms;      /* room_id -> struct room_info *; push thread only */
    _Atomic int64_t pos;
};

/* ---- loading rule sets ---- */

/* Parses JSON text into `a` (NULL when absent or unreadable). */
static json_t *parse_in(struct arena *a, const char *text)
{
    if (!text) {
        return NULL;
    }
    return json_arena(a, json_loads(text, JSON_DECODE_ANY, NULL));
}

int push_rules_load(struct store_conn *db, const char *user_id, json_t **out)
{
    struct arena a;
    arena_init(&a);
    struct store_push_rule *rules = NULL;
    struct store_push_default *defs = NULL;
    size_t n_rules = 0, n_defs = 0;
    int rc = store_push_rules_list(db, &a, user_id, &rules, &n_rules);
    if (rc == 0) {
        rc = store_push_defaults_list(db, &a, user_id, &defs, &n_defs);
    }
    if (rc < 0) {
        arena_release(&a);
        return rc;
    }
    json_t *user = json_arena(&a, json_object());
    for (int k = 0; k < PUSHRULE_KINDS; k++) {
        json_object_set_new(user, pushrules_kind_name((enum pushrule_kind)k), json_array());
    }
    for (size_t i = 0; i < n_rules; i++) {
        const struct store_push_rule *r = &rules[i];
        json_t *arr = json_object_get(user, r->kind);
        json_t *actions = parse_in(&a, r->actions);
        if (!arr || !json_is_array(actions)) {
            continue; /* a kind or row this version does not know */
        }
        json_t *rule = json_pack("{s:s, s:b, s:O}", "rule_id", r->rule_id, "enabled",
                                 r->enabled, "actions", actions);
        int kind = pushrules_kind_parse(r->kind);
        if (kind == PUSHRULE_OVERRIDE || kind == PUSHRULE_UNDERRIDE) {
            json_t *conds = parse_in(&a, r->conditions);
            json_object_set_new(rule, "conditions",
                                json_is_array(conds) ? json_incref(conds) : json_array());
        } else if (kind == PUSHRULE_CONTENT && r->pattern) {
            json_object_set_new(rule, "pattern", json_string(r->pattern));
        }
        json_array_append_new(arr, rule);
    }
    json_t *changes = json_arena(&a, json_object());
    for (size_t i = 0; i < n_defs; i++) {
        json_t *ch = json_object();
        if (defs[i].enabled >= 0) {
            json_object_set_new(ch, "enabled", json_boolean(defs[i].enabled));
        }
        json_t *actions = parse_in(&a, defs[i].actions);
        if (json_is_array(actions)) {
            json_object_set(ch, "actions", actions);
        }
        json_object_set_new(changes, defs[i].rule_id, ch);
    }
    *out = pushrules_merge(user_id, user, changes);
    arena_release(&a);
    return 0;
}

int push_rules_account_data(struct store_conn *db, const char *user_id, json_t **out)
{
    json_t *global;
    int rc = push_rules_load(db, user_id, &global);
    if (rc < 0) {
        return rc;
    }
    *out = json_pack("{s:o}", "global", global);
    return 0;
}

/* ---- the service ---- */

struct push *push_new(const char *server_name)
{
    struct push *p = xcalloc(1, sizeof(*p));
    p->server_name = xstrdup(server_name);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->done_cv, &attr);
    pthread_condattr_destroy(&attr);
    map_init(&p->cache);
    map_init(&p->rooms);
    atomic_init(&p->pos, 0);
    return p;
}

static void cache_clear(struct push *p)
{
    const struct map_entry *e;
    for (size_t i = 0; map_next(&p->cache, &i, &e);) {
        struct cached_rules *cr = e->value;
        json_decref(cr->rules);
        free(cr->user_id);
        free(cr);
    }
    map_release(&p->cache);
    map_init(&p->cache);
}

static void cache_drop(struct push *p, const char *user_id)
{
    struct cached_rules *cr = map_del(&p->cache, str_from(user_id));
    if (cr) {
        json_decref(cr->rules);
        free(cr->user_id);
        free(cr);
    }
}

static void room_info_free(struct room_info *ri)
{
    if (!ri) {
        return;
    }
    for (size_t i = 0; i < ri->n_members; i++) {
        free(ri->members[i].user_id);
        free(ri->members[i].display_name);
    }
    free(ri->members);
    arena_release(&ri->a);
    free(ri->room_id);
    free(ri);
}

static void rooms_clear(struct push *p)
{
    const struct map_entry *e;
    for (size_t i = 0; map_next(&p->rooms, &i, &e);) {
        room_info_free(e->value);
    }
    map_release(&p->rooms);
    map_init(&p->rooms);
}

static void rooms_drop(struct push *p, const char *room_id)
{
    room_info_free(map_del(&p->rooms, str_from(room_id)));
}

static void entry_free(struct entry *e)
{
    free((char *)e->c.room_id);
    free((char *)e->c.event_id);
    free((char *)e->c.type);
    free((char *)e->c.state_key);
    free((char *)e->c.sender);
    free((char *)e->c.membership);
    free((char *)e->c.json);
    free(e);
}

void push_free(struct push *p)
{
    if (!p) {
        return;
    }
    while (p->head) {
        struct entry *e = p->head;
        p->head = e->next;
        entry_free(e);
    }
    for (size_t i = 0; i < p->n_changed; i++) {
        free(p->changed[i]);
    }
    free(p->changed);
    cache_clear(p);
    map_release(&p->cache);
    rooms_clear(p);
    map_release(&p->rooms);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->server_name);
    free(p);
}

void push_set_next_listener(struct push *p, room_commit_fn *fn, void *ctx)
{
    p->next_fn = fn;
    p->next_ctx = ctx;
}

void push_set_notify(struct push *p, struct notify *n) { p->notify = n; }

void push_set_stream_pos(struct push *p, int64_t pos) { atomic_store(&p->pos, pos); }

bool push_wait(struct push *p, int64_t pos, int64_t timeout_ms)
{
    if (atomic_load(&p->pos) >= pos) {
        return true;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->pos) < pos && p->running && !p->stop) {
        if (pthread_cond_timedwait(&p->done_cv, &p->mu, &ts) != 0) {
            break;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->pos) >= pos;
}

int64_t push_stream_pos(struct push *p)
{
    return atomic_load(&p->pos);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* The writer's strings die with its job, so every pointer field of struct
 * room_commit is copied here (a field added there must be added here). */
void push_on_commit(void *ctx, const struct room_commit *c)
{
    struct push *p = ctx;
    if (p->next_fn) {
        p->next_fn(p->next_ctx, c);
    }
    pthread_mutex_lock(&p->mu);
    if (!p->running || p->stop) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    struct entry *e = xcalloc(1, sizeof(*e));
    e->c = *c;
    e->c.room_id = dup_or_null(c->room_id);
    e->c.event_id = dup_or_null(c->event_id);
    e->c.type = dup_or_null(c->type);
    e->c.state_key = dup_or_null(c->state_key);
    e->c.sender = dup_or_null(c->sender);
    e->c.membership = dup_or_null(c->membership);
    e->c.json = dup_or_null(c->json);
    if (p->tail) {
        p->tail->next = e;
    } else {
        p->head = e;
    }
    p->tail = e;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void push_rules_changed(struct push *p, const char *user_id)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->n_changed == p->cap_changed) {
        p->cap_changed = p->cap_changed ? 2 * p->cap_changed : 16;
        p->changed = xrealloc(p->changed, sizeof(*p->changed) * p->cap_changed);
    }
    p->changed[p->n_changed++] = xstrdup(user_id);
    pthread_mutex_unlock(&p->mu);
}

/* ---- the push thread: one batch ---- */

struct batch {
    struct push *p;
    struct arena *a;
    struct store_push_action *rows;
    size_t n_rows, cap_rows;
    const char **redacted; /* event IDs whose push actions go */
    size_t n_redacted, cap_redacted;
};

static bool is_local(const struct push *p, const char *user_id)
{
    const char *colon = user_id ? strchr(user_id, ':') : NULL;
    return colon && strcmp(colon + 1, p->server_name) == 0;
}

/* Reads and parses a current state event into the room's arena (NULL
 * when absent or unreadable). */
static struct event *state_event(struct batch *b, struct room_info *ri, const char *type,
                                 const char *state_key)
{
    char *event_id = NULL, *text = NULL;
    if (store_push_state_json(b->p->db, b->a, ri->room_nid, type, state_key, &event_id, &text) <
        0) {
        return NULL;
    }
    json_t *pdu = json_loads(text, 0, NULL);
    if (!pdu) {
        return NULL;
    }
    struct event *ev = NULL;
    const char *why;
    int rc = event_parse(&ri->a, ri->rv, pdu, arena_strdup(&ri->a, event_id), &ev, &why);
    json_decref(pdu); /* the arena holds its own reference on success */
    return rc == 0 ? ev : NULL;
}

static void member_add(struct room_info *ri, const char *user_id, int64_t stream_ordering)
{
    if (ri->n_members == ri->cap_members) {
        ri->cap_members = ri->cap_members ? 2 * ri->cap_members : 8;
        ri->members = xrealloc(ri->members, sizeof(*ri->members) * ri->cap_members);
    }
    ri->members[ri->n_members++] = (struct room_member){
        .user_id = xstrdup(user_id),
        .stream_ordering = stream_ordering,
    };
}

static struct room_member *member_find(struct room_info *ri, const char *user_id)
{
    for (size_t i = 0; i < ri->n_members; i++) {
        if (strcmp(ri->members[i].user_id, user_id) == 0) {
            return &ri->members[i];
        }
    }
    return NULL;
}

/* The room's cached info, read from the database on a miss. */
static struct room_info *room_info(struct batch *b, const char *room_id)
{
    struct push *p = b->p;
    struct room_info *ri = map_get(&p->rooms, str_from(room_id));
    if (ri) {
        return ri;
    }
    struct store_room room;
    struct store_push_member *members = NULL;
    size_t n_members = 0;
    if (store_room_get(p->db, b->a, room_id, &room) < 0 || !roomver_get(room.room_version) ||
        store_push_room_members(p->db, b->a, room.nid, &members, &n_members) < 0) {
        return NULL;
    }
    if (p->rooms.count >= PUSH_ROOMS_MAX) {
        rooms_clear(p);
    }
    ri = xcalloc(1, sizeof(*ri));
    ri->room_id = xstrdup(room_id);
    arena_init(&ri->a);
    ri->room_nid = room.nid;
    ri->rv = roomver_get(room.room_version);
    for (size_t i = 0; i < n_members; i++) {
        member_add(ri, members[i].user_id, members[i].stream_ordering);
    }
    ri->create = state_event(b, ri, "m.room.create", "");
    ri->pl = state_event(b, ri, "m.room.power_levels", "");
    ri->pl_content = ri->pl ? ri->pl->content : NULL;
    map_put(&p->rooms, str_from(ri->room_id), ri);
    return ri;
}

/*
 * Brings the cached room up to date after its state event `c` (content in
 * `ev`, NULL when unreadable). A member event updates the member list; power levels and create
 * events drop the entry. A member whose cached event is already at or after
 * `c` (read from the database after `c` committed) is left as it is.
 */
static void room_info_apply(struct push *p, struct room_info *ri, const struct room_commit *c,
                            const json_t *ev)
{
    if (strcmp(c->type, "m.room.member") != 0) {
        if (c->state_key[0] == '\0' && (strcmp(c->type, "m.room.power_levels") == 0 ||
                                        strcmp(c->type, "m.room.create") == 0)) {
            rooms_drop(p, c->room_id);
        }
        return;
    }
    struct room_member *m = member_find(ri, c->state_key);
    if (m && m->stream_ordering >= c->stream) {
        return;
    }
    bool join = c->membership && strcmp(c->membership, "join") == 0;
    if (!join) {
        if (m) {
            free(m->user_id);
            free(m->display_name);
            *m = ri->members[--ri->n_members];
        }
        return;
    }
    if (!m) {
        member_add(ri, c->state_key, c->stream);
        m = &ri->members[ri->n_members - 1];
    }
    m->stream_ordering = c->stream;
    free(m->display_name);
    const char *dn = json_get_str(json_get_obj(ev, "content"), "displayname");
    m->display_name = dup_or_null(dn);
    m->dn_known = ev != NULL;
}

static const struct event *auth_get(void *ud, const char *type, const char *state_key)
{
    const struct room_info *ri = ud;
    if (state_key[0] != '\0') {
        return NULL;
    }
    if (strcmp(type, "m.room.create") == 0) {
        return ri->create;
    }
    if (strcmp(type, "m.room.power_levels") == 0) {
        return ri->pl;
    }
    return NULL;
}

/* The user's merged rule set from the cache, loading it on a miss. */
static struct cached_rules *rules_of(struct push *p, const char *user_id)
{
    struct cached_rules *cr = map_get(&p->cache, str_from(user_id));
    if (cr) {
        return cr;
    }
    json_t *rules;
    if (push_rules_load(p->db, user_id, &rules) < 0) {
        return NULL;
    }
    if (p->cache.count >= PUSH_CACHE_MAX) {
        cache_clear(p);
    }
    cr = xcalloc(1, sizeof(*cr));
    cr->user_id = xstrdup(user_id);
    cr->rules = rules;
    cr->needs_display_name = pushrules_needs_display_name(rules);
    json_t *defaults = pushrules_defaults(user_id);
    cr->is_default = json_equal(rules, defaults);
    json_decref(defaults);
    map_put(&p->cache, str_from(cr->user_id), cr);
    return cr;
}

/* The user's display name in the room, from their m.room.member event
 * (kept with the member once read). */
static const char *display_name(struct batch *b, struct room_info *ri, const char *user)
{
    struct room_member *m = member_find(ri, user);
    if (m && m->dn_known) {
        return m->display_name;
    }
    char *event_id, *text;
    if (store_push_state_json(b->p->db, b->a, ri->room_nid, "m.room.member", user, &event_id,
                              &text) < 0) {
        return NULL;
    }
    json_t *pdu = json_arena(b->a, json_loads(text, 0, NULL));
    const char *dn = json_get_str(json_get_obj(pdu, "content"), "displayname");
    if (m) {
        m->display_name = dup_or_null(dn);
        m->dn_known = true;
    }
    return dn;
}

/*
 * The thread an event belongs to (spec "Receiving notifications": follow
 * relations up to 3 hops until an m.thread relation names the root), or
 * NULL for the main timeline.
 */
static const char *thread_of(struct batch *b, const json_t *ev)
{
    const json_t *rel = json_get_obj(json_get_obj(ev, "content"), "m.relates_to");
    const char *rel_type = json_get_str(rel, "rel_type");
    const char *parent = json_get_str(rel, "event_id");
    for (int hop = 0; hop < PUSH_THREAD_HOPS && rel_type && parent; hop++) {
        if (strcmp(rel_type, "m.thread") == 0) {
            return parent;
        }
        char *next_type = NULL, *next_parent = NULL;
        if (store_push_relation_parent(b->p->db, b->a, parent, &next_type, &next_parent) < 0) {
            return NULL;
        }
        rel_type = next_type;
        parent = next_parent;
    }
    return NULL;
}

static void add_row(struct batch *b, const struct store_push_action *row)
{
    if (b->n_rows == b->cap_rows) {
        size_t cap = b->cap_rows ? 2 * b->cap_rows : 64;
        struct store_push_action *n = ARENA_ARRAY(b->a, struct store_push_action, cap);
        if (b->n_rows) {
            memcpy(n, b->rows, sizeof(*n) * b->n_rows);
        }
        b->rows = n;
        b->cap_rows = cap;
    }
    b->rows[b->n_rows++] = *row;
}

/* Whether the default rules could treat `user` differently from other
 * users for this event (see struct shared_eval). Glob characters in a
 * (historical) user ID make its invite pattern match others: specific. */
static bool names_user(const json_t *ev, const char *user)
{
    if (strpbrk(user, "*?")) {
        return true;
    }
    const char *sk = json_get_str(ev, "state_key");
    if (sk && strcasecmp(sk, user) == 0) {
        return true;
    }
    const json_t *ids = json_object_get(
        json_get_obj(json_get_obj(ev, "content"), "m.mentions"), "user_ids");
    size_t i;
    const json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), user) == 0) {
            return true;
        }
    }
    return false;
}

/* Evaluates one event for one user and records a push action if it
 * notifies; `shared` (may be NULL) reuses one evaluation across members
 * with the default rules. */
static void eval_for(struct batch *b, struct room_info *ri, const struct room_commit *c,
                     const json_t *ev, const char *user, int64_t sender_power,
                     const char *thread_id, struct shared_eval *shared)
{
    struct cached_rules *cr = rules_of(b->p, user);
    if (!cr) {
        return;
    }
    bool reuse = shared && cr->is_default && !cr->needs_display_name && !names_user(ev, user);
    if (reuse && shared->known) {
        if (shared->res.notify) {
            struct store_push_action row = {
                .user_id = arena_strdup(b->a, user),
                .room_nid = ri->room_nid,
                .stream_ordering = c->stream,
                .notify = true,
                .highlight = shared->res.highlight,
                .thread_id = thread_id,
            };
            add_row(b, &row);
        }
        return;
    }
    struct pushrules_input in = {
        .event = ev,
        .member_count = (int64_t)ri->n_members,
        .user_id = user,
        .display_name = cr->needs_display_name ? display_name(b, ri, user) : NULL,
        .power_levels = ri->pl_content,
        .sender_power = sender_power,
    };
    struct pushrules_result res;
    pushrules_eval(cr->rules, &in, &res);
    if (reuse) {
        shared->known = true;
        shared->res = res;
    }
    if (!res.notify) {
        return;
    }
    struct store_push_action row = {
        .user_id = arena_strdup(b->a, user),
        .room_nid = ri->room_nid,
        .stream_ordering = c->stream,
        .notify = true,
        .highlight = res.highlight,
        .thread_id = thread_id,
    };
    add_row(b, &row);
}

/* The event as JSON with "event_id" (batch arena), or NULL. The writer
 * hands over the event it stored; without it the event is read back. */
static json_t *event_json(struct batch *b, const struct room_commit *c)
{
    const char *text = c->json;
    if (!text) {
        struct store_event se;
        if (store_event_get(b->p->db, b->a, c->event_id, &se) < 0 || se.rejected || !se.json) {
            return NULL;
        }
        text = se.json;
    }
    json_t *ev = json_arena(b->a, json_loads(text, 0, NULL));
    if (!json_is_object(ev)) {
        return NULL;
    }
    json_object_set_new(ev, "event_id", json_string(c->event_id));
    return ev;
}

/* Local joined members except the sender who joined by the event. */
static bool anyone_to_tell(const struct push *p, const struct room_info *ri,
                           const struct room_commit *c)
{
    for (size_t i = 0; i < ri->n_members; i++) {
        const struct room_member *m = &ri->members[i];
        if (m->stream_ordering <= c->stream && strcmp(m->user_id, c->sender) != 0 &&
            is_local(p, m->user_id)) {
            return true;
        }
    }
    return false;
}

static void process(struct batch *b, const struct room_commit *c)
{
    struct push *p = b->p;
    if (!c->room_id) {
        return;
    }
    json_t *ev = NULL;
    if (strcmp(c->type, "m.room.redaction") == 0) {
        ev = event_json(b, c);
        const char *redacts = json_get_str(ev, "redacts");
        if (!redacts) {
            redacts = json_get_str(json_get_obj(ev, "content"), "redacts");
        }
        if (redacts) {
            if (b->n_redacted == b->cap_redacted) {
                size_t cap = b->cap_redacted ? 2 * b->cap_redacted : 16;
                const char **n = ARENA_ARRAY(b->a, const char *, cap);
                if (b->n_redacted) {
                    memcpy(n, b->redacted, sizeof(*n) * b->n_redacted);
                }
                b->redacted = n;
                b->cap_redacted = cap;
            }
            b->redacted[b->n_redacted++] = arena_strdup(b->a, redacts);
        }
        /* It may have pruned the current power levels or a member event. */
        rooms_drop(p, c->room_id);
    }
    struct room_info *ri = room_info(b, c->room_id);
    if (!ri) {
        return;
    }
    /* An invitee is not joined, yet .m.rule.invite_for_me is for them. */
    bool member = c->state_key && strcmp(c->type, "m.room.member") == 0;
    bool invitee = member && c->membership && strcmp(c->membership, "invite") == 0 &&
                   strcmp(c->state_key, c->sender) != 0 && is_local(p, c->state_key);
    bool tell = invitee || anyone_to_tell(p, ri, c);
    /* Parsed only when someone is evaluated or a member event updates the room. */
    if (!ev && (tell || member)) {
        ev = event_json(b, c);
    }
    if (!ev) {
        if (c->state_key) {
            room_info_apply(p, ri, c, NULL);
        }
        return;
    }
    if (tell) {
        struct auth_state st = {auth_get, ri};
        int64_t sender_power = authrules_user_power(ri->rv, &st, c->sender);
        const char *thread_id = thread_of(b, ev);
        if (thread_id) {
            thread_id = arena_strdup(b->a, thread_id);
        }
        struct shared_eval shared = {0};
        for (size_t i = 0; i < ri->n_members; i++) {
            const struct room_member *m = &ri->members[i];
            /* Members who joined after this event do not see it as new. */
            if (strcmp(m->user_id, c->sender) == 0 || m->stream_ordering > c->stream ||
                !is_local(p, m->user_id)) {
                continue;
            }
            eval_for(b, ri, c, ev, m->user_id, sender_power, thread_id, &shared);
        }
        if (invitee) {
            eval_for(b, ri, c, ev, c->state_key, sender_power, thread_id, NULL);
        }
    }
    if (c->state_key) {
        room_info_apply(p, ri, c, ev);
    }
}

static void run_batch(struct push *p, struct entry *batch)
{
    struct arena a;
    arena_init(&a);
    struct batch b = {.p = p, .a = &a};
    int64_t last = 0;
    for (struct entry *e = batch; e; e = e->next) {
        process(&b, &e->c);
        last = e->c.stream;
    }
    if (b.n_rows > 0 || b.n_redacted > 0) {
        int rc = store_begin(p->db);
        for (size_t i = 0; rc == 0 && i < b.n_redacted; i++) {
            rc = store_push_actions_remove_event(p->db, b.redacted[i]);
        }
        if (rc == 0) {
            rc = store_push_actions_add(p->db, b.rows, b.n_rows);
        }
        rc = store_end(p->db, rc);
        if (rc < 0) {
            LOG_ERROR("push", "could not store %zu push actions (%s)", b.n_rows, err_message(rc));
        }
    }
    pthread_mutex_lock(&p->mu);
    if (last > atomic_load(&p->pos)) {
        atomic_store(&p->pos, last);
    }
    pthread_cond_broadcast(&p->done_cv);
    pthread_mutex_unlock(&p->mu);
    /* The users whose counts changed learn of it through their syncs. */
    struct map told;
    map_init(&told);
    for (size_t i = 0; p->notify && i < b.n_rows; i++) {
        const char *user = b.rows[i].user_id;
        if (!map_has(&told, str_from(user))) {
            map_put(&told, str_from(user), (void *)1);
            notify_stream(p->notify, STREAM_UNREAD, last, user, NULL, 0);
        }
    }
    map_release(&told);
    arena_release(&a);
    while (batch) {
        struct entry *e = batch;
        batch = e->next;
        entry_free(e);
    }
}

static void *push_main(void *arg)
{
    struct push *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stop && p->n_changed == 0) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        char **changed = p->changed;
        size_t n_changed = p->n_changed;
        p->changed = NULL;
        p->n_changed = p->cap_changed = 0;
        struct entry *batch = p->head;
        if (batch) {
            struct entry *last = batch;
            for (size_t n = 1; last->next && n < PUSH_MAX_BATCH; n++) {
                last = last->next;
            }
            p->head = last->next;
            if (!p->head) {
                p->tail = NULL;
            }
            last->next = NULL;
        }
        bool done = !batch && p->stop;
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < n_changed; i++) {
            cache_drop(p, changed[i]);
            free(changed[i]);
        }
        free(changed);
        if (batch) {
            run_batch(p, batch);
        }
        if (done) {
            return NULL;
        }
    }
}

int push_start(struct push *p, struct store *store)
{
    int rc = store_conn_open(store, &p->db);
    if (rc == 0) {
        /* Push actions derive from stored events: not worth an fsync each
         * (which would also hold the database's write lock from the event
         * writer while it waits). */
        rc = store_conn_set_relaxed(p->db);
    }
    if (rc < 0) {
        store_conn_close(p->db);
        p->db = NULL;
        return rc;
    }
    pthread_mutex_lock(&p->mu);
    p->running = true;
    pthread_mutex_unlock(&p->mu);
    if (pthread_create(&p->thread, NULL, push_main, p) != 0) {
        pthread_mutex_lock(&p->mu);
        p->running = false;
        pthread_mutex_unlock(&p->mu);
        store_conn_close(p->db);
        p->db = NULL;
        return -ERR_UNKNOWN;
    }
    return 0;
}

void push_stop(struct push *p)
{
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    bool running = p->running;
    p->stop = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (!running) {
        return;
    }
    pthread_join(p->thread, NULL);
    pthread_mutex_lock(&p->mu);
    p->running = false;
    pthread_mutex_unlock(&p->mu);
    store_conn_close(p->db);
    p->db = NULL;
}
