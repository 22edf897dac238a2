/*
 * Authorization rules (spec: room version pages, "Authorization rules"),
 * for every room version: given an event and the state it is checked
 * against, allowed or rejected with the reason. Pure: no I/O.
 */
#ifndef MYELIN_CORE_AUTHRULES_H
#define MYELIN_CORE_AUTHRULES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/event.h"

/*
 * The state an event is authorised against: a lookup of the current
 * event for (type, state_key). For the spec's checks this is the state
 * formed by the event's auth_events (when receiving a PDU), the state
 * before the event, or the resolved state (state resolution's iterative
 * auth checks). Returns NULL when there is no such state event.
 */
struct auth_state {
    const struct event *(*get)(void *ud, const char *type, const char *state_key);
    void *ud;
};

/*
 * Checks `ev` against `state` with the rules of ev->rv. Returns 0 when
 * allowed, or -ERR_FORBIDDEN with *reason set to a short static
 * explanation naming the rule that rejected it (e.g. "sender not in
 * room", "insufficient power to set m.room.name"). `reason` may be NULL.
 *
 * The check covers the rules themselves; whether the event's auth_events
 * are the right ones (rule "auth events must be...") is checked by
 * authrules_check_auth_events, since callers that authorise against
 * resolved state skip it.
 */
int authrules_check(const struct event *ev, const struct auth_state *state, const char **reason);

/*
 * Checks the auth_events selection of `ev` (spec: "Considering events for
 * the authorization rules"): no duplicates per (type, state_key), no
 * entries that the event type does not call for, and (v12) no create
 * event among them. `auth_events` are the parsed events named by
 * ev->auth_events, in the same order (NULL for missing ones). Returns 0
 * or -ERR_FORBIDDEN with *reason.
 */
int authrules_check_auth_events(const struct event *ev, const struct event *const *auth_events,
                                const char **reason);

/*
 * The (type, state_key) pairs the auth events of an event of this shape
 * must be chosen from (spec: "Auth events selection"): create, power
 * levels, sender's membership, and for membership events the target's
 * membership, join rules and third-party invite. Writes up to 5 pairs to
 * types/state_keys and returns the count. `content` is the new event's
 * content (for m.room.member).
 */
size_t authrules_selection(const struct room_version *rv, const char *type,
                           const char *state_key, const char *sender, const json_t *content,
                           const char **types, const char **state_keys);

/* The power level of `user_id` in the given state (spec: "m.room.power_levels"),
 * with the room version's defaults; INT64_MAX for v12 creators. */
int64_t authrules_user_power(const struct room_version *rv, const struct auth_state *state,
                             const char *user_id);

#endif
