/*
 * Reporting content (spec: Client-Server API "Reporting content"): users
 * report events, rooms (v1.13) and users (v1.14) to the server's
 * administrators, who list them through the admin API.
 *
 * Who may report what follows the spec: an event only by a user currently
 * joined to its room (v1.8; otherwise 404, as for an unknown event); a
 * room or a user by anyone, joined or not. A room report names a room
 * this server knows (404 otherwise, as Synapse). A user report about a
 * remote or unknown user answers 200 without storing anything, so the
 * endpoint does not reveal which accounts exist (the spec allows it;
 * Synapse does the same).
 *
 * Listing: GET /_synapse/admin/v1/event_reports has Synapse's shape
 * (id, received_ts, room_id, name, event_id, user_id, reason, score,
 * sender, canonical_alias; from/limit/dir paging, total, next_token).
 * Room and user reports are listed the same way under room_reports and
 * user_reports; these two paths are Myelin's own, not Synapse's.
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
#include "svc/room.h"
#include "svc/srv.h"

/* As Synapse: a reason longer than this is refused. */
#define REPORT_REASON_MAX 1000
#define REPORTS_DEFAULT_LIMIT 100
#define REPORTS_MAX_LIMIT 1000

static int answer_stored(struct req *r, struct store_report *rep)
{
    rep->received_ts = req_now_ms();
    rep->reporter = r->auth.user_id;
    int rc = store_report_add(r->db, rep);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return req_json(r, 200, json_object());
}

/* Reads "reason": a string (required for room and user reports, where the
 * spec allows it to be blank) of at most REPORT_REASON_MAX bytes. */
static int read_reason(struct req *r, bool required, const char **out)
{
    json_t *v = json_object_get(r->json, "reason");
    *out = NULL;
    if (!v || json_is_null(v)) {
        return required ? req_fail(r, -ERR_MISSING_PARAM, "'reason' is required") : 0;
    }
    if (!json_is_string(v)) {
        return req_fail(r, -ERR_BAD_JSON, "'reason' must be a string");
    }
    if (json_string_length(v) > REPORT_REASON_MAX) {
        return req_fail(r, -ERR_BAD_JSON, "'reason' must be at most %d bytes",
                        REPORT_REASON_MAX);
    }
    *out = json_string_value(v);
    return 0;
}

/* POST /rooms/{roomId}/report/{eventId} {reason?, score?} */
int client_report_event(struct req *r)
{
    const char *room_id = r->param[0].p, *event_id = r->param[1].p;
    struct store_report rep = {.kind = "event", .room_id = room_id, .event_id = event_id};
    int rc = client__check_room_id(r, room_id);
    if (!rc) {
        rc = read_reason(r, false, &rep.reason);
    }
    if (rc) {
        return rc;
    }
    /* "score" was removed in v1.18; older clients still send it. */
    json_t *score = json_object_get(r->json, "score");
    if (score && !json_is_null(score)) {
        if (!json_is_integer(score)) {
            return req_fail(r, -ERR_BAD_JSON, "'score' must be an integer");
        }
        rep.has_score = true;
        rep.score = json_integer_value(score);
    }
    /* The spec answers 404 both for an unknown event and when the reporter
     * is not joined, so the two cannot be told apart. */
    const char *membership = NULL;
    rc = room_membership(r, room_id, r->auth.user_id, &membership);
    if (rc == -ERR_NOT_FOUND || (rc == 0 && (!membership || strcmp(membership, "join") != 0))) {
        return req_fail(r, -ERR_NOT_FOUND,
                        "The event was not found or you are not joined to the room");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    struct store_event se;
    struct store_room room;
    rc = -ERR_NOT_FOUND;
    if (id_event_valid(event_id, strlen(event_id))) {
        rc = store_event_get(r->db, &r->arena, event_id, &se);
    }
    if (rc == 0) {
        rc = store_room_get(r->db, &r->arena, room_id, &room);
    }
    if (rc == -ERR_NOT_FOUND || (rc == 0 && (se.room_nid != room.nid || se.rejected))) {
        return req_fail(r, -ERR_NOT_FOUND,
                        "The event was not found or you are not joined to the room");
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return answer_stored(r, &rep);
}

/* POST /rooms/{roomId}/report {reason} (v1.13): membership is not required. */
int client_report_room(struct req *r)
{
    const char *room_id = r->param[0].p;
    struct store_report rep = {.kind = "room", .room_id = room_id};
    int rc = client__check_room_id(r, room_id);
    if (!rc) {
        rc = read_reason(r, true, &rep.reason);
    }
    if (rc) {
        return rc;
    }
    struct store_room room;
    rc = client__known_room(r, room_id, &room);
    if (rc) {
        return rc;
    }
    return answer_stored(r, &rep);
}

/* POST /users/{userId}/report {reason} (v1.14). */
int client_report_user(struct req *r)
{
    const char *user_id = r->param[0].p;
    struct store_report rep = {.kind = "user", .target_user_id = user_id};
    if (!id_user_valid(user_id, strlen(user_id), false)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'%s' is not a user ID", user_id);
    }
    int rc = read_reason(r, true, &rep.reason);
    if (rc) {
        return rc;
    }
    if (!client__local_part(r, user_id)) {
        return req_json(r, 200, json_object()); /* remote: nothing we can act on */
    }
    struct store_user user;
    rc = store_user_get(r->db, &r->arena, user_id, &user);
    if (rc == -ERR_NOT_FOUND) {
        return req_json(r, 200, json_object()); /* hides whether the account exists */
    }
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    return answer_stored(r, &rep);
}

/* ---- admin listing ---- */

/* A string field of a room's current state event content, or NULL. */
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

static void set_str(json_t *o, const char *key, const char *v)
{
    json_object_set_new(o, key, v ? json_string(v) : json_null());
}

static json_t *report_json(struct req *r, const struct store_report *rep)
{
    json_t *o = json_pack("{s:I,s:I,s:s}", "id", (json_int_t)rep->id, "received_ts",
                          (json_int_t)rep->received_ts, "user_id", rep->reporter);
    set_str(o, "reason", rep->reason);
    if (strcmp(rep->kind, "user") == 0) {
        set_str(o, "target_user_id", rep->target_user_id);
        return o;
    }
    set_str(o, "room_id", rep->room_id);
    set_str(o, "name", state_str(r, rep->room_id, "m.room.name", "name"));
    set_str(o, "canonical_alias", state_str(r, rep->room_id, "m.room.canonical_alias", "alias"));
    if (strcmp(rep->kind, "event") == 0) {
        set_str(o, "event_id", rep->event_id);
        json_object_set_new(o, "score", rep->has_score ? json_integer(rep->score) : json_null());
        const char *sender = NULL;
        struct store_event se;
        if (store_event_get(r->db, &r->arena, rep->event_id, &se) == 0) {
            json_error_t e;
            json_t *pdu = json_arena(&r->arena, json_loads(se.json, 0, &e));
            sender = pdu ? json_get_str(pdu, "sender") : NULL;
        }
        set_str(o, "sender", sender);
    }
    return o;
}

bool client__query_int(struct req *r, const char *key, int64_t *out)
{
    const char *s = req_query(r, key);
    if (!s) {
        return true;
    }
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0) {
        return false;
    }
    *out = v;
    return true;
}

static int list_reports(struct req *r, const char *kind, const char *key)
{
    int64_t from = 0, limit = REPORTS_DEFAULT_LIMIT;
    if (!client__query_int(r, "from", &from)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'from' must be a non-negative integer");
    }
    if (!client__query_int(r, "limit", &limit)) {
        return req_fail(r, -ERR_INVALID_PARAM, "'limit' must be a non-negative integer");
    }
    if (limit > REPORTS_MAX_LIMIT) {
        limit = REPORTS_MAX_LIMIT;
    }
    const char *dir = req_query(r, "dir");
    if (dir && strcmp(dir, "b") != 0 && strcmp(dir, "f") != 0) {
        return req_fail(r, -ERR_INVALID_PARAM, "'dir' must be 'b' or 'f'");
    }
    bool newest_first = !dir || strcmp(dir, "b") == 0;
    struct store_report *reps = NULL;
    size_t n = 0;
    int64_t total = 0;
    int rc = store_reports_list(r->db, &r->arena, kind, from, (int)limit, newest_first, &reps,
                                &n, &total);
    if (rc < 0) {
        return req_fail(r, rc, NULL);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, report_json(r, &reps[i]));
    }
    json_t *body = json_pack("{s:o,s:I}", key, list, "total", (json_int_t)total);
    if (from + (int64_t)n < total && n > 0) {
        json_object_set_new(body, "next_token", json_integer(from + (int64_t)n));
    }
    return req_json(r, 200, body);
}

int admin_event_reports(struct req *r) { return list_reports(r, "event", "event_reports"); }
int admin_room_reports(struct req *r) { return list_reports(r, "room", "room_reports"); }
int admin_user_reports(struct req *r) { return list_reports(r, "user", "user_reports"); }
