/*
 * State resolution benchmark: synthetic rooms of 1k, 10k and 100k state
 * events, forked in two with a few hundred conflicting keys, resolved with
 * v2 (room version 11) and v2.1 (room version 12). Prints the median
 * wall time of several resolutions per size and version.
 *
 * The room: create, the creator's join, power levels, join rules, then
 * members; one in four was invited by the creator before joining, so the
 * auth DAG has membership chains (each member event is authorised by the
 * create event, the power levels, the join rules and the member's own
 * previous membership). Fork A: the creator changes the power levels,
 * kicks members and some members leave; fork B: new users join, the
 * creator bans members, and some members change their display name; a
 * slice of members is changed on both forks. Events are built directly
 * as `struct event`s sharing content objects, so setup stays cheap.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/arena.h"
#include "base/json.h"
#include "base/map.h"
#include "core/event.h"
#include "core/roomver.h"
#include "core/stateres.h"

#define RUNS 7
#define CONFLICTS 300
#define CREATOR "@creator:bench.example"

struct room {
    struct arena arena;
    const struct room_version *rv;
    const char *room_id;
    struct map events; /* event ID -> struct event * */
    struct map base;   /* the state before the fork */
    long next_id;
    int64_t ts;
    json_t *c_join, *c_invite, *c_leave, *c_ban, *c_join_named, *c_create, *c_pl, *c_pl2,
        *c_jr, *c_topic, *empty;
};

static const struct event *room_get(void *ud, const char *id)
{
    struct room *r = ud;
    return map_get(&r->events, str_from(id));
}

/* A new event; `auth` lists up to 4 auth event IDs (NULLs skipped). */
static struct event *mk(struct room *r, const char *type, const char *state_key,
                        const char *sender, json_t *content, const char *a0, const char *a1,
                        const char *a2, const char *a3)
{
    struct event *ev = ARENA_NEW(&r->arena, struct event);
    ev->json = r->empty;
    ev->rv = r->rv;
    if (strcmp(type, "m.room.create") == 0 && r->rv->room_id_is_create_hash) {
        ev->event_id = "$CREATEbench";
    } else {
        ev->event_id = arena_printf(&r->arena, "$ev%ld", r->next_id++);
        ev->room_id = r->room_id;
    }
    ev->sender = sender;
    ev->type = type;
    ev->state_key = state_key;
    ev->depth = r->ts;
    ev->origin_server_ts = r->ts++;
    ev->content = content;
    const char **auth = arena_alloc(&r->arena, 4 * sizeof(*auth));
    const char *in[4] = {a0, a1, a2, a3};
    for (int i = 0; i < 4; i++) {
        if (in[i]) {
            auth[ev->n_auth_events++] = in[i];
        }
    }
    ev->auth_events = auth;
    map_put(&r->events, str_from(ev->event_id), ev);
    return ev;
}

static void set_state(struct room *r, struct map *s, const struct event *ev)
{
    map_put(s, stateres_key(&r->arena, ev->type, ev->state_key), (void *)ev->event_id);
}

static const char *state_id(struct room *r, struct map *s, const char *type, const char *sk)
{
    return map_get(s, stateres_key(&r->arena, type, sk));
}

static json_t *keep(struct room *r, json_t *j) { return json_arena(&r->arena, j); }

static const char *user(struct room *r, long i)
{
    return arena_printf(&r->arena, "@user%ld:bench.example", i);
}

/* The create event in auth_events for v1-v11; v12 names it by room ID. */
static const char *create_ref(struct room *r, const char *create_id)
{
    return r->rv->room_id_is_create_hash ? NULL : create_id;
}

static void room_build(struct room *r, const char *version, long n_state, struct map *a,
                       struct map *b)
{
    arena_init(&r->arena);
    r->rv = roomver_get(version);
    r->room_id = r->rv->room_id_is_create_hash ? "!CREATEbench" : "!bench:bench.example";
    map_init(&r->events);
    map_init(&r->base);
    r->next_id = 0;
    r->ts = 1;
    r->empty = keep(r, json_object());
    r->c_join = keep(r, json_pack("{s:s}", "membership", "join"));
    r->c_join_named = keep(r, json_pack("{s:s, s:s}", "membership", "join", "displayname", "x"));
    r->c_invite = keep(r, json_pack("{s:s}", "membership", "invite"));
    r->c_leave = keep(r, json_pack("{s:s}", "membership", "leave"));
    r->c_ban = keep(r, json_pack("{s:s}", "membership", "ban"));
    r->c_create = keep(r, json_pack("{s:s, s:s}", "creator", CREATOR, "room_version", version));
    bool v12 = r->rv->privileged_creators;
    r->c_pl = keep(r, v12 ? json_pack("{s:{}}", "users")
                          : json_pack("{s:{s:i}}", "users", CREATOR, 100));
    r->c_pl2 = keep(r, v12 ? json_pack("{s:{}, s:i}", "users", "state_default", 40)
                           : json_pack("{s:{s:i}, s:i}", "users", CREATOR, 100, "state_default", 40));
    r->c_jr = keep(r, json_pack("{s:s}", "join_rule", "public"));
    r->c_topic = keep(r, json_pack("{s:s}", "topic", "t"));

    struct event *create = mk(r, "m.room.create", "", CREATOR, r->c_create, NULL, NULL, NULL, NULL);
    const char *cr = create_ref(r, create->event_id);
    struct event *cj = mk(r, "m.room.member", CREATOR, CREATOR, r->c_join, cr, NULL, NULL, NULL);
    struct event *pl = mk(r, "m.room.power_levels", "", CREATOR, r->c_pl, cr, cj->event_id, NULL,
                          NULL);
    struct event *jr = mk(r, "m.room.join_rules", "", CREATOR, r->c_jr, cr, pl->event_id,
                          cj->event_id, NULL);
    set_state(r, &r->base, create);
    set_state(r, &r->base, cj);
    set_state(r, &r->base, pl);
    set_state(r, &r->base, jr);
    long members = n_state - 4;
    for (long i = 0; i < members; i++) {
        const char *u = user(r, i);
        const char *prev = NULL;
        if (i % 4 == 0) {
            struct event *inv = mk(r, "m.room.member", u, CREATOR, r->c_invite, cr, pl->event_id,
                                   cj->event_id, jr->event_id);
            prev = inv->event_id;
        }
        struct event *j = mk(r, "m.room.member", u, u, r->c_join, cr, pl->event_id, jr->event_id,
                             prev);
        set_state(r, &r->base, j);
    }

    /* The two forks start from the same state. */
    const struct map_entry *e;
    for (size_t i = 0; map_next(&r->base, &i, &e);) {
        map_put(a, e->key, e->value);
        map_put(b, e->key, e->value);
    }
    const char *cj_id = cj->event_id;
    /* Fork A: a power levels change, kicks by the creator and leaves. */
    struct event *pl2 = mk(r, "m.room.power_levels", "", CREATOR, r->c_pl2, cr, pl->event_id,
                           cj_id, NULL);
    set_state(r, a, pl2);
    long per = CONFLICTS / 6;
    long stride = members / (5 * per + 1);
    if (stride < 1) {
        stride = 1;
    }
    long m = 1;
    for (long k = 0; k < per && m < members; k++, m += stride) { /* kicks */
        const char *u = user(r, m);
        set_state(r, a, mk(r, "m.room.member", u, CREATOR, r->c_leave, cr, pl2->event_id, cj_id,
                           state_id(r, a, "m.room.member", u)));
    }
    for (long k = 0; k < per && m < members; k++, m += stride) { /* leaves */
        const char *u = user(r, m);
        set_state(r, a, mk(r, "m.room.member", u, u, r->c_leave, cr, pl2->event_id,
                           state_id(r, a, "m.room.member", u), NULL));
    }
    /* Fork B: bans, display name changes, new joins. */
    for (long k = 0; k < per && m < members; k++, m += stride) {
        const char *u = user(r, m);
        set_state(r, b, mk(r, "m.room.member", u, CREATOR, r->c_ban, cr, pl->event_id, cj_id,
                           state_id(r, b, "m.room.member", u)));
    }
    for (long k = 0; k < per && m < members; k++, m += stride) {
        const char *u = user(r, m);
        set_state(r, b, mk(r, "m.room.member", u, u, r->c_join_named, cr, pl->event_id,
                           jr->event_id, state_id(r, b, "m.room.member", u)));
    }
    for (long k = 0; k < per; k++) {
        const char *u = user(r, members + k);
        set_state(r, b, mk(r, "m.room.member", u, u, r->c_join, cr, pl->event_id, jr->event_id,
                           NULL));
    }
    /* Both forks: the same members change on each side. */
    for (long k = 0; k < per && m < members; k++, m += stride) {
        const char *u = user(r, m);
        const char *was = state_id(r, a, "m.room.member", u);
        set_state(r, a, mk(r, "m.room.member", u, u, r->c_leave, cr, pl2->event_id, was, NULL));
        set_state(r, b, mk(r, "m.room.member", u, u, r->c_join_named, cr, pl->event_id,
                           jr->event_id, was));
    }
    set_state(r, a, mk(r, "m.room.topic", "", CREATOR, r->c_topic, cr, pl2->event_id, cj_id, NULL));
    set_state(r, b, mk(r, "m.room.topic", "", CREATOR, r->c_topic, cr, pl->event_id, cj_id, NULL));
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static size_t count_conflicts(const struct map *a, const struct map *b)
{
    size_t n = 0;
    const struct map_entry *e;
    for (size_t i = 0; map_next(a, &i, &e);) {
        const char *v = map_get(b, e->key);
        n += !v || strcmp(v, e->value) != 0;
    }
    for (size_t i = 0; map_next(b, &i, &e);) {
        n += !map_has(a, e->key);
    }
    return n;
}

int main(void)
{
    static const long sizes[] = {1000, 10000, 100000};
    static const char *const versions[] = {"11", "12"};
    printf("%-8s %-6s %8s %9s %10s %10s\n", "state", "algo", "events", "conflicts", "median ms",
           "min ms");
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t v = 0; v < 2; v++) {
            struct room r;
            struct map a, b;
            map_init(&a);
            map_init(&b);
            room_build(&r, versions[v], sizes[s], &a, &b);
            const struct map *sets[] = {&a, &b};
            double t[RUNS];
            size_t out_count = 0;
            for (int run = 0; run < RUNS; run++) {
                struct arena scratch;
                arena_init(&scratch);
                struct map out;
                map_init(&out);
                struct stateres_ctx ctx = {r.rv, room_get, &r, &scratch};
                double t0 = now_ms();
                int rc = stateres_resolve(&ctx, sets, 2, &out);
                t[run] = now_ms() - t0;
                if (rc != 0) {
                    fprintf(stderr, "stateres_resolve failed: %d\n", rc);
                    return 1;
                }
                out_count = out.count;
                map_release(&out);
                arena_release(&scratch);
            }
            qsort(t, RUNS, sizeof(t[0]), cmp_double);
            printf("%-8zu %-6s %8zu %9zu %10.2f %10.2f\n", r.base.count,
                   r.rv->stateres == STATERES_V2_1 ? "v2.1" : "v2", r.events.count,
                   count_conflicts(&a, &b), t[RUNS / 2], t[0]);
            (void)out_count;
            map_release(&a);
            map_release(&b);
            map_release(&r.events);
            map_release(&r.base);
            arena_release(&r.arena);
        }
    }
    return 0;
}
