/*
 * Profiles (spec: Client-Server API "Profiles", custom fields since
 * v1.16): the whole profile, one field, setting and deleting a field.
 *
 * A profile is displayname and avatar_url (their own columns) plus any
 * other fields, m.tz included, kept as one JSON object. Only local users
 * are served until federation queries arrive: any other user ID is
 * M_NOT_FOUND, as are deactivated accounts. Only the owner changes a
 * profile, and guests only their display name (spec "Guest Access").
 *
 * A change of displayname or avatar_url is propagated (spec "Events on
 * change of profile information") as a new m.room.member join event in
 * every room the user is joined to, sent like any local event through
 * svc/room; a room that refuses it is logged and skipped, never failing
 * the profile change. Presence propagation waits for presence.
 */
#include <stdlib.h>
#include <string.h>

#include "api/client/client.h"
#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"
#include "core/id.h"
#include "store/store.h"
#include "svc/fedclient.h"
#include "svc/room.h"
#include "svc/srv.h"

#define PROFILE_MAX_BYTES 65536   /* the whole profile must stay under 64 KiB */
#define PROFILE_KEY_MAX_BYTES 255 /* M_KEY_TOO_LARGE beyond */
#define DISPLAYNAME_MAX_CHARS 256
#define AVATAR_URL_MAX_BYTES 1000

/* ---- keys and values ---- */

/*
 * Checks a profile key: displayname, avatar_url, or the Common Namespaced
 * Identifier Grammar ([a-z][a-z0-9._-]*) within 255 bytes. Returns 0 or
 * the M_KEY_TOO_LARGE / M_INVALID_PARAM failure.
 */
static int check_key(struct req *r, struct str key)
{
    if (key.len > PROFILE_KEY_MAX_BYTES) {
        return req_fail(r, -ERR_KEY_TOO_LARGE, "Profile keys are limited to %d bytes",
                        PROFILE_KEY_MAX_BYTES);
    }
    bool ok = key.len > 0 && key.p[0] >= 'a' && key.p[0] <= 'z';
    for (size_t i = 1; ok && i < key.len; i++) {
        char c = key.p[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '-';
    }
    if (!ok) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid profile key");
    }
    return 0;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xC0) != 0x80;
    }
    return n;
}

/* Checks the value of one of the fields the spec types. */
static int check_value(struct req *r, const char *key, const json_t *v)
{
    bool dn = strcmp(key, "displayname") == 0;
    bool av = strcmp(key, "avatar_url") == 0;
    bool tz = strcmp(key, "m.tz") == 0;
    if (!dn && !av && !tz) {
        return 0; /* custom fields take any JSON value */
    }
    if (!json_is_string(v)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' must be a string", key);
    }
    const char *s = json_string_value(v);
    if (dn && utf8_chars(s) > DISPLAYNAME_MAX_CHARS) {
        return req_fail(r, -ERR_INVALID_PARAM, "'displayname' is limited to %d characters",
                        DISPLAYNAME_MAX_CHARS);
    }
    if (av && *s && (strncmp(s, "mxc://", 6) != 0 || strlen(s) > AVATAR_URL_MAX_BYTES)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'avatar_url' must be an mxc:// URI");
    }
    if (tz && json_string_length(v) > 255) {
        return req_fail(r, -ERR_INVALID_PARAM, "'m.tz' is too long");
    }
    return 0;
}

/* ---- loading and storing ---- */

/*
 * Resolves the {userId} path parameter to a local, active account and
 * loads its profile as one JSON object (arena-owned) into *out. Fails with
 * M_INVALID_PARAM for a malformed ID and M_NOT_FOUND otherwise.
 */
static int load(struct req *r, const char *user_id, json_t **out)
{
    if (user_id[0] != '@' || !strchr(user_id, ':')) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid user ID");
    }
    if (!client__local_part(r, user_id)) {
        return req_fail(r, -ERR_NOT_FOUND, "Profile not found");
    }
    struct store_user u;
    int rc = store_user_get(r->db, &r->arena, user_id, &u);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && u.deactivated)) {
        return req_fail(r, -ERR_NOT_FOUND, "Profile not found");
    }
    if (rc < 0) {
        return rc;
    }
    struct store_profile p;
    rc = store_profile_get(r->db, &r->arena, user_id, &p);
    if (rc == -ERR_NOT_FOUND) {
        *out = json_arena(&r->arena, json_object());
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    json_t *obj = json_loads(p.fields, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        obj = json_object();
    }
    json_arena(&r->arena, obj);
    json_object_del(obj, "displayname");
    json_object_del(obj, "avatar_url");
    if (p.displayname) {
        json_object_set_new(obj, "displayname", json_string(p.displayname));
    }
    if (p.avatar_url) {
        json_object_set_new(obj, "avatar_url", json_string(p.avatar_url));
    }
    *out = obj;
    return 0;
}

/* Writes the profile object back: the two well-known fields to their
 * columns (an empty string means unset), the rest as JSON. */
static int save(struct req *r, const char *user_id, const json_t *obj)
{
    json_t *rest = json_deep_copy(obj);
    json_arena(&r->arena, rest);
    struct store_profile p = {0};
    const char *dn = json_get_str(rest, "displayname");
    const char *av = json_get_str(rest, "avatar_url");
    p.displayname = dn && *dn ? arena_strdup(&r->arena, dn) : NULL;
    p.avatar_url = av && *av ? arena_strdup(&r->arena, av) : NULL;
    json_object_del(rest, "displayname");
    json_object_del(rest, "avatar_url");
    char *text = json_dumps(rest, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text) {
        return -ERR_NOMEM;
    }
    p.fields = arena_strdup(&r->arena, text);
    free(text);
    return store_profile_set(r->db, user_id, &p);
}

/* Common checks of the changing methods: a valid key, the caller's own
 * profile, guests limited to the display name. */
static int check_change(struct req *r)
{
    int rc = check_key(r, r->param[1]);
    if (rc) {
        return rc;
    }
    if (strcmp(r->param[0].p, r->auth.user_id) != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "You may only change your own profile");
    }
    if (r->auth.is_guest && strcmp(r->param[1].p, "displayname") != 0) {
        return req_fail(r, -ERR_FORBIDDEN, "Guests may only change their display name");
    }
    return 0;
}

/* ---- propagation into rooms ---- */

/*
 * The user's member event content in one room, rewritten for the stored
 * profile `p`: the other keys kept, "displayname" and "avatar_url" set or
 * removed, the keys of the earlier join itself (reason, the authorising
 * user of a restricted join) dropped. NULL when the user is not joined
 * there or nothing would change. Arena-owned.
 */
static json_t *updated_member(struct req *r, const char *room_id, const struct store_profile *p)
{
    json_t *pdu = NULL;
    if (room_state_event(r, room_id, "m.room.member", r->auth.user_id, &pdu) != 0 || !pdu) {
        return NULL;
    }
    json_arena(&r->arena, pdu);
    const json_t *old = json_get_obj(pdu, "content");
    const char *m = json_get_str(old, "membership");
    if (!m || strcmp(m, "join") != 0) {
        return NULL;
    }
    json_t *c = json_arena(&r->arena, json_deep_copy(old));
    json_object_del(c, "reason");
    json_object_del(c, "join_authorised_via_users_server");
    if (p->displayname) {
        json_object_set_new(c, "displayname", json_string(p->displayname));
    } else {
        json_object_del(c, "displayname");
    }
    if (p->avatar_url) {
        json_object_set_new(c, "avatar_url", json_string(p->avatar_url));
    } else {
        json_object_del(c, "avatar_url");
    }
    return json_equal(c, old) ? NULL : c;
}

/*
 * Sends the updated member event into each joined room. A room that
 * refuses it (or fails) is logged and left as it was; the events sent are
 * awaited by the caller with room_wait_durable.
 */
static void propagate(struct req *r)
{
    struct store_profile p = {0};
    int rc = store_profile_get(r->db, &r->arena, r->auth.user_id, &p);
    if (rc < 0 && rc != -ERR_NOT_FOUND) {
        LOG_WARN("profile", "profile not propagated: %s", err_message(rc));
        return;
    }
    char **rooms = NULL;
    size_t n = 0;
    rc = store_user_rooms(r->db, &r->arena, r->auth.user_id, "join", &rooms, &n);
    if (rc < 0) {
        LOG_WARN("profile", "profile not propagated: %s", err_message(rc));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *content = updated_member(r, rooms[i], &p);
        if (!content) {
            continue;
        }
        struct room_event_in in = {.room_id = rooms[i],
                                   .sender = r->auth.user_id,
                                   .type = "m.room.member",
                                   .state_key = r->auth.user_id,
                                   .content = content};
        struct room_event_out out;
        if (room_send(r, &in, &out) != 0) {
            LOG_WARN("profile", "member event not updated in %s: %s", rooms[i],
                     err_message(r->err));
            r->err = 0; /* the profile change itself stands */
        }
    }
}

/* Whether a change of profile key `key` reaches the member events. */
static bool propagated_key(const char *key)
{
    return strcmp(key, "displayname") == 0 || strcmp(key, "avatar_url") == 0;
}

int client__profile_load(struct req *r, const char *user_id, json_t **out)
{
    return load(r, user_id, out);
}

static int answer_empty(struct req *r) { return req_json(r, 200, json_object()); }

/* ---- users of other servers ---- */

/* How long a client waits for another server's profile answer. */
#define REMOTE_PROFILE_TIMEOUT_MS 10000

/* The continuation of a remote lookup: the answer of the user's server
 * (r->cont_data), narrowed to one field when the route names one. */
static int remote_answer(struct req *r)
{
    const struct fed_resp *resp = r->cont_data;
    if (resp->status == 404) {
        return req_fail(r, -ERR_NOT_FOUND, "Profile not found");
    }
    json_t *obj = resp->status == 200 ? json_arena(&r->arena, fed_resp_json(resp)) : NULL;
    if (!obj) {
        /* Synapse answers 502 too when the user's server cannot be asked. */
        return req_fail(r, -ERR_BAD_GATEWAY, "Could not get the profile from the user's server");
    }
    if (r->n_params > 1) {
        json_t *v = json_object_get(obj, r->param[1].p);
        if (!v) {
            return req_fail(r, -ERR_NOT_FOUND, "The profile has no field '%s'", r->param[1].p);
        }
        return req_json(r, 200, json_pack("{s:O}", r->param[1].p, v));
    }
    return req_json(r, 200, json_incref(obj));
}

/* Asks the user's server (Server-Server API GET /query/profile) when the
 * user is not local; 0 when they are (answer locally). */
static int remote_lookup(struct req *r, const char *user_id)
{
    const char *server = strchr(user_id, ':');
    if (user_id[0] != '@' || !server || client__local_part(r, user_id) || !r->srv->fed) {
        return 0;
    }
    server++;
    const char *uri = arena_printf(&r->arena, "/_matrix/federation/v1/query/profile?user_id=%s",
                                   str_percent_encode(&r->arena, user_id));
    if (r->n_params > 1) {
        uri = arena_printf(&r->arena, "%s&field=%s", uri,
                           str_percent_encode(&r->arena, r->param[1].p));
    }
    return fedclient_park(r, server, "GET", uri, NULL, REMOTE_PROFILE_TIMEOUT_MS, remote_answer);
}

/* ---- handlers ---- */

int client_profile_get(struct req *r)
{
    int rc = remote_lookup(r, r->param[0].p);
    if (rc) {
        return rc;
    }
    json_t *obj;
    rc = load(r, r->param[0].p, &obj);
    if (rc) {
        return rc;
    }
    return req_json(r, 200, json_incref(obj));
}

int client_profile_field_get(struct req *r)
{
    int rc = check_key(r, r->param[1]);
    if (!rc) {
        rc = remote_lookup(r, r->param[0].p);
    }
    json_t *obj;
    if (!rc) {
        rc = load(r, r->param[0].p, &obj);
    }
    if (rc) {
        return rc;
    }
    json_t *v = json_object_get(obj, r->param[1].p);
    if (!v) {
        return req_fail(r, -ERR_NOT_FOUND, "The profile has no field '%s'", r->param[1].p);
    }
    return req_json(r, 200, json_pack("{s:O}", r->param[1].p, v));
}

int client_profile_field_put(struct req *r)
{
    int rc = check_change(r);
    if (rc) {
        return rc;
    }
    const char *key = r->param[1].p;
    json_t *v = json_object_get(r->json, key);
    if (!v) {
        return req_fail(r, -ERR_MISSING_PARAM, "The body must contain '%s'", key);
    }
    rc = check_value(r, key, v);
    if (rc) {
        return rc;
    }
    json_t *obj;
    rc = store_begin(r->db);
    if (rc < 0) {
        return rc;
    }
    rc = load(r, r->param[0].p, &obj);
    if (rc == 0) {
        json_object_set(obj, key, v);
        char *text = json_dumps(obj, JSON_COMPACT);
        size_t size = text ? strlen(text) : 0;
        free(text);
        if (!text) {
            rc = -ERR_NOMEM;
        } else if (size >= PROFILE_MAX_BYTES) {
            rc = req_fail(r, -ERR_PROFILE_TOO_LARGE, "The profile would exceed 64 KiB");
        }
    }
    if (rc == 0) {
        rc = save(r, r->param[0].p, obj);
    }
    rc = store_end(r->db, rc);
    if (rc) {
        return rc;
    }
    if (propagated_key(r->param[1].p)) {
        propagate(r);
    }
    return room_wait_durable(r, answer_empty);
}

int client_profile_field_delete(struct req *r)
{
    int rc = check_change(r);
    if (rc) {
        return rc;
    }
    json_t *obj;
    rc = store_begin(r->db);
    if (rc < 0) {
        return rc;
    }
    rc = load(r, r->param[0].p, &obj);
    if (rc == 0 && json_object_del(obj, r->param[1].p) == 0) {
        rc = save(r, r->param[0].p, obj);
    }
    rc = store_end(r->db, rc);
    if (rc) {
        return rc;
    }
    if (propagated_key(r->param[1].p)) {
        propagate(r);
    }
    return room_wait_durable(r, answer_empty);
}
