/*
 * State resolution (spec: room version pages, "State resolution"): v1 for
 * room version 1, v2 for versions 2-11, v2.1 for version 12.
 *
 * One resolution owns a `struct resolver`: a node table holding every
 * event the algorithm touched (fetched once through ctx->get_event, its
 * auth events resolved to node indices once), and the maps and bitsets of
 * the steps. Everything is released when stateres_resolve returns except
 * what lands in `out`.
 *
 * Cost follows the conflict. Splitting the sets and filling `out` are
 * hash-map passes over the state; the auth chain work is done on the
 * region below the conflicted events (with per-state-set reachability
 * bitsets, so each auth chain is walked once), plus a pruned walk below the
 * unconflicted events that stops wherever the conflicted region already
 * knows an event is common to every chain. Sorting, auth checks and
 * mainline walks touch only the full conflicted set.
 */
#include "core/stateres.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/xmalloc.h"
#include "core/authrules.h"

#define NONE UINT32_MAX
#define KEY_MAX (2 * EVENT_MAX_ID_BYTES + 2)

enum {
    N_EXPANDED = 1u << 0,   /* auth events resolved to nodes */
    N_CONFLICTED = 1u << 1, /* in the conflicted state set */
    N_REGION = 1u << 2,     /* a conflicted event or in the auth chain of one */
    N_IN_U = 1u << 3,       /* in the auth chain of an unconflicted event */
    N_FULL = 1u << 4,       /* in the full conflicted set (usable: known, not rejected) */
    N_POWER = 1u << 5,      /* a power event */
    N_X = 1u << 6,          /* picked in step 1 */
    N_X_SEEN = 1u << 7,     /* visited by the step 1 walk */
    N_BELOW_X = 1u << 8,    /* some auth ancestor is in X */
    N_REACHES_C = 1u << 9,  /* reaches a conflicted event (v2.1 subgraph) */
    N_MAINLINE = 1u << 10,  /* mainline position memoised */
};

struct node {
    const char *id;
    const struct event *ev; /* NULL when unknown to ctx->get_event */
    uint32_t *auth;         /* node indices of the auth events */
    uint32_t n_auth;
    uint32_t flags;
    uint32_t stamp;  /* per-walk visit mark */
    int64_t mlpos;   /* memoised mainline position (INT64_MAX = none) */
    struct str key;  /* stateres_key of a state event, built on demand */
};

struct resolver {
    struct stateres_ctx *ctx;
    const struct room_version *rv;
    struct arena *arena;
    const struct map *const *sets;
    size_t n_sets;

    struct node *nodes;
    size_t n_nodes, cap_nodes;
    struct map ids; /* event ID -> node index + 1 */

    struct map conflicted; /* conflicted state keys -> (void *)1 */
    struct map resolved;   /* state keys applied by the iterative checks -> node index + 1 */
    bool base_unconflicted; /* iterative checks see the unconflicted map under `resolved` */

    /* Reachability bitsets over the region, `words` words per node. */
    size_t words;
    size_t n_masked; /* nodes that have a mask (those of the region) */
    uint64_t *mask;  /* bit i: in the auth chain of an event of set i */
    uint64_t *all;   /* every set bit */

    uint32_t stamp;
    uint32_t cur; /* event under the iterative auth checks */

    /* v1 only: the key and event the sequential pass is trying. */
    struct str pending_key;
    uint32_t pending;

    const struct event *create; /* v12: the create event named by the room ID */
    const char *create_room;
};

/* ------------------------------------------------------------------ */
/* Nodes                                                              */
/* ------------------------------------------------------------------ */

struct str stateres_key(struct arena *arena, const char *type, const char *state_key)
{
    size_t tl = strlen(type), sl = strlen(state_key);
    char *p = arena_alloc(arena, tl + sl + 2);
    memcpy(p, type, tl + 1);
    memcpy(p + tl + 1, state_key, sl + 1);
    return (struct str){p, tl + 1 + sl};
}

/* Builds the key in `buf` (KEY_MAX bytes); STR_NULL when it cannot fit. */
static struct str key_in(char *buf, const char *type, const char *state_key)
{
    size_t tl = strlen(type), sl = strlen(state_key);
    if (tl + sl + 2 > KEY_MAX) {
        return STR_NULL;
    }
    memcpy(buf, type, tl + 1);
    memcpy(buf + tl + 1, state_key, sl);
    return (struct str){buf, tl + 1 + sl};
}

static bool id_eq(const char *a, const char *b) { return a == b || strcmp(a, b) == 0; }

static uint32_t node_find(const struct resolver *r, const char *id)
{
    uintptr_t v = (uintptr_t)map_get(&r->ids, str_from(id));
    return v ? (uint32_t)(v - 1) : NONE;
}

/* The node for `id`, created (and its event fetched) on first use. */
static uint32_t node_get(struct resolver *r, const char *id)
{
    uint32_t idx = node_find(r, id);
    if (idx != NONE) {
        return idx;
    }
    if (r->n_nodes == r->cap_nodes) {
        r->cap_nodes = r->cap_nodes ? r->cap_nodes * 2 : 256;
        r->nodes = xrealloc(r->nodes, r->cap_nodes * sizeof(*r->nodes));
    }
    idx = (uint32_t)r->n_nodes++;
    const struct event *ev = r->ctx->get_event(r->ctx->ud, id);
    struct node *n = &r->nodes[idx];
    memset(n, 0, sizeof(*n));
    n->ev = ev;
    n->id = ev ? ev->event_id : id;
    n->mlpos = INT64_MAX;
    map_put(&r->ids, str_from(n->id), (void *)(uintptr_t)(idx + 1));
    return idx;
}

/* Resolves the auth events of node `idx` to nodes (once). Unknown auth
 * events still get a node, with ev == NULL, so walks stay uniform. */
static void node_expand(struct resolver *r, uint32_t idx)
{
    if (r->nodes[idx].flags & N_EXPANDED) {
        return;
    }
    r->nodes[idx].flags |= N_EXPANDED;
    const struct event *ev = r->nodes[idx].ev;
    if (!ev || ev->n_auth_events == 0) {
        return;
    }
    uint32_t *auth = arena_alloc(r->arena, ev->n_auth_events * sizeof(*auth));
    uint32_t n = 0;
    for (size_t i = 0; i < ev->n_auth_events; i++) {
        uint32_t a = node_get(r, ev->auth_events[i]);
        if (a != idx) {
            auth[n++] = a;
        }
    }
    r->nodes[idx].auth = auth;
    r->nodes[idx].n_auth = n;
}

static bool node_usable(const struct resolver *r, uint32_t idx)
{
    const struct event *ev = r->nodes[idx].ev;
    return ev && !ev->rejected && event_is_state(ev);
}

static struct str node_key(struct resolver *r, uint32_t idx)
{
    struct node *n = &r->nodes[idx];
    if (!n->key.p) {
        n->key = stateres_key(r->arena, n->ev->type, n->ev->state_key);
    }
    return n->key;
}

static bool ev_is(const struct event *ev, const char *type, const char *state_key)
{
    return ev && ev->state_key && strcmp(ev->type, type) == 0 &&
           strcmp(ev->state_key, state_key) == 0;
}

/* ------------------------------------------------------------------ */
/* Auth state lookups                                                 */
/* ------------------------------------------------------------------ */

/*
 * v12 ("Event format", room ID = hash of the create event): the create
 * event is not among auth_events; its ID is the room ID with "$" for "!".
 */
static const struct event *implied_create(struct resolver *r, const struct event *ev)
{
    if (!r->rv->room_id_is_create_hash || !ev->room_id) {
        return NULL;
    }
    if (r->create_room && strcmp(r->create_room, ev->room_id) == 0) {
        return r->create;
    }
    char *id = arena_strdup(r->arena, ev->room_id);
    id[0] = '$';
    const struct event *c = r->ctx->get_event(r->ctx->ud, id);
    if (c && (c->rejected || !ev_is(c, "m.room.create", ""))) {
        c = NULL;
    }
    r->create_room = ev->room_id;
    r->create = c;
    return c;
}

/* The usable auth event of node `idx` for (type, state_key), or NULL. */
static const struct event *from_auth_events(struct resolver *r, uint32_t idx, const char *type,
                                            const char *state_key)
{
    node_expand(r, idx);
    const struct node *n = &r->nodes[idx];
    for (uint32_t i = 0; i < n->n_auth; i++) {
        const struct event *a = r->nodes[n->auth[i]].ev;
        if (a && !a->rejected && ev_is(a, type, state_key)) {
            return a;
        }
    }
    if (strcmp(type, "m.room.create") == 0 && state_key[0] == '\0') {
        return implied_create(r, n->ev);
    }
    return NULL;
}

/* State as the event's own auth events describe it: "when looking at their
 * respective auth_events" (reverse topological power ordering). */
static const struct event *auth_events_get(void *ud, const char *type, const char *state_key)
{
    struct resolver *r = ud;
    return from_auth_events(r, r->cur, type, state_key);
}

/* The unconflicted state map (v2 step 2 starts from it; v1's R holds it). */
static const struct event *unconflicted_get(struct resolver *r, struct str key)
{
    if (map_has(&r->conflicted, key)) {
        return NULL;
    }
    for (size_t i = 0; i < r->n_sets; i++) {
        const char *id = map_get(r->sets[i], key);
        if (id) {
            const struct event *ev = r->ctx->get_event(r->ctx->ud, id);
            return ev && !ev->rejected ? ev : NULL;
        }
    }
    return NULL;
}

/*
 * The room state of the iterative auth checks (spec: "Iterative auth
 * checks"): the state built so far; a key it lacks (or holds with a
 * rejected event) comes from the checked event's auth_events, if not
 * rejected.
 */
static const struct event *iterative_get(void *ud, const char *type, const char *state_key)
{
    struct resolver *r = ud;
    char buf[KEY_MAX];
    struct str key = key_in(buf, type, state_key);
    if (key.p) {
        uintptr_t v = (uintptr_t)map_get(&r->resolved, key);
        if (v) {
            const struct event *ev = r->nodes[v - 1].ev;
            if (ev && !ev->rejected) {
                return ev;
            }
        } else if (r->base_unconflicted) {
            const struct event *ev = unconflicted_get(r, key);
            if (ev) {
                return ev;
            }
        }
    }
    return from_auth_events(r, r->cur, type, state_key);
}

/*
 * v1's R: the unconflicted state, the keys resolved so far, and the event
 * the current pass last accepted for the key it works on. No fallback to
 * the checked event's auth_events (room version 1 "State resolution").
 */
static const struct event *v1_get(void *ud, const char *type, const char *state_key)
{
    struct resolver *r = ud;
    char buf[KEY_MAX];
    struct str key = key_in(buf, type, state_key);
    if (!key.p) {
        return NULL;
    }
    if (r->pending != NONE && str_eq(key, r->pending_key)) {
        return r->nodes[r->pending].ev;
    }
    uintptr_t v = (uintptr_t)map_get(&r->resolved, key);
    if (v) {
        return r->nodes[v - 1].ev;
    }
    return unconflicted_get(r, key);
}

/* ------------------------------------------------------------------ */
/* Sorting                                                            */
/* ------------------------------------------------------------------ */

/* One sort entry: `rank` ascending, then origin_server_ts ascending, then
 * event ID ascending (the tie-breaks of both v2 orderings). */
struct sortkey {
    int64_t rank;
    int64_t ts;
    const char *id;
    uint32_t idx;
};

static int sortkey_cmp(const struct sortkey *a, const struct sortkey *b)
{
    if (a->rank != b->rank) {
        return a->rank < b->rank ? -1 : 1;
    }
    if (a->ts != b->ts) {
        return a->ts < b->ts ? -1 : 1;
    }
    return strcmp(a->id, b->id);
}

static int sortkey_qsort(const void *a, const void *b) { return sortkey_cmp(a, b); }

struct heap {
    struct sortkey *v;
    size_t n;
};

static void heap_push(struct heap *h, struct sortkey k)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (sortkey_cmp(&h->v[p], &k) <= 0) {
            break;
        }
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = k;
}

static struct sortkey heap_pop(struct heap *h)
{
    struct sortkey top = h->v[0];
    struct sortkey last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && sortkey_cmp(&h->v[c + 1], &h->v[c]) < 0) {
            c++;
        }
        if (sortkey_cmp(&last, &h->v[c]) <= 0) {
            break;
        }
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) {
        h->v[i] = last;
    }
    return top;
}

/* ------------------------------------------------------------------ */
/* Iterative auth checks                                              */
/* ------------------------------------------------------------------ */

/* Spec: "Iterative auth checks". Applies each allowed event of `list`
 * onto r->resolved; rejected and unknown events are never admitted. */
static void iterative_auth_checks(struct resolver *r, const uint32_t *list, size_t n)
{
    struct auth_state st = {iterative_get, r};
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = list[i];
        if (!node_usable(r, idx)) {
            continue;
        }
        r->cur = idx;
        if (authrules_check(r->nodes[idx].ev, &st, NULL) == 0) {
            map_put(&r->resolved, node_key(r, idx), (void *)(uintptr_t)(idx + 1));
        }
    }
}

/* ------------------------------------------------------------------ */
/* v2 and v2.1                                                        */
/* ------------------------------------------------------------------ */

static bool v2_is_power_event(const struct event *ev)
{
    /* Spec v2 "Power events": power levels, join rules, and leave/ban
     * memberships sent by someone other than the target. */
    if (!ev->state_key) {
        return false;
    }
    if (strcmp(ev->type, "m.room.power_levels") == 0 ||
        strcmp(ev->type, "m.room.join_rules") == 0) {
        return true;
    }
    const char *m = event_membership(ev);
    return m && (strcmp(m, "leave") == 0 || strcmp(m, "ban") == 0) &&
           strcmp(ev->sender, ev->state_key) != 0;
}

static uint64_t *mask_of(struct resolver *r, uint32_t idx) { return r->mask + idx * r->words; }

static bool mask_is_all(struct resolver *r, uint32_t idx)
{
    if (idx >= r->n_masked) {
        return false;
    }
    const uint64_t *m = mask_of(r, idx);
    for (size_t w = 0; w < r->words; w++) {
        if (m[w] != r->all[w]) {
            return false;
        }
    }
    return true;
}

static bool mask_is_empty(struct resolver *r, uint32_t idx)
{
    const uint64_t *m = mask_of(r, idx);
    for (size_t w = 0; w < r->words; w++) {
        if (m[w]) {
            return false;
        }
    }
    return true;
}

/* Dynamic array of node indices (heap memory, freed by the caller). */
struct idxvec {
    uint32_t *v;
    size_t n, cap;
};

static void idxvec_push(struct idxvec *a, uint32_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = x;
}

/*
 * Splits the sets (spec v2: "Unconflicted state map and conflicted state
 * set"): a key is unconflicted only when every set holds it with the same
 * event. Fills r->conflicted with the conflicted keys.
 */
static void v2_split(struct resolver *r)
{
    const struct map *s0 = r->sets[0];
    const struct map_entry *e;
    for (size_t i = 0; map_next(s0, &i, &e);) {
        for (size_t j = 1; j < r->n_sets; j++) {
            const char *v = map_get(r->sets[j], e->key);
            if (!v || !id_eq(v, e->value)) {
                map_put(&r->conflicted, e->key, (void *)1);
                break;
            }
        }
    }
    for (size_t j = 1; j < r->n_sets; j++) {
        for (size_t i = 0; map_next(r->sets[j], &i, &e);) {
            if (!map_has(s0, e->key)) {
                map_put(&r->conflicted, e->key, (void *)1);
            }
        }
    }
}

/* Depth-first postorder (auth events before the events citing them) of
 * the conflicted events and their auth chains: the "region". */
static void region_walk(struct resolver *r, const struct idxvec *roots, struct idxvec *post)
{
    struct idxvec stack = {0};
    struct idxvec pos = {0};
    for (size_t k = 0; k < roots->n; k++) {
        uint32_t root = roots->v[k];
        if (r->nodes[root].flags & N_REGION) {
            continue;
        }
        r->nodes[root].flags |= N_REGION;
        idxvec_push(&stack, root);
        idxvec_push(&pos, 0);
        while (stack.n) {
            uint32_t top = stack.v[stack.n - 1];
            node_expand(r, top);
            uint32_t next = pos.v[pos.n - 1];
            if (next < r->nodes[top].n_auth) {
                pos.v[pos.n - 1]++;
                uint32_t a = r->nodes[top].auth[next];
                if (!(r->nodes[a].flags & N_REGION)) {
                    r->nodes[a].flags |= N_REGION;
                    idxvec_push(&stack, a);
                    idxvec_push(&pos, 0);
                }
            } else {
                idxvec_push(post, top);
                stack.n--;
                pos.n--;
            }
        }
    }
    free(stack.v);
    free(pos.v);
}

/*
 * Marks the region events that lie in the auth chain of some unconflicted
 * event (N_IN_U): those are in every set's full auth chain. The walk stops
 * at region events already common to every set (their ancestors are too)
 * and never walks an event twice.
 */
static void unconflicted_walk(struct resolver *r)
{
    struct map seen;
    map_init(&seen);
    struct idxvec dstack = {0};
    /* Events outside the region are walked by event, not by node, so the
     * bulk of the room never enters the node table. */
    const struct event **estack = NULL;
    size_t en = 0, ecap = 0;

    const struct map_entry *e;
    for (size_t it = 0; map_next(r->sets[0], &it, &e);) {
        if (map_has(&r->conflicted, e->key)) {
            continue;
        }
        const char *uid = e->value;
        uint32_t u = node_find(r, uid);
        if (u != NONE && (r->nodes[u].flags & N_REGION)) {
            idxvec_push(&dstack, u);
        } else {
            /* Each unconflicted event starts a walk once; `seen` only
             * guards the events below them, so an event that is both
             * unconflicted and below another is walked at most twice. */
            const struct event *ev = r->ctx->get_event(r->ctx->ud, uid);
            if (!ev) {
                continue;
            }
            if (en == ecap) {
                ecap = ecap ? ecap * 2 : 64;
                estack = xrealloc(estack, ecap * sizeof(*estack));
            }
            estack[en++] = ev;
        }
        while (dstack.n || en) {
            if (dstack.n) {
                uint32_t d = dstack.v[--dstack.n];
                const struct node *dn = &r->nodes[d];
                for (uint32_t i = 0; i < dn->n_auth; i++) {
                    uint32_t a = dn->auth[i];
                    if ((r->nodes[a].flags & N_IN_U) || mask_is_all(r, a)) {
                        continue;
                    }
                    r->nodes[a].flags |= N_IN_U;
                    idxvec_push(&dstack, a);
                }
                continue;
            }
            const struct event *ev = estack[--en];
            for (size_t i = 0; i < ev->n_auth_events; i++) {
                const char *aid = ev->auth_events[i];
                uint32_t a = node_find(r, aid);
                if (a != NONE && (r->nodes[a].flags & N_REGION)) {
                    if ((r->nodes[a].flags & N_IN_U) || mask_is_all(r, a)) {
                        continue;
                    }
                    r->nodes[a].flags |= N_IN_U;
                    idxvec_push(&dstack, a);
                    continue;
                }
                if (map_has(&seen, str_from(aid))) {
                    continue;
                }
                map_put(&seen, str_from(aid), (void *)1);
                const struct event *aev = r->ctx->get_event(r->ctx->ud, aid);
                if (aev) {
                    if (en == ecap) {
                        ecap = ecap ? ecap * 2 : 64;
                        estack = xrealloc(estack, ecap * sizeof(*estack));
                    }
                    estack[en++] = aev;
                }
            }
        }
    }
    free(estack);
    free(dstack.v);
    map_release(&seen);
}

/* The sender's power as its own auth events state it (v2 "Reverse
 * topological power ordering", comparison 1). */
static int64_t sender_power(struct resolver *r, uint32_t idx)
{
    struct auth_state st = {auth_events_get, r};
    r->cur = idx;
    return authrules_user_power(r->rv, &st, r->nodes[idx].ev->sender);
}

/*
 * Spec v2 "Reverse topological power ordering": Kahn's algorithm over the
 * auth DAG restricted to X (an X event's X-ancestors reached through
 * events outside X count as edges too), always taking the smallest ready
 * event by (power desc, origin_server_ts asc, event_id asc).
 */
static void power_sort(struct resolver *r, const struct idxvec *post, struct idxvec *out)
{
    /* Which events have an X event below them, so the edge search can skip
     * the (usually large) common base of the auth DAG. */
    for (size_t k = 0; k < post->n; k++) {
        struct node *n = &r->nodes[post->v[k]];
        for (uint32_t i = 0; i < n->n_auth; i++) {
            const struct node *a = &r->nodes[n->auth[i]];
            if (a->flags & (N_X | N_BELOW_X)) {
                n->flags |= N_BELOW_X;
                break;
            }
        }
    }
    struct idxvec xs = {0};
    for (size_t k = 0; k < post->n; k++) {
        if (r->nodes[post->v[k]].flags & N_X) {
            idxvec_push(&xs, post->v[k]);
        }
    }
    /* Edges x -> a (a is an X auth ancestor of x): pending[x] counts them,
     * users lists, per a, the x waiting on it. */
    size_t nx = xs.n;
    uint32_t *slot = xmalloc((r->n_nodes ? r->n_nodes : 1) * sizeof(*slot));
    for (size_t k = 0; k < nx; k++) {
        slot[xs.v[k]] = (uint32_t)k;
    }
    uint32_t *pending = xcalloc(nx ? nx : 1, sizeof(*pending));
    struct idxvec edge_from = {0}, edge_to = {0}, stack = {0};
    for (size_t k = 0; k < nx; k++) {
        uint32_t x = xs.v[k];
        r->stamp++;
        stack.n = 0;
        idxvec_push(&stack, x);
        while (stack.n) {
            const struct node *n = &r->nodes[stack.v[--stack.n]];
            for (uint32_t i = 0; i < n->n_auth; i++) {
                uint32_t a = n->auth[i];
                struct node *an = &r->nodes[a];
                if (an->stamp == r->stamp) {
                    continue;
                }
                an->stamp = r->stamp;
                if (an->flags & N_X) {
                    pending[k]++;
                    idxvec_push(&edge_from, slot[a]);
                    idxvec_push(&edge_to, (uint32_t)k);
                } else if (an->flags & N_BELOW_X) {
                    idxvec_push(&stack, a);
                }
            }
        }
    }
    /* Compressed adjacency: for each a, the x citing it. */
    uint32_t *start = xcalloc(nx + 1, sizeof(*start));
    for (size_t e = 0; e < edge_from.n; e++) {
        start[edge_from.v[e] + 1]++;
    }
    for (size_t k = 0; k < nx; k++) {
        start[k + 1] += start[k];
    }
    uint32_t *fill = xmalloc((nx + 1) * sizeof(*fill));
    memcpy(fill, start, (nx + 1) * sizeof(*fill));
    uint32_t *users = xmalloc((edge_from.n ? edge_from.n : 1) * sizeof(*users));
    for (size_t e = 0; e < edge_from.n; e++) {
        users[fill[edge_from.v[e]]++] = edge_to.v[e];
    }

    struct sortkey *keys = xmalloc((nx ? nx : 1) * sizeof(*keys));
    for (size_t k = 0; k < nx; k++) {
        const struct event *ev = r->nodes[xs.v[k]].ev;
        int64_t p = sender_power(r, xs.v[k]);
        keys[k] = (struct sortkey){p == INT64_MIN ? INT64_MAX : -p, ev->origin_server_ts,
                                   ev->event_id, (uint32_t)k};
    }
    struct heap h = {xmalloc((nx ? nx : 1) * sizeof(struct sortkey)), 0};
    for (size_t k = 0; k < nx; k++) {
        if (!pending[k]) {
            heap_push(&h, keys[k]);
        }
    }
    while (h.n) {
        struct sortkey top = heap_pop(&h);
        idxvec_push(out, xs.v[top.idx]);
        for (uint32_t e = start[top.idx]; e < start[top.idx + 1]; e++) {
            if (--pending[users[e]] == 0) {
                heap_push(&h, keys[users[e]]);
            }
        }
    }
    free(h.v);
    free(keys);
    free(users);
    free(fill);
    free(start);
    free(pending);
    free(slot);
    free(edge_from.v);
    free(edge_to.v);
    free(stack.v);
    free(xs.v);
}

/* The power levels event among the auth events of node `idx` (state key
 * ""), or NONE. */
static uint32_t pl_parent(struct resolver *r, uint32_t idx)
{
    node_expand(r, idx);
    const struct node *n = &r->nodes[idx];
    for (uint32_t i = 0; i < n->n_auth; i++) {
        const struct event *a = r->nodes[n->auth[i]].ev;
        if (a && !a->rejected && ev_is(a, "m.room.power_levels", "")) {
            return n->auth[i];
        }
    }
    return NONE;
}

/*
 * Spec v2 "Mainline ordering": the mainline position of an event is that
 * of the first power levels event in its power-levels ancestry (not the
 * event itself) that lies on the mainline; INT64_MAX when none does.
 * Positions of the ancestry are memoised, so each power levels event is
 * walked once per resolution.
 */
static int64_t mainline_position(struct resolver *r, uint32_t idx, struct idxvec *path)
{
    path->n = 0;
    uint32_t p = pl_parent(r, idx);
    int64_t pos = INT64_MAX;
    while (p != NONE) {
        if (r->nodes[p].flags & N_MAINLINE) {
            pos = r->nodes[p].mlpos;
            break;
        }
        idxvec_push(path, p);
        r->nodes[p].flags |= N_MAINLINE; /* provisional; guards against auth cycles */
        p = pl_parent(r, p);
    }
    for (size_t i = 0; i < path->n; i++) {
        r->nodes[path->v[i]].mlpos = pos;
    }
    return pos;
}

static void mainline_sort(struct resolver *r, struct idxvec *list)
{
    /* The mainline of the power levels event of the partially resolved
     * state: P0, P1 (its power levels auth event), ... */
    char buf[KEY_MAX];
    uintptr_t v = (uintptr_t)map_get(&r->resolved, key_in(buf, "m.room.power_levels", ""));
    uint32_t p = NONE;
    if (v) {
        p = (uint32_t)(v - 1);
    } else if (r->base_unconflicted) {
        const struct event *ev = unconflicted_get(r, key_in(buf, "m.room.power_levels", ""));
        if (ev) {
            p = node_get(r, ev->event_id);
        }
    }
    for (int64_t i = 0; p != NONE && !(r->nodes[p].flags & N_MAINLINE); i++) {
        r->nodes[p].flags |= N_MAINLINE;
        r->nodes[p].mlpos = i;
        p = pl_parent(r, p);
    }
    struct idxvec path = {0};
    struct sortkey *keys = xmalloc((list->n ? list->n : 1) * sizeof(*keys));
    for (size_t k = 0; k < list->n; k++) {
        const struct event *ev = r->nodes[list->v[k]].ev;
        int64_t pos = mainline_position(r, list->v[k], &path);
        /* Greater position sorts first; "none" (INT64_MAX) first of all. */
        keys[k] = (struct sortkey){-pos, ev->origin_server_ts, ev->event_id, list->v[k]};
    }
    qsort(keys, list->n, sizeof(*keys), sortkey_qsort);
    for (size_t k = 0; k < list->n; k++) {
        list->v[k] = keys[k].idx;
    }
    free(keys);
    free(path.v);
}

/* Spec v2/v2.1 "Algorithm", steps 1-5. */
static int resolve_v2(struct resolver *r, struct map *out)
{
    bool v21 = r->rv->stateres == STATERES_V2_1;
    v2_split(r);

    /* The conflicted state set, each event with the sets holding it. */
    struct idxvec ce = {0}, ce_set = {0};
    const struct map_entry *e;
    for (size_t it = 0; map_next(&r->conflicted, &it, &e);) {
        for (size_t i = 0; i < r->n_sets; i++) {
            const char *id = map_get(r->sets[i], e->key);
            if (id) {
                uint32_t idx = node_get(r, id);
                if (!(r->nodes[idx].flags & N_CONFLICTED)) {
                    r->nodes[idx].flags |= N_CONFLICTED;
                }
                idxvec_push(&ce, idx);
                idxvec_push(&ce_set, (uint32_t)i);
            }
        }
    }

    struct idxvec post = {0};
    region_walk(r, &ce, &post);

    /* Auth difference (spec v2 "Auth difference"): bit i of an event's
     * mask says it is in the auth chain of a conflicted event of set i;
     * unconflicted events' chains are in every set's chain (N_IN_U). */
    r->words = (r->n_sets + 63) / 64;
    r->n_masked = r->n_nodes;
    r->mask = xcalloc(r->n_masked * r->words, sizeof(uint64_t));
    r->all = xcalloc(r->words, sizeof(uint64_t));
    for (size_t i = 0; i < r->n_sets; i++) {
        r->all[i / 64] |= 1ull << (i % 64);
    }
    uint64_t *own = xcalloc(r->n_masked * r->words, sizeof(uint64_t));
    for (size_t k = 0; k < ce.n; k++) {
        own[ce.v[k] * r->words + ce_set.v[k] / 64] |= 1ull << (ce_set.v[k] % 64);
    }
    for (size_t k = post.n; k-- > 0;) {
        uint32_t x = post.v[k];
        const struct node *n = &r->nodes[x];
        for (uint32_t i = 0; i < n->n_auth; i++) {
            uint64_t *am = mask_of(r, n->auth[i]);
            const uint64_t *xm = mask_of(r, x);
            for (size_t w = 0; w < r->words; w++) {
                am[w] |= xm[w] | own[x * r->words + w];
            }
        }
    }
    free(own);
    unconflicted_walk(r);

    /* v2.1 "Conflicted state subgraph": events on an auth path between two
     * conflicted events: reached from one (all of the region is) and
     * reaching one. */
    if (v21) {
        for (size_t k = 0; k < post.n; k++) {
            struct node *n = &r->nodes[post.v[k]];
            bool reaches = n->flags & N_CONFLICTED;
            for (uint32_t i = 0; i < n->n_auth && !reaches; i++) {
                reaches = r->nodes[n->auth[i]].flags & N_REACHES_C;
            }
            if (reaches) {
                n->flags |= N_REACHES_C;
            }
        }
    }

    /* Full conflicted set: conflicted events, the auth difference and
     * (v2.1) the subgraph; unknown and rejected events are left out. */
    struct idxvec powers = {0};
    for (size_t k = 0; k < post.n; k++) {
        uint32_t x = post.v[k];
        struct node *n = &r->nodes[x];
        bool in = n->flags & N_CONFLICTED;
        if (!in && !(n->flags & N_IN_U) && !mask_is_empty(r, x) && !mask_is_all(r, x)) {
            in = true;
        }
        if (!in && v21 && (n->flags & N_REACHES_C)) {
            in = true;
        }
        if (!in || !node_usable(r, x)) {
            continue;
        }
        n->flags |= N_FULL;
        if (v2_is_power_event(n->ev)) {
            n->flags |= N_POWER;
            idxvec_push(&powers, x);
        }
    }

    /* Step 1: power events and the full-conflicted-set events of their
     * auth chains. */
    struct idxvec stack = {0};
    for (size_t k = 0; k < powers.n; k++) {
        uint32_t x = powers.v[k];
        if (r->nodes[x].flags & N_X_SEEN) {
            continue;
        }
        r->nodes[x].flags |= N_X_SEEN;
        idxvec_push(&stack, x);
        while (stack.n) {
            struct node *n = &r->nodes[stack.v[--stack.n]];
            if (n->flags & N_FULL) {
                n->flags |= N_X;
            }
            for (uint32_t i = 0; i < n->n_auth; i++) {
                struct node *a = &r->nodes[n->auth[i]];
                if (!(a->flags & N_X_SEEN)) {
                    a->flags |= N_X_SEEN;
                    idxvec_push(&stack, n->auth[i]);
                }
            }
        }
    }
    struct idxvec sorted = {0};
    power_sort(r, &post, &sorted);

    /* Step 2: iterative auth checks from the unconflicted state map (v2)
     * or from an empty state map (v2.1). */
    r->base_unconflicted = !v21;
    iterative_auth_checks(r, sorted.v, sorted.n);

    /* Steps 3-4: the other events of the full conflicted set, in mainline
     * order of the partially resolved power levels, then checked again. */
    struct idxvec rest = {0};
    for (size_t k = 0; k < post.n; k++) {
        uint32_t x = post.v[k];
        if ((r->nodes[x].flags & (N_FULL | N_X)) == N_FULL) {
            idxvec_push(&rest, x);
        }
    }
    mainline_sort(r, &rest);
    iterative_auth_checks(r, rest.v, rest.n);

    /* Step 5: the resolved state, with every key of the unconflicted state
     * map replaced by its unconflicted event. The resolved state may hold
     * keys no input set has (auth difference events); they stay. */
    for (size_t it = 0; map_next(&r->resolved, &it, &e);) {
        map_put(out, e->key, (void *)r->nodes[(uintptr_t)e->value - 1].id);
    }
    for (size_t it = 0; map_next(r->sets[0], &it, &e);) {
        if (!map_has(&r->conflicted, e->key)) {
            map_put(out, e->key, e->value);
        }
    }

    free(ce.v);
    free(ce_set.v);
    free(post.v);
    free(powers.v);
    free(stack.v);
    free(sorted.v);
    free(rest.v);
    return 0;
}

/* ------------------------------------------------------------------ */
/* v1                                                                 */
/* ------------------------------------------------------------------ */

struct v1key {
    int64_t depth;
    unsigned char sha1[20];
    uint32_t idx;
};

/* Room version 1 order: ascending depth, then descending sha1(event_id). */
static int v1key_cmp(const void *pa, const void *pb)
{
    const struct v1key *a = pa, *b = pb;
    if (a->depth != b->depth) {
        return a->depth < b->depth ? -1 : 1;
    }
    return -memcmp(a->sha1, b->sha1, sizeof(a->sha1));
}

static void v1_order(struct resolver *r, struct v1key *keys, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const struct event *ev = r->nodes[keys[k].idx].ev;
        keys[k].depth = ev->depth;
        unsigned int len = 0;
        EVP_Digest(ev->event_id, strlen(ev->event_id), keys[k].sha1, &len, EVP_sha1(), NULL);
    }
    qsort(keys, n, sizeof(*keys), v1key_cmp);
}

/*
 * One conflicted key of an auth type (room version 1 "State resolution"):
 * take the first event of the ordered list, then each next one while it
 * passes the authorization rules against R with the previous one in place.
 */
static uint32_t v1_resolve_auth(struct resolver *r, struct str key, struct v1key *keys, size_t n)
{
    struct auth_state st = {v1_get, r};
    v1_order(r, keys, n);
    r->pending_key = key;
    r->pending = keys[0].idx;
    for (size_t k = 1; k < n; k++) {
        if (authrules_check(r->nodes[keys[k].idx].ev, &st, NULL) != 0) {
            break;
        }
        r->pending = keys[k].idx;
    }
    uint32_t won = r->pending;
    r->pending = NONE;
    return won;
}

/* Other conflicted keys: the highest depth, lowest sha1(event_id) event
 * that passes against R; if none passes, the last tried (lowest depth). */
static uint32_t v1_resolve_normal(struct resolver *r, struct v1key *keys, size_t n)
{
    struct auth_state st = {v1_get, r};
    v1_order(r, keys, n);
    for (size_t k = n; k-- > 0;) {
        if (authrules_check(r->nodes[keys[k].idx].ev, &st, NULL) == 0) {
            return keys[k].idx;
        }
    }
    return keys[0].idx;
}

enum v1_phase { V1_POWER, V1_JOIN_RULES, V1_MEMBER, V1_OTHER, V1__PHASES };

static enum v1_phase v1_phase_of(struct str key)
{
    if (str_eq(key, (struct str){"m.room.power_levels", sizeof("m.room.power_levels")})) {
        return V1_POWER;
    }
    if (strcmp(key.p, "m.room.join_rules") == 0) {
        return V1_JOIN_RULES;
    }
    if (strcmp(key.p, "m.room.member") == 0) {
        return V1_MEMBER;
    }
    return V1_OTHER;
}

/*
 * Room version 1 "State resolution". A key is conflicted when the sets
 * holding it disagree (a key missing from some sets is not a conflict).
 * Power levels, then join rules, then members, then the rest; the keys of
 * one phase are resolved against R as it stood before the phase, and are
 * added to R together after it.
 */
static int resolve_v1(struct resolver *r, struct map *out)
{
    const struct map_entry *e;
    struct map first;
    map_init(&first);
    for (size_t i = 0; i < r->n_sets; i++) {
        for (size_t it = 0; map_next(r->sets[i], &it, &e);) {
            const char *v = map_get(&first, e->key);
            if (!v) {
                map_put(&first, e->key, e->value);
            } else if (!id_eq(v, e->value)) {
                map_put(&r->conflicted, e->key, (void *)1);
            }
        }
    }
    for (size_t it = 0; map_next(&first, &it, &e);) {
        if (!map_has(&r->conflicted, e->key)) {
            map_put(out, e->key, e->value);
        }
    }
    map_release(&first);

    struct v1key *keys = xmalloc(r->n_sets * sizeof(*keys));
    struct str *done_key = NULL;
    uint32_t *done_idx = NULL;
    size_t n_done = 0, cap_done = 0;
    for (int phase = V1_POWER; phase < V1__PHASES; phase++) {
        n_done = 0;
        for (size_t it = 0; map_next(&r->conflicted, &it, &e);) {
            if (v1_phase_of(e->key) != (enum v1_phase)phase) {
                continue;
            }
            size_t n = 0;
            for (size_t i = 0; i < r->n_sets; i++) {
                const char *id = map_get(r->sets[i], e->key);
                if (!id) {
                    continue;
                }
                uint32_t idx = node_get(r, id);
                bool dup = false;
                for (size_t k = 0; k < n && !dup; k++) {
                    dup = keys[k].idx == idx;
                }
                if (!dup && node_usable(r, idx)) {
                    keys[n++].idx = idx;
                }
            }
            if (n == 0) {
                continue; /* every candidate unknown or rejected: the key stays empty */
            }
            uint32_t won = phase == V1_OTHER ? v1_resolve_normal(r, keys, n)
                                             : v1_resolve_auth(r, e->key, keys, n);
            if (n_done == cap_done) {
                cap_done = cap_done ? cap_done * 2 : 16;
                done_key = xrealloc(done_key, cap_done * sizeof(*done_key));
                done_idx = xrealloc(done_idx, cap_done * sizeof(*done_idx));
            }
            done_key[n_done] = e->key;
            done_idx[n_done++] = won;
        }
        for (size_t k = 0; k < n_done; k++) {
            map_put(&r->resolved, done_key[k], (void *)(uintptr_t)(done_idx[k] + 1));
            map_put(out, done_key[k], (void *)r->nodes[done_idx[k]].id);
        }
    }
    free(done_key);
    free(done_idx);
    free(keys);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Entry point                                                        */
/* ------------------------------------------------------------------ */

int stateres_resolve(struct stateres_ctx *ctx, const struct map *const *sets, size_t n_sets,
                     struct map *out)
{
    if (n_sets == 0) {
        return 0;
    }
    if (n_sets == 1) {
        const struct map_entry *e;
        for (size_t it = 0; map_next(sets[0], &it, &e);) {
            map_put(out, e->key, e->value);
        }
        return 0;
    }
    struct resolver r = {
        .ctx = ctx,
        .rv = ctx->rv,
        .arena = ctx->arena,
        .sets = sets,
        .n_sets = n_sets,
        .pending = NONE,
    };
    map_init(&r.ids);
    map_init(&r.conflicted);
    map_init(&r.resolved);
    int rc = ctx->rv->stateres == STATERES_V1 ? resolve_v1(&r, out) : resolve_v2(&r, out);
    map_release(&r.ids);
    map_release(&r.conflicted);
    map_release(&r.resolved);
    free(r.nodes);
    free(r.mask);
    free(r.all);
    return rc;
}
