/*
 * Room previews without joining (spec: Client-Server API "Spaces" and
 * "Room Summaries"): GET /v1/rooms/{roomId}/hierarchy walks a space's
 * m.space.child events depth first, and GET /v1/room_summary/{roomIdOrAlias}
 * (v1.15, MSC3266) describes one room. Both serve rooms this server is in;
 * rooms known only to other servers need the federation client and are
 * left out of hierarchies (a summary of one answers 404) until it exists.
 *
 * Who may see a room (the spec's list for hierarchy rooms, which Synapse
 * also applies to summaries): a member (join, or invite and knock for
 * the summary), anyone when the join rule is public, knock or
 * knock_restricted or the history is world_readable, and for a
 * restricted join rule a user joined to one of the allowed rooms. A
 * banned user sees nothing.
 *
 * Another server asking for a hierarchy (api/federation/public.c) gets
 * rooms through client__space_room_for_server, with the rules Synapse
 * applies to servers: the public rules above, else a member or invitee of
 * that server in the room, or for a restricted join rule a member of it in
 * one of the allowed rooms.
 *
 * Hierarchy paging is stateless: the walk is repeated on each page (it is
 * bounded by HIERARCHY_MAX_ROOMS and HIERARCHY_MAX_DEPTH) and the token
 * records the offset together with max_depth and suggested_only, which
 * must not change between pages (400 M_INVALID_PARAM).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/map.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/room.h"
#include "svc/srv.h"

#define HIERARCHY_DEFAULT_LIMIT 50
#define HIERARCHY_MAX_LIMIT 100
#define HIERARCHY_DEFAULT_DEPTH 10
#define HIERARCHY_MAX_DEPTH 20
#define HIERARCHY_MAX_ROOMS 1000

/* ---- reading a room ---- */

static const json_t *state_content(struct req *r, const char *room_id, const char *type)
{
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, type, "", &pdu) != 0 || !pdu) {
        return NULL;
    }
    json_arena(&r->arena, pdu);
    return json_get_obj(pdu, "content");
}

static const char *state_str(struct req *r, const char *room_id, const char *type,
                             const char *key)
{
    return json_get_str(state_content(r, room_id, type), key);
}

static bool is_joined(struct req *r, const char *room_id, const char *user_id)
{
    const char *m = NULL;
    return room_membership(r, room_id, user_id, &m) == 0 && m && strcmp(m, "join") == 0;
}

/*
 * Whether the caller (r->auth.user_id, NULL when anonymous) may see the
 * room; `invited_counts` also admits invite and knock memberships. See
 * the file comment for the rules.
 */
static bool room_visible(struct req *r, const char *room_id, bool invited_counts)
{
    const char *m = NULL;
    if (r->auth.user_id && room_membership(r, room_id, r->auth.user_id, &m) == 0 && m) {
        if (strcmp(m, "join") == 0 || strcmp(m, "invite") == 0 ||
            (invited_counts && strcmp(m, "knock") == 0)) {
            return true;
        }
        if (strcmp(m, "ban") == 0) {
            return false;
        }
    }
    const char *hv = state_str(r, room_id, "m.room.history_visibility", "history_visibility");
    if (hv && strcmp(hv, "world_readable") == 0) {
        return true;
    }
    const json_t *jr = state_content(r, room_id, "m.room.join_rules");
    const char *rule = json_get_str(jr, "join_rule");
    if (!rule) {
        return false;
    }
    if (strcmp(rule, "public") == 0 || strcmp(rule, "knock") == 0 ||
        strcmp(rule, "knock_restricted") == 0) {
        return true;
    }
    if (r->auth.user_id &&
        (strcmp(rule, "restricted") == 0 || strcmp(rule, "knock_restricted") == 0)) {
        size_t i;
        json_t *cond;
        json_array_foreach(json_object_get(jr, "allow"), i, cond)
        {
            const char *type = json_get_str(cond, "type");
            const char *allowed = json_get_str(cond, "room_id");
            if (type && allowed && strcmp(type, "m.room_membership") == 0 &&
                is_joined(r, allowed, r->auth.user_id)) {
                return true;
            }
        }
    }
    return false;
}

/*
 * The RoomSummary of a room (spec definitions/room_summary.yaml: the
 * PublishedRoomsChunk fields plus room_type, allowed_room_ids, encryption
 * and room_version). A new reference.
 */
static json_t *room_summary(struct req *r, const char *room_id)
{
    int64_t joined = 0;
    struct store_room row;
    if (store_room_get(r->db, &r->arena, room_id, &row) == 0) {
        store_room_joined_count(r->db, row.nid, &joined);
    }
    const char *hv = state_str(r, room_id, "m.room.history_visibility", "history_visibility");
    const char *ga = state_str(r, room_id, "m.room.guest_access", "guest_access");
    json_t *s = json_pack("{s:s,s:I,s:b,s:b}", "room_id", room_id, "num_joined_members",
                          (json_int_t)joined, "world_readable",
                          hv && strcmp(hv, "world_readable") == 0, "guest_can_join",
                          ga && strcmp(ga, "can_join") == 0);
    const char *name = state_str(r, room_id, "m.room.name", "name");
    if (name && *name) {
        json_object_set_new(s, "name", json_string(name));
    }
    const char *topic = state_str(r, room_id, "m.room.topic", "topic");
    if (topic) {
        json_object_set_new(s, "topic", json_string(topic));
    }
    const char *avatar = state_str(r, room_id, "m.room.avatar", "url");
    if (avatar && *avatar) {
        json_object_set_new(s, "avatar_url", json_string(avatar));
    }
    const char *alias = state_str(r, room_id, "m.room.canonical_alias", "alias");
    if (alias) {
        json_object_set_new(s, "canonical_alias", json_string(alias));
    }
    const json_t *jr = state_content(r, room_id, "m.room.join_rules");
    const char *rule = json_get_str(jr, "join_rule");
    if (rule) {
        json_object_set_new(s, "join_rule", json_string(rule));
    }
    if (rule && (strcmp(rule, "restricted") == 0 || strcmp(rule, "knock_restricted") == 0)) {
        json_t *ids = json_array();
        size_t i;
        json_t *cond;
        json_array_foreach(json_object_get(jr, "allow"), i, cond)
        {
            const char *type = json_get_str(cond, "type");
            const char *allowed = json_get_str(cond, "room_id");
            if (type && allowed && strcmp(type, "m.room_membership") == 0) {
                json_array_append_new(ids, json_string(allowed));
            }
        }
        json_object_set_new(s, "allowed_room_ids", ids);
    }
    const char *room_type = state_str(r, room_id, "m.room.create", "type");
    if (room_type) {
        json_object_set_new(s, "room_type", json_string(room_type));
    }
    const struct room_version *rv = room_version_of(r, room_id);
    if (rv) {
        json_object_set_new(s, "room_version", json_string(rv->id));
    }
    const char *enc = state_str(r, room_id, "m.room.encryption", "algorithm");
    if (enc) {
        json_object_set_new(s, "encryption", json_string(enc));
    }
    return s;
}

/* ---- GET /v1/room_summary/{roomIdOrAlias} ---- */

int client_room_summary(struct req *r)
{
    const char *room_id = NULL;
    int rc = client__resolve_room(r, r->param[0].p, &room_id);
    if (rc) {
        return rc;
    }
    if (!room_version_of(r, room_id) || !room_visible(r, room_id, true)) {
        return req_fail(r, -ERR_NOT_FOUND, "Room not found or not accessible");
    }
    json_t *s = room_summary(r, room_id);
    if (r->auth.user_id) {
        /* Synapse says "leave" for a user with no membership at all. */
        const char *m = NULL;
        room_membership(r, room_id, r->auth.user_id, &m);
        json_object_set_new(s, "membership", json_string(m ? m : "leave"));
    }
    return req_json(r, 200, s);
}

/* ---- GET /v1/rooms/{roomId}/hierarchy ---- */

struct child {
    const char *room_id;
    const char *order; /* valid "order", else NULL */
    int64_t ts;
    json_t *stripped;  /* the StrippedChildStateEvent */
};

/* Spec "Ordering of children within a space": a valid order (at most 50
 * printable ASCII characters) first, by code points, then by timestamp,
 * then by room ID. */
static int child_cmp(const void *pa, const void *pb)
{
    const struct child *a = pa, *b = pb;
    if (a->order && b->order) {
        int c = strcmp(a->order, b->order);
        if (c) {
            return c;
        }
    } else if (a->order || b->order) {
        return a->order ? -1 : 1;
    }
    if (a->ts != b->ts) {
        return a->ts < b->ts ? -1 : 1;
    }
    return strcmp(a->room_id, b->room_id);
}

static bool valid_order(const char *s)
{
    size_t n = strlen(s);
    if (n > 50) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/*
 * The m.space.child events of a room with a non-empty "via" (others
 * remove the child), ordered; with `suggested_only` only those marked
 * "suggested": true. The array lives in the arena; *n may be 0.
 */
static struct child *space_children(struct req *r, const char *room_id, bool suggested_only,
                                    size_t *n)
{
    json_t *pdus = NULL;
    *n = 0;
    if (room_state_all(r, room_id, &pdus) != 0) {
        return NULL;
    }
    json_arena(&r->arena, pdus);
    struct child *list = arena_alloc(&r->arena, sizeof(*list) * (json_array_size(pdus) + 1));
    size_t i, count = 0;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu)
    {
        const char *type = json_get_str(pdu, "type");
        const char *key = json_get_str(pdu, "state_key");
        const json_t *content = json_get_obj(pdu, "content");
        const json_t *via = json_object_get(content, "via");
        if (!type || strcmp(type, "m.space.child") != 0 || !key ||
            !id_room_valid(key, strlen(key)) || !json_is_array(via) ||
            json_array_size(via) == 0) {
            continue;
        }
        bool suggested = false;
        json_get_bool(content, "suggested", &suggested);
        if (suggested_only && !suggested) {
            continue;
        }
        struct child *c = &list[count++];
        c->room_id = key;
        const char *order = json_get_str(content, "order");
        c->order = order && valid_order(order) ? order : NULL;
        long long ts = 0;
        json_get_int(pdu, "origin_server_ts", &ts);
        c->ts = ts;
        c->stripped = json_arena(
            &r->arena, json_pack("{s:s,s:s,s:O,s:s,s:I}", "type", type, "state_key", key,
                                 "content", content, "sender", json_get_str(pdu, "sender"),
                                 "origin_server_ts", (json_int_t)ts));
    }
    qsort(list, count, sizeof(*list), child_cmp);
    *n = count;
    return list;
}

static bool is_space(struct req *r, const char *room_id)
{
    const char *type = state_str(r, room_id, "m.room.create", "type");
    return type && strcmp(type, "m.space") == 0;
}

struct walk {
    struct req *r;
    bool suggested_only;
    int64_t max_depth;
    struct map seen; /* room IDs already visited (loops are legal to meet) */
    json_t *rooms;   /* every visible room, in depth-first order */
};

static void walk_room(struct walk *w, const char *room_id, int64_t depth)
{
    struct req *r = w->r;
    if (json_array_size(w->rooms) >= HIERARCHY_MAX_ROOMS ||
        map_get(&w->seen, str_from(room_id))) {
        return;
    }
    map_put(&w->seen, str_from(room_id), (void *)room_id);
    /* Rooms this server is not in are left out (no federation yet). */
    if (!room_version_of(r, room_id) || !room_visible(r, room_id, false)) {
        return;
    }
    json_t *entry = room_summary(r, room_id);
    json_t *children_state = json_array();
    json_object_set_new(entry, "children_state", children_state);
    json_array_append_new(w->rooms, entry);
    if (!is_space(r, room_id)) {
        return;
    }
    size_t n = 0;
    struct child *kids = space_children(r, room_id, w->suggested_only, &n);
    for (size_t i = 0; i < n; i++) {
        json_array_append(children_state, kids[i].stripped);
    }
    if (depth >= w->max_depth) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        walk_room(w, kids[i].room_id, depth + 1);
    }
}

/* ---- rooms of a hierarchy for other servers ---- */

/* Whether a user of `server` is joined to the room (or, with
 * `invites`, invited to it), by its current member events. */
static bool server_member(struct req *r, const char *room_id, const char *server, bool invites)
{
    json_t *pdus = NULL;
    if (room_state_all(r, room_id, &pdus) != 0) {
        return false;
    }
    json_arena(&r->arena, pdus);
    size_t i;
    json_t *pdu;
    json_array_foreach(pdus, i, pdu)
    {
        const char *type = json_get_str(pdu, "type");
        const char *key = json_get_str(pdu, "state_key");
        const char *m = json_get_str(json_get_obj(pdu, "content"), "membership");
        const char *at = key ? id_server_part(key) : NULL;
        if (type && strcmp(type, "m.room.member") == 0 && m && at &&
            strcmp(at, server) == 0 &&
            (strcmp(m, "join") == 0 || (invites && strcmp(m, "invite") == 0))) {
            return true;
        }
    }
    return false;
}

static bool server_may_see(struct req *r, const char *room_id, const char *origin)
{
    /* r->auth.user_id is NULL for a server: the public rules only. */
    if (room_visible(r, room_id, false) || server_member(r, room_id, origin, true)) {
        return true;
    }
    const json_t *jr = state_content(r, room_id, "m.room.join_rules");
    const char *rule = json_get_str(jr, "join_rule");
    if (!rule || (strcmp(rule, "restricted") != 0 && strcmp(rule, "knock_restricted") != 0)) {
        return false;
    }
    size_t i;
    json_t *cond;
    json_array_foreach(json_object_get(jr, "allow"), i, cond)
    {
        const char *type = json_get_str(cond, "type");
        const char *allowed = json_get_str(cond, "room_id");
        if (type && allowed && strcmp(type, "m.room_membership") == 0 &&
            server_member(r, allowed, origin, false)) {
            return true;
        }
    }
    return false;
}

int client__space_room_for_server(struct req *r, const char *room_id, const char *origin,
                                  bool suggested_only, json_t **out)
{
    *out = NULL;
    if (!room_version_of(r, room_id) || client__room_outofband(r, room_id)) {
        return -ERR_NOT_FOUND;
    }
    if (!server_may_see(r, room_id, origin)) {
        return -ERR_FORBIDDEN;
    }
    json_t *entry = room_summary(r, room_id);
    json_t *children_state = json_array();
    json_object_set_new(entry, "children_state", children_state);
    if (is_space(r, room_id)) {
        size_t n = 0;
        struct child *kids = space_children(r, room_id, suggested_only, &n);
        for (size_t i = 0; i < n; i++) {
            json_array_append(children_state, kids[i].stripped);
        }
    }
    *out = entry;
    return 0;
}


int client_space_hierarchy(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    int64_t limit = HIERARCHY_DEFAULT_LIMIT, max_depth = HIERARCHY_DEFAULT_DEPTH;
    if (!client__query_int(r, "limit", &limit) || limit == 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be an integer greater than zero");
    }
    if (!client__query_int(r, "max_depth", &max_depth)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'max_depth' must be a non-negative integer");
    }
    limit = limit > HIERARCHY_MAX_LIMIT ? HIERARCHY_MAX_LIMIT : limit;
    max_depth = max_depth > HIERARCHY_MAX_DEPTH ? HIERARCHY_MAX_DEPTH : max_depth;
    const char *so = req_query(r, "suggested_only");
    if (so && strcmp(so, "true") != 0 && strcmp(so, "false") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'suggested_only' must be true or false");
    }
    bool suggested_only = so && strcmp(so, "true") == 0;
    /* Token "<offset>_<max_depth>_<0|1>". */
    long long offset = 0;
    const char *from = req_query(r, "from");
    if (from) {
        long long depth_tok = 0;
        int sugg_tok = 0, used = 0;
        if (sscanf(from, "%lld_%lld_%d%n", &offset, &depth_tok, &sugg_tok, &used) != 3 ||
            from[used] || offset < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "Unknown pagination token");
        }
        if (depth_tok != max_depth || (sugg_tok != 0) != suggested_only) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "suggested_only and max_depth cannot change on paginated requests");
        }
    }
    if (!room_version_of(r, room_id) || !room_visible(r, room_id, false)) {
        return req_fail(r, -ERR_FORBIDDEN, "You are not allowed to view %s", room_id);
    }
    struct walk w = {.r = r, .suggested_only = suggested_only, .max_depth = max_depth};
    map_init(&w.seen);
    w.rooms = json_arena(&r->arena, json_array());
    walk_room(&w, room_id, 0);
    map_release(&w.seen);
    json_t *page = json_array();
    size_t total = json_array_size(w.rooms);
    for (size_t i = (size_t)offset; i < total && i < (size_t)(offset + limit); i++) {
        json_array_append(page, json_array_get(w.rooms, i));
    }
    json_t *body = json_pack("{s:o}", "rooms", page);
    if ((size_t)(offset + limit) < total) {
        json_object_set_new(body, "next_batch",
                            json_sprintf("%lld_%lld_%d", offset + (long long)limit,
                                         (long long)max_depth, suggested_only ? 1 : 0));
    }
    return req_json(r, 200, body);
}
