/*
 * State resolution tests (src/core/stateres.c) against the real
 * authorization rules. Each scenario is a small room DAG written as event
 * descriptions plus prev_events chains; the harness builds the events in
 * topological order, choosing each event's auth_events from the state
 * before it (authrules_selection) and computing that state by resolving
 * the states after its prev_events, so merges inside the DAG go through
 * the resolver too. Assertions name the exact event expected per key.
 *
 * The scenarios follow the well-known cases of the v2 design ("ban vs pl",
 * "join rule evasion", "offtopic power levels", "topic basic", "topic
 * reset", "topic", "mainline sort"), the v2.1 motivating problems, and v1
 * behaviour, written here from their descriptions.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/arena.h"
#include "base/map.h"
#include "core/authrules.h"
#include "core/event.h"
#include "core/roomver.h"
#include "core/stateres.h"
#include "unit.h"

#define ALICE "@alice:example.com"
#define BOB "@bob:example.com"
#define CHARLIE "@charlie:example.com"
#define EVELYN "@evelyn:example.com"
#define ZARA "@zara:example.com"

#define PL "m.room.power_levels"
#define JR "m.room.join_rules"
#define MEMBER "m.room.member"
#define TOPIC "m.room.topic"
#define MESSAGE "m.room.message"

/* One event of a scenario: its ID without the "$", and a state_key of NULL
 * for a message event. Timestamps follow the order of definition. */
struct sev {
    const char *id;
    const char *type;
    const char *state_key;
    const char *sender;
    const char *content;
};

struct world {
    struct arena arena;
    const struct room_version *rv;
    const char *room_id;
    struct map events; /* event ID -> struct event * */
    struct map before; /* event ID -> struct map * (state before it) */
    struct map after;  /* event ID -> struct map * (state after it) */
    int64_t ts;
};

static void map_cleanup(void *m) { map_release(m); }

static struct map *state_new(struct world *w)
{
    struct map *m = ARENA_NEW(&w->arena, struct map);
    map_init(m);
    arena_defer(&w->arena, map_cleanup, m);
    return m;
}

static const struct event *world_get(void *ud, const char *id)
{
    struct world *w = ud;
    return map_get(&w->events, str_from(id));
}

static void world_init(struct world *w, const char *version)
{
    arena_init(&w->arena);
    w->rv = roomver_get(version);
    assert_non_null(w->rv);
    w->room_id = w->rv->room_id_is_create_hash ? "!CREATE" : "!room:example.com";
    map_init(&w->events);
    map_init(&w->before);
    map_init(&w->after);
    w->ts = 1000;
}

static void world_release(struct world *w)
{
    map_release(&w->events);
    map_release(&w->before);
    map_release(&w->after);
    arena_release(&w->arena);
}

static struct stateres_ctx world_ctx(struct world *w)
{
    return (struct stateres_ctx){w->rv, world_get, w, &w->arena};
}

static char *full_id(struct world *w, const char *short_id)
{
    return arena_printf(&w->arena, "$%s", short_id);
}

/* Resolves `n` states with the resolver under test. */
static struct map *resolve(struct world *w, struct map **sets, size_t n)
{
    struct map *out = state_new(w);
    struct stateres_ctx ctx = world_ctx(w);
    int rc = stateres_resolve(&ctx, (const struct map *const *)sets, n, out);
    assert_int_equal(rc, 0);
    return out;
}

static json_t *refs(struct world *w, const char *const *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        if (w->rv->event_format == EVENT_FORMAT_V1) {
            json_array_append_new(a, json_pack("[s{s:s}]", ids[i], "sha256", "x"));
        } else {
            json_array_append_new(a, json_string(ids[i]));
        }
    }
    return a;
}

/* Builds event `se` on top of `prevs`: state before = resolution of the
 * states after the prevs; auth events picked from it. */
static const struct event *world_add(struct world *w, const struct sev *se, const char **prevs,
                                     size_t n_prev)
{
    const char *id = full_id(w, se->id);
    struct map *before;
    if (n_prev == 0) {
        before = state_new(w);
    } else if (n_prev == 1) {
        before = state_new(w);
        struct map *src = map_get(&w->after, str_from(prevs[0]));
        const struct map_entry *e;
        for (size_t i = 0; map_next(src, &i, &e);) {
            map_put(before, e->key, e->value);
        }
    } else {
        struct map *sets[8];
        assert_true(n_prev <= 8);
        for (size_t i = 0; i < n_prev; i++) {
            sets[i] = map_get(&w->after, str_from(prevs[i]));
            assert_non_null(sets[i]);
        }
        before = resolve(w, sets, n_prev);
    }

    json_error_t jerr;
    json_t *content = json_loads(se->content, 0, &jerr);
    assert_non_null(content);
    bool is_create = strcmp(se->type, "m.room.create") == 0;
    if (w->rv->privileged_creators && strcmp(se->type, PL) == 0) {
        /* v12: the creator's power is implicit and may not be listed. */
        json_object_del(json_object_get(content, "users"), ALICE);
    }
    if (is_create) {
        json_object_set_new(content, "room_version", json_string(w->rv->id));
    }

    const char *types[AUTHRULES_SELECTION_MAX], *keys[AUTHRULES_SELECTION_MAX];
    size_t n_sel = authrules_selection(w->rv, se->type, se->state_key, se->sender, content,
                                       types, keys);
    const char *auth[AUTHRULES_SELECTION_MAX];
    size_t n_auth = 0;
    for (size_t i = 0; i < n_sel; i++) {
        const char *aid = map_get(before, stateres_key(&w->arena, types[i], keys[i]));
        if (aid) {
            auth[n_auth++] = aid;
        }
    }
    int64_t depth = 0;
    for (size_t i = 0; i < n_prev; i++) {
        const struct event *p = map_get(&w->events, str_from(prevs[i]));
        if (p->depth + 1 > depth) {
            depth = p->depth + 1;
        }
    }

    json_t *pdu = json_pack("{s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:{s:s}, s:{}}", "type",
                            se->type, "sender", se->sender, "content", content, "depth",
                            (json_int_t)depth, "origin_server_ts", (json_int_t)w->ts++,
                            "prev_events", refs(w, prevs, n_prev), "auth_events",
                            refs(w, auth, n_auth), "hashes", "sha256", "x", "signatures");
    assert_non_null(pdu);
    if (!(is_create && w->rv->room_id_is_create_hash)) {
        json_object_set_new(pdu, "room_id", json_string(w->room_id));
    }
    if (se->state_key) {
        json_object_set_new(pdu, "state_key", json_string(se->state_key));
    }
    if (w->rv->event_format == EVENT_FORMAT_V1) {
        json_object_set_new(pdu, "event_id", json_string(id));
    }
    struct event *ev = NULL;
    const char *why = NULL;
    int rc = event_parse(&w->arena, w->rv, pdu, id, &ev, &why);
    json_decref(pdu);
    if (rc) {
        fail_msg("event_parse(%s): %s", id, why);
    }
    map_put(&w->events, str_from(ev->event_id), ev);

    struct map *after = state_new(w);
    const struct map_entry *e;
    for (size_t i = 0; map_next(before, &i, &e);) {
        map_put(after, e->key, e->value);
    }
    if (se->state_key) {
        map_put(after, stateres_key(&w->arena, se->type, se->state_key), (void *)ev->event_id);
    }
    map_put(&w->before, str_from(ev->event_id), before);
    map_put(&w->after, str_from(ev->event_id), after);
    return ev;
}

/* The common start of the v2 scenarios: Alice creates a public room with
 * herself at 100; Bob, Charlie and Zara join; Zara says something. */
static const struct sev initial[] = {
    {"CREATE", "m.room.create", "", ALICE, "{\"creator\": \"" ALICE "\"}"},
    {"IMA", MEMBER, ALICE, ALICE, "{\"membership\": \"join\"}"},
    {"IPOWER", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100}}"},
    {"IJR", JR, "", ALICE, "{\"join_rule\": \"public\"}"},
    {"IMB", MEMBER, BOB, BOB, "{\"membership\": \"join\"}"},
    {"IMC", MEMBER, CHARLIE, CHARLIE, "{\"membership\": \"join\"}"},
    {"IMZ", MEMBER, ZARA, ZARA, "{\"membership\": \"join\"}"},
    {"START", MESSAGE, NULL, ZARA, "{}"},
};

static const struct sev end_event = {"END", MESSAGE, NULL, ZARA, "{}"};

/*
 * Builds the initial chain, then `evs` and END. `edges` are NULL-terminated
 * chains written latest first ("END", "MB", "MA", "PA", "START"): each
 * element's prev_events include the next one. Events are built in
 * topological order, ties in definition order; timestamps follow
 * definition order.
 */
static void world_build(struct world *w, const struct sev *evs, size_t n,
                        const char *const *const *edges)
{
    const char *prev = NULL;
    for (size_t i = 0; i < sizeof(initial) / sizeof(initial[0]); i++) {
        const struct event *ev = world_add(w, &initial[i], prev ? &prev : NULL, prev ? 1 : 0);
        prev = ev->event_id;
    }
    size_t total = n + 1;
    const struct sev *all[32];
    int64_t ts[32];
    bool done[32] = {false};
    assert_true(total <= 32);
    for (size_t i = 0; i < n; i++) {
        all[i] = &evs[i];
        ts[i] = w->ts + (int64_t)i;
    }
    all[n] = &end_event;
    ts[n] = w->ts + (int64_t)n;
    int64_t next_ts = w->ts + (int64_t)total;
    for (size_t built = 0; built < total; built++) {
        size_t pick = total;
        const char *prevs[8];
        size_t n_prev = 0;
        for (size_t i = 0; i < total && pick == total; i++) {
            if (done[i]) {
                continue;
            }
            n_prev = 0;
            bool ready = true;
            for (size_t c = 0; edges[c] && ready; c++) {
                for (size_t k = 0; edges[c][k] && edges[c][k + 1]; k++) {
                    if (strcmp(edges[c][k], all[i]->id) != 0) {
                        continue;
                    }
                    const char *pid = full_id(w, edges[c][k + 1]);
                    if (!map_has(&w->events, str_from(pid))) {
                        ready = false;
                        break;
                    }
                    bool dup = false;
                    for (size_t q = 0; q < n_prev; q++) {
                        dup |= strcmp(prevs[q], pid) == 0;
                    }
                    if (!dup) {
                        assert_true(n_prev < 8);
                        prevs[n_prev++] = pid;
                    }
                }
            }
            if (ready) {
                pick = i;
            }
        }
        assert_true(pick < total);
        done[pick] = true;
        w->ts = ts[pick];
        world_add(w, all[pick], prevs, n_prev);
    }
    w->ts = next_ts;
}

/* Asserts that `state` maps (type, state_key) to "$<short_id>" (or has no
 * entry when short_id is NULL), printing both on failure. */
static void expect_in(struct world *w, const struct map *state, const char *type,
                      const char *state_key, const char *short_id)
{
    const char *got = map_get(state, stateres_key(&w->arena, type, state_key));
    if (!short_id) {
        if (got) {
            fail_msg("room %s: (%s, %s) expected absent, got %s", w->rv->id, type, state_key,
                     got);
        }
        return;
    }
    const char *want = full_id(w, short_id);
    if (!got || strcmp(got, want) != 0) {
        fail_msg("room %s: (%s, %s) expected %s, got %s", w->rv->id, type, state_key, want,
                 got ? got : "(none)");
    }
}

/* The state before END, i.e. the resolution of END's prev states. */
static void expect_end(struct world *w, const char *type, const char *state_key,
                       const char *short_id)
{
    expect_in(w, map_get(&w->before, STR_LIT("$END")), type, state_key, short_id);
}

#define CHAIN(...) ((const char *const[]){__VA_ARGS__, NULL})
#define EDGES(...) ((const char *const *const[]){__VA_ARGS__, NULL})
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Versions the v2 scenarios run in: v2 with v1-style event IDs, v2 with
 * the latest event format, and v2.1. */
static const char *const v2_versions[] = {"2", "11", "12"};

/* ------------------------------------------------------------------ */
/* v2 / v2.1 scenarios                                                */
/* ------------------------------------------------------------------ */

/* Alice bans Bob while Bob (concurrently) changes the power levels: the
 * ban sorts first (Alice's power is greater), so Bob's event fails. */
static void test_ban_vs_pl(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"PA", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"MA", MEMBER, ALICE, ALICE, "{\"membership\": \"join\"}"},
        {"MB", MEMBER, BOB, ALICE, "{\"membership\": \"ban\"}"},
        {"PB", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "MB", "MA", "PA", "START"), CHAIN("END", "PB", "PA")));
        expect_end(&w, PL, "", "PA");
        expect_end(&w, MEMBER, ALICE, "MA");
        expect_end(&w, MEMBER, BOB, "MB");
        world_release(&w);
    }
}

/* Alice makes the room invite-only while Evelyn joins it on another fork:
 * the join rules are a power event and sort first; the join then fails. */
static void test_join_rule_evasion(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"JR", JR, "", ALICE, "{\"join_rule\": \"invite\"}"},
        {"ME", MEMBER, EVELYN, EVELYN, "{\"membership\": \"join\"}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs), EDGES(CHAIN("END", "JR", "START"), CHAIN("END", "ME", "START")));
        expect_end(&w, JR, "", "JR");
        expect_end(&w, MEMBER, EVELYN, NULL);
        world_release(&w);
    }
}

/* A chain of power level changes on one fork (Charlie demotes himself
 * last) against the first of them on the other: the chain's end wins. */
static void test_offtopic_power_levels(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"PA", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"PB", PL, "", BOB,
         "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50, \"" CHARLIE "\": 50}}"},
        {"PC", PL, "", CHARLIE,
         "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50, \"" CHARLIE "\": 0}}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "PC", "PB", "PA", "START"), CHAIN("END", "PA")));
        expect_end(&w, PL, "", "PC");
        world_release(&w);
    }
    /* v1 sorts by depth: PA, then PC, which Charlie (0 under PA) may not
     * send, so the pass stops at PA: the reset v2 was designed to fix. */
    struct world w;
    world_init(&w, "1");
    world_build(&w, evs, N(evs),
                EDGES(CHAIN("END", "PC", "PB", "PA", "START"), CHAIN("END", "PA")));
    expect_end(&w, PL, "", "PA");
    world_release(&w);
}

/* Alice demotes Bob (PA2) while Bob, on a fork from before, re-asserts his
 * level (PB) and sets a topic (T3). PA2 beats PB; T3 then fails and the
 * topic stays Alice's T2. */
static void test_topic_basic(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"T1", TOPIC, "", ALICE, "{}"},
        {"PA1", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T2", TOPIC, "", ALICE, "{}"},
        {"PA2", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 0}}"},
        {"PB", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T3", TOPIC, "", BOB, "{}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "PA2", "T2", "PA1", "T1", "START"),
                          CHAIN("END", "T3", "PB", "PA1")));
        expect_end(&w, PL, "", "PA2");
        expect_end(&w, TOPIC, "", "T2");
        world_release(&w);
    }
}

/* The "state reset" case: Bob sets T2 and is then banned; a fork still
 * sits at T1. The ban is replayed first, so Bob's topic fails and the
 * topic resolves to T1 (both v2 and v2.1). */
static void test_topic_reset(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"T1", TOPIC, "", ALICE, "{}"},
        {"PA", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T2", TOPIC, "", BOB, "{}"},
        {"MB", MEMBER, BOB, ALICE, "{\"membership\": \"ban\"}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "MB", "T2", "PA", "T1", "START"), CHAIN("END", "T1")));
        expect_end(&w, TOPIC, "", "T1");
        expect_end(&w, MEMBER, BOB, "MB");
        expect_end(&w, PL, "", "PA");
        world_release(&w);
    }
}

/* As topic_basic, with a merge (MZ1) inside the DAG and Alice's T4 after
 * it: T4 is based on the newest mainline event and wins. */
static void test_topic(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"T1", TOPIC, "", ALICE, "{}"},
        {"PA1", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T2", TOPIC, "", ALICE, "{}"},
        {"PA2", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 0}}"},
        {"PB", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T3", TOPIC, "", BOB, "{}"},
        {"MZ1", MESSAGE, NULL, ZARA, "{}"},
        {"T4", TOPIC, "", ALICE, "{}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"),
                          CHAIN("END", "MZ1", "T3", "PB", "PA1")));
        expect_end(&w, TOPIC, "", "T4");
        expect_end(&w, PL, "", "PA2");
        world_release(&w);
    }
}

/* Mainline ordering decides between two allowed topics: T3 is authorised
 * by PA2 (later on the mainline) than T4 (by PB, off the mainline, whose
 * position is that of PA1), so T3 sorts last and wins although T4 is
 * newer by timestamp. */
static void test_mainline_sort(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"T1", TOPIC, "", ALICE, "{}"},
        {"PA1", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T2", TOPIC, "", ALICE, "{}"},
        {"PA2", PL, "", ALICE,
         "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}, \"events\": {\"" PL "\": 100}}"},
        {"PB", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"T3", TOPIC, "", BOB, "{}"},
        {"T4", TOPIC, "", ALICE, "{}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "T3", "PA2", "T2", "PA1", "T1", "START"),
                          CHAIN("END", "T4", "PB", "PA1")));
        expect_end(&w, TOPIC, "", "T3");
        expect_end(&w, PL, "", "PA2");
        world_release(&w);
    }
}

/* A state set that replays an old power levels event (IPOWER) against the
 * current one (PA2, two changes later, all by Alice): the current one
 * wins in every version, since the old one sorts first and the newer
 * ones are allowed on top of it. */
static void test_old_power_levels_replayed(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"PA1", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"PA2", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 0}}"},
        {"TB", TOPIC, "", BOB, "{}"},
    };
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "PA2", "PA1", "START"), CHAIN("TB", "PA1")));
        /* TB was sent by Bob when he had 50, on top of PA1; not in END's
         * history, built only so a stale set can hold it. */
        struct map *cur = map_get(&w.after, STR_LIT("$PA2"));
        struct map *stale = state_new(&w);
        const struct map_entry *e;
        for (size_t i = 0; map_next(cur, &i, &e);) {
            map_put(stale, e->key, e->value);
        }
        map_put(stale, stateres_key(&w.arena, PL, ""), "$IPOWER");
        struct map *sets[] = {cur, stale};
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, PL, "", "PA2");
        /* And with the old event in the first set, the same answer. */
        struct map *sets2[] = {stale, cur};
        out = resolve(&w, sets2, 2);
        expect_in(&w, out, PL, "", "PA2");
        /* Bob's topic from before his demotion, racing the demotion: the
         * demotion is replayed before it (mainline), so it fails. */
        struct map *tb = map_get(&w.after, STR_LIT("$TB"));
        struct map *sets3[] = {cur, tb};
        out = resolve(&w, sets3, 2);
        expect_in(&w, out, PL, "", "PA2");
        expect_in(&w, out, TOPIC, "", NULL);
        world_release(&w);
    }
}

/* Unconflicted state passes through untouched, even entries whose events
 * the lookup does not know; identical sets resolve to themselves. */
static void test_unconflicted_passthrough(void **state)
{
    (void)state;
    for (size_t v = 0; v < N(v2_versions) + 1; v++) {
        struct world w;
        world_init(&w, v < N(v2_versions) ? v2_versions[v] : "1");
        world_build(&w, NULL, 0, EDGES(CHAIN("END", "START")));
        struct map *s = map_get(&w.after, STR_LIT("$START"));
        map_put(s, stateres_key(&w.arena, "m.room.name", ""), "$UNKNOWN");
        struct map *sets[] = {s, s, s};
        struct map *out = resolve(&w, sets, 3);
        assert_int_equal(out->count, s->count);
        const struct map_entry *e;
        for (size_t i = 0; map_next(s, &i, &e);) {
            const char *got = map_get(out, e->key);
            assert_non_null(got);
            assert_string_equal(got, e->value);
        }
        out = resolve(&w, sets, 1);
        assert_int_equal(out->count, s->count);
        /* A conflict on one key leaves every other key as it was. */
        struct map *other = state_new(&w);
        for (size_t i = 0; map_next(s, &i, &e);) {
            map_put(other, e->key, e->value);
        }
        map_put(other, stateres_key(&w.arena, "m.room.name", ""), "$UNKNOWN2");
        struct map *sets2[] = {s, other};
        out = resolve(&w, sets2, 2);
        expect_in(&w, out, PL, "", "IPOWER");
        expect_in(&w, out, MEMBER, ZARA, "IMZ");
        /* Neither name event is known, so neither can be chosen. */
        expect_in(&w, out, "m.room.name", "", NULL);
        assert_int_equal(out->count, s->count - 1);
        world_release(&w);
    }
}

/* Builds Charlie's power-level chain P1-P3 and his leave LC, then fills
 * `a` and `b` with the state after LC, except that b maps Charlie's
 * membership back to his earlier $IMC, so the two sets conflict on it
 * (for the step-4/5 tests). */
static void build_charlie_leave(struct world *w, const char *version, struct map **a,
                                struct map **b)
{
    static const struct sev evs[] = {
        {"P1", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" CHARLIE "\": 50}}"},
        {"P2", PL, "", CHARLIE,
         "{\"users\": {\"" ALICE "\": 100, \"" CHARLIE "\": 50, \"" BOB "\": 10}}"},
        {"P3", PL, "", CHARLIE,
         "{\"users\": {\"" ALICE "\": 100, \"" CHARLIE "\": 50, \"" BOB "\": 20}}"},
        {"LC", MEMBER, CHARLIE, CHARLIE, "{\"membership\": \"leave\"}"},
    };
    world_init(w, version);
    world_build(w, evs, N(evs), EDGES(CHAIN("END", "LC", "P3", "P2", "P1", "START")));
    *a = state_new(w);
    *b = state_new(w);
    const struct map_entry *e;
    for (size_t i = 0; map_next(map_get(&w->after, STR_LIT("$LC")), &i, &e);) {
        map_put(*a, e->key, e->value);
        map_put(*b, e->key, e->value);
    }
    map_put(*b, stateres_key(&w->arena, MEMBER, CHARLIE), "$IMC");
}

/*
 * Step 5: the unconflicted state map has the last word. Both sets hold
 * Charlie's P2 as the power levels (one lags behind), but his leave (LC)
 * cites his later P3, which the auth difference brings in and the
 * iterative checks apply; the final state still has P2.
 */
static void test_unconflicted_wins(void **state)
{
    (void)state;
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        struct map *a, *b;
        build_charlie_leave(&w, v2_versions[v], &a, &b);
        map_put(a, stateres_key(&w.arena, PL, ""), "$P2");
        map_put(b, stateres_key(&w.arena, PL, ""), "$P2");
        struct map *sets[] = {a, b};
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, PL, "", "P2");
        expect_in(&w, out, MEMBER, CHARLIE, "LC");
        world_release(&w);
    }
}

/*
 * Step 4 builds the resolved state; step 5 only overrides it with the
 * unconflicted state map. A key the iterative checks resolve from the auth
 * difference stays in the result even when no input set holds it: here
 * neither set has a power levels event (an earlier resolution dropped it),
 * but Charlie's leave brings P1-P3 in, and P3 ends up the power levels.
 */
static void test_resolved_key_outside_sets(void **state)
{
    (void)state;
    for (size_t v = 0; v < N(v2_versions); v++) {
        struct world w;
        struct map *a, *b;
        build_charlie_leave(&w, v2_versions[v], &a, &b);
        map_del(a, stateres_key(&w.arena, PL, ""));
        map_del(b, stateres_key(&w.arena, PL, ""));
        struct map *sets[] = {a, b};
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, MEMBER, CHARLIE, "LC");
        expect_in(&w, out, PL, "", "P3");
        world_release(&w);
    }
}

/* Builds Alice's two topics on two forks (T1 earlier, T2 later, both
 * allowed) for the rejected/missing tests. */
static void build_two_topics(struct world *w)
{
    static const struct sev evs[] = {
        {"T1", TOPIC, "", ALICE, "{}"},
        {"T2", TOPIC, "", ALICE, "{}"},
    };
    world_build(w, evs, N(evs), EDGES(CHAIN("END", "T1", "START"), CHAIN("END", "T2", "START")));
}

/* Rejected events are never chosen: with T2 (which would win on
 * timestamp) rejected, T1 wins; with both rejected, neither; a rejected
 * power event never enters the state either. */
static void test_rejected_never_chosen(void **state)
{
    (void)state;
    for (size_t v = 0; v < N(v2_versions) + 1; v++) {
        struct world w;
        world_init(&w, v < N(v2_versions) ? v2_versions[v] : "1");
        build_two_topics(&w);
        /* v1 picks by depth (equal) then sha1; v2 by mainline then
         * timestamp: find the unrejected winner first. */
        const char *winner = map_get(map_get(&w.before, STR_LIT("$END")),
                                     stateres_key(&w.arena, TOPIC, ""));
        assert_non_null(winner);
        const char *loser = strcmp(winner, "$T1") == 0 ? "T2" : "T1";
        if (v < N(v2_versions)) {
            assert_string_equal(winner, "$T2");
        }
        struct map *sets[] = {map_get(&w.after, STR_LIT("$T1")),
                              map_get(&w.after, STR_LIT("$T2"))};
        ((struct event *)map_get(&w.events, str_from(winner)))->rejected = true;
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, TOPIC, "", loser);
        ((struct event *)map_get(&w.events, str_from(full_id(&w, loser))))->rejected = true;
        out = resolve(&w, sets, 2);
        expect_in(&w, out, TOPIC, "", NULL);
        world_release(&w);
    }
    /* A rejected ban (which would otherwise win, see ban_vs_pl) loses to
     * Bob's power levels. */
    for (size_t v = 0; v < N(v2_versions); v++) {
        static const struct sev evs[] = {
            {"PA", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
            {"MB", MEMBER, BOB, ALICE, "{\"membership\": \"ban\"}"},
            {"PB", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        };
        struct world w;
        world_init(&w, v2_versions[v]);
        world_build(&w, evs, N(evs),
                    EDGES(CHAIN("END", "MB", "PA", "START"), CHAIN("END", "PB", "PA")));
        ((struct event *)map_get(&w.events, STR_LIT("$MB")))->rejected = true;
        struct map *sets[] = {map_get(&w.after, STR_LIT("$MB")),
                              map_get(&w.after, STR_LIT("$PB"))};
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, MEMBER, BOB, "IMB");
        expect_in(&w, out, PL, "", "PB");
        world_release(&w);
    }
}

/* Events the lookup does not know are left out: a conflicted candidate
 * that is missing loses to the known one, and a missing auth event only
 * shortens the walks. */
static void test_missing_events(void **state)
{
    (void)state;
    for (size_t v = 0; v < N(v2_versions) + 1; v++) {
        struct world w;
        world_init(&w, v < N(v2_versions) ? v2_versions[v] : "1");
        build_two_topics(&w);
        struct map *sets[] = {map_get(&w.after, STR_LIT("$T1")),
                              map_get(&w.after, STR_LIT("$T2"))};
        map_del(&w.events, STR_LIT("$T2"));
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, TOPIC, "", "T1");
        /* Remove an event deep in every auth chain as well. */
        map_del(&w.events, STR_LIT("$IJR"));
        out = resolve(&w, sets, 2);
        expect_in(&w, out, TOPIC, "", "T1");
        expect_in(&w, out, JR, "", "IJR");
        world_release(&w);
    }
}

/*
 * v2.1 modification 1 (room version 12, "State resolution" note 1): the
 * first iterative auth checks start from an empty state map. Alice sets
 * JR2 and leaves; one set replays the old IJR. Both join rules events are
 * conflicted. v2 checks them against the unconflicted state, where Alice
 * has left, so both fail and the room loses its join rules; v2.1 checks
 * them against their own auth events and keeps JR2.
 */
static void test_v21_empty_start(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"JR2", JR, "", ALICE, "{\"join_rule\": \"invite\"}"},
        {"PA", PL, "", ALICE,
         "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 100}}"},
        {"LA", MEMBER, ALICE, ALICE, "{\"membership\": \"leave\"}"},
    };
    const char *versions[] = {"11", "12"};
    const char *expect[] = {NULL, "JR2"};
    for (size_t v = 0; v < 2; v++) {
        struct world w;
        world_init(&w, versions[v]);
        world_build(&w, evs, N(evs), EDGES(CHAIN("END", "LA", "PA", "JR2", "START")));
        struct map *cur = map_get(&w.after, STR_LIT("$LA"));
        struct map *stale = state_new(&w);
        const struct map_entry *e;
        for (size_t i = 0; map_next(cur, &i, &e);) {
            map_put(stale, e->key, e->value);
        }
        map_put(stale, stateres_key(&w.arena, JR, ""), "$IJR");
        struct map *sets[] = {cur, stale};
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, JR, "", expect[v]);
        expect_in(&w, out, MEMBER, ALICE, "LA");
        expect_in(&w, out, PL, "", "PA");
        world_release(&w);
    }
}

/*
 * v2.1 modification 2 ("Conflicted state subgraph"): Alice promotes Bob
 * (PB1), Bob promotes Charlie (PC2), Charlie sets a topic. One set replays
 * the old IPOWER. PB1 is in every set's auth chain (through the topic), so
 * it is not in the auth difference: v2 replays IPOWER then PC2, which Bob
 * may not send under IPOWER, and the power levels reset to IPOWER. The
 * subgraph between PC2 and IPOWER holds PB1, so v2.1 replays it and keeps
 * PC2.
 */
static void test_v21_subgraph(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"PB1", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"PC2", PL, "", BOB,
         "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50, \"" CHARLIE "\": 50}}"},
        {"TC", TOPIC, "", CHARLIE, "{}"},
    };
    const char *versions[] = {"2", "11", "12"};
    const char *expect[] = {"IPOWER", "IPOWER", "PC2"};
    for (size_t v = 0; v < 3; v++) {
        struct world w;
        world_init(&w, versions[v]);
        world_build(&w, evs, N(evs), EDGES(CHAIN("END", "TC", "PC2", "PB1", "START")));
        struct map *cur = map_get(&w.after, STR_LIT("$TC"));
        struct map *stale = state_new(&w);
        const struct map_entry *e;
        for (size_t i = 0; map_next(cur, &i, &e);) {
            map_put(stale, e->key, e->value);
        }
        map_put(stale, stateres_key(&w.arena, PL, ""), "$IPOWER");
        struct map *sets[] = {cur, stale};
        struct map *out = resolve(&w, sets, 2);
        expect_in(&w, out, PL, "", expect[v]);
        expect_in(&w, out, TOPIC, "", "TC");
        world_release(&w);
    }
}

/* ------------------------------------------------------------------ */
/* v1 (room version 1)                                                */
/* ------------------------------------------------------------------ */

/* Non-auth conflicts: the highest depth that passes wins, whatever the
 * timestamps; an event that fails the checks against R is skipped. */
static void test_v1_depth_order(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        /* TA is deeper (three events after START) but older by timestamp
         * than TB (one after START). */
        {"XA1", MESSAGE, NULL, ALICE, "{}"},
        {"XA2", MESSAGE, NULL, ALICE, "{}"},
        {"TA", TOPIC, "", ALICE, "{}"},
        {"TB", TOPIC, "", ALICE, "{}"},
        {"PZ", PL, "", ALICE,
         "{\"users\": {\"" ALICE "\": 100}, \"events\": {\"" TOPIC "\": 100}}"},
        {"TZ", TOPIC, "", ZARA, "{}"},
    };
    struct world w;
    world_init(&w, "1");
    world_build(&w, evs, N(evs),
                EDGES(CHAIN("END", "TA", "XA2", "XA1", "START"), CHAIN("END", "TB", "START"),
                      CHAIN("TZ", "START"), CHAIN("PZ", "START")));
    expect_end(&w, TOPIC, "", "TA");
    /* v2 orders the same two by mainline then timestamp: TB. */
    struct world w2;
    world_init(&w2, "2");
    world_build(&w2, evs, N(evs),
                EDGES(CHAIN("END", "TA", "XA2", "XA1", "START"), CHAIN("END", "TB", "START"),
                      CHAIN("TZ", "START"), CHAIN("PZ", "START")));
    expect_end(&w2, TOPIC, "", "TB");
    world_release(&w2);

    /* Zara's topic (deeper than TB) is not allowed once PZ is in R: TB. */
    struct map *pz = map_get(&w.after, STR_LIT("$PZ"));
    struct map *tz = map_get(&w.after, STR_LIT("$TZ"));
    struct map *tb = map_get(&w.after, STR_LIT("$TB"));
    struct map *extra = state_new(&w);
    const struct map_entry *e;
    for (size_t i = 0; map_next(tz, &i, &e);) {
        map_put(extra, e->key, e->value);
    }
    map_put(extra, stateres_key(&w.arena, PL, ""), "$PZ");
    struct map *sets2[] = {tb, extra, pz};
    struct map *out = resolve(&w, sets2, 3);
    expect_in(&w, out, PL, "", "PZ");
    /* TZ and TB have the same depth (START + 1); whichever sorts first,
     * TZ fails under PZ (topic needs 100) and TB passes. */
    expect_in(&w, out, TOPIC, "", "TB");
    world_release(&w);
}

/* Power levels first: the ascending-depth pass stops at the first change
 * that R does not allow, so the ban sent under Alice's power wins over
 * Bob's later (deeper) attempt to raise himself. */
static void test_v1_power_then_members(void **state)
{
    (void)state;
    static const struct sev evs[] = {
        {"PA", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"PB", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 50}}"},
        {"PB2", PL, "", BOB, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 100}}"},
        {"PA2", PL, "", ALICE, "{\"users\": {\"" ALICE "\": 100, \"" BOB "\": 0}}"},
        {"MB", MEMBER, BOB, ALICE, "{\"membership\": \"ban\"}"},
    };
    struct world w;
    world_init(&w, "1");
    world_build(&w, evs, N(evs),
                EDGES(CHAIN("END", "MB", "PA2", "PA", "START"), CHAIN("END", "PB2", "PB", "PA")));
    /* Depths: PA 8, PA2 9, MB 10; PB 9, PB2 10. Power levels: PA2 then
     * PB2, which Bob may not send under PA2 (he has 0): PA2. Members:
     * IMB then MB, allowed under PA2: MB. */
    expect_end(&w, PL, "", "PA2");
    expect_end(&w, MEMBER, BOB, "MB");
    world_release(&w);
}

int test_stateres(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ban_vs_pl),
        cmocka_unit_test(test_join_rule_evasion),
        cmocka_unit_test(test_offtopic_power_levels),
        cmocka_unit_test(test_topic_basic),
        cmocka_unit_test(test_topic_reset),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_mainline_sort),
        cmocka_unit_test(test_old_power_levels_replayed),
        cmocka_unit_test(test_unconflicted_passthrough),
        cmocka_unit_test(test_unconflicted_wins),
        cmocka_unit_test(test_resolved_key_outside_sets),
        cmocka_unit_test(test_rejected_never_chosen),
        cmocka_unit_test(test_missing_events),
        cmocka_unit_test(test_v21_empty_start),
        cmocka_unit_test(test_v21_subgraph),
        cmocka_unit_test(test_v1_depth_order),
        cmocka_unit_test(test_v1_power_then_members),
    };
    return cmocka_run_group_tests_name("stateres", tests, NULL, NULL);
}
