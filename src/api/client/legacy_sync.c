/*
 * The syncing endpoints from before /sync, still in the spec (deprecated
 * since r0 except room previews): GET /events (and its peeking form with
 * ?room_id=, spec "Room Previews"), GET /initialSync, GET
 * /rooms/{roomId}/initialSync and GET /events/{eventId}. Served under v3
 * and r0; Synapse's answers break ties where the spec is vague.
 *
 * Tokens are the /sync tokens of svc/streams.h, "s<events>_<receipts>_...",
 * so the `end` of /initialSync feeds /events, and the event part alone is
 * a /messages token (messages.start / messages.end page on in /messages).
 *
 * GET /events returns, after the `from` token (absent: now), in this
 * order: the room events (client format with room_id) of the rooms the
 * user is joined to, up to their leave in rooms they left in the range,
 * and their own invites and knocks, in stream order and filtered by
 * history visibility; then m.typing and m.receipt of the joined rooms
 * (with room_id); then m.presence when presence is enabled. A chunk holds
 * at most `limit` room events; `end` then stops at the last one served,
 * so the next call continues there. With nothing to say it long-polls as
 * /sync does: the request is parked in svc/notify under the user and its
 * joined rooms (the peeked room with ?room_id=) and re-enters this handler
 * through req_continue when something there commits. The `from` position
 * is kept in r->result across re-entries, so a call without `from` still
 * answers with what happened after its arrival.
 *
 * A user's (not a guest's) /events counts as a sync for presence while in
 * flight, as in Synapse.
 *
 * Who may read what comes from visibility.c: members, former members up
 * to their leave, and anyone (guests included) in a world_readable room.
 * Bundled aggregations are left out (spec: not required on deprecated
 * endpoints), except on /events/{eventId} as on /rooms/{id}/event.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "store/store.h"
#include "svc/notify.h"
#include "svc/presence.h"
#include "svc/room.h"
#include "svc/srv.h"
#include "svc/streams.h"
#include "svc/typing.h"

#define EVENTS_DEFAULT_TIMEOUT_MS 30000 /* Synapse's default for /events */
#define EVENTS_MAX_TIMEOUT_MS (60LL * 60 * 1000)
#define EVENTS_DEFAULT_LIMIT 100
#define EVENTS_MAX_LIMIT 500
#define EVENTS_RETRIES 8
#define INITIAL_DEFAULT_LIMIT 10
#define INITIAL_MAX_LIMIT 500
#define RECENT_SCAN_MAX 2000 /* events examined per room before giving up */

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* ---- small helpers ---- */

/* A full token of `now` with its event position replaced by `events`. */
static json_t *token_at(const struct stream_token *now, int64_t events)
{
    struct stream_token t = *now;
    t.pos[STREAM_EVENTS] = events;
    char buf[STREAM_TOKEN_MAX];
    stream_token_format(&t, buf);
    return json_string(buf);
}

/*
 * Parses an optional non-negative integer query parameter into *out
 * (left alone when absent or empty). 0 or the M_INVALID_PARAM failure.
 */
static int query_count(struct req *r, const char *key, long long *out)
{
    const char *s = req_query(r, key);
    if (!s || !*s) {
        return 0;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v < 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' must be a non-negative integer", key);
    }
    *out = v;
    return 0;
}

/* Appends {type: m.receipt, room_id, content} to `events` unless empty;
 * `content` is stolen. */
static void receipt_event_add(json_t *events, const char *room_id, json_t *content)
{
    if (json_object_size(content) == 0) {
        json_decref(content);
        return;
    }
    json_array_append_new(events, json_pack("{s:s,s:s,s:o}", "type", "m.receipt", "room_id",
                                             room_id, "content", content));
}

/* The m.receipt event of every receipt of a room up to `upto`, appended
 * to `events`. 0 or the failure set on r. */
static int room_receipts(struct req *r, const char *room_id, int64_t upto, json_t *events)
{
    struct store_receipt *rcs = NULL;
    size_t n = 0;
    int rc = store_receipts_of_room(r->db, &r->arena, room_id, upto, &rcs, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *content = json_object();
    for (size_t i = 0; i < n; i++) {
        client__receipt_add(content, &rcs[i], r->auth.user_id);
    }
    receipt_event_add(events, room_id, content);
    return 0;
}

/* An m.presence event of the old APIs: content carries user_id too. */
static json_t *presence_event(struct presence *p, const char *user_id)
{
    json_t *content = presence_get(p, user_id);
    if (!json_is_object(content)) {
        json_decref(content);
        return NULL;
    }
    json_object_set_new(content, "user_id", json_string(user_id));
    return json_pack("{s:s,s:s,s:o}", "type", "m.presence", "sender", user_id, "content",
                     content);
}

/* ---- reading a room's events ---- */

/*
 * The newest `limit` events of the room with stream ordering <= upto that
 * the access may see, in chronological order (client format), appended
 * to `chunk`; *first is the stream ordering of the oldest one (upto + 1
 * when none). 0 or the failure set on r.
 */
static int recent_events(struct req *r, struct client_room_access *acc, int64_t upto,
                         long long limit, json_t *chunk, int64_t *first)
{
    *first = upto + 1;
    if (limit <= 0) {
        return 0;
    }
    json_t *picked = json_arena(&r->arena, json_array()); /* newest first */
    int64_t bound = upto + 1;
    int batch = limit + 1 < 20 ? 20 : (int)limit + 1;
    int scanned = 0;
    for (;;) {
        struct store_event *evs = NULL;
        size_t n = 0;
        int rc = store_room_events(r->db, &r->arena, acc->room_nid, bound, true, batch, &evs, &n);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        bool *keep = ARENA_ARRAY(&r->arena, bool, n + 1);
        rc = client__visible_events(r, acc, evs, n, keep);
        if (rc) {
            return rc;
        }
        for (size_t i = 0; i < n && (long long)json_array_size(picked) < limit; i++) {
            if (!keep[i]) {
                continue;
            }
            json_t *ev = client__stored_event(r, &evs[i]);
            if (ev) {
                json_array_append_new(picked, ev);
                *first = evs[i].stream_ordering;
            }
        }
        scanned += (int)n;
        if (n < (size_t)batch || (long long)json_array_size(picked) >= limit ||
            scanned >= RECENT_SCAN_MAX) {
            break;
        }
        bound = evs[n - 1].stream_ordering;
    }
    for (size_t i = json_array_size(picked); i > 0; i--) {
        json_array_append(chunk, json_array_get(picked, i - 1));
    }
    return 0;
}

/*
 * One room as the initialSync endpoints describe it ("RoomInfo"): adds
 * messages (the newest `limit` visible events up to the access's cap and
 * `now`), state (current, or as of the leave), visibility and the user's
 * room account data to `info`. 0 or the failure set on r.
 */
static int room_info(struct req *r, struct client_room_access *acc, const struct stream_token *now,
                     long long limit, json_t *info)
{
    int64_t upto = now->pos[STREAM_EVENTS];
    if (acc->cap < upto) {
        upto = acc->cap;
    }
    json_t *chunk = json_array();
    json_object_set_new(info, "messages", json_pack("{s:o}", "chunk", chunk));
    int64_t first;
    int rc = recent_events(r, acc, upto, limit, chunk, &first);
    if (rc) {
        return rc;
    }
    json_t *messages = json_object_get(info, "messages");
    json_object_set_new(messages, "start", token_at(now, first - 1));
    json_object_set_new(messages, "end", token_at(now, upto));

    json_t *pdus = NULL;
    rc = client__access_state(r, acc, &pdus);
    if (rc) {
        return rc;
    }
    json_t *state = json_array();
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu) { json_array_append_new(state, client__state_event(r, pdu)); }
    json_object_set_new(info, "state", state);

    struct store_room room;
    rc = store_room_get(r->db, &r->arena, acc->room_id, &room);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_object_set_new(info, "visibility", json_string(room.published ? "public" : "private"));

    json_t *ad = json_array();
    json_object_set_new(info, "account_data", ad);
    rc = client__account_data_room(r, r->auth.user_id, acc->room_id, -1,
                                   now->pos[STREAM_ACCOUNT_DATA], ad);
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

/* ---- GET /events ---- */

/* One room event found for the chunk. */
struct found {
    int64_t stream;
    json_t *ev; /* arena-owned */
};

static int cmp_found(const void *a, const void *b)
{
    int64_t x = ((const struct found *)a)->stream, y = ((const struct found *)b)->stream;
    return x < y ? -1 : x > y;
}

struct stream_req {
    struct req *r;
    const char *user_id;
    struct client_room_access *peek; /* ?room_id=: the one room, else NULL */
    struct stream_token from;
    struct stream_token now;
    long long limit;
    struct found *found;
    size_t n_found, cap_found;
};

static void found_add(struct stream_req *s, int64_t stream, json_t *ev)
{
    struct req *r = s->r;
    if (s->n_found == s->cap_found) {
        size_t cap = s->cap_found ? s->cap_found * 2 : 32;
        struct found *grown = ARENA_ARRAY(&r->arena, struct found, cap);
        if (s->n_found) {
            memcpy(grown, s->found, s->n_found * sizeof(*grown));
        }
        s->found = grown;
        s->cap_found = cap;
    }
    s->found[s->n_found++] = (struct found){stream, json_arena(&r->arena, ev)};
}

/*
 * The first limit + 1 events of the room in (from, upto] that the access
 * may see, into s->found. Taking the first limit + 1 of every room is
 * enough: once merged and cut to `limit`, every event up to the last one
 * kept was read.
 */
static int room_events_after(struct stream_req *s, struct client_room_access *acc, int64_t upto)
{
    struct req *r = s->r;
    struct store_event *evs = NULL;
    size_t n = 0;
    int rc = store_room_events(r->db, &r->arena, acc->room_nid, s->from.pos[STREAM_EVENTS], false,
                               (int)s->limit + 1, &evs, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    while (n > 0 && evs[n - 1].stream_ordering > upto) {
        n--;
    }
    bool *keep = ARENA_ARRAY(&r->arena, bool, n + 1);
    rc = client__visible_events(r, acc, evs, n, keep);
    if (rc) {
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *ev = keep[i] ? client__stored_event(r, &evs[i]) : NULL;
        if (ev) {
            found_add(s, evs[i].stream_ordering, ev);
        }
    }
    return 0;
}

static bool nid_in(const int64_t *nids, size_t n, int64_t nid)
{
    for (size_t i = 0; i < n; i++) {
        if (nids[i] == nid) {
            return true;
        }
    }
    return false;
}

/*
 * The room events of the user's rooms in (from, P] into s->found, and the
 * rooms to listen on (joined ones) into *rooms.
 */
static int collect_rooms(struct stream_req *s, char ***rooms, size_t *n_rooms)
{
    struct req *r = s->r;
    int64_t from = s->from.pos[STREAM_EVENTS], pos = s->now.pos[STREAM_EVENTS];
    struct store_sync_membership *ms = NULL;
    size_t n_ms = 0;
    int rc = store_sync_memberships(r->db, &r->arena, s->user_id, &ms, &n_ms);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    int64_t *changed = NULL;
    size_t n_changed = 0;
    if (from < pos) {
        rc = store_sync_changed_rooms(r->db, &r->arena, from, pos, &changed, &n_changed);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
    }
    *rooms = ARENA_ARRAY(&r->arena, char *, n_ms + 1);
    *n_rooms = 0;
    for (size_t i = 0; i < n_ms; i++) {
        const struct store_sync_membership *m = &ms[i];
        struct client_room_access acc = {
            .room_id = m->room_id,
            .room_nid = m->room_nid,
            .membership = m->membership,
            .cap = INT64_MAX,
        };
        bool events_changed = nid_in(changed, n_changed, m->room_nid);
        bool member_changed = m->stream_ordering > from && m->stream_ordering <= pos;
        if (streq(m->membership, "join")) {
            (*rooms)[(*n_rooms)++] = m->room_id;
            acc.kind = CLIENT_ACCESS_JOINED;
            rc = events_changed ? room_events_after(s, &acc, pos) : 0;
        } else if ((streq(m->membership, "leave") || streq(m->membership, "ban")) &&
                   events_changed && m->stream_ordering > from) {
            /* Left in the range: what happened up to the leave. */
            struct store_event *se = ARENA_NEW(&r->arena, struct store_event);
            rc = store_event_get(r->db, &r->arena, m->event_id, se);
            if (rc < 0) {
                return req_fail(r, rc, NULL);
            }
            acc.kind = CLIENT_ACCESS_DEPARTED;
            acc.member_event = se;
            acc.cap = m->stream_ordering;
            rc = room_events_after(s, &acc, m->stream_ordering < pos ? m->stream_ordering : pos);
        } else if ((streq(m->membership, "invite") || streq(m->membership, "knock")) &&
                   member_changed) {
            struct store_event se;
            rc = store_event_get(r->db, &r->arena, m->event_id, &se);
            if (rc < 0) {
                return req_fail(r, rc, NULL);
            }
            json_t *ev = client__stored_event(r, &se);
            if (ev) {
                found_add(s, se.stream_ordering, ev);
            }
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* m.typing and m.receipt of the rooms, changed in (from, now]. */
static int collect_ephemeral(struct stream_req *s, char *const *rooms, size_t n_rooms,
                             json_t *chunk)
{
    struct req *r = s->r;
    struct map in_rooms;
    map_init(&in_rooms);
    for (size_t i = 0; i < n_rooms; i++) {
        map_put(&in_rooms, str_from(rooms[i]), rooms[i]);
        json_t *typing = typing_event(r->srv->typing, rooms[i], s->from.pos[STREAM_TYPING],
                                      s->now.pos[STREAM_TYPING]);
        if (typing) {
            json_object_set_new(typing, "room_id", json_string(rooms[i]));
            json_array_append_new(chunk, typing);
        }
    }
    int rc = 0;
    int64_t after = s->from.pos[STREAM_RECEIPTS], upto = s->now.pos[STREAM_RECEIPTS];
    if (after < upto) {
        struct store_receipt *rcs = NULL;
        size_t n = 0;
        rc = store_receipts_between(r->db, &r->arena, after, upto, &rcs, &n);
        json_t *by_room = json_arena(&r->arena, json_object());
        for (size_t i = 0; rc == 0 && i < n; i++) {
            if (!map_has(&in_rooms, str_from(rcs[i].room_id))) {
                continue;
            }
            json_t *content = json_object_get(by_room, rcs[i].room_id);
            if (!content) {
                content = json_object();
                json_object_set_new(by_room, rcs[i].room_id, content);
            }
            client__receipt_add(content, &rcs[i], s->user_id);
        }
        const char *room_id;
        json_t *content;
        json_object_foreach(by_room, room_id, content)
        {
            receipt_event_add(chunk, room_id, json_incref(content));
        }
    }
    map_release(&in_rooms);
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

/*
 * Computes the answer from s->from at the current position: *body (a new
 * reference) and *empty, and the rooms to listen on for parking.
 */
static int stream_compute(struct stream_req *s, json_t **body, bool *empty, char ***rooms,
                          size_t *n_rooms)
{
    struct req *r = s->r;
    streams_now(r->srv->streams, &s->now);
    for (int k = 0; k < STREAM_N; k++) {
        if (s->from.pos[k] > s->now.pos[k]) {
            s->from.pos[k] = s->now.pos[k]; /* a token from the future: from now */
        }
    }
    s->n_found = 0;
    int64_t pos = s->now.pos[STREAM_EVENTS];
    int rc;
    if (s->peek) {
        *rooms = ARENA_ARRAY(&r->arena, char *, 1);
        (*rooms)[0] = (char *)s->peek->room_id;
        *n_rooms = 1;
        rc = s->from.pos[STREAM_EVENTS] < pos ? room_events_after(s, s->peek, pos) : 0;
    } else {
        rc = collect_rooms(s, rooms, n_rooms);
    }
    if (rc) {
        return rc;
    }
    if (s->n_found > 1) {
        qsort(s->found, s->n_found, sizeof(*s->found), cmp_found);
    }
    int64_t end = pos;
    size_t n = s->n_found;
    if ((long long)n > s->limit) {
        n = (size_t)s->limit;
        end = s->found[n - 1].stream;
    }
    json_t *chunk = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append(chunk, s->found[i].ev);
    }
    rc = collect_ephemeral(s, *rooms, *n_rooms, chunk);
    if (rc == 0 && !s->peek && presence_enabled(r->srv->presence)) {
        json_t *presence = json_arena(&r->arena, json_array());
        rc = presence_sync_events(r->srv->presence, r, s->user_id, s->from.pos[STREAM_PRESENCE],
                                  s->now.pos[STREAM_PRESENCE], presence);
        if (rc < 0) {
            rc = req_fail(r, rc, NULL);
        }
        size_t i;
        json_t *ev;
        json_array_foreach(presence, i, ev) { json_array_append(chunk, ev); }
    }
    if (rc) {
        json_decref(chunk);
        return rc;
    }
    *empty = json_array_size(chunk) == 0;
    *body = json_pack("{s:o,s:s,s:o}", "chunk", chunk, "start", r->result, "end",
                      token_at(&s->now, end));
    return 0;
}

/* The notifier's callback: re-run on an event, else answer empty. */
static void events_woken(struct req *r, enum notify_why why, const struct stream_token *pos)
{
    if (why == NOTIFY_EVENT) {
        req_continue(r, client_events);
        return;
    }
    req_json(r, 200,
             json_pack("{s:[],s:s,s:o}", "chunk", "start", r->result, "end",
                       token_at(pos, pos->pos[STREAM_EVENTS])));
    req_complete(r);
}

/*
 * GET /events (spec old_sync.yaml, deprecated) and its peeking form GET
 * /events?room_id= (peeking_events.yaml, "Room Previews"). Query: from
 * (a stream token; absent: now), timeout (ms, default 30 s), room_id,
 * limit (room events per answer). Guests must name a room (as Synapse);
 * a named room must be joined or world_readable (M_FORBIDDEN). Re-entered
 * by the notifier while parked; the deadline counts from arrival.
 */
int client_events(struct req *r)
{
    struct stream_req s = {.r = r, .user_id = r->auth.user_id, .limit = EVENTS_DEFAULT_LIMIT};
    const char *room_id = req_query(r, "room_id");
    if (room_id && !*room_id) {
        room_id = NULL;
    }
    if (!room_id && r->auth.is_guest) {
        return req_fail(r, -ERR_MISSING_PARAM, "Guest users must specify room_id param");
    }
    /* r->result holds the `from` token once chosen, for re-entries. */
    const char *from = r->result;
    if (!from) {
        from = req_query(r, "from");
        if (from && !*from) {
            from = NULL;
        }
    }
    if (from) {
        if (!stream_token_parse(from, &s.from)) {
            return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'from' token");
        }
    } else {
        char buf[STREAM_TOKEN_MAX];
        streams_now(r->srv->streams, &s.from);
        stream_token_format(&s.from, buf);
        from = arena_strdup(&r->arena, buf);
    }
    if (!r->auth.is_guest) {
        presence_on_sync(r->srv->presence, r, r->auth.user_id, NULL);
    }
    r->result = from;
    long long timeout_ms = EVENTS_DEFAULT_TIMEOUT_MS;
    int rc = query_count(r, "timeout", &timeout_ms);
    if (rc == 0) {
        rc = query_count(r, "limit", &s.limit);
    }
    if (rc) {
        return rc;
    }
    if (timeout_ms > EVENTS_MAX_TIMEOUT_MS) {
        timeout_ms = EVENTS_MAX_TIMEOUT_MS;
    }
    if (s.limit < 1) {
        s.limit = 1;
    } else if (s.limit > EVENTS_MAX_LIMIT) {
        s.limit = EVENTS_MAX_LIMIT;
    }
    if (room_id) {
        s.peek = ARENA_NEW(&r->arena, struct client_room_access);
        rc = client__room_access(r, room_id, s.peek);
        if (rc) {
            return rc;
        }
        if (s.peek->kind == CLIENT_ACCESS_DEPARTED) {
            return req_fail(r, -ERR_FORBIDDEN, "Room %s is not world readable", room_id);
        }
    }
    int64_t deadline = r->start_ns + (int64_t)timeout_ms * 1000000;
    struct notify *n = r->srv->notify;
    for (int attempt = 0;; attempt++) {
        json_t *body = NULL;
        bool empty = false;
        char **rooms = NULL;
        size_t n_rooms = 0;
        rc = stream_compute(&s, &body, &empty, &rooms, &n_rooms);
        if (rc) {
            return rc;
        }
        if (!empty || !n || attempt >= EVENTS_RETRIES || req_now_ns() >= deadline) {
            return req_json(r, 200, body);
        }
        json_decref(body);
        rc = notify_wait(n, r, s.user_id, rooms, n_rooms, &s.now, deadline, events_woken);
        if (rc == REQ_PARKED) {
            return REQ_PARKED;
        }
        if (rc < 0) {
            /* Shutting down: answer now. */
            return req_json(r, 200,
                            json_pack("{s:[],s:s,s:o}", "chunk", "start", from, "end",
                                      token_at(&s.now, s.now.pos[STREAM_EVENTS])));
        }
        /* Something committed meanwhile: compute again. */
    }
}

/* ---- GET /initialSync ---- */

/* Whether room_id is among the user's forgotten rooms. */
static bool in_list(char *const *ids, size_t n, const char *room_id)
{
    for (size_t i = 0; i < n; i++) {
        if (streq(ids[i], room_id)) {
            return true;
        }
    }
    return false;
}

/*
 * GET /initialSync (spec old_sync.yaml, deprecated). Query: limit
 * (messages per room, default 10), archived (also rooms the user left).
 * Every joined and invited room (with the invite event), and with
 * archived the rooms left (messages up to the leave, state at the leave;
 * forgotten rooms stay out) and banned (membership only); the presence
 * of the user and everyone sharing a room with them, global account
 * data, and (as Synapse) the receipts of the joined rooms.
 */
int client_initial_sync(struct req *r)
{
    const char *user_id = r->auth.user_id;
    long long limit = INITIAL_DEFAULT_LIMIT;
    int rc = query_count(r, "limit", &limit);
    if (rc) {
        return rc;
    }
    if (limit > INITIAL_MAX_LIMIT) {
        limit = INITIAL_MAX_LIMIT;
    }
    const char *archived_s = req_query(r, "archived");
    bool archived = streq(archived_s, "true");
    struct stream_token now;
    streams_now(r->srv->streams, &now);
    struct store_sync_membership *ms = NULL;
    size_t n_ms = 0;
    char **forgotten = NULL;
    size_t n_forgotten = 0;
    rc = store_sync_memberships(r->db, &r->arena, user_id, &ms, &n_ms);
    if (rc == 0 && archived) {
        rc = store_user_forgotten_rooms(r->db, &r->arena, user_id, &forgotten, &n_forgotten);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *body = json_arena(&r->arena, json_object());
    json_t *rooms = json_array();
    json_t *receipts = json_array();
    json_t *presence = json_array();
    json_t *account_data = json_array();
    json_object_set_new(body, "rooms", rooms);
    json_object_set_new(body, "receipts", receipts);
    json_object_set_new(body, "presence", presence);
    json_object_set_new(body, "account_data", account_data);
    json_object_set_new(body, "end", token_at(&now, now.pos[STREAM_EVENTS]));
    for (size_t i = 0; i < n_ms; i++) {
        const struct store_sync_membership *m = &ms[i];
        const char *mb = m->membership;
        bool join = streq(mb, "join"), invite = streq(mb, "invite");
        bool leave = streq(mb, "leave"), ban = streq(mb, "ban");
        if (!join && !invite && !((leave || ban) && archived)) {
            continue;
        }
        if ((leave || ban) && in_list(forgotten, n_forgotten, m->room_id)) {
            continue;
        }
        json_t *info = json_pack("{s:s,s:s}", "room_id", m->room_id, "membership", mb);
        json_array_append_new(rooms, info);
        if (invite || ban) {
            struct store_room room;
            rc = store_room_get(r->db, &r->arena, m->room_id, &room);
            if (rc < 0) {
                return req_fail(r, rc, NULL);
            }
            json_object_set_new(info, "visibility",
                                json_string(room.published ? "public" : "private"));
            struct store_event se;
            if (invite && store_event_get(r->db, &r->arena, m->event_id, &se) == 0) {
                json_t *ev = client__stored_event(r, &se);
                if (ev) {
                    json_object_set_new(info, "invite", ev);
                }
            }
            continue;
        }
        struct client_room_access acc = {
            .room_id = m->room_id,
            .room_nid = m->room_nid,
            .kind = join ? CLIENT_ACCESS_JOINED : CLIENT_ACCESS_DEPARTED,
            .membership = mb,
            .cap = INT64_MAX,
        };
        if (leave) {
            struct store_event *se = ARENA_NEW(&r->arena, struct store_event);
            rc = store_event_get(r->db, &r->arena, m->event_id, se);
            if (rc < 0) {
                return req_fail(r, rc, NULL);
            }
            acc.member_event = se;
            acc.cap = m->stream_ordering;
        }
        rc = room_info(r, &acc, &now, limit, info);
        if (rc == 0 && join) {
            rc = room_receipts(r, m->room_id, now.pos[STREAM_RECEIPTS], receipts);
        }
        if (rc) {
            return rc;
        }
    }
    rc = client__account_data_global(r, user_id, -1, now.pos[STREAM_ACCOUNT_DATA], account_data);
    if (rc == 0) {
        rc = presence_sync_events(r->srv->presence, r, user_id, -1, now.pos[STREAM_PRESENCE],
                                  presence);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_incref(body));
}

/* ---- GET /rooms/{roomId}/initialSync ---- */

/* The presence of the room's joined members (presence enabled). */
static void members_presence(struct req *r, const json_t *state, json_t *out)
{
    struct presence *p = r->srv->presence;
    if (!presence_enabled(p)) {
        return;
    }
    size_t i;
    json_t *ev;
    json_array_foreach(state, i, ev)
    {
        const char *sk = json_get_str(ev, "state_key");
        if (streq(json_get_str(ev, "type"), "m.room.member") &&
            streq(json_get_str(json_get_obj(ev, "content"), "membership"), "join") && sk) {
            json_t *pe = presence_event(p, sk);
            if (pe) {
                json_array_append_new(out, pe);
            }
        }
    }
}

/*
 * GET /rooms/{roomId}/initialSync (spec room_initial_sync.yaml): for
 * members, former members (up to their leave, as Synapse) and, for room
 * previews, anyone in a world_readable room; 403 otherwise. Query: limit
 * (messages, default 10). Adds, as Synapse, the presence of the joined
 * members and the room's receipts (none for former members).
 * `membership` is the user's own, left out when they have none.
 */
int client_room_initial_sync(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct client_room_access acc;
    int rc = client__room_access(r, room_id, &acc);
    if (rc) {
        return rc;
    }
    long long limit = INITIAL_DEFAULT_LIMIT;
    rc = query_count(r, "limit", &limit);
    if (rc) {
        return rc;
    }
    if (limit > INITIAL_MAX_LIMIT) {
        limit = INITIAL_MAX_LIMIT;
    }
    struct stream_token now;
    streams_now(r->srv->streams, &now);
    json_t *info = json_arena(&r->arena, json_pack("{s:s}", "room_id", room_id));
    if (acc.membership && *acc.membership) {
        json_object_set_new(info, "membership", json_string(acc.membership));
    }
    rc = room_info(r, &acc, &now, limit, info);
    if (rc) {
        return rc;
    }
    json_t *presence = json_array();
    json_t *receipts = json_array();
    json_object_set_new(info, "presence", presence);
    json_object_set_new(info, "receipts", receipts);
    if (acc.kind != CLIENT_ACCESS_DEPARTED) {
        members_presence(r, json_object_get(info, "state"), presence);
        rc = room_receipts(r, room_id, now.pos[STREAM_RECEIPTS], receipts);
        if (rc) {
            return rc;
        }
    }
    return req_json(r, 200, json_incref(info));
}

/* ---- GET /events/{eventId} ---- */

/*
 * GET /events/{eventId} (spec old_sync.yaml, deprecated): the event when
 * the user may see it, else 404 (spec: "not found or you do not have
 * permission to read this event").
 */
int client_event_by_id(struct req *r)
{
    const char *event_id = r->param[0].p;
    struct store_event se;
    int rc = store_event_get(r->db, &r->arena, event_id, &se);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && se.rejected)) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *ev = json_arena(&r->arena, client__stored_event(r, &se));
    const char *room_id = json_get_str(ev, "room_id");
    if (!room_id) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    struct client_room_access acc;
    rc = client__room_access(r, room_id, &acc);
    if (rc == -ERR_FORBIDDEN) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    if (rc) {
        return rc;
    }
    bool visible = false;
    rc = client__event_visible(r, &acc, &se, &visible);
    if (rc) {
        return rc;
    }
    if (!visible) {
        return req_fail(r, -ERR_NOT_FOUND, "Event not found");
    }
    client__bundle_aggregations(r, ev);
    return req_json(r, 200, json_incref(ev));
}
