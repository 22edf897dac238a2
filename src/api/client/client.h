/*
 * Helpers shared by the client-server handlers in src/api/client: reading
 * optional body fields with the right errors, local user IDs, and creating
 * accounts and sessions the same way from every registration path.
 */
#ifndef MYELIN_API_CLIENT_CLIENT_H
#define MYELIN_API_CLIENT_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/req.h"

#define CLIENT_PASSWORD_MAX_BYTES 512
#define CLIENT_DEVICE_ID_MAX_BYTES 255
#define CLIENT_DISPLAY_NAME_MAX_BYTES 255

/*
 * Reads an optional string field of r->json: 0 with *out NULL when absent
 * or null, 0 with *out set, or the M_INVALID_PARAM failure when the value
 * has another type or is longer than `max` bytes.
 */
int client__opt_string(struct req *r, const char *key, size_t max, const char **out);
/* As client__opt_string for a boolean; *out is false when absent. */
int client__opt_bool(struct req *r, const char *key, bool *out);

/*
 * Checks a localpart for a new account: the user ID grammar, not purely
 * numeric (guests), not starting with '_' (application services), the
 * whole ID within 255 bytes. Returns 0 or the M_INVALID_USERNAME failure.
 */
int client__check_localpart(struct req *r, const char *localpart);

/* "@localpart:server_name" in the request arena. */
char *client__user_id(struct req *r, const char *localpart);

/* 0 when no account `user_id` exists; otherwise fails the request with
 * M_USER_IN_USE, or returns the store's error. */
int client__check_user_free(struct req *r, const char *user_id);

/* The localpart of a user ID of this server (arena copy), or NULL when
 * the ID is malformed or belongs to another server. */
char *client__local_part(struct req *r, const char *user_id);

/*
 * Creates an account and its profile (display name = `displayname`, or
 * the localpart when NULL) inside the caller's transaction. Returns 0,
 * -ERR_USER_IN_USE, or another negative ERR_*.
 */
int client__user_create(struct req *r, const char *user_id, const char *password_hash,
                        bool is_admin, bool is_guest, const char *displayname);

/*
 * Creates (or reuses) a device and mints its tokens inside the caller's
 * transaction, and builds the login/registration body (user_id,
 * access_token, device_id, home_server, and with `refresh` the
 * refresh_token and expires_in_ms) into *out (a new reference).
 */
int client__session_response(struct req *r, const char *user_id, const char *device_id,
                             const char *display_name, bool refresh, json_t **out);

/* ---- rooms (shared by rooms.c and room_extras.c) ---- */

struct store_event;
struct store_room;

/*
 * The client format of a PDU (spec "ClientEvent"): the federation-only
 * keys removed, `event_id` added, unsigned.age computed. A new reference.
 */
json_t *client__event(const json_t *pdu, const char *event_id);
/* A stored event in the client format, with unsigned.redacted_because
 * when it was redacted; NULL when its JSON is unreadable. */
json_t *client__stored_event(struct req *r, const struct store_event *se);
/* A current-state PDU from svc/room (which carries "event_id") in the
 * client format. */
json_t *client__state_event(struct req *r, const json_t *pdu);

/*
 * Bundled aggregations (spec "Aggregations of child events"), in
 * relations.c: adds unsigned["m.relations"] to served events of `events`
 * (an array of client events, or one) that have children: m.replace (the
 * most recent valid edit), m.thread (latest_event, count,
 * current_user_participated for r->auth.user_id) and m.reference. State
 * events, edits and annotations get none. A few queries per call, not per
 * event. A database failure is logged and leaves the events unbundled.
 */
void client__bundle_aggregations(struct req *r, json_t *events);

/* 0 when r->auth.user_id is joined to the room; otherwise the
 * M_FORBIDDEN failure (also for unknown rooms). */
int client__require_joined(struct req *r, const char *room_id);
/* 0 for a well-formed room ID, else the M_INVALID_PARAM failure. */
int client__check_room_id(struct req *r, const char *room_id);
/* client__check_room_id, then client__require_joined: 0 or the failure
 * set on r. */
int client__require_joined_room(struct req *r, const char *room_id);
/*
 * Loads the event `event_id` into *se and the room `room_id` into *room
 * (strings in the request arena). Returns 0 when the event belongs to
 * that room and was not rejected; otherwise the M_NOT_FOUND "Event not
 * found" failure (also for an unknown room) or the store failure, set on r.
 */
int client__room_event(struct req *r, const char *room_id, const char *event_id,
                       struct store_event *se, struct store_room *room);
/* Loads the room `room_id` into *room (strings in the request arena).
 * Returns 0, or the M_NOT_FOUND "Room not found" failure or the store
 * failure, set on r. */
int client__known_room(struct req *r, const char *room_id, struct store_room *room);
/* Parses a /messages stream token "s<N>" into N; false when malformed. */
bool client__parse_stream_token(const char *s, int64_t *out);

/*
 * Sends m.room.member for `target` with `membership`, the body's optional
 * "reason", the sender's profile when joining itself, and the keys of
 * `extra` (borrowed, may be NULL). Returns 0 or the failure set on r.
 */
int client__set_membership(struct req *r, const char *room_id, const char *target,
                           const char *membership, json_t *extra);
/* Resolves a room ID or a local alias into *room_id; M_NOT_FOUND for an
 * unknown alias, M_INVALID_PARAM for anything else malformed. */
int client__resolve_room(struct req *r, const char *id_or_alias, const char **room_id);

/*
 * Restricted joins (spec "Restricted rooms", room versions 8+ with join
 * rule "restricted", 10+ also "knock_restricted"), in room_extras.c: when
 * r->auth.user_id joins `room_id` without being invited or joined, checks
 * the join rule's allow conditions and sets *extra (an arena object, or
 * NULL when nothing is needed) to {"join_authorised_via_users_server": a
 * local member able to invite}. Returns 0, or M_FORBIDDEN when no
 * condition holds, M_UNABLE_TO_GRANT_JOIN when no local member can invite.
 */
int client__restricted_join(struct req *r, const char *room_id, json_t **extra);

/*
 * Spec "PUT /rooms/{roomId}/state/{eventType}/{stateKey}" for
 * m.room.canonical_alias, in directory.c: the aliases that `content` adds
 * (in "alias" or "alt_aliases", and not in the current event at the same
 * state key) must be valid aliases (M_INVALID_PARAM, also for an
 * "alt_aliases" that is not a list) that point to `room_id` on this server
 * (M_BAD_ALIAS). Senders the authorization rules will refuse are let
 * through to that refusal. Returns 0 or the failure set on r.
 */
int client__check_canonical_alias(struct req *r, const char *room_id, const char *state_key,
                                  const json_t *content);

#endif
