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
/* Send-side checks of content["m.relates_to"] (relations.c): same-room
 * parents, duplicate annotations, threads from relations. 0 or the 400
 * failure set on r. */
int client__check_relation(struct req *r, const char *room_id, const char *type,
                           const json_t *content);

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
/* Parses a /messages stream token "s<N>" (or a /sync token "s<N>_<M>...")
 * into N; false when malformed. */
bool client__parse_stream_token(const char *s, int64_t *out);

/* An optional non-negative integer query parameter (in report.c): true
 * with *out untouched when absent, true with *out set, false when
 * malformed. */
bool client__query_int(struct req *r, const char *key, int64_t *out);

/* A power level value (in room_extras.c): an integer, or (room versions
 * 1-9 allow them) a string holding one. False for anything else, which
 * counts as absent. */
bool client__level_value(const json_t *v, int64_t *out);

/* ---- history visibility and read access (visibility.c) ---- */

enum client_access_kind {
    CLIENT_ACCESS_JOINED,   /* joined now: everything, current state */
    CLIENT_ACCESS_DEPARTED, /* left (not forgotten): up to the leave, state at the leave */
    CLIENT_ACCESS_PEEK,     /* not joined, room world_readable now: current state */
};

struct client_vis;

/* How r->auth.user_id may read one room, from client__room_access. */
struct client_room_access {
    const char *room_id;
    int64_t room_nid;
    enum client_access_kind kind;
    const char *membership;           /* current membership, NULL when none */
    struct store_event *member_event; /* the current m.room.member event, or NULL */
    int64_t cap;                      /* highest readable stream ordering (the leave) */
    struct client_vis *vis;           /* per-request cache, NULL until used */
};

/*
 * Decides whether the user may read `room_id` (spec "Room History
 * Visibility"): joined members, former members who left (up to their
 * leave, unless they forgot the room), and anyone, guests included, while
 * the room is world_readable. Fills *acc and returns 0; otherwise the
 * M_INVALID_PARAM (bad room ID) or M_FORBIDDEN failure set on r.
 */
int client__room_access(struct req *r, const char *room_id, struct client_room_access *acc);
/*
 * Sets keep[i] for each of evs[0..n): whether the user may see it, by the
 * history visibility and their membership at that event, within acc->cap.
 * A few queries per distinct state snapshot, cached in acc for the whole
 * request. Returns 0 or the store failure set on r.
 */
int client__visible_events(struct req *r, struct client_room_access *acc,
                           const struct store_event *evs, size_t n, bool *keep);
/* client__visible_events for one event. */
int client__event_visible(struct req *r, struct client_room_access *acc,
                          const struct store_event *se, bool *ok);
/*
 * The state the access may read as PDUs with "event_id" (an arena-owned
 * array): the current state, or for former members the state just after
 * their leave. 0 or the failure set on r.
 */
int client__access_state(struct req *r, const struct client_room_access *acc, json_t **pdus);
/* One entry of that state (arena-owned PDU with "event_id"), *pdu NULL
 * when absent. 0 or the failure set on r. */
int client__access_state_event(struct req *r, struct client_room_access *acc,
                               const char *type, const char *state_key, json_t **pdu);
/* The room state just after stored event `ev` (NULL: empty), as
 * client__access_state gives it. 0 or the failure set on r. */
int client__state_after(struct req *r, const struct store_event *ev, json_t **pdus);
/*
 * Appends to `out` the client format of the m.room.member events, in the
 * state just after `ev`, of the users that are keys of the object `users`
 * (lazy-loaded members). 0 or the failure set on r.
 */
int client__members_after(struct req *r, const struct store_event *ev, const json_t *users,
                          json_t *out);

struct filter_events;
/* Reads the `filter` query parameter (a RoomEventFilter in JSON; absent
 * or empty: no conditions), in room_extras.c. 0 or M_INVALID_PARAM. */
int client__filter_param(struct req *r, struct filter_events *f);

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
 * Another server's alias (directory.c): client__alias_remote returns 0 when
 * `alias` is not a valid alias of another server (resolve it here), else
 * parks the request on that server's GET /query/directory and runs `cont`
 * with the answer, which client__alias_answer reads into *room_id and the
 * valid server names of `servers` (arena). Its 404 becomes M_NOT_FOUND,
 * any other failure 503; both return the failure set on r.
 */
int client__alias_remote(struct req *r, const char *alias, int (*cont)(struct req *r));
int client__alias_answer(struct req *r, const char *alias, const char **room_id,
                         const char ***servers, size_t *n);

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

/*
 * This server's published room directory (spec "Published room
 * directory"), in directory.c, shared by the client /publicRooms and the
 * federation GET/POST /publicRooms (api/federation/public.c). With `body`
 * (a POST's JSON object) reads limit, since, filter and the network
 * fields from it; with NULL (a GET) reads limit and since from the query
 * string, and include_all_networks and third_party_instance_id too when
 * `networks`. Answers the page, or fails r with M_INVALID_PARAM.
 */
int client__public_rooms_local(struct req *r, const json_t *body, bool networks);

/*
 * One room of a space hierarchy as another server may see it (Server-
 * Server API GET /hierarchy/{roomId}), in spaces.c: *out (a new
 * reference) is the room's summary with `children_state`, its
 * m.space.child events (only suggested ones when `suggested_only`; empty
 * for a room that is not a space). Returns 0; -ERR_NOT_FOUND when this
 * server is not in the room; -ERR_FORBIDDEN when server `origin` could
 * neither peek nor join it (Synapse's rules: a public, knock or
 * knock_restricted join rule, world_readable history, a member or
 * invitee of origin in the room, or for restricted join rules a member of
 * origin in one of the allowed rooms). No failure is set on r.
 */
int client__space_room_for_server(struct req *r, const char *room_id, const char *origin,
                                  bool suggested_only, json_t **out);

/* ---- account data and room tags (account_data.c) ---- */

/*
 * Reads for /sync. Events are {"type", "content"} objects appended to the
 * caller's JSON array `events`; a range is (since, upto] of
 * STREAM_ACCOUNT_DATA. With since < 0 (initial sync) every current entry
 * up to `upto` is given except deleted ones (empty content); incremental
 * ranges include deletions, so clients learn of them (MSC3391). Each
 * function is one query and returns 0 or a negative ERR_* (no failure is
 * set on r).
 */
int client__account_data_global(struct req *r, const char *user_id, int64_t since, int64_t upto,
                                json_t *events);
/* The room IDs (arena array and strings) whose room account data of the
 * user changed in (since, upto]; *n may be 0. */
int client__account_data_rooms_changed(struct req *r, const char *user_id, int64_t since,
                                       int64_t upto, char ***room_ids, size_t *n);
/* One room's account data events (m.tag included) changed in (since,
 * upto], appended to `events`. For many rooms use client__account_data_rooms. */
int client__account_data_room(struct req *r, const char *user_id, const char *room_id,
                              int64_t since, int64_t upto, json_t *events);
/*
 * The batched form of client__account_data_room for a whole sync: every
 * room's account data events of the user changed in (since, upto], read
 * in one query, as *by_room = {room ID: [events]} (arena-owned; rooms
 * without events are absent; its keys are also the changed rooms).
 */
int client__account_data_rooms(struct req *r, const char *user_id, int64_t since, int64_t upto,
                               json_t **by_room);
/*
 * Writes one entry (room_id NULL = global) with its own stream position,
 * transaction and wake-up of the user's parked syncs; `content` is
 * borrowed. For server-managed types (m.fully_read from POST
 * /read_markers, m.push_rules from the push rule endpoints). Call it
 * outside any transaction. Returns 0 or a negative ERR_* (no failure set
 * on r).
 */
int client__account_data_put(struct req *r, const char *user_id, const char *room_id,
                             const char *type, json_t *content);

/* ---- receipts (receipts.c) ---- */

struct store_receipt;
/* Adds one receipt to an m.receipt content object (spec "Receipts"):
 * {event_id: {type: {user_id: {ts, thread_id?}}}}; other users' private
 * receipts are left out (`viewer` is who reads it). For /sync and the
 * legacy sync endpoints. */
void client__receipt_add(json_t *content, const struct store_receipt *rc, const char *viewer);

/* ---- end-to-end encryption keys (keys.c) ---- */

/*
 * For /sync (spec "Extensions to /sync" of end-to-end encryption): the
 * device's unclaimed one-time key counts, {algorithm: n} with
 * "signed_curve25519" always present (0 when none), for
 * device_one_time_keys_count, and the algorithms of its unused fallback
 * keys, [algorithm...], for device_unused_fallback_key_types. Both are new
 * references the caller owns (json_object_set_new them into the
 * response). A NULL device_id gives {"signed_curve25519": 0} and [].
 * Returns 0 or a negative ERR_* (no failure set on r; nothing to release).
 */
int client__keys_sync_counts(struct req *r, const char *user_id, const char *device_id,
                             json_t **otk_counts, json_t **unused_fallback);

/*
 * The local halves of /keys/query and /keys/claim, shared with the
 * federation endpoints (api/federation/user_keys.c). The checks validate
 * a request map ({user: [device...]} for a query, {user: {device:
 * algorithm}} for a claim): 0, or the M_MISSING_PARAM (NULL map) /
 * M_INVALID_PARAM failure set on r.
 *
 * client__keys_query_local adds, for each user of the map local to this
 * server (others are skipped), device_keys[user] (every local user
 * queried appears, {} when unknown), master_keys[user] and
 * self_signing_keys[user] to `body`, and user_signing_keys[user] when
 * the user is `viewer`; fields missing from body are left out. `viewer`
 * is the local user asking, or NULL for another server: it sees only
 * the signatures users made of their own keys. Returns 0 or a negative
 * ERR_* (no failure set).
 *
 * client__keys_claim_local claims, in a transaction of its own, one key
 * per requested device of the map's local users (a one-time key, handed
 * out once, else the fallback key) into `out`: {user: {device:
 * {"<algorithm>:<key ID>": key}}}. Devices without a key are left out.
 * Returns 0 or a negative ERR_*.
 */
int client__keys_check_query(struct req *r, const json_t *device_keys);
int client__keys_query_local(struct req *r, const json_t *device_keys, const char *viewer,
                             json_t *body);
int client__keys_check_claim(struct req *r, const json_t *one_time_keys);
int client__keys_claim_local(struct req *r, const json_t *one_time_keys, json_t *out);

/* ---- send-to-device messages (to_device.c) ---- */

/*
 * The to-device part of a /sync for `device_id` of `user_id` (spec
 * "Send-to-Device messaging"). With since >= 0 (the since token's
 * to-device part) first deletes the device's messages at or below it:
 * the client acknowledged them by sending that token. Then appends the
 * messages with positions in (since, upto] ({sender, type, content}, in
 * order of arrival; since < 0: an initial sync, from the start, nothing
 * deleted) to `events`, at most 100. *delivered_upto is the position the
 * answer covers, to put in next_batch's to-device part: `upto`, or less
 * when messages were left for the next sync. A NULL device_id gets
 * nothing. Call it outside a transaction. Returns 0 or a negative ERR_*.
 */
int client__to_device_sync(struct req *r, const char *user_id, const char *device_id,
                           int64_t since, int64_t upto, json_t *events, int64_t *delivered_upto);
/*
 * Queues the messages of an m.direct_to_device EDU from server `origin`
 * (Server-Server API "Send-to-device messaging") exactly as PUT
 * /sendToDevice would: {user ID: {device ID or "*": content}} from
 * `sender` with event type `type`, one STREAM_TO_DEVICE position, the
 * recipients' syncs woken. Only local users' existing devices get them;
 * other users are skipped. The shapes must have been checked (objects of
 * objects). `message_id` is recorded in the same transaction, so the same
 * (origin, message_id) is queued once. Call it outside a transaction.
 * Returns 1 when queued, 0 for a message seen before, or a negative ERR_*.
 */
int client__to_device_deliver(struct req *r, const char *origin, const char *message_id,
                              const char *sender, const char *type, const json_t *messages);

/* ---- device-list changes (device_lists.c) ---- */

/*
 * Recording that users' device lists changed (spec "Tracking the device
 * list for a user"): a device was added, renamed or deleted, its identity
 * keys uploaded, or the user's cross-signing keys or signatures changed.
 * Three steps around the caller's own transaction:
 *
 *   int64_t pos = client__device_lists_reserve(r);   before store_begin
 *   rc = client__device_lists_mark(r, pos, user_id); inside it, per user
 *   client__device_lists_publish(r, pos, users, n);  after store_end,
 *                                                     also on failure
 *
 * reserve takes the device-list stream's writer lock (held until publish:
 * keep the transaction short and reserve no other stream inside it);
 * mark stores the change at pos in the caller's transaction, so it
 * commits or rolls back with what changed; publish makes pos visible and
 * wakes the waiting syncs of the users and of everyone sharing a room
 * with them (users may be NULL when n is 0).
 */
int64_t client__device_lists_reserve(struct req *r);
int client__device_lists_mark(struct req *r, int64_t pos, const char *user_id);
void client__device_lists_publish(struct req *r, int64_t pos, const char *const *users, size_t n);
/*
 * mark, and for a user of this server also tell the other servers that
 * share one of the user's joined rooms (Server-Server API "Device
 * Management", "End-to-End Encryption"), queued in the same transaction:
 * _devices sends one m.device_list_update per device ID, with the device
 * as stored at that point of the transaction (display name and keys) or
 * `deleted` when it no longer exists, so call it after the change;
 * _signing sends one m.signing_key_update with the current master and/or
 * self-signing key (false for both: a user-signing change, which other
 * servers never see). A plain mark tells no other server: use these for
 * every change of a local user that others can see. publish wakes the
 * servers' senders. Returns 0 or a negative ERR_* (roll back).
 */
int client__device_lists_mark_devices(struct req *r, int64_t pos, const char *user_id,
                                      const char *const *device_ids, size_t n);
int client__device_lists_mark_signing(struct req *r, int64_t pos, const char *user_id,
                                      bool master, bool self_signing);
/* All three in a transaction of their own, for one device of one user (a
 * new or renamed device: nothing else to commit with it), with
 * mark_devices. Returns 0 or a negative ERR_*. */
int client__device_lists_changed(struct req *r, const char *user_id, const char *device_id);

/*
 * The device_lists part of a /sync or /keys/changes for user_id between
 * two positions: `changed` gets the users (once each, the user included)
 * whose device lists changed in (from.dl, to.dl] and who share a room
 * with user_id now, plus those who began to share a room in
 * (from.events, to.events]; `left` those who stopped sharing any room in
 * that window. Both are arrays the caller owns. Returns 0 or a negative
 * ERR_*.
 */
struct stream_token;
int client__device_lists_between(struct req *r, const char *user_id,
                                 const struct stream_token *from,
                                 const struct stream_token *to, json_t *changed, json_t *left);

/* ---- profiles (profile.c) ---- */

/* The profile of a local, active user as one JSON object (arena-owned);
 * fails the request with M_INVALID_PARAM or M_NOT_FOUND otherwise. */
int client__profile_load(struct req *r, const char *user_id, json_t **out);

/* ---- joining rooms of other servers (remote_join.c) ---- */

/*
 * Joins r->auth.user_id to `room_id`, unknown here, through the servers
 * named by the request's `via` / `server_name` arguments and the room
 * ID's server (make_join, send_join, room_import_join). On success waits
 * for the join to be stored, with r->result = room_id, and then runs
 * done(r) to answer; otherwise fails the request (M_NOT_FOUND without a
 * server to ask, M_FORBIDDEN when refused, 502 when no server worked).
 */
int client__join_remote(struct req *r, const char *room_id, int (*done)(struct req *r));

struct room_version;
/* A make_join / make_leave / make_knock URI for user_id, with every
 * supported room version as `ver` when with_ver (arena). */
const char *client__make_member_uri(struct req *r, const char *kind, const char *room_id,
                                    const char *user_id, bool with_ver);
/* A signed GET or PUT to `server` (blocking, at most timeout_ms): the
 * answer when it is 200 with a JSON object (arena), else NULL with
 * *status the HTTP status (0: no answer). */
json_t *client__fed_ask(struct req *r, const char *server, const char *method, const char *uri,
                        const json_t *body, int timeout_ms, long *status);
/* Completes a resident server's template of user_id's own membership
 * event into our signed PDU (arena) with *event_id; NULL when the template
 * is not such an event or cannot be signed. */
json_t *client__sign_membership(struct req *r, const struct room_version *rv, const json_t *tmpl,
                                const char *user_id, const char *membership,
                                const char **event_id);

/* ---- memberships through other servers (remote_membership.c) ---- */

/* Whether the room is known here only by out-of-band memberships (a
 * remote invite or a knock: no create event in its state). */
bool client__room_outofband(struct req *r, const char *room_id);
/* Servers to reach such a room through: the server of whoever sent
 * r->auth.user_id's membership event and of the senders of its stripped
 * state (arena list; 0 when none). */
size_t client__outofband_servers(struct req *r, const char *room_id, const char ***out);
/*
 * Invites `target`, a user of another server, with `content` (spec:
 * Server-Server API "Inviting to a room"): the event is built and signed
 * here, sent to the target's server (PUT /v2/invite), and only with that
 * server's signature added stored and sent to the room. With `park` the
 * request waits without a thread and answers {} itself once the invite is
 * stored; without, the worker waits and 0 means queued (room_wait_durable).
 */
int client__invite_remote(struct req *r, const char *room_id, const char *target,
                          const json_t *content, bool park);
/* Leaves (rejects the invite to, or rescinds the knock on) a room known
 * here only out of band, through make_leave / send_leave v2 on the room's
 * servers, then stores the leave; answers with done(r) once stored. */
int client__leave_remote(struct req *r, const char *room_id, int (*done)(struct req *r));
/* Knocks on a room this server is not in through the `via` /
 * `server_name` servers (make_knock / send_knock) and stores the knock
 * with the room's stripped state; answers with done(r), r->result the
 * room ID. */
int client__knock_remote(struct req *r, const char *room_id, int (*done)(struct req *r));

/* ---- servers to ask about a room (remote_membership.c) ---- */

/* The most servers one join, leave or knock tries. */
#define CLIENT_MAX_SERVERS 10
/* Adds server `s` to list (at most CLIENT_MAX_SERVERS, no duplicates, not
 * this server, only valid names; copied into the arena). */
void client__add_server(struct req *r, const char **list, size_t *n, const char *s);
/* The servers to ask about a room, in order: the request's `via` /
 * `server_name` arguments, the servers of an out-of-band membership (the
 * inviter's), the room ID's server. `list` holds CLIENT_MAX_SERVERS. */
size_t client__servers_to_ask(struct req *r, const char *room_id, const char **list);

#endif
