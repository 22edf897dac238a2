/*
 * Wake-ups for parked long polls (GET /sync with a timeout). A request
 * that has nothing to answer yet registers a waiter: its user, the rooms
 * it is joined to, the stream token its (empty) answer was computed at
 * (a position per stream, svc/streams.h), and a deadline. No thread waits
 * for it. The notifier is the room service's commit listener: each
 * committed event wakes the waiters indexed under its room, and an
 * m.room.member event also those of the user it targets (invites, kicks,
 * joins elsewhere); the other streams (receipts, typing, account data,
 * presence...) call notify_stream with the user or rooms they concern. So
 * a change touches only the requests it concerns. A timer thread keeps the deadlines in a
 * binary heap and answers the waiters whose time is up.
 *
 * A waiter fires exactly once, with the reason: an event (the owner
 * recomputes its answer), the deadline, or shutdown (both answer at once
 * with what the waiter was computed at). notify_stop fires every waiter,
 * so no parked request outlives the HTTP server.
 */
#ifndef MYELIN_SVC_NOTIFY_H
#define MYELIN_SVC_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "http/req.h"
#include "svc/streams.h"

struct notify;
struct room_commit;

enum notify_why {
    NOTIFY_EVENT,   /* a relevant event committed after the waiter's position */
    NOTIFY_TIMEOUT, /* the deadline passed */
    NOTIFY_STOP,    /* the server is shutting down */
};

/*
 * Called once per waiter, on the writer thread (NOTIFY_EVENT), the timer
 * thread (NOTIFY_TIMEOUT) or the thread calling notify_stop, with no
 * notifier lock held. `pos` is the position given to notify_wait. The
 * callee owns the request again: it must answer it (req_complete) or hand
 * it on (req_continue), and must be quick on the writer thread.
 */
typedef void notify_fn(struct req *r, enum notify_why why, const struct stream_token *pos);

/* Creates the notifier; notify_start runs its timer thread. */
struct notify *notify_new(void);
int notify_start(struct notify *n);
/*
 * Fires every waiter with NOTIFY_STOP, refuses new ones from then on and
 * stops the timer thread. Call it before stopping the HTTP server, so the
 * parked requests are answered while their connections can still be.
 */
void notify_stop(struct notify *n);
/* Frees the notifier (after notify_stop). NULL is ignored. */
void notify_free(struct notify *n);

/* The room commit listener (room_commit_fn, ctx = the notifier). */
void notify_on_commit(void *ctx, const struct room_commit *c);

/*
 * Position `pos` of stream s is now visible to readers: wakes the waiters
 * indexed under `user_id` (NULL: none) or under any of `room_ids` whose
 * token is below it. Call after streams_publish (the event stream goes
 * through notify_on_commit).
 */
void notify_stream(struct notify *n, enum stream s, int64_t pos, const char *user_id,
                   char *const *room_ids, size_t n_rooms);

/*
 * Parks r until a change concerning `user_id` or one of `room_ids`
 * (borrowed for the call only; copied as needed) lands on a stream at a
 * position above that stream's part of `pos`, until `deadline_ns`
 * (req_now_ns clock) passes, or until notify_stop; then calls fn once.
 * Returns REQ_PARKED when parked (the handler returns it as is);
 * NOTIFY_MISSED when such a change already landed since `pos` (nothing is
 * parked: the caller computes its answer again);
 * -ERR_UNAVAILABLE after notify_stop (nothing is parked: answer now).
 */
#define NOTIFY_MISSED 2 /* distinct from REQ_PARKED (1) */
int notify_wait(struct notify *n, struct req *r, const char *user_id, char *const *room_ids,
                size_t n_rooms, const struct stream_token *pos, int64_t deadline_ns,
                notify_fn *fn);

/* How many requests are parked (for tests and the log). */
size_t notify_waiting(struct notify *n);

#endif
