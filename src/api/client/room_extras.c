/*
 * The smaller room endpoints around rooms.c (spec: Client-Server API
 * "Room participation", "Room membership"): events around an event
 * (/context), the event closest to a timestamp, forgetting rooms,
 * knocking, and the server's part in restricted joins.
 *
 * Like rooms.c, reading follows history visibility (visibility.c): the
 * event of /context and of timestamp_to_event must be visible to the
 * user, and the events around it are filtered. Tokens are the /messages stream tokens
 * "s<N>" (the position just after the event with stream ordering N).
 *
 * Forgetting is recorded per user and lasts until the user's membership
 * changes (store_room_forget). Nothing lists left rooms yet (joined_rooms
 * never did), so the record's effect arrives with /sync: rooms from
 * store_user_forgotten_rooms must not appear there, not even with
 * include_leave.
 */
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/client/filter.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/roomver.h"
#include "store/store.h"
#include "svc/room.h"

#define CONTEXT_DEFAULT_LIMIT 10
#define CONTEXT_MAX_LIMIT 1000

static int answer_room_id(struct req *r)
{
    return req_json(r, 200, json_pack("{s:s}", "room_id", r->result));
}

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* ---- GET /rooms/{roomId}/context/{eventId} ---- */

/* The `filter` query parameter of /context and /messages (client.h). */
int client__filter_param(struct req *r, struct filter_events *f)
{
    const char *s = req_query(r, "filter");
    const char *why = NULL;
    if (!s || !*s) {
        return filter_read_events(NULL, f, &why);
    }
    json_t *j = NULL;
    if (json_parse_input(s, strlen(s), JSON_MAX_DEPTH, &j, &why) == 0) {
        json_arena(&r->arena, j);
        if (filter_read_events(j, f, &why) == 0) {
            return 0;
        }
    }
    return req_fail(r, -ERR_INVALID_PARAM, "'filter' is not a valid RoomEventFilter");
}

/* Appends the client format of stored events that the user may see
 * (keep[i]) and that pass the filter, and each sender to `senders` (for
 * lazy-loaded members). */
static void append_events(struct req *r, json_t *out, const struct store_event *evs,
                          const bool *keep, size_t n, const struct filter_events *f,
                          json_t *senders)
{
    for (size_t i = 0; i < n; i++) {
        json_t *ev = keep[i] ? client__stored_event(r, &evs[i]) : NULL;
        if (!ev) {
            continue;
        }
        if (!filter_events_pass(f, ev)) {
            json_decref(ev);
            continue;
        }
        const char *sender = json_get_str(ev, "sender");
        if (sender) {
            json_object_set_new(senders, sender, json_true());
        }
        json_array_append_new(out, ev);
    }
}

/*
 * The events before and after an event, split as Synapse does (half the
 * limit before, rounded down, the rest after), with "start" and "end"
 * tokens that continue in /messages backwards and forwards. The event
 * must be visible to the user (else 404) and the events around it are
 * filtered by history visibility (visibility.c). "state" is the state the
 * user may read (the current state, or a former member's state at the
 * leave) rather than the state at the last event returned (the spec's
 * wording); with lazy_load_members it keeps only the member events of the
 * returned events' senders.
 */
int client_context(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    long limit = CONTEXT_DEFAULT_LIMIT;
    const char *limit_s = req_query(r, "limit");
    if (limit_s) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (*end || end == limit_s || limit < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
        }
        if (limit > CONTEXT_MAX_LIMIT) {
            limit = CONTEXT_MAX_LIMIT;
        }
    }
    struct filter_events filter;
    rc = client__filter_param(r, &filter);
    if (rc) {
        return rc;
    }
    struct store_event target;
    struct store_room room;
    rc = client__room_event(r, room_id, event_id, &target, &room);
    if (rc) {
        return rc;
    }
    bool visible;
    rc = client__event_visible(r, &acc, &target, &visible);
    if (rc) {
        return rc;
    }
    if (target.stream_ordering <= 0 || !visible) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    json_t *event = client__stored_event(r, &target);
    if (!event) {
        return req_fail(r, -ERR_UNKNOWN, "Stored event is unreadable");
    }
    json_arena(&r->arena, event);

    int before_limit = (int)(limit / 2), after_limit = (int)(limit - limit / 2);
    struct store_event *before = NULL, *after = NULL;
    size_t n_before = 0, n_after = 0;
    int64_t so = target.stream_ordering;
    if (before_limit > 0) {
        rc = store_room_events(r->db, &r->arena, room.nid, so, true, before_limit, &before,
                               &n_before);
    }
    if (rc == 0 && after_limit > 0) {
        rc = store_room_events(r->db, &r->arena, room.nid, so, false, after_limit, &after,
                               &n_after);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    bool *keep_before = arena_alloc(&r->arena, (n_before + 1) * sizeof(bool));
    bool *keep_after = arena_alloc(&r->arena, (n_after + 1) * sizeof(bool));
    rc = client__visible_events(r, &acc, before, n_before, keep_before);
    if (!rc) {
        rc = client__visible_events(r, &acc, after, n_after, keep_after);
    }
    if (rc) {
        return rc;
    }
    /* Tokens from what was read, not what the filter kept, so paging on
     * continues after it: backwards from "start" gives the events older
     * than the oldest read, forwards from "end" those newer than the
     * newest read. */
    int64_t start = (n_before ? before[n_before - 1].stream_ordering : so) - 1;
    int64_t end = n_after ? after[n_after - 1].stream_ordering : so;

    json_t *senders = json_arena(&r->arena, json_object());
    const char *target_sender = json_get_str(event, "sender");
    if (target_sender) {
        json_object_set_new(senders, target_sender, json_true());
    }
    json_t *events_before = json_array(), *events_after = json_array();
    append_events(r, events_before, before, keep_before, n_before, &filter, senders);
    append_events(r, events_after, after, keep_after, n_after, &filter, senders);
    json_t *served = json_arena(&r->arena, json_array());
    json_array_append(served, event);
    json_array_extend(served, events_before);
    json_array_extend(served, events_after);
    client__bundle_aggregations(r, served);

    /* Spec: "the state of the room at the last event returned". */
    const struct store_event *last = &target;
    for (size_t k = n_after; k > 0; k--) {
        if (keep_after[k - 1]) {
            last = &after[k - 1];
            break;
        }
    }
    json_t *pdus = NULL;
    rc = client__state_after(r, last, &pdus);
    if (rc) {
        json_decref(events_before);
        json_decref(events_after);
        return rc;
    }
    json_t *state = json_array();
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu)
    {
        if (filter.lazy_load_members && streq(json_get_str(pdu, "type"), "m.room.member") &&
            !json_object_get(senders, json_get_str(pdu, "state_key"))) {
            continue;
        }
        json_t *ev = client__state_event(r, pdu);
        if (filter_events_pass(&filter, ev)) {
            json_array_append_new(state, ev);
        } else {
            json_decref(ev);
        }
    }

    json_t *body = json_object();
    json_object_set(body, "event", event);
    json_object_set_new(body, "events_before", events_before);
    json_object_set_new(body, "events_after", events_after);
    json_object_set_new(body, "state", state);
    json_object_set_new(body, "start",
                        json_string(arena_printf(&r->arena, "s%lld", (long long)start)));
    json_object_set_new(body, "end", json_string(arena_printf(&r->arena, "s%lld", (long long)end)));
    return req_json(r, 200, body);
}

/* ---- GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event ---- */

int client_timestamp_to_event(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    const char *ts_s = req_query(r, "ts"), *dir = req_query(r, "dir");
    if (!ts_s || !dir) {
        return req_fail(r, -ERR_MISSING_PARAM, "'ts' and 'dir' are required");
    }
    char *endp;
    long long ts = strtoll(ts_s, &endp, 10);
    if (*endp || endp == ts_s) {
        return req_fail(r, -ERR_INVALID_PARAM, "'ts' must be an integer");
    }
    if (strcmp(dir, "f") != 0 && strcmp(dir, "b") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'dir' must be 'f' or 'b'");
    }
    bool forwards = dir[0] == 'f';
    struct client_room_access acc;
    rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    char *event_id = NULL;
    int64_t event_ts = 0;
    rc = store_event_at_ts(r->db, &r->arena, acc.room_nid, ts, forwards, &event_id, &event_ts);
    if (rc == 0) {
        /* An event the user may not see is as good as none. */
        struct store_event se;
        bool visible = false;
        rc = store_event_get(r->db, &r->arena, event_id, &se);
        if (rc == 0) {
            rc = client__event_visible(r, &acc, &se, &visible);
            if (rc) {
                return rc;
            }
            rc = visible ? 0 : -ERR_NOT_FOUND;
        }
    }
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Unable to find event from %lld in %s direction", ts,
                        forwards ? "forward" : "backward");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:s,s:I}", "event_id", event_id, "origin_server_ts",
                                      (json_int_t)event_ts));
}

/* ---- POST /rooms/{roomId}/forget ---- */

/*
 * Forgetting needs the user out of the room: joined, invited or knocking
 * is 400 M_UNKNOWN (the spec's example; Synapse refuses every membership
 * but leave and ban). A room the user never belonged to, or one unknown
 * here, has nothing to forget and answers 200 as Synapse does.
 */
int client_forget(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    const char *membership = NULL;
    rc = room_membership(r, room_id, r->auth.user_id, &membership);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && !membership)) {
        return req_json(r, 200, json_object());
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (!streq(membership, "leave") && !streq(membership, "ban")) {
        return req_fail(r, -ERR_BAD_REQUEST, "User %s is in room %s", r->auth.user_id, room_id);
    }
    struct store_room room;
    rc = store_room_get(r->db, &r->arena, room_id, &room);
    if (rc == 0) {
        rc = store_room_forget(r->db, r->auth.user_id, room.nid, req_now_ms());
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_object());
}

/* ---- POST /knock/{roomIdOrAlias} ---- */

/*
 * Sends membership "knock" (room versions 7+ with join rule "knock", 10+
 * also "knock_restricted"; the auth rules decide). A room this server is
 * not in (or knows only out of band) is knocked on through the `via` /
 * `server_name` servers (remote_membership.c).
 */
int client_knock(struct req *r)
{
    const char *room_id = NULL;
    int rc = client__resolve_room(r, r->param[0].p, &room_id);
    if (rc) {
        return rc;
    }
    const struct room_version *rv = room_version_of(r, room_id);
    if (!rv || client__room_outofband(r, room_id)) {
        return client__knock_remote(r, room_id, answer_room_id);
    }
    if (!rv->knock) {
        return req_fail(r, -ERR_FORBIDDEN, "Room version %s does not support knocking", rv->id);
    }
    rc = client__set_membership(r, room_id, r->auth.user_id, "knock", NULL);
    if (rc) {
        return rc;
    }
    r->result = room_id;
    return room_wait_durable(r, answer_room_id);
}

/* ---- restricted joins (called by client_join) ---- */

bool client__level_value(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    const char *s = json_string_value(v);
    if (s && *s) {
        char *end;
        long long n = strtoll(s, &end, 10);
        if (*end == '\0') {
            *out = n;
            return true;
        }
    }
    return false;
}

/* Whether one allow condition holds for the user: only m.room_membership
 * (joined to the named room) is defined; rooms unknown here cannot be
 * verified and so do not count. */
static bool allow_condition_met(struct req *r, const json_t *cond)
{
    const char *room = json_get_str(cond, "room_id");
    if (!streq(json_get_str(cond, "type"), "m.room_membership") || !room) {
        return false;
    }
    const char *m = NULL;
    return room_membership(r, room, r->auth.user_id, &m) == 0 && streq(m, "join");
}

/*
 * The local joined member with the highest power level, if it reaches the
 * "invite" level (Synapse's choice of authorising user); NULL otherwise.
 */
static const char *authorising_user(struct req *r, const char *room_id)
{
    json_t *pl = NULL, *pdus = NULL;
    int64_t invite_level = 0;
    if (room_state_event(r, room_id, "m.room.power_levels", "", &pl) == 0 && pl) {
        json_arena(&r->arena, pl);
        client__level_value(json_object_get(json_object_get(pl, "content"), "invite"),
                            &invite_level);
    }
    if (room_state_all(r, room_id, &pdus) < 0) {
        return NULL;
    }
    json_arena(&r->arena, pdus);
    const char *best = NULL;
    int64_t best_level = 0;
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu)
    {
        const char *user = json_get_str(pdu, "state_key");
        if (!streq(json_get_str(pdu, "type"), "m.room.member") ||
            !streq(json_get_str(json_get_obj(pdu, "content"), "membership"), "join") ||
            !user || !client__local_part(r, user)) {
            continue;
        }
        int64_t level = 0, redact_level;
        if (room_power(r, room_id, user, &level, &redact_level) < 0) {
            continue;
        }
        if (!best || level > best_level) {
            best = arena_strdup(&r->arena, user);
            best_level = level;
        }
    }
    return best && best_level >= invite_level ? best : NULL;
}

int client__restricted_join(struct req *r, const char *room_id, json_t **extra)
{
    *extra = NULL;
    const struct room_version *rv = room_version_of(r, room_id);
    if (!rv || !rv->restricted_join) {
        return 0; /* unknown rooms fail in room_send as before */
    }
    json_t *jr = NULL;
    int rc = room_state_event(r, room_id, "m.room.join_rules", "", &jr);
    if (rc < 0 || !jr) {
        return 0;
    }
    json_arena(&r->arena, jr);
    const json_t *content = json_get_obj(jr, "content");
    const char *rule = json_get_str(content, "join_rule");
    if (!streq(rule, "restricted") && !(rv->knock_restricted && streq(rule, "knock_restricted"))) {
        return 0;
    }
    /* Invited users join as under "invite"; joined users only change
     * their member event. Neither needs an authorising user. */
    const char *m = NULL;
    rc = room_membership(r, room_id, r->auth.user_id, &m);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (streq(m, "join") || streq(m, "invite")) {
        return 0;
    }
    const json_t *allow = json_get_arr(content, "allow");
    bool met = false;
    for (size_t i = 0; !met && i < json_array_size(allow); i++) {
        met = allow_condition_met(r, json_array_get(allow, i));
    }
    if (!met) {
        return req_fail(r, -ERR_FORBIDDEN,
                        "You do not belong to any of the rooms required to join %s", room_id);
    }
    const char *via = authorising_user(r, room_id);
    if (!via) {
        return req_fail(r, -ERR_UNABLE_TO_GRANT_JOIN,
                        "No user of this server in %s can issue invites", room_id);
    }
    *extra = json_arena(&r->arena, json_pack("{s:s}", "join_authorised_via_users_server", via));
    return 0;
}
