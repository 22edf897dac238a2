/*
 * Event filters (spec "Filtering"), shared by /sync, the filter endpoints
 * and /context: reading a Filter or a RoomEventFilter with the right
 * errors, and matching client-format events against one. Parsed filters
 * borrow the JSON they were read from.
 */
#ifndef MYELIN_API_CLIENT_FILTER_H
#define MYELIN_API_CLIENT_FILTER_H

#include <jansson.h>
#include <stdbool.h>

/* A RoomEventFilter (or an EventFilter, which lacks the room keys). */
struct filter_events {
    const json_t *types, *not_types;     /* '*' matches any run of characters */
    const json_t *senders, *not_senders; /* exact user IDs */
    const json_t *rooms, *not_rooms;     /* exact room IDs */
    int contains_url;                    /* -1: either; 0/1: without/with content.url */
    long long limit;                     /* -1 when absent */
    bool lazy_load_members;
    bool include_redundant_members;
    bool unread_thread_notifications;
};

/* A Filter as /sync applies it. */
struct filter {
    struct filter_events timeline, state, ephemeral, room_account_data;
    struct filter_events account_data, presence; /* top level (EventFilter) */
    const json_t *rooms, *not_rooms; /* room.rooms / room.not_rooms */
    const json_t *event_fields;
    bool include_leave;
};

/*
 * Reads a RoomEventFilter `obj` (NULL: no conditions) into *f. Every key
 * is optional; a list that is null counts as absent. Returns 0, or
 * -ERR_BAD_JSON with *why naming the bad key.
 */
int filter_read_events(const json_t *obj, struct filter_events *f, const char **why);

/* Reads and checks a Filter (spec "Filter") as filter_read_events does. */
int filter_read(const json_t *obj, struct filter *f, const char **why);

/* Whether a client-format event passes the filter. */
bool filter_events_pass(const struct filter_events *f, const json_t *ev);

/* Whether the filter can leave any event out. */
bool filter_events_restrict(const struct filter_events *f);

/* Whether the list of strings holds `s` (with `glob`, as a type pattern). */
bool filter_list_has(const json_t *list, const char *s, bool glob);

#endif
