/*
 * The room service: room cache, event building and persistence for local
 * senders (see room.h for the ordering rules).
 *
 * A cached room holds its current state as full PDUs keyed by
 * "type\0state_key", its forward extremities and the nid of its current
 * state snapshot. Auth checks parse the few state events they need into
 * the request arena on demand. Each state entry also keeps what readers
 * derive from its PDU, made on first use and dropped when the entry is
 * replaced or redacted: the PDU with its event ID (shared by every
 * room_state_event/room_state_all reader) and the renderings of
 * room_state_walk (the serialised client format of GET /state, the
 * /joined_members entry), so reading a big room copies no PDUs.
 *
 * A room being created enters the cache before its create event is
 * queued, which reserves its ID: a second create event with the same ID
 * is built again, never stored.
 *
 * State snapshots follow docs/STORAGE.md: a new snapshot is a layer over
 * the current one, merged upwards while it is at least half the size of
 * its parent's layer, so chains stay logarithmic and nothing is stored per
 * event beyond its one-row layer.
 *
 * A room may be known only by out-of-band memberships (a local user's
 * invite, knock or leave over federation; end of file): its state then
 * has no create event, and a join replaces it (room_import_join).
 */
#include "svc/room.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/map.h"
#include "base/xmalloc.h"
#include "config.h"
#include "core/authrules.h"
#include "core/canonjson.h"
#include "core/event.h"
#include "core/keys.h"
#include "core/pdu.h"
#include "core/redact.h"
#include "core/stateres.h"
#include "store/store.h"
#include "svc/fedevent.h"
#include "svc/fedqueue.h"
#include "svc/srv.h"

#define ROOM_MAX_PREV_EVENTS 10

/* A rendering of a state entry made for room_state_walk, by `fn`. */
struct rendering {
    room_render_fn *fn; /* NULL: slot unused */
    char *p;            /* heap, exactly len bytes (+ NUL) */
    size_t len;
};

/* Renderings kept per entry: the client format and the joined-member
 * entry are the two in use; a third kind would replace the second. */
#define ENTRY_RENDERINGS 2

/* Whole-state walks touch every entry of a big room, so what they test
 * lives in the entry itself (key and short memberships inline). */
#define ENTRY_MEMBERSHIP_INLINE 16

struct state_entry {
    size_t key_len;
    const char *type; /* points into key */
    const char *state_key;
    int64_t event_nid;
    char *event_id;
    json_t *pdu;
    /* Derived from pdu, reset with it (entry_set_pdu). */
    const char *membership; /* into mbuf, or into pdu when longer */
    bool has_ts;
    int64_t ts;
    json_t *with_id; /* pdu + "event_id", built on the first read; NULL until then */
    struct rendering renders[ENTRY_RENDERINGS];
    char mbuf[ENTRY_MEMBERSHIP_INLINE];
    char key[]; /* "type\0state_key" */
};

struct extremity {
    int64_t nid;
    char *event_id;
    int64_t depth;
    json_t *pdu; /* kept for v1/v2 reference hashes; NULL when loaded */
};

struct room {
    int64_t nid;
    char *room_id;
    const struct room_version *rv;
    pthread_mutex_t mu;
    struct map state; /* key -> struct state_entry * */
    int64_t snapshot_nid;
    struct extremity *ext;
    size_t n_ext;
    struct map pending_txns; /* txn key -> event ID (heap) of uncommitted sends */
    bool poisoned;           /* a write failed: the cache no longer matches the database */
    /* Other servers with joined members (heap strings), derived from the
     * state when first needed and dropped when a member event changes. */
    char **servers;
    size_t n_servers;
    bool servers_known;
};

struct pending_txn {
    char *key;      /* room/type/txn */
    char *event_id;
};

/* The pending map's key: transaction IDs are per user and device. */
static const char *pending_key(struct arena *a, const char *user, const char *device,
                               const char *txn_key)
{
    return arena_printf(a, "%s|%s|%s", user, device, txn_key);
}

static void pending_txn_free(struct pending_txn *p)
{
    if (p) {
        free(p->key);
        free(p->event_id);
        free(p);
    }
}

struct intern_cache {
    struct map map; /* string -> (intptr_t) nid; keys heap-owned */
};

struct write_job;

struct rooms {
    pthread_mutex_t map_mu;
    struct map by_id;       /* room_id -> struct room * */
    struct room **graveyard; /* poisoned rooms, freed at shutdown */
    size_t n_graveyard;

    /* The event writer (group commit): write_mu guards the sequences and
     * the queue; jobs are queued in stream order and committed in batches
     * by one thread on its own connection. */
    pthread_mutex_t write_mu;
    pthread_cond_t write_cv;
    int64_t next_room, next_event, next_snapshot, next_stream;
    struct write_job *head, *tail;
    bool stop;
    bool running;
    pthread_t thread;
    struct store_conn *db;
    int64_t next_type, next_sk;     /* writer thread only */
    room_commit_fn *on_commit;
    void *on_commit_ctx;
    struct fedqueue *fedqueue; /* events for other servers go here (svc/fedqueue.h) */
    struct intern_cache types, sks; /* writer thread only */
    _Atomic int64_t stream_pos;
};

/*
 * One event waiting to be written. It lives in the sending request's
 * arena: the request stays parked until its last job is committed.
 */
/* An event stored as an outlier: known (a joined room's state and auth
 * chain) but outside the timeline, with no stream position. */
struct import_event {
    const char *event_id, *type, *state_key, *sender, *canonical;
    int64_t nid, depth, origin_server_ts;
    bool rejected;
    int64_t *auth_nids;
    size_t n_auth;
};

/* One slot of an imported state. */
struct import_slot {
    const char *type, *state_key, *membership;
    int64_t event_nid;
};

/* What a join through another server stores before the join event: the
 * outliers and the base snapshot of the room's state before the join. */
struct room_import {
    struct import_event *events;
    size_t n_events;
    struct import_slot *state;
    size_t n_state;
    int64_t snapshot_nid;
    bool replaces; /* the room was known by out-of-band memberships only: its
                      current state and extremities are dropped first */
};

struct write_job {
    struct write_job *next;
    struct room *room;
    struct store_room *new_room; /* set for a room's create event */
    struct room_import *import;  /* set for the join event of a room joined remotely */
    const char **dests;          /* servers the event is sent to (queued in its transaction) */
    size_t n_dests;
    const char *event_id;
    const char *type;
    const char *state_key;
    const char *sender;
    const char *membership;
    const char *canonical;
    int64_t nid, depth, origin_server_ts, stream;
    int64_t snapshot_before; /* the room's snapshot before this event */
    int64_t snapshot_after;  /* the new snapshot nid (state events) */
    int64_t state_size;      /* entries in the state after this event */
    int64_t *prev_nids, *auth_nids;
    size_t n_prev, n_auth;
    const char *txn_key, *txn_user, *txn_device;
    const char *redacts;             /* m.room.redaction: the event to prune */
    const json_t *relates_to;        /* content["m.relates_to"] when it names a parent */
    const struct room_version *rv;
    struct req *waiter;             /* parked request to continue, or NULL */
    int (*done)(struct req *r);
    bool finished;
    int result;
};

/* ---- lifecycle ---- */

struct rooms *rooms_new(void)
{
    struct rooms *rs = xcalloc(1, sizeof(*rs));
    pthread_mutex_init(&rs->map_mu, NULL);
    pthread_mutex_init(&rs->write_mu, NULL);
    pthread_cond_init(&rs->write_cv, NULL);
    map_init(&rs->by_id);
    map_init(&rs->types.map);
    map_init(&rs->sks.map);
    atomic_init(&rs->stream_pos, 0);
    return rs;
}

/* Drops what was derived from the entry's PDU. */
static void entry_forget(struct state_entry *e)
{
    json_decref(e->with_id);
    e->with_id = NULL;
    for (size_t k = 0; k < ENTRY_RENDERINGS; k++) {
        free(e->renders[k].p);
        e->renders[k] = (struct rendering){0};
    }
}

static void entry_free(struct state_entry *e)
{
    entry_forget(e);
    json_decref(e->pdu);
    free(e->event_id);
    free(e);
}

static void room_free(struct room *room)
{
    size_t i = 0;
    const struct map_entry *me;
    while (map_next(&room->state, &i, &me)) {
        entry_free(me->value);
    }
    map_release(&room->state);
    i = 0;
    while (map_next(&room->pending_txns, &i, &me)) {
        pending_txn_free(me->value);
    }
    map_release(&room->pending_txns);
    for (size_t k = 0; k < room->n_ext; k++) {
        free(room->ext[k].event_id);
        json_decref(room->ext[k].pdu);
    }
    free(room->ext);
    free(room->room_id);
    for (size_t k = 0; k < room->n_servers; k++) {
        free(room->servers[k]);
    }
    free(room->servers);
    pthread_mutex_destroy(&room->mu);
    free(room);
}

static void intern_release(struct intern_cache *c)
{
    size_t i = 0;
    const struct map_entry *me;
    while (map_next(&c->map, &i, &me)) {
        free((char *)me->key.p);
    }
    map_release(&c->map);
}

void rooms_free(struct rooms *rs)
{
    if (!rs) {
        return;
    }
    size_t i = 0;
    const struct map_entry *me;
    while (map_next(&rs->by_id, &i, &me)) {
        room_free(me->value);
    }
    map_release(&rs->by_id);
    for (size_t k = 0; k < rs->n_graveyard; k++) {
        room_free(rs->graveyard[k]);
    }
    free(rs->graveyard);
    intern_release(&rs->types);
    intern_release(&rs->sks);
    pthread_mutex_destroy(&rs->map_mu);
    pthread_mutex_destroy(&rs->write_mu);
    pthread_cond_destroy(&rs->write_cv);
    free(rs);
}

int rooms_load_sequences(struct rooms *rs, struct store_conn *db)
{
    struct store_nid_max m;
    int rc = store_nids_max(db, &m);
    if (rc < 0) {
        return rc;
    }
    rs->next_room = m.room;
    rs->next_event = m.event;
    rs->next_snapshot = m.snapshot;
    rs->next_stream = m.stream;
    rs->next_type = m.type;
    rs->next_sk = m.state_key;
    atomic_store(&rs->stream_pos, m.stream);
    return 0;
}

int64_t rooms_stream_pos(struct rooms *rs) { return atomic_load(&rs->stream_pos); }

/* ---- state entries ---- */

static struct str make_key(struct arena *a, const char *type, const char *state_key)
{
    size_t tl = strlen(type), kl = strlen(state_key);
    char *k = arena_alloc(a, tl + kl + 2);
    memcpy(k, type, tl + 1);
    memcpy(k + tl + 1, state_key, kl + 1);
    return (struct str){k, tl + 1 + kl};
}

static const char *membership_of(const json_t *pdu);

/* Sets (or replaces, after a redaction) the entry's PDU, taking a new
 * reference, and what is derived from it. Caller holds the room's mutex
 * or owns an unpublished room. */
static void entry_set_pdu(struct state_entry *e, json_t *pdu)
{
    json_incref(pdu);
    json_decref(e->pdu);
    entry_forget(e);
    e->pdu = pdu;
    const char *m = membership_of(pdu);
    e->membership = m;
    if (m && strlen(m) < sizeof(e->mbuf)) {
        memcpy(e->mbuf, m, strlen(m) + 1);
        e->membership = e->mbuf;
    }
    long long ts = 0;
    e->has_ts = json_get_int(pdu, "origin_server_ts", &ts);
    e->ts = ts;
}

static struct state_entry *entry_new(const char *type, const char *state_key, int64_t event_nid,
                                     const char *event_id,
                                     json_t *pdu)
{
    size_t tl = strlen(type), kl = strlen(state_key);
    struct state_entry *e = xcalloc(1, sizeof(*e) + tl + kl + 2);
    memcpy(e->key, type, tl + 1);
    memcpy(e->key + tl + 1, state_key, kl + 1);
    e->key_len = tl + 1 + kl;
    e->type = e->key;
    e->state_key = e->key + tl + 1;
    e->event_nid = event_nid;
    e->event_id = xstrdup(event_id);
    entry_set_pdu(e, pdu);
    return e;
}

/* Installs e in the room's state, replacing (and freeing) any old entry. */
static void state_put(struct room *room, struct state_entry *e)
{
    struct state_entry *old = map_put(&room->state, (struct str){e->key, e->key_len}, e);
    if (old && old != e) {
        entry_free(old);
    }
}

static struct state_entry *state_get(struct room *room, struct arena *a, const char *type,
                                     const char *state_key)
{
    return map_get(&room->state, make_key(a, type, state_key));
}

/* ---- the room cache ---- */

static int room_load(struct req *r, const char *room_id, struct room **out)
{
    struct store_room row;
    int rc = store_room_get(r->db, &r->arena, room_id, &row);
    if (rc < 0) {
        return rc;
    }
    const struct room_version *rv = roomver_get(row.room_version);
    if (!rv) {
        LOG_ERROR("room", "%s has unknown room version %s", room_id, row.room_version);
        return -ERR_UNSUPPORTED_ROOM_VERSION;
    }
    struct store_state_row *rows;
    size_t n_rows;
    struct store_ext_row *ext;
    size_t n_ext;
    int64_t head = 0;
    rc = store_current_state_load(r->db, &r->arena, row.nid, &rows, &n_rows);
    if (rc == 0) {
        rc = store_extremities_load(r->db, &r->arena, row.nid, &ext, &n_ext);
    }
    if (rc == 0) {
        rc = store_room_head_get(r->db, row.nid, &head);
    }
    if (rc < 0) {
        return rc;
    }
    struct room *room = xcalloc(1, sizeof(*room));
    pthread_mutex_init(&room->mu, NULL);
    map_init(&room->state);
    map_init(&room->pending_txns);
    room->nid = row.nid;
    room->room_id = xstrdup(room_id);
    room->rv = rv;
    room->snapshot_nid = head;
    for (size_t i = 0; i < n_rows; i++) {
        json_error_t e;
        json_t *pdu = json_loads(rows[i].json, 0, &e);
        if (!pdu) {
            LOG_ERROR("room", "stored event %s is not JSON", rows[i].event_id);
            continue;
        }
        state_put(room, entry_new(rows[i].type, rows[i].state_key, rows[i].event_nid,
                                  rows[i].event_id, pdu));
        json_decref(pdu);
    }
    room->ext = xcalloc(n_ext ? n_ext : 1, sizeof(*room->ext));
    for (size_t i = 0; i < n_ext; i++) {
        room->ext[i].nid = ext[i].event_nid;
        room->ext[i].event_id = xstrdup(ext[i].event_id);
        room->ext[i].depth = ext[i].depth;
    }
    room->n_ext = n_ext;
    *out = room;
    return 0;
}

/* The cached room, loading it on first use. -ERR_NOT_FOUND if unknown. */
static int room_get(struct req *r, const char *room_id, struct room **out)
{
    struct rooms *rs = r->srv->rooms;
    pthread_mutex_lock(&rs->map_mu);
    struct room *room = map_get(&rs->by_id, str_from(room_id));
    pthread_mutex_unlock(&rs->map_mu);
    if (room) {
        *out = room;
        return 0;
    }
    if (!r->db) {
        return -ERR_NOT_FOUND;
    }
    int rc = room_load(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&rs->map_mu);
    struct room *raced = map_get(&rs->by_id, str_from(room_id));
    if (raced) {
        pthread_mutex_unlock(&rs->map_mu);
        room_free(room);
        *out = raced;
        return 0;
    }
    map_put(&rs->by_id, str_from(room->room_id), room);
    pthread_mutex_unlock(&rs->map_mu);
    *out = room;
    return 0;
}

/* ---- auth state over the cache ---- */

struct auth_ctx {
    struct room *room;
    struct req *r;
    struct map parsed; /* key -> struct event * (request arena) */
};

static const struct event *auth_get(void *ud, const char *type, const char *state_key)
{
    struct auth_ctx *ctx = ud;
    struct str key = make_key(&ctx->r->arena, type, state_key);
    struct event *ev = map_get(&ctx->parsed, key);
    if (ev) {
        return ev;
    }
    struct state_entry *e = map_get(&ctx->room->state, key);
    if (!e) {
        return NULL;
    }
    if (event_parse(&ctx->r->arena, ctx->room->rv, e->pdu, e->event_id, &ev, NULL) != 0) {
        LOG_WARN("room", "state event %s does not parse", e->event_id);
        return NULL;
    }
    map_put(&ctx->parsed, key, ev);
    return ev;
}

static void auth_ctx_init(struct auth_ctx *ctx, struct room *room, struct req *r)
{
    ctx->room = room;
    ctx->r = r;
    map_init(&ctx->parsed);
}

/* ---- interning (writer thread) ---- */

struct pending_intern {
    enum store_intern kind;
    int64_t nid;
    const char *s;
};

/* The nid for s, assigning a new one if needed (recorded in *pend to be
 * cached once the transaction commits). */
static int intern(struct rooms *rs, enum store_intern kind, const char *s, int64_t *nid,
                  struct pending_intern *pend, size_t *n_pend, size_t cap)
{
    struct intern_cache *c = kind == STORE_INTERN_TYPE ? &rs->types : &rs->sks;
    void *v = map_get(&c->map, str_from(s));
    if (v) {
        *nid = (int64_t)(intptr_t)v;
        return 0;
    }
    for (size_t i = 0; i < *n_pend; i++) {
        if (pend[i].kind == kind && strcmp(pend[i].s, s) == 0) {
            *nid = pend[i].nid;
            return 0;
        }
    }
    int rc = store_intern_get(rs->db, kind, s, nid);
    if (rc == -ERR_NOT_FOUND) {
        *nid = kind == STORE_INTERN_TYPE ? ++rs->next_type : ++rs->next_sk;
        rc = store_intern_add(rs->db, kind, *nid, s);
    }
    if (rc == 0 && *n_pend < cap) {
        pend[*n_pend].kind = kind;
        pend[*n_pend].nid = *nid;
        pend[*n_pend].s = s;
        (*n_pend)++;
    }
    return rc;
}

static void intern_publish(struct rooms *rs, const struct pending_intern *pend, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct intern_cache *c = pend[i].kind == STORE_INTERN_TYPE ? &rs->types : &rs->sks;
        if (!map_has(&c->map, str_from(pend[i].s))) {
            char *k = xstrdup(pend[i].s);
            map_put(&c->map, str_from(k), (void *)(intptr_t)pend[i].nid);
        }
    }
}

/* ---- snapshots (writer thread) ---- */

/* The map key of a layer entry's slot. */
static struct str slot_key(struct arena *a, const struct store_layer_entry *e)
{
    int64_t *k = arena_alloc(a, 2 * sizeof(int64_t));
    k[0] = e->type_nid;
    k[1] = e->state_key_nid;
    return (struct str){(const char *)k, 2 * sizeof(int64_t)};
}

/*
 * Writes snapshot `nid`: the state of snapshot `parent` changed by `delta`
 * (one entry). The new layer is merged upwards while it is at least half
 * the size of its parent's layer, so chains stay logarithmic (see
 * docs/STORAGE.md). Runs inside the writer's transaction, which sees the
 * batch's earlier snapshots.
 */
static int snapshot_add(struct store_conn *db, struct arena *a, int64_t room_nid,
                        int64_t parent, struct store_layer_entry delta, int64_t state_size,
                        int64_t nid)
{
    size_t n = 1;
    struct store_layer_entry *layer = ARENA_ARRAY(a, struct store_layer_entry, 1);
    layer[0] = delta;
    while (parent) {
        int64_t grand, size;
        struct store_layer_entry *pl;
        size_t pn;
        int rc = store_snapshot_get(db, a, parent, &grand, &size, &pl, &pn);
        if (rc < 0) {
            return rc;
        }
        if (n * 2 < pn) {
            break; /* small next to the parent's layer: stack on it */
        }
        /* Merge: the parent's entries the new layer does not override. */
        struct map seen;
        map_init(&seen);
        for (size_t j = 0; j < n; j++) {
            map_put(&seen, slot_key(a, &layer[j]), &layer[j]);
        }
        struct store_layer_entry *merged = ARENA_ARRAY(a, struct store_layer_entry, n + pn);
        memcpy(merged, layer, sizeof(*layer) * n);
        size_t m = n;
        for (size_t i = 0; i < pn; i++) {
            if (!map_has(&seen, slot_key(a, &pl[i]))) {
                merged[m++] = pl[i];
            }
        }
        map_release(&seen);
        layer = merged;
        n = m;
        parent = grand;
    }
    if (!parent) {
        /* A base snapshot carries no removals. */
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (layer[i].event_nid) {
                layer[k++] = layer[i];
            }
        }
        n = k;
    }
    int rc = store_snapshot_insert(db, nid, room_nid, parent, state_size, layer, n);
    if (rc == 0) {
        rc = store_room_head_set(db, room_nid, nid);
    }
    return rc;
}

/* ---- the event writer ---- */

/*
 * Prunes the event a redaction names (spec "Redactions"): its stored JSON
 * becomes the room version's redacted form, kept with the redaction's ID.
 * An unknown target, one in another room or one already redacted is left
 * alone (the redaction itself is still stored).
 */
static int apply_redaction(struct rooms *rs, struct arena *a, const struct write_job *j)
{
    struct store_event target;
    int rc = store_event_get(rs->db, a, j->redacts, &target);
    if (rc == -ERR_NOT_FOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (target.room_nid != j->room->nid || target.redacted_by) {
        return 0;
    }
    json_error_t e;
    json_t *pdu = json_loads(target.json, 0, &e);
    json_t *pruned = NULL;
    if (!pdu || redact_event(j->rv, pdu, &pruned) != 0) {
        json_decref(pdu);
        return 0;
    }
    json_decref(pdu);
    struct buf b = BUF_INIT;
    rc = canonjson_write(&b, pruned, canonjson_mode_for(j->rv));
    json_decref(pruned);
    if (rc == 0) {
        rc = store_event_set_redacted(rs->db, j->redacts, b.p, j->event_id);
    }
    buf_release(&b);
    if (rc == 0) {
        /* A redacted reply leaves its thread: the thread's latest activity
         * falls back to the replies still live (schema 011). */
        rc = store_thread_child_redacted(rs->db, a, target.nid);
    }
    return rc == -ERR_NOT_FOUND ? 0 : rc;
}

/* Writes a remote join's outliers and the base snapshot of the state
 * before the join, which becomes the room's current state. */
static int import_apply(struct rooms *rs, struct arena *a, struct write_job *j,
                        struct pending_intern *pend, size_t *n_pend, size_t cap)
{
    const struct room_import *im = j->import;
    int rc = im->replaces ? store_room_outofband_clear(rs->db, j->room->nid) : 0;
    for (size_t i = 0; i < im->n_events && rc == 0; i++) {
        const struct import_event *e = &im->events[i];
        int64_t type_nid = 0, sk_nid = 0;
        rc = intern(rs, STORE_INTERN_TYPE, e->type, &type_nid, pend, n_pend, cap);
        if (rc == 0 && e->state_key) {
            rc = intern(rs, STORE_INTERN_STATE_KEY, e->state_key, &sk_nid, pend, n_pend, cap);
        }
        if (rc == 0) {
            struct store_event_row row = {
                .nid = e->nid,
                .event_id = e->event_id,
                .room_nid = j->room->nid,
                .type_nid = type_nid,
                .state_key_nid = sk_nid,
                .sender = e->sender,
                .depth = e->depth,
                .origin_server_ts = e->origin_server_ts,
                .rejected = e->rejected,
                .json = e->canonical,
            };
            rc = store_event_insert(rs->db, &row);
        }
        if (rc == 0) {
            rc = store_event_edges_add(rs->db, e->nid, NULL, 0, e->auth_nids, e->n_auth);
        }
    }
    struct store_layer_entry *layer = ARENA_ARRAY(a, struct store_layer_entry, im->n_state + 1);
    for (size_t i = 0; i < im->n_state && rc == 0; i++) {
        const struct import_slot *sl = &im->state[i];
        rc = intern(rs, STORE_INTERN_TYPE, sl->type, &layer[i].type_nid, pend, n_pend, cap);
        if (rc == 0) {
            rc = intern(rs, STORE_INTERN_STATE_KEY, sl->state_key, &layer[i].state_key_nid, pend,
                        n_pend, cap);
        }
        layer[i].event_nid = sl->event_nid;
        if (rc == 0) {
            rc = store_current_state_put(rs->db, j->room->nid, layer[i].type_nid,
                                         layer[i].state_key_nid, sl->event_nid, sl->membership);
        }
    }
    if (rc == 0) {
        rc = store_snapshot_insert(rs->db, im->snapshot_nid, j->room->nid, 0,
                                   (int64_t)im->n_state, layer, im->n_state);
    }
    if (rc == 0) {
        rc = store_room_head_set(rs->db, j->room->nid, im->snapshot_nid);
    }
    return rc;
}

/* Writes one job's rows inside the current transaction. */
static int job_apply(struct rooms *rs, struct arena *a, struct write_job *j,
                     struct pending_intern *pend, size_t *n_pend, size_t cap)
{
    int64_t type_nid = 0, sk_nid = 0;
    int rc = 0;
    if (j->new_room) {
        rc = store_room_insert(rs->db, j->new_room);
    }
    if (rc == 0 && j->import) {
        rc = import_apply(rs, a, j, pend, n_pend, cap);
    }
    if (rc == 0) {
        rc = intern(rs, STORE_INTERN_TYPE, j->type, &type_nid, pend, n_pend, cap);
    }
    if (rc == 0 && j->state_key) {
        rc = intern(rs, STORE_INTERN_STATE_KEY, j->state_key, &sk_nid, pend, n_pend, cap);
    }
    if (rc == 0) {
        struct store_event_row row = {
            .nid = j->nid,
            .event_id = j->event_id,
            .room_nid = j->room->nid,
            .type_nid = type_nid,
            .state_key_nid = sk_nid,
            .sender = j->sender,
            .depth = j->depth,
            .origin_server_ts = j->origin_server_ts,
            .stream_ordering = j->stream,
            .state_before_nid = j->snapshot_before,
            .rejected = false,
            .json = j->canonical,
        };
        rc = store_event_insert(rs->db, &row);
    }
    if (rc == 0) {
        rc = store_event_edges_add(rs->db, j->nid, j->prev_nids, j->n_prev, j->auth_nids,
                                   j->n_auth);
    }
    if (rc == 0) {
        rc = store_extremities_replace(rs->db, j->room->nid, j->prev_nids, j->n_prev, j->nid);
    }
    if (rc == 0 && j->state_key) {
        rc = snapshot_add(rs->db, a, j->room->nid, j->snapshot_before,
                          (struct store_layer_entry){type_nid, sk_nid, j->nid}, j->state_size,
                          j->snapshot_after);
        if (rc == 0) {
            rc = store_current_state_put(rs->db, j->room->nid, type_nid, sk_nid, j->nid,
                                         j->membership);
        }
    }
    if (rc == 0 && j->txn_key) {
        rc = store_txn_put(rs->db, j->txn_user, j->txn_device, j->txn_key, j->event_id,
                           req_now_ms());
    }
    if (rc == 0 && j->n_dests && rs->fedqueue) {
        rc = fedqueue_add_pdu(rs->fedqueue, rs->db, j->dests, j->n_dests, j->event_id,
                              j->canonical);
    }
    if (rc == 0 && j->redacts) {
        rc = apply_redaction(rs, a, j);
    }
    if (rc == 0 && j->relates_to) {
        const json_t *rel = j->relates_to;
        rc = store_relation_add(rs->db, j->nid, j->room->nid, json_get_str(rel, "event_id"),
                                json_get_str(rel, "rel_type"), j->type, j->sender,
                                json_get_str(rel, "key"));
        if (rc == 0 && strcmp(json_get_str(rel, "rel_type"), "m.thread") == 0) {
            rc = store_thread_touch(rs->db, j->room->nid, json_get_str(rel, "event_id"),
                                    j->stream);
        }
    }
    return rc;
}

/* Marks a room as no longer matching the database: it leaves the cache and
 * the next request loads it afresh. */
static void poison(struct rooms *rs, struct room *room)
{
    if (room->poisoned) {
        return;
    }
    room->poisoned = true;
    pthread_mutex_lock(&rs->map_mu);
    if (room->room_id && map_get(&rs->by_id, str_from(room->room_id)) == room) {
        map_del(&rs->by_id, str_from(room->room_id));
    }
    rs->graveyard = xrealloc(rs->graveyard, sizeof(*rs->graveyard) * (rs->n_graveyard + 1));
    rs->graveyard[rs->n_graveyard++] = room;
    pthread_mutex_unlock(&rs->map_mu);
}

/*
 * Tells a job's room and waiter how it ended. Takes room->mu and write_mu
 * one after the other, never together, since senders take them in the
 * opposite order (room first, then the queue).
 */
static void job_finish(struct rooms *rs, struct write_job *j, int result)
{
    pthread_mutex_lock(&j->room->mu);
    if (j->txn_key) {
        struct arena a;
        arena_init(&a);
        pending_txn_free(map_del(&j->room->pending_txns,
                                 str_from(pending_key(&a, j->txn_user, j->txn_device, j->txn_key))));
        arena_release(&a);
    }
    pthread_mutex_unlock(&j->room->mu);
    if (result != 0) {
        poison(rs, j->room);
    }
    pthread_mutex_lock(&rs->write_mu);
    j->result = result;
    j->finished = true;
    struct req *w = j->waiter;
    int (*done)(struct req *) = j->done;
    j->waiter = NULL;
    pthread_mutex_unlock(&rs->write_mu);
    /* j lives in a request arena: once the waiter is released, j may be
     * gone, so nothing touches it after this point. */
    if (!w) {
        return;
    }
    if (result == 0) {
        req_continue(w, done);
    } else {
        req_fail(w, result, "The event could not be stored");
        req_complete(w);
    }
}

static void tell_listener(struct rooms *rs, const struct write_job *j);

/* After the commit: the queue sends what the event's transaction queued. */
static void wake_destinations(struct rooms *rs, const struct write_job *j)
{
    for (size_t i = 0; i < j->n_dests && rs->fedqueue; i++) {
        fedqueue_wake(rs->fedqueue, j->dests[i]);
    }
}

/* Writes a batch in one transaction; on failure, each job alone, so one
 * bad event does not fail its neighbours. */
static void write_batch(struct rooms *rs, struct write_job *batch, size_t n)
{
    struct arena a;
    arena_init(&a);
    size_t cap = 2 * n + 2;
    struct pending_intern *pend = ARENA_ARRAY(&a, struct pending_intern, cap);
    size_t n_pend = 0;
    /* Collect the jobs first: finishing one may free it (and its link). */
    struct write_job **jobs = ARENA_ARRAY(&a, struct write_job *, n);
    struct write_job *j = batch;
    for (size_t i = 0; i < n; i++, j = j->next) {
        jobs[i] = j;
    }
    int rc = store_begin(rs->db);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = jobs[i]->room->poisoned ? -ERR_DB : job_apply(rs, &a, jobs[i], pend, &n_pend, cap);
    }
    if (rc == 0) {
        rc = store_commit(rs->db);
    } else {
        LOG_DEBUG("room", "a batch of %zu events failed (%s), writing them one by one", n,
                  *store_conn_error(rs->db) ? store_conn_error(rs->db) : err_message(rc));
        store_rollback(rs->db);
    }
    if (rc == 0) {
        intern_publish(rs, pend, n_pend);
        atomic_store(&rs->stream_pos, jobs[n - 1]->stream);
        for (size_t i = 0; i < n; i++) {
            tell_listener(rs, jobs[i]);
            wake_destinations(rs, jobs[i]);
        }
        for (size_t i = 0; i < n; i++) {
            job_finish(rs, jobs[i], 0);
        }
        arena_release(&a);
        return;
    }
    /* Retry one by one, in order. */
    for (size_t i = 0; i < n; i++) {
        j = jobs[i];
        size_t np = 0;
        const char *why = NULL;
        int jrc;
        if (j->room->poisoned) {
            jrc = -ERR_DB;
            why = "an earlier event of the room was not stored";
        } else {
            jrc = store_begin(rs->db);
            if (jrc == 0) {
                jrc = job_apply(rs, &a, j, pend, &np, cap);
            }
            if (jrc == 0) {
                jrc = store_commit(rs->db);
            }
            if (jrc != 0) {
                /* Read before the rollback, which could replace it. */
                why = arena_strdup(&a, store_conn_error(rs->db));
                store_rollback(rs->db);
            }
        }
        if (jrc == 0) {
            intern_publish(rs, pend, np);
            atomic_store(&rs->stream_pos, j->stream);
            tell_listener(rs, j);
            wake_destinations(rs, j);
        } else {
            LOG_ERROR("room", "could not store event %s in %s: %s", j->event_id,
                      j->room->room_id ? j->room->room_id : "a new room",
                      why && *why ? why : err_message(jrc));
        }
        job_finish(rs, j, jrc < 0 ? jrc : 0);
    }
    arena_release(&a);
}

#define WRITER_MAX_BATCH 512

void rooms_set_fedqueue(struct rooms *rs, struct fedqueue *q) { rs->fedqueue = q; }

void rooms_set_commit_listener(struct rooms *rs, room_commit_fn *fn, void *ctx)
{
    rs->on_commit = fn;
    rs->on_commit_ctx = ctx;
}

static void tell_listener(struct rooms *rs, const struct write_job *j)
{
    if (!rs->on_commit) {
        return;
    }
    struct room_commit c = {
        .room_id = j->room->room_id,
        .event_id = j->event_id,
        .type = j->type,
        .state_key = j->state_key,
        .sender = j->sender,
        .membership = j->membership,
        .json = j->canonical,
        .stream = j->stream,
    };
    rs->on_commit(rs->on_commit_ctx, &c);
}

static void *writer_main(void *arg)
{
    struct rooms *rs = arg;
    for (;;) {
        pthread_mutex_lock(&rs->write_mu);
        while (!rs->head && !rs->stop) {
            pthread_cond_wait(&rs->write_cv, &rs->write_mu);
        }
        if (!rs->head) {
            pthread_mutex_unlock(&rs->write_mu);
            return NULL;
        }
        struct write_job *batch = rs->head;
        size_t n = 1;
        struct write_job *last = batch;
        while (last->next && n < WRITER_MAX_BATCH) {
            last = last->next;
            n++;
        }
        rs->head = last->next;
        if (!rs->head) {
            rs->tail = NULL;
        }
        last->next = NULL;
        pthread_mutex_unlock(&rs->write_mu);
        write_batch(rs, batch, n);
    }
}

int rooms_start(struct rooms *rs, struct store *store)
{
    int rc = store_conn_open(store, &rs->db);
    if (rc < 0) {
        return rc;
    }
    if (pthread_create(&rs->thread, NULL, writer_main, rs) != 0) {
        store_conn_close(rs->db);
        rs->db = NULL;
        return -ERR_UNKNOWN;
    }
    rs->running = true;
    return 0;
}

void rooms_stop(struct rooms *rs)
{
    if (!rs->running) {
        return;
    }
    pthread_mutex_lock(&rs->write_mu);
    rs->stop = true;
    pthread_cond_signal(&rs->write_cv);
    pthread_mutex_unlock(&rs->write_mu);
    pthread_join(rs->thread, NULL);
    rs->running = false;
    store_conn_close(rs->db);
    rs->db = NULL;
}

int room_wait_durable(struct req *r, int (*done)(struct req *r))
{
    struct rooms *rs = r->srv->rooms;
    struct write_job *j = r->room_job;
    if (!j) {
        return done(r); /* nothing was written (a repeated transaction ID) */
    }
    pthread_mutex_lock(&rs->write_mu);
    if (j->finished) {
        int result = j->result;
        pthread_mutex_unlock(&rs->write_mu);
        r->room_job = NULL;
        return result == 0 ? done(r) : req_fail(r, result, "The event could not be stored");
    }
    j->waiter = r;
    j->done = done;
    r->room_job = NULL;
    req_park(r);
    pthread_mutex_unlock(&rs->write_mu);
    return REQ_PARKED;
}

/* ---- building events ---- */

/* [event_id, {"sha256": hash}] for v1/v2 references. */
static json_t *v1_ref(struct req *r, const struct room_version *rv, const char *event_id,
                      const json_t *pdu)
{
    unsigned char hash[PDU_HASH_BYTES];
    char b64[64];
    json_t *loaded = NULL;
    if (!pdu) {
        struct store_event se;
        json_error_t e;
        if (store_event_get(r->db, &r->arena, event_id, &se) == 0) {
            loaded = json_loads(se.json, 0, &e);
        }
        pdu = loaded;
    }
    if (!pdu || pdu_reference_hash(rv, pdu, hash) != 0) {
        json_decref(loaded);
        return NULL;
    }
    json_decref(loaded);
    keys_b64_encode(hash, sizeof(hash), b64);
    return json_pack("[s,{s:s}]", event_id, "sha256", b64);
}

char *room_v1_event_id(struct req *r)
{
    char *s = arena_alloc(&r->arena, 24);
    for (int i = 0; i < 18; i++) {
        s[i] = (char)('a' + randombytes_uniform(26));
    }
    s[18] = '\0';
    return arena_printf(&r->arena, "$%s:%s", s, r->srv->cfg->server_name);
}

static const char *membership_of(const json_t *pdu)
{
    const char *type = json_get_str(pdu, "type");
    if (!type || strcmp(type, "m.room.member") != 0) {
        return NULL;
    }
    return json_get_str(json_get_obj(pdu, "content"), "membership");
}

/*
 * Queues a checked event for the writer and moves the room cache past it,
 * so the next event in the room builds on it at once. Caller holds
 * room->mu (or owns a room not yet published). The request waits for
 * durability with room_wait_durable before answering.
 */
/* The other servers with joined members (caller holds room->mu). */
static void room_servers_locked(struct req *r, struct room *room)
{
    if (room->servers_known) {
        return;
    }
    for (size_t k = 0; k < room->n_servers; k++) {
        free(room->servers[k]);
    }
    room->n_servers = 0;
    const char *own = r->srv->cfg->server_name;
    struct map seen;
    map_init(&seen);
    size_t it = 0;
    const struct map_entry *me;
    while (map_next(&room->state, &it, &me)) {
        const struct state_entry *e = me->value;
        const char *colon = strchr(e->state_key, ':');
        if (strcmp(e->type, "m.room.member") != 0 || !e->membership ||
            strcmp(e->membership, "join") != 0 || !colon || strcmp(colon + 1, own) == 0 ||
            map_has(&seen, str_from(colon + 1))) {
            continue;
        }
        map_put(&seen, str_from(colon + 1), (void *)1);
        room->servers = xrealloc(room->servers, sizeof(*room->servers) * (room->n_servers + 1));
        room->servers[room->n_servers++] = xstrdup(colon + 1);
    }
    map_release(&seen);
    room->servers_known = true;
}

/*
 * The servers an event goes to (caller holds room->mu; state before the
 * event): every other server in the room, and for a membership event the
 * target's server too (an invited, kicked or banned user's server must
 * hear of it), except `except` (the server it came from). Arena array.
 */
static const char **destinations(struct req *r, struct room *room, const struct event *ev,
                                 const char *except, size_t *n)
{
    room_servers_locked(r, room);
    const char **out = ARENA_ARRAY(&r->arena, const char *, room->n_servers + 1);
    *n = 0;
    for (size_t k = 0; k < room->n_servers; k++) {
        if (!except || strcmp(room->servers[k], except) != 0) {
            out[(*n)++] = arena_strdup(&r->arena, room->servers[k]);
        }
    }
    const char *colon = ev->state_key && strcmp(ev->type, "m.room.member") == 0
                            ? strchr(ev->state_key, ':')
                            : NULL;
    if (colon && strcmp(colon + 1, r->srv->cfg->server_name) != 0 &&
        (!except || strcmp(colon + 1, except) != 0)) {
        bool have = false;
        for (size_t k = 0; k < *n && !have; k++) {
            have = strcmp(out[k], colon + 1) == 0;
        }
        if (!have) {
            out[(*n)++] = arena_strdup(&r->arena, colon + 1);
        }
    }
    return out;
}

/* Who else hears of an event: RELAY_ALL for this server's own events,
 * RELAY_EXCEPT_ORIGIN for a join another server sent us to distribute,
 * RELAY_NONE for events whose origin sends them itself. */
enum relay { RELAY_ALL, RELAY_EXCEPT_ORIGIN, RELAY_NONE };

static void enqueue_relay(struct req *r, struct room *room, json_t *pdu, const struct event *ev,
                          const char *canonical, int64_t *prev_nids, size_t n_prev,
                          int64_t *auth_nids, size_t n_auth, const char *txn_key,
                          struct store_room *new_room, enum relay relay, const char *origin,
                          struct room_import *import);

static void enqueue(struct req *r, struct room *room, json_t *pdu, const struct event *ev,
                    const char *canonical, int64_t *prev_nids, size_t n_prev,
                    int64_t *auth_nids, size_t n_auth, const char *txn_key,
                    struct store_room *new_room)
{
    enqueue_relay(r, room, pdu, ev, canonical, prev_nids, n_prev, auth_nids, n_auth, txn_key,
                  new_room, RELAY_ALL, NULL, NULL);
}

static void enqueue_relay(struct req *r, struct room *room, json_t *pdu, const struct event *ev,
                          const char *canonical, int64_t *prev_nids, size_t n_prev,
                          int64_t *auth_nids, size_t n_auth, const char *txn_key,
                          struct store_room *new_room, enum relay relay, const char *origin,
                          struct room_import *import)
{
    struct rooms *rs = r->srv->rooms;
    struct write_job *j = ARENA_NEW(&r->arena, struct write_job);
    j->import = import;
    if (relay != RELAY_NONE && !new_room) {
        j->dests = destinations(r, room, ev, relay == RELAY_EXCEPT_ORIGIN ? origin : NULL,
                                &j->n_dests);
    }
    if (ev->state_key && strcmp(ev->type, "m.room.member") == 0) {
        room->servers_known = false; /* who is joined may change */
    }
    j->room = room;
    j->new_room = new_room;
    j->event_id = ev->event_id;
    j->type = ev->type;
    j->state_key = ev->state_key;
    j->sender = ev->sender;
    j->membership = membership_of(pdu);
    j->canonical = canonical;
    j->depth = ev->depth;
    j->origin_server_ts = ev->origin_server_ts;
    j->prev_nids = prev_nids;
    j->n_prev = n_prev;
    j->auth_nids = auth_nids;
    j->n_auth = n_auth;
    j->snapshot_before = room->snapshot_nid;
    j->rv = room->rv;
    const json_t *rel = json_get_obj(ev->content, "m.relates_to");
    if (rel && json_get_str(rel, "rel_type") && json_get_str(rel, "event_id") &&
        strlen(json_get_str(rel, "rel_type")) <= 255 &&
        strlen(json_get_str(rel, "event_id")) <= 255) {
        j->relates_to = rel; /* ev->content lives in the request arena */
    }
    if (strcmp(ev->type, "m.room.redaction") == 0 && ev->redacts) {
        j->redacts = ev->redacts;
    }
    if (ev->state_key) {
        struct str key = make_key(&r->arena, ev->type, ev->state_key);
        j->state_size = (int64_t)room->state.count + (map_has(&room->state, key) ? 0 : 1);
    }
    if (txn_key) {
        j->txn_key = txn_key;
        j->txn_user = r->auth.user_id;
        j->txn_device = r->auth.device_id;
    }

    pthread_mutex_lock(&rs->write_mu);
    if (new_room) {
        new_room->nid = ++rs->next_room;
        room->nid = new_room->nid;
    }
    j->nid = ++rs->next_event;
    j->stream = ++rs->next_stream;
    if (ev->state_key) {
        j->snapshot_after = ++rs->next_snapshot;
    }
    if (rs->tail) {
        rs->tail->next = j;
    } else {
        rs->head = j;
    }
    rs->tail = j;
    pthread_cond_signal(&rs->write_cv);
    pthread_mutex_unlock(&rs->write_mu);
    r->room_job = j;

    /* The cache moves ahead of the database; a failed write poisons it.
     * The event replaces the extremities it names (all of them for a
     * local event, unless there were more than it may list; some for an
     * event from another server whose branch forked). */
    size_t kept = 0;
    for (size_t k = 0; k < room->n_ext; k++) {
        bool named = false;
        for (size_t p = 0; p < n_prev && !named; p++) {
            named = prev_nids[p] == room->ext[k].nid;
        }
        if (named) {
            free(room->ext[k].event_id);
            json_decref(room->ext[k].pdu);
        } else {
            room->ext[kept++] = room->ext[k];
        }
    }
    room->ext = xrealloc(room->ext, sizeof(*room->ext) * (kept + 1));
    /* Deepest first: local events list the extremities in this order. */
    size_t at = 0;
    while (at < kept && room->ext[at].depth >= ev->depth) {
        at++;
    }
    memmove(room->ext + at + 1, room->ext + at, sizeof(*room->ext) * (kept - at));
    room->ext[at] = (struct extremity){j->nid, xstrdup(ev->event_id), ev->depth,
                                       room->rv->event_format == EVENT_FORMAT_V1
                                           ? json_incref(pdu)
                                           : NULL};
    room->n_ext = kept + 1;
    if (ev->state_key) {
        state_put(room, entry_new(ev->type, ev->state_key, j->nid, ev->event_id, pdu));
        room->snapshot_nid = j->snapshot_after;
    }
    if (j->redacts) {
        /* A redacted state event stays in the state, pruned (spec
         * "Redactions": it behaves as if its other keys were absent). */
        size_t it = 0;
        const struct map_entry *me;
        while (map_next(&room->state, &it, &me)) {
            struct state_entry *se = me->value;
            json_t *pruned = NULL;
            if (strcmp(se->event_id, j->redacts) == 0 &&
                redact_event(room->rv, se->pdu, &pruned) == 0) {
                entry_set_pdu(se, pruned);
                json_decref(pruned);
                break;
            }
        }
    }
    if (txn_key) {
        struct pending_txn *p = xcalloc(1, sizeof(*p));
        p->key = xstrdup(pending_key(&r->arena, r->auth.user_id, r->auth.device_id, txn_key));
        p->event_id = xstrdup(ev->event_id);
        pending_txn_free(map_put(&room->pending_txns, str_from(p->key), p));
    }
}

/*
 * Finishes a PDU (hashes, signature, event ID), parses it, checks its size
 * and its authorisation against the room's current state.
 */
static int finish_and_check(struct req *r, struct room *room, json_t *pdu,
                            const struct event **out, char **canonical)
{
    const struct room_version *rv = room->rv;
    if (pdu_sign(rv, pdu, &r->srv->key, r->srv->cfg->server_name) != 0) {
        return req_fail(r, -ERR_BAD_JSON, "The event cannot be encoded as canonical JSON");
    }
    const char *event_id = NULL;
    if (rv->event_format != EVENT_FORMAT_V1 &&
        event_compute_id(rv, pdu, &r->arena, &event_id) != 0) {
        return req_fail(r, -ERR_BAD_JSON, "The event cannot be hashed");
    }
    struct buf b = BUF_INIT;
    int rc = canonjson_write(&b, pdu, canonjson_mode_for(rv));
    if (rc == 0 && b.len > EVENT_MAX_BYTES) {
        buf_release(&b);
        return req_fail(r, -ERR_TOO_LARGE, "Event is larger than %d bytes", EVENT_MAX_BYTES);
    }
    if (rc != 0) {
        buf_release(&b);
        return req_fail(r, -ERR_BAD_JSON, "The event cannot be encoded as canonical JSON");
    }
    *canonical = arena_strndup(&r->arena, b.p, b.len);
    buf_release(&b);
    struct event *ev;
    const char *why = NULL;
    rc = event_parse(&r->arena, rv, pdu, event_id, &ev, &why);
    if (rc) {
        return req_fail(r, -ERR_BAD_JSON, "Invalid event: %s", why ? why : "malformed");
    }
    struct auth_ctx ctx;
    auth_ctx_init(&ctx, room, r);
    struct auth_state st = {auth_get, &ctx};
    const char *reason = NULL;
    rc = authrules_check(ev, &st, &reason);
    map_release(&ctx.parsed);
    if (rc) {
        return req_fail(r, -ERR_FORBIDDEN, "%s", reason ? reason : "Not allowed by the room's rules");
    }
    *out = ev;
    return 0;
}

/*
 * The unsigned PDU of a new event in `room` (caller holds room->mu):
 * content and keys from `in`, prev_events the extremities (deepest
 * first, at most ROOM_MAX_PREV_EVENTS), depth one more than theirs,
 * auth_events chosen from the current state (spec "Auth events
 * selection"), origin_server_ts now. The nids of both lists go to the
 * arena arrays. NULL when an extremity cannot be referenced.
 */
static json_t *build_pdu(struct req *r, struct room *room, const struct room_event_in *in,
                         int64_t **prev_out, size_t *n_prev_out, int64_t **auth_out,
                         size_t *n_auth_out)
{
    const struct room_version *rv = room->rv;
    json_t *pdu = json_object();
    json_object_set_new(pdu, "room_id", json_string(room->room_id));
    json_object_set_new(pdu, "sender", json_string(in->sender));
    json_object_set_new(pdu, "type", json_string(in->type));
    json_object_set_new(pdu, "content", json_deep_copy(in->content));
    json_object_set_new(pdu, "origin_server_ts", json_integer(req_now_ms()));
    if (in->state_key) {
        json_object_set_new(pdu, "state_key", json_string(in->state_key));
    }
    if (in->redacts) {
        /* v11 moved "redacts" into content; the top-level copy keeps older
         * readers working and is harmless there. */
        json_object_set_new(pdu, "redacts", json_string(in->redacts));
        if (rv->redaction >= REDACTION_V11) {
            json_object_set_new(json_object_get(pdu, "content"), "redacts",
                                json_string(in->redacts));
        }
    }

    /* prev_events: the extremities, deepest first. */
    size_t n_prev = room->n_ext < ROOM_MAX_PREV_EVENTS ? room->n_ext : ROOM_MAX_PREV_EVENTS;
    int64_t *prev_nids = ARENA_ARRAY(&r->arena, int64_t, n_prev ? n_prev : 1);
    json_t *prevs = json_array();
    int64_t depth = 0;
    for (size_t i = 0; i < n_prev; i++) {
        prev_nids[i] = room->ext[i].nid;
        if (room->ext[i].depth > depth) {
            depth = room->ext[i].depth;
        }
        json_t *ref = rv->event_format == EVENT_FORMAT_V1
                          ? v1_ref(r, rv, room->ext[i].event_id, room->ext[i].pdu)
                          : json_string(room->ext[i].event_id);
        if (!ref) {
            json_decref(prevs);
            json_decref(pdu);
            return NULL;
        }
        json_array_append_new(prevs, ref);
    }
    json_object_set_new(pdu, "prev_events", prevs);
    json_object_set_new(pdu, "depth", json_integer(depth < JSON_MAX_SAFE_INT ? depth + 1 : depth));

    /* auth_events: chosen from the current state (spec "Auth events selection"). */
    const char *types[AUTHRULES_SELECTION_MAX], *keys[AUTHRULES_SELECTION_MAX];
    size_t n_sel = authrules_selection(rv, in->type, in->state_key ? in->state_key : "",
                                       in->sender, in->content, types, keys);
    int64_t *auth_nids = ARENA_ARRAY(&r->arena, int64_t, AUTHRULES_SELECTION_MAX);
    size_t n_auth = 0;
    json_t *auths = json_array();
    for (size_t i = 0; i < n_sel; i++) {
        struct state_entry *e = state_get(room, &r->arena, types[i], keys[i]);
        if (!e) {
            continue;
        }
        auth_nids[n_auth++] = e->event_nid;
        json_array_append_new(auths, rv->event_format == EVENT_FORMAT_V1
                                         ? v1_ref(r, rv, e->event_id, e->pdu)
                                         : json_string(e->event_id));
    }
    json_object_set_new(pdu, "auth_events", auths);
    *prev_out = prev_nids;
    *n_prev_out = n_prev;
    *auth_out = auth_nids;
    *n_auth_out = n_auth;
    return pdu;
}

/* ---- public ---- */

int room_send(struct req *r, const struct room_event_in *in, struct room_event_out *out)
{
    struct room *room;
    int rc = room_get(r, in->room_id, &room);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_FORBIDDEN, "Unknown room %s, or you are not in it", in->room_id);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (strcmp(in->type, "m.room.create") == 0) {
        /* Auth rule 1.1 of every version: a create event with prev_events
         * is rejected. Said here, before v12's event format check would
         * call it bad JSON. */
        return req_fail(r, -ERR_FORBIDDEN, "The room already has a create event");
    }
    const struct room_version *rv = room->rv;
    const char *txn_key =
        in->txn_id && r->auth.device_id
            ? arena_printf(&r->arena, "%s/%s/%s", in->room_id, in->type, in->txn_id)
            : NULL;

    pthread_mutex_lock(&room->mu);
    if (txn_key) {
        char *prior = NULL;
        /* Uncommitted sends first: the database does not have them yet. */
        struct pending_txn *p = map_get(
            &room->pending_txns, str_from(pending_key(&r->arena, r->auth.user_id,
                                                      r->auth.device_id, txn_key)));
        rc = p ? 0
               : store_txn_get(r->db, &r->arena, r->auth.user_id, r->auth.device_id, txn_key,
                               &prior);
        if (p) {
            prior = arena_strdup(&r->arena, p->event_id);
        }
        if (rc == 0) {
            pthread_mutex_unlock(&room->mu);
            out->event_id = prior;
            return 0;
        }
        if (rc != -ERR_NOT_FOUND) {
            pthread_mutex_unlock(&room->mu);
            return req_fail(r, rc, NULL);
        }
    }

    int64_t *prev_nids, *auth_nids;
    size_t n_prev, n_auth;
    json_t *pdu = build_pdu(r, room, in, &prev_nids, &n_prev, &auth_nids, &n_auth);
    if (!pdu) {
        pthread_mutex_unlock(&room->mu);
        return req_fail(r, -ERR_UNKNOWN, "Cannot reference the previous event");
    }
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "event_id", json_string(room_v1_event_id(r)));
    }

    const struct event *ev = NULL;
    char *canonical = NULL;
    rc = finish_and_check(r, room, pdu, &ev, &canonical);
    if (rc == 0) {
        enqueue(r, room, pdu, ev, canonical, prev_nids, n_prev, auth_nids, n_auth, txn_key, NULL);
    }
    pthread_mutex_unlock(&room->mu);
    if (rc == 0) {
        out->event_id = ev->event_id;
    }
    json_arena(&r->arena, pdu);
    return rc;
}

/* Room IDs room_create tries before it gives up. */
#define ROOM_CREATE_ATTEMPTS 8

/*
 * A new room's m.room.create event, sent at `ts`. Before v12 the room ID
 * is a fresh random one, set on the event; from v12 on it is the event's
 * hash, derived once the event is finished.
 */
static json_t *create_pdu(struct req *r, const struct room_version *rv, const char *creator,
                          json_t *content, int64_t ts, const char **room_id)
{
    json_t *pdu = json_pack("{s:s,s:s,s:s,s:O,s:I,s:i,s:[],s:[]}", "type", "m.room.create",
                            "state_key", "", "sender", creator, "content", content,
                            "origin_server_ts", (json_int_t)ts, "depth", 1, "prev_events",
                            "auth_events");
    json_arena(&r->arena, pdu);
    *room_id = NULL;
    if (!rv->room_id_is_create_hash) {
        char local[19];
        for (int i = 0; i < 18; i++) {
            int c = (int)randombytes_uniform(52);
            local[i] = (char)(c < 26 ? 'A' + c : 'a' + c - 26);
        }
        local[18] = '\0';
        *room_id = arena_printf(&r->arena, "!%s:%s", local, r->srv->cfg->server_name);
        json_object_set_new(pdu, "room_id", json_string(*room_id));
    }
    if (rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "event_id", json_string(room_v1_event_id(r)));
    }
    return pdu;
}

/*
 * Publishes a room being created in the cache under its ID, unless a room
 * already has that ID: one in the database, or one being created whose
 * create event is not written yet. Returns 0, -ERR_CONFLICT when the ID
 * is taken, or a negative ERR_*.
 */
static int room_reserve(struct req *r, struct room *room)
{
    struct rooms *rs = r->srv->rooms;
    if (r->db) {
        struct store_room row;
        int rc = store_room_get(r->db, &r->arena, room->room_id, &row);
        if (rc != -ERR_NOT_FOUND) {
            return rc == 0 ? -ERR_CONFLICT : rc;
        }
    }
    pthread_mutex_lock(&rs->map_mu);
    bool taken = map_has(&rs->by_id, str_from(room->room_id));
    if (!taken) {
        map_put(&rs->by_id, str_from(room->room_id), room);
    }
    pthread_mutex_unlock(&rs->map_mu);
    return taken ? -ERR_CONFLICT : 0;
}

int room_create(struct req *r, const struct room_version *rv, const char *creator,
                const json_t *creation_content, const char **room_id_out)
{
    json_t *content = creation_content ? json_deep_copy(creation_content) : json_object();
    json_arena(&r->arena, content);
    if (!rv->implicit_room_creator) {
        json_object_set_new(content, "creator", json_string(creator));
    }
    json_object_set_new(content, "room_version", json_string(rv->id));

    struct room *room = xcalloc(1, sizeof(*room));
    pthread_mutex_init(&room->mu, NULL);
    map_init(&room->state);
    map_init(&room->pending_txns);
    room->rv = rv;
    room->ext = xcalloc(1, sizeof(*room->ext));
    /* Held from publication to the queued create event, so nobody sees
     * the room without it. */
    pthread_mutex_lock(&room->mu);

    /*
     * The ID must be new. From v12 on it is the create event's hash, and
     * the only entropy in that event is its millisecond timestamp: one
     * user creating rooms with the same content in the same millisecond
     * (concurrent requests) builds the same event. Such a room is not
     * stored twice: the event moves a few milliseconds on, by a random
     * step so that requests colliding together do not collide again, and
     * gets a new ID. Before v12 a collision of the random IDs is retried
     * the same way.
     */
    const char *room_id = NULL;
    const struct event *ev = NULL;
    char *canonical = NULL;
    json_t *pdu = NULL;
    int64_t ts = req_now_ms();
    int rc;
    for (int attempt = 0;; attempt++) {
        if (attempt > 0) {
            ts += 1 + randombytes_uniform(4u << attempt);
        }
        pdu = create_pdu(r, rv, creator, content, ts, &room_id);
        rc = finish_and_check(r, room, pdu, &ev, &canonical);
        if (rc == 0 && rv->room_id_is_create_hash &&
            event_compute_room_id(rv, pdu, &r->arena, &room_id) != 0) {
            rc = req_fail(r, -ERR_UNKNOWN, "Cannot derive the room ID");
        }
        if (rc < 0) {
            break;
        }
        free(room->room_id);
        room->room_id = xstrdup(room_id);
        rc = room_reserve(r, room);
        if (rc == 0) {
            break;
        }
        if (rc != -ERR_CONFLICT) {
            rc = req_fail(r, rc, NULL);
            break;
        }
        LOG_DEBUG("room", "room ID %s is taken, building the create event again", room_id);
        if (attempt + 1 == ROOM_CREATE_ATTEMPTS) {
            rc = req_fail(r, -ERR_UNKNOWN, "Could not find a free room ID");
            break;
        }
    }
    if (rc < 0) {
        pthread_mutex_unlock(&room->mu);
        room_free(room);
        return rc;
    }
    /* The job points at the row until it is written: keep it in the arena. */
    struct store_room *row = ARENA_NEW(&r->arena, struct store_room);
    row->room_id = (char *)room_id;
    row->room_version = (char *)rv->id;
    row->created_ts = req_now_ms();
    enqueue(r, room, pdu, ev, canonical, NULL, 0, NULL, 0, NULL, row);
    pthread_mutex_unlock(&room->mu);
    *room_id_out = room_id;
    return 0;
}

/* ---- reads ---- */

int room_power(struct req *r, const char *room_id, const char *user_id, int64_t *user_level,
               int64_t *redact_level)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&room->mu);
    struct auth_ctx ctx;
    auth_ctx_init(&ctx, room, r);
    struct auth_state st = {auth_get, &ctx};
    *user_level = authrules_user_power(room->rv, &st, user_id);
    /* "redact" defaults to 50 (spec m.room.power_levels). */
    *redact_level = 50;
    const struct event *pl = auth_get(&ctx, "m.room.power_levels", "");
    long long v;
    if (pl && json_get_int(pl->content, "redact", &v)) {
        *redact_level = v;
    }
    map_release(&ctx.parsed);
    pthread_mutex_unlock(&room->mu);
    return 0;
}

/*
 * The cached PDU with "event_id" set (from room version 3 on the ID is not
 * part of the PDU, and readers need it): a shallow copy made on the first
 * read and shared by every reader after (a new reference each time), until
 * the entry is replaced or redacted. Caller holds the room's mutex.
 */
static json_t *pdu_with_id(struct state_entry *e)
{
    if (!e->with_id) {
        e->with_id = json_copy(e->pdu);
        json_object_set_new(e->with_id, "event_id", json_string(e->event_id));
    }
    return json_incref(e->with_id);
}

int room_state_event(struct req *r, const char *room_id, const char *type,
                     const char *state_key, json_t **out)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&room->mu);
    struct state_entry *e = state_get(room, &r->arena, type, state_key);
    *out = e ? pdu_with_id(e) : NULL;
    pthread_mutex_unlock(&room->mu);
    return 0;
}

int room_membership(struct req *r, const char *room_id, const char *user_id,
                    const char **membership)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&room->mu);
    struct state_entry *e = state_get(room, &r->arena, "m.room.member", user_id);
    *membership = e ? arena_strdup(&r->arena, e->membership ? e->membership : "") : NULL;
    pthread_mutex_unlock(&room->mu);
    return 0;
}

int room_state_all(struct req *r, const char *room_id, json_t **out)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    json_t *arr = json_array();
    pthread_mutex_lock(&room->mu);
    size_t i = 0;
    const struct map_entry *me;
    while (map_next(&room->state, &i, &me)) {
        json_array_append_new(arr, pdu_with_id(me->value));
    }
    pthread_mutex_unlock(&room->mu);
    *out = arr;
    return 0;
}

/* The entry's slot for renderings by `fn`: its own, else a free one,
 * else the last one emptied (a third function evicts). */
static struct rendering *entry_slot(struct state_entry *e, room_render_fn *fn)
{
    for (size_t k = 0; k < ENTRY_RENDERINGS; k++) {
        if (e->renders[k].fn == fn || !e->renders[k].fn) {
            return &e->renders[k];
        }
    }
    struct rendering *slot = &e->renders[ENTRY_RENDERINGS - 1];
    free(slot->p);
    *slot = (struct rendering){0};
    return slot;
}

/* Fills an empty slot with `len` bytes (an exact heap copy). */
static void slot_fill(struct rendering *slot, room_render_fn *fn, const char *p, size_t len)
{
    slot->fn = fn;
    slot->len = len;
    slot->p = xmalloc(len + 1);
    memcpy(slot->p, len ? p : "", len);
    slot->p[len] = '\0';
}

static bool entry_has_rendering(const struct state_entry *e, room_render_fn *fn)
{
    for (size_t k = 0; k < ENTRY_RENDERINGS; k++) {
        if (e->renders[k].fn == fn) {
            return true;
        }
    }
    return false;
}

static struct room_state_view entry_view(const struct state_entry *e)
{
    return (struct room_state_view){.type = e->type,
                                    .state_key = e->state_key,
                                    .event_id = e->event_id,
                                    .membership = e->membership,
                                    .pdu = e->pdu,
                                    .has_ts = e->has_ts,
                                    .origin_server_ts = e->ts};
}

/* The room's state entries, from the map's slot array. Caller holds the
 * room's mutex; free() the result. */
static struct state_entry **entries_of(struct room *room, size_t *n)
{
    struct state_entry **all = xmalloc((room->state.count + 1) * sizeof(*all));
    size_t it = 0, k = 0;
    const struct map_entry *me;
    while (map_next(&room->state, &it, &me)) {
        all[k++] = me->value;
    }
    *n = k;
    return all;
}

/*
 * Renders, without holding the room's lock, the wanted entries that have
 * no rendering by w->render yet (after a room is loaded: all of them), so
 * the first read of a big room does not stall its senders. The PDUs are
 * held by reference meanwhile; a rendering is installed only when its
 * entry still holds the same PDU. Called and returns with the lock held.
 */
#define WALK_RENDER_UNLOCKED_MIN 64

struct pending_render {
    struct str key;
    json_t *pdu;
    struct room_state_view v; /* strings copied to the arena */
    struct buf text;
};

static void render_unlocked(struct req *r, struct room *room, const struct room_walk *w)
{
    size_t n, missing = 0;
    struct state_entry **all = entries_of(room, &n);
    for (size_t i = 0; i < n; i++) {
        struct state_entry *e = all[i];
        struct room_state_view v = entry_view(e);
        if ((w->type && strcmp(e->type, w->type) != 0) || entry_has_rendering(e, w->render) ||
            (w->want && !w->want(w->ctx, &v))) {
            continue;
        }
        all[missing++] = e;
    }
    if (missing < WALK_RENDER_UNLOCKED_MIN) {
        free(all);
        return;
    }
    struct pending_render *pend = ARENA_ARRAY(&r->arena, struct pending_render, missing);
    for (size_t i = 0; i < missing; i++) {
        struct state_entry *e = all[i];
        struct pending_render *pr = &pend[i];
        char *key = arena_alloc(&r->arena, e->key_len + 1);
        memcpy(key, e->key, e->key_len + 1);
        pr->key = (struct str){key, e->key_len};
        pr->pdu = json_incref(e->pdu);
        pr->v = entry_view(e);
        pr->v.type = key;
        pr->v.state_key = key + strlen(key) + 1;
        pr->v.event_id = arena_strdup(&r->arena, e->event_id);
        pr->v.membership = e->membership ? arena_strdup(&r->arena, e->membership) : NULL;
        pr->text = BUF_INIT;
    }
    free(all);
    pthread_mutex_unlock(&room->mu);
    for (size_t i = 0; i < missing; i++) {
        w->render(&pend[i].v, &pend[i].text);
    }
    pthread_mutex_lock(&room->mu);
    for (size_t i = 0; i < missing; i++) {
        struct pending_render *pr = &pend[i];
        struct state_entry *e = map_get(&room->state, pr->key);
        if (e && e->pdu == pr->pdu && !entry_has_rendering(e, w->render)) {
            slot_fill(entry_slot(e, w->render), w->render, pr->text.p, pr->text.len);
        }
        buf_release(&pr->text);
        json_decref(pr->pdu);
    }
}

/* The entry's rendering by `fn`, made now when it has none. Caller holds
 * the room's mutex. */
static struct str entry_rendering(struct state_entry *e, const struct room_state_view *v,
                                  room_render_fn *fn, struct buf *scratch)
{
    struct rendering *slot = entry_slot(e, fn);
    if (!slot->fn) {
        buf_reset(scratch);
        fn(v, scratch);
        slot_fill(slot, fn, scratch->p, scratch->len);
    }
    return (struct str){slot->p, slot->len};
}

/* Whole-state walks of a big room are bound by cache misses, one heap
 * entry (and one rendering) per state event: the walk collects the
 * entries from the map's slot array first, then fetches ahead. */
#define WALK_AHEAD_ENTRY 16
#define WALK_AHEAD_TEXT 8

/* Starts loading the rendering of `e` by fn, if it has one. */
static void prefetch_rendering(const struct state_entry *e, room_render_fn *fn)
{
    for (size_t k = 0; k < ENTRY_RENDERINGS; k++) {
        if (e->renders[k].fn == fn) {
            __builtin_prefetch(e->renders[k].p);
            return;
        }
    }
}

int room_state_walk(struct req *r, const char *room_id, const struct room_walk *w)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    struct buf scratch = BUF_INIT;
    pthread_mutex_lock(&room->mu);
    if (w->render) {
        render_unlocked(r, room, w);
    }
    size_t n;
    struct state_entry **all = entries_of(room, &n);
    for (size_t i = 0; i < n; i++) {
        if (i + WALK_AHEAD_ENTRY < n) {
            /* The fields read, the inline membership and the key. */
            const char *p = (const char *)all[i + WALK_AHEAD_ENTRY];
            for (size_t off = 0; off < sizeof(struct state_entry) + 32; off += 64) {
                __builtin_prefetch(p + off);
            }
        }
        if (w->render && i + WALK_AHEAD_TEXT < n) {
            prefetch_rendering(all[i + WALK_AHEAD_TEXT], w->render);
        }
        struct state_entry *e = all[i];
        if (w->type && strcmp(e->type, w->type) != 0) {
            continue;
        }
        struct room_state_view v = entry_view(e);
        if (w->want && !w->want(w->ctx, &v)) {
            continue;
        }
        struct str text = {"", 0};
        if (w->render) {
            text = entry_rendering(e, &v, w->render, &scratch);
        }
        w->visit(w->ctx, &v, text);
    }
    pthread_mutex_unlock(&room->mu);
    free(all);
    buf_release(&scratch);
    return 0;
}

const struct room_version *room_version_of(struct req *r, const char *room_id)
{
    struct room *room;
    return room_get(r, room_id, &room) == 0 ? room->rv : NULL;
}

/* ---- federation: templates, received events, joins ---- */

const char room_missing_prev[] = "A previous event is unknown here";

int room_extremities(struct req *r, const char *room_id, const char ***out, size_t *n)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&room->mu);
    const char **ids = ARENA_ARRAY(&r->arena, const char *, room->n_ext + 1);
    for (size_t k = 0; k < room->n_ext; k++) {
        ids[k] = arena_strdup(&r->arena, room->ext[k].event_id);
    }
    *n = room->n_ext;
    pthread_mutex_unlock(&room->mu);
    *out = ids;
    return 0;
}

/* Parses a stored event (for auth checks); NULL when it does not parse. */
static struct event *parse_stored(struct req *r, const struct room_version *rv,
                                  const struct store_event *se)
{
    json_t *pdu = json_loads(se->json, 0, NULL);
    struct event *ev = NULL;
    if (pdu && event_parse(&r->arena, rv, pdu, se->event_id, &ev, NULL) != 0) {
        ev = NULL;
    }
    json_decref(pdu); /* the arena holds its own reference */
    if (ev) {
        ev->rejected = se->rejected;
    }
    return ev;
}

/* An auth state over a list of events (their own auth events). */
struct list_state {
    const struct event *const *events;
    size_t n;
};

static const struct event *list_get(void *ud, const char *type, const char *state_key)
{
    const struct list_state *ls = ud;
    for (size_t i = 0; i < ls->n; i++) {
        const struct event *e = ls->events[i];
        if (e && e->state_key && strcmp(e->type, type) == 0 &&
            strcmp(e->state_key, state_key) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Checks ev against its own auth events (spec: "Checks performed on
 * receipt of a PDU", step 4). NULL entries are unknown events. From v12
 * the create event is no auth event but the room ID names it: `create`
 * is added to the state the rules read (NULL before v12 or unknown). */
static int check_own_auth(struct req *r, const struct event *ev,
                          const struct event *const *auths, const struct event *create,
                          const char **reason)
{
    int rc = authrules_check_auth_events(ev, auths, reason);
    if (rc == 0) {
        const struct event **with = ARENA_ARRAY(&r->arena, const struct event *,
                                                ev->n_auth_events + 1);
        memcpy(with, auths, sizeof(*with) * ev->n_auth_events);
        size_t n = ev->n_auth_events;
        if (create && ev->rv->room_id_is_create_hash && ev != create) {
            with[n++] = create;
        }
        struct list_state ls = {with, n};
        struct auth_state st = {list_get, &ls};
        rc = authrules_check(ev, &st, reason);
    }
    return rc;
}

/* The current state entry holding `event_id`, or NULL (caller holds
 * room->mu). A scan: only for events not written yet. */
static const struct state_entry *state_by_event_id(struct room *room, const char *event_id)
{
    size_t it = 0;
    const struct map_entry *me;
    while (map_next(&room->state, &it, &me)) {
        const struct state_entry *e = me->value;
        if (strcmp(e->event_id, event_id) == 0) {
            return e;
        }
    }
    return NULL;
}

/* The room's create event, parsed (caller holds room->mu or owns it). */
static const struct event *room_create_event(struct req *r, struct room *room)
{
    struct auth_ctx ctx;
    auth_ctx_init(&ctx, room, r);
    const struct event *e = auth_get(&ctx, "m.room.create", "");
    map_release(&ctx.parsed);
    return e;
}

int room_template(struct req *r, const char *room_id, const char *sender, const char *type,
                  const char *state_key, const json_t *content, json_t **out,
                  const char **reason)
{
    *out = NULL;
    *reason = NULL;
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    struct room_event_in in = {.room_id = room_id, .sender = sender, .type = type,
                               .state_key = state_key, .content = content};
    pthread_mutex_lock(&room->mu);
    int64_t *prev_nids, *auth_nids;
    size_t n_prev, n_auth;
    json_t *pdu = build_pdu(r, room, &in, &prev_nids, &n_prev, &auth_nids, &n_auth);
    struct event *ev = NULL;
    rc = pdu ? 0 : -ERR_UNKNOWN;
    if (rc == 0) {
        json_arena(&r->arena, pdu);
        /* Checked as if sent now, so a refusal comes before any signing
         * (parsed from a copy with the parts the sender adds). */
        json_t *probe = json_arena(&r->arena, json_deep_copy(pdu));
        json_object_set_new(probe, "hashes", json_pack("{s:s}", "sha256", ""));
        json_object_set_new(probe, "signatures", json_object());
        rc = event_parse(&r->arena, room->rv, probe, "$template", &ev, reason) == 0
                 ? 0
                 : -ERR_UNKNOWN;
    }
    if (rc == 0) {
        struct auth_ctx ctx;
        auth_ctx_init(&ctx, room, r);
        struct auth_state st = {auth_get, &ctx};
        rc = authrules_check(ev, &st, reason);
        map_release(&ctx.parsed);
    }
    pthread_mutex_unlock(&room->mu);
    if (rc == 0) {
        *out = json_incref(pdu);
    }
    return rc;
}

int room_receive(struct req *r, struct event *ev, const char *origin, bool relay,
                 const char **error)
{
    *error = NULL;
    struct room *room;
    int rc = room_get(r, ev->room_id, &room);
    if (rc == -ERR_NOT_FOUND) {
        *error = "Unknown room";
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    struct store_event known;
    rc = store_event_get(r->db, &r->arena, ev->event_id, &known);
    if (rc == 0) {
        return 0; /* received before */
    }
    if (rc != -ERR_NOT_FOUND) {
        return rc;
    }
    char *canonical = fedevent_canonical(r, ev);
    if (!canonical || strlen(canonical) > EVENT_MAX_BYTES) {
        *error = "Event too large";
        return 0;
    }
    /* Its auth events must be known (fetching missing ones comes with
     * gap handling) and must allow it. */
    const struct event **auths = ARENA_ARRAY(&r->arena, const struct event *,
                                             ev->n_auth_events + 1);
    int64_t *auth_nids = ARENA_ARRAY(&r->arena, int64_t, ev->n_auth_events + 1);
    for (size_t i = 0; i < ev->n_auth_events; i++) {
        struct store_event se;
        rc = store_event_get(r->db, &r->arena, ev->auth_events[i], &se);
        if (rc == -ERR_NOT_FOUND) {
            /* Perhaps accepted moments ago and not written yet. */
            pthread_mutex_lock(&room->mu);
            const struct state_entry *e = state_by_event_id(room, ev->auth_events[i]);
            if (e) {
                struct event *pe = NULL;
                if (event_parse(&r->arena, room->rv, e->pdu, e->event_id, &pe, NULL) == 0) {
                    auths[i] = pe;
                    auth_nids[i] = e->event_nid;
                }
            }
            pthread_mutex_unlock(&room->mu);
            if (!auths[i]) {
                *error = "An auth event is unknown here";
                return 0;
            }
            continue;
        }
        if (rc < 0) {
            return rc;
        }
        auths[i] = parse_stored(r, room->rv, &se);
        auth_nids[i] = se.nid;
    }
    const char *reason = NULL;
    pthread_mutex_lock(&room->mu);
    const struct event *create = room_create_event(r, room);
    pthread_mutex_unlock(&room->mu);
    if (check_own_auth(r, ev, auths, create, &reason) != 0) {
        *error = reason ? reason : "Not allowed by its auth events";
        return 0;
    }
    int64_t *prev_nids = ARENA_ARRAY(&r->arena, int64_t, ev->n_prev_events + 1);
    for (size_t i = 0; i < ev->n_prev_events; i++) {
        struct store_event se;
        rc = store_event_get(r->db, &r->arena, ev->prev_events[i], &se);
        if (rc == -ERR_NOT_FOUND) {
            /* An extremity accepted moments ago and not written yet. */
            pthread_mutex_lock(&room->mu);
            for (size_t k = 0; k < room->n_ext && !prev_nids[i]; k++) {
                if (strcmp(room->ext[k].event_id, ev->prev_events[i]) == 0) {
                    prev_nids[i] = room->ext[k].nid;
                }
            }
            pthread_mutex_unlock(&room->mu);
            if (prev_nids[i]) {
                continue;
            }
            *error = room_missing_prev;
            return 0;
        }
        if (rc < 0) {
            return rc;
        }
        prev_nids[i] = se.nid;
    }
    pthread_mutex_lock(&room->mu);
    /* Against the current state (spec step 6, soft failure). The state
     * before the event is taken to be the current one: exact for events
     * that extend every extremity, an approximation for a fork until
     * state resolution of forks is in. */
    struct auth_ctx ctx;
    auth_ctx_init(&ctx, room, r);
    struct auth_state st = {auth_get, &ctx};
    rc = authrules_check(ev, &st, &reason);
    map_release(&ctx.parsed);
    if (rc != 0) {
        pthread_mutex_unlock(&room->mu);
        *error = reason ? reason : "Not allowed by the room's current state";
        return 0;
    }
    enqueue_relay(r, room, ev->json, ev, canonical, prev_nids, ev->n_prev_events, auth_nids,
                  ev->n_auth_events, NULL, NULL, relay ? RELAY_EXCEPT_ORIGIN : RELAY_NONE,
                  origin, NULL);
    pthread_mutex_unlock(&room->mu);
    return 0;
}

int room_state_before(struct req *r, const char *event_id, json_t **state, json_t **auth_chain)
{
    *state = *auth_chain = NULL;
    struct store_event ev;
    int rc = store_event_get(r->db, &r->arena, event_id, &ev);
    struct store_state_row *rows = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = store_snapshot_state(r->db, &r->arena, ev.state_before_nid, &rows, &n);
    }
    /* The snapshot rows carry the events' JSON: no second read of them. */
    struct store_event *chain = NULL;
    size_t n_chain = 0;
    int64_t *nids = ARENA_ARRAY(&r->arena, int64_t, n + 1);
    for (size_t i = 0; i < n; i++) {
        nids[i] = rows[i].event_nid;
    }
    if (rc == 0) {
        nids[n] = ev.nid;
        rc = store_auth_chain(r->db, &r->arena, nids, n + 1, &chain, &n_chain);
    }
    if (rc < 0) {
        return rc;
    }
    *state = json_array();
    *auth_chain = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = rows[i].json ? json_loads(rows[i].json, 0, NULL) : NULL;
        if (j) {
            json_array_append_new(*state, j);
        }
    }
    for (size_t i = 0; i < n_chain; i++) {
        json_t *j = json_loads(chain[i].json, 0, NULL);
        if (j) {
            json_array_append_new(*auth_chain, j);
        }
    }
    return 0;
}

int room_servers(struct req *r, const char *room_id, char ***out, size_t *n)
{
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&room->mu);
    room_servers_locked(r, room);
    char **list = ARENA_ARRAY(&r->arena, char *, room->n_servers + 1);
    list[0] = arena_strdup(&r->arena, r->srv->cfg->server_name);
    for (size_t k = 0; k < room->n_servers; k++) {
        list[k + 1] = arena_strdup(&r->arena, room->servers[k]);
    }
    *n = room->n_servers + 1;
    pthread_mutex_unlock(&room->mu);
    *out = list;
    return 0;
}

static int cmp_depth(const void *a, const void *b)
{
    const struct event *x = *(const struct event *const *)a, *y = *(const struct event *const *)b;
    return x->depth < y->depth ? -1 : x->depth > y->depth;
}

/* The nid given to an imported event (map value), or 0. */
static int64_t nid_of(const struct map *nids, const char *event_id)
{
    return (int64_t)(intptr_t)map_get(nids, str_from(event_id));
}

static struct room *outofband_room(struct req *r, const char *room_id,
                                   const struct room_version *rv);
static int room_takeover(struct req *r, struct room *old, struct room *room);

int room_import_join(struct req *r, const struct room_version *rv, const char *room_id,
                     const json_t *join_pdu, const json_t *state, const json_t *auth_chain,
                     const char *origin, const char **why)
{
    (void)origin;
    *why = NULL;
    if (!json_is_array(state) || !json_is_array(auth_chain)) {
        *why = "the answer has no state or auth chain";
        return -ERR_BAD_JSON;
    }
    /* A room known only by out-of-band memberships (an invite or a knock
     * over federation) is replaced by the joined room; its stored events
     * keep their rows. */
    struct room *oob = NULL;
    if (room_version_of(r, room_id) && !(oob = outofband_room(r, room_id, rv))) {
        *why = "the room is known here already (joining it again is not supported yet)";
        return -ERR_CONFLICT;
    }
    /* Every event, checked on its own (shape, ID, signatures, hash). */
    struct map by_id;
    map_init(&by_id);
    json_arena(&r->arena, json_object()); /* keeps the arena non-empty for cleanups */
    size_t total = json_array_size(state) + json_array_size(auth_chain);
    struct event **all = ARENA_ARRAY(&r->arena, struct event *, total + 1);
    size_t n_all = 0;
    const json_t *lists[2] = {auth_chain, state};
    for (int l = 0; l < 2; l++) {
        size_t i;
        const json_t *pdu;
        json_array_foreach(lists[l], i, pdu)
        {
            struct event *ev;
            const char *w = NULL;
            if (fedevent_check(r, rv, pdu, &ev, &w) != 0) {
                LOG_INFO("room", "joining %s: dropped an event (%s)", room_id, w ? w : "bad");
                continue;
            }
            if (ev->room_id && strcmp(ev->room_id, room_id) != 0) {
                continue;
            }
            if (!map_has(&by_id, str_from(ev->event_id))) {
                map_put(&by_id, str_from(ev->event_id), ev);
                all[n_all++] = ev;
            }
        }
    }
    /* Auth rules against each event's own auth events, oldest first, so
     * an event whose auth event was rejected is rejected too. */
    qsort(all, n_all, sizeof(*all), cmp_depth);
    const struct event *the_create = NULL;
    for (size_t i = 0; i < n_all && !the_create; i++) {
        if (strcmp(all[i]->type, "m.room.create") == 0 && all[i]->state_key &&
            !*all[i]->state_key) {
            const char *derived = NULL;
            if (!rv->room_id_is_create_hash ||
                (event_compute_room_id(rv, all[i]->json, &r->arena, &derived) == 0 &&
                 strcmp(derived, room_id) == 0)) {
                the_create = all[i];
            }
        }
    }
    for (size_t i = 0; i < n_all; i++) {
        struct event *ev = all[i];
        const struct event **auths =
            ARENA_ARRAY(&r->arena, const struct event *, ev->n_auth_events + 1);
        for (size_t k = 0; k < ev->n_auth_events; k++) {
            auths[k] = map_get(&by_id, str_from(ev->auth_events[k]));
        }
        const char *reason = NULL;
        if (check_own_auth(r, ev, auths, the_create, &reason) != 0) {
            ev->rejected = true;
            LOG_INFO("room", "joining %s: event %s rejected (%s)", room_id, ev->event_id,
                     reason ? reason : "auth");
        }
    }
    /* The state before the join, by key, without rejected events. */
    struct map slots;
    map_init(&slots);
    size_t i;
    const json_t *pdu;
    json_array_foreach(state, i, pdu)
    {
        const char *id = NULL;
        if (event_compute_id(rv, pdu, &r->arena, &id) != 0) {
            continue;
        }
        struct event *ev = map_get(&by_id, str_from(id));
        if (!ev || ev->rejected || !ev->state_key) {
            continue;
        }
        struct str key = stateres_key(&r->arena, ev->type, ev->state_key);
        if (!map_has(&slots, key)) {
            map_put(&slots, key, ev);
        }
    }
    struct list_state ls = {NULL, 0};
    const struct event **slot_events = ARENA_ARRAY(&r->arena, const struct event *,
                                                   slots.count + 1);
    size_t it = 0, n_slots = 0;
    const struct map_entry *me;
    while (map_next(&slots, &it, &me)) {
        slot_events[n_slots++] = me->value;
    }
    ls.events = slot_events;
    ls.n = n_slots;
    const struct event *create = list_get(&ls, "m.room.create", "");
    int rc = 0;
    if (!create) {
        *why = "the state has no valid create event";
        rc = -ERR_BAD_JSON;
    } else {
        const char *ver = json_get_str(create->content, "room_version");
        const char *derived = NULL;
        if (strcmp(ver ? ver : "1", rv->id) != 0) {
            *why = "the create event names another room version";
            rc = -ERR_BAD_JSON;
        } else if (rv->room_id_is_create_hash &&
                   (event_compute_room_id(rv, create->json, &r->arena, &derived) != 0 ||
                    strcmp(derived, room_id) != 0)) {
            *why = "the create event is not this room's";
            rc = -ERR_BAD_JSON;
        }
    }
    /* Our join: checked like the others, then against the state. */
    struct event *join = NULL;
    const char *w = NULL;
    if (rc == 0 && fedevent_check(r, rv, join_pdu, &join, &w) != 0) {
        *why = w ? w : "our join event came back altered";
        rc = -ERR_BAD_JSON;
    }
    const struct event **join_auths = NULL;
    int64_t *join_auth_nids = NULL, *join_prev_nids = NULL;
    size_t n_join_prev = 0;
    if (rc == 0) {
        join_auths = ARENA_ARRAY(&r->arena, const struct event *, join->n_auth_events + 1);
        for (size_t k = 0; k < join->n_auth_events; k++) {
            join_auths[k] = map_get(&by_id, str_from(join->auth_events[k]));
        }
        const char *reason = NULL;
        struct auth_state st = {list_get, &ls};
        if (check_own_auth(r, join, join_auths, the_create, &reason) != 0 ||
            authrules_check(join, &st, &reason) != 0) {
            *why = reason ? reason : "the room's state does not allow the join";
            rc = -ERR_FORBIDDEN;
        }
    }
    if (rc < 0) {
        map_release(&slots);
        map_release(&by_id);
        return rc;
    }

    struct room *room = xcalloc(1, sizeof(*room));
    pthread_mutex_init(&room->mu, NULL);
    map_init(&room->state);
    map_init(&room->pending_txns);
    room->rv = rv;
    room->room_id = xstrdup(room_id);
    room->ext = xcalloc(1, sizeof(*room->ext));
    pthread_mutex_lock(&room->mu);
    rc = oob ? room_takeover(r, oob, room) : room_reserve(r, room);
    if (rc < 0) {
        pthread_mutex_unlock(&room->mu);
        room_free(room);
        map_release(&slots);
        map_release(&by_id);
        *why = "the room is being joined already";
        return rc;
    }
    /* Events stored already (the out-of-band memberships) keep their nids. */
    struct map stored;
    map_init(&stored);
    for (size_t k = 0; oob && k < n_all; k++) {
        struct store_event se;
        if (store_event_get(r->db, &r->arena, all[k]->event_id, &se) == 0) {
            map_put(&stored, str_from(all[k]->event_id), (void *)(intptr_t)se.nid);
        }
    }
    /* Nids for the outliers and the state snapshot. */
    struct rooms *rs = r->srv->rooms;
    struct room_import *im = ARENA_NEW(&r->arena, struct room_import);
    im->events = ARENA_ARRAY(&r->arena, struct import_event, n_all + 1);
    im->state = ARENA_ARRAY(&r->arena, struct import_slot, n_slots + 1);
    im->replaces = oob != NULL;
    struct map nids;
    map_init(&nids);
    pthread_mutex_lock(&rs->write_mu);
    for (size_t k = 0; k < n_all; k++) {
        int64_t known = nid_of(&stored, all[k]->event_id);
        map_put(&nids, str_from(all[k]->event_id),
                (void *)(intptr_t)(known ? known : ++rs->next_event));
    }
    im->snapshot_nid = ++rs->next_snapshot;
    pthread_mutex_unlock(&rs->write_mu);
    for (size_t k = 0; k < n_all; k++) {
        const struct event *ev = all[k];
        if (nid_of(&stored, ev->event_id)) {
            continue;
        }
        struct import_event *ie = &im->events[im->n_events++];
        ie->event_id = ev->event_id;
        ie->type = ev->type;
        ie->state_key = ev->state_key;
        ie->sender = ev->sender;
        ie->canonical = fedevent_canonical(r, ev);
        ie->nid = nid_of(&nids, ev->event_id);
        ie->depth = ev->depth;
        ie->origin_server_ts = ev->origin_server_ts;
        ie->rejected = ev->rejected;
        ie->auth_nids = ARENA_ARRAY(&r->arena, int64_t, ev->n_auth_events + 1);
        for (size_t a = 0; a < ev->n_auth_events; a++) {
            int64_t an = nid_of(&nids, ev->auth_events[a]);
            if (an) {
                ie->auth_nids[ie->n_auth++] = an;
            }
        }
        if (!ie->canonical) {
            im->n_events--; /* cannot happen for a checked event; keep it out */
        }
    }
    for (size_t k = 0; k < n_slots; k++) {
        const struct event *ev = slot_events[k];
        struct import_slot *sl = &im->state[im->n_state++];
        sl->type = ev->type;
        sl->state_key = ev->state_key;
        sl->membership = strcmp(ev->type, "m.room.member") == 0 ? event_membership(ev) : NULL;
        sl->event_nid = nid_of(&nids, ev->event_id);
        state_put(room, entry_new(ev->type, ev->state_key, sl->event_nid, ev->event_id,
                                  ev->json));
    }
    room->snapshot_nid = im->snapshot_nid;
    join_auth_nids = ARENA_ARRAY(&r->arena, int64_t, join->n_auth_events + 1);
    size_t n_join_auth = 0;
    for (size_t k = 0; k < join->n_auth_events; k++) {
        int64_t an = nid_of(&nids, join->auth_events[k]);
        if (an) {
            join_auth_nids[n_join_auth++] = an;
        }
    }
    join_prev_nids = ARENA_ARRAY(&r->arena, int64_t, join->n_prev_events + 1);
    for (size_t k = 0; k < join->n_prev_events; k++) {
        int64_t pn = nid_of(&nids, join->prev_events[k]);
        if (pn) {
            join_prev_nids[n_join_prev++] = pn;
        }
    }
    map_release(&nids);
    map_release(&stored);
    map_release(&slots);
    map_release(&by_id);
    struct store_room *row = oob ? NULL : ARENA_NEW(&r->arena, struct store_room);
    if (row) {
        row->room_id = (char *)arena_strdup(&r->arena, room_id);
        row->room_version = (char *)rv->id;
        row->created_ts = req_now_ms();
    }
    char *canonical = fedevent_canonical(r, join);
    enqueue_relay(r, room, join->json, join, canonical, join_prev_nids, n_join_prev,
                  join_auth_nids, n_join_auth, NULL, row, RELAY_NONE, NULL, im);
    pthread_mutex_unlock(&room->mu);
    return 0;
}

/* ---- federation: out-of-band memberships ---- */

/* Whether the room is known here only by out-of-band memberships: no
 * create event in its current state (caller holds room->mu). */
static bool only_outofband(struct req *r, struct room *room)
{
    return state_get(room, &r->arena, "m.room.create", "") == NULL;
}

/* The cached room when it is known only by out-of-band memberships and
 * has version rv; else NULL. */
static struct room *outofband_room(struct req *r, const char *room_id,
                                   const struct room_version *rv)
{
    struct room *room;
    if (room_get(r, room_id, &room) < 0) {
        return NULL;
    }
    pthread_mutex_lock(&room->mu);
    bool oob = room->rv == rv && only_outofband(r, room);
    pthread_mutex_unlock(&room->mu);
    return oob ? room : NULL;
}

/*
 * Replaces `old` (an out-of-band room, still cached) by `room` in the
 * cache, under the same nid. `old` is poisoned, so a job still queued for
 * it fails rather than writing over the joined room. -ERR_CONFLICT when
 * `old` left the cache meanwhile.
 */
static int room_takeover(struct req *r, struct room *old, struct room *room)
{
    struct rooms *rs = r->srv->rooms;
    pthread_mutex_lock(&rs->map_mu);
    bool ours = !old->poisoned && map_get(&rs->by_id, str_from(old->room_id)) == old;
    if (ours) {
        old->poisoned = true;
        map_del(&rs->by_id, str_from(old->room_id));
        map_put(&rs->by_id, str_from(room->room_id), room);
        rs->graveyard = xrealloc(rs->graveyard, sizeof(*rs->graveyard) * (rs->n_graveyard + 1));
        rs->graveyard[rs->n_graveyard++] = old;
        room->nid = old->nid;
    }
    pthread_mutex_unlock(&rs->map_mu);
    return ours ? 0 : -ERR_CONFLICT;
}

int room_outofband_store(struct req *r, const struct room_version *rv, json_t *pdu,
                         const char **why)
{
    *why = NULL;
    const char *event_id = NULL;
    struct event *ev = NULL;
    if (event_compute_id(rv, pdu, &r->arena, &event_id) != 0 ||
        event_parse(&r->arena, rv, pdu, event_id, &ev, why) != 0) {
        *why = *why ? *why : "the event has no ID";
        return -ERR_BAD_JSON;
    }
    if (strcmp(ev->type, "m.room.member") != 0 || !ev->state_key || !ev->room_id) {
        *why = "not a membership event";
        return -ERR_BAD_JSON;
    }
    struct buf b = BUF_INIT;
    int rc = canonjson_write(&b, pdu, canonjson_mode_for(rv));
    char *canonical = rc == 0 ? arena_strndup(&r->arena, b.p ? b.p : "", b.len) : NULL;
    buf_release(&b);
    if (!canonical) {
        *why = "the event has no canonical JSON";
        return -ERR_BAD_JSON;
    }
    /* Twice: a room first seen here may be created by another request
     * between the lookup and the reservation. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct room *room;
        struct store_room *row = NULL;
        rc = room_get(r, ev->room_id, &room);
        if (rc == -ERR_NOT_FOUND) {
            room = xcalloc(1, sizeof(*room));
            pthread_mutex_init(&room->mu, NULL);
            map_init(&room->state);
            map_init(&room->pending_txns);
            room->rv = rv;
            room->room_id = xstrdup(ev->room_id);
            room->ext = xcalloc(1, sizeof(*room->ext));
            pthread_mutex_lock(&room->mu);
            rc = room_reserve(r, room);
            if (rc < 0) {
                pthread_mutex_unlock(&room->mu);
                room_free(room);
                if (rc == -ERR_CONFLICT) {
                    continue;
                }
                return rc;
            }
            row = ARENA_NEW(&r->arena, struct store_room);
            row->room_version = (char *)rv->id;
            row->created_ts = req_now_ms();
        } else if (rc < 0) {
            return rc;
        } else {
            pthread_mutex_lock(&room->mu);
            if (room->rv != rv || !only_outofband(r, room)) {
                pthread_mutex_unlock(&room->mu);
                *why = room->rv != rv ? "the room is known here with another version"
                                      : "the room is known here";
                return -ERR_CONFLICT;
            }
            /* Stored before, or queued moments ago. */
            struct store_event known;
            rc = state_by_event_id(room, event_id)
                     ? 0
                     : store_event_get(r->db, &r->arena, event_id, &known);
            if (rc != -ERR_NOT_FOUND) {
                pthread_mutex_unlock(&room->mu);
                return rc;
            }
        }
        if (row) {
            /* The job points at the row's strings until it is written. */
            row->room_id = arena_strdup(&r->arena, ev->room_id);
        }
        enqueue_relay(r, room, pdu, ev, canonical, NULL, 0, NULL, 0, NULL, row, RELAY_NONE, NULL,
                      NULL);
        pthread_mutex_unlock(&room->mu);
        return 0;
    }
    *why = "the room is being created by another request";
    return -ERR_CONFLICT;
}

int room_stripped_pdus(struct req *r, const char *room_id, json_t **out)
{
    static const char *const types[] = {"m.room.create",          "m.room.join_rules",
                                        "m.room.name",            "m.room.avatar",
                                        "m.room.canonical_alias", "m.room.encryption",
                                        "m.room.topic"};
    *out = NULL;
    struct room *room;
    int rc = room_get(r, room_id, &room);
    if (rc < 0) {
        return rc;
    }
    json_t *list = json_array();
    pthread_mutex_lock(&room->mu);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        const struct state_entry *e = state_get(room, &r->arena, types[i], "");
        if (e) {
            json_array_append_new(list, json_deep_copy(e->pdu));
        }
    }
    pthread_mutex_unlock(&room->mu);
    *out = list;
    return 0;
}

json_t *room_strip_state(const json_t *list)
{
    json_t *out = json_array();
    size_t i;
    const json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *type = json_get_str(e, "type"), *sk = json_get_str(e, "state_key");
        const char *sender = json_get_str(e, "sender");
        const json_t *content = json_object_get(e, "content");
        if (type && sk && sender && json_is_object(content)) {
            json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:O}", "type", type, "state_key",
                                                 sk, "sender", sender, "content", content));
        }
    }
    return out;
}
