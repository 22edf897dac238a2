/*
 * GET /sync and the filter endpoints (spec "Syncing", "Filtering").
 *
 * Tokens. next_batch carries a position per stream (svc/streams.h):
 * "s<events>_<receipts>_<account_data>_<typing>_<to_device>_
 * <device_lists>_<presence>". Persistent streams survive restarts and the
 * typing stream restarts above every earlier position, so old tokens keep
 * working; "s<N>" alone (a /messages token, or a token from before the
 * other streams) reads the missing parts as 0. prev_batch tokens are
 * "s<N>" event positions, as /messages takes them.
 *
 * An answer is computed from the stream position P read first:
 *   - the user's memberships (current m.room.member per room, with the
 *     membership event's stream position) decide which section a room
 *     goes to; a membership that changed after P is left for the next
 *     sync;
 *   - with a `since` token, only rooms with events in (since, P] or a
 *     membership change in that range appear;
 *   - a timeline holds the newest `limit` events of the range that pass
 *     the timeline filter, in stream order, with `limited` when more were
 *     left out and `prev_batch` pointing just before the first of them;
 *   - state is the current state minus the timeline for initial syncs,
 *     full_state and newly joined rooms, else the last state event per key
 *     of the gap between `since` and the timeline when events were left
 *     out (and of the whole range when a timeline filter hides some).
 *   - with use_state_after (spec v1.16, MSC4222) the `state_after`
 *     section replaces `state`: the state at the end of the timeline,
 *     so it may repeat state events the timeline holds; asked with the
 *     unstable org.matrix.msc4222.use_state_after it is named
 *     org.matrix.msc4222.state_after (all matrix-js-sdk reads);
 *   - a joined room also appears when only its ephemeral events (typing,
 *     receipts since the token), its account data or its unread counts
 *     changed; global account data, presence, to-device messages (at
 *     most 100 per answer: next_batch's to-device part then stops where
 *     the batch did) and the device's key counts go to the top level.
 *
 * Long polls. When an incremental sync finds nothing and has a timeout,
 * the request is parked in svc/notify under the user and its joined
 * rooms with its token, holding no thread; a change on any stream above
 * the token (an event, receipt, typing, account data, presence, a
 * to-device message, stored push actions) under
 * the user or one of those rooms re-runs this handler on a
 * worker, the deadline or shutdown answer it with an empty response.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/client/filter.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "store/store.h"
#include "svc/lazy_members.h"
#include "svc/notify.h"
#include "svc/presence.h"
#include "svc/push.h"
#include "svc/room.h"
#include "svc/srv.h"
#include "svc/streams.h"
#include "svc/typing.h"

#define SYNC_DEFAULT_LIMIT 10
#define SYNC_MAX_LIMIT 500
#define SYNC_MAX_TIMEOUT_MS (60LL * 60 * 1000)
#define SYNC_SCAN_MAX 2000 /* events examined per timeline before giving up on a filter */
#define SYNC_HEROES 5
#define SYNC_RETRIES 8
#define SYNC_PUSH_WAIT_MS 50 /* longest wait for the push actions of new events */

/* ---- filters ---- */

struct sync_filter {
    struct filter f;
    int limit; /* of the timeline */
};

static bool room_wanted(const struct sync_filter *sf, const char *room_id)
{
    const struct filter *f = &sf->f;
    return (!f->rooms || filter_list_has(f->rooms, room_id, false)) &&
           !(f->not_rooms && filter_list_has(f->not_rooms, room_id, false));
}

/* Reads a filter (spec "Filter") with /sync's timeline limit. */
static int read_filter(const json_t *j, struct sync_filter *sf, const char **why)
{
    int rc = filter_read(j, &sf->f, why);
    long long lim = sf->f.timeline.limit;
    sf->limit = lim < 0 ? SYNC_DEFAULT_LIMIT : lim > SYNC_MAX_LIMIT ? SYNC_MAX_LIMIT : (int)lim;
    return rc;
}

/*
 * event_fields: copies only the listed dot-separated paths ("content.body";
 * '\' escapes a literal '.' or '\') of an event into a new object.
 */
static void project_path(json_t *dst, const json_t *src, const char *path)
{
    char key[512];
    size_t k = 0;
    const char *p = path;
    while (*p && *p != '.' && k < sizeof(key) - 1) {
        if (*p == '\\' && p[1]) {
            p++;
        }
        key[k++] = *p++;
    }
    key[k] = '\0';
    json_t *v = json_object_get(src, key);
    if (!v) {
        return;
    }
    if (*p != '.') {
        json_object_set(dst, key, v);
        return;
    }
    if (!json_is_object(v)) {
        return;
    }
    json_t *sub = json_object_get(dst, key);
    if (!json_is_object(sub)) {
        sub = json_object();
        json_object_set_new(dst, key, sub);
    }
    project_path(sub, v, p + 1);
}

/* Events in /sync are "ClientEventWithoutRoomID": the room is the key. */
static void drop_room_ids(json_t *events)
{
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev) { json_object_del(ev, "room_id"); }
}

static void project_events(json_t *events, const json_t *fields)
{
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        json_t *out = json_object();
        size_t k;
        json_t *field;
        json_array_foreach(fields, k, field) { project_path(out, ev, json_string_value(field)); }
        json_array_set_new(events, i, out);
    }
}

/* Loads the filter named by the `filter` query parameter: inline JSON
 * (starting with '{') or the ID of one of the user's stored filters. */
static int load_filter(struct req *r, struct sync_filter *f)
{
    const char *arg = req_query(r, "filter");
    const char *why = NULL;
    if (!arg || !*arg) {
        json_t *none = json_arena(&r->arena, json_object());
        return read_filter(none, f, &why);
    }
    const char *text = arg;
    if (arg[0] != '{') {
        char *end;
        long long id = strtoll(arg, &end, 10);
        char *json = NULL;
        int rc = *end || id < 0 ? -ERR_NOT_FOUND
                                : store_filter_get(r->db, &r->arena, r->auth.user_id, id, &json);
        if (rc == -ERR_NOT_FOUND) {
            return req_fail(r, -ERR_NOT_FOUND, "No filter with ID '%s'", arg);
        }
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        text = json;
    }
    json_t *j = NULL;
    int rc = json_parse_input(text, strlen(text), JSON_MAX_DEPTH, &j, &why);
    if (rc) {
        return req_fail(r, -ERR_INVALID_PARAM, "The filter is not valid JSON: %s", why);
    }
    json_arena(&r->arena, j);
    rc = read_filter(j, f, &why);
    if (rc) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid filter: bad '%s'", why);
    }
    return 0;
}

/* ---- tokens ---- */

/* A timeline token (prev_batch): the event stream position alone, as
 * /messages takes it. */
static json_t *token(int64_t pos) { return json_sprintf("s%lld", (long long)pos); }

/* next_batch: a position per stream (svc/streams.h). */
static json_t *full_token(const struct stream_token *t)
{
    char buf[STREAM_TOKEN_MAX];
    stream_token_format(t, buf);
    return json_string(buf);
}

/* ---- building the answer ---- */

struct sync {
    struct req *r;
    const char *user_id;
    struct sync_filter f;
    int64_t since; /* events stream; -1: initial sync */
    int64_t pos;   /* events stream position the answer covers */
    struct stream_token since_tok; /* every stream; zeros for an initial sync */
    struct stream_token now;       /* every stream's position the answer covers */
    struct map *receipts;          /* room ID -> m.receipt content changed since */
    struct map *extra_rooms;       /* rooms with receipts, account data or counts changed */
    json_t *ad_by_room;            /* room ID -> [account data events] (arena) */
    bool full_state;
    bool state_after; /* use_state_after: state_after (up to the timeline's end) */
    bool state_after_unstable; /* asked with MSC4222's unstable parameter name */
    json_t *join, *invite, *leave, *knock; /* borrowed from the body */
};

static json_t *events_obj(json_t *events) { return json_pack("{s:o}", "events", events); }

/* The top-level answer with empty sections; next_batch is `now`. */
static json_t *empty_body(const struct stream_token *now, json_t **join, json_t **invite, json_t **leave,
                          json_t **knock)
{
    json_t *rooms = json_pack("{s:{},s:{},s:{},s:{}}", "join", "invite", "leave", "knock");
    if (join) {
        *join = json_object_get(rooms, "join");
        *invite = json_object_get(rooms, "invite");
        *leave = json_object_get(rooms, "leave");
        *knock = json_object_get(rooms, "knock");
    }
    return json_pack("{s:o,s:o,s:o,s:o,s:o,s:{s:[],s:[]},s:{s:i}}", "next_batch", full_token(now),
                     "rooms", rooms, "account_data", events_obj(json_array()), "presence",
                     events_obj(json_array()), "to_device", events_obj(json_array()),
                     "device_lists", "changed", "left", "device_one_time_keys_count",
                     "signed_curve25519", 0);
}

struct timeline {
    json_t *events;       /* chronological */
    bool limited;
    int64_t first_stream; /* of the oldest event returned; upto + 1 when none */
};

/*
 * Spec "Transaction identifiers": the device that sent an event sees its
 * transaction ID in unsigned.transaction_id, so it can match its local echo
 * even when /sync answers before /send did.
 */
static void add_txn_id(struct sync *s, json_t *ev)
{
    struct req *r = s->r;
    const char *sender = json_get_str(ev, "sender");
    const char *id = json_get_str(ev, "event_id");
    const char *room = json_get_str(ev, "room_id");
    const char *type = json_get_str(ev, "type");
    char *key = NULL;
    if (!r->auth.device_id || !sender || !id || !room || !type ||
        strcmp(sender, s->user_id) != 0 ||
        store_sync_txn_of(r->db, &r->arena, id, s->user_id, r->auth.device_id, &key) != 0) {
        return;
    }
    size_t lr = strlen(room), lt = strlen(type);
    if (strncmp(key, room, lr) == 0 && key[lr] == '/' && strncmp(key + lr + 1, type, lt) == 0 &&
        key[lr + 1 + lt] == '/') {
        json_t *u = json_object_get(ev, "unsigned");
        if (json_is_object(u)) {
            json_object_set_new(u, "transaction_id", json_string(key + lr + lt + 2));
        }
    }
}

/*
 * The newest `limit` events of the room with stream position in
 * (lower, upto] that pass the timeline filter.
 */
static int load_timeline(struct sync *s, const struct store_sync_membership *m, int64_t lower,
                         int64_t upto, struct timeline *t)
{
    struct req *r = s->r;
    int64_t room_nid = m->room_nid;
    /* History visibility (spec "Room History Visibility") matters only for
     * events up to the user's current membership event: everything after
     * it happened while joined (or, for a leave, is past `upto`). */
    struct client_room_access acc = {.room_id = m->room_id,
                                     .room_nid = m->room_nid,
                                     .kind = strcmp(m->membership, "join") == 0
                                                 ? CLIENT_ACCESS_JOINED
                                                 : CLIENT_ACCESS_DEPARTED,
                                     .membership = m->membership,
                                     .cap = upto};
    struct store_event member_event;
    bool *keep = NULL;
    int limit = s->f.limit;
    json_t **picked = ARENA_ARRAY(&r->arena, json_t *, (size_t)limit + 1);
    int n_picked = 0;
    t->limited = false;
    t->first_stream = upto + 1;
    int64_t bound = upto + 1;
    int batch = limit + 1 < 20 ? 20 : limit + 1;
    int scanned = 0;
    bool done = false;
    while (!done) {
        struct store_event *evs = NULL;
        size_t n = 0;
        int rc = store_room_events(r->db, &r->arena, room_nid, bound, true, batch, &evs, &n);
        if (rc < 0) {
        fail:
            for (int i = 0; i < n_picked; i++) {
                json_decref(picked[i]);
            }
            return rc;
        }
        if (n && evs[n - 1].stream_ordering <= m->stream_ordering) {
            if (!acc.member_event && acc.kind != CLIENT_ACCESS_JOINED) {
                rc = store_event_get(r->db, &r->arena, m->event_id, &member_event);
                if (rc < 0) {
                    goto fail;
                }
                acc.member_event = &member_event;
            }
            keep = ARENA_ARRAY(&r->arena, bool, n);
            rc = client__visible_events(r, &acc, evs, n, keep);
            if (rc < 0 || r->err) {
                rc = rc < 0 ? rc : -ERR_DB; /* the store failed: answer that */
                goto fail;
            }
        } else {
            keep = NULL;
        }
        for (size_t i = 0; i < n && !done; i++) {
            if (evs[i].stream_ordering <= lower) {
                done = true;
                break;
            }
            if (keep && !keep[i]) {
                continue;
            }
            json_t *ev = client__stored_event(r, &evs[i]);
            if (!ev) {
                continue;
            }
            if (!filter_events_pass(&s->f.f.timeline, ev)) {
                json_decref(ev);
                continue;
            }
            if (n_picked == limit) {
                json_decref(ev);
                t->limited = true;
                done = true;
                break;
            }
            add_txn_id(s, ev);
            picked[n_picked++] = ev;
            t->first_stream = evs[i].stream_ordering;
        }
        scanned += (int)n;
        if (n < (size_t)batch) {
            done = true;
        } else if (!done) {
            bound = evs[n - 1].stream_ordering;
            if (scanned >= SYNC_SCAN_MAX) {
                t->limited = true;
                done = true;
            }
        }
    }
    t->events = json_array();
    for (int i = n_picked - 1; i >= 0; i--) {
        json_array_append_new(t->events, picked[i]);
    }
    return 0;
}

static const char *state_key_of(struct arena *a, const json_t *ev)
{
    const char *type = json_get_str(ev, "type");
    const char *sk = json_get_str(ev, "state_key");
    if (!type || !sk) {
        return NULL;
    }
    return arena_printf(a, "%s|%s", type, sk);
}

/* Adds the state event (client format, stolen) unless the filters drop it. */
static void state_add(struct sync *s, json_t *state, const struct map *needed, json_t *ev)
{
    if (!filter_events_pass(&s->f.f.state, ev)) {
        json_decref(ev);
        return;
    }
    const char *type = json_get_str(ev, "type");
    const char *sk = json_get_str(ev, "state_key");
    if (s->f.f.state.lazy_load_members && type && sk && strcmp(type, "m.room.member") == 0 &&
        !map_has(needed, str_from(sk))) {
        json_decref(ev);
        return;
    }
    json_array_append_new(state, ev);
}

/* Heroes (spec "Calculating the display name for a room"): the first
 * five joined or invited members other than the user by the order their
 * member events arrived (depth, which grows with each local event), else
 * those who left. */
struct hero {
    const char *user_id;
    json_int_t depth;
};

static int cmp_hero(const void *a, const void *b)
{
    const struct hero *x = a, *y = b;
    if (x->depth != y->depth) {
        return x->depth < y->depth ? -1 : 1;
    }
    return strcmp(x->user_id, y->user_id);
}

static json_t *summary_of(struct sync *s, const json_t *all, struct map *needed)
{
    size_t n = json_array_size(all);
    struct hero *active = ARENA_ARRAY(&s->r->arena, struct hero, n + 1);
    struct hero *gone = ARENA_ARRAY(&s->r->arena, struct hero, n + 1);
    size_t n_active = 0, n_gone = 0;
    long long joined = 0, invited = 0;
    size_t i;
    json_t *pdu;
    json_array_foreach(all, i, pdu)
    {
        const char *type = json_get_str(pdu, "type");
        const char *sk = json_get_str(pdu, "state_key");
        if (!type || !sk || strcmp(type, "m.room.member") != 0) {
            continue;
        }
        const char *m = json_get_str(json_get_obj(pdu, "content"), "membership");
        m = m ? m : "";
        bool is_join = strcmp(m, "join") == 0, is_invite = strcmp(m, "invite") == 0;
        joined += is_join;
        invited += is_invite;
        if (strcmp(sk, s->user_id) == 0) {
            continue;
        }
        struct hero h = {sk, json_integer_value(json_object_get(pdu, "depth"))};
        if (is_join || is_invite) {
            active[n_active++] = h;
        } else if (strcmp(m, "leave") == 0 || strcmp(m, "ban") == 0) {
            gone[n_gone++] = h;
        }
    }
    struct hero *pick = n_active ? active : gone;
    size_t n_pick = n_active ? n_active : n_gone;
    qsort(pick, n_pick, sizeof(*pick), cmp_hero);
    json_t *heroes = json_array();
    for (size_t k = 0; k < n_pick && k < SYNC_HEROES; k++) {
        json_array_append_new(heroes, json_string(pick[k].user_id));
        map_put(needed, str_from(pick[k].user_id), (void *)1);
    }
    return json_pack("{s:o,s:I,s:I}", "m.heroes", heroes, "m.joined_member_count",
                     (json_int_t)joined, "m.invited_member_count", (json_int_t)invited);
}

/* ---- ephemeral events and room account data ---- */

/* Groups the receipts changed since the token by room (s->receipts). */
static int load_receipt_changes(struct sync *s)
{
    struct req *r = s->r;
    int64_t after = s->since_tok.pos[STREAM_RECEIPTS], upto = s->now.pos[STREAM_RECEIPTS];
    if (after >= upto) {
        return 0;
    }
    struct store_receipt *rcs = NULL;
    size_t n = 0;
    int rc = store_receipts_between(r->db, &r->arena, after, upto, &rcs, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *content = map_get(s->receipts, str_from(rcs[i].room_id));
        if (!content) {
            content = json_arena(&r->arena, json_object());
            map_put(s->receipts, str_from(rcs[i].room_id), content);
        }
        client__receipt_add(content, &rcs[i], s->user_id);
        if (json_object_size(content)) {
            map_put(s->extra_rooms, str_from(rcs[i].room_id), (void *)1);
        }
    }
    return rc;
}

/* Appends `ev` (stolen) to `events` when the filter lets it through. */
static void add_filtered(json_t *events, const struct filter_events *f, json_t *ev)
{
    if (ev && filter_events_pass(f, ev)) {
        json_array_append_new(events, ev);
    } else {
        json_decref(ev);
    }
}

/*
 * The ephemeral events of a joined room: typing and receipts changed
 * since the token, or (full) the current typists and every receipt.
 */
static int room_ephemeral(struct sync *s, const char *room_id, bool full, json_t *events)
{
    struct req *r = s->r;
    const struct filter_events *f = &s->f.f.ephemeral;
    add_filtered(events, f,
                 typing_event(r->srv->typing, room_id, full ? -1 : s->since_tok.pos[STREAM_TYPING],
                              s->now.pos[STREAM_TYPING]));
    json_t *content = NULL;
    if (full) {
        struct store_receipt *rcs = NULL;
        size_t n = 0;
        int rc = store_receipts_of_room(r->db, &r->arena, room_id, s->now.pos[STREAM_RECEIPTS],
                                        &rcs, &n);
        if (rc < 0) {
            return rc;
        }
        content = json_object();
        for (size_t i = 0; i < n; i++) {
            client__receipt_add(content, &rcs[i], s->user_id);
        }
    } else {
        content = json_incref(map_get(s->receipts, str_from(room_id)));
    }
    if (content && json_object_size(content)) {
        add_filtered(events, f, json_pack("{s:s,s:o}", "type", "m.receipt", "content", content));
    } else {
        json_decref(content);
    }
    return 0;
}

/*
 * The room's account data changed since the token, or all of it for a
 * full entry: from the batch read once per sync (s->ad_by_room), except
 * for a room that turns full in an incremental sync (a new join).
 */
static int room_account_data(struct sync *s, const char *room_id, bool full, json_t *events)
{
    struct req *r = s->r;
    json_t *all = json_object_get(s->ad_by_room, room_id);
    int rc = 0;
    if (full && s->since >= 0) {
        all = json_arena(&r->arena, json_array());
        rc = client__account_data_room(r, s->user_id, room_id, -1,
                                       s->now.pos[STREAM_ACCOUNT_DATA], all);
    }
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev) { add_filtered(events, &s->f.f.room_account_data, json_incref(ev)); }
    return rc < 0 ? rc : 0;
}

/* Records the member events among `events` as sent to this device
 * (svc/lazy_members). */
static void record_members(struct sync *s, const char *room_id, const json_t *events)
{
    struct req *r = s->r;
    size_t i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *type = json_get_str(ev, "type");
        const char *sk = json_get_str(ev, "state_key");
        const char *id = json_get_str(ev, "event_id");
        if (type && sk && id && strcmp(type, "m.room.member") == 0) {
            lazy_members_sent(r->srv->lazy_members, s->user_id, r->auth.device_id, room_id, sk,
                              id);
        }
    }
}

/* ---- unread counts ---- */

static void counts_add(struct store_push_counts *sum, const struct store_push_counts *c)
{
    sum->notify += c->notify;
    sum->highlight += c->highlight;
}

static json_t *counts_json(const struct store_push_counts *c)
{
    return json_pack("{s:I,s:I}", "highlight_count", (json_int_t)c->highlight,
                     "notification_count", (json_int_t)c->notify);
}

/*
 * unread_notifications (and, when the timeline filter asks for it,
 * unread_thread_notifications) of a joined room: the push actions of the
 * events after the user's read receipts (spec "Receiving notifications").
 * An unthreaded receipt covers every thread; a receipt on "main" or on a
 * thread root covers that thread only, from the later of the two. Events
 * before the user's join (`joined_at`) never count (as in Synapse).
 */
static int unread_counts(struct sync *s, const char *room_id, int64_t joined_at, json_t *entry)
{
    struct req *r = s->r;
    struct store_receipt *rcs = NULL;
    size_t n_rcs = 0;
    int rc = store_receipts_user_room(r->db, &r->arena, s->user_id, room_id, &rcs, &n_rcs);
    if (rc < 0) {
        return rc;
    }
    int64_t unthreaded = joined_at;
    for (size_t i = 0; i < n_rcs; i++) {
        if (!*rcs[i].thread_id && rcs[i].event_stream > unthreaded) {
            unthreaded = rcs[i].event_stream;
        }
    }
    struct store_push_counts total = {0};
    struct store_push_thread_counts *threads = NULL;
    size_t n_threads = 0;
    rc = store_push_unread_counts(r->db, &r->arena, s->user_id, room_id, unthreaded, &total,
                                  &threads, &n_threads);
    if (rc < 0) {
        return rc;
    }
    struct store_push_counts sum = {0}, main = {0};
    json_t *by_thread = json_object();
    for (size_t t = 0; t < n_threads; t++) {
        const char *tid = threads[t].thread_id;
        struct store_push_counts c = threads[t].counts;
        int64_t read = unthreaded;
        for (size_t i = 0; i < n_rcs; i++) {
            if (strcmp(rcs[i].thread_id, tid ? tid : "main") == 0 && rcs[i].event_stream > read) {
                read = rcs[i].event_stream;
            }
        }
        if (read > unthreaded) {
            rc = store_push_unread_thread(r->db, s->user_id, room_id, tid, read, &c);
            if (rc < 0) {
                json_decref(by_thread);
                return rc;
            }
        }
        counts_add(&sum, &c);
        if (!tid) {
            main = c;
        } else if (c.notify || c.highlight) {
            json_object_set_new(by_thread, tid, counts_json(&c));
        }
    }
    if (s->f.f.timeline.unread_thread_notifications) {
        json_object_set_new(entry, "unread_notifications", counts_json(&main));
        json_object_set_new(entry, "unread_thread_notifications", by_thread);
    } else {
        json_object_set_new(entry, "unread_notifications", counts_json(&sum));
        json_decref(by_thread);
    }
    return 0;
}

/*
 * One room of the join or leave section: timeline of (lower, upto], and
 * the state (all of it when `full`, else the gap before the timeline);
 * with `joined`, its ephemeral events, and account data for both. An
 * incremental entry whose room had no events in the range
 * (`events_changed` false) loads no timeline. Sets *out to NULL when an
 * incremental entry turns out to be empty.
 */
static int room_entry(struct sync *s, const struct store_sync_membership *m, int64_t lower,
                      int64_t upto, bool full, bool joined, bool events_changed, json_t **out)
{
    struct req *r = s->r;
    *out = NULL;
    struct timeline t = {.first_stream = upto + 1};
    int rc = 0;
    if (full || events_changed) {
        rc = load_timeline(s, m, lower, upto, &t);
    } else {
        t.events = json_array();
    }
    if (rc < 0) {
        return rc;
    }
    json_arena(&r->arena, t.events);
    /* What the timeline holds, and whose member events lazy loading keeps. */
    struct map in_timeline, needed;
    map_init(&in_timeline);
    map_init(&needed);
    map_put(&needed, str_from(s->user_id), (void *)1);
    bool members_changed = false;
    size_t i;
    json_t *ev;
    json_array_foreach(t.events, i, ev)
    {
        const char *id = json_get_str(ev, "event_id");
        const char *sender = json_get_str(ev, "sender");
        if (id && !s->state_after) {
            map_put(&in_timeline, str_from(id), (void *)1);
        }
        if (sender) {
            map_put(&needed, str_from(sender), (void *)1);
        }
        const char *sk = json_get_str(ev, "state_key");
        const char *type = json_get_str(ev, "type");
        if (sk && type && strcmp(type, "m.room.member") == 0) {
            members_changed = true;
        }
    }
    json_t *state = json_arena(&r->arena, json_array());
    json_t *all = NULL;
    json_t *summary = NULL;
    if (full) {
        rc = room_state_all(r, m->room_id, &all);
        if (rc < 0) {
            goto out;
        }
        json_arena(&r->arena, all);
    }
    if (all && joined) {
        summary = json_arena(&r->arena, summary_of(s, all, &needed));
    }
    if (full) {
        json_t *pdu;
        json_array_foreach(all, i, pdu)
        {
            const char *id = json_get_str(pdu, "event_id");
            if (id && map_has(&in_timeline, str_from(id))) {
                continue;
            }
            /* Lazy loading drops most member events of a big room: decide
             * before converting them. */
            const char *type = json_get_str(pdu, "type");
            const char *sk = json_get_str(pdu, "state_key");
            if (s->f.f.state.lazy_load_members && type && sk &&
                strcmp(type, "m.room.member") == 0 && !map_has(&needed, str_from(sk))) {
                continue;
            }
            state_add(s, state, &needed, client__state_event(r, pdu));
        }
    } else if (s->state_after || t.limited || filter_events_restrict(&s->f.f.timeline)) {
        /* The state changes the timeline does not show, the last event
         * per key: those in the gap before it, and when a filter hides
         * events, those hidden among it too (else the client would never
         * see them; a key whose last change is shown stays out). */
        struct store_event *evs = NULL;
        size_t n = 0;
        int64_t before = s->state_after || filter_events_restrict(&s->f.f.timeline)
                             ? upto + 1
                             : t.first_stream;
        rc = store_sync_state_between(r->db, &r->arena, m->room_nid, lower, before, &evs, &n);
        if (rc < 0) {
            goto out;
        }
        struct map last;
        map_init(&last);
        json_t **conv = ARENA_ARRAY(&r->arena, json_t *, n + 1);
        for (size_t k = 0; k < n; k++) {
            conv[k] = json_arena(&r->arena, client__stored_event(r, &evs[k]));
            const char *key = conv[k] ? state_key_of(&r->arena, conv[k]) : NULL;
            if (key) {
                map_put(&last, str_from(key), conv[k]);
            }
        }
        for (size_t k = 0; k < n; k++) {
            const char *key = conv[k] ? state_key_of(&r->arena, conv[k]) : NULL;
            const char *id = conv[k] ? json_get_str(conv[k], "event_id") : NULL;
            if (!key || map_get(&last, str_from(key)) != conv[k] ||
                (id && map_has(&in_timeline, str_from(id)))) {
                continue;
            }
            const char *type = json_get_str(conv[k], "type");
            members_changed |= type && strcmp(type, "m.room.member") == 0;
            state_add(s, state, &needed, json_incref(conv[k]));
        }
        map_release(&last);
    }
    /* The device's record of lazy-loaded members (svc/lazy_members): what
     * goes out now is remembered, and incremental syncs leave out what it
     * has, unless the filter asks for redundant members. */
    bool skip_redundant = s->f.f.state.lazy_load_members &&
                          !s->f.f.state.include_redundant_members && r->auth.device_id &&
                          r->srv->lazy_members;
    if (skip_redundant) {
        record_members(s, m->room_id, state);
        record_members(s, m->room_id, t.events);
    }
    if (!full && s->f.f.state.lazy_load_members) {
        /* Member events of timeline senders the client may not have. */
        struct map present;
        map_init(&present);
        json_array_foreach(state, i, ev)
        {
            const char *sk = json_get_str(ev, "state_key");
            if (sk) {
                map_put(&present, str_from(sk), (void *)1);
            }
        }
        json_array_foreach(t.events, i, ev)
        {
            const char *sender = json_get_str(ev, "sender");
            if (!sender || map_has(&present, str_from(sender))) {
                continue;
            }
            map_put(&present, str_from(sender), (void *)1);
            json_t *pdu = NULL;
            if (room_state_event(r, m->room_id, "m.room.member", sender, &pdu) == 0 && pdu) {
                const char *id = json_get_str(pdu, "event_id");
                if (id && !map_has(&in_timeline, str_from(id)) &&
                    !(skip_redundant && lazy_members_sent(r->srv->lazy_members, s->user_id,
                                                          r->auth.device_id, m->room_id,
                                                          sender, id))) {
                    json_array_append_new(state, client__state_event(r, pdu));
                }
                json_decref(pdu);
            }
        }
        map_release(&present);
    }
    if (!full && joined && members_changed) {
        rc = room_state_all(r, m->room_id, &all);
        if (rc < 0) {
            goto out;
        }
        json_arena(&r->arena, all);
        summary = json_arena(&r->arena, summary_of(s, all, &needed));
    }
    json_t *ephemeral = json_arena(&r->arena, json_array());
    json_t *account_data = json_arena(&r->arena, json_array());
    if (joined) {
        rc = room_ephemeral(s, m->room_id, full, ephemeral);
    }
    if (rc == 0) {
        rc = room_account_data(s, m->room_id, full, account_data);
    }
    if (rc < 0) {
        goto out;
    }
    if (!full && json_array_size(t.events) == 0 && json_array_size(state) == 0 &&
        json_array_size(ephemeral) == 0 && json_array_size(account_data) == 0) {
        rc = 0;
        goto out;
    }
    drop_room_ids(t.events);
    drop_room_ids(state);
    if (s->f.f.event_fields) {
        project_events(t.events, s->f.f.event_fields);
        project_events(state, s->f.f.event_fields);
    }
    int64_t prev = json_array_size(t.events) ? t.first_stream - 1 : upto;
    json_t *timeline = json_pack("{s:O,s:b,s:o}", "events", t.events, "limited", t.limited,
                                 "prev_batch", token(prev));
    json_t *entry = json_pack("{s:o,s:o,s:o}", "timeline", timeline,
                              !s->state_after            ? "state"
                              : s->state_after_unstable ? "org.matrix.msc4222.state_after"
                                                        : "state_after",
                              events_obj(json_incref(state)), "account_data",
                              events_obj(json_incref(account_data)));
    if (joined) {
        json_object_set_new(entry, "ephemeral", events_obj(json_incref(ephemeral)));
        rc = unread_counts(s, m->room_id, m->stream_ordering, entry);
        if (rc < 0) {
            json_decref(entry);
            goto out;
        }
        json_object_set_new(entry, "summary", summary ? json_incref(summary) : json_object());
    }
    *out = entry;
    rc = 0;
out:
    map_release(&in_timeline);
    map_release(&needed);
    return rc;
}

/* Stripped state (spec "Stripped state") shown with invites and knocks;
 * for a room known only out of band (an invite or knock over federation),
 * what the other server gave, kept in the membership event's unsigned. */
static json_t *stripped_state(struct sync *s, const struct store_sync_membership *m)
{
    json_t *mine = NULL;
    if (room_state_event(s->r, m->room_id, "m.room.member", s->user_id, &mine) == 0 && mine) {
        const json_t *uns = json_object_get(mine, "unsigned");
        const json_t *given = json_object_get(uns, "invite_room_state");
        given = given ? given : json_object_get(uns, "knock_room_state");
        if (json_is_array(given)) {
            json_t *events = room_strip_state(given);
            json_array_append_new(events, client__state_event(s->r, mine));
            json_decref(mine);
            drop_room_ids(events);
            return events_obj(events);
        }
    }
    static const char *const types[] = {"m.room.create",          "m.room.join_rules",
                                        "m.room.name",            "m.room.avatar",
                                        "m.room.canonical_alias", "m.room.encryption",
                                        "m.room.topic"};
    json_t *events = json_array();
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        json_t *pdu = NULL;
        if (room_state_event(s->r, m->room_id, types[i], "", &pdu) == 0 && pdu) {
            json_t *e = json_object();
            static const char *const keep[] = {"type", "state_key", "content", "sender"};
            for (size_t k = 0; k < sizeof(keep) / sizeof(keep[0]); k++) {
                json_t *v = json_object_get(pdu, keep[k]);
                if (v) {
                    json_object_set(e, keep[k], v);
                }
            }
            json_array_append_new(events, e);
            json_decref(pdu);
        }
    }
    /* The membership event itself, in full, as deployed servers send it. */
    if (mine) {
        json_array_append_new(events, client__state_event(s->r, mine));
        json_decref(mine);
    }
    drop_room_ids(events);
    return events_obj(events);
}

static bool nid_in(const int64_t *sorted, size_t n, int64_t nid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sorted[mid] == nid) {
            return true;
        }
        if (sorted[mid] < nid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

static int cmp_nid(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * Computes the answer for s->since at the current position into *body (a
 * new reference); *empty tells whether no room has anything; *joined
 * lists the joined rooms (arena) for parking.
 */
static int compute(struct sync *s, json_t **body, bool *empty, char ***joined, size_t *n_joined)
{
    struct req *r = s->r;
    if (r->srv->push) {
        /* Counts of the events this answer shows: usually a moment away. */
        push_wait(r->srv->push, rooms_stream_pos(r->srv->rooms), SYNC_PUSH_WAIT_MS);
    }
    streams_now(r->srv->streams, &s->now);
    for (int k = 0; k < STREAM_N; k++) {
        if (s->since_tok.pos[k] > s->now.pos[k]) {
            s->since_tok.pos[k] = s->now.pos[k]; /* a token from the future: from now */
        }
    }
    s->pos = s->now.pos[STREAM_EVENTS];
    if (s->since > s->pos) {
        s->since = s->pos;
    }
    bool initial = s->since < 0;
    map_release(s->receipts);
    map_release(s->extra_rooms);
    map_init(s->receipts);
    map_init(s->extra_rooms);
    struct store_sync_membership *ms = NULL;
    size_t n_ms = 0;
    int rc = store_sync_memberships(r->db, &r->arena, s->user_id, &ms, &n_ms);
    if (rc < 0) {
        return rc;
    }
    int64_t *changed = NULL;
    size_t n_changed = 0;
    if (s->since >= 0 && s->since < s->pos) {
        rc = store_sync_changed_rooms(r->db, &r->arena, s->since, s->pos, &changed, &n_changed);
        if (rc < 0) {
            return rc;
        }
        qsort(changed, n_changed, sizeof(*changed), cmp_nid);
    }
    s->ad_by_room = NULL;
    rc = client__account_data_rooms(r, s->user_id,
                                    initial ? -1 : s->since_tok.pos[STREAM_ACCOUNT_DATA],
                                    s->now.pos[STREAM_ACCOUNT_DATA], &s->ad_by_room);
    if (rc == 0 && !initial) {
        rc = load_receipt_changes(s);
        char **unread = NULL;
        size_t n_unread = 0;
        if (rc == 0 && s->since_tok.pos[STREAM_UNREAD] < s->now.pos[STREAM_UNREAD]) {
            rc = store_push_rooms_changed(r->db, &r->arena, s->user_id,
                                          s->since_tok.pos[STREAM_UNREAD],
                                          s->now.pos[STREAM_UNREAD], &unread, &n_unread);
        }
        for (size_t i = 0; i < n_unread; i++) {
            map_put(s->extra_rooms, str_from(unread[i]), (void *)1);
        }
        const char *room_id;
        json_t *v;
        json_object_foreach(s->ad_by_room, room_id, v)
        {
            map_put(s->extra_rooms, str_from(room_id), (void *)1);
        }
    }
    if (rc < 0) {
        return rc;
    }
    char **forgotten = NULL;
    size_t n_forgotten = 0;
    rc = store_user_forgotten_rooms(r->db, &r->arena, s->user_id, &forgotten, &n_forgotten);
    if (rc < 0) {
        return rc;
    }
    *joined = ARENA_ARRAY(&r->arena, char *, n_ms + 1);
    *n_joined = 0;
    json_t *out = empty_body(&s->now, &s->join, &s->invite, &s->leave, &s->knock);
    int64_t lower = initial ? 0 : s->since;
    for (size_t i = 0; i < n_ms; i++) {
        const struct store_sync_membership *m = &ms[i];
        const char *mb = m->membership;
        if (strcmp(mb, "join") == 0) {
            (*joined)[(*n_joined)++] = m->room_id;
        }
        /* Changed after the position this answer covers: next time. */
        if (m->stream_ordering > s->pos || !room_wanted(&s->f, m->room_id)) {
            continue;
        }
        bool new_membership = initial || m->stream_ordering > s->since;
        json_t *entry = NULL;
        if (strcmp(mb, "join") == 0) {
            bool full = new_membership || s->full_state;
            bool events_changed = nid_in(changed, n_changed, m->room_nid);
            if (!full && !events_changed && !map_has(s->extra_rooms, str_from(m->room_id))) {
                json_t *typing = typing_event(r->srv->typing, m->room_id,
                                              s->since_tok.pos[STREAM_TYPING],
                                              s->now.pos[STREAM_TYPING]);
                if (!typing) {
                    continue;
                }
                json_decref(typing);
            }
            rc = room_entry(s, m, lower, s->pos, full, true, events_changed, &entry);
            if (entry) {
                json_object_set_new(s->join, m->room_id, entry);
            }
        } else if (strcmp(mb, "invite") == 0 || strcmp(mb, "knock") == 0) {
            if (!new_membership && !s->full_state) {
                continue;
            }
            bool invite = mb[0] == 'i';
            json_object_set_new(invite ? s->invite : s->knock, m->room_id,
                                json_pack("{s:o}", invite ? "invite_state" : "knock_state",
                                          stripped_state(s, m)));
        } else if (strcmp(mb, "leave") == 0 || strcmp(mb, "ban") == 0) {
            bool is_forgotten = false;
            for (size_t k = 0; k < n_forgotten && !is_forgotten; k++) {
                is_forgotten = strcmp(forgotten[k], m->room_id) == 0;
            }
            if (is_forgotten || (initial ? !s->f.f.include_leave : !new_membership)) {
                continue;
            }
            rc = room_entry(s, m, lower, m->stream_ordering, initial || s->full_state, false,
                            true, &entry);
            if (entry) {
                json_object_set_new(s->leave, m->room_id, entry);
            }
        }
        if (rc < 0) {
            json_decref(out);
            return rc;
        }
    }
    json_t *ad = json_object_get(json_object_get(out, "account_data"), "events");
    json_t *all_ad = json_arena(&r->arena, json_array());
    rc = client__account_data_global(r, s->user_id,
                                     initial ? -1 : s->since_tok.pos[STREAM_ACCOUNT_DATA],
                                     s->now.pos[STREAM_ACCOUNT_DATA], all_ad);
    size_t k;
    json_t *ev;
    bool have_rules = false;
    json_array_foreach(all_ad, k, ev)
    {
        const char *type = json_get_str(ev, "type");
        have_rules |= type && strcmp(type, "m.push_rules") == 0;
        add_filtered(ad, &s->f.f.account_data, json_incref(ev));
    }
    if (rc == 0 && initial && !have_rules) {
        /* Initial syncs carry the push rules even when never changed. */
        json_t *rules = NULL;
        rc = push_rules_account_data(r->db, s->user_id, &rules);
        if (rc == 0) {
            add_filtered(ad, &s->f.f.account_data,
                         json_pack("{s:s,s:o}", "type", "m.push_rules", "content", rules));
        }
    }
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    json_t *pres = json_object_get(json_object_get(out, "presence"), "events");
    if (rc == 0 && r->srv->presence) {
        json_t *all_pres = json_arena(&r->arena, json_array());
        rc = presence_sync_events(r->srv->presence, r, s->user_id,
                                  initial || s->full_state ? -1 : s->since_tok.pos[STREAM_PRESENCE],
                                  s->now.pos[STREAM_PRESENCE], all_pres);
        json_array_foreach(all_pres, k, ev) { add_filtered(pres, &s->f.f.presence, json_incref(ev)); }
    }
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    /* Send-to-device messages; a capped batch makes next_batch's
     * to-device part stop where it stopped. */
    json_t *td = json_object_get(json_object_get(out, "to_device"), "events");
    int64_t td_upto = s->now.pos[STREAM_TO_DEVICE];
    rc = client__to_device_sync(r, s->user_id, r->auth.device_id,
                                initial ? -1 : s->since_tok.pos[STREAM_TO_DEVICE],
                                s->now.pos[STREAM_TO_DEVICE], td, &td_upto);
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    if (td_upto != s->now.pos[STREAM_TO_DEVICE]) {
        struct stream_token next = s->now;
        next.pos[STREAM_TO_DEVICE] = td_upto;
        json_object_set_new(out, "next_batch", full_token(&next));
    }
    /* Device lists: only incremental answers say what changed since. */
    json_t *dl = json_object_get(out, "device_lists");
    json_t *dl_changed = json_object_get(dl, "changed"), *dl_left = json_object_get(dl, "left");
    if (!initial) {
        rc = client__device_lists_between(r, s->user_id, &s->since_tok, &s->now, dl_changed,
                                          dl_left);
        if (rc < 0) {
            json_decref(out);
            return rc;
        }
    }
    *empty = json_object_size(s->join) == 0 && json_object_size(s->invite) == 0 &&
             json_object_size(s->leave) == 0 && json_object_size(s->knock) == 0 &&
             json_array_size(ad) == 0 && json_array_size(pres) == 0 &&
             json_array_size(td) == 0 && json_array_size(dl_changed) == 0 &&
             json_array_size(dl_left) == 0;
    *body = out;
    return 0;
}

static void release_map(void *m) { map_release(m); }

/* The notifier's callback: re-run on an event, else answer empty. */
static void woken(struct req *r, enum notify_why why, const struct stream_token *pos)
{
    if (why == NOTIFY_EVENT) {
        req_continue(r, client_sync);
        return;
    }
    req_json(r, 200, empty_body(pos, NULL, NULL, NULL, NULL));
    req_complete(r);
}

/*
 * GET /sync (spec "GET /_matrix/client/v3/sync"). Query: since, timeout
 * (ms), filter (ID or inline JSON), full_state; set_presence and unknown
 * parameters are accepted and ignored. Re-entered by the notifier when a
 * relevant event commits while parked; the deadline counts from the
 * request's arrival.
 */
int client_sync(struct req *r)
{
    struct sync s = {.r = r, .user_id = r->auth.user_id, .since = -1};
    const char *since = req_query(r, "since");
    if (since && *since) {
        if (!stream_token_parse(since, &s.since_tok)) {
            return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'since' token");
        }
        s.since = s.since_tok.pos[STREAM_EVENTS];
    }
    s.receipts = ARENA_NEW(&r->arena, struct map);
    s.extra_rooms = ARENA_NEW(&r->arena, struct map);
    map_init(s.receipts);
    map_init(s.extra_rooms);
    arena_defer(&r->arena, release_map, s.receipts);
    arena_defer(&r->arena, release_map, s.extra_rooms);
    long long timeout_ms = 0;
    const char *timeout = req_query(r, "timeout");
    if (timeout && *timeout) {
        char *end;
        timeout_ms = strtoll(timeout, &end, 10);
        if (*end || timeout_ms < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "'timeout' must be a non-negative integer");
        }
        if (timeout_ms > SYNC_MAX_TIMEOUT_MS) {
            timeout_ms = SYNC_MAX_TIMEOUT_MS;
        }
    }
    const char *full = req_query(r, "full_state");
    s.full_state = full && strcmp(full, "true") == 0;
    const char *after = req_query(r, "use_state_after");
    if (!after) {
        after = req_query(r, "org.matrix.msc4222.use_state_after");
        s.state_after_unstable = after != NULL;
    }
    s.state_after = after && strcmp(after, "true") == 0;
    int rc = load_filter(r, &s.f);
    if (rc) {
        return rc;
    }
    const char *set_presence = req_query(r, "set_presence");
    if (set_presence && strcmp(set_presence, "online") != 0 &&
        strcmp(set_presence, "offline") != 0 && strcmp(set_presence, "unavailable") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "'set_presence' must be one of online, offline, unavailable");
    }
    if (r->srv->presence) {
        presence_on_sync(r->srv->presence, r, s.user_id, set_presence);
    }
    int64_t deadline = r->start_ns + (int64_t)timeout_ms * 1000000;
    struct notify *n = r->srv->notify;
    for (int attempt = 0;; attempt++) {
        json_t *body = NULL;
        bool empty = false;
        char **joined = NULL;
        size_t n_joined = 0;
        rc = compute(&s, &body, &empty, &joined, &n_joined);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        if (!empty || s.since < 0 || s.full_state || !n || attempt >= SYNC_RETRIES ||
            req_now_ns() >= deadline) {
            /* End-to-end encryption: the device's one-time and fallback
             * keys, read only for an answer that is sent (not for the
             * empty passes of a long poll). */
            json_t *otk = NULL, *fallback = NULL;
            rc = client__keys_sync_counts(r, s.user_id, r->auth.device_id, &otk, &fallback);
            if (rc < 0) {
                json_decref(body);
                return req_fail(r, rc, NULL);
            }
            json_object_set_new(body, "device_one_time_keys_count", otk);
            json_object_set_new(body, "device_unused_fallback_key_types", fallback);
            return req_json(r, 200, body);
        }
        json_decref(body);
        rc = notify_wait(n, r, s.user_id, joined, n_joined, &s.now, deadline, woken);
        if (rc == REQ_PARKED) {
            return REQ_PARKED;
        }
        if (rc < 0) {
            /* Shutting down: answer now. */
            return req_json(r, 200, empty_body(&s.now, NULL, NULL, NULL, NULL));
        }
        /* Something committed meanwhile: compute again. */
    }
}

/* ---- filters ---- */

/* Only the user may read and write its own filters. */
static int own_user(struct req *r, const char *verb)
{
    if (strcmp(r->param[0].p, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "Cannot %s filters for other users", verb);
    }
    return 0;
}

/* POST /user/{userId}/filter: stores a filter and returns its ID. */
int client_filter_post(struct req *r)
{
    int rc = own_user(r, "create");
    if (rc) {
        return rc;
    }
    struct sync_filter f;
    const char *why = NULL;
    if (read_filter(r->json, &f, &why) != 0) {
        return req_fail(r, -ERR_BAD_JSON, "Invalid filter: bad '%s'", why);
    }
    char *text = json_dumps(r->json, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        return req_fail(r, -ERR_NOMEM, NULL);
    }
    arena_defer(&r->arena, free, text);
    int64_t id = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = store_begin(r->db);
        if (rc == 0) {
            rc = store_filter_put(r->db, r->auth.user_id, text, &id);
        }
        if (rc == 0) {
            rc = store_commit(r->db);
        } else {
            store_rollback(r->db);
        }
        if (rc != -ERR_CONFLICT) {
            break;
        }
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:o}", "filter_id", json_sprintf("%lld", (long long)id)));
}

/* GET /user/{userId}/filter/{filterId}. */
int client_filter_get(struct req *r)
{
    int rc = own_user(r, "get");
    if (rc) {
        return rc;
    }
    const char *arg = r->param[1].p;
    char *end;
    long long id = strtoll(arg, &end, 10);
    char *text = NULL;
    rc = *arg && !*end && id >= 0 ? store_filter_get(r->db, &r->arena, r->auth.user_id, id, &text)
                                  : -ERR_NOT_FOUND;
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "No such filter");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j) {
        return req_fail(r, -ERR_DB, "Stored filter is unreadable");
    }
    return req_json(r, 200, j);
}
