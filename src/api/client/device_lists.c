/*
 * Device-list tracking (spec: Client-Server API "Tracking the device list
 * for a user"): recording that a user's devices or keys changed, the
 * `device_lists` part of incremental /sync ({changed, left}) and GET
 * /keys/changes.
 *
 * A change is a row (position, user) on STREAM_DEVICE_LISTS, written in
 * the transaction that made it (a device added, renamed or deleted,
 * identity keys uploaded, cross-signing keys or signatures changed).
 * Between two tokens a user sees:
 *   changed  the users with a change in the window who share a joined room
 *            with them now (themselves included), plus the users who began
 *            to share a room in the event-stream window: members who
 *            joined one of their rooms (a join over a join, a profile
 *            change, is not new) and every member of a room they joined;
 *   left     the users who left (or were kicked or banned from) one of
 *            their rooms, or were in a room they left, and share no joined
 *            room with them any more.
 * As Synapse does, any joined room counts, encrypted or not: a client
 * that starts encrypting later already tracks the right devices.
 */
#include <jansson.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "base/str.h"
#include "store/store.h"
#include "svc/notify.h"
#include "svc/srv.h"
#include "svc/streams.h"

/* Membership events of one window read at most; past this, the users
 * who share a room are still right but some newcomers are reported only
 * by their next device change (a client back after a long absence should
 * do an initial sync anyway). */
#define MEMBER_CHANGES_MAX 5000

/* ---- recording ---- */

int64_t client__device_lists_reserve(struct req *r)
{
    return streams_reserve(r->srv->streams, STREAM_DEVICE_LISTS);
}

int client__device_lists_mark(struct req *r, int64_t pos, const char *user_id)
{
    int rc = store_device_lists_add(r->db, pos, user_id);
    if (rc == 0) {
        rc = store_stream_bump(r->db, STREAM_DEVICE_LISTS, pos);
    }
    return rc;
}

void client__device_lists_publish(struct req *r, int64_t pos, const char *const *users, size_t n)
{
    streams_publish(r->srv->streams, STREAM_DEVICE_LISTS, pos);
    if (!r->srv->notify) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        /* The user's own devices, and everyone in the rooms they are in. */
        char **rooms = NULL;
        size_t n_rooms = 0;
        if (store_user_rooms(r->db, &r->arena, users[i], "join", &rooms, &n_rooms) < 0) {
            n_rooms = 0;
        }
        notify_stream(r->srv->notify, STREAM_DEVICE_LISTS, pos, users[i],
                      rooms, n_rooms);
    }
}

int client__device_lists_changed(struct req *r, const char *user_id)
{
    int64_t pos = client__device_lists_reserve(r);
    int rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_end(r->db, client__device_lists_mark(r, pos, user_id));
    }
    client__device_lists_publish(r, pos, &user_id, 1);
    return rc;
}

/* ---- reading ---- */

static void set_add(struct map *set, json_t *list, const char *user_id)
{
    struct str k = str_from(user_id);
    if (!map_has(set, k)) {
        map_put(set, k, (void *)1);
        json_array_append_new(list, json_string(user_id));
    }
}

/* The membership of a member event's JSON (arena-free: points into ev). */
static const char *membership_of(json_t *ev)
{
    return json_get_str(json_object_get(ev, "content"), "membership");
}

static bool is_leave(const char *m) { return m && (!strcmp(m, "leave") || !strcmp(m, "ban")); }

/* Whether the member event replaced a join of the same user (a profile
 * change rather than a newcomer). */
static int was_joined(struct req *r, const struct store_member_change *c, bool *joined)
{
    *joined = false;
    struct store_event prev;
    int rc = store_snapshot_lookup(r->db, &r->arena, c->state_before_nid, c->type_nid,
                                   c->state_key_nid, &prev);
    if (rc < 0 || !prev.nid || !prev.json) {
        return rc;
    }
    json_t *pj = json_loads(prev.json, 0, NULL);
    const char *pm = pj ? membership_of(pj) : NULL;
    *joined = pm && strcmp(pm, "join") == 0;
    json_decref(pj);
    return 0;
}

/* Every member of the room joins `changed` (a room the user joined) or,
 * when no longer sharing a room, `left` (a room the user left). */
static int whole_room(struct req *r, const char *user_id, int64_t room_nid, bool joined,
                      const struct map *sharing, struct map *seen, json_t *out)
{
    char **users = NULL;
    size_t n = 0;
    int rc = store_room_joined_users(r->db, &r->arena, room_nid, &users, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (strcmp(users[i], user_id) == 0) {
            continue;
        }
        if (joined || !map_has(sharing, str_from(users[i]))) {
            set_add(seen, out, users[i]);
        }
    }
    return rc;
}

static int between(struct req *r, const char *user_id, const struct stream_token *from,
                   const struct stream_token *to, json_t *changed, json_t *left,
                   struct map *sharing, struct map *seen_changed, struct map *seen_left)
{
    char **dl = NULL;
    size_t n_dl = 0;
    int64_t dl_from = from->pos[STREAM_DEVICE_LISTS], dl_to = to->pos[STREAM_DEVICE_LISTS];
    int rc = 0;
    if (dl_from < dl_to) {
        rc = store_device_lists_changed(r->db, &r->arena, dl_from, dl_to, &dl, &n_dl);
    }
    struct store_member_change *mc = NULL;
    size_t n_mc = 0;
    int64_t ev_from = from->pos[STREAM_EVENTS], ev_to = to->pos[STREAM_EVENTS];
    if (rc == 0 && ev_from < ev_to) {
        rc = store_member_changes(r->db, &r->arena, user_id, ev_from, ev_to,
                                  MEMBER_CHANGES_MAX, &mc, &n_mc);
    }
    if (rc < 0 || (n_dl == 0 && n_mc == 0)) {
        return rc;
    }
    char **share = NULL;
    size_t n_share = 0;
    rc = store_users_sharing_rooms(r->db, &r->arena, user_id, &share, &n_share);
    for (size_t i = 0; i < n_share; i++) {
        map_put(sharing, str_from(share[i]), (void *)1);
    }
    for (size_t i = 0; rc == 0 && i < n_dl; i++) {
        if (strcmp(dl[i], user_id) == 0 || map_has(sharing, str_from(dl[i]))) {
            set_add(seen_changed, changed, dl[i]);
        }
    }
    for (size_t i = 0; rc == 0 && i < n_mc; i++) {
        const struct store_member_change *c = &mc[i];
        json_t *ev = json_arena(&r->arena, json_loads(c->json, 0, NULL));
        const char *m = ev ? membership_of(ev) : NULL;
        bool now_joined = c->current && strcmp(c->current, "join") == 0;
        if (strcmp(c->user_id, user_id) == 0) {
            if (m && strcmp(m, "join") == 0 && now_joined) {
                rc = whole_room(r, user_id, c->room_nid, true, sharing, seen_changed, changed);
            } else if (is_leave(m) && !now_joined) {
                rc = whole_room(r, user_id, c->room_nid, false, sharing, seen_left, left);
            }
        } else if (m && strcmp(m, "join") == 0 && now_joined &&
                   map_has(sharing, str_from(c->user_id))) {
            bool before = false;
            rc = was_joined(r, c, &before);
            if (rc == 0 && !before) {
                set_add(seen_changed, changed, c->user_id);
            }
        } else if (is_leave(m) && !map_has(sharing, str_from(c->user_id))) {
            set_add(seen_left, left, c->user_id);
        }
    }
    return rc;
}

int client__device_lists_between(struct req *r, const char *user_id,
                                 const struct stream_token *from,
                                 const struct stream_token *to, json_t *changed, json_t *left)
{
    struct map sharing, seen_changed, seen_left;
    map_init(&sharing);
    map_init(&seen_changed);
    map_init(&seen_left);
    int rc = between(r, user_id, from, to, changed, left, &sharing, &seen_changed, &seen_left);
    map_release(&sharing);
    map_release(&seen_changed);
    map_release(&seen_left);
    return rc;
}

/* GET /keys/changes?from=&to= (spec "GET /_matrix/client/v3/keys/changes"). */
int client_keys_changes(struct req *r)
{
    const char *from_s = req_query(r, "from"), *to_s = req_query(r, "to");
    if (!from_s || !to_s) {
        return req_fail(r, -ERR_MISSING_PARAM, "'from' and 'to' are required");
    }
    struct stream_token from, to, now;
    if (!stream_token_parse(from_s, &from) || !stream_token_parse(to_s, &to)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid stream token");
    }
    streams_now(r->srv->streams, &now);
    for (int k = 0; k < STREAM_N; k++) {
        if (to.pos[k] > now.pos[k]) {
            to.pos[k] = now.pos[k]; /* never past what is visible */
        }
        if (from.pos[k] > to.pos[k]) {
            from.pos[k] = to.pos[k];
        }
    }
    json_t *changed = json_array(), *left = json_array();
    int rc = client__device_lists_between(r, r->auth.user_id, &from, &to, changed, left);
    if (rc < 0) {
        json_decref(changed);
        json_decref(left);
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:o,s:o}", "changed", changed, "left", left));
}
