/*
 * Server-side key backups (spec: Client-Server API "Server-side key
 * backups", key_backup.yaml): a user's backup versions under
 * /room_keys/version and the encrypted megolm session keys stored in them
 * under /room_keys/keys, per version, room and session.
 *
 * The server never decrypts anything: auth_data and session_data are
 * opaque objects stored as uploaded. What it does decide: versions are
 * numbered per user "1", "2", ... and a number is never reused after a
 * deletion (as Synapse does); keys may only be uploaded to the current
 * (highest, not deleted) version, otherwise 403 M_WRONG_ROOM_KEYS_VERSION
 * names the current one; an upload of a session already stored replaces
 * it only when it is better by the spec's rule (store_room_keys_put);
 * and each version's etag changes whenever its stored keys change, with
 * `count` the number of sessions it holds.
 *
 * Unknown or deleted versions are 404 M_NOT_FOUND everywhere except a
 * second DELETE of a deleted version, which succeeds (spec).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "base/err.h"
#include "base/json.h"
#include "core/id.h"
#include "http/req.h"
#include "store/store.h"

/* The algorithm of the spec, and the symmetric one of MSC3270, which
 * Synapse also accepts. */
#define ALG_CURVE25519 "m.megolm_backup.v1.curve25519-aes-sha2"
#define ALG_MSC3270 "org.matrix.msc3270.v1.aes-hmac-sha2"
/* Longest session ID accepted (megolm IDs are 43 bytes). */
#define SESSION_ID_MAX_BYTES 255
/* Versions are decimal numbers; more digits than this cannot be ours. */
#define VERSION_MAX_DIGITS 18

/* ---- helpers ---- */

static bool known_algorithm(const char *alg)
{
    return strcmp(alg, ALG_CURVE25519) == 0 || strcmp(alg, ALG_MSC3270) == 0;
}

/* Parses a version as we hand them out ("1", "2", ...: no sign, no
 * leading zero); false for anything else, which can name no version. */
static bool parse_version(const char *s, int64_t *out)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > VERSION_MAX_DIGITS || s[0] == '0') {
        return false;
    }
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static const char *version_str(struct req *r, int64_t v)
{
    return arena_printf(&r->arena, "%lld", (long long)v);
}

/* The compact JSON text of `v` in the arena, or NULL when out of memory. */
static char *dump(struct req *r, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT);
    if (!text) {
        return NULL;
    }
    char *copy = arena_strdup(&r->arena, text);
    free(text);
    return copy;
}

/* A stored JSON object text as a new reference, or NULL when unreadable. */
static json_t *load(const char *text)
{
    return text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
}

static int unknown_version(struct req *r)
{
    return req_fail(r, -ERR_NOT_FOUND, "Unknown backup version");
}

/* The path's {version} of /room_keys/version/{version}: 0 and *version,
 * or the 404 failure (a malformed version names no backup). */
static int path_version(struct req *r, int64_t *version)
{
    return parse_version(r->param[0].p, version) ? 0 : unknown_version(r);
}

/* The version object of GET /room_keys/version (spec
 * "GET /_matrix/client/v3/room_keys/version"), or NULL when unreadable. */
static json_t *version_json(struct req *r, const struct store_backup_version *v)
{
    json_t *auth_data = load(v->auth_data);
    if (!auth_data) {
        return NULL;
    }
    return json_pack("{s:s,s:o,s:I,s:s,s:s}", "algorithm", v->algorithm, "auth_data", auth_data,
                     "count", (json_int_t)v->count, "etag", version_str(r, v->etag), "version",
                     version_str(r, v->version));
}

/* Reads the algorithm and auth_data every version body carries (spec:
 * both required). 0 or the failure. */
static int check_version_body(struct req *r, const char **algorithm, const char **auth_data)
{
    const json_t *alg = json_object_get(r->json, "algorithm");
    if (!json_is_string(alg)) {
        return req_fail(r, -ERR_BAD_JSON, "'algorithm' must be a string");
    }
    const json_t *ad = json_object_get(r->json, "auth_data");
    if (!json_is_object(ad)) {
        return req_fail(r, -ERR_BAD_JSON, "'auth_data' must be an object");
    }
    *algorithm = json_string_value(alg);
    *auth_data = dump(r, ad);
    return *auth_data ? 0 : -ERR_NOMEM;
}

/* ---- versions ---- */

/* POST /room_keys/version {algorithm, auth_data} -> {version}. */
int client_room_keys_version_create(struct req *r)
{
    const char *algorithm, *auth_data;
    int rc = check_version_body(r, &algorithm, &auth_data);
    if (rc) {
        return rc;
    }
    if (!known_algorithm(algorithm)) {
        return req_fail(r, -ERR_INVALID_PARAM, "Unknown backup algorithm '%s'", algorithm);
    }
    int64_t version;
    rc = store_room_keys_version_create(r->db, r->auth.user_id, algorithm, auth_data, &version);
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_pack("{s:s}", "version", version_str(r, version)));
}

/* Answers with version `version` of the caller (0: the current one). */
static int version_answer(struct req *r, int64_t version)
{
    struct store_backup_version v;
    int rc = store_room_keys_version_get(r->db, &r->arena, r->auth.user_id, version, &v);
    if (rc == -ERR_NOT_FOUND) {
        return version ? unknown_version(r)
                       : req_fail(r, -ERR_NOT_FOUND, "No current backup version");
    }
    if (rc < 0) {
        return rc;
    }
    json_t *body = version_json(r, &v);
    return body ? req_json(r, 200, body) : -ERR_DB;
}

/* GET /room_keys/version: the current backup version. */
int client_room_keys_version_current(struct req *r) { return version_answer(r, 0); }

/* GET /room_keys/version/{version}. */
int client_room_keys_version_get(struct req *r)
{
    int64_t version;
    int rc = path_version(r, &version);
    return rc ? rc : version_answer(r, version);
}

/* PUT /room_keys/version/{version} {algorithm, auth_data, version?}: only
 * auth_data may change (spec "PUT /_matrix/client/v3/room_keys/version/
 * {version}"). */
int client_room_keys_version_put(struct req *r)
{
    const char *algorithm, *auth_data;
    int rc = check_version_body(r, &algorithm, &auth_data);
    if (rc) {
        return rc;
    }
    const json_t *body_version = json_object_get(r->json, "version");
    if (body_version && !json_is_string(body_version)) {
        return req_fail(r, -ERR_BAD_JSON, "'version' must be a string");
    }
    if (body_version && strcmp(json_string_value(body_version), r->param[0].p) != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "Version in body does not match that in the URL");
    }
    int64_t version;
    rc = path_version(r, &version);
    if (rc) {
        return rc;
    }
    struct store_backup_version old = {0};
    bool algorithm_differs = false;
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_room_keys_version_get(r->db, &r->arena, r->auth.user_id, version, &old);
        if (rc == 0 && strcmp(old.algorithm, algorithm) != 0) {
            algorithm_differs = true;
            rc = -ERR_INVALID_PARAM;
        }
        if (rc == 0) {
            rc = store_room_keys_version_update(r->db, r->auth.user_id, version, auth_data);
        }
        rc = store_end(r->db, rc);
    }
    if (rc == -ERR_NOT_FOUND) {
        return unknown_version(r);
    }
    if (algorithm_differs) {
        return req_fail(r, -ERR_INVALID_PARAM, "Algorithm does not match (the backup uses '%s')",
                        old.algorithm);
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

/* DELETE /room_keys/version/{version}: the version and all its keys. */
int client_room_keys_version_delete(struct req *r)
{
    int64_t version;
    int rc = path_version(r, &version);
    if (rc) {
        return rc;
    }
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_room_keys_version_delete(r->db, r->auth.user_id, version);
        rc = store_end(r->db, rc);
    }
    if (rc == -ERR_NOT_FOUND) {
        return unknown_version(r);
    }
    if (rc < 0) {
        return rc;
    }
    return req_json(r, 200, json_object());
}

/* ---- keys ---- */

/*
 * Which keys a /room_keys/keys request is about: the ?version= query and
 * the path's room and session (NULL at the levels above them).
 */
struct keys_target {
    const char *version_text;
    int64_t version;
    bool version_valid; /* false: the text can name no version */
    const char *room_id;
    const char *session_id;
};

/* Reads the target of the request; 0 or the 400 failure when ?version=
 * is missing. */
static int keys_target(struct req *r, struct keys_target *t)
{
    t->version_text = req_query(r, "version");
    if (!t->version_text) {
        return req_fail(r, -ERR_MISSING_PARAM, "Missing 'version' query parameter");
    }
    t->version_valid = parse_version(t->version_text, &t->version);
    t->room_id = r->n_params >= 1 ? r->param[0].p : NULL;
    t->session_id = r->n_params >= 2 ? r->param[1].p : NULL;
    return 0;
}

/* Checks one KeyBackupData object (spec) and fills k's metadata and
 * session_data. `where` names it in errors. 0 or the failure. */
static int check_key_data(struct req *r, const json_t *data, const char *where,
                          struct store_room_key *k)
{
    if (!json_is_object(data)) {
        return req_fail(r, -ERR_BAD_JSON, "%s must be an object", where);
    }
    const json_t *fmi = json_object_get(data, "first_message_index");
    const json_t *fc = json_object_get(data, "forwarded_count");
    const json_t *verified = json_object_get(data, "is_verified");
    const json_t *session_data = json_object_get(data, "session_data");
    if (!json_is_integer(fmi) || !json_is_integer(fc)) {
        return req_fail(r, -ERR_BAD_JSON,
                        "%s: 'first_message_index' and 'forwarded_count' must be integers",
                        where);
    }
    if (json_integer_value(fmi) < 0 || json_integer_value(fc) < 0) {
        return req_fail(r, -ERR_INVALID_PARAM,
                        "%s: 'first_message_index' and 'forwarded_count' may not be negative",
                        where);
    }
    if (!json_is_boolean(verified)) {
        return req_fail(r, -ERR_BAD_JSON, "%s: 'is_verified' must be a boolean", where);
    }
    if (!json_is_object(session_data)) {
        return req_fail(r, -ERR_BAD_JSON, "%s: 'session_data' must be an object", where);
    }
    k->first_message_index = json_integer_value(fmi);
    k->forwarded_count = json_integer_value(fc);
    k->is_verified = json_is_true(verified);
    k->session_data = dump(r, session_data);
    return k->session_data ? 0 : -ERR_NOMEM;
}

static int check_room_id(struct req *r, const char *room_id)
{
    if (!id_room_valid(room_id, strlen(room_id))) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a room ID", room_id);
    }
    return 0;
}

static int check_session_id(struct req *r, const char *session_id)
{
    size_t len = strlen(session_id);
    if (len == 0 || len > SESSION_ID_MAX_BYTES) {
        return req_fail(r, -ERR_INVALID_PARAM, "Invalid session ID");
    }
    return 0;
}

/* Checks a {"sessions": {session ID: KeyBackupData}} object of `room_id`
 * and appends its keys to keys[*n]. 0 or the failure. */
static int check_room_backup(struct req *r, const json_t *room, const char *room_id,
                             struct store_room_key *keys, size_t *n)
{
    const json_t *sessions = json_object_get(room, "sessions");
    if (!json_is_object(sessions)) {
        return req_fail(r, -ERR_BAD_JSON, "'sessions' of %s must be an object", room_id);
    }
    const char *session_id;
    const json_t *data;
    json_object_foreach((json_t *)sessions, session_id, data)
    {
        int rc = check_session_id(r, session_id);
        if (rc == 0) {
            keys[*n].room_id = (char *)room_id;
            keys[*n].session_id = (char *)session_id;
            rc = check_key_data(r, data, session_id, &keys[*n]);
        }
        if (rc) {
            return rc;
        }
        (*n)++;
    }
    return 0;
}

/* How many sessions the body of a PUT at `t`'s level can hold at most
 * (before it is checked): the array size for check_put_body. */
static size_t count_sessions(const struct keys_target *t, const json_t *body)
{
    if (t->session_id) {
        return 1;
    }
    if (t->room_id) {
        return json_object_size(json_object_get(body, "sessions"));
    }
    size_t n = 0;
    const char *room_id;
    const json_t *room;
    json_object_foreach((json_t *)json_object_get(body, "rooms"), room_id, room)
    {
        n += json_object_size(json_object_get(room, "sessions"));
    }
    return n;
}

/* Checks the whole body of a PUT before anything is stored and collects
 * its keys into *keys (arena array) and *n. 0 or the failure. */
static int check_put_body(struct req *r, const struct keys_target *t, struct store_room_key **keys,
                          size_t *n)
{
    size_t cap = count_sessions(t, r->json);
    *keys = ARENA_ARRAY(&r->arena, struct store_room_key, cap ? cap : 1);
    *n = 0;
    int rc;
    if (t->session_id) {
        rc = check_room_id(r, t->room_id);
        if (rc == 0) {
            rc = check_session_id(r, t->session_id);
        }
        if (rc == 0) {
            (*keys)[0].room_id = (char *)t->room_id;
            (*keys)[0].session_id = (char *)t->session_id;
            rc = check_key_data(r, r->json, "The key data", &(*keys)[0]);
        }
        *n = rc == 0 ? 1 : 0;
        return rc;
    }
    if (t->room_id) {
        rc = check_room_id(r, t->room_id);
        return rc ? rc : check_room_backup(r, r->json, t->room_id, *keys, n);
    }
    const json_t *rooms = json_object_get(r->json, "rooms");
    if (!json_is_object(rooms)) {
        return req_fail(r, -ERR_BAD_JSON, "'rooms' must be an object");
    }
    const char *room_id;
    const json_t *room;
    json_object_foreach((json_t *)rooms, room_id, room)
    {
        rc = check_room_id(r, room_id);
        if (rc == 0 && !json_is_object(room)) {
            rc = req_fail(r, -ERR_BAD_JSON, "The backup of %s must be an object", room_id);
        }
        if (rc == 0) {
            rc = check_room_backup(r, room, room_id, *keys, n);
        }
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* The {"etag", "count"} answer of PUT and DELETE (RoomKeysUpdateResponse). */
static int update_answer(struct req *r, const struct store_backup_version *v)
{
    return req_json(r, 200, json_pack("{s:s,s:I}", "etag", version_str(r, v->etag), "count",
                                      (json_int_t)v->count));
}

/* The KeyBackupData object of a stored key, or NULL when unreadable. */
static json_t *key_json(const struct store_room_key *k)
{
    json_t *session_data = load(k->session_data);
    if (!session_data) {
        return NULL;
    }
    return json_pack("{s:I,s:I,s:b,s:o}", "first_message_index",
                     (json_int_t)k->first_message_index, "forwarded_count",
                     (json_int_t)k->forwarded_count, "is_verified", k->is_verified,
                     "session_data", session_data);
}

/* GET /room_keys/keys[/{roomId}[/{sessionId}]]?version= */
int client_room_keys_get(struct req *r)
{
    struct keys_target t;
    int rc = keys_target(r, &t);
    if (rc) {
        return rc;
    }
    if (!t.version_valid) {
        return unknown_version(r);
    }
    struct store_backup_version v;
    rc = store_room_keys_version_get(r->db, &r->arena, r->auth.user_id, t.version, &v);
    if (rc == -ERR_NOT_FOUND) {
        return unknown_version(r);
    }
    struct store_room_key *keys = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = store_room_keys_list(r->db, &r->arena, r->auth.user_id, t.version, t.room_id,
                                  t.session_id, &keys, &n);
    }
    if (rc < 0) {
        return rc;
    }
    if (t.session_id) {
        if (n == 0) {
            return req_fail(r, -ERR_NOT_FOUND, "No key for session %s", t.session_id);
        }
        json_t *k = key_json(&keys[0]);
        return k ? req_json(r, 200, k) : -ERR_DB;
    }
    /* Rows come ordered by room, so each room's sessions are one run. */
    json_t *rooms = json_object();
    json_t *sessions = NULL;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(keys[i].room_id, keys[i - 1].room_id) != 0) {
            sessions = json_object();
            json_object_set_new(rooms, keys[i].room_id, json_pack("{s:o}", "sessions", sessions));
        }
        json_t *k = key_json(&keys[i]);
        if (!k) {
            json_decref(rooms);
            return -ERR_DB;
        }
        json_object_set_new(sessions, keys[i].session_id, k);
    }
    if (t.room_id) {
        /* A room without keys is {"sessions": {}} (spec), not 404. */
        json_t *room = json_incref(json_object_get(rooms, t.room_id));
        json_decref(rooms);
        return req_json(r, 200, room ? room : json_pack("{s:{}}", "sessions"));
    }
    return req_json(r, 200, json_pack("{s:o}", "rooms", rooms));
}

/* PUT /room_keys/keys[/{roomId}[/{sessionId}]]?version= with
 * {"rooms": ...}, {"sessions": ...} or one KeyBackupData. */
int client_room_keys_put(struct req *r)
{
    struct keys_target t;
    int rc = keys_target(r, &t);
    if (rc) {
        return rc;
    }
    struct store_room_key *keys;
    size_t n;
    rc = check_put_body(r, &t, &keys, &n);
    if (rc) {
        return rc;
    }
    if (!t.version_valid) {
        return unknown_version(r);
    }
    struct store_backup_version current = {0}, v = {0};
    bool wrong_version = false;
    rc = store_begin(r->db);
    if (rc == 0) {
        /* Holding the version's row first keeps a concurrent deletion of
         * it from leaving keys behind (and serialises uploads to it). */
        rc = store_room_keys_version_hold(r->db, r->auth.user_id, t.version);
        if (rc == 0) {
            rc = store_room_keys_version_get(r->db, &r->arena, r->auth.user_id, 0, &current);
        }
        if (rc == 0 && current.version != t.version) {
            wrong_version = true;
            rc = -ERR_WRONG_ROOM_KEYS_VERSION;
        }
        int changed = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = store_room_keys_put(r->db, r->auth.user_id, t.version, &keys[i]);
            if (rc > 0) {
                changed += rc;
                rc = 0;
            }
        }
        if (rc == 0 && changed) {
            rc = store_room_keys_bump_etag(r->db, r->auth.user_id, t.version);
        }
        if (rc == 0) {
            rc = store_room_keys_version_get(r->db, &r->arena, r->auth.user_id, t.version, &v);
        }
        rc = store_end(r->db, rc);
    }
    if (wrong_version) {
        const char *cur = version_str(r, current.version);
        return req_fail_json(r, -ERR_WRONG_ROOM_KEYS_VERSION,
                             json_pack("{s:s}", "current_version", cur),
                             "Wrong backup version: %s is not the current one (%s)",
                             t.version_text, cur);
    }
    if (rc == -ERR_NOT_FOUND) {
        return unknown_version(r);
    }
    return rc < 0 ? rc : update_answer(r, &v);
}

/* DELETE /room_keys/keys[/{roomId}[/{sessionId}]]?version= */
int client_room_keys_delete(struct req *r)
{
    struct keys_target t;
    int rc = keys_target(r, &t);
    if (rc) {
        return rc;
    }
    if (!t.version_valid) {
        return unknown_version(r);
    }
    struct store_backup_version v = {0};
    rc = store_begin(r->db);
    if (rc == 0) {
        rc = store_room_keys_version_hold(r->db, r->auth.user_id, t.version);
        int deleted = 0;
        if (rc == 0) {
            deleted = store_room_keys_delete(r->db, r->auth.user_id, t.version, t.room_id,
                                             t.session_id);
            rc = deleted < 0 ? deleted : 0;
        }
        if (rc == 0 && deleted > 0) {
            rc = store_room_keys_bump_etag(r->db, r->auth.user_id, t.version);
        }
        if (rc == 0) {
            rc = store_room_keys_version_get(r->db, &r->arena, r->auth.user_id, t.version, &v);
        }
        rc = store_end(r->db, rc);
    }
    if (rc == -ERR_NOT_FOUND) {
        return unknown_version(r);
    }
    return rc < 0 ? rc : update_answer(r, &v);
}
