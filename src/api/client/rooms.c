/*
 * Rooms for local users (spec: Client-Server API "Rooms", "Room
 * membership", "Sending events to a room", "Getting events for a room"):
 * createRoom, send, state, single events, membership changes, members and
 * /messages. Every event goes through svc/room's room_send, so it is a
 * full, signed PDU authorised by the core's rules; invites of users of
 * other servers, and leaving, joining or knocking on rooms known here only
 * out of band, go through other servers first (remote_membership.c,
 * remote_join.c).
 *
 * Reading goes through visibility.c: joined members, former members (up
 * to their leave) and anyone in a world_readable room, each event filtered
 * by the history visibility in force at it. Whole-state reads of the
 * current state (/state, /members, /joined_members) are assembled from
 * the JSON text svc/room caches per state event (room_state_walk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/client/filter.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "base/str.h"
#include "config.h"
#include "core/id.h"
#include "core/roomver.h"
#include "store/store.h"
#include "svc/presence.h"
#include "svc/room.h"
#include "svc/srv.h"

#define MESSAGES_DEFAULT_LIMIT 10
#define MESSAGES_MAX_LIMIT 1000
/* Events one /messages request examines at most: MESSAGES_SCAN_BASE plus
 * MESSAGES_SCAN_PER_EVENT per event asked for, never over
 * MESSAGES_SCAN_MAX; and the batch read at once when filters or
 * visibility may leave events out. */
#define MESSAGES_SCAN_BASE 100
#define MESSAGES_SCAN_PER_EVENT 10
#define MESSAGES_SCAN_MAX 2000
#define MESSAGES_BATCH 50

/* ---- serving events ---- */

/*
 * The client format of a PDU (spec "ClientEvent"): the federation-only
 * keys removed, the event ID added, unsigned.age computed.
 */
json_t *client__event(const json_t *pdu, const char *event_id)
{
    json_t *ev = json_object();
    static const char *const keep[] = {"type",    "content",  "sender", "origin_server_ts",
                                       "room_id", "state_key", "redacts"};
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        json_t *v = json_object_get(pdu, keep[i]);
        if (v) {
            json_object_set(ev, keep[i], v);
        }
    }
    json_object_set_new(ev, "event_id", json_string(event_id));
    if (!json_object_get(ev, "room_id") && event_id[0] == '$') {
        /* v12: the create event has no room_id; the room ID is its event
         * ID with the sigil "!" (rooms/v12 "Room IDs"). ClientEvent
         * requires room_id. */
        json_object_set_new(ev, "room_id", json_sprintf("!%s", event_id + 1));
    }
    json_t *unsigned_ = json_object_get(pdu, "unsigned");
    json_t *u = json_is_object(unsigned_) ? json_deep_copy(unsigned_) : json_object();
    long long ts;
    if (json_get_int(pdu, "origin_server_ts", &ts)) {
        long long age = req_now_ms() - ts;
        json_object_set_new(u, "age", json_integer(age > 0 ? age : 0));
    }
    json_object_set_new(ev, "unsigned", u);
    return ev;
}

/*
 * Serves a stored event: the client format, plus unsigned.redacted_because
 * with the redaction event when it was redacted (spec "Redactions").
 */
json_t *client__stored_event(struct req *r, const struct store_event *se)
{
    json_error_t e;
    json_t *pdu = json_loads(se->json, 0, &e);
    if (!pdu) {
        return NULL;
    }
    json_t *ev = client__event(pdu, se->event_id);
    json_decref(pdu);
    if (se->redacted_by) {
        struct store_event red;
        if (store_event_get(r->db, &r->arena, se->redacted_by, &red) == 0) {
            json_t *rpdu = json_loads(red.json, 0, &e);
            if (rpdu) {
                json_object_set_new(json_object_get(ev, "unsigned"), "redacted_because",
                                    client__event(rpdu, red.event_id));
                json_decref(rpdu);
            }
        }
    }
    return ev;
}

/* The client format of a current-state PDU from svc/room, which carries
 * its "event_id" (inline in v1/v2, added by the room service after). */
json_t *client__state_event(struct req *r, const json_t *pdu)
{
    const char *id = json_get_str(pdu, "event_id");
    return client__event(pdu, id ? id : "");
}

/* ---- access checks ---- */

/* 0 when r->auth.user_id is joined to the room; otherwise the error. */
int client__require_joined(struct req *r, const char *room_id)
{
    const char *membership = NULL;
    int rc = room_membership(r, room_id, r->auth.user_id, &membership);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && (!membership || strcmp(membership, "join") != 0))) {
        return req_fail(r, -ERR_FORBIDDEN, "You are not joined to %s", room_id);
    }
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

int client__check_room_id(struct req *r, const char *room_id)
{
    if (!id_room_valid(room_id, strlen(room_id))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a room ID", room_id);
    }
    return 0;
}

int client__require_joined_room(struct req *r, const char *room_id)
{
    int rc = client__check_room_id(r, room_id);
    return rc ? rc : client__require_joined(r, room_id);
}

int client__room_event(struct req *r, const char *room_id, const char *event_id,
                       struct store_event *se, struct store_room *room)
{
    int rc = store_event_get(r->db, &r->arena, event_id, se);
    if (rc == 0) {
        rc = store_room_get(r->db, &r->arena, room_id, room);
    }
    if (rc == -ERR_NOT_FOUND || (rc == 0 && (se->room_nid != room->nid || se->rejected))) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

int client__known_room(struct req *r, const char *room_id, struct store_room *room)
{
    int rc = store_room_get(r->db, &r->arena, room_id, room);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Room not found");
    }
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

/* ---- sending ---- */

static int send_state(struct req *r, const char *room_id, const char *type,
                      const char *state_key, const json_t *content, const char **event_id)
{
    struct room_event_in in = {.room_id = room_id,
                               .sender = r->auth.user_id,
                               .type = type,
                               .state_key = state_key,
                               .content = content};
    struct room_event_out out;
    int rc = room_send(r, &in, &out);
    if (rc == 0 && event_id) {
        *event_id = out.event_id;
    }
    return rc;
}

static int do_redact(struct req *r, const char *room_id, const char *event_id, const char *txn);

/* ---- answers once the events are durable (room_wait_durable) ---- */

static int answer_event_id(struct req *r)
{
    return req_json(r, 200, json_pack("{s:s}", "event_id", r->result));
}

static int answer_room_id(struct req *r)
{
    return req_json(r, 200, json_pack("{s:s}", "room_id", r->result));
}

static int answer_empty(struct req *r) { return req_json(r, 200, json_object()); }

/* createRoom with visibility public: list the room once it is stored. */
static int answer_created_public(struct req *r)
{
    struct store_room row;
    int rc = store_room_get(r->db, &r->arena, r->result, &row);
    if (rc == 0) {
        rc = store_room_set_published(r->db, row.nid, true);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return answer_room_id(r);
}

int client_send(struct req *r)
{
    const char *room_id = r->param[0].p, *type = r->param[1].p, *txn = r->param[2].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    if (strcmp(type, "m.room.redaction") == 0) {
        /* Spec v1.18: redactions may be sent through /send in every room
         * version, naming the target in content.redacts. */
        const char *target = json_get_str(r->json, "redacts");
        if (!target) {
            return req_fail(r, -ERR_MISSING_PARAM, "content.redacts is required");
        }
        return do_redact(r, room_id, target, txn);
    }
    rc = client__check_relation(r, room_id, type, r->json);
    if (rc) {
        return rc;
    }
    struct room_event_in in = {.room_id = room_id,
                               .sender = r->auth.user_id,
                               .type = type,
                               .content = r->json,
                               .txn_id = txn};
    struct room_event_out out;
    rc = room_send(r, &in, &out);
    if (rc) {
        return rc;
    }
    if (r->srv->presence) {
        presence_on_activity(r->srv->presence, r->auth.user_id); /* sending is activity */
    }
    r->result = out.event_id;
    return room_wait_durable(r, answer_event_id);
}

/* Whether the room's m.room.guest_access lets guests join. */
static bool guests_can_join(struct req *r, const char *room_id)
{
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, "m.room.guest_access", "", &pdu) != 0 || !pdu) {
        return false;
    }
    const char *ga = json_get_str(json_get_obj(pdu, "content"), "guest_access");
    bool ok = ga && strcmp(ga, "can_join") == 0;
    json_decref(pdu);
    return ok;
}

/*
 * Spec "Guest access": when m.room.guest_access stops being can_join, the
 * server makes its guests leave. Each guest leaves by itself (no power
 * needed); a failure is logged and does not fail the state change.
 */
static void make_guests_leave(struct req *r, const char *room_id)
{
    json_t *state = NULL;
    if (room_state_all(r, room_id, &state) != 0) {
        return;
    }
    json_arena(&r->arena, state);
    size_t i;
    json_t *pdu;
    json_array_foreach(state, i, pdu)
    {
        const char *type = json_get_str(pdu, "type");
        const char *user = json_get_str(pdu, "state_key");
        const char *m = json_get_str(json_get_obj(pdu, "content"), "membership");
        struct store_user u;
        if (!type || strcmp(type, "m.room.member") != 0 || !m || strcmp(m, "join") != 0 ||
            !client__local_part(r, user) || store_user_get(r->db, &r->arena, user, &u) != 0 ||
            !u.is_guest) {
            continue;
        }
        json_t *content = json_arena(&r->arena, json_pack("{s:s}", "membership", "leave"));
        struct room_event_in in = {.room_id = room_id,
                                   .sender = user,
                                   .type = "m.room.member",
                                   .state_key = user,
                                   .content = content};
        struct room_event_out out;
        if (room_send(r, &in, &out) != 0) {
            LOG_WARN("rooms", "guest %s not removed from %s: %s", user, room_id,
                     err_message(r->err));
            r->err = 0;
        }
    }
}

int client_state_put(struct req *r)
{
    const char *room_id = r->param[0].p, *type = r->param[1].p;
    const char *state_key = r->n_params > 2 ? r->param[2].p : "";
    int rc = client__check_room_id(r, room_id);
    if (!rc && strcmp(type, "m.room.canonical_alias") == 0) {
        rc = client__check_canonical_alias(r, room_id, state_key, r->json);
    }
    if (rc) {
        return rc;
    }
    const char *event_id = NULL;
    rc = send_state(r, room_id, type, state_key, r->json, &event_id);
    if (rc) {
        return rc;
    }
    if (strcmp(type, "m.room.guest_access") == 0 && !*state_key &&
        !guests_can_join(r, room_id)) {
        make_guests_leave(r, room_id);
    }
    r->result = event_id;
    return room_wait_durable(r, answer_event_id);
}

/* ---- reading state and events ---- */

/* State reads follow client__room_access: the current state for members
 * and world_readable peekers, the state at their leave for former members. */
int client_state_get(struct req *r)
{
    const char *room_id = r->param[0].p, *type = r->param[1].p;
    const char *state_key = r->n_params > 2 ? r->param[2].p : "";
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    json_t *pdu = NULL;
    rc = client__access_state_event(r, &acc, type, state_key, &pdu);
    if (rc) {
        return rc;
    }
    if (!pdu) {
        return req_fail(r, -ERR_NOT_FOUND, "No %s state with key '%s'", type, state_key);
    }
    const char *format = req_query(r, "format");
    if (format && strcmp(format, "event") == 0) {
        return req_json(r, 200, client__state_event(r, pdu));
    }
    return req_json(r, 200, json_deep_copy(json_object_get(pdu, "content")));
}

/* ---- whole-state reads from the room cache ---- */

/*
 * GET /state, /members and /joined_members of the current state are
 * assembled from renderings the room cache keeps per state event
 * (room_state_walk), so a 10,000-member room is not converted and
 * serialised again on every read. The client format (client__event)
 * carries unsigned.age, which changes with the clock: the cached
 * rendering stops inside "unsigned" and each read appends the age.
 */

/* The client format of a state event up to its "unsigned" object, left
 * open: `{...,"unsigned":{` plus the PDU's own unsigned keys but "age",
 * which the read appends (state_emit). */
static void render_client_state(const struct room_state_view *v, struct buf *out)
{
    json_t *ev = client__event(v->pdu, v->event_id);
    json_t *u = json_incref(json_object_get(ev, "unsigned"));
    json_object_del(ev, "unsigned");
    if (v->has_ts) {
        json_object_del(u, "age");
    }
    char *head = json_dumps(ev, JSON_COMPACT);
    char *tail = json_dumps(u, JSON_COMPACT);
    size_t hl = head ? strlen(head) : 0, tl = tail ? strlen(tail) : 0;
    /* Both are objects, "{...}"; drop their closing braces. */
    if (hl >= 2 && tl >= 2) {
        buf_append(out, head, hl - 1);
        buf_append_cstr(out, ",\"unsigned\":");
        buf_append(out, tail, tl - 1);
    }
    free(head);
    free(tail);
    json_decref(u);
    json_decref(ev);
}

/* Appends a decimal integer. */
static void append_uint(struct buf *out, unsigned long long u)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    buf_append(out, tmp + sizeof(tmp) - n, n);
}

/* Emits state events as a comma-separated list of client events. */
struct state_emit {
    struct buf *out;
    size_t n;
    int64_t now;
    const char *membership, *not_membership; /* /members filters, NULL: none */
};

static void state_emit(void *ctx, const struct room_state_view *v, struct str text)
{
    struct state_emit *em = ctx;
    if (text.len == 0) {
        return; /* not serialisable; never expected */
    }
    if (em->n++) {
        buf_append_char(em->out, ',');
    }
    buf_append(em->out, text.p, text.len);
    if (v->has_ts) {
        /* As client__event: the age, never negative. */
        buf_append_cstr(em->out, text.p[text.len - 1] == '{' ? "\"age\":" : ",\"age\":");
        /* Unsigned: a far-past timestamp must not overflow. */
        int64_t ts = v->origin_server_ts;
        unsigned long long age =
            ts >= em->now ? 0 : (unsigned long long)em->now - (unsigned long long)ts;
        append_uint(em->out, age);
    }
    buf_append_cstr(em->out, "}}");
}

/* /members filters (spec "GET /rooms/{roomId}/members"): events without a
 * string membership never match. */
static bool member_wanted(void *ctx, const struct room_state_view *v)
{
    const struct state_emit *em = ctx;
    const char *m = v->membership;
    return m && !(em->membership && strcmp(m, em->membership) != 0) &&
           !(em->not_membership && strcmp(m, em->not_membership) == 0);
}

/* Writes `open`, the walked events, then `close` as the response. */
static int answer_walk(struct req *r, struct state_emit *em, struct room_walk *w,
                       const char *open, const char *close)
{
    struct buf *out = req_json_raw(r, 200);
    em->out = out;
    em->now = req_now_ms();
    w->ctx = em;
    buf_append_cstr(out, open);
    int rc = room_state_walk(r, r->param[0].p, w);
    if (rc < 0) {
        buf_reset(out);
        return req_fail(r, rc, NULL);
    }
    buf_append_cstr(out, close);
    return 0;
}

int client_state_all(struct req *r)
{
    struct client_room_access acc;
    json_t *pdus;
    int rc = client__room_access(r, r->param[0].p, &acc);
    if (rc) {
        return rc;
    }
    if (acc.kind != CLIENT_ACCESS_DEPARTED) {
        struct state_emit em = {0};
        struct room_walk w = {.render = render_client_state, .visit = state_emit};
        return answer_walk(r, &em, &w, "[", "]");
    }
    rc = client__access_state(r, &acc, &pdus);
    if (rc) {
        return rc;
    }
    json_t *out = json_array();
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu) { json_array_append_new(out, client__state_event(r, pdu)); }
    return req_json(r, 200, out);
}

/* An event the user may not see is "not found" (spec GET /event: "not
 * found or you do not have permission to read this event"). */
int client_event_get(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    struct store_event se;
    struct store_room room;
    rc = client__room_event(r, room_id, event_id, &se, &room);
    if (rc) {
        return rc;
    }
    bool visible;
    rc = client__event_visible(r, &acc, &se, &visible);
    if (rc) {
        return rc;
    }
    if (!visible) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    json_t *ev = client__stored_event(r, &se);
    if (!ev) {
        return req_fail(r, -ERR_UNKNOWN, "Stored event is unreadable");
    }
    client__bundle_aggregations(r, ev);
    return req_json(r, 200, ev);
}

/*
 * Tokens for /messages: "s<N>" is the position just after the event with
 * stream ordering N. Paging backwards from it returns N, N-1, ...; paging
 * forwards returns N+1, N+2, ... So the "end" of one page, used as "from"
 * in the opposite direction, returns that page again, and "start" of a
 * backwards page from now, paged forwards, returns what was sent since.
 * An empty token counts as absent (as Synapse does; nio sends from=).
 * A /sync token ("s<N>" followed by "_<M>" parts for the other streams)
 * is accepted too and means its event position N (spec: prev_batch and
 * next_batch of /sync may be used with /messages and /members?at=).
 */
bool client__parse_stream_token(const char *s, int64_t *out)
{
    if (!s || s[0] != 's') {
        return false;
    }
    char *end;
    long long v = strtoll(s + 1, &end, 10);
    if (end == s + 1 || v < 0) {
        return false;
    }
    while (*end == '_') {
        const char *part = end + 1;
        long long other = strtoll(part, &end, 10);
        if (end == part || other < 0) {
            return false;
        }
    }
    if (*end) {
        return false;
    }
    *out = v;
    return true;
}

/* The parameters of one /messages page. */
struct page {
    bool backwards;
    int64_t from; /* backwards: events <= from; forwards: events > from */
    int64_t to;   /* -1: none; else stop before passing it */
    long limit;
};

/* Whether stream position `so` lies beyond the page's `to` bound or the
 * reader's cap (nothing further that way may be served). */
static bool page_beyond(const struct page *p, const struct client_room_access *acc, int64_t so)
{
    if (p->to >= 0 && (p->backwards ? so <= p->to : so > p->to)) {
        return true;
    }
    return !p->backwards && so > acc->cap;
}

/*
 * Fills `chunk` with up to p->limit events the user may see and that pass
 * the filter, reading the room in batches. At most a budget of events
 * (see MESSAGES_SCAN_BASE) is examined, so a filter or visibility rule
 * that hides most of a long room still answers quickly; *last is the position of the last
 * event examined (where the next page continues) and *exhausted tells that
 * nothing further can be served in this direction. kept[] receives the
 * stored form of the events put in the chunk.
 */
static int page_read(struct req *r, struct client_room_access *acc, const struct page *p,
                     const struct filter_events *f, json_t *chunk, struct store_event *kept,
                     int64_t *last, bool *exhausted)
{
    size_t have = 0, scanned = 0;
    size_t budget = MESSAGES_SCAN_BASE + MESSAGES_SCAN_PER_EVENT * (size_t)p->limit;
    if (budget > MESSAGES_SCAN_MAX) {
        budget = MESSAGES_SCAN_MAX;
    }
    int64_t pos = p->from;
    bool restrict_ = filter_events_restrict(f) || acc->kind != CLIENT_ACCESS_JOINED;
    *last = p->from;
    *exhausted = false;
    while (have < (size_t)p->limit && !*exhausted && scanned < budget) {
        /* One more than needed tells whether the history goes on; when
         * events may be filtered out, read larger batches. */
        long want = p->limit - (long)have + 1;
        if (restrict_ && want < MESSAGES_BATCH) {
            want = MESSAGES_BATCH;
        }
        if (want > (long)(budget - scanned) + 1) {
            want = (long)(budget - scanned) + 1;
        }
        /* The store reads strictly before or after its bound. */
        int64_t bound = p->backwards ? (pos < INT64_MAX ? pos + 1 : pos) : pos;
        struct store_event *evs = NULL;
        size_t n = 0;
        int rc = store_room_events(r->db, &r->arena, acc->room_nid, bound, p->backwards,
                                   (int)want, &evs, &n);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        bool *ok = arena_alloc(&r->arena, (n ? n : 1) * sizeof(*ok));
        rc = client__visible_events(r, acc, evs, n, ok);
        if (rc) {
            return rc;
        }
        size_t i = 0;
        for (; i < n && have < (size_t)p->limit && scanned < budget; i++) {
            if (page_beyond(p, acc, evs[i].stream_ordering)) {
                *exhausted = true;
                break;
            }
            pos = *last = evs[i].stream_ordering;
            scanned++;
            if (!ok[i]) {
                continue;
            }
            json_t *ev = client__stored_event(r, &evs[i]);
            if (!ev) {
                continue;
            }
            if (!filter_events_pass(f, ev)) {
                json_decref(ev);
                continue;
            }
            json_array_append_new(chunk, ev);
            kept[have++] = evs[i];
        }
        if (i == n && n < (size_t)want) {
            *exhausted = true; /* the store has nothing further */
        }
    }
    return 0;
}

/*
 * GET /rooms/{roomId}/messages (spec "Getting events for a room"): events
 * the user may see (client__room_access, client__visible_events) that
 * pass the RoomEventFilter of `filter`, between `from` and `to`. "end" is
 * present unless nothing further can be served in this direction, also
 * when the filter or visibility left the page short or empty. With
 * lazy_load_members, "state" holds the m.room.member events of the
 * chunk's senders as of its first event (as Synapse; redundant members
 * are always sent).
 */
int client_messages(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    const char *dir = req_query(r, "dir");
    struct page p = {.backwards = !dir || strcmp(dir, "b") == 0, .to = -1};
    if (dir && strcmp(dir, "b") != 0 && strcmp(dir, "f") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'dir' must be 'b' or 'f'");
    }
    p.from = p.backwards ? rooms_stream_pos(r->srv->rooms) : 0;
    const char *from_s = req_query(r, "from");
    if (from_s && *from_s && !client__parse_stream_token(from_s, &p.from)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'from' token");
    }
    const char *to_s = req_query(r, "to");
    if (to_s && *to_s && !client__parse_stream_token(to_s, &p.to)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'to' token");
    }
    p.limit = MESSAGES_DEFAULT_LIMIT;
    const char *limit_s = req_query(r, "limit");
    if (limit_s) {
        char *end;
        p.limit = strtol(limit_s, &end, 10);
        if (*end || end == limit_s || p.limit < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
        }
    }
    struct filter_events f;
    rc = client__filter_param(r, &f);
    if (rc) {
        return rc;
    }
    if (f.limit >= 0 && f.limit < p.limit) {
        p.limit = (long)f.limit;
    }
    if (p.limit > MESSAGES_MAX_LIMIT) {
        p.limit = MESSAGES_MAX_LIMIT;
    }
    /* A former member pages from their leave at the latest. */
    if (p.backwards && p.from > acc.cap) {
        p.from = acc.cap;
    }

    json_t *chunk = json_array();
    struct store_event *kept = arena_alloc(&r->arena, (size_t)(p.limit ? p.limit : 1) *
                                                          sizeof(*kept));
    int64_t last = p.from;
    bool exhausted = true;
    if (p.limit > 0) {
        rc = page_read(r, &acc, &p, &f, chunk, kept, &last, &exhausted);
        if (rc) {
            json_decref(chunk);
            return rc;
        }
    }
    client__bundle_aggregations(r, chunk);
    json_t *body = json_object();
    json_object_set_new(body, "chunk", chunk);
    json_object_set_new(body, "start",
                        json_string(arena_printf(&r->arena, "s%lld", (long long)p.from)));
    if (!exhausted) {
        json_object_set_new(body, "end", json_string(arena_printf(
                                             &r->arena, "s%lld",
                                             (long long)(p.backwards ? last - 1 : last))));
    }
    if (f.lazy_load_members && json_array_size(chunk) > 0) {
        json_t *senders = json_arena(&r->arena, json_object());
        size_t i;
        json_t *ev;
        json_array_foreach(chunk, i, ev)
        {
            const char *sender = json_get_str(ev, "sender");
            if (sender) {
                json_object_set_new(senders, sender, json_true());
            }
        }
        json_t *state = json_array();
        json_object_set_new(body, "state", state);
        rc = client__members_after(r, &kept[0], senders, state);
        if (rc) {
            json_decref(body);
            return rc;
        }
    }
    return req_json(r, 200, body);
}

/* ---- redactions ---- */

/*
 * PUT /rooms/{roomId}/redact/{eventId}/{txnId}: sends m.room.redaction.
 * Redacting another user's event needs the room's "redact" level (the
 * condition room versions 3+ apply before serving a redaction; v1-v2 check
 * it in the auth rules too).
 */
int client_redact(struct req *r)
{
    return do_redact(r, r->param[0].p, r->param[1].p, r->param[2].p);
}

static int do_redact(struct req *r, const char *room_id, const char *event_id, const char *txn)
{
    int rc = client__require_joined_room(r, room_id);
    if (rc) {
        return rc;
    }
    if (!id_event_valid(event_id, strlen(event_id))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not an event ID", event_id);
    }
    struct store_event target;
    struct store_room room;
    rc = store_event_get(r->db, &r->arena, event_id, &target);
    if (rc == 0) {
        rc = store_room_get(r->db, &r->arena, room_id, &room);
    }
    if (rc == -ERR_NOT_FOUND || (rc == 0 && target.room_nid != room.nid)) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_error_t e;
    json_t *tpdu = json_arena(&r->arena, json_loads(target.json, 0, &e));
    const char *target_sender = tpdu ? json_get_str(tpdu, "sender") : NULL;
    if (!target_sender || strcmp(target_sender, r->auth.user_id) != 0) {
        int64_t level = 0, redact_level = 50;
        rc = room_power(r, room_id, r->auth.user_id, &level, &redact_level);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        if (level < redact_level) {
            return req_fail(r, -ERR_FORBIDDEN, "You do not have the power to redact this event");
        }
    }
    json_t *content = json_arena(&r->arena, json_object());
    const char *reason = json_get_str(r->json, "reason");
    if (reason) {
        json_object_set_new(content, "reason", json_string(reason));
    }
    struct room_event_in in = {.room_id = room_id,
                               .sender = r->auth.user_id,
                               .type = "m.room.redaction",
                               .content = content,
                               .redacts = event_id,
                               .txn_id = txn};
    struct room_event_out out;
    rc = room_send(r, &in, &out);
    if (rc) {
        return rc;
    }
    r->result = out.event_id;
    return room_wait_durable(r, answer_event_id);
}

/* ---- membership ---- */

/* Sends m.room.member for `target` with `membership` and optional reason. */
int client__set_membership(struct req *r, const char *room_id, const char *target,
                          const char *membership, json_t *extra)
{
    json_t *content = json_pack("{s:s}", "membership", membership);
    if (extra) {
        json_object_update(content, extra);
    }
    const char *reason = json_get_str(r->json, "reason");
    if (reason) {
        json_object_set_new(content, "reason", json_string(reason));
    }
    if ((strcmp(membership, "join") == 0 || strcmp(membership, "knock") == 0) &&
        strcmp(target, r->auth.user_id) == 0) {
        struct store_profile p;
        if (store_profile_get(r->db, &r->arena, target, &p) == 0) {
            if (p.displayname) {
                json_object_set_new(content, "displayname", json_string(p.displayname));
            }
            if (p.avatar_url) {
                json_object_set_new(content, "avatar_url", json_string(p.avatar_url));
            }
        }
    }
    json_arena(&r->arena, content);
    if (strcmp(membership, "invite") == 0 && r->srv->fed && !client__local_part(r, target)) {
        /* A user of another server: their server signs first (remote_membership.c). */
        return client__invite_remote(r, room_id, target, content, false);
    }
    return send_state(r, room_id, "m.room.member", target, content, NULL);
}

/* Resolves a room ID or a local alias. */
int client__resolve_room(struct req *r, const char *id_or_alias, const char **room_id)
{
    if (id_or_alias[0] == '!') {
        *room_id = id_or_alias;
        return client__check_room_id(r, id_or_alias);
    }
    if (id_or_alias[0] != '#' || !id_alias_valid(id_or_alias, strlen(id_or_alias))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is neither a room ID nor an alias",
                        id_or_alias);
    }
    char *target = NULL;
    int rc = store_alias_get(r->db, &r->arena, id_or_alias, &target, NULL);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Room alias %s not found", id_or_alias);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    *room_id = target;
    return 0;
}

static int join_room(struct req *r, const char *room_id);

/* A join by another server's alias, once that server answered: its
 * servers (then its own) become `via` candidates of a remote join. */
static int join_by_remote_alias(struct req *r)
{
    const char *alias = r->param[0].p, *room_id = NULL;
    const char **servers = NULL;
    size_t n = 0;
    int rc = client__alias_answer(r, alias, &room_id, &servers, &n);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        req_add_query_raw(r, "via", str_percent_encode(&r->arena, servers[i]));
    }
    req_add_query_raw(r, "via", str_percent_encode(&r->arena, id_server_part(alias)));
    return join_room(r, room_id);
}

int client_join(struct req *r)
{
    const char *room_id = NULL;
    int rc = client__alias_remote(r, r->param[0].p, join_by_remote_alias);
    if (!rc) {
        rc = client__resolve_room(r, r->param[0].p, &room_id);
    }
    return rc ? rc : join_room(r, room_id);
}

static int join_room(struct req *r, const char *room_id)
{
    int rc;
    if (!room_version_of(r, room_id) || client__room_outofband(r, room_id)) {
        /* Not a room of this server (perhaps one we are invited to over
         * federation): join through one that has it. */
        return client__join_remote(r, room_id, answer_room_id);
    }
    if (r->auth.is_guest && !guests_can_join(r, room_id)) {
        return req_fail(r, -ERR_GUEST_ACCESS_FORBIDDEN,
                        "Guests may not join this room (m.room.guest_access is not can_join)");
    }
    json_t *extra = NULL;
    rc = client__restricted_join(r, room_id, &extra);
    if (!rc) {
        rc = client__set_membership(r, room_id, r->auth.user_id, "join", extra);
    }
    if (rc) {
        return rc;
    }
    r->result = room_id;
    return room_wait_durable(r, answer_room_id);
}

int client_leave(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (!rc && client__room_outofband(r, room_id)) {
        /* Invited or knocking over federation: leave through the room's servers. */
        return client__leave_remote(r, room_id, answer_empty);
    }
    if (!rc) {
        rc = client__set_membership(r, room_id, r->auth.user_id, "leave", NULL);
    }
    return rc ? rc : room_wait_durable(r, answer_empty);
}

/* invite, kick, ban, unban: {user_id, reason?} acting on another member. */
static int member_action(struct req *r, const char *membership)
{
    const char *room_id = r->param[0].p;
    const char *target = json_get_str(r->json, "user_id");
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    if (!target) {
        return req_fail(r, -ERR_MISSING_PARAM, "'user_id' is required");
    }
    if (!id_user_valid(target, strlen(target), false)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a user ID", target);
    }
    if (strcmp(membership, "unban") == 0) {
        const char *current = NULL;
        rc = room_membership(r, room_id, target, &current);
        if (rc == 0 && (!current || strcmp(current, "ban") != 0)) {
            return req_fail(r, -ERR_FORBIDDEN, "%s is not banned", target);
        }
        membership = "leave";
    } else if (strcmp(membership, "kick") == 0) {
        membership = "leave";
    } else if (strcmp(membership, "invite") == 0 && r->srv->fed &&
               !client__local_part(r, target)) {
        /* The invitee's server signs first; the request waits parked. */
        json_t *content = json_arena(&r->arena, json_pack("{s:s}", "membership", "invite"));
        const char *reason = json_get_str(r->json, "reason");
        if (reason) {
            json_object_set_new(content, "reason", json_string(reason));
        }
        return client__invite_remote(r, room_id, target, content, true);
    }
    rc = client__set_membership(r, room_id, target, membership, NULL);
    return rc ? rc : room_wait_durable(r, answer_empty);
}

int client_invite(struct req *r) { return member_action(r, "invite"); }
int client_kick(struct req *r) { return member_action(r, "kick"); }
int client_ban(struct req *r) { return member_action(r, "ban"); }
int client_unban(struct req *r) { return member_action(r, "unban"); }

int client_joined_rooms(struct req *r)
{
    char **ids = NULL;
    size_t n = 0;
    int rc = store_user_rooms(r->db, &r->arena, r->auth.user_id, "join", &ids, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(ids[i]));
    }
    return req_json(r, 200, json_pack("{s:o}", "joined_rooms", arr));
}

/*
 * The state a member list is read from: with `at` (a /sync or /messages
 * token), the state just after the room's last event at or before that
 * position (never past a former member's leave); otherwise the state the
 * access may read. The current state serves when nothing happened since
 * `at`. Arena-owned array of PDUs; 0 or the failure set on r.
 */
static int members_state(struct req *r, struct client_room_access *acc, json_t **pdus)
{
    const char *at_s = req_query(r, "at");
    int64_t at;
    if (!at_s || !*at_s) {
        return client__access_state(r, acc, pdus);
    }
    if (!client__parse_stream_token(at_s, &at)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'at' token");
    }
    if (at > acc->cap) {
        at = acc->cap;
    }
    struct store_event *later = NULL;
    size_t n_later = 0;
    int rc = store_room_events(r->db, &r->arena, acc->room_nid, at, false, 1, &later, &n_later);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (n_later == 0) {
        return client__access_state(r, acc, pdus);
    }
    struct store_event ev;
    rc = store_event_at_stream(r->db, &r->arena, acc->room_nid, at, &ev);
    if (rc == -ERR_NOT_FOUND) {
        return client__state_after(r, NULL, pdus);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return client__state_after(r, &ev, pdus);
}

/* Member events of the readable state (see members_state), filtered per
 * spec "GET /rooms/{roomId}/members" by membership and not_membership.
 * The current state (no `at`) comes from the room cache's renderings. */
int client_members(struct req *r)
{
    struct client_room_access acc;
    json_t *pdus;
    int rc = client__room_access(r, r->param[0].p, &acc);
    if (rc) {
        return rc;
    }
    const char *want = req_query(r, "membership");
    const char *not_want = req_query(r, "not_membership");
    const char *at = req_query(r, "at");
    if (acc.kind != CLIENT_ACCESS_DEPARTED && (!at || !*at)) {
        struct state_emit em = {.membership = want, .not_membership = not_want};
        struct room_walk w = {.type = "m.room.member",
                              .want = member_wanted,
                              .render = render_client_state,
                              .visit = state_emit};
        return answer_walk(r, &em, &w, "{\"chunk\":[", "]}");
    }
    rc = members_state(r, &acc, &pdus);
    if (rc) {
        return rc;
    }
    json_t *chunk = json_array();
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu)
    {
        const char *type = json_get_str(pdu, "type");
        if (!type || strcmp(type, "m.room.member") != 0) {
            continue;
        }
        const char *m = json_get_str(json_get_obj(pdu, "content"), "membership");
        if (!m || (want && strcmp(m, want) != 0) || (not_want && strcmp(m, not_want) == 0)) {
            continue;
        }
        json_array_append_new(chunk, client__state_event(r, pdu));
    }
    return req_json(r, 200, json_pack("{s:o}", "chunk", chunk));
}

/* The /joined_members entry of a member event: "user":{"display_name",
 * "avatar_url"}, each null unless content has it as a string (Synapse
 * sends both keys; matrix-nio requires display_name). */
static json_t *joined_info(const json_t *content)
{
    const char *dn = json_get_str(content, "displayname");
    const char *av = json_get_str(content, "avatar_url");
    return json_pack("{s:o,s:o}", "display_name", dn ? json_string(dn) : json_null(),
                     "avatar_url", av ? json_string(av) : json_null());
}

static bool joined_wanted(void *ctx, const struct room_state_view *v)
{
    return v->membership && strcmp(v->membership, "join") == 0;
}

/* The joined entry as the text of a one-key object without its braces. */
static void render_joined(const struct room_state_view *v, struct buf *out)
{
    json_t *o = json_object();
    json_object_set_new(o, v->state_key, joined_info(json_get_obj(v->pdu, "content")));
    char *text = json_dumps(o, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    if (len > 2) {
        buf_append(out, text + 1, len - 2);
    }
    free(text);
    json_decref(o);
}

static void joined_emit(void *ctx, const struct room_state_view *v, struct str text)
{
    struct state_emit *em = ctx;
    if (text.len == 0) {
        return;
    }
    if (em->n++) {
        buf_append_char(em->out, ',');
    }
    buf_append(em->out, text.p, text.len);
}

/* Joined members of the readable state: now (from the room cache's
 * renderings), or at a former member's leave. */
int client_joined_members(struct req *r)
{
    struct client_room_access acc;
    json_t *pdus;
    int rc = client__room_access(r, r->param[0].p, &acc);
    if (rc) {
        return rc;
    }
    if (acc.kind != CLIENT_ACCESS_DEPARTED) {
        struct state_emit em = {0};
        struct room_walk w = {.type = "m.room.member",
                              .want = joined_wanted,
                              .render = render_joined,
                              .visit = joined_emit};
        return answer_walk(r, &em, &w, "{\"joined\":{", "}}");
    }
    rc = client__access_state(r, &acc, &pdus);
    if (rc) {
        return rc;
    }
    json_t *joined = json_object();
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu)
    {
        const char *type = json_get_str(pdu, "type");
        const json_t *content = json_get_obj(pdu, "content");
        const char *m = json_get_str(content, "membership");
        const char *user = json_get_str(pdu, "state_key");
        if (!type || strcmp(type, "m.room.member") != 0 || !m || strcmp(m, "join") != 0 ||
            !user) {
            continue;
        }
        json_object_set_new(joined, user, joined_info(content));
    }
    return req_json(r, 200, json_pack("{s:o}", "joined", joined));
}

/* ---- createRoom ---- */

/* The default power levels for a new room (spec "Creation", Synapse's
 * defaults where the spec leaves them open). */
static json_t *default_power_levels(const struct room_version *rv, const char *creator,
                                    const json_t *invitees_100)
{
    json_t *users = json_object();
    if (!rv->privileged_creators) {
        /* v12 creators have infinite power and must not be listed. */
        json_object_set_new(users, creator, json_integer(100));
    }
    if (invitees_100) {
        size_t i;
        json_t *u;
        json_array_foreach(invitees_100, i, u)
        {
            if (json_is_string(u)) {
                json_object_set_new(users, json_string_value(u), json_integer(100));
            }
        }
    }
    /* v12: the tombstone level must be explicitly above state_default (spec
     * "createRoom", step 3); 150 as in the spec's example and Synapse keeps
     * upgrades with the creators rather than PL 100 admins. */
    int tombstone = rv->privileged_creators ? 150 : 100;
    return json_pack("{s:o,s:i,s:{s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i},s:i,s:i,s:i,s:i,s:i,s:i,"
                     "s:{s:i}}",
                     "users", users, "users_default", 0, "events", "m.room.name", 50,
                     "m.room.power_levels", 100, "m.room.history_visibility", 100,
                     "m.room.canonical_alias", 50, "m.room.avatar", 50, "m.room.tombstone",
                     tombstone, "m.room.server_acl", 100, "m.room.encryption", 100, "events_default", 0,
                     "state_default", 50, "ban", 50, "kick", 50, "redact", 50, "invite", 0,
                     "notifications", "room", 50);
}

/*
 * Room version 12, preset trusted_private_chat: the creation content with
 * the invitees merged into "additional_creators", deduplicated and without
 * the creator (spec "createRoom", creation_content; MSC4289). A present but
 * malformed "additional_creators" is left for the auth rules to reject.
 */
static const json_t *trusted_creators(struct req *r, const json_t *creation,
                                      const char *creator, const json_t *invite)
{
    json_t *c = json_arena(&r->arena, creation ? json_deep_copy(creation) : json_object());
    json_t *extra = json_object_get(c, "additional_creators");
    if (!extra) {
        extra = json_array();
        json_object_set_new(c, "additional_creators", extra);
    }
    if (!json_is_array(extra)) {
        return c;
    }
    size_t i, k;
    json_t *u, *have;
    json_array_foreach(invite, i, u)
    {
        bool dup = strcmp(json_string_value(u), creator) == 0;
        json_array_foreach(extra, k, have)
        {
            dup = dup || json_equal(have, u);
        }
        if (!dup) {
            json_array_append(extra, u);
        }
    }
    return c;
}

/* A power level: an integer, or before v10 a string holding one. */
static bool initial_level(const struct room_version *rv, const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (rv->integer_power_levels || !json_is_string(v) || json_string_length(v) == 0) {
        return false;
    }
    char *end;
    long long n = strtoll(json_string_value(v), &end, 10);
    *out = n;
    return *end == '\0';
}

/* The level power levels `pl` require to send state of `type`. */
static int64_t initial_state_level(const struct room_version *rv, const json_t *pl,
                                   const char *type)
{
    int64_t v = 50;
    if (!initial_level(rv, json_object_get(json_get_obj(pl, "events"), type), &v)) {
        initial_level(rv, json_object_get(pl, "state_default"), &v);
    }
    return v;
}

/*
 * Refuses, before anything is stored, power levels that would stop
 * createRoom halfway (spec "createRoom": M_INVALID_ROOM_STATE when the
 * state the request implies is invalid). Room version 12: no creator
 * (the sender and creation_content's additional_creators) may be listed
 * in "users" of the merged levels or of an initial_state m.room.power_levels
 * (auth rule: creators' power is infinite, never listed). Earlier
 * versions: the creator's level under the merged levels must allow the
 * state events and invites the request goes on to send (Synapse refuses
 * an override whose "users" leaves the creator out for this reason).
 */
static int check_initial_power(struct req *r, const struct room_version *rv, const char *creator,
                               const json_t *creation, const json_t *pl,
                               const json_t *initial_state, bool has_alias)
{
    const json_t *users = json_object_get(pl, "users");
    if (users && !json_is_object(users)) {
        return req_fail(r, -ERR_INVALID_ROOM_STATE, "Power levels 'users' must be an object");
    }
    size_t i;
    json_t *v;
    if (rv->privileged_creators) {
        const json_t *lists[8] = {users};
        size_t n_lists = 1;
        json_array_foreach(initial_state, i, v)
        {
            const char *sk = json_get_str(v, "state_key");
            if (n_lists < 8 && strcmp(json_get_str(v, "type"), "m.room.power_levels") == 0 &&
                (!sk || !*sk)) {
                lists[n_lists++] = json_object_get(json_get_obj(v, "content"), "users");
            }
        }
        const json_t *extra = json_object_get(creation, "additional_creators");
        for (size_t k = 0; k < n_lists; k++) {
            const char *bad = json_object_get(lists[k], creator) ? creator : NULL;
            json_array_foreach(extra, i, v)
            {
                if (!bad && json_is_string(v) && json_object_get(lists[k], json_string_value(v))) {
                    bad = json_string_value(v);
                }
            }
            if (bad) {
                return req_fail(r, -ERR_INVALID_ROOM_STATE,
                                "Room creators cannot appear in power levels 'users' in room "
                                "version %s: %s",
                                rv->id, bad);
            }
        }
        return 0;
    }
    int64_t mine = 0;
    if (!initial_level(rv, json_object_get(users, creator), &mine)) {
        initial_level(rv, json_object_get(pl, "users_default"), &mine);
    }
    const char *needs[] = {"m.room.join_rules", "m.room.history_visibility",
                           "m.room.guest_access", has_alias ? "m.room.canonical_alias" : NULL,
                           json_get_str(r->json, "name") ? "m.room.name" : NULL,
                           json_get_str(r->json, "topic") ? "m.room.topic" : NULL};
    for (size_t k = 0; k < sizeof(needs) / sizeof(needs[0]); k++) {
        if (needs[k] && mine < initial_state_level(rv, pl, needs[k])) {
            return req_fail(r, -ERR_INVALID_ROOM_STATE,
                            "The power levels leave you unable to send %s", needs[k]);
        }
    }
    json_array_foreach(initial_state, i, v)
    {
        const char *type = json_get_str(v, "type");
        if (mine < initial_state_level(rv, pl, type)) {
            return req_fail(r, -ERR_INVALID_ROOM_STATE,
                            "The power levels leave you unable to send %s", type);
        }
        if (strcmp(type, "m.room.power_levels") == 0) {
            break; /* later events are judged by those levels */
        }
    }
    int64_t invite = 0;
    initial_level(rv, json_object_get(pl, "invite"), &invite);
    if (json_array_size(json_object_get(r->json, "invite")) > 0 && mine < invite) {
        return req_fail(r, -ERR_INVALID_ROOM_STATE,
                        "The power levels leave you unable to invite");
    }
    return 0;
}

int client_create_room(struct req *r)
{
    const json_t *body = r->json;
    const struct config *cfg = r->srv->cfg;
    const char *version = json_get_str(body, "room_version");
    if (json_object_get(body, "room_version") && !version) {
        return req_fail(r, -ERR_BAD_JSON, "'room_version' must be a string");
    }
    const struct room_version *rv = roomver_get(version ? version : cfg->default_room_version);
    if (!rv) {
        return req_fail(r, -ERR_UNSUPPORTED_ROOM_VERSION, "Room version %s is not supported",
                        version);
    }
    const char *visibility = json_get_str(body, "visibility");
    if (visibility && strcmp(visibility, "public") != 0 && strcmp(visibility, "private") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'visibility' must be public or private");
    }
    bool public_room = visibility && strcmp(visibility, "public") == 0;
    const char *preset = json_get_str(body, "preset");
    if (!preset) {
        preset = public_room ? "public_chat" : "private_chat";
    }
    if (strcmp(preset, "public_chat") != 0 && strcmp(preset, "private_chat") != 0 &&
        strcmp(preset, "trusted_private_chat") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown preset '%s'", preset);
    }
    const json_t *invite = json_object_get(body, "invite");
    if (invite && !json_is_array(invite)) {
        return req_fail(r, -ERR_BAD_JSON, "'invite' must be a list of user IDs");
    }
    size_t i;
    json_t *v;
    json_array_foreach(invite, i, v)
    {
        if (!json_is_string(v) || !id_user_valid(json_string_value(v), json_string_length(v),
                                                 false)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'invite' must hold user IDs");
        }
    }
    const json_t *initial_state = json_object_get(body, "initial_state");
    if (initial_state && !json_is_array(initial_state)) {
        return req_fail(r, -ERR_BAD_JSON, "'initial_state' must be a list");
    }
    json_array_foreach(initial_state, i, v)
    {
        if (!json_is_object(v) || !json_get_str(v, "type") || !json_get_obj(v, "content")) {
            return req_fail(r, -ERR_BAD_JSON, "Each initial_state entry needs type and content");
        }
    }
    const json_t *creation = json_object_get(body, "creation_content");
    if (creation && !json_is_object(creation)) {
        return req_fail(r, -ERR_BAD_JSON, "'creation_content' must be an object");
    }
    const json_t *pl_override = json_object_get(body, "power_level_content_override");
    if (pl_override && !json_is_object(pl_override)) {
        return req_fail(r, -ERR_BAD_JSON, "'power_level_content_override' must be an object");
    }
    const char *alias_name = json_get_str(body, "room_alias_name");
    const char *alias = NULL;
    if (alias_name) {
        alias = arena_printf(&r->arena, "#%s:%s", alias_name, cfg->server_name);
        if (strchr(alias_name, ':') || !id_alias_valid(alias, strlen(alias))) {
            return req_fail(r, -ERR_INVALID_PARAM, "Invalid room alias name");
        }
        char *existing = NULL;
        if (store_alias_get(r->db, &r->arena, alias, &existing, NULL) == 0) {
            return req_fail(r, -ERR_ROOM_IN_USE, "Room alias already taken");
        }
    }
    bool is_direct = false;
    json_get_bool(body, "is_direct", &is_direct);
    bool trusted = strcmp(preset, "trusted_private_chat") == 0;
    const char *creator = r->auth.user_id;
    if (trusted && rv->privileged_creators && json_array_size(invite) > 0) {
        creation = trusted_creators(r, creation, creator, invite);
    }
    /* The power levels, with the override merged over the defaults; v12
     * trusted invitees are additional creators, never listed in users. */
    bool invitees_100 = trusted && !rv->privileged_creators;
    json_t *pl =
        json_arena(&r->arena, default_power_levels(rv, creator, invitees_100 ? invite : NULL));
    if (pl_override) {
        json_object_update(pl, (json_t *)pl_override);
    }
    int rc = check_initial_power(r, rv, creator, creation, pl, initial_state, alias != NULL);
    if (rc) {
        return rc;
    }

    /* 1. m.room.create */
    const char *room_id;
    rc = room_create(r, rv, creator, creation, &room_id);
    if (rc) {
        return rc;
    }
    /* 2. the creator joins */
    rc = client__set_membership(r, room_id, creator, "join", NULL);
    /* 3. power levels */
    if (!rc) {
        rc = send_state(r, room_id, "m.room.power_levels", "", pl, NULL);
    }
    /* 4. canonical alias */
    if (!rc && alias) {
        rc = store_alias_add(r->db, alias, room_id, creator);
        if (rc == -ERR_CONFLICT) {
            rc = req_fail(r, -ERR_ROOM_IN_USE, "Room alias already taken");
        } else if (rc < 0) {
            rc = req_fail(r, rc, NULL);
        } else {
            json_t *c = json_arena(&r->arena, json_pack("{s:s}", "alias", alias));
            rc = send_state(r, room_id, "m.room.canonical_alias", "", c, NULL);
        }
    }
    /* 5. the preset's join rules, history visibility and guest access */
    if (!rc) {
        bool pub = strcmp(preset, "public_chat") == 0;
        json_t *jr = json_arena(&r->arena, json_pack("{s:s}", "join_rule", pub ? "public" : "invite"));
        json_t *hv = json_arena(&r->arena, json_pack("{s:s}", "history_visibility", "shared"));
        rc = send_state(r, room_id, "m.room.join_rules", "", jr, NULL);
        if (!rc) {
            rc = send_state(r, room_id, "m.room.history_visibility", "", hv, NULL);
        }
        if (!rc && !pub) {
            json_t *ga = json_arena(&r->arena, json_pack("{s:s}", "guest_access", "can_join"));
            rc = send_state(r, room_id, "m.room.guest_access", "", ga, NULL);
        }
    }
    /* 6. initial_state */
    json_array_foreach(initial_state, i, v)
    {
        if (rc) {
            break;
        }
        const char *sk = json_get_str(v, "state_key");
        rc = send_state(r, room_id, json_get_str(v, "type"), sk ? sk : "",
                        json_get_obj(v, "content"), NULL);
    }
    /* 7. name and topic */
    const char *name = json_get_str(body, "name");
    if (!rc && name) {
        json_t *c = json_arena(&r->arena, json_pack("{s:s}", "name", name));
        rc = send_state(r, room_id, "m.room.name", "", c, NULL);
    }
    const char *topic = json_get_str(body, "topic");
    if (!rc && topic) {
        json_t *c = json_arena(&r->arena, json_pack("{s:s}", "topic", topic));
        rc = send_state(r, room_id, "m.room.topic", "", c, NULL);
    }
    /* 8. invites */
    json_array_foreach(invite, i, v)
    {
        if (rc) {
            break;
        }
        json_t *extra = json_arena(&r->arena, json_pack("{s:b}", "is_direct", is_direct));
        rc = client__set_membership(r, room_id, json_string_value(v), "invite", extra);
    }
    if (rc) {
        return rc;
    }
    r->result = room_id;
    return room_wait_durable(r, public_room ? answer_created_public : answer_room_id);
}
