/*
 * Room upgrades (spec: Client-Server API "Room Upgrades", v1.16 notes on
 * room version 12): POST /rooms/{roomId}/upgrade replaces a room by a new
 * one of another version. The steps follow the spec's server behaviour:
 *
 *  1. the caller must be joined and able to send m.room.tombstone (403);
 *  2. the new room's m.room.create carries predecessor {room_id, event_id
 *     of the old room's latest stored event} and the old room's "type";
 *     for room version 12 the body's additional_creators (never the old
 *     room's, which the spec says are not carried over);
 *  3. the recommended state is copied: power levels, join rules, history
 *     visibility, guest access, name, topic, avatar, encryption, server
 *     ACL, plus (as Synapse) the space's m.space.child events and bans;
 *  4. local aliases move to the new room, with the canonical alias;
 *  5. m.room.tombstone {body, replacement_room} goes to the old room;
 *  6. the old room's events_default and invite are raised to
 *     max(50, users_default + 1) when the caller may change them, and its
 *     canonical alias is cleared, since the aliases now point elsewhere.
 * A published old room is unpublished and the new one published.
 *
 * The old room is touched only once the new one is complete: steps 2-3
 * (and the new room's canonical alias) are sent and awaited until durable,
 * and only then does a continuation move the aliases (in one transaction)
 * and send steps 5-6. A new room that fails part way is reported as the
 * error and leaves the old room, its aliases and its directory listing as
 * they were (the half-made new room stays, unreferenced).
 *
 * Power levels in the new room: the copied content, with values made
 * integers for room versions 10+. In room version 12 creators have
 * infinite power and must not be listed in "users", so they are removed.
 * Before version 12 the upgrading user needs enough power to send the
 * copied state (max of state_default, ban and every events level, as
 * Synapse): a lower level is raised for the copy and restored afterwards;
 * a creator of a version 12 room, whose old level was infinite, keeps
 * that raised level (at least 100).
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
#include "core/roomver.h"
#include "store/store.h"
#include "svc/room.h"
#include "svc/srv.h"

/* The state copied as it is (step 3); power levels and aliases apart. */
static const char *const copied_types[] = {
    "m.room.join_rules", "m.room.history_visibility", "m.room.guest_access",
    "m.room.name",       "m.room.topic",              "m.room.avatar",
    "m.room.encryption", "m.room.server_acl",
};

/* ---- power levels ---- */


static int64_t level_or(const json_t *obj, const char *key, int64_t dflt)
{
    int64_t v;
    return client__level_value(json_object_get(obj, key), &v) ? v : dflt;
}

/* The level to send a state event of `type` under power levels `pl`
 * (content, NULL when the room has none: then 0). */
static int64_t state_level(const json_t *pl, const char *type)
{
    if (!pl) {
        return 0;
    }
    int64_t v;
    if (client__level_value(json_object_get(json_get_obj(pl, "events"), type), &v)) {
        return v;
    }
    return level_or(pl, "state_default", 50);
}

/* Rewrites string levels as integers (room versions 10+ accept no others). */
static void integer_levels(json_t *obj)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        int64_t n;
        if (json_is_object(v)) {
            integer_levels(v);
        } else if (json_is_string(v) && client__level_value(v, &n)) {
            json_object_set_new(obj, key, json_integer(n));
        }
    }
}

/* Synapse's "needed_power_level": what sending the copied state takes. */
static int64_t needed_level(const json_t *pl)
{
    int64_t needed = level_or(pl, "state_default", 50);
    int64_t ban = level_or(pl, "ban", 50);
    needed = ban > needed ? ban : needed;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)json_get_obj(pl, "events"), key, v)
    {
        int64_t n;
        if (client__level_value(v, &n) && n > needed) {
            needed = n;
        }
    }
    return needed;
}

/* ---- the upgrade ---- */

static const json_t *current_content(struct req *r, const char *room_id, const char *type,
                                     const char *state_key)
{
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, type, state_key, &pdu) != 0 || !pdu) {
        return NULL;
    }
    json_arena(&r->arena, pdu);
    return json_get_obj(pdu, "content");
}

static int send_state(struct req *r, const char *room_id, const char *type,
                      const char *state_key, const json_t *content)
{
    struct room_event_in in = {.room_id = room_id,
                               .sender = r->auth.user_id,
                               .type = type,
                               .state_key = state_key,
                               .content = content};
    struct room_event_out out;
    return room_send(r, &in, &out);
}

static bool in_list(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * The additional creators for a version 12 room from the body: valid user
 * IDs, deduplicated, without the caller. NULL when absent. Sets the
 * failure for anything malformed.
 */
static int read_additional_creators(struct req *r, json_t **out)
{
    *out = NULL;
    const json_t *list = json_object_get(r->json, "additional_creators");
    if (!list || json_is_null(list)) {
        return 0;
    }
    if (!json_is_array(list)) {
        return req_fail(r, -ERR_BAD_JSON, "'additional_creators' must be a list of user IDs");
    }
    json_t *clean = json_arena(&r->arena, json_array());
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v) ||
            !id_user_valid(json_string_value(v), json_string_length(v), false)) {
            return req_fail(r, -ERR_INVALID_PARAM, "'additional_creators' must hold user IDs");
        }
        if (strcmp(json_string_value(v), r->auth.user_id) != 0 &&
            !in_list(clean, json_string_value(v))) {
            json_array_append(clean, v);
        }
    }
    *out = clean;
    return 0;
}

/* Moves the old room's local aliases; the moved ones go into *moved. */
static int move_aliases(struct req *r, const char *old_id, const char *new_id, json_t *moved)
{
    char **aliases = NULL;
    size_t n = 0;
    int rc = store_aliases_of_room(r->db, &r->arena, old_id, &aliases, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char *target = NULL, *creator = NULL;
        rc = store_alias_get(r->db, &r->arena, aliases[i], &target, &creator);
        if (rc == 0) {
            rc = store_alias_delete(r->db, aliases[i]);
        }
        if (rc == 0) {
            rc = store_alias_add(r->db, aliases[i], new_id, creator ? creator : r->auth.user_id);
        }
        if (rc == 0) {
            json_array_append_new(moved, json_string(aliases[i]));
        }
    }
    return rc < 0 ? req_fail(r, rc, NULL) : 0;
}

/* After the events are durable: the directory listing follows the room. */
static int answer_upgrade(struct req *r)
{
    struct store_room old_row, new_row;
    const char *old_id = r->param[0].p;
    int rc = store_room_get(r->db, &r->arena, old_id, &old_row);
    if (rc == 0 && old_row.published) {
        rc = store_room_get(r->db, &r->arena, r->result, &new_row);
        if (rc == 0) {
            rc = store_room_set_published(r->db, new_row.nid, true);
        }
        if (rc == 0) {
            rc = store_room_set_published(r->db, old_row.nid, false);
        }
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_pack("{s:s}", "replacement_room", r->result));
}

/*
 * Steps 4-6, run once the new room r->result is complete and durable: the
 * aliases move, the old room gets its tombstone, loses its canonical alias
 * and is closed where the caller may. Reads the old room's state afresh.
 */
static int retire_old_room(struct req *r)
{
    const char *old_id = r->param[0].p, *new_id = r->result;
    const char *me = r->auth.user_id;
    const json_t *old_pl = current_content(r, old_id, "m.room.power_levels", "");
    const json_t *old_canon = current_content(r, old_id, "m.room.canonical_alias", "");
    int64_t my_level = 0, redact = 0;
    int rc = room_power(r, old_id, me, &my_level, &redact);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }

    /* 4. aliases, all or none */
    json_t *moved = json_arena(&r->arena, json_array());
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = move_aliases(r, old_id, new_id, moved);
        rc = store_end(r->db, rc);
    }
    if (rc) {
        return r->status ? rc : req_fail(r, rc, NULL);
    }
    /* 5. the tombstone */
    json_t *tomb = json_arena(&r->arena, json_pack("{s:s,s:s}", "body",
                                                   "This room has been replaced",
                                                   "replacement_room", new_id));
    rc = send_state(r, old_id, "m.room.tombstone", "", tomb);
    /* 6. the old room: its aliases are gone, and it is closed where allowed */
    if (!rc && old_canon && json_object_size(old_canon) > 0 &&
        my_level >= state_level(old_pl, "m.room.canonical_alias")) {
        rc = send_state(r, old_id, "m.room.canonical_alias", "",
                        json_arena(&r->arena, json_object()));
    }
    if (!rc && old_pl) {
        int64_t target = level_or(old_pl, "users_default", 0) + 1;
        target = target > 50 ? target : 50;
        int64_t ev_default = level_or(old_pl, "events_default", 0);
        int64_t invite = level_or(old_pl, "invite", 0);
        if ((ev_default < target || invite < target) && my_level >= target &&
            my_level >= state_level(old_pl, "m.room.power_levels")) {
            json_t *closed = json_arena(&r->arena, json_deep_copy(old_pl));
            if (ev_default < target) {
                json_object_set_new(closed, "events_default", json_integer(target));
            }
            if (invite < target) {
                json_object_set_new(closed, "invite", json_integer(target));
            }
            rc = send_state(r, old_id, "m.room.power_levels", "", closed);
        }
    }
    if (rc) {
        return rc;
    }
    return room_wait_durable(r, answer_upgrade);
}

int client_room_upgrade(struct req *r)
{
    const char *old_id = r->param[0].p;
    const char *me = r->auth.user_id;
    int rc = client__check_room_id(r, old_id);
    if (rc) {
        return rc;
    }
    json_t *version_v = json_object_get(r->json, "new_version");
    if (!version_v) {
        return req_fail(r, -ERR_MISSING_PARAM, "'new_version' is required");
    }
    if (!json_is_string(version_v)) {
        return req_fail(r, -ERR_BAD_JSON, "'new_version' must be a string");
    }
    const struct room_version *rv = roomver_get(json_string_value(version_v));
    if (!rv) {
        return req_fail(r, -ERR_UNSUPPORTED_ROOM_VERSION,
                        "This server does not support room version %s",
                        json_string_value(version_v));
    }
    json_t *extra_creators = NULL;
    rc = read_additional_creators(r, &extra_creators);
    if (!rc) {
        rc = client__require_joined(r, old_id);
    }
    if (rc) {
        return rc;
    }
    const struct room_version *old_rv = room_version_of(r, old_id);
    const json_t *old_pl = current_content(r, old_id, "m.room.power_levels", "");
    int64_t my_level = 0, redact = 0;
    rc = room_power(r, old_id, me, &my_level, &redact);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    if (my_level < state_level(old_pl, "m.room.tombstone")) {
        return req_fail(r, -ERR_FORBIDDEN, "You cannot upgrade this room");
    }

    /* 2. the new room */
    json_t *creation = json_arena(&r->arena, json_object());
    json_t *pred = json_pack("{s:s}", "room_id", old_id);
    struct store_room old_row;
    struct store_event *last = NULL;
    size_t n_last = 0;
    if (store_room_get(r->db, &r->arena, old_id, &old_row) == 0 &&
        store_room_events(r->db, &r->arena, old_row.nid, INT64_MAX, true, 1, &last, &n_last) ==
            0 &&
        n_last == 1) {
        json_object_set_new(pred, "event_id", json_string(last[0].event_id));
    }
    json_object_set_new(creation, "predecessor", pred);
    const char *room_type = json_get_str(current_content(r, old_id, "m.room.create", ""), "type");
    if (room_type) {
        json_object_set_new(creation, "type", json_string(room_type));
    }
    if (rv->privileged_creators && json_array_size(extra_creators) > 0) {
        json_object_set(creation, "additional_creators", extra_creators);
    }
    const char *new_id = NULL;
    rc = room_create(r, rv, me, creation, &new_id);
    if (!rc) {
        rc = client__set_membership(r, new_id, me, "join", NULL);
    }
    if (rc) {
        return rc;
    }

    /* 3. power levels first, so the rest is authorised by them */
    json_t *pl = NULL;
    bool restore = false;
    int64_t restore_to = 0;
    if (old_pl) {
        pl = json_arena(&r->arena, json_deep_copy(old_pl));
        if (rv->integer_power_levels) {
            integer_levels(pl);
        }
        json_t *users = json_object_get(pl, "users");
        if (!json_is_object(users)) {
            users = json_object();
            json_object_set_new(pl, "users", users);
        }
        if (rv->privileged_creators) {
            json_object_del(users, me);
            size_t i;
            json_t *u;
            json_array_foreach(extra_creators, i, u)
            {
                json_object_del(users, json_string_value(u));
            }
        } else {
            int64_t needed = needed_level(pl);
            int64_t listed = level_or(users, me, level_or(pl, "users_default", 0));
            if (old_rv && old_rv->privileged_creators && my_level == INT64_MAX) {
                /* A v12 creator: keep an explicit level, as high as needed. */
                json_object_set_new(users, me, json_integer(needed > 100 ? needed : 100));
            } else if (listed < needed) {
                restore = true;
                restore_to = listed;
                json_object_set_new(users, me, json_integer(needed));
            }
        }
        rc = send_state(r, new_id, "m.room.power_levels", "", pl);
    }
    for (size_t i = 0; !rc && i < sizeof(copied_types) / sizeof(copied_types[0]); i++) {
        const json_t *content = current_content(r, old_id, copied_types[i], "");
        if (content) {
            rc = send_state(r, new_id, copied_types[i], "", content);
        }
    }
    /* Space children and bans, from the whole old state. */
    json_t *all = NULL;
    if (!rc && room_state_all(r, old_id, &all) == 0) {
        json_arena(&r->arena, all);
        size_t i;
        json_t *pdu;
        json_array_foreach(all, i, pdu)
        {
            if (rc) {
                break;
            }
            const char *type = json_get_str(pdu, "type");
            const char *key = json_get_str(pdu, "state_key");
            const json_t *content = json_get_obj(pdu, "content");
            if (!type || !key || !content) {
                continue;
            }
            const char *membership = json_get_str(content, "membership");
            if (strcmp(type, "m.space.child") == 0 && json_object_size(content) > 0) {
                rc = send_state(r, new_id, type, key, content);
            } else if (strcmp(type, "m.room.member") == 0 && membership &&
                       strcmp(membership, "ban") == 0 && strcmp(key, me) != 0 &&
                       !in_list(extra_creators, key)) {
                json_t *ban = json_arena(&r->arena, json_pack("{s:s}", "membership", "ban"));
                const char *reason = json_get_str(content, "reason");
                if (reason) {
                    json_object_set_new(ban, "reason", json_string(reason));
                }
                rc = send_state(r, new_id, type, key, ban);
            }
        }
    }

    /* The new room's canonical alias: the old one, limited to the local
     * aliases that are about to move here (step 4). */
    const json_t *old_canon = current_content(r, old_id, "m.room.canonical_alias", "");
    json_t *moving = json_arena(&r->arena, json_array());
    char **aliases = NULL;
    size_t n_aliases = 0;
    if (!rc && old_canon && json_object_size(old_canon) > 0) {
        rc = store_aliases_of_room(r->db, &r->arena, old_id, &aliases, &n_aliases);
        if (rc < 0) {
            rc = req_fail(r, rc, NULL);
        }
        for (size_t i = 0; !rc && i < n_aliases; i++) {
            json_array_append_new(moving, json_string(aliases[i]));
        }
    }
    if (!rc && old_canon && json_object_size(old_canon) > 0) {
        json_t *canon = json_arena(&r->arena, json_object());
        const char *alias = json_get_str(old_canon, "alias");
        if (alias && in_list(moving, alias)) {
            json_object_set_new(canon, "alias", json_string(alias));
        }
        json_t *alt = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(old_canon, "alt_aliases"), i, v)
        {
            if (json_is_string(v) && in_list(moving, json_string_value(v))) {
                json_array_append(alt, v);
            }
        }
        if (json_array_size(alt) > 0) {
            json_object_set_new(canon, "alt_aliases", alt);
        } else {
            json_decref(alt);
        }
        if (json_object_size(canon) > 0) {
            rc = send_state(r, new_id, "m.room.canonical_alias", "", canon);
        }
    }
    if (!rc && restore) {
        json_object_set_new(json_object_get(pl, "users"), me, json_integer(restore_to));
        rc = send_state(r, new_id, "m.room.power_levels", "", pl);
    }
    if (rc) {
        return rc; /* the old room is untouched */
    }
    /* Steps 4-6 once every event of the new room is durable. */
    r->result = new_id;
    return room_wait_durable(r, retire_old_room);
}
