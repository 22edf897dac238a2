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
 *
 * Events whose `rejected` flag is set are ignored as if absent. In room
 * version 12 the create event is never among auth_events; a lookup built
 * from auth_events must still answer ("m.room.create", "") with the create
 * event the room ID names.
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
 * resolved state skip it. Signatures are not checked here either: the
 * v8+ rule on join_authorised_via_users_server needs the signature of that
 * user's server (see authrules_authorising_user), and the third-party
 * invite rule's signature over `signed` is verified here because its keys
 * travel in the room state. Allocates nothing except while verifying a
 * third-party invite signature.
 */
int authrules_check(const struct event *ev, const struct auth_state *state, const char **reason);

/*
 * Checks the auth_events selection of `ev` (spec: "Considering events for
 * the authorization rules"): no duplicates per (type, state_key), no
 * entries that the event type does not call for, none rejected, all from
 * ev's room, a create event among them (v1-v11) or none (v12). `auth_events`
 * are the parsed events named by ev->auth_events, in the same order (NULL
 * for missing ones, which rejects: the caller fetches what it can first).
 * A create event passes whatever it lists (rule 1 allows it before auth
 * events are considered). Returns 0 or -ERR_FORBIDDEN with *reason (may be
 * NULL).
 */
int authrules_check_auth_events(const struct event *ev, const struct event *const *auth_events,
                                const char **reason);

/* The most pairs authrules_selection writes. */
#define AUTHRULES_SELECTION_MAX 6

/*
 * The (type, state_key) pairs the auth events of an event of this shape
 * must be chosen from (spec: "Auth events selection"): create (not in
 * v12), power levels, sender's membership, and for membership events the
 * target's membership, join rules (join/invite/knock), the third-party
 * invite named by content.third_party_invite.signed.token (invite), and
 * (v8+ join) the member event of content.join_authorised_via_users_server.
 * Writes up to AUTHRULES_SELECTION_MAX distinct pairs to types/state_keys
 * and returns the count; none for m.room.create. `content` is the new
 * event's content (for m.room.member). Types are static strings; state
 * keys point into the arguments.
 */
size_t authrules_selection(const struct room_version *rv, const char *type,
                           const char *state_key, const char *sender, const json_t *content,
                           const char **types, const char **state_keys);

/* The power level of `user_id` in the given state (spec: "m.room.power_levels"),
 * with the room version's defaults: users[user_id], else users_default, else
 * 0; with no power levels event 100 for the creator (content.creator in
 * v1-v10, the create event's sender from v11) and 0 for others; INT64_MAX
 * for v12 creators (sender and additional_creators). Values use the
 * version's leniency (v1-v9 integer strings, v1-v5 floats truncated);
 * a value that does not parse counts as absent. Allocates nothing. */
int64_t authrules_user_power(const struct room_version *rv, const struct auth_state *state,
                             const char *user_id);

/*
 * The user whose server must also have signed `ev` (room versions 8+,
 * m.room.member rule "If content has a join_authorised_via_users_server
 * property ... validly signed by the homeserver of the user ID"), or NULL
 * when the rule does not apply. The signature check calls this; the auth
 * rules only check that the property names a valid user ID.
 */
const char *authrules_authorising_user(const struct event *ev);

#endif
