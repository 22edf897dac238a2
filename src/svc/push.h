/*
 * Push rules at run time: loading a user's merged rule set (their own
 * rules, their edits of the server-default rules, the defaults), and the
 * push thread that evaluates every committed event for the room's local
 * members and stores a push action per user it notifies (the input of
 * unread notification counts; store_push_unread_counts reads them).
 *
 * The push service is the room service's commit listener. On the writer
 * thread it passes each commit straight on to the next listener (the
 * notifier, so /sync wake-ups never wait for push rules) and queues a
 * copy (with the event's stored JSON). The push thread takes the queue in
 * batches on its own database connection, knows the room's members, power
 * levels and (when a rule needs it) display names (read once, then kept up
 * to date from the room's state events), runs core/pushrules for each
 * local joined member except the sender (and the invitee of an invite),
 * writes the batch's push actions in one transaction, advances
 * push_stream_pos and then wakes the parked syncs of the users it stored
 * actions for (STREAM_UNREAD), so their unread counts follow. Merged rule
 * sets are cached per user on the push thread; push_rules_changed drops a
 * user's entry.
 *
 * Lag: push actions of an event exist from a moment after its commit (the
 * time the push thread takes for its batch). /sync waits briefly for them
 * (push_wait); past that it shows the event before its count, and the
 * count arrives with the next sync, woken by STREAM_UNREAD. Every event with stream ordering <= push_stream_pos has
 * its push actions stored. Push actions of events committed just before
 * a crash, whose batch had not been written, are not recomputed.
 */
#ifndef MYELIN_SVC_PUSH_H
#define MYELIN_SVC_PUSH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "svc/room.h"

struct push;
struct store;
struct store_conn;

/* Creates the push service for local users of `server_name` (copied). */
struct push *push_new(const char *server_name);
/* Frees it (after push_stop). NULL is ignored. */
void push_free(struct push *p);
/* The listener told about each commit once its push actions are stored
 * (the notifier). Set it before push_start. */
void push_set_next_listener(struct push *p, room_commit_fn *fn, void *ctx);
/* The notifier told when a user's push actions are stored, so parked
 * syncs update unread counts (STREAM_UNREAD). */
struct notify;
void push_set_notify(struct push *p, struct notify *n);
/* Starts the push thread with its own database connection. */
int push_start(struct push *p, struct store *store);
/* Processes everything queued, then stops the thread. Call it after the
 * room writer has stopped. Does nothing when not started. */
void push_stop(struct push *p);

/* The room commit listener (room_commit_fn, ctx = the push service): queues
 * the commit; without a running thread it passes it straight on. */
void push_on_commit(void *ctx, const struct room_commit *c);

/* Every event with a stream ordering up to this has its push actions
 * stored (0 before the first). */
int64_t push_stream_pos(struct push *p);

/* Start-up: every event committed before this run is processed (up to
 * `pos`, the room stream position loaded from the database). */
void push_set_stream_pos(struct push *p, int64_t pos);

/*
 * Waits (at most timeout_ms) until push actions are stored up to event
 * position `pos`; true when they are. /sync uses it so that an event and
 * its unread count usually arrive together.
 */
bool push_wait(struct push *p, int64_t pos, int64_t timeout_ms);

/* Drops the cached rule set of `user_id`: call after changing its rules. */
void push_rules_changed(struct push *p, const char *user_id);

/*
 * The merged push rule set of `user_id` (the value of "global": an object
 * with the five kinds, see core/pushrules.h), read from the database.
 * Returns 0 and *out (a new reference) or a negative ERR_*.
 */
int push_rules_load(struct store_conn *db, const char *user_id, json_t **out);

/*
 * The content of the user's m.push_rules account data event,
 * {"global": <merged rule set>} (a new reference): what /sync puts in
 * account_data for a user whose rules changed (and on initial sync).
 * Returns 0 or a negative ERR_*.
 */
int push_rules_account_data(struct store_conn *db, const char *user_id, json_t **out);

#endif
