/*
 * Push rules (spec: Client-Server API, "Push Notifications", "Push Rules",
 * v1.17+ predefined rules): the server-default rules, merging them with a
 * user's own rules, validating rules clients upload, and the evaluator that
 * decides whether an event notifies a user and with which tweaks. Pure: no
 * I/O; rule sets are jansson objects in the API's shape.
 *
 * A rule set (the value of "global" in GET /pushrules/) is an object with
 * one array per kind, "override", "content", "room", "sender", "underride",
 * each rule an object {rule_id, default, enabled, actions, conditions
 * (override/underride), pattern (content)}. Evaluation order is override,
 * content, room, sender, underride; within a kind the array order. The
 * merged set puts .m.rule.master first, then the user's rules of each kind
 * before the server-default rules of that kind.
 */
#ifndef MYELIN_CORE_PUSHRULES_H
#define MYELIN_CORE_PUSHRULES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum pushrule_kind {
    PUSHRULE_OVERRIDE,
    PUSHRULE_CONTENT,
    PUSHRULE_ROOM,
    PUSHRULE_SENDER,
    PUSHRULE_UNDERRIDE,
    PUSHRULE_KINDS
};

/* "override", "content", ... for a kind. */
const char *pushrules_kind_name(enum pushrule_kind k);
/* The kind named `name`, or -1 when it is not one of the five. */
int pushrules_kind_parse(const char *name);

/*
 * The predefined rules for `user_id` (its ID filled into .m.rule.invite_for_me
 * and .m.rule.is_user_mention), each with "default": true: a new rule set
 * object holding all five kinds.
 */
json_t *pushrules_defaults(const char *user_id);

/*
 * The merged rule set of a user: `user_rules` (borrowed; a rule set object
 * of the user's own rules, each kind in priority order, rules carrying
 * rule_id, enabled, actions and conditions or pattern; may be NULL) and
 * `default_changes` (borrowed; rule_id -> {"enabled": bool, "actions": [..]},
 * either key optional, the user's edits of server-default rules; may be
 * NULL) over the predefined rules. Returns a new rule set object with every
 * kind present; user rules get "default": false and room/sender rules the
 * conditions their rule_id implies are NOT added (the evaluator derives
 * them).
 */
json_t *pushrules_merge(const char *user_id, const json_t *user_rules,
                        const json_t *default_changes);

/* True when `rule_id` names a server-default rule (it starts with '.'). */
bool pushrules_is_default_id(const char *rule_id);

/*
 * Validates the actions array of an uploaded rule: strings "notify",
 * "dont_notify", "coalesce" (the last two historical and ignored) or
 * objects with a string "set_tweak". Returns true when valid; otherwise
 * false with *why (static text).
 */
bool pushrules_check_actions(const json_t *actions, const char **why);
/*
 * Validates the conditions array of an override/underride rule: objects
 * with a string "kind" (unknown kinds are kept: they never match). Returns
 * true when valid; otherwise false with *why.
 */
bool pushrules_check_conditions(const json_t *conditions, const char **why);

/* ---- evaluation ---- */

/* What the evaluator knows about the event and the user. */
struct pushrules_input {
    const json_t *event;        /* the event (PDU or client format): type, content, sender, ... */
    int64_t member_count;       /* joined members of the room */
    const char *user_id;        /* the user whose rules these are */
    const char *display_name;   /* the user's display name in the room, or NULL */
    const json_t *power_levels; /* content of m.room.power_levels, or NULL */
    int64_t sender_power;       /* the sender's power level in the room */
};

/* The outcome for one user and event. */
struct pushrules_result {
    bool notify;
    bool highlight;
    const char *sound;   /* the sound tweak (borrowed from the rule set), or NULL */
    const char *rule_id; /* the rule that matched (borrowed), or NULL when none did */
};

/*
 * Runs `ruleset` (a merged rule set) for the event: the first enabled
 * rule whose conditions hold decides. Its actions give notify (the
 * "notify" action) and the tweaks: highlight (a set_tweak "highlight" with
 * no value means true) and sound. No matching rule: nothing. The sender's
 * own events must not be evaluated for them (the caller skips the sender).
 */
void pushrules_eval(const json_t *ruleset, const struct pushrules_input *in,
                    struct pushrules_result *out);

/* True when an enabled rule of `ruleset` uses contains_display_name, so
 * the caller must look the display name up. */
bool pushrules_needs_display_name(const json_t *ruleset);

/* ---- building blocks, exposed for tests ---- */

/*
 * Glob-style matching (spec appendix "Glob-style matching"): '*' matches
 * zero or more characters, '?' exactly one (a UTF-8 code point); case
 * insensitive (ASCII, Latin-1, Greek and Cyrillic letters). With
 * `word_boundary` the pattern may match any substring that starts and ends
 * at a word boundary (start or end of the value, or a character outside
 * [A-Za-z0-9_]), as for content.body; otherwise the whole value.
 */
bool pushrules_glob(const char *pattern, const char *value, bool word_boundary);

/*
 * The property of `event` at a dot-separated path (spec appendix
 * "Dot-separated property paths": "\." is a literal dot, "\\" a literal
 * backslash, other escapes stay as they are), or NULL when absent.
 * Borrowed.
 */
const json_t *pushrules_path(const json_t *event, const char *key);

/* Whether one condition object holds for the input; unknown kinds and
 * malformed conditions never hold. */
bool pushrules_condition(const json_t *cond, const struct pushrules_input *in);

#endif
