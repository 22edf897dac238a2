/*
 * A PDU (persistent data unit) as the core sees it: the JSON object plus
 * the fields every algorithm reads, extracted once and validated against
 * the room version's event format (spec: Server-Server API "PDUs", room
 * version pages "Event format").
 *
 * The event holds a reference to its JSON (released with the arena it was
 * parsed into); string fields point into that JSON and live as long.
 */
#ifndef MYELIN_CORE_EVENT_H
#define MYELIN_CORE_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "core/roomver.h"

#define EVENT_MAX_BYTES 65536       /* whole PDU, canonical JSON */
#define EVENT_MAX_ID_BYTES 255      /* sender, room_id, event_id, type, state_key: 255 bytes each */
#define EVENT_MAX_PREV_EVENTS 20
#define EVENT_MAX_AUTH_EVENTS 10

struct event {
    json_t *json;               /* the full PDU (a reference owned by the arena) */
    const struct room_version *rv;
    const char *event_id;
    const char *room_id;        /* NULL only for a v12 create event */
    const char *sender;
    const char *type;
    const char *state_key;      /* NULL when not a state event */
    const char *origin;         /* optional legacy field, may be NULL */
    int64_t depth;
    int64_t origin_server_ts;
    const char **prev_events;   /* event IDs (the first element of each pair in v1/v2) */
    size_t n_prev_events;
    const char **auth_events;
    size_t n_auth_events;
    const json_t *content;      /* always an object */
    const char *redacts;        /* from the top level (v1-v10) or content (v11+), or NULL */
    const json_t *unsigned_;    /* may be NULL */
    bool rejected;              /* set by callers that track rejection */
    void *user;                 /* free for callers (stores, resolution) */
};

/*
 * Parses and validates a PDU for room version `rv`. `event_id` is the
 * event's ID when the caller knows it (required for EVENT_FORMAT_V2/V3,
 * where it is the reference hash: see event_compute_id); for EVENT_FORMAT_V1
 * it may be NULL and is then read from the PDU's "event_id".
 *
 * Checks the presence and types of the required keys, the reference list
 * shapes of the version, the size limits on identifiers and the count
 * limits on prev/auth events. It does not check hashes or signatures.
 *
 * Returns 0 and *out (allocated in `arena`, which takes a reference to
 * `pdu`), or -ERR_BAD_JSON with *why describing the first problem.
 */
int event_parse(struct arena *arena, const struct room_version *rv, json_t *pdu,
                const char *event_id, struct event **out, const char **why);

/* True for state events (a "state_key" is present, even empty). */
static inline bool event_is_state(const struct event *ev) { return ev->state_key != NULL; }

/* content.membership of an m.room.member event, or NULL. */
const char *event_membership(const struct event *ev);

#endif
