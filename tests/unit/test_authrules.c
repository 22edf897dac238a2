/*
 * Unit tests for the authorization rules: small rooms built from JSON
 * literals (parsed with event_parse under explicit event IDs), an
 * auth_state backed by a struct map, and one test per rule and per room
 * version difference, asserting allowed or rejected with the reason.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "base/arena.h"
#include "base/err.h"
#include "base/map.h"
#include "core/authrules.h"
#include "core/event.h"
#include "core/keys.h"
#include "core/roomver.h"
#include "unit.h"

#define ALICE "@alice:a.example" /* the creator */
#define BOB "@bob:b.example"
#define CAROL "@carol:c.example"
#define DAVE "@dave:d.example"

/* ------------------------------------------------------------------------ */
/* A room: events in an arena, current state in a map                       */
/* ------------------------------------------------------------------------ */

struct room {
    struct arena arena;
    struct map state; /* "type\0state_key" -> struct event * */
    struct auth_state as;
    const struct room_version *rv;
    const char *room_id;
    struct event *create;
    int seq; /* for event IDs */
};

static const struct event *room_lookup(void *ud, const char *type, const char *state_key)
{
    struct room *r = ud;
    char key[600];
    size_t tl = strlen(type);
    size_t sl = strlen(state_key);
    if (tl + 1 + sl > sizeof(key)) {
        return NULL;
    }
    memcpy(key, type, tl + 1);
    memcpy(key + tl + 1, state_key, sl);
    return map_get(&r->state, (struct str){key, tl + 1 + sl});
}

static int room_setup(void **state)
{
    struct room *r = test_calloc(1, sizeof(*r));
    arena_init(&r->arena);
    map_init(&r->state);
    r->as.get = room_lookup;
    r->as.ud = r;
    *state = r;
    return 0;
}

static int room_teardown(void **state)
{
    struct room *r = *state;
    map_release(&r->state);
    arena_release(&r->arena);
    test_free(r);
    return 0;
}

static void room_reset(struct room *r)
{
    map_release(&r->state);
    arena_release(&r->arena);
    map_init(&r->state);
    r->rv = NULL;
    r->room_id = NULL;
    r->create = NULL;
}

static json_t *ref(const struct room *r, const char *id)
{
    if (r->rv->event_format == EVENT_FORMAT_V1) {
        return json_pack("[s,{s:s}]", id, "sha256", "x");
    }
    return json_string(id);
}

/*
 * Builds and parses a PDU. `state_key` NULL for a non-state event; `prev`
 * the single prev event (NULL for none). Fails the test on parse errors.
 */
static struct event *mk_prev(struct room *r, const char *id, const char *type, const char *sender,
                             const char *state_key, const char *content, const char *prev)
{
    json_error_t jerr;
    json_t *c = json_loads(content, 0, &jerr);
    if (!c) {
        fail_msg("bad test JSON %s: %s", content, jerr.text);
    }
    json_t *pdu = json_object();
    json_object_set_new(pdu, "type", json_string(type));
    json_object_set_new(pdu, "sender", json_string(sender));
    bool v12_create = r->rv->room_id_is_create_hash && strcmp(type, "m.room.create") == 0;
    if (r->room_id && !v12_create) {
        json_object_set_new(pdu, "room_id", json_string(r->room_id));
    }
    if (state_key) {
        json_object_set_new(pdu, "state_key", json_string(state_key));
    }
    json_object_set_new(pdu, "content", c);
    json_object_set_new(pdu, "depth", json_integer(1));
    json_object_set_new(pdu, "origin_server_ts", json_integer(1000));
    json_object_set_new(pdu, "hashes", json_pack("{s:s}", "sha256", "x"));
    json_object_set_new(pdu, "signatures", json_object());
    json_t *prevs = json_array();
    if (prev) {
        json_array_append_new(prevs, ref(r, prev));
    }
    json_object_set_new(pdu, "prev_events", prevs);
    json_object_set_new(pdu, "auth_events", json_array());
    struct event *ev = NULL;
    const char *why = NULL;
    int rc = event_parse(&r->arena, r->rv, pdu, arena_strdup(&r->arena, id), &ev, &why);
    json_decref(pdu);
    if (rc != 0) {
        fail_msg("event_parse %s: %s", id, why);
    }
    return ev;
}

static struct event *mk(struct room *r, const char *id, const char *type, const char *sender,
                        const char *state_key, const char *content)
{
    return mk_prev(r, id, type, sender, state_key, content, "$prev:a.example");
}

/* Makes `ev` current state, bypassing the rules (test scaffolding). */
static void put(struct room *r, const struct event *ev)
{
    size_t tl = strlen(ev->type);
    size_t sl = strlen(ev->state_key);
    char *key = arena_alloc(&r->arena, tl + 1 + sl);
    memcpy(key, ev->type, tl + 1);
    memcpy(key + tl + 1, ev->state_key, sl);
    map_put(&r->state, (struct str){key, tl + 1 + sl}, (void *)ev);
}

static const char *next_id(struct room *r)
{
    return arena_printf(&r->arena, "$e%d:a.example", ++r->seq);
}

static void set_member(struct room *r, const char *user, const char *membership)
{
    char content[64];
    snprintf(content, sizeof(content), "{\"membership\":\"%s\"}", membership);
    put(r, mk(r, next_id(r), "m.room.member", user, user, content));
}

static void set_state(struct room *r, const char *type, const char *content)
{
    put(r, mk(r, next_id(r), type, ALICE, "", content));
}

/* Creates the room: version `ver`, create event "$create:a.example" by
 * Alice with `content` (NULL: the version's usual content). */
static void room_create(struct room *r, const char *ver, const char *content)
{
    room_reset(r);
    r->rv = roomver_get(ver);
    assert_non_null(r->rv);
    if (!content) {
        content = r->rv->implicit_room_creator ? "{}" : "{\"creator\":\"" ALICE "\"}";
    }
    if (!r->rv->room_id_is_create_hash) {
        r->room_id = "!room:a.example";
    }
    r->create = mk_prev(r, "$create:a.example", "m.room.create", ALICE, "", content, NULL);
    if (r->rv->room_id_is_create_hash) {
        r->room_id = "!create:a.example";
    }
    put(r, r->create);
}

/* A room with Alice joined, power levels and a join rule. Alice has 100
 * (v12: she is the creator, infinite and not listed). */
static void room_std(struct room *r, const char *ver, const char *join_rule, const char *pl)
{
    room_create(r, ver, NULL);
    put(r, mk_prev(r, "$join:a.example", "m.room.member", ALICE, ALICE, "{\"membership\":\"join\"}",
                   "$create:a.example"));
    if (!pl) {
        pl = r->rv->privileged_creators ? "{}" : "{\"users\":{\"" ALICE "\":100}}";
    }
    set_state(r, "m.room.power_levels", pl);
    char jr[64];
    snprintf(jr, sizeof(jr), "{\"join_rule\":\"%s\"}", join_rule);
    set_state(r, "m.room.join_rules", jr);
}

/* Asserts the outcome: allowed (want NULL) or rejected with that reason. */
static void expect_at(struct room *r, const struct event *ev, const char *want, int line)
{
    const char *why = NULL;
    int rc = authrules_check(ev, &r->as, &why);
    if (!want && rc != 0) {
        fail_msg("line %d, v%s %s %s: rejected (%s), expected allowed", line, r->rv->id, ev->type,
                 ev->event_id, why ? why : "?");
    }
    if (want && rc != -ERR_FORBIDDEN) {
        fail_msg("line %d, v%s %s %s: rc %d, expected rejected (%s)", line, r->rv->id, ev->type,
                 ev->event_id, rc, want);
    }
    if (want && (!why || strcmp(why, want) != 0)) {
        fail_msg("line %d, v%s %s: reason \"%s\", expected \"%s\"", line, r->rv->id, ev->event_id,
                 why ? why : "(null)", want);
    }
}
#define ALLOWED(r, ev) expect_at((r), (ev), NULL, __LINE__)
#define REJECTED(r, ev, why) expect_at((r), (ev), (why), __LINE__)

static const char *const all_versions[] = {"1", "2", "3", "4", "5", "6",
                                           "7", "8", "9", "10", "11", "12"};
#define FOR_EACH_VERSION(v)                                                                       \
    for (size_t v##_i = 0; v##_i < sizeof(all_versions) / sizeof(all_versions[0]); v##_i++)      \
        for (const char *v = all_versions[v##_i]; v; v = NULL)

static struct event *member(struct room *r, const char *sender, const char *target,
                            const char *content)
{
    return mk(r, next_id(r), "m.room.member", sender, target, content);
}

#define JOIN "{\"membership\":\"join\"}"
#define INVITE "{\"membership\":\"invite\"}"
#define LEAVE "{\"membership\":\"leave\"}"
#define BAN "{\"membership\":\"ban\"}"
#define KNOCK "{\"membership\":\"knock\"}"

/* ------------------------------------------------------------------------ */
/* m.room.create                                                            */
/* ------------------------------------------------------------------------ */

static void test_create(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_create(r, v, NULL);
        ALLOWED(r, r->create);
        /* 1.1: prev_events */
        struct event *e = mk_prev(r, "$c2:a.example", "m.room.create", ALICE, "",
                                  r->rv->implicit_room_creator ? "{}" : "{\"creator\":\"" ALICE "\"}",
                                  "$x:a.example");
        REJECTED(r, e, "create event has prev_events");
        /* 1.3: unknown room version; a known one is fine */
        e = mk_prev(r, "$c3:a.example", "m.room.create", ALICE, "",
                    "{\"creator\":\"" ALICE "\",\"room_version\":\"99\"}", NULL);
        REJECTED(r, e, "unknown room version in create event");
        e = mk_prev(r, "$c4:a.example", "m.room.create", ALICE, "",
                    "{\"creator\":\"" ALICE "\",\"room_version\":7}", NULL);
        REJECTED(r, e, "unknown room version in create event");
        e = mk_prev(r, "$c5:a.example", "m.room.create", ALICE, "",
                    "{\"creator\":\"" ALICE "\",\"room_version\":\"5\"}", NULL);
        ALLOWED(r, e);
        /* 1.4 (v1-v10): creator is required; v11 removed it */
        e = mk_prev(r, "$c6:a.example", "m.room.create", ALICE, "", "{}", NULL);
        if (r->rv->implicit_room_creator) {
            ALLOWED(r, e);
        } else {
            REJECTED(r, e, "create event has no creator");
        }
        /* 1.2 (v1-v11): room ID domain must be the sender's */
        if (!r->rv->room_id_is_create_hash) {
            e = mk_prev(r, "$c7:a.example", "m.room.create", BOB, "",
                        "{\"creator\":\"" BOB "\"}", NULL);
            REJECTED(r, e, "room ID domain does not match sender");
        }
    }
}

static void test_create_v12(void **state)
{
    struct room *r = *state;
    room_create(r, "12", "{\"additional_creators\":[\"" BOB "\",\"" CAROL "\"]}");
    ALLOWED(r, r->create);
    struct event *e = mk_prev(r, "$c1:a.example", "m.room.create", ALICE, "",
                              "{\"additional_creators\":\"" BOB "\"}", NULL);
    REJECTED(r, e, "additional_creators is not an array");
    e = mk_prev(r, "$c2:a.example", "m.room.create", ALICE, "",
                "{\"additional_creators\":[\"" BOB "\",\"bob\"]}", NULL);
    REJECTED(r, e, "additional_creators holds an invalid user ID");
    e = mk_prev(r, "$c3:a.example", "m.room.create", ALICE, "", "{\"additional_creators\":[1]}",
                NULL);
    REJECTED(r, e, "additional_creators holds an invalid user ID");
    e = mk_prev(r, "$c4:a.example", "m.room.create", ALICE, "",
                "{\"additional_creators\":[\"@bob:\"]}", NULL);
    REJECTED(r, e, "additional_creators holds an invalid user ID");
    /* v11 ignores additional_creators entirely */
    room_create(r, "11", "{\"additional_creators\":\"nonsense\"}");
    ALLOWED(r, r->create);

    /* v12 1.2: a create event with a room_id. event_parse refuses it, so
     * parse under v11 and check under v12's rules. */
    room_create(r, "11", NULL);
    e = mk_prev(r, "$c5:a.example", "m.room.create", ALICE, "", "{}", NULL);
    e->rv = roomver_get("12");
    REJECTED(r, e, "create event has a room_id");
}

/*
 * v12 1.4: "each string passes the same user ID validation applied to
 * sender". Senders may be historical user IDs (any localpart without ':'
 * or NUL, even empty; appendix "Historical User IDs"), so such an
 * additional creator must not reject the create event.
 */
static void test_create_v12_historical_creators(void **state)
{
    struct room *r = *state;
    room_create(r, "12", "{\"additional_creators\":[\"@b b:b.example\",\"@:c.example\"]}");
    ALLOWED(r, r->create);
    /* the same IDs are fine as senders */
    struct event *e =
        mk_prev(r, "$c1:a.example", "m.room.create", "@b b:b.example", "", "{}", NULL);
    ALLOWED(r, e);
}

/* v12 rule 2: the room ID must name an accepted create event. */
static void test_room_id_is_create_v12(void **state)
{
    struct room *r = *state;
    room_std(r, "12", "public", NULL);
    struct event *e = member(r, BOB, BOB, JOIN);
    ALLOWED(r, e);
    r->room_id = "!other:a.example";
    e = member(r, BOB, BOB, JOIN);
    REJECTED(r, e, "room ID is not an accepted create event");
    r->room_id = "!create:a.example";
    r->create->rejected = true;
    e = member(r, BOB, BOB, JOIN);
    REJECTED(r, e, "room ID is not an accepted create event");
    /* v1-v11: no create event in the state at all */
    room_std(r, "11", "public", NULL);
    map_del(&r->state, (struct str){"m.room.create\0", 14});
    e = member(r, BOB, BOB, JOIN);
    REJECTED(r, e, "no create event");
}

/* ------------------------------------------------------------------------ */
/* auth_events and their selection                                          */
/* ------------------------------------------------------------------------ */

static int check_auth(struct room *r, struct event *ev, const struct event **auth, size_t n,
                      const char **why)
{
    const char **ids = ARENA_ARRAY(&r->arena, const char *, n ? n : 1);
    for (size_t i = 0; i < n; i++) {
        ids[i] = auth[i] ? auth[i]->event_id : "$missing:a.example";
    }
    ev->auth_events = ids;
    ev->n_auth_events = n;
    return authrules_check_auth_events(ev, auth, why);
}

static void test_auth_events(void **state)
{
    struct room *r = *state;
    const char *why = NULL;
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "invite", NULL);
        const struct event *create = r->create;
        const struct event *pl = room_lookup(r, "m.room.power_levels", "");
        const struct event *jr = room_lookup(r, "m.room.join_rules", "");
        const struct event *alice = room_lookup(r, "m.room.member", ALICE);
        bool v12 = r->rv->room_id_is_create_hash;
        struct event *msg = mk(r, next_id(r), "m.room.message", ALICE, NULL, "{}");

        /* the right selection passes */
        const struct event *good[] = {create, pl, alice};
        size_t off = v12 ? 1 : 0;
        assert_int_equal(check_auth(r, msg, good + off, 3 - off, &why), 0);
        /* 2.1 duplicates */
        const struct event *dup[] = {create, pl, alice, pl};
        assert_int_equal(check_auth(r, msg, dup + off, 4 - off, &why), -ERR_FORBIDDEN);
        assert_string_equal(why, "duplicate auth event");
        /* 2.2 an entry the selection does not call for (join rules on a message) */
        const struct event *extra[] = {create, pl, alice, jr};
        assert_int_equal(check_auth(r, msg, extra + off, 4 - off, &why), -ERR_FORBIDDEN);
        assert_string_equal(why, "unexpected auth event");
        /* 2.3 a rejected entry */
        struct event *bad_pl = mk(r, next_id(r), "m.room.power_levels", ALICE, "", "{}");
        bad_pl->rejected = true;
        const struct event *rej[] = {create, bad_pl, alice};
        assert_int_equal(check_auth(r, msg, rej + off, 3 - off, &why), -ERR_FORBIDDEN);
        assert_string_equal(why, "auth event was rejected");
        /* a missing one */
        const struct event *missing[] = {create, NULL};
        assert_int_equal(check_auth(r, msg, missing + off, 2 - off, &why), -ERR_FORBIDDEN);
        assert_string_equal(why, "auth event not found");
        /* 2.4 (v1-v11) no create; v12: the create must not be listed */
        const struct event *nocreate[] = {pl, alice};
        const struct event *withcreate[] = {create, pl, alice};
        if (v12) {
            assert_int_equal(check_auth(r, msg, nocreate, 2, &why), 0);
            assert_int_equal(check_auth(r, msg, withcreate, 3, &why), -ERR_FORBIDDEN);
            assert_string_equal(why, "create event must not be an auth event");
        } else {
            assert_int_equal(check_auth(r, msg, nocreate, 2, &why), -ERR_FORBIDDEN);
            assert_string_equal(why, "no create event among auth events");
        }
        /* 2.5 an entry from another room */
        const char *saved = r->room_id;
        r->room_id = "!elsewhere:a.example";
        struct event *foreign_pl = mk(r, next_id(r), "m.room.power_levels", ALICE, "", "{}");
        r->room_id = saved;
        const struct event *foreign[] = {create, foreign_pl, alice};
        assert_int_equal(check_auth(r, msg, foreign + off, 3 - off, &why), -ERR_FORBIDDEN);
        assert_string_equal(why, "auth event belongs to another room");
        /* the create event itself: rule 1 decides before auth events */
        assert_int_equal(check_auth(r, r->create, NULL, 0, &why), 0);
    }
}

static bool has_pair(const char **types, const char **keys, size_t n, const char *type,
                     const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(types[i], type) == 0 && strcmp(keys[i], key) == 0) {
            return true;
        }
    }
    return false;
}

static void test_selection(void **state)
{
    const char *types[AUTHRULES_SELECTION_MAX];
    const char *keys[AUTHRULES_SELECTION_MAX];
    json_t *join_via = json_pack("{s:s,s:s}", "membership", "join",
                                 "join_authorised_via_users_server", CAROL);
    json_t *tpi = json_pack("{s:s,s:{s:{s:s,s:s}}}", "membership", "invite",
                            "third_party_invite", "signed", "mxid", BOB, "token", "tok");
    json_t *leave = json_pack("{s:s}", "membership", "leave");

    /* a message: create, power levels, sender */
    size_t n = authrules_selection(roomver_get("10"), "m.room.message", NULL, ALICE, NULL, types,
                                   keys);
    assert_int_equal(n, 3);
    assert_true(has_pair(types, keys, n, "m.room.create", ""));
    assert_true(has_pair(types, keys, n, "m.room.power_levels", ""));
    assert_true(has_pair(types, keys, n, "m.room.member", ALICE));
    /* v12: no create */
    n = authrules_selection(roomver_get("12"), "m.room.message", NULL, ALICE, NULL, types, keys);
    assert_int_equal(n, 2);
    assert_false(has_pair(types, keys, n, "m.room.create", ""));
    /* a restricted join names the authorising user's membership from v8 */
    n = authrules_selection(roomver_get("8"), "m.room.member", BOB, BOB, join_via, types, keys);
    assert_int_equal(n, 5);
    assert_true(has_pair(types, keys, n, "m.room.join_rules", ""));
    assert_true(has_pair(types, keys, n, "m.room.member", CAROL));
    n = authrules_selection(roomver_get("7"), "m.room.member", BOB, BOB, join_via, types, keys);
    assert_int_equal(n, 4);
    assert_false(has_pair(types, keys, n, "m.room.member", CAROL));
    /* a third-party invite names the invite event by token */
    n = authrules_selection(roomver_get("6"), "m.room.member", BOB, ALICE, tpi, types, keys);
    assert_int_equal(n, 6);
    assert_true(has_pair(types, keys, n, "m.room.third_party_invite", "tok"));
    assert_true(has_pair(types, keys, n, "m.room.member", BOB));
    /* a kick: no join rules */
    n = authrules_selection(roomver_get("6"), "m.room.member", BOB, ALICE, leave, types, keys);
    assert_int_equal(n, 4);
    assert_false(has_pair(types, keys, n, "m.room.join_rules", ""));
    /* the create event has none */
    n = authrules_selection(roomver_get("6"), "m.room.create", "", ALICE, NULL, types, keys);
    assert_int_equal(n, 0);
    json_decref(join_via);
    json_decref(tpi);
    json_decref(leave);
}

/* ------------------------------------------------------------------------ */
/* Membership                                                               */
/* ------------------------------------------------------------------------ */

static void test_first_join_creator_only(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_create(r, v, NULL);
        struct event *e = mk_prev(r, next_id(r), "m.room.member", ALICE, ALICE, JOIN,
                                  "$create:a.example");
        ALLOWED(r, e);
        /* anyone else right after the create: no join rules yet, so invite-only */
        e = mk_prev(r, next_id(r), "m.room.member", BOB, BOB, JOIN, "$create:a.example");
        REJECTED(r, e, "not invited to this room");
        /* the creator, but not right after the create event */
        e = mk_prev(r, next_id(r), "m.room.member", ALICE, ALICE, JOIN, "$other:a.example");
        REJECTED(r, e, "not invited to this room");
        /* the create event, but not as the only previous event */
        e = mk_prev(r, next_id(r), "m.room.member", ALICE, ALICE, JOIN, "$create:a.example");
        const char *two[] = {"$create:a.example", "$other:a.example"};
        e->prev_events = two;
        e->n_prev_events = 2;
        REJECTED(r, e, "not invited to this room");
    }
    /* who "the creator" is: content.creator to v10, the sender from v11 */
    const char *bob_creator = "{\"creator\":\"" BOB "\"}";
    room_create(r, "10", bob_creator);
    ALLOWED(r, mk_prev(r, next_id(r), "m.room.member", BOB, BOB, JOIN, "$create:a.example"));
    REJECTED(r, mk_prev(r, next_id(r), "m.room.member", ALICE, ALICE, JOIN, "$create:a.example"),
             "not invited to this room");
    room_create(r, "11", bob_creator);
    ALLOWED(r, mk_prev(r, next_id(r), "m.room.member", ALICE, ALICE, JOIN, "$create:a.example"));
    REJECTED(r, mk_prev(r, next_id(r), "m.room.member", BOB, BOB, JOIN, "$create:a.example"),
             "not invited to this room");
    /* v12: additional creators are creators, but the first join is the sender's */
    room_create(r, "12", "{\"additional_creators\":[\"" BOB "\"]}");
    REJECTED(r, mk_prev(r, next_id(r), "m.room.member", BOB, BOB, JOIN, "$create:a.example"),
             "not invited to this room");
}

static void test_join_public_vs_invite(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "public", NULL);
        ALLOWED(r, member(r, BOB, BOB, JOIN));
        REJECTED(r, member(r, BOB, CAROL, JOIN), "cannot join on behalf of another user");
        room_std(r, v, "invite", NULL);
        REJECTED(r, member(r, BOB, BOB, JOIN), "not invited to this room");
        set_member(r, BOB, "invite");
        ALLOWED(r, member(r, BOB, BOB, JOIN));
        set_member(r, BOB, "join");
        ALLOWED(r, member(r, BOB, BOB, JOIN)); /* already joined: a profile change */
        /* an unknown join rule admits no one */
        room_std(r, v, "private", NULL);
        REJECTED(r, member(r, BOB, BOB, JOIN), "join rule does not allow joining");
        /* an unknown membership */
        REJECTED(r, member(r, BOB, BOB, "{\"membership\":\"dance\"}"), "unknown membership");
        REJECTED(r, member(r, BOB, BOB, "{}"), "member event without state_key or membership");
    }
}

static void test_invite_power_and_membership(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "invite",
                 strcmp(v, "12") == 0 ? "{\"invite\":50}"
                                      : "{\"invite\":50,\"users\":{\"" ALICE "\":100}}");
        set_member(r, BOB, "join");
        ALLOWED(r, member(r, ALICE, CAROL, INVITE));
        REJECTED(r, member(r, BOB, CAROL, INVITE), "insufficient power to invite");
        REJECTED(r, member(r, DAVE, CAROL, INVITE), "sender not in room");
        REJECTED(r, member(r, ALICE, BOB, INVITE), "target is joined or banned");
        set_member(r, CAROL, "ban");
        REJECTED(r, member(r, ALICE, CAROL, INVITE), "target is joined or banned");
        /* the default invite level is 0 */
        room_std(r, v, "invite", NULL);
        set_member(r, BOB, "join");
        ALLOWED(r, member(r, BOB, CAROL, INVITE));
    }
}

static void test_ban_beats_join(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "public", NULL);
        set_member(r, BOB, "ban");
        REJECTED(r, member(r, BOB, BOB, JOIN), "sender is banned");
        /* a banned user cannot leave on their own either */
        REJECTED(r, member(r, BOB, BOB, LEAVE), "cannot leave a room one is not in");
    }
}

static void test_unban_and_kick(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        bool v12 = strcmp(v, "12") == 0;
        room_std(r, v, "public",
                 v12 ? "{\"ban\":60,\"kick\":40,\"users\":{\"" BOB "\":50,\"" CAROL "\":50}}"
                     : "{\"ban\":60,\"kick\":40,\"users\":{\"" ALICE "\":100,\"" BOB
                       "\":50,\"" CAROL "\":50}}");
        set_member(r, BOB, "join");
        set_member(r, CAROL, "join");
        set_member(r, DAVE, "ban");
        /* unbanning needs the ban level (bob has kick but not ban) */
        REJECTED(r, member(r, BOB, DAVE, LEAVE), "insufficient power to unban");
        ALLOWED(r, member(r, ALICE, DAVE, LEAVE));
        /* banning likewise */
        set_member(r, DAVE, "join");
        REJECTED(r, member(r, BOB, DAVE, BAN), "insufficient power to ban");
        ALLOWED(r, member(r, ALICE, DAVE, BAN));
        /* kicking: kick level and strictly lower target */
        ALLOWED(r, member(r, BOB, DAVE, LEAVE));
        REJECTED(r, member(r, BOB, CAROL, LEAVE), "insufficient power to kick");
        REJECTED(r, member(r, BOB, ALICE, LEAVE), "insufficient power to kick");
        REJECTED(r, member(r, BOB, ALICE, BAN), "insufficient power to ban");
        /* a sender who is not joined cannot kick or ban */
        set_member(r, BOB, "leave");
        REJECTED(r, member(r, BOB, DAVE, LEAVE), "sender not in room");
        REJECTED(r, member(r, BOB, DAVE, BAN), "sender not in room");
        /* leaving oneself, and rejecting an invite */
        ALLOWED(r, member(r, CAROL, CAROL, LEAVE));
        set_member(r, CAROL, "invite");
        ALLOWED(r, member(r, CAROL, CAROL, LEAVE));
    }
}

static void test_knock(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "knock", NULL);
        if (!r->rv->knock) {
            /* v1-v6: "knock" is no membership; and the join rule admits no joins */
            REJECTED(r, member(r, BOB, BOB, KNOCK), "unknown membership");
            REJECTED(r, member(r, BOB, BOB, JOIN), "join rule does not allow joining");
            continue;
        }
        ALLOWED(r, member(r, BOB, BOB, KNOCK));
        REJECTED(r, member(r, ALICE, BOB, KNOCK), "cannot knock on behalf of another user");
        /* knock rooms join like invite rooms */
        REJECTED(r, member(r, BOB, BOB, JOIN), "not invited to this room");
        set_member(r, BOB, "knock");
        ALLOWED(r, member(r, BOB, BOB, LEAVE)); /* retracting a knock (v7+) */
        set_member(r, BOB, "invite");
        REJECTED(r, member(r, BOB, BOB, KNOCK), "cannot knock when banned, invited or joined");
        ALLOWED(r, member(r, BOB, BOB, JOIN));
        set_member(r, BOB, "ban");
        REJECTED(r, member(r, BOB, BOB, KNOCK), "cannot knock when banned, invited or joined");

        room_std(r, v, "invite", NULL);
        REJECTED(r, member(r, BOB, BOB, KNOCK), "join rule does not allow knocking");
        room_std(r, v, "knock_restricted", NULL);
        if (r->rv->knock_restricted) {
            ALLOWED(r, member(r, BOB, BOB, KNOCK));
        } else {
            REJECTED(r, member(r, BOB, BOB, KNOCK), "join rule does not allow knocking");
        }
    }
    /* before v7, leaving from "knock" is not leaving */
    room_std(r, "6", "public", NULL);
    set_member(r, BOB, "knock");
    REJECTED(r, member(r, BOB, BOB, LEAVE), "cannot leave a room one is not in");
}

static void test_restricted_join(void **state)
{
    struct room *r = *state;
    const char *via_alice =
        "{\"membership\":\"join\",\"join_authorised_via_users_server\":\"" ALICE "\"}";
    const char *via_carol =
        "{\"membership\":\"join\",\"join_authorised_via_users_server\":\"" CAROL "\"}";
    const char *via_dave =
        "{\"membership\":\"join\",\"join_authorised_via_users_server\":\"" DAVE "\"}";
    FOR_EACH_VERSION(v)
    {
        const char *pl = strcmp(v, "12") == 0 ? "{\"invite\":50}"
                                              : "{\"invite\":50,\"users\":{\"" ALICE "\":100}}";
        room_std(r, v, "restricted", pl);
        set_member(r, CAROL, "join"); /* joined, power 0 < invite 50 */
        if (!r->rv->restricted_join) {
            REJECTED(r, member(r, BOB, BOB, via_alice), "join rule does not allow joining");
            continue;
        }
        ALLOWED(r, member(r, BOB, BOB, via_alice));
        REJECTED(r, member(r, BOB, BOB, via_carol), "authorising user cannot invite");
        REJECTED(r, member(r, BOB, BOB, via_dave), "authorising user is not in the room");
        REJECTED(r, member(r, BOB, BOB, JOIN), "restricted join without an authorising user");
        REJECTED(r, member(r, BOB, BOB,
                           "{\"membership\":\"join\",\"join_authorised_via_users_server\":\"x\"}"),
                 "join_authorised_via_users_server is not a user ID");
        /* invited or joined users need no authoriser */
        set_member(r, BOB, "invite");
        ALLOWED(r, member(r, BOB, BOB, JOIN));

        /* knock_restricted joins like restricted from v10 */
        room_std(r, v, "knock_restricted", pl);
        if (r->rv->knock_restricted) {
            ALLOWED(r, member(r, BOB, BOB, via_alice));
            REJECTED(r, member(r, BOB, BOB, JOIN), "restricted join without an authorising user");
        } else {
            REJECTED(r, member(r, BOB, BOB, via_alice), "join rule does not allow joining");
        }
    }
    /* authrules_authorising_user names the extra signer from v8 */
    room_std(r, "8", "restricted", NULL);
    assert_string_equal(authrules_authorising_user(member(r, BOB, BOB, via_alice)), ALICE);
    assert_null(authrules_authorising_user(member(r, BOB, BOB, JOIN)));
    room_std(r, "7", "public", NULL);
    assert_null(authrules_authorising_user(member(r, BOB, BOB, via_alice)));
}

/* ------------------------------------------------------------------------ */
/* Third-party invites                                                      */
/* ------------------------------------------------------------------------ */

static void test_third_party_invite(void **state)
{
    struct room *r = *state;
    assert_true(sodium_init() >= 0);
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    char pk64[64];
    keys_b64_encode(pk, sizeof(pk), pk64);
    /* the canonical JSON of the signed block, written out by hand */
    const char *canon = "{\"mxid\":\"" BOB "\",\"sender\":\"" ALICE "\",\"token\":\"tok\"}";
    unsigned char sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)canon, strlen(canon), sk);
    char sig64[128];
    keys_b64_encode(sig, sizeof(sig), sig64);

    char good[1024];
    snprintf(good, sizeof(good),
             "{\"membership\":\"invite\",\"third_party_invite\":{\"display_name\":\"b...\","
             "\"signed\":{\"mxid\":\"" BOB "\",\"sender\":\"" ALICE "\",\"token\":\"%s\","
             "\"signatures\":{\"id.example\":{\"ed25519:0\":\"%s\"}}}}}",
             "tok", sig64);
    char wrong_token[1024];
    snprintf(wrong_token, sizeof(wrong_token),
             "{\"membership\":\"invite\",\"third_party_invite\":{\"display_name\":\"b...\","
             "\"signed\":{\"mxid\":\"" BOB "\",\"sender\":\"" ALICE "\",\"token\":\"%s\","
             "\"signatures\":{\"id.example\":{\"ed25519:0\":\"%s\"}}}}}",
             "other", sig64);
    char tpi_content[256];
    snprintf(tpi_content, sizeof(tpi_content),
             "{\"display_name\":\"b...\",\"key_validity_url\":\"https://id.example/v\","
             "\"public_key\":\"%s\"}",
             pk64);
    char tpi_list[256];
    snprintf(tpi_list, sizeof(tpi_list),
             "{\"display_name\":\"b...\",\"public_key\":\"AAAA\","
             "\"public_keys\":[{\"public_key\":\"%s\"}]}",
             pk64);

    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "invite", NULL);
        set_member(r, CAROL, "join");
        /* m.room.third_party_invite itself needs the invite level */
        ALLOWED(r, mk(r, next_id(r), "m.room.third_party_invite", ALICE, "tok", tpi_content));
        put(r, mk(r, "$tpi:a.example", "m.room.third_party_invite", ALICE, "tok", tpi_content));

        ALLOWED(r, member(r, ALICE, BOB, good));
        REJECTED(r, member(r, ALICE, BOB, wrong_token), "no third-party invite for this token");
        /* mxid must be the invitee */
        REJECTED(r, member(r, ALICE, DAVE, good), "third-party invite mxid does not match state_key");
        /* only the sender of the third-party invite can complete it */
        REJECTED(r, member(r, CAROL, BOB, good), "sender did not send the third-party invite");
        /* a signature over anything else does not verify */
        char forged[1024];
        snprintf(forged, sizeof(forged),
                 "{\"membership\":\"invite\",\"third_party_invite\":{\"signed\":{\"mxid\":\"" BOB
                 "\",\"sender\":\"" CAROL "\",\"token\":\"tok\",\"signatures\":"
                 "{\"id.example\":{\"ed25519:0\":\"%s\"}}}}}",
                 sig64);
        REJECTED(r, member(r, ALICE, BOB, forged), "third-party invite signature does not verify");
        REJECTED(r, member(r, ALICE, BOB, "{\"membership\":\"invite\",\"third_party_invite\":{}}"),
                 "third-party invite has no signed block");
        REJECTED(r, member(r, ALICE, BOB,
                           "{\"membership\":\"invite\",\"third_party_invite\":{\"signed\":"
                           "{\"mxid\":\"" BOB "\"}}}"),
                 "third-party invite signed block lacks mxid or token");
        /* the key may come from public_keys */
        put(r, mk(r, "$tpi2:a.example", "m.room.third_party_invite", ALICE, "tok", tpi_list));
        ALLOWED(r, member(r, ALICE, BOB, good));
        /* a banned target stays out */
        set_member(r, BOB, "ban");
        REJECTED(r, member(r, ALICE, BOB, good), "target is banned");
    }
    /* a sender below the invite level cannot create the third-party invite */
    room_std(r, "10", "invite", "{\"invite\":50,\"users\":{\"" ALICE "\":100}}");
    set_member(r, CAROL, "join");
    REJECTED(r, mk(r, next_id(r), "m.room.third_party_invite", CAROL, "tok", tpi_content),
             "insufficient power to invite");
}

/* ------------------------------------------------------------------------ */
/* Other events: membership, required power, state keys                     */
/* ------------------------------------------------------------------------ */

static void test_event_power(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        bool v12 = strcmp(v, "12") == 0;
        room_std(r, v, "public",
                 v12 ? "{\"events_default\":10,\"events\":{\"m.room.name\":60,\"m.custom\":0},"
                       "\"users\":{\"" BOB "\":50}}"
                     : "{\"events_default\":10,\"events\":{\"m.room.name\":60,\"m.custom\":0},"
                       "\"users\":{\"" ALICE "\":100,\"" BOB "\":50}}");
        set_member(r, BOB, "join");
        set_member(r, CAROL, "join");
        /* messages: events_default, per-type overrides */
        ALLOWED(r, mk(r, next_id(r), "m.room.message", BOB, NULL, "{}"));
        REJECTED(r, mk(r, next_id(r), "m.room.message", CAROL, NULL, "{}"),
                 "insufficient power for this event type");
        ALLOWED(r, mk(r, next_id(r), "m.custom", CAROL, NULL, "{}"));
        /* state: state_default 50 when absent; per-type overrides */
        ALLOWED(r, mk(r, next_id(r), "m.room.topic", BOB, "", "{}"));
        REJECTED(r, mk(r, next_id(r), "m.room.topic", CAROL, "", "{}"),
                 "insufficient power for this event type");
        REJECTED(r, mk(r, next_id(r), "m.room.name", BOB, "", "{}"),
                 "insufficient power for this event type");
        ALLOWED(r, mk(r, next_id(r), "m.room.name", ALICE, "", "{}"));
        /* senders must be joined */
        REJECTED(r, mk(r, next_id(r), "m.room.message", DAVE, NULL, "{}"), "sender not in room");
        /* a state key naming another user */
        REJECTED(r, mk(r, next_id(r), "m.custom", BOB, CAROL, "{}"),
                 "state_key is another user's ID");
        ALLOWED(r, mk(r, next_id(r), "m.custom", BOB, BOB, "{}"));
        /* m.federate: false keeps other servers out */
        room_create(r, v,
                    r->rv->implicit_room_creator
                        ? "{\"m.federate\":false}"
                        : "{\"creator\":\"" ALICE "\",\"m.federate\":false}");
        set_member(r, ALICE, "join");
        set_state(r, "m.room.join_rules", "{\"join_rule\":\"public\"}");
        REJECTED(r, member(r, BOB, BOB, JOIN), "room does not federate");
        ALLOWED(r, member(r, "@alice2:a.example", "@alice2:a.example", JOIN));
    }
    /* with no power levels event: state needs 50, the creator has 100 (v1-v11) */
    room_create(r, "9", NULL);
    set_member(r, ALICE, "join");
    set_member(r, BOB, "join");
    ALLOWED(r, mk(r, next_id(r), "m.room.topic", ALICE, "", "{}"));
    REJECTED(r, mk(r, next_id(r), "m.room.topic", BOB, "", "{}"),
             "insufficient power for this event type");
    ALLOWED(r, mk(r, next_id(r), "m.room.message", BOB, NULL, "{}"));
}

/* ------------------------------------------------------------------------ */
/* Power levels                                                             */
/* ------------------------------------------------------------------------ */

static struct event *pl_event(struct room *r, const char *sender, const char *content)
{
    return mk(r, next_id(r), "m.room.power_levels", sender, "", content);
}

static void test_power_level_escalation(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        bool v12 = strcmp(v, "12") == 0;
        /* alice 100 (v12: creator), bob 50, ban 100, state_default 50 */
        const char *cur = v12 ? "{\"ban\":100,\"users\":{\"" BOB "\":50}}"
                              : "{\"ban\":100,\"users\":{\"" ALICE "\":100,\"" BOB "\":50}}";
        room_std(r, v, "public", cur);
        set_member(r, BOB, "join");
        const char *alice_entry = v12 ? "" : "\"" ALICE "\":100,";
        char buf[256];
#define PL(fmt, ...) (snprintf(buf, sizeof(buf), fmt, __VA_ARGS__), pl_event(r, BOB, buf))
        /* raising oneself above one's level */
        REJECTED(r, PL("{\"ban\":100,\"users\":{%s\"" BOB "\":100}}", alice_entry),
                 "cannot set a level above your own");
        /* changing a user at or above one's level */
        if (!v12) {
            REJECTED(r, pl_event(r, BOB, "{\"ban\":100,\"users\":{\"" ALICE "\":10,\"" BOB "\":50}}"),
                     "cannot change the level of a user not below you");
        }
        /* changing a key whose current value is above one's level */
        REJECTED(r, PL("{\"ban\":40,\"users\":{%s\"" BOB "\":50}}", alice_entry),
                 "cannot change a level above your own");
        /* adding a user up to one's own level is fine; above is not */
        ALLOWED(r, PL("{\"ban\":100,\"users\":{%s\"" BOB "\":50,\"" CAROL "\":50}}", alice_entry));
        REJECTED(r, PL("{\"ban\":100,\"users\":{%s\"" BOB "\":50,\"" CAROL "\":51}}", alice_entry),
                 "cannot set a level above your own");
        /* lowering oneself is fine */
        ALLOWED(r, PL("{\"ban\":100,\"users\":{%s\"" BOB "\":10}}", alice_entry));
        /* events entries: added up to one's level */
        ALLOWED(r, PL("{\"ban\":100,\"events\":{\"m.room.name\":50},\"users\":{%s\"" BOB "\":50}}",
                      alice_entry));
        REJECTED(r,
                 PL("{\"ban\":100,\"events\":{\"m.room.name\":51},\"users\":{%s\"" BOB "\":50}}",
                    alice_entry),
                 "cannot set a level above your own");
        /* removing the state_default (absent before) changes nothing */
        ALLOWED(r, PL("{\"ban\":100,\"state_default\":50,\"users\":{%s\"" BOB "\":50}}",
                      alice_entry));
        /* a sender without the power levels event's required level */
        set_member(r, CAROL, "join");
        REJECTED(r, pl_event(r, CAROL, cur), "insufficient power for this event type");
        /* invalid user IDs in users */
        REJECTED(r, PL("{\"users\":{%s\"bob\":0}}", alice_entry), "users holds an invalid user ID");
        REJECTED(r, pl_event(r, ALICE, "{\"users\":[]}"), "users is not an object");
#undef PL
    }
}

static void test_notifications_v5_v6(void **state)
{
    struct room *r = *state;
    const char *cur = "{\"notifications\":{\"room\":100},\"users\":{\"" ALICE "\":100,\"" BOB
                      "\":50},\"state_default\":50}";
    const char *lowered = "{\"notifications\":{\"room\":0},\"users\":{\"" ALICE "\":100,\"" BOB
                          "\":50},\"state_default\":50}";
    room_std(r, "5", "public", cur);
    set_member(r, BOB, "join");
    ALLOWED(r, pl_event(r, BOB, lowered));
    room_std(r, "6", "public", cur);
    set_member(r, BOB, "join");
    REJECTED(r, pl_event(r, BOB, lowered), "cannot change a level above your own");
}

static void test_string_power_levels(void **state)
{
    struct room *r = *state;
    const char *stringy = "{\"ban\":\"50\",\"users\":{\"" ALICE "\":\" +100 \",\"" BOB "\":\"075\"}}";
    const char *string_event = "{\"events\":{\"m.room.name\":\"50\"}}";
    const char *float_user = "{\"users\":{\"" ALICE "\":100,\"" BOB "\":60.9}}";
    for (int ver = 1; ver <= 11; ver++) {
        char v[4];
        snprintf(v, sizeof(v), "%d", ver);
        room_std(r, v, "public", NULL);
        set_member(r, BOB, "join");
        /* the first power levels event, here replacing Alice's */
        map_del(&r->state, (struct str){"m.room.power_levels\0", 20});
        if (r->rv->integer_power_levels) {
            REJECTED(r, pl_event(r, ALICE, stringy), "power level is not an integer");
            REJECTED(r, pl_event(r, ALICE, string_event),
                     "events or notifications is not an object of integers");
            REJECTED(r, pl_event(r, ALICE, "{\"users\":{\"" BOB "\":\"50\"}}"),
                     "users holds a non-integer level");
        } else {
            ALLOWED(r, pl_event(r, ALICE, stringy));
            ALLOWED(r, pl_event(r, ALICE, string_event));
            /* string levels count */
            set_state(r, "m.room.power_levels", stringy);
            assert_int_equal(authrules_user_power(r->rv, &r->as, BOB), 75);
            assert_int_equal(authrules_user_power(r->rv, &r->as, ALICE), 100);
            REJECTED(r, pl_event(r, ALICE, "{\"users\":{\"" BOB "\":\"5x\"}}"),
                     "users holds a non-integer level");
        }
        /* floats: truncated in v1-v5, refused from v6 (strict canonical JSON) */
        map_del(&r->state, (struct str){"m.room.power_levels\0", 20});
        if (!r->rv->strict_canonical_json) {
            ALLOWED(r, pl_event(r, ALICE, float_user));
            set_state(r, "m.room.power_levels", float_user);
            assert_int_equal(authrules_user_power(r->rv, &r->as, BOB), 60);
        } else {
            REJECTED(r, pl_event(r, ALICE, float_user), "users holds a non-integer level");
        }
    }
}

static void test_creators_v12(void **state)
{
    struct room *r = *state;
    room_create(r, "12", "{\"additional_creators\":[\"" BOB "\"]}");
    set_member(r, ALICE, "join");
    /* with no power levels event: creators infinite, others 0 */
    assert_int_equal(authrules_user_power(r->rv, &r->as, ALICE), INT64_MAX);
    assert_int_equal(authrules_user_power(r->rv, &r->as, BOB), INT64_MAX);
    assert_int_equal(authrules_user_power(r->rv, &r->as, CAROL), 0);
    /* creators may not be listed in users */
    REJECTED(r, pl_event(r, ALICE, "{\"users\":{\"" ALICE "\":100}}"),
             "room creators cannot appear in users");
    REJECTED(r, pl_event(r, ALICE, "{\"users\":{\"" BOB "\":100}}"),
             "room creators cannot appear in users");
    ALLOWED(r, pl_event(r, ALICE, "{\"users\":{\"" CAROL "\":100}}"));
    set_state(r, "m.room.power_levels",
              "{\"users\":{\"" CAROL "\":100,\"" DAVE "\":100},\"users_default\":0}");
    set_state(r, "m.room.join_rules", "{\"join_rule\":\"public\"}");
    set_member(r, BOB, "join");
    set_member(r, CAROL, "join");
    set_member(r, DAVE, "join");
    /* still infinite with a power levels event */
    assert_int_equal(authrules_user_power(r->rv, &r->as, BOB), INT64_MAX);
    assert_int_equal(authrules_user_power(r->rv, &r->as, CAROL), 100);
    /* a creator bans a 100; a 100 cannot touch a creator */
    ALLOWED(r, member(r, BOB, DAVE, BAN));
    REJECTED(r, member(r, CAROL, BOB, BAN), "insufficient power to ban");
    REJECTED(r, member(r, CAROL, ALICE, LEAVE), "insufficient power to kick");
    /* a creator may grant any level up to the integer maximum */
    ALLOWED(r, pl_event(r, BOB,
                        "{\"users\":{\"" CAROL "\":9007199254740991,\"" DAVE "\":100},"
                        "\"users_default\":0}"));
    /* others only up to their own */
    REJECTED(r, pl_event(r, CAROL, "{\"users\":{\"" CAROL "\":101,\"" DAVE "\":100}}"),
             "cannot set a level above your own");
    REJECTED(r, pl_event(r, CAROL, "{\"users\":{\"" CAROL "\":100,\"" DAVE "\":1}}"),
             "cannot change the level of a user not below you");

    /* in v11 the creator is an ordinary 100 once power levels exist */
    room_std(r, "11", "public", "{\"users\":{\"" ALICE "\":100,\"" BOB "\":100}}");
    set_member(r, BOB, "join");
    assert_int_equal(authrules_user_power(r->rv, &r->as, ALICE), 100);
    ALLOWED(r, pl_event(r, ALICE, "{\"users\":{\"" ALICE "\":100,\"" BOB "\":100}}"));
    REJECTED(r, member(r, BOB, ALICE, BAN), "insufficient power to ban");
}

static void test_user_power_defaults(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_create(r, v, NULL);
        int64_t creator = r->rv->privileged_creators ? INT64_MAX : 100;
        assert_int_equal(authrules_user_power(r->rv, &r->as, ALICE), creator);
        assert_int_equal(authrules_user_power(r->rv, &r->as, BOB), 0);
        set_state(r, "m.room.power_levels", "{\"users_default\":7}");
        assert_int_equal(authrules_user_power(r->rv, &r->as, BOB), 7);
        /* v1-v11: the power levels event replaces the implicit 100 */
        assert_int_equal(authrules_user_power(r->rv, &r->as, ALICE),
                         r->rv->privileged_creators ? INT64_MAX : 7);
    }
}

/* ------------------------------------------------------------------------ */
/* m.room.aliases and m.room.redaction across versions                      */
/* ------------------------------------------------------------------------ */

static void test_aliases_v5_v6(void **state)
{
    struct room *r = *state;
    const char *mallory = "@mallory:evil.example"; /* not in the room */
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "invite", NULL);
        struct event *own = mk(r, next_id(r), "m.room.aliases", mallory, "evil.example",
                               "{\"aliases\":[\"#x:evil.example\"]}");
        struct event *other = mk(r, next_id(r), "m.room.aliases", mallory, "a.example",
                                 "{\"aliases\":[\"#x:a.example\"]}");
        if (r->rv->special_case_aliases_auth) {
            /* v1-v5: only the domain matters, not membership or power */
            ALLOWED(r, own);
            REJECTED(r, other, "aliases state_key is not the sender's domain");
            REJECTED(r, mk(r, next_id(r), "m.room.aliases", mallory, NULL, "{}"),
                     "aliases event has no state_key");
        } else {
            /* v6+: an ordinary state event */
            REJECTED(r, own, "sender not in room");
            set_member(r, BOB, "join");
            REJECTED(r, mk(r, next_id(r), "m.room.aliases", BOB, "b.example", "{}"),
                     "insufficient power for this event type");
        }
    }
}

static void test_redaction_v2_v3(void **state)
{
    struct room *r = *state;
    FOR_EACH_VERSION(v)
    {
        room_std(r, v, "public", NULL);
        set_member(r, BOB, "join");
        /* v1/v2 event IDs carry the server; bob is on b.example, power 0 < redact 50 */
        json_t *pdu = json_pack("{s:s,s:s,s:s,s:{},s:i,s:i,s:{s:s},s:{},s:[],s:[],s:s}", "type",
                                "m.room.redaction", "room_id", r->room_id, "sender", BOB,
                                "content", "depth", 1, "origin_server_ts", 1, "hashes",
                                "sha256", "x", "signatures", "prev_events", "auth_events",
                                "redacts", "$victim:a.example");
        if (r->rv->redaction >= REDACTION_V11) {
            json_object_set_new(json_object_get(pdu, "content"), "redacts",
                                json_string("$victim:a.example"));
        }
        struct event *foreign = NULL;
        struct event *own = NULL;
        assert_int_equal(event_parse(&r->arena, r->rv, pdu, "$red1:b.example", &foreign, NULL), 0);
        assert_int_equal(event_parse(&r->arena, r->rv, pdu, "$red2:a.example", &own, NULL), 0);
        json_decref(pdu);
        if (r->rv->redaction_domain_check_in_auth) {
            REJECTED(r, foreign, "insufficient power to redact another server's event");
            ALLOWED(r, own);
        } else {
            /* v3+: the redact level applies when the redaction is applied */
            ALLOWED(r, foreign);
            ALLOWED(r, own);
        }
        /* the redact level suffices everywhere */
        set_state(r, "m.room.power_levels",
                  r->rv->privileged_creators ? "{\"redact\":0}"
                                             : "{\"redact\":0,\"users\":{\"" ALICE "\":100}}");
        ALLOWED(r, foreign);
    }
}

int test_authrules(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, room_setup, room_teardown)
        T(test_create),
        T(test_create_v12),
        T(test_create_v12_historical_creators),
        T(test_room_id_is_create_v12),
        T(test_auth_events),
        cmocka_unit_test(test_selection),
        T(test_first_join_creator_only),
        T(test_join_public_vs_invite),
        T(test_invite_power_and_membership),
        T(test_ban_beats_join),
        T(test_unban_and_kick),
        T(test_knock),
        T(test_restricted_join),
        T(test_third_party_invite),
        T(test_event_power),
        T(test_power_level_escalation),
        T(test_notifications_v5_v6),
        T(test_string_power_levels),
        T(test_creators_v12),
        T(test_user_power_defaults),
        T(test_aliases_v5_v6),
        T(test_redaction_v2_v3),
#undef T
    };
    return cmocka_run_group_tests_name("authrules", tests, NULL, NULL);
}
