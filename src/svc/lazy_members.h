/*
 * What each device was sent of lazy-loaded room members (spec "Lazy-loading
 * room members"): with lazy_load_members and without
 * include_redundant_members, an incremental /sync leaves out the member
 * events the device already has. The record is a bounded in-memory map
 * keyed by user, device, room and member, holding the member event ID
 * last sent; when it grows past its bound it starts over, which only
 * means some member events are sent again (always allowed). A restart
 * forgets it for the same reason.
 */
#ifndef MYELIN_SVC_LAZY_MEMBERS_H
#define MYELIN_SVC_LAZY_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>

struct lazy_members;

struct lazy_members *lazy_members_new(size_t max_entries);
void lazy_members_free(struct lazy_members *lm);

/*
 * Records that `device_id` of `user_id` now has `event_id` as the member
 * event of `member` in `room_id`. Returns true when that was already so
 * (the caller may leave the event out).
 */
bool lazy_members_sent(struct lazy_members *lm, const char *user_id, const char *device_id,
                       const char *room_id, const char *member, const char *event_id);

#endif
