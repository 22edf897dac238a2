/*
 * State resolution (spec: room version pages, "State resolution"):
 * v1 for room version 1, v2 for 2-11, v2.1 for 12. Pure: events come from
 * a caller-supplied lookup, results go to the caller's map.
 *
 * A state set is a `struct map` from a state key (stateres_key: type,
 * NUL, state_key) to the event ID (const char *) holding that slot.
 */
#ifndef MYELIN_CORE_STATERES_H
#define MYELIN_CORE_STATERES_H

#include <stddef.h>

#include "base/arena.h"
#include "base/map.h"
#include "core/event.h"

struct stateres_ctx {
    const struct room_version *rv;
    /* Returns the parsed event with this ID, or NULL if it is not known
     * (unknown events are treated as the spec says: left out). Events
     * whose `rejected` flag is set are never used. */
    const struct event *(*get_event)(void *ud, const char *event_id);
    void *ud;
    /* Scratch and results are allocated here. */
    struct arena *arena;
};

/* The map key for (type, state_key): "type" NUL "state_key", in `arena`. */
struct str stateres_key(struct arena *arena, const char *type, const char *state_key);

/*
 * Resolves `n_sets` state sets into `out` (initialised by the caller; keys
 * and values are arena or event memory). Returns 0, or a negative ERR_*
 * if an event needed for the algorithm is malformed beyond what the spec
 * tolerates.
 *
 * Entries taken unchanged from the inputs (the unconflicted state; every
 * entry when n_sets is 1) share the key and value memory of the input
 * maps, so the inputs must live as long as `out`. Events the lookup does
 * not know, and events whose `rejected` flag is set, are never chosen; a
 * conflicted key none of whose candidates is chosen is absent from `out`.
 * Nothing but `out` and ctx->arena is modified; temporary memory is freed
 * before returning.
 */
int stateres_resolve(struct stateres_ctx *ctx, const struct map *const *sets, size_t n_sets,
                     struct map *out);

#endif
