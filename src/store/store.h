/*
 * The only door to the database. One function per query, typed arguments,
 * results copied into the caller's arena. SQL lives only in src/store;
 * store.c holds the queries written once, and the engine files (sqlite.c,
 * pg.c) handle placeholders, upserts, transactions and busy retries.
 *
 * Threading: a `struct store` is shared by the whole process; each thread
 * that touches the database holds its own `struct store_conn` from
 * store_conn_open and uses it from that thread only.
 */
#ifndef MYELIN_STORE_STORE_H
#define MYELIN_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/arena.h"
#include "config.h"

struct store;
struct store_conn;

/*
 * Opens the database described by `cfg`, creating it if needed, and applies
 * every pending numbered migration, each inside its own transaction. A
 * SQLite path of ":memory:" gives an in-memory database private to this
 * store and shared by all its connections; it is gone after store_close. A database whose
 * schema is newer than this binary knows is refused with ERR_SCHEMA_TOO_NEW
 * (and a log line saying which versions). Returns 0 or a negative ERR_*.
 */
int store_open(const struct config_db *cfg, struct store **out);
/* Closes the store; every store_conn must have been closed first. */
void store_close(struct store *s);

/* Opens a connection for the calling thread. Returns 0 or a negative ERR_*. */
int store_conn_open(struct store *s, struct store_conn **out);
void store_conn_close(struct store_conn *c);
/*
 * Lets this connection's commits skip waiting for the disk (SQLite
 * synchronous=NORMAL in WAL mode, PostgreSQL synchronous_commit=off): a
 * crash or power loss may drop its last commits, never corrupt them. Only
 * for data that can be lost or rebuilt, such as push actions (derived
 * from events) and presence; never for events or accounts.
 */
int store_conn_set_relaxed(struct store_conn *c);

/*
 * Transactions. Nested begin is an error (assert). store_begin starts a
 * write transaction (SQLite: BEGIN IMMEDIATE, waiting while another
 * writer holds the lock), so a transaction that reads and then writes never
 * fails half-way for want of the write lock. A failed store_commit has
 * rolled the transaction back. store_rollback outside a transaction does
 * nothing and returns 0, so error paths may call it unconditionally. On
 * PostgreSQL a failed statement aborts the whole transaction: roll back.
 * store_end(c, rc) ends a transaction by the outcome of its work: it
 * commits when rc is 0 and returns the commit's result, otherwise it rolls
 * back and returns rc.
 */
int store_begin(struct store_conn *c);
int store_commit(struct store_conn *c);
int store_rollback(struct store_conn *c);
int store_end(struct store_conn *c, int rc);
/* The database's message for the last failed statement since store_begin
 * (a unique violation too), "" if none: for logs that say why. */
const char *store_conn_error(const struct store_conn *c);

/* "sqlite" or "postgres". */
const char *store_engine_name(const struct store *s);
/* The highest schema version this binary knows. */
int store_schema_latest(void);

/* ---- queries ---- */

/* Cheap liveness probe (SELECT 1). */
int store_ping(struct store_conn *c);

/* The schema version recorded in the database. */
int store_schema_version(struct store_conn *c, int *version);

/*
 * Creates a local account. `password_hash` is an argon2id string from
 * libsodium's crypto_pwhash_str (never the password). Returns 0,
 * -ERR_USER_IN_USE when user_id already exists, or another negative ERR_*.
 */
int store_user_create(struct store_conn *c, const char *user_id, const char *password_hash,
                      bool is_admin, bool is_guest, int64_t created_ts);

struct store_user {
    char *user_id;
    char *password_hash; /* NULL when the account has no password */
    bool is_admin;
    bool is_guest;
    bool deactivated;
    int64_t created_ts;
};

/*
 * Looks up a local account. Returns 0 and fills *out (strings in `arena`),
 * -ERR_NOT_FOUND when there is no such user, or another negative ERR_*.
 */
int store_user_get(struct store_conn *c, struct arena *arena, const char *user_id,
                   struct store_user *out);

/* ---- accounts (accounts.c) ---- */

/* Sets a new password hash (argon2id string). -ERR_NOT_FOUND if no user. */
int store_user_set_password(struct store_conn *c, const char *user_id, const char *password_hash);

/*
 * Deactivates an account: marks it, removes its password, devices, access
 * and refresh tokens, key backups, and (with `erase`) its profile. Run it in a
 * transaction. -ERR_NOT_FOUND if no user.
 */
int store_user_deactivate(struct store_conn *c, const char *user_id, bool erase);

struct store_device {
    char *device_id;
    char *display_name; /* NULL when unset */
    int64_t created_ts;
    int64_t last_seen_ts; /* 0 when never seen */
    char *last_seen_ip;   /* NULL when never seen */
};

/*
 * Creates the device if it does not exist (an existing device keeps its
 * display name). Returns 0 or a negative ERR_*.
 */
int store_device_ensure(struct store_conn *c, const char *user_id, const char *device_id,
                        const char *display_name, int64_t ts);
/* -ERR_NOT_FOUND when the user has no such device. */
int store_device_get(struct store_conn *c, struct arena *arena, const char *user_id,
                     const char *device_id, struct store_device *out);
/* All devices of a user, oldest first; *out is an arena array. */
int store_device_list(struct store_conn *c, struct arena *arena, const char *user_id,
                      struct store_device **out, size_t *n);
/* Sets or (NULL) clears the display name. -ERR_NOT_FOUND if no device. */
int store_device_set_name(struct store_conn *c, const char *user_id, const char *device_id,
                          const char *display_name);
/* Records a use of the device. */
int store_device_touch(struct store_conn *c, const char *user_id, const char *device_id,
                       int64_t ts, const char *ip);
/*
 * Deletes a device with its access and refresh tokens. Run it in a
 * transaction. -ERR_NOT_FOUND if there was no such device.
 */
int store_device_delete(struct store_conn *c, const char *user_id, const char *device_id);

struct store_token {
    char *user_id;
    char *device_id;
    int64_t expires_ts; /* 0: does not expire */
    bool is_guest;
    bool is_admin;
    bool deactivated;
};

/* Stores an access token by its hash (hex SHA-256). expires_ts 0 = never;
 * refresh_hash names the refresh token issued with it, or NULL. */
int store_token_add(struct store_conn *c, const char *token_hash, const char *user_id,
                    const char *device_id, int64_t created_ts, int64_t expires_ts,
                    const char *refresh_hash);
/* Looks up an access token hash with its account flags. -ERR_NOT_FOUND if unknown. */
int store_token_lookup(struct store_conn *c, struct arena *arena, const char *token_hash,
                       struct store_token *out);
/* Deletes one access token. -ERR_NOT_FOUND if unknown. */
int store_token_delete(struct store_conn *c, const char *token_hash);
/*
 * Deletes every device (with its tokens) of a user except `keep_device`
 * (NULL: all). Run it in a transaction.
 */
int store_devices_delete_all(struct store_conn *c, const char *user_id, const char *keep_device);

/* Stores a refresh token by its hash. */
int store_refresh_add(struct store_conn *c, const char *token_hash, const char *user_id,
                      const char *device_id, int64_t created_ts);
/*
 * Consumes a refresh token: deletes it and the access tokens issued with
 * it, and returns its user and device (arena strings). Run it in a
 * transaction. -ERR_NOT_FOUND if unknown (already used or revoked).
 */
int store_refresh_take(struct store_conn *c, struct arena *arena, const char *token_hash,
                       char **user_id, char **device_id);

struct store_profile {
    char *displayname; /* NULL when unset */
    char *avatar_url;  /* NULL when unset */
    char *fields;      /* JSON object text of custom fields, "{}" when none */
};

/* -ERR_NOT_FOUND when the user has no profile row. */
int store_profile_get(struct store_conn *c, struct arena *arena, const char *user_id,
                      struct store_profile *out);
/* Writes the whole profile row (insert or replace). */
int store_profile_set(struct store_conn *c, const char *user_id, const struct store_profile *p);

struct store_regtoken {
    char *token;
    int64_t uses_allowed; /* -1: unlimited */
    int64_t pending;
    int64_t completed;
    int64_t expiry_time;  /* 0: never */
};

/* Creates a registration token: -ERR_CONFLICT when it exists already.
 * uses_allowed -1 = unlimited, expiry_time 0 = never. */
int store_regtoken_create(struct store_conn *c, const char *token, int64_t uses_allowed,
                          int64_t expiry_time);
int store_regtoken_get(struct store_conn *c, struct arena *arena, const char *token,
                       struct store_regtoken *out);
int store_regtoken_list(struct store_conn *c, struct arena *arena, struct store_regtoken **out,
                        size_t *n);
int store_regtoken_delete(struct store_conn *c, const char *token);
/*
 * Changes a registration token's allowed uses (when set_uses; -1 =
 * unlimited) and expiry (when set_expiry; 0 = never). -ERR_NOT_FOUND when
 * there is no such token.
 */
int store_regtoken_update(struct store_conn *c, const char *token, bool set_uses,
                          int64_t uses_allowed, bool set_expiry, int64_t expiry_time);
/*
 * Reserves one use of a token for a registration in progress (pending+1)
 * if it exists, has not expired at `now` and has uses left. Returns 0, or
 * -ERR_NOT_FOUND when the token cannot be used.
 */
int store_regtoken_reserve(struct store_conn *c, const char *token, int64_t now);
/* Moves a reservation to completed (done = true) or releases it. */
int store_regtoken_finish(struct store_conn *c, const char *token, bool done);

/* ---- rooms and events (rooms.c) ---- */

/* The largest numeric IDs in use, so the server can continue the
 * sequences it assigns under its event write lock. */
struct store_nid_max {
    int64_t room;
    int64_t event;
    int64_t snapshot;
    int64_t stream;
    int64_t type;
    int64_t state_key;
};
int store_nids_max(struct store_conn *c, struct store_nid_max *out);

enum store_intern {
    STORE_INTERN_TYPE,      /* event_types */
    STORE_INTERN_STATE_KEY, /* state_keys */
};
/* The nid of an interned string: 0 and *nid, or -ERR_NOT_FOUND. */
int store_intern_get(struct store_conn *c, enum store_intern kind, const char *s, int64_t *nid);
int store_intern_add(struct store_conn *c, enum store_intern kind, int64_t nid, const char *s);

struct store_room {
    int64_t nid;
    char *room_id;
    char *room_version;
    int64_t created_ts;
    bool published;
};
int store_room_insert(struct store_conn *c, const struct store_room *room);
/* -ERR_NOT_FOUND when the room is unknown. */
int store_room_get(struct store_conn *c, struct arena *arena, const char *room_id,
                   struct store_room *out);
int store_room_set_published(struct store_conn *c, int64_t room_nid, bool published);
/* The room's current state snapshot (0 when none yet). */
int store_room_head_get(struct store_conn *c, int64_t room_nid, int64_t *snapshot_nid);
int store_room_head_set(struct store_conn *c, int64_t room_nid, int64_t snapshot_nid);

struct store_event_row {
    int64_t nid;
    const char *event_id;
    int64_t room_nid;
    int64_t type_nid;
    int64_t state_key_nid; /* 0: not a state event */
    const char *sender;
    int64_t depth;
    int64_t origin_server_ts;
    int64_t stream_ordering;
    int64_t state_before_nid; /* 0: none */
    bool rejected;
    const char *json;         /* canonical PDU */
};
int store_event_insert(struct store_conn *c, const struct store_event_row *ev);
int store_event_edges_add(struct store_conn *c, int64_t event_nid, const int64_t *prev,
                          size_t n_prev, const int64_t *auth, size_t n_auth);
/* Removes `remove` from the room's forward extremities and adds `add`. */
int store_extremities_replace(struct store_conn *c, int64_t room_nid, const int64_t *remove,
                              size_t n_remove, int64_t add);

struct store_layer_entry {
    int64_t type_nid;
    int64_t state_key_nid;
    int64_t event_nid; /* 0: the key is removed */
};
int store_snapshot_insert(struct store_conn *c, int64_t snapshot_nid, int64_t room_nid,
                          int64_t parent_nid, int64_t state_size,
                          const struct store_layer_entry *entries, size_t n);
/* A snapshot's own layer and links. -ERR_NOT_FOUND when unknown. */
int store_snapshot_get(struct store_conn *c, struct arena *arena, int64_t snapshot_nid,
                       int64_t *parent_nid, int64_t *state_size,
                       struct store_layer_entry **entries, size_t *n);

/* Sets one current-state slot (membership for m.room.member, else NULL). */
int store_current_state_put(struct store_conn *c, int64_t room_nid, int64_t type_nid,
                            int64_t state_key_nid, int64_t event_nid, const char *membership);

struct store_state_row {
    char *type;
    char *state_key;
    int64_t type_nid;
    int64_t state_key_nid;
    int64_t event_nid;
    char *event_id;
    char *json;
};
/* The whole current state of a room with each event's JSON. */
int store_current_state_load(struct store_conn *c, struct arena *arena, int64_t room_nid,
                             struct store_state_row **rows, size_t *n);

struct store_ext_row {
    int64_t event_nid;
    char *event_id;
    int64_t depth;
};
int store_extremities_load(struct store_conn *c, struct arena *arena, int64_t room_nid,
                           struct store_ext_row **rows, size_t *n);

struct store_event {
    int64_t nid;
    char *event_id;
    int64_t room_nid;
    int64_t stream_ordering;
    int64_t depth;
    int64_t state_before_nid;
    bool rejected;
    char *redacted_by; /* NULL unless redacted */
    char *json;
};
/* -ERR_NOT_FOUND when the event is unknown. */
int store_event_get(struct store_conn *c, struct arena *arena, const char *event_id,
                    struct store_event *out);
/*
 * Up to `limit` events of a room in stream order, strictly after `from`
 * (forwards) or strictly before it (backwards, newest first), skipping
 * rejected ones.
 */
int store_room_events(struct store_conn *c, struct arena *arena, int64_t room_nid, int64_t from,
                      bool backwards, int limit, struct store_event **out, size_t *n);

/*
 * State at a past snapshot (history visibility, state of former members).
 * store_snapshot_lookup: the event holding (type_nid, state_key_nid) in
 * snapshot `snapshot_nid` (its chain read nearest layer first), in *out;
 * out->nid is 0 when the key is absent or removed (also for snapshot 0).
 * store_snapshot_state: the whole state of the snapshot, one row per key,
 * removed keys left out; *n may be 0. Both return 0 or a negative ERR_*.
 */
int store_snapshot_lookup(struct store_conn *c, struct arena *arena, int64_t snapshot_nid,
                          int64_t type_nid, int64_t state_key_nid, struct store_event *out);
int store_snapshot_state(struct store_conn *c, struct arena *arena, int64_t snapshot_nid,
                         struct store_state_row **rows, size_t *n);
/* The room's last non-rejected event with stream ordering <= pos, or
 * -ERR_NOT_FOUND. */
int store_event_at_stream(struct store_conn *c, struct arena *arena, int64_t room_nid,
                          int64_t pos, struct store_event *out);

/* Replaces an event's stored JSON by its redacted form and records the
 * redaction. -ERR_NOT_FOUND when the event is unknown. */
int store_event_set_redacted(struct store_conn *c, const char *event_id, const char *json,
                             const char *redacted_by);

/* Records that event `event_nid` relates to `relates_to` (m.relates_to). */
int store_relation_add(struct store_conn *c, int64_t event_nid, int64_t room_nid,
                       const char *relates_to, const char *rel_type, const char *event_type,
                       const char *sender, const char *key);

/* Transaction IDs of PUT /send and friends: -ERR_NOT_FOUND when unused. */
int store_txn_get(struct store_conn *c, struct arena *arena, const char *user_id,
                  const char *device_id, const char *txn_id, char **event_id);
int store_txn_put(struct store_conn *c, const char *user_id, const char *device_id,
                  const char *txn_id, const char *event_id, int64_t ts);

/* Room aliases: -ERR_CONFLICT when the alias exists. */
int store_alias_add(struct store_conn *c, const char *alias, const char *room_id,
                    const char *creator);
/* -ERR_NOT_FOUND when unknown; *room_id and *creator in the arena. */
int store_alias_get(struct store_conn *c, struct arena *arena, const char *alias, char **room_id,
                    char **creator);
int store_alias_delete(struct store_conn *c, const char *alias);
int store_aliases_of_room(struct store_conn *c, struct arena *arena, const char *room_id,
                          char ***aliases, size_t *n);

/* Room IDs where `user_id`'s current membership is `membership`. */
int store_user_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                     const char *membership, char ***room_ids, size_t *n);

/* ---- the published room directory (directory.c) ---- */

struct store_published_room {
    char *room_id;
    int64_t joined; /* members whose current membership is "join" */
};
/*
 * Every room with rooms.published set, with its joined member count, the
 * largest first and then by room ID, so the order is stable for paging.
 * The array and strings are in the arena; *n may be 0.
 */
int store_published_rooms(struct store_conn *c, struct arena *arena,
                          struct store_published_room **out, size_t *n);

/* ---- context, timestamps, forgotten rooms (room_extras.c) ---- */

/*
 * The event of a room closest to `ts` (milliseconds): with `forwards` the
 * first whose origin_server_ts is >= ts, else the last whose
 * origin_server_ts is <= ts; ties go to the lower (forwards) or higher
 * (backwards) stream ordering. Only timeline events that were not
 * rejected count. 0 with *event_id (arena) and *event_ts, or
 * -ERR_NOT_FOUND.
 */
int store_event_at_ts(struct store_conn *c, struct arena *arena, int64_t room_nid, int64_t ts,
                      bool forwards, char **event_id, int64_t *event_ts);

/*
 * Records that `user_id` forgot the room: the row names the user's current
 * m.room.member event, so the forget lasts until the membership changes
 * (a new invite or join ends it). Forgetting again replaces the row; with
 * no membership in the room nothing is written. 0 or a negative ERR_*.
 */
int store_room_forget(struct store_conn *c, const char *user_id, int64_t room_nid, int64_t now);

/* Room IDs the user has forgotten and whose membership has not changed
 * since (rooms that must not appear for the user, e.g. in /sync). */
int store_user_forgotten_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                               char ***room_ids, size_t *n);

/* ---- content reports and room summaries (reports.c) ---- */

/* A report of an event, a room or a user (spec "Reporting content"). */
struct store_report {
    int64_t id;                 /* assigned by store_report_add */
    const char *kind;           /* "event", "room" or "user" */
    int64_t received_ts;
    const char *reporter;       /* the reporting user */
    const char *room_id;        /* events and rooms, else NULL */
    const char *event_id;       /* events, else NULL */
    const char *target_user_id; /* users, else NULL */
    const char *reason;         /* may be NULL */
    bool has_score;             /* the legacy "score" of event reports */
    int64_t score;
};
/* Records a report (its id is assigned here). 0 or a negative ERR_*. */
int store_report_add(struct store_conn *c, const struct store_report *rep);
/*
 * One page of the reports of `kind`: up to `limit` rows after skipping
 * `offset`, newest first or oldest first, and the number of such reports
 * in *total. Rows and strings are in the arena; *n may be 0.
 */
int store_reports_list(struct store_conn *c, struct arena *arena, const char *kind,
                       int64_t offset, int limit, bool newest_first, struct store_report **out,
                       size_t *n, int64_t *total);

/* The number of members whose current membership of the room is "join". */
int store_room_joined_count(struct store_conn *c, int64_t room_nid, int64_t *count);

/* ---- relations, threads, bundled aggregations (relations.c) ---- */

/* The parameters of store_relations_page. */
struct store_relations_query {
    const char *parent_id;  /* the parent event's ID */
    int64_t room_nid;       /* the parent's room; children elsewhere do not count */
    const char *rel_type;   /* NULL: any */
    const char *event_type; /* NULL: any */
    int max_depth;          /* 1: direct children only; more follows children of children */
    int64_t from;           /* stream ordering bound, exclusive */
    bool backwards;         /* newest first, before `from`; else oldest first, after it */
    int limit;
};
/*
 * Up to q->limit children of q->parent_id in stream order: events whose
 * m.relates_to names it (and with max_depth > 1 events relating to those,
 * level by level), filtered by rel_type and event_type at every level,
 * neither rejected nor redacted (a redacted child has lost its relation).
 * *out is an arena array; *n may be 0. Returns 0 or a negative ERR_*.
 */
int store_relations_page(struct store_conn *c, struct arena *arena,
                         const struct store_relations_query *q, struct store_event **out,
                         size_t *n);

struct store_relation_child {
    char *parent_id;
    char *rel_type; /* "m.replace" or "m.reference" */
    char *event_id;
    char *sender;
    char *event_type;
    int64_t origin_server_ts;
    char *json; /* the child's PDU for m.replace, else NULL */
};
/*
 * The m.replace and m.reference children of the listed parents that are
 * in their parent's room and neither rejected nor redacted, in stream
 * order, for bundled aggregations. Any number of parents, read in a few
 * statements. Arena array; *n may be 0. Returns 0 or a negative ERR_*.
 */
int store_relation_children(struct store_conn *c, struct arena *arena,
                            const char *const *parents, size_t n_parents,
                            struct store_relation_child **out, size_t *n);

struct store_thread {
    char *root_id;
    int64_t count;         /* m.thread children, neither rejected nor redacted */
    bool participated;     /* `user_id` sent one of them */
    int64_t latest_stream; /* stream ordering of the latest of them */
    struct store_event latest;
};
/*
 * Thread summaries of the listed events: one entry per event that has
 * m.thread children (in its room, neither rejected nor redacted), with
 * the latest child read whole. Arena array, in no particular order; *n
 * may be 0. Returns 0 or a negative ERR_*.
 */
int store_thread_summaries(struct store_conn *c, struct arena *arena, const char *user_id,
                           const char *const *roots, size_t n_roots, struct store_thread **out,
                           size_t *n);

struct store_thread_root {
    struct store_event root;
    int64_t latest_stream; /* stream ordering of the thread's latest event */
};
/*
 * Up to `limit` thread roots of a room whose latest m.thread child has a
 * stream ordering below `before`, the most recently active first. With
 * `participant` set, only threads that user started or replied in. Arena
 * array; *n may be 0. Returns 0 or a negative ERR_*.
 */
int store_threads_list(struct store_conn *c, struct arena *arena, int64_t room_nid,
                       const char *participant, int64_t before, int limit,
                       struct store_thread_root **out, size_t *n);
/* The writer's upkeep of the threads table (schema 011), inside its
 * transaction: a threaded reply at `stream` was stored; event `event_nid`
 * was redacted (its thread, if it was a reply, recomputed from the live
 * replies). Both return 0 or a negative ERR_*. */
int store_thread_touch(struct store_conn *c, int64_t room_nid, const char *root_id,
                       int64_t stream);
int store_thread_child_redacted(struct store_conn *c, struct arena *arena, int64_t event_nid);
/* Send-side relation checks: 0 when `sender` has a live m.annotation of
 * `parent_id` with this event type and key / when some relation in the
 * room targets `event_id`; -ERR_NOT_FOUND when not; or a negative ERR_*. */
int store_annotation_exists(struct store_conn *c, const char *parent_id, const char *event_type,
                            const char *sender, const char *key);
int store_relation_target_known(struct store_conn *c, const char *event_id, int64_t room_nid);

/* ---- sync and filters (sync.c) ---- */

struct store_sync_membership {
    char *room_id;
    int64_t room_nid;
    char *membership;        /* "join", "invite", "leave", "ban", "knock" */
    int64_t stream_ordering; /* of the membership event (0 if it has none) */
    char *event_id;          /* the membership event */
};
/*
 * Every room where `user_id` has a current m.room.member event, with that
 * event and its stream position, ordered by room. Arrays and strings are
 * in the arena; *n may be 0.
 */
int store_sync_memberships(struct store_conn *c, struct arena *arena, const char *user_id,
                           struct store_sync_membership **out, size_t *n);
/* The distinct rooms (nids, in no particular order) with a non-rejected
 * event whose stream position is in (after, upto]. */
int store_sync_changed_rooms(struct store_conn *c, struct arena *arena, int64_t after,
                             int64_t upto, int64_t **room_nids, size_t *n);
/* The non-rejected state events of a room whose stream position is in
 * (after, before), oldest first. */
int store_sync_state_between(struct store_conn *c, struct arena *arena, int64_t room_nid,
                             int64_t after, int64_t before, struct store_event **out, size_t *n);

/*
 * The transaction key ("room/type/txnId", as room_send stores it) under
 * which `device_id` of `user_id` sent `event_id` (arena), or
 * -ERR_NOT_FOUND.
 */
int store_sync_txn_of(struct store_conn *c, struct arena *arena, const char *event_id,
                      const char *user_id, const char *device_id, char **txn_key);

/*
 * Stores a filter (JSON text, compact with sorted keys) for a user and
 * returns its ID: the ID it already has when the same text was stored
 * before, else the next free number of the user. Run it in a transaction;
 * -ERR_CONFLICT when a concurrent upload took the number (retry).
 */
int store_filter_put(struct store_conn *c, const char *user_id, const char *json,
                     int64_t *filter_id);
/* A stored filter's JSON text (arena), or -ERR_NOT_FOUND. */
int store_filter_get(struct store_conn *c, struct arena *arena, const char *user_id,
                     int64_t filter_id, char **json);

/* ---- stream positions and receipts (streams.c) ---- */

/*
 * Reads the last stored position of each persistent stream into
 * pos[0..n) (entries without a row are left alone).
 */
int store_stream_positions(struct store_conn *c, int64_t *pos, size_t n);
/* Records `pos` as stream `stream`'s last position (in the caller's
 * transaction, with the rows that carry it). */
int store_stream_bump(struct store_conn *c, int stream, int64_t pos);

struct store_receipt {
    char *room_id;
    char *type;      /* m.read, m.read.private */
    char *user_id;
    char *thread_id; /* "" for an unthreaded receipt */
    char *event_id;
    int64_t event_stream;
    int64_t ts;
    int64_t stream_pos;
};
/*
 * Stores a receipt unless the same user already has one of that type and
 * thread in the room on a later event. Returns 1 when stored, 0 when the
 * stored one is newer (nothing changed), or a negative ERR_*.
 */
int store_receipt_put(struct store_conn *c, const struct store_receipt *rc);
/* Receipts changed in (after, upto], in stream order (arena). */
int store_receipts_between(struct store_conn *c, struct arena *arena, int64_t after,
                           int64_t upto, struct store_receipt **out, size_t *n);
/* A user's receipts in one room (arena). */
int store_receipts_user_room(struct store_conn *c, struct arena *arena, const char *user_id,
                             const char *room_id, struct store_receipt **out, size_t *n);
/* Every receipt of a room with stream_pos <= upto (arena). */
int store_receipts_of_room(struct store_conn *c, struct arena *arena, const char *room_id,
                           int64_t upto, struct store_receipt **out, size_t *n);
/*
 * The stream ordering of the newest event a user has read in a room
 * (m.read or m.read.private, unthreaded or on the main timeline when
 * `thread_id` is NULL, else in that thread or unthreaded); 0 when none.
 */
int store_receipt_read_upto(struct store_conn *c, const char *user_id, const char *room_id,
                            const char *thread_id, int64_t *event_stream);

/* ---- account data and room tags (account_data.c) ---- */

struct store_account_data {
    char *room_id; /* "" for global account data */
    char *type;
    char *content; /* JSON object text; "{}" means deleted */
    int64_t stream_pos;
};
/* Stores one entry (room_id "" for global), replacing the old content,
 * tagged with STREAM_ACCOUNT_DATA position `stream_pos`. */
int store_account_data_put(struct store_conn *c, const char *user_id, const char *room_id,
                           const char *type, const char *content, int64_t stream_pos);
/* One entry's content text (arena), or -ERR_NOT_FOUND. */
int store_account_data_get(struct store_conn *c, struct arena *arena, const char *user_id,
                           const char *room_id, const char *type, char **content);
/*
 * The user's entries with stream_pos in (after, upto] (after < 0: every
 * entry up to `upto`), ordered by room and type: room_id "" selects the
 * global entries, a room ID that room's, NULL the entries of every room
 * (not the global ones). Arena array; *n may be 0.
 */
int store_account_data_between(struct store_conn *c, struct arena *arena, const char *user_id,
                               const char *room_id, int64_t after, int64_t upto,
                               struct store_account_data **out, size_t *n);
/* The distinct rooms (arena strings) with an entry of the user changed in
 * (after, upto]. */
int store_account_data_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                             int64_t after, int64_t upto, char ***room_ids, size_t *n);

/* ---- presence (presence.c) ---- */

struct store_presence {
    char *user_id;
    char *state;      /* "online", "unavailable", "offline" */
    char *status_msg; /* NULL when none */
    int64_t last_active_ts;
    int64_t stream_pos; /* STREAM_PRESENCE position of the change */
};
/* Every stored presence row, oldest change first (arena); *n may be 0. */
int store_presence_all(struct store_conn *c, struct arena *arena, struct store_presence **out,
                       size_t *n);
/* Inserts or replaces the row of p->user_id. */
int store_presence_put(struct store_conn *c, const struct store_presence *p);
/* The distinct users joined to any room `user_id` is joined to, that
 * user included when joined anywhere (arena strings); *n may be 0. */
int store_presence_co_members(struct store_conn *c, struct arena *arena, const char *user_id,
                              char ***user_ids, size_t *n);
/* *out = whether users a and b are both joined to some room. */
int store_presence_share_room(struct store_conn *c, const char *a, const char *b, bool *out);

/* ---- push rules and push actions (push.c) ---- */

/* One of a user's own push rules (not a server-default one). */
struct store_push_rule {
    const char *kind;       /* "override", "content", "room", "sender", "underride" */
    const char *rule_id;
    const char *conditions; /* JSON array text (override/underride), or NULL */
    const char *pattern;    /* content rules, else NULL */
    const char *actions;    /* JSON array text */
    bool enabled;
};
/* The user's own rules, grouped by kind, each kind most important first
 * (arena); *n may be 0. */
int store_push_rules_list(struct store_conn *c, struct arena *arena, const char *user_id,
                          struct store_push_rule **out, size_t *n);
/* Creates a rule (enabled, position 0) or replaces an existing rule's
 * conditions, pattern and actions (keeping its enabled flag and place). */
int store_push_rule_put(struct store_conn *c, const char *user_id,
                        const struct store_push_rule *rule);
/* Gives rule_ids[i] of the kind position i (run it in a transaction). */
int store_push_rules_order(struct store_conn *c, const char *user_id, const char *kind,
                           const char *const *rule_ids, size_t n);
/* These three return -ERR_NOT_FOUND when the user has no such rule. */
int store_push_rule_delete(struct store_conn *c, const char *user_id, const char *kind,
                           const char *rule_id);
int store_push_rule_set_enabled(struct store_conn *c, const char *user_id, const char *kind,
                                const char *rule_id, bool enabled);
int store_push_rule_set_actions(struct store_conn *c, const char *user_id, const char *kind,
                                const char *rule_id, const char *actions);

/* A user's edit of a server-default rule. */
struct store_push_default {
    char *rule_id;
    int enabled;   /* 0, 1, or -1 when unchanged */
    char *actions; /* JSON array text, or NULL when unchanged */
};
int store_push_defaults_list(struct store_conn *c, struct arena *arena, const char *user_id,
                             struct store_push_default **out, size_t *n);
/* Records an edit of a default rule: `enabled` 0/1 (-1 keeps), `actions`
 * JSON text (NULL keeps). */
int store_push_default_set(struct store_conn *c, const char *user_id, const char *rule_id,
                           int enabled, const char *actions);

/* A push action: the event at `stream_ordering` notifies `user_id`. */
struct store_push_action {
    const char *user_id;
    int64_t room_nid;
    int64_t stream_ordering;
    bool notify;
    bool highlight;
    const char *thread_id; /* the thread root, or NULL for the main timeline */
};
/* Stores push actions (a repeated (user, room, stream) is ignored). */
int store_push_actions_add(struct store_conn *c, const struct store_push_action *rows, size_t n);
/* Forgets the push actions of a redacted event. */
int store_push_actions_remove_event(struct store_conn *c, const char *event_id);

struct store_push_counts {
    int64_t notify;    /* notification_count */
    int64_t highlight; /* highlight_count */
};
struct store_push_thread_counts {
    char *thread_id; /* the thread root's event ID; NULL: the main timeline */
    struct store_push_counts counts;
};
/*
 * Unread counts of `user_id` in `room_id` from the push actions of events
 * with a stream ordering above `after` (the user's read receipt position):
 * the room's totals in *total and, when `threads` is not NULL, the same
 * split per thread (main timeline under thread_id NULL; arena array,
 * *n_threads may be 0). Push actions are written by the push thread just
 * after each event commits: push_stream_pos (svc/push.h) says how far.
 */
int store_push_unread_counts(struct store_conn *c, struct arena *arena, const char *user_id,
                             const char *room_id, int64_t after, struct store_push_counts *total,
                             struct store_push_thread_counts **threads, size_t *n_threads);
/* The rooms (room IDs, arena) where `user_id` got push actions for events
 * with a stream ordering in (after, upto]: their unread counts changed. */
int store_push_rooms_changed(struct store_conn *c, struct arena *arena, const char *user_id,
                             int64_t after, int64_t upto, char ***room_ids, size_t *n);
/* The counts of one thread (`thread_id` NULL: the main timeline) after
 * `after`, for threaded read receipts. */
int store_push_unread_thread(struct store_conn *c, const char *user_id, const char *room_id,
                             const char *thread_id, int64_t after, struct store_push_counts *out);

/* Reads for the push thread: the joined members of a room with the stream
 * ordering of their membership event; one current state event's ID and
 * JSON (-ERR_NOT_FOUND); an event's m.relates_to (rel_type, parent ID) from
 * event_relations (-ERR_NOT_FOUND when it has none). */
struct store_push_member {
    char *user_id;
    int64_t stream_ordering;
};
int store_push_room_members(struct store_conn *c, struct arena *arena, int64_t room_nid,
                            struct store_push_member **out, size_t *n);
int store_push_state_json(struct store_conn *c, struct arena *arena, int64_t room_nid,
                          const char *type, const char *state_key, char **event_id, char **json);
int store_push_relation_parent(struct store_conn *c, struct arena *arena, const char *event_id,
                               char **rel_type, char **relates_to);

/* ---- end-to-end encryption keys (keys.c, schema 013_keys) ---- */

/* Stores (or replaces) a device's identity keys: `key_json` is the
 * DeviceKeys object as uploaded, without `unsigned`. */
int store_keys_device_put(struct store_conn *c, const char *user_id, const char *device_id,
                          const char *key_json, int64_t ts);
/* A device's stored DeviceKeys JSON (arena), or -ERR_NOT_FOUND. */
int store_keys_device_get(struct store_conn *c, struct arena *arena, const char *user_id,
                          const char *device_id, char **key_json);

struct store_device_keys {
    char *device_id;
    char *key_json;
    char *display_name; /* the device's display name, NULL when unset */
};
/* Every device of `user_id` that has uploaded identity keys (arena array,
 * *n may be 0), ordered by device ID. */
int store_keys_device_list(struct store_conn *c, struct arena *arena, const char *user_id,
                           struct store_device_keys **out, size_t *n);

/* The next upload_seq for the device's one-time keys (1 + the highest). */
int store_keys_otk_next_seq(struct store_conn *c, const char *user_id, const char *device_id,
                            int64_t *seq);
/* The JSON of an unclaimed one-time key (arena), or -ERR_NOT_FOUND. */
int store_keys_otk_get(struct store_conn *c, struct arena *arena, const char *user_id,
                       const char *device_id, const char *algorithm, const char *key_id,
                       char **key_json);
/* Adds a one-time key; an existing (algorithm, key_id) is left as it is. */
int store_keys_otk_add(struct store_conn *c, const char *user_id, const char *device_id,
                       const char *algorithm, const char *key_id, const char *key_json,
                       int64_t seq);

struct store_key_count {
    char *algorithm;
    int64_t count;
};
/* The device's unclaimed one-time keys per algorithm (arena array; only
 * algorithms with keys). */
int store_keys_otk_counts(struct store_conn *c, struct arena *arena, const char *user_id,
                          const char *device_id, struct store_key_count **out, size_t *n);

/* Sets the device's fallback key for `algorithm`, marked unused unless it
 * is the same key as the stored one (which keeps its mark). */
int store_keys_fallback_put(struct store_conn *c, const char *user_id, const char *device_id,
                            const char *algorithm, const char *key_id, const char *key_json);
/* The algorithms whose fallback key has not been handed out (arena). */
int store_keys_fallback_unused(struct store_conn *c, struct arena *arena, const char *user_id,
                               const char *device_id, char ***algorithms, size_t *n);

/*
 * Claims a key of `algorithm` for the device (spec "POST /keys/claim"):
 * the oldest one-time key, deleted in the same statement so no other
 * claim can get it, else the fallback key, marked used and kept. Sets
 * *key_id and *key_json (arena) and *fallback. Run it in a transaction.
 * -ERR_NOT_FOUND when the device has no key of that algorithm.
 */
int store_keys_claim(struct store_conn *c, struct arena *arena, const char *user_id,
                     const char *device_id, const char *algorithm, char **key_id,
                     char **key_json, bool *fallback);

/* Deletes the keys of every device of `user_id` that no longer exists in
 * `devices`, with the cross-signing signatures of those devices and the
 * ones they made; call it in the transaction that deleted devices. */
int store_keys_prune_devices(struct store_conn *c, const char *user_id);

/* ---- cross-signing (keys.c, schema 016_cross_signing) ---- */

struct store_cs_key {
    char *key_type;   /* "master", "self_signing" or "user_signing" */
    char *public_key; /* unpadded base64 ed25519 key; key ID "ed25519:" + it */
    char *key_json;   /* the CrossSigningKey as uploaded, without `unsigned` */
};
/* The user's cross-signing keys (arena array, at most one per type, *n
 * may be 0). */
int store_keys_cs_list(struct store_conn *c, struct arena *arena, const char *user_id,
                       struct store_cs_key **out, size_t *n);
/* Stores (or replaces) the user's key of `key_type`. */
int store_keys_cs_put(struct store_conn *c, const char *user_id, const char *key_type,
                      const char *public_key, const char *key_json, int64_t ts);

struct store_cs_signature {
    char *target_id;      /* a device ID of the user, or their master key's public key */
    char *signer_id;      /* the user who signed */
    char *signing_key_id; /* the key ID under signatures[signer_id] */
    char *signature;
};
/* The uploaded signatures of user_id's devices and master key made by
 * user_id or by viewer_id (what viewer_id may see; spec "Key and signature
 * security"), ordered by target (arena array, *n may be 0). */
int store_keys_cs_signatures(struct store_conn *c, struct arena *arena, const char *user_id,
                             const char *viewer_id, struct store_cs_signature **out, size_t *n);
/* Stores a signature of user_id's `target_id` (replacing one by the same
 * signer and key). */
int store_keys_cs_signature_put(struct store_conn *c, const char *user_id, const char *target_id,
                                const char *signer_id, const char *signing_key_id,
                                const char *signature);
/* Deletes the signatures of user_id's `target_id` (a replaced master key
 * or device identity). */
int store_keys_cs_signatures_drop_target(struct store_conn *c, const char *user_id,
                                         const char *target_id);
/* Deletes the signatures signer_id made with `signing_key_id` (a replaced
 * self-signing or user-signing key). */
int store_keys_cs_signatures_drop_by(struct store_conn *c, const char *signer_id,
                                     const char *signing_key_id);
/* Deletes the user's cross-signing keys, the signatures of their keys and
 * those they made (account deactivation). */
int store_keys_cs_delete_user(struct store_conn *c, const char *user_id);

/* ---- send-to-device messages (to_device.c) ---- */

struct store_to_device {
    int64_t stream_pos;
    char *sender;
    char *type;
    char *content; /* JSON object text */
};
/* Records a PUT /sendToDevice transaction of a sending device: 1 when
 * new, 0 when that device already used it for that event type. */
int store_to_device_txn_put(struct store_conn *c, const char *user_id, const char *device_id,
                            const char *event_type, const char *txn_id, int64_t ts);
/*
 * Queues a message for `device_id` of local user `user_id`, or for each
 * of the user's devices when it is "*"; devices that do not exist get
 * nothing. `seq` orders messages of one request at one position. Returns
 * how many messages were queued (>= 0) or a negative ERR_*.
 */
int store_to_device_add(struct store_conn *c, const char *user_id, const char *device_id,
                        int64_t stream_pos, int64_t seq, const char *sender, const char *type,
                        const char *content);
/* A device's messages with stream_pos in (after, upto], in order of
 * arrival, at most `limit` of them (<= 0: all); *out is an arena array. */
int store_to_device_between(struct store_conn *c, struct arena *arena, const char *user_id,
                            const char *device_id, int64_t after, int64_t upto, int64_t limit,
                            struct store_to_device **out, size_t *n);
/* Deletes a device's messages with stream_pos <= upto (acknowledged). */
int store_to_device_ack(struct store_conn *c, const char *user_id, const char *device_id,
                        int64_t upto);
/* Deletes the messages of `user_id`'s devices that no longer exist: call
 * it in the transaction that deleted devices. */
int store_to_device_prune(struct store_conn *c, const char *user_id);

/* ---- device-list changes (device_lists.c) ---- */

/* Records that user_id's device list changed at STREAM_DEVICE_LISTS `pos`. */
int store_device_lists_add(struct store_conn *c, int64_t pos, const char *user_id);
/* The distinct users with a change at a position in (after, upto]. */
int store_device_lists_changed(struct store_conn *c, struct arena *arena, int64_t after,
                               int64_t upto, char ***users, size_t *n);
/* Every user joined to a room user_id is joined to now (user_id included
 * when joined anywhere), once each. */
int store_users_sharing_rooms(struct store_conn *c, struct arena *arena, const char *user_id,
                              char ***users, size_t *n);
/* The users joined to a room now. */
int store_room_joined_users(struct store_conn *c, struct arena *arena, int64_t room_nid,
                            char ***users, size_t *n);

struct store_member_change {
    int64_t room_nid;
    char *user_id;          /* the state key */
    char *json;             /* the member event */
    int64_t state_before_nid;
    int64_t type_nid, state_key_nid;
    char *current;          /* the user's current membership there, or NULL */
};
/* The non-rejected m.room.member events with stream positions in
 * (after, upto] in rooms where user_id is joined now or whose own
 * membership changed in that window, oldest first, at most `max`. */
int store_member_changes(struct store_conn *c, struct arena *arena, const char *user_id,
                         int64_t after, int64_t upto, size_t max,
                         struct store_member_change **out, size_t *n);

/* ---- server-side key backups (room_keys.c, schema 017_room_keys) ---- */

/* One backup version of a user (spec "Server-side key backups"). */
struct store_backup_version {
    int64_t version;
    char *algorithm;
    char *auth_data; /* JSON object text */
    int64_t etag;    /* bumped whenever the version's keys change */
    int64_t count;   /* sessions stored in the version */
};
/* One backed-up session key; session_data is JSON object text. */
struct store_room_key {
    char *room_id;
    char *session_id;
    int64_t first_message_index;
    int64_t forwarded_count;
    bool is_verified;
    char *session_data;
};
/*
 * Creates the user's next backup version, numbered one above every
 * version the user ever had (deleted ones included), and sets *version.
 * Runs outside a transaction (it retries a number taken concurrently).
 */
int store_room_keys_version_create(struct store_conn *c, const char *user_id,
                                   const char *algorithm, const char *auth_data,
                                   int64_t *version);
/* The user's backup `version`, or with version 0 the current one (the
 * highest not deleted), into *out (arena strings); -ERR_NOT_FOUND when
 * there is none or it was deleted. */
int store_room_keys_version_get(struct store_conn *c, struct arena *arena, const char *user_id,
                                int64_t version, struct store_backup_version *out);
/* Replaces the auth_data of a version that is not deleted (else
 * -ERR_NOT_FOUND). */
int store_room_keys_version_update(struct store_conn *c, const char *user_id, int64_t version,
                                   const char *auth_data);
/* Marks a version deleted and deletes its keys: 0 (also when it was
 * deleted before), -ERR_NOT_FOUND when the user never had it. */
int store_room_keys_version_delete(struct store_conn *c, const char *user_id, int64_t version);
/*
 * Locks a version that is not deleted for the rest of the caller's
 * transaction (a no-op UPDATE of its row), so keys written or deleted
 * under it cannot race a deletion of the version. 0 or -ERR_NOT_FOUND.
 */
int store_room_keys_version_hold(struct store_conn *c, const char *user_id, int64_t version);
/*
 * Stores a session key unless the stored one for the same session is
 * better by the spec's rule (verified first, then lower
 * first_message_index, then lower forwarded_count; a tie keeps the stored
 * one). k->room_id and k->session_id name the session. Returns 1 when it
 * was stored, 0 when the stored one was kept, or a negative ERR_*.
 */
int store_room_keys_put(struct store_conn *c, const char *user_id, int64_t version,
                        const struct store_room_key *k);
/* The keys of a version, all of them or of one room (room_id) or one
 * session (room_id and session_id), ordered by room and session (arena
 * array, *n may be 0). */
int store_room_keys_list(struct store_conn *c, struct arena *arena, const char *user_id,
                         int64_t version, const char *room_id, const char *session_id,
                         struct store_room_key **out, size_t *n);
/* Deletes keys of a version, chosen as in store_room_keys_list. Returns
 * how many were deleted or a negative ERR_*. */
int store_room_keys_delete(struct store_conn *c, const char *user_id, int64_t version,
                           const char *room_id, const char *session_id);
/* Adds one to a version's etag (after its keys changed). */
int store_room_keys_bump_etag(struct store_conn *c, const char *user_id, int64_t version);
/* Deletes every backup version and key of the user (deactivation). */
int store_room_keys_delete_user(struct store_conn *c, const char *user_id);

/* ---- dehydrated devices, MSC3814 (dehydrated.c) ---- */

/* The user's dehydrated device: its ID and the client's device_data JSON
 * text (arena strings), or -ERR_NOT_FOUND when it has none. */
int store_dehydrated_get(struct store_conn *c, struct arena *arena, const char *user_id,
                         char **device_id, char **device_data);
/*
 * Creates device `device_id` of the user as its dehydrated device, with
 * `device_data` (JSON text) and display name (NULL: none). Returns 0, or
 * -ERR_CONFLICT when the user already has a device with that ID or
 * another dehydrated device (delete it first, in the same transaction).
 * Deleting a dehydrated device is store_device_delete.
 */
int store_dehydrated_create(struct store_conn *c, const char *user_id, const char *device_id,
                            const char *display_name, const char *device_data, int64_t ts);

/* ---- other servers' signing keys (server_keys.c) ---- */

struct store_server_key {
    char *key_id;         /* "ed25519:..." */
    char *public_key;     /* unpadded base64 */
    int64_t valid_until_ts;
    int64_t expired_ts;   /* 0 for a current key, else when it stopped being one */
    int64_t fetched_ts;
};
/* One key of a server, or -ERR_NOT_FOUND. */
int store_server_key_get(struct store_conn *c, struct arena *arena, const char *server,
                         const char *key_id, struct store_server_key *out);
/* Inserts or replaces one key with the signed response it came in. */
int store_server_key_put(struct store_conn *c, const char *server, const struct store_server_key *k,
                         const char *key_json);
/* The distinct signed responses stored for a server (for notary answers). */
int store_server_keys_json(struct store_conn *c, struct arena *arena, const char *server,
                           char ***jsons, size_t *n);

/* ---- outbound federation queue (fedqueue.c, used by svc/fedqueue) ---- */

struct store_fedqueue_item {
    int64_t seq;
    bool is_pdu;
    char *edu_type; /* EDUs */
    char *event_id; /* PDUs */
    char *json;     /* the PDU, or the EDU's content */
    char *txn_id;   /* the transaction it went out in, NULL before */
};
struct store_fedqueue_dest {
    char *destination;
    int64_t retry_ms, retry_at;
};
/* Queues one item for `destination` after its others, inside the caller's
 * transaction (the per-destination row lock orders concurrent adders).
 * `edu_type` NULL: a PDU (`event_id`, PDU JSON); else an EDU's content. */
int store_fedqueue_add(struct store_conn *c, const char *destination, const char *edu_type,
                       const char *event_id, const char *json, int64_t ts);
/* The destinations that have queued items, with their backoff state. */
int store_fedqueue_dests(struct store_conn *c, struct arena *arena,
                         struct store_fedqueue_dest **out, size_t *n);
/* The first `limit` items of a destination, in order. */
int store_fedqueue_head(struct store_conn *c, struct arena *arena, const char *destination,
                        int64_t limit, struct store_fedqueue_item **out, size_t *n);
/* Takes the destination's next transaction counter (never reused). */
int store_fedqueue_next_txn(struct store_conn *c, const char *destination, int64_t *out);
/* Puts the items up to `last_seq` not yet in a transaction into `txn_id`. */
int store_fedqueue_assign(struct store_conn *c, const char *destination, int64_t last_seq,
                          const char *txn_id);
/* Deletes the items of an acknowledged transaction. */
int store_fedqueue_ack(struct store_conn *c, const char *destination, const char *txn_id);
/* Records the destination's backoff (0, 0: healthy). */
int store_fedqueue_retry_set(struct store_conn *c, const char *destination, int64_t retry_ms,
                             int64_t retry_at);

/* ---- inbound federation transactions (fed_txns.c) ---- */

/* The answer stored for transaction txn_id of `origin` (JSON text,
 * arena), or -ERR_NOT_FOUND. */
int store_fed_txn_get(struct store_conn *c, struct arena *arena, const char *origin,
                      const char *txn_id, char **response);
/* Stores the answer of a transaction: 1, or 0 when one is already stored
 * (a concurrent retry finished first; it is kept). */
int store_fed_txn_put(struct store_conn *c, const char *origin, const char *txn_id,
                      const char *response, int64_t ts);
/* Records that m.direct_to_device message `message_id` of `origin` is
 * being queued (in the caller's transaction): 1 when it is new, 0 when it
 * was queued before, or a negative ERR_*. */
int store_fed_to_device_seen(struct store_conn *c, const char *origin, const char *message_id,
                             int64_t ts);
/* Deletes stored answers and message IDs older than `before` (ms). */
int store_fed_txns_prune(struct store_conn *c, int64_t before);

/* ---- federation reads of rooms (fed_rooms.c) ---- */

/* The events with these nids (unknown ones skipped), in no order. */
int store_events_by_nids(struct store_conn *c, struct arena *arena, const int64_t *nids,
                         size_t n, struct store_event **out, size_t *n_out);
/* Every event in the auth chains of the events `nids` (not those events
 * themselves unless they are in another's chain), in no order. */
int store_auth_chain(struct store_conn *c, struct arena *arena, const int64_t *nids, size_t n,
                     struct store_event **out, size_t *n_out);

/* Drops the current state and forward extremities of a room known only by
 * out-of-band memberships, before its joined state is written (outofband.c). */
int store_room_outofband_clear(struct store_conn *c, int64_t room_nid);

/* ---- federation reads of the event graph (fed_reads.c) ---- */

/* The known previous events of event `event_nid` (its prev_events found
 * here, rejected ones included), by nid; *n may be 0. */
int store_event_prevs(struct store_conn *c, struct arena *arena, int64_t event_nid,
                      struct store_event **out, size_t *n);

#endif
