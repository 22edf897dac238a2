/*
 * Presence of local users (spec "Presence"): online, unavailable or
 * offline, a status message, the last activity, and whether the user is
 * currently active. Built to be cheap: the live state is in memory, a
 * sync or a request only updates a few fields under one mutex, and only
 * a visible change (state, status message, currently_active) takes a
 * STREAM_PRESENCE position, one database row and a wake-up of the parked
 * /syncs of the user and of everyone sharing a room with them.
 *
 * Rules (Synapse's behaviour where the spec is silent):
 *   - PUT /presence sets the state and the status message (absent: none);
 *     `online` counts as activity.
 *   - A /sync with set_presence=online (the default) is activity and marks
 *     the user online; set_presence=unavailable marks them unavailable;
 *     set_presence=offline leaves presence alone.
 *   - An online user with no activity for `presence.idle_timeout_ms`
 *     (5 min) becomes unavailable; currently_active turns false 60 s after
 *     the last activity.
 *   - A user with no /sync in flight whose last sync and last activity
 *     are both older than `presence.offline_timeout_ms` (30 s) goes offline.
 * One timer thread applies the timeouts, waking at most every 5 s and
 * looking only at users who are not offline. It also writes the changes
 * that syncs and requests made (they have no database connection at
 * hand), so those calls never wait for the database.
 *
 * Remote users (spec: Server-Server API "Presence"): the m.presence EDUs
 * of their server set their state as sent, with no local timeout (their
 * server decides and tells us); last_active is derived from
 * last_active_ago at receipt. They are held in memory only (not stored),
 * at most PRESENCE_REMOTE_MAX of them: past that, the one updated longest
 * ago is dropped. Their changes take stream positions and wake /syncs like
 * local ones.
 *
 * Outbound: each written change of a local user is queued as an
 * m.presence EDU (svc/fedqueue) for every other server with a member in
 * one of the user's joined rooms.
 *
 * With `presence.enabled: false` nothing is tracked: the hooks do
 * nothing, no thread runs, /sync gets no presence events, nothing is sent
 * to other servers, and the endpoints answer as Synapse does (PUT is
 * accepted and ignored, GET says offline).
 */
#ifndef MYELIN_SVC_PRESENCE_H
#define MYELIN_SVC_PRESENCE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct presence;
struct streams;
struct notify;
struct store;
struct store_conn;
struct req;
struct fedqueue;

/* The most remote users held; the one updated longest ago goes first. */
#define PRESENCE_REMOTE_MAX 100000

enum presence_state {
    PRESENCE_OFFLINE,
    PRESENCE_UNAVAILABLE,
    PRESENCE_ONLINE,
};

/* The state named `s` ("online", "unavailable", "offline"), or -1. */
int presence_state_parse(const char *s);
const char *presence_state_name(enum presence_state s);

/*
 * Creates the service (times in ms; `enabled` false makes every call a
 * no-op). The streams and notifier are borrowed and must outlive it.
 */
struct presence *presence_new(bool enabled, int64_t idle_timeout_ms, int64_t offline_timeout_ms,
                              struct streams *st, struct notify *n);
/*
 * Loads the stored presence rows and starts the timer thread with its own
 * connection to `store`. Returns 0 or a negative ERR_* (no connection, no
 * thread); rows that cannot be read are logged and everyone starts
 * offline. Does nothing when disabled. Users loaded as online or
 * unavailable get one offline timeout of grace to sync again.
 */
int presence_start(struct presence *p, struct store *store);
/* The queue local users' changes are sent through (borrowed; NULL or
 * never set: nothing is sent). Call before presence_start. */
void presence_set_fedqueue(struct presence *p, struct fedqueue *q);
/* Stops the timer thread after writing pending changes (before
 * notify_stop, as the writes wake parked syncs). */
void presence_stop(struct presence *p);
/* Stops and frees; NULL is ignored. */
void presence_free(struct presence *p);

bool presence_enabled(const struct presence *p);

/*
 * PUT /presence/{userId}/status: sets `user_id`'s state and status
 * message (NULL: none) and writes the change on `db` (not inside a
 * transaction) before returning, so an acknowledged change is stored.
 * Returns 0 or a negative ERR_* (the change stays in memory either way).
 */
int presence_set(struct presence *p, struct store_conn *db, const char *user_id,
                 enum presence_state state, const char *status_msg);

/*
 * The presence content of `user_id` as GET /presence/{userId}/status
 * serves it (a new reference): presence, last_active_ago when known,
 * status_msg when set, currently_active when online. A user never seen is
 * offline. Visibility is the caller's business.
 */
json_t *presence_get(struct presence *p, const char *user_id);
/* The same, or NULL when nothing is held for `user_id` (or disabled). */
json_t *presence_lookup(struct presence *p, const char *user_id);

/*
 * An m.presence EDU entry of the remote user `user_id` (the caller has
 * checked that the user belongs to the sending server, which is not this
 * one): state, status message (NULL: none), last_active_ago (< 0:
 * unknown), currently_active. A visible change is written by the timer
 * thread, which it wakes. Ignored for a user tracked as local, or when
 * disabled. Never blocks on I/O.
 */
void presence_remote_update(struct presence *p, const char *user_id, enum presence_state state,
                            const char *status_msg, int64_t last_active_ago,
                            bool currently_active);

/*
 * A /sync of `user_id` is being answered by r, with its set_presence
 * (NULL: "online"). Call it on every entry of the handler (re-entries of
 * the same request count once): the sync stays "in flight", keeping the
 * user from timing out to offline, until r is released (an arena cleanup
 * registered here ends it). Never blocks on I/O.
 */
void presence_on_sync(struct presence *p, struct req *r, const char *user_id,
                      const char *set_presence);

/* `user_id` did something pro-active (sent an event): marks them online
 * and active. Never blocks on I/O. */
void presence_on_activity(struct presence *p, const char *user_id);

/*
 * Appends to `events` (a JSON array) the m.presence events /sync owes
 * `user_id`: {type, sender, content} for the user and every user sharing
 * a joined room with them whose presence changed in (since, upto] of
 * STREAM_PRESENCE; with since < 0 (initial sync, full_state) the current
 * presence of each of them who is not offline. Runs at most a couple of
 * queries on r->db, none when nothing changed. Returns 0 or a negative
 * ERR_*; appends nothing when disabled.
 */
int presence_sync_events(struct presence *p, struct req *r, const char *user_id, int64_t since,
                         int64_t upto, json_t *events);

#endif
