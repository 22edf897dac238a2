/*
 * Stream positions: every kind of change a client learns about through
 * /sync has its own monotonic stream, and one sync token carries a
 * position per stream.
 *
 *   STREAM_EVENTS        room events (positions owned by svc/room.c)
 *   STREAM_RECEIPTS      read receipts
 *   STREAM_ACCOUNT_DATA  global and room account data, tags, push rules
 *   STREAM_TYPING        typing notifications (memory only)
 *   STREAM_TO_DEVICE     to-device messages
 *   STREAM_DEVICE_LISTS  device-list changes
 *   STREAM_PRESENCE      presence
 *   STREAM_UNREAD        push actions (unread counts): the event position
 *                        up to which svc/push has stored them
 *
 * A persistent stream hands out positions under a writer lock:
 *
 *     int64_t pos = streams_reserve(st, STREAM_RECEIPTS);
 *     rc = <one transaction that stores rows tagged `pos` and calls
 *           store_stream_bump(db, STREAM_RECEIPTS, pos)>;
 *     streams_publish(st, STREAM_RECEIPTS, pos);
 *     if (rc == 0) notify_stream(...);
 *
 * The lock is held from reserve to publish, so positions become visible
 * (streams_current) strictly in order and a reader never sees position
 * N+1 while N is still being written. A failed write burns its position
 * (no row carries it), which readers cannot tell from a quiet moment.
 * store_stream_bump records the position in the same transaction, so the
 * stream restarts from it after a restart (streams_set at start-up).
 *
 * The typing stream lives in memory only; it starts at the start-up time
 * in milliseconds, above any position an earlier run handed out, so
 * tokens from before a restart stay ordered below the new ones.
 *
 * Tokens are "s<events>_<receipts>_<account_data>_<typing>_<to_device>_
 * <device_lists>_<presence>_<unread>"; missing trailing parts read as 0, so "s<N>"
 * (/messages tokens, tokens from older versions) still parse.
 */
#ifndef MYELIN_SVC_STREAMS_H
#define MYELIN_SVC_STREAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stream {
    STREAM_EVENTS,
    STREAM_RECEIPTS,
    STREAM_ACCOUNT_DATA,
    STREAM_TYPING,
    STREAM_TO_DEVICE,
    STREAM_DEVICE_LISTS,
    STREAM_PRESENCE,
    STREAM_UNREAD,
    STREAM_N
};

struct stream_token {
    int64_t pos[STREAM_N];
};

/* Long enough for any token: 's' + STREAM_N * (19 digits + '_') + NUL. */
#define STREAM_TOKEN_MAX (2 + STREAM_N * 21)

struct streams;
struct rooms;
struct push;

struct streams *streams_new(struct rooms *rooms);
/* Where STREAM_UNREAD comes from (svc/push.h). */
void streams_set_push(struct streams *st, struct push *push);
void streams_free(struct streams *st);

/* Start-up: the last position stored for a persistent stream. */
void streams_set(struct streams *st, enum stream s, int64_t pos);

/* Takes the stream's writer lock and returns its next position. */
int64_t streams_reserve(struct streams *st, enum stream s);
/* Makes `pos` (from streams_reserve) current and releases the lock. */
void streams_publish(struct streams *st, enum stream s, int64_t pos);
/* Next position of a memory-only stream (typing); no lock to release. */
int64_t streams_advance(struct streams *st, enum stream s);

/* The newest visible position of one stream, or of all of them. */
int64_t streams_current(struct streams *st, enum stream s);
void streams_now(struct streams *st, struct stream_token *t);

/* Formats t into buf (STREAM_TOKEN_MAX bytes). */
void stream_token_format(const struct stream_token *t, char *buf);
/* Parses a token; false when malformed. */
bool stream_token_parse(const char *s, struct stream_token *t);

#endif
