/*
 * Room aliases and the published room directory (spec: Client-Server API
 * "Room aliases", "Published room directory"): creating, resolving and
 * deleting local aliases, a room's local aliases, the directory
 * visibility of a room, /publicRooms, and the check that the aliases a
 * new m.room.canonical_alias adds point to the room.
 *
 * Permissions follow Synapse where the spec leaves them to servers:
 * creating an alias needs membership of the room (server admins are
 * exempt); deleting one needs to be its creator, a server admin, or a
 * member with the power to send m.room.canonical_alias; publishing a room
 * needs a server admin or a member with that same power.
 *
 * Another server's alias is resolved by asking that server (Server-Server
 * API GET /query/directory; client__alias_remote, also used by joins by
 * alias). GET/POST /publicRooms?server= asks that server's federation
 * /publicRooms and passes its answer through; the local listing is shared
 * with the federation endpoints (client__public_rooms_local, used by
 * api/federation/public.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "config.h"
#include "core/id.h"
#include "store/store.h"
#include "base/str.h"
#include "svc/fedclient.h"
#include "svc/room.h"
#include "svc/srv.h"

/* How long a client waits for another server to resolve its alias. */
#define REMOTE_ALIAS_TIMEOUT_MS 15000
/* How long a client waits for another server's room directory. */
#define REMOTE_DIRECTORY_TIMEOUT_MS 20000

/* ---- checks shared by the handlers ---- */

static int check_alias(struct req *r, const char *alias)
{
    if (!id_alias_valid(alias, strlen(alias))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a valid room alias", alias);
    }
    return 0;
}

static bool alias_is_local(struct req *r, const char *alias)
{
    const char *server = id_server_part(alias);
    return server && strcmp(server, r->srv->cfg->server_name) == 0;
}

/* True when `user_id`'s current membership of the room is "join". */
static bool is_joined(struct req *r, const char *room_id, const char *user_id)
{
    const char *membership = NULL;
    return room_membership(r, room_id, user_id, &membership) == 0 && membership &&
           strcmp(membership, "join") == 0;
}


/*
 * The level needed to send a state event of `type` (spec
 * "m.room.power_levels"): events[type], else state_default, which is 50
 * when unset and 0 when the room has no power levels event at all.
 */
static int state_level(struct req *r, const char *room_id, const char *type, int64_t *out)
{
    json_t *pl = NULL;
    int rc = room_state_event(r, room_id, "m.room.power_levels", "", &pl);
    if (rc < 0) {
        return rc;
    }
    if (!pl) {
        *out = 0;
        return 0;
    }
    json_arena(&r->arena, pl);
    const json_t *content = json_get_obj(pl, "content");
    const json_t *events = json_get_obj(content, "events");
    if (client__level_value(json_object_get(events, type), out)) {
        return 0;
    }
    if (!client__level_value(json_object_get(content, "state_default"), out)) {
        *out = 50;
    }
    return 0;
}

/*
 * Whether r->auth.user_id is joined to the room with the power to send
 * m.room.canonical_alias (Synapse's "check_can_change_room_list"). Errors
 * other than an unknown room are returned; an unknown room gives false.
 */
static int can_send_aliases(struct req *r, const char *room_id, bool *ok)
{
    *ok = false;
    if (!is_joined(r, room_id, r->auth.user_id)) {
        return 0;
    }
    int64_t level = 0, redact = 0, needed = 0;
    int rc = room_power(r, room_id, r->auth.user_id, &level, &redact);
    if (rc == 0) {
        rc = state_level(r, room_id, "m.room.canonical_alias", &needed);
    }
    if (rc == -ERR_NOT_FOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    *ok = level >= needed;
    return 0;
}

static int answer_empty(struct req *r) { return req_json(r, 200, json_object()); }

/* ---- PUT/GET/DELETE /directory/room/{roomAlias} ---- */

int client_alias_put(struct req *r)
{
    const char *alias = r->param[0].p;
    int rc = check_alias(r, alias);
    if (rc) {
        return rc;
    }
    if (!alias_is_local(r, alias)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Room alias must be on this server (%s)",
                        r->srv->cfg->server_name);
    }
    const json_t *v = json_object_get(r->json, "room_id");
    if (!v) {
        return req_fail(r, -ERR_MISSING_PARAM, "'room_id' is required");
    }
    const char *room_id = json_string_value(v);
    if (!room_id || !id_room_valid(room_id, strlen(room_id))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'room_id' must be a room ID");
    }
    if (!r->auth.is_admin && !is_joined(r, room_id, r->auth.user_id)) {
        return req_fail(r, -ERR_FORBIDDEN, "You must be in the room to create an alias for it");
    }
    if (!room_version_of(r, room_id)) {
        return req_fail(r, -ERR_NOT_FOUND, "Room %s not found", room_id);
    }
    rc = store_alias_add(r->db, alias, room_id, r->auth.user_id);
    if (rc == -ERR_CONFLICT) {
        /* Spec: 409 with M_UNKNOWN. */
        return req_fail(r, -ERR_CONFLICT, "Room alias %s already exists", alias);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return answer_empty(r);
}

/* ---- other servers' aliases ---- */

int client__alias_remote(struct req *r, const char *alias, int (*cont)(struct req *r))
{
    if (alias[0] != '#' || !id_alias_valid(alias, strlen(alias)) || alias_is_local(r, alias) ||
        !r->srv->fed) {
        return 0;
    }
    const char *uri = arena_printf(&r->arena, "/_matrix/federation/v1/query/directory?room_alias=%s",
                                   str_percent_encode(&r->arena, alias));
    return fedclient_park(r, id_server_part(alias), "GET", uri, NULL, REMOTE_ALIAS_TIMEOUT_MS,
                          cont);
}

int client__alias_answer(struct req *r, const char *alias, const char **room_id,
                         const char ***servers, size_t *n)
{
    const struct fed_resp *resp = r->cont_data;
    if (resp->status == 404) {
        return req_fail(r, -ERR_NOT_FOUND, "Room alias %s not found", alias);
    }
    json_t *obj = resp->status == 200 ? json_arena(&r->arena, fed_resp_json(resp)) : NULL;
    const char *id = json_get_str(obj, "room_id");
    const json_t *list = json_get_arr(obj, "servers");
    if (!id || !id_room_valid(id, strlen(id)) || !list) {
        return req_fail(r, -ERR_BAD_GATEWAY, "Could not resolve %s on its server", alias);
    }
    *room_id = id;
    *servers = ARENA_ARRAY(&r->arena, const char *, json_array_size(list) + 1);
    *n = 0;
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (s && id_server_name_valid(s, strlen(s))) {
            (*servers)[(*n)++] = s;
        }
    }
    return 0;
}

static int alias_get_remote(struct req *r)
{
    const char *room_id = NULL;
    const char **servers = NULL;
    size_t n = 0;
    int rc = client__alias_answer(r, r->param[0].p, &room_id, &servers, &n);
    if (rc) {
        return rc;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_string(servers[i]));
    }
    return req_json(r, 200, json_pack("{s:s,s:o}", "room_id", room_id, "servers", list));
}

int client_alias_get(struct req *r)
{
    const char *alias = r->param[0].p;
    int rc = check_alias(r, alias);
    if (!rc) {
        rc = client__alias_remote(r, alias, alias_get_remote);
    }
    if (rc) {
        return rc;
    }
    char *room_id = NULL;
    rc = alias_is_local(r, alias) ? store_alias_get(r->db, &r->arena, alias, &room_id, NULL)
                                  : -ERR_NOT_FOUND;
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Room alias %s not found", alias);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    /* The servers with joined members, this one first. */
    json_t *list = json_array();
    char **servers = NULL;
    size_t n = 0;
    rc = room_servers(r, room_id, &servers, &n);
    if (rc < 0) {
        json_array_append_new(list, json_string(r->srv->cfg->server_name));
    }
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_string(servers[i]));
    }
    return req_json(r, 200, json_pack("{s:s,s:o}", "room_id", room_id, "servers", list));
}

/*
 * After an alias is deleted: drops it from the room's canonical alias
 * event when listed there and the user may send that event (spec
 * "DELETE /directory/room": servers may update alt_aliases). Sets *sent
 * when an event was sent. A failure to send is not the caller's failure:
 * the alias is gone either way, as Synapse also answers.
 */
static int drop_from_canonical(struct req *r, const char *room_id, const char *alias,
                               bool *sent)
{
    *sent = false;
    bool may = false;
    int rc = can_send_aliases(r, room_id, &may);
    if (rc < 0 || !may) {
        return rc;
    }
    json_t *pdu = NULL;
    rc = room_state_event(r, room_id, "m.room.canonical_alias", "", &pdu);
    if (rc < 0 || !pdu) {
        return rc == -ERR_NOT_FOUND ? 0 : rc;
    }
    json_arena(&r->arena, pdu);
    const json_t *old = json_get_obj(pdu, "content");
    json_t *content = json_arena(&r->arena, json_deep_copy(old ? old : json_object()));
    bool changed = false;
    const char *main_alias = json_get_str(content, "alias");
    if (main_alias && strcmp(main_alias, alias) == 0) {
        json_object_del(content, "alias");
        changed = true;
    }
    json_t *alt = json_object_get(content, "alt_aliases");
    if (json_is_array(alt)) {
        for (size_t i = json_array_size(alt); i-- > 0;) {
            const char *a = json_string_value(json_array_get(alt, i));
            if (a && strcmp(a, alias) == 0) {
                json_array_remove(alt, i);
                changed = true;
            }
        }
        if (changed && json_array_size(alt) == 0) {
            json_object_del(content, "alt_aliases");
        }
    }
    if (!changed) {
        return 0;
    }
    struct room_event_in in = {.room_id = room_id,
                               .sender = r->auth.user_id,
                               .type = "m.room.canonical_alias",
                               .state_key = "",
                               .content = content};
    struct room_event_out out;
    if (room_send(r, &in, &out) == 0) {
        *sent = true;
    } else {
        r->err = 0; /* the refusal was written into r; the answer replaces it */
    }
    return 0;
}

int client_alias_delete(struct req *r)
{
    const char *alias = r->param[0].p;
    int rc = check_alias(r, alias);
    if (rc) {
        return rc;
    }
    char *room_id = NULL, *creator = NULL;
    rc = alias_is_local(r, alias)
             ? store_alias_get(r->db, &r->arena, alias, &room_id, &creator)
             : -ERR_NOT_FOUND;
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Room alias %s not found", alias);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    bool allowed = r->auth.is_admin || strcmp(creator, r->auth.user_id) == 0;
    if (!allowed) {
        rc = can_send_aliases(r, room_id, &allowed);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
    }
    if (!allowed) {
        return req_fail(r, -ERR_FORBIDDEN, "You don't have permission to delete the alias");
    }
    rc = store_alias_delete(r->db, alias);
    if (rc == -ERR_NOT_FOUND) {
        return req_fail(r, -ERR_NOT_FOUND, "Room alias %s not found", alias);
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    bool sent = false;
    rc = drop_from_canonical(r, room_id, alias, &sent);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return sent ? room_wait_durable(r, answer_empty) : answer_empty(r);
}

/* ---- GET /rooms/{roomId}/aliases ---- */

/* Spec: members of the room, or anyone when its history is
 * world_readable; server admins too (as Synapse). */
int client_room_aliases(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    bool allowed = r->auth.is_admin || is_joined(r, room_id, r->auth.user_id);
    if (!allowed) {
        json_t *hv = NULL;
        if (room_state_event(r, room_id, "m.room.history_visibility", "", &hv) == 0 && hv) {
            json_arena(&r->arena, hv);
            const char *v = json_get_str(json_get_obj(hv, "content"), "history_visibility");
            allowed = v && strcmp(v, "world_readable") == 0;
        }
    }
    if (!allowed) {
        return req_fail(r, -ERR_FORBIDDEN, "You are not a member of the room");
    }
    char **aliases = NULL;
    size_t n = 0;
    rc = store_aliases_of_room(r->db, &r->arena, room_id, &aliases, &n);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(aliases[i]));
    }
    return req_json(r, 200, json_pack("{s:o}", "aliases", arr));
}

/* ---- m.room.canonical_alias validation (rooms.c, client_state_put) ---- */

/* Whether `alias` is the alias or one of the alt_aliases of `content`. */
static bool listed_in(const json_t *content, const char *alias)
{
    const char *a = json_get_str(content, "alias");
    if (a && strcmp(a, alias) == 0) {
        return true;
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(content, "alt_aliases"), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), alias) == 0) {
            return true;
        }
    }
    return false;
}

/* Checks one alias of the new content: its grammar always, its target
 * only when the current event does not list it already. */
static int check_new_alias(struct req *r, const char *room_id, const json_t *old,
                           const json_t *v)
{
    const char *alias = json_string_value(v);
    if (!alias || !id_alias_valid(alias, strlen(alias))) {
        return req_fail(r, -ERR_INVALID_PARAM, "Aliases must be valid room aliases");
    }
    if (old && listed_in(old, alias)) {
        return 0;
    }
    char *target = NULL;
    int rc = alias_is_local(r, alias) ? store_alias_get(r->db, &r->arena, alias, &target, NULL)
                                      : -ERR_NOT_FOUND;
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        return req_fail(r, rc, NULL);
    }
    if (rc == -ERR_NOT_FOUND || strcmp(target, room_id) != 0) {
        /* Other servers' aliases cannot be resolved without federation
         * yet, so they cannot be shown to point here. */
        return req_fail(r, -ERR_BAD_ALIAS, "The alias '%s' does not point to this room", alias);
    }
    return 0;
}

int client__check_canonical_alias(struct req *r, const char *room_id, const char *state_key,
                                  const json_t *content)
{
    /* A sender the auth rules will refuse gets that refusal rather than a
     * verdict on the aliases: leave unknown rooms, non-members and
     * senders without the power to room_send. */
    int64_t level = 0, redact = 0, needed = 0;
    if (!is_joined(r, room_id, r->auth.user_id) ||
        room_power(r, room_id, r->auth.user_id, &level, &redact) != 0 ||
        state_level(r, room_id, "m.room.canonical_alias", &needed) != 0 || level < needed) {
        return 0;
    }
    const json_t *alias = json_object_get(content, "alias");
    const json_t *alt = json_object_get(content, "alt_aliases");
    if (alt && !json_is_null(alt) && !json_is_array(alt)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'alt_aliases' must be a list of room aliases");
    }
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, "m.room.canonical_alias", state_key, &pdu) < 0) {
        pdu = NULL;
    }
    json_arena(&r->arena, pdu);
    const json_t *old = pdu ? json_get_obj(pdu, "content") : NULL;
    int rc = 0;
    if (alias && !json_is_null(alias)) {
        rc = check_new_alias(r, room_id, old, alias);
    }
    size_t i;
    json_t *v;
    json_array_foreach(alt, i, v)
    {
        if (rc) {
            break;
        }
        rc = check_new_alias(r, room_id, old, v);
    }
    return rc;
}

/* ---- GET/PUT /directory/list/room/{roomId} ---- */

int client_directory_visibility_get(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    struct store_room room;
    rc = client__known_room(r, room_id, &room);
    if (rc) {
        return rc;
    }
    return req_json(r, 200,
                    json_pack("{s:s}", "visibility", room.published ? "public" : "private"));
}

int client_directory_visibility_put(struct req *r)
{
    const char *room_id = r->param[0].p;
    int rc = client__check_room_id(r, room_id);
    if (rc) {
        return rc;
    }
    const json_t *v = json_object_get(r->json, "visibility");
    const char *visibility = v ? json_string_value(v) : "public"; /* spec default */
    if (!visibility || (strcmp(visibility, "public") != 0 && strcmp(visibility, "private") != 0)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'visibility' must be public or private");
    }
    struct store_room room;
    rc = client__known_room(r, room_id, &room);
    if (rc) {
        return rc;
    }
    bool allowed = r->auth.is_admin;
    if (!allowed) {
        rc = can_send_aliases(r, room_id, &allowed);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
    }
    if (!allowed) {
        return req_fail(r, -ERR_FORBIDDEN,
                        "You need to be in the room with the power to change its aliases "
                        "to edit its directory entry");
    }
    rc = store_room_set_published(r->db, room.nid, strcmp(visibility, "public") == 0);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return answer_empty(r);
}

/* ---- GET/POST /publicRooms ---- */

/*
 * Paging tokens are "o<N>": the offset N into the ordered list of the
 * rooms that match the request. They stay meaningful while the list is
 * unchanged; when it changes between pages a room may repeat or be
 * skipped, which the spec's unordered, paginated listing allows.
 */
struct public_query {
    int64_t limit;  /* 0: no limit */
    int64_t offset;
    const char *term;        /* generic_search_term, or NULL */
    const json_t *room_types; /* array of strings and nulls, or NULL for all */
    bool other_network;      /* third_party_instance_id: no such networks here */
};

static bool parse_since(const char *s, int64_t *out)
{
    if (!s || s[0] != 'o' || s[1] < '0' || s[1] > '9') {
        return false;
    }
    char *end;
    long long v = strtoll(s + 1, &end, 10);
    if (*end || v < 0) {
        return false;
    }
    *out = v;
    return true;
}

/* ASCII case-insensitive substring search (the room metadata and the
 * search term are UTF-8; other characters must match exactly). */
static bool contains_ci(const char *hay, const char *needle)
{
    if (!hay) {
        return false;
    }
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i]) {
            char a = hay[i], b = needle[i];
            if (a >= 'A' && a <= 'Z') {
                a = (char)(a - 'A' + 'a');
            }
            if (b >= 'A' && b <= 'Z') {
                b = (char)(b - 'A' + 'a');
            }
            if (a != b) {
                break;
            }
            i++;
        }
        if (i == n) {
            return true;
        }
    }
    return n == 0;
}

/* A string field of a current state event's content, or NULL. */
static const char *state_str(struct req *r, const char *room_id, const char *type,
                             const char *key)
{
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, type, "", &pdu) != 0 || !pdu) {
        return NULL;
    }
    json_arena(&r->arena, pdu);
    return json_get_str(json_get_obj(pdu, "content"), key);
}

/*
 * The plain-text topic: content.topic, else the text/plain
 * representation in the m.topic content block (spec "m.room.topic").
 */
static const char *room_topic(struct req *r, const char *room_id)
{
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, "m.room.topic", "", &pdu) != 0 || !pdu) {
        return NULL;
    }
    json_arena(&r->arena, pdu);
    const json_t *content = json_get_obj(pdu, "content");
    const char *topic = json_get_str(content, "topic");
    if (topic) {
        return topic;
    }
    size_t i;
    json_t *rep;
    json_array_foreach(json_object_get(json_get_obj(content, "m.topic"), "m.text"), i, rep)
    {
        const char *mime = json_get_str(rep, "mimetype");
        if (!mime || strcmp(mime, "text/plain") == 0) {
            return json_get_str(rep, "body");
        }
    }
    return NULL;
}

/*
 * The PublishedRoomsChunk of a published room, or NULL when it is left
 * out: as Synapse, rooms that nobody could join or read (join rule other
 * than public/knock/knock_restricted and history not world_readable) are
 * not listed even when published (spec "Published room directory" allows
 * such filters).
 */
static json_t *room_chunk(struct req *r, const struct store_published_room *row)
{
    const char *id = row->room_id;
    const char *join_rule = state_str(r, id, "m.room.join_rules", "join_rule");
    const char *hv = state_str(r, id, "m.room.history_visibility", "history_visibility");
    const char *ga = state_str(r, id, "m.room.guest_access", "guest_access");
    bool world_readable = hv && strcmp(hv, "world_readable") == 0;
    bool joinable = !join_rule || strcmp(join_rule, "public") == 0 ||
                    strcmp(join_rule, "knock") == 0 || strcmp(join_rule, "knock_restricted") == 0;
    if (!joinable && !world_readable) {
        return NULL;
    }
    json_t *c = json_pack("{s:s,s:I,s:b,s:b}", "room_id", id, "num_joined_members",
                          (json_int_t)row->joined, "world_readable", world_readable,
                          "guest_can_join", ga && strcmp(ga, "can_join") == 0);
    const char *name = state_str(r, id, "m.room.name", "name");
    if (name && *name) {
        json_object_set_new(c, "name", json_string(name));
    }
    const char *topic = room_topic(r, id);
    if (topic) {
        json_object_set_new(c, "topic", json_string(topic));
    }
    const char *alias = state_str(r, id, "m.room.canonical_alias", "alias");
    if (alias) {
        json_object_set_new(c, "canonical_alias", json_string(alias));
    }
    const char *avatar = state_str(r, id, "m.room.avatar", "url");
    if (avatar && *avatar) {
        json_object_set_new(c, "avatar_url", json_string(avatar));
    }
    if (join_rule) {
        json_object_set_new(c, "join_rule", json_string(join_rule));
    }
    const char *room_type = state_str(r, id, "m.room.create", "type");
    if (room_type) {
        json_object_set_new(c, "room_type", json_string(room_type));
    }
    return c;
}

static bool chunk_matches(const json_t *c, const struct public_query *q)
{
    if (q->term && !contains_ci(json_get_str(c, "name"), q->term) &&
        !contains_ci(json_get_str(c, "topic"), q->term) &&
        !contains_ci(json_get_str(c, "canonical_alias"), q->term)) {
        return false;
    }
    if (q->room_types) {
        const char *type = json_get_str(c, "room_type");
        size_t i;
        json_t *want;
        json_array_foreach(q->room_types, i, want)
        {
            if (json_is_null(want) ? !type
                                   : type && strcmp(json_string_value(want), type) == 0) {
                return true;
            }
        }
        return false;
    }
    return true;
}

/*
 * The `server` query parameter: absent or this server lists our rooms
 * (*remote stays NULL); another valid server name is asked over
 * federation (*remote set to it), which needs an access token, as
 * Synapse requires for proxied listings. Without a federation client the
 * other directory is not available (404).
 */
static int check_server_param(struct req *r, const char **remote)
{
    const char *server = req_query(r, "server");
    if (!server || strcmp(server, r->srv->cfg->server_name) == 0) {
        return 0;
    }
    if (!id_server_name_valid(server, strlen(server))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a server name", server);
    }
    if (!r->auth.user_id) {
        return req_fail(r, -ERR_MISSING_TOKEN, "Listing another server's rooms needs an access "
                                               "token");
    }
    if (!r->srv->fed) {
        return req_fail(r, -ERR_NOT_FOUND, "The room directory of %s is not available", server);
    }
    *remote = server;
    return 0;
}

static int public_rooms(struct req *r, const struct public_query *q)
{
    json_t *matching = json_arena(&r->arena, json_array());
    if (!q->other_network) {
        struct store_published_room *rows = NULL;
        size_t n = 0;
        int rc = store_published_rooms(r->db, &r->arena, &rows, &n);
        if (rc < 0) {
            return req_fail(r, rc, NULL);
        }
        for (size_t i = 0; i < n; i++) {
            json_t *c = room_chunk(r, &rows[i]);
            if (c && chunk_matches(c, q)) {
                json_array_append_new(matching, c);
            } else {
                json_decref(c);
            }
        }
    }
    int64_t total = (int64_t)json_array_size(matching);
    int64_t start = q->offset < total ? q->offset : total;
    int64_t end = q->limit > 0 && q->limit < total - start ? start + q->limit : total;
    json_t *chunk = json_array();
    for (int64_t i = start; i < end; i++) {
        json_array_append(chunk, json_array_get(matching, (size_t)i));
    }
    json_t *body = json_pack("{s:o,s:I}", "chunk", chunk, "total_room_count_estimate",
                             (json_int_t)total);
    if (end < total) {
        json_object_set_new(body, "next_batch",
                            json_string(arena_printf(&r->arena, "o%lld", (long long)end)));
    }
    if (start > 0) {
        int64_t prev = q->limit > 0 && start > q->limit ? start - q->limit : 0;
        json_object_set_new(body, "prev_batch",
                            json_string(arena_printf(&r->arena, "o%lld", (long long)prev)));
    }
    return req_json(r, 200, body);
}

/* The paging and network arguments of a GET, from the query string;
 * `networks` also reads include_all_networks and third_party_instance_id
 * (Server-Server API GET /publicRooms). */
static int parse_get(struct req *r, bool networks, struct public_query *q)
{
    const char *limit = req_query(r, "limit");
    if (limit) {
        char *end;
        long long v = strtoll(limit, &end, 10);
        if (!*limit || *end || v < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
        }
        q->limit = v;
    }
    const char *since = req_query(r, "since");
    if (since && *since && !parse_since(since, &q->offset)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'since' token");
    }
    if (!networks) {
        return 0;
    }
    const char *all = req_query(r, "include_all_networks");
    if (all && strcmp(all, "true") != 0 && strcmp(all, "false") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'include_all_networks' must be true or false");
    }
    const char *instance = req_query(r, "third_party_instance_id");
    if (instance) {
        if (all && strcmp(all, "true") == 0) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'include_all_networks' cannot be combined with "
                            "'third_party_instance_id'");
        }
        /* No application service networks exist here. */
        q->other_network = true;
    }
    return 0;
}

/* The arguments of a POST, from its JSON body (NULL: the defaults). */
static int parse_post(struct req *r, const json_t *body, struct public_query *q)
{
    const json_t *limit = json_object_get(body, "limit");
    if (limit && !json_is_null(limit)) {
        if (!json_is_integer(limit) || json_integer_value(limit) < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
        }
        q->limit = json_integer_value(limit);
    }
    const json_t *since = json_object_get(body, "since");
    if (since && !json_is_null(since)) {
        const char *s = json_string_value(since);
        if (!s || (*s && !parse_since(s, &q->offset))) {
            return req_fail(r, -ERR_INVALID_PARAM, "Unknown 'since' token");
        }
    }
    const json_t *filter = json_object_get(body, "filter");
    if (filter && !json_is_null(filter)) {
        if (!json_is_object(filter)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'filter' must be an object");
        }
        const json_t *term = json_object_get(filter, "generic_search_term");
        if (term && !json_is_null(term)) {
            if (!json_is_string(term)) {
                return req_fail(r, -ERR_INVALID_PARAM, "'generic_search_term' must be a string");
            }
            q->term = *json_string_value(term) ? json_string_value(term) : NULL;
        }
        const json_t *types = json_object_get(filter, "room_types");
        if (types && !json_is_null(types)) {
            size_t i;
            json_t *t;
            bool ok = json_is_array(types);
            json_array_foreach(types, i, t) { ok = ok && (json_is_string(t) || json_is_null(t)); }
            if (!ok) {
                return req_fail(r, -ERR_INVALID_PARAM,
                                "'room_types' must be a list of room types and nulls");
            }
            q->room_types = types;
        }
    }
    const json_t *all = json_object_get(body, "include_all_networks");
    if (all && !json_is_boolean(all)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'include_all_networks' must be a boolean");
    }
    const json_t *instance = json_object_get(body, "third_party_instance_id");
    if (instance && !json_is_null(instance)) {
        if (!json_is_string(instance)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'third_party_instance_id' must be a string");
        }
        if (json_is_true(all)) {
            return req_fail(r, -ERR_INVALID_PARAM,
                            "'include_all_networks' cannot be combined with "
                            "'third_party_instance_id'");
        }
        /* Rooms are published only to the server's own list; no
         * application service networks exist here. */
        q->other_network = true;
    }
    return 0;
}

int client__public_rooms_local(struct req *r, const json_t *body, bool networks)
{
    struct public_query q = {0};
    int rc = body ? parse_post(r, body, &q) : parse_get(r, networks, &q);
    return rc ? rc : public_rooms(r, &q);
}

/* ---- another server's directory (?server=) ---- */

/*
 * The answer of the other server's GET or POST /publicRooms, passed
 * through when it is an object with a `chunk` list. Its refusals keep
 * their meaning (404 and 403; 400 when it did not like the arguments,
 * such as a since token only it can read); anything else, no answer
 * included, is 502 as in Synapse.
 */
static int remote_public_answer(struct req *r)
{
    const struct fed_resp *resp = r->cont_data;
    const char *server = req_query(r, "server");
    json_t *obj = json_arena(&r->arena, fed_resp_json(resp));
    const char *why = json_get_str(obj, "error");
    why = why ? why : "refused";
    if (resp->status == 404) {
        return req_fail(r, -ERR_NOT_FOUND, "%s: %s", server, why);
    }
    if (resp->status == 403) {
        return req_fail(r, -ERR_FORBIDDEN, "%s: %s", server, why);
    }
    if (resp->status == 400) {
        return req_fail(r, -ERR_INVALID_PARAM, "%s: %s", server, why);
    }
    if (resp->status != 200 || !json_is_array(json_object_get(obj, "chunk"))) {
        return req_fail(r, -ERR_BAD_GATEWAY, "Could not get the room directory of %s", server);
    }
    return req_json(r, 200, json_incref(obj));
}

/*
 * Asks `server`'s federation /publicRooms (Server-Server API "Public Room
 * Directory") with the client's arguments: for a GET its limit and since
 * (the token is the other server's, opaque here), for a POST the fields
 * of the body the endpoint defines, as they came (that server checks
 * them).
 */
static int remote_public_rooms(struct req *r, const char *server, const json_t *body)
{
    if (body) {
        static const char *const fields[] = {"limit", "since", "filter", "include_all_networks",
                                             "third_party_instance_id"};
        json_t *out = json_arena(&r->arena, json_object());
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            json_t *v = json_object_get(body, fields[i]);
            if (v && !json_is_null(v)) {
                json_object_set(out, fields[i], v);
            }
        }
        return fedclient_park(r, server, "POST", "/_matrix/federation/v1/publicRooms", out,
                              REMOTE_DIRECTORY_TIMEOUT_MS, remote_public_answer);
    }
    const char *uri = "/_matrix/federation/v1/publicRooms";
    char sep = '?';
    const char *limit = req_query(r, "limit");
    if (limit) {
        char *end;
        long long v = strtoll(limit, &end, 10);
        if (!*limit || *end || v < 0) {
            return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
        }
        uri = arena_printf(&r->arena, "%s%climit=%lld", uri, sep, v);
        sep = '&';
    }
    const char *since = req_query(r, "since");
    if (since && *since) {
        uri = arena_printf(&r->arena, "%s%csince=%s", uri, sep,
                           str_percent_encode(&r->arena, since));
    }
    return fedclient_park(r, server, "GET", uri, NULL, REMOTE_DIRECTORY_TIMEOUT_MS,
                          remote_public_answer);
}

int client_public_rooms_get(struct req *r)
{
    const char *server = NULL;
    int rc = check_server_param(r, &server);
    if (rc) {
        return rc;
    }
    if (server) {
        return remote_public_rooms(r, server, NULL);
    }
    return client__public_rooms_local(r, NULL, false);
}

int client_public_rooms_post(struct req *r)
{
    const char *server = NULL;
    int rc = check_server_param(r, &server);
    if (rc) {
        return rc;
    }
    if (server) {
        return remote_public_rooms(r, server, r->json);
    }
    return client__public_rooms_local(r, r->json, false);
}
