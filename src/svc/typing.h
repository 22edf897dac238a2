/*
 * Typing notifications (spec "Typing Notifications"): who is typing in
 * which room, in memory only. Each change (start, stop, expiry) takes the
 * next position of STREAM_TYPING and wakes the room's parked /syncs. A
 * timer thread expires typists whose timeout passed.
 */
#ifndef MYELIN_SVC_TYPING_H
#define MYELIN_SVC_TYPING_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct typing;
struct streams;
struct notify;

struct typing *typing_new(struct streams *st, struct notify *n);
int typing_start(struct typing *t);
/* Stops the timer thread (before notify_stop). */
void typing_stop(struct typing *t);
void typing_free(struct typing *t);

/*
 * Marks user_id as typing in room_id for timeout_ms (capped), or as not
 * typing. A change wakes the room's waiters.
 */
void typing_set(struct typing *t, const char *room_id, const char *user_id, bool typing,
                int64_t timeout_ms);

/*
 * The m.typing event of a room (a new reference) when its typists changed
 * in (since, upto] (since < 0: whenever someone is typing), else NULL.
 */
json_t *typing_event(struct typing *t, const char *room_id, int64_t since, int64_t upto);

#endif
