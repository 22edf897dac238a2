/*
 * Rooms on this server: the in-memory room cache (current state, forward
 * extremities, state snapshot head) and the one path by which local users'
 * events enter a room. Every event is a full PDU from the start: built from
 * the current state and extremities, hashed, signed, checked by the core's
 * authorization rules, then persisted with its graph edges, state snapshot
 * and current-state changes in one transaction.
 *
 * Ordering: a room's mutex serialises event creation in that room (so
 * prev_events and depth are consistent); the server-wide write lock
 * serialises persistence, so stream orderings become visible in order and
 * a sync token never skips an event committed later with a lower position.
 */
#ifndef MYELIN_SVC_ROOM_H
#define MYELIN_SVC_ROOM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/roomver.h"
#include "http/req.h"

struct rooms;
struct store;
struct store_conn;

/* Creates the room service; rooms_load_sequences must run before use. */
struct rooms *rooms_new(void);
void rooms_free(struct rooms *rs);
/* Reads the highest numeric IDs in use so new ones continue after them. */
int rooms_load_sequences(struct rooms *rs, struct store_conn *db);

/* Starts the event writer thread with its own database connection. */
int rooms_start(struct rooms *rs, struct store *store);
/* Writes everything queued, then stops the writer. */
void rooms_stop(struct rooms *rs);

/* What the writer reports for each committed event. */
struct room_commit {
    const char *room_id;
    const char *event_id;
    const char *type;
    const char *state_key;  /* NULL for non-state events */
    const char *sender;
    const char *membership; /* content.membership of m.room.member, else NULL */
    const char *json;       /* the event as stored (canonical PDU JSON) */
    int64_t stream;
};
typedef void room_commit_fn(void *ctx, const struct room_commit *c);

/*
 * Registers the one listener told about every committed event (sync uses
 * it to wake parked requests). It runs on the writer thread, in stream
 * order, after the commit and before the senders are answered, holding no
 * lock; it must be quick and must not wait for the writer. The strings of
 * struct room_commit are valid during the call only. Set it before
 * rooms_start.
 */
void rooms_set_commit_listener(struct rooms *rs, room_commit_fn *fn, void *ctx);

/* Where events for other servers are queued (in the event's own
 * transaction). Set it before rooms_start; without it nothing is sent. */
struct fedqueue;
void rooms_set_fedqueue(struct rooms *rs, struct fedqueue *q);

/* The newest stream position made visible (events committed so far). */
int64_t rooms_stream_pos(struct rooms *rs);

/* An event a local user wants to add to a room. */
struct room_event_in {
    const char *room_id;
    const char *sender;
    const char *type;
    const char *state_key;  /* NULL for a message-like event */
    const json_t *content;  /* borrowed */
    const char *redacts;    /* m.room.redaction only */
    const char *txn_id;     /* with r->auth.device_id makes the send idempotent; may be NULL */
};

struct room_event_out {
    const char *event_id; /* arena */
};

/*
 * Builds, signs, authorises and persists an event. Returns 0, or a
 * negative ERR_* with the Matrix error set on r: M_FORBIDDEN with the auth
 * rule that rejected it (also for unknown rooms), M_TOO_LARGE for events
 * over 65536 bytes. With a txn_id seen before from the same device, the
 * earlier event ID is returned and nothing is sent.
 */
int room_send(struct req *r, const struct room_event_in *in, struct room_event_out *out);

/*
 * Events are written by the writer thread in batches (group commit). A
 * handler that sent events must not answer before they are durable: it
 * returns room_wait_durable(r, done), which parks the request until the
 * last event it sent is committed and then runs done(r) on a worker to
 * answer (or answers 500 if writing failed). Without pending events, done
 * runs at once.
 */
int room_wait_durable(struct req *r, int (*done)(struct req *r));

/*
 * Creates a room of version `rv` with `creator` and sends its
 * m.room.create event (content from `creation_content`, borrowed, may be
 * NULL; "creator" added for v1-v10, "room_version" always). Returns 0 and
 * the new room ID (arena) or a negative ERR_* with the error set. The ID
 * is never one in use: when it is (v12 IDs are the create event's hash,
 * so one user's identical creates in one millisecond collide), the event
 * is rebuilt a few milliseconds later.
 */
int room_create(struct req *r, const struct room_version *rv, const char *creator,
                const json_t *creation_content, const char **room_id);

/* ---- reading current state (from the cache) ---- */

/*
 * The current state event for (type, key), or NULL: the full PDU with
 * "event_id" added, as a new reference to an object the cache shares with
 * every reader (read only, top level included). -ERR_NOT_FOUND when the
 * room is unknown.
 */
int room_state_event(struct req *r, const char *room_id, const char *type,
                     const char *state_key, json_t **out);

/* The user's current membership ("join", "invite", ...) or NULL; 0 or an
 * error (-ERR_NOT_FOUND for unknown rooms). */
int room_membership(struct req *r, const char *room_id, const char *user_id,
                    const char **membership);

/* Every current state event (a new JSON array of the shared, read-only
 * PDUs with "event_id" that room_state_event gives). */
int room_state_all(struct req *r, const char *room_id, json_t **out);

/*
 * Whole-state reads without copying (GET /state, /members,
 * /joined_members): room_state_walk calls w->visit for every current
 * state event of w->type (NULL: all) that w->want accepts (NULL: all),
 * under the room's lock, with the event's rendering by w->render.
 *
 * A rendering is made once per state event and rendering function, kept
 * in the cache until the event leaves the current state or is redacted,
 * and shared by every later walk, so a big room's state is serialised
 * once rather than on every read. Renderings must therefore depend on the
 * event alone (nothing of the request or the clock); a function must
 * always render the same event the same way. Two renderings are kept per
 * event (a third function evicts one).
 *
 * want and visit run under the room's lock: they must be quick and must
 * not call back into svc/room. render may run under it or not (when many
 * events lack a rendering, as on the first read after the room is loaded,
 * they are rendered with the lock released, so senders are not held up);
 * it must not call into svc/room either. Everything in the view belongs
 * to the cache (or the walk) and is valid during the callback only.
 */
struct room_state_view {
    const char *type;
    const char *state_key;
    const char *event_id;
    const char *membership;  /* content.membership of m.room.member (a string), else NULL */
    const json_t *pdu;       /* the PDU as cached (no "event_id" from v3 on) */
    bool has_ts;             /* origin_server_ts is an integer */
    int64_t origin_server_ts;
};

/* Appends the rendering of one state event to `out` (bytes of the
 * caller's choosing; empty is allowed). */
typedef void room_render_fn(const struct room_state_view *v, struct buf *out);

struct room_walk {
    const char *type;
    bool (*want)(void *ctx, const struct room_state_view *v);
    room_render_fn *render; /* NULL: visit gets an empty rendering */
    void (*visit)(void *ctx, const struct room_state_view *v, struct str rendered);
    void *ctx;
};

/* Walks the current state as above. 0, or -ERR_NOT_FOUND for unknown
 * rooms (or another negative ERR_* when loading the room failed). */
int room_state_walk(struct req *r, const char *room_id, const struct room_walk *w);

/* The user's power level and the room's "redact" level, from the current
 * state. -ERR_NOT_FOUND for unknown rooms. */
int room_power(struct req *r, const char *room_id, const char *user_id, int64_t *user_level,
               int64_t *redact_level);

/* The room's version, or NULL when the room is unknown here. */
const struct room_version *room_version_of(struct req *r, const char *room_id);

/* ---- federation ---- */

/* A new event ID in the v1/v2 format ("$random:ourserver", arena), for
 * room versions whose event IDs are not hashes. */
char *room_v1_event_id(struct req *r);

struct event;

/*
 * An unsigned event template for a user of another server (make_join and
 * friends): prev_events, auth_events and depth from the current state,
 * checked against the room's rules as if sent now. Returns 0 with *out (a
 * new reference), -ERR_NOT_FOUND for an unknown room, or -ERR_FORBIDDEN
 * with *reason when the rules refuse it.
 */
int room_template(struct req *r, const char *room_id, const char *sender, const char *type,
                  const char *state_key, const json_t *content, json_t **out,
                  const char **reason);

/*
 * Accepts an event from another server (checked by svc/fedevent) into a
 * room this server is in: its auth events and previous events must be
 * known here, and it must pass the auth rules against its auth events and
 * against the current state. Then it is queued for writing like a local
 * event (room_wait_durable waits for it); with `relay` it is also sent to
 * the room's other servers except `origin` (a join received through
 * send_join). Returns 0 with *error NULL (accepted, or known already) or
 * a reason it was not; a negative ERR_* for failures of this server.
 */
int room_receive(struct req *r, struct event *ev, const char *origin, bool relay,
                 const char **error);
/* The *error of room_receive when a previous event is unknown here (the
 * caller may fetch the gap and try again). */
extern const char room_missing_prev[];

/* The room's forward extremities (event IDs, arena), for asking another
 * server what lies between them and a newer event. */
int room_extremities(struct req *r, const char *room_id, const char ***out, size_t *n);

/* The room's state before a stored event and the auth chain of that state
 * and the event, as arrays of PDUs (new references), for send_join. */
int room_state_before(struct req *r, const char *event_id, json_t **state, json_t **auth_chain);

/* The servers with joined members in the room, this one first (arena). */
int room_servers(struct req *r, const char *room_id, char ***out, size_t *n);

/*
 * Joins a room through another server (the joining side of send_join):
 * checks every event of `state` and `auth_chain` (signatures, hashes,
 * auth rules against their own auth events, rejected ones kept out of the
 * state), the create event (room version, v12 room ID), and our signed
 * join against that state; then stores the events as outliers, the state
 * as the room's current state, and the join as its first timeline event
 * (room_wait_durable waits for it). A room known here only by out-of-band
 * memberships (room_outofband_store) is replaced: its current state and
 * extremities go, its stored events keep their rows. Returns 0, or a
 * negative ERR_* with *why saying what did not check out.
 */
int room_import_join(struct req *r, const struct room_version *rv, const char *room_id,
                     const json_t *join_pdu, const json_t *state, const json_t *auth_chain,
                     const char *origin, const char **why);

/*
 * Out-of-band memberships (spec: Server-Server API "Inviting to a room",
 * "Knocking upon a room", "Leaving Rooms"): a local user's membership
 * event in a room this server is not in (an invite received over
 * federation, or a knock or leave this server sent through another
 * server). It is stored with a stream position and as the room's current
 * state (the room and its version are recorded when first seen), so
 * /sync shows it; `pdu` may carry the stripped state for clients in its
 * `unsigned` (invite_room_state, knock_room_state). Such a room has no
 * create event here; joining it replaces it (room_import_join). Returns 0
 * (queued, or stored already: room_wait_durable waits for it),
 * -ERR_CONFLICT with *why when the room is known here with real state or
 * another version, -ERR_BAD_JSON for an event that is not a membership.
 */
int room_outofband_store(struct req *r, const struct room_version *rv, json_t *pdu,
                         const char **why);

/* The room's current create, join rules, name, avatar, canonical alias,
 * encryption and topic events as full PDUs (a new array of copies), for
 * invite_room_state and knock_room_state. */
int room_stripped_pdus(struct req *r, const char *room_id, json_t **out);

/* Stripped state for clients (spec "Stripped state"): type, state_key,
 * sender and content of each entry of `list` (PDUs or stripped events;
 * entries without them are left out). A new array. */
json_t *room_strip_state(const json_t *list);

#endif
