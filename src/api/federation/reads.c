/*
 * Reading rooms over federation (spec: Server-Server API "Retrieving
 * events", "Backfilling and retrieving missing events", "Room State",
 * "Querying for information"), as the server that has the events:
 *
 *   GET  /event/{eventId}                 one PDU, {origin, origin_server_ts, pdus}
 *   GET  /state/{roomId}?event_id=        the state before the event, and its auth chain
 *   GET  /state_ids/{roomId}?event_id=    the same as event IDs
 *   GET  /event_auth/{roomId}/{eventId}   the event's auth chain
 *   GET  /backfill/{roomId}?v=&limit=     the `v` events and those before them
 *   POST /get_missing_events/{roomId}     prev_events walked back from latest_events
 *   GET  /timestamp_to_event/{roomId}     the event closest to a time
 *   GET  /query/directory?room_alias=     a local alias's room and servers
 *
 * Who may read (as Synapse): every room endpoint needs the requesting
 * server to pass the room's server ACL and to have a member joined to the
 * room now (current state); otherwise 403 M_FORBIDDEN, also for rooms
 * unknown here. "State at an event" is the state before it (Synapse's
 * get_state_ids_for_pdu; the OpenAPI text: "prior to considering any
 * state changes induced by the requested event"), and the auth chain of
 * /state and /state_ids is that of those state events.
 *
 * Events handed out one by one (/event, /backfill, /get_missing_events)
 * pass a history visibility check for servers (Synapse's
 * filter_events_for_server): the room's m.room.history_visibility in the
 * state after the event (the state before it, plus the event itself when
 * it is a state event that was not rejected; "shared" when unset, also for
 * outliers, whose state is not known here) decides. "world_readable",
 * "shared" and any other value let every member server see it; with
 * "invited" the server must have had a user joined or invited in that
 * state, with "joined" a user joined. Events a server may not see are
 * served redacted (the room version's redaction algorithm), so the
 * server still gets the graph and the event IDs. /backfill and
 * /get_missing_events leave rejected events out.
 *
 * Events are served as stored: the canonical PDU (v3+ without event_id),
 * already redacted when a redaction was applied here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/federation/federation.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "core/id.h"
#include "core/redact.h"
#include "store/store.h"
#include "svc/room.h"
#include "svc/srv.h"

/* Synapse asks for 100 per /backfill and serves no more; 20 for
 * /get_missing_events, 10 when the request names no limit. */
#define BACKFILL_MAX 100
#define MISSING_MAX 20
#define MISSING_DEFAULT 10
/* Most events a request may start from (each costs a lookup). */
#define START_EVENTS_MAX 100
/* Most events a walk takes from its queue, rejected ones included. */
#define WALK_MAX 1000

static void release_map(void *m) { map_release(m); }

/* A map released with the request's arena. */
static struct map *request_map(struct req *r)
{
    struct map *m = ARENA_NEW(&r->arena, struct map);
    map_init(m);
    arena_defer(&r->arena, release_map, m);
    return m;
}

/* ---- who may read ---- */

struct room_gate {
    const char *room_id;
    const struct room_version *rv;
    int64_t room_nid;
};

/*
 * The checks of every room endpoint: the room is known here, its server
 * ACL allows the requesting server and that server has a member joined
 * now. 0 with *g filled, or the failure set on r (403 for the first
 * three, as the requesting server cannot tell them apart anyway).
 */
static int gate(struct req *r, const char *room_id, struct room_gate *g)
{
    const char *origin = r->auth.server;
    g->room_id = room_id;
    g->rv = room_version_of(r, room_id);
    if (!g->rv) {
        return req_fail(r, -ERR_FORBIDDEN, "Your server is not in room %s", room_id);
    }
    if (!fed__acl_allows(r, room_id, origin)) {
        return req_fail(r, -ERR_FORBIDDEN, "Server is denied by the room's server ACL");
    }
    char **servers = NULL;
    size_t n = 0;
    int rc = room_servers(r, room_id, &servers, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    bool in_room = false;
    for (size_t i = 1; i < n && !in_room; i++) { /* [0] is this server */
        in_room = strcmp(servers[i], origin) == 0;
    }
    if (!in_room) {
        return req_fail(r, -ERR_FORBIDDEN, "Your server is not in room %s", room_id);
    }
    struct store_room room;
    rc = store_room_get(r->db, &r->arena, room_id, &room);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    g->room_nid = room.nid;
    return 0;
}

/* ---- history visibility for servers ---- */

/* What a state snapshot says about the requesting server, read once per
 * snapshot and request. */
struct snap_view {
    const char *visibility; /* NULL until read */
    bool members_read;
    size_t n;               /* the requesting server's users in the snapshot */
    const char **users;
    const char **memberships;
};

struct vis {
    struct req *r;
    const struct room_version *rv;
    const char *origin;
    struct map *snaps; /* snapshot nid (8 bytes) -> struct snap_view */
    /* The nids of (m.room.history_visibility, ""), looked up once: rc 1
     * until then, then 0 or the lookup's error. */
    int hv_rc;
    int64_t hv_type_nid, hv_key_nid;
};

static void vis_init(struct vis *v, struct req *r, const struct room_version *rv)
{
    v->r = r;
    v->rv = rv;
    v->origin = r->auth.server;
    v->snaps = request_map(r);
    v->hv_rc = 1;
}

static bool user_of_origin(const struct vis *v, const char *user_id)
{
    const char *colon = user_id ? strchr(user_id, ':') : NULL;
    return colon && strcmp(colon + 1, v->origin) == 0;
}

static struct snap_view *snap_get(struct vis *v, int64_t nid)
{
    struct arena *a = &v->r->arena;
    int64_t *key = arena_alloc(a, sizeof(*key));
    *key = nid;
    struct str k = {(const char *)key, sizeof(*key)};
    struct snap_view *s = map_get(v->snaps, k);
    if (!s) {
        s = ARENA_NEW(a, struct snap_view);
        map_put(v->snaps, k, s);
    }
    return s;
}

/* content.history_visibility of a stored PDU, "shared" when unset. */
static const char *visibility_of(struct arena *a, const char *json)
{
    json_t *pdu = json ? json_arena(a, json_loads(json, 0, NULL)) : NULL;
    const char *hv = json_get_str(json_get_obj(pdu, "content"), "history_visibility");
    return hv ? hv : "shared";
}

/* The snapshot's history visibility. */
static int snap_visibility(struct vis *v, int64_t nid, struct snap_view *s)
{
    if (s->visibility) {
        return 0;
    }
    struct store_conn *db = v->r->db;
    struct arena *a = &v->r->arena;
    if (v->hv_rc == 1) {
        v->hv_rc = store_intern_get(db, STORE_INTERN_TYPE, "m.room.history_visibility",
                                    &v->hv_type_nid);
        if (v->hv_rc == 0) {
            v->hv_rc = store_intern_get(db, STORE_INTERN_STATE_KEY, "", &v->hv_key_nid);
        }
    }
    int rc = v->hv_rc;
    int64_t type_nid = v->hv_type_nid, key_nid = v->hv_key_nid;
    if (rc == -ERR_NOT_FOUND) {
        s->visibility = "shared"; /* no such event anywhere here */
        return 0;
    }
    struct store_event ev = {0};
    if (rc == 0) {
        rc = store_snapshot_lookup(db, a, nid, type_nid, key_nid, &ev);
    }
    if (rc < 0) {
        return rc;
    }
    s->visibility = ev.nid ? visibility_of(a, ev.json) : "shared";
    return 0;
}

/* The requesting server's users and their memberships in the snapshot. */
static int snap_members(struct vis *v, int64_t nid, struct snap_view *s)
{
    if (s->members_read) {
        return 0;
    }
    struct arena *a = &v->r->arena;
    struct store_state_row *rows = NULL;
    size_t n = 0;
    int rc = store_snapshot_state(v->r->db, a, nid, &rows, &n);
    if (rc < 0) {
        return rc;
    }
    s->users = ARENA_ARRAY(a, const char *, n + 1);
    s->memberships = ARENA_ARRAY(a, const char *, n + 1);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].type, "m.room.member") != 0 ||
            !user_of_origin(v, rows[i].state_key)) {
            continue;
        }
        json_t *pdu = json_arena(a, json_loads(rows[i].json, 0, NULL));
        const char *m = json_get_str(json_get_obj(pdu, "content"), "membership");
        s->users[s->n] = rows[i].state_key;
        s->memberships[s->n++] = m ? m : "";
    }
    s->members_read = true;
    return 0;
}

/* Whether the requesting server may see the stored event `se` (PDU `pdu`)
 * by the rule in the header comment. */
static int visible(struct vis *v, const struct store_event *se, const json_t *pdu, bool *ok)
{
    *ok = true;
    const char *type = json_get_str(pdu, "type");
    const char *sk = json_get_str(pdu, "state_key");
    bool counts = !se->rejected && type && sk; /* a state event in the state after it */
    struct snap_view *s = snap_get(v, se->state_before_nid);
    const char *hv;
    if (counts && strcmp(type, "m.room.history_visibility") == 0 && sk[0] == '\0') {
        hv = json_get_str(json_get_obj(pdu, "content"), "history_visibility");
        hv = hv ? hv : "shared";
    } else {
        int rc = snap_visibility(v, se->state_before_nid, s);
        if (rc < 0) {
            return rc;
        }
        hv = s->visibility;
    }
    bool invited_ok = strcmp(hv, "invited") == 0;
    if (!invited_ok && strcmp(hv, "joined") != 0) {
        return 0;
    }
    int rc = snap_members(v, se->state_before_nid, s);
    if (rc < 0) {
        return rc;
    }
    /* The event itself replaces its user's entry in the state after it. */
    const char *own_user = NULL, *own_m = NULL;
    if (counts && strcmp(type, "m.room.member") == 0 && user_of_origin(v, sk)) {
        own_user = sk;
        own_m = json_get_str(json_get_obj(pdu, "content"), "membership");
    }
    *ok = false;
    for (size_t i = 0; i <= s->n && !*ok; i++) {
        const char *m;
        if (i == s->n) {
            m = own_m;
        } else if (own_user && strcmp(s->users[i], own_user) == 0) {
            continue;
        } else {
            m = s->memberships[i];
        }
        *ok = m && (strcmp(m, "join") == 0 || (invited_ok && strcmp(m, "invite") == 0));
    }
    return 0;
}

/* The stored event as the requesting server may see it (new reference):
 * the PDU, or its redaction. NULL with *rc 0 when the stored JSON does
 * not parse (left out). */
static json_t *served(struct vis *v, const struct store_event *se, int *rc)
{
    *rc = 0;
    json_t *pdu = json_loads(se->json, 0, NULL);
    if (!pdu) {
        return NULL;
    }
    bool ok = true;
    *rc = visible(v, se, pdu, &ok);
    if (*rc < 0) {
        json_decref(pdu);
        return NULL;
    }
    if (!ok) {
        json_t *red = NULL;
        if (redact_event(v->rv, pdu, &red) != 0) {
            red = NULL;
        }
        json_decref(pdu);
        pdu = red;
    }
    return pdu;
}

/* {origin, origin_server_ts, pdus} with the events in order, each as
 * served(); 0 or the failure set on r. */
static int answer_pdus(struct req *r, struct vis *v, const struct store_event *events, size_t n)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        int rc;
        json_t *pdu = served(v, &events[i], &rc);
        if (rc < 0) {
            json_decref(list);
            return req_fail(r, rc, NULL);
        }
        if (pdu) {
            json_array_append_new(list, pdu);
        }
    }
    return req_json(r, 200,
                    json_pack("{s:s,s:I,s:o}", "origin", r->srv->cfg->server_name,
                              "origin_server_ts", (json_int_t)req_now_ms(), "pdus", list));
}

/* ---- GET /event/{eventId} ---- */

int fed_event(struct req *r)
{
    const char *event_id = r->param[0].p;
    struct store_event se;
    int rc = store_event_get(r->db, &r->arena, event_id, &se);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, rc, "Unknown event %s", event_id);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *pdu = json_arena(&r->arena, json_loads(se.json, 0, NULL));
    const char *room_id = json_get_str(pdu, "room_id");
    if (!room_id) {
        return req_fail(r, -ERR_UNKNOWN, "The stored event %s is unreadable", event_id);
    }
    struct room_gate g;
    rc = gate(r, room_id, &g);
    if (rc) {
        return rc;
    }
    struct vis v;
    vis_init(&v, r, g.rv);
    return answer_pdus(r, &v, &se, 1);
}

/* ---- state and auth chains ---- */

/*
 * The event `event_id` of the gated room, for the state endpoints: 404
 * when unknown, in another room, rejected, or an outlier (no stream
 * position: its state is not known here).
 */
static int state_event(struct req *r, const struct room_gate *g, const char *event_id,
                       struct store_event *se)
{
    if (!event_id) {
        return req_fail(r, -ERR_MISSING_PARAM, "'event_id' is required");
    }
    int rc = store_event_get(r->db, &r->arena, event_id, se);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && (se->room_nid != g->room_nid || se->rejected ||
                                             se->stream_ordering == 0))) {
        return req_fail(r, -ERR_NOT_FOUND, "Could not find the state at event %s", event_id);
    }
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

/* Appends each event's ID (IDs) or parsed PDU to `list`. */
static void append_events(json_t *list, const struct store_event *ev, size_t n, bool ids)
{
    for (size_t i = 0; i < n; i++) {
        json_t *j = ids ? json_string(ev[i].event_id) : json_loads(ev[i].json, 0, NULL);
        if (j) {
            json_array_append_new(list, j);
        }
    }
}

/* /state and /state_ids: the state before the event and the auth chain
 * of that state. */
static int state_at(struct req *r, bool ids)
{
    const char *room_id = r->param[0].p;
    struct room_gate g;
    int rc = gate(r, room_id, &g);
    struct store_event se;
    if (!rc) {
        rc = state_event(r, &g, req_query(r, "event_id"), &se);
    }
    if (rc) {
        return rc;
    }
    struct store_state_row *rows = NULL;
    size_t n = 0;
    rc = store_snapshot_state(r->db, &r->arena, se.state_before_nid, &rows, &n);
    int64_t *nids = ARENA_ARRAY(&r->arena, int64_t, n + 1);
    for (size_t i = 0; i < n; i++) {
        nids[i] = rows[i].event_nid;
    }
    struct store_event *chain = NULL;
    size_t n_chain = 0;
    if (rc == 0) {
        rc = store_auth_chain(r->db, &r->arena, nids, n, &chain, &n_chain);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *state = json_array(), *auth = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = ids ? json_string(rows[i].event_id) : json_loads(rows[i].json, 0, NULL);
        if (j) {
            json_array_append_new(state, j);
        }
    }
    append_events(auth, chain, n_chain, ids);
    if (ids) {
        return req_json(r, 200,
                        json_pack("{s:o,s:o}", "pdu_ids", state, "auth_chain_ids", auth));
    }
    return req_json(r, 200, json_pack("{s:o,s:o}", "pdus", state, "auth_chain", auth));
}

int fed_state(struct req *r) { return state_at(r, false); }
int fed_state_ids(struct req *r) { return state_at(r, true); }

int fed_event_auth(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    struct room_gate g;
    int rc = gate(r, room_id, &g);
    if (rc) {
        return rc;
    }
    struct store_event se;
    rc = store_event_get(r->db, &r->arena, event_id, &se);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && se.room_nid != g.room_nid)) {
        return req_fail(r, -ERR_NOT_FOUND, "Unknown event %s in room %s", event_id, room_id);
    }
    struct store_event *chain = NULL;
    size_t n_chain = 0;
    if (rc == 0) {
        rc = store_auth_chain(r->db, &r->arena, &se.nid, 1, &chain, &n_chain);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *auth = json_array();
    append_events(auth, chain, n_chain, false);
    return req_json(r, 200, json_pack("{s:o}", "auth_chain", auth));
}

/* ---- walking the graph backwards ---- */

/* A growable list of stored events. */
struct ev_list {
    struct store_event *ev;
    size_t n, cap;
};

static void ev_push(struct arena *a, struct ev_list *l, const struct store_event *e)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 32;
        struct store_event *grown = ARENA_ARRAY(a, struct store_event, cap);
        if (l->n) {
            memcpy(grown, l->ev, l->n * sizeof(*grown));
        }
        l->ev = grown;
        l->cap = cap;
    }
    l->ev[l->n++] = *e;
}

/* Takes the queued event with the greatest depth (then stream ordering). */
static struct store_event ev_pop_deepest(struct ev_list *q)
{
    size_t best = 0;
    for (size_t i = 1; i < q->n; i++) {
        const struct store_event *a = &q->ev[i], *b = &q->ev[best];
        if (a->depth > b->depth ||
            (a->depth == b->depth && a->stream_ordering > b->stream_ordering)) {
            best = i;
        }
    }
    struct store_event e = q->ev[best];
    q->ev[best] = q->ev[--q->n];
    return e;
}

/* Marks an event ID seen; false when it was already. */
static bool see(struct map *seen, const char *event_id)
{
    struct str k = str_from(event_id);
    if (map_has(seen, k)) {
        return false;
    }
    map_put(seen, k, (void *)1);
    return true;
}

/* Parses a non-negative integer query argument; -1 when malformed. */
static long long query_count(const char *s)
{
    if (!s || !*s) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return (*end || errno || v < 0) ? -1 : v;
}

/*
 * GET /backfill/{roomId}?v=...&limit=: the `v` events of the room and the
 * events before them, breadth-first by depth (the deepest queued event
 * next, its prev_events queued), up to `limit` (at most 100), deepest
 * first as taken.
 */
int fed_backfill(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct room_gate g;
    int rc = gate(r, room_id, &g);
    if (rc) {
        return rc;
    }
    const char *limit_s = req_query(r, "limit");
    if (!limit_s) {
        return req_fail(r, -ERR_MISSING_PARAM, "'limit' is required");
    }
    long long limit = query_count(limit_s);
    if (limit < 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
    }
    if (limit > BACKFILL_MAX) {
        limit = BACKFILL_MAX;
    }
    struct map *seen = request_map(r);
    struct ev_list queue = {0}, out = {0};
    int n_v = 0;
    for (int i = 0; i < r->n_query; i++) {
        if (!str_eq_cstr(r->query[i].key, "v")) {
            continue;
        }
        if (++n_v > START_EVENTS_MAX) {
            return req_fail(r, -ERR_INVALID_PARAM, "At most %d events in 'v'", START_EVENTS_MAX);
        }
        const char *id = arena_strndup(&r->arena, r->query[i].value.p, r->query[i].value.len);
        struct store_event se;
        rc = store_event_get(r->db, &r->arena, id, &se);
        if (rc == -ERR_NOT_FOUND || (rc == 0 && se.room_nid != g.room_nid)) {
            continue; /* unknown here: nothing to walk from */
        }
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        if (see(seen, se.event_id)) {
            ev_push(&r->arena, &queue, &se);
        }
    }
    if (n_v == 0) {
        return req_fail(r, -ERR_MISSING_PARAM, "'v' is required");
    }
    for (int taken = 0; queue.n > 0 && out.n < (size_t)limit && taken < WALK_MAX; taken++) {
        struct store_event e = ev_pop_deepest(&queue);
        if (!e.rejected) {
            ev_push(&r->arena, &out, &e);
        }
        struct store_event *prevs = NULL;
        size_t n_prevs = 0;
        rc = store_event_prevs(r->db, &r->arena, e.nid, &prevs, &n_prevs);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        for (size_t i = 0; i < n_prevs; i++) {
            if (prevs[i].room_nid == g.room_nid && see(seen, prevs[i].event_id)) {
                ev_push(&r->arena, &queue, &prevs[i]);
            }
        }
    }
    struct vis v;
    vis_init(&v, r, g.rv);
    return answer_pdus(r, &v, out.ev, out.n);
}

/* The strings of a body array (arena), or the failure set on r. */
static int id_list(struct req *r, const char *key, bool required, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    const json_t *arr = json_object_get(r->json, key);
    if (!arr) {
        return required ? req_fail(r, -ERR_MISSING_PARAM, "'%s' is required", key) : 0;
    }
    if (!json_is_array(arr)) {
        return req_fail(r, -ERR_BAD_JSON, "'%s' must be an array of event IDs", key);
    }
    *out = ARENA_ARRAY(&r->arena, const char *, json_array_size(arr) + 1);
    size_t i;
    const json_t *s;
    json_array_foreach(arr, i, s)
    {
        if (!json_is_string(s)) {
            return req_fail(r, -ERR_BAD_JSON, "'%s' must be an array of event IDs", key);
        }
        (*out)[(*n)++] = json_string_value(s);
    }
    return 0;
}

/* An optional non-negative integer of the body, `def` when absent. */
static int body_count(struct req *r, const char *key, long long def, long long *out)
{
    const json_t *j = json_object_get(r->json, key);
    if (!j) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(j) || json_integer_value(j) < 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' must be a non-negative integer", key);
    }
    *out = json_integer_value(j);
    return 0;
}

/*
 * POST /get_missing_events/{roomId}: from latest_events back along
 * prev_events, level by level, never into or through earliest_events or
 * events below min_depth, up to `limit` (default 10, at most 20); the
 * latest events themselves are not included. Oldest first: the walk's
 * order reversed, as Synapse answers.
 */
int fed_get_missing_events(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct room_gate g;
    int rc = gate(r, room_id, &g);
    const char **earliest = NULL, **latest = NULL;
    size_t n_earliest = 0, n_latest = 0;
    long long limit = 0, min_depth = 0;
    if (!rc) {
        rc = id_list(r, "earliest_events", false, &earliest, &n_earliest);
    }
    if (!rc) {
        rc = id_list(r, "latest_events", true, &latest, &n_latest);
    }
    if (!rc) {
        rc = body_count(r, "limit", MISSING_DEFAULT, &limit);
    }
    if (!rc) {
        rc = body_count(r, "min_depth", 0, &min_depth);
    }
    if (rc) {
        return rc;
    }
    if (n_latest > START_EVENTS_MAX) {
        return req_fail(r, -ERR_INVALID_PARAM, "At most %d latest_events", START_EVENTS_MAX);
    }
    if (limit > MISSING_MAX) {
        limit = MISSING_MAX;
    }
    struct map *seen = request_map(r);
    for (size_t i = 0; i < n_earliest; i++) {
        see(seen, earliest[i]);
    }
    struct ev_list front = {0}, found = {0};
    for (size_t i = 0; i < n_latest; i++) {
        struct store_event se;
        if (!see(seen, latest[i])) {
            continue;
        }
        rc = store_event_get(r->db, &r->arena, latest[i], &se);
        if (rc == -ERR_NOT_FOUND || (rc == 0 && se.room_nid != g.room_nid)) {
            continue;
        }
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        ev_push(&r->arena, &front, &se);
    }
    int walked = 0;
    while (front.n > 0 && found.n < (size_t)limit && walked < WALK_MAX) {
        struct ev_list next = {0};
        for (size_t f = 0; f < front.n && found.n < (size_t)limit && walked < WALK_MAX; f++) {
            walked++;
            struct store_event *prevs = NULL;
            size_t n_prevs = 0;
            rc = store_event_prevs(r->db, &r->arena, front.ev[f].nid, &prevs, &n_prevs);
            if (rc < 0) {
                return req_fail(r, rc, NULL);
            }
            for (size_t i = 0; i < n_prevs && found.n < (size_t)limit; i++) {
                const struct store_event *p = &prevs[i];
                if (p->room_nid != g.room_nid || p->depth < min_depth ||
                    !see(seen, p->event_id)) {
                    continue;
                }
                ev_push(&r->arena, &next, p);
                if (!p->rejected) {
                    ev_push(&r->arena, &found, p);
                }
            }
        }
        front = next;
    }
    /* Oldest first. */
    for (size_t i = 0; i < found.n / 2; i++) {
        struct store_event t = found.ev[i];
        found.ev[i] = found.ev[found.n - 1 - i];
        found.ev[found.n - 1 - i] = t;
    }
    struct vis v;
    vis_init(&v, r, g.rv);
    json_t *list = json_array();
    for (size_t i = 0; i < found.n; i++) {
        json_t *pdu = served(&v, &found.ev[i], &rc);
        if (rc < 0) {
            json_decref(list);
            return req_fail(r, rc, NULL);
        }
        if (pdu) {
            json_array_append_new(list, pdu);
        }
    }
    return req_json(r, 200, json_pack("{s:o}", "events", list));
}

/* ---- GET /timestamp_to_event/{roomId}?ts=&dir=f|b ---- */

int fed_timestamp_to_event(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct room_gate g;
    int rc = gate(r, room_id, &g);
    if (rc) {
        return rc;
    }
    const char *ts_s = req_query(r, "ts"), *dir = req_query(r, "dir");
    if (!ts_s || !dir) {
        return req_fail(r, -ERR_MISSING_PARAM, "'ts' and 'dir' are required");
    }
    long long ts = query_count(ts_s);
    if (ts < 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'ts' must be a timestamp in milliseconds");
    }
    if (strcmp(dir, "f") != 0 && strcmp(dir, "b") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'dir' must be 'f' or 'b'");
    }
    bool forwards = dir[0] == 'f';
    char *event_id = NULL;
    int64_t event_ts = 0;
    rc = store_event_at_ts(r->db, &r->arena, g.room_nid, ts, forwards, &event_id, &event_ts);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, rc, "Unable to find an event from %lld in %s direction", ts,
                        forwards ? "forward" : "backward");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:s,s:I}", "event_id", event_id, "origin_server_ts",
                                      (json_int_t)event_ts));
}

/* ---- GET /query/directory?room_alias= ---- */

int fed_query_directory(struct req *r)
{
    const char *alias = req_query(r, "room_alias");
    if (!alias) {
        return req_fail(r, -ERR_MISSING_PARAM, "'room_alias' is required");
    }
    if (!id_alias_valid(alias, strlen(alias))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a valid room alias", alias);
    }
    const char *server = id_server_part(alias);
    char *room_id = NULL;
    int rc = server && strcmp(server, r->srv->cfg->server_name) == 0
                 ? store_alias_get(r->db, &r->arena, alias, &room_id, NULL)
                 : -ERR_NOT_FOUND;
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, rc, "Room alias %s not found", alias);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *list = json_array();
    char **servers = NULL;
    size_t n = 0;
    rc = room_servers(r, room_id, &servers, &n);
    if (rc == -ERR_NOT_FOUND) {
        json_array_append_new(list, json_string(r->srv->cfg->server_name));
    } else if (rc < 0) {
        json_decref(list);
        return req_fail(r, rc, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_string(servers[i]));
    }
    return req_json(r, 200, json_pack("{s:s,s:o}", "room_id", room_id, "servers", list));
}
