/*
 * Who may read what in a room (spec: Client-Server API "Room History
 * Visibility", server behaviour; "Guest access"; GET /state and /members
 * for former members as Synapse serves them). Every client endpoint that
 * serves room events or state goes through here:
 *
 *   - client__room_access decides whether the user may read the room at
 *     all and how: as a joined member (everything up to now, current
 *     state), as a former member who left (nothing after the leave, state
 *     as of the leave), or as a peeker in a world_readable room (anyone,
 *     guests included; current state). Everyone else gets M_FORBIDDEN.
 *   - client__visible_events filters a batch of stored events by the
 *     history visibility and the user's membership in force at each event.
 *     It reads only two state entries per distinct state snapshot (the
 *     m.room.history_visibility event and the user's m.room.member event),
 *     caches them per snapshot for the whole request, and parses each
 *     event once, so a page costs a few queries however long the room is.
 *   - the state helpers serve state as of a past event (the leave of a
 *     former member, the `at` token of /members, lazy-loaded members of
 *     /messages) from the stored snapshots.
 *
 * The rules (spec "Server behaviour"), with the state at an event being
 * the state before it plus the event itself:
 *   1. world_readable: allow;
 *   2. the user's membership was join: allow;
 *   3. shared (also absent or unknown values): allow when the user was
 *      joined at some point after the event (the "join horizon" below);
 *   4. invited and the user's membership was invite: allow;
 *   5. otherwise deny.
 * A history visibility event is visible when the visibility before or
 * after it allows it, and the user's own membership event when the
 * membership before or after it does; the user's own leave always (a
 * rejected invite must show in /sync).
 */
#include <stdint.h>
#include <string.h>

#include "api/client/client.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "store/store.h"
#include "svc/room.h"

#define HV_TYPE "m.room.history_visibility"
#define MEMBER_TYPE "m.room.member"
/* Membership events followed back when looking for the user's last join. */
#define HORIZON_MAX_STEPS 64

static bool streq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

/* The two state entries that decide visibility, at one snapshot. */
struct snap_vis {
    const char *hv;         /* history_visibility, NULL when absent */
    const char *membership; /* the user's membership, NULL when none */
};

/* Per-request visibility state, hung off the access (arena). */
struct client_vis {
    bool nids_loaded;
    int64_t hv_type, member_type, empty_key, user_key; /* 0: never interned */
    struct map snaps;                                  /* snapshot nid -> struct snap_vis */
    bool horizon_known;
    int64_t horizon; /* shared events below this stream ordering are visible */
};

static void vis_release(void *p)
{
    struct client_vis *v = p;
    map_release(&v->snaps);
}

static struct client_vis *vis_of(struct req *r, struct client_room_access *acc)
{
    if (!acc->vis) {
        struct client_vis *v = arena_zalloc(&r->arena, sizeof(*v));
        map_init(&v->snaps);
        arena_defer(&r->arena, vis_release, v);
        acc->vis = v;
    }
    return acc->vis;
}

/* An interned nid, 0 when the string was never interned. */
static int intern_or_zero(struct req *r, enum store_intern kind, const char *s, int64_t *nid)
{
    int rc = store_intern_get(r->db, kind, s, nid);
    if (rc == -ERR_NOT_FOUND) {
        *nid = 0;
        return 0;
    }
    return rc;
}

static int load_nids(struct req *r, struct client_vis *v)
{
    if (v->nids_loaded) {
        return 0;
    }
    int rc = intern_or_zero(r, STORE_INTERN_TYPE, HV_TYPE, &v->hv_type);
    if (!rc) {
        rc = intern_or_zero(r, STORE_INTERN_TYPE, MEMBER_TYPE, &v->member_type);
    }
    if (!rc) {
        rc = intern_or_zero(r, STORE_INTERN_STATE_KEY, "", &v->empty_key);
    }
    if (!rc) {
        rc = intern_or_zero(r, STORE_INTERN_STATE_KEY, r->auth.user_id, &v->user_key);
    }
    v->nids_loaded = rc == 0;
    return rc;
}

/* content[key] of a stored PDU as an arena string, or NULL. */
static const char *content_str(struct req *r, const char *json, const char *key)
{
    if (!json) {
        return NULL;
    }
    json_error_t e;
    json_t *pdu = json_loads(json, 0, &e);
    const char *v = json_get_str(json_get_obj(pdu, "content"), key);
    char *out = v ? arena_strdup(&r->arena, v) : NULL;
    json_decref(pdu);
    return out;
}

/* The state event (type_nid, key_nid) at a snapshot; se->nid 0 if none. */
static int lookup(struct req *r, int64_t snapshot, int64_t type_nid, int64_t key_nid,
                  struct store_event *se)
{
    if (!type_nid || !key_nid) {
        *se = (struct store_event){0};
        return 0;
    }
    return store_snapshot_lookup(r->db, &r->arena, snapshot, type_nid, key_nid, se);
}

/* The visibility and the user's membership at `snapshot`, cached. */
static int snap_get(struct req *r, struct client_vis *v, int64_t snapshot,
                    const struct snap_vis **out)
{
    struct str key = {(const char *)&snapshot, sizeof(snapshot)};
    struct snap_vis *sv = map_get(&v->snaps, key);
    if (sv) {
        *out = sv;
        return 0;
    }
    struct store_event hv, mem;
    int rc = lookup(r, snapshot, v->hv_type, v->empty_key, &hv);
    if (!rc) {
        rc = lookup(r, snapshot, v->member_type, v->user_key, &mem);
    }
    if (rc < 0) {
        return rc;
    }
    sv = arena_alloc(&r->arena, sizeof(*sv));
    sv->hv = hv.nid ? content_str(r, hv.json, "history_visibility") : NULL;
    sv->membership = mem.nid ? content_str(r, mem.json, "membership") : NULL;
    int64_t *k = arena_alloc(&r->arena, sizeof(*k));
    *k = snapshot;
    map_put(&v->snaps, (struct str){(const char *)k, sizeof(*k)}, sv);
    *out = sv;
    return 0;
}

/*
 * The join horizon for rule 3: shared events with a stream ordering below
 * it were followed by a time the user was joined. Currently joined:
 * everything. Otherwise the user's membership events are followed back
 * from the current one to the last that ended a join; never joined: 0.
 */
static int horizon_get(struct req *r, struct client_room_access *acc, struct client_vis *v,
                       int64_t *out)
{
    if (v->horizon_known) {
        *out = v->horizon;
        return 0;
    }
    int64_t h = 0;
    if (streq(acc->membership, "join")) {
        h = INT64_MAX;
    } else if (acc->member_event) {
        struct store_event cur = *acc->member_event;
        for (int i = 0; i < HORIZON_MAX_STEPS; i++) {
            struct store_event prev;
            int rc = lookup(r, cur.state_before_nid, v->member_type, v->user_key, &prev);
            if (rc < 0) {
                return rc;
            }
            if (!prev.nid) {
                break;
            }
            if (streq(content_str(r, prev.json, "membership"), "join")) {
                h = cur.stream_ordering;
                break;
            }
            cur = prev;
        }
    }
    v->horizon = h;
    v->horizon_known = true;
    *out = h;
    return 0;
}

/* Rules 1-5 for one (visibility, membership) pair. */
static int allowed(struct req *r, struct client_room_access *acc, struct client_vis *v,
                   const char *hv, const char *membership, int64_t stream, bool *ok)
{
    *ok = true;
    if (streq(hv, "world_readable") || streq(membership, "join")) {
        return 0;
    }
    if (streq(hv, "invited")) {
        *ok = streq(membership, "invite");
        return 0;
    }
    if (streq(hv, "joined")) {
        *ok = false;
        return 0;
    }
    /* shared, absent or not understood */
    int64_t h;
    int rc = horizon_get(r, acc, v, &h);
    if (rc < 0) {
        return rc;
    }
    *ok = stream < h;
    return 0;
}

/* Whether one stored event is visible. */
static int event_visible(struct req *r, struct client_room_access *acc, struct client_vis *v,
                         const struct store_event *se, bool *ok)
{
    *ok = false;
    if (se->rejected || se->room_nid != acc->room_nid || se->stream_ordering > acc->cap ||
        !se->json) {
        return 0;
    }
    const struct snap_vis *sv;
    int rc = snap_get(r, v, se->state_before_nid, &sv);
    if (rc < 0) {
        return rc;
    }
    rc = allowed(r, acc, v, sv->hv, sv->membership, se->stream_ordering, ok);
    if (rc < 0 || *ok) {
        return rc;
    }
    /* The state after the event differs only for the two kinds that set
     * what decides: give them the better of before and after. */
    json_error_t e;
    json_t *pdu = json_loads(se->json, 0, &e);
    const char *type = json_get_str(pdu, "type");
    const char *sk = json_get_str(pdu, "state_key");
    const json_t *content = json_get_obj(pdu, "content");
    if (streq(type, HV_TYPE) && streq(sk, "")) {
        const char *after = json_get_str(content, "history_visibility");
        rc = allowed(r, acc, v, after, sv->membership, se->stream_ordering, ok);
    } else if (streq(type, MEMBER_TYPE) && streq(sk, r->auth.user_id)) {
        const char *after = json_get_str(content, "membership");
        /* One's own leave always (as Synapse does): a rejected invite or
         * rescinded knock must show the room going away. */
        *ok = streq(after, "leave");
        rc = *ok ? 0 : allowed(r, acc, v, sv->hv, after, se->stream_ordering, ok);
    }
    json_decref(pdu);
    return rc;
}

int client__visible_events(struct req *r, struct client_room_access *acc,
                           const struct store_event *evs, size_t n, bool *keep)
{
    struct client_vis *v = vis_of(r, acc);
    int rc = load_nids(r, v);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = event_visible(r, acc, v, &evs[i], &keep[i]);
    }
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

int client__event_visible(struct req *r, struct client_room_access *acc,
                          const struct store_event *se, bool *ok)
{
    return client__visible_events(r, acc, se, 1, ok);
}

/* ---- who may read the room ---- */

/* Whether the user forgot the room (it then stays unreadable to them). */
static int forgotten(struct req *r, const char *room_id, bool *out)
{
    char **ids = NULL;
    size_t n = 0;
    int rc = store_user_forgotten_rooms(r->db, &r->arena, r->auth.user_id, &ids, &n);
    *out = false;
    for (size_t i = 0; i < n && rc == 0; i++) {
        *out = *out || strcmp(ids[i], room_id) == 0;
    }
    return rc;
}

int client__room_access(struct req *r, const char *room_id, struct client_room_access *acc)
{
    *acc = (struct client_room_access){.room_id = room_id, .cap = INT64_MAX};
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    struct store_room room;
    rc = store_room_get(r->db, &r->arena, room_id, &room);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_FORBIDDEN, "You are not joined to %s", room_id);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    acc->room_nid = room.nid;
    json_t *member = NULL, *hv = NULL;
    rc = room_state_event(r, room_id, MEMBER_TYPE, r->auth.user_id, &member);
    if (rc == 0) {
        json_arena(&r->arena, member);
        rc = room_state_event(r, room_id, HV_TYPE, "", &hv);
        json_arena(&r->arena, hv);
    }
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_FORBIDDEN, "You are not joined to %s", room_id);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (member) {
        const char *m = json_get_str(json_get_obj(member, "content"), "membership");
        acc->membership = m ? arena_strdup(&r->arena, m) : "";
        struct store_event *se = arena_alloc(&r->arena, sizeof(*se));
        rc = store_event_get(r->db, &r->arena, json_get_str(member, "event_id"), se);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        acc->member_event = se;
    }
    if (streq(acc->membership, "join")) {
        acc->kind = CLIENT_ACCESS_JOINED;
        return 0;
    }
    if (streq(json_get_str(json_get_obj(hv, "content"), "history_visibility"),
               "world_readable")) {
        acc->kind = CLIENT_ACCESS_PEEK;
        return 0;
    }
    /* Former members read up to their leave (as Synapse: bans, invites
     * and knocks do not count, and a forgotten room is closed). */
    if (streq(acc->membership, "leave")) {
        bool gone;
        rc = forgotten(r, room_id, &gone);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        if (!gone) {
            acc->kind = CLIENT_ACCESS_DEPARTED;
            acc->cap = acc->member_event->stream_ordering;
            return 0;
        }
    }
    return req_fail(r, -ERR_FORBIDDEN, "You are not joined to %s", room_id);
}

/* ---- state as of an event ---- */

int client__state_after(struct req *r, const struct store_event *ev, json_t **pdus)
{
    *pdus = json_arena(&r->arena, json_array());
    if (!ev) {
        return 0;
    }
    struct store_state_row *rows = NULL;
    size_t n = 0;
    int rc = store_snapshot_state(r->db, &r->arena, ev->state_before_nid, &rows, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    /* The event itself, when it is an accepted state event, replaces its
     * key's entry. */
    json_error_t e;
    json_t *self = ev->json && !ev->rejected ? json_loads(ev->json, 0, &e) : NULL;
    const char *type = json_get_str(self, "type");
    const char *sk = json_get_str(self, "state_key");
    for (size_t i = 0; i < n; i++) {
        if (sk && streq(rows[i].type, type) && streq(rows[i].state_key, sk)) {
            continue;
        }
        json_t *pdu = json_loads(rows[i].json, 0, &e);
        if (json_is_object(pdu)) {
            json_object_set_new(pdu, "event_id", json_string(rows[i].event_id));
            json_array_append_new(*pdus, pdu);
        } else {
            json_decref(pdu);
        }
    }
    if (sk && type && json_is_object(self)) {
        json_object_set_new(self, "event_id", json_string(ev->event_id));
        json_array_append(*pdus, self);
    }
    json_decref(self);
    return 0;
}

int client__access_state(struct req *r, const struct client_room_access *acc, json_t **pdus)
{
    if (acc->kind == CLIENT_ACCESS_DEPARTED) {
        return client__state_after(r, acc->member_event, pdus);
    }
    *pdus = NULL;
    int rc = room_state_all(r, acc->room_id, pdus);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_arena(&r->arena, *pdus);
    return 0;
}

int client__access_state_event(struct req *r, struct client_room_access *acc,
                               const char *type, const char *state_key, json_t **pdu)
{
    *pdu = NULL;
    if (acc->kind != CLIENT_ACCESS_DEPARTED) {
        int rc = room_state_event(r, acc->room_id, type, state_key, pdu);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        json_arena(&r->arena, *pdu);
        return 0;
    }
    const struct store_event *leave = acc->member_event;
    struct store_event found = {0};
    if (streq(type, MEMBER_TYPE) && streq(state_key, r->auth.user_id)) {
        found = *leave;
    } else {
        int64_t type_nid, key_nid;
        int rc = intern_or_zero(r, STORE_INTERN_TYPE, type, &type_nid);
        if (!rc) {
            rc = intern_or_zero(r, STORE_INTERN_STATE_KEY, state_key, &key_nid);
        }
        if (!rc) {
            rc = lookup(r, leave->state_before_nid, type_nid, key_nid, &found);
        }
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
    }
    if (!found.nid || !found.json) {
        return 0;
    }
    json_error_t e;
    json_t *p = json_loads(found.json, 0, &e);
    if (!json_is_object(p)) {
        json_decref(p);
        return req_fail(r, -ERR_UNKNOWN, "Stored event is unreadable");
    }
    json_object_set_new(p, "event_id", json_string(found.event_id));
    *pdu = json_arena(&r->arena, p);
    return 0;
}

int client__members_after(struct req *r, const struct store_event *ev, const json_t *users,
                          json_t *out)
{
    int64_t member_type;
    int rc = intern_or_zero(r, STORE_INTERN_TYPE, MEMBER_TYPE, &member_type);
    json_error_t e;
    json_t *self = json_loads(ev->json, 0, &e);
    const char *self_key = streq(json_get_str(self, "type"), MEMBER_TYPE)
                               ? json_get_str(self, "state_key")
                               : NULL;
    const char *user;
    json_t *unused;
    json_object_foreach((json_t *)users, user, unused)
    {
        if (rc < 0) {
            break;
        }
        if (streq(user, self_key)) {
            json_array_append_new(out, client__event(self, ev->event_id));
            continue;
        }
        int64_t key_nid;
        struct store_event found;
        rc = intern_or_zero(r, STORE_INTERN_STATE_KEY, user, &key_nid);
        if (!rc) {
            rc = lookup(r, ev->state_before_nid, member_type, key_nid, &found);
        }
        if (rc == 0 && found.nid) {
            json_t *ev2 = client__stored_event(r, &found);
            if (ev2) {
                json_array_append_new(out, ev2);
            }
        }
    }
    json_decref(self);
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}
