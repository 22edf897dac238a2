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
 *
 * Other servers (spec: Server-Server API "Device Management",
 * "End-to-End Encryption"): a local user's change named by device
 * (client__device_lists_mark_devices) or of their cross-signing keys
 * (client__device_lists_mark_signing) is also queued, in the same
 * transaction, as an m.device_list_update per device or one
 * m.signing_key_update for every other server with a member in one of
 * the user's joined rooms (svc/fedqueue); publish wakes those servers'
 * senders. stream_id is the change's STREAM_DEVICE_LISTS position and
 * prev_id is always empty: every update is "the first of a sequence"
 * (spec), so a receiver that caches our users' devices (Synapse) resyncs
 * them through GET /user/devices rather than trusting a chain we do not
 * keep per destination.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "base/str.h"
#include "config.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/fedqueue.h"
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

/* ---- telling other servers ---- */

/* The servers other than this one with a joined member in one of
 * user_id's joined rooms (arena array, each once). */
static int sharing_servers(struct req *r, const char *user_id, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char **users = NULL;
    size_t n_users = 0;
    int rc = store_users_sharing_rooms(r->db, &r->arena, user_id, &users, &n_users);
    if (rc < 0 || n_users == 0) {
        return rc;
    }
    const char *own = r->srv->cfg->server_name;
    const char **list = ARENA_ARRAY(&r->arena, const char *, n_users);
    struct map seen;
    map_init(&seen);
    for (size_t i = 0; i < n_users; i++) {
        const char *server = id_server_part(users[i]);
        if (!server || strcmp(server, own) == 0 || map_has(&seen, str_from(server))) {
            continue;
        }
        map_put(&seen, str_from(server), (void *)1);
        list[(*n)++] = server;
    }
    map_release(&seen);
    *out = list;
    return 0;
}

/* Queues the EDU {type, content} (content is consumed) for each server. */
static int queue_edu(struct req *r, const char *const *servers, size_t n, const char *type,
                     json_t *content)
{
    char *text = content ? json_dumps(content, JSON_COMPACT) : NULL;
    json_decref(content);
    if (!text) {
        return -ERR_NOMEM;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = fedqueue_add_edu(r->srv->fedqueue, r->db, servers[i], type, text);
    }
    free(text);
    return rc;
}

/* The user's keys as another server sees them (their own signatures
 * only): `devices` (a JSON array of device IDs, consumed) under
 * body.device_keys[user_id], and the master and self-signing keys. */
static int keys_view(struct req *r, const char *user_id, json_t *devices, json_t **body)
{
    json_t *ask = json_arena(&r->arena, json_pack("{s:o}", user_id, devices));
    *body = json_arena(&r->arena, json_pack("{s:{},s:{},s:{}}", "device_keys", "master_keys",
                                            "self_signing_keys"));
    if (!ask || !*body) {
        return -ERR_NOMEM;
    }
    return client__keys_query_local(r, ask, NULL, *body);
}

/* One m.device_list_update per device ID (spec "Device Management"),
 * with the device as stored now, or deleted when it is gone. */
static int queue_devices(struct req *r, int64_t pos, const char *user_id,
                         const char *const *servers, size_t n_servers,
                         const char *const *device_ids, size_t n)
{
    json_t *ids = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(ids, json_string(device_ids[i]));
    }
    json_t *view;
    int rc = keys_view(r, user_id, ids, &view);
    json_t *keys_of = json_object_get(json_object_get(view, "device_keys"), user_id);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct store_device d = {0};
        rc = store_device_get(r->db, &r->arena, user_id, device_ids[i], &d);
        if (rc < 0 && rc != -ERR_NOT_FOUND) {
            break;
        }
        json_t *keys = json_object_get(keys_of, device_ids[i]);
        /* Keys go with their device; keys without one are a dehydrated
         * device being created (its keys are uploaded first). */
        bool deleted = rc == -ERR_NOT_FOUND && !json_is_object(keys);
        json_t *c = json_pack("{s:s,s:s,s:I,s:[],s:b}", "user_id", user_id, "device_id",
                              device_ids[i], "stream_id", (json_int_t)pos, "prev_id",
                              "deleted", deleted);
        if (!deleted && c) {
            if (d.display_name) {
                json_object_set_new(c, "device_display_name", json_string(d.display_name));
            }
            if (json_is_object(keys)) {
                keys = json_deep_copy(keys);
                json_object_del(keys, "unsigned"); /* the name travels on its own */
                json_object_set_new(c, "keys", keys);
            }
        }
        rc = queue_edu(r, servers, n_servers, "m.device_list_update", c);
    }
    return rc;
}

/* One m.signing_key_update {user_id, master_key?, self_signing_key?}
 * (spec "End-to-End Encryption"). */
static int queue_signing(struct req *r, const char *user_id, const char *const *servers,
                         size_t n_servers, bool master, bool self_signing)
{
    json_t *view;
    int rc = keys_view(r, user_id, json_array(), &view);
    if (rc < 0) {
        return rc;
    }
    json_t *mk = json_object_get(json_object_get(view, "master_keys"), user_id);
    json_t *sk = json_object_get(json_object_get(view, "self_signing_keys"), user_id);
    json_t *c = json_pack("{s:s}", "user_id", user_id);
    if (master && mk && c) {
        json_object_set(c, "master_key", mk);
    }
    if (self_signing && sk && c) {
        json_object_set(c, "self_signing_key", sk);
    }
    if (c && json_object_size(c) == 1) {
        json_decref(c); /* nothing to tell */
        return 0;
    }
    return queue_edu(r, servers, n_servers, "m.signing_key_update", c);
}

/* The servers to tell about a change of user_id: none for a user of
 * another server or without a federation queue. */
static int servers_to_tell(struct req *r, const char *user_id, const char ***servers,
                           size_t *n)
{
    *servers = NULL;
    *n = 0;
    if (!r->srv->fedqueue || !client__local_part(r, user_id)) {
        return 0;
    }
    return sharing_servers(r, user_id, servers, n);
}

int client__device_lists_mark_devices(struct req *r, int64_t pos, const char *user_id,
                                      const char *const *device_ids, size_t n)
{
    int rc = client__device_lists_mark(r, pos, user_id);
    const char **servers = NULL;
    size_t n_servers = 0;
    if (rc == 0 && n > 0) {
        rc = servers_to_tell(r, user_id, &servers, &n_servers);
    }
    if (rc == 0 && n_servers > 0) {
        rc = queue_devices(r, pos, user_id, servers, n_servers, device_ids, n);
    }
    return rc;
}

int client__device_lists_mark_signing(struct req *r, int64_t pos, const char *user_id,
                                      bool master, bool self_signing)
{
    int rc = client__device_lists_mark(r, pos, user_id);
    const char **servers = NULL;
    size_t n_servers = 0;
    if (rc == 0 && (master || self_signing)) {
        rc = servers_to_tell(r, user_id, &servers, &n_servers);
    }
    if (rc == 0 && n_servers > 0) {
        rc = queue_signing(r, user_id, servers, n_servers, master, self_signing);
    }
    return rc;
}

void client__device_lists_publish(struct req *r, int64_t pos, const char *const *users, size_t n)
{
    streams_publish(r->srv->streams, STREAM_DEVICE_LISTS, pos);
    for (size_t i = 0; i < n; i++) {
        /* Whatever the marks queued for other servers goes out now (a
         * wake-up with nothing queued costs the sender one look). */
        const char **servers = NULL;
        size_t n_servers = 0;
        if (servers_to_tell(r, users[i], &servers, &n_servers) < 0) {
            n_servers = 0; /* the sender's periodic scan finds them */
        }
        for (size_t k = 0; k < n_servers; k++) {
            fedqueue_wake(r->srv->fedqueue, servers[k]);
        }
    }
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

int client__device_lists_changed(struct req *r, const char *user_id, const char *device_id)
{
    int64_t pos = client__device_lists_reserve(r);
    int rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_end(r->db, client__device_lists_mark_devices(r, pos, user_id, &device_id, 1));
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
