/*
 * Push rules (core/pushrules): glob matching and dotted paths with the
 * spec's own examples, each condition kind, the predefined rules and their
 * order, merging with user rules and edits of default rules, the outcomes
 * of the default rules for typical events; and the push tables
 * (store/push.c, svc/push_rules_load) on a temporary SQLite database:
 * rule order, default-rule edits, push actions and unread counts.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#include "base/arena.h"
#include "base/err.h"
#include "core/pushrules.h"
#include "store/store.h"
#include "svc/push.h"

#define ALICE "@alice:example.org"
#define BOB "@bob:example.org"
#define ROOM "!room:example.org"

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        fail_msg("bad test JSON: %s: %s", e.text, text);
    }
    return j;
}

/* ---- glob ---- */

static void glob_spec_examples(void **state)
{
    (void)state;
    /* event_match on content.topic with "lunc?*" (spec "Conditions"). */
    assert_true(pushrules_glob("lunc?*", "Lunch plans", false));
    assert_true(pushrules_glob("lunc?*", "LUNCH", false));
    assert_false(pushrules_glob("lunc?*", " lunch", false));
    assert_false(pushrules_glob("lunc?*", "lunc", false));
    /* content.body with "ex*ple": any substring at word boundaries. */
    assert_true(pushrules_glob("ex*ple", "An example event.", true));
    assert_true(pushrules_glob("ex*ple", "exple", true));
    assert_true(pushrules_glob("ex*ple", "An exciting triple-whammy", true));
    assert_false(pushrules_glob("ex*ple", "An examples event", true));
    assert_false(pushrules_glob("ex*ple", "An example event.", false));
}

static void glob_details(void **state)
{
    (void)state;
    assert_true(pushrules_glob("", "", false));
    assert_false(pushrules_glob("", "x", false));
    assert_true(pushrules_glob("*", "", false));
    assert_true(pushrules_glob("m.room.*", "m.room.message", false));
    assert_false(pushrules_glob("m.room.*", "m.roomy", false));
    assert_true(pushrules_glob("a?c", "abc", false));
    assert_false(pushrules_glob("a?c", "ac", false));
    assert_true(pushrules_glob("**a**", "bab", false));
    /* Words: "cake" is not inside "cakes" nor "pancake"; punctuation bounds words. */
    assert_true(pushrules_glob("cake", "I want cake!", true));
    assert_false(pushrules_glob("cake", "I want cakes", true));
    assert_false(pushrules_glob("cake", "pancake", true));
    assert_true(pushrules_glob("cake*lie", "the cake is a lie", true));
    assert_false(pushrules_glob("cake*lie", "the cake is a lier", true));
    assert_true(pushrules_glob("under_score", "an under_score here", true));
    assert_false(pushrules_glob("under", "an under_score here", true));
    /* '?' is one code point; case folding beyond ASCII. */
    assert_true(pushrules_glob("caf?", "café", false));
    assert_false(pushrules_glob("caf??", "café", false));
    assert_true(pushrules_glob("été", "ÉTÉ", false));
    assert_true(pushrules_glob("привет", "ПРИВЕТ", false));
    /* Many stars on a long value stay fast (linear per segment). */
    char *big = malloc(200001);
    memset(big, 'a', 200000);
    big[200000] = '\0';
    assert_false(pushrules_glob("*a*a*a*a*a*a*b", big, false));
    assert_false(pushrules_glob("a*a*a*b", big, true));
    free(big);
}

/* ---- dotted paths ---- */

static void dotted_paths(void **state)
{
    (void)state;
    json_t *ev = js("{\"content\": {\"m.relates_to\": {\"rel_type\": \"m.replace\"},"
                    " \"m\\\\foo\": 1, \"m\\\\x\": 2, \"body\": \"hi\", \"a\": {\"b\": 3}}}");
    const json_t *v = pushrules_path(ev, "content.m\\.relates_to.rel_type");
    assert_non_null(v);
    assert_string_equal(json_string_value(v), "m.replace");
    /* "\\" is a literal backslash; "\x" stays a backslash and an x. */
    v = pushrules_path(ev, "content.m\\\\foo");
    assert_non_null(v);
    assert_int_equal(json_integer_value(v), 1);
    v = pushrules_path(ev, "content.m\\x");
    assert_non_null(v);
    assert_int_equal(json_integer_value(v), 2);
    assert_int_equal(json_integer_value(pushrules_path(ev, "content.a.b")), 3);
    assert_null(pushrules_path(ev, "content.m.relates_to.rel_type"));
    assert_null(pushrules_path(ev, "content.body.x"));
    assert_null(pushrules_path(ev, "nope"));
    json_decref(ev);
}

/* ---- conditions ---- */

static bool cond(const char *cond_json, const char *event_json, const struct pushrules_input *base)
{
    json_t *c = js(cond_json);
    json_t *ev = js(event_json);
    struct pushrules_input in = base ? *base : (struct pushrules_input){0};
    in.event = ev;
    if (!in.user_id) {
        in.user_id = ALICE;
    }
    bool r = pushrules_condition(c, &in);
    json_decref(c);
    json_decref(ev);
    return r;
}

static void condition_event_match(void **state)
{
    (void)state;
    const char *topic = "{\"type\": \"m.room.topic\", \"state_key\": \"\","
                        " \"content\": {\"topic\": \"Lunch plans\"}}";
    assert_true(cond("{\"kind\": \"event_match\", \"key\": \"content.topic\", \"pattern\": \"lunc?*\"}",
                     topic, NULL));
    /* Absent or non-string properties never match, not even "*". */
    assert_false(cond("{\"kind\": \"event_match\", \"key\": \"content.nope\", \"pattern\": \"*\"}",
                      topic, NULL));
    assert_false(cond("{\"kind\": \"event_match\", \"key\": \"content.topic\", \"pattern\": \"*\"}",
                      "{\"content\": {\"topic\": null}}", NULL));
    /* content.body is matched by words, other keys whole. */
    assert_true(cond("{\"kind\": \"event_match\", \"key\": \"content.body\", \"pattern\": \"beer\"}",
                     "{\"content\": {\"body\": \"time for a Beer?\"}}", NULL));
    assert_false(cond("{\"kind\": \"event_match\", \"key\": \"content.topic\", \"pattern\": \"beer\"}",
                      "{\"content\": {\"topic\": \"time for a beer\"}}", NULL));
    /* Missing key or pattern: no match. */
    assert_false(cond("{\"kind\": \"event_match\", \"pattern\": \"*\"}", topic, NULL));
}

static void condition_property_is_contains(void **state)
{
    (void)state;
    const char *create = "{\"type\": \"m.room.create\", \"content\": {\"m.federate\": true,"
                         " \"n\": 5, \"s\": \"true\", \"z\": null, \"f\": 1.5}}";
    assert_true(cond("{\"kind\": \"event_property_is\", \"key\": \"content.m\\\\.federate\","
                     " \"value\": true}", create, NULL));
    assert_false(cond("{\"kind\": \"event_property_is\", \"key\": \"content.s\", \"value\": true}",
                      create, NULL));
    assert_false(cond("{\"kind\": \"event_property_is\", \"key\": \"content.m\\\\.federate\","
                      " \"value\": 1}", create, NULL));
    assert_true(cond("{\"kind\": \"event_property_is\", \"key\": \"content.n\", \"value\": 5}",
                     create, NULL));
    assert_true(cond("{\"kind\": \"event_property_is\", \"key\": \"content.z\", \"value\": null}",
                     create, NULL));
    assert_false(cond("{\"kind\": \"event_property_is\", \"key\": \"content.f\", \"value\": 1.5}",
                      create, NULL));
    assert_false(cond("{\"kind\": \"event_property_is\", \"key\": \"content.absent\", \"value\": null}",
                      create, NULL));

    const char *aliases = "{\"type\": \"m.room.canonical_alias\", \"content\": {\"alt_aliases\":"
                          " [\"#somewhere:example.org\", \"#myroom:example.com\", 7, {\"x\": 1}]}}";
    assert_true(cond("{\"kind\": \"event_property_contains\", \"key\": \"content.alt_aliases\","
                     " \"value\": \"#myroom:example.com\"}", aliases, NULL));
    assert_false(cond("{\"kind\": \"event_property_contains\", \"key\": \"content.alt_aliases\","
                      " \"value\": \":example.com\"}", aliases, NULL));
    assert_true(cond("{\"kind\": \"event_property_contains\", \"key\": \"content.alt_aliases\","
                     " \"value\": 7}", aliases, NULL));
    assert_false(cond("{\"kind\": \"event_property_contains\", \"key\": \"type\","
                      " \"value\": \"m.room.canonical_alias\"}", aliases, NULL));
}

static void condition_display_name_count_power(void **state)
{
    (void)state;
    struct pushrules_input in = {.display_name = "Alice Liddell", .member_count = 2};
    const char *dn = "{\"kind\": \"contains_display_name\"}";
    assert_true(cond(dn, "{\"content\": {\"body\": \"hi alice liddell!\"}}", &in));
    assert_false(cond(dn, "{\"content\": {\"body\": \"hi alice liddells\"}}", &in));
    assert_false(cond(dn, "{\"content\": {\"body\": \"hi alice\"}}", &in));
    in.display_name = "a*";
    assert_false(cond(dn, "{\"content\": {\"body\": \"all\"}}", &in)); /* literal, not a glob */
    in.display_name = NULL;
    assert_false(cond(dn, "{\"content\": {\"body\": \"anything\"}}", &in));

    const char *ev = "{\"type\": \"m.room.message\"}";
    static const struct {
        const char *is;
        bool want;
    } counts[] = {{"2", true},   {"==2", true}, {"<3", true},  {">1", true},  {"<=2", true},
                  {">=3", false}, {"3", false},  {"<2", false}, {"x2", false}, {"2x", false},
                  {"", false},    {"=2", false}};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        char c[128];
        snprintf(c, sizeof(c), "{\"kind\": \"room_member_count\", \"is\": \"%s\"}", counts[i].is);
        if (cond(c, ev, &in) != counts[i].want) {
            fail_msg("room_member_count is=%s with 2 members: want %d", counts[i].is,
                     counts[i].want);
        }
    }

    const char *perm = "{\"kind\": \"sender_notification_permission\", \"key\": \"room\"}";
    in.sender_power = 50; /* default "room" level is 50 */
    assert_true(cond(perm, ev, &in));
    in.sender_power = 49;
    assert_false(cond(perm, ev, &in));
    json_t *pl = js("{\"notifications\": {\"room\": 20}}");
    in.power_levels = pl;
    in.sender_power = 20;
    assert_true(cond(perm, ev, &in));
    in.sender_power = 19;
    assert_false(cond(perm, ev, &in));
    json_decref(pl);

    assert_false(cond("{\"kind\": \"org.example.unknown\"}", ev, &in));
    assert_false(cond("{\"key\": \"type\"}", ev, &in));
}

/* ---- predefined rules and evaluation ---- */

static void default_rule_order(void **state)
{
    (void)state;
    static const char *const override_ids[] = {
        ".m.rule.master",      ".m.rule.suppress_notices", ".m.rule.invite_for_me",
        ".m.rule.member_event", ".m.rule.is_user_mention", ".m.rule.is_room_mention",
        ".m.rule.tombstone",   ".m.rule.reaction",         ".m.rule.room.server_acl",
        ".m.rule.suppress_edits"};
    static const char *const underride_ids[] = {".m.rule.call", ".m.rule.encrypted_room_one_to_one",
                                                ".m.rule.room_one_to_one", ".m.rule.message",
                                                ".m.rule.encrypted"};
    json_t *d = pushrules_defaults(ALICE);
    json_t *o = json_object_get(d, "override");
    assert_int_equal(json_array_size(o), 10);
    for (size_t i = 0; i < 10; i++) {
        assert_string_equal(json_string_value(json_object_get(json_array_get(o, i), "rule_id")),
                            override_ids[i]);
        assert_true(json_is_true(json_object_get(json_array_get(o, i), "default")));
    }
    json_t *u = json_object_get(d, "underride");
    assert_int_equal(json_array_size(u), 5);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(json_string_value(json_object_get(json_array_get(u, i), "rule_id")),
                            underride_ids[i]);
    }
    assert_int_equal(json_array_size(json_object_get(d, "content")), 0);
    /* The user's ID is filled into invite_for_me and is_user_mention. */
    json_t *inv = json_array_get(json_object_get(json_array_get(o, 2), "conditions"), 2);
    assert_string_equal(json_string_value(json_object_get(inv, "pattern")), ALICE);
    json_t *men = json_array_get(json_object_get(json_array_get(o, 4), "conditions"), 0);
    assert_string_equal(json_string_value(json_object_get(men, "value")), ALICE);
    assert_string_equal(json_string_value(json_object_get(men, "key")),
                        "content.m\\.mentions.user_ids");
    assert_false(json_is_true(json_object_get(json_array_get(o, 0), "enabled")));
    json_decref(d);
}

/* Evaluates `event_json` for Alice with the given rule set. */
static struct pushrules_result eval(const json_t *rules, const char *event_json, int64_t members,
                                    int64_t sender_power)
{
    json_t *ev = js(event_json);
    struct pushrules_input in = {.event = ev,
                                 .member_count = members,
                                 .user_id = ALICE,
                                 .display_name = "Alice",
                                 .sender_power = sender_power};
    struct pushrules_result res;
    pushrules_eval(rules, &in, &res);
    /* The sound points into the rule set, which outlives the event. */
    json_decref(ev);
    return res;
}

#define MSG(body)                                                                              \
    "{\"type\": \"m.room.message\", \"room_id\": \"" ROOM "\", \"sender\": \"" BOB "\","       \
    " \"content\": {\"msgtype\": \"m.text\", \"body\": \"" body "\"}}"

static void default_outcomes(void **state)
{
    (void)state;
    json_t *rules = pushrules_merge(ALICE, NULL, NULL);
    struct pushrules_result r;

    r = eval(rules, MSG("hello"), 2, 0); /* one-to-one */
    assert_true(r.notify);
    assert_false(r.highlight);
    assert_non_null(r.sound);
    assert_string_equal(r.sound, "default");
    assert_string_equal(r.rule_id, ".m.rule.room_one_to_one");

    r = eval(rules, MSG("hello"), 10, 0); /* a group */
    assert_true(r.notify);
    assert_false(r.highlight);
    assert_null(r.sound);
    assert_string_equal(r.rule_id, ".m.rule.message");

    /* The body naming Alice no longer highlights (legacy rules are gone)... */
    r = eval(rules, MSG("hello Alice"), 10, 0);
    assert_false(r.highlight);
    /* ...m.mentions does. */
    r = eval(rules,
             "{\"type\": \"m.room.message\", \"sender\": \"" BOB "\", \"content\": {\"body\": \"hi\","
             " \"m.mentions\": {\"user_ids\": [\"" ALICE "\"]}}}",
             10, 0);
    assert_true(r.notify);
    assert_true(r.highlight);
    assert_string_equal(r.rule_id, ".m.rule.is_user_mention");
    r = eval(rules,
             "{\"type\": \"m.room.message\", \"sender\": \"" BOB "\", \"content\": {\"body\": \"hi\","
             " \"m.mentions\": {\"user_ids\": [\"@carol:example.org\"]}}}",
             10, 0);
    assert_false(r.highlight);

    /* @room needs the "room" notification level (50 by default). */
    const char *room_mention = "{\"type\": \"m.room.message\", \"sender\": \"" BOB "\","
                               " \"content\": {\"body\": \"all\", \"m.mentions\": {\"room\": true}}}";
    r = eval(rules, room_mention, 10, 50);
    assert_true(r.highlight);
    assert_string_equal(r.rule_id, ".m.rule.is_room_mention");
    r = eval(rules, room_mention, 10, 0);
    assert_true(r.notify);
    assert_false(r.highlight);

    r = eval(rules,
             "{\"type\": \"m.room.message\", \"content\": {\"msgtype\": \"m.notice\", \"body\": \"bot\"}}",
             2, 0);
    assert_false(r.notify);
    assert_string_equal(r.rule_id, ".m.rule.suppress_notices");

    r = eval(rules, "{\"type\": \"m.reaction\", \"content\": {}}", 2, 0);
    assert_false(r.notify);
    r = eval(rules,
             "{\"type\": \"m.room.message\", \"content\": {\"body\": \"* fixed\","
             " \"m.relates_to\": {\"rel_type\": \"m.replace\", \"event_id\": \"$x\"}}}",
             2, 0);
    assert_false(r.notify);
    assert_string_equal(r.rule_id, ".m.rule.suppress_edits");

    r = eval(rules,
             "{\"type\": \"m.room.member\", \"state_key\": \"@carol:example.org\","
             " \"content\": {\"membership\": \"join\"}}",
             2, 0);
    assert_false(r.notify);
    r = eval(rules,
             "{\"type\": \"m.room.member\", \"state_key\": \"" ALICE "\","
             " \"content\": {\"membership\": \"invite\"}}",
             2, 0);
    assert_true(r.notify);
    assert_string_equal(r.rule_id, ".m.rule.invite_for_me");

    r = eval(rules, "{\"type\": \"m.room.tombstone\", \"state_key\": \"\", \"content\": {}}", 10, 0);
    assert_true(r.notify);
    assert_true(r.highlight);
    r = eval(rules, "{\"type\": \"m.room.tombstone\", \"state_key\": \"x\", \"content\": {}}", 10, 0);
    assert_false(r.notify);

    r = eval(rules, "{\"type\": \"m.call.invite\", \"content\": {}}", 10, 0);
    assert_true(r.notify);
    assert_string_equal(r.sound, "ring");
    r = eval(rules, "{\"type\": \"m.room.encrypted\", \"content\": {}}", 2, 0);
    assert_string_equal(r.rule_id, ".m.rule.encrypted_room_one_to_one");
    assert_string_equal(r.sound, "default");
    r = eval(rules, "{\"type\": \"m.room.encrypted\", \"content\": {}}", 3, 0);
    assert_true(r.notify);
    assert_null(r.sound);

    /* Nothing matches a topic change: no notification. */
    r = eval(rules, "{\"type\": \"m.room.topic\", \"state_key\": \"\", \"content\": {\"topic\": \"t\"}}",
             2, 0);
    assert_false(r.notify);
    assert_null(r.rule_id);
    json_decref(rules);
}

static void merged_user_rules(void **state)
{
    (void)state;
    json_t *user = js(
        "{\"override\": [{\"rule_id\": \"beer\", \"enabled\": true,"
        "  \"conditions\": [{\"kind\": \"event_match\", \"key\": \"content.body\", \"pattern\": \"beer\"},"
        "   {\"kind\": \"room_member_count\", \"is\": \"<=10\"}],"
        "  \"actions\": [\"notify\", {\"set_tweak\": \"sound\", \"value\": \"beeroclock.wav\"},"
        "   {\"set_tweak\": \"highlight\", \"value\": false}]}],"
        " \"content\": [{\"rule_id\": \"cake\", \"enabled\": true, \"pattern\": \"cake\","
        "  \"actions\": [\"notify\", {\"set_tweak\": \"highlight\"}]},"
        "  {\"rule_id\": \"off\", \"enabled\": false, \"pattern\": \"*\", \"actions\": [\"notify\"]}],"
        " \"room\": [{\"rule_id\": \"" ROOM "\", \"enabled\": true, \"actions\": [\"dont_notify\"]}],"
        " \"sender\": [{\"rule_id\": \"@spam:example.org\", \"enabled\": true, \"actions\": []}],"
        " \"underride\": [{\"rule_id\": \"weird\", \"enabled\": true,"
        "  \"conditions\": [{\"kind\": \"unknown_kind\"}], \"actions\": [\"notify\"]}]}");
    json_t *rules = pushrules_merge(ALICE, user, NULL);
    json_t *o = json_object_get(rules, "override");
    /* Master first, then the user's override rules, then the other defaults. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(o, 0), "rule_id")),
                        ".m.rule.master");
    assert_string_equal(json_string_value(json_object_get(json_array_get(o, 1), "rule_id")), "beer");
    assert_true(json_is_false(json_object_get(json_array_get(o, 1), "default")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(o, 2), "rule_id")),
                        ".m.rule.suppress_notices");
    json_t *u = json_object_get(rules, "underride");
    assert_string_equal(json_string_value(json_object_get(json_array_get(u, 0), "rule_id")), "weird");

    struct pushrules_result r = eval(rules, MSG("BEER time"), 5, 0);
    assert_string_equal(r.rule_id, "beer");
    assert_true(r.notify);
    assert_false(r.highlight); /* explicit value false */
    assert_string_equal(r.sound, "beeroclock.wav");
    r = eval(rules, MSG("beer time"), 11, 0); /* too many members: the room rule decides */
    assert_string_equal(r.rule_id, ROOM);
    assert_false(r.notify); /* dont_notify is historical: same as no actions */
    r = eval(rules, MSG("the cake is a lie"), 11, 0);
    assert_string_equal(r.rule_id, "cake"); /* content rules outrank room rules */
    assert_true(r.highlight);
    /* Sender rules, in another room so the room rule stays out. */
    r = eval(rules,
             "{\"type\": \"m.room.message\", \"room_id\": \"!other:x\", \"sender\": \"@spam:example.org\","
             " \"content\": {\"body\": \"buy\"}}",
             11, 0);
    assert_string_equal(r.rule_id, "@spam:example.org");
    assert_false(r.notify);
    /* An unknown condition disables its rule: the default message rule decides. */
    r = eval(rules,
             "{\"type\": \"m.room.message\", \"room_id\": \"!other:x\", \"sender\": \"" BOB "\","
             " \"content\": {\"body\": \"plain\"}}",
             11, 0);
    assert_string_equal(r.rule_id, ".m.rule.message");
    json_decref(rules);

    /* Edits of default rules: master on silences everything; actions replaced. */
    json_t *changes = js("{\".m.rule.master\": {\"enabled\": true},"
                         " \".m.rule.message\": {\"actions\": [\"notify\", {\"set_tweak\": \"sound\","
                         " \"value\": \"bell\"}]}}");
    rules = pushrules_merge(ALICE, NULL, changes);
    r = eval(rules, MSG("hi"), 10, 0);
    assert_string_equal(r.rule_id, ".m.rule.master");
    assert_false(r.notify);
    json_decref(rules);
    json_object_set_new(json_object_get(changes, ".m.rule.master"), "enabled", json_false());
    rules = pushrules_merge(ALICE, NULL, changes);
    r = eval(rules, MSG("hi"), 10, 0);
    assert_true(r.notify);
    assert_string_equal(r.sound, "bell");
    assert_false(pushrules_needs_display_name(rules));
    json_decref(rules);
    json_decref(changes);
    json_decref(user);
}

static void validation(void **state)
{
    (void)state;
    const char *why;
    json_t *ok = js("[\"notify\", \"dont_notify\", \"coalesce\", {\"set_tweak\": \"sound\", \"value\": \"x\"}]");
    assert_true(pushrules_check_actions(ok, &why));
    json_t *bad1 = js("[\"explode\"]");
    json_t *bad2 = js("[{\"value\": 1}]");
    json_t *bad3 = js("[1]");
    assert_false(pushrules_check_actions(bad1, &why));
    assert_false(pushrules_check_actions(bad2, &why));
    assert_false(pushrules_check_actions(bad3, &why));
    assert_false(pushrules_check_actions(NULL, &why));
    json_t *conds = js("[{\"kind\": \"anything\"}]");
    json_t *bad_conds = js("[{\"key\": \"x\"}]");
    assert_true(pushrules_check_conditions(conds, &why));
    assert_false(pushrules_check_conditions(bad_conds, &why));
    assert_int_equal(pushrules_kind_parse("underride"), PUSHRULE_UNDERRIDE);
    assert_int_equal(pushrules_kind_parse("global"), -1);
    json_decref(ok);
    json_decref(bad1);
    json_decref(bad2);
    json_decref(bad3);
    json_decref(conds);
    json_decref(bad_conds);
}

/* ---- the push tables on SQLite ---- */

struct db_fixture {
    char path[64];
    struct store *store;
    struct store_conn *c;
};

static int db_setup(void **state)
{
    struct db_fixture *f = calloc(1, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "/tmp/myelin-push-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0) {
        free(f);
        return -1;
    }
    close(fd);
    struct config_db cfg = {.engine = DB_ENGINE_SQLITE, .path = f->path};
    if (store_open(&cfg, &f->store) != 0 || store_conn_open(f->store, &f->c) != 0) {
        return -1;
    }
    *state = f;
    return 0;
}

static int db_teardown(void **state)
{
    struct db_fixture *f = *state;
    store_conn_close(f->c);
    store_close(f->store);
    char side[80];
    unlink(f->path);
    snprintf(side, sizeof(side), "%s-wal", f->path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", f->path);
    unlink(side);
    free(f);
    return 0;
}

static void put(struct store_conn *c, const char *kind, const char *id, const char *pattern)
{
    struct store_push_rule r = {.kind = kind, .rule_id = id, .pattern = pattern,
                                .actions = "[\"notify\"]", .conditions = NULL};
    assert_int_equal(store_push_rule_put(c, ALICE, &r), 0);
}

static void store_rules(void **state)
{
    struct db_fixture *f = *state;
    struct store_conn *c = f->c;
    put(c, "content", "a", "alpha");
    put(c, "content", "b", "beta");
    put(c, "override", "o", NULL);
    const char *order[] = {"b", "a"};
    assert_int_equal(store_push_rules_order(c, ALICE, "content", order, 2), 0);
    assert_int_equal(store_push_rule_set_enabled(c, ALICE, "content", "a", false), 0);
    assert_int_equal(store_push_rule_set_actions(c, ALICE, "override", "o", "[]"), 0);
    assert_int_equal(store_push_rule_set_enabled(c, ALICE, "room", "a", false), -ERR_NOT_FOUND);
    assert_int_equal(store_push_rule_delete(c, ALICE, "sender", "o"), -ERR_NOT_FOUND);
    assert_int_equal(store_push_default_set(c, ALICE, ".m.rule.message", 0, NULL), 0);
    assert_int_equal(store_push_default_set(c, ALICE, ".m.rule.message", -1, "[\"notify\"]"), 0);

    json_t *rules;
    assert_int_equal(push_rules_load(c, ALICE, &rules), 0);
    json_t *content = json_object_get(rules, "content");
    assert_int_equal(json_array_size(content), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 0), "rule_id")), "b");
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 1), "pattern")),
                        "alpha");
    assert_true(json_is_false(json_object_get(json_array_get(content, 1), "enabled")));
    json_t *o1 = json_array_get(json_object_get(rules, "override"), 1);
    assert_string_equal(json_string_value(json_object_get(o1, "rule_id")), "o");
    assert_int_equal(json_array_size(json_object_get(o1, "actions")), 0);
    assert_int_equal(json_array_size(json_object_get(o1, "conditions")), 0);
    /* The default rule keeps both edits: disabled, actions ["notify"]. */
    json_t *u = json_object_get(rules, "underride");
    json_t *msg = json_array_get(u, 3);
    assert_string_equal(json_string_value(json_object_get(msg, "rule_id")), ".m.rule.message");
    assert_true(json_is_false(json_object_get(msg, "enabled")));
    assert_int_equal(json_array_size(json_object_get(msg, "actions")), 1);
    json_decref(rules);

    /* Replacing keeps the enabled flag; deleting removes. */
    put(c, "content", "a", "gamma");
    assert_int_equal(store_push_rule_delete(c, ALICE, "content", "b"), 0);
    json_t *ad;
    assert_int_equal(push_rules_account_data(c, ALICE, &ad), 0);
    content = json_object_get(json_object_get(ad, "global"), "content");
    assert_int_equal(json_array_size(content), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 0), "pattern")),
                        "gamma");
    assert_true(json_is_false(json_object_get(json_array_get(content, 0), "enabled")));
    json_decref(ad);
}

static void store_counts(void **state)
{
    struct db_fixture *f = *state;
    struct store_conn *c = f->c;
    struct store_room room = {.nid = 7, .room_id = ROOM, .room_version = "10"};
    assert_int_equal(store_room_insert(c, &room), 0);
    struct store_push_action rows[] = {
        {ALICE, 7, 10, true, false, NULL},   {ALICE, 7, 11, true, true, NULL},
        {ALICE, 7, 12, true, false, "$t1"},  {ALICE, 7, 13, true, true, "$t1"},
        {ALICE, 7, 14, true, false, "$t2"},  {BOB, 7, 11, true, true, NULL},
        {ALICE, 8, 15, true, true, NULL}, /* another room */
    };
    assert_int_equal(store_push_actions_add(c, rows, sizeof(rows) / sizeof(rows[0])), 0);
    assert_int_equal(store_push_actions_add(c, rows, 1), 0); /* repeats are ignored */

    struct arena a;
    arena_init(&a);
    struct store_push_counts total;
    struct store_push_thread_counts *threads = NULL;
    size_t n = 0;
    assert_int_equal(store_push_unread_counts(c, &a, ALICE, ROOM, 0, &total, &threads, &n), 0);
    assert_int_equal(total.notify, 5);
    assert_int_equal(total.highlight, 2);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        const char *t = threads[i].thread_id;
        int64_t want_n = !t ? 2 : strcmp(t, "$t1") == 0 ? 2 : 1;
        int64_t want_h = !t ? 1 : strcmp(t, "$t1") == 0 ? 1 : 0;
        assert_int_equal(threads[i].counts.notify, want_n);
        assert_int_equal(threads[i].counts.highlight, want_h);
    }
    /* After the read position 11: events 12..14 only. */
    assert_int_equal(store_push_unread_counts(c, &a, ALICE, ROOM, 11, &total, NULL, NULL), 0);
    assert_int_equal(total.notify, 3);
    assert_int_equal(total.highlight, 1);
    assert_int_equal(store_push_unread_counts(c, &a, ALICE, "!nope:x", 0, &total, NULL, NULL), 0);
    assert_int_equal(total.notify, 0);

    struct store_push_counts one;
    assert_int_equal(store_push_unread_thread(c, ALICE, ROOM, "$t1", 12, &one), 0);
    assert_int_equal(one.notify, 1);
    assert_int_equal(one.highlight, 1);
    assert_int_equal(store_push_unread_thread(c, ALICE, ROOM, NULL, 10, &one), 0);
    assert_int_equal(one.notify, 1);
    assert_int_equal(one.highlight, 1);
    arena_release(&a);
}

int test_pushrules(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(glob_spec_examples),
        cmocka_unit_test(glob_details),
        cmocka_unit_test(dotted_paths),
        cmocka_unit_test(condition_event_match),
        cmocka_unit_test(condition_property_is_contains),
        cmocka_unit_test(condition_display_name_count_power),
        cmocka_unit_test(default_rule_order),
        cmocka_unit_test(default_outcomes),
        cmocka_unit_test(merged_user_rules),
        cmocka_unit_test(validation),
        cmocka_unit_test_setup_teardown(store_rules, db_setup, db_teardown),
        cmocka_unit_test_setup_teardown(store_counts, db_setup, db_teardown),
    };
    return cmocka_run_group_tests_name("pushrules", tests, NULL, NULL);
}
