/*
 * Inbound PDUs of federation transactions (spec: Server-Server API
 * "PDUs", "Checks performed on receipt of a PDU"): each is named, the
 * room's server ACL applied, then checked by svc/fedevent (shape, event
 * ID, signatures, content hash) and accepted by svc/room's room_receive
 * (auth events, previous events, auth rules against its auth events and
 * the current state). A PDU whose previous events are unknown makes us
 * ask the origin for the gap (get_missing_events, up to 10 events) and
 * try again. Events of rooms unknown here, events whose auth events are
 * unknown and wider gaps are answered with an error for now.
 *
 * Naming: the event ID of a v3+ event is its reference hash under the
 * room version (core/pdu.h), known only when the room is known here; a
 * v1/v2 event carries its own "event_id".
 */
#include <string.h>

#include "api/federation/federation.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "core/pdu.h"
#include "base/log.h"
#include "base/str.h"
#include "svc/fedclient.h"
#include "svc/fedevent.h"
#include "svc/room.h"
#include "svc/srv.h"

/* Events get_missing_events may bring at most (spec: the sender picks;
 * Synapse asks for 10). */
#define GAP_LIMIT 10
#define GAP_TIMEOUT_MS 15000

static int cmp_depth(const void *a, const void *b)
{
    const struct event *x = *(struct event *const *)a, *y = *(struct event *const *)b;
    return x->depth < y->depth ? -1 : x->depth > y->depth;
}

/*
 * Asks `origin` for the events between the room's extremities and `ev`
 * (POST /get_missing_events, spec "Backfilling and retrieving missing
 * events") and accepts them oldest first. A gap wider than GAP_LIMIT is
 * left (fetching the state at the event instead comes with the handling
 * of large gaps). Blocks the worker for at most GAP_TIMEOUT_MS.
 */
static void fill_gap(struct req *r, const char *origin, const struct room_version *rv,
                     const struct event *ev)
{
    const char **ext = NULL;
    size_t n_ext = 0;
    if (!r->srv->fed || room_extremities(r, ev->room_id, &ext, &n_ext) < 0) {
        return;
    }
    json_t *earliest = json_array();
    for (size_t i = 0; i < n_ext; i++) {
        json_array_append_new(earliest, json_string(ext[i]));
    }
    json_t *body = json_pack("{s:o,s:[s],s:i,s:i}", "earliest_events", earliest,
                             "latest_events", ev->event_id, "limit", GAP_LIMIT, "min_depth", 0);
    const char *uri = arena_printf(&r->arena, "/_matrix/federation/v1/get_missing_events/%s",
                                   str_percent_encode(&r->arena, ev->room_id));
    struct fed_resp resp;
    fedclient_call(r->srv->fed, origin, "POST", uri, body, true, GAP_TIMEOUT_MS, &resp);
    json_decref(body);
    json_t *answer = resp.status == 200 ? json_arena(&r->arena, fed_resp_json(&resp)) : NULL;
    fed_resp_release(&resp);
    const json_t *events = json_object_get(answer, "events");
    if (!json_is_array(events)) {
        LOG_INFO("fed", "no missing events for %s from %s (HTTP %ld)", ev->event_id, origin,
                 resp.status);
        return;
    }
    struct event **got = ARENA_ARRAY(&r->arena, struct event *, json_array_size(events) + 1);
    size_t n = 0, i;
    const json_t *pdu;
    json_array_foreach(events, i, pdu)
    {
        struct event *e;
        const char *why = NULL;
        if (n < GAP_LIMIT * 2 && fedevent_check(r, rv, pdu, &e, &why) == 0 && e->room_id &&
            strcmp(e->room_id, ev->room_id) == 0) {
            got[n++] = e;
        }
    }
    qsort(got, n, sizeof(*got), cmp_depth);
    for (i = 0; i < n; i++) {
        const char *error = NULL;
        if (room_receive(r, got[i], origin, false, &error) == 0 && error) {
            LOG_INFO("fed", "missing event %s from %s not accepted: %s", got[i]->event_id,
                     origin, error);
        }
    }
}

int fed__process_pdu(struct req *r, const char *origin, json_t *pdu, char **event_id,
                     const char **error)
{
    const char *room_id = json_get_str(pdu, "room_id");
    const struct room_version *rv =
        room_id && id_room_valid(room_id, strlen(room_id)) ? room_version_of(r, room_id) : NULL;
    const char *id = NULL;
    if (rv) {
        if (event_compute_id(rv, pdu, &r->arena, &id) < 0) {
            return -ERR_BAD_JSON;
        }
    } else {
        /* Unknown room: only a v1/v2 event names itself. */
        id = json_get_str(pdu, "event_id");
        if (!id || !id_event_valid(id, strlen(id))) {
            return -ERR_BAD_JSON;
        }
        id = arena_strdup(&r->arena, id);
    }
    *event_id = (char *)id;
    if (rv && !fed__acl_allows(r, room_id, origin)) {
        *error = "Server is denied by the room's server ACL";
        return 0;
    }
    if (!rv) {
        *error = "Unknown room";
        return 0;
    }
    struct event *ev;
    const char *why = NULL;
    if (fedevent_check(r, rv, pdu, &ev, &why) != 0) {
        *error = why ? why : "Invalid event";
        return 0;
    }
    int rc = room_receive(r, ev, origin, false, error);
    if (rc == 0 && *error == room_missing_prev) {
        /* A gap: ask the origin for what lies between, then try again. */
        fill_gap(r, origin, rv, ev);
        rc = room_receive(r, ev, origin, false, error);
    }
    if (rc < 0) {
        *error = "Could not be stored here; send it again";
    }
    return 0;
}
